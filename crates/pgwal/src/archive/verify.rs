//! `verify`: decode every archived segment and report what recovery from the archive would
//! trip over.
//!
//! Checks, per file: the long page header (WAL magic, page address matching the name, segment
//! size, system identifier agreeing with the archive), the size, decompression; per timeline:
//! missing segments (gaps), every record (CRC, prev-link, page headers, continuation across
//! pages and segments, decoded as one stream from the first to the last segment); across
//! timelines: a history file for every timeline above 1, history files agreeing with their
//! parents, switch points at a record boundary and matching the parent's bytes, no segment of
//! a timeline before its switch point; and leftovers (`.partial` files that are neither the
//! parent's segment at a switch nor the in-progress tail of the newest timeline, temporary
//! files).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::archive::listing::{self, other_files, temp_files};
use crate::history::TimelineHistory;
use crate::lsn::Lsn;
use crate::segment::{Compression, SegNo, TimelineId, WalFileName, WalSegSize};
use crate::source::{preference, SourceError, WalBytes, WalDirectory, WalEntry};
use crate::storage::probe::{probe_segment, SegmentInfo};
use crate::wal::{DecoderConfig, PgVersion, WalDecoder, LONG_HEADER_SIZE, SHORT_HEADER_SIZE};

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Recovery from the archive would fail or lose WAL.
    Error,
    /// Worth a look, but not damage (an in-progress `.partial`, a temporary file).
    Warning,
    /// Expected and harmless (the parent's `.partial` segment at a timeline switch).
    Info,
}

impl Severity {
    /// `error`, `warning` or `info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// What kind of finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemKind {
    /// One or more segments are missing between archived ones.
    MissingSegment,
    /// A segment holds fewer (or more) bytes than a segment.
    TruncatedSegment,
    /// A record or page inside a segment is invalid (CRC, prev-link, page address, ...).
    CorruptWal,
    /// Valid WAL ends inside a segment although the timeline continues after it.
    WalEndsEarly,
    /// The file does not start with a valid WAL page header for its name.
    NotWal,
    /// The file cannot be read or decompressed.
    Unreadable,
    /// The segment comes from another database system (system identifier).
    ForeignSystem,
    /// The segment's size differs from the archive's other segments.
    SegmentSizeMismatch,
    /// A timeline above 1 has segments but no history file.
    MissingHistory,
    /// A history file cannot be parsed or lists impossible timelines.
    BadHistory,
    /// A history file disagrees with its parent's.
    HistoryMismatch,
    /// A history switch point is not where the WAL switches timeline.
    SwitchPointMismatch,
    /// A segment of a timeline precedes the timeline's switch point.
    SegmentBeforeTimeline,
    /// Several copies of a segment (different compressions) differ.
    ConflictingCopies,
    /// A segment is stored in several forms (`X` and `X.zst`, say) holding the same WAL: an
    /// identical twin, which a receiver killed during an upload can leave. Harmless;
    /// `archive cleanup` on an object store keeps one.
    IdenticalCopies,
    /// A `.partial` file that should not be there.
    PartialLeftover,
    /// A `.partial` file at the end of the newest timeline (a receiver may be writing it).
    PartialInProgress,
    /// The `.partial` segment of the parent timeline at a switch point (normal after a
    /// promotion).
    PartialAtSwitch,
    /// A temporary file of an interrupted push or receive.
    TempLeftover,
}

impl ProblemKind {
    /// A stable snake_case code for JSON output.
    pub fn code(self) -> &'static str {
        match self {
            ProblemKind::MissingSegment => "missing_segment",
            ProblemKind::TruncatedSegment => "truncated_segment",
            ProblemKind::CorruptWal => "corrupt_wal",
            ProblemKind::WalEndsEarly => "wal_ends_early",
            ProblemKind::NotWal => "not_wal",
            ProblemKind::Unreadable => "unreadable",
            ProblemKind::ForeignSystem => "foreign_system",
            ProblemKind::SegmentSizeMismatch => "segment_size_mismatch",
            ProblemKind::MissingHistory => "missing_history",
            ProblemKind::BadHistory => "bad_history",
            ProblemKind::HistoryMismatch => "history_mismatch",
            ProblemKind::SwitchPointMismatch => "switch_point_mismatch",
            ProblemKind::SegmentBeforeTimeline => "segment_before_timeline",
            ProblemKind::ConflictingCopies => "conflicting_copies",
            ProblemKind::IdenticalCopies => "identical_copies",
            ProblemKind::PartialLeftover => "partial_leftover",
            ProblemKind::PartialInProgress => "partial_in_progress",
            ProblemKind::PartialAtSwitch => "partial_at_switch",
            ProblemKind::TempLeftover => "temp_leftover",
        }
    }
}

