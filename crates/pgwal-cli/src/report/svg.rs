//! The report's charts, drawn as inline SVG (each bar, segment or point a `.mark` element
//! with a `<title>` tooltip).

use std::fmt::Write as _;

/// Colours of the stacked series, the last one for "other".
const COLOURS: [&str; 8] = [
    "#3b6fd8", "#e8833a", "#3aa17e", "#c8414b", "#8a63c7", "#c7a21f", "#4fb3c8", "#9aa3b2",
];

/// HTML/XML text with `& < > " '` escaped.
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// `123 B`, `4.5 kB`, `6.7 MB`, `8.9 GB` (powers of 1024, as PostgreSQL's `pg_size_pretty`
/// counts).
pub(crate) fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else if v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `90 s`, `5 min`, `2 h`, `3 d` for microseconds.
pub(crate) fn duration(us: i64) -> String {
    let s = us / 1_000_000;
    if s % 86_400 == 0 && s >= 86_400 {
        format!("{} d", s / 86_400)
    } else if s % 3600 == 0 && s >= 3600 {
        format!("{} h", s / 3600)
    } else if s % 60 == 0 && s >= 60 {
        format!("{} min", s / 60)
    } else {
        format!("{s} s")
    }
}

/// One series of a stacked chart: a value per slot.
pub(crate) struct Series {
    pub name: String,
    pub values: Vec<u64>,
}

/// One bar of a horizontal bar chart.
pub(crate) struct Bar {
    pub label: String,
    pub value: u64,
    pub note: String,
}

fn open(out: &mut String, id: &str, w: u32, h: u32) {
    let _ = write!(
        out,
        "<svg class=\"chart\" id=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" \
         height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\">"
    );
}

/// A round axis maximum at or above `max`, and its step (1, 2 or 5 × 10^n).
fn nice_max(max: u64) -> (u64, u64) {
    let max = max.max(1);
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            let s = step * m;
            if s * 5 >= max {
                return (s * max.div_ceil(s), s);
            }
        }
        step *= 10;
    }
}

/// [`nice_max`] in whole kB, MB, ... (powers of 1024), so that the axis labels are round.
fn nice_bytes(max: u64) -> (u64, u64) {
    let mut unit = 1u64;
    while max / unit >= 1024 && unit < 1 << 40 {
        unit <<= 10;
    }
    let (m, s) = nice_max(max.div_ceil(unit));
    (m * unit, s * unit)
}

/// Bars of stacked series over time slots, with a legend; `labels` name the slots.
pub(crate) fn stacked_bars(id: &str, labels: &[String], series: &[Series], note: &str) -> String {
    let (w, h, left, top, bottom) = (1080u32, 340u32, 80.0, 16.0, 60.0);
    let plot_w = f64::from(w) - left - 16.0;
    let plot_h = f64::from(h) - top - bottom;
    let n = labels.len().max(1);
    let totals: Vec<u64> = (0..n)
        .map(|i| series.iter().map(|s| s.values.get(i).copied().unwrap_or(0)).sum())
        .collect();
    let (ymax, step) = nice_bytes(totals.iter().copied().max().unwrap_or(0));
    let mut o = String::new();
    open(&mut o, id, w, h);
    // Grid and y axis labels.
    let mut v = 0;
    while v <= ymax {
        let y = top + plot_h - plot_h * v as f64 / ymax as f64;
        let _ = write!(
            o,
            "<line class=\"grid\" x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 6.0,
            y + 4.0,
            esc(&human_bytes(v))
        );
        v += step;
    }
    let slot = plot_w / n as f64;
    let bar_w = (slot * 0.8).max(1.0);
    for i in 0..n {
        let x = left + slot * i as f64 + (slot - bar_w) / 2.0;
        let mut acc = 0u64;
        for (si, s) in series.iter().enumerate() {
            let val = s.values.get(i).copied().unwrap_or(0);
            if val == 0 {
                continue;
            }
            let y0 = top + plot_h - plot_h * acc as f64 / ymax as f64;
            acc += val;
            let y1 = top + plot_h - plot_h * acc as f64 / ymax as f64;
            let colour = COLOURS[si.min(COLOURS.len() - 1)];
            let _ = write!(
                o,
                "<rect class=\"mark\" x=\"{x:.1}\" y=\"{y1:.1}\" width=\"{bar_w:.1}\" \
                 height=\"{:.1}\" fill=\"{colour}\"><title>{} {}: {}</title></rect>",
                (y0 - y1).max(0.5),
                esc(labels.get(i).map_or("", String::as_str)),
                esc(&s.name),
                esc(&human_bytes(val))
            );
        }
    }
    let _ = write!(
        o,
        "<line class=\"axis\" x1=\"{left}\" x2=\"{}\" y1=\"{1:.1}\" y2=\"{1:.1}\"/>",
        left + plot_w,
        top + plot_h
    );
    // First, middle and last slot labels.
    let mut shown = vec![0, n / 2, n - 1];
    shown.dedup();
    for i in shown {
        if let Some(l) = labels.get(i) {
            let x = left + slot * (i as f64 + 0.5);
            let anchor = if i == 0 && n > 1 {
                "start"
            } else if i == n - 1 && n > 1 {
                "end"
            } else {
                "middle"
            };
            let _ = write!(
                o,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
                top + plot_h + 16.0,
                esc(l)
            );
        }
    }
    // Legend.
    let mut lx = left;
    let ly = f64::from(h) - 14.0;
    for (si, s) in series.iter().enumerate() {
        let colour = COLOURS[si.min(COLOURS.len() - 1)];
        let _ = write!(
            o,
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{ly:.1}\">{}</text>",
            ly - 9.0,
            lx + 14.0,
            esc(&s.name)
        );
        lx += 24.0 + 7.5 * s.name.len() as f64;
    }
    o.push_str("</svg>");
    let _ = write!(o, "<div class=\"note\">{}</div>", esc(note));
    o
}

