//! `--stats=relation`, `--stats=xid`, `--stats=time`: every breakdown adds up to the
//! `--stats` totals of the same range, on the full-rmgr workload's WAL of every major in
//! `testdata/wal`; the relation rows agree with the block references of `--format json`'s
//! records; the JSON objects have the documented shape; and against a live server, `--names`
//! names tables, indexes and TOAST tables, marks a dropped table, and a transaction's
//! subtransactions are folded into it.

#![allow(clippy::unwrap_used)]

mod support;
use support::*;

use std::collections::BTreeMap;

use pgwal_testkit::{Cluster, Major};
use serde_json::Value;

/// The WAL samples: every directory of `testdata/wal`.
fn samples() -> Vec<(String, std::path::PathBuf)> {
    let mut v: Vec<_> = std::fs::read_dir(testdata(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    v.sort();
    assert!(v.len() >= 7, "testdata/wal has WAL of 13 to 19: {v:?}");
    v
}

fn json_of(args: &[&str]) -> Value {
    let o = pgwal(args);
    assert!(o.status.success(), "{args:?}: {}", text(&o));
    let out = String::from_utf8(o.stdout).unwrap();
    let line = out
        .lines()
        .last()
        .unwrap_or_else(|| panic!("{args:?}: no output"));
    serde_json::from_str(line).unwrap()
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

/// `[count, rec_len, fpi_len, fpi_count]` of a row.
fn usage(v: &Value) -> [u64; 4] {
    [
        u(v, "count"),
        u(v, "rec_len"),
        u(v, "fpi_len"),
        u(v, "fpi_count"),
    ]
}

fn add(a: &mut [u64; 4], b: [u64; 4]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

fn sum_rows(rows: &Value) -> [u64; 4] {
    let mut t = [0; 4];
    for r in rows.as_array().unwrap() {
        add(&mut t, usage(r));
    }
    t
}

/// The numbers of the `Total` line of a text table: records, record bytes, image bytes.
fn text_total(out: &[u8]) -> Vec<u64> {
    let out = String::from_utf8_lossy(out);
    let line = out
        .lines()
        .find(|l| l.starts_with("Total"))
        .unwrap_or_else(|| panic!("no Total line in\n{out}"));
    line.split_whitespace()
        .filter_map(|w| w.parse::<u64>().ok())
        .collect()
}

#[test]
fn every_breakdown_adds_up_to_the_stats_totals_on_every_major() {
    for (name, dir) in samples() {
        let d = s(&dir);
        let stats = json_of(&["dump", "-p", d, "--stats", "--format", "json"]);
        let want = [
            u(&stats, "count"),
            u(&stats, "rec_len"),
            u(&stats, "fpi_len"),
        ];
        assert!(want[0] > 1000, "{name}: {stats}");

        // Images counted from the records' own block references.
        let recs = pgwal(&["dump", "-p", d, "--format", "json"]);
        assert!(recs.status.success(), "{}", text(&recs));
        let mut images = 0u64;
        // Per relation fork: the record under its first block, images under their blocks.
        let mut by_rel: BTreeMap<String, [u64; 4]> = BTreeMap::new();
        for line in String::from_utf8(recs.stdout).unwrap().lines() {
            let r: Value = serde_json::from_str(line).unwrap();
            let blocks = r["blocks"].as_array().unwrap();
            for (i, b) in blocks.iter().enumerate() {
                let rel = &b["rel"];
                let key = format!(
                    "{}/{}/{} {}",
                    rel["spc"],
                    rel["db"],
                    rel["rel"],
                    b["fork"].as_str().unwrap()
                );
                let e = by_rel.entry(key).or_default();
                if i == 0 {
                    e[0] += 1;
                    e[1] += u(&r, "rec_len");
                }
                if let Some(img) = b["image"].as_object() {
                    e[2] += img["len"].as_u64().unwrap();
                    e[3] += 1;
                    images += 1;
                }
            }
        }
        let total = [want[0], want[1], want[2], images];

        let rel = json_of(&[
            "dump",
            "-p",
            d,
            "--stats=relation",
            "--top",
            "0",
            "--format",
            "json",
        ]);
        assert_eq!(rel["type"], "stats_relation");
        assert_eq!(usage(&rel), total, "{name}: relation totals");
        let mut t = sum_rows(&rel["rows"]);
        add(&mut t, usage(&rel["no_block"]));
        assert_eq!(t, total, "{name}: relation rows + no_block");
        assert_eq!(u(&rel["omitted"], "rows"), 0);
        let mut got: BTreeMap<String, [u64; 4]> = BTreeMap::new();
        for r in rel["rows"].as_array().unwrap() {
            let key = format!(
                "{}/{}/{} {}",
                r["spc"],
                r["db"],
                r["rel"],
                r["fork"].as_str().unwrap()
            );
            got.insert(key, usage(r));
        }
        assert_eq!(
            got, by_rel,
            "{name}: rows against the records' block references"
        );
        let mut db = sum_rows(&rel["databases"]);
        add(&mut db, usage(&rel["no_block"]));
        assert_eq!(db, total, "{name}: databases + no_block");
        let mut spc = sum_rows(&rel["tablespaces"]);
        add(&mut spc, usage(&rel["no_block"]));
        assert_eq!(spc, total, "{name}: tablespaces + no_block");

        // With --top: the rows shown, the rest and the records without blocks.
        let top = json_of(&[
            "dump",
            "-p",
            d,
            "--stats=relation",
            "--top",
            "3",
            "--format",
            "json",
        ]);
        assert_eq!(top["rows"].as_array().unwrap().len(), 3);
        let mut t = sum_rows(&top["rows"]);
        add(&mut t, usage(&top["omitted"]));
        add(&mut t, usage(&top["no_block"]));
        assert_eq!(t, total, "{name}: top 3 + omitted + no_block");
        let bytes: Vec<u64> = top["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| u(r, "rec_len") + u(r, "fpi_len"))
            .collect();
        assert!(
            bytes.windows(2).all(|w| w[0] >= w[1]),
            "{name}: sorted {bytes:?}"
        );

        let xid = json_of(&[
            "dump",
            "-p",
            d,
            "--stats=xid",
            "--top",
            "0",
            "--format",
            "json",
        ]);
        assert_eq!(xid["type"], "stats_xid");
        assert_eq!(usage(&xid), total, "{name}: xid totals");
        let mut t = sum_rows(&xid["rows"]);
        add(&mut t, usage(&xid["no_xid"]));
        assert_eq!(t, total, "{name}: xid rows + no_xid");
        let ended = xid["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["end"]["op"] == "commit")
            .count();
        assert!(ended > 50, "{name}: {ended} committed transactions");

        for iv in ["time", "time=1s"] {
            let opt = format!("--stats={iv}");
            let time = json_of(&["dump", "-p", d, &opt, "--format", "json"]);
            assert_eq!(time["type"], "stats_time");
            assert_eq!(usage(&time), total, "{name} {iv}: time totals");
            assert_eq!(sum_rows(&time["rows"]), total, "{name} {iv}: intervals");
            let mut by_rmgr = [0; 4];
            for row in time["rows"].as_array().unwrap() {
                assert!(row["start_unix_us"].as_i64().unwrap() > 1_600_000_000_000_000);
                assert_eq!(sum_rows(&row["rmgrs"]), usage(row), "{name}: {row}");
                add(&mut by_rmgr, sum_rows(&row["rmgrs"]));
            }
            assert_eq!(by_rmgr, total, "{name} {iv}: per resource manager");
        }

        // The text tables' Total lines say the same as --stats's.
        let plain = pgwal(&["dump", "-p", d, "--stats"]);
        let want_text = text_total(&plain.stdout);
        for mode in ["relation", "xid", "time"] {
            let opt = format!("--stats={mode}");
            let o = pgwal(&["dump", "-p", d, &opt]);
            assert!(o.status.success(), "{}", text(&o));
            let got = text_total(&o.stdout);
            // --stats: N, record, FPI, combined; breakdowns: N, record, FPIs, FPI, combined.
            assert_eq!(
                [got[0], got[1], got[3], got[4]],
                [want_text[0], want_text[1], want_text[2], want_text[3]],
                "{name} {mode}: {}",
                text(&o)
            );
        }
    }
}

#[test]
fn breakdown_options_are_checked() {
    let d = testdata("pg16");
    for (args, msg) in [
        (vec!["--stats=time=0s"], "invalid interval"),
        (
            vec!["--stats=rows"],
            "unrecognized value for option --stats",
        ),
        (vec!["--stats", "--top", "3"], "--top requires"),
        (vec!["--stats=xid", "--names", "host=x"], "--names requires"),
    ] {
        let mut a = vec!["dump", "-p", s(&d)];
        a.extend(args.iter().copied());
        let o = pgwal(&a);
        assert!(!o.status.success(), "{a:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(msg),
            "{a:?}: {}",
            text(&o)
        );
    }
}

/// The current WAL insert position.
fn lsn_now(c: &Cluster) -> String {
    c.scalar_blocking("SELECT pg_current_wal_insert_lsn()")
        .unwrap()
}

fn find_row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["name"] == name && r["fork"] == "main")
        .unwrap_or_else(|| panic!("no row named {name} in {rows:#?}"))
}

fn names_and_subxacts(major: Major) {
    let c = Cluster::builder(major).start().unwrap();
    c.query_blocking("CREATE DATABASE app").unwrap();
    let app = c.conninfo("postgres", "app");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = lsn_now(&c);
    let top_xid: String = rt.block_on(async {
        let cl = pgwal_testkit::connect(&app).await.unwrap();
        cl.batch_execute(
            "CREATE TABLE small (id int PRIMARY KEY, v text);
             CREATE INDEX small_v ON small (v);
             CREATE TABLE big (id int, doc text);
             ALTER TABLE big ALTER doc SET STORAGE EXTERNAL;
             CREATE TABLE gone (id int);
             INSERT INTO small SELECT g, 'v' || g FROM generate_series(1, 2000) g;
             INSERT INTO big SELECT g, repeat(md5(g::text), 400) FROM generate_series(1, 50) g;
             INSERT INTO gone SELECT generate_series(1, 3000);",
        )
        .await
        .unwrap();
        // A transaction with subtransactions that write.
        cl.batch_execute("BEGIN").await.unwrap();
        let xid: i64 = cl
            .query_one("SELECT txid_current()", &[])
            .await
            .unwrap()
            .get(0);
        cl.batch_execute(
            "INSERT INTO small VALUES (100001, 'a');
             SAVEPOINT s1; INSERT INTO small SELECT g, 'b' FROM generate_series(100002, 100500) g;
             SAVEPOINT s2; INSERT INTO small SELECT g, 'c' FROM generate_series(100501, 101000) g;
             RELEASE s2; RELEASE s1; COMMIT;
             DROP TABLE gone;",
        )
        .await
        .unwrap();
        xid.to_string()
    });
    c.query_blocking("CHECKPOINT").unwrap();
    let end = lsn_now(&c);
    let wal = c.pg_wal_dir();
    let postgres = c.conninfo("postgres", "postgres");
    let base = ["dump", "-p", s(&wal), "-s", &start, "-e", &end];

    let mut a = base.to_vec();
    a.extend([
        "--stats=relation",
        "--top",
        "0",
        "--format",
        "json",
        "--names",
        &postgres,
    ]);
    let rel = json_of(&a);
    let rows = rel["rows"].as_array().unwrap();
    let small = find_row(rows, "app.public.small");
    assert_eq!(
        (small["found"].as_bool(), small["kind"].as_str()),
        (Some(true), Some("table"))
    );
    assert!(small["table"].is_null());
    let pkey = find_row(rows, "app.public.small_pkey");
    assert_eq!(pkey["kind"], "index");
    assert_eq!(pkey["table"], "app.public.small");
    assert_eq!(
        find_row(rows, "app.public.small_v")["table"],
        "app.public.small"
    );
    let toast: Vec<&Value> = rows
        .iter()
        .filter(|r| r["table"] == "app.public.big" && r["kind"] == "TOAST table")
        .collect();
    assert!(!toast.is_empty(), "no TOAST row of big in {rows:#?}");
    assert!(toast[0]["name"]
        .as_str()
        .unwrap()
        .starts_with("app.pg_toast.pg_toast_"));
    assert!(u(toast[0], "count") >= 50, "{}", toast[0]);
    // The dropped table: its file number, marked not found.
    let gone_node = rows
        .iter()
        .filter(|r| r["found"] == false && r["fork"] == "main")
        .max_by_key(|r| u(r, "count"))
        .unwrap_or_else(|| panic!("no row marked not found in {rows:#?}"));
    assert!(gone_node["name"].is_null());
    assert!(u(gone_node, "count") >= 3000 / 226, "{gone_node}");
    let app_db = rel["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "app")
        .unwrap_or_else(|| panic!("{}", rel["databases"]));
    assert!(u(app_db, "count") > 2000);

    // Text: names, the TOAST table with its table, the dropped one by number and marked.
    let mut a = base.to_vec();
    a.extend(["--stats=relation", "--top", "0", "--names", &postgres]);
    let o = pgwal(&a);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", text(&o));
    // Shown with --nocapture (the README's example comes from here).
    eprintln!("{out}");
    assert!(
        out.contains("app.public.small_pkey (index of app.public.small)"),
        "{out}"
    );
    assert!(out.contains("(TOAST of app.public.big)"), "{out}");
    let gone_label = format!(
        "{}/{}/{} [not found]",
        gone_node["spc"], gone_node["db"], gone_node["rel"]
    );
    assert!(out.contains(&gone_label), "{gone_label} in {out}");
    // Without --names: numbers, as before.
    let mut a = base.to_vec();
    a.extend(["--stats=relation", "--top", "0"]);
    let plain = String::from_utf8(pgwal(&a).stdout).unwrap();
    assert!(!plain.contains("app.public"), "{plain}");
    assert!(plain.contains(&format!(
        "{}/{}/{}",
        small["spc"], small["db"], small["rel"]
    )));

    // Streamed from the server (`-d`), the same range gives the same tables and names.
    let live_ci = conn(&c);
    for mode in [
        vec![
            "--stats=relation",
            "--top",
            "0",
            "--format",
            "json",
            "--names",
            &postgres,
        ],
        vec!["--stats=xid", "--top", "5"],
        vec!["--stats=time=1s", "--format", "json"],
    ] {
        let mut l = vec!["dump", "-d", &live_ci, "-s", &start, "-e", &end];
        l.extend(mode.iter().copied());
        let mut f = base.to_vec();
        f.extend(mode.iter().copied());
        let (lo, fo) = (pgwal(&l), pgwal(&f));
        assert!(lo.status.success(), "{l:?}: {}", text(&lo));
        assert!(!lo.stdout.is_empty());
        assert_eq!(
            String::from_utf8_lossy(&lo.stdout),
            String::from_utf8_lossy(&fo.stdout),
            "{mode:?}: live and pg_wal differ"
        );
    }
    // And the report, from the server.
    let dir = scratch("insight-report");
    let html = dir.path().join("live.html");
    let mut r = vec![
        "report",
        "-d",
        &live_ci,
        "-s",
        &start,
        "-e",
        &end,
        "-o",
        s(&html),
    ];
    r.extend(["--names", &postgres]);
    let o = pgwal(&r);
    assert!(o.status.success(), "{}", text(&o));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("app.public.small main"),
        "names in the report"
    );

    // The transaction: one row, its subtransactions folded in, with its commit.
    let mut a = base.to_vec();
    a.extend(["--stats=xid", "--top", "0", "--format", "json"]);
    let xid = json_of(&a);
    let row = xid["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["xid"] == top_xid.parse::<u64>().unwrap())
        .unwrap_or_else(|| panic!("no row for xid {top_xid}: {xid}"));
    assert_eq!(u(row, "subxacts"), 2, "{row}");
    assert!(u(row, "count") >= 1000, "{row}");
    assert_eq!(row["end"]["op"], "commit");
    let sub_rows = xid["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            let x = u(r, "xid");
            let t: u64 = top_xid.parse().unwrap();
            x > t && x <= t + 2
        })
        .count();
    assert_eq!(
        sub_rows, 0,
        "subtransactions left as rows of their own: {xid}"
    );
}

#[test]
fn names_resolve_against_a_live_server_16() {
    names_and_subxacts(Major::V16);
}

#[test]
fn names_resolve_against_a_live_server_13() {
    names_and_subxacts(Major::V13);
}

#[test]
fn breakdowns_with_jobs_are_those_of_one_thread() {
    // -j is not used for the breakdowns: the tables are whole, not those of the last chunk.
    let d = testdata("pg18");
    for mode in ["--stats=relation", "--stats=xid", "--stats=time"] {
        let one = pgwal(&["dump", "-p", s(&d), mode, "--format", "json"]);
        let two = pgwal(&["dump", "-p", s(&d), mode, "-j2", "--format", "json"]);
        assert!(
            one.status.success() && two.status.success(),
            "{}",
            text(&two)
        );
        assert_eq!(one.stdout, two.stdout, "{mode} -j2");
        let v: Value = serde_json::from_slice(&one.stdout).unwrap();
        assert!(u(&v, "count") > 1000, "{v}");
    }
}
