//! WAL page headers: the short header on every page and the long one that starts a segment.

use crate::lsn::Lsn;
use crate::wal::record::{le16, le32, le64};
use crate::wal::version::PgVersion;

/// Size of the short page header (`SizeOfXLogShortPHD`).
pub const SHORT_HEADER_SIZE: usize = 24;
/// Size of the long page header (`SizeOfXLogLongPHD`).
pub const LONG_HEADER_SIZE: usize = 40;
/// The default WAL page size (`XLOG_BLCKSZ`).
pub const DEFAULT_PAGE_SIZE: u32 = 8192;

pub use crate::segment::is_valid_page_size;

/// `XLP_FIRST_IS_CONTRECORD`: the page starts with the continuation of a record.
pub const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
/// `XLP_LONG_HEADER`: the page has a long header.
pub const XLP_LONG_HEADER: u16 = 0x0002;
/// `XLP_BKP_REMOVABLE`.
pub const XLP_BKP_REMOVABLE: u16 = 0x0004;
/// `XLP_FIRST_IS_OVERWRITE_CONTRECORD` (14+, 13.5+).
pub const XLP_FIRST_IS_OVERWRITE_CONTRECORD: u16 = 0x0008;
/// All defined `xlp_info` bits.
pub const XLP_ALL_FLAGS: u16 = 0x000F;

/// A page header (`XLogPageHeaderData`, plus the `XLogLongPageHeaderData` fields when long).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageHeader {
    /// `xlp_magic`.
    pub magic: u16,
    /// `xlp_info` flags.
    pub info: u16,
    /// Timeline of the first record on the page.
    pub tli: u32,
    /// The page's own address.
    pub pageaddr: Lsn,
    /// Bytes of a record continued from the previous page.
    pub rem_len: u32,
    /// Present when `XLP_LONG_HEADER` is set.
    pub long: Option<LongHeader>,
}

/// The extra fields of a long page header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LongHeader {
    /// System identifier of the cluster.
    pub sysid: u64,
    /// WAL segment size.
    pub seg_size: u32,
    /// WAL page size (`XLOG_BLCKSZ`).
    pub page_size: u32,
}

impl PageHeader {
    /// Parses a header from the start of `b`: `None` if `b` is shorter than the header it
    /// announces (24 bytes, or 40 with `XLP_LONG_HEADER`).
    ///
    /// ```
    /// use pgwal::wal::PageHeader;
    /// let mut page = [0u8; 40];
    /// page[0..2].copy_from_slice(&0xD118u16.to_le_bytes());
    /// page[2..4].copy_from_slice(&2u16.to_le_bytes()); // XLP_LONG_HEADER
    /// page[4..8].copy_from_slice(&1u32.to_le_bytes());
    /// page[32..36].copy_from_slice(&(16u32 << 20).to_le_bytes());
    /// page[36..40].copy_from_slice(&8192u32.to_le_bytes());
    /// let h = PageHeader::parse(&page).unwrap();
    /// assert_eq!(h.size(), 40);
    /// assert_eq!(h.long.unwrap().seg_size, 16 << 20);
    /// ```
    pub fn parse(b: &[u8]) -> Option<PageHeader> {
        if b.len() < SHORT_HEADER_SIZE {
            return None;
        }
        let info = le16(b, 2);
        let long = if info & XLP_LONG_HEADER != 0 {
            if b.len() < LONG_HEADER_SIZE {
                return None;
            }
            Some(LongHeader {
                sysid: le64(b, 24),
                seg_size: le32(b, 32),
                page_size: le32(b, 36),
            })
        } else {
            None
        };
        Some(PageHeader {
            magic: le16(b, 0),
            info,
            tli: le32(b, 4),
            pageaddr: Lsn(le64(b, 8)),
            rem_len: le32(b, 16),
            long,
        })
    }

    /// The header's size in bytes (`XLogPageHeaderSize`).
    pub fn size(&self) -> usize {
        if self.info & XLP_LONG_HEADER != 0 {
            LONG_HEADER_SIZE
        } else {
            SHORT_HEADER_SIZE
        }
    }

    /// The PostgreSQL version named by the magic, if known.
    pub fn version(&self) -> Option<PgVersion> {
        PgVersion::from_magic(self.magic)
    }

    /// True if the page starts with a continuation record.
    pub fn is_contrecord(&self) -> bool {
        self.info & XLP_FIRST_IS_CONTRECORD != 0
    }
}
