//! WAL between checkpoints, and how much of it is full-page images.

use super::Usage;
use crate::desc::{self, Fields};
use crate::lsn::Lsn;
use crate::wal::Record;

/// The WAL from one checkpoint's redo point to the next one's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointCycle {
    /// The checkpoint's redo point, where the cycle starts (`None`: the WAL before the first
    /// checkpoint's redo point).
    pub redo: Option<Lsn>,
    /// Where the checkpoint record is.
    pub checkpoint_lsn: Option<Lsn>,
    /// An online checkpoint (else a shutdown checkpoint).
    pub online: bool,
    /// When the checkpoint began, in microseconds since the Unix epoch.
    pub unix_time_us: Option<i64>,
    /// The records of the cycle.
    pub usage: Usage,
}

impl CheckpointCycle {
    /// Image bytes as a share of all bytes, 0 to 1 (0 for an empty cycle).
    pub fn fpi_share(&self) -> f64 {
        let t = self.usage.total_bytes();
        if t == 0 {
            0.0
        } else {
            self.usage.fpi_bytes as f64 / t as f64
        }
    }
}

/// Initial bin size: 64 kB of WAL.
const FIRST_SHIFT: u32 = 16;
/// Bins kept before they are merged in pairs.
const MAX_BINS: usize = 1 << 20;

/// WAL per checkpoint cycle: after a checkpoint's redo point, the first change to each page
/// writes a full-page image, so the image share shows what each checkpoint costs.
///
/// A checkpoint record comes after its redo point (an online checkpoint runs for a while), so
/// records are first summed in bins of LSN (64 kB, doubled whenever a million are in use) and
/// cut into cycles at the redo points afterwards: a cycle starts with the bin that holds its
/// redo point. The cycles add up to [`CheckpointStats::total`].
///
/// ```no_run
/// # fn demo(records: &[pgwal::wal::Record<'_>]) {
/// let mut stats = pgwal::insight::CheckpointStats::new();
/// for rec in records {
///     stats.add(rec);
/// }
/// for c in stats.cycles() {
///     println!("from {:?}: {:.0}% images", c.redo, 100.0 * c.fpi_share());
/// }
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct CheckpointStats {
    base: Option<Lsn>,
    shift: u32,
    bins: Vec<Usage>,
    marks: Vec<CheckpointCycle>,
    total: Usage,
}

impl Default for CheckpointStats {
    fn default() -> CheckpointStats {
        CheckpointStats::new()
    }
}

impl CheckpointStats {
    /// Empty statistics.
    pub fn new() -> CheckpointStats {
        CheckpointStats {
            base: None,
            shift: FIRST_SHIFT,
            bins: Vec::new(),
            marks: Vec::new(),
            total: Usage::default(),
        }
    }

    fn bin(&self, lsn: Lsn) -> usize {
        let base = self.base.unwrap_or(lsn);
        (lsn.0.saturating_sub(base.0) >> self.shift) as usize
    }

    /// Counts one record.
    pub fn add(&mut self, rec: &Record<'_>) {
        let lsn = rec.lsn();
        self.base.get_or_insert(lsn);
        let mut i = self.bin(lsn);
        while i >= MAX_BINS {
            let merged: Vec<Usage> = self
                .bins
                .chunks(2)
                .map(|p| {
                    let mut u = p[0];
                    if let Some(q) = p.get(1) {
                        u.add(q);
                    }
                    u
                })
                .collect();
            self.bins = merged;
            self.shift += 1;
            i = self.bin(lsn);
        }
        if self.bins.len() <= i {
            self.bins.resize(i + 1, Usage::default());
        }
        let u = Usage::of(rec);
        self.bins[i].add(&u);
        self.total.add(&u);
        if rec.rmid() == 0 {
            if let Some(Fields::Checkpoint(c)) = desc::fields(rec) {
                self.marks.push(CheckpointCycle {
                    redo: Some(c.redo),
                    checkpoint_lsn: Some(lsn),
                    online: c.online,
                    unix_time_us: Some(c.time.saturating_mul(1_000_000)),
                    usage: Usage::default(),
                });
            }
        }
    }

    /// The cycles: first the WAL before the first redo point (if any), then one per
    /// checkpoint, in order.
    pub fn cycles(&self) -> Vec<CheckpointCycle> {
        let mut out = vec![CheckpointCycle {
            redo: None,
            checkpoint_lsn: None,
            online: false,
            unix_time_us: None,
            usage: Usage::default(),
        }];
        let mut marks = self.marks.clone();
        marks.sort_by_key(|m| m.redo);
        let starts: Vec<usize> = marks
            .iter()
            .map(|m| m.redo.map_or(0, |r| self.bin(r.max(self.base.unwrap_or(r)))))
            .collect();
        out.extend(marks);
        let mut cycle = 0;
        for (i, b) in self.bins.iter().enumerate() {
            while cycle < starts.len() && starts[cycle] <= i {
                cycle += 1;
            }
            out[cycle].usage.add(b);
        }
        if out[0].usage.records == 0 && out.len() > 1 {
            out.remove(0);
        }
        out
    }

    /// Every record counted.
    pub fn total(&self) -> Usage {
        self.total
    }
}