/// One finding of [`verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// How bad.
    pub severity: Severity,
    /// What kind.
    pub kind: ProblemKind,
    /// The timeline concerned.
    pub tli: Option<TimelineId>,
    /// The file concerned (for a gap: the first missing segment's name).
    pub file: Option<String>,
    /// Where (for a gap: the start of the missing range).
    pub lsn: Option<Lsn>,
    /// For a gap: the end of the missing range (exclusive).
    pub end_lsn: Option<Lsn>,
    /// Human-readable description.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// What [`verify`] found about one timeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineSummary {
    /// The timeline.
    pub tli: TimelineId,
    /// Parent timeline and switch point, from the history file.
    pub parent: Option<(TimelineId, Lsn)>,
    /// Whether the archive has its history file.
    pub has_history: bool,
    /// First segment file of the timeline.
    pub first_segment: Option<String>,
    /// Last segment file of the timeline.
    pub last_segment: Option<String>,
    /// Segment files (complete and `.partial`) of the timeline.
    pub segment_files: usize,
    /// Where the timeline's WAL starts in the archive: its first segment's start, or its switch
    /// point if that lies in its first segment.
    pub start_lsn: Option<Lsn>,
    /// The end of valid WAL in its last segment.
    pub end_lsn: Option<Lsn>,
    /// Records decoded.
    pub records: u64,
}

/// The result of [`verify`].
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// The archive directory.
    pub dir: PathBuf,
    /// The system identifier of (most of) the archived segments.
    pub system_id: Option<u64>,
    /// Their segment size.
    pub seg_size: Option<WalSegSize>,
    /// Their PostgreSQL version.
    pub version: Option<PgVersion>,
    /// Per timeline, ascending.
    pub timelines: Vec<TimelineSummary>,
    /// Findings, in the order found.
    pub problems: Vec<Problem>,
    /// Segment files decoded.
    pub segments_checked: usize,
    /// Bytes of WAL decoded.
    pub bytes_checked: u64,
    /// Records decoded.
    pub records: u64,
    /// History files read.
    pub history_files: usize,
    /// Other files in the directory (ignored).
    pub other_files: usize,
}

impl VerifyReport {
    /// Findings of [`Severity::Error`].
    pub fn errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }

    /// Findings of [`Severity::Warning`].
    pub fn warnings(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
            .count()
    }

    /// True when there is no error.
    pub fn is_ok(&self) -> bool {
        self.errors() == 0
    }
}

/// Progress of [`verify`], passed to its callback after each segment.
#[derive(Clone, Debug, Default)]
pub struct VerifyProgress {
    /// Segments decoded so far.
    pub done: usize,
    /// Segments to decode in all.
    pub total: usize,
    /// The file just decoded.
    pub file: String,
}

/// A temporary file younger than this may belong to a push that is still running.
const TEMP_GRACE: Duration = Duration::from_secs(600);

/// One archived file of a segment, with what its first page says.
#[derive(Clone, Debug)]
pub(crate) struct SegFile {
    pub(crate) entry: WalEntry,
    /// Where it is.
    pub(crate) path: PathBuf,
    pub(crate) partial: bool,
    pub(crate) head: Result<SegmentInfo, String>,
    /// Excluded from decoding (foreign, wrong header...).
    pub(crate) bad: bool,
}

/// The archive's segment files by (timeline, segment), with the segment size.
#[derive(Debug, Default)]
pub(crate) struct SegmentIndex {
    pub(crate) seg_size: Option<WalSegSize>,
    pub(crate) page_size: u32,
    pub(crate) system_id: Option<u64>,
    pub(crate) version: Option<PgVersion>,
    /// (tli, segno) → files: complete ones first (plain first), then `.partial` ones.
    pub(crate) slots: BTreeMap<(u32, u64), Vec<SegFile>>,
    /// Files whose name does not fit the segment size, or unreadable heads when no size is
    /// known.
    pub(crate) unplaced: Vec<SegFile>,
    /// The listing the files are in, which reads them (from a directory, or an object store
    /// on demand).
    pub(crate) files: WalDirectory,
}

