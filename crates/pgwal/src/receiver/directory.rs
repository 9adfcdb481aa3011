//! The directory sink: pg_receivewal's archive directory, as a [`WalSink`].
//!
//! Segment files named as PostgreSQL names them, the one being written `X.partial`
//! (uncompressed ones pre-padded to the full segment size), compression, completed segments
//! fsynced, renamed with `RENAME_NOREPLACE` and the directory fsynced, history files, a lock
//! file. Where to start is pg_receivewal's directory scan (`scan.rs`) plus the validation of a
//! `.partial` with the decoder. What it reports durable is always fsynced in this process: a
//! resumed `.partial`'s prefix is copied into a new file and made durable at
//! [`WalSink::begin`] before the durable position reaches it.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::lsn::Lsn;
use crate::segment::{Compression, SegNo, TimelineId, WalFileName, WalSegSize};
use crate::storage::codec::{decompress_prefix, read_head};
use crate::storage::file::{
    is_symlink_refused, open_read_nofollow, open_write, preallocate, FILE_MODE,
};
use crate::storage::local::{
    compare_existing, fsync_dir, fsync_file, rename_noreplace_or_link, write_durably, Existing,
    TempFile,
};
use crate::wal::{DecoderConfig, LONG_HEADER_SIZE};

use super::compress::{CompressSpec, Sink};
use super::lock::DirectoryLock;
use super::metrics::{add_f64, Metrics};
use super::scan::{self, Found, Resume};
use super::sink::{SinkStart, WalSink};
use super::{ReceiveError, ReceiverOptions};

type Result<T> = std::result::Result<T, ReceiveError>;

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

struct SegFile {
    tli: TimelineId,
    partial_name: String,
    final_name: String,
    sink: Sink,
    /// Bytes of the segment written so far.
    pos: u64,
    /// Compressed bytes already counted in the metrics.
    counted: u64,
    dirty: bool,
}

/// pg_receivewal's archive directory as a [`WalSink`]; what [`Receiver::new`](super::Receiver::new)
/// writes to. Holds the directory's lock file while it lives.
pub struct DirectorySink {
    dir: PathBuf,
    compress: CompressSpec,
    /// fsync (off with `--no-sync`).
    sync: bool,
    metrics: Arc<Metrics>,
    _lock: DirectoryLock,
    seg_size: WalSegSize,
    cur: Option<SegFile>,
    /// The partial segment the start position resumes.
    resume: Option<Box<Resume>>,
    /// End of the WAL written.
    next: Lsn,
    durable: Lsn,
}

impl std::fmt::Debug for DirectorySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectorySink")
            .field("dir", &self.dir)
            .field("compress", &self.compress)
            .field("next", &self.next)
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

