//! The high-level reader: WAL records from a directory, a file, a tar archive or any stream,
//! in one call.
//!
//! [`WalReader::open`] finds the WAL at a [`Location`], learns the segment size, page size and
//! system from the first segment's long page header, works out where to start and where to
//! stop, and [`WalReader::for_each`] hands every record to a visitor, in LSN order, through
//! the zero-copy decoder. [`WalReader::builder`] takes the options first: start and end as
//! LSNs or as segment names, the timeline, following timeline switches through history files,
//! a directory being written. [`ReaderBuilder::open_stream`] reads WAL from any
//! [`Read`] (standard input, a pipe, a socket), plain or compressed.
//!
//! ```
//! use std::ops::ControlFlow;
//! use pgwal::reader::WalReader;
//!
//! let mut reader = WalReader::open("../../testdata/wal/pg18")?;
//! let start = reader.start();
//! let mut records = 0;
//! let end = reader.for_each(|rec| {
//!     assert!(rec.lsn() >= start);
//!     records += 1;
//!     ControlFlow::Continue(())
//! })?;
//! assert!(records > 1000);
//! println!("{records} records, then {end:?}");
//! # Ok::<(), pgwal::reader::ReaderError>(())
//! ```
//!
//! [`ReaderBuilder::jobs`] gives [`WalReader::for_each_chunk`] and [`WalReader::fold_chunks`]
//! several threads: the range is cut into chunks decoded at once, each chunk's records are
//! gathered by the caller's work on a worker thread, and what each chunk gathered is handed
//! back in LSN order, with the same records, end and errors as one thread (`pgwal dump -j`
//! formats and counts through it). [`WalReader::for_each`] stays on the calling thread.
//!
//! Errors are [`ReaderError`]s naming the file, segment or LSN; corrupt WAL (as opposed to its
//! end, which is [`ReadEnd::EndOfWal`]) is [`source::SourceError::Corrupt`] with the file and the LSN.
//!
//! With the feature `object-store`, a location may also be an archive in object storage
//! (`Location::Object`, `s3://BUCKET/PREFIX`, `az://…`, `gs://…`): listed into the same
//! [`WalDirectory`], its segments fetched as reading reaches them (see `reader::object`).

use std::io::Read;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::history::TimelineHistory;
use crate::lsn::Lsn;
use crate::segment::{TimelineId, WalFileName, WalSegSize};
use crate::source::{self, OnDuplicate, ReadEnd, ReadRange, TarWal, WalDirectory};
use crate::storage::codec::read_head;
use crate::storage::probe::{probe_segment, SegmentInfo};
use crate::wal::{DecoderConfig, Record, LONG_HEADER_SIZE};

mod error;
#[cfg(feature = "object-store")]
pub mod object;
mod parallel;
mod stream;

pub use error::ReaderError;
pub use parallel::{ChunkWork, Handover, DEFAULT_CHUNK_BYTES};
pub use stream::WalStream;

/// Where WAL files are.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A directory holding WAL files, or a data directory whose `pg_wal` holds them.
    Dir(PathBuf),
    /// Directories to try in order: the first that holds the start segment (or, without one,
    /// any segment) is read. pg_waldump's search without `-p` is `.`, `pg_wal` and
    /// `$PGDATA/pg_wal`.
    Search(Vec<PathBuf>),
    /// One WAL file: reading starts with it (it is the start segment) and goes on with the
    /// following segments of its directory.
    File(PathBuf),
    /// A tar archive (`.tar`, `.tar.gz`, `.tgz`, `.tar.lz4`, `.tar.zst`, as `pg_basebackup
    /// -Ft` writes them): its WAL members are extracted into a private temporary directory,
    /// removed when the reader is dropped.
    Tar(PathBuf),
    /// An archive in object storage (`s3://`, `az://`, `gs://`): its listing, with the
    /// segments fetched on demand and the next few read ahead in parallel
    /// ([`object`]).
    #[cfg(feature = "object-store")]
    Object(crate::storage::location::ObjectUrl),
}

impl Location {
    /// The location `s` names: an object-store URL (`s3://`, `az://`, `gs://`, with the
    /// feature `object-store`), else a path as [`Location::from_path`] takes it.
    pub fn parse(s: &str) -> Result<Location, ReaderError> {
        match crate::storage::location::Location::parse(s)? {
            crate::storage::location::Location::Dir(p) => Ok(Location::from_path(p)),
            #[cfg(feature = "object-store")]
            crate::storage::location::Location::Object(u) => Ok(Location::Object(u)),
            #[cfg(not(feature = "object-store"))]
            crate::storage::location::Location::Object(u) => {
                Err(ReaderError::NoObjectStore { url: u.to_string() })
            }
        }
    }

