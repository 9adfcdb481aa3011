//! Segment numbers and sizes, timeline ids, and WAL file names.
//!
//! WAL is stored in segment files named `TTTTTTTTHHHHHHHHLLLLLLLL`: the timeline, then the
//! segment number split into a "log" part (`segno / segments_per_4GB`) and a "seg" part
//! (`segno % segments_per_4GB`), each as 8 upper-case hex digits (`XLogFileName()` in
//! `xlog_internal.h`).

use std::fmt;
use std::str::FromStr;

use crate::lsn::Lsn;

/// A timeline id (`TimeLineID`). Timelines start at 1 and grow with each promotion.
///
/// ```
/// use pgwal::TimelineId;
/// let t: TimelineId = "0x1A".parse().unwrap();
/// assert_eq!(t, TimelineId(26));
/// assert_eq!("26".parse::<TimelineId>().unwrap(), t);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimelineId(pub u32);

impl fmt::Display for TimelineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The text was not a timeline id (decimal or `0x` hex, 1 ..= 4294967295).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timeline \"{0}\"")]
pub struct ParseTimelineError(pub String);

impl FromStr for TimelineId {
    type Err = ParseTimelineError;

    /// Decimal, or hex with a `0x` prefix (like `strtoul(s, NULL, 0)` with the range checked).
    fn from_str(s: &str) -> Result<TimelineId, ParseTimelineError> {
        let err = || ParseTimelineError(s.to_owned());
        let v = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            u32::from_str_radix(h, 16).map_err(|_| err())?
        } else {
            if !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            s.parse::<u32>().map_err(|_| err())?
        };
        if v == 0 {
            return Err(err());
        }
        Ok(TimelineId(v))
    }
}

/// A WAL segment size: a power of two from 1 MB to 1 GB (`IsValidWalSegSize`).
///
/// ```
/// use pgwal::WalSegSize;
/// assert_eq!(WalSegSize::new(16 << 20).unwrap().bytes(), 16 * 1024 * 1024);
/// assert!(WalSegSize::new(3 << 20).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WalSegSize(u32);

impl WalSegSize {
    /// PostgreSQL's default, 16 MB.
    pub const DEFAULT: WalSegSize = WalSegSize(16 << 20);

    /// Checks the size and wraps it.
    pub const fn new(bytes: u32) -> Option<WalSegSize> {
        if bytes.is_power_of_two() && bytes >= (1 << 20) && bytes <= (1 << 30) {
            Some(WalSegSize(bytes))
        } else {
            None
        }
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0 as u64
    }

    /// The size in bytes as `u32`.
    pub const fn bytes_u32(self) -> u32 {
        self.0
    }

    /// Segments per 4 GB "log id" (`XLogSegmentsPerXLogId`).
    pub const fn segments_per_xlogid(self) -> u64 {
        0x1_0000_0000 / self.0 as u64
    }

    /// Parses a `SHOW wal_segment_size` answer such as `16MB` or `1GB`.
    pub fn from_show(text: &str) -> Option<WalSegSize> {
        let t = text.trim();
        let (num, mult) = if let Some(n) = t.strip_suffix("GB") {
            (n, 1u64 << 30)
        } else if let Some(n) = t.strip_suffix("MB") {
            (n, 1u64 << 20)
        } else if let Some(n) = t.strip_suffix("kB") {
            (n, 1u64 << 10)
        } else if let Some(n) = t.strip_suffix('B') {
            (n, 1)
        } else {
            (t, 1)
        };
        let v = num.trim().parse::<u64>().ok()?.checked_mul(mult)?;
        WalSegSize::new(u32::try_from(v).ok()?)
    }
}

impl fmt::Display for WalSegSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1 << 30 {
            write!(f, "{}GB", self.0 >> 30)
        } else {
            write!(f, "{}MB", self.0 >> 20)
        }
    }
}

/// Segment arithmetic on [`Lsn`]. It lives here, not in `lsn`, so that `lsn` depends on nothing
/// and `segment` builds on it (one direction only).
impl Lsn {
    /// The segment this LSN falls in (`XLByteToSeg`).
    pub fn segment(self, seg_size: WalSegSize) -> SegNo {
        SegNo(self.0 / seg_size.bytes())
    }

