//! `pgwal report`: one self-contained HTML file (inline style, SVG charts and a small script;
//! nothing fetched) about a range of WAL: volume over time by resource manager, the relations
//! and transactions that wrote the most WAL and the most full-page images, the image share
//! after each checkpoint, and the range and timelines covered.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use pgwal::desc;
use pgwal::insight::{CheckpointStats, RelationRow, RelationStats, TimeStats, Usage, XactStats};
use pgwal::wal::PgVersion;
use pgwal::Lsn;

mod svg;

use svg::{esc, human_bytes, Bar, Series};

/// Rows in each top-N chart without `--top`.
pub(crate) const DEFAULT_TOP: usize = 15;
/// At most this many bars in the time chart: intervals are merged to fit.
const MAX_TIME_BARS: i64 = 72;
/// Resource managers shown by name in the time chart; the rest are "other".
const TIME_SERIES: usize = 7;

/// Arguments of `pgwal report`: the input options of `pgwal dump`, and the output file.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The HTML file to write.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
    #[command(flatten)]
    dump: crate::dump::DumpArgs,
}

/// Runs `pgwal report`.
pub fn run(a: ReportArgs) -> anyhow::Result<ExitCode> {
    crate::dump::report(a.dump, a.output)
}

/// What the report shows, gathered by `pgwal dump`'s reader.
pub(crate) struct Input<'a> {
    pub relations: &'a RelationStats,
    pub xacts: &'a XactStats,
    pub time: &'a TimeStats,
    pub checkpoints: &'a CheckpointStats,
    pub timelines: Vec<u32>,
    pub start: Option<Lsn>,
    pub end: Option<Lsn>,
    pub version: Option<PgVersion>,
    /// Rows in each top-N chart.
    pub top: usize,
    /// A relation's label (named with `--names`).
    pub relation_label: &'a dyn Fn(&RelationRow) -> String,
}

/// Writes the report for `input` to `path`.
pub(crate) fn write(path: &Path, input: &Input<'_>) -> anyhow::Result<()> {
    let html = render(input);
    std::fs::write(path, html).with_context(|| format!("could not write \"{}\"", path.display()))?;
    eprintln!(
        "{}: wrote report for {} records to \"{}\"",
        crate::prog::name(),
        input.relations.total().records,
        path.display()
    );
    Ok(())
}

fn rmgr_name(rmid: usize) -> String {
    u8::try_from(rmid)
        .ok()
        .and_then(desc::rmgr_name)
        .map_or_else(|| rmid.to_string(), |n| n.into_owned())
}

/// The time chart: buckets merged to at most [`MAX_TIME_BARS`], stacked by resource manager.
fn time_chart(time: &TimeStats) -> String {
    let buckets = time.buckets();
    let timed: Vec<_> = buckets
        .iter()
        .filter_map(|b| Some((b.start_unix_us?, b)))
        .collect();
    // Resource managers by bytes over the whole range.
    let mut per_rmgr: Vec<(usize, u64)> = Vec::new();
    for b in &buckets {
        for (rmid, u) in b.by_rmgr.iter().enumerate() {
            if per_rmgr.len() <= rmid {
                per_rmgr.resize(rmid + 1, (0, 0));
            }
            per_rmgr[rmid].0 = rmid;
            per_rmgr[rmid].1 += u.total_bytes();
        }
    }
    per_rmgr.retain(|&(_, b)| b > 0);
    per_rmgr.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let named: Vec<usize> = per_rmgr.iter().take(TIME_SERIES).map(|&(r, _)| r).collect();
    let mut series: Vec<Series> = named
        .iter()
        .map(|&r| Series {
            name: rmgr_name(r),
            values: Vec::new(),
        })
        .collect();
    let has_other = per_rmgr.len() > named.len();
    if has_other {
        series.push(Series {
            name: "other".to_owned(),
            values: Vec::new(),
        });
    }
    let mut labels = Vec::new();
    let iv = time.interval_us();
    let slot_of = |usage: &[Usage], series: &mut Vec<Series>| {
        let mut other = 0u64;
        let mut vals = vec![0u64; named.len()];
        for (rmid, u) in usage.iter().enumerate() {
            match named.iter().position(|&r| r == rmid) {
                Some(i) => vals[i] += u.total_bytes(),
                None => other += u.total_bytes(),
            }
        }
        for (s, v) in series.iter_mut().zip(vals) {
            s.values.push(v);
        }
        if has_other {
            if let Some(s) = series.last_mut() {
                s.values.push(other);
            }
        }
    };
    if let (Some(first), Some(last)) = (timed.first(), timed.last()) {
        let span = (last.0 - first.0) / iv + 1;
        let merge = (span + MAX_TIME_BARS - 1) / MAX_TIME_BARS;
        let width = iv * merge.max(1);
        let t0 = first.0.div_euclid(width) * width;
        let slots = ((last.0 - t0) / width + 1) as usize;
        let mut sums: Vec<Vec<Usage>> = vec![Vec::new(); slots];
        for (t, b) in &timed {
            let i = ((t - t0) / width) as usize;
            let s = &mut sums[i];
            if s.len() < b.by_rmgr.len() {
                s.resize(b.by_rmgr.len(), Usage::default());
            }
            for (a, u) in s.iter_mut().zip(&b.by_rmgr) {
                a.add(u);
            }
        }
        for (i, s) in sums.iter().enumerate() {
            slot_of(s, &mut series);
            labels.push(crate::dump::utc_text(t0 + width * i as i64));
        }
        let note = format!(
            "bars of {}; the clock is read from commit, abort and checkpoint records",
            svg::duration(width)
        );
        return svg::stacked_bars("time", &labels, &series, &note);
    }
    // No time in the range: one bar.
    for b in &buckets {
        slot_of(&b.by_rmgr, &mut series);
        labels.push("(no time in range)".to_owned());
    }
    svg::stacked_bars("time", &labels, &series, "no record of the range carries a time")
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0%".to_owned()
    } else {
        format!("{:.1}%", 100.0 * part as f64 / whole as f64)
    }
}

