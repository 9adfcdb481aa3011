//! `--stats` and `--stats=record`: counts and sizes per resource manager or record type.

use std::fmt::Write;

use pgwal::desc;
use pgwal::wal::{PgVersion, Record};
use pgwal::Lsn;

use super::text::record_len;

#[derive(Clone, Copy, Default)]
struct Row {
    count: u64,
    rec_len: u64,
    fpi_len: u64,
}

impl Row {
    fn add(&mut self, rec: u64, fpi: u64) {
        self.count += 1;
        self.rec_len += rec;
        self.fpi_len += fpi;
    }
}

/// Statistics gathered over the records shown.
pub struct Stats {
    per_record: Box<[[Row; 16]; 256]>,
    count: u64,
    /// First record counted.
    pub start: Option<Lsn>,
    /// End of the last record counted.
    pub end: Option<Lsn>,
    version: Option<PgVersion>,
    /// `--stats=relation|xid|time` and `pgwal report`: the breakdowns gathered too.
    pub insight: Option<Box<super::insight::Collector>>,
}

impl Stats {
    /// Empty statistics.
    pub fn new() -> Stats {
        Stats {
            per_record: Box::new([[Row::default(); 16]; 256]),
            count: 0,
            start: None,
            end: None,
            version: None,
            insight: None,
        }
    }

    /// Counts one record (`XLogRecStoreStats`).
    #[inline]
    pub fn add(&mut self, rec: &Record<'_>) {
        let rmid = usize::from(rec.rmid());
        let fpi = u64::from(rec.fpi_len());
        let reclen = u64::from(record_len(rec));
        self.count += 1;
        let mut recid = usize::from(rec.info() >> 4);
        // Transaction records keep a flag in the top bit of the four; fold it away (as every
        // current minor release does, 13.x included).
        if rmid == 1 {
            recid &= 0x07;
        }
        self.per_record[rmid][recid].add(reclen, fpi);
        self.end = Some(rec.end_lsn());
        self.version.get_or_insert(rec.version());
        if let Some(c) = self.insight.as_deref_mut() {
            c.add(rec);
        }
    }

    /// A resource manager's totals: the sum of its record types' rows (pg_waldump keeps both
    /// tables; one is enough, and counting a record once is faster).
    fn rmgr(&self, r: usize) -> Row {
        let mut t = Row::default();
        for row in self.per_record.get(r).into_iter().flatten() {
            t.count += row.count;
            t.rec_len += row.rec_len;
            t.fpi_len += row.fpi_len;
        }
        t
    }

    /// Empties the statistics for reuse, keeping their allocation.
    pub fn clear(&mut self) {
        if self.count > 0 {
            for r in self.per_record.iter_mut() {
                r.fill(Row::default());
            }
        }
        self.count = 0;
        self.start = None;
        self.end = None;
        self.version = None;
    }

    /// The version of the WAL counted (or set).
    pub fn version(&self) -> Option<PgVersion> {
        self.version
    }

    /// Sets the version used for the table layout when no record was counted.
    pub fn set_version(&mut self, v: PgVersion) {
        self.version.get_or_insert(v);
    }

