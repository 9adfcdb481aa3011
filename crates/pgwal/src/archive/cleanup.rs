//! `cleanup`: remove WAL files older than a given one, as `pg_archivecleanup` does.
//!
//! The rules are those of `pg_archivecleanup.c` (PostgreSQL 15 to 18):
//!
//! - The oldest kept file (after stripping `-x EXT`) must be a segment name, a `.partial`
//!   segment name or a backup history file name; only its 24-character segment part counts.
//! - A directory entry (after stripping `-x EXT`) is a candidate if it is a segment name or a
//!   `.partial` segment name (or, with `-b`, a backup history file name).
//! - It is removed if its name from the 9th character on (the timeline is ignored) sorts
//!   before the oldest kept file's, byte by byte (`strcmp`).
//!
//! pgwal adds two things:
//!
//! - Unless [`CleanupOptions::exact`], segments stored compressed by `pgwal archive push` or
//!   `pgwal receive` (`.gz`, `.lz4`, `.zst`, also before `.partial`) are candidates too, compared
//!   as their uncompressed names. pg_archivecleanup ignores them.
//! - [`CleanupOptions::keep_history_needs`]: keep the files that a timeline branch not passing
//!   through the oldest kept file still needs, according to the timeline history files (see
//!   [`plan_cleanup`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::archive::push::archive_identity;
use crate::history::TimelineHistory;
use crate::lsn::Lsn;
use crate::segment::{Compression, TimelineId, WalFileName, WalSegSize};
use crate::source::WalDirectory;
use crate::storage::codec::{decompress, sniff_compression};
use crate::storage::probe::probe_segment;
use crate::wal::LONG_HEADER_SIZE;

/// Settings of [`plan_cleanup`]: [`CleanupOptions::default`], then the fields to change (more
/// may be added).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct CleanupOptions {
    /// `-x EXT`: strip this extension from names before looking at them.
    pub strip_extension: Option<String>,
    /// `-b`: also remove backup history files (`.backup`) older than the cut-off.
    pub clean_backup_history: bool,
    /// Only the names pg_archivecleanup knows (no compressed segments).
    pub exact: bool,
    /// Keep what the timeline histories still need (see [`plan_cleanup`]).
    pub keep_history_needs: bool,
}

/// What [`plan_cleanup`] decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanupPlan {
    /// The segment name from which on files are kept (`exclusiveCleanupFileName`).
    pub cutoff: String,
    /// Names to remove, sorted.
    pub remove: Vec<String>,
    /// Names that pg_archivecleanup would remove but that are kept for a timeline branch, with
    /// that branch's timeline.
    pub kept_for_history: Vec<(String, TimelineId)>,
    /// Remarks for the user (e.g. timelines whose history file is missing).
    pub notes: Vec<String>,
    /// An object store's identical twins (a segment stored in several forms holding the same
    /// WAL, see `archive::twins`), settled: (form removed, form kept). The removed forms are
    /// in [`remove`](Self::remove) too.
    pub settled_twins: Vec<(String, String)>,
    /// An object store's segments stored in several forms holding different WAL: how, for
    /// each (they are all kept; an error for the user).
    pub conflicting_twins: Vec<String>,
}

/// Why [`plan_cleanup`] or [`execute_cleanup`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CleanupError {
    /// The archive directory does not exist (pg_archivecleanup exits with 2).
    #[error("archive location \"{}\" does not exist", .0.display())]
    ArchiveMissing(PathBuf),
    /// The oldest kept file is not a WAL, `.partial` or backup history file name (exit 2).
    #[error("invalid file name argument \"{0}\"")]
    InvalidName(String),
    /// An I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// A history file needed for `--keep-history-needs` cannot be read.
    #[error("cannot honour --keep-history-needs: {0}")]
    History(String),
}

const HEX: &[u8] = b"0123456789ABCDEF";

fn strspn_hex(b: &[u8]) -> usize {
    b.iter().take_while(|c| HEX.contains(c)).count()
}

/// `IsXLogFileName`: 24 upper-case hex digits.
pub fn is_xlog_file_name(b: &[u8]) -> bool {
    b.len() == 24 && strspn_hex(b) == 24
}

/// `IsPartialXLogFileName`: 24 upper-case hex digits and `.partial`.
pub fn is_partial_xlog_file_name(b: &[u8]) -> bool {
    b.len() == 32 && strspn_hex(b) == 24 && &b[24..] == b".partial"
}

/// `IsBackupHistoryFileName`: 24 upper-case hex digits, something, `.backup`.
pub fn is_backup_history_file_name(b: &[u8]) -> bool {
    b.len() > 24 && strspn_hex(b) == 24 && b.ends_with(b".backup")
}

