//! Heap/Heap2 descriptions against real pg_waldump output.
//!
//! `testdata/desc/heap/<major>/` holds `wal.zst` (the start of a real WAL segment written by a
//! server of that major running `testdata/desc/heap/workload.sql`) and `waldump.txt.zst` (the
//! Heap and Heap2 lines that the reference pg_waldump of that major printed for the whole
//! segment; for 14, which has no pg_waldump, see the README there).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use crate::desc;
use crate::lsn::Lsn;
use crate::segment::WalSegSize;
use crate::wal::{DecoderConfig, WalDecoder};

/// `desc: ...` text (up to the block references) of each Heap/Heap2 line, by LSN.
fn expected_descs(waldump: &str) -> BTreeMap<u64, String> {
    let mut map = BTreeMap::new();
    for line in waldump.lines().filter(|l| l.starts_with("rmgr: Heap")) {
        let lsn = line
            .split("lsn: ")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap();
        let (hi, lo) = lsn.split_once('/').unwrap();
        let lsn = u64::from_str_radix(hi, 16).unwrap() << 32 | u64::from_str_radix(lo, 16).unwrap();
        let desc = line.split_once("desc: ").unwrap().1;
        let desc = desc.split(", blkref #").next().unwrap();
        map.insert(lsn, desc.to_string());
    }
    map
}

/// Our `TYPE desc` text of every Heap/Heap2 record in `wal` (a segment from its first page).
fn our_descs(wal: &[u8]) -> BTreeMap<u64, String> {
    let start = Lsn(u64::from_le_bytes(wal[8..16].try_into().unwrap()));
    let mut decoder = WalDecoder::new(DecoderConfig::new(WalSegSize::DEFAULT), start);
    let mut input = wal;
    let mut map = BTreeMap::new();
    loop {
        match decoder.decode(&mut input) {
            Ok(Some(rec)) if matches!(rec.rmid(), 9 | 10) => {
                let mut text = format!(
                    "{} ",
                    desc::record_type(rec.version(), rec.rmid(), rec.info())
                );
                desc::describe(&mut text, &rec);
                map.insert(rec.lsn().0, text);
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(e) if e.is_end_of_wal() => break,
            Err(e) => panic!("bad WAL: {e}"),
        }
    }
    map
}

/// Compares every Heap/Heap2 record; returns how many were compared.
fn compare(wal: &[u8], waldump: &str) -> usize {
    let expected = expected_descs(waldump);
    let ours = our_descs(wal);
    let mut bad = Vec::new();
    for (lsn, want) in &expected {
        match ours.get(lsn) {
            Some(got) if got == want => {}
            got => bad.push(format!(
                "{:X}/{:08X}\n  want: {want}\n  got:  {got:?}",
                lsn >> 32,
                *lsn as u32
            )),
        }
    }
    for lsn in ours.keys().filter(|l| !expected.contains_key(l)) {
        bad.push(format!(
            "{:X}/{:08X}: decoded but not in pg_waldump output",
            lsn >> 32,
            *lsn as u32
        ));
    }
    assert!(
        bad.is_empty(),
        "{} mismatches of {}:\n{}",
        bad.len(),
        expected.len(),
        bad[..bad.len().min(20)].join("\n")
    );
    expected.len()
}

fn testdata(major: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/desc/heap")
        .join(major.to_string())
}

fn unzstd(path: &Path) -> Vec<u8> {
    zstd::decode_all(std::fs::File::open(path).unwrap()).unwrap()
}

fn golden(major: u32) {
    let dir = testdata(major);
    let wal = unzstd(&dir.join("wal.zst"));
    let waldump = String::from_utf8(unzstd(&dir.join("waldump.txt.zst"))).unwrap();
    let n = compare(&wal, &waldump);
    assert!(
        n > 1000,
        "only {n} Heap/Heap2 records in the {major} sample"
    );
}

#[test]
fn golden_13() {
    golden(13);
}
#[test]
fn golden_14() {
    golden(14);
}
#[test]
fn golden_15() {
    golden(15);
}
#[test]
fn golden_16() {
    golden(16);
}
#[test]
fn golden_17() {
    golden(17);
}
#[test]
fn golden_18() {
    golden(18);
}
#[test]
fn golden_19() {
    golden(19);
}

/// Every sample record, with its main data and block 0 data cut short at every length and
/// filled with 0xFF, described as every major: no panics.
#[test]
fn malformed_data_never_panics() {
    use crate::wal::RECORD_HEADER_SIZE;
    let mut described = 0;
    for major in [13, 16, 17, 18, 19] {
        let wal = unzstd(&testdata(major).join("wal.zst"));
        let start = Lsn(u64::from_le_bytes(wal[8..16].try_into().unwrap()));
        let mut decoder = WalDecoder::new(DecoderConfig::new(WalSegSize::DEFAULT), start);
        let mut input = &wal[..];
        while let Ok(Some(rec)) = decoder.decode(&mut input) {
            if !matches!(rec.rmid(), 9 | 10) {
                continue;
            }
            // The same record with main data and block data overwritten by 0xFF.
            let mut ff = rec.bytes().to_vec();
            ff[RECORD_HEADER_SIZE..].fill(0xFF);
            ff[..RECORD_HEADER_SIZE].copy_from_slice(&rec.bytes()[..RECORD_HEADER_SIZE]);
            let mut blocks = rec.blocks.to_vec();
            for bytes in [rec.bytes(), &ff[..]] {
                for version in PgVersion::ALL {
                    for main_len in 0..=rec.layout.main_len {
                        let block_len = blocks.first().map_or(0, |b| b.data_len);
                        for data_len in [0, block_len / 2, block_len.saturating_sub(1), block_len] {
                            if let Some(b) = blocks.first_mut() {
                                b.data_len = data_len;
                            }
                            let mut r = rec;
                            let mut layout = *rec.layout;
                            layout.main_len = main_len;
                            r.bytes = crate::wal::span::RecordBytes::Flat(bytes);
                            r.version = version;
                            r.layout = &layout;
                            r.blocks = &blocks;
                            let mut out = String::new();
                            desc::describe(&mut out, &r);
                            described += 1;
                        }
                        if let (Some(b), Some(orig)) = (blocks.first_mut(), rec.blocks.first()) {
                            b.data_len = orig.data_len;
                        }
                    }
                }
            }
        }
    }
    assert!(described > 100_000, "{described}");
}
