//! WAL per top-level transaction, subtransactions folded in.

use std::collections::HashMap;

use super::{record_time, IdHash, Usage};
use crate::desc::{self, XactEnd, XactOp};
use crate::lsn::Lsn;
use crate::wal::Record;

/// Resource manager id of Transaction records.
const RM_XACT: u8 = 1;

/// How a transaction ended, when its commit or abort record is in the range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XactEnding {
    /// Commit, abort, or their prepared forms.
    pub op: XactOp,
    /// Where the commit or abort record starts.
    pub lsn: Lsn,
    /// Its `xact_time`, in microseconds since the Unix epoch.
    pub unix_time_us: i64,
}

/// One top-level transaction's share of the WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XactRow {
    /// The top-level transaction id.
    pub xid: u32,
    /// Its records and theirs of its subtransactions.
    pub usage: Usage,
    /// Where its first record in the range starts.
    pub first_lsn: Lsn,
    /// Where its last record in the range starts.
    pub last_lsn: Lsn,
    /// Subtransactions folded into this row.
    pub subxacts: u64,
    /// Its commit or abort, if the range holds it.
    pub end: Option<XactEnding>,
}

impl XactRow {
    fn new(xid: u32, lsn: Lsn) -> XactRow {
        XactRow {
            xid,
            usage: Usage::default(),
            first_lsn: lsn,
            last_lsn: lsn,
            subxacts: 0,
            end: None,
        }
    }

    fn absorb(&mut self, sub: &XactRow) {
        self.usage.add(&sub.usage);
        self.first_lsn = self.first_lsn.min(sub.first_lsn);
        self.last_lsn = self.last_lsn.max(sub.last_lsn);
        self.subxacts += sub.subxacts;
    }
}

/// Records, record bytes and full-page images per top-level transaction.
///
/// A record belongs to the transaction in its header (`xl_xid`); a subtransaction's records
/// are folded into its top-level transaction as soon as the WAL links the two: the top-level
/// xid in a subtransaction's first record (14+, `wal_level=logical`), an `ASSIGNMENT` record,
/// or the subtransaction list of the commit or abort. A subtransaction rolled back to its
/// savepoint is not in its parent's commit record, so unless one of the other two links it, it
/// stays a row of its own (ending in its own abort). Records without a transaction id go to
/// [`XactStats::no_xid`]; the rows and that one add up to [`XactStats::total`].
///
/// ```no_run
/// # fn demo(records: &[pgwal::wal::Record<'_>]) {
/// let mut stats = pgwal::insight::XactStats::new();
/// for rec in records {
///     stats.add(rec);
/// }
/// if let Some(big) = stats.rows_by_bytes().first() {
///     println!("xid {} wrote {} bytes, ended {:?}", big.xid, big.usage.total_bytes(), big.end);
/// }
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct XactStats {
    rows: Rows,
    /// Subtransaction → parent, as the WAL linked them.
    parent: HashMap<u32, u32, IdHash>,
    no_xid: Usage,
    total: Usage,
}

impl XactStats {
    /// Empty statistics.
    pub fn new() -> XactStats {
        XactStats::default()
    }

    /// The top-level transaction of `xid`, as far as the WAL has told.
    pub fn top_of(&self, mut xid: u32) -> u32 {
        // Links never form a cycle (`link` refuses them); the bound is only a guard.
        for _ in 0..64 {
            match self.parent.get(&xid) {
                Some(&p) => xid = p,
                None => break,
            }
        }
        xid
    }

    /// Records that `sub` is a subtransaction of `top` and moves its row into `top`'s.
    fn link(&mut self, sub: u32, top: u32, lsn: Lsn) {
        let top = self.top_of(top);
        if sub == 0 || top == 0 || self.top_of(sub) == top {
            return;
        }
        let sub_top = self.top_of(sub);
        if sub_top != sub {
            // Already linked elsewhere (a later, different link would be corrupt WAL).
            return;
        }
        self.parent.insert(sub, top);
        let moved = self.rows.remove(sub);
        let row = self.rows.entry(top, lsn);
        row.subxacts += 1;
        if let Some(m) = moved {
            row.absorb(&m);
        }
    }

    /// Counts one record.
    pub fn add(&mut self, rec: &Record<'_>) {
        let usage = Usage::of(rec);
        self.total.add(&usage);
        let lsn = rec.lsn();
        let mut xid = rec.xid();
        if let Some(top) = rec.toplevel_xid() {
            self.link(xid, top, lsn);
        }
        let mut end = None;
        if rec.rmid() == RM_XACT {
            let (v, info, d) = (rec.version(), rec.info(), rec.main_data());
            if let Some((top, subs)) = desc::xact_assignment(info, d) {
                for s in subs {
                    self.link(s, top, lsn);
                }
            } else if let Some((ended, subs)) = desc::xact_end_subxacts(v, info, xid, d) {
                for s in subs {
                    self.link(s, ended, lsn);
                }
                // A prepared transaction's end belongs to it, not to whoever ran COMMIT
                // PREPARED.
                xid = ended;
                end = XactEnd::parse(v, info, d).map(|e| XactEnding {
                    op: e.op,
                    lsn,
                    unix_time_us: record_time(rec).unwrap_or(e.unix_time_us()),
                });
            }
        }
        if xid == 0 {
            self.no_xid.add(&usage);
            return;
        }
        let top = if self.parent.is_empty() {
            xid
        } else {
            self.top_of(xid)
        };
        let row = self.rows.entry(top, lsn);
        row.usage.add(&usage);
        row.last_lsn = lsn;
        if end.is_some() && top == xid {
            row.end = end;
        }
    }

