//! The object-store sink of `pgwal receive -D s3://…|az://…|gs://…`: [`ObjectSink`], a
//! [`DirectorySink`] over a local spool plus an upload thread (the design is on the type).

use std::collections::{HashSet, VecDeque};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::lsn::Lsn;
use crate::segment::{Compression, SegNo, TimelineId, WalFileName, WalSegSize};
use crate::storage::codec::{compress, decompress_prefix, sniff_compression, Encoder};
use crate::storage::file::FILE_MODE;
use crate::storage::local::{describe_difference, write_durably, Existing};
use crate::storage::object::{ObjectArchive, ObjectError, PutNew};
use crate::storage::object_names::{parse_partial_object, partial_object_name};
use crate::wal::DecoderConfig;

use super::compress::CompressSpec;
use super::directory::DirectorySink;
use super::metrics::Metrics;
use super::scan;
use super::sink::{SinkStart, WalSink};
use super::{ReceiveError, ReceiverOptions};

type Result<T> = std::result::Result<T, ReceiveError>;

/// What the flush position reported to the server covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FlushTo {
    /// WAL fsynced in the local spool (`--flush-to local`, the default): a lost host loses
    /// the WAL in its spool that was not uploaded yet.
    #[default]
    Local,
    /// WAL stored in the object store (`--flush-to remote`): a lost host loses at most the
    /// WAL of the last [`ObjectSinkOptions::partial_interval`], and nothing reported flushed.
    Remote,
}

/// How an [`ObjectSink`] works.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ObjectSinkOptions {
    /// The local spool directory (created if missing): `.partial` data and completed segments
    /// not uploaded yet.
    pub spool: PathBuf,
    /// Compression of the uploaded objects (the spool is always uncompressed).
    pub compress: CompressSpec,
    /// fsync in the spool (off with `--no-sync`).
    pub sync: bool,
    /// Completed segments waiting for upload may take this many bytes of the spool; then the
    /// sink stops taking WAL until uploads succeed again. At least two segments are allowed.
    pub max_spool: u64,
    /// What the flush position covers.
    pub flush_to: FlushTo,
    /// With [`FlushTo::Remote`], the segment being written is uploaded this often.
    pub partial_interval: Duration,
    /// First wait after a failed upload (doubled up to [`Self::max_retry_delay`]).
    pub retry_delay: Duration,
    /// Longest wait between upload attempts.
    pub max_retry_delay: Duration,
    /// Segments uploaded at once (at least 1). Each upload holds one segment in memory (its
    /// compressed form when compressing), so memory grows by about a segment per job.
    pub upload_jobs: usize,
}

/// Segments uploaded at once by default (see [`ObjectSinkOptions::upload_jobs`]).
pub const DEFAULT_UPLOAD_JOBS: usize = 2;

impl ObjectSinkOptions {
    /// Defaults for spool directory `spool`: no compression, fsync, a 1 GiB spool, local
    /// durability, partial uploads every 10 s.
    pub fn new(spool: impl Into<PathBuf>) -> ObjectSinkOptions {
        ObjectSinkOptions {
            spool: spool.into(),
            compress: CompressSpec::NONE,
            sync: true,
            max_spool: 1 << 30,
            flush_to: FlushTo::Local,
            partial_interval: Duration::from_secs(10),
            retry_delay: Duration::from_millis(500),
            max_retry_delay: Duration::from_secs(30),
            upload_jobs: DEFAULT_UPLOAD_JOBS,
        }
    }
}

