//! The driver: connections with retries and backoff, the start position (the sink's, then the
//! slot's, then the server's), timeline following, the streaming loop with validation (on the
//! writer thread, which feeds the [`WalSink`]) and feedback that never reports more flushed
//! than the sink holds durably, and the orderly stop.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};

use crate::conninfo::Config;
use crate::lsn::Lsn;
use crate::replication::{
    self, FeedbackHandle, IdentifySystem, ReplicationClient, ReplicationEvent, ReplicationStream,
    StartReplication, StreamOptions,
};
use crate::segment::{TimelineId, WalSegSize};
use crate::wal::{DecoderConfig, WalDecoder};

use super::error::{MAX_MAJOR, MIN_MAJOR};
use super::metrics::{max_u64, set_f64, unix_now, Metrics};
use super::scan::{self, safe_point};
use super::sink::{SinkStart, WalSink};
use super::writer::{self, Cmd, Progress, WriterConfig};
use super::{ReceiveError, ReceiverOptions, Stopped};

type Result<T> = std::result::Result<T, ReceiveError>;

/// A failed replication command: invalid connection options are fatal, the rest retried.
fn retry(context: &'static str) -> impl FnOnce(replication::Error) -> ReceiveError {
    move |e| match e {
        replication::Error::Config(c) => ReceiveError::InvalidConnection(c),
        source => ReceiveError::Replication { context, source },
    }
}

pub(super) async fn run(
    conn: Config,
    opts: ReceiverOptions,
    sink: Box<dyn WalSink>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) -> Result<Stopped> {
    let mut run = Run {
        conn,
        opts,
        sink: Some(sink),
        metrics,
        stop,
        system_id: None,
        seg_size: None,
        streamed: false,
        durable_histories: Default::default(),
    };
    let mut delay = run.opts.reconnect_delay;
    loop {
        if *run.stop.borrow() {
            return Ok(Stopped::Requested);
        }
        run.streamed = false;
        let r = run.session().await;
        run.metrics.streaming.store(0, Ordering::Relaxed);
        match r {
            Ok(s) => return Ok(s),
            Err(e) if e.is_retryable() => {
                run.metrics.errors.fetch_add(1, Ordering::Relaxed);
                if run.opts.no_loop {
                    return Err(ReceiveError::Disconnected(Box::new(e)));
                }
                tracing::error!("{e}");
                if run.streamed {
                    delay = run.opts.reconnect_delay;
                }
                let secs = delay.as_secs_f64();
                tracing::info!("disconnected; waiting {secs} seconds to try again");
                let mut stop = run.stop.clone();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.wait_for(|v| *v) => return Ok(Stopped::Requested),
                }
                delay = (delay * 2).min(run.opts.max_reconnect_delay.max(run.opts.reconnect_delay));
                run.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                run.metrics.errors.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        }
    }
}

struct Run {
    conn: Config,
    opts: ReceiverOptions,
    /// The sink, while no writer thread holds it (`None` only if that thread panicked).
    sink: Option<Box<dyn WalSink>>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
    system_id: Option<u64>,
    seg_size: Option<WalSegSize>,
    /// WAL was received during this session (resets the backoff).
    streamed: bool,
    /// History files made durable by this process.
    durable_histories: std::collections::HashSet<String>,
}

/// Where streaming starts.
struct Plan {
    tli: TimelineId,
    start: Lsn,
    /// The valid prefix of the segment `start` is in, which the sink holds (resumed).
    resume: Option<Vec<u8>>,
}

/// How streaming one timeline ended.
enum TimelineEnd {
    Stopped(Stopped),
    Switched {
        next_tli: TimelineId,
        next_start: Lsn,
        received: Lsn,
    },
}

/// Time from the server sending WAL to that WAL being durable here.
#[derive(Default)]
struct Lag {
    sent: VecDeque<(Lsn, SystemTime)>,
}

impl Lag {
    fn received(&mut self, end: Lsn, at: Option<SystemTime>) {
        if let Some(t) = at {
            if self.sent.len() >= 4096 {
                self.sent.pop_front();
            }
            self.sent.push_back((end, t));
        }
    }