    /// The offset of this LSN inside its segment (`XLogSegmentOffset`).
    pub fn segment_offset(self, seg_size: WalSegSize) -> u64 {
        self.0 & (seg_size.bytes() - 1)
    }

    /// The start of the segment holding this LSN.
    pub fn segment_start(self, seg_size: WalSegSize) -> Lsn {
        Lsn(self.0 & !(seg_size.bytes() - 1))
    }
}

/// A segment number (`XLogSegNo`): the LSN of the segment start divided by the segment size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegNo(pub u64);

impl SegNo {
    /// The LSN where this segment starts, or `None` on overflow.
    pub fn start_lsn(self, seg_size: WalSegSize) -> Option<Lsn> {
        self.0.checked_mul(seg_size.bytes()).map(Lsn)
    }

    /// The next segment number.
    pub fn next(self) -> SegNo {
        SegNo(self.0.saturating_add(1))
    }

    /// The segment file name on timeline `tli` (`XLogFileName`).
    ///
    /// ```
    /// use pgwal::{SegNo, TimelineId, WalSegSize};
    /// let n = SegNo(0x1_23).file_name(TimelineId(2), WalSegSize::DEFAULT);
    /// assert_eq!(n, "000000020000000100000023");
    /// ```
    pub fn file_name(self, tli: TimelineId, seg_size: WalSegSize) -> String {
        let per = seg_size.segments_per_xlogid();
        format!("{:08X}{:08X}{:08X}", tli.0, self.0 / per, self.0 % per)
    }
}

impl fmt::Display for SegNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Compression of a stored WAL file, from its name suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Stored as is.
    None,
    /// `.gz`: gzip, as pg_receivewal `-Z gzip` writes.
    Gzip,
    /// `.lz4`: the LZ4 frame format, as pg_receivewal `-Z lz4` writes.
    Lz4,
    /// `.zst`: a zstd frame.
    Zstd,
}

impl Compression {
    /// The file-name suffix, with its dot (empty for [`Compression::None`]).
    pub const fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
            Compression::Lz4 => ".lz4",
            Compression::Zstd => ".zst",
        }
    }
}

/// What a file name in a WAL directory or archive denotes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WalFileName {
    /// A segment: `TTTTTTTTHHHHHHHHLLLLLLLL[.gz|.lz4|.zst][.partial]`.
    Segment {
        /// Timeline of the segment.
        tli: TimelineId,
        /// The "log" part of the name (bits above 4 GB).
        log: u32,
        /// The "seg" part of the name (segment within the 4 GB log).
        seg: u32,
        /// Compression suffix.
        compression: Compression,
        /// True for a `.partial` (incomplete) segment.
        partial: bool,
    },
    /// A timeline history file: `TTTTTTTT.history` (optionally compressed).
    History {
        /// The timeline whose history it is.
        tli: TimelineId,
        /// Compression suffix.
        compression: Compression,
    },
    /// A backup history file: `TTTTTTTTHHHHHHHHLLLLLLLL.OOOOOOOO.backup`.
    Backup {
        /// Timeline.
        tli: TimelineId,
        /// Log part of the segment.
        log: u32,
        /// Seg part of the segment.
        seg: u32,
        /// Offset of the backup start inside the segment.
        offset: u32,
        /// Compression suffix.
        compression: Compression,
    },
}

fn hex8(s: &[u8]) -> Option<u32> {
    if s.len() != 8 || !s.iter().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F')) {
        return None;
    }
    let mut v = 0u32;
    for &b in s {
        let d = if b <= b'9' { b - b'0' } else { b - b'A' + 10 };
        v = (v << 4) | u32::from(d);
    }
    Some(v)
}

fn strip_compression(s: &str) -> (&str, Compression) {
    for c in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
        if let Some(rest) = s.strip_suffix(c.suffix()) {
            return (rest, c);
        }
    }
    (s, Compression::None)
}