/// `TrimExtension`.
fn trim_extension<'a>(name: &'a [u8], ext: Option<&str>) -> &'a [u8] {
    match ext {
        Some(e) if name.len() > e.len() && name.ends_with(e.as_bytes()) => {
            &name[..name.len() - e.len()]
        }
        _ => name,
    }
}

/// Whether `sscanf(name, "%08X%08X%08X.%08X.backup", ...)` assigns 4 values for a name that
/// passed [`is_backup_history_file_name`]: a `.` after the 24 digits, then (after optional
/// white space, sign and `0x`) at least one hex digit.
fn backup_name_scans(b: &[u8]) -> bool {
    if b.get(24) != Some(&b'.') {
        return false;
    }
    let mut rest = &b[25..];
    while let Some((c, r)) = rest.split_first() {
        if c.is_ascii_whitespace() {
            rest = r;
        } else {
            break;
        }
    }
    let field = &rest[..rest.len().min(8)];
    let mut f = field;
    if let Some((b'+' | b'-', r)) = f.split_first() {
        f = r;
    }
    f.first().is_some_and(u8::is_ascii_hexdigit)
}

/// `SetWALFileNameForCleanup`: the 24-character name from which on files are kept.
pub fn cutoff_name(
    oldest_kept: &str,
    strip_extension: Option<&str>,
) -> Result<String, CleanupError> {
    let b = trim_extension(oldest_kept.as_bytes(), strip_extension);
    let ok = is_xlog_file_name(b)
        || is_partial_xlog_file_name(b)
        || (is_backup_history_file_name(b) && backup_name_scans(b));
    if !ok {
        return Err(CleanupError::InvalidName(oldest_kept.to_owned()));
    }
    Ok(String::from_utf8_lossy(&b[..24]).into_owned())
}

/// The name that a directory entry is compared as, or `None` if it is not a candidate.
fn candidate_name(name: &[u8], opts: &CleanupOptions) -> Option<Vec<u8>> {
    let w = trim_extension(name, opts.strip_extension.as_deref());
    if is_xlog_file_name(w)
        || is_partial_xlog_file_name(w)
        || (opts.clean_backup_history && is_backup_history_file_name(w))
    {
        return Some(w.to_vec());
    }
    if opts.exact {
        return None;
    }
    // pgwal's compressed segments: NAME.gz, NAME.zst.partial, ...
    let (base, partial) = match w.strip_suffix(b".partial") {
        Some(b) => (b, true),
        None => (w, false),
    };
    for c in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
        if let Some(seg) = base.strip_suffix(c.suffix().as_bytes()) {
            if is_xlog_file_name(seg) {
                let mut v = seg.to_vec();
                if partial {
                    v.extend_from_slice(b".partial");
                }
                return Some(v);
            }
        }
    }
    None
}

/// Decides which files of `dir` to remove, keeping `oldest_kept` and everything after it.
///
/// With [`CleanupOptions::keep_history_needs`], the timeline histories are consulted: the
/// "leaf" timelines (those no history file names as an ancestor) are the branches that
/// recovery may still follow. A leaf whose history passes through the oldest kept segment
/// (its chain owns that segment on the oldest kept file's timeline) needs nothing older. A
/// leaf that branched off elsewhere (for example a timeline forked from an older point, or the
/// other side of a split) still needs every segment its history reads from, so those are kept,
/// whatever their age: for each segment number, the file of the timeline that the leaf's
/// history says holds it. A leaf above timeline 1 without a history file keeps all of its own
/// segments.
pub fn plan_cleanup(
    dir: &Path,
    oldest_kept: &str,
    opts: &CleanupOptions,
) -> Result<CleanupPlan, CleanupError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        _ => return Err(CleanupError::ArchiveMissing(dir.to_owned())),
    }
    let io_err = |source| CleanupError::Io {
        context: format!("could not read archive location \"{}\"", dir.display()),
        source,
    };
    let listing = crate::archive::listing::scan(dir).map_err(io_err)?;
    plan_cleanup_index(&listing, oldest_kept, opts)
}