/// A read error as the directory code worded it: a file's I/O error by itself (the finding
/// names the file), anything else (an object store's error, naming URL and key) whole.
fn io_cause(e: &SourceError) -> String {
    match e {
        SourceError::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

fn most_common<T: Ord + Copy>(items: impl Iterator<Item = T>) -> Option<T> {
    let mut counts: BTreeMap<T, usize> = BTreeMap::new();
    for i in items {
        *counts.entry(i).or_default() += 1;
    }
    counts.into_iter().max_by_key(|&(_, n)| n).map(|(v, _)| v)
}

impl SegmentIndex {
    /// Reads the first page of every segment file and indexes them.
    pub(crate) fn build(listing: &WalDirectory) -> SegmentIndex {
        let segs: Vec<(&WalEntry, bool, PathBuf)> = listing
            .entries()
            .iter()
            .filter_map(|e| match e.wal {
                WalFileName::Segment { partial, .. } => {
                    Some((e, partial, listing.file_path(&e.name)))
                }
                _ => None,
            })
            .collect();
        let paths: Vec<PathBuf> = segs.iter().map(|(_, _, p)| p.clone()).collect();
        // Several at once from an object store.
        let heads = listing.read_heads(&paths, LONG_HEADER_SIZE);
        let mut files: Vec<SegFile> = Vec::new();
        for ((e, partial, path), head) in segs.into_iter().zip(heads) {
            let head = head
                .map_err(|err| format!("cannot read: {}", io_cause(&err)))
                .and_then(|h| probe_segment(&h).map_err(|e| e.to_string()));
            files.push(SegFile {
                entry: e.clone(),
                path,
                partial,
                head,
                bad: false,
            });
        }
        let good = || files.iter().filter_map(|f| f.head.as_ref().ok());
        let mut idx = SegmentIndex {
            seg_size: most_common(good().map(|h| h.seg_size.bytes_u32())).and_then(WalSegSize::new),
            page_size: most_common(good().map(|h| h.page_size))
                .unwrap_or(crate::wal::DEFAULT_PAGE_SIZE),
            system_id: most_common(good().map(|h| h.system_id)),
            version: most_common(good().map(|h| h.version.magic())).and_then(PgVersion::from_magic),
            files: listing.clone(),
            ..SegmentIndex::default()
        };
        for f in files {
            let slot = idx.seg_size.and_then(|s| f.entry.wal.segno(s));
            match slot {
                Some(n) => idx
                    .slots
                    .entry((f.entry.wal.timeline().0, n.0))
                    .or_default()
                    .push(f),
                None => idx.unplaced.push(f),
            }
        }
        for v in idx.slots.values_mut() {
            v.sort_by_key(|f| preference(&f.entry.wal));
        }
        idx
    }

    /// The content of `f` (decompressed), read through the listing.
    pub(crate) fn read(&self, f: &SegFile) -> Result<WalBytes, SourceError> {
        self.files.read_file(&f.path)
    }

    /// The preferred usable file of a slot: complete before partial, plain before compressed.
    pub(crate) fn chosen(&self, tli: u32, segno: u64) -> Option<&SegFile> {
        self.slots
            .get(&(tli, segno))
            .and_then(|v| v.iter().find(|f| !f.bad))
    }
}

struct Ctx {
    report: VerifyReport,
    seen: HashSet<(ProblemKind, Option<String>, Option<Lsn>)>,
}

impl Ctx {
    /// Records a finding once (the same kind, file and LSN found twice is reported once).
    fn add(&mut self, p: Problem) {
        if self.seen.insert((p.kind, p.file.clone(), p.lsn)) {
            self.report.problems.push(p);
        }
    }

    fn error(
        &mut self,
        kind: ProblemKind,
        tli: TimelineId,
        file: Option<String>,
        lsn: Option<Lsn>,
        message: String,
    ) {
        self.add(Problem {
            severity: Severity::Error,
            kind,
            tli: Some(tli),
            file,
            lsn,
            end_lsn: None,
            message,
        });
    }
}

/// A timeline's parent and switch point.
#[derive(Clone, Copy, Debug)]
struct Fork {
    parent: TimelineId,
    at: Lsn,
}

/// Verifies the archive in `dir`; `progress` is called after each segment decoded.
///
/// The checks run as named phases over one index of the directory: leftover temporary files,
/// files that are not WAL, each segment's first page header, copies of one segment that
/// disagree, history files and their chains, segments outside their timeline, `.partial`
/// files, then every timeline decoded as one stream, and the gaps around switch points.
pub fn verify(dir: &Path, progress: impl FnMut(&VerifyProgress)) -> io::Result<VerifyReport> {
    Ok(verify_listing(&listing::scan(dir)?, progress))
}

/// [`verify`] of the archive `listing` indexes: a directory's scan, or an object store's
/// listing whose objects are read as the checks reach them (`reader::object::list`, feature
/// `object-store`). The report's `dir` is the listing's path (the URL).
pub fn verify_listing(
    listing: &WalDirectory,
    progress: impl FnMut(&VerifyProgress),
) -> VerifyReport {
    let mut ctx = Ctx {
        report: VerifyReport {
            dir: listing.path().to_owned(),
            other_files: other_files(listing).count(),
            ..VerifyReport::default()
        },
        seen: HashSet::new(),
    };
    check_temp_files(&mut ctx, listing);
    let mut idx = SegmentIndex::build(listing);
    ctx.report.seg_size = idx.seg_size;
    ctx.report.system_id = idx.system_id;
    ctx.report.version = idx.version;
    check_unplaced(&mut ctx, &idx);
    let Some(seg_size) = idx.seg_size else {
        finish_histories_only(&mut ctx, listing);
        return ctx.report;
    };
    check_headers(&mut ctx, &mut idx, seg_size);
    check_copies_agree(&mut ctx, &idx, seg_size);
    let histories = load_histories(&mut ctx, listing);
    let tl = Timelines::new(&idx, histories, seg_size);
    check_history_chains(&mut ctx, &tl);
    check_timelines(&mut ctx, &tl);
    check_partials(&mut ctx, &tl);
    decode_timelines(&mut ctx, &tl, progress);
    check_switch_gaps(&mut ctx, &tl);
    ctx.report
}

/// Temporary files older than the grace period.
fn check_temp_files(ctx: &mut Ctx, listing: &WalDirectory) {
    for t in temp_files(listing) {
        if t.age.is_none_or(|a| a > TEMP_GRACE) {
            ctx.add(Problem {
                severity: Severity::Warning,
                kind: ProblemKind::TempLeftover,
                tli: None,
                file: Some(t.name.clone()),
                lsn: None,
                end_lsn: None,
                message: format!(
                    "leftover temporary file \"{}\" (an interrupted push or receive); it can be removed",
                    t.name
                ),
            });
        }
    }
}

/// Files named like segments that are not WAL, or not a segment name for the segment size.
fn check_unplaced(ctx: &mut Ctx, idx: &SegmentIndex) {
    for f in &idx.unplaced {
        let tli = f.entry.wal.timeline();
        let msg = match &f.head {
            Err(e) => format!("\"{}\" is not a WAL segment: {e}", f.entry.name),
            Ok(h) => format!(
                "\"{}\" is not a possible segment name for segment size {}",
                f.entry.name, h.seg_size
            ),
        };
        ctx.error(
            ProblemKind::NotWal,
            tli,
            Some(f.entry.name.clone()),
            None,
            msg,
        );
    }
}

/// Each segment file's first page header: system, segment size, address, timeline; the size
/// of plain complete segments. A file that fails is marked bad and not used further.
fn check_headers(ctx: &mut Ctx, idx: &mut SegmentIndex, seg_size: WalSegSize) {
    let sysid = idx.system_id.unwrap_or(0);
    for (&(tli, segno), files) in idx.slots.iter_mut() {
        let tli = TimelineId(tli);
        let start = SegNo(segno).start_lsn(seg_size).unwrap_or_default();
        for f in files.iter_mut() {
            let name = f.entry.name.clone();
            let problem = match &f.head {
                Err(e) => Some((ProblemKind::NotWal, format!("\"{name}\" is not a WAL segment: {e}"))),
                Ok(h) if h.system_id != sysid => Some((
                    ProblemKind::ForeignSystem,
                    format!(
                        "\"{name}\" is from a different database system: system identifier {}, the archive's is {sysid}",
                        h.system_id
                    ),
                )),
                Ok(h) if h.seg_size != seg_size => Some((
                    ProblemKind::SegmentSizeMismatch,
                    format!("\"{name}\" has segment size {}, the archive's is {seg_size}", h.seg_size),
                )),
                Ok(h) if h.pageaddr != start => Some((
                    ProblemKind::NotWal,
                    format!("\"{name}\": first page address is {}, but the name says {start}", h.pageaddr),
                )),
                Ok(h) if h.tli > tli => Some((
                    ProblemKind::NotWal,
                    format!("\"{name}\": first page is on timeline {}, above the file name's {tli}", h.tli),
                )),
                Ok(_) => None,
            };
            if let Some((kind, msg)) = problem {
                f.bad = true;
                ctx.error(kind, tli, Some(name), Some(start), msg);
                continue;
            }
            if f.entry.wal.compression() == Compression::None
                && !f.partial
                && f.entry.size != seg_size.bytes()
            {
                ctx.error(
                    ProblemKind::TruncatedSegment,
                    tli,
                    Some(name.clone()),
                    Some(start),
                    format!(
                        "\"{name}\" is {} bytes long, a segment is {}",
                        f.entry.size,
                        seg_size.bytes()
                    ),
                );
            }
        }
    }
}

/// Copies of one segment in several compressions must hold the same WAL (an error if not);
/// identical ones are reported as twins (a warning).
fn check_copies_agree(ctx: &mut Ctx, idx: &SegmentIndex, seg_size: WalSegSize) {
    for (&(tli, segno), files) in &idx.slots {
        for partial in [false, true] {
            let copies: Vec<&SegFile> = files
                .iter()
                .filter(|f| f.partial == partial && !f.bad)
                .collect();
            if copies.len() < 2 {
                continue;
            }
            let first = idx.read(copies[0]).ok();
            for other in &copies[1..] {
                let same = match (&first, idx.read(other)) {
                    (Some(a), Ok(b)) => a[..] == b[..],
                    _ => false,
                };
                let start = SegNo(segno).start_lsn(seg_size);
                if same {
                    ctx.add(Problem {
                        severity: Severity::Warning,
                        kind: ProblemKind::IdenticalCopies,
                        tli: Some(TimelineId(tli)),
                        file: Some(other.entry.name.clone()),
                        lsn: start,
                        end_lsn: None,
                        message: format!(
                            "\"{}\" and \"{}\" are identical twins: one segment stored twice, the same WAL after decompression",
                            copies[0].entry.name, other.entry.name
                        ),
                    });
                } else {
                    ctx.error(
                        ProblemKind::ConflictingCopies,
                        TimelineId(tli),
                        Some(other.entry.name.clone()),
                        start,
                        format!(
                            "\"{}\" and \"{}\" hold different WAL",
                            copies[0].entry.name, other.entry.name
                        ),
                    );
                }
            }
        }
    }
}

/// Reads and checks every history file.
fn load_histories(ctx: &mut Ctx, listing: &WalDirectory) -> BTreeMap<u32, TimelineHistory> {
    let mut histories: BTreeMap<u32, TimelineHistory> = BTreeMap::new();
    for e in listing.entries() {
        let WalFileName::History { tli, .. } = e.wal else {
            continue;
        };
        ctx.report.history_files += 1;
        let parsed = listing
            .read_file(&listing.file_path(&e.name))
            .map_err(|err| err.to_string())
            .and_then(|b| TimelineHistory::parse(&b).map_err(|err| err.to_string()));
        match parsed {
            Ok(h) if h.entries.last().is_some_and(|l| l.tli >= tli) || h.entries.is_empty() => ctx
                .error(
                    ProblemKind::BadHistory,
                    tli,
                    Some(e.name.clone()),
                    None,
                    format!(
                        "\"{}\" does not end with a parent timeline below {tli}",
                        e.name
                    ),
                ),
            Ok(h) => {
                histories.insert(tli.0, h);
            }
            Err(err) => ctx.error(
                ProblemKind::BadHistory,
                tli,
                Some(e.name.clone()),
                None,
                format!("\"{}\": {err}", e.name),
            ),
        }
    }
    histories
}

/// The timelines of the archive: its segment index, history files and where each timeline
/// forked from its parent.
struct Timelines<'a> {
    idx: &'a SegmentIndex,
    histories: BTreeMap<u32, TimelineHistory>,
    forks: BTreeMap<u32, Fork>,
    /// Every timeline with segments or a history file.
    all: BTreeSet<u32>,
    /// Timelines that are some other timeline's parent.
    has_children: BTreeSet<u32>,
    seg_size: WalSegSize,
}

impl<'a> Timelines<'a> {
    fn new(
        idx: &'a SegmentIndex,
        histories: BTreeMap<u32, TimelineHistory>,
        seg_size: WalSegSize,
    ) -> Timelines<'a> {
        let forks: BTreeMap<u32, Fork> = histories
            .iter()
            .filter_map(|(&t, h)| {
                h.entries.last().map(|l| {
                    (
                        t,
                        Fork {
                            parent: l.tli,
                            at: l.switchpoint,
                        },
                    )
                })
            })
            .collect();
        let mut all: BTreeSet<u32> = idx.slots.keys().map(|&(t, _)| t).collect();
        all.extend(histories.keys().copied());
        let has_children = forks.values().map(|f| f.parent.0).collect();
        Timelines {
            idx,
            histories,
            forks,
            all,
            has_children,
            seg_size,
        }
    }

    /// The segment in which timeline `t` starts (its switch point's), if it forked.
    fn fork_seg(&self, t: u32) -> Option<u64> {
        self.forks.get(&t).map(|f| f.at.segment(self.seg_size).0)
    }

    /// The segments of timeline `t` that have a usable file.
    fn own(&self, t: u32) -> Vec<u64> {
        self.idx
            .slots
            .range((t, 0)..=(t, u64::MAX))
            .filter(|(_, v)| v.iter().any(|f| !f.bad))
            .map(|(&(_, n), _)| n)
            .collect()
    }
}

