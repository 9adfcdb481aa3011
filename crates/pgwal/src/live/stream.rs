//! Records from a running server: [`LiveSource`] connects over physical replication, works out
//! where to start (an LSN, a slot's position or the server's current one), keeps the WAL with a
//! temporary slot, streams, follows timeline switches and hands out each decoded record.
//!
//! The server is never made to wait on the reader: status updates go out on a timer and in
//! answer to keepalives, and no flush position is ever reported, so the connection is never a
//! candidate synchronous standby (commits never wait for it, whatever
//! `synchronous_standby_names` says).

use std::ops::ControlFlow;
use std::time::Duration;

use crate::conninfo::Config;
use crate::history::TimelineHistory;
use crate::lsn::Lsn;
use crate::replication::{
    self, CreateSlotOptions, IdentifySystem, ReplicationClient, ReplicationEvent, ServerVersion,
    SlotName, StartReplication, StreamOptions,
};
use crate::segment::{TimelineId, WalSegSize};
use crate::wal::{DecoderConfig, PgVersion, Record};

use super::{LiveDecodeError, LiveDecoder};

/// Where a [`LiveSource`] starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The first record at or after this LSN (as pg_waldump's `-s`).
    Lsn(Lsn),
    /// The first record at or after a replication slot's `restart_lsn`.
    Slot(SlotName),
    /// The first record at or after the server's current WAL position (`IDENTIFY_SYSTEM`).
    Current,
}

/// What to stream: [`LiveOptions::new`], then the builder methods.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LiveOptions {
    /// Where to start.
    pub start: StartAt,
    /// Stop before the first record whose bytes reach past this LSN (waiting for the server
    /// to write up to it). Without it, the end is the server's WAL position at connection,
    /// unless `follow` is set.
    pub end: Option<Lsn>,
    /// Without `end`: keep streaming new WAL for ever.
    pub follow: bool,
    /// Create a temporary physical slot (with `RESERVE_WAL`) and stream through it, so the
    /// server keeps its WAL while streaming (default on).
    pub temporary_slot: bool,
    /// How often a status update is sent (default 1 s).
    pub status_interval: Duration,
}

impl LiveOptions {
    /// Streaming from `start` to the server's current position, with a temporary slot.
    pub fn new(start: StartAt) -> LiveOptions {
        LiveOptions {
            start,
            end: None,
            follow: false,
            temporary_slot: true,
            status_interval: Duration::from_secs(1),
        }
    }

    /// Sets the end.
    pub fn end(mut self, end: Option<Lsn>) -> LiveOptions {
        self.end = end;
        self
    }

    /// Sets whether to follow new WAL when no end is given.
    pub fn follow(mut self, on: bool) -> LiveOptions {
        self.follow = on;
        self
    }

    /// Sets whether a temporary slot keeps the WAL.
    pub fn temporary_slot(mut self, on: bool) -> LiveOptions {
        self.temporary_slot = on;
        self
    }

    /// Sets the status interval.
    pub fn status_interval(mut self, interval: Duration) -> LiveOptions {
        self.status_interval = interval;
        self
    }
}

/// Why streaming records from a server failed. Every variant names the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    /// No connection could be made (the error names each address tried).
    #[error(transparent)]
    Connect(replication::Error),
    /// A replication command failed.
    #[error("server {server}: {what} failed: {error}")]
    Command {
        /// The server.
        server: String,
        /// What was being done.
        what: String,
        /// The error.
        error: replication::Error,
    },
    /// The slot named by [`StartAt::Slot`] does not exist.
    #[error("server {server}: replication slot \"{slot}\" does not exist")]
    SlotMissing {
        /// The server.
        server: String,
        /// The slot.
        slot: String,
    },
    /// The slot exists but holds no WAL position (`restart_lsn` is null).
    #[error(
        "server {server}: replication slot \"{slot}\" has no restart_lsn (it reserves no WAL)"
    )]
    SlotUnused {
        /// The server.
        server: String,
        /// The slot.
        slot: String,
    },
    /// The start is ahead of the WAL the server has written (and flushed).
    #[error("server {server}: cannot stream WAL from {start}: it is ahead of the WAL flush position of the server, {flush}")]
    Ahead {
        /// The server.
        server: String,
        /// The requested start.
        start: Lsn,
        /// The server's position (`IDENTIFY_SYSTEM`).
        flush: Lsn,
    },
    /// The server refused to stream from `start`: in the future, or its WAL removed.
    #[error("server {server}: cannot stream WAL from {start} on timeline {tli}: {error}")]
    Start {
        /// The server.
        server: String,
        /// The requested start.
        start: Lsn,
        /// The requested timeline.
        tli: TimelineId,
        /// The server's answer.
        error: replication::Error,
    },
    /// The connection failed while streaming (the server went away).
    #[error("server {server}: streaming failed at {at}: {error}")]
    Stream {
        /// The server.
        server: String,
        /// The end of the WAL received.
        at: Lsn,
        /// The error.
        error: replication::Error,
    },
    /// The server ended streaming (e.g. it shut down) before the end was reached.
    #[error("server {server}: streaming ended at {at}, before {wanted}")]
    Ended {
        /// The server.
        server: String,
        /// The end of the WAL received.
        at: Lsn,
        /// Where streaming was to end (`FFFFFFFF/FFFFFFFF` when following).
        wanted: Lsn,
    },
    /// The streamed WAL could not be decoded.
    #[error("server {server}: invalid WAL from the server: {error}")]
    Decode {
        /// The server.
        server: String,
        /// The decoder's error (with its LSN).
        error: LiveDecodeError,
    },
}

