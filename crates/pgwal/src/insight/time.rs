//! WAL per interval of time, by resource manager.

use super::{record_time, Usage};
use crate::wal::Record;

/// One interval's WAL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TimeBucket {
    /// Start of the interval, in microseconds since the Unix epoch; `None` when no record of
    /// the range carries a time (then one bucket holds everything).
    pub start_unix_us: Option<i64>,
    /// Usage per resource manager id (index: `rmid`; shorter than 256 when the higher ids
    /// wrote nothing).
    pub by_rmgr: Vec<Usage>,
}

impl TimeBucket {
    /// The interval's usage, all resource managers together.
    pub fn total(&self) -> Usage {
        let mut t = Usage::default();
        for u in &self.by_rmgr {
            t.add(u);
        }
        t
    }

    fn add(&mut self, rmid: u8, u: &Usage) {
        let i = usize::from(rmid);
        if self.by_rmgr.len() <= i {
            self.by_rmgr.resize(i + 1, Usage::default());
        }
        self.by_rmgr[i].add(u);
    }
}

/// A time interval that is not a positive number with an optional unit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid interval \"{0}\": expected a positive number with an optional unit (s, min, h, d; default s)")]
pub struct ParseIntervalError(pub String);

/// Records, bytes and images per interval of wall-clock time, by resource manager.
///
/// WAL records carry no time of their own: the clock is the latest time seen in a commit,
/// abort or checkpoint record ([`record_time`]), never going back (concurrent commits reach
/// the WAL slightly out of time order). Records before the first such record count in the
/// first interval. Intervals without a record are left out.
///
/// ```
/// use pgwal::insight::TimeStats;
/// assert_eq!(TimeStats::parse_interval("5min").unwrap(), 300_000_000);
/// assert_eq!(TimeStats::parse_interval("10").unwrap(), 10_000_000);
/// assert!(TimeStats::parse_interval("0s").is_err());
/// let stats = TimeStats::new(60_000_000);
/// assert!(stats.buckets().is_empty());
/// ```
#[derive(Clone, Debug)]
pub struct TimeStats {
    interval_us: i64,
    clock: Option<i64>,
    /// Records before the first time seen.
    pending: TimeBucket,
    buckets: Vec<TimeBucket>,
    total: Usage,
}

impl TimeStats {
    /// Empty statistics with intervals of `interval_us` microseconds (at least 1).
    pub fn new(interval_us: i64) -> TimeStats {
        TimeStats {
            interval_us: interval_us.max(1),
            clock: None,
            pending: TimeBucket::default(),
            buckets: Vec::new(),
            total: Usage::default(),
        }
    }

    /// Parses an interval: a positive whole number with an optional unit, `s` (the default),
    /// `min`/`m`, `h` or `d`; into microseconds.
    pub fn parse_interval(s: &str) -> Result<i64, ParseIntervalError> {
        let bad = || ParseIntervalError(s.to_owned());
        let t = s.trim();
        let digits = t.bytes().take_while(u8::is_ascii_digit).count();
        let n: i64 = t[..digits].parse().map_err(|_| bad())?;
        let unit: i64 = match t[digits..].trim() {
            "" | "s" | "sec" | "second" | "seconds" => 1,
            "m" | "min" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            _ => return Err(bad()),
        };
        match n.checked_mul(unit).and_then(|v| v.checked_mul(1_000_000)) {
            Some(v) if v > 0 => Ok(v),
            _ => Err(bad()),
        }
    }

    /// The interval length, in microseconds.
    pub fn interval_us(&self) -> i64 {
        self.interval_us
    }

    /// Counts one record.
    pub fn add(&mut self, rec: &Record<'_>) {
        if let Some(t) = record_time(rec) {
            let now = self.clock.map_or(t, |c| c.max(t));
            self.clock = Some(now);
            let start = now.div_euclid(self.interval_us) * self.interval_us;
            if self.buckets.last().and_then(|b| b.start_unix_us) != Some(start) {
                let mut b = if self.buckets.is_empty() {
                    std::mem::take(&mut self.pending)
                } else {
                    TimeBucket::default()
                };
                b.start_unix_us = Some(start);
                self.buckets.push(b);
            }
        }
        let u = Usage::of(rec);
        self.total.add(&u);
        match self.buckets.last_mut() {
            Some(b) => b.add(rec.rmid(), &u),
            None => self.pending.add(rec.rmid(), &u),
        }
    }

    /// The intervals that have records, in time order.
    pub fn buckets(&self) -> Vec<TimeBucket> {
        if self.buckets.is_empty() && self.total.records > 0 {
            return vec![self.pending.clone()];
        }
        self.buckets.clone()
    }

    /// Every record counted.
    pub fn total(&self) -> Usage {
        self.total
    }
}
