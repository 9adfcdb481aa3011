//! Decoding WAL: pages, records, block references.
//!
//! The decoder does no I/O. [`WalDecoder`] takes WAL bytes in pieces, checks page headers and
//! records as PostgreSQL's xlogreader does, and yields [`Record`]s that borrow their bytes.
//!
//! ```text
//!  segment bytes ──► page headers checked, stripped ──► record header ──► CRC-32C
//!                                                         │
//!                                          block refs + main data (borrowed slices)
//! ```

mod crc;
mod decoder;
mod error;
mod fpi;
mod page;
mod record;
pub(crate) mod span;
mod version;

pub use crc::crc32c_append;
pub use decoder::{DecoderConfig, WalDecoder, KEPT_PREFIX};
pub use error::{WalError, WalErrorKind};
pub use fpi::{pglz_decompress, restore_block_image, ImageError};
pub use page::{
    is_valid_page_size, LongHeader, PageHeader, DEFAULT_PAGE_SIZE, LONG_HEADER_SIZE,
    SHORT_HEADER_SIZE, XLP_BKP_REMOVABLE, XLP_FIRST_IS_CONTRECORD,
    XLP_FIRST_IS_OVERWRITE_CONTRECORD, XLP_LONG_HEADER,
};
pub use record::{
    record_crc, BlockImage, BlockRef, Fork, ImageCompression, ImageFlags, ImageInfo, Record,
    RecordHeader, RelFileLocator, BLCKSZ, MAX_BLOCK_ID, RECORD_HEADER_SIZE, XLR_CHECK_CONSISTENCY,
    XLR_INFO_MASK, XLR_SPECIAL_REL_UPDATE,
};
pub use version::PgVersion;
