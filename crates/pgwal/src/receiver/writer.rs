//! The writer thread: validation of the received WAL, and the [`WalSink`] fed with it, off the
//! receiving task.
//!
//! The receiving task sends the WAL it receives through a bounded queue; the writer validates
//! it with the decoder (holding back the tail of a record until the record is complete and
//! its CRC checks), hands what is valid to the sink segment by segment (`begin_segment`,
//! `write`, `finish_segment`), asks it to flush when told (and after every drained batch with
//! `--synchronous`), and publishes the written position and the sink's durable ("flushed")
//! position through a watch channel.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::lsn::Lsn;
use crate::segment::{TimelineId, WalSegSize};
use crate::wal::WalDecoder;

use super::error::{ReceiveError, WalDamage};
use super::metrics::Metrics;
use super::scan::safe_point;
use super::sink::WalSink;

/// A request to the writer.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// Streaming (re)starts at `start` on `tli` (inside a segment: the sink's resumed one);
    /// `decoder` validates the WAL from `start` on.
    Begin {
        tli: TimelineId,
        start: Lsn,
        decoder: Box<WalDecoder>,
    },
    /// WAL messages received together, back to back from `start` (contiguous with what came
    /// before), not yet validated: at most [`BATCH_MESSAGES`] messages, and no more once
    /// [`BATCH_BYTES`] are reached.
    Data { start: Lsn, data: Vec<Bytes> },
    /// Make everything written durable, then publish it as flushed.
    Flush,
    /// Write what is held back (an orderly stop or the end of a timeline: the server's WAL
    /// ends there), close the current segment (renamed only if complete) durably; answer.
    Close(Option<oneshot::Sender<()>>),
}

/// What the writer has done, published after every step that matters.
#[derive(Clone, Debug, Default)]
pub(crate) struct Progress {
    /// End of the WAL handed to the file system.
    pub(crate) written: Lsn,
    /// End of the WAL the sink holds durably (never above `written`).
    pub(crate) flushed: Lsn,
    /// The writer failed; it ignores further data.
    pub(crate) failed: bool,
    /// The first error, until the session takes it.
    pub(crate) error: ErrorSlot,
    /// Retrying in this process cannot help or is unsafe: WAL that fails validation (a
    /// retry fetches the same WAL) or a failed fsync (see [`ReceiveError::Sync`]).
    pub(crate) fatal: bool,
}

/// The writer's first error, shared with the session, which takes it once (a
/// [`ReceiveError`] cannot be cloned).
#[derive(Clone, Debug, Default)]
pub(crate) struct ErrorSlot(Arc<Mutex<Option<ReceiveError>>>);

impl ErrorSlot {
    fn put(&self, e: ReceiveError) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(e);
        }
    }

    /// The error, if it was not taken yet.
    pub(crate) fn take(&self) -> Option<ReceiveError> {
        self.0.lock().ok()?.take()
    }
}

/// Settings of the writer.
#[derive(Clone, Debug)]
pub(crate) struct WriterConfig {
    pub(crate) seg_size: WalSegSize,
    /// Flush and publish after every batch (`--synchronous`).
    pub(crate) synchronous: bool,
}

struct Writer {
    cfg: WriterConfig,
    sink: Box<dyn WalSink>,
    metrics: Arc<Metrics>,
    progress: watch::Sender<Progress>,
    /// A segment is open in the sink.
    open: bool,
    tli: TimelineId,
    /// Next expected LSN.
    next: Lsn,
    failed: bool,
    /// Bytes written since the last flush.
    unsynced: u64,
    /// Validates the incoming WAL.
    decoder: Option<Box<WalDecoder>>,
    /// Received WAL not yet written (from `next`): the part of a record still incomplete.
    held: VecDeque<Bytes>,
    /// End of the WAL received.
    received: Lsn,
    /// The flushed position last published with a notification (a sink whose durable
    /// position moves on its own, as the object sink's uploads do, may be read between two
    /// notifications).
    notified: Lsn,
}

/// With `--synchronous`, fsync after this many unflushed bytes even if more WAL is queued.
const SYNCHRONOUS_MAX_UNSYNCED: u64 = 4 << 20;

/// A batch of WAL sent to the writer ends once it holds this many bytes (the server sends
/// messages of at most 128 kB, so a batch stays below 1.125 MB)...
pub(crate) const BATCH_BYTES: usize = 1 << 20;
/// ...or this many messages.
pub(crate) const BATCH_MESSAGES: usize = 256;

/// The writer thread's handles: its queue, its progress, and the thread (which returns the
/// sink).
pub(crate) type Spawned = (
    mpsc::Sender<Cmd>,
    watch::Receiver<Progress>,
    std::thread::JoinHandle<Box<dyn WalSink>>,
);