/// Each history file repeats its parent's and has switch points in order.
fn check_history_chains(ctx: &mut Ctx, tl: &Timelines<'_>) {
    let (histories, forks) = (&tl.histories, &tl.forks);
    for (&t, h) in histories {
        let Some(fork) = forks.get(&t) else { continue };
        if let Some(ph) = histories.get(&fork.parent.0) {
            let mine: Vec<(TimelineId, Lsn)> = h.entries[..h.entries.len() - 1]
                .iter()
                .map(|e| (e.tli, e.switchpoint))
                .collect();
            let theirs: Vec<(TimelineId, Lsn)> =
                ph.entries.iter().map(|e| (e.tli, e.switchpoint)).collect();
            if mine != theirs {
                ctx.error(
                    ProblemKind::HistoryMismatch,
                    TimelineId(t),
                    Some(format!("{t:08X}.history")),
                    None,
                    format!(
                        "{t:08X}.history does not repeat the history of its parent timeline {} ({:08X}.history)",
                        fork.parent, fork.parent.0
                    ),
                );
            }
        }
        if h.entries
            .windows(2)
            .any(|w| w[1].switchpoint < w[0].switchpoint)
        {
            ctx.error(
                ProblemKind::BadHistory,
                TimelineId(t),
                Some(format!("{t:08X}.history")),
                None,
                format!("{t:08X}.history has switch points that go backwards"),
            );
        }
    }
}

