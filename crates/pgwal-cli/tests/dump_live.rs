//! `pgwal dump -d CONNSTR`: WAL streamed from a real server under pgbench load gives, byte for
//! byte, the output of `pgwal dump` on the server's own `pg_wal` for the same range, with every
//! output option; timeline switches are followed; slots, and the errors a server can cause.

// Test helpers outside #[test] functions: failing loudly is the point.
#![allow(clippy::unwrap_used)]

mod support;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pgwal_testkit::{format_lsn, Cluster, Major, PgbenchLength};
use support::{cluster, conn, exec, lsn, run_limited, s, sql, text, BIN};

/// `pgwal dump ARGS` (UTC times), killed and failing after two minutes.
fn dump(args: &[&str]) -> Output {
    let mut c = Command::new(BIN);
    c.arg("dump").args(args).env("TZ", "UTC");
    run_limited(c, Duration::from_secs(120))
}

/// Runs pgbench against `pg` on a thread until `stop` is set.
fn pgbench_until(pg: Arc<Cluster>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let _ = pg.pgbench_run(2, PgbenchLength::Seconds(1));
        }
    })
}

/// Asserts that `live` (a dump of the server) succeeded and printed what `files` (a dump of
/// its `pg_wal`) printed.
fn assert_same(what: &str, live: &Output, files: &Output) {
    assert!(
        live.status.success(),
        "{what}: live dump failed\n{}",
        text(live)
    );
    assert!(
        files.status.success(),
        "{what}: file dump failed\n{}",
        text(files)
    );
    assert!(!live.stdout.is_empty(), "{what}: no output\n{}", text(live));
    if live.stdout != files.stdout {
        let l = String::from_utf8_lossy(&live.stdout);
        let f = String::from_utf8_lossy(&files.stdout);
        let at = l
            .lines()
            .zip(f.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(l.lines().count().min(f.lines().count()));
        panic!(
            "{what}: live output differs from pg_wal's at line {at} ({} vs {} lines)\nlive:  {:?}\nfiles: {:?}\n{}",
            l.lines().count(),
            f.lines().count(),
            l.lines().nth(at),
            f.lines().nth(at),
            text(live)
        );
    }
}

/// The live dump of `-s start -e end` streamed while pgbench writes, then every output option
/// over the same range, each compared with the dump of `pg_wal`.
fn live_equals_files(major: Major) {
    let Some(pg) = cluster(major) else { return };
    let pg = Arc::new(pg);
    pg.pgbench_init(1).unwrap();
    let ci = conn(&pg);
    let wal = pg.pg_wal_dir();
    let start = lsn(&pg, "SELECT pg_current_wal_lsn()");
    // Ahead of the server: the live dump waits for pgbench to write up to it.
    let end = start + 3 * 1024 * 1024 + 777;
    let (s0, e0) = (format_lsn(start), format_lsn(end));
    let stop = Arc::new(AtomicBool::new(false));
    let bench = pgbench_until(pg.clone(), stop.clone());
    let live = dump(&["-d", &ci, "-s", &s0, "-e", &e0, "-b"]);
    stop.store(true, Ordering::SeqCst);
    bench.join().unwrap();
    let files = dump(&["-p", s(&wal), "-s", &s0, "-e", &e0, "-b"]);
    assert_same(&format!("{major} -b under load"), &live, &files);
    let lines = String::from_utf8_lossy(&live.stdout).lines().count();
    assert!(
        lines > 5000,
        "{major}: only {lines} records in 3 MB of pgbench WAL"
    );

    // Mid-record start (pg_waldump's skip note, on stdout for 13-16), filters, limits, stats, JSON.
    let mid = format_lsn(start + 4096 + 30);
    let variants: Vec<Vec<&str>> = vec![
        vec!["-s", &mid, "-e", &e0],
        vec!["-s", &s0, "-e", &e0, "--stats"],
        vec!["-s", &s0, "-e", &e0, "--stats=record"],
        vec!["-s", &s0, "-e", &e0, "--stats=record", "--format", "json"],
        vec!["-s", &s0, "-e", &e0, "--format", "json"],
        vec![
            "-s",
            &s0,
            "-e",
            &e0,
            "-r",
            "Heap",
            "-r",
            "Transaction",
            "-n",
            "300",
        ],
        vec!["-s", &s0, "-e", &e0, "-R", "1663/5/1259", "-F", "main"],
        vec!["-s", &s0, "-e", &e0, "-F", "main", "--stats"],
        vec!["-s", &s0, "-e", &e0, "--stats=relation", "--top", "5"],
        vec!["-s", &s0, "-e", &e0, "--stats=xid", "--format", "json"],
        vec!["-s", &s0, "-e", &e0, "--stats=time"],
    ];
    for v in &variants {
        let mut l = vec!["-d", ci.as_str()];
        l.extend(v);
        let mut f = vec!["-p", s(&wal)];
        f.extend(v);
        let (live, files) = (dump(&l), dump(&f));
        if v.contains(&"-R") {
            // The catalog relation may see no change in this range: only equality counts.
            assert!(live.status.success(), "{}", text(&live));
            assert_eq!(live.stdout, files.stdout, "{major} {v:?}\n{}", text(&live));
            continue;
        }
        assert_same(&format!("{major} {v:?}"), &live, &files);
    }
    // pgwal report of the server equals the report of its pg_wal.
    let tmp = support::scratch("live-report");
    let (hl, hf) = (tmp.path().join("live.html"), tmp.path().join("files.html"));
    let pgwal = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(args).env("TZ", "UTC");
        run_limited(c, Duration::from_secs(120))
    };
    let rl = pgwal(&["report", "-d", &ci, "-s", &s0, "-e", &e0, "-o", s(&hl)]);
    let rf = pgwal(&["report", "-p", s(&wal), "-s", &s0, "-e", &e0, "-o", s(&hf)]);
    assert!(
        rl.status.success() && rf.status.success(),
        "{}\n{}",
        text(&rl),
        text(&rf)
    );
    assert!(
        std::fs::read(&hl).unwrap() == std::fs::read(&hf).unwrap(),
        "{major}: reports differ"
    );
    // -q prints nothing, and stops at -e.
    let q = dump(&["-d", &ci, "-s", &s0, "-e", &e0, "-q"]);
    assert!(q.status.success() && q.stdout.is_empty(), "{}", text(&q));
}