    fn flushed(&mut self, flushed: Lsn, m: &Metrics) {
        let mut last = None;
        while let Some(&(end, t)) = self.sent.front() {
            if end > flushed {
                break;
            }
            last = Some(t);
            self.sent.pop_front();
        }
        if let Some(t) = last {
            let lag = SystemTime::now()
                .duration_since(t)
                .map_or(0.0, |d| d.as_secs_f64());
            set_f64(&m.lag_seconds, lag);
        }
    }
}

impl Run {
    async fn session(&mut self) -> Result<Stopped> {
        let mut stop = self.stop.clone();
        let mut client = tokio::select! {
            r = ReplicationClient::connect(&self.conn) => r.map_err(retry("could not connect to the server"))?,
            _ = stop.wait_for(|v| *v) => return Ok(Stopped::Requested),
        };
        if let Some(v) = client.server_version() {
            if !(MIN_MAJOR..=MAX_MAJOR).contains(&v.major()) {
                return Err(ReceiveError::UnsupportedServer { version: v });
            }
        }
        let id = client
            .identify_system()
            .await
            .map_err(retry("could not identify the system"))?;
        if id.dbname.is_some() {
            return Err(ReceiveError::DatabaseSpecific);
        }
        match self.system_id {
            Some(s) if s != id.system_id => {
                return Err(ReceiveError::SystemIdChanged {
                    from: s,
                    to: id.system_id,
                })
            }
            _ => self.system_id = Some(id.system_id),
        }
        // The server's sizes shape every file name and page check: an impossible value is
        // fatal (a retry would read it again); a failed command is retried.
        let unusable = |setting: &'static str, context: &'static str| {
            move |e: replication::Error| match e {
                source @ replication::Error::UnexpectedResult { .. } => {
                    ReceiveError::UnusableSetting { setting, source }
                }
                source => ReceiveError::Replication { context, source },
            }
        };
        let seg_size = client.wal_segment_size().await.map_err(unusable(
            "wal_segment_size",
            "could not read wal_segment_size",
        ))?;
        match self.seg_size {
            Some(s) if s != seg_size => {
                return Err(ReceiveError::SegmentSizeChanged {
                    from: s,
                    to: seg_size,
                })
            }
            _ => self.seg_size = Some(seg_size),
        }
        let page_size = client
            .wal_block_size()
            .await
            .map_err(unusable("wal_block_size", "could not read wal_block_size"))?;
        // The writer keeps the bytes of a record until it is complete; the decoder only
        // checks them, so a record of up to 1 GB is not held twice.
        let cfg = DecoderConfig {
            seg_size,
            page_size,
            system_id: Some(id.system_id),
            block_refs: true,
            keep_record_data: false,
        };
        let plan = self.plan(&mut client, &id, cfg).await?;
        if let Some(end) = self.opts.endpos {
            if end < plan.start {
                tracing::info!(
                    "stopped log streaming at {} (timeline {})",
                    plan.start,
                    plan.tli.0
                );
                return Ok(Stopped::EndPosition(plan.start));
            }
        }
        let plan = self.reconcile(&mut client, &id, plan, seg_size).await?;

        let wcfg = WriterConfig {
            seg_size,
            synchronous: self.opts.synchronous,
        };
        let sink = self.take_sink()?;
        let (tx, mut progress, handle) =
            writer::spawn(wcfg, sink, self.metrics.clone(), self.opts.queue_depth)
                .map_err(ReceiveError::WriterThread)?;
        let res = self
            .stream(&mut client, cfg, plan, &tx, &mut progress)
            .await;
        drop(tx);
        // The sink comes back for the next connection (lost only if the thread panicked).
        self.sink = match tokio::task::spawn_blocking(move || handle.join()).await {
            Ok(Ok(sink)) => Some(sink),
            _ => None,
        };
        let last = progress.borrow().clone();
        // The writer's error, unless the stream already returned it.
        match (res, last.error.take()) {
            // A failed fsync (or invalid WAL) wins over whatever ended the stream: it must
            // never be retried in this process.
            (_, Some(e)) if last.fatal => Err(e),
            (Ok(s), None) if !last.failed => {
                let _ = client.close().await;
                Ok(s)
            }
            (Ok(_), e) => Err(e.unwrap_or(ReceiveError::WriterStopped)),
            (Err(e), _) => Err(e),
        }
    }

