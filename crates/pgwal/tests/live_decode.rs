//! `LiveDecoder` on a real stream: records decoded live from START_REPLICATION equal the records
//! decoded from the server's own pg_wal files over the same range.

#![cfg(feature = "replication")]
#![allow(clippy::unwrap_used)]

use std::ops::ControlFlow;

use pgwal::conninfo::{Config, MapEnvironment};
use pgwal::live::LiveDecoder;
use pgwal::replication::{ReplicationClient, ReplicationEvent, StartReplication};
use pgwal::source::{read_range, ReadRange, WalDirectory};
use pgwal::wal::DecoderConfig;
use pgwal::Lsn;
use pgwal_testkit::{Cluster, Major};

async fn live_equals_files(major: Major) {
    let pg = Cluster::builder(major).wal_segsize_mb(1).start().unwrap();
    let home = tempfile::tempdir().unwrap();
    let env = MapEnvironment::new()
        .with_user("postgres")
        .with_home(home.path());
    let cfg = Config::parse_with_env(
        &format!("host=127.0.0.1 port={} user=postgres", pg.port()),
        &env,
    )
    .unwrap();
    let mut client = ReplicationClient::connect(&cfg).await.unwrap();
    let seg_size = client.wal_segment_size().await.unwrap();
    let system = client.identify_system().await.unwrap();
    let start = system.xlogpos.segment_start(seg_size);
    pg.sql_load(400).await;
    let target: Lsn = pg.current_wal_lsn().await.into();

    let dcfg = DecoderConfig::new(seg_size);
    let mut live = LiveDecoder::new(dcfg, start);
    let mut streamed: Vec<(Lsn, u32, u8)> = Vec::new();
    {
        let req = StartReplication::new(start).timeline(system.timeline);
        let mut stream = client.start_replication(&req).await.unwrap();
        while live.last_record_end().is_none_or(|e| e < target) {
            if let ReplicationEvent::XLogData(chunk) = stream.next_event().await.unwrap().unwrap() {
                live.feed(&chunk, |r| {
                    streamed.push((r.lsn(), r.total_len(), r.rmid()))
                })
                .unwrap();
            }
        }
    }
    let dir = WalDirectory::scan(&pg.pg_wal_dir()).unwrap();
    let range = ReadRange::new(start, system.timeline, dcfg);
    let mut from_files: Vec<(Lsn, u32, u8)> = Vec::new();
    let _ = read_range(&dir, &range, |r| {
        if r.lsn() > streamed.last().unwrap().0 {
            return ControlFlow::Break(());
        }
        from_files.push((r.lsn(), r.total_len(), r.rmid()));
        ControlFlow::Continue(())
    })
    .unwrap();
    assert!(
        streamed.len() > 500,
        "{major:?}: only {} records streamed",
        streamed.len()
    );
    assert_eq!(
        streamed, from_files,
        "{major:?}: live records differ from pg_wal's"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn live_decode_15() {
    live_equals_files(Major::V15).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn live_decode_18() {
    live_equals_files(Major::V18).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn live_decode_19() {
    live_equals_files(Major::V19).await;
}
