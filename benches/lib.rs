//! Criterion benchmarks for pgwal live in this package's `benches/` targets.