    /// The sink, unless a panicked writer thread took it with it (then nothing can go on).
    fn take_sink(&mut self) -> Result<Box<dyn WalSink>> {
        self.sink.take().ok_or_else(|| {
            ReceiveError::sink_fatal("the sink was lost: the writer thread panicked")
        })
    }

    fn sink(&mut self) -> Result<&mut Box<dyn WalSink>> {
        self.sink.as_mut().ok_or_else(|| {
            ReceiveError::sink_fatal("the sink was lost: the writer thread panicked")
        })
    }

    /// The start position: the sink's, then the slot's, then the server's position.
    async fn plan(
        &mut self,
        client: &mut ReplicationClient,
        id: &IdentifySystem,
        cfg: DecoderConfig,
    ) -> Result<Plan> {
        let seg_size = cfg.seg_size;
        match self.sink()?.start_position(&cfg)? {
            SinkStart::After { tli, end } => Ok(Plan {
                tli,
                start: end,
                resume: None,
            }),
            SinkStart::Resume { tli, segno, prefix } => {
                let seg_start = segno.start_lsn(seg_size).unwrap_or(Lsn(0));
                Ok(Plan {
                    tli,
                    start: Lsn(seg_start.0 + prefix.len() as u64),
                    resume: Some(prefix),
                })
            }
            SinkStart::Empty => {
                if let Some(slot) = &self.opts.slot {
                    if client.server_version().is_some_and(|v| v.major() >= 15) {
                        let info = client
                            .read_replication_slot(slot)
                            .await
                            .map_err(retry("could not read replication slot"))?;
                        if !info.exists() {
                            return Err(ReceiveError::SlotMissing(slot.as_str().to_owned()));
                        }
                        if let Some(lsn) = info.restart_lsn {
                            let tli = info.restart_tli.unwrap_or(id.timeline);
                            return Ok(Plan {
                                tli,
                                start: lsn.segment_start(seg_size),
                                resume: None,
                            });
                        }
                    }
                }
                Ok(Plan {
                    tli: id.timeline,
                    start: id.xlogpos.segment_start(seg_size),
                    resume: None,
                })
            }
        }
    }

    /// If the archive is on an older timeline than the server, follows the server's history:
    /// a start past the old timeline's switch point moves to the next timeline.
    async fn reconcile(
        &mut self,
        client: &mut ReplicationClient,
        id: &IdentifySystem,
        mut plan: Plan,
        seg_size: WalSegSize,
    ) -> Result<Plan> {
        if plan.tli == id.timeline {
            return Ok(plan);
        }
        if plan.tli > id.timeline {
            return Err(ReceiveError::ArchiveAhead {
                archive: plan.tli,
                server: id.timeline,
            });
        }
        let hist = client
            .timeline_history(id.timeline)
            .await
            .map_err(retry("could not read the timeline history"))?;
        self.store_history(id.timeline, &hist.content)?;
        while plan.tli != id.timeline {
            let entries = &hist.history.entries;
            let Some(i) = entries.iter().position(|e| e.tli == plan.tli) else {
                return Err(ReceiveError::TimelineNotInHistory {
                    archive: plan.tli,
                    server: id.timeline,
                });
            };
            let switch = entries[i].switchpoint;
            if plan.start <= switch {
                break;
            }
            let next = entries.get(i + 1).map_or(id.timeline, |e| e.tli);
            let start = switch.segment_start(seg_size);
            tracing::info!(
                "the archive has WAL of timeline {} up to {}, past the point {} where the server switched to timeline {}; continuing on timeline {} at {}",
                plan.tli.0, plan.start, switch, next.0, next.0, start
            );
            plan = Plan {
                tli: next,
                start,
                resume: None,
            };
        }
        Ok(plan)
    }

    /// Has the sink store `TTTTTTTT.history`, also when it holds the same content (once per
    /// process: a killed receiver may have left it in the page cache only). Other content is
    /// an error.
    fn store_history(&mut self, tli: TimelineId, content: &[u8]) -> Result<()> {
        let name = format!("{:08X}.history", tli.0);
        if self.durable_histories.contains(&name) {
            return Ok(());
        }
        let existed = match self.sink()?.read_history(tli)? {
            Some(old) if old == content => true,
            Some(_) => {
                return Err(ReceiveError::HistoryConflict {
                    path: self.opts.directory.join(&name),
                    tli,
                })
            }
            None => false,
        };
        self.sink()?.write_history(tli, content)?;
        if !existed {
            tracing::info!("wrote timeline history file \"{name}\"");
        }
        self.durable_histories.insert(name);
        Ok(())
    }

