//! `--stats=relation`, `--stats=xid`, `--stats=time[=INTERVAL]`: the library's breakdowns
//! (`pgwal::insight`) as text tables and JSON objects, with names from `--names`.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;

use pgwal::desc;
use pgwal::insight::{
    CheckpointStats, RelationRow, RelationStats, TimeStats, Usage, XactRow, XactStats,
};
use pgwal::wal::{Record, RelFileLocator};
use pgwal::Lsn;
use serde_json::{json, Value};

use super::config::DumpConfig;
use super::names::{Names, Resolved};
use super::stats::Stats;
use super::{DumpArgs, Format};
use crate::prog::Usage as UsageError;

/// Intervals of `--stats=time` without a value: one minute.
const DEFAULT_INTERVAL_US: i64 = 60_000_000;
/// Rows shown without `--top`.
pub(super) const DEFAULT_TOP: usize = 20;

/// A breakdown asked for with `--stats=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Breakdown {
    /// `relation`.
    Relation,
    /// `xid`.
    Xid,
    /// `time[=INTERVAL]`, the interval in microseconds.
    Time(i64),
}

/// The breakdown a `--stats` value names; `None` for pg_waldump's own values (`rmgr`,
/// `record`) and anything else (which `parse_stats` refuses).
pub(crate) fn parse_breakdown(v: &str) -> Option<Result<Breakdown, UsageError>> {
    Some(Ok(match v {
        "relation" => Breakdown::Relation,
        "xid" => Breakdown::Xid,
        "time" => Breakdown::Time(DEFAULT_INTERVAL_US),
        _ => {
            let iv = v.strip_prefix("time=")?;
            return Some(
                TimeStats::parse_interval(iv)
                    .map(Breakdown::Time)
                    .map_err(|e| UsageError::new(format!("--stats=time: {e}"))),
            );
        }
    }))
}

/// The breakdowns being gathered while the WAL is read (hung on [`super::stats::Stats`]).
#[derive(Default)]
pub(crate) struct Collector {
    pub relation: Option<RelationStats>,
    pub xid: Option<XactStats>,
    pub time: Option<TimeStats>,
    pub checkpoints: Option<CheckpointStats>,
    /// Timelines of the pages the records came from.
    pub timelines: BTreeSet<u32>,
    last_tli: u32,
}

impl Collector {
    /// A collector for one breakdown.
    pub fn for_breakdown(b: Breakdown) -> Collector {
        let mut c = Collector::default();
        match b {
            Breakdown::Relation => c.relation = Some(RelationStats::new()),
            Breakdown::Xid => c.xid = Some(XactStats::new()),
            Breakdown::Time(us) => c.time = Some(TimeStats::new(us)),
        }
        c
    }

    /// A collector for everything (`pgwal report`).
    pub fn everything(interval_us: i64) -> Collector {
        Collector {
            relation: Some(RelationStats::new()),
            xid: Some(XactStats::new()),
            time: Some(TimeStats::new(interval_us)),
            checkpoints: Some(CheckpointStats::new()),
            ..Collector::default()
        }
    }

    /// Counts one record in every breakdown gathered.
    #[inline]
    pub fn add(&mut self, rec: &Record<'_>) {
        if let Some(r) = &mut self.relation {
            r.add(rec);
        }
        if let Some(x) = &mut self.xid {
            x.add(rec);
        }
        if let Some(t) = &mut self.time {
            t.add(rec);
        }
        if let Some(c) = &mut self.checkpoints {
            c.add(rec);
        }
        let tli = rec.page_timeline();
        if tli != self.last_tli {
            self.last_tli = tli;
            self.timelines.insert(tli);
        }
    }
}

/// `2026-12-07T15:04:05.123456Z` for microseconds since the Unix epoch.
pub(crate) fn utc(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    let micros = us.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s) = (sod / 3600, sod / 60 % 60, sod % 60);
    if micros == 0 {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{micros:06}Z")
    }
}

fn usage_json(u: &Usage) -> Value {
    json!({"count": u.records, "rec_len": u.rec_bytes, "fpi_len": u.fpi_bytes,
           "fpi_count": u.fpi_count})
}

/// Adds the usage fields to a JSON object.
fn with_usage(mut v: Value, u: &Usage) -> Value {
    if let (Value::Object(m), Value::Object(add)) = (&mut v, usage_json(u)) {
        m.extend(add);
    }
    v
}

fn lsn_json(l: Option<Lsn>) -> Value {
    l.map_or(Value::Null, |l| l.to_string().into())
}