/// [`plan_cleanup`] over an archive's index (of an archive anywhere): a directory's, or an
/// object store's listing whose files are read through it (`reader::object::list`), from
/// which `opts.keep_history_needs` reads the history files and a segment's first page.
pub(crate) fn plan_cleanup_index(
    listing: &WalDirectory,
    oldest_kept: &str,
    opts: &CleanupOptions,
) -> Result<CleanupPlan, CleanupError> {
    let cutoff = cutoff_name(oldest_kept, opts.strip_extension.as_deref())?;
    // Every name, WAL or not, as pg_archivecleanup looks at every directory entry.
    let mut names: Vec<&str> = listing
        .entries()
        .iter()
        .map(|e| e.name.as_str())
        .chain(listing.others().iter().map(|o| o.name.as_str()))
        .collect();
    names.sort_unstable();
    let mut plan = CleanupPlan {
        cutoff: cutoff.clone(),
        ..CleanupPlan::default()
    };
    let mut remove: Vec<(String, Vec<u8>)> = Vec::new();
    for n in names {
        let Some(cand) = candidate_name(n.as_bytes(), opts) else {
            continue;
        };
        if cand[8..] < cutoff.as_bytes()[8..] {
            remove.push((n.to_owned(), cand));
        }
    }
    if opts.keep_history_needs && !remove.is_empty() {
        let keep = history_needs(listing, &cutoff, &mut plan.notes)?;
        remove.retain(|(name, cand)| {
            let Some(w) = WalFileName::parse(&String::from_utf8_lossy(cand)) else {
                return true;
            };
            let WalFileName::Segment { tli, log, seg, .. } = w else {
                return true;
            };
            match keep.iter().find(|k| k.0 == (tli.0, log, seg)) {
                Some(&(_, leaf)) => {
                    plan.kept_for_history.push((name.clone(), leaf));
                    false
                }
                None => true,
            }
        });
    }
    plan.remove = remove.into_iter().map(|(n, _)| n).collect();
    Ok(plan)
}

/// Segment files as (tli, log, seg), each with the leaf timeline that needs it.
type Needs = Vec<((u32, u32, u32), TimelineId)>;

/// The (tli, log, seg) files that leaf timelines not passing through `cutoff` still need, each
/// with the leaf that needs it.
fn history_needs(
    listing: &WalDirectory,
    cutoff: &str,
    notes: &mut Vec<String>,
) -> Result<Needs, CleanupError> {
    let Some(seg_size) = segment_size(listing)? else {
        notes.push("no readable segment in the archive: timeline histories not consulted".into());
        return Ok(Vec::new());
    };
    let mut histories: BTreeMap<u32, TimelineHistory> = BTreeMap::new();
    let mut files: BTreeSet<(u32, u32, u32)> = BTreeSet::new();
    let mut timelines: BTreeSet<u32> = BTreeSet::new();
    for e in listing.entries() {
        match e.wal {
            WalFileName::Segment { tli, log, seg, .. } => {
                files.insert((tli.0, log, seg));
                timelines.insert(tli.0);
            }
            WalFileName::History { tli, .. } => {
                let path = listing.file_path(&e.name);
                let data = read_history(listing, &path)?;
                let h = TimelineHistory::parse(&data)
                    .map_err(|e| CleanupError::History(format!("{}: {e}", path.display())))?;
                histories.insert(tli.0, h);
                timelines.insert(tli.0);
            }
            _ => {}
        }
    }
    let ancestors: BTreeSet<u32> = histories
        .values()
        .flat_map(|h| h.entries.iter().map(|e| e.tli.0))
        .collect();
    let cut =
        WalFileName::parse(cutoff).ok_or_else(|| CleanupError::InvalidName(cutoff.to_owned()))?;
    let cut_tli = cut.timeline();
    let Some(cut_seg) = cut.segno(seg_size) else {
        return Ok(Vec::new());
    };
    let seg_start = |n: u64| Lsn(n.saturating_mul(seg_size.bytes()));
    let (cut_lo, cut_hi) = (seg_start(cut_seg.0), seg_start(cut_seg.0 + 1));
    let mut keep = Vec::new();
    for &leaf in timelines.iter().filter(|t| !ancestors.contains(t)) {
        let leaf_id = TimelineId(leaf);
        let history = match histories.get(&leaf) {
            Some(h) => h.clone(),
            None if leaf == 1 => TimelineHistory::default(),
            None => {
                notes.push(format!(
                    "timeline {leaf} has no history file {leaf:08X}.history: keeping all of its segments"
                ));
                keep.extend(files.iter().filter(|f| f.0 == leaf).map(|&f| (f, leaf_id)));
                continue;
            }
        };
        // The interval of LSNs that the cut-off timeline holds on this leaf's chain.
        let mut begin = Lsn(0);
        let mut interval = None;
        for e in &history.entries {
            if e.tli == cut_tli {
                interval = Some((begin, e.switchpoint));
            }
            begin = e.switchpoint;
        }
        if cut_tli == leaf_id {
            interval = Some((begin, Lsn::MAX));
        }
        let through = interval.is_some_and(|(lo, hi)| lo < cut_hi && cut_lo < hi);
        if through {
            continue;
        }
        for &(tli, log, seg) in &files {
            let name = WalFileName::Segment {
                tli: TimelineId(tli),
                log,
                seg,
                compression: Compression::None,
                partial: false,
            };
            let Some(n) = name.segno(seg_size) else {
                continue;
            };
            let last_byte = Lsn(seg_start(n.0).0.saturating_add(seg_size.bytes() - 1));
            if history.timeline_of(last_byte, leaf_id).0 == tli {
                keep.push(((tli, log, seg), leaf_id));
            }
        }
    }
    keep.sort();
    keep.dedup_by_key(|k| k.0);
    Ok(keep)
}

