//! Golden tests for the descriptions of Btree, Hash, Gin, Gist, Sequence, SPGist, BRIN and
//! Generic WAL records, against the real `pg_waldump` of each major.
//!
//! `testdata/desc/index/pg<major>.txt` holds real records picked from WAL that servers of that
//! major wrote (one per distinct shape of description, see [`shape`]), each with the line the
//! reference `pg_waldump` printed for it. The test puts each record alone on a synthetic WAL page
//! of its version, decodes it and compares `TYPE desc` with the text after `desc: ` of that line.
//! The files are made by the ignored [`make_fixture`] test from WAL directories that
//! [`external_dir`] compares in full (a server run of a workload, and the reference pg_waldump's
//! output for all of it). [`short_and_garbled_data`] rebuilds every fixture record with cut and
//! overwritten data to check that describing never panics.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;

use crate::desc::{describe, record_type, rmgr_name};
use crate::wal::{
    DecoderConfig, PgVersion, Record, WalDecoder, XLP_FIRST_IS_CONTRECORD, XLP_LONG_HEADER,
};
use crate::{Lsn, WalFileName, WalSegSize};

/// Btree, Hash, Gin, Gist, Sequence, SPGist, BRIN, Generic.
const RMGRS: [u8; 8] = [11, 12, 13, 14, 15, 16, 17, 20];

/// WAL page size.
const PAGE: usize = 8192;

/// `TYPE desc` as pg_waldump prints it after `desc: `, blocks excluded.
fn our_text(rec: &Record<'_>) -> String {
    let info = rec.info();
    let mut text = format!("{} ", record_type(rec.version(), rec.rmid(), info));
    describe(&mut text, rec);
    text
}

/// The rmgr name, the LSN (`%X/%08X`) and the `TYPE desc` text of a pg_waldump record line.
fn parse_line(line: &str) -> Option<(&str, &str, &str)> {
    let rest = line.strip_prefix("rmgr: ")?;
    let rmgr = rest.split_whitespace().next()?;
    let lsn = line.split("lsn: ").nth(1)?.split(',').next()?;
    let desc = line.split_once("desc: ")?.1;
    Some((rmgr, lsn, desc.split(", blkref #").next()?))
}

fn lsn_str(Lsn(lsn): Lsn) -> String {
    format!("{:X}/{:08X}", lsn >> 32, lsn as u32)
}