/// Starts the writer thread, which feeds `sink`. Dropping the sender makes it close the
/// current segment and exit; joining it gives the sink back.
pub(crate) fn spawn(
    cfg: WriterConfig,
    sink: Box<dyn WalSink>,
    metrics: Arc<Metrics>,
    queue: usize,
) -> io::Result<Spawned> {
    let (tx, rx) = mpsc::channel(queue.max(1));
    let (ptx, prx) = watch::channel(Progress::default());
    let handle = std::thread::Builder::new()
        .name("pgwal-writer".into())
        .spawn(move || {
            let mut w = Writer {
                cfg,
                sink,
                metrics,
                progress: ptx,
                open: false,
                tli: TimelineId(1),
                next: Lsn(0),
                failed: false,
                unsynced: 0,
                decoder: None,
                held: VecDeque::new(),
                received: Lsn(0),
                notified: Lsn(0),
            };
            w.run(rx);
            w.sink
        })?;
    Ok((tx, prx, handle))
}

impl Writer {
    fn run(&mut self, mut rx: mpsc::Receiver<Cmd>) {
        loop {
            let cmd = match rx.try_recv() {
                Ok(c) => {
                    // Under a steady stream the queue may never drain: still fsync at least
                    // every few megabytes.
                    if self.cfg.synchronous && self.unsynced >= SYNCHRONOUS_MAX_UNSYNCED {
                        self.step(|w| w.flush());
                    }
                    c
                }
                Err(mpsc::error::TryRecvError::Empty) => {
                    if self.cfg.synchronous && self.unsynced > 0 {
                        self.step(|w| w.flush());
                    }
                    match self.wait_durable(&mut rx) {
                        Some(c) => c,
                        None => match rx.blocking_recv() {
                            Some(c) => c,
                            None => break,
                        },
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            match cmd {
                Cmd::Begin {
                    tli,
                    start,
                    decoder,
                } => {
                    if self.failed {
                        continue;
                    }
                    self.tli = tli;
                    self.next = start;
                    self.received = start;
                    self.held.clear();
                    self.decoder = Some(decoder);
                    // Inside a segment, the sink has it open now (its resumed one), its kept
                    // prefix durable before the sink says so.
                    self.step(|w| w.sink.begin(tli, start));
                    if self.failed {
                        continue;
                    }
                    self.open = start.segment_offset(self.cfg.seg_size) != 0;
                    self.publish(true);
                }
                Cmd::Data { start, data } => {
                    if !self.failed {
                        self.step(|w| w.receive(start, data));
                    }
                }
                Cmd::Flush => {
                    if !self.failed {
                        self.step(|w| w.flush());
                    }
                }
                Cmd::Close(reply) => {
                    if !self.failed {
                        self.step(|w| w.release(None));
                    }
                    if !self.failed {
                        self.step(|w| w.close());
                    }
                    if let Some(r) = reply {
                        let _ = r.send(());
                    }
                }
            }
        }
        // The connection is gone: what is held back was never validated; drop it.
        if !self.failed {
            self.step(|w| w.close());
        }
        if self.failed {
            self.sink.abandon();
        }
    }

    /// Validates received WAL and writes what is valid.
    fn receive(&mut self, start: Lsn, data: Vec<Bytes>) -> Result<(), ReceiveError> {
        if start != self.received {
            return Err(ReceiveError::Internal(format!(
                "WAL data at {start}, expected {}",
                self.received
            )));
        }
        let Some(dec) = self.decoder.as_mut() else {
            return Err(ReceiveError::Internal(
                "WAL data before streaming started".into(),
            ));
        };
        let mut safe = safe_point(dec);
        let mut failure = None;
        let mut received = start.0;
        for chunk in data {
            let mut input: &[u8] = &chunk;
            loop {
                match dec.decode(&mut input) {
                    Ok(Some(_)) => safe = safe_point(dec),
                    Ok(None) => break,
                    Err(e) => {
                        failure = Some(WalDamage::Decode(e));
                        break;
                    }
                }
            }
            if failure.is_none() {
                if dec.page_timeline() > self.tli.0 {
                    failure = Some(WalDamage::Timeline {
                        page: dec.page_timeline(),
                        streaming: self.tli,
                    });
                } else {
                    safe = safe_point(dec);
                }
            }
            received += chunk.len() as u64;
            self.held.push_back(chunk);
            if failure.is_some() {
                // What follows the invalid WAL is never written.
                break;
            }
        }
        self.received = Lsn(received);
        // On a failure, the records before it are still valid: keep them.
        self.release(Some(safe))?;
        match failure {
            Some(why) => self.fail_validation(why),
            None => Ok(()),
        }
    }

    /// Writes the held-back WAL up to `upto` (all of it for `None`).
    fn release(&mut self, upto: Option<Lsn>) -> Result<(), ReceiveError> {
        let upto = upto.unwrap_or(self.received);
        let mut want = upto.0.saturating_sub(self.next.0);
        if want == 0 {
            return Ok(());
        }
        let mut pieces = Vec::with_capacity(self.held.len());
        while want > 0 {
            let Some(front) = self.held.front_mut() else {
                break;
            };
            let piece = if front.len() as u64 <= want {
                match self.held.pop_front() {
                    Some(p) => p,
                    None => break,
                }
            } else {
                front.split_to(want as usize)
            };
            want -= piece.len() as u64;
            pieces.push(piece);
        }
        let at = self.next;
        self.write(at, &pieces)
    }

    /// The received WAL is invalid: make what was written before it durable, keep the
    /// segment partial, and stop (fatally).
    fn fail_validation(&mut self, reason: WalDamage) -> Result<(), ReceiveError> {
        let valid_until = self.next;
        self.held.clear();
        self.close()?;
        self.sink.abandon();
        let e = ReceiveError::InvalidWal {
            reason,
            valid_until,
        };
        tracing::error!("{e}");
        self.failed = true;
        self.progress.send_modify(|p| {
            p.error.put(e);
            p.failed = true;
            p.fatal = true;
        });
        Ok(())
    }

    /// Runs one operation; an error is published and stops all further writing.
    fn step(&mut self, f: impl FnOnce(&mut Writer) -> Result<(), ReceiveError>) {
        if let Err(e) = f(self) {
            tracing::error!("{e}");
            self.failed = true;
            // Drop what the sink has open as it is (a file keeps its .partial name).
            self.sink.abandon();
            self.progress.send_modify(|p| {
                p.fatal |= !e.is_retryable();
                p.failed = true;
                p.error.put(e);
            });
        }
    }

    /// With `--synchronous`, a sink that makes WAL durable after its flush returns (an object
    /// store with `--flush-to remote`): while no command comes, publishes its durable position
    /// as it moves, since the server's commits wait for it. Returns the command that ended
    /// the wait, `None` once all that was written is durable (or on failure).
    fn wait_durable(&mut self, rx: &mut mpsc::Receiver<Cmd>) -> Option<Cmd> {
        while self.cfg.synchronous && !self.failed && self.sink.durable() < self.next {
            match rx.try_recv() {
                Ok(c) => return Some(c),
                Err(mpsc::error::TryRecvError::Disconnected) => return None,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            self.publish(true);
        }
        None
    }

    fn publish(&mut self, notify: bool) {
        // Never more than the sink holds durably, nor more than was written.
        let written = self.next;
        let flushed = self.sink.durable().min(written);
        self.metrics.written_lsn.store(written.0, Ordering::Relaxed);
        self.metrics.flushed_lsn.store(flushed.0, Ordering::Relaxed);
        let notify = notify && flushed != self.notified;
        if notify {
            self.notified = flushed;
        }
        self.progress.send_if_modified(|p| {
            p.written = written;
            p.flushed = flushed;
            notify
        });
    }

    /// Writes `pieces`, back to back from `start`: one sink write per segment.
    fn write(&mut self, start: Lsn, pieces: &[Bytes]) -> Result<(), ReceiveError> {
        if start != self.next {
            return Err(ReceiveError::Internal(format!(
                "WAL data at {start}, expected {}",
                self.next
            )));
        }
        let seg_size = self.cfg.seg_size;
        let (mut i, mut off) = (0, 0);
        let mut slices: Vec<&[u8]> = Vec::with_capacity(pieces.len());
        while i < pieces.len() {
            let segno = self.next.segment(seg_size);
            if !self.open {
                self.sink.begin_segment(self.tli, segno)?;
                self.open = true;
            }
            // The pieces (or parts of them) that fit in the segment.
            let room = seg_size.bytes() - self.next.segment_offset(seg_size);
            let mut n = 0u64;
            slices.clear();
            while i < pieces.len() && n < room {
                let rest = &pieces[i][off..];
                let take = (rest.len() as u64).min(room - n) as usize;
                slices.push(&rest[..take]);
                n += take as u64;
                if take == rest.len() {
                    i += 1;
                    off = 0;
                } else {
                    off += take;
                }
            }
            self.sink.write(self.next, &slices)?;
            self.unsynced += n;
            self.next = Lsn(self.next.0 + n);
            if n == room {
                self.complete()?;
            }
        }
        self.publish(false);
        Ok(())
    }

    /// The open segment is full: the sink finishes it.
    fn complete(&mut self) -> Result<(), ReceiveError> {
        self.open = false;
        self.sink.finish_segment()?;
        self.unsynced = 0;
        self.metrics
            .segments_written
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            "finished segment at {} (timeline {})",
            self.next,
            self.tli.0
        );
        self.publish(true);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ReceiveError> {
        self.unsynced = 0;
        self.sink.flush()?;
        self.publish(true);
        Ok(())
    }

    /// Closes the open segment (it is not complete).
    fn close(&mut self) -> Result<(), ReceiveError> {
        self.open = false;
        self.sink.close()?;
        self.publish(true);
        Ok(())
    }
}
