//! The writer thread: segment files, compression and fsync, off the receiving task.
//!
//! The receiving task sends the WAL it receives through a bounded queue; the writer validates
//! it with the decoder (holding back the tail of a record until the record is complete and
//! its CRC checks), puts what is valid in `X.partial` files (pre-padded when uncompressed), compresses, fsyncs when asked (and after
//! every drained batch with `--synchronous`), renames a segment durably once it is complete,
//! and publishes the written and durable ("flushed") positions through a watch channel.

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot, watch};

use crate::lsn::Lsn;
use crate::segment::{Compression, SegNo, TimelineId, WalFileName, WalSegSize};
use crate::wal::WalDecoder;

use super::compress::{CompressSpec, Sink};
use super::error::{ReceiveError, WalDamage};
use super::fsutil::{fsync_dir, open_read_nofollow, open_write, preallocate, rename_noreplace};
use super::metrics::{add_f64, Metrics};
use super::scan::{read_head, safe_point, Resume};

/// A request to the writer.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// Streaming (re)starts at `start` on `tli`; `resume` describes the partial file to
    /// continue if `start` is inside a segment; `decoder` validates the WAL from `start` on.
    Begin {
        tli: TimelineId,
        start: Lsn,
        resume: Option<Box<Resume>>,
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
    /// End of the WAL that is durable (or, with `--no-sync`, closed or "flushed" without fsync).
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
    pub(crate) dir: PathBuf,
    pub(crate) seg_size: WalSegSize,
    pub(crate) compress: CompressSpec,
    /// fsync (off with `--no-sync`).
    pub(crate) sync: bool,
    /// fsync and publish after every batch (`--synchronous`).
    pub(crate) synchronous: bool,
}

struct SegFile {
    tli: TimelineId,
    segno: SegNo,
    partial_name: String,
    final_name: String,
    sink: Sink,
    /// Bytes of the segment written so far.
    pos: u64,
    /// Compressed bytes already counted in the metrics.
    counted: u64,
    dirty: bool,
}

struct Writer {
    cfg: WriterConfig,
    metrics: Arc<Metrics>,
    progress: watch::Sender<Progress>,
    cur: Option<SegFile>,
    tli: TimelineId,
    /// Next expected LSN.
    next: Lsn,
    resume: Option<Box<Resume>>,
    flushed: Lsn,
    failed: bool,
    /// Bytes written since the last flush.
    unsynced: u64,
    /// Validates the incoming WAL.
    decoder: Option<Box<WalDecoder>>,
    /// Received WAL not yet written (from `next`): the part of a record still incomplete.
    held: VecDeque<Bytes>,
    /// End of the WAL received.
    received: Lsn,
}

/// With `--synchronous`, fsync after this many unflushed bytes even if more WAL is queued.
const SYNCHRONOUS_MAX_UNSYNCED: u64 = 4 << 20;

/// A batch of WAL sent to the writer ends once it holds this many bytes (the server sends
/// messages of at most 128 kB, so a batch stays below 1.125 MB)...
pub(crate) const BATCH_BYTES: usize = 1 << 20;
/// ...or this many messages.
pub(crate) const BATCH_MESSAGES: usize = 256;

/// Starts the writer thread. Dropping the sender makes it close the current file and exit.
pub(crate) fn spawn(
    cfg: WriterConfig,
    metrics: Arc<Metrics>,
    queue: usize,
) -> io::Result<(
    mpsc::Sender<Cmd>,
    watch::Receiver<Progress>,
    std::thread::JoinHandle<()>,
)> {
    let (tx, rx) = mpsc::channel(queue.max(1));
    let (ptx, prx) = watch::channel(Progress::default());
    let handle = std::thread::Builder::new()
        .name("pgwal-writer".into())
        .spawn(move || {
            let mut w = Writer {
                cfg,
                metrics,
                progress: ptx,
                cur: None,
                tli: TimelineId(1),
                next: Lsn(0),
                resume: None,
                flushed: Lsn(0),
                failed: false,
                unsynced: 0,
                decoder: None,
                held: VecDeque::new(),
                received: Lsn(0),
            };
            w.run(rx);
        })?;
    Ok((tx, prx, handle))
}

