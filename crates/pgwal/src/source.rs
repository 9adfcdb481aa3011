//! Reading WAL from files: single segments (plain, `.partial`, or compressed), directories of
//! them, and a reader that feeds a range of segments to the [`WalDecoder`] in order.
//!
//! This is the I/O layer over the sans-IO decoder in [`crate::wal`].

use std::fs::File;
use std::io::{self, Read};
use std::ops::{ControlFlow, Deref};
use std::path::{Path, PathBuf};

use crate::history::TimelineHistory;
use crate::lsn::Lsn;
use crate::segment::{Compression, SegNo, TimelineId, WalSegSize};
use crate::storage::codec::{
    decompress, read_full, sniff_compression, DecompressError, MAX_SEGMENT_BYTES,
};
use crate::storage::probe::probe_segment;
use crate::wal::{DecoderConfig, Record, WalDecoder, WalError};

mod index;
mod mapped;
mod tar_wal;
pub use index::{
    name_variants, preference, ListedFile, OtherEntry, RemoteFiles, WalDirectory, WalEntry,
};
pub use mapped::{MappedArchive, MappedSegment};
pub use tar_wal::{MemberBytes, OnDuplicate, TarWal};

/// Bytes of a WAL file: memory-mapped for complete plain segments, read into memory otherwise.
#[derive(Debug)]
pub enum WalBytes {
    /// A read-only mapping of a complete segment file.
    Mapped(MappedSegment),
    /// Bytes read (and decompressed) into memory.
    Owned(Vec<u8>),
    /// An uncompressed member of a tar archive ([`TarWal`]).
    Member(MemberBytes),
}

impl Deref for WalBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            WalBytes::Mapped(m) => m,
            WalBytes::Owned(v) => v,
            WalBytes::Member(m) => m,
        }
    }
}

impl WalBytes {
    /// Whether the bytes are mapped pages (which readers populate and give back).
    fn is_mapped(&self) -> bool {
        match self {
            WalBytes::Mapped(_) => true,
            WalBytes::Owned(_) => false,
            WalBytes::Member(m) => m.is_mapped(),
        }
    }

    /// Reads the mapped pages of `from..to` in at once (nothing for bytes in memory).
    #[inline]
    fn populate(&self, from: usize, to: usize) {
        match self {
            WalBytes::Mapped(m) => m.populate(from / OS_PAGE * OS_PAGE, to),
            WalBytes::Owned(_) => {}
            WalBytes::Member(m) => m.populate(from, to),
        }
    }

    /// Gives back the mapped pages of `from..to` (`from` page-aligned for a segment).
    fn give_back(&self, from: usize, to: usize) {
        match self {
            WalBytes::Mapped(m) => m.give_back(from, to),
            WalBytes::Owned(_) => {}
            WalBytes::Member(m) => m.give_back(from, to),
        }
    }
}

