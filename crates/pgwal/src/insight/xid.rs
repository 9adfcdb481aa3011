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
    rows: HashMap<u32, XactRow, IdHash>,
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
        let moved = self.rows.remove(&sub);
        let row = self.rows.entry(top).or_insert_with(|| XactRow::new(top, lsn));
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
        let top = self.top_of(xid);
        let row = self.rows.entry(top).or_insert_with(|| XactRow::new(top, lsn));
        row.usage.add(&usage);
        row.last_lsn = lsn;
        if end.is_some() && top == xid {
            row.end = end;
        }
    }

    /// The rows, in no particular order.
    pub fn rows(&self) -> impl Iterator<Item = &XactRow> {
        self.rows.values()
    }

    /// How many top-level transactions have a row.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True if no record had a transaction id.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows, most bytes (record and image) first; ties by first LSN.
    pub fn rows_by_bytes(&self) -> Vec<XactRow> {
        let mut v: Vec<XactRow> = self.rows.values().copied().collect();
        v.sort_by(|a, b| {
            b.usage
                .total_bytes()
                .cmp(&a.usage.total_bytes())
                .then(a.first_lsn.cmp(&b.first_lsn))
        });
        v
    }

    /// The rows, most image bytes first; ties by first LSN.
    pub fn rows_by_fpi(&self) -> Vec<XactRow> {
        let mut v: Vec<XactRow> = self.rows.values().copied().collect();
        v.sort_by(|a, b| {
            b.usage
                .fpi_bytes
                .cmp(&a.usage.fpi_bytes)
                .then(a.first_lsn.cmp(&b.first_lsn))
        });
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
