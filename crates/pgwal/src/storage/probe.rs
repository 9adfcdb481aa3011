//! The page-header sniffer: what the first page header of a WAL file says (version, system
//! identifier, segment and page size, timeline, address), from its bytes or from a file
//! (decompressed as far as needed).

use std::io;
use std::path::Path;

use crate::lsn::Lsn;
use crate::segment::{TimelineId, WalSegSize};
use crate::wal::{PageHeader, PgVersion, LONG_HEADER_SIZE};

/// What the first page of a segment says about its WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The version named by the page magic.
    pub version: PgVersion,
    /// System identifier.
    pub system_id: u64,
    /// Segment size.
    pub seg_size: WalSegSize,
    /// WAL page size.
    pub page_size: u32,
    /// Timeline of the first page.
    pub tli: TimelineId,
    /// Address of the first page.
    pub pageaddr: Lsn,
}

/// Why the start of a file is not the first page of a WAL segment ([`probe_segment`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// Fewer bytes than a page header.
    #[error("file is too short ({len} bytes) for a WAL page header")]
    TooShort {
        /// The bytes there are.
        len: usize,
    },
    /// The page magic is not one of a known PostgreSQL version.
    #[error("invalid magic number {magic:04X} in the first page header")]
    BadMagic {
        /// The magic found.
        magic: u16,
    },
    /// The first page has a short header.
    #[error("the first page has no long header (info bits {info:04X})")]
    NoLongHeader {
        /// `xlp_info`.
        info: u16,
    },
    /// The segment size is not a power of two between 1 MB and 1 GB.
    #[error(
        "invalid WAL segment size ({size} bytes); it must be a power of two between 1 MB and 1 GB"
    )]
    BadSegmentSize {
        /// The size in the header.
        size: u32,
    },
    /// The page size is not a power of two between 1 kB and 64 kB.
    #[error("invalid WAL page size {size} in the first page header")]
    BadPageSize {
        /// The size in the header.
        size: u32,
    },
}

/// Reads the long page header at the start of a segment's bytes.
pub fn probe_segment(bytes: &[u8]) -> Result<SegmentInfo, ProbeError> {
    let h = PageHeader::parse(bytes).ok_or(ProbeError::TooShort { len: bytes.len() })?;
    let version = h.version().ok_or(ProbeError::BadMagic { magic: h.magic })?;
    let l = h.long.ok_or(ProbeError::NoLongHeader { info: h.info })?;
    let seg_size =
        WalSegSize::new(l.seg_size).ok_or(ProbeError::BadSegmentSize { size: l.seg_size })?;
    if !l.page_size.is_power_of_two() || !(1024..=65536).contains(&l.page_size) {
        return Err(ProbeError::BadPageSize { size: l.page_size });
    }
    Ok(SegmentInfo {
        version,
        system_id: l.sysid,
        seg_size,
        page_size: l.page_size,
        tli: TimelineId(h.tli),
        pageaddr: h.pageaddr,
    })
}

/// [`probe_segment`] on the start of the file at `path` (decompressed if it is compressed).
/// The outer error is the file's (reading or decompressing), the inner one its content's.
pub fn probe_file(path: &Path) -> io::Result<Result<SegmentInfo, ProbeError>> {
    let head = super::codec::read_head(path, LONG_HEADER_SIZE)?;
    Ok(probe_segment(&head))
}
