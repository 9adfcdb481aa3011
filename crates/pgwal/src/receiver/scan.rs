//! Where to start: pg_receivewal's directory scan (`FindStreamingStart`), plus validation of
//! a `.partial` segment with the decoder so that streaming resumes at its valid end.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::lsn::Lsn;
use crate::segment::{Compression, SegNo, TimelineId, WalFileName, WalSegSize};
use crate::storage::codec::decompress_prefix;
use crate::storage::file::symlink_refused;
use crate::storage::local::fsync_dir;
use crate::storage::probe::probe_segment;
use crate::storage::temp::remove_stale_temp_files;
use crate::wal::{DecoderConfig, WalDecoder};

use super::error::ReceiveError;

/// A WAL file in the directory that can decide the start position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// The file name.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
    /// Its timeline.
    pub tli: TimelineId,
    /// Its segment.
    pub segno: SegNo,
    /// `.partial`?
    pub partial: bool,
    /// Compression suffix.
    pub compression: Compression,
}

/// The files that take part in the scan, best first: the highest segment, then the highest
/// timeline, and a complete file before a partial one.
///
/// A `.partial` file that is a symbolic link is an error naming it: the receiver writes to
/// its newest partial file and never writes through a link.
pub(crate) fn candidates(dir: &Path, seg_size: WalSegSize) -> io::Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Ok(name) = entry.file_name().into_string() {
            if let Some(c) = candidate(name, entry.path(), seg_size) {
                if c.partial && entry.file_type()?.is_symlink() {
                    return Err(symlink_refused(&c.path));
                }
                out.push(c);
            }
        }
    }
    sort_candidates(&mut out);
    Ok(out)
}

/// The file `name` at `path`, if it is a WAL segment (plain, partial or compressed).
fn candidate(name: String, path: PathBuf, seg_size: WalSegSize) -> Option<Candidate> {
    let parsed @ WalFileName::Segment {
        tli,
        partial,
        compression,
        ..
    } = WalFileName::parse(&name)?
    else {
        return None;
    };
    let segno = parsed.segno(seg_size)?;
    Some(Candidate {
        path,
        name,
        tli,
        segno,
        partial,
        compression,
    })
}

/// Sorts candidates best first (see [`candidates`]).
fn sort_candidates(c: &mut [Candidate]) {
    c.sort_by(|a, b| {
        (b.segno, b.tli, !b.partial, b.name.as_str()).cmp(&(
            a.segno,
            a.tli,
            !a.partial,
            a.name.as_str(),
        ))
    });
}

/// Checks a complete file like pg_receivewal: size for plain files, gzip's ISIZE, the
/// decompressed size for lz4 and zstd. `Err(warning)` if it must be skipped.
pub(crate) fn check_complete(
    c: &Candidate,
    seg_size: WalSegSize,
) -> io::Result<Result<(), String>> {
    let want = seg_size.bytes();
    match c.compression {
        Compression::None => {
            let len = fs::metadata(&c.path)?.len();
            if len != want {
                return Ok(Err(format!(
                    "segment file \"{}\" has incorrect size {len}, skipping",
                    c.name
                )));
            }
        }
        Compression::Gzip => {
            let data = fs::read(&c.path)?;
            let isize = data
                .len()
                .checked_sub(4)
                .map(|i| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]));
            if isize != Some(want as u32) {
                return Ok(Err(format!(
                    "compressed segment file \"{}\" has incorrect uncompressed size {}, skipping",
                    c.name,
                    isize.unwrap_or(0)
                )));
            }
        }
        Compression::Lz4 | Compression::Zstd => {
            let data = fs::read(&c.path)?;
            let (out, complete) = decompress_prefix(c.compression, &data, want + 1);
            if !complete || out.len() as u64 != want {
                return Ok(Err(format!(
                    "compressed segment file \"{}\" has incorrect uncompressed size {}, skipping",
                    c.name,
                    out.len()
                )));
            }
        }
    }
    Ok(Ok(()))
}