/// The rows of `rows` shown with `top` (0: all), and the sum of the rest.
fn split_top<T: Copy>(rows: &[T], top: usize, usage: impl Fn(&T) -> Usage) -> (&[T], Usage, usize) {
    let shown = if top == 0 {
        rows.len()
    } else {
        top.min(rows.len())
    };
    let mut rest = Usage::default();
    for r in &rows[shown..] {
        rest.add(&usage(r));
    }
    (&rows[..shown], rest, rows.len() - shown)
}

/// A text table with pg_waldump's `--stats` columns plus the image count, after a label
/// column of `width`.
struct Table<'a> {
    out: &'a mut String,
    width: usize,
    total: Usage,
}

impl Table<'_> {
    fn header(&mut self, label: &str, extra: &str) {
        let w = self.width;
        let _ = writeln!(
            self.out,
            "{label:<w$} {:>12} {:>8} {:>14} {:>8} {:>8} {:>14} {:>8} {:>14} {:>8}{extra}",
            "N", "(%)", "Record size", "(%)", "FPIs", "FPI size", "(%)", "Combined size", "(%)"
        );
        let _ = writeln!(
            self.out,
            "{:<w$} {:>12} {:>8} {:>14} {:>8} {:>8} {:>14} {:>8} {:>14} {:>8}",
            "-".repeat(label.len().min(w)),
            "-",
            "---",
            "-----------",
            "---",
            "----",
            "--------",
            "---",
            "-------------",
            "---"
        );
    }

    fn row(&mut self, label: &str, u: &Usage, extra: &str) {
        let pct = |v: u64, t: u64| {
            if t == 0 {
                0.0
            } else {
                100.0 * v as f64 / t as f64
            }
        };
        let t = self.total;
        let w = self.width;
        let _ = writeln!(
            self.out,
            "{label:<w$} {:>12} ({:>6.2}) {:>14} ({:>6.2}) {:>8} {:>14} ({:>6.2}) {:>14} ({:>6.2}){extra}",
            u.records,
            pct(u.records, t.records),
            u.rec_bytes,
            pct(u.rec_bytes, t.rec_bytes),
            u.fpi_count,
            u.fpi_bytes,
            pct(u.fpi_bytes, t.fpi_bytes),
            u.total_bytes(),
            pct(u.total_bytes(), t.total_bytes()),
        );
    }
}

fn range_text(start: Option<Lsn>, end: Option<Lsn>) -> String {
    match (start, end) {
        (Some(s), Some(e)) => format!(" between {s} and {e}"),
        _ => String::new(),
    }
}

/// A relation fork's label: its name with `--names`, else `spc/db/rel`.
fn relation_label(r: &RelationRow, names: Option<&Names>) -> String {
    let num = format!("{}/{}/{}", r.rel.spc, r.rel.db, r.rel.rel);
    match names.map(|n| n.relation(r.rel)) {
        None => num,
        Some(Resolved::Found { name, of, .. }) => match of {
            Some((what, table)) => format!("{name} ({what} of {table})"),
            None => name.clone(),
        },
        Some(Resolved::NotFound) => format!("{num} [not found]"),
    }
}

fn database_label(db: u32, names: Option<&Names>) -> String {
    match names.and_then(|n| n.database(db)) {
        Some(name) => name.to_owned(),
        None if db == 0 => "0 (shared)".to_owned(),
        None => db.to_string(),
    }
}

fn tablespace_label(spc: u32, names: Option<&Names>) -> String {
    names
        .and_then(|n| n.tablespace(spc))
        .map_or_else(|| spc.to_string(), str::to_owned)
}