/// The segment size of the archive `listing` indexes, from the first page of one of its
/// segments: in a directory as `archive push` finds it, in an object store from the first
/// pages of up to 16 segments (ranged reads, nothing written locally). `None` when no segment
/// is readable.
fn segment_size(listing: &WalDirectory) -> Result<Option<WalSegSize>, CleanupError> {
    let dir = listing.path();
    if listing.remote().is_none() {
        return archive_identity(dir, None)
            .map(|id| id.map(|(_, seg_size, _)| seg_size))
            .map_err(|source| CleanupError::Io {
                context: format!("could not read archive location \"{}\"", dir.display()),
                source,
            });
    }
    let paths: Vec<PathBuf> = listing.segments().take(16).map(|(_, p)| p).collect();
    Ok(listing
        .read_heads(&paths, LONG_HEADER_SIZE)
        .into_iter()
        .find_map(|head| probe_segment(&head.ok()?).ok())
        .map(|info| info.seg_size))
}

/// The content of history file `path` of `listing`, decompressed: read from the directory,
/// or from the object store into memory (history files are small).
fn read_history(listing: &WalDirectory, path: &Path) -> Result<Vec<u8>, CleanupError> {
    let failed =
        |e: &dyn std::fmt::Display| CleanupError::History(format!("{}: {e}", path.display()));
    if listing.remote().is_some() {
        return listing
            .read_file(path)
            .map(|b| b.to_vec())
            .map_err(|e| failed(&e));
    }
    let raw = fs::read(path).map_err(|e| failed(&e))?;
    let kind = sniff_compression(&raw);
    if kind == Compression::None {
        return Ok(raw);
    }
    decompress(kind, &raw).map_err(|e| failed(&e))
}

/// Removes the planned files (stopping at the first failure, as pg_archivecleanup does) and
/// fsyncs the directory. Calls `each` before each removal.
pub fn execute_cleanup(
    dir: &Path,
    plan: &CleanupPlan,
    mut each: impl FnMut(&Path),
) -> Result<usize, CleanupError> {
    let mut n = 0;
    for name in &plan.remove {
        let p = dir.join(name);
        each(&p);
        match fs::remove_file(&p) {
            Ok(()) => n += 1,
            Err(source) => {
                return Err(CleanupError::Io {
                    context: format!("could not remove file \"{}\"", p.display()),
                    source,
                })
            }
        }
    }
    if n > 0 {
        crate::storage::local::fsync_dir(dir).map_err(|e| CleanupError::Io {
            context: format!("could not fsync \"{}\"", dir.display()),
            source: e.into_io(),
        })?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cutoff_names_follow_pg_archivecleanup() {
        let ok = [
            ("000000010000000000000010", None, "000000010000000000000010"),
            (
                "000000010000000000000010.partial",
                None,
                "000000010000000000000010",
            ),
            (
                "000000010000000000000010.00000020.backup",
                None,
                "000000010000000000000010",
            ),
            (
                "000000010000000000000010.backup",
                None,
                "000000010000000000000010",
            ),
            (
                "000000010000000000000010.gz",
                Some(".gz"),
                "000000010000000000000010",
            ),
        ];
        for (n, x, want) in ok {
            assert_eq!(cutoff_name(n, x).unwrap(), want, "{n}");
        }
        for bad in [
            "00000001000000000000001",
            "000000010000000000000010.gz",
            "00000001000000000000001g",
            "000000010000000000000010x00000020.backup",
            "000000010000000000000010.zz.backup",
            "000000010000000000000010.partial.gz",
            "0000000100000000000000ab",
        ] {
            assert!(cutoff_name(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn candidates() {
        let o = CleanupOptions::default();
        let c = |n: &str, o: &CleanupOptions| {
            candidate_name(n.as_bytes(), o).map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(
            c("000000010000000000000003", &o).as_deref(),
            Some("000000010000000000000003")
        );
        assert_eq!(
            c("000000010000000000000003.zst", &o).as_deref(),
            Some("000000010000000000000003")
        );
        assert_eq!(
            c("000000010000000000000003.gz.partial", &o).as_deref(),
            Some("000000010000000000000003.partial")
        );
        assert_eq!(c("000000010000000000000003.00000028.backup", &o), None);
        let exact = CleanupOptions {
            exact: true,
            ..CleanupOptions::default()
        };
        assert_eq!(c("000000010000000000000003.zst", &exact), None);
        assert_eq!(c("00000002.history", &o), None);
    }
}
