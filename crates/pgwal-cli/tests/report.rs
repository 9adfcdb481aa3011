//! `pgwal report`: the HTML file is self-contained (nothing to fetch), and rendered in
//! headless Chromium as a person would open it, every chart draws: the page's script writes
//! each chart's laid-out size and its number of marks (bars, segments) with a non-zero size
//! into the DOM, which `--dump-dom` gives back.

#![allow(clippy::unwrap_used)]

mod support;
use support::*;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Chromium, installed by `scripts/install-postgres` (Debian package `chromium`).
fn chromium() -> &'static str {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("chromium").is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "chromium is not installed: run scripts/install-postgres (Debian package chromium)"
    );
    "chromium"
}

/// Headless Chromium with a fresh profile, nothing from the network, then `args`.
fn run_chromium(profile: &Path, args: &[&str], page: &Path) -> std::process::Output {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1200,2400",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(format!("file://{}", page.display()));
    run_limited(cmd, Duration::from_secs(120))
}

/// The value of attribute `name` in the tag `tag`.
fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    let rest = &tag[at..];
    Some(&rest[..rest.find('"')?])
}

#[test]
fn report_is_self_contained_and_its_charts_draw_in_chromium() {
    let dir = scratch("report");
    let html = dir.path().join("report.html");
    let o = pgwal(&["report", "-p", s(&testdata("pg16")), "-o", s(&html)]);
    assert!(o.status.success(), "{}", text(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    // Nothing to fetch: no external scripts, styles, images or links (the SVG namespace is a
    // name, not a fetch).
    let without_ns = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for needle in ["http:", "https:", " src=", " href=", "@import", "url("] {
        assert!(!without_ns.contains(needle), "{needle} in the report");
    }
    assert!(page.contains("<script>") && page.contains("<style>"));
    // The range and timelines covered are in the page.
    assert!(page.contains("0/900028 – 0/A00000"), "range missing");
    assert!(page.contains("<th>Timelines</th><td>1</td>"), "timelines missing");

    let profile = dir.path().join("profile");
    let o = run_chromium(&profile, &["--dump-dom"], &html);
    assert!(o.status.success(), "{}", text(&o));
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(dom.contains("data-rendered=\"6\""), "the script did not run: {dom}");
    let mut charts = Vec::new();
    for piece in dom.split("<svg").skip(1) {
        let tag = &piece[..piece.find('>').unwrap()];
        if attr(tag, "class") != Some("chart") {
            continue;
        }
        let id = attr(tag, "id").unwrap().to_owned();
        let num = |k: &str| -> u64 {
            attr(tag, k)
                .unwrap_or_else(|| panic!("{id}: no {k} in {tag}"))
                .parse()
                .unwrap()
        };
        let (w, h, marks) = (num("data-width"), num("data-height"), num("data-marks"));
        assert!(w > 300 && h > 100, "{id}: drawn {w}x{h}");
        assert!(marks > 0, "{id}: no mark drawn");
        charts.push((id, marks));
    }
    let ids: Vec<&str> = charts.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(
        ids,
        ["time", "fpi-share", "rel-bytes", "rel-fpi", "xid-bytes", "xid-fpi"]
    );
    // Fifteen rows in each top chart; a stacked segment per resource manager series of the
    // one-second WAL (eight: seven by name and "other").
    for (id, marks) in &charts {
        match id.as_str() {
            "time" => assert_eq!(*marks, 8, "{id}"),
            "fpi-share" => assert!(*marks >= 2, "{id}: {marks}"),
            _ => assert_eq!(*marks, 15, "{id}"),
        }
    }

    // And as a picture.
    let shot = dir.path().join("shot.png");
    let arg = format!("--screenshot={}", shot.display());
    let o = run_chromium(&dir.path().join("profile2"), &[&arg], &html);
    assert!(o.status.success(), "{}", text(&o));
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 20_000, "screenshot of {} bytes", png.len());
}

#[test]
fn report_refuses_output_options() {
    let dir = scratch("report-opts");
    let html = dir.path().join("r.html");
    for opt in ["--stats", "--format=json", "-b", "--follow"] {
        let o = pgwal(&["report", "-p", s(&testdata("pg16")), "-o", s(&html), opt]);
        assert!(!o.status.success(), "{opt}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("cannot be used with pgwal report"),
            "{opt}: {}",
            text(&o)
        );
        assert!(!html.exists());
    }
}