/// Relation fork rows, most bytes first, as text.
pub(crate) fn relation_text(
    out: &mut String,
    s: &RelationStats,
    (start, end): (Option<Lsn>, Option<Lsn>),
    top: usize,
    names: Option<&Names>,
) {
    let rows = s.rows_by_bytes();
    let (shown, rest, hidden) = split_top(&rows, top, |r| r.usage);
    let labels: Vec<String> = shown.iter().map(|r| relation_label(r, names)).collect();
    let width = labels.iter().map(String::len).max().unwrap_or(0).max(24);
    let _ = writeln!(
        out,
        "WAL by relation fork{}: {} relation forks, {} shown (most bytes first):",
        range_text(start, end),
        rows.len(),
        shown.len()
    );
    let mut t = Table {
        out,
        width: width + 5,
        total: s.total(),
    };
    t.header("Relation", "");
    for (r, label) in shown.iter().zip(&labels) {
        t.row(
            &format!("{label:<width$} {:<4}", r.fork.name()),
            &r.usage,
            "",
        );
    }
    if hidden > 0 {
        t.row(&format!("({hidden} more relation forks)"), &rest, "");
    }
    t.row("(no block reference)", &s.unattributed(), "");
    t.row("Total", &s.total(), "");
    for (title, rows) in [
        ("database", s.by_database()),
        ("tablespace", s.by_tablespace()),
    ] {
        let _ = writeln!(t.out, "\nWAL by {title} (records with block references):");
        let labels: Vec<String> = rows
            .iter()
            .map(|(id, _)| {
                if title == "database" {
                    database_label(*id, names)
                } else {
                    tablespace_label(*id, names)
                }
            })
            .collect();
        t.width = labels.iter().map(String::len).max().unwrap_or(0).max(24);
        let head = if title == "database" {
            "Database"
        } else {
            "Tablespace"
        };
        t.header(head, "");
        for ((_, u), label) in rows.iter().zip(&labels) {
            t.row(label, u, "");
        }
    }
}

/// Relation fork rows as one JSON object (`"type": "stats_relation"`).
pub(crate) fn relation_json(
    s: &RelationStats,
    (start, end): (Option<Lsn>, Option<Lsn>),
    top: usize,
    names: Option<&Names>,
) -> Value {
    let rows = s.rows_by_bytes();
    let (shown, rest, hidden) = split_top(&rows, top, |r| r.usage);
    let rows_json: Vec<Value> = shown
        .iter()
        .map(|r| {
            let mut v = json!({
                "spc": r.rel.spc, "db": r.rel.db, "rel": r.rel.rel, "fork": r.fork.name(),
            });
            if let Value::Object(m) = &mut v {
                let (name, found, kind, table) = match names.map(|n| n.relation(r.rel)) {
                    None => (Value::Null, Value::Null, Value::Null, Value::Null),
                    Some(Resolved::Found { name, kind, of, .. }) => (
                        name.clone().into(),
                        true.into(),
                        kind.clone().into(),
                        of.as_ref().map_or(Value::Null, |(_, t)| t.clone().into()),
                    ),
                    Some(Resolved::NotFound) => {
                        (Value::Null, false.into(), Value::Null, Value::Null)
                    }
                };
                m.insert("name".into(), name);
                m.insert("found".into(), found);
                m.insert("kind".into(), kind);
                m.insert("table".into(), table);
                m.insert("block_refs".into(), r.block_refs.into());
            }
            with_usage(v, &r.usage)
        })
        .collect();
    let named = |id: u32, db: bool| -> Value {
        let n = names.and_then(|n| if db { n.database(id) } else { n.tablespace(id) });
        n.map_or(Value::Null, |s| s.to_owned().into())
    };
    let dbs: Vec<Value> = s
        .by_database()
        .iter()
        .map(|(db, u)| with_usage(json!({"db": db, "name": named(*db, true)}), u))
        .collect();
    let spcs: Vec<Value> = s
        .by_tablespace()
        .iter()
        .map(|(spc, u)| with_usage(json!({"spc": spc, "name": named(*spc, false)}), u))
        .collect();
    with_usage(
        json!({
            "type": "stats_relation",
            "start": lsn_json(start),
            "end": lsn_json(end),
            "relations": rows.len(),
            "rows": rows_json,
            "omitted": with_usage(json!({"rows": hidden}), &rest),
            "no_block": usage_json(&s.unattributed()),
            "databases": dbs,
            "tablespaces": spcs,
        }),
        &s.total(),
    )
}

fn xact_end_text(r: &XactRow) -> String {
    match &r.end {
        Some(e) => format!("{} at {} {}", e.op.name(), e.lsn, utc(e.unix_time_us)),
        None => "(not in range)".to_owned(),
    }
}

/// Transaction rows, most bytes first, as text.
pub(crate) fn xid_text(
    out: &mut String,
    s: &XactStats,
    (start, end): (Option<Lsn>, Option<Lsn>),
    top: usize,
) {
    let rows = s.rows_top_by_bytes(top);
    let (shown, rest, hidden) = split_top(&rows, top, |r| r.usage);
    let _ = writeln!(
        out,
        "WAL by top-level transaction{}: {} transactions, {} shown (most bytes first):",
        range_text(start, end),
        rows.len(),
        shown.len()
    );
    let mut t = Table {
        out,
        width: 12,
        total: s.total(),
    };
    t.header("Xid", "  Subxacts  First LSN      End");
    for r in shown {
        let extra = format!(
            "  {:>8}  {:<13}  {}",
            r.subxacts,
            r.first_lsn.to_string(),
            xact_end_text(r)
        );
        t.row(&r.xid.to_string(), &r.usage, &extra);
    }
    if hidden > 0 {
        t.row(&format!("({hidden} more)"), &rest, "");
    }
    t.row("(no xid)", &s.no_xid(), "");
    t.row("Total", &s.total(), "");
}