#[test]
fn live_equals_files_13() {
    live_equals_files(Major::V13);
}

#[test]
fn live_equals_files_14() {
    live_equals_files(Major::V14);
}

#[test]
fn live_equals_files_15() {
    live_equals_files(Major::V15);
}

#[test]
fn live_equals_files_16() {
    live_equals_files(Major::V16);
}

#[test]
fn live_equals_files_17() {
    live_equals_files(Major::V17);
}

#[test]
fn live_equals_files_18() {
    live_equals_files(Major::V18);
}

#[test]
fn live_equals_files_19() {
    live_equals_files(Major::V19);
}

/// A promoted standby streams timeline 1 up to the switch, then timeline 2: the live dump
/// across the switch equals `--follow-timelines` over the standby's `pg_wal`.
fn across_promotion(major: Major) {
    let Some(primary) = cluster(major) else {
        return;
    };
    primary.pgbench_init(1).unwrap();
    let standby = primary.create_standby().unwrap();
    let start = lsn(&primary, "SELECT pg_current_wal_lsn()");
    primary
        .pgbench_run(2, PgbenchLength::Transactions(300))
        .unwrap();
    primary.wait_for_catchup(&standby).unwrap();
    standby.promote().unwrap();
    standby
        .pgbench_run(2, PgbenchLength::Transactions(300))
        .unwrap();
    let end = lsn(&standby, "SELECT pg_current_wal_lsn()");
    let history = std::fs::read_to_string(standby.pg_wal_dir().join("00000002.history")).unwrap();
    let switch = pgwal_testkit::parse_lsn(history.split('\t').nth(1).unwrap()).unwrap();
    assert!(start < switch && switch < end);
    let (s0, e0) = (format_lsn(start), format_lsn(end));
    let ci = conn(&standby);
    let wal = standby.pg_wal_dir();
    for extra in [&[][..], &["--format", "json"][..], &["--stats=record"][..]] {
        let mut l = vec!["-d", ci.as_str(), "-s", &s0, "-e", &e0];
        l.extend(extra);
        let mut f = vec!["--follow-timelines", "-p", s(&wal), "-s", &s0, "-e", &e0];
        f.extend(extra);
        let (live, files) = (dump(&l), dump(&f));
        assert_same(
            &format!("{major} across the promotion {extra:?}"),
            &live,
            &files,
        );
        if extra.is_empty() {
            let out = String::from_utf8_lossy(&live.stdout);
            assert!(
                out.lines()
                    .any(|l| l.contains("END_OF_RECOVERY") && l.contains("tli 2; prev tli 1")),
                "{major}: no END_OF_RECOVERY in the live dump"
            );
        }
    }
    // --save-fullpage writes the same images (the promotion's checkpoint makes some).
    let tmp = support::scratch("live-fpi");
    let (dl, df) = (tmp.path().join("live"), tmp.path().join("files"));
    let live = dump(&[
        "-d",
        &ci,
        "-s",
        &s0,
        "-e",
        &e0,
        "-q",
        "--save-fullpage",
        s(&dl),
    ]);
    let files = dump(&[
        "--follow-timelines",
        "-p",
        s(&wal),
        "-s",
        &s0,
        "-e",
        &e0,
        "-q",
        "--save-fullpage",
        s(&df),
    ]);
    assert!(
        live.status.success() && files.status.success(),
        "{}
{}",
        text(&live),
        text(&files)
    );
    let images = |d: &std::path::Path| {
        let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let (il, ifl) = (images(&dl), images(&df));
    assert!(!ifl.is_empty(), "{major}: no full-page images in the range");
    assert!(
        il == ifl,
        "{major}: {} images live, {} from files",
        il.len(),
        ifl.len()
    );
}

#[test]
fn across_promotion_13() {
    across_promotion(Major::V13);
}

#[test]
fn across_promotion_18() {
    across_promotion(Major::V18);
}

/// `-S SLOT` starts at the slot's restart_lsn (READ_REPLICATION_SLOT on 15+, pg_replication_slots
/// before); a temporary slot exists while dumping, none with --no-slot.
fn slot_start(major: Major) {
    let Some(pg) = cluster(major) else { return };
    pg.sql_load_blocking(200).unwrap();
    exec(
        &pg,
        "SELECT pg_create_physical_replication_slot('keep', true)",
    );
    let restart = sql(
        &pg,
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'keep'",
    );
    pg.sql_load_blocking(2000).unwrap();
    let end = sql(&pg, "SELECT pg_current_wal_lsn()");
    let ci = conn(&pg);
    let live = dump(&["-d", &ci, "-S", "keep", "-e", &end]);
    let files = dump(&["-p", s(&pg.pg_wal_dir()), "-s", &restart, "-e", &end]);
    // The file dump notes a skipped partial record on stdout (13-16) for an explicit -s.
    let strip = |o: &Output| -> String {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.starts_with("first record is after"))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    assert!(live.status.success(), "{}", text(&live));
    assert!(live.stdout.len() > 10_000, "{}", text(&live));
    assert_eq!(strip(&live), strip(&files), "{major}: -S keep");

    // While a --follow dump runs, its temporary slot exists; with --no-slot there is none.
    let temp = "SELECT count(*) FROM pg_replication_slots WHERE temporary AND slot_name LIKE 'pgwal_dump_%'";
    for (args, want) in [(&[][..], "1"), (&["--no-slot"][..], "0")] {
        let mut child = Command::new(BIN)
            .args(["dump", "-d", &ci, "--follow", "-q"])
            .args(args)
            .spawn()
            .unwrap();
        let mut seen = String::new();
        for _ in 0..100 {
            seen = sql(&pg, temp);
            let streaming = sql(
                &pg,
                "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pgwal'",
            );
            if seen == want && streaming == "1" {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        support::kill9(&mut child);
        assert_eq!(seen, want, "{major}: temporary slots with {args:?}");
    }
}

#[test]
fn slot_start_14() {
    slot_start(Major::V14);
}

#[test]
fn slot_start_16() {
    slot_start(Major::V16);
}

/// What a server can do wrong: no such slot, a start in the future, WAL already removed, the
/// server stopping under a --follow dump. Each a clear error naming the server and exit 1.
#[test]
fn live_errors() {
    let Some(pg) = pgwal_testkit::require_major(Major::V16).map(|_| {
        Cluster::builder(Major::V16)
            .wal_segsize_mb(1)
            .set("max_wal_size", "32MB")
            .set("min_wal_size", "2MB")
            .set("wal_keep_size", "0")
            .start()
            .unwrap()
    }) else {
        return;
    };
    let ci = conn(&pg);
    let server = format!("server \"127.0.0.1\", port {}", pg.port());

    let o = dump(&["-d", &ci, "-S", "nosuch"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&server) && err.contains("replication slot \"nosuch\" does not exist"),
        "{err}"
    );

    let ahead = format_lsn(lsn(&pg, "SELECT pg_current_wal_lsn()") + (1 << 30));
    let o = dump(&["-d", &ci, "-s", &ahead]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&server)
            && err.contains(&format!("cannot stream WAL from {ahead}"))
            && err.contains("ahead of the WAL flush position"),
        "{err}"
    );

    // Old segments removed: a few segments of WAL, then two checkpoints.
    let first = lsn(&pg, "SELECT pg_current_wal_lsn()");
    for _ in 0..6 {
        pg.sql_load_blocking(3000).unwrap();
        exec(&pg, "SELECT pg_switch_wal()");
    }
    exec(&pg, "CHECKPOINT");
    exec(&pg, "CHECKPOINT");
    let gone = format_lsn(first);
    let o = dump(&["-d", &ci, "-s", &gone, "--no-slot"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&server)
            && err.contains(&format!("cannot stream WAL from {gone}"))
            && err.contains("has already been removed"),
        "{err}"
    );

    // The server stops under a --follow dump.
    let log = support::scratch("live-gone");
    let errfile = log.path().join("stderr");
    let mut child = Command::new(BIN)
        .args(["dump", "-d", &ci, "--follow", "-q"])
        .stderr(std::fs::File::create(&errfile).unwrap())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    pg.stop_fast().unwrap();
    let st = support::wait_exit(&mut child, Duration::from_secs(60), &errfile);
    let err = std::fs::read_to_string(&errfile).unwrap();
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(err.contains(&server) && err.contains("stream"), "{err}");
}

/// The options that name files are refused with -d, and -S/--no-slot need -d.
#[test]
fn live_option_errors() {
    for (args, msg) in [
        (
            &["-d", "host=x", "-p", "/tmp"][..],
            "-p/--path cannot be used with -d/--dbname",
        ),
        (
            &["-d", "host=x", "-j", "2"][..],
            "-j/--jobs cannot be used with -d/--dbname",
        ),
        (
            &["-d", "host=x", "-s", "0/1", "-S", "a"][..],
            "cannot use -s/--start together with -S/--slot",
        ),
        (
            &["-S", "a"][..],
            "option -S/--slot requires option -d/--dbname",
        ),
        (
            &["--no-slot"][..],
            "option --no-slot requires option -d/--dbname",
        ),
    ] {
        let o = dump(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}\n{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(msg), "{args:?}: {err}");
    }
}

/// A --follow dump of a standby goes on across the standby's promotion: the server ends the
/// timeline under the stream, the dump fetches the history and continues on timeline 2. What it
/// printed equals `--follow-timelines` over the promoted standby's `pg_wal`.
#[test]
fn follows_a_promotion_16() {
    let Some(primary) = cluster(Major::V16) else {
        return;
    };
    primary.pgbench_init(1).unwrap();
    let standby = primary.create_standby().unwrap();
    primary.wait_for_catchup(&standby).unwrap();
    let start = format_lsn(lsn(&standby, "SELECT pg_last_wal_replay_lsn()"));
    let tmp = support::scratch("live-promote");
    let (outfile, errfile) = (tmp.path().join("out"), tmp.path().join("err"));
    let mut child = Command::new(BIN)
        .args(["dump", "-d", &conn(&standby), "-s", &start, "--follow"])
        .stdout(std::fs::File::create(&outfile).unwrap())
        .stderr(std::fs::File::create(&errfile).unwrap())
        .spawn()
        .unwrap();
    primary
        .pgbench_run(2, PgbenchLength::Transactions(200))
        .unwrap();
    primary.wait_for_catchup(&standby).unwrap();
    standby.promote().unwrap();
    standby
        .pgbench_run(2, PgbenchLength::Transactions(200))
        .unwrap();
    let end = format_lsn(lsn(&standby, "SELECT pg_current_wal_lsn()"));
    let files = dump(&[
        "--follow-timelines",
        "-p",
        s(&standby.pg_wal_dir()),
        "-s",
        &start,
        "-e",
        &end,
    ]);
    assert!(files.status.success(), "{}", text(&files));
    let want = String::from_utf8(files.stdout).unwrap();
    let n = want.lines().count();
    // The dump writes out what it has whenever it waits for the server.
    let mut got = String::new();
    for _ in 0..600 {
        got = std::fs::read_to_string(&outfile).unwrap();
        if got.lines().count() >= n {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the dump exited\n{}",
            std::fs::read_to_string(&errfile).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    support::kill9(&mut child);
    let got: Vec<&str> = got.lines().take(n).collect();
    let want: Vec<&str> = want.lines().collect();
    assert!(n > 1000, "only {n} records");
    assert!(want.iter().any(|l| l.contains("END_OF_RECOVERY")));
    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!("line {i} differs:\nlive:  {}\nfiles: {}", got[i], want[i]);
    }
    assert_eq!(
        got.len(),
        n,
        "{}",
        std::fs::read_to_string(&errfile).unwrap()
    );
}

/// With `synchronous_standby_names` naming the dump's application name first, commits are
/// acknowledged by the real standby and never wait for a --follow dump (it reports no flush
/// position, so it is never chosen).
#[test]
fn never_a_synchronous_standby() {
    let Some(primary) = cluster(Major::V17) else {
        return;
    };
    let _standby = primary.create_standby().unwrap();
    let mut child = Command::new(BIN)
        .args(["dump", "-d", &conn(&primary), "--follow", "-q"])
        .spawn()
        .unwrap();
    let streaming = "SELECT count(*) FROM pg_stat_replication WHERE application_name = 'pgwal' AND state = 'streaming'";
    for _ in 0..100 {
        if sql(&primary, streaming) == "1" {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(sql(&primary, streaming), "1");
    exec(
        &primary,
        "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (pgwal, pgwal_testkit_standby_1)'",
    );
    exec(&primary, "SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(500));
    let t = std::time::Instant::now();
    // A commit that waited for the dump would never return: wait for it on another thread.
    let (done, wait) = std::sync::mpsc::channel();
    let probe = primary.conninfo("postgres", "postgres");
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let r = rt.block_on(async {
            let client = pgwal_testkit::connect(&probe).await?;
            client
                .batch_execute("CREATE TABLE sync_probe (i int); INSERT INTO sync_probe VALUES (1)")
                .await
        });
        let _ = done.send(r.map_err(|e| e.to_string()));
    });
    let committed = wait.recv_timeout(Duration::from_secs(20));
    let took = t.elapsed();
    let states = sql(
        &primary,
        "SELECT string_agg(application_name || '=' || sync_state, ',' ORDER BY application_name) FROM pg_stat_replication",
    );
    support::kill9(&mut child);
    assert!(
        matches!(committed, Ok(Ok(()))),
        "the commit did not return ({committed:?} after {took:?}): {states}"
    );
    assert!(states.contains("pgwal_testkit_standby_1=sync"), "{states}");
    assert!(!states.contains("pgwal=sync"), "{states}");
}