    /// The location `path` names: a directory, a tar archive (by its name), else a file.
    pub fn from_path(path: impl Into<PathBuf>) -> Location {
        let path = path.into();
        if path.is_dir() {
            Location::Dir(path)
        } else if crate::tar::archive_kind(&path).is_some() {
            Location::Tar(path)
        } else {
            Location::File(path)
        }
    }
}

impl From<&str> for Location {
    fn from(p: &str) -> Location {
        Location::from_path(p)
    }
}

impl From<&Path> for Location {
    fn from(p: &Path) -> Location {
        Location::from_path(p)
    }
}

impl From<PathBuf> for Location {
    fn from(p: PathBuf) -> Location {
        Location::from_path(p)
    }
}

/// Options of a [`WalReader`] or [`WalStream`]: [`WalReader::builder`], the options to set,
/// then [`ReaderBuilder::open`] or [`ReaderBuilder::open_stream`].
///
/// ```
/// use std::ops::ControlFlow;
/// use pgwal::reader::WalReader;
/// use pgwal::{Lsn, TimelineId};
///
/// // The records of one segment, from the first at or after 0/840000.
/// let mut reader = WalReader::builder()
///     .start_segment("000000010000000000000008")
///     .start(Lsn(0x84_0000))
///     .open("../../testdata/wal/pg18")?;
/// assert_eq!(reader.timeline(), TimelineId(1));
/// assert_eq!(reader.end(), Some(Lsn(0x90_0000)));
/// let mut first = None;
/// reader.for_each(|rec| {
///     first.get_or_insert(rec.lsn());
///     assert!(rec.end_lsn() <= Lsn(0x90_0000));
///     ControlFlow::Continue(())
/// })?;
/// assert!(first.is_some_and(|lsn| lsn >= Lsn(0x84_0000)));
/// # Ok::<(), pgwal::reader::ReaderError>(())
/// ```
#[derive(Clone)]
pub struct ReaderBuilder {
    start: Option<Lsn>,
    end: Option<Lsn>,
    start_segment: Option<String>,
    end_segment: Option<String>,
    timeline: Option<TimelineId>,
    follow_timelines: bool,
    block_refs: bool,
    live: bool,
    stream_name: String,
    on_tar_duplicate: Option<OnDuplicate>,
    #[cfg(feature = "object-store")]
    object_options: crate::storage::object::ObjectOptions,
    jobs: usize,
    chunk_bytes: u64,
    bind_cpus: bool,
}

impl std::fmt::Debug for ReaderBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReaderBuilder")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("start_segment", &self.start_segment)
            .field("end_segment", &self.end_segment)
            .field("timeline", &self.timeline)
            .field("follow_timelines", &self.follow_timelines)
            .field("block_refs", &self.block_refs)
            .field("live", &self.live)
            .field("stream_name", &self.stream_name)
            .field("jobs", &self.jobs)
            .field("chunk_bytes", &self.chunk_bytes)
            .field("bind_cpus", &self.bind_cpus)
            .finish_non_exhaustive()
    }
}

impl Default for ReaderBuilder {
    fn default() -> ReaderBuilder {
        ReaderBuilder {
            start: None,
            end: None,
            start_segment: None,
            end_segment: None,
            timeline: None,
            follow_timelines: false,
            block_refs: true,
            live: false,
            stream_name: "input".to_owned(),
            on_tar_duplicate: None,
            #[cfg(feature = "object-store")]
            object_options: Default::default(),
            jobs: 1,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            bind_cpus: false,
        }
    }
}

impl ReaderBuilder {
    /// Returns records from the first one that starts at or after `lsn` (by default the start
    /// of the start segment, else of the earliest segment of the timeline). With a start
    /// segment, `lsn` must be inside it.
    pub fn start(mut self, lsn: Lsn) -> ReaderBuilder {
        self.start = Some(lsn);
        self
    }

    /// Stops before the first record that ends after `lsn` (by default: the end of the end
    /// segment, if one is named, else the end of the WAL).
    pub fn end(mut self, lsn: Lsn) -> ReaderBuilder {
        self.end = Some(lsn);
        self
    }