/// Why an upload failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectSinkError {
    /// The store failed (after its own retries); the upload is tried again.
    #[error(transparent)]
    Store(#[from] ObjectError),
    /// The store holds other WAL under the name: both are left as they are and the receiver
    /// stops.
    #[error("archive \"{url}\": object \"{key}\" already exists with other content than \"{spool}\" ({reason}); both are left as they are")]
    Conflict {
        /// The archive.
        url: String,
        /// The existing object's key.
        key: String,
        /// The spool file.
        spool: PathBuf,
        /// How they differ.
        reason: String,
    },
    /// An object was stored but reads back with another size.
    #[error("archive \"{url}\": object \"{key}\" reads back {found} bytes after uploading {sent}")]
    Verify {
        /// The archive.
        url: String,
        /// The key.
        key: String,
        /// Bytes uploaded.
        sent: u64,
        /// Size found.
        found: u64,
    },
    /// A spool file could not be read or written.
    #[error("could not {op} \"{}\": {source}", path.display())]
    Spool {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An object of the store is not usable WAL (at a start from the store).
    #[error("archive \"{url}\": object \"{key}\" {reason}")]
    BadObject {
        /// The archive.
        url: String,
        /// The key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

impl ObjectSinkError {
    /// True when retrying may succeed (the store was unreachable or failed).
    pub fn is_retryable(&self) -> bool {
        match self {
            // A missing bucket, refused credentials or a bad configuration stay so.
            ObjectSinkError::Store(e) => !matches!(
                e,
                ObjectError::Config { .. }
                    | ObjectError::NoCredentials { .. }
                    | ObjectError::NoBucket { .. }
                    | ObjectError::Denied { .. }
            ),
            ObjectSinkError::Spool { .. } => true,
            _ => false,
        }
    }

    fn into_receive(self) -> ReceiveError {
        if self.is_retryable() {
            ReceiveError::sink(self)
        } else {
            ReceiveError::sink_fatal(self)
        }
    }
}

/// One upload, in the order the WAL came.
#[derive(Clone, Debug)]
enum Job {
    /// A completed segment in the spool (or a timeline's last `.partial`, `final_partial`).
    Segment {
        tli: TimelineId,
        segno: SegNo,
        path: PathBuf,
        /// End of the WAL it holds.
        end: Lsn,
        final_partial: bool,
        /// When it was completed in this process (for the upload lag in the log).
        completed: Option<Instant>,
    },
    /// A timeline history file.
    History { tli: TimelineId, content: Vec<u8> },
}

impl Job {
    /// The name it is queued under (spool path or history name).
    fn key(&self) -> String {
        match self {
            Job::Segment { path, .. } => path.display().to_string(),
            Job::History { tli, .. } => format!("{:08X}.history", tli.0),
        }
    }

    fn spool_bytes(&self, seg_size: WalSegSize) -> u64 {
        match self {
            Job::Segment { .. } => seg_size.bytes(),
            Job::History { .. } => 0,
        }
    }
}

/// The segment being written, for partial uploads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Open {
    tli: TimelineId,
    segno: SegNo,
    /// End of the WAL written into its spool file.
    written: Lsn,
}

#[derive(Debug, Default)]
struct State {
    /// Uploads not finished, in WAL order (running ones and finished ones behind an unfinished
    /// one included).
    queue: VecDeque<Job>,
    /// Names (spool paths or history names) queued, so a reconnection does not queue twice.
    queued: HashSet<String>,
    /// Keys of the queued jobs an upload thread works on.
    running: HashSet<String>,
    /// Keys of the queued jobs uploaded and checked while an earlier one was not yet.
    done: HashSet<String>,
    /// A partial segment is being uploaded (no segment upload starts meanwhile).
    partial_running: bool,
    /// When the last partial upload started.
    last_partial: Option<Instant>,
    /// After a failed upload, no upload starts before this.
    retry_at: Option<Instant>,
    /// The wait after the next failed upload (the first one when `None`).
    retry_delay: Option<Duration>,
    seg_size: Option<WalSegSize>,
    /// All WAL up to here is in the store (the stream's positions).
    remote: Lsn,
    open: Option<Open>,
    /// The partial objects stored for a segment: (tli, segno, end, name).
    partials: Vec<(TimelineId, SegNo, Lsn, String)>,
    /// The last upload failed (the store is unreachable or failing).
    failing: bool,
    /// An upload failed for good: the receiver stops.
    fatal: Option<String>,
    /// The sink is going away.
    closing: bool,
    /// Upload the partial segment now, not at the next interval.
    partial_now: bool,
}

impl State {
    /// The first queued job no thread works on and not done yet.
    fn next_job(&self) -> Option<&Job> {
        self.queue.iter().find(|j| {
            let k = j.key();
            !self.running.contains(&k) && !self.done.contains(&k)
        })
    }

    /// Job `key` is uploaded and checked: it leaves the queue with every done job after it
    /// once all jobs before it are done, and only then does [`State::remote`] move, so a
    /// segment stored before an earlier one does not count as in the store.
    fn complete(&mut self, key: String) {
        self.running.remove(&key);
        self.done.insert(key);
        while let Some(front) = self.queue.front() {
            let k = front.key();
            if !self.done.remove(&k) {
                break;
            }
            if let Some(Job::Segment { end, .. }) = self.queue.pop_front() {
                self.queued.remove(&k);
                self.remote = self.remote.max(end);
            }
        }
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    /// Stop waiting for room in the spool (an orderly stop was asked for).
    interrupted: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A handle on a running [`ObjectSink`] from outside the receiver: stop its wait for room in
/// the spool, and after the run, whether an upload failed for good or uploads are left.
#[derive(Clone)]
pub struct ObjectSinkHandle(Arc<Shared>);

impl std::fmt::Debug for ObjectSinkHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ObjectSinkHandle")
    }
}

impl ObjectSinkHandle {
    /// Stops waiting for room in the spool, now and from now on (an orderly stop: the
    /// receiver's last writes go into the spool beyond `max_spool`, to be uploaded at the next
    /// start).
    pub fn interrupt(&self) {
        self.0.interrupted.store(true, Ordering::SeqCst);
        self.0.changed.notify_all();
    }

    /// The error that stopped the uploads for good (other WAL under a segment's name, a
    /// missing bucket, refused credentials), if one did.
    pub fn fatal_error(&self) -> Option<String> {
        self.0.lock().fatal.clone()
    }

    /// Uploads not done yet (segments left in the spool for the next start).
    pub fn pending_uploads(&self) -> usize {
        let st = self.0.lock();
        st.queue.len() - st.done.len()
    }
}

/// Received WAL into an object store (`pgwal receive -D s3://BUCKET/PREFIX`, `az://`, `gs://`)
/// through a local spool.
///
/// WAL is written first into a local spool directory by a [`DirectorySink`] (uncompressed
/// `.partial` files, fsynced as a directory archive is), and every completed segment is then
/// uploaded while streaming goes on, by up to [`ObjectSinkOptions::upload_jobs`] threads, each
/// taking the next segment in WAL order:
///
/// 1. the segment file is read from the spool, compressed as it is read if asked (a thread
///    holds the object's bytes only: one segment at most);
/// 2. if the store already holds the segment under any compression suffix, its content is
///    compared after decompression: the same WAL is success, other WAL is a
///    [`ObjectSinkError::Conflict`] that stops the receiver and leaves both copies;
/// 3. otherwise it is created only if absent ([`ObjectArchive::put_new`]) under the name
///    `archive push` gives it (`000000010000000000000003.zst`), and checked afterwards: the
///    object's size must be the size uploaded;
/// 4. the spool file is removed.
///
/// Uploads may finish out of order; a segment counts as stored (for [`FlushTo::Remote`] and
/// for the spool's room) only once every segment before it is. A failed upload is retried
/// after a backoff that all the threads wait out.
///
/// The spool is bounded ([`ObjectSinkOptions::max_spool`]): when that many bytes of completed
/// segments wait for upload (the store is unreachable, or slower than the server), the sink
/// blocks in [`WalSink::begin_segment`], so the driver stops reading from the server and a
/// replication slot keeps the WAL on the server; it goes on when uploads succeed again. Each
/// failed upload is logged and retried with backoff.
///
/// What it reports durable ([`FlushTo`]): with [`FlushTo::Local`] what is fsynced in the
/// spool, as a directory; with [`FlushTo::Remote`] only WAL that is in the object store:
/// completed segments once uploaded and checked, and the segment being written, which is
/// uploaded every [`ObjectSinkOptions::partial_interval`] under a name of its own that carries
/// its end, `SEGMENT.EEEEEEEEEEEEEEEE[.gz|.lz4|.zst].partial` (`E…`: the end LSN as 16 hex
/// digits, e.g. `000000010000000000000003.00000000030A1B28.partial`). The older partial objects
/// of a segment are removed once a newer one or the complete segment is stored.
///
/// At a start with an empty spool (a new host), the store says where to go on: the newest
/// partial object is downloaded into the spool and resumed (validated with the decoder as
/// any `.partial`), else streaming continues after the newest complete segment. Timeline
/// history files are written into the spool and uploaded (create-only); the last segment of a
/// timeline stays partial, as pg_receivewal leaves it, and is uploaded as
/// `SEGMENT[.zst].partial`.
///
/// ```no_run
/// use std::sync::Arc;
/// use std::time::Duration;
/// use pgwal::conninfo::Config;
/// use pgwal::receiver::{FlushTo, Metrics, ObjectSink, ObjectSinkOptions, Receiver, ReceiverOptions};
/// use pgwal::storage::location::Location;
/// use pgwal::storage::object::{ObjectArchive, ObjectOptions};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let Location::Object(url) = Location::parse("s3://wal/db1")? else { unreachable!() };
/// let store = ObjectArchive::open(&url, &ObjectOptions::default())?;
/// let mut opts = ObjectSinkOptions::new("/var/spool/pgwal");
/// opts.flush_to = FlushTo::Remote;
/// opts.partial_interval = Duration::from_secs(5);
/// let metrics = Arc::new(Metrics::default());
/// let sink = ObjectSink::open(store, opts, metrics.clone())?;
/// let uploads = sink.handle();
/// let mut ropts = ReceiverOptions::new("/var/spool/pgwal");
/// ropts.slot = Some("archiver".parse()?);
/// let config = Config::parse("host=db1 user=rep")?;
/// Receiver::with_sink(config, ropts, sink).with_metrics(metrics).run().await?;
/// // The sink waited for its uploads while the store took them.
/// if let Some(e) = uploads.fatal_error() {
///     eprintln!("upload failed: {e}");
/// }
/// # Ok(()) }
/// ```
pub struct ObjectSink {
    dir: DirectorySink,
    store: Arc<ObjectArchive>,
    opts: ObjectSinkOptions,
    shared: Arc<Shared>,
    uploader: Option<std::thread::JoinHandle<()>>,
    seg_size: WalSegSize,
    tli: TimelineId,
    /// The spool's start was downloaded from the store (its prefix is there already).
    resumed_from_store: bool,
}

impl std::fmt::Debug for ObjectSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectSink")
            .field("store", &self.store.url_str())
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl ObjectSink {
    /// A sink uploading into `store`, spooling in `opts.spool` (created if missing; its lock
    /// file keeps a second receiver out). Starts the upload thread.
    pub fn open(
        store: ObjectArchive,
        opts: ObjectSinkOptions,
        metrics: Arc<Metrics>,
    ) -> Result<ObjectSink> {
        if let Err(source) = fs::create_dir_all(&opts.spool) {
            return Err(ReceiveError::UnusableDirectory {
                op: "create directory",
                path: opts.spool.clone(),
                source,
            });
        }
        let mut dopts = ReceiverOptions::new(&opts.spool);
        dopts.sync = opts.sync;
        dopts.compress = CompressSpec::NONE;
        let dir = DirectorySink::open(&dopts, metrics)?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                last_partial: Some(Instant::now()),
                ..State::default()
            }),
            changed: Condvar::new(),
            interrupted: AtomicBool::new(false),
        });
        let store = Arc::new(store);
        let uploader = {
            let (shared, store, opts) = (shared.clone(), store.clone(), opts.clone());
            std::thread::Builder::new()
                .name("pgwal-upload".into())
                .spawn(move || {
                    let up = Uploader {
                        shared,
                        store,
                        opts,
                    };
                    std::thread::scope(|s| {
                        for _ in 1..up.opts.upload_jobs.max(1) {
                            // Without a thread of its own, this one's uploads still run here.
                            let _ = std::thread::Builder::new()
                                .name("pgwal-upload".into())
                                .spawn_scoped(s, || up.run());
                        }
                        up.run();
                    });
                    // The last reference to the store is dropped here, off any runtime.
                    let t = Instant::now();
                    while Arc::strong_count(&up.store) > 1 && t.elapsed() < Duration::from_secs(30)
                    {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
                .map_err(ReceiveError::WriterThread)?
        };
        Ok(ObjectSink {
            dir,
            store,
            opts,
            shared,
            uploader: Some(uploader),
            seg_size: WalSegSize::DEFAULT,
            tli: TimelineId(1),
            resumed_from_store: false,
        })
    }

    /// A handle on this sink that outlives it (see [`ObjectSinkHandle`]).
    pub fn handle(&self) -> ObjectSinkHandle {
        ObjectSinkHandle(self.shared.clone())
    }

    fn check_fatal(&self) -> Result<()> {
        match &self.shared.lock().fatal {
            Some(e) => Err(ReceiveError::sink_fatal(e.clone())),
            None => Ok(()),
        }
    }

    fn enqueue(&self, job: Job) {
        let key = job.key();
        let mut st = self.shared.lock();
        if st.queued.insert(key) {
            st.queue.push_back(job);
            self.shared.changed.notify_all();
        }
    }

    /// Queues the spool's completed segments, and `.partial` files of timelines before `tli`
    /// (a timeline's last segment), in WAL order.
    fn queue_spool(&self, current: Option<(TimelineId, SegNo)>) -> Result<()> {
        let seg_size = self.seg_size;
        let mut found =
            scan::candidates(&self.opts.spool, seg_size).map_err(|source| ReceiveError::Io {
                op: "read directory",
                path: self.opts.spool.clone(),
                source,
            })?;
        found.reverse(); // oldest first
        for c in found {
            if c.compression != Compression::None {
                continue;
            }
            let final_partial = c.partial;
            if c.partial {
                // The segment being written stays; a partial of an older timeline is final.
                match current {
                    Some((tli, segno)) if c.tli < tli || (c.tli == tli && c.segno < segno) => {}
                    _ => continue,
                }
            }
            let end = if c.partial {
                // The valid end is found when it is read; the segment's start is a safe floor.
                c.segno.start_lsn(seg_size).unwrap_or(Lsn(0))
            } else {
                c.segno.next().start_lsn(seg_size).unwrap_or(Lsn(0))
            };
            self.enqueue(Job::Segment {
                tli: c.tli,
                segno: c.segno,
                path: c.path,
                end,
                final_partial,
                completed: None,
            });
        }
        Ok(())
    }

    /// With an empty spool: where the store's WAL ends. The newest partial object is
    /// downloaded into the spool (and `Ok(None)` says to scan the spool again).
    fn start_from_store(&mut self, cfg: &DecoderConfig) -> Result<Option<SinkStart>> {
        let seg_size = cfg.seg_size;
        let store = &self.store;
        let listing =
            off_runtime(|| store.list("")).map_err(|e| ObjectSinkError::from(e).into_receive())?;
        // (segno, tli, complete?, end, name)
        let mut best: Option<(SegNo, TimelineId, bool, Lsn, String)> = None;
        for e in &listing {
            let cand = if let Some((tli, segno, end, _)) = parse_partial_object(&e.name, seg_size) {
                Some((segno, tli, false, end, e.name.clone()))
            } else {
                match WalFileName::parse(&e.name) {
                    Some(
                        w @ WalFileName::Segment {
                            tli, partial: p, ..
                        },
                    ) => w.segno(seg_size).map(|segno| {
                        let end = if p {
                            segno.start_lsn(seg_size).unwrap_or(Lsn(0))
                        } else {
                            segno.next().start_lsn(seg_size).unwrap_or(Lsn(0))
                        };
                        (segno, tli, !p, end, e.name.clone())
                    }),
                    _ => None,
                }
            };
            if let Some(c) = cand {
                let key = |c: &(SegNo, TimelineId, bool, Lsn, String)| (c.0, c.1, c.2, c.3);
                if best.as_ref().is_none_or(|b| key(&c) > key(b)) {
                    best = Some(c);
                }
            }
        }
        let Some((segno, tli, complete, end, name)) = best else {
            return Ok(None);
        };
        let bad = |reason: String| {
            ReceiveError::sink_fatal(ObjectSinkError::BadObject {
                url: self.store.url_str().to_owned(),
                key: self.store.url().key(&name),
                reason,
            })
        };
        let raw = off_runtime(|| store.get(&name))
            .map_err(|e| ObjectSinkError::from(e).into_receive())?;
        let (data, _) = decompress_prefix(sniff_compression(&raw), &raw, seg_size.bytes());
        match (scan::head_system_id(&data), cfg.system_id) {
            (Some(sysid), Some(server)) if sysid != server => {
                return Err(ReceiveError::ForeignWal {
                    path: PathBuf::from(format!("{}/{}", self.store.url_str(), name)),
                    found: sysid,
                    server,
                });
            }
            (Some(_), _) => {}
            (None, _) => return Err(bad("does not start with a WAL page header".into())),
        }
        if complete {
            tracing::info!(
                "spool is empty; the archive's newest segment is \"{name}\": continuing at {end}"
            );
            return Ok(Some(SinkStart::After { tli, end }));
        }
        // Into the spool as the segment's `.partial`, padded as the directory sink pads it;
        // the directory sink then validates and resumes it.
        let partial = WalFileName::segment(tli, segno, seg_size)
            .with(Compression::None, true)
            .to_string();
        let mut content = data;
        content.resize(seg_size.bytes() as usize, 0);
        write_durably(&self.opts.spool, &partial, FILE_MODE, self.opts.sync, |f| {
            use std::os::unix::fs::FileExt;
            f.write_all_at(&content, 0)?;
            Ok(f)
        })?;
        tracing::info!("spool is empty; resuming from the archive's partial object \"{name}\"");
        self.resumed_from_store = true;
        Ok(None)
    }

    fn set_open(&self, open: Option<Open>) {
        let mut st = self.shared.lock();
        st.open = open;
    }
}

impl WalSink for ObjectSink {
    fn start_position(&mut self, cfg: &DecoderConfig) -> Result<SinkStart> {
        self.check_fatal()?;
        self.seg_size = cfg.seg_size;
        self.resumed_from_store = false;
        {
            let mut st = self.shared.lock();
            st.seg_size = Some(cfg.seg_size);
            st.open = None;
        }
        let mut start = self.dir.start_position(cfg)?;
        if start == SinkStart::Empty {
            if let Some(s) = self.start_from_store(cfg)? {
                return Ok(s);
            }
            if self.resumed_from_store {
                start = self.dir.start_position(cfg)?;
            }
        }
        let current = match &start {
            SinkStart::Resume { tli, segno, .. } => Some((*tli, *segno)),
            _ => None,
        };
        self.queue_spool(current)?;
        Ok(start)
    }

    fn read_history(&mut self, tli: TimelineId) -> Result<Option<Vec<u8>>> {
        if let Some(h) = self.dir.read_history(tli)? {
            return Ok(Some(h));
        }
        let store = &self.store;
        match off_runtime(|| store.get(&format!("{:08X}.history", tli.0))) {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(ObjectSinkError::from(e).into_receive()),
        }
    }

    fn write_history(&mut self, tli: TimelineId, content: &[u8]) -> Result<()> {
        self.dir.write_history(tli, content)?;
        self.enqueue(Job::History {
            tli,
            content: content.to_vec(),
        });
        Ok(())
    }

    fn begin(&mut self, tli: TimelineId, start: Lsn) -> Result<()> {
        self.check_fatal()?;
        self.dir.begin(tli, start)?;
        self.tli = tli;
        let segno = start.segment(self.seg_size);
        // A `.partial` of an older timeline (or an older segment) is that timeline's last.
        self.queue_spool(Some((tli, segno)))?;
        let offset = start.segment_offset(self.seg_size);
        let mut st = self.shared.lock();
        st.open = (offset != 0).then_some(Open {
            tli,
            segno,
            written: start,
        });
        // Everything before the first upload still waiting (or before this segment, whose
        // spool prefix may not be in the store) is in the store.
        let floor = if self.resumed_from_store {
            start
        } else {
            start.segment_start(self.seg_size)
        };
        let first_pending = st.queue.iter().find_map(|j| match j {
            Job::Segment { segno, .. } => segno.start_lsn(self.seg_size),
            Job::History { .. } => None,
        });
        st.remote = first_pending.map_or(floor, |p| p.min(floor));
        self.shared.changed.notify_all();
        Ok(())
    }

    fn begin_segment(&mut self, tli: TimelineId, segno: SegNo) -> Result<()> {
        self.check_fatal()?;
        // Room in the spool: wait while completed segments fill it.
        let mut logged = None::<Instant>;
        let mut st = self.shared.lock();
        loop {
            if let Some(e) = &st.fatal {
                return Err(ReceiveError::sink_fatal(e.clone()));
            }
            // Segments stored out of order have left the spool already.
            let waiting: u64 = st
                .queue
                .iter()
                .filter(|j| !st.done.contains(&j.key()))
                .map(|j| j.spool_bytes(self.seg_size))
                .sum();
            let room = waiting + self.seg_size.bytes()
                <= self.opts.max_spool.max(2 * self.seg_size.bytes());
            if room || self.shared.interrupted.load(Ordering::SeqCst) {
                break;
            }
            if logged.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                tracing::warn!(
                    "spool \"{}\" holds {} MB of segments waiting for upload to \"{}\" (--max-spool {} MB){}: not taking more WAL until uploads succeed",
                    self.opts.spool.display(),
                    waiting >> 20,
                    self.store.url_str(),
                    self.opts.max_spool >> 20,
                    if st.failing { ", the store is failing" } else { "" }
                );
                logged = Some(Instant::now());
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, Duration::from_millis(500))
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        drop(st);
        self.dir.begin_segment(tli, segno)?;
        let start = segno.start_lsn(self.seg_size).unwrap_or(Lsn(0));
        self.set_open(Some(Open {
            tli,
            segno,
            written: start,
        }));
        Ok(())
    }

    fn write(&mut self, start: Lsn, data: &[&[u8]]) -> Result<()> {
        self.dir.write(start, data)?;
        let n: u64 = data.iter().map(|d| d.len() as u64).sum();
        let mut st = self.shared.lock();
        if let Some(o) = st.open.as_mut() {
            o.written = Lsn(start.0 + n);
        }
        Ok(())
    }

    fn finish_segment(&mut self) -> Result<()> {
        self.check_fatal()?;
        let open = self.shared.lock().open.take();
        self.dir.finish_segment()?;
        if let Some(o) = open {
            let name = WalFileName::segment(o.tli, o.segno, self.seg_size).to_string();
            self.enqueue(Job::Segment {
                tli: o.tli,
                segno: o.segno,
                path: self.opts.spool.join(name),
                end: o.segno.next().start_lsn(self.seg_size).unwrap_or(Lsn(0)),
                final_partial: false,
                completed: Some(Instant::now()),
            });
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.check_fatal()?;
        self.dir.flush()
    }

    fn close(&mut self) -> Result<()> {
        self.dir.close()?;
        if self.opts.flush_to == FlushTo::Remote {
            // Upload what was written at once rather than at the next interval.
            self.shared.lock().partial_now = true;
            self.shared.changed.notify_all();
        }
        Ok(())
    }

    fn durable(&self) -> Lsn {
        match self.opts.flush_to {
            FlushTo::Local => self.dir.durable(),
            FlushTo::Remote => self.shared.lock().remote,
        }
    }

    fn abandon(&mut self) {
        self.dir.abandon();
        self.set_open(None);
    }
}

impl Drop for ObjectSink {
    /// Waits for the uploads still queued while the store takes them (up to a minute), then
    /// stops the upload thread.
    fn drop(&mut self) {
        let t = Instant::now();
        {
            let mut st = self.shared.lock();
            while (!st.queue.is_empty()
                || st.open.is_some_and(|o| {
                    self.opts.flush_to == FlushTo::Remote && o.written > st.remote
                }))
                && !st.failing
                && st.fatal.is_none()
                && t.elapsed() < Duration::from_secs(60)
            {
                st = self
                    .shared
                    .changed
                    .wait_timeout(st, Duration::from_millis(200))
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            st.closing = true;
            self.shared.changed.notify_all();
        }
        // The upload thread is not joined: it drops the store last, after this sink's
        // reference is gone (the store's runtime may not be dropped on the driver's runtime,
        // where this may run); an upload still running against a failing store is left to
        // the process's end.
        drop(self.uploader.take());
    }
}

/// Runs `f` on a thread of its own: the driver calls some sink methods on its async runtime,
/// where the store's blocking calls (which run a runtime of their own) may not run.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(t) => t,
        Err(p) => std::panic::resume_unwind(p),
    })
}

