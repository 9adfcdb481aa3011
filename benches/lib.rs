//! Shared helpers for pgwal's criterion benchmarks (see `benches/` and `README.md`).

use std::path::{Path, PathBuf};

use pgwal::source::read_wal_file;
use pgwal::storage::probe::probe_segment;
use pgwal::{Lsn, WalFileName, WalSegSize};

/// Consecutive WAL segments loaded into one buffer, with where they start.
#[derive(Debug)]
pub struct WalSample {
    /// The segments' bytes, back to back.
    pub bytes: Vec<u8>,
    /// LSN of the first byte.
    pub start: Lsn,
    /// Segment size.
    pub seg_size: WalSegSize,
    /// WAL page size.
    pub page_size: u32,
}

/// The directory of real WAL to benchmark: `$PGWAL_BENCH_WAL`, or the shipped PostgreSQL 15
/// sample in `testdata/wal/pg15`.
pub fn sample_dir() -> PathBuf {
    match std::env::var_os("PGWAL_BENCH_WAL") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/wal/pg15"),
    }
}

/// Loads the longest run of consecutive complete segments of one timeline from `dir`.
pub fn load(dir: &Path) -> WalSample {
    let mut names: Vec<(WalFileName, PathBuf)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = WalFileName::parse(e.file_name().to_str()?)?;
            matches!(n, WalFileName::Segment { partial: false, .. }).then(|| (n, e.path()))
        })
        .collect();
    names.sort_by_key(|(n, _)| n.to_string());
    let first = read_wal_file(&names[0].1).expect("read first segment");
    let info = probe_segment(&first).expect("first segment has a long header");
    let mut bytes = Vec::new();
    let mut expect = names[0].0.segno(info.seg_size).expect("segment number");
    for (n, p) in &names {
        if n.segno(info.seg_size) != Some(expect) {
            break;
        }
        bytes.extend_from_slice(&read_wal_file(p).expect("read segment"));
        expect = expect.next();
    }
    let start = names[0]
        .0
        .segno(info.seg_size)
        .and_then(|s| s.start_lsn(info.seg_size))
        .unwrap_or_default();
    WalSample {
        bytes,
        start,
        seg_size: info.seg_size,
        page_size: info.page_size,
    }
}