fn ctx(source: io::Error, op: &'static str, path: &Path) -> ReceiveError {
    ReceiveError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// A failed fsync of the file or directory `path` (fatal, see [`ReceiveError::Sync`]).
pub(crate) fn sync_failed(source: io::Error, what: &'static str, path: &Path) -> ReceiveError {
    ReceiveError::Sync {
        what,
        path: path.to_owned(),
        source,
    }
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
                    if self.cfg.synchronous && self.cur.as_ref().is_some_and(|c| c.dirty) {
                        self.step(|w| w.flush());
                    }
                    match rx.blocking_recv() {
                        Some(c) => c,
                        None => break,
                    }
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
            };
            match cmd {
                Cmd::Begin {
                    tli,
                    start,
                    resume,
                    decoder,
                } => {
                    if self.failed {
                        continue;
                    }
                    if self.cur.as_ref().is_some_and(|c| {
                        c.tli != tli || c.segno != start.segment(self.cfg.seg_size)
                    }) {
                        self.step(|w| w.close());
                    }
                    self.tli = tli;
                    self.next = start;
                    self.received = start;
                    self.held.clear();
                    self.decoder = Some(decoder);
                    self.resume = resume;
                    if self.resume.is_some() {
                        // The kept prefix of a `.partial` may be in the page cache only (a
                        // killed receiver, or a failed writeback): copy it into a new file
                        // and make that durable before `start` is ever reported flushed.
                        self.step(|w| w.open());
                        if self.failed {
                            continue;
                        }
                    }
                    // Everything before `start` is durable now: the copy above, or complete
                    // segments (made durable by the session before it began).
                    self.flushed = self.flushed.max(start);
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
        let e = ReceiveError::InvalidWal {
            reason,
            valid_until,
        };
        tracing::error!("{e}");
        self.failed = true;
        self.cur = None;
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
            // Drop the file as it is: it keeps its .partial name.
            self.cur = None;
            self.progress.send_modify(|p| {
                p.fatal |= !e.is_retryable();
                p.failed = true;
                p.error.put(e);
            });
        }
    }

    fn publish(&self, notify: bool) {
        let (written, flushed) = (self.next, self.flushed);
        self.metrics.written_lsn.store(written.0, Ordering::Relaxed);
        self.metrics.flushed_lsn.store(flushed.0, Ordering::Relaxed);
        self.progress.send_if_modified(|p| {
            let changed = p.flushed != flushed;
            p.written = written;
            p.flushed = flushed;
            changed && notify
        });
    }

    fn names(&self, tli: TimelineId, segno: SegNo) -> (String, String) {
        let base = WalFileName::segment(tli, segno, self.cfg.seg_size)
            .with(self.cfg.compress.method, false)
            .to_string();
        (format!("{base}.partial"), base)
    }

    fn fsync(&self, f: &File) -> io::Result<()> {
        if !self.cfg.sync {
            return Ok(());
        }
        let t = Instant::now();
        let r = f.sync_data();
        self.metrics.fsyncs.fetch_add(1, Ordering::Relaxed);
        add_f64(&self.metrics.fsync_seconds, t.elapsed().as_secs_f64());
        r
    }

    fn fsync_dir(&self) -> io::Result<()> {
        if self.cfg.sync {
            fsync_dir(&self.cfg.dir)
        } else {
            Ok(())
        }
    }

    /// Opens the segment that `self.next` is in.
    fn open(&mut self) -> Result<(), ReceiveError> {
        let seg_size = self.cfg.seg_size;
        let segno = self.next.segment(seg_size);
        let offset = self.next.segment_offset(seg_size);
        let (partial_name, final_name) = self.names(self.tli, segno);
        let path = self.cfg.dir.join(&partial_name);
        let compressed = self.cfg.compress.method != Compression::None;
        let resume = self.resume.take();
        let sink = if offset == 0 {
            let f = open_write(&path, true, true).map_err(|e| ctx(e, "create file", &path))?;
            let sink = if compressed {
                Sink::compressed(&self.cfg.compress, f)
                    .map_err(|e| ctx(e, "start compressing", &path))?
            } else {
                // Pre-pad, as pg_receivewal does, so a full disk shows up now (and then
                // leave no empty file behind).
                if let Err(e) = preallocate(&f, seg_size.bytes()) {
                    drop(f);
                    let _ = fs::remove_file(&path);
                    return Err(ctx(e, "pad file", &path));
                }
                self.fsync(&f).map_err(|e| sync_failed(e, "file", &path))?;
                Sink::Plain(f)
            };
            self.fsync_dir()
                .map_err(|e| sync_failed(e, "directory", &self.cfg.dir))?;
            sink
        } else {
            let r = match resume {
                Some(r) if r.tli == self.tli && r.segno == segno && r.offset == offset => r,
                _ => {
                    return Err(ReceiveError::Internal(format!(
                        "WAL data at {} (offset {offset:#x} of segment \"{final_name}\") with no file open",
                        self.next
                    )))
                }
            };
            self.reopen(&r, &path, offset)?
        };
        if offset == 0 {
            tracing::debug!("writing segment \"{partial_name}\"");
        }
        let counted = sink.compressed_bytes();
        self.cur = Some(SegFile {
            tli: self.tli,
            segno,
            partial_name,
            final_name,
            sink,
            pos: offset,
            counted,
            dirty: false,
        });
        Ok(())
    }

    /// Continues a validated partial file: its valid prefix is written into a new file,
    /// fsynced, renamed over it and the directory fsynced. Never in place: the old file's
    /// pages may read back from the page cache without being on any disk (a killed receiver
    /// that had not fsynced them, or a failed writeback), and an fsync of it now would not
    /// write them again.
    fn reopen(&mut self, r: &Resume, path: &Path, offset: u64) -> Result<Sink, ReceiveError> {
        let seg_size = self.cfg.seg_size.bytes();
        let compressed = self.cfg.compress.method != Compression::None;
        let tmp = path.with_file_name(format!(
            "{}.tmp",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let f = open_write(&tmp, true, true).map_err(|e| ctx(e, "create file", &tmp))?;
        let prefix = &r.data[..offset as usize];
        let mut sink = if compressed {
            Sink::compressed(&self.cfg.compress, f)
                .map_err(|e| ctx(e, "start compressing", &tmp))?
        } else {
            preallocate(&f, seg_size).map_err(|e| ctx(e, "pad file", &tmp))?;
            Sink::Plain(f)
        };
        sink.write(0, prefix)
            .map_err(|e| ctx(e, "write to file", &tmp))?;
        sink.flush().map_err(|e| ctx(e, "write to file", &tmp))?;
        self.fsync(sink.file())
            .map_err(|e| sync_failed(e, "file", &tmp))?;
        fs::rename(&tmp, path).map_err(|e| ctx(e, "rename file", &tmp))?;
        if r.source != path {
            let _ = fs::remove_file(&r.source);
        }
        self.fsync_dir()
            .map_err(|e| sync_failed(e, "directory", &self.cfg.dir))?;
        let n = if compressed {
            sink.compressed_bytes()
        } else {
            offset
        };
        self.metrics.bytes_written.fetch_add(n, Ordering::Relaxed);
        Ok(sink)
    }

    /// Writes `pieces`, back to back from `start`: one vectored write per segment.
    fn write(&mut self, start: Lsn, pieces: &[Bytes]) -> Result<(), ReceiveError> {
        if start != self.next {
            return Err(ReceiveError::Internal(format!(
                "WAL data at {start}, expected {}",
                self.next
            )));
        }
        let seg_size = self.cfg.seg_size.bytes();
        let (mut i, mut off) = (0, 0);
        let mut slices: Vec<&[u8]> = Vec::with_capacity(pieces.len());
        while i < pieces.len() {
            if self.cur.is_none() {
                self.open()?;
            }
            let Some(cur) = self.cur.as_mut() else { break };
            // The pieces (or parts of them) that fit in the segment.
            let room = seg_size - cur.pos;
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
            if let Err(e) = cur.sink.write_vectored(cur.pos, &slices) {
                return Err(ctx(
                    e,
                    "write to file",
                    &self.cfg.dir.join(&cur.partial_name),
                ));
            }
            cur.pos += n;
            cur.dirty = true;
            self.unsynced += n;
            let counted = match cur.sink {
                Sink::Plain(_) => n,
                _ => {
                    let c = cur.sink.compressed_bytes();
                    let d = c - cur.counted;
                    cur.counted = c;
                    d
                }
            };
            self.metrics
                .bytes_written
                .fetch_add(counted, Ordering::Relaxed);
            self.next = Lsn(self.next.0 + n);
            if cur.pos == seg_size {
                self.complete()?;
            }
        }
        self.publish(false);
        Ok(())
    }

    /// The current segment is full: finish it, fsync, rename, fsync the directory.
    fn complete(&mut self) -> Result<(), ReceiveError> {
        let Some(cur) = self.cur.take() else {
            return Ok(());
        };
        let dir = self.cfg.dir.clone();
        let from = dir.join(&cur.partial_name);
        let to = dir.join(&cur.final_name);
        let compressed = !matches!(cur.sink, Sink::Plain(_));
        let file = cur
            .sink
            .finish()
            .map_err(|e| ctx(e, "write to file", &from))?;
        if compressed {
            let after = file.metadata().map_or(cur.counted, |m| m.len());
            self.metrics
                .bytes_written
                .fetch_add(after.saturating_sub(cur.counted), Ordering::Relaxed);
        }
        self.fsync(&file)
            .map_err(|e| sync_failed(e, "file", &from))?;
        drop(file);
        match rename_noreplace(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Another writer (`archive push` into the same directory) was first.
                self.keep_existing(&from, &to)?;
            }
            Err(e) => return Err(ctx(e, "rename file", &from)),
        }
        self.fsync_dir()
            .map_err(|e| sync_failed(e, "directory", &dir))?;
        self.flushed = self.next;
        self.unsynced = 0;
        self.metrics
            .segments_written
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!("finished segment at {} (timeline {})", self.next, cur.tli.0);
        self.publish(true);
        Ok(())
    }

    /// The complete segment `from` could not be renamed to `to`, which exists: identical WAL
    /// (after decompression) is success, and `from` goes; different WAL is an error that
    /// keeps both files.
    fn keep_existing(&self, from: &Path, to: &Path) -> Result<(), ReceiveError> {
        let method = self.cfg.compress.method;
        let want = self.cfg.seg_size.bytes() as usize;
        let ours = read_head(from, method, want).map_err(|e| ctx(e, "read file", from))?;
        let theirs = read_head(to, method, want).map_err(|e| ctx(e, "read file", to))?;
        if ours != theirs {
            return Err(ReceiveError::SegmentConflict {
                existing: to.to_owned(),
                received: from.to_owned(),
            });
        }
        // Report it flushed only once this process has made it durable too.
        let f = open_read_nofollow(to).map_err(|e| ctx(e, "open file", to))?;
        self.fsync(&f).map_err(|e| sync_failed(e, "file", to))?;
        fs::remove_file(from).map_err(|e| ctx(e, "remove file", from))?;
        tracing::info!(
            "segment file \"{}\" already exists with the same WAL; removed \"{}\"",
            to.display(),
            from.display()
        );
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ReceiveError> {
        self.unsynced = 0;
        let mut synced = None;
        if let Some(cur) = self.cur.as_mut() {
            if cur.dirty {
                let path = self.cfg.dir.join(&cur.partial_name);
                cur.sink
                    .flush()
                    .map_err(|e| ctx(e, "write to file", &path))?;
                let c = cur.sink.compressed_bytes();
                if c > cur.counted {
                    self.metrics
                        .bytes_written
                        .fetch_add(c - cur.counted, Ordering::Relaxed);
                    cur.counted = c;
                }
                cur.dirty = false;
                synced = Some(path);
            }
        }
        if let (Some(path), Some(cur)) = (synced, self.cur.as_ref()) {
            self.fsync(cur.sink.file())
                .map_err(|e| sync_failed(e, "file", &path))?;
        }
        self.flushed = self.next;
        self.publish(true);
        Ok(())
    }

    /// Closes the current segment without renaming it (it is not complete).
    fn close(&mut self) -> Result<(), ReceiveError> {
        if let Some(cur) = self.cur.take() {
            let path = self.cfg.dir.join(&cur.partial_name);
            let file = cur
                .sink
                .finish()
                .map_err(|e| ctx(e, "write to file", &path))?;
            self.fsync(&file)
                .map_err(|e| sync_failed(e, "file", &path))?;
            drop(file);
            self.fsync_dir()
                .map_err(|e| sync_failed(e, "directory", &self.cfg.dir))?;
            tracing::info!(
                "not renaming \"{}\", segment is not complete",
                cur.partial_name
            );
        }
        self.flushed = self.next;
        self.publish(true);
        Ok(())
    }
}