/// The system identifier in the long page header at the start of `head`, if it is one.
pub(crate) fn head_system_id(head: &[u8]) -> Option<u64> {
    probe_segment(head).ok().map(|i| i.system_id)
}

/// What the scan found.
#[derive(Debug)]
pub(crate) enum Found {
    /// The newest segment is complete: start at the next one.
    Complete(Candidate),
    /// The newest segment is partial.
    Partial(Candidate),
}

/// `FindStreamingStart`: the newest usable file, with warnings for complete files that fail
/// their size check.
pub(crate) fn find_start(dir: &Path, seg_size: WalSegSize) -> io::Result<Option<Found>> {
    for c in candidates(dir, seg_size)? {
        if c.partial {
            return Ok(Some(Found::Partial(c)));
        }
        match check_complete(&c, seg_size)? {
            Ok(()) => return Ok(Some(Found::Complete(c))),
            Err(warning) => tracing::warn!("{warning}"),
        }
    }
    Ok(None)
}

/// A file that an interrupted rename left behind, and why it can go.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Leftover {
    /// The file's name.
    pub(crate) name: String,
    /// The file that holds its WAL, or `None` for an unfinished temporary file.
    pub(crate) kept: Option<String>,
}

/// Files that a crash between two steps of finishing or converting a segment leaves next to
/// the file that superseded them: a `.partial` of a segment whose complete file is there (and
/// passes its size check), the shorter of two `.partial` files of one segment (a resume into
/// another compression renames the new file in, then removes the old one), and `X.tmp` files
/// (the temporary names of receivers before temporary files were named by
/// [`crate::storage::temp`]: never complete). Every file is named like a WAL file.
/// Two partial files are compared by their valid WAL prefix (`cfg` decodes them); a group
/// whose files cannot be read or belong to another system is left for the scan to report.
pub(crate) fn leftovers(dir: &Path, cfg: DecoderConfig) -> io::Result<Vec<Leftover>> {
    let mut out = Vec::new();
    let mut all = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.strip_suffix(".tmp").is_some_and(|base| {
            matches!(WalFileName::parse(base), Some(WalFileName::Segment { .. }))
        }) {
            // Removing a symbolic link removes only the link.
            out.push(Leftover { name, kept: None });
        } else if entry.file_type()?.is_symlink() {
            // Never read or removed here; `candidates` refuses a linked partial file.
            continue;
        } else {
            all.extend(candidate(name, entry.path(), cfg.seg_size));
        }
    }
    sort_candidates(&mut all);
    // `candidates` is sorted by segment and timeline: each group is one run.
    for group in all.chunk_by(|a, b| (a.segno, a.tli) == (b.segno, b.tli)) {
        if group.len() < 2 {
            continue;
        }
        let mut complete = None;
        for c in group.iter().filter(|c| !c.partial) {
            if check_complete(c, cfg.seg_size)?.is_ok() {
                complete = Some(c);
                break;
            }
        }
        let partials: Vec<&Candidate> = group.iter().filter(|c| c.partial).collect();
        let kept = match complete {
            Some(c) => c,
            None if partials.len() > 1 => {
                let mut best: Option<(&Candidate, u64)> = None;
                let mut readable = true;
                for &p in &partials {
                    match validate_partial(p, cfg)? {
                        Ok(r) => {
                            if best.is_none_or(|(_, o)| r.offset > o) {
                                best = Some((p, r.offset));
                            }
                        }
                        Err(_) => readable = false,
                    }
                }
                match best {
                    Some((p, _)) if readable => p,
                    _ => continue,
                }
            }
            None => continue,
        };
        for p in partials {
            if p.name != kept.name {
                out.push(Leftover {
                    name: p.name.clone(),
                    kept: Some(kept.name.clone()),
                });
            }
        }
    }
    Ok(out)
}