impl WalFileName {
    /// Parses a bare file name (no directory). Returns `None` for anything that is not one of
    /// the forms above; hex digits must be upper case, as PostgreSQL writes them.
    ///
    /// ```
    /// use pgwal::{WalFileName, Compression, TimelineId};
    /// let n = WalFileName::parse("000000010000000000000003.gz.partial").unwrap();
    /// assert!(matches!(n, WalFileName::Segment { partial: true, compression: Compression::Gzip, .. }));
    /// assert_eq!(n.to_string(), "000000010000000000000003.gz.partial");
    /// assert_eq!(WalFileName::parse("00000002.history"),
    ///            Some(WalFileName::History { tli: TimelineId(2), compression: Compression::None }));
    /// assert!(WalFileName::parse("00000001000000000000003").is_none());
    /// ```
    pub fn parse(name: &str) -> Option<WalFileName> {
        let b = name.as_bytes();
        if b.len() < 8 {
            return None;
        }
        // Segment (possibly partial / compressed) or backup file: 24 hex digits first.
        if b.len() >= 24 {
            if let (Some(t), Some(log), Some(seg)) =
                (hex8(&b[0..8]), hex8(&b[8..16]), hex8(&b[16..24]))
            {
                let rest = &name[24..];
                if t == 0 {
                    return None;
                }
                let tli = TimelineId(t);
                let (rest, partial) = match rest.strip_suffix(".partial") {
                    Some(r) => (r, true),
                    None => (rest, false),
                };
                let (rest, compression) = strip_compression(rest);
                if rest.is_empty() {
                    return Some(WalFileName::Segment {
                        tli,
                        log,
                        seg,
                        compression,
                        partial,
                    });
                }
                if !partial
                    && rest.len() == 16
                    && rest.starts_with('.')
                    && rest.ends_with(".backup")
                {
                    let offset = hex8(&rest.as_bytes()[1..9])?;
                    return Some(WalFileName::Backup {
                        tli,
                        log,
                        seg,
                        offset,
                        compression,
                    });
                }
                return None;
            }
        }
        let (rest, compression) = strip_compression(name);
        if rest.len() == 16 && rest.ends_with(".history") {
            let t = hex8(&rest.as_bytes()[0..8])?;
            if t == 0 {
                return None;
            }
            return Some(WalFileName::History {
                tli: TimelineId(t),
                compression,
            });
        }
        None
    }

    /// A segment file name from its parts.
    pub fn segment(tli: TimelineId, segno: SegNo, seg_size: WalSegSize) -> WalFileName {
        let per = seg_size.segments_per_xlogid();
        WalFileName::Segment {
            tli,
            log: (segno.0 / per) as u32,
            seg: (segno.0 % per) as u32,
            compression: Compression::None,
            partial: false,
        }
    }

    /// The timeline the file belongs to.
    pub fn timeline(&self) -> TimelineId {
        match *self {
            WalFileName::Segment { tli, .. }
            | WalFileName::History { tli, .. }
            | WalFileName::Backup { tli, .. } => tli,
        }
    }

    /// The segment number for a segment or backup file, checked against `seg_size` (the "seg"
    /// part must be below the segments per 4 GB). `None` for history files or impossible names.
    pub fn segno(&self, seg_size: WalSegSize) -> Option<SegNo> {
        match *self {
            WalFileName::Segment { log, seg, .. } | WalFileName::Backup { log, seg, .. } => {
                let per = seg_size.segments_per_xlogid();
                if u64::from(seg) >= per {
                    return None;
                }
                Some(SegNo(u64::from(log) * per + u64::from(seg)))
            }
            WalFileName::History { .. } => None,
        }
    }

    /// The compression suffix.
    pub fn compression(&self) -> Compression {
        match *self {
            WalFileName::Segment { compression, .. }
            | WalFileName::History { compression, .. }
            | WalFileName::Backup { compression, .. } => compression,
        }
    }

    /// The same name with another compression suffix and partial flag (segments only keep
    /// `partial`).
    pub fn with(&self, compression: Compression, partial: bool) -> WalFileName {
        let mut n = self.clone();
        match &mut n {
            WalFileName::Segment {
                compression: c,
                partial: p,
                ..
            } => {
                *c = compression;
                *p = partial;
            }
            WalFileName::History { compression: c, .. }
            | WalFileName::Backup { compression: c, .. } => *c = compression,
        }
        n
    }

    /// The plain 24-character segment name (`TTTTTTTTHHHHHHHHLLLLLLLL`) of a segment or backup
    /// file, without any suffix.
    pub fn base_segment_name(&self) -> Option<String> {
        match *self {
            WalFileName::Segment { tli, log, seg, .. }
            | WalFileName::Backup { tli, log, seg, .. } => {
                Some(format!("{:08X}{log:08X}{seg:08X}", tli.0))
            }
            WalFileName::History { .. } => None,
        }
    }
}