    /// Starts with the segment of this file name (plain, `.partial` or compressed; a plain
    /// name also finds the segment's compressed or `.partial` file). Its timeline is the one
    /// read.
    pub fn start_segment(mut self, name: impl Into<String>) -> ReaderBuilder {
        self.start_segment = Some(name.into());
        self
    }

    /// Stops at the end of the segment of this file name (which must be in the start
    /// segment's directory); needs a start segment. Its timeline is the one read.
    pub fn end_segment(mut self, name: impl Into<String>) -> ReaderBuilder {
        self.end_segment = Some(name.into());
        self
    }

    /// Reads timeline `tli` (without a start segment; by default the timeline of the earliest
    /// segment, or with [`follow_timelines`](Self::follow_timelines) the newest).
    pub fn timeline(mut self, tli: TimelineId) -> ReaderBuilder {
        self.timeline = Some(tli);
        self
    }

    /// Follows timeline switches: reads the history file of the timeline read (the newest
    /// one in the directory, unless [`timeline`](Self::timeline) names one) and takes each
    /// segment from the timeline that holds it.
    pub fn follow_timelines(mut self, on: bool) -> ReaderBuilder {
        self.follow_timelines = on;
        self
    }

    /// Whether records carry their block references (default: yes). Without them decoding
    /// is a little faster and every check is still made; for callers that only count records
    /// or sizes.
    pub fn block_refs(mut self, on: bool) -> ReaderBuilder {
        self.block_refs = on;
        self
    }

    /// Reads a directory that a server or receiver is writing (see
    /// [`source::read_range_live`]): the segment being written is read, never mapped, and at
    /// the end of WAL [`ReadEnd::EndOfWal`]'s `at` is where to go on with
    /// [`WalReader::resume_at`].
    pub fn live(mut self, on: bool) -> ReaderBuilder {
        self.live = on;
        self
    }

    /// Threads for [`WalReader::for_each_chunk`] and [`WalReader::fold_chunks`] (default 1;
    /// 0 counts as 1): the range is cut into chunks that `n` workers, the calling thread one of
    /// them, decode at once, and what they gather is handed over in LSN order. Only those two
    /// use it: [`WalReader::for_each`] always reads on the calling thread, one record after
    /// another, and so does a [`live`](Self::live) directory or a stream.
    pub fn jobs(mut self, n: usize) -> ReaderBuilder {
        self.jobs = n.max(1);
        self
    }

    /// Bytes of WAL per chunk with [`jobs`](Self::jobs) above 1 (default
    /// [`DEFAULT_CHUNK_BYTES`]): rounded down to whole pages, at least a page, at most a
    /// segment. Smaller chunks mean less gathered per chunk waiting for the chunks before it
    /// (text, say), larger ones less set-up per chunk.
    pub fn chunk_size(mut self, bytes: u64) -> ReaderBuilder {
        self.chunk_bytes = bytes;
        self
    }

    /// With [`jobs`](Self::jobs) above 1, binds each worker to a CPU of its own while it reads
    /// (default off): the calling thread to the CPU it runs on, the others to the next CPUs
    /// the process may use; the calling thread's CPUs are restored when the read is done.
    /// Nothing is bound when fewer CPUs than jobs are allowed, or on systems other than Linux.
    ///
    /// Workers sleep now and then in the kernel (for the process's mapping lock, or a page
    /// another worker is mapping); when woken, a thread is often put beside a busy worker
    /// and waits for the scheduler to move it. Bound, it runs at once: on a 2-CPU host,
    /// `pgwal dump --stats -j2` then took 52 ms (median of 30) rather than 58 ms, and varied
    /// by 2 ms rather than 6. Binding suits a read that has the CPUs to itself, as a
    /// command-line dump does; a program running other busy threads may prefer to leave the
    /// scheduler free.
    ///
    /// ```no_run
    /// use std::ops::ControlFlow;
    /// use pgwal::reader::WalReader;
    /// let reader = WalReader::builder().jobs(2).bind_cpus(true).open("pg_wal")?;
    /// let mut records = 0u64;
    /// reader.fold_chunks(
    ///     || 0u64,
    ///     |n, _rec| {
    ///         *n += 1;
    ///         ControlFlow::Continue(())
    ///     },
    ///     |n| {
    ///         records += n;
    ///         ControlFlow::Continue(())
    ///     },
    /// )?;
    /// # Ok::<(), pgwal::reader::ReaderError>(())
    /// ```
    pub fn bind_cpus(mut self, on: bool) -> ReaderBuilder {
        self.bind_cpus = on;
        self
    }