    async fn stream(
        &mut self,
        client: &mut ReplicationClient,
        cfg: DecoderConfig,
        plan: Plan,
        tx: &mpsc::Sender<Cmd>,
        progress: &mut watch::Receiver<Progress>,
    ) -> Result<Stopped> {
        let seg_size = cfg.seg_size;
        let (mut tli, mut start, mut resume) = (plan.tli, plan.start, plan.resume);
        loop {
            let hist_name = format!("{:08X}.history", tli.0);
            if tli.0 != 1 && !self.durable_histories.contains(&hist_name) {
                let h = client
                    .timeline_history(tli)
                    .await
                    .map_err(retry("could not read the timeline history"))?;
                if h.filename != hist_name {
                    return Err(ReceiveError::UnexpectedHistoryName {
                        tli,
                        name: h.filename,
                    });
                }
                self.store_history(tli, &h.content)?;
            }
            let seg_start = start.segment_start(seg_size);
            let mut dec = WalDecoder::new(cfg, seg_start);
            if let Some(prefix) = &resume {
                scan::valid_prefix(&mut dec, seg_start, prefix, tli);
                if safe_point(&dec) != start {
                    return Err(ReceiveError::ResumeMismatch {
                        expected: start,
                        found: safe_point(&dec),
                    });
                }
            }
            resume = None;
            tx.send(Cmd::Begin {
                tli,
                start,
                decoder: Box::new(dec),
            })
            .await
            .map_err(|_| ReceiveError::WriterStopped)?;
            tracing::info!("starting log streaming at {} (timeline {})", start, tli.0);
            self.metrics
                .timeline
                .store(u64::from(tli.0), Ordering::Relaxed);
            match self
                .stream_timeline(client, tli, start, tx, progress)
                .await?
            {
                TimelineEnd::Stopped(s) => return Ok(s),
                TimelineEnd::Switched {
                    next_tli,
                    next_start,
                    received,
                } => {
                    if next_tli <= tli {
                        return Err(ReceiveError::UnexpectedNextTimeline {
                            next: next_tli,
                            current: tli,
                        });
                    }
                    if next_start > received {
                        return Err(ReceiveError::SwitchPastEnd {
                            tli,
                            received,
                            next_tli,
                            next_start,
                        });
                    }
                    tracing::info!("switched to timeline {} at {}", next_tli.0, next_start);
                    tli = next_tli;
                    start = next_start.segment_start(seg_size);
                    if let Some(end) = self.opts.endpos {
                        if end < start {
                            tracing::info!(
                                "stopped log streaming at {} (timeline {})",
                                start,
                                tli.0
                            );
                            return Ok(Stopped::EndPosition(received));
                        }
                    }
                }
            }
        }
    }

    /// Sends a command to the writer; while its queue is full, keeps the server informed.
    async fn send(
        &self,
        tx: &mpsc::Sender<Cmd>,
        cmd: Cmd,
        stream: &mut ReplicationStream<'_>,
        progress: &watch::Receiver<Progress>,
    ) -> Result<()> {
        let gone = || ReceiveError::WriterStopped;
        let cmd = match tx.try_reserve() {
            Ok(p) => {
                p.send(cmd);
                return Ok(());
            }
            Err(mpsc::error::TrySendError::Closed(())) => return Err(gone()),
            Err(mpsc::error::TrySendError::Full(())) => cmd,
        };
        let every = self
            .opts
            .status_interval
            .unwrap_or(Duration::from_secs(10))
            .min(Duration::from_secs(10));
        loop {
            tokio::select! {
                p = tx.reserve() => {
                    p.map_err(|_| gone())?.send(cmd);
                    return Ok(());
                }
                _ = tokio::time::sleep(every) => {
                    let p = progress.borrow().clone();
                    self.send_progress(stream, &stream.feedback(), &p).await?;
                }
            }
        }
    }

