//! The decoder without `keep_record_data`: records cut by the end of an input are checked as
//! their bytes arrive, with the same results as the copying decoder and a buffer that stays
//! at [`KEPT_PREFIX`] whatever the record's size.

use super::*;
use crate::wal::page::XLP_FIRST_IS_CONTRECORD;

const PAGE: usize = 8192;
/// Where the synthetic WAL starts (1 TB, so the first record's prev-link lies before it).
const START: u64 = 1 << 40;

/// A logical-message-like record of `data_len` bytes of main data, its prev-link at `prev`.
fn record(prev: u64, data_len: usize) -> Vec<u8> {
    let tot = RECORD_HEADER_SIZE + 5 + data_len;
    let mut r = vec![0u8; tot];
    r[0..4].copy_from_slice(&(tot as u32).to_le_bytes());
    r[4..8].copy_from_slice(&7u32.to_le_bytes());
    r[8..16].copy_from_slice(&prev.to_le_bytes());
    r[17] = 21; // RM_LOGICALMSG_ID
    r[24] = 254; // XLR_BLOCK_ID_DATA_LONG
    r[25..29].copy_from_slice(&(data_len as u32).to_le_bytes());
    for (i, b) in r[29..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let crc = record_crc(&r);
    r[20..24].copy_from_slice(&crc.to_le_bytes());
    r
}

/// WAL of 1 MB segments from [`START`] holding records of these main-data sizes, paged;
/// returns it with the records' LSNs.
fn wal(sizes: &[usize]) -> (Vec<u8>, Vec<u64>) {
    let mut stream = Vec::new();
    let mut lsns = Vec::new();
    let mut out: Vec<u8> = Vec::new();
    // The records back to back (MAXALIGNed), each linked to the one before; where each ends.
    let mut prev = START - 64;
    let mut spans = Vec::new();
    for &n in sizes {
        // The record's LSN: where the next byte of `stream` lands among the pages.
        let lsn = START + lsn_of(stream.len()) as u64;
        lsns.push(lsn);
        let r = record(prev, n);
        spans.push((stream.len(), stream.len() + r.len()));
        stream.extend_from_slice(&r);
        while stream.len() % 8 != 0 {
            stream.push(0);
        }
        prev = lsn;
    }
    let mut rest: &[u8] = &stream;
    let mut done = 0usize;
    while !rest.is_empty() {
        let first = out.is_empty();
        let mut page = vec![0u8; PAGE];
        page[0..2].copy_from_slice(&PgVersion::V17.magic().to_le_bytes());
        // Bytes of a record begun on an earlier page still to come (`xlp_rem_len`).
        let left_in_record = spans
            .iter()
            .find(|&&(from, to)| from < done && done < to)
            .map_or(0, |&(_, to)| to - done);
        let mut info = if first { XLP_LONG_HEADER } else { 0 };
        if left_in_record > 0 {
            info |= XLP_FIRST_IS_CONTRECORD;
        }
        page[2..4].copy_from_slice(&info.to_le_bytes());
        page[4..8].copy_from_slice(&1u32.to_le_bytes());
        page[8..16].copy_from_slice(&(START + out.len() as u64).to_le_bytes());
        page[16..20].copy_from_slice(&(left_in_record as u32).to_le_bytes());
        let header = if first {
            page[24..32].copy_from_slice(&7u64.to_le_bytes());
            page[32..36].copy_from_slice(&(1u32 << 20).to_le_bytes());
            page[36..40].copy_from_slice(&(PAGE as u32).to_le_bytes());
            LONG_HEADER_SIZE
        } else {
            SHORT_HEADER_SIZE
        };
        let n = rest.len().min(PAGE - header);
        page[header..header + n].copy_from_slice(&rest[..n]);
        rest = &rest[n..];
        done += n;
        if rest.is_empty() {
            page.truncate(header + n);
        }
        out.extend_from_slice(&page);
    }
    (out, lsns)
}

/// Offset in the paged WAL of byte `pos` of the record stream (page headers skipped).
fn lsn_of(pos: usize) -> usize {
    let first = PAGE - LONG_HEADER_SIZE;
    if pos < first {
        return LONG_HEADER_SIZE + pos;
    }
    let rest = pos - first;
    let per = PAGE - SHORT_HEADER_SIZE;
    PAGE * (1 + rest / per) + SHORT_HEADER_SIZE + rest % per
}

/// Decodes `wal` in pieces of `piece` bytes: each record's (LSN, end, length), or the error.
fn run(keep: bool, wal: &[u8], piece: usize) -> (Vec<(Lsn, Lsn, u32)>, Option<WalError>, usize) {
    let cfg = DecoderConfig {
        keep_record_data: keep,
        ..DecoderConfig::new(WalSegSize::new(1 << 20).unwrap())
    };
    let mut d = WalDecoder::new(cfg, Lsn(START));
    let mut out = Vec::new();
    let mut biggest = 0;
    for mut input in wal.chunks(piece) {
        loop {
            match d.decode(&mut input) {
                Ok(Some(r)) => out.push((r.lsn(), r.end_lsn(), r.total_len())),
                Ok(None) => break,
                Err(e) => return (out, Some(e), biggest),
            }
            biggest = biggest.max(d.buf.capacity());
        }
        biggest = biggest.max(d.buf.capacity());
    }
    (out, None, biggest)
}

#[test]
fn validating_decoder_agrees_with_the_copying_one() {
    let (wal, lsns) = wal(&[100, 300_000, 20_000, 50, 9_000]);
    for piece in [1, 7, 100, 4096, 8192, 65_536, wal.len()] {
        let (kept, e1, _) = run(true, &wal, piece);
        let (checked, e2, buf) = run(false, &wal, piece);
        assert!(e1.is_none() && e2.is_none(), "piece {piece}: {e1:?} {e2:?}");
        assert_eq!(kept, checked, "piece {piece}");
        assert_eq!(
            kept.iter().map(|r| r.0 .0).collect::<Vec<_>>(),
            lsns,
            "piece {piece}"
        );
        assert!(
            buf <= 2 * KEPT_PREFIX,
            "piece {piece}: buffer of {buf} bytes"
        );
    }
    // The copying decoder holds the whole 300 kB record.
    let (_, _, buf) = run(true, &wal, 4096);
    assert!(buf >= 300_000, "{buf}");
}

#[test]
fn validating_decoder_refuses_the_same_damage() {
    let (wal, lsns) = wal(&[100, 300_000, 20_000]);
    // A byte of the big record's header, of its prefix, and far past the prefix; and one
    // of the record after it.
    let big = (lsns[1] - START) as usize;
    for at in [
        big + 2,
        big + 100,
        big + 200_000,
        (lsns[2] - START) as usize + 3000,
    ] {
        let mut bad = wal.clone();
        bad[at] ^= 0x5A;
        for piece in [7, 4096, 65_536] {
            let (r1, e1, _) = run(true, &bad, piece);
            let (r2, e2, _) = run(false, &bad, piece);
            assert!(e1.is_some(), "offset {at}, piece {piece}: damage not found");
            assert_eq!((r1, e1), (r2, e2), "offset {at}, piece {piece}");
        }
    }
}

/// A record cut by a crash: page 0 holds a record and the start of a long one; page 1 was
/// written after the restart, marked with `flag` and starting with a new record (as
/// `OVERWRITE_CONTRECORD` does) instead of the long record's continuation. Returns the WAL,
/// the first record's LSN and the new record's LSN.
fn overwritten(version: PgVersion, flag: u16) -> (Vec<u8>, u64, u64) {
    let (full, lsns) = wal(&[100, 20_000]);
    let mut out = full[..PAGE].to_vec();
    out[0..2].copy_from_slice(&version.magic().to_le_bytes());
    let mut page = vec![0u8; SHORT_HEADER_SIZE];
    page[0..2].copy_from_slice(&version.magic().to_le_bytes());
    page[2..4].copy_from_slice(&flag.to_le_bytes());
    page[4..8].copy_from_slice(&1u32.to_le_bytes());
    page[8..16].copy_from_slice(&(START + PAGE as u64).to_le_bytes());
    page.extend_from_slice(&record(lsns[0], 10));
    out.extend_from_slice(&page);
    (out, lsns[0], START + (PAGE + SHORT_HEADER_SIZE) as u64)
}

fn decode_all(wal: &[u8]) -> (Vec<u64>, Option<WalError>) {
    let mut d = WalDecoder::new(
        DecoderConfig::new(WalSegSize::new(1 << 20).unwrap()),
        Lsn(START),
    );
    let mut input = wal;
    let mut out = Vec::new();
    loop {
        match d.decode(&mut input) {
            Ok(Some(r)) => out.push(r.lsn().0),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

#[test]
fn overwritten_contrecord_is_skipped_by_each_majors_flag() {
    // 13-18 mark the page with XLP_FIRST_IS_OVERWRITE_CONTRECORD (0x0008); 19 with 0x0004.
    for (version, flag) in [
        (PgVersion::V17, 0x0008),
        (PgVersion::V19, 0x0008),
        (PgVersion::V19, 0x0004),
    ] {
        let (w, first, new) = overwritten(version, flag);
        let (got, err) = decode_all(&w);
        assert_eq!(got, vec![first, new], "{version:?} flag {flag:#x}: {err:?}");
    }
    // Before 19, 0x0004 is not that mark: the continuation is missing.
    let (w, first, _) = overwritten(PgVersion::V17, 0x0004);
    let (got, err) = decode_all(&w);
    assert_eq!(got, vec![first]);
    assert!(
        matches!(
            err.as_ref().map(|e| &e.kind),
            Some(WalErrorKind::MissingContrecord)
        ),
        "{err:?}"
    );
}