    /// The name a stream's errors give it (default `input`).
    pub fn stream_name(mut self, name: impl Into<String>) -> ReaderBuilder {
        self.stream_name = name.into();
        self
    }

    /// Called with the name of each WAL member of a tar archive that an earlier member had
    /// (the first copy is read; pg_waldump warns of the others). A compressed archive is read
    /// as a stream, so this may be called while records are read.
    pub fn on_tar_duplicate(mut self, f: impl Fn(&str) + Send + Sync + 'static) -> ReaderBuilder {
        self.on_tar_duplicate = Some(Arc::new(f));
        self
    }

    /// Request settings for an object-store location (default:
    /// [`ObjectOptions::default`](crate::storage::object::ObjectOptions)).
    #[cfg(feature = "object-store")]
    pub fn object_options(mut self, opts: crate::storage::object::ObjectOptions) -> ReaderBuilder {
        self.object_options = opts;
        self
    }

    /// Opens the WAL at `location`.
    pub fn open(self, location: impl Into<Location>) -> Result<WalReader, ReaderError> {
        let mut b = self;
        let candidates = match location.into() {
            Location::Dir(d) => vec![d.clone(), d.join("pg_wal")],
            Location::Search(v) => v,
            Location::File(p) => {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let dir = p
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
                b.start_segment = Some(name);
                vec![dir]
            }
            Location::Tar(p) => {
                let kind = crate::tar::archive_kind(&p).unwrap_or(crate::Compression::None);
                let warn = b
                    .on_tar_duplicate
                    .clone()
                    .unwrap_or_else(|| Arc::new(|_: &str| {}));
                let dir = WalDirectory::from_tar(TarWal::open(&p, kind, warn)?);
                let file = match b.start_segment.as_deref() {
                    Some(f) => dir.find(f),
                    None => dir.first_segment().map(|(_, p)| p),
                };
                let Some(file) = file else {
                    return Err(ReaderError::NoWalFiles {
                        searched: vec![p.clone()],
                    });
                };
                let head = dir.read_file(&file)?;
                let info = probe_segment(&head).map_err(|error| ReaderError::NotWal {
                    path: file.clone(),
                    error,
                })?;
                return b.plan(dir, info, &[p]);
            }
            #[cfg(feature = "object-store")]
            Location::Object(url) => return object::open(b, &url),
        };
        b.open_dir(&candidates)
    }