/// Removes the [`leftovers`] of `dir`, logging each, and the stale temporary files of pgwal's
/// naming ([`remove_stale_temp_files`], the same sweep as `archive push`'s). With `sync`, the
/// directory is fsynced before (so the files that supersede them are durable first) and
/// after; a failed fsync is [`ReceiveError::Sync`] (fatal), as everywhere in the receiver.
pub(crate) fn remove_leftovers(
    dir: &Path,
    cfg: DecoderConfig,
    sync: bool,
) -> Result<(), ReceiveError> {
    let io = |source| ReceiveError::Io {
        op: "remove leftover files in",
        path: dir.to_owned(),
        source,
    };
    let swept = remove_stale_temp_files(dir).map_err(io)?;
    for name in &swept {
        tracing::info!("removing \"{name}\": a temporary file its writer left behind");
    }
    let found = leftovers(dir, cfg).map_err(io)?;
    if found.is_empty() {
        if sync && !swept.is_empty() {
            fsync_dir(dir)?;
        }
        return Ok(());
    }
    if sync {
        fsync_dir(dir)?;
    }
    for l in &found {
        match &l.kept {
            Some(k) => tracing::info!("removing \"{}\": its WAL is in \"{k}\"", l.name),
            None => tracing::info!("removing \"{}\": an unfinished temporary file", l.name),
        }
        match fs::remove_file(dir.join(&l.name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
    }
    if sync {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// A partial segment, validated: streaming resumes at `offset`.
#[derive(Debug)]
pub(crate) struct Resume {
    pub(crate) tli: TimelineId,
    pub(crate) segno: SegNo,
    /// The bytes of the segment that are kept (the valid prefix).
    pub(crate) offset: u64,
    /// The file it came from.
    pub(crate) source: PathBuf,
    pub(crate) source_compression: Compression,
    /// The file's content, decompressed (only `[0, offset)` is trusted).
    pub(crate) data: Vec<u8>,
}

/// The decoder's safe point: the start of an incomplete record, else its position.
pub(crate) fn safe_point(d: &WalDecoder) -> Lsn {
    d.pending_record().unwrap_or_else(|| d.position())
}

/// Feeds `data` (a segment's bytes from its start) to `dec` and returns the offset up to
/// which it is valid WAL: every page header checked and every record that ends in it intact,
/// cut before a record that is incomplete or damaged.
pub(crate) fn valid_prefix(
    dec: &mut WalDecoder,
    seg_start: Lsn,
    data: &[u8],
    tli: TimelineId,
) -> u64 {
    let mut input = data;
    let mut safe = safe_point(dec);
    loop {
        let r = dec.decode(&mut input).map(|r| r.is_some());
        if dec.page_timeline() > tli.0 {
            break;
        }
        match r {
            Ok(true) => safe = safe_point(dec),
            Ok(false) => {
                safe = safe_point(dec);
                break;
            }
            Err(_) => break,
        }
    }
    safe.0.saturating_sub(seg_start.0).min(data.len() as u64)
}

/// Validates a partial segment for resuming. The inner `Err` is a file that belongs to
/// another system ([`ReceiveError::ForeignWal`]).
pub(crate) fn validate_partial(
    c: &Candidate,
    cfg: DecoderConfig,
) -> io::Result<Result<Resume, ReceiveError>> {
    let seg_size = cfg.seg_size;
    let raw = fs::read(&c.path)?;
    let (data, _) = decompress_prefix(c.compression, &raw, seg_size.bytes());
    drop(raw);
    if let (Some(found), Some(server)) = (head_system_id(&data), cfg.system_id) {
        if found != server {
            return Ok(Err(ReceiveError::ForeignWal {
                path: c.path.clone(),
                found,
                server,
            }));
        }
    }
    let seg_start = c.segno.start_lsn(seg_size).unwrap_or(Lsn(0));
    let mut dec = WalDecoder::new(cfg, seg_start);
    let offset = valid_prefix(&mut dec, seg_start, &data, c.tli);
    Ok(Ok(Resume {
        tli: c.tli,
        segno: c.segno,
        offset,
        source: c.path.clone(),
        source_compression: c.compression,
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str, len: usize) {
        fs::write(dir.join(name), vec![0u8; len]).unwrap();
    }

    #[test]
    fn scan_order_and_size_checks() {
        let dir = tempfile::tempdir().unwrap();
        let seg = WalSegSize::new(1 << 20).unwrap();
        touch(dir.path(), "000000010000000000000003", 1 << 20);
        touch(dir.path(), "000000010000000000000004", 100); // wrong size: skipped
        touch(dir.path(), "00000002.history", 10);
        touch(dir.path(), "000000010000000000000002.partial", 1 << 20);
        touch(dir.path(), "junk", 1);
        let found = find_start(dir.path(), seg).unwrap();
        match found {
            Some(Found::Complete(c)) => assert_eq!(c.name, "000000010000000000000003"),
            other => panic!("{other:?}"),
        }
        touch(dir.path(), "000000020000000000000003.partial", 1 << 20);
        match find_start(dir.path(), seg).unwrap() {
            Some(Found::Partial(c)) => assert_eq!(c.name, "000000020000000000000003.partial"),
            other => panic!("{other:?}"),
        }
        // A complete file beats a partial of the same segment and timeline.
        touch(dir.path(), "000000020000000000000003", 1 << 20);
        match find_start(dir.path(), seg).unwrap() {
            Some(Found::Complete(c)) => assert_eq!(c.name, "000000020000000000000003"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn leftovers_of_interrupted_renames() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let seg = WalSegSize::new(1 << 20).unwrap();
        let cfg = DecoderConfig::new(seg);
        // Real WAL of segment 9 (16's sample), and the same segment cut in half.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/wal/pg16");
        let wal = fs::read(root.join("000000010000000000000009")).unwrap();
        let mut half = wal.clone();
        half[wal.len() / 2..].fill(0);
        // Segment 3: complete, and a partial from before it was finished.
        touch(d, "000000010000000000000003.zst", 0);
        fs::write(d.join("000000010000000000000003"), &wal).unwrap();
        touch(d, "000000010000000000000003.partial", 1 << 20);
        // Segment 4: a complete file that fails its size check does not count.
        touch(d, "000000010000000000000004", 100);
        touch(d, "000000010000000000000004.partial", 1 << 20);
        // Segment 9: two partials, the longer valid one is kept, whatever its name.
        fs::write(d.join("000000010000000000000009.partial"), &wal).unwrap();
        fs::write(d.join("000000010000000000000009.zst.partial"), &half).unwrap();
        // Unfinished temporary files; other files are not touched.
        touch(d, "000000010000000000000009.gz.partial.tmp", 10);
        touch(d, "00000001000000000000000A.tmp", 10);
        touch(d, "notes.tmp", 1);
        touch(d, "00000002.history", 10);
        let mut found = leftovers(d, cfg).unwrap();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        let seen: Vec<(&str, Option<&str>)> = found
            .iter()
            .map(|l| (l.name.as_str(), l.kept.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "000000010000000000000003.partial",
                    Some("000000010000000000000003")
                ),
                ("000000010000000000000009.gz.partial.tmp", None),
                (
                    "000000010000000000000009.zst.partial",
                    Some("000000010000000000000009.partial")
                ),
                ("00000001000000000000000A.tmp", None),
            ]
        );
        remove_leftovers(d, cfg, true).unwrap();
        let mut left: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "000000010000000000000003",
                "000000010000000000000003.zst",
                "000000010000000000000004",
                "000000010000000000000004.partial",
                "000000010000000000000009.partial",
                "00000002.history",
                "notes.tmp",
            ]
        );
        assert!(leftovers(d, cfg).unwrap().is_empty());
    }

    #[test]
    fn gzip_isize_is_checked() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let seg = WalSegSize::new(1 << 20).unwrap();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&vec![0u8; 1 << 20]).unwrap();
        fs::write(
            dir.path().join("000000010000000000000005.gz"),
            e.finish().unwrap(),
        )
        .unwrap();
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&[0u8; 10]).unwrap();
        fs::write(
            dir.path().join("000000010000000000000006.gz"),
            e.finish().unwrap(),
        )
        .unwrap();
        match find_start(dir.path(), seg).unwrap() {
            Some(Found::Complete(c)) => assert_eq!(c.name, "000000010000000000000005.gz"),
            other => panic!("{other:?}"),
        }
    }
}
