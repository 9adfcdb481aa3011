//! # pgwal: PostgreSQL's write-ahead log, as a library
//!
//! `pgwal` reads and streams the WAL of PostgreSQL 13 to 19:
//!
//! - **Positions and names**: [`Lsn`] (PostgreSQL's `X/X` form), [`TimelineId`], [`SegNo`],
//!   [`WalSegSize`], WAL file names ([`WalFileName`]) and timeline history files
//!   ([`TimelineHistory`]).
//! - **Decoding** (`wal`): a sans-IO decoder that takes WAL bytes in pieces (a memory-mapped
//!   segment, files of a directory, or a replication stream) and yields records that borrow
//!   from the input.
//!
//! Nothing in the decoding paths panics on bad input: malformed WAL produces an error that
//! names the LSN and the reason.
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "archive")]
pub mod archive;
#[cfg(feature = "replication")]
pub mod conninfo;
pub mod desc;
#[doc(hidden)]
pub mod fuzzing;
pub mod history;
pub mod insight;
#[cfg(feature = "replication")]
pub mod live;
pub mod lsn;
pub mod reader;
#[cfg(feature = "receiver")]
pub mod receiver;
#[cfg(feature = "replication")]
pub mod replication;
pub mod segment;
pub mod source;
pub mod storage;
pub mod tar;
pub mod wal;

/// The repository README's examples, compiled by `cargo test --doc` (they use the replication
/// client too).
#[cfg(all(doctest, feature = "receiver"))]
#[doc = include_str!("../../../README.md")]
mod readme {}

pub use history::{HistoryEntry, HistoryError, TimelineHistory};
pub use lsn::{Lsn, ParseLsnError};
pub use segment::{Compression, ParseTimelineError, SegNo, TimelineId, WalFileName, WalSegSize};
