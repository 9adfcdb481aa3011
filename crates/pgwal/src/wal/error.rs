//! Decoding errors: each names the LSN and the reason, in the spirit of PostgreSQL's
//! xlogreader messages.

use std::fmt;

use crate::lsn::Lsn;

/// Why WAL could not be decoded at [`WalError::lsn`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WalErrorKind {
    /// `xl_tot_len` is smaller than a record header (0 in zeroed, never-written space).
    InvalidRecordLength {
        /// The length found.
        got: u32,
    },
    /// `xl_tot_len` is larger than any record PostgreSQL can write.
    RecordTooLong {
        /// The length found.
        got: u32,
    },
    /// The resource manager id is not valid for the WAL's version.
    InvalidRmgr {
        /// The rmgr id found.
        rmid: u8,
    },
    /// `xl_prev` does not point at the previous record.
    IncorrectPrevLink {
        /// The prev-link found.
        prev: Lsn,
        /// What was expected (for the first record read: anything below its own LSN).
        expected: Option<Lsn>,
    },
    /// The record's CRC-32C does not match its contents.
    BadCrc {
        /// The CRC stored in the record.
        stored: u32,
        /// The CRC computed.
        computed: u32,
    },
    /// A page does not start with a known `XLOG_PAGE_MAGIC` (0 for a never-written page).
    BadMagic {
        /// The magic found.
        magic: u16,
        /// Offset of the page in its segment.
        offset: u64,
    },
    /// A page carries a different PostgreSQL version's magic than the WAL before it.
    MagicChanged {
        /// The magic found.
        magic: u16,
        /// The magic of earlier pages.
        expected: u16,
    },
    /// Unknown bits in `xlp_info`, or no long header on the first page of a segment.
    InvalidInfoBits {
        /// The `xlp_info` found.
        info: u16,
        /// Offset of the page in its segment.
        offset: u64,
    },
    /// The page's `xlp_pageaddr` is not its own position (a recycled or misplaced page).
    UnexpectedPageAddr {
        /// The address found.
        found: Lsn,
        /// Offset of the page in its segment.
        offset: u64,
    },
    /// A page's timeline is lower than an earlier page's.
    OutOfSequenceTimeline {
        /// The timeline found.
        tli: u32,
        /// The timeline of the earlier page.
        after: u32,
    },
    /// The long page header belongs to another database system.
    SystemIdMismatch {
        /// The system identifier found in the page.
        found: u64,
        /// The expected system identifier.
        expected: u64,
    },
    /// The long page header's segment size differs from the configured one.
    SegmentSizeMismatch {
        /// Segment size in the page header.
        found: u32,
        /// Expected segment size.
        expected: u32,
    },
    /// The long page header's `xlp_xlog_blcksz` differs from the configured page size.
    PageSizeMismatch {
        /// Page size in the page header.
        found: u32,
        /// Expected page size.
        expected: u32,
    },
    /// A record continues onto a page whose header lacks `XLP_FIRST_IS_CONTRECORD`.
    MissingContrecord,
    /// `xlp_rem_len` disagrees with the bytes still missing from the record.
    InvalidContrecordLength {
        /// `xlp_rem_len` found.
        rem_len: u32,
        /// Bytes the record still needed.
        expected: u32,
    },
    /// A block reference id is out of order.
    OutOfOrderBlockId {
        /// The id found.
        id: u8,
    },
    /// A fragment header has an unknown id.
    InvalidBlockId {
        /// The id found.
        id: u8,
    },
    /// `BKPBLOCK_HAS_DATA` is set but the data length is 0.
    HasDataButNoData,
    /// `BKPBLOCK_HAS_DATA` is not set but the data length is not 0.
    NoHasDataButData {
        /// The data length found.
        len: u16,
    },
    /// The image header's hole description is inconsistent.
    InvalidHole {
        /// Hole offset.
        offset: u16,
        /// Hole length.
        length: u16,
        /// Image length.
        image_len: u16,
    },
    /// A compressed image is not shorter than a block.
    InvalidCompressedLength {
        /// Image length.
        image_len: u16,
    },
    /// An uncompressed image without a hole is not a whole block.
    InvalidImageLength {
        /// Image length.
        image_len: u16,
    },
    /// `BKPBLOCK_SAME_REL` on the first block reference.
    SameRelWithoutPrevious,
    /// The fragment lengths do not add up to the record length.
    InvalidFragmentLength,
}

/// A WAL decoding error at a given LSN.
///
/// [`WalError::is_end_of_wal`] tells the normal end of written WAL (zeroed space, a page not yet
/// written, a recycled segment) from corruption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalError {
    /// Where the problem was found: the record's LSN, or the page's for page-header errors.
    pub lsn: Lsn,
    /// What was wrong.
    pub kind: WalErrorKind,
}

