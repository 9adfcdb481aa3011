//! Decoder throughput on real WAL: framing + CRC checks (bytes/s) and records/s.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pgwal::wal::{DecoderConfig, WalDecoder};
use pgwal_benches::{load, sample_dir, WalSample};

/// Decodes the whole sample; returns (records, total FPI bytes) so nothing is optimised away.
fn decode_all(s: &WalSample) -> (u64, u64) {
    let cfg = DecoderConfig::new(s.seg_size).with_page_size(s.page_size);
    let mut d = WalDecoder::new(cfg, s.start);
    let mut input: &[u8] = &s.bytes;
    let (mut n, mut fpi) = (0u64, 0u64);
    while let Ok(Some(r)) = d.decode(&mut input) {
        n += 1;
        fpi += u64::from(r.fpi_len());
    }
    (n, fpi)
}

fn bench(c: &mut Criterion) {
    let sample = load(&sample_dir());
    let (records, _) = decode_all(&sample);
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(sample.bytes.len() as u64));
    g.bench_function("frame_and_crc_bytes", |b| {
        b.iter(|| black_box(decode_all(black_box(&sample))))
    });
    g.throughput(Throughput::Elements(records));
    g.bench_function("frame_and_crc_records", |b| {
        b.iter(|| black_box(decode_all(black_box(&sample))))
    });
    // The floor under the decoder: one CRC-32C pass over the same bytes (no framing).
    g.throughput(Throughput::Bytes(sample.bytes.len() as u64));
    g.bench_function("crc32c_only_bytes", |b| {
        b.iter(|| black_box(crc32c::crc32c(black_box(&sample.bytes))))
    });
    // The same over 1 MB that stays in cache: the CRC instruction's own speed.
    let hot = &sample.bytes[..sample.bytes.len().min(1 << 20)];
    g.throughput(Throughput::Bytes(hot.len() as u64));
    g.bench_function("crc32c_in_cache_bytes", |b| {
        b.iter(|| black_box(crc32c::crc32c(black_box(hot))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