/// A WAL segment holding just `record`: a long page header, the record, and continuation pages
/// with short headers if it does not fit on the first page. The segment starts at 1 TB so that
/// the record's `xl_prev` lies before it, as xlogreader checks for a first record.
fn synthetic_wal(version: PgVersion, record: &[u8]) -> (WalSegSize, Lsn, Vec<u8>) {
    let seg_size = WalSegSize::new(1 << 20).unwrap();
    let start = 1u64 << 40;
    let mut out = Vec::new();
    let mut rest = record;
    while !rest.is_empty() {
        let first = out.is_empty();
        let mut page = vec![0u8; PAGE];
        page[0..2].copy_from_slice(&version.magic().to_le_bytes());
        let info = if first {
            XLP_LONG_HEADER
        } else {
            XLP_FIRST_IS_CONTRECORD
        };
        page[2..4].copy_from_slice(&info.to_le_bytes());
        page[4..8].copy_from_slice(&1u32.to_le_bytes());
        page[8..16].copy_from_slice(&(start + out.len() as u64).to_le_bytes());
        let header = if first {
            page[24..32].copy_from_slice(&7u64.to_le_bytes());
            page[32..36].copy_from_slice(&seg_size.bytes_u32().to_le_bytes());
            page[36..40].copy_from_slice(&(PAGE as u32).to_le_bytes());
            40
        } else {
            page[16..20].copy_from_slice(&(rest.len() as u32).to_le_bytes());
            24
        };
        let n = rest.len().min(PAGE - header);
        page[header..header + n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        if rest.is_empty() {
            page.truncate(header + n);
        }
        out.extend_from_slice(&page);
    }
    (seg_size, Lsn(start), out)
}

/// Decodes `record` (the bytes of one whole record) as WAL of `version`.
fn decode_alone(version: PgVersion, record: &[u8]) -> Result<String, String> {
    let (seg_size, start, wal) = synthetic_wal(version, record);
    let mut dec = WalDecoder::new(DecoderConfig::new(seg_size), start);
    let mut input: &[u8] = &wal;
    match dec.decode(&mut input) {
        Ok(Some(rec)) => Ok(our_text(&rec)),
        Ok(None) => Err("record incomplete".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The fixture files' records: version, `(LSN, record bytes, pg_waldump line)`.
fn read_fixture(path: &Path) -> (PgVersion, Vec<(String, Vec<u8>, String)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines().filter(|l| !l.starts_with('#'));
    let major = lines
        .next()
        .unwrap()
        .strip_prefix("major ")
        .unwrap()
        .parse()
        .unwrap();
    let version = PgVersion::from_major(major).unwrap();
    let mut records = Vec::new();
    while let Some(rec) = lines.next() {
        let (lsn, b64) = rec.split_once(' ').unwrap();
        let line = lines.next().unwrap();
        records.push((lsn.to_owned(), B64.decode(b64).unwrap(), line.to_owned()));
    }
    (version, records)
}

/// The fixture files, `testdata/desc/index/pg<major>.txt`.
fn fixture_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/desc/index");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|f| f.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", root.display());
    files
}

#[test]
fn fixtures() {
    let mut seen = 0;
    for file in &fixture_files() {
        let (version, records) = read_fixture(file);
        let mut bad = Vec::new();
        for (lsn, bytes, line) in &records {
            let (_, _, want) = parse_line(line).unwrap();
            match decode_alone(version, bytes) {
                Ok(got) if got == want => {}
                got => bad.push(format!("{lsn}\n  want: {want:?}\n  got:  {got:?}")),
            }
        }
        assert!(!records.is_empty(), "{}", file.display());
        assert!(bad.is_empty(), "{}: {}", file.display(), bad.join("\n"));
        seen += records.len();
    }
    assert!(seen > 0);
}

/// A record split into its parts, to rebuild it with other block or main data.
#[derive(Clone)]
struct Parts {
    /// The 24-byte header and the block headers, as stored.
    headers: Vec<u8>,
    /// Per block: where its `data_length` field is in `headers`, its image and its data.
    blocks: Vec<(usize, Vec<u8>, Vec<u8>)>,
    /// Where the main data length is in `headers`, if any, and whether it is the `uint32` of
    /// `XLR_BLOCK_ID_DATA_LONG` (else the byte of `XLR_BLOCK_ID_DATA_SHORT`).
    main_len_at: Option<(usize, bool)>,
    main: Vec<u8>,
}

/// Splits a record into its parts.
fn split_record(version: PgVersion, rec: &[u8]) -> Option<Parts> {
    let u16_at = |at: usize| u16::from_le_bytes([rec[at], rec[at + 1]]) as usize;
    let (mut at, mut total, mut main_len_at, mut main_len) = (24, 0, None, 0);
    let mut blocks = Vec::new();
    while rec.len() - at > total {
        match rec[at] {
            255 => {
                main_len_at = Some((at + 1, false));
                main_len = usize::from(rec[at + 1]);
                total += main_len;
                at += 2;
            }
            254 => {
                main_len_at = Some((at + 1, true));
                main_len = u32::from_le_bytes(rec[at + 1..at + 5].try_into().ok()?) as usize;
                total += main_len;
                at += 5;
            }
            253 => at += 3,
            252 => at += 5,
            _ => {
                let (flags, len_at, data_len) = (rec[at + 1], at + 2, u16_at(at + 2));
                at += 4;
                let mut image_len = 0;
                if flags & 0x10 != 0 {
                    image_len = u16_at(at);
                    let info = rec[at + 4];
                    let compressed = if version <= PgVersion::V14 {
                        info & 0x02
                    } else {
                        info & 0x1C
                    };
                    at += if info & 0x01 != 0 && compressed != 0 {
                        7
                    } else {
                        5
                    };
                }
                at += if flags & 0x80 == 0 { 16 } else { 4 };
                total += image_len + data_len;
                blocks.push((len_at, image_len, data_len));
            }
        }
    }
    let headers = rec[..at].to_vec();
    let mut blocks_out = Vec::new();
    for (len_at, image_len, data_len) in blocks {
        let image = rec[at..at + image_len].to_vec();
        let data = rec[at + image_len..at + image_len + data_len].to_vec();
        at += image_len + data_len;
        blocks_out.push((len_at, image, data));
    }
    let main = rec[at..at + main_len].to_vec();
    Some(Parts {
        headers,
        blocks: blocks_out,
        main_len_at,
        main,
    })
}

/// Reassembles a record from its parts, with lengths and CRC to match.
fn join_record(p: &Parts) -> Vec<u8> {
    let mut rec = p.headers.clone();
    for (len_at, _, data) in &p.blocks {
        rec[*len_at..*len_at + 2].copy_from_slice(&(data.len() as u16).to_le_bytes());
    }
    match p.main_len_at {
        Some((at, true)) => rec[at..at + 4].copy_from_slice(&(p.main.len() as u32).to_le_bytes()),
        Some((at, false)) => rec[at] = p.main.len() as u8,
        None => {}
    }
    for (_, image, data) in &p.blocks {
        rec.extend_from_slice(image);
        rec.extend_from_slice(data);
    }
    rec.extend_from_slice(&p.main);
    let total = rec.len() as u32;
    rec[0..4].copy_from_slice(&total.to_le_bytes());
    let crc = crate::wal::record_crc(&rec);
    rec[20..24].copy_from_slice(&crc.to_le_bytes());
    rec
}

/// Descriptions never panic on short or garbled data: every fixture record again with its main
/// data and each block's data cut to every shorter length, and filled with 0xFF or 0x80 bytes.
#[test]
fn short_and_garbled_data() {
    let mut decoded = 0;
    for file in fixture_files() {
        let (version, records) = read_fixture(&file);
        for (lsn, bytes, _) in &records {
            let parts = split_record(version, bytes).unwrap_or_else(|| panic!("{lsn}"));
            assert_eq!(join_record(&parts), *bytes, "{lsn}");
            let variants = mutated(&parts);
            for rec in variants {
                // Records whose data no longer fits their layout may be rejected; the others
                // must describe without panicking.
                if decode_alone(version, &rec).is_ok() {
                    decoded += 1;
                }
            }
        }
    }
    assert!(decoded > 1000, "{decoded}");
}

/// The record with its main data, then each block's data, cut to every shorter length and
/// replaced by 0xFF or 0x80 bytes.
fn mutated(parts: &Parts) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for target in 0..=parts.blocks.len() {
        let data = parts.blocks.get(target).map_or(&parts.main, |b| &b.2);
        let mut versions: Vec<Vec<u8>> = (0..data.len()).map(|k| data[..k].to_vec()).collect();
        versions.push(vec![0xFF; data.len()]);
        versions.push(vec![0x80; data.len()]);
        for v in versions {
            let mut p = parts.clone();
            match p.blocks.get_mut(target) {
                Some(b) => b.2 = v,
                None => p.main = v,
            }
            out.push(join_record(&p));
        }
    }
    out
}

/// The WAL segments in `dir` (plain or `.gz`), in order, and the reference output
/// `dir/waldump.txt`.
fn load_dir(dir: &Path) -> (Vec<(String, Vec<u8>)>, String) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            name.len() >= 24 && WalFileName::parse(&name[..24]).is_some()
        })
        .collect();
    files.sort();
    let segments = files
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            let raw = std::fs::read(p).unwrap();
            let bytes = if name.ends_with(".gz") {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&raw[..])
                    .read_to_end(&mut out)
                    .unwrap();
                out
            } else {
                raw
            };
            (name[..24].to_owned(), bytes)
        })
        .collect();
    (
        segments,
        std::fs::read_to_string(dir.join("waldump.txt")).unwrap(),
    )
}