/// Timelines with segments but no history file, and segments before their timeline began.
fn check_timelines(ctx: &mut Ctx, tl: &Timelines<'_>) {
    let (histories, forks, seg_size) = (&tl.histories, &tl.forks, tl.seg_size);
    for &t in &tl.all {
        let segs = tl.own(t);
        if t > 1 && !histories.contains_key(&t) && !segs.is_empty() {
            let first = SegNo(segs[0]).file_name(TimelineId(t), seg_size);
            ctx.error(
                ProblemKind::MissingHistory,
                TimelineId(t),
                Some(format!("{t:08X}.history")),
                SegNo(segs[0]).start_lsn(seg_size),
                format!("timeline {t} has segments (from {first}) but the archive has no {t:08X}.history"),
            );
        }
        if let Some(fs) = tl.fork_seg(t) {
            for &n in segs.iter().filter(|&&n| n < fs) {
                let name = SegNo(n).file_name(TimelineId(t), seg_size);
                ctx.error(
                    ProblemKind::SegmentBeforeTimeline,
                    TimelineId(t),
                    Some(name.clone()),
                    SegNo(n).start_lsn(seg_size),
                    format!(
                        "\"{name}\" lies before timeline {t}'s switch point {} ({t:08X}.history)",
                        forks[&t].at
                    ),
                );
            }
        }
    }
}