fn summary(input: &Input<'_>) -> String {
    let total = input.relations.total();
    let mut rows: Vec<(&str, String)> = Vec::new();
    let range = match (input.start, input.end) {
        (Some(s), Some(e)) => format!("{s} – {e} ({})", human_bytes(e.0.saturating_sub(s.0))),
        _ => "(no records)".to_owned(),
    };
    rows.push(("WAL range", range));
    let tl: Vec<String> = input.timelines.iter().map(u32::to_string).collect();
    rows.push(("Timelines", tl.join(", ")));
    if let Some(v) = input.version {
        rows.push(("PostgreSQL", v.major().to_string()));
    }
    let buckets = input.time.buckets();
    let times: Vec<i64> = buckets.iter().filter_map(|b| b.start_unix_us).collect();
    if let (Some(a), Some(b)) = (times.first(), times.last()) {
        rows.push((
            "Time",
            format!(
                "{} – {} (UTC)",
                crate::dump::utc_text(*a),
                crate::dump::utc_text(b + input.time.interval_us())
            ),
        ));
    }
    rows.push(("Records", total.records.to_string()));
    rows.push((
        "Bytes",
        format!(
            "{} ({} records, {} full-page images: {} in {} images)",
            human_bytes(total.total_bytes()),
            human_bytes(total.rec_bytes),
            pct(total.fpi_bytes, total.total_bytes()),
            human_bytes(total.fpi_bytes),
            total.fpi_count
        ),
    ));
    rows.push((
        "Relation forks",
        input.relations.rows().len().to_string(),
    ));
    rows.push(("Transactions", input.xacts.len().to_string()));
    let ckpts = input
        .checkpoints
        .cycles()
        .iter()
        .filter(|c| c.checkpoint_lsn.is_some())
        .count();
    rows.push(("Checkpoints", ckpts.to_string()));
    let mut out = String::from("<table class=\"summary\">");
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    out.push_str("</table>");
    out
}

fn relation_bars(input: &Input<'_>, by_fpi: bool) -> Vec<Bar> {
    let rows = if by_fpi {
        input.relations.rows_by_fpi()
    } else {
        input.relations.rows_by_bytes()
    };
    rows.iter()
        .filter(|r| !by_fpi || r.usage.fpi_bytes > 0)
        .take(input.top)
        .map(|r| Bar {
            label: format!("{} {}", (input.relation_label)(r), r.fork.name()),
            value: if by_fpi {
                r.usage.fpi_bytes
            } else {
                r.usage.total_bytes()
            },
            note: if by_fpi {
                format!("{} images", r.usage.fpi_count)
            } else {
                format!("{} records", r.usage.records)
            },
        })
        .collect()
}

fn xact_bars(input: &Input<'_>, by_fpi: bool) -> Vec<Bar> {
    let rows = if by_fpi {
        input.xacts.rows_by_fpi()
    } else {
        input.xacts.rows_by_bytes()
    };
    rows.iter()
        .filter(|r| !by_fpi || r.usage.fpi_bytes > 0)
        .take(input.top)
        .map(|r| Bar {
            label: format!("xid {}", r.xid),
            value: if by_fpi {
                r.usage.fpi_bytes
            } else {
                r.usage.total_bytes()
            },
            note: match &r.end {
                Some(e) => format!(
                    "{} at {}, {}",
                    e.op.name(),
                    e.lsn,
                    crate::dump::utc_text(e.unix_time_us)
                ),
                None => "end not in range".to_owned(),
            },
        })
        .collect()
}

