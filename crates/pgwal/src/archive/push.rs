//! `push`: copy a finished WAL file into the archive (PostgreSQL's `archive_command`).

use std::borrow::Cow;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::archive::compress::{decompress_fast, read_all, CompressionSpec};
use crate::archive::listing::existing_variants;
use crate::history::TimelineHistory;
use crate::lsn::Lsn;
use crate::segment::{Compression, SegNo, TimelineId, WalFileName, WalSegSize};
use crate::storage::codec::sniff_compression;
use crate::storage::local::{
    describe_difference, fsync_dir, fsync_file, write_new, Existing, WriteNew,
};
use crate::storage::probe::{probe_file, probe_segment, ProbeError, SegmentInfo};

/// Settings of [`push`]: [`PushOptions::default`], then the fields to change (more may be
/// added).
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PushOptions {
    /// How to compress segments (history and backup history files are always stored as is).
    pub compression: CompressionSpec,
    /// Accept only segments of this system identifier. When `None`, a segment must match the
    /// segments already in the archive (if any).
    pub system_id: Option<u64>,
    /// Compression threads (0: one per core).
    pub threads: usize,
}

/// What [`push`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The file was stored under `name`.
    Stored {
        /// The name in the archive (with compression suffix).
        name: String,
        /// Bytes of the original file.
        bytes: u64,
        /// Bytes stored.
        stored_bytes: u64,
    },
    /// The archive already held the same content under `name`; nothing was written.
    AlreadyArchived {
        /// The existing file.
        name: String,
    },
}

/// Why [`push`] refused or failed. Nothing in the archive is ever overwritten.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// An I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
    /// The file name is not one PostgreSQL archives.
    #[error(
        "\"{0}\" is not the name of a WAL segment, timeline history file or backup history file"
    )]
    BadName(String),
    /// The file is not a valid WAL segment.
    #[error("\"{}\" is not a valid WAL segment: {reason}", path.display())]
    NotWal {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        reason: SegmentCheckError,
    },
    /// A history or backup history file is malformed.
    #[error("\"{}\" is not a valid {what}: {reason}", path.display())]
    BadContent {
        /// The file.
        path: PathBuf,
        /// What kind of file it should be.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The segment belongs to another database system.
    #[error(
        "\"{name}\" is from a different database system: its system identifier is {found}, but {expected_from} has {expected}"
    )]
    SystemIdMismatch {
        /// The pushed file's name.
        name: String,
        /// Its system identifier.
        found: u64,
        /// The expected one.
        expected: u64,
        /// Where the expectation comes from (`--system-id` or an archived file).
        expected_from: String,
    },
    /// The segment size differs from the archive's.
    #[error(
        "\"{name}\" has segment size {found}, but archived segment \"{other}\" has {expected}"
    )]
    SegmentSizeMismatch {
        /// The pushed file's name.
        name: String,
        /// Its segment size.
        found: WalSegSize,
        /// The archive's.
        expected: WalSegSize,
        /// The archived file compared with.
        other: String,
    },
    /// An object-store request failed (names the URL and key).
    #[cfg(feature = "object-store")]
    #[error(transparent)]
    Object(#[from] crate::storage::object::ObjectError),
    /// The archive holds a different file under the same name.
    #[error(
        "archive already contains \"{existing}\" with different content ({reason}); refusing to overwrite it"
    )]
    Conflict {
        /// The archived file.
        existing: String,
        /// How it differs.
        reason: String,
    },
}

fn io_ctx(context: impl Into<String>) -> impl FnOnce(io::Error) -> PushError {
    let context = context.into();
    move |source| PushError::Io { context, source }
}