/// How [`LiveSource::run`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveEnd {
    /// The end was reached: every record ending at or before it was handed out.
    ReachedEnd,
    /// The visitor asked to stop.
    Stopped,
}

/// What [`LiveSource::run`] hands its visitor.
#[derive(Debug)]
pub enum LiveEvent<'r, 'a> {
    /// A record, in LSN order.
    Record(&'r Record<'a>),
    /// Every byte received so far has been decoded and nothing more is waiting: a good moment
    /// to flush output. `at` is the end of the WAL received.
    CaughtUp {
        /// The end of the WAL received.
        at: Lsn,
    },
    /// The streamed timeline ended at `at`; streaming goes on with timeline `tli`.
    Timeline {
        /// The next timeline.
        tli: TimelineId,
        /// The switch point.
        at: Lsn,
        /// The next timeline's history (from `TIMELINE_HISTORY`).
        history: TimelineHistory,
    },
}

/// A server streaming records: connect, then [`run`](LiveSource::run).
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use std::ops::ControlFlow;
/// use pgwal::conninfo::Config;
/// use pgwal::live::{LiveEvent, LiveOptions, LiveSource, StartAt};
///
/// let config = Config::parse("host=db1 user=rep")?;
/// let options = LiveOptions::new(StartAt::Current).follow(true);
/// let mut source = LiveSource::connect(&config, options).await?;
/// let decoder = source.decoder_config();
/// source
///     .run(decoder, |event| {
///         if let LiveEvent::Record(rec) = event {
///             println!("{} rmgr {} len {}", rec.lsn(), rec.rmid(), rec.total_len());
///         }
///         ControlFlow::Continue(())
///     })
///     .await?;
/// source.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LiveSource {
    client: ReplicationClient,
    server: String,
    system: IdentifySystem,
    seg_size: WalSegSize,
    page_size: u32,
    start: Lsn,
    start_tli: TimelineId,
    end: Option<Lsn>,
    slot: Option<SlotName>,
    status_interval: Duration,
}

impl LiveSource {
    /// Connects, reads the server's settings, finds the start (and its timeline) and, unless
    /// told not to, creates the temporary slot.
    pub async fn connect(config: &Config, options: LiveOptions) -> Result<LiveSource, LiveError> {
        let mut client = ReplicationClient::connect(config)
            .await
            .map_err(LiveError::Connect)?;
        let server = client.host().to_string();
        let cmd = |what: &str| {
            let server = server.clone();
            let what = what.to_owned();
            move |error| LiveError::Command {
                server,
                what,
                error,
            }
        };
        let system = client
            .identify_system()
            .await
            .map_err(cmd("IDENTIFY_SYSTEM"))?;
        let seg_size = client
            .wal_segment_size()
            .await
            .map_err(cmd("SHOW wal_segment_size"))?;
        let page_size = client
            .wal_block_size()
            .await
            .map_err(cmd("SHOW wal_block_size"))?;
        let (start, slot_tli) = match &options.start {
            StartAt::Lsn(l) => (*l, None),
            StartAt::Current => (system.xlogpos, None),
            StartAt::Slot(name) => slot_position(&mut client, config, &server, name).await?,
        };
        if start > system.xlogpos {
            return Err(LiveError::Ahead {
                server,
                start,
                flush: system.xlogpos,
            });
        }
        // The timeline that holds `start`, from the server's history.
        let start_tli = match slot_tli {
            Some(t) => t,
            None if system.timeline.0 > 1 => client
                .timeline_history(system.timeline)
                .await
                .map_err(cmd("TIMELINE_HISTORY"))?
                .history
                .timeline_of(start, system.timeline),
            None => system.timeline,
        };
        let end = match options.end {
            Some(e) => Some(e),
            None if options.follow => None,
            None => Some(system.xlogpos),
        };
        let slot = if options.temporary_slot {
            let name = SlotName::new(format!("pgwal_dump_{}", std::process::id()))
                .map_err(cmd("CREATE_REPLICATION_SLOT"))?;
            let opts = CreateSlotOptions {
                temporary: true,
                reserve_wal: true,
            };
            client
                .create_replication_slot(&name, opts)
                .await
                .map_err(cmd("CREATE_REPLICATION_SLOT"))?;
            Some(name)
        } else {
            None
        };
        Ok(LiveSource {
            client,
            server,
            system,
            seg_size,
            page_size,
            start,
            start_tli,
            end,
            slot,
            status_interval: options.status_interval,
        })
    }

