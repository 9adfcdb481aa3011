//! Acceptance: streaming standby via pg_basebackup, replication, promotion to timeline 2.

// Tests may unwrap (see clippy.toml); this also covers the helper functions here.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use pgwal_testkit::{require_major, Cluster, Major};

async fn standby_roundtrip(major: Major) {
    if require_major(major).is_none() {
        return;
    }
    let t0 = Instant::now();
    let primary = Cluster::builder(major).wal_segsize_mb(1).start().unwrap();
    let p = primary.client().await;
    p.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'before')",
    )
    .await
    .unwrap();

    let standby = primary.create_standby().unwrap();
    assert_ne!(standby.port(), primary.port());
    assert_ne!(standby.data_dir(), primary.data_dir());
    assert_eq!(
        standby.query_one_string("SELECT pg_is_in_recovery()").await,
        "t"
    );
    assert_eq!(
        standby
            .query_one_string("SELECT status FROM pg_stat_wal_receiver")
            .await,
        "streaming"
    );

    p.batch_execute("INSERT INTO t SELECT g, 'after' FROM generate_series(2, 1000) g")
        .await
        .unwrap();
    primary.sql_load(2_000).await;
    primary.wait_for_catchup(&standby).unwrap();
    assert_eq!(
        standby.query_one_string("SELECT count(*) FROM t").await,
        "1000"
    );
    assert_eq!(
        standby
            .query_one_string("SELECT count(*) > 0 FROM pgwal_testkit_load")
            .await,
        "t"
    );

    standby.promote().unwrap();
    assert_eq!(
        standby.query_one_string("SELECT pg_is_in_recovery()").await,
        "f"
    );
    standby.checkpoint().await;
    assert_eq!(
        standby
            .query_one_string("SELECT timeline_id FROM pg_control_checkpoint()")
            .await,
        "2"
    );
    let history = standby.pg_wal_dir().join("00000002.history");
    assert!(history.is_file(), "{} missing", history.display());
    // The promoted server accepts writes; the old primary still runs on timeline 1.
    let s = standby.client().await;
    s.batch_execute("INSERT INTO t VALUES (1001, 'promoted')")
        .await
        .unwrap();
    assert_eq!(
        primary
            .query_one_string("SELECT timeline_id FROM pg_control_checkpoint()")
            .await,
        "1"
    );
    eprintln!(
        "standby round trip on {major}: {:.1}s",
        t0.elapsed().as_secs_f64()
    );
}

#[tokio::test]
async fn standby_15_streams_and_promotes() {
    standby_roundtrip(Major::V15).await;
}

#[tokio::test]
async fn standby_18_streams_and_promotes() {
    standby_roundtrip(Major::V18).await;
}

#[tokio::test]
async fn standby_19_streams_and_promotes() {
    standby_roundtrip(Major::V19).await;
}

// The npm builds have no pg_basebackup of their own: 18's is used (newest not older).
#[tokio::test]
async fn standby_13_streams_and_promotes() {
    standby_roundtrip(Major::V13).await;
}

#[tokio::test]
async fn standby_14_streams_and_promotes() {
    standby_roundtrip(Major::V14).await;
}

#[tokio::test]
async fn standby_16_streams_and_promotes() {
    standby_roundtrip(Major::V16).await;
}

#[tokio::test]
async fn standby_17_streams_and_promotes() {
    standby_roundtrip(Major::V17).await;
}