/// The upload thread.
struct Uploader {
    shared: Arc<Shared>,
    store: Arc<ObjectArchive>,
    opts: ObjectSinkOptions,
}

enum Next {
    Job(Job),
    Partial(Open),
    Stop,
}

impl Uploader {
    /// One upload thread: takes the next job, or the partial segment when due, until the sink
    /// closes or an upload fails for good. The threads share the retry wait.
    fn run(&self) {
        loop {
            let (next, seg_size) = {
                let mut st = self.shared.lock();
                loop {
                    if st.closing || st.fatal.is_some() {
                        break (Next::Stop, None);
                    }
                    let retry_wait = st.retry_at.map_or(Duration::ZERO, |t| {
                        t.saturating_duration_since(Instant::now())
                    });
                    let since_partial = st.last_partial.map_or(Duration::MAX, |t| t.elapsed());
                    if retry_wait > Duration::ZERO {
                        // Waiting out a failed upload.
                    } else if st.seg_size.is_some() && !st.partial_running {
                        if let Some(j) = st.next_job().cloned() {
                            st.running.insert(j.key());
                            break (Next::Job(j), st.seg_size);
                        }
                    }
                    let due = st.partial_now || since_partial >= self.opts.partial_interval;
                    // Only with every completed segment stored (the queue is empty), by one
                    // thread at a time.
                    if retry_wait == Duration::ZERO
                        && self.opts.flush_to == FlushTo::Remote
                        && st.queue.is_empty()
                        && !st.partial_running
                        && st.seg_size.is_some()
                    {
                        if let Some(o) = st.open.filter(|o| o.written > st.remote) {
                            if due {
                                st.partial_now = false;
                                st.partial_running = true;
                                st.last_partial = Some(Instant::now());
                                break (Next::Partial(o), st.seg_size);
                            }
                        }
                    }
                    let wait = if retry_wait > Duration::ZERO {
                        retry_wait
                    } else {
                        self.opts.partial_interval.saturating_sub(since_partial)
                    }
                    .max(Duration::from_millis(50));
                    st = self
                        .shared
                        .changed
                        .wait_timeout(st, wait)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            };
            let Some(seg_size) = seg_size else {
                if matches!(next, Next::Stop) {
                    return;
                }
                continue;
            };
            let r = match &next {
                Next::Stop => return,
                Next::Job(j) => self.upload(j, seg_size).map(|()| true),
                Next::Partial(o) => self.upload_partial(*o, seg_size),
            };
            let mut st = self.shared.lock();
            match &next {
                Next::Job(j) => {
                    st.running.remove(&j.key());
                }
                Next::Partial(_) => st.partial_running = false,
                Next::Stop => {}
            }
            match r {
                Ok(stored) => {
                    st.retry_delay = None;
                    st.failing = false;
                    match next {
                        Next::Job(j) => st.complete(j.key()),
                        Next::Partial(o) if stored => st.remote = st.remote.max(o.written),
                        Next::Partial(_) => {}
                        Next::Stop => {}
                    }
                    self.shared.changed.notify_all();
                }
                Err(e) if e.is_retryable() => {
                    st.failing = true;
                    if st.closing {
                        self.shared.changed.notify_all();
                        return;
                    }
                    let delay = st.retry_delay.unwrap_or(self.opts.retry_delay);
                    st.retry_delay = Some((delay * 2).min(self.opts.max_retry_delay));
                    st.retry_at = Some(Instant::now() + delay);
                    self.shared.changed.notify_all();
                    drop(st);
                    tracing::warn!(
                        "upload failed: {e}; retrying in {:.1} s",
                        delay.as_secs_f64()
                    );
                }
                Err(e) => {
                    tracing::error!("{e}");
                    st.fatal = Some(e.to_string());
                    self.shared.changed.notify_all();
                    return;
                }
            }
        }
    }

    fn spool_err<'a>(
        op: &'static str,
        path: &'a Path,
    ) -> impl FnOnce(io::Error) -> ObjectSinkError + 'a {
        move |source| ObjectSinkError::Spool {
            op,
            path: path.to_owned(),
            source,
        }
    }

    /// The object's bytes for `data` (the same buffer when not compressing).
    fn encode(&self, data: &Bytes) -> std::result::Result<Bytes, ObjectSinkError> {
        if self.opts.compress.method == Compression::None {
            return Ok(data.clone());
        }
        // On this thread, one frame: zstd's worker threads would each hold buffers of their
        // own, and uploads run beside the streaming anyway.
        let mut enc = self.opts.compress.encoding();
        enc.zstd_workers = 0;
        compress(&enc, data)
            .map(Bytes::from)
            .map_err(|source| ObjectSinkError::Spool {
                op: "compress",
                path: PathBuf::from("(segment)"),
                source,
            })
    }

    /// The spool file at `path` as the object's bytes: (its plain size, the object's bytes),
    /// compressed as it is read when compressing.
    fn read_encoded(&self, path: &Path) -> io::Result<(u64, Bytes)> {
        if self.opts.compress.method == Compression::None {
            let d = fs::read(path)?;
            return Ok((d.len() as u64, Bytes::from(d)));
        }
        let mut file = fs::File::open(path)?;
        let len = file.metadata()?.len();
        // On this thread, one frame: zstd's worker threads would each hold buffers of their
        // own, and uploads run beside the streaming anyway.
        let mut enc = self.opts.compress.encoding();
        enc.zstd_workers = 0;
        let mut e = Encoder::new(&enc, Vec::with_capacity(len as usize / 4 + 1024))?;
        io::copy(&mut file, &mut e)?;
        Ok((len, Bytes::from(e.finish()?)))
    }

    /// Stores `payload` (the encoding of what `data` gives) under `target`, create-only; an
    /// object of any of `variants` already there must hold that (`data` is called only then).
    fn put_checked(
        &self,
        target: &str,
        variants: &[String],
        data: &dyn Fn() -> std::result::Result<Bytes, ObjectSinkError>,
        payload: Bytes,
        spool: &Path,
    ) -> std::result::Result<Vec<String>, ObjectSinkError> {
        let base = variants
            .first()
            .cloned()
            .unwrap_or_else(|| target.to_owned());
        let compare = |listing: &[String]| -> std::result::Result<bool, ObjectSinkError> {
            for v in variants.iter().filter(|v| listing.contains(v)) {
                if self.holds_same_wal(v, data, spool)? {
                    return Ok(true);
                }
            }
            Ok(false)
        };
        let names = |prefix: &str| -> std::result::Result<Vec<String>, ObjectSinkError> {
            Ok(self
                .store
                .list(prefix)?
                .into_iter()
                .map(|e| e.name)
                .collect())
        };
        let listing = names(&base)?;
        if compare(&listing)? {
            return Ok(listing);
        }
        let sent = payload.len() as u64;
        match self.store.put_new(target, payload)? {
            PutNew::Created => match self.store.head(target)? {
                Some(n) if n == sent => {
                    self.settle_twins(target, variants, data, spool, &names(&base)?)?;
                    Ok(listing)
                }
                found => Err(ObjectSinkError::Verify {
                    url: self.store.url_str().to_owned(),
                    key: self.store.url().key(target),
                    sent,
                    found: found.unwrap_or(0),
                }),
            },
            PutNew::AlreadyExists => {
                if compare(&names(&base)?)? {
                    Ok(listing)
                } else {
                    Err(ObjectSinkError::Conflict {
                        url: self.store.url_str().to_owned(),
                        key: self.store.url().key(target),
                        spool: spool.to_owned(),
                        reason: "it appeared while uploading and then vanished".into(),
                    })
                }
            }
        }
    }

    /// Whether object `name` holds the WAL `data` gives (after decompression): `false` when it
    /// is gone, a [`ObjectSinkError::Conflict`] naming it when it holds other WAL.
    fn holds_same_wal(
        &self,
        name: &str,
        data: &dyn Fn() -> std::result::Result<Bytes, ObjectSinkError>,
        spool: &Path,
    ) -> std::result::Result<bool, ObjectSinkError> {
        let Some(existing) = self.store.get_wal(name)? else {
            return Ok(false);
        };
        match describe_difference(&existing, &data()?) {
            Existing::Same => Ok(true),
            Existing::Differs(reason) => Err(ObjectSinkError::Conflict {
                url: self.store.url_str().to_owned(),
                key: self.store.url().key(name),
                spool: spool.to_owned(),
                reason,
            }),
        }
    }

    /// After `target` was created: other stored forms of the same file (`variants`, in
    /// preference order) that appeared meanwhile, in `listing`, must hold the same WAL (an
    /// upload in another compression by a receiver killed while its request was in flight, or
    /// an `archive push`); a different one is a conflict that leaves both. Of identical forms
    /// only the most preferred is kept: every writer applies the same rule, so the kept form
    /// is the same for all of them and the WAL is always stored.
    fn settle_twins(
        &self,
        target: &str,
        variants: &[String],
        data: &dyn Fn() -> std::result::Result<Bytes, ObjectSinkError>,
        spool: &Path,
        listing: &[String],
    ) -> std::result::Result<(), ObjectSinkError> {
        let mut same = Vec::new();
        for v in variants
            .iter()
            .filter(|v| *v != target && listing.contains(v))
        {
            if self.holds_same_wal(v, data, spool)? {
                same.push(v.clone());
            }
        }
        if same.is_empty() {
            return Ok(());
        }
        let mut drop: Vec<String> = variants
            .iter()
            .filter(|v| *v == target || same.contains(v))
            .cloned()
            .collect();
        let kept = drop.remove(0);
        self.store.delete_many(&drop)?;
        tracing::info!(
            "\"{}\" was stored in another form too (the same WAL): kept \"{}\", deleted {:?}",
            self.store.url().key(target),
            self.store.url().key(&kept),
            drop
        );
        Ok(())
    }

    fn upload(&self, job: &Job, seg_size: WalSegSize) -> std::result::Result<(), ObjectSinkError> {
        match job {
            Job::History { tli, content } => {
                let name = format!("{:08X}.history", tli.0);
                let spool = self.opts.spool.join(&name);
                let content = Bytes::from(content.clone());
                self.put_checked(
                    &name,
                    std::slice::from_ref(&name),
                    &|| Ok(content.clone()),
                    content.clone(),
                    &spool,
                )
                .map(drop)
            }
            Job::Segment {
                tli,
                segno,
                path,
                final_partial,
                completed,
                ..
            } => {
                let t = Instant::now();
                // Only the object's bytes stay in memory: compressed from the file as it is
                // read; the plain segment is read again only to compare with an existing object.
                let (len, payload) = match self.read_encoded(path) {
                    Ok(r) => r,
                    // Uploaded and removed before a restart queued it again.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(Self::spool_err("read", path)(e)),
                };
                let plain_payload =
                    (self.opts.compress.method == Compression::None).then(|| payload.clone());
                let data = || match &plain_payload {
                    Some(p) => Ok(p.clone()),
                    None => fs::read(path)
                        .map(Bytes::from)
                        .map_err(Self::spool_err("read", path)),
                };
                let plain = WalFileName::segment(*tli, *segno, seg_size);
                let variants: Vec<String> = [
                    Compression::None,
                    Compression::Zstd,
                    Compression::Lz4,
                    Compression::Gzip,
                ]
                .into_iter()
                .map(|c| plain.with(c, *final_partial).to_string())
                .collect();
                let target = plain
                    .with(self.opts.compress.method, *final_partial)
                    .to_string();
                let listing = self.put_checked(&target, &variants, &data, payload, path)?;
                drop(plain_payload);
                self.remove_partials(*tli, *segno, None, Some(listing), seg_size)?;
                if let Err(e) = fs::remove_file(path) {
                    if e.kind() != io::ErrorKind::NotFound {
                        return Err(Self::spool_err("remove", path)(e));
                    }
                }
                let lag = completed.map_or(String::new(), |c| {
                    format!(
                        ", {:.3} s after the segment was complete",
                        c.elapsed().as_secs_f64()
                    )
                });
                tracing::info!(
                    "uploaded \"{}\" ({} bytes) in {:.3} s{lag}",
                    self.store.url().key(&target),
                    len,
                    t.elapsed().as_secs_f64()
                );
                Ok(())
            }
        }
    }

    /// Removes the partial objects of segment (`tli`, `segno`) other than `keep`, as
    /// `listing` (names starting with the segment's) shows them, else as a listing does.
    fn remove_partials(
        &self,
        tli: TimelineId,
        segno: SegNo,
        keep: Option<&str>,
        listing: Option<Vec<String>>,
        seg_size: WalSegSize,
    ) -> std::result::Result<(), ObjectSinkError> {
        let listing = match listing {
            Some(l) => l,
            None => {
                let prefix = format!("{}.", WalFileName::segment(tli, segno, seg_size));
                self.store
                    .list(&prefix)?
                    .into_iter()
                    .map(|e| e.name)
                    .collect()
            }
        };
        let seg_name = WalFileName::segment(tli, segno, seg_size).to_string();
        let old: Vec<String> = listing
            .into_iter()
            .filter(|n| n.starts_with(&seg_name))
            .filter(|n| parse_partial_object(n, seg_size).is_some() && Some(n.as_str()) != keep)
            .collect();
        if !old.is_empty() {
            self.store.delete_many(&old)?;
        }
        let mut st = self.shared.lock();
        st.partials
            .retain(|p| !(p.0 == tli && p.1 == segno && Some(p.3.as_str()) != keep));
        Ok(())
    }

    /// Uploads the written prefix of the segment being written under its own name.
    fn upload_partial(
        &self,
        o: Open,
        seg_size: WalSegSize,
    ) -> std::result::Result<bool, ObjectSinkError> {
        let name = WalFileName::segment(o.tli, o.segno, seg_size)
            .with(Compression::None, true)
            .to_string();
        let path = self.opts.spool.join(&name);
        let start = o.segno.start_lsn(seg_size).unwrap_or(Lsn(0));
        let len = o.written.0.saturating_sub(start.0) as usize;
        let mut data = vec![0u8; len];
        let read = fs::File::open(&path).and_then(|mut f| f.read_exact(&mut data));
        match read {
            Ok(()) => {}
            // Completed meanwhile: its upload comes next (and nothing more is stored now).
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Self::spool_err("read", &path)(e)),
        }
        let target = partial_object_name(
            o.tli,
            o.segno,
            o.written,
            seg_size,
            self.opts.compress.method,
        );
        let data = Bytes::from(data);
        let payload = self.encode(&data)?;
        self.put_checked(
            &target,
            std::slice::from_ref(&target),
            &|| Ok(data.clone()),
            payload,
            &path,
        )?;
        self.remove_partials(o.tli, o.segno, Some(&target), None, seg_size)?;
        tracing::debug!("uploaded partial \"{}\"", self.store.url().key(&target));
        let mut st = self.shared.lock();
        st.partials.push((o.tli, o.segno, o.written, target));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(segno: u64) -> Job {
        let seg = WalSegSize::DEFAULT;
        Job::Segment {
            tli: TimelineId(1),
            segno: SegNo(segno),
            path: PathBuf::from(WalFileName::segment(TimelineId(1), SegNo(segno), seg).to_string()),
            end: SegNo(segno).next().start_lsn(seg).unwrap(),
            final_partial: false,
            completed: None,
        }
    }

    #[test]
    fn uploads_finished_out_of_order_count_only_as_a_contiguous_prefix() {
        let seg = WalSegSize::DEFAULT;
        let mut st = State {
            seg_size: Some(seg),
            remote: SegNo(3).start_lsn(seg).unwrap(),
            ..State::default()
        };
        for n in 3..=6 {
            let j = segment(n);
            st.queued.insert(j.key());
            st.queue.push_back(j);
        }
        st.queue.insert(
            2,
            Job::History {
                tli: TimelineId(2),
                content: b"1\t0/5000000\tno reason\n".to_vec(),
            },
        );
        // Three threads take the first three jobs in order.
        let mut taken = Vec::new();
        for _ in 0..3 {
            let j = st.next_job().cloned().unwrap();
            st.running.insert(j.key());
            taken.push(j.key());
        }
        assert_eq!(
            taken,
            [
                segment(3).key(),
                segment(4).key(),
                "00000002.history".into()
            ]
        );
        let before = st.remote;
        // Segment 4 and the history file are stored before segment 3: nothing moves.
        st.complete(segment(4).key());
        st.complete("00000002.history".into());
        assert_eq!(st.remote, before);
        assert_eq!(st.queue.len(), 5);
        assert!(st.queued.contains(&segment(4).key()));
        // Not taken again by a free thread: segment 5 is next.
        assert_eq!(st.next_job().map(Job::key), Some(segment(5).key()));
        // Segment 3 stored: 3, 4 and the history file leave the queue together.
        st.complete(segment(3).key());
        assert_eq!(st.remote, SegNo(5).start_lsn(seg).unwrap());
        assert_eq!(st.queue.len(), 2);
        assert!(st.done.is_empty() && st.running.is_empty());
        assert!(!st.queued.contains(&segment(3).key()));
        st.complete(segment(6).key());
        assert_eq!(st.remote, SegNo(5).start_lsn(seg).unwrap());
        st.complete(segment(5).key());
        assert_eq!(st.remote, SegNo(7).start_lsn(seg).unwrap());
        assert!(st.queue.is_empty() && st.queued.is_empty() && st.done.is_empty());
    }
}