    /// The server, as libpq names it in messages (`"db1" (10.0.0.1), port 5432`).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The server's version.
    pub fn server_version(&self) -> Option<ServerVersion> {
        self.client.server_version()
    }

    /// The WAL format of the server's major version, if pgwal knows it.
    pub fn wal_version(&self) -> Option<PgVersion> {
        PgVersion::from_major(self.server_version()?.major())
    }

    /// `IDENTIFY_SYSTEM`'s answer at connection.
    pub fn system(&self) -> &IdentifySystem {
        &self.system
    }

    /// The segment size.
    pub fn seg_size(&self) -> WalSegSize {
        self.seg_size
    }

    /// The WAL page size.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// Where records are looked for from (the first one at or after it is handed out).
    pub fn start(&self) -> Lsn {
        self.start
    }

    /// The timeline that holds [`start`](Self::start).
    pub fn start_timeline(&self) -> TimelineId {
        self.start_tli
    }

    /// Where streaming ends, if it does.
    pub fn end(&self) -> Option<Lsn> {
        self.end
    }

    /// The temporary slot keeping the WAL, if one was created.
    pub fn slot(&self) -> Option<&SlotName> {
        self.slot.as_ref()
    }

    /// The decoder settings for this server's WAL (segment and page size, system id).
    pub fn decoder_config(&self) -> DecoderConfig {
        DecoderConfig::new(self.seg_size)
            .with_page_size(self.page_size)
            .with_system_id(Some(self.system.system_id))
    }