fn checkpoint_chart(c: &CheckpointStats) -> String {
    let cycles = c.cycles();
    let bars: Vec<(String, f64, String)> = cycles
        .iter()
        .map(|c| {
            let label = match (c.checkpoint_lsn, c.unix_time_us) {
                (Some(l), Some(t)) => format!("{l} {}", crate::dump::utc_text(t)),
                (Some(l), None) => l.to_string(),
                _ => "before the first redo point".to_owned(),
            };
            let note = format!(
                "{}{} of {} are images",
                match c.redo {
                    Some(r) => format!("from redo {r}: "),
                    None => String::new(),
                },
                human_bytes(c.usage.fpi_bytes),
                human_bytes(c.usage.total_bytes()),
            );
            (label, 100.0 * c.fpi_share(), note)
        })
        .collect();
    svg::percent_bars("fpi-share", &bars)
}

const STYLE: &str = "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px auto;\
max-width:1100px;color:#1d2433;background:#fff}h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;\
margin:28px 0 6px;border-bottom:1px solid #dde2ea;padding-bottom:4px}.sub{color:#5b6577}\
table.summary{border-collapse:collapse}table.summary th{text-align:left;padding:2px 16px 2px 0;\
color:#5b6577;font-weight:600}table.summary td{padding:2px 0}svg.chart{display:block;\
margin:6px 0}svg text{font:12px system-ui,sans-serif;fill:#1d2433}svg .axis{stroke:#9aa3b2}\
svg .grid{stroke:#eef1f5}.note{color:#5b6577;font-size:12px}.grid2{display:grid;\
grid-template-columns:1fr 1fr;gap:0 28px}";

/// After the page is laid out, the script writes each chart's drawn size and the number of
/// marks with a non-zero size into the chart's `data-` attributes (what a test, or a curious
/// reader, can check), and marks the body as rendered.
const SCRIPT: &str = "window.addEventListener('load',function(){\
var cs=document.querySelectorAll('svg.chart');for(var i=0;i<cs.length;i++){var s=cs[i];\
var r=s.getBoundingClientRect();var n=0;var ms=s.querySelectorAll('.mark');\
for(var j=0;j<ms.length;j++){var b=ms[j].getBBox();if(b.width>0&&b.height>0)n++;}\
s.setAttribute('data-width',Math.round(r.width));s.setAttribute('data-height',Math.round(r.height));\
s.setAttribute('data-marks',n);}document.body.setAttribute('data-rendered',cs.length);});";

/// The whole page.
pub(crate) fn render(input: &Input<'_>) -> String {
    let mut h = String::with_capacity(1 << 16);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    let title = match (input.start, input.end) {
        (Some(s), Some(e)) => format!("WAL {s} – {e}"),
        _ => "WAL".to_owned(),
    };
    let _ = write!(h, "<title>pgwal report: {}</title>", esc(&title));
    let _ = write!(h, "<style>{STYLE}</style></head><body>");
    let _ = write!(
        h,
        "<h1>pgwal report</h1><div class=\"sub\">{} · pgwal {}</div>",
        esc(&title),
        env!("CARGO_PKG_VERSION")
    );
    h.push_str("<h2>Range</h2>");
    h.push_str(&summary(input));
    h.push_str("<h2>WAL volume over time, by resource manager</h2>");
    h.push_str(&time_chart(input.time));
    h.push_str("<h2>Full-page image share after each checkpoint</h2>");
    h.push_str(
        "<div class=\"note\">The WAL from each checkpoint's redo point to the next one's; \
         the first change to a page after a redo point writes the whole page.</div>",
    );
    h.push_str(&checkpoint_chart(input.checkpoints));
    h.push_str("<div class=\"grid2\"><div>");
    h.push_str("<h2>Top relations by WAL</h2>");
    h.push_str(&svg::hbars("rel-bytes", &relation_bars(input, false)));
    h.push_str("</div><div><h2>Top relations by full-page images</h2>");
    h.push_str(&svg::hbars("rel-fpi", &relation_bars(input, true)));
    h.push_str("</div><div><h2>Top transactions by WAL</h2>");
    h.push_str(&svg::hbars("xid-bytes", &xact_bars(input, false)));
    h.push_str("</div><div><h2>Top transactions by full-page images</h2>");
    h.push_str(&svg::hbars("xid-fpi", &xact_bars(input, true)));
    h.push_str("</div></div>");
    let _ = writeln!(h, "<script>{SCRIPT}</script></body></html>");
    h
}