/// What each `.partial` file is: the end of the newest timeline, a switch point's, or a
/// leftover.
fn check_partials(ctx: &mut Ctx, tl: &Timelines<'_>) {
    let (idx, forks, has_children, seg_size) = (tl.idx, &tl.forks, &tl.has_children, tl.seg_size);
    for (&(t, n), files) in &idx.slots {
        for f in files.iter().filter(|f| f.partial) {
            let has_full = files.iter().any(|g| !g.partial && !g.bad);
            let at_switch = forks
                .values()
                .any(|fk| fk.parent.0 == t && fk.at.segment(seg_size).0 == n);
            let last_of_leaf = !has_children.contains(&t) && tl.own(t).last() == Some(&n);
            let (sev, kind, why) = if has_full && at_switch {
                (
                    Severity::Warning,
                    ProblemKind::PartialAtSwitch,
                    "the promoted standby's copy of the parent timeline's segment at a switch point; the complete segment (the old primary kept writing) is archived too",
                )
            } else if has_full {
                (
                    Severity::Error,
                    ProblemKind::PartialLeftover,
                    "the complete segment is archived too; it can be removed",
                )
            } else if at_switch {
                (Severity::Info, ProblemKind::PartialAtSwitch, "the parent timeline's last segment at a switch point (normal after a promotion)")
            } else if last_of_leaf {
                (
                    Severity::Warning,
                    ProblemKind::PartialInProgress,
                    "the end of the newest timeline (a receiver may still be writing it)",
                )
            } else {
                (
                    Severity::Error,
                    ProblemKind::PartialLeftover,
                    "a leftover: later segments of the timeline are archived",
                )
            };
            ctx.add(Problem {
                severity: sev,
                kind,
                tli: Some(TimelineId(t)),
                file: Some(f.entry.name.clone()),
                lsn: SegNo(n).start_lsn(seg_size),
                end_lsn: None,
                message: format!("\"{}\": {why}", f.entry.name),
            });
        }
    }
}

/// Decodes each timeline as one stream (starting one segment early, in the parent's file, to
/// check continuity into a switch point), summarising each and reporting gaps, damage and
/// switch points that are not at a record boundary.
fn decode_timelines(ctx: &mut Ctx, tl: &Timelines<'_>, mut progress: impl FnMut(&VerifyProgress)) {
    let (idx, histories, seg_size) = (tl.idx, &tl.histories, tl.seg_size);
    let plans: Vec<(u32, Vec<u64>, Option<u32>)> = tl
        .all
        .iter()
        .map(|&t| {
            let fs = tl.fork_seg(t);
            let segs: Vec<u64> = tl
                .own(t)
                .into_iter()
                .filter(|&n| fs.is_none_or(|f| n >= f))
                .collect();
            // Start one segment early, in the parent's file, to check continuity into the switch.
            let lead: Option<u32> = match segs.first() {
                Some(&first) if first > 0 && Some(first) == fs => {
                    let prev_last_byte = Lsn((first * seg_size.bytes()).saturating_sub(1));
                    let owner = histories.get(&t).map_or(TimelineId(t), |h| {
                        h.timeline_of(prev_last_byte, TimelineId(t))
                    });
                    idx.chosen(owner.0, first - 1).map(|_| owner.0)
                }
                _ => None,
            };
            (t, segs, lead)
        })
        .collect();
    let total: usize = plans
        .iter()
        .map(|(t, s, lead)| {
            s.first()
                .zip(s.last())
                .map_or(0, |(&a, &b)| idx.slots.range((*t, a)..=(*t, b)).count())
                + usize::from(lead.is_some())
        })
        .sum();
    let cfg = DecoderConfig {
        seg_size,
        page_size: idx.page_size,
        system_id: idx.system_id,
        block_refs: true,
        keep_record_data: true,
    };
    let mut decoded = Decoded {
        done: 0,
        total,
        progress: &mut progress,
    };
    for plan in &plans {
        decode_timeline(ctx, tl, cfg, plan, &mut decoded);
    }
}

/// Progress over all timelines' segments.
struct Decoded<'p> {
    done: usize,
    total: usize,
    progress: &'p mut dyn FnMut(&VerifyProgress),
}