    /// Streams and decodes from the start to the end (or for ever when following), calling
    /// `visit` for each record and event, with WAL decoded by `cfg` (from
    /// [`decoder_config`](Self::decoder_config), e.g. without block references). Streaming
    /// begins at the page holding the start, so that the first record at or after it is found
    /// wherever the start points, as pg_waldump finds it; at a timeline's end it goes on with
    /// the next timeline from the switch point.
    pub async fn run(
        &mut self,
        cfg: DecoderConfig,
        mut visit: impl FnMut(LiveEvent<'_, '_>) -> ControlFlow<()>,
    ) -> Result<LiveEnd, LiveError> {
        let mut live = LiveDecoder::find(cfg, self.start);
        let mut tli = self.start_tli;
        if self.end.is_some_and(|e| live.position() >= e) {
            return Ok(LiveEnd::ReachedEnd);
        }
        let wanted = self.end.unwrap_or(Lsn::MAX);
        loop {
            let from = live.position();
            // Errors name the start asked for, not the page streaming begins at.
            let first = self.start;
            let mut cmd = StartReplication::new(from).timeline(tli);
            if let Some(s) = &self.slot {
                cmd = cmd.slot(s.clone());
            }
            let options = StreamOptions::default().status_interval(Some(self.status_interval));
            let server = &self.server;
            let mut stream = self
                .client
                .start_replication_with(&cmd, options)
                .await
                .map_err(|error| LiveError::Start {
                    server: server.clone(),
                    start: from.max(first),
                    tli,
                    error,
                })?;
            let mut next = None;
            // Until WAL arrives, a failure is the server refusing the start (WAL removed).
            let mut streamed = false;
            loop {
                let event = match stream.try_next_event().await {
                    Some(e) => e,
                    None => {
                        let at = stream.received();
                        if visit(LiveEvent::CaughtUp { at }).is_break() {
                            return Ok(LiveEnd::Stopped);
                        }
                        stream.next_event().await
                    }
                };
                let event = match event {
                    None => break,
                    Some(Err(error)) if !streamed => {
                        return Err(LiveError::Start {
                            server: server.clone(),
                            start: from.max(first),
                            tli,
                            error,
                        })
                    }
                    Some(Err(error)) => {
                        return Err(LiveError::Stream {
                            server: server.clone(),
                            at: stream.received(),
                            error,
                        })
                    }
                    Some(Ok(e)) => e,
                };
                match event {
                    ReplicationEvent::XLogData(chunk) => {
                        streamed = true;
                        let mut outcome = None;
                        live.feed(&chunk, |rec| {
                            if outcome.is_some() {
                                return;
                            }
                            if rec.end_lsn() > wanted {
                                outcome = Some(LiveEnd::ReachedEnd);
                            } else if visit(LiveEvent::Record(rec)).is_break() {
                                outcome = Some(LiveEnd::Stopped);
                            }
                        })
                        .map_err(|error| LiveError::Decode {
                            server: server.clone(),
                            error,
                        })?;
                        if let Some(o) = outcome {
                            return Ok(o);
                        }
                        if live.position() >= wanted {
                            return Ok(LiveEnd::ReachedEnd);
                        }
                    }
                    ReplicationEvent::TimelineEnded {
                        next_tli,
                        next_start,
                    } => next = Some((next_tli, next_start)),
                    _ => {}
                }
            }
            drop(stream);
            let Some((next_tli, at)) = next else {
                return Err(LiveError::Ended {
                    server: self.server.clone(),
                    at: live.position(),
                    wanted,
                });
            };
            let history = self
                .client
                .timeline_history(next_tli)
                .await
                .map_err(|error| LiveError::Command {
                    server: self.server.clone(),
                    what: format!("TIMELINE_HISTORY {next_tli}"),
                    error,
                })?;
            tracing::debug!("timeline {tli} ended at {at}; going on with timeline {next_tli}");
            if visit(LiveEvent::Timeline {
                tli: next_tli,
                at,
                history: history.history,
            })
            .is_break()
            {
                return Ok(LiveEnd::Stopped);
            }
            tli = next_tli;
        }
    }

    /// Ends the connection (the temporary slot goes with it).
    pub async fn close(self) {
        if let Err(e) = self.client.close().await {
            tracing::debug!("closing the connection: {e}");
        }
    }
}

/// A slot's `restart_lsn` (and timeline, when the server says): `READ_REPLICATION_SLOT` on 15+,
/// else `pg_replication_slots` over an ordinary connection.
async fn slot_position(
    client: &mut ReplicationClient,
    config: &Config,
    server: &str,
    name: &SlotName,
) -> Result<(Lsn, Option<TimelineId>), LiveError> {
    let missing = || LiveError::SlotMissing {
        server: server.to_owned(),
        slot: name.as_str().to_owned(),
    };
    let unused = || LiveError::SlotUnused {
        server: server.to_owned(),
        slot: name.as_str().to_owned(),
    };
    let failed = |what: &str| {
        let what = what.to_owned();
        move |error| LiveError::Command {
            server: server.to_owned(),
            what,
            error,
        }
    };
    if client.server_version().is_some_and(|v| v.major() >= 15) {
        let info = client
            .read_replication_slot(name)
            .await
            .map_err(failed("READ_REPLICATION_SLOT"))?;
        if !info.exists() {
            return Err(missing());
        }
        let lsn = info.restart_lsn.ok_or_else(unused)?;
        return Ok((lsn, info.restart_tli));
    }
    let what = "reading pg_replication_slots";
    let mut sql = ReplicationClient::connect_sql(config)
        .await
        .map_err(failed(what))?;
    let quoted = name.as_str().replace('\'', "''");
    let result = sql
        .simple_query(&format!(
            "SELECT restart_lsn FROM pg_catalog.pg_replication_slots WHERE slot_name = '{quoted}'"
        ))
        .await
        .map_err(failed(what));
    let _ = sql.close().await;
    let sets = result?;
    let row = sets
        .first()
        .and_then(|s| s.rows.first())
        .ok_or_else(missing)?;
    let text = row.get_str(0).ok().flatten().ok_or_else(unused)?;
    let lsn = text.parse::<Lsn>().map_err(|_| LiveError::Command {
        server: server.to_owned(),
        what: what.to_owned(),
        error: replication::Error::Protocol(format!("invalid restart_lsn \"{text}\"")),
    })?;
    Ok((lsn, None))
}
