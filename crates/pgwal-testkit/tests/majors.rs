//! Acceptance: every major 13..=19 starts with 1 MB WAL segments and generates WAL.
//! A missing major fails the test unless PGWAL_ALLOW_MISSING_MAJORS=1.

// Tests may unwrap (see clippy.toml); this also covers the helper functions here.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use pgwal_testkit::{require_major, Cluster, Major, PgbenchLength};

async fn exercise(major: Major) {
    let Some(bins) = require_major(major) else {
        return;
    };
    let t0 = Instant::now();
    let pg = Cluster::builder(major).wal_segsize_mb(1).start().unwrap();
    assert!(pg.binaries().bin_dir().starts_with(bins.bin_dir()));

    let num: u32 = pg
        .query_one_string("SHOW server_version_num")
        .await
        .parse()
        .unwrap();
    assert!(
        major.matches_server_version_num(num),
        "server_version_num {num} is not PostgreSQL {major}"
    );
    assert_eq!(pg.query_one_string("SHOW wal_segment_size").await, "1MB");
    assert_eq!(pg.query_one_string("SHOW wal_level").await, "replica");

    let start = pg.current_wal_lsn().await;
    let written = pg.sql_load(5_000).await;
    let after_sql = pg.current_wal_lsn().await;
    assert!(written > 0 && after_sql > start, "sql_load wrote no WAL");
    assert!(
        after_sql - start > 500_000,
        "expected >500 kB of WAL, got {}",
        after_sql - start
    );

    // pgbench where a pgbench exists (tools/bin, or Debian's).
    if pg.binaries().pgbench().is_ok() {
        pg.pgbench_init(1).unwrap();
        let report = pg.pgbench_run(2, PgbenchLength::Transactions(200)).unwrap();
        assert!(
            report.contains("tps"),
            "unexpected pgbench report: {report}"
        );
        let rows = pg
            .query_one_string("SELECT count(*) FROM pgbench_history")
            .await;
        assert_eq!(rows, "400");
    }
    let end_lsn = pg.switch_wal().await;
    assert!(end_lsn > after_sql);

    // Segments really are 1 MB.
    let seg = std::fs::read_dir(pg.pg_wal_dir())
        .unwrap()
        .flatten()
        .find(|e| e.file_name().len() == 24)
        .expect("a WAL segment in pg_wal");
    assert_eq!(seg.metadata().unwrap().len(), 1024 * 1024);

    eprintln!(
        "PostgreSQL {major} ({num}) at {}: {} bytes of WAL in {:.1}s",
        pg.binaries().bin_dir().display(),
        end_lsn - start,
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn major_13_generates_wal() {
    exercise(Major::V13).await;
}

#[tokio::test]
async fn major_14_generates_wal() {
    exercise(Major::V14).await;
}

#[tokio::test]
async fn major_15_generates_wal() {
    exercise(Major::V15).await;
}

#[tokio::test]
async fn major_16_generates_wal() {
    exercise(Major::V16).await;
}

#[tokio::test]
async fn major_17_generates_wal() {
    exercise(Major::V17).await;
}

#[tokio::test]
async fn major_18_generates_wal() {
    exercise(Major::V18).await;
}

#[tokio::test]
async fn major_19_generates_wal() {
    exercise(Major::V19).await;
}

/// The full set of majors is installed (fails unless PGWAL_ALLOW_MISSING_MAJORS=1), and the
/// reference pg_waldump exists for every major but 14.
#[test]
fn all_majors_and_reference_waldumps_installed() {
    let majors = pgwal_testkit::required_majors();
    if pgwal_testkit::allow_missing_majors() {
        return;
    }
    assert_eq!(majors, Major::ALL.to_vec());
    for m in Major::ALL {
        let w = pgwal_testkit::reference_waldump(m);
        if m == Major::V14 {
            continue;
        }
        let w = w.unwrap_or_else(|| panic!("no reference pg_waldump for {m}"));
        let out = std::process::Command::new(&w)
            .arg("--version")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        // "18.6", or a pre-release such as "19rc1": the major and then no further digit.
        let after = text
            .split_once(&format!("PostgreSQL) {m}"))
            .map(|(_, rest)| rest);
        assert!(
            after.is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit())),
            "{} --version says {text:?}",
            w.display()
        );
    }
}