/// A WAL file could not be found, read or understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// An I/O error on a file or directory.
    #[error("could not read \"{}\": {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A compressed file could not be decompressed.
    #[error("could not decompress \"{}\": {source}", path.display())]
    Decompress {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: DecompressError,
    },
    /// A file does not start with a valid WAL page header.
    #[error("\"{}\" is not a WAL segment: {reason}", path.display())]
    NotWal {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A segment the range needs is not in the directory.
    #[error("could not find WAL file \"{name}\" in \"{}\"", dir.display())]
    Missing {
        /// The segment's file name.
        name: String,
        /// The directory searched.
        dir: PathBuf,
    },
    /// Corrupt WAL (not merely its end) inside a file.
    #[error("{error} (in file \"{}\")", path.display())]
    Corrupt {
        /// The file being read when the problem was found (for a record spanning several
        /// segments, the one holding its last part).
        path: PathBuf,
        /// The decoder's error, with its LSN.
        error: WalError,
    },
    /// A complete (not `.partial`) segment file has the wrong size.
    #[error("WAL file \"{}\" has {size} bytes, but a complete segment has {expected}", path.display())]
    WrongSize {
        /// The file.
        path: PathBuf,
        /// Its (decompressed) size.
        size: u64,
        /// The segment size.
        expected: u64,
    },
    /// A timeline history file is unreadable.
    #[error("invalid history file \"{}\": {reason}", path.display())]
    History {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A tar archive could not be read.
    #[error(transparent)]
    Tar(#[from] crate::tar::TarError),
    /// An object of an archive in object storage could not be read (the error names the
    /// archive's URL and the object's key).
    #[cfg(feature = "object-store")]
    #[error(transparent)]
    Object(#[from] crate::storage::object::ObjectError),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SourceError + '_ {
    move |source| SourceError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reads a WAL file, decompressing it if its content is compressed. Complete plain segments
/// are memory-mapped; `.partial` files (which a receiver may still be writing) are read.
///
/// A file named as a complete segment (no `.partial`) is taken to be one, as
/// [`MappedSegment::map`] requires: not written to or truncated while the returned bytes live.
/// One whose length is not a segment size is read, not mapped.
pub fn read_wal_file(path: &Path) -> Result<WalBytes, SourceError> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let partial = path.extension().is_some_and(|e| e == "partial");
    let mut head = [0u8; 4];
    let n = file.read(&mut head).map_err(io_err(path))?;
    let kind = sniff_compression(&head[..n]);
    if kind == Compression::None && !partial {
        // SAFETY: complete segment files are immutable once named without `.partial`
        // (PostgreSQL and pgwal rename them into place only when whole); this function's doc
        // states that it relies on this.
        match unsafe { MappedSegment::map(&file) } {
            Ok(map) => return Ok(WalBytes::Mapped(map)),
            // Not a segment's length: read below.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {}
            Err(e) => return Err(io_err(path)(e)),
        }
    }
    let mut raw = head[..n].to_vec();
    file.take(MAX_SEGMENT_BYTES * 2)
        .read_to_end(&mut raw)
        .map_err(io_err(path))?;
    if kind == Compression::None {
        if raw.len() as u64 > MAX_SEGMENT_BYTES {
            return Err(SourceError::NotWal {
                path: path.to_owned(),
                reason: "file is larger than 1 GB".into(),
            });
        }
        return Ok(WalBytes::Owned(raw));
    }
    decompress(kind, &raw)
        .map(WalBytes::Owned)
        .map_err(|source| SourceError::Decompress {
            path: path.to_owned(),
            source,
        })
}

/// What to read with [`read_range`]: [`ReadRange::new`], then the fields to change (more may
/// be added).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReadRange {
    /// Return records starting at or after this LSN.
    pub start: Lsn,
    /// Stop before any record whose bytes reach past this LSN.
    pub end: Option<Lsn>,
    /// The timeline to read (the newest, when following history).
    pub tli: TimelineId,
    /// Timeline history used to pick, for each segment, the timeline that holds it.
    pub history: Option<TimelineHistory>,
    /// Decoder settings (segment and page size, system id).
    pub config: DecoderConfig,
}

impl ReadRange {
    /// Records of timeline `tli` from `start` on, to the end of the WAL, without history.
    pub fn new(start: Lsn, tli: TimelineId, config: DecoderConfig) -> ReadRange {
        ReadRange {
            start,
            end: None,
            tli,
            history: None,
            config,
        }
    }

    /// The timeline that holds segment `segno` of the range: [`ReadRange::tli`], or with a
    /// history the timeline its last byte belongs to.
    pub fn timeline_of(&self, segno: SegNo) -> TimelineId {
        let seg_size = self.config.seg_size;
        let seg_start = segno.start_lsn(seg_size).unwrap_or(Lsn::MAX);
        let last_byte = Lsn(seg_start.0.saturating_add(seg_size.bytes() - 1));
        match &self.history {
            Some(h) => h.timeline_of(last_byte, self.tli),
            None => self.tli,
        }
    }
}

/// How [`read_range`] ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReadEnd {
    /// Reached `end`.
    ReachedEnd,
    /// The visitor asked to stop.
    Stopped,
    /// Valid WAL ends at `at`: what follows is zeroed or stale space, or no more files exist.
    EndOfWal {
        /// The first LSN without a valid record.
        at: Lsn,
        /// The decoder's reason, if it found something invalid (rather than running out of
        /// files).
        reason: Option<WalError>,
        /// The segment that was missing, when reading ran out of files.
        missing: Option<String>,
    },
}

/// Reads records from the segments of `dir` covering `range`, in LSN order, calling `visit` for
/// each; corruption (as opposed to the end of valid WAL) is an error naming the file.
pub fn read_range(
    dir: &WalDirectory,
    range: &ReadRange,
    visit: impl FnMut(&Record<'_>) -> ControlFlow<()>,
) -> Result<ReadEnd, SourceError> {
    read_range_in(dir, range, None, false, None, visit)
}

/// [`read_range`], for a directory being written when `live`: a live `pg_wal` or a receiver's
/// archive, as `dump --follow` reads. A segment file is memory-mapped only once the server has
/// begun the next segment (its first page header carries the next segment's address: a
/// recycled file waiting for reuse still carries an old one), so the segment being written,
/// which another process changes and could truncate, is read with `read()`: whatever happens
/// to it, reading ends with an error or the end of WAL, never a signal. At the end of WAL, `at`
/// is where to resume: the start of a record that runs into a page not yet written, not that
/// page.
///
/// With `live` false, this is [`read_range`].
pub fn read_range_live(
    dir: &WalDirectory,
    range: &ReadRange,
    live: bool,
    visit: impl FnMut(&Record<'_>) -> ControlFlow<()>,
) -> Result<ReadEnd, SourceError> {
    read_range_in(dir, range, None, live, None, visit)
}

/// [`read_range`] for one of several readers decoding parts of the same WAL at once: segment
/// files are mapped (or decompressed) through `shared`, so each is mapped or decompressed once
/// for all of them, instead of once per reader and part. The reader keeps the pages it read
/// mapped: give them back with [`SharedSegments::give_back_before`] once the parts before an
/// LSN are all read.
///
/// `next_part` is where the next reader's part begins, if another reader reads it. What this
/// reader needs beyond it (the rest of its last record, and the record after, which tells it
/// that its part is done) is read from the file rather than through the mapping: the next
/// reader is mapping those pages at the same moment, and two threads mapping the same pages
/// wait for each other in the kernel.
///
/// ```no_run
/// use std::ops::ControlFlow;
/// use pgwal::source::{read_range_shared, ReadRange, SharedSegments, WalDirectory};
/// # fn ranges() -> Vec<ReadRange> { Vec::new() }
/// let dir = WalDirectory::scan("pg_wal".as_ref())?;
/// let shared = SharedSegments::new(3);
/// std::thread::scope(|s| {
///     for part in ranges() {
///         let (dir, shared) = (&dir, &shared);
///         s.spawn(move || {
///             read_range_shared(dir, &part, shared, part.end, |_rec| ControlFlow::Continue(()))
///         });
///     }
/// });
/// shared.give_back_before(pgwal::Lsn::MAX);
/// # Ok::<(), pgwal::source::SourceError>(())
/// ```
pub fn read_range_shared(
    dir: &WalDirectory,
    range: &ReadRange,
    shared: &SharedSegments,
    next_part: Option<Lsn>,
    visit: impl FnMut(&Record<'_>) -> ControlFlow<()>,
) -> Result<ReadEnd, SourceError> {
    read_range_in(dir, range, Some(shared), false, next_part, visit)
}

/// Mappings of complete segment files, and the bytes of compressed ones, shared by readers
/// working on parts of the same WAL.
///
/// Each segment is mapped (or decompressed) by the first reader that needs it, while readers
/// that need it meanwhile wait for it, and stays while a reader uses it or while it is among
/// the `keep` highest in LSN order loaded. Readers keep the pages they read; whoever knows that every
/// part before an LSN has been read gives their pages back with
/// [`SharedSegments::give_back_before`]. Mapping a file once, rather than once per part, and
/// giving its pages back once, rather than once per part, spares set-up and TLB flushes: with
/// several threads each flush interrupts every other core.
#[derive(Debug)]
pub struct SharedSegments {
    maps: std::sync::Mutex<std::collections::VecDeque<SharedMap>>,
    keep: usize,
    /// Segments no longer kept, still mapped (their pages given back): unmapped in batches of
    /// [`RETIRED_BATCH`], or when this is dropped, rather than one by one as readers finish.
    /// Unmapping takes the process's mapping lock for writing, so the other readers' page
    /// faults wait for it; most reads end before the first batch.
    retired: std::sync::Mutex<Vec<SharedSlot>>,
    /// Segment files mapped ahead of the readers ([`SharedSegments::map_ahead`]).
    ahead: std::sync::Mutex<MappedAhead>,
}

/// The segment files [`SharedSegments::map_ahead`] mapped, not yet taken by a reader.
#[derive(Debug, Default)]
struct MappedAhead {
    maps: std::collections::HashMap<PathBuf, WalBytes>,
    /// The first segment not looked at yet.
    next: u64,
}

/// How many bytes of segment files [`SharedSegments::map_ahead`] maps at a time, at most (at
/// least one segment).
const MAP_AHEAD_BYTES: u64 = 1 << 30;

/// How many segments a [`SharedSegments`] leaves mapped, at most, after it stops keeping them.
const RETIRED_BATCH: usize = 64;

/// A segment's bytes once loaded: `None` if loading failed (each reader then reads the file
/// itself, to report the error).
type SharedSlot = std::sync::Arc<std::sync::OnceLock<Option<std::sync::Arc<WalBytes>>>>;

/// One segment of a [`SharedSegments`].
#[derive(Debug)]
struct SharedMap {
    path: PathBuf,
    /// Where the segment's WAL ends.
    end: Lsn,
    bytes: SharedSlot,
    /// Pages before this offset were given back.
    released: usize,
}

impl SharedSegments {
    /// Shares mappings, keeping the `keep` highest in LSN order (at least one) mapped.
    pub fn new(keep: usize) -> SharedSegments {
        SharedSegments {
            maps: std::sync::Mutex::new(std::collections::VecDeque::new()),
            keep: keep.max(1),
            retired: std::sync::Mutex::new(Vec::new()),
            ahead: std::sync::Mutex::new(MappedAhead::default()),
        }
    }

    /// The bytes of `path`, if a reader loaded them and they are still kept.
    fn cached(&self, path: &Path) -> Option<std::sync::Arc<WalBytes>> {
        let maps = self.maps.lock().ok()?;
        let m = maps.iter().find(|m| m.path == path)?;
        m.bytes.get().cloned().flatten()
    }

    /// The bytes of `path` (a segment whose WAL ends at `end`), loaded now by `load` if no
    /// reader loaded them yet; if another reader is loading them, waits for it. `load` returns
    /// `None` when the file is not usable as a whole segment.
    fn get_or_load(
        &self,
        path: &Path,
        end: Lsn,
        load: impl FnOnce() -> Option<WalBytes>,
    ) -> Option<std::sync::Arc<WalBytes>> {
        let mut gone = Vec::new();
        let slot = {
            let mut maps = self.maps.lock().ok()?;
            match maps.iter().find(|m| m.path == path) {
                Some(m) => m.bytes.clone(),
                None => {
                    let slot = SharedSlot::default();
                    maps.push_back(SharedMap {
                        path: path.to_owned(),
                        end,
                        bytes: slot.clone(),
                        released: 0,
                    });
                    // The segment lowest in LSN order goes first: readers move forward, so it
                    // is the one behind all of them (the oldest loaded may still be read: a
                    // reader ahead loaded the next segment before a reader behind loaded its
                    // own).
                    while maps.len() > self.keep {
                        let lowest = maps
                            .iter()
                            .enumerate()
                            .min_by_key(|(_, m)| m.end)
                            .map_or(0, |(i, _)| i);
                        gone.extend(maps.remove(lowest).map(|m| m.bytes));
                    }
                    slot
                }
            }
        };
        if !gone.is_empty() {
            let batch = self.retired.lock().ok().and_then(|mut r| {
                r.append(&mut gone);
                (r.len() >= RETIRED_BATCH).then(|| std::mem::take(&mut *r))
            });
            // Outside the lock; a batch is unmapped here once its readers are done with it.
            drop(batch);
        }
        // Outside the lock: decompressing takes a while, and readers of other segments must
        // not wait for it.
        slot.get_or_init(|| {
            let ahead = self.ahead.lock().ok().and_then(|mut a| a.maps.remove(path));
            ahead.or_else(load).map(std::sync::Arc::new)
        })
        .clone()
    }

    /// Gives back the mapped pages before `lsn`: call it once every part before `lsn` has been
    /// read. A segment's pages go when the segment is wholly before `lsn`, or, in large
    /// segments, every 32 MB. A reader still there (finishing a record that began before) is
    /// not harmed: its pages are read again from the page cache.
    ///
    /// ```
    /// use pgwal::source::SharedSegments;
    /// use pgwal::Lsn;
    /// let shared = SharedSegments::new(3);
    /// // ... readers read their parts of the segments before 0/3000000 ...
    /// shared.give_back_before(Lsn(0x300_0000));
    /// ```
    pub fn give_back_before(&self, lsn: Lsn) {
        let mut done = Vec::new();
        if let Ok(mut maps) = self.maps.lock() {
            for m in maps.iter_mut() {
                // Only mapped pages are given back; decompressed bytes go with the segment.
                let Some(Some(bytes)) = m.bytes.get() else {
                    continue;
                };
                if !bytes.is_mapped() {
                    continue;
                }
                let len = bytes.len();
                let start = m.end.0.saturating_sub(len as u64);
                let read = lsn.0.saturating_sub(start).min(len as u64) as usize;
                let upto = if read == len {
                    len
                } else {
                    read / OS_PAGE * OS_PAGE
                };
                if upto > m.released && (upto == len || upto - m.released >= SHARED_RELEASE_EVERY) {
                    done.push((bytes.clone(), m.released, upto));
                    m.released = upto;
                }
            }
        }
        for (bytes, from, to) in done {
            bytes.give_back(from, to);
        }
    }
}

impl SharedSegments {
    /// Maps the complete, uncompressed segment files of `range` from the one holding `at` on,
    /// up to 1 GB of them, when fewer than half of those are mapped already; readers then
    /// take these mappings rather than map the files themselves. Mapping takes the process's
    /// mapping lock for writing, which makes every other reader's page faults and populating
    /// wait: done here in one go, before or between the readers' work, rather than by each
    /// reader as it reaches a new segment. Nothing is read. Returns at once if another thread
    /// is mapping ahead.
    ///
    /// ```no_run
    /// use pgwal::source::{ReadRange, SharedSegments, WalDirectory};
    /// # fn range() -> ReadRange { unimplemented!() }
    /// let dir = WalDirectory::scan("pg_wal".as_ref())?;
    /// let range = range();
    /// let shared = SharedSegments::new(3);
    /// shared.map_ahead(&dir, &range, range.start);
    /// # Ok::<(), pgwal::source::SourceError>(())
    /// ```
    pub fn map_ahead(&self, dir: &WalDirectory, range: &ReadRange, at: Lsn) {
        if dir.is_virtual() {
            return;
        }
        let Ok(mut ahead) = self.ahead.try_lock() else {
            return;
        };
        let seg_size = range.config.seg_size;
        let seg_bytes = seg_size.bytes();
        let batch = (MAP_AHEAD_BYTES / seg_bytes).max(1);
        let first = at.segment(seg_size).0;
        if ahead.next > first + batch / 2 {
            return;
        }
        let upto = first + batch;
        for segno in ahead.next.max(first)..upto {
            let segno = SegNo(segno);
            let start = segno.start_lsn(seg_size).unwrap_or(Lsn::MAX);
            if range.end.is_some_and(|e| start >= e) {
                break;
            }
            let Ok(Some(path)) = dir.locate(range.timeline_of(segno), segno, seg_size) else {
                break;
            };
            if path.extension().is_some_and(|e| e == "partial") {
                break;
            }
            let Ok(mut file) = File::open(&path) else {
                continue;
            };
            let mut head = [0u8; 4];
            let plain = read_full(&mut file, &mut head)
                .is_ok_and(|n| sniff_compression(&head[..n]) == Compression::None);
            let whole = file.metadata().is_ok_and(|m| m.len() == seg_bytes);
            if plain && whole && seg_bytes <= MAX_SEGMENT_BYTES {
                if let Some(map) = map_segment(&file, true) {
                    ahead.maps.insert(path, WalBytes::Mapped(map));
                }
            }
        }
        ahead.next = upto;
    }

    /// Gives back the mapped pages of the segments that lie wholly in `from..to`: for the
    /// reader of a part that covers whole segments, once it has read it. Its pages are then
    /// dropped by the thread (and core) that mapped and read them, which costs the kernel
    /// less than dropping them from another core later with
    /// [`give_back_before`](Self::give_back_before) (which skips them).
    ///
    /// ```
    /// use pgwal::source::SharedSegments;
    /// use pgwal::Lsn;
    /// let shared = SharedSegments::new(3);
    /// // ... a reader reads the part 0/2000000..0/3000000 (one 16 MB segment) ...
    /// shared.give_back_within(Lsn(0x200_0000), Lsn(0x300_0000));
    /// ```
    pub fn give_back_within(&self, from: Lsn, to: Lsn) {
        let mut done = Vec::new();
        if let Ok(mut maps) = self.maps.lock() {
            for m in maps.iter_mut() {
                let Some(Some(bytes)) = m.bytes.get() else {
                    continue;
                };
                let len = bytes.len();
                let start = m.end.0.saturating_sub(len as u64);
                if bytes.is_mapped() && start >= from.0 && m.end <= to && m.released < len {
                    done.push((bytes.clone(), m.released, len));
                    m.released = len;
                }
            }
        }
        for (bytes, from, to) in done {
            bytes.give_back(from, to);
        }
    }
}

fn read_range_in(
    dir: &WalDirectory,
    range: &ReadRange,
    shared: Option<&SharedSegments>,
    live: bool,
    next_part: Option<Lsn>,
    mut visit: impl FnMut(&Record<'_>) -> ControlFlow<()>,
) -> Result<ReadEnd, SourceError> {
    let cfg = range.config;
    let seg_size = cfg.seg_size;
    let mut decoder = WalDecoder::new(cfg, range.start);
    let mut segno = range.start.segment(seg_size);
    let mut offset = range
        .start
        .page_start(cfg.page_size)
        .segment_offset(seg_size) as usize;
    let mut buf = Vec::new();
    let tli_of = |segno: SegNo| range.timeline_of(segno);
    loop {
        let seg_start = segno.start_lsn(seg_size).unwrap_or(Lsn::MAX);
        if range.end.is_some_and(|e| seg_start >= e) {
            return Ok(ReadEnd::ReachedEnd);
        }
        let tli = tli_of(segno);
        let Some(path) = dir.locate(tli, segno, seg_size)? else {
            return Ok(ReadEnd::EndOfWal {
                at: valid_end(&decoder, range.start),
                reason: None,
                missing: Some(segno.file_name(tli, seg_size)),
            });
        };
        let limit = match range.end {
            Some(e) if e.0 < seg_start.0 + seg_size.bytes() => (e.0 - seg_start.0) as usize,
            _ => seg_size.bytes() as usize,
        };
        let mut stopped = false;
        let mut failure: Option<Result<ReadEnd, SourceError>> = None;
        let sizes = (offset, limit, seg_size.bytes());
        let seg_end = Lsn(seg_start.0.saturating_add(seg_size.bytes()));
        let next = segno.next();
        let may_change = live && !segment_begun(dir, tli_of(next), next, seg_size);
        let path = path.as_path();
        // Where in this segment the next reader's part begins.
        let others_from =
            next_part.and_then(|n| (n < seg_end).then(|| n.0.saturating_sub(seg_start.0) as usize));
        let fed = for_each_piece(
            dir,
            path,
            sizes,
            seg_end,
            (shared, others_from),
            may_change,
            &mut buf,
            |piece| {
                let mut input: &[u8] = piece;
                loop {
                    match decoder.decode(&mut input) {
                        // By reference: moving the record out would copy it through memory just
                        // written, which stalls on every record.
                        Ok(Some(ref rec)) => {
                            if visit(rec).is_break() {
                                stopped = true;
                                return false;
                            }
                        }
                        Ok(None) => return true,
                        Err(error) if error.is_end_of_wal() => {
                            // Live, reading resumes at `at`: a record begun before an unwritten
                            // page is read again from its start, not lost.
                            let at = match decoder.pending_record() {
                                Some(rec) if live => rec,
                                _ => error.lsn,
                            };
                            failure = Some(Ok(ReadEnd::EndOfWal {
                                at,
                                reason: Some(error),
                                missing: None,
                            }));
                            return false;
                        }
                        Err(error) => {
                            failure = Some(Err(SourceError::Corrupt {
                                path: path.to_owned(),
                                error,
                            }));
                            return false;
                        }
                    }
                }
            },
        )?;
        if let Some(f) = failure {
            return f;
        }
        if stopped {
            return Ok(ReadEnd::Stopped);
        }
        let data_len = fed;
        // A file shorter than a segment (compressed `.partial`) ends the WAL we have.
        let fed_to = seg_start.0 + offset as u64 + data_len as u64;
        if range.end.is_some_and(|e| fed_to >= e.0) {
            return Ok(ReadEnd::ReachedEnd);
        }
        if (offset + data_len) as u64 != seg_size.bytes() {
            return Ok(ReadEnd::EndOfWal {
                at: valid_end(&decoder, range.start),
                reason: None,
                missing: None,
            });
        }
        segno = segno.next();
        offset = 0;
    }
}

/// Whether the file of segment `segno` in `dir` has been begun: its first page header carries
/// the segment's own address (a recycled file carries the address it had before).
fn segment_begun(dir: &WalDirectory, tli: TimelineId, segno: SegNo, seg_size: WalSegSize) -> bool {
    let Some(path) = dir.segment(tli, segno, seg_size) else {
        return false;
    };
    let Ok(mut file) = File::open(&path) else {
        return false;
    };
    let mut head = [0u8; crate::wal::LONG_HEADER_SIZE];
    let Ok(n) = read_full(&mut file, &mut head) else {
        return false;
    };
    // Compressed files are complete copies; the segment they hold was finished.
    if sniff_compression(&head[..n]) != Compression::None {
        return true;
    }
    let expected = segno.start_lsn(seg_size);
    probe_segment(&head[..n]).is_ok_and(|i| Some(i.pageaddr) == expected)
}

/// Where the valid WAL read so far ends: the start of a record left incomplete, else the end of
/// the last complete record, else `start`.
fn valid_end(decoder: &WalDecoder, start: Lsn) -> Lsn {
    decoder
        .pending_record()
        .or(decoder.last_record_end())
        .unwrap_or(start)
}

/// Bytes read from a plain file per call: small enough to keep memory flat, large enough to
/// make the read calls' cost negligible.
const PIECE: usize = 1 << 20;

/// Mapped pages of a segment are given back to the kernel every this many bytes.
const RELEASE_EVERY: usize = 8 << 20;

/// Feeds the bytes `offset..limit` of a WAL file to `f` in pieces (plain files are read
/// piece by piece; compressed ones are decompressed whole). Stops early when `f` returns false.
/// Returns how many bytes were fed.
/// `sizes` is (offset, limit, segment size), `seg_end` where the segment's WAL ends; mappings
/// of complete segments come from `shared` if given, and bytes of a shared segment file from
/// `others_from` on (where another reader's part begins) are read, not mapped. A file that
/// `may_change` (being written) is read, never mapped.
#[allow(clippy::too_many_arguments)]
fn for_each_piece(
    dir: &WalDirectory,
    path: &Path,
    (offset, limit, seg_bytes): (usize, usize, u64),
    seg_end: Lsn,
    (shared, others_from): (Option<&SharedSegments>, Option<usize>),
    may_change: bool,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(&[u8]) -> bool,
) -> Result<usize, SourceError> {
    use std::io::{Seek, SeekFrom};
    // Archive members and objects are not files to read from.
    let shared_release = match others_from {
        Some(from) if !dir.is_virtual() => Release::Shared(Some((from, path))),
        _ => Release::Shared(None),
    };
    // Another reader loaded this segment already (and found it a usable whole).
    if let Some(bytes) = shared.and_then(|sh| sh.cached(path)) {
        return Ok(feed_whole(&bytes, offset, limit, shared_release, f));
    }
    if dir.is_virtual() {
        // An archive member or an object: its bytes in place (or decompressed), never a file.
        let partial = path.extension().is_some_and(|e| e == "partial");
        let fits = |len: usize| partial || len as u64 == seg_bytes;
        let load = || dir.read_file(path).ok().filter(|w| fits(w.len()));
        if let Some(whole) = shared.and_then(|sh| sh.get_or_load(path, seg_end, load)) {
            return Ok(feed_whole(&whole, offset, limit, shared_release, f));
        }
        let whole = dir.read_file(path)?;
        if !fits(whole.len()) {
            return Err(SourceError::WrongSize {
                path: path.to_owned(),
                size: whole.len() as u64,
                expected: seg_bytes,
            });
        }
        return Ok(feed_whole(&whole, offset, limit, Release::AsItGoes, f));
    }
    let mut file = File::open(path).map_err(io_err(path))?;
    let mut head = [0u8; 4];
    let n = read_full(&mut file, &mut head).map_err(io_err(path))?;
    let kind = sniff_compression(&head[..n]);
    let partial = path.extension().is_some_and(|e| e == "partial");
    let mappable = !partial && !may_change;
    let wrong = |size: u64| SourceError::WrongSize {
        path: path.to_owned(),
        size,
        expected: seg_bytes,
    };
    if kind != Compression::None {
        // Readers of other parts of this segment use the bytes decompressed once.
        let fits = |len: usize| partial || len as u64 == seg_bytes;
        let load = || read_wal_file(path).ok().filter(|w| fits(w.len()));
        if let Some(whole) = shared.and_then(|sh| sh.get_or_load(path, seg_end, load)) {
            return Ok(feed_whole(&whole, offset, limit, shared_release, f));
        }
        let whole = read_wal_file(path)?;
        if !fits(whole.len()) {
            return Err(wrong(whole.len() as u64));
        }
        return Ok(feed_whole(&whole, offset, limit, Release::AsItGoes, f));
    }
    let size = file.metadata().map_err(io_err(path))?.len();
    // A segment being written that is short (another process truncated it) is read as far as
    // it goes, like a `.partial` one: its WAL ends there for now.
    if mappable && size != seg_bytes {
        return Err(wrong(size));
    }
    if let Some(bytes) = shared
        .filter(|_| size <= MAX_SEGMENT_BYTES && mappable)
        .and_then(|sh| {
            sh.get_or_load(path, seg_end, || {
                map_segment(&file, true).map(WalBytes::Mapped)
            })
        })
    {
        return Ok(feed_whole(&bytes, offset, limit, shared_release, f));
    }
    if size <= MAX_SEGMENT_BYTES && mappable {
        // A complete segment is mapped; a `.partial` one, or one being written, may still
        // change (or be truncated, which would fault a mapping), so it is read.
        if let Some(map) = map_segment(&file, false) {
            let bytes = WalBytes::Mapped(map);
            return Ok(feed_whole(&bytes, offset, limit, Release::AsItGoes, f));
        }
    }
    file.seek(SeekFrom::Start(offset as u64))
        .map_err(io_err(path))?;
    buf.resize(PIECE, 0);
    let mut pos = offset;
    while pos < limit {
        let want = (limit - pos).min(PIECE);
        let got = read_full(&mut file, &mut buf[..want]).map_err(io_err(path))?;
        if got == 0 {
            break;
        }
        pos += got;
        if !f(&buf[..got]) || got < want {
            break;
        }
    }
    Ok(pos - offset)
}

/// The operating system's memory page: mappings are given back in whole pages (segment sizes
/// are multiples of it).
const OS_PAGE: usize = 4096;

/// Pages of a shared mapping of a large segment are given back this many bytes at a time
/// (segments of 16 MB, the default, are given back whole).
const SHARED_RELEASE_EVERY: usize = 32 << 20;

/// Bytes of a shared mapping populated by a reader's first call: readers of parts may need
/// only a little of a segment, so less than a [`PIECE`]. Each later call populates twice as
/// much, up to [`SHARED_PIECE_MAX`], each ending at a multiple of its size: a reader of a
/// whole 16 MB segment then makes 11 calls rather than 64 (each call takes the process's mapping lock, whose cache line the other readers'
/// calls and page faults pull to their own cores; `--stats -j2` on PostgreSQL 19 WAL spent
/// 6–7% more CPU time with pieces of 256 kB throughout).
const SHARED_PIECE: usize = 256 << 10;

/// The most bytes of a shared mapping populated per call.
const SHARED_PIECE_MAX: usize = 2 << 20;

/// Maps a complete segment file for reading in order; `shared` for a mapping several threads
/// read ([`MappedSegment::map_shared`]).
fn map_segment(file: &File, shared: bool) -> Option<MappedSegment> {
    // Only complete segments (named without `.partial`, and not the one a server is writing)
    // are mapped, and they are immutable: PostgreSQL and pgwal only rename whole segments
    // into place, so the mapping cannot change under us.
    if shared {
        // SAFETY: as above.
        unsafe { MappedSegment::map_shared(file) }.ok()
    } else {
        // SAFETY: as above.
        unsafe { MappedSegment::map(file) }.ok()
    }
}

/// How a reader gives back the pages of a mapping it has read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Release<'a> {
    /// Its own mapping: every [`RELEASE_EVERY`] bytes while reading (each call costs a TLB
    /// flush, which with several decoding threads means an interrupt to every other core: hence
    /// not after every piece), and at the end by dropping the mapping.
    AsItGoes,
    /// A mapping shared with readers of other parts: not by the reader, but for all readers
    /// at once by [`SharedSegments::give_back_before`]. With `(from, file)`, the bytes from
    /// offset `from` on, which another reader's part begins with, are read from `file`.
    Shared(Option<(usize, &'a Path)>),
}

/// Feeds the bytes `offset..limit` of a segment's bytes to `f`, stopping early when `f`
/// returns false; returns how many bytes were fed. Mapped bytes (a segment file, a member of
/// an uncompressed archive) go piece by piece, each piece's pages mapped in one call rather
/// than one fault per few pages, and are given back as `release` says; bytes in memory go at
/// once.
fn feed_whole(
    bytes: &WalBytes,
    offset: usize,
    limit: usize,
    release: Release<'_>,
    mut f: impl FnMut(&[u8]) -> bool,
) -> usize {
    if !bytes.is_mapped() {
        let data = bytes.get(offset..limit.min(bytes.len())).unwrap_or(&[]);
        f(data);
        return data.len();
    }
    let (mut piece, max_piece) = match release {
        Release::AsItGoes => (PIECE, PIECE),
        Release::Shared(_) => (SHARED_PIECE, SHARED_PIECE_MAX),
    };
    let mut others = match release {
        Release::Shared(Some((from, path))) => Some(OthersPages::new(from, path)),
        _ => None,
    };
    let end = limit.min(bytes.len());
    let mut pos = offset.min(end);
    // Pages before this are given back.
    let mut kept_from = (pos / OS_PAGE) * OS_PAGE;
    while pos < end {
        if let Some(o) = others.as_mut().filter(|o| pos >= o.from) {
            match o.read(pos, end) {
                Some(data) => {
                    let next = pos + data.len();
                    let go_on = f(data);
                    pos = next;
                    if !go_on {
                        break;
                    }
                    continue;
                }
                // Unreadable: the mapping has the same bytes.
                None => others = None,
            }
        }
        let next = match release {
            Release::AsItGoes => (pos + piece).min(end),
            // At a multiple of the piece's size: chunks of a parallel read start at multiples
            // of theirs, so a reader does not populate what the next chunk's reader will.
            Release::Shared(_) => ((pos / piece + 1) * piece).min(end),
        };
        let next = match &others {
            Some(o) if pos < o.from => next.min(o.from),
            _ => next,
        };
        bytes.populate(pos, next);
        piece = (piece * 2).min(max_piece);
        let go_on = f(&bytes[pos..next]);
        if release == Release::AsItGoes && next < end && next - kept_from >= RELEASE_EVERY {
            let upto = (next / OS_PAGE) * OS_PAGE;
            bytes.give_back(kept_from, upto);
            kept_from = upto;
        }
        pos = next;
        if !go_on {
            break;
        }
    }
    // A segment's own mapping goes with it; an archive's stays, so its pages are given back.
    if release == Release::AsItGoes && matches!(bytes, WalBytes::Member(_)) {
        bytes.give_back(kept_from, pos);
    }
    pos - offset
}

/// Bytes read from another reader's part of a shared segment per call.
const OTHERS_PIECE: usize = 16 << 10;

/// The pages of a shared segment that another reader's part begins with, read with `read()`
/// (see [`read_range_shared`]): the file opened on first use.
struct OthersPages<'a> {
    /// Offset in the segment where the other reader's part begins.
    from: usize,
    path: &'a Path,
    file: Option<File>,
    buf: Vec<u8>,
}

impl<'a> OthersPages<'a> {
    fn new(from: usize, path: &'a Path) -> OthersPages<'a> {
        OthersPages {
            from,
            path,
            file: None,
            buf: Vec::new(),
        }
    }

    /// The bytes from `pos` (up to a piece, not past `end`), or `None` if they cannot be read
    /// whole.
    fn read(&mut self, pos: usize, end: usize) -> Option<&[u8]> {
        use std::io::{Seek, SeekFrom};
        let len = (end - pos).min(OTHERS_PIECE);
        let file = match &mut self.file {
            Some(f) => f,
            none => none.insert(File::open(self.path).ok()?),
        };
        file.seek(SeekFrom::Start(pos as u64)).ok()?;
        self.buf.resize(len, 0);
        let n = read_full(file, &mut self.buf).ok()?;
        (n == len).then_some(&self.buf[..])
    }
}

#[cfg(test)]
mod shared_tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// How far each shared segment's pages were given back.
    fn released(shared: &SharedSegments) -> Vec<usize> {
        shared
            .maps
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.released)
            .collect()
    }

    #[test]
    fn give_back_within_gives_back_only_segments_wholly_inside() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/wal/pg18");
        let wd = WalDirectory::scan(&dir).unwrap();
        let (_, first) = wd.first_segment().unwrap();
        let info = probe_segment(&read_wal_file(&first).unwrap()).unwrap();
        let cfg = crate::wal::DecoderConfig::new(info.seg_size).with_page_size(info.page_size);
        let range = ReadRange::new(info.pageaddr, info.tli, cfg);
        let shared = SharedSegments::new(4);
        read_range_shared(&wd, &range, &shared, None, |_| ControlFlow::Continue(())).unwrap();
        // Both segments mapped, nothing given back yet.
        assert_eq!(released(&shared), vec![0, 0]);
        let (s0, seg) = (info.pageaddr.0, info.seg_size.bytes());
        let whole = seg as usize;
        // A part holding the first segment and a page of the second.
        shared.give_back_within(Lsn(s0), Lsn(s0 + seg + 8192));
        assert_eq!(released(&shared), vec![whole, 0]);
        // A part that begins inside the second segment.
        shared.give_back_within(Lsn(s0 + seg + 8192), Lsn(s0 + 2 * seg));
        assert_eq!(released(&shared), vec![whole, 0]);
        shared.give_back_within(Lsn(s0 + seg), Lsn::MAX);
        assert_eq!(released(&shared), vec![whole, whole]);
        // `give_back_before` finds nothing left to give back.
        shared.give_back_before(Lsn::MAX);
        assert_eq!(released(&shared), vec![whole, whole]);
    }
}
