//! `pgwal dump --follow-timelines` reads across a promotion: WAL of timeline 1 up to the switch
//! point, then timeline 2, from one directory holding both (as an archive does).

// Test helpers outside #[test] functions: failing loudly is the point.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use pgwal_testkit::{Cluster, Major};

#[tokio::test(flavor = "multi_thread")]
async fn dump_follows_a_timeline_switch() {
    let primary = Cluster::builder(Major::V15)
        .wal_segsize_mb(1)
        .start()
        .unwrap();
    primary.sql_load(200).await;
    let standby = primary.create_standby().unwrap();
    primary.sql_load(50).await;
    primary.wait_for_catchup(&standby).unwrap();
    standby.promote().unwrap();
    standby.sql_load(200).await;
    standby.switch_wal().await;

    // One directory with the old primary's timeline-1 segments and the promoted standby's files.
    let dir = tempfile::tempdir().unwrap();
    for src in [primary.pg_wal_dir(), standby.pg_wal_dir()] {
        for e in std::fs::read_dir(&src).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                let _ = std::fs::copy(e.path(), dir.path().join(e.file_name()));
            }
        }
    }
    let history = std::fs::read_to_string(dir.path().join("00000002.history")).unwrap();
    let switch: pgwal::Lsn = history.split('\t').nth(1).unwrap().parse().unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_pgwal"))
        .args(["dump", "--follow-timelines", "-p"])
        .arg(dir.path())
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let text = String::from_utf8(out.stdout).unwrap();
    let lsns: Vec<pgwal::Lsn> = text
        .lines()
        .map(|l| {
            l.split("lsn: ")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(lsns.windows(2).all(|w| w[0] < w[1]), "records out of order");
    assert!(
        lsns.iter().any(|&l| l < switch),
        "no timeline-1 record before {switch}"
    );
    let after = lsns.iter().filter(|&&l| l >= switch).count();
    assert!(
        after > 200,
        "only {after} records after the switch at {switch}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("desc: END_OF_RECOVERY") && l.contains("tli 2; prev tli 1")),
        "no END_OF_RECOVERY record for the promotion"
    );
    // Valid WAL ends on timeline 2, after the switch.
    assert!(stderr.contains("end of valid WAL at"), "{stderr}");

    // In parallel, with chunks of a few pages (some start on timeline 1, some on 2, one at the
    // switch): the same output.
    for (jobs, pages) in [("2", "3"), ("3", "64")] {
        let par = Command::new(env!("CARGO_BIN_EXE_pgwal"))
            .args(["dump", "--follow-timelines", "-j", jobs, "-p"])
            .arg(dir.path())
            .env("TZ", "UTC")
            .env("PGWAL_DUMP_CHUNK_PAGES", pages)
            .output()
            .unwrap();
        assert_eq!(par.status.code(), out.status.code(), "-j{jobs}");
        assert!(par.stdout == text.as_bytes(), "-j{jobs}: stdout differs");
        assert_eq!(String::from_utf8_lossy(&par.stderr), stderr, "-j{jobs}");
    }
}