/// Calls `f` with every record of [`RMGRS`] in the segments (contiguous, in order).
fn for_each_record(segments: &[(String, Vec<u8>)], mut f: impl FnMut(&Record<'_>)) {
    let seg_size = WalSegSize::new(segments[0].1.len() as u32).unwrap();
    let first = WalFileName::parse(&segments[0].0)
        .unwrap()
        .segno(seg_size)
        .unwrap();
    let mut dec = WalDecoder::new(
        DecoderConfig::new(seg_size),
        first.start_lsn(seg_size).unwrap(),
    );
    for (_, bytes) in segments {
        let mut input: &[u8] = bytes;
        loop {
            match dec.decode(&mut input) {
                Ok(Some(rec)) if RMGRS.contains(&rec.rmid()) => f(&rec),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

/// pg_waldump's lines for the records of [`RMGRS`], by LSN.
fn waldump_lines(waldump: &str) -> HashMap<String, String> {
    let names: Vec<String> = RMGRS
        .iter()
        .map(|&r| rmgr_name(r).unwrap().into())
        .collect();
    waldump
        .lines()
        .filter_map(|l| {
            let (rmgr, lsn, _) = parse_line(l)?;
            names
                .iter()
                .any(|n| n == rmgr)
                .then(|| (lsn.to_owned(), l.to_owned()))
        })
        .collect()
}

/// Compares every record of [`RMGRS`] in a directory of segments with its `waldump.txt`.
fn compare_dir(dir: &Path) {
    let (segments, waldump) = load_dir(dir);
    let want = waldump_lines(&waldump);
    let mut got = HashMap::new();
    for_each_record(&segments, |rec| {
        got.insert(lsn_str(rec.lsn()), our_text(rec));
    });
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut bad = Vec::new();
    for (lsn, line) in &want {
        let (rmgr, _, text) = parse_line(line).unwrap();
        let kind = text.split(' ').next().unwrap_or("");
        *counts.entry(format!("{rmgr} {kind}")).or_default() += 1;
        match got.get(lsn) {
            Some(ours) if ours == text => {}
            other => bad.push(format!("{lsn} {rmgr}\n  want: {text:?}\n  got:  {other:?}")),
        }
    }
    bad.sort();
    for (kind, c) in &counts {
        eprintln!("{c:8} {kind}");
    }
    eprintln!(
        "{} records compared in {}, {} mismatches",
        want.len(),
        dir.display(),
        bad.len()
    );
    assert!(
        !want.is_empty(),
        "no records of the index rmgrs in {}",
        dir.display()
    );
    assert!(
        bad.is_empty(),
        "{}",
        bad.iter().take(30).cloned().collect::<Vec<_>>().join("\n")
    );
}

/// A full run outside the repository: `PGWAL_INDEX_WAL_DIR` holds WAL segments and the
/// `waldump.txt` the reference `pg_waldump` printed for them.
#[test]
#[ignore = "tool: compares a WAL directory named by PGWAL_INDEX_WAL_DIR; run by hand"]
fn external_dir() {
    let dir = std::env::var("PGWAL_INDEX_WAL_DIR").expect("set PGWAL_INDEX_WAL_DIR");
    compare_dir(Path::new(&dir));
}

/// The shape of a description: numbers as `#`, repeated list items collapsed.
fn shape(desc: &str) -> String {
    let mut s = String::new();
    for c in desc.chars() {
        if c.is_ascii_digit() {
            if !s.ends_with('#') {
                s.push('#');
            }
        } else {
            s.push(c);
        }
    }
    let units = [
        "#, #",
        "# (delete) # (delete)",
        "# (insert) # (insert)",
        "# (replace) # (replace)",
        "# (add # items) # (add # items)",
        "[#] }, { off: #, nptids: #, ptids: [#] }",
    ];
    loop {
        let before = s.len();
        for unit in units {
            let one = match unit {
                "#, #" => "#",
                "[#] }, { off: #, nptids: #, ptids: [#] }" => "[#] }",
                u => &u[..u.len() / 2],
            };
            s = s.replace(unit, one);
        }
        if s.len() == before {
            return s;
        }
    }
}

/// Writes a fixture file: `PGWAL_INDEX_FIXTURE_SRC` lists WAL directories (`:`-separated, as
/// for [`external_dir`]) of major `PGWAL_INDEX_FIXTURE_MAJOR`; for each record type, the
/// smallest record of each description shape (at most 8 shapes) goes to
/// `PGWAL_INDEX_FIXTURE_OUT`, after the `#` comment lines of `PGWAL_INDEX_FIXTURE_NOTE`.
/// Records over 4 kB are kept only as a type's smallest sample.
#[test]
#[ignore = "tool: regenerates a fixture file; run by hand"]
fn make_fixture() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("set {k}"));
    let major: u32 = var("PGWAL_INDEX_FIXTURE_MAJOR").parse().unwrap();
    // (rmid, type) -> shape -> (size, lsn, bytes, line)
    type Pick = (usize, String, Vec<u8>, String);
    let mut picks: BTreeMap<(u8, String), BTreeMap<String, Pick>> = BTreeMap::new();
    for dir in var("PGWAL_INDEX_FIXTURE_SRC").split(':') {
        let (segments, waldump) = load_dir(Path::new(dir));
        let lines = waldump_lines(&waldump);
        for_each_record(&segments, |rec| {
            let lsn = lsn_str(rec.lsn());
            let Some(line) = lines.get(&lsn) else { return };
            let (_, _, text) = parse_line(line).unwrap();
            assert_eq!(our_text(rec), text, "{lsn}");
            let kind = text.split(' ').next().unwrap_or("").to_owned();
            let by_shape = picks.entry((rec.rmid(), kind)).or_default();
            let size = rec.bytes().len();
            let slot = by_shape
                .entry(shape(text))
                .or_insert_with(|| (usize::MAX, String::new(), Vec::new(), String::new()));
            if size < slot.0 {
                *slot = (size, lsn, rec.bytes().to_vec(), line.clone());
            }
        });
    }
    let mut out = String::new();
    for note in var("PGWAL_INDEX_FIXTURE_NOTE").lines() {
        out.push_str(&format!("# {note}\n"));
    }
    out.push_str(&format!("major {major}\n"));
    for by_shape in picks.values() {
        let mut chosen: Vec<&Pick> = by_shape.values().collect();
        chosen.sort_by_key(|p| p.0);
        let keep = chosen
            .iter()
            .enumerate()
            .filter(|(i, p)| *i == 0 || p.0 <= 4096);
        for (_, (_, lsn, bytes, line)) in keep.take(8) {
            out.push_str(&format!("{lsn} {}\n{line}\n", B64.encode(bytes)));
        }
    }
    std::fs::write(var("PGWAL_INDEX_FIXTURE_OUT"), out).unwrap();
}