    /// Writes pg_waldump's statistics table (`XLogDumpDisplayStats`) for the WAL's version.
    pub fn write(&self, out: &mut String, per_record: bool) {
        let version = self.version.unwrap_or(PgVersion::V18);
        if version >= PgVersion::V15 {
            let (Some(start), Some(end)) = (self.start, self.end) else {
                return;
            };
            let (start, end) = (version.lsn(start), version.lsn(end));
            let _ = writeln!(out, "WAL statistics between {start} and {end}:");
        }
        let rmids: Vec<usize> = (0..256)
            .filter(|&r| r <= 21 || (version >= PgVersion::V15 && r >= 128))
            .collect();
        let (mut total_count, mut total_rec, mut total_fpi) = (0u64, 0u64, 0u64);
        for &r in &rmids {
            let row = self.rmgr(r);
            total_count += row.count;
            total_rec += row.rec_len;
            total_fpi += row.fpi_len;
        }
        let total_len = total_rec + total_fpi;
        let _ = writeln!(
            out,
            "{:<27} {:>20} {:>8} {:>20} {:>8} {:>20} {:>8} {:>20} {:>8}",
            "Type", "N", "(%)", "Record size", "(%)", "FPI size", "(%)", "Combined size", "(%)"
        );
        let _ = writeln!(
            out,
            "{:<27} {:>20} {:>8} {:>20} {:>8} {:>20} {:>8} {:>20} {:>8}",
            "----", "-", "---", "-----------", "---", "--------", "---", "-------------", "---"
        );
        let totals = (total_count, total_rec, total_fpi, total_len);
        for &r in &rmids {
            let name = desc::rmgr_name(r as u8).unwrap_or_default();
            if !per_record {
                let row = self.rmgr(r);
                if r >= 128 && row.count == 0 {
                    continue;
                }
                write_row(out, &name, row, totals);
            } else {
                for (rj, row) in self.per_record[r].iter().enumerate() {
                    if row.count == 0 {
                        continue;
                    }
                    let info = (rj << 4) as u8;
                    let label = format!("{name}/{}", desc::record_type(version, r as u8, info));
                    write_row(out, &label, *row, totals);
                }
            }
        }
        let _ = writeln!(
            out,
            "{:<27} {:>20} {:>8} {:>20} {:>8} {:>20} {:>8} {:>20}",
            "", "--------", "", "--------", "", "--------", "", "--------"
        );
        let pct = |v: u64| {
            if total_len != 0 {
                100.0 * v as f64 / total_len as f64
            } else {
                0.0
            }
        };
        let _ = writeln!(
            out,
            "{:<27} {:>20} {:<9}{:>20} {:<9}{:>20} {:<9}{:>20} {:<6}",
            "Total",
            self.count,
            "",
            total_rec,
            format!("[{:.2}%]", pct(total_rec)),
            total_fpi,
            format!("[{:.2}%]", pct(total_fpi)),
            total_len,
            "[100%]"
        );
    }
}

fn write_row(out: &mut String, name: &str, row: Row, totals: (u64, u64, u64, u64)) {
    let pct = |v: u64, t: u64| {
        if t != 0 {
            100.0 * v as f64 / t as f64
        } else {
            0.0
        }
    };
    let tot = row.rec_len + row.fpi_len;
    let _ = writeln!(
        out,
        "{:<27} {:>20} ({:>6.2}) {:>20} ({:>6.2}) {:>20} ({:>6.2}) {:>20} ({:>6.2})",
        name,
        row.count,
        pct(row.count, totals.0),
        row.rec_len,
        pct(row.rec_len, totals.1),
        row.fpi_len,
        pct(row.fpi_len, totals.2),
        tot,
        pct(tot, totals.3)
    );
}

impl Stats {
    /// The statistics as one JSON object (`"type": "stats"`).
    pub fn to_json(&self, per_record: bool) -> serde_json::Value {
        use serde_json::json;
        let version = self.version.unwrap_or(PgVersion::V18);
        let mut rows = Vec::new();
        for r in 0..256usize {
            let name = desc::rmgr_name(r as u8).unwrap_or_default();
            if !per_record {
                let row = self.rmgr(r);
                if row.count > 0 {
                    rows.push(json!({"rmgr": name, "count": row.count, "rec_len": row.rec_len, "fpi_len": row.fpi_len}));
                }
                continue;
            }
            for (rj, row) in self.per_record[r].iter().enumerate() {
                if row.count == 0 {
                    continue;
                }
                let info = (rj << 4) as u8;
                let id = desc::record_type(version, r as u8, info);
                rows.push(json!({"rmgr": name, "record_type": id, "count": row.count,
                                 "rec_len": row.rec_len, "fpi_len": row.fpi_len}));
            }
        }
        let (rec, fpi) = (0..256)
            .map(|r| self.rmgr(r))
            .fold((0, 0), |(a, b), r| (a + r.rec_len, b + r.fpi_len));
        json!({
            "type": "stats",
            "start": self.start.map(|l| l.to_string()),
            "end": self.end.map(|l| l.to_string()),
            "count": self.count,
            "rec_len": rec,
            "fpi_len": fpi,
            "rows": rows,
        })
    }
}

impl Stats {
    /// Adds another chunk's statistics (for parallel decoding); `other` follows `self`.
    pub fn merge(&mut self, other: &Stats) {
        // Text output counts nothing: skip the tables.
        if other.count > 0 {
            for (ra, rb) in self.per_record.iter_mut().zip(other.per_record.iter()) {
                for (a, b) in ra.iter_mut().zip(rb.iter()) {
                    a.count += b.count;
                    a.rec_len += b.rec_len;
                    a.fpi_len += b.fpi_len;
                }
            }
        }
        self.count += other.count;
        if self.start.is_none() {
            self.start = other.start;
        }
        if other.end.is_some() {
            self.end = other.end;
        }
        if self.version.is_none() {
            self.version = other.version;
        }
    }
}