    /// The rows, in no particular order.
    pub fn rows(&self) -> impl Iterator<Item = &XactRow> {
        self.rows.iter()
    }

    /// How many top-level transactions have a row.
    pub fn len(&self) -> usize {
        self.rows.iter().count()
    }

    /// True if no record had a transaction id.
    pub fn is_empty(&self) -> bool {
        self.rows.iter().next().is_none()
    }

    /// The rows, most bytes (record and image) first; ties by first LSN.
    pub fn rows_by_bytes(&self) -> Vec<&XactRow> {
        let mut v: Vec<&XactRow> = self.rows.iter().collect();
        v.sort_unstable_by_key(|r| (std::cmp::Reverse(r.usage.total_bytes()), r.first_lsn));
        v
    }

    /// Every row, the `n` with most bytes first and in that order ([`XactStats::rows_by_bytes`]'s),
    /// the others after them in no particular order; all in order when `n` is 0. For a top-`n`
    /// table of many transactions, without sorting them all.
    pub fn rows_top_by_bytes(&self, n: usize) -> Vec<&XactRow> {
        let mut v: Vec<&XactRow> = self.rows.iter().collect();
        let key = |r: &&XactRow| (std::cmp::Reverse(r.usage.total_bytes()), r.first_lsn);
        if n > 0 && n < v.len() {
            v.select_nth_unstable_by_key(n, key);
            v[..n].sort_unstable_by_key(key);
        } else {
            v.sort_unstable_by_key(key);
        }
        v
    }

    /// The rows, most image bytes first; ties by first LSN.
    pub fn rows_by_fpi(&self) -> Vec<&XactRow> {
        let mut v: Vec<&XactRow> = self.rows.iter().collect();
        v.sort_unstable_by_key(|r| (std::cmp::Reverse(r.usage.fpi_bytes), r.first_lsn));
        v
    }

    /// Records without a transaction id (checkpoints, most index and vacuum work, ...).
    pub fn no_xid(&self) -> Usage {
        self.no_xid
    }

    /// Every record counted.
    pub fn total(&self) -> Usage {
        self.total
    }
}

/// How far past the dense window's end a new xid may lie and still extend it.
const DENSE_REACH: u32 = 1 << 16;

/// The rows by xid: xids are handed out in order, so most of a range's transactions sit in
/// one dense window (a vector indexed by `xid - base`, where the rows being written to are
/// the last few, in cache); the rest (older xids, far jumps) in a map.
#[derive(Clone, Debug, Default)]
struct Rows {
    base: u32,
    /// Rows of `base + i`; `xid == 0` marks a free slot.
    dense: Vec<XactRow>,
    sparse: HashMap<u32, XactRow, IdHash>,
}

impl Rows {
    /// The dense index of `xid`, if it is (or may become) in the window.
    #[inline]
    fn index(&mut self, xid: u32) -> Option<usize> {
        if self.dense.is_empty() {
            self.base = xid;
        }
        let i = xid.wrapping_sub(self.base);
        let len = self.dense.len() as u32;
        (i < len.saturating_add(DENSE_REACH) && i < u32::MAX / 2).then_some(i as usize)
    }

    #[inline]
    fn entry(&mut self, xid: u32, lsn: Lsn) -> &mut XactRow {
        match self.index(xid) {
            Some(i) => {
                if i >= self.dense.len() {
                    self.dense.resize(i + 1, XactRow::new(0, Lsn(0)));
                }
                let row = &mut self.dense[i];
                if row.xid == 0 {
                    *row = XactRow::new(xid, lsn);
                }
                row
            }
            None => self
                .sparse
                .entry(xid)
                .or_insert_with(|| XactRow::new(xid, lsn)),
        }
    }

    fn remove(&mut self, xid: u32) -> Option<XactRow> {
        let i = xid.wrapping_sub(self.base) as usize;
        match self.dense.get_mut(i) {
            Some(row) if row.xid == xid => {
                let r = *row;
                row.xid = 0;
                Some(r)
            }
            _ => self.sparse.remove(&xid),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &XactRow> {
        self.dense
            .iter()
            .filter(|r| r.xid != 0)
            .chain(self.sparse.values())
    }
}