    /// Reads WAL from `input`: one or more consecutive segments, from a segment boundary,
    /// plain or compressed (gzip, LZ4 frame or zstd, told by its first bytes; compressed input
    /// is decompressed whole, at most 1 GB). Segment names and the timeline do not apply.
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use pgwal::reader::WalReader;
    ///
    /// let file = std::fs::File::open("../../testdata/wal/pg16/000000010000000000000009")?;
    /// let mut stream = WalReader::builder().stream_name("the file").open_stream(file)?;
    /// assert_eq!(stream.info().version.major(), 16);
    /// let mut records = 0;
    /// stream.for_each(|_rec| {
    ///     records += 1;
    ///     ControlFlow::Continue(())
    /// })?;
    /// assert!(records > 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_stream<R: Read>(self, input: R) -> Result<WalStream<R>, ReaderError> {
        WalStream::open(input, self)
    }

    /// Finds the WAL in the first of `candidates` that has it, and plans the read.
    fn open_dir(self, candidates: &[PathBuf]) -> Result<WalReader, ReaderError> {
        let want = self.start_segment.as_deref();
        let (dir, file) = identify_directory(candidates, want)?;
        let info = probe_file(&file)?;
        self.plan(dir, info, candidates)
    }

    /// Plans the read of `dir`, whose WAL `info` describes.
    fn plan(
        self,
        dir: WalDirectory,
        info: SegmentInfo,
        candidates: &[PathBuf],
    ) -> Result<WalReader, ReaderError> {
        let want = self.start_segment.as_deref();
        let seg_size = info.seg_size;
        let mut tli = self.timeline.unwrap_or(TimelineId(1));
        let (start, end) = match want {
            Some(fname) => {
                let (start, end, t) = self.segment_range(&dir, fname, seg_size)?;
                tli = t;
                (start, end)
            }
            None => {
                let start = match self.start {
                    Some(s) => s,
                    None => {
                        // The earliest segment of the timeline.
                        let first = dir
                            .segments()
                            .filter_map(|(n, _)| Some((n.timeline(), n.segno(seg_size)?)))
                            .filter(|(t, _)| self.timeline.is_none_or(|w| *t == w))
                            .min_by_key(|(t, s)| (*s, *t))
                            .ok_or_else(|| ReaderError::NoWalFiles {
                                searched: candidates.to_vec(),
                            })?;
                        if self.timeline.is_none() {
                            tli = first.0;
                        }
                        first.1.start_lsn(seg_size).unwrap_or(Lsn::MAX)
                    }
                };
                (start, self.end)
            }
        };
        let history = if self.follow_timelines {
            if self.timeline.is_none() {
                let newest = dir
                    .segments()
                    .map(|(n, _)| n.timeline())
                    .chain(dir.history_timelines())
                    .max()
                    .unwrap_or(tli);
                tli = tli.max(newest);
            }
            dir.history(tli)?
        } else {
            None
        };
        let config = decoder_config(&info, self.block_refs);
        let mut range = ReadRange::new(start, tli, config);
        range.end = end;
        range.history = history;
        if let Some(remote) = dir.remote() {
            remote.will_read(&range);
        }
        Ok(WalReader {
            dir,
            info,
            range,
            live: self.live,
            jobs: self.jobs,
            chunk_bytes: self.chunk_bytes,
            bind_cpus: self.bind_cpus,
        })
    }

    /// Start, end and timeline when reading from segment `fname` (to the end segment).
    fn segment_range(
        &self,
        dir: &WalDirectory,
        fname: &str,
        seg_size: WalSegSize,
    ) -> Result<(Lsn, Option<Lsn>, TimelineId), ReaderError> {
        let segno = |name: &str| {
            WalFileName::parse(name)
                .filter(|n| matches!(n, WalFileName::Segment { .. }))
                .and_then(|n| Some((n.timeline(), n.segno(seg_size)?)))
                .ok_or_else(|| ReaderError::BadFileName {
                    name: name.to_owned(),
                })
        };
        let (mut tli, first) = segno(fname)?;
        let start = match self.start {
            None => first.start_lsn(seg_size).unwrap_or(Lsn::MAX),
            Some(s) if s.segment(seg_size) == first => s,
            Some(s) => {
                return Err(ReaderError::StartOutsideFile {
                    start: s,
                    file: fname.to_owned(),
                })
            }
        };
        let mut last = first;
        if let Some(ename) = &self.end_segment {
            if dir.find(ename).is_none() {
                return Err(ReaderError::EndFileNotFound {
                    name: ename.clone(),
                });
            }
            let (t, n) = segno(ename)?;
            tli = t;
            if n < first {
                return Err(ReaderError::EndBeforeStart {
                    start: fname.to_owned(),
                    end: ename.clone(),
                });
            }
            last = n;
        }
        let last_end = last.next().start_lsn(seg_size).unwrap_or(Lsn::MAX);
        let e = self.end.unwrap_or(last_end);
        if e.segment(seg_size) != last && e != last_end {
            return Err(ReaderError::EndOutsideFile {
                end: e,
                file: self.end_segment.as_deref().unwrap_or(fname).to_owned(),
            });
        }
        Ok((start, Some(e), tli))
    }
}

/// The decoder settings for WAL like `info`'s.
fn decoder_config(info: &SegmentInfo, block_refs: bool) -> DecoderConfig {
    DecoderConfig::new(info.seg_size)
        .with_page_size(info.page_size)
        .with_system_id(Some(info.system_id))
        .with_block_refs(block_refs)
}

/// The first of `candidates` that is a directory holding `fname` (a plain segment name also
/// matches its compressed or `.partial` forms, see [`WalDirectory::find`]) or, without a
/// name, any WAL segment; with the file found.
fn identify_directory(
    candidates: &[PathBuf],
    fname: Option<&str>,
) -> Result<(WalDirectory, PathBuf), ReaderError> {
    for c in candidates {
        if !c.is_dir() {
            continue;
        }
        let wd = WalDirectory::scan(c)?;
        let file = match fname {
            Some(f) => wd.find(f),
            None => wd.first_segment().map(|(_, p)| p.to_path_buf()),
        };
        if let Some(file) = file {
            return Ok((wd, file));
        }
    }
    Err(match fname {
        Some(f) => ReaderError::FileNotFound {
            name: f.to_owned(),
            searched: candidates.to_vec(),
        },
        None => ReaderError::NoWalFiles {
            searched: candidates.to_vec(),
        },
    })
}