/// Why [`check_segment`] refused a segment file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentCheckError {
    /// The first page header is missing or invalid.
    #[error(transparent)]
    Header(#[from] ProbeError),
    /// The name is not a segment of the header's segment size.
    #[error("the file name does not fit segment size {seg_size} in the page header")]
    NameMismatch {
        /// The header's segment size.
        seg_size: WalSegSize,
    },
    /// The file is not one segment long (or, for a `.partial` file, is longer).
    #[error("file size {len} differs from the segment size {}", seg_size.bytes())]
    WrongSize {
        /// The file's size.
        len: u64,
        /// The header's segment size.
        seg_size: WalSegSize,
    },
    /// The first page is not where the named segment starts.
    #[error("the first page header has address {found}, but the name says the segment starts at {expected}")]
    WrongAddress {
        /// The page address.
        found: Lsn,
        /// The start of the named segment.
        expected: Lsn,
    },
    /// The first page is of a higher timeline than the name's.
    #[error(
        "the first page header has timeline {found}, above the timeline {name} of the file name"
    )]
    TimelineAbove {
        /// The page's timeline.
        found: TimelineId,
        /// The name's.
        name: TimelineId,
    },
}

/// Checks that `data` is a WAL segment that may carry file name `name`: a valid long page header
/// whose page address is the start of the named segment, a timeline not above the name's, and
/// (unless `short_ok`) exactly one segment of bytes.
pub fn check_segment(
    name: &WalFileName,
    data: &[u8],
    short_ok: bool,
) -> Result<SegmentInfo, SegmentCheckError> {
    check_segment_head(name, data, data.len() as u64, short_ok)
}

/// [`check_segment`] of a segment of `len` bytes that starts with `head` (at least its long
/// page header): for content streamed to a file rather than held in memory.
pub fn check_segment_head(
    name: &WalFileName,
    head: &[u8],
    len: u64,
    short_ok: bool,
) -> Result<SegmentInfo, SegmentCheckError> {
    let info = probe_segment(head)?;
    let seg_size = info.seg_size;
    let segno = name
        .segno(seg_size)
        .ok_or(SegmentCheckError::NameMismatch { seg_size })?;
    if len > seg_size.bytes() || (!short_ok && len != seg_size.bytes()) {
        return Err(SegmentCheckError::WrongSize { len, seg_size });
    }
    let expected = segno.start_lsn(seg_size).unwrap_or_default();
    if info.pageaddr != expected {
        return Err(SegmentCheckError::WrongAddress {
            found: info.pageaddr,
            expected,
        });
    }
    if info.tli > name.timeline() {
        return Err(SegmentCheckError::TimelineAbove {
            found: info.tli,
            name: name.timeline(),
        });
    }
    Ok(info)
}

/// The system identifier and segment size of the archive, read from the first page of a
/// segment already in it: the previous segment of the same timeline if present, else the first
/// readable segment in directory order. `None` when the archive has no readable segment.
pub fn archive_identity(
    dir: &Path,
    near: Option<(&WalFileName, WalSegSize)>,
) -> io::Result<Option<(u64, WalSegSize, String)>> {
    let probe = |path: &Path| -> Option<(u64, WalSegSize)> {
        let info = probe_file(path).ok()?.ok()?;
        Some((info.system_id, info.seg_size))
    };
    if let Some((name, seg_size)) = near {
        if let Some(segno) = name.segno(seg_size).filter(|s| s.0 > 0) {
            let prev = WalFileName::segment(name.timeline(), SegNo(segno.0 - 1), seg_size);
            for (v, path) in existing_variants(dir, &prev)? {
                if let Some((sysid, size)) = probe(&path) {
                    return Ok(Some((sysid, size, v.to_string())));
                }
            }
        }
    }
    let mut tries = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(fname) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !matches!(
            WalFileName::parse(&fname),
            Some(WalFileName::Segment { .. })
        ) {
            continue;
        }
        if let Some((sysid, size)) = probe(&entry.path()) {
            return Ok(Some((sysid, size, fname)));
        }
        tries += 1;
        if tries >= 16 {
            break;
        }
    }
    Ok(None)
}

