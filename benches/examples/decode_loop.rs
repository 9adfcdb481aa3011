//! Decodes the benchmark sample (`$PGWAL_BENCH_WAL`, as the benches) N times and prints the best
//! and median time: a quick A/B harness for `perf record` or alternating runs of two builds.
//!
//! `cargo run --release -p pgwal-benches --example decode_loop -- 10`
use pgwal::wal::{DecoderConfig, WalDecoder};
use pgwal_benches::{load, sample_dir};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let s = load(&sample_dir());
    let cfg = DecoderConfig::new(s.seg_size).with_page_size(s.page_size);
    let mut times = Vec::with_capacity(n);
    let mut records = 0u64;
    for _ in 0..n.max(1) {
        let t = std::time::Instant::now();
        let mut d = WalDecoder::new(cfg, s.start);
        let mut input: &[u8] = &s.bytes;
        records = 0;
        while let Ok(Some(r)) = d.decode(&mut input) {
            records += 1;
            std::hint::black_box(r.fpi_len());
        }
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let gb = s.bytes.len() as f64 / 1e9;
    println!(
        "{records} records, {:.0} MB: best {:.1} ms ({:.2} GB/s), median {:.1} ms ({:.2} GB/s)",
        gb * 1e3,
        times[0] * 1e3,
        gb / times[0],
        times[times.len() / 2] * 1e3,
        gb / times[times.len() / 2]
    );
}