    async fn stream_timeline(
        &mut self,
        client: &mut ReplicationClient,
        tli: TimelineId,
        start: Lsn,
        tx: &mpsc::Sender<Cmd>,
        progress: &mut watch::Receiver<Progress>,
    ) -> Result<TimelineEnd> {
        let mut cmd = StartReplication::new(start).timeline(tli);
        if let Some(s) = &self.opts.slot {
            cmd = cmd.slot(s.clone());
        }
        let options = StreamOptions::default()
            .status_interval(self.opts.status_interval)
            .report_received_as_written(false);
        let mut stream = client
            .start_replication_with(&cmd, options)
            .await
            .map_err(retry("could not start WAL streaming"))?;
        self.metrics.streaming.store(1, Ordering::Relaxed);
        let fb = stream.feedback();
        fb.set_write(start);
        // No flush position is reported until the writer says what it has made durable in
        // this process (a resumed `.partial` is copied and fsynced first): until then status
        // updates carry flush 0, which the server ignores for the slot.
        let mut received = start;
        let mut last_flushed = Lsn(0);
        let mut lag = Lag::default();
        let mut stop = self.stop.clone();
        let line_every = self.opts.status_interval.unwrap_or(Duration::from_secs(10));
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + line_every, line_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut rate = (Instant::now(), received);
        loop {
            tokio::select! {
                biased;
                _ = stop.wait_for(|v| *v) => {
                    tracing::info!("received interrupt signal, exiting");
                    self.finish(&mut stream, &fb, tx, progress, tli, received).await?;
                    return Ok(TimelineEnd::Stopped(Stopped::Requested));
                }
                r = progress.changed() => {
                    if r.is_err() {
                        return Err(ReceiveError::WriterStopped);
                    }
                    let p = progress.borrow_and_update().clone();
                    if p.failed {
                        return Err(p.error.take().unwrap_or(ReceiveError::WriterStopped));
                    }
                    fb.set_write(p.written);
                    if p.flushed > last_flushed {
                        last_flushed = p.flushed;
                        self.report_flush(&fb, p.flushed);
                        lag.flushed(p.flushed, &self.metrics);
                    }
                }
                _ = tick.tick() => {
                    if !self.opts.synchronous && last_flushed < received {
                        let _ = tx.try_send(Cmd::Flush);
                    }
                    let (t0, l0) = rate;
                    let secs = t0.elapsed().as_secs_f64().max(0.001);
                    let mbps = (received.0.saturating_sub(l0.0)) as f64 / secs / 1e6;
                    rate = (Instant::now(), received);
                    let m = &self.metrics;
                    let server = Lsn(m.server_lsn.load(Ordering::Relaxed));
                    tracing::debug!(
                        "status: timeline {} received {} flushed {} server {} lag {} bytes {:.1} s, {:.1} MB/s, {} segments",
                        tli.0, received, last_flushed, server,
                        server.0.saturating_sub(last_flushed.0),
                        f64::from_bits(m.lag_seconds.load(Ordering::Relaxed)),
                        mbps, m.segments_written.load(Ordering::Relaxed)
                    );
                }
                ev = stream.next_event() => {
                    let mut ev = ev;
                    // Events that were ready together are handled in this loop: consecutive
                    // WAL messages go to the writer as one batch.
                    loop {
                        let event = match ev {
                            None => return Err(ReceiveError::StreamEnded),
                            Some(Err(source)) => return Err(ReceiveError::Replication { context: "could not receive data from WAL stream", source }),
                            Some(Ok(event)) => event,
                        };
                        set_f64(&self.metrics.last_message_time, unix_now());
                        match event {
                            ReplicationEvent::XLogData(x) => {
                                let start = x.start;
                                let mut batch = Vec::new();
                                let mut bytes = 0;
                                let mut next = Some(x);
                                let mut after = None;
                                let mut at_end = false;
                                while let Some(x) = next.take() {
                                    if x.start != received {
                                        return Err(ReceiveError::UnexpectedWalPosition {
                                            got: x.start,
                                            expected: received,
                                        });
                                    }
                                    self.streamed = true;
                                    let m = &self.metrics;
                                    m.bytes_received.fetch_add(x.data.len() as u64, Ordering::Relaxed);
                                    m.received_lsn.store(x.end.0, Ordering::Relaxed);
                                    max_u64(&m.server_lsn, x.wal_end.0.max(x.end.0));
                                    lag.received(x.end, x.server_time.to_system_time());
                                    received = x.end;
                                    bytes += x.data.len();
                                    batch.push(x.data);
                                    at_end = self.opts.endpos.is_some_and(|end| end < received);
                                    if at_end || bytes >= writer::BATCH_BYTES || batch.len() >= writer::BATCH_MESSAGES {
                                        break;
                                    }
                                    match stream.try_next_event().await {
                                        Some(Some(Ok(ReplicationEvent::XLogData(x)))) => next = Some(x),
                                        Some(other) => after = Some(other),
                                        None => {}
                                    }
                                }
                                let cmd = Cmd::Data { start, data: batch };
                                self.send(tx, cmd, &mut stream, progress).await?;
                                if at_end {
                                    self.finish(&mut stream, &fb, tx, progress, tli, received).await?;
                                    return Ok(TimelineEnd::Stopped(Stopped::EndPosition(received)));
                                }
                                match after {
                                    Some(other) => ev = other,
                                    None => break,
                                }
                            }
                            ReplicationEvent::Keepalive(k) => {
                                max_u64(&self.metrics.server_lsn, k.wal_end.0);
                                if k.reply_requested {
                                    self.metrics.status_updates.fetch_add(1, Ordering::Relaxed);
                                    if last_flushed < received {
                                        // Answered already with what is durable; make the rest
                                        // durable and report again.
                                        let _ = tx.try_send(Cmd::Flush);
                                    }
                                }
                                if k.wal_end <= last_flushed {
                                    set_f64(&self.metrics.lag_seconds, 0.0);
                                }
                                break;
                            }
                            ReplicationEvent::TimelineEnded { next_tli, next_start } => {
                                drop(stream);
                                self.close_writer(tx, progress).await?;
                                return Ok(TimelineEnd::Switched { next_tli, next_start, received });
                            }
                        }
                    }
                }
            }
        }
    }