/// Horizontal bars, longest first as given, each with its label, value and note.
pub(crate) fn hbars(id: &str, bars: &[Bar]) -> String {
    let w = 530u32;
    let row = 34.0;
    let h = (row * bars.len().max(1) as f64 + 8.0) as u32;
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(1);
    let mut o = String::new();
    open(&mut o, id, w, h);
    if bars.is_empty() {
        o.push_str("<text x=\"0\" y=\"20\">none in this range</text>");
    }
    for (i, b) in bars.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        let len = (f64::from(w) - 90.0) * b.value as f64 / max as f64;
        let _ = write!(
            o,
            "<text x=\"0\" y=\"{:.1}\">{}</text>\
             <rect class=\"mark\" x=\"0\" y=\"{:.1}\" width=\"{:.1}\" height=\"12\" \
             fill=\"{}\"><title>{}: {} ({})</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            y + 11.0,
            esc(&b.label),
            y + 15.0,
            len.max(1.0),
            COLOURS[0],
            esc(&b.label),
            esc(&human_bytes(b.value)),
            esc(&b.note),
            len.max(1.0) + 6.0,
            y + 25.5,
            esc(&human_bytes(b.value))
        );
    }
    o.push_str("</svg>");
    o
}

/// Vertical bars of percentages (0–100), each with a label and a tooltip note.
pub(crate) fn percent_bars(id: &str, bars: &[(String, f64, String)]) -> String {
    let (w, h, left, top, bottom) = (1080u32, 240u32, 48.0, 12.0, 40.0);
    let plot_w = f64::from(w) - left - 16.0;
    let plot_h = f64::from(h) - top - bottom;
    let n = bars.len().max(1);
    let mut o = String::new();
    open(&mut o, id, w, h);
    for p in [0, 25, 50, 75, 100] {
        let y = top + plot_h - plot_h * f64::from(p) / 100.0;
        let _ = write!(
            o,
            "<line class=\"grid\" x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{p}%</text>",
            left + plot_w,
            left - 6.0,
            y + 4.0
        );
    }
    let slot = plot_w / n as f64;
    let bar_w = (slot * 0.7).clamp(1.0, 80.0);
    for (i, (label, share, note)) in bars.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar_w) / 2.0;
        let bh = (plot_h * share / 100.0).max(0.5);
        let _ = write!(
            o,
            "<rect class=\"mark\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{bh:.1}\" \
             fill=\"{}\"><title>{}: {share:.1}% ({})</title></rect>",
            top + plot_h - bh,
            COLOURS[1],
            esc(label),
            esc(note)
        );
        if n <= 12 {
            let _ = write!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{share:.0}%</text>",
                x + bar_w / 2.0,
                top + plot_h + 14.0
            );
        }
    }
    let _ = write!(
        o,
        "<line class=\"axis\" x1=\"{left}\" x2=\"{}\" y1=\"{1:.1}\" y2=\"{1:.1}\"/>",
        left + plot_w,
        top + plot_h
    );
    if let (Some(f), Some(l)) = (bars.first(), bars.last()) {
        let _ = write!(
            o,
            "<text x=\"{left}\" y=\"{:.1}\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" \
             text-anchor=\"end\">{}</text>",
            f64::from(h) - 6.0,
            esc(&f.0),
            left + plot_w,
            f64::from(h) - 6.0,
            esc(&l.0)
        );
    }
    o.push_str("</svg>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(esc("<a&'b\">"), "&lt;a&amp;&#39;b&quot;&gt;");
        assert_eq!(human_bytes(1000), "1000 B");
        assert_eq!(human_bytes(1536), "1.5 kB");
        assert_eq!(duration(300_000_000), "5 min");
        assert_eq!(duration(90_000_000), "90 s");
        assert_eq!(nice_max(0), (1, 1));
        assert_eq!(nice_max(7_300), (8_000, 2_000));
        assert_eq!(nice_bytes(600_000), (600 << 10, 200 << 10));
    }
}