/// Transaction rows as one JSON object (`"type": "stats_xid"`).
pub(crate) fn xid_json(
    s: &XactStats,
    (start, end): (Option<Lsn>, Option<Lsn>),
    top: usize,
) -> Value {
    let rows = s.rows_top_by_bytes(top);
    let (shown, rest, hidden) = split_top(&rows, top, |r| r.usage);
    let rows_json: Vec<Value> = shown
        .iter()
        .map(|r| {
            let end = r.end.map_or(Value::Null, |e| {
                json!({"op": e.op.name(), "lsn": e.lsn.to_string(),
                       "time_unix_us": e.unix_time_us, "time": utc(e.unix_time_us)})
            });
            with_usage(
                json!({"xid": r.xid, "subxacts": r.subxacts,
                       "first_lsn": r.first_lsn.to_string(), "last_lsn": r.last_lsn.to_string(),
                       "end": end}),
                &r.usage,
            )
        })
        .collect();
    with_usage(
        json!({
            "type": "stats_xid",
            "start": lsn_json(start),
            "end": lsn_json(end),
            "transactions": rows.len(),
            "rows": rows_json,
            "omitted": with_usage(json!({"rows": hidden}), &rest),
            "no_xid": usage_json(&s.no_xid()),
        }),
        &s.total(),
    )
}

fn rmgr_label(rmid: usize) -> String {
    u8::try_from(rmid)
        .ok()
        .and_then(desc::rmgr_name)
        .map_or_else(|| rmid.to_string(), |n| n.into_owned())
}

/// Intervals of time, each with its resource managers, as text.
pub(crate) fn time_text(out: &mut String, s: &TimeStats, (start, end): (Option<Lsn>, Option<Lsn>)) {
    let buckets = s.buckets();
    let _ = writeln!(
        out,
        "WAL by time{}, intervals of {} s (clock from commit, abort and checkpoint records):",
        range_text(start, end),
        s.interval_us() as f64 / 1e6
    );
    let mut t = Table {
        out,
        width: 40,
        total: s.total(),
    };
    t.header("Interval start (UTC)   Resource manager", "");
    for b in &buckets {
        let when = b
            .start_unix_us
            .map_or_else(|| "(no time in range)".to_owned(), utc);
        t.row(&format!("{when:<22} all"), &b.total(), "");
        for (rmid, u) in b.by_rmgr.iter().enumerate() {
            if u.records > 0 {
                t.row(&format!("{:<22} {}", "", rmgr_label(rmid)), u, "");
            }
        }
    }
    t.row("Total", &s.total(), "");
}

/// Intervals of time as one JSON object (`"type": "stats_time"`).
pub(crate) fn time_json(s: &TimeStats, (start, end): (Option<Lsn>, Option<Lsn>)) -> Value {
    let rows: Vec<Value> = s
        .buckets()
        .iter()
        .map(|b| {
            let rmgrs: Vec<Value> = b
                .by_rmgr
                .iter()
                .enumerate()
                .filter(|(_, u)| u.records > 0)
                .map(|(rmid, u)| with_usage(json!({"rmgr": rmgr_label(rmid)}), u))
                .collect();
            with_usage(
                json!({"start_unix_us": b.start_unix_us,
                       "start": b.start_unix_us.map(utc), "rmgrs": rmgrs}),
                &b.total(),
            )
        })
        .collect();
    with_usage(
        json!({
            "type": "stats_time",
            "start": lsn_json(start),
            "end": lsn_json(end),
            "interval_us": s.interval_us(),
            "rows": rows,
        }),
        &s.total(),
    )
}

/// Intervals of the report's time chart before it merges them: one minute.
const REPORT_INTERVAL_US: i64 = 60_000_000;

