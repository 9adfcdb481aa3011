//! WAL per relation and fork, from block references.

use std::collections::HashMap;

use super::{IdHash, Usage};
use crate::wal::{Fork, Record, RelFileLocator};

/// A relation fork as WAL names it: tablespace, database, file number, fork.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RelFork {
    /// The relation's file locator.
    pub rel: RelFileLocator,
    /// The fork.
    pub fork: Fork,
}

/// One relation fork's share of the WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelationRow {
    /// The relation's file locator.
    pub rel: RelFileLocator,
    /// The fork.
    pub fork: Fork,
    /// The records whose first block reference is this fork (record bytes with them), and the
    /// full-page images of this fork's blocks, whichever record carries them.
    pub usage: Usage,
    /// Block references to this fork, in any position of any record.
    pub block_refs: u64,
}

/// Records, record bytes and full-page images per relation fork.
///
/// A record is counted once, under the fork of its first block reference (the page it
/// changes first: the heap page of a heap insert, the leaf of an index insert); its images
/// are counted under the forks of the blocks they restore. Records without block references
/// (commits, checkpoints, ...) go to [`RelationStats::unattributed`]. The rows and that one
/// add up to [`RelationStats::total`].
///
/// ```no_run
/// # fn demo(records: &[pgwal::wal::Record<'_>]) {
/// let mut stats = pgwal::insight::RelationStats::new();
/// for rec in records {
///     stats.add(rec);
/// }
/// for (db, usage) in stats.by_database() {
///     println!("database {db}: {} bytes of WAL", usage.total_bytes());
/// }
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct RelationStats {
    index: HashMap<RelFork, usize, IdHash>,
    rows: Vec<RelationRow>,
    /// The last fork looked up, and its row: consecutive records mostly touch the same one.
    last: Option<(RelFork, usize)>,
    unattributed: Usage,
    total: Usage,
}

impl RelationStats {
    /// Empty statistics.
    pub fn new() -> RelationStats {
        RelationStats::default()
    }

    #[inline]
    fn row(&mut self, key: RelFork) -> &mut RelationRow {
        let i = match self.last {
            Some((k, i)) if k == key => i,
            _ => {
                let next = self.rows.len();
                let i = *self.index.entry(key).or_insert(next);
                if i == next {
                    self.rows.push(RelationRow {
                        rel: key.rel,
                        fork: key.fork,
                        usage: Usage::default(),
                        block_refs: 0,
                    });
                }
                self.last = Some((key, i));
                i
            }
        };
        &mut self.rows[i]
    }

    /// Counts one record.
    #[inline]
    pub fn add(&mut self, rec: &Record<'_>) {
        let fpi = rec.fpi_len();
        let rec_bytes = u64::from(rec.total_len().saturating_sub(fpi));
        self.total.records += 1;
        self.total.rec_bytes += rec_bytes;
        self.total.fpi_bytes += u64::from(fpi);
        let mut first = true;
        for b in rec.blocks() {
            let row = self.row(RelFork {
                rel: b.rel(),
                fork: b.fork(),
            });
            row.block_refs += 1;
            if first {
                row.usage.records += 1;
                row.usage.rec_bytes += rec_bytes;
                first = false;
            }
            if let Some(img) = b.image_info() {
                row.usage.fpi_bytes += u64::from(img.len);
                row.usage.fpi_count += 1;
                self.total.fpi_count += 1;
            }
        }
        if first {
            self.unattributed.records += 1;
            self.unattributed.rec_bytes += rec_bytes;
            // A record without block references has no images (or they were not decoded).
            self.unattributed.fpi_bytes += u64::from(fpi);
        }
    }

    /// The rows, in the order their forks first appeared.
    pub fn rows(&self) -> &[RelationRow] {
        &self.rows
    }

    /// The rows, most bytes (record and image) first; ties by relation.
    pub fn rows_by_bytes(&self) -> Vec<RelationRow> {
        let mut v = self.rows.clone();
        v.sort_by(|a, b| {
            b.usage
                .total_bytes()
                .cmp(&a.usage.total_bytes())
                .then_with(|| key(a).cmp(&key(b)))
        });
        v
    }

    /// The rows, most image bytes first.
    pub fn rows_by_fpi(&self) -> Vec<RelationRow> {
        let mut v = self.rows.clone();
        v.sort_by(|a, b| {
            b.usage
                .fpi_bytes
                .cmp(&a.usage.fpi_bytes)
                .then_with(|| key(a).cmp(&key(b)))
        });
        v
    }

    /// Records without a block reference.
    pub fn unattributed(&self) -> Usage {
        self.unattributed
    }

    /// Every record counted.
    pub fn total(&self) -> Usage {
        self.total
    }

    /// The rows summed per database OID (0: shared catalogs), most bytes first.
    pub fn by_database(&self) -> Vec<(u32, Usage)> {
        self.sum_by(|r| r.rel.db)
    }

    /// The rows summed per tablespace OID, most bytes first.
    pub fn by_tablespace(&self) -> Vec<(u32, Usage)> {
        self.sum_by(|r| r.rel.spc)
    }

    fn sum_by(&self, f: impl Fn(&RelationRow) -> u32) -> Vec<(u32, Usage)> {
        let mut m: HashMap<u32, Usage, IdHash> = HashMap::default();
        for r in &self.rows {
            m.entry(f(r)).or_default().add(&r.usage);
        }
        let mut v: Vec<(u32, Usage)> = m.into_iter().collect();
        v.sort_by(|a, b| {
            b.1.total_bytes()
                .cmp(&a.1.total_bytes())
                .then(a.0.cmp(&b.0))
        });
        v
    }

    /// Adds another range's statistics (records after this one's).
    pub fn merge(&mut self, other: &RelationStats) {
        for r in &other.rows {
            let row = self.row(RelFork {
                rel: r.rel,
                fork: r.fork,
            });
            row.usage.add(&r.usage);
            row.block_refs += r.block_refs;
        }
        self.unattributed.add(&other.unattributed);
        self.total.add(&other.total);
    }
}

fn key(r: &RelationRow) -> (u32, u32, u32, u8) {
    (r.rel.spc, r.rel.db, r.rel.rel, r.fork.number())
}