/// Compares `data` with an archived file (decompressed). `Ok(None)` when equal, else how they
/// differ.
fn compare_with(path: &Path, data: &[u8]) -> Result<Option<String>, PushError> {
    let raw = read_all(path).map_err(io_ctx(format!("could not read \"{}\"", path.display())))?;
    Ok(compare_content(&raw, data))
}

/// Compares `data` with an archived file's bytes `raw` (decompressed first). `None` when
/// equal, else how they differ.
pub(crate) fn compare_content(raw: &[u8], data: &[u8]) -> Option<String> {
    let kind = sniff_compression(raw);
    let decompressed;
    let content: &[u8] = if kind == Compression::None {
        raw
    } else {
        match decompress_fast(kind, raw) {
            Ok(c) => {
                decompressed = c;
                &decompressed
            }
            Err(e) => return Some(format!("the archived file cannot be decompressed: {e}")),
        }
    };
    match describe_difference(content, data) {
        Existing::Same => None,
        Existing::Differs(reason) => Some(reason),
    }
}

/// Copies the WAL file at `src` (a segment, `.partial` segment, `.history` or `.backup` file,
/// named as PostgreSQL names it) into the archive directory `dir`.
///
/// Segments are checked ([`check_segment`], system identifier against `opts.system_id` or the
/// archive) and compressed as configured; history and backup history files are stored as is.
/// If the archive already has the file (in any compression) with the same content, this is a
/// success without writing; different content is a [`PushError::Conflict`].
pub fn push(dir: &Path, src: &Path, opts: &PushOptions) -> Result<PushOutcome, PushError> {
    let (_, name) = parse_push_name(src)?;
    let meta =
        fs::metadata(dir).map_err(io_ctx(format!("archive directory \"{}\"", dir.display())))?;
    if !meta.is_dir() {
        return Err(PushError::Io {
            context: format!("archive directory \"{}\"", dir.display()),
            source: io::Error::other("not a directory"),
        });
    }
    let data = read_all(src).map_err(io_ctx(format!("could not read \"{}\"", src.display())))?;
    let data: &[u8] = &data;
    let target = check_push(&name, src, data, opts, |name, seg_size| {
        archive_identity(dir, Some((name, seg_size))).map_err(io_ctx(format!(
            "could not read archive directory \"{}\"",
            dir.display()
        )))
    })?;

    if let Some(outcome) = check_existing(dir, &name, data)? {
        return Ok(outcome);
    }
    let payload: Cow<'_, [u8]> = match target {
        WalFileName::Segment { .. } if opts.compression.kind != Compression::None => Cow::Owned(
            opts.compression
                .compress(data, opts.threads)
                .map_err(io_ctx(format!("could not compress \"{}\"", src.display())))?,
        ),
        _ => Cow::Borrowed(data),
    };
    let target_name = target.to_string();
    let written = write_new(dir, &target_name, &payload, data).map_err(|e| PushError::Io {
        context: format!("could not write \"{}\"", dir.join(&target_name).display()),
        source: e.into_io(),
    })?;
    match written {
        WriteNew::Created => Ok(PushOutcome::Stored {
            name: target_name,
            bytes: data.len() as u64,
            stored_bytes: payload.len() as u64,
        }),
        // Someone stored the same content meanwhile: fine (made durable again).
        WriteNew::Identical => Ok(PushOutcome::AlreadyArchived { name: target_name }),
        WriteNew::Conflict { reason } => Err(PushError::Conflict {
            existing: target_name,
            reason,
        }),
    }
}

/// The file name of `src` and what it denotes; push takes uncompressed WAL file names only.
pub(crate) fn parse_push_name(src: &Path) -> Result<(&str, WalFileName), PushError> {
    let fname = src
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| PushError::BadName(src.display().to_string()))?;
    let name = WalFileName::parse(fname).ok_or_else(|| PushError::BadName(fname.to_owned()))?;
    if name.compression() != Compression::None {
        return Err(PushError::BadName(format!(
            "{fname} (push takes uncompressed files)"
        )));
    }
    Ok((fname, name))
}