    /// Sends a status update with the writer's progress now (not waiting for the driver).
    async fn send_progress(
        &self,
        stream: &mut ReplicationStream<'_>,
        fb: &FeedbackHandle,
        p: &Progress,
    ) -> Result<()> {
        fb.set_write(p.written);
        fb.set_flush(p.flushed);
        if self.opts.report_apply {
            fb.set_apply(p.flushed);
        }
        stream
            .send_status(false)
            .await
            .map_err(retry("could not send feedback packet"))?;
        self.metrics.status_updates.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn report_flush(&self, fb: &FeedbackHandle, flushed: Lsn) {
        fb.set_flush(flushed);
        if self.opts.report_apply {
            fb.set_apply(flushed);
        }
        fb.send_status();
        self.metrics.status_updates.fetch_add(1, Ordering::Relaxed);
    }

    /// Writes what the writer holds back, closes the segment durably, and checks for errors.
    async fn close_writer(
        &self,
        tx: &mpsc::Sender<Cmd>,
        progress: &mut watch::Receiver<Progress>,
    ) -> Result<Progress> {
        let (otx, orx) = oneshot::channel();
        tx.send(Cmd::Close(Some(otx)))
            .await
            .map_err(|_| ReceiveError::WriterStopped)?;
        let _ = orx.await;
        let p = progress.borrow_and_update().clone();
        if p.failed {
            return Err(p.error.take().unwrap_or(ReceiveError::WriterStopped));
        }
        Ok(p)
    }

    /// The orderly stop: write and fsync everything received, close the segment, send the
    /// final status update, end streaming.
    async fn finish(
        &self,
        stream: &mut ReplicationStream<'_>,
        fb: &FeedbackHandle,
        tx: &mpsc::Sender<Cmd>,
        progress: &mut watch::Receiver<Progress>,
        tli: TimelineId,
        received: Lsn,
    ) -> Result<()> {
        let p = self.close_writer(tx, progress).await?;
        self.send_progress(stream, fb, &p).await?;
        tracing::info!("stopped log streaming at {} (timeline {})", received, tli.0);
        stream.stop();
        let drain = async {
            while let Some(ev) = stream.next_event().await {
                if ev.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), drain).await;
        Ok(())
    }
}