/// Reads the first page header of a WAL file (with `read()`: the file may be one being
/// written) to learn the segment size and version.
fn probe_file(path: &Path) -> Result<SegmentInfo, ReaderError> {
    let head = read_head(path, LONG_HEADER_SIZE).map_err(|error| ReaderError::Head {
        path: path.to_owned(),
        error,
    })?;
    probe_segment(&head).map_err(|error| ReaderError::NotWal {
        path: path.to_owned(),
        error,
    })
}

/// WAL files opened for reading: [`WalReader::open`] or [`WalReader::builder`].
#[derive(Debug)]
pub struct WalReader {
    dir: WalDirectory,
    info: SegmentInfo,
    range: ReadRange,
    live: bool,
    /// [`ReaderBuilder::jobs`] and [`ReaderBuilder::chunk_size`].
    jobs: usize,
    chunk_bytes: u64,
    /// [`ReaderBuilder::bind_cpus`].
    bind_cpus: bool,
}

impl WalReader {
    /// Opens the WAL at `location` with the default options: every record of the timeline
    /// of the earliest segment, to the end of the WAL.
    pub fn open(location: impl Into<Location>) -> Result<WalReader, ReaderError> {
        ReaderBuilder::default().open(location)
    }

    /// Options first, then [`ReaderBuilder::open`].
    pub fn builder() -> ReaderBuilder {
        ReaderBuilder::default()
    }

    /// Hands each record, in LSN order, to `visit` (by reference: records borrow the mapped
    /// or read bytes), until `visit` breaks, the end is reached or the WAL ends. On the
    /// calling thread whatever [`ReaderBuilder::jobs`] says: see
    /// [`for_each_chunk`](Self::for_each_chunk) for several.
    ///
    /// Can be called again: it reads from the start again (after
    /// [`resume_at`](Self::resume_at), from there).
    pub fn for_each(
        &mut self,
        visit: impl FnMut(&Record<'_>) -> ControlFlow<()>,
    ) -> Result<ReadEnd, ReaderError> {
        Ok(source::read_range_live(
            &self.dir,
            &self.range,
            self.live,
            visit,
        )?)
    }

    /// Lists the directory again and reads from `at` on next time: for a live directory,
    /// after [`ReadEnd::EndOfWal`], with its `at`. An archive in object storage is listed
    /// again from the segment holding `at` on (one request for the few objects there are;
    /// what was listed before it stays). Returns whether the listing changed: with an
    /// unchanged listing there is nothing new to read (a directory is always taken as
    /// changed: its files grow in place).
    pub fn resume_at(&mut self, at: Lsn) -> Result<bool, ReaderError> {
        let seg_size = self.info.seg_size;
        let segno = at.segment(seg_size);
        let from = segno.file_name(self.range.timeline_of(segno), seg_size);
        let changed = self.dir.relist_from(&from)?;
        self.range.start = at;
        Ok(changed)
    }

    /// What the first segment's long page header says (version, system, sizes).
    pub fn info(&self) -> &SegmentInfo {
        &self.info
    }

    /// The timeline read (the newest, when following timelines).
    pub fn timeline(&self) -> TimelineId {
        self.range.tli
    }

    /// Where reading starts: records start at or after it.
    pub fn start(&self) -> Lsn {
        self.range.start
    }

    /// Where reading stops, if not at the end of the WAL.
    pub fn end(&self) -> Option<Lsn> {
        self.range.end
    }

    /// The history of the timeline read, when following timelines and it has one.
    pub fn history(&self) -> Option<&TimelineHistory> {
        self.range.history.as_ref()
    }

    /// The directory read and its files.
    pub fn directory(&self) -> &WalDirectory {
        &self.dir
    }

    /// The range read, with its decoder settings: for readers of parts of it in parallel
    /// ([`source::read_range_shared`]).
    pub fn range(&self) -> &ReadRange {
        &self.range
    }

    /// The last LSN of the segments there are: where a read to the end of the WAL ends at the
    /// latest (the start, without any).
    pub fn last_byte(&self) -> Lsn {
        let seg_size = self.info.seg_size;
        if let Some(e) = self.range.end {
            return Lsn(e.0.saturating_sub(1));
        }
        let last_seg = self
            .dir
            .segments()
            .filter_map(|(n, _)| n.segno(seg_size))
            .map(|s| s.0)
            .max()
            .unwrap_or(0);
        Lsn((last_seg + 1)
            .saturating_mul(seg_size.bytes())
            .saturating_sub(1)
            .max(self.range.start.0))
    }
}

#[cfg(test)]
mod tests;