/// Checks the content of a pushed file (`data`, read from `src`, named `name`) and returns the
/// name it is stored under. `identity` gives the archive's system identifier and segment size
/// (see [`archive_identity`]) for a segment of the given size.
pub(crate) fn check_push(
    name: &WalFileName,
    src: &Path,
    data: &[u8],
    opts: &PushOptions,
    identity: impl FnOnce(
        &WalFileName,
        WalSegSize,
    ) -> Result<Option<(u64, WalSegSize, String)>, PushError>,
) -> Result<WalFileName, PushError> {
    let fname = name.to_string();
    Ok(match name {
        WalFileName::Segment { partial, .. } => {
            let info = check_segment(name, data, *partial).map_err(|reason| PushError::NotWal {
                path: src.to_owned(),
                reason,
            })?;
            let expected = match opts.system_id {
                Some(id) => Some((id, None, "--system-id".to_owned())),
                None => identity(name, info.seg_size)?.map(|(id, size, other)| {
                    (
                        id,
                        Some((size, other.clone())),
                        format!("archived segment \"{other}\""),
                    )
                }),
            };
            if let Some((id, size, from)) = expected {
                if id != info.system_id {
                    return Err(PushError::SystemIdMismatch {
                        name: fname,
                        found: info.system_id,
                        expected: id,
                        expected_from: from,
                    });
                }
                if let Some((size, other)) = size {
                    if size != info.seg_size {
                        return Err(PushError::SegmentSizeMismatch {
                            name: fname,
                            found: info.seg_size,
                            expected: size,
                            other,
                        });
                    }
                }
            }
            name.with(opts.compression.kind, *partial)
        }
        WalFileName::History { tli, .. } => {
            let h = TimelineHistory::parse(data).map_err(|e| PushError::BadContent {
                path: src.to_owned(),
                what: "timeline history file",
                reason: e.to_string(),
            })?;
            if h.entries.last().is_some_and(|e| e.tli >= *tli) {
                return Err(PushError::BadContent {
                    path: src.to_owned(),
                    what: "timeline history file",
                    reason: format!(
                        "it lists timeline {} or later, but it is the history of timeline {tli}",
                        tli
                    ),
                });
            }
            name.clone()
        }
        WalFileName::Backup { .. } => {
            if std::str::from_utf8(data).is_err() {
                return Err(PushError::BadContent {
                    path: src.to_owned(),
                    what: "backup history file",
                    reason: "it is not text".into(),
                });
            }
            name.clone()
        }
    })
}

/// If the archive has any variant of `name`: `Some(AlreadyArchived)` when one holds `data`
/// (made durable again, in case its writer crashed before syncing), a conflict error when none
/// does.
fn check_existing(
    dir: &Path,
    name: &WalFileName,
    data: &[u8],
) -> Result<Option<PushOutcome>, PushError> {
    let variants = existing_variants(dir, name).map_err(io_ctx(format!(
        "could not read archive directory \"{}\"",
        dir.display()
    )))?;
    let mut conflict = None;
    for (existing, path) in variants {
        match compare_with(&path, data)? {
            None => {
                fsync_file(&path).map_err(|e| PushError::Io {
                    context: format!("could not fsync \"{}\"", path.display()),
                    source: e.into_io(),
                })?;
                fsync_dir(dir).map_err(|e| PushError::Io {
                    context: format!("could not fsync \"{}\"", dir.display()),
                    source: e.into_io(),
                })?;
                return Ok(Some(PushOutcome::AlreadyArchived {
                    name: existing.to_string(),
                }));
            }
            Some(reason) => {
                conflict.get_or_insert(PushError::Conflict {
                    existing: existing.to_string(),
                    reason,
                });
            }
        }
    }
    match conflict {
        Some(e) => Err(e),
        None => Ok(None),
    }
}