impl WalError {
    pub(crate) fn new(lsn: Lsn, kind: WalErrorKind) -> WalError {
        WalError { lsn, kind }
    }

    /// True when this marks where written WAL ends rather than damage: a zero record length,
    /// a never-written (all-zero magic) page, or a page left over from a recycled segment
    /// (its address is older than expected).
    pub fn is_end_of_wal(&self) -> bool {
        match self.kind {
            WalErrorKind::InvalidRecordLength { got: 0 } => true,
            WalErrorKind::BadMagic { magic: 0, .. } => true,
            WalErrorKind::UnexpectedPageAddr { found, .. } => found < self.lsn,
            _ => false,
        }
    }
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.lsn;
        match &self.kind {
            WalErrorKind::InvalidRecordLength { got } => {
                write!(f, "invalid record length at {at}: expected at least 24, got {got}")
            }
            WalErrorKind::RecordTooLong { got } => write!(f, "record length {got} at {at} too long"),
            WalErrorKind::InvalidRmgr { rmid } => {
                write!(f, "invalid resource manager ID {rmid} at {at}")
            }
            WalErrorKind::IncorrectPrevLink { prev, .. } => {
                write!(f, "record with incorrect prev-link {prev} at {at}")
            }
            WalErrorKind::BadCrc { .. } => {
                write!(f, "incorrect resource manager data checksum in record at {at}")
            }
            WalErrorKind::BadMagic { magic, offset } => {
                write!(f, "invalid magic number {magic:04X} at {at}, offset {offset}")
            }
            WalErrorKind::MagicChanged { magic, expected } => write!(
                f,
                "magic number {magic:04X} at {at} differs from the earlier pages' {expected:04X}"
            ),
            WalErrorKind::InvalidInfoBits { info, offset } => {
                write!(f, "invalid info bits {info:04X} at {at}, offset {offset}")
            }
            WalErrorKind::UnexpectedPageAddr { found, offset } => {
                write!(f, "unexpected pageaddr {found} at {at}, offset {offset}")
            }
            WalErrorKind::OutOfSequenceTimeline { tli, after } => {
                write!(f, "out-of-sequence timeline ID {tli} (after {after}) at {at}")
            }
            WalErrorKind::SystemIdMismatch { found, expected } => write!(
                f,
                "WAL file is from different database system: WAL file database system identifier is {found}, expected {expected} (at {at})"
            ),
            WalErrorKind::SegmentSizeMismatch { .. } => write!(
                f,
                "WAL file is from different database system: incorrect segment size in page header at {at}"
            ),
            WalErrorKind::PageSizeMismatch { .. } => write!(
                f,
                "WAL file is from different database system: incorrect XLOG_BLCKSZ in page header at {at}"
            ),
            WalErrorKind::MissingContrecord => write!(f, "there is no contrecord flag at {at}"),
            WalErrorKind::InvalidContrecordLength { rem_len, expected } => {
                write!(f, "invalid contrecord length {rem_len} (expected {expected}) at {at}")
            }
            WalErrorKind::OutOfOrderBlockId { id } => write!(f, "out-of-order block_id {id} at {at}"),
            WalErrorKind::InvalidBlockId { id } => write!(f, "invalid block_id {id} at {at}"),
            WalErrorKind::HasDataButNoData => {
                write!(f, "BKPBLOCK_HAS_DATA set, but no data included at {at}")
            }
            WalErrorKind::NoHasDataButData { len } => {
                write!(f, "BKPBLOCK_HAS_DATA not set, but data length is {len} at {at}")
            }
            WalErrorKind::InvalidHole { offset, length, image_len } => write!(
                f,
                "invalid hole in block image (offset {offset}, length {length}, image length {image_len}) at {at}"
            ),
            WalErrorKind::InvalidCompressedLength { image_len } => {
                write!(f, "BKPIMAGE_COMPRESSED set, but block image length {image_len} at {at}")
            }
            WalErrorKind::InvalidImageLength { image_len } => write!(
                f,
                "neither BKPIMAGE_HAS_HOLE nor BKPIMAGE_COMPRESSED set, but block image length is {image_len} at {at}"
            ),
            WalErrorKind::SameRelWithoutPrevious => {
                write!(f, "BKPBLOCK_SAME_REL set but no previous rel at {at}")
            }
            WalErrorKind::InvalidFragmentLength => write!(f, "record with invalid length at {at}"),
        }
    }
}

impl std::error::Error for WalError {}