impl fmt::Display for WalFileName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            WalFileName::Segment {
                tli,
                log,
                seg,
                compression,
                partial,
            } => write!(
                f,
                "{:08X}{log:08X}{seg:08X}{}{}",
                tli.0,
                compression.suffix(),
                if partial { ".partial" } else { "" }
            ),
            WalFileName::History { tli, compression } => {
                write!(f, "{:08X}.history{}", tli.0, compression.suffix())
            }
            WalFileName::Backup {
                tli,
                log,
                seg,
                offset,
                compression,
            } => write!(
                f,
                "{:08X}{log:08X}{seg:08X}.{offset:08X}.backup{}",
                tli.0,
                compression.suffix()
            ),
        }
    }
}

/// True for a WAL page size PostgreSQL can be built with: a power of two from 1 kB to 64 kB.
///
/// ```
/// use pgwal::segment::is_valid_page_size;
/// assert!(is_valid_page_size(8192));
/// assert!(!is_valid_page_size(0) && !is_valid_page_size(3) && !is_valid_page_size(131072));
/// ```
pub const fn is_valid_page_size(bytes: u32) -> bool {
    bytes.is_power_of_two() && bytes >= 1024 && bytes <= 65536
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_segment_arithmetic() {
        let seg = WalSegSize::new(16 << 20).unwrap();
        let l = Lsn(0x3_0123_4567);
        assert_eq!(l.segment(seg).0, 0x3_0123_4567 / (16 << 20));
        assert_eq!(l.segment_offset(seg), 0x23_4567);
        assert_eq!(l.segment_start(seg), Lsn(0x3_0100_0000));
        assert_eq!(l.segment(seg).start_lsn(seg), Some(l.segment_start(seg)));
    }

    #[test]
    fn names_round_trip() {
        for n in [
            "000000010000000000000001",
            "000000010000000000000001.partial",
            "0000000100000000000000FF.gz",
            "000000010000000000000001.lz4.partial",
            "000000030000000A000000FF.zst",
            "00000002.history",
            "0000000A.history.gz",
            "000000010000000000000002.00000028.backup",
        ] {
            let p = WalFileName::parse(n).unwrap_or_else(|| panic!("{n}"));
            assert_eq!(p.to_string(), n);
        }
        for bad in [
            "",
            "0000000100000000000000010",
            "00000001000000000000000g",
            "000000010000000000000001.tmp",
            "000000000000000000000001",
            "00000000.history",
            "0000000z.history",
            "000000010000000000000002.0000028.backup",
            "000000010000000000000001.partial.gz",
            "00000001.histor",
            "日本語日本語日本語日本語",
        ] {
            assert!(WalFileName::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn segno_mapping() {
        let one_mb = WalSegSize::new(1 << 20).unwrap();
        let n = WalFileName::parse("000000010000000200000FFF").unwrap();
        assert_eq!(n.segno(one_mb), Some(SegNo(2 * 4096 + 0xFFF)));
        assert_eq!(n.segno(WalSegSize::DEFAULT), None); // seg part too big for 16 MB
        assert_eq!(
            SegNo(2 * 4096 + 0xFFF).file_name(TimelineId(1), one_mb),
            "000000010000000200000FFF"
        );
        assert_eq!(
            WalFileName::segment(TimelineId(1), SegNo(0x1FF), WalSegSize::DEFAULT).to_string(),
            "0000000100000001000000FF"
        );
    }

    #[test]
    fn seg_size() {
        assert_eq!(WalSegSize::from_show("16MB"), Some(WalSegSize::DEFAULT));
        assert_eq!(
            WalSegSize::from_show("1GB").map(|s| s.bytes()),
            Some(1 << 30)
        );
        assert_eq!(WalSegSize::from_show("2GB"), None);
        assert_eq!(WalSegSize::from_show("3MB"), None);
        assert_eq!(WalSegSize::new(1 << 20).unwrap().to_string(), "1MB");
    }

    #[test]
    fn timelines() {
        assert_eq!("1".parse::<TimelineId>().unwrap(), TimelineId(1));
        assert_eq!("0xff".parse::<TimelineId>().unwrap(), TimelineId(255));
        for bad in ["0", "", "-1", "4294967296", "0x", "1a"] {
            assert!(bad.parse::<TimelineId>().is_err(), "{bad}");
        }
    }
}