/// `pgwal report`: reads the WAL `a` selects as `pgwal dump` does, and writes the HTML report
/// to `output` instead of any other output.
pub fn report(mut a: DumpArgs, output: std::path::PathBuf) -> anyhow::Result<ExitCode> {
    let refused = [
        (a.stats.is_some(), "--stats"),
        (a.format != Format::Text, "--format"),
        (a.bkp_details, "--bkp-details"),
        (a.quiet, "--quiet"),
        (a.save_fullpage.is_some(), "--save-fullpage"),
        (a.follow, "--follow"),
    ];
    if let Some((_, opt)) = refused.iter().find(|(on, _)| *on) {
        return Err(
            UsageError::new(format!("option {opt} cannot be used with pgwal report")).into(),
        );
    }
    a.stats = Some("rmgr".to_owned());
    a.report = Some(output);
    super::run(a, &crate::getopt::Scanned::default())
}

/// The collector the options ask for (`None`: plain `--stats` or no statistics; the
/// configuration has checked that `--top` and `--names` come with a breakdown they apply to).
pub(super) fn collector_for(cfg: &DumpConfig) -> Option<Box<Collector>> {
    if cfg.insight.report.is_some() {
        return Some(Box::new(Collector::everything(REPORT_INTERVAL_US)));
    }
    cfg.insight
        .breakdown
        .map(|b| Box::new(Collector::for_breakdown(b)))
}

/// Writes the breakdown gathered into `stats` (text or JSON into `out`), or `pgwal report`'s
/// file. False if there is none (plain `--stats`).
pub(super) fn finish(
    cfg: &DumpConfig,
    stats: &mut Stats,
    out: &mut String,
) -> anyhow::Result<bool> {
    let Some(c) = stats.insight.take() else {
        return Ok(false);
    };
    let range = (stats.start, stats.end);
    let a = &cfg.insight;
    let names = match (&a.names, &c.relation) {
        (Some(connstr), Some(r)) => {
            let mut rels: Vec<RelFileLocator> = r.rows().iter().map(|row| row.rel).collect();
            rels.sort_by_key(|l| (l.db, l.spc, l.rel));
            rels.dedup();
            Some(super::names::resolve(connstr, &rels)?)
        }
        _ => None,
    };
    if let Some(path) = &a.report {
        let (Some(relations), Some(xacts), Some(time), Some(checkpoints)) =
            (&c.relation, &c.xid, &c.time, &c.checkpoints)
        else {
            return Ok(true);
        };
        let label = |r: &RelationRow| relation_label(r, names.as_ref());
        let input = crate::report::Input {
            relations,
            xacts,
            time,
            checkpoints,
            timelines: c.timelines.iter().copied().collect(),
            start: stats.start,
            end: stats.end,
            version: stats.version(),
            top: a.top.unwrap_or(crate::report::DEFAULT_TOP),
            relation_label: &label,
        };
        crate::report::write(path, &input)?;
        return Ok(true);
    }
    let top = a.top.unwrap_or(DEFAULT_TOP);
    let json = cfg.output.format == Format::Json;
    write(out, &c, range, top, json, names.as_ref());
    Ok(true)
}

/// Writes whichever breakdown `c` gathered, as text or one JSON line.
pub(crate) fn write(
    out: &mut String,
    c: &Collector,
    range: (Option<Lsn>, Option<Lsn>),
    top: usize,
    json: bool,
    names: Option<&Names>,
) {
    let v = if let Some(r) = &c.relation {
        if !json {
            return relation_text(out, r, range, top, names);
        }
        relation_json(r, range, top, names)
    } else if let Some(x) = &c.xid {
        if !json {
            return xid_text(out, x, range, top);
        }
        xid_json(x, range, top)
    } else if let Some(t) = &c.time {
        if !json {
            return time_text(out, t, range);
        }
        time_json(t, range)
    } else {
        return;
    };
    out.push_str(&v.to_string());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn breakdowns_parse() {
        assert_eq!(
            parse_breakdown("relation").unwrap().unwrap(),
            Breakdown::Relation
        );
        assert_eq!(parse_breakdown("xid").unwrap().unwrap(), Breakdown::Xid);
        assert_eq!(
            parse_breakdown("time").unwrap().unwrap(),
            Breakdown::Time(60_000_000)
        );
        assert_eq!(
            parse_breakdown("time=10s").unwrap().unwrap(),
            Breakdown::Time(10_000_000)
        );
        assert!(parse_breakdown("time=0").unwrap().is_err());
        assert!(parse_breakdown("record").is_none());
    }

    #[test]
    fn utc_text() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        // 2000-02-29 12:34:56.000789 UTC
        assert_eq!(utc(951_827_696_000_789), "2000-02-29T12:34:56.000789Z");
        assert_eq!(utc(-1_000_000), "1969-12-31T23:59:59Z");
    }
}
