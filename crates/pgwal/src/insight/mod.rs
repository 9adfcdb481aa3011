//! WAL statistics that answer questions: which relation, which transaction and which stretch
//! of time wrote the WAL, and how much of it was full-page images.
//!
//! Each breakdown is a fold over decoded records, fed in LSN order with `add`:
//!
//! - [`RelationStats`]: per relation and fork (from the block references), with per-database
//!   and per-tablespace totals;
//! - [`XactStats`]: per top-level transaction, subtransactions folded in, with how and when it
//!   ended when the range holds its commit or abort;
//! - [`TimeStats`]: per interval of time (the clock is read from commit, abort and checkpoint
//!   records), by resource manager;
//! - [`CheckpointStats`]: the WAL between one checkpoint's redo point and the next, with its
//!   full-page-image share.
//!
//! Every breakdown puts each record in exactly one row (records with no relation or no
//! transaction in a row of their own), so the rows of each add up to the same totals as
//! `pgwal dump --stats`: records, record bytes (`xl_tot_len` less the images) and image bytes.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use pgwal::insight::{RelationStats, XactStats};
//! use pgwal::source::{read_range, ReadRange, WalDirectory};
//! use pgwal::wal::DecoderConfig;
//! use pgwal::{Lsn, TimelineId, WalSegSize};
//!
//! let dir = WalDirectory::scan("pg_wal".as_ref())?;
//! let config = DecoderConfig::new(WalSegSize::DEFAULT);
//! let range = ReadRange::new(Lsn(0x1000028), TimelineId(1), config);
//! let (mut rels, mut xacts) = (RelationStats::new(), XactStats::new());
//! read_range(&dir, &range, |rec| {
//!     rels.add(rec);
//!     xacts.add(rec);
//!     ControlFlow::Continue(())
//! })?;
//! for row in rels.rows_by_bytes().iter().take(10) {
//!     println!("{}/{}/{} {}: {} bytes", row.rel.spc, row.rel.db, row.rel.rel,
//!              row.fork.name(), row.usage.total_bytes());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Relations are counted from block references, so the decoder must keep them
//! ([`DecoderConfig::with_block_refs`](crate::wal::DecoderConfig::with_block_refs), on by
//! default); without them every record lands in the "no block reference" row and no image is
//! counted.

use std::hash::{BuildHasherDefault, Hasher};

use crate::desc::{self, Fields};
use crate::wal::Record;

mod checkpoint;
mod relation;
mod time;
mod xid;

pub use checkpoint::{CheckpointCycle, CheckpointStats};
pub use relation::{RelFork, RelationRow, RelationStats};
pub use time::{ParseIntervalError, TimeBucket, TimeStats};
pub use xid::{XactEnding, XactRow, XactStats};

/// What a set of records wrote: how many, their bytes without images, and their images.
///
/// ```
/// use pgwal::insight::Usage;
/// let mut u = Usage { records: 2, rec_bytes: 100, fpi_bytes: 8000, fpi_count: 1 };
/// u.add(&Usage { records: 1, rec_bytes: 50, ..Usage::default() });
/// assert_eq!((u.records, u.total_bytes()), (3, 8150));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Records.
    pub records: u64,
    /// Record bytes: `xl_tot_len` less the full-page images (pg_waldump's "Record size").
    pub rec_bytes: u64,
    /// Full-page image bytes (as stored: compressed, hole removed).
    pub fpi_bytes: u64,
    /// Full-page images.
    pub fpi_count: u64,
}

impl Usage {
    /// Record and image bytes together (pg_waldump's "Combined size").
    pub fn total_bytes(&self) -> u64 {
        self.rec_bytes + self.fpi_bytes
    }

    /// Adds `other` in.
    pub fn add(&mut self, other: &Usage) {
        self.records += other.records;
        self.rec_bytes += other.rec_bytes;
        self.fpi_bytes += other.fpi_bytes;
        self.fpi_count += other.fpi_count;
    }

    /// One record: its bytes, its images and how many there are (from its record header,
    /// without block references).
    pub fn of(rec: &Record<'_>) -> Usage {
        let fpi = rec.fpi_len();
        Usage {
            records: 1,
            rec_bytes: u64::from(rec.total_len().saturating_sub(fpi)),
            fpi_bytes: u64::from(fpi),
            fpi_count: u64::from(rec.fpi_count()),
        }
    }
}

/// The wall-clock time a record carries, in microseconds since the Unix epoch: a commit's or
/// abort's `xact_time`, or a checkpoint's start time (whole seconds). `None` for other
/// records.
///
/// ```no_run
/// # fn demo(rec: &pgwal::wal::Record<'_>) {
/// if let Some(t) = pgwal::insight::record_time(rec) {
///     println!("{} at {} µs after 1970", rec.lsn(), t);
/// }
/// # }
/// ```
pub fn record_time(rec: &Record<'_>) -> Option<i64> {
    // Only Transaction and XLOG records carry a time; skip the dispatch for the rest.
    if rec.rmid() > 1 {
        return None;
    }
    match desc::fields(rec)? {
        Fields::XactEnd(e) => Some(e.unix_time_us()),
        Fields::Checkpoint(c) => Some(c.time.saturating_mul(1_000_000)),
        _ => None,
    }
}

/// A small multiplicative hasher for the integer keys of the breakdowns (the standard
/// SipHash costs more than the rest of the per-record work).
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.write_u64(u64::from(n));
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// `HashMap` building with [`IdHasher`].
pub(crate) type IdHash = BuildHasherDefault<IdHasher>;