impl DirectorySink {
    /// The directory `opts.directory`, written with `opts.compress` and (unless `opts.sync` is
    /// off) fsynced; takes its lock file (a second receiver on it is refused). Counts bytes
    /// written and fsyncs in `metrics`.
    pub fn open(opts: &ReceiverOptions, metrics: Arc<Metrics>) -> Result<DirectorySink> {
        let dir = &opts.directory;
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(ReceiveError::NotADirectory(dir.clone())),
            Err(source) => {
                return Err(ReceiveError::UnusableDirectory {
                    op: "open directory",
                    path: dir.clone(),
                    source,
                })
            }
        }
        let lock = DirectoryLock::acquire(dir).map_err(ReceiveError::Lock)?;
        Ok(DirectorySink {
            dir: dir.clone(),
            compress: opts.compress,
            sync: opts.sync,
            metrics,
            _lock: lock,
            seg_size: WalSegSize::DEFAULT,
            cur: None,
            resume: None,
            next: Lsn(0),
            durable: Lsn(0),
        })
    }

    fn names(&self, tli: TimelineId, segno: SegNo) -> (String, String) {
        let base = WalFileName::segment(tli, segno, self.seg_size)
            .with(self.compress.method, false)
            .to_string();
        (format!("{base}.partial"), base)
    }

    fn fsync(&self, f: &File) -> io::Result<()> {
        if !self.sync {
            return Ok(());
        }
        let t = Instant::now();
        let r = f.sync_data();
        self.metrics.fsyncs.fetch_add(1, Ordering::Relaxed);
        add_f64(&self.metrics.fsync_seconds, t.elapsed().as_secs_f64());
        r
    }

    fn fsync_dir(&self) -> Result<()> {
        if self.sync {
            fsync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Opens segment `segno` of `tli` at `offset` (a resumed one: from `resume`).
    fn open_segment(
        &mut self,
        tli: TimelineId,
        segno: SegNo,
        offset: u64,
        resume: Option<&Resume>,
    ) -> Result<()> {
        let (partial_name, final_name) = self.names(tli, segno);
        let path = self.dir.join(&partial_name);
        let compressed = self.compress.method != Compression::None;
        let sink = if offset == 0 {
            let f = open_write(&path, true, true).map_err(|e| ctx(e, "create file", &path))?;
            let sink = if compressed {
                Sink::compressed(&self.compress, f)
                    .map_err(|e| ctx(e, "start compressing", &path))?
            } else {
                // Pre-pad, as pg_receivewal does, so a full disk shows up now (and then
                // leave no empty file behind).
                if let Err(e) = preallocate(&f, self.seg_size.bytes()) {
                    drop(f);
                    let _ = fs::remove_file(&path);
                    return Err(ctx(e, "pad file", &path));
                }
                self.fsync(&f).map_err(|e| sync_failed(e, "file", &path))?;
                Sink::Plain(f)
            };
            self.fsync_dir()?;
            tracing::debug!("writing segment \"{partial_name}\"");
            sink
        } else {
            let Some(r) = resume else {
                return Err(ReceiveError::Internal(format!(
                    "WAL data at offset {offset:#x} of segment \"{final_name}\" with no file open"
                )));
            };
            self.reopen(r, &path, offset)?
        };
        let counted = sink.compressed_bytes();
        self.cur = Some(SegFile {
            tli,
            partial_name,
            final_name,
            sink,
            pos: offset,
            counted,
            dirty: false,
        });
        Ok(())
    }

    /// Continues a validated partial file: its valid prefix is written into a new file
    /// (under a temporary name, [`TempFile`]), fsynced, renamed over it and the directory
    /// fsynced. Never in place: the old file's pages may read back from the page cache without
    /// being on any disk (a killed receiver that had not fsynced them, or a failed writeback),
    /// and an fsync of it now would not write them again.
    fn reopen(&mut self, r: &Resume, path: &Path, offset: u64) -> Result<Sink> {
        let compressed = self.compress.method != Compression::None;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (temp, f) = TempFile::create(&self.dir, &name, FILE_MODE)?;
        let tmp = temp.path().to_owned();
        let prefix = &r.data[..offset as usize];
        let mut sink = if compressed {
            Sink::compressed(&self.compress, f).map_err(|e| ctx(e, "start compressing", &tmp))?
        } else {
            preallocate(&f, self.seg_size.bytes()).map_err(|e| ctx(e, "pad file", &tmp))?;
            Sink::Plain(f)
        };
        sink.write(0, prefix)
            .map_err(|e| ctx(e, "write to file", &tmp))?;
        sink.flush().map_err(|e| ctx(e, "write to file", &tmp))?;
        self.fsync(sink.file())
            .map_err(|e| sync_failed(e, "file", &tmp))?;
        temp.persist(path)?;
        if r.source != path {
            let _ = fs::remove_file(&r.source);
        }
        self.fsync_dir()?;
        let n = if compressed {
            sink.compressed_bytes()
        } else {
            offset
        };
        self.metrics.bytes_written.fetch_add(n, Ordering::Relaxed);
        Ok(sink)
    }

    /// The complete segment `from` could not be renamed to `to`, which exists: identical WAL
    /// (after decompression) is success, and `from` goes; different WAL is an error that
    /// keeps both files.
    fn keep_existing(&self, from: &Path, to: &Path) -> Result<()> {
        let raw = fs::read(from).map_err(|e| ctx(e, "read file", from))?;
        let (ours, _) = decompress_prefix(self.compress.method, &raw, self.seg_size.bytes());
        if compare_existing(to, &ours)? != Existing::Same {
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

    /// `dir/name` gets `content`, durably, from a new file ([`write_durably`]: temporary file,
    /// fsync, rename, fsync of the directory).
    fn replace_durably(&self, name: &str, content: &[u8]) -> Result<()> {
        let write = |f: File| {
            use std::os::unix::fs::FileExt;
            f.write_all_at(content, 0)?;
            Ok(f)
        };
        Ok(write_durably(&self.dir, name, FILE_MODE, self.sync, write)?)
    }

    /// A partial segment that turned out complete: its WAL is written into a new file under
    /// the final name (re-compressed for a compressed one, whose stream was cut short),
    /// fsynced, renamed into place, the `.partial` removed and the directory fsynced. Never a
    /// rename of the old file: its pages may be in the page cache only.
    fn finalize_partial(&self, r: &Resume) -> Result<()> {
        let name = WalFileName::segment(r.tli, r.segno, self.seg_size)
            .with(r.source_compression, false)
            .to_string();
        let spec = CompressSpec {
            method: r.source_compression,
            ..CompressSpec::NONE
        };
        let data = &r.data[..self.seg_size.bytes() as usize];
        let write = |f: File| -> io::Result<File> {
            let mut sink = Sink::compressed(&spec, f)?;
            sink.write(0, data)?;
            sink.finish()
        };
        write_durably(&self.dir, &name, FILE_MODE, self.sync, write)?;
        if r.source != self.dir.join(&name) {
            fs::remove_file(&r.source).map_err(|source| ReceiveError::Io {
                op: "remove file",
                path: r.source.clone(),
                source,
            })?;
            self.fsync_dir()?;
        }
        Ok(())
    }

    fn history_name(tli: TimelineId) -> String {
        format!("{:08X}.history", tli.0)
    }
}

impl WalSink for DirectorySink {
    /// pg_receivewal's scan (`FindStreamingStart`): the newest complete segment (made durable
    /// in this process first) or `.partial` segment (validated with the decoder; resumed at
    /// its valid end, or completed when whole), after removing what a crash between two
    /// renames left.
    fn start_position(&mut self, cfg: &DecoderConfig) -> Result<SinkStart> {
        // Whatever a previous connection left open is dropped as it is (it keeps its name).
        self.cur = None;
        self.resume = None;
        self.seg_size = cfg.seg_size;
        self.next = Lsn(0);
        self.durable = Lsn(0);
        let dir = self.dir.clone();
        let seg_size = cfg.seg_size;
        let io = |source: io::Error| {
            let (op, path) = ("read directory", dir.clone());
            if is_symlink_refused(&source) {
                ReceiveError::UnusableDirectory { op, path, source }
            } else {
                ReceiveError::Io { op, path, source }
            }
        };
        scan::remove_leftovers(&dir, *cfg, self.sync)?;
        match scan::find_start(&dir, seg_size).map_err(io)? {
            Some(Found::Complete(c)) => {
                // Streaming continues after this segment and reports its end flushed: make it
                // and its name durable in this process first (a killed receiver may have
                // renamed it without fsyncing the directory).
                if self.sync {
                    fsync_file(&c.path)?;
                    fsync_dir(&dir)?;
                }
                if let (Ok(head), Some(server)) =
                    (read_head(&c.path, LONG_HEADER_SIZE), cfg.system_id)
                {
                    if let Some(s) = scan::head_system_id(&head) {
                        if s != server {
                            return Err(ReceiveError::ForeignWal {
                                path: c.path.clone(),
                                found: s,
                                server,
                            });
                        }
                    }
                }
                let end = c.segno.next().start_lsn(seg_size).unwrap_or(Lsn(0));
                Ok(SinkStart::After { tli: c.tli, end })
            }
            Some(Found::Partial(c)) => {
                let r = match scan::validate_partial(&c, *cfg) {
                    Ok(r) => r?,
                    Err(source) => {
                        return Err(ReceiveError::Io {
                            op: "read file",
                            path: c.path.clone(),
                            source,
                        })
                    }
                };
                let seg_start = c.segno.start_lsn(seg_size).unwrap_or(Lsn(0));
                let start = Lsn(seg_start.0 + r.offset);
                if r.offset == seg_size.bytes() {
                    tracing::info!("\"{}\" is complete; renaming it", c.name);
                    self.finalize_partial(&r)
                        .map_err(|e| ReceiveError::CompletePartial {
                            path: c.path.clone(),
                            source: Box::new(e),
                        })?;
                    return Ok(SinkStart::After {
                        tli: c.tli,
                        end: start,
                    });
                }
                if r.offset == 0 {
                    tracing::info!(
                        "\"{}\" holds no valid WAL; streaming its segment again",
                        c.name
                    );
                    // The segment goes into a new file named for this run's compression: an
                    // old file under another name would stay beside it once it is complete.
                    fs::remove_file(&c.path).map_err(|source| ReceiveError::Io {
                        op: "remove file",
                        path: c.path.clone(),
                        source,
                    })?;
                    self.fsync_dir()?;
                    return Ok(SinkStart::After {
                        tli: c.tli,
                        end: start,
                    });
                }
                tracing::info!(
                    "resuming \"{}\" at {} (its valid end; {} bytes kept)",
                    c.name,
                    start,
                    r.offset
                );
                let prefix = r.data[..r.offset as usize].to_vec();
                let (tli, segno) = (r.tli, r.segno);
                self.resume = Some(Box::new(r));
                Ok(SinkStart::Resume { tli, segno, prefix })
            }
            None => Ok(SinkStart::Empty),
        }
    }

    fn read_history(&mut self, tli: TimelineId) -> Result<Option<Vec<u8>>> {
        let name = Self::history_name(tli);
        match fs::read(self.dir.join(&name)) {
            Ok(old) => Ok(Some(old)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ReceiveError::Io {
                op: "read timeline history file",
                path: name.into(),
                source,
            }),
        }
    }

    /// Writes `TTTTTTTT.history` from a fresh copy (also when it exists with the same content:
    /// a killed receiver may have left it in the page cache only).
    fn write_history(&mut self, tli: TimelineId, content: &[u8]) -> Result<()> {
        let name = Self::history_name(tli);
        self.replace_durably(&name, content)
            .map_err(|e| ReceiveError::WriteHistory {
                name,
                source: Box::new(e),
            })
    }

    fn begin(&mut self, tli: TimelineId, start: Lsn) -> Result<()> {
        if self.cur.as_ref().is_some_and(|c| {
            c.tli != tli || self.next.segment(self.seg_size) != start.segment(self.seg_size)
        }) {
            self.close()?;
        }
        let offset = start.segment_offset(self.seg_size);
        let segno = start.segment(self.seg_size);
        let resume = self.resume.take();
        self.next = start;
        if offset != 0 && self.cur.is_none() {
            // The kept prefix of a `.partial` may be in the page cache only (a killed
            // receiver, or a failed writeback): copy it into a new file and make that durable
            // before `start` is ever reported flushed.
            let r = resume.filter(|r| r.tli == tli && r.segno == segno && r.offset == offset);
            self.open_segment(tli, segno, offset, r.as_deref())?;
        }
        // Everything before `start` is durable now: the copy above, or complete segments
        // (made durable at the start position).
        self.durable = self.durable.max(start);
        Ok(())
    }

    fn begin_segment(&mut self, tli: TimelineId, segno: SegNo) -> Result<()> {
        self.open_segment(tli, segno, 0, None)
    }

    fn write(&mut self, start: Lsn, data: &[&[u8]]) -> Result<()> {
        let Some(cur) = self.cur.as_mut() else {
            return Err(ReceiveError::Internal(format!(
                "WAL data at {start} with no segment open"
            )));
        };
        let n: u64 = data.iter().map(|d| d.len() as u64).sum();
        if let Err(e) = cur.sink.write_vectored(cur.pos, data) {
            return Err(ctx(e, "write to file", &self.dir.join(&cur.partial_name)));
        }
        cur.pos += n;
        cur.dirty = true;
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
        self.next = Lsn(start.0 + n);
        Ok(())
    }

    /// Finishes the stream, fsyncs, renames `X.partial` to `X` without replacing (a file
    /// another writer put there is compared: the same WAL is kept, other WAL is an error),
    /// fsyncs the directory.
    fn finish_segment(&mut self) -> Result<()> {
        let Some(cur) = self.cur.take() else {
            return Ok(());
        };
        let from = self.dir.join(&cur.partial_name);
        let to = self.dir.join(&cur.final_name);
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
        match rename_noreplace_or_link(&from, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Another writer (`archive push` into the same directory) was first.
                self.keep_existing(&from, &to)?;
            }
            Err(e) => return Err(ctx(e, "rename file", &from)),
        }
        self.fsync_dir()?;
        self.durable = self.next;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let mut synced = None;
        if let Some(cur) = self.cur.as_mut() {
            if cur.dirty {
                let path = self.dir.join(&cur.partial_name);
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
        self.durable = self.next;
        Ok(())
    }

    /// Closes the current segment without renaming it (it is not complete), durably.
    fn close(&mut self) -> Result<()> {
        if let Some(cur) = self.cur.take() {
            let path = self.dir.join(&cur.partial_name);
            let file = cur
                .sink
                .finish()
                .map_err(|e| ctx(e, "write to file", &path))?;
            self.fsync(&file)
                .map_err(|e| sync_failed(e, "file", &path))?;
            drop(file);
            self.fsync_dir()?;
            tracing::info!(
                "not renaming \"{}\", segment is not complete",
                cur.partial_name
            );
        }
        self.durable = self.next;
        Ok(())
    }

    /// Drops the open file as it is (it keeps its `.partial` name; nothing more is fsynced).
    fn abandon(&mut self) {
        self.cur = None;
    }

    fn durable(&self) -> Lsn {
        self.durable
    }
}
