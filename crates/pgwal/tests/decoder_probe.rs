#![allow(clippy::unwrap_used)]
use std::time::Instant;
use pgwal_testkit::{Cluster, Major};

#[test]
fn probe() {
    for (m, mb) in [(Major::V15, 1), (Major::V18, 1), (Major::V15, 64), (Major::V13, 1)] {
        let t = Instant::now();
        let pg = Cluster::builder(m).wal_segsize_mb(mb).set("autovacuum", "off").start().unwrap();
        let t1 = t.elapsed();
        let lsn = pg.scalar_blocking("SELECT pg_current_wal_insert_lsn()").unwrap();
        let conf = pg.scalar_blocking("SELECT current_setting('min_wal_size') || ' ' || current_setting('max_wal_size')").unwrap();
        let files: Vec<_> = std::fs::read_dir(pg.pg_wal_dir()).unwrap().flatten().map(|e| e.file_name()).collect();
        drop(pg);
        eprintln!("{m} {mb}MB start {:?} total {:?} lsn {lsn} {conf} {files:?}", t1, t.elapsed());
    }
}
