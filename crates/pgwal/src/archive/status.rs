//! `status`: what the archive holds, per timeline.

use std::io;
use std::path::{Path, PathBuf};

use crate::archive::listing::{self, other_files, temp_files};
use crate::archive::verify::SegmentIndex;
use crate::lsn::Lsn;
use crate::segment::{Compression, SegNo, TimelineId, WalFileName, WalSegSize};
use crate::source::WalDirectory;
use crate::wal::{DecoderConfig, PgVersion, WalDecoder};

/// One timeline's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimelineStatus {
    /// The timeline.
    pub tli: TimelineId,
    /// Its first segment file.
    pub first_segment: String,
    /// Its last segment file.
    pub last_segment: String,
    /// The end of valid WAL in its last segment (the newest LSN archived).
    pub newest_lsn: Option<Lsn>,
    /// Segment files (complete and `.partial`).
    pub files: usize,
    /// Of which `.partial`.
    pub partial_files: usize,
    /// Bytes of WAL they hold (uncompressed).
    pub total_bytes: u64,
    /// Bytes they take on disk.
    pub stored_bytes: u64,
    /// Whether the archive has the timeline's history file.
    pub has_history: bool,
}

/// The result of [`status`].
#[derive(Clone, Debug, Default)]
pub struct ArchiveStatus {
    /// The archive directory.
    pub dir: PathBuf,
    /// System identifier of the archived WAL.
    pub system_id: Option<u64>,
    /// Segment size.
    pub seg_size: Option<WalSegSize>,
    /// PostgreSQL version.
    pub version: Option<PgVersion>,
    /// Timelines with segments, ascending.
    pub timelines: Vec<TimelineStatus>,
    /// History files.
    pub history_files: Vec<String>,
    /// Backup history files.
    pub backup_files: Vec<String>,
    /// Temporary files.
    pub temp_files: usize,
    /// Other files.
    pub other_files: usize,
}

/// Summarises the archive in `dir`: for each timeline its first and last segment, the newest
/// LSN (decoding only the last two segments), file count and sizes.
pub fn status(dir: &Path) -> io::Result<ArchiveStatus> {
    Ok(status_listing(&listing::scan(dir)?))
}

/// [`status`] of the archive `listing` indexes: a directory's scan, or an object store's
/// listing whose objects are read on demand (`reader::object::list`, feature `object-store`:
/// the first page of each segment, and the last two segments of each timeline). The status's
/// `dir` is the listing's path (the URL).
pub fn status_listing(listing: &WalDirectory) -> ArchiveStatus {
    let idx = SegmentIndex::build(listing);
    let mut st = ArchiveStatus {
        dir: listing.path().to_owned(),
        system_id: idx.system_id,
        seg_size: idx.seg_size,
        version: idx.version,
        temp_files: temp_files(listing).len(),
        other_files: other_files(listing).count(),
        ..ArchiveStatus::default()
    };
    for e in listing.entries() {
        match e.wal {
            WalFileName::History { .. } => st.history_files.push(e.name.clone()),
            WalFileName::Backup { .. } => st.backup_files.push(e.name.clone()),
            WalFileName::Segment { .. } => {}
        }
    }
    let Some(seg_size) = idx.seg_size else {
        return st;
    };
    let cfg = DecoderConfig {
        seg_size,
        page_size: idx.page_size,
        system_id: idx.system_id,
        block_refs: true,
        keep_record_data: true,
    };
    let tlis: std::collections::BTreeSet<u32> = idx.slots.keys().map(|&(t, _)| t).collect();
    for t in tlis {
        let slots: Vec<(u64, &Vec<_>)> = idx
            .slots
            .range((t, 0)..=(t, u64::MAX))
            .map(|(&(_, n), v)| (n, v))
            .collect();
        let (Some(&(first, _)), Some(&(last, _))) = (slots.first(), slots.last()) else {
            continue;
        };
        let mut ts = TimelineStatus {
            tli: TimelineId(t),
            first_segment: idx.chosen(t, first).map_or_else(
                || SegNo(first).file_name(TimelineId(t), seg_size),
                |f| f.entry.name.clone(),
            ),
            last_segment: idx.chosen(t, last).map_or_else(
                || SegNo(last).file_name(TimelineId(t), seg_size),
                |f| f.entry.name.clone(),
            ),
            newest_lsn: None,
            files: 0,
            partial_files: 0,
            total_bytes: 0,
            stored_bytes: 0,
            has_history: st
                .history_files
                .iter()
                .any(|h| WalFileName::parse(h).is_some_and(|w| w.timeline().0 == t)),
        };
        for (_, files) in &slots {
            for f in files.iter() {
                ts.files += 1;
                ts.partial_files += usize::from(f.partial);
                ts.stored_bytes += f.entry.size;
                ts.total_bytes += if f.entry.wal.compression() == Compression::None {
                    f.entry.size
                } else if !f.partial {
                    seg_size.bytes()
                } else {
                    idx.read(f).map_or(0, |b| b.len() as u64)
                };
            }
        }
        ts.newest_lsn = newest_lsn(&idx, t, last, cfg);
        st.timelines.push(ts);
    }
    st
}

/// The end of valid WAL, decoding segment `last - 1` (when archived) and `last`.
fn newest_lsn(idx: &SegmentIndex, t: u32, last: u64, cfg: DecoderConfig) -> Option<Lsn> {
    let start = if last > 0 && idx.chosen(t, last - 1).is_some() {
        last - 1
    } else {
        last
    };
    let mut dec = WalDecoder::new(cfg, SegNo(start).start_lsn(cfg.seg_size)?);
    let mut best = None;
    for n in start..=last {
        let f = idx.chosen(t, n)?;
        let bytes = idx.read(f).ok()?;
        let mut input: &[u8] = &bytes;
        loop {
            match dec.decode(&mut input) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return dec.pending_record().or(dec.last_record_end()).or(best),
            }
        }
        best = dec.pending_record().or(dec.last_record_end()).or(best);
        if (bytes.len() as u64) < cfg.seg_size.bytes() {
            break;
        }
    }
    best
}