/// Decodes timeline `plan.0`'s segments `plan.1` (after the parent's segment `plan.2`, if
/// any) as one stream and adds its summary to the report.
fn decode_timeline(
    ctx: &mut Ctx,
    tl: &Timelines<'_>,
    cfg: DecoderConfig,
    plan: &(u32, Vec<u64>, Option<u32>),
    decoded: &mut Decoded<'_>,
) {
    let (idx, histories, forks, seg_size) = (tl.idx, &tl.histories, &tl.forks, tl.seg_size);
    let t = plan.0;
    let (segs, lead) = (&plan.1, &plan.2);
    let tli = TimelineId(t);
    let fork = forks.get(&t).copied();
    let mut summary = TimelineSummary {
        tli,
        parent: fork.map(|f| (f.parent, f.at)),
        has_history: histories.contains_key(&t),
        first_segment: None,
        last_segment: None,
        segment_files: idx
            .slots
            .range((t, 0)..=(t, u64::MAX))
            .map(|(_, v)| v.len())
            .sum(),
        start_lsn: None,
        end_lsn: None,
        records: 0,
    };
    let (Some(&first), Some(&last)) = (segs.first(), segs.last()) else {
        ctx.report.timelines.push(summary);
        return;
    };
    summary.first_segment = idx.chosen(t, first).map(|f| f.entry.name.clone());
    summary.last_segment = idx.chosen(t, last).map(|f| f.entry.name.clone());
    let first_start = SegNo(first).start_lsn(seg_size).unwrap_or_default();
    summary.start_lsn = Some(match fork {
        Some(f) if f.at.segment(seg_size).0 == first => f.at,
        _ => first_start,
    });
    let switch = fork
        .filter(|f| f.at.segment(seg_size).0 == first)
        .map(|f| f.at);
    let mut boundary_found = false;
    let mut decoder: Option<WalDecoder> = None;
    // Only the segments present are visited (a stray far-away name costs nothing); a jump
    // between two is a gap.
    let mut steps: Vec<(u32, u64)> = Vec::new();
    if let Some(owner) = lead {
        steps.push((*owner, first - 1));
    }
    steps.extend(
        idx.slots
            .range((t, first)..=(t, last))
            .map(|(&(_, n), _)| (t, n)),
    );
    let mut prev: Option<u64> = None;
    for (ft, n) in steps {
        let seg_lsn = SegNo(n).start_lsn(seg_size).unwrap_or_default();
        if let Some(p) = prev {
            if n > p + 1 {
                report_gap(ctx, tli, p + 1, n, seg_size);
                decoder = None;
            }
        }
        prev = Some(n);
        // A slot whose files are all unusable (already reported): restart after it.
        let Some(file) = idx.chosen(ft, n) else {
            decoder = None;
            decoded.done += 1;
            continue;
        };
        let bytes = match idx.read(file) {
            Ok(b) => b,
            Err(e) => {
                ctx.error(
                    ProblemKind::Unreadable,
                    TimelineId(ft),
                    Some(file.entry.name.clone()),
                    Some(seg_lsn),
                    e.to_string(),
                );
                decoder = None;
                decoded.done += 1;
                continue;
            }
        };
        ctx.report.segments_checked += 1;
        ctx.report.bytes_checked += bytes.len() as u64;
        let dec = decoder.get_or_insert_with(|| WalDecoder::new(cfg, seg_lsn));
        let mut input: &[u8] = &bytes;
        let mut broken = false;
        loop {
            match dec.decode(&mut input) {
                Ok(Some(rec)) => {
                    if ft == t {
                        summary.records += 1;
                    }
                    ctx.report.records += 1;
                    if let Some(x) = switch {
                        if rec.end_lsn() == x
                            || rec.lsn() == x
                            || at_page_start_after(rec.lsn(), x, cfg)
                        {
                            boundary_found = true;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_end_of_wal() => {
                    let end = dec
                        .pending_record()
                        .or(dec.last_record_end())
                        .unwrap_or(e.lsn);
                    if ft == t && n == last {
                        summary.end_lsn = Some(end);
                    } else {
                        ctx.error(
                            ProblemKind::WalEndsEarly,
                            TimelineId(ft),
                            Some(file.entry.name.clone()),
                            Some(e.lsn),
                            format!(
                                "valid WAL ends at {end} in \"{}\" ({e}), but timeline {t} continues in later segments",
                                file.entry.name
                            ),
                        );
                    }
                    broken = true;
                    break;
                }
                Err(e) => {
                    ctx.error(
                        ProblemKind::CorruptWal,
                        TimelineId(ft),
                        Some(file.entry.name.clone()),
                        Some(e.lsn),
                        format!("\"{}\": {e}", file.entry.name),
                    );
                    broken = true;
                    break;
                }
            }
        }
        if !broken && (bytes.len() as u64) < seg_size.bytes() {
            if ft == t && n == last && file.partial {
                summary.end_lsn = dec.pending_record().or(dec.last_record_end());
            } else {
                if file.entry.wal.compression() != Compression::None || file.partial {
                    ctx.error(
                        ProblemKind::TruncatedSegment,
                        TimelineId(ft),
                        Some(file.entry.name.clone()),
                        Some(seg_lsn),
                        format!(
                            "\"{}\" holds {} bytes of WAL, a segment is {}",
                            file.entry.name,
                            bytes.len(),
                            seg_size.bytes()
                        ),
                    );
                }
                broken = true;
            }
        }
        if ft == t && n == last && !broken {
            summary.end_lsn = dec.pending_record().or(dec.last_record_end());
        }
        if broken {
            decoder = None;
        }
        decoded.done += 1;
        (decoded.progress)(&VerifyProgress {
            done: decoded.done,
            total: decoded.total,
            file: file.entry.name.clone(),
        });
    }
    if let Some(x) = switch {
        if idx.chosen(t, first).is_some() && !boundary_found {
            ctx.error(
                ProblemKind::SwitchPointMismatch,
                tli,
                Some(format!("{t:08X}.history")),
                Some(x),
                format!("switch point {x} of timeline {t} ({t:08X}.history) is not at a record boundary in its WAL"),
            );
        }
        if let Some(fk) = fork {
            compare_switch_segment(ctx, idx, tli, fk, seg_size);
        }
    }
    ctx.report.timelines.push(summary);
}

/// Gaps between a parent's last segment and the switch point, and between the switch point
/// and the child's first segment.
fn check_switch_gaps(ctx: &mut Ctx, tl: &Timelines<'_>) {
    let seg_size = tl.seg_size;
    for (&t, fk) in &tl.forks {
        let p = fk.parent.0;
        let fs = fk.at.segment(seg_size).0;
        let parent_before: Vec<u64> = tl.own(p).into_iter().filter(|&n| n < fs).collect();
        let parent_last = tl.own(p).last().copied();
        if let Some(&lp) = parent_before.last() {
            if fs > 0 && lp < fs - 1 && parent_last == Some(lp) {
                report_gap(ctx, fk.parent, lp + 1, fs, seg_size);
            }
        }
        let child: Vec<u64> = tl.own(t).into_iter().filter(|&n| n >= fs).collect();
        if let Some(&cf) = child.first() {
            if cf > fs && !parent_before.is_empty() {
                report_gap(ctx, TimelineId(t), fs, cf, seg_size);
            }
        }
    }
}

/// True if `lsn` is the first record position on the page that starts at `x`.
fn at_page_start_after(lsn: Lsn, x: Lsn, cfg: DecoderConfig) -> bool {
    if x.page_offset(cfg.page_size) != 0 {
        return false;
    }
    let hdr = if x.segment_offset(cfg.seg_size) == 0 {
        LONG_HEADER_SIZE
    } else {
        SHORT_HEADER_SIZE
    };
    lsn.0 >= x.0 && lsn.0 <= x.0 + hdr as u64
}

fn report_gap(ctx: &mut Ctx, tli: TimelineId, from: u64, to: u64, seg_size: WalSegSize) {
    let first = SegNo(from).file_name(tli, seg_size);
    let last = SegNo(to - 1).file_name(tli, seg_size);
    let (lo, hi) = (
        SegNo(from).start_lsn(seg_size),
        SegNo(to).start_lsn(seg_size),
    );
    let what = if to - from == 1 {
        format!("missing segment {first}")
    } else {
        format!("missing {} segments {first} .. {last}", to - from)
    };
    let range = match (lo, hi) {
        (Some(a), Some(b)) => format!(" (WAL {a} .. {b})"),
        _ => String::new(),
    };
    ctx.add(Problem {
        severity: Severity::Error,
        kind: ProblemKind::MissingSegment,
        tli: Some(tli),
        file: Some(first),
        lsn: lo,
        end_lsn: hi,
        message: format!("timeline {tli}: {what}{range}"),
    });
}

/// At a switch point inside a segment, the child's copy of that segment must hold the parent's
/// bytes up to the switch point.
fn compare_switch_segment(
    ctx: &mut Ctx,
    idx: &SegmentIndex,
    tli: TimelineId,
    fk: Fork,
    seg_size: WalSegSize,
) {
    let n = fk.at.segment(seg_size).0;
    let off = fk.at.segment_offset(seg_size) as usize;
    if off == 0 {
        return;
    }
    let (Some(child), Some(parent)) = (idx.chosen(tli.0, n), idx.chosen(fk.parent.0, n)) else {
        return;
    };
    let (Ok(c), Ok(p)) = (idx.read(child), idx.read(parent)) else {
        return;
    };
    let (Some(c), Some(p)) = (c.get(..off), p.get(..off)) else {
        return;
    };
    if c != p {
        let at = c.iter().zip(p).position(|(a, b)| a != b).unwrap_or(0);
        ctx.error(
            ProblemKind::SwitchPointMismatch,
            tli,
            Some(child.entry.name.clone()),
            Some(fk.at),
            format!(
                "\"{}\" differs from the parent's \"{}\" at {}, before the switch point {} of {:08X}.history",
                child.entry.name,
                parent.entry.name,
                Lsn(n * seg_size.bytes() + at as u64),
                fk.at,
                tli.0
            ),
        );
    }
}

/// Without any readable segment: still check history files.
fn finish_histories_only(ctx: &mut Ctx, listing: &WalDirectory) {
    for e in listing.entries() {
        let WalFileName::History { tli, .. } = e.wal else {
            continue;
        };
        ctx.report.history_files += 1;
        let ok = listing
            .read_file(&listing.file_path(&e.name))
            .ok()
            .is_some_and(|b| TimelineHistory::parse(&b).is_ok());
        if !ok {
            ctx.error(
                ProblemKind::BadHistory,
                tli,
                Some(e.name.clone()),
                None,
                format!("\"{}\" cannot be parsed", e.name),
            );
        }
    }
}
