//! The WAL decoder against real PostgreSQL 13-18 WAL, at its edges.
//!
//! Every byte decoded here was written by a real throwaway server started by `pgwal-testkit`
//! (1 MB, 16 MB and 64 MB segments). Records are placed exactly where the edge cases live by
//! padding the WAL with logical messages of computed size, using PostgreSQL's own byte-position
//! arithmetic (`XLogRecPtrToBytePos` and friends, reimplemented below) and checking the
//! placement with the LSNs the server returns. The only WAL not written by a server is the
//! damaged copies of the corruption cases (a flipped byte, a spliced-in segment of another
//! cluster, truncated files).
//!
//! Per major (`pgNN_edges`, 1 MB segments):
//! 1. records split across pages: a 20 kB message over 3+ pages, record headers split 16 and
//!    8 bytes before a page end, records ending exactly at a page end (one of them after two
//!    pages, so the next page is wholly continuation);
//! 2. a record across a segment boundary, and a record header split across one;
//! 3. a 3 MB record over four segments;
//! 4. `XLOG_SWITCH` records ending exactly at a page boundary and exactly at a segment end,
//!    and decoding continuing into the next segment;
//! 5. starting in the middle (inside records, on pages that begin with a continuation, in
//!    the dead space after a switch), compared with the reference `pg_waldump -s`;
//! 6. every record (LSN, prev, rmgr, lengths) and the per-rmgr counts and sizes against the
//!    reference `pg_waldump` and `pg_waldump --stats`;
//! 7. the same WAL fed in random piece sizes (and 1-3 byte pieces over the crafted regions)
//!    gives the same records as whole-segment decoding, and so does the high-level reader's parallel
//!    read (`WalReader::fold_chunks`, 2-4 threads, chunks of one page to a segment, so chunk
//!    joins fall inside records across pages and segments);
//! 8. end of WAL vs corruption: the zeroed tail of the live segment, flipped bytes (BadCrc
//!    naming the record), a segment of another cluster (SystemIdMismatch), truncated files
//!    through `source::read_range` (`.partial`: EndOfWal where the bytes stop; a short file
//!    named as a complete segment: `WrongSize`).
//!
//! Per major (`pgNN_segment_sizes`): item 6 with 16 MB segments (`wal_compression = on`, and a
//! record across a segment boundary) and 64 MB segments.
//!
//! PostgreSQL 14 has no reference `pg_waldump` installed, so there the comparisons with it
//! are skipped (everything else runs).

// Tests may unwrap (see clippy.toml); this also covers the helper functions here.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use pgwal::reader::WalReader;
use pgwal::source::{
    read_range, read_range_shared, ReadEnd, ReadRange, SharedSegments, SourceError, WalDirectory,
};
use pgwal::wal::{
    record_crc, DecoderConfig, PageHeader, Record, WalDecoder, WalError, WalErrorKind,
    XLP_FIRST_IS_CONTRECORD, XLP_LONG_HEADER,
};
use pgwal::{Lsn, SegNo, TimelineId, WalSegSize};
use pgwal_testkit::tokio_postgres::{Client, SimpleQueryMessage};
use pgwal_testkit::{parse_lsn, reference_waldump, require_major, Cluster, ClusterBuilder, Major};

const PAGE: u64 = 8192;
const LONG_PHD: u64 = 40;
const SHORT_PHD: u64 = 24;
const RM_XLOG: u8 = 0;
const RM_TRANSACTION: u8 = 1;
const RM_LOGICALMSG: u8 = 21;
const XLOG_SWITCH: u8 = 0x40;
/// Built-in resource manager names as `pg_waldump --stats` prints them, by id (13-18).
use pgwal::desc::RMGR_NAMES;

// ---------------------------------------------------------------------------------------------
// WAL geometry: PostgreSQL's "usable byte position" arithmetic (xlog.c).

/// Byte positions that skip page headers, as PostgreSQL reserves WAL space.
#[derive(Clone, Copy, Debug)]
struct Geo {
    seg: u64,
}

impl Geo {
    fn usable_page(self) -> u64 {
        PAGE - SHORT_PHD
    }

    fn usable_seg(self) -> u64 {
        (self.seg / PAGE) * self.usable_page() - (LONG_PHD - SHORT_PHD)
    }

    /// `XLogRecPtrToBytePos`.
    fn byte_pos(self, lsn: u64) -> u64 {
        let (fullsegs, off) = (lsn / self.seg, lsn % self.seg);
        let (fullpages, offset) = (off / PAGE, off % PAGE);
        let mut r = fullsegs * self.usable_seg();
        if fullpages == 0 {
            if offset > 0 {
                assert!(offset >= LONG_PHD, "{lsn:#X} is inside a long page header");
                r += offset - LONG_PHD;
            }
        } else {
            r += (PAGE - LONG_PHD) + (fullpages - 1) * self.usable_page();
            if offset > 0 {
                assert!(offset >= SHORT_PHD, "{lsn:#X} is inside a page header");
                r += offset - SHORT_PHD;
            }
        }
        r
    }

    /// `XLogBytePosToRecPtr`: where a byte at `pos` lives (after any page header).
    fn rec_ptr(self, pos: u64) -> u64 {
        let (fullsegs, mut left) = (pos / self.usable_seg(), pos % self.usable_seg());
        let off = if left < PAGE - LONG_PHD {
            left + LONG_PHD
        } else {
            left -= PAGE - LONG_PHD;
            let fullpages = left / self.usable_page();
            left %= self.usable_page();
            PAGE + fullpages * PAGE + left + SHORT_PHD
        };
        fullsegs * self.seg + off
    }

    /// `XLogBytePosToEndRecPtr`: like `rec_ptr`, but a page boundary stays a page boundary.
    fn end_ptr(self, pos: u64) -> u64 {
        let (fullsegs, mut left) = (pos / self.usable_seg(), pos % self.usable_seg());
        let off = if left < PAGE - LONG_PHD {
            if left == 0 {
                0
            } else {
                left + LONG_PHD
            }
        } else {
            left -= PAGE - LONG_PHD;
            let fullpages = left / self.usable_page();
            left %= self.usable_page();
            if left == 0 {
                PAGE + fullpages * PAGE
            } else {
                PAGE + fullpages * PAGE + left + SHORT_PHD
            }
        };
        fullsegs * self.seg + off
    }

    /// The LSN just past the last byte of a record (before MAXALIGN padding).
    fn raw_end(self, r: &Rec) -> u64 {
        self.end_ptr(self.byte_pos(r.lsn) + u64::from(r.tot))
    }

    /// The LSN of byte `k` of a record.
    fn byte_at(self, r: &Rec, k: u64) -> u64 {
        assert!(k < u64::from(r.tot));
        self.rec_ptr(self.byte_pos(r.lsn) + k)
    }

    fn segno(self, lsn: u64) -> u64 {
        lsn / self.seg
    }

    fn seg_start(self, lsn: u64) -> u64 {
        lsn - lsn % self.seg
    }

    fn size(self) -> WalSegSize {
        WalSegSize::new(self.seg as u32).unwrap()
    }

    fn cfg(self) -> DecoderConfig {
        DecoderConfig::new(self.size())
    }

    fn file_name(self, segno: u64) -> String {
        SegNo(segno).file_name(TimelineId(1), self.size())
    }
}

fn align8(v: u64) -> u64 {
    (v + 7) & !7
}

fn page_of(lsn: u64) -> u64 {
    lsn / PAGE
}

fn lsn_text(v: u64) -> String {
    Lsn(v).to_string()
}

// ---------------------------------------------------------------------------------------------
// Decoded records, owned.

/// A decoded record copied out of the decoder, with its CRC re-checked independently.
#[derive(Clone, PartialEq, Eq)]
struct Rec {
    lsn: u64,
    end: u64,
    prev: u64,
    tot: u32,
    rmid: u8,
    info: u8,
    fpi: u32,
    crc: u32,
    bytes: Vec<u8>,
    /// Main data of logical messages (empty for other records).
    main: Vec<u8>,
}

impl Rec {
    fn of(r: &Record<'_>) -> Rec {
        let bytes = r.bytes().to_vec();
        assert_eq!(
            bytes.len(),
            r.total_len() as usize,
            "record at {}: bytes() is not xl_tot_len long",
            r.lsn()
        );
        assert_eq!(
            record_crc(&bytes),
            r.header().crc,
            "record at {} was returned with a CRC that does not match its bytes",
            r.lsn()
        );
        Rec {
            lsn: r.lsn().0,
            end: r.end_lsn().0,
            prev: r.prev().0,
            tot: r.total_len(),
            rmid: r.rmid(),
            info: r.info(),
            fpi: r.fpi_len(),
            crc: r.header().crc,
            main: if r.rmid() == RM_LOGICALMSG {
                r.main_data().to_vec()
            } else {
                Vec::new()
            },
            bytes,
        }
    }

    fn is_switch(&self) -> bool {
        self.rmid == RM_XLOG && self.info & 0xF0 == XLOG_SWITCH
    }

    /// `(prefix, message)` of a logical message (`xl_logical_message`).
    fn message(&self) -> Option<(&str, &[u8])> {
        if self.rmid != RM_LOGICALMSG {
            return None;
        }
        let m = &self.main;
        let le64 = |at: usize| u64::from_le_bytes(m[at..at + 8].try_into().unwrap()) as usize;
        let (psize, msize) = (le64(8), le64(16));
        assert_eq!(
            24 + psize + msize,
            m.len(),
            "logical message at {} has an inconsistent main data length",
            lsn_text(self.lsn)
        );
        let prefix = std::str::from_utf8(&m[24..24 + psize - 1]).unwrap();
        Some((prefix, &m[24 + psize..]))
    }
}

impl fmt::Debug for Rec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Rec {{ lsn {}, end {}, prev {}, tot {}, rmid {}, info {:#04x}, fpi {}, crc {:08x} }}",
            lsn_text(self.lsn),
            lsn_text(self.end),
            lsn_text(self.prev),
            self.tot,
            self.rmid,
            self.info,
            self.fpi,
            self.crc
        )
    }
}

/// Asserts two record lists are identical (bytes included), naming the first difference.
fn assert_same(a: &[Rec], b: &[Rec], what: &str) {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(x == y, "{what}: record #{i} differs:\n  {x:?}\n  {y:?}");
    }
    assert_eq!(
        a.len(),
        b.len(),
        "{what}: {} vs {} records (first extra: {:?})",
        a.len(),
        b.len(),
        a.get(b.len()).or(b.get(a.len()))
    );
}

/// Records follow each other without gaps: each starts where the previous one ended (after a
/// page header if the end is a page boundary), links back to it, and has a consistent end.
fn assert_chain(g: Geo, recs: &[Rec]) {
    for (i, r) in recs.iter().enumerate() {
        let raw_end = g.raw_end(r);
        let want_end = if r.is_switch() {
            if raw_end % g.seg == 0 {
                raw_end
            } else {
                g.seg_start(raw_end) + g.seg
            }
        } else {
            align8(raw_end)
        };
        assert_eq!(
            r.end,
            want_end,
            "end_lsn of {r:?} (raw end {})",
            lsn_text(raw_end)
        );
        if i == 0 {
            continue;
        }
        let p = &recs[i - 1];
        assert_eq!(r.prev, p.lsn, "prev-link of {r:?} after {p:?}");
        let want = if p.is_switch() {
            p.end + LONG_PHD
        } else {
            g.rec_ptr(g.byte_pos(p.end))
        };
        assert_eq!(
            r.lsn, want,
            "{r:?} does not start right after {p:?}: records were skipped"
        );
    }
}

fn find_msg<'a>(recs: &'a [Rec], prefix: &str) -> &'a Rec {
    let mut it = recs
        .iter()
        .filter(|r| r.message().is_some_and(|(p, _)| p == prefix));
    let r = it
        .next()
        .unwrap_or_else(|| panic!("no logical message {prefix:?} was decoded"));
    assert!(it.next().is_none(), "two logical messages {prefix:?}");
    r
}

fn index_of(recs: &[Rec], lsn: u64) -> usize {
    recs.iter()
        .position(|r| r.lsn == lsn)
        .unwrap_or_else(|| panic!("no record at {}", lsn_text(lsn)))
}

// ---------------------------------------------------------------------------------------------
// Feeding the decoder.

struct Decoded {
    recs: Vec<Rec>,
    err: Option<WalError>,
    last_end: Option<u64>,
    pending: Option<u64>,
}

/// Feeds `bufs` (consecutive WAL, the first starting at the page holding `start`) to a
/// `WalDecoder::new(cfg, start)` in pieces of `piece(remaining)` bytes (never across buffers).
fn decode_bufs(
    cfg: DecoderConfig,
    start: u64,
    bufs: &[&[u8]],
    mut piece: impl FnMut(usize) -> usize,
) -> Decoded {
    let mut dec = WalDecoder::new(cfg, Lsn(start));
    let mut recs = Vec::new();
    for buf in bufs {
        let mut off = 0;
        while off < buf.len() {
            let n = piece(buf.len() - off).clamp(1, buf.len() - off);
            let mut input: &[u8] = &buf[off..off + n];
            off += n;
            loop {
                match dec.decode(&mut input) {
                    Ok(Some(r)) => recs.push(Rec::of(&r)),
                    Ok(None) => {
                        assert!(
                            input.is_empty(),
                            "Ok(None) left {} bytes unconsumed",
                            input.len()
                        );
                        break;
                    }
                    Err(e) => {
                        // A failed decoder keeps failing the same way.
                        let mut more: &[u8] = &[];
                        assert_eq!(dec.decode(&mut more).err().as_ref(), Some(&e));
                        return Decoded {
                            recs,
                            err: Some(e),
                            last_end: dec.last_record_end().map(|l| l.0),
                            pending: dec.pending_record().map(|l| l.0),
                        };
                    }
                }
            }
        }
    }
    Decoded {
        recs,
        err: None,
        last_end: dec.last_record_end().map(|l| l.0),
        pending: dec.pending_record().map(|l| l.0),
    }
}

/// All WAL of a contiguous range of whole segments, in memory.
struct Wal {
    g: Geo,
    /// LSN of `data[0]` (a segment start).
    base: u64,
    data: Vec<u8>,
}

impl Wal {
    fn load(g: Geo, dir: &Path, first_seg: u64, last_seg: u64) -> Wal {
        let mut data = Vec::new();
        for s in first_seg..=last_seg {
            let bytes = fs::read(dir.join(g.file_name(s))).unwrap();
            assert_eq!(
                bytes.len() as u64,
                g.seg,
                "segment {s:X} is not a whole segment"
            );
            data.extend_from_slice(&bytes);
        }
        Wal {
            g,
            base: first_seg * g.seg,
            data,
        }
    }

    /// The bytes from the page holding `start` to the end.
    fn tail_from_page(&self, start: u64) -> &[u8] {
        &self.data[((start - start % PAGE) - self.base) as usize..]
    }

    fn segment(&self, segno: u64) -> &[u8] {
        let at = (segno * self.g.seg - self.base) as usize;
        &self.data[at..at + self.g.seg as usize]
    }

    fn segments(&self) -> Vec<&[u8]> {
        self.data.chunks(self.g.seg as usize).collect()
    }
}

/// Reads `[start, end)` of a directory with `source::read_range`.
fn read_dir(
    g: Geo,
    dir: &Path,
    start: u64,
    end: Option<u64>,
    limit: Option<usize>,
) -> (Vec<Rec>, Result<ReadEnd, SourceError>) {
    let wd = WalDirectory::scan(dir).unwrap();
    let mut range = ReadRange::new(Lsn(start), TimelineId(1), g.cfg());
    range.end = end.map(Lsn);
    let mut recs = Vec::new();
    let res = read_range(&wd, &range, |r| {
        recs.push(Rec::of(r));
        if limit.is_some_and(|l| recs.len() >= l) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    (recs, res)
}

/// Reads `[s0, e)` as `dump -j` does: in page-aligned parts, each holding the records that
/// start in it, all through one [`SharedSegments`] whose pages are given back after every
/// part; twice over (given-back pages are read again). The parts together must be `full`.
fn shared_parts_match(g: Geo, dir: &Path, s0: u64, e: u64, full: &[Rec]) {
    let wd = WalDirectory::scan(dir).unwrap();
    // A part that begins after an XLOG_SWITCH record, in the zeroed rest of its segment,
    // begins where the switch sends the reader instead (the dump redoes such a part so).
    let switches: Vec<(u64, u64)> = full
        .iter()
        .filter(|r| r.is_switch())
        .map(|r| (r.lsn, r.end))
        .collect();
    let shared = SharedSegments::new(2);
    for part_pages in [1u64, 5, 64, 64] {
        let part = part_pages * PAGE;
        let mut got = Vec::new();
        let mut lo = s0;
        while lo < e {
            let hi = ((lo / part + 1) * part).min(e);
            let from = switches
                .iter()
                .find(|&&(at, end)| at < lo && lo < end)
                .map_or(lo, |&(_, end)| end);
            if from < hi {
                let mut range = ReadRange::new(Lsn(from), TimelineId(1), g.cfg());
                range.end = Some(Lsn(e));
                let how = read_range_shared(&wd, &range, &shared, Some(Lsn(hi)), |r| {
                    if r.lsn().0 >= hi {
                        return ControlFlow::Break(());
                    }
                    got.push(Rec::of(r));
                    ControlFlow::Continue(())
                });
                let how = how.unwrap_or_else(|err| panic!("part at {}: {err}", lsn_text(from)));
                assert!(
                    matches!(how, ReadEnd::Stopped | ReadEnd::ReachedEnd),
                    "part at {}: {how:?}",
                    lsn_text(from)
                );
            }
            shared.give_back_before(Lsn(hi));
            lo = hi;
        }
        assert_same(&got, full, &format!("shared parts of {part_pages} pages"));
    }
}

/// Reads `[s0, e)` through the high-level reader on several threads
/// (`WalReader::for_each_chunk` via `fold_chunks`): chunks of one page, five pages and a
/// segment, joined at records across pages and segments; the chunks' records in order must be
/// `full`.
fn reader_chunks_match(g: Geo, dir: &Path, s0: u64, e: u64, full: &[Rec]) {
    for (jobs, chunk) in [(2, PAGE), (3, 5 * PAGE), (4, PAGE), (2, g.seg)] {
        let reader = WalReader::builder()
            .start(Lsn(s0))
            .end(Lsn(e))
            .jobs(jobs)
            .chunk_size(chunk)
            .open(dir)
            .unwrap();
        let mut got = Vec::new();
        let how = reader
            .fold_chunks(
                Vec::new,
                |v, r| {
                    v.push(Rec::of(r));
                    ControlFlow::Continue(())
                },
                |v| {
                    got.extend(v);
                    ControlFlow::Continue(())
                },
            )
            .unwrap_or_else(|err| panic!("{jobs} jobs, chunks of {chunk}: {err}"));
        assert_eq!(how, ReadEnd::ReachedEnd, "{jobs} jobs, chunks of {chunk}");
        assert_same(
            &got,
            full,
            &format!("reader: {jobs} jobs, chunks of {chunk}"),
        );
    }
}

/// A tiny xorshift64* generator (no dependencies, reproducible per seed).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Random lower-case hex text of `n` characters (incompressible enough: 4 bits per byte).
    fn hex(&mut self, n: usize) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        (0..n)
            .map(|_| HEX[self.below(16) as usize] as char)
            .collect()
    }

    /// A piece size between 1 byte and 100 kB, log-uniformly distributed (many tiny pieces).
    fn piece(&mut self) -> usize {
        let bits = 1 + self.below(17);
        (1 + self.below(1 << bits)).min(100_000) as usize
    }
}

// ---------------------------------------------------------------------------------------------
// Talking to the server.

fn builder(major: Major, seg_mb: u32) -> ClusterBuilder {
    Cluster::builder(major)
        .wal_segsize_mb(seg_mb)
        // Keep every segment and keep other writers quiet while records are being placed.
        .set("autovacuum", "off")
        .set("max_wal_size", "1GB")
        .set("wal_keep_size", "1GB")
        .set("checkpoint_timeout", "1h")
}

/// First column of every row returned by `sql` (several statements allowed, one round trip).
async fn rows(c: &Client, sql: &str) -> Vec<String> {
    let msgs = c
        .simple_query(sql)
        .await
        .unwrap_or_else(|e| panic!("`{}` failed: {e:?}", &sql[..sql.len().min(200)]));
    msgs.into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or("").to_string()),
            _ => None,
        })
        .collect()
}

async fn lsn_of(c: &Client, sql: &str) -> u64 {
    let v = rows(c, sql).await;
    parse_lsn(&v[0]).unwrap_or_else(|| panic!("`{sql}` returned {v:?}, not an LSN"))
}

async fn insert_lsn(c: &Client) -> u64 {
    lsn_of(c, "SELECT pg_current_wal_insert_lsn()").await
}

/// Switches to a new segment (writing something first, so the switch is never a no-op) and
/// returns the new segment's start.
async fn switch(c: &Client, g: Geo) -> u64 {
    rows(c, "SELECT pg_logical_emit_message(false, 'sw', 'x')").await;
    rows(c, "SELECT pg_switch_wal()").await;
    g.seg_start(insert_lsn(c).await)
}

/// `xl_tot_len` of a non-transactional logical message.
fn msg_tot(prefix: &str, len: usize) -> u64 {
    let main = 24 + prefix.len() as u64 + 1 + len as u64;
    24 + if main > 255 { 5 } else { 2 } + main
}

fn emit_sql(prefix: &str, text: &str) -> String {
    format!("SELECT pg_logical_emit_message(false, '{prefix}', '{text}')::text")
}

/// Padding must be at least this long (its main data then takes the 5-byte long form).
const PAD_MIN: u64 = 320;
/// `xl_tot_len` of the padding message minus its text: header 24, data header 5,
/// `xl_logical_message` 24, prefix "pad\0".
const PAD_OVERHEAD: u64 = 24 + 5 + 24 + 4;

/// The first `f(b)` with `b` a multiple of `unit` after `p` (skipping segment boundaries when
/// `unit` is a page, to keep the page cases mid-segment) that leaves room for padding.
fn target(g: Geo, p: u64, unit: u64, f: impl Fn(u64) -> u64) -> u64 {
    let mut b = (p / unit + 1) * unit;
    loop {
        if unit == g.seg || b % g.seg != 0 {
            let s = f(b);
            if s > p && g.byte_pos(s) >= g.byte_pos(p) + PAD_MIN {
                return s;
            }
        }
        b += unit;
    }
}

/// Writes a padding message so that the record `then_sql` writes (of `then_tot` bytes) starts
/// exactly at `target(insert position)`, in one round trip; checks the placement with the
/// LSNs the server returns for both (retrying if a background process wrote in between).
/// Returns the record's LSN and what `then_sql` returned.
async fn place(
    c: &Client,
    g: Geo,
    what: &str,
    target: impl Fn(u64) -> u64,
    then_sql: &str,
    then_tot: u64,
) -> (u64, u64) {
    for attempt in 1..=10 {
        let p = insert_lsn(c).await;
        let s = target(p);
        let n = g.byte_pos(s) - g.byte_pos(p) - PAD_OVERHEAD;
        let sql = format!(
            "SELECT pg_logical_emit_message(false, 'pad', repeat('x', {n}))::text; {then_sql}"
        );
        let r = rows(c, &sql).await;
        let (pad_end, then_end) = (parse_lsn(&r[0]).unwrap(), parse_lsn(&r[1]).unwrap());
        if g.byte_pos(pad_end) == g.byte_pos(s)
            && g.byte_pos(then_end) == g.byte_pos(s) + align8(then_tot)
        {
            return (s, then_end);
        }
        eprintln!(
            "placing {what} at {} (attempt {attempt}): padding ended at {}, record at {}; retrying",
            lsn_text(s),
            r[0],
            r[1]
        );
    }
    panic!("could not place {what}: other WAL writers kept interfering");
}

/// Hard-links (or copies) segments `first..=last` of the cluster into a new directory.
fn snapshot(pg: &Cluster, g: Geo, name: &str, first: u64, last: u64) -> PathBuf {
    let dir = pg.temp_dir().join(name);
    fs::create_dir_all(&dir).unwrap();
    for s in first..=last {
        let f = g.file_name(s);
        let (src, dst) = (pg.pg_wal_dir().join(&f), dir.join(&f));
        if fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst).unwrap();
        }
    }
    dir
}

/// A new directory holding the given files: `Ok(path)` to link/copy, `Err(bytes)` to write.
fn make_dir(parent: &Path, name: &str, files: Vec<(String, Result<PathBuf, Vec<u8>>)>) -> PathBuf {
    let dir = parent.join(name);
    fs::create_dir_all(&dir).unwrap();
    for (f, src) in files {
        let dst = dir.join(&f);
        assert!(!dst.exists(), "{} exists", dst.display());
        match src {
            Ok(p) => {
                if fs::hard_link(&p, &dst).is_err() {
                    fs::copy(&p, &dst).unwrap();
                }
            }
            Err(bytes) => fs::write(&dst, bytes).unwrap(),
        }
    }
    dir
}

// ---------------------------------------------------------------------------------------------
// The reference pg_waldump.

fn run_waldump(bin: &Path, args: &[String]) -> std::process::Output {
    Command::new(bin).args(args).output().unwrap()
}

/// The LSN of the first record `pg_waldump -s start` prints, or its error output.
fn waldump_first(bin: &Path, dir: &Path, start: u64) -> Result<u64, String> {
    let args = vec![
        "-p".to_string(),
        dir.display().to_string(),
        "-s".into(),
        lsn_text(start),
        "-n".into(),
        "1".into(),
    ];
    let out = run_waldump(bin, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first = stdout.lines().find(|l| l.starts_with("rmgr:"));
    match first {
        Some(line) if out.status.success() => {
            let at = line.find(" lsn: ").unwrap() + 6;
            let text = line[at..].split(',').next().unwrap();
            Ok(parse_lsn(text).unwrap())
        }
        _ => Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr))),
    }
}

/// `(count, record bytes, FPI bytes)` per resource manager name, and the total.
type Stats = BTreeMap<String, (u64, u64, u64)>;

fn our_stats(recs: &[Rec]) -> Stats {
    let mut s = Stats::new();
    for r in recs {
        let e = s
            .entry(RMGR_NAMES[r.rmid as usize].to_string())
            .or_default();
        e.0 += 1;
        e.1 += u64::from(r.tot - r.fpi);
        e.2 += u64::from(r.fpi);
        let t = s.entry("Total".to_string()).or_default();
        t.0 += 1;
        t.1 += u64::from(r.tot - r.fpi);
        t.2 += u64::from(r.fpi);
    }
    s
}

/// Runs `pg_waldump --stats` over `[start, end)` and parses its table (rows of every rmgr,
/// zero ones included, and the `Total` line).
fn waldump_stats(bin: &Path, dir: &Path, start: u64, end: u64) -> Stats {
    let args = vec![
        "-p".to_string(),
        dir.display().to_string(),
        "-s".into(),
        lsn_text(start),
        "-e".into(),
        lsn_text(end),
        "--stats".into(),
    ];
    let out = run_waldump(bin, &args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "pg_waldump {args:?} failed:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut s = Stats::new();
    let mut in_table = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("----") {
            in_table = true;
            continue;
        }
        if !in_table || t.is_empty() || t.starts_with("--------") {
            continue;
        }
        // Drop the "( 12.34)" and "[56.78%]" percentage columns.
        let mut clean = String::new();
        let mut depth = 0;
        for ch in t.chars() {
            match ch {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                _ if depth == 0 => clean.push(ch),
                _ => {}
            }
        }
        let f: Vec<&str> = clean.split_whitespace().collect();
        assert_eq!(f.len(), 5, "unexpected pg_waldump --stats line: {line:?}");
        let n = |i: usize| {
            f[i].parse::<u64>()
                .unwrap_or_else(|_| panic!("bad number in {line:?}"))
        };
        assert_eq!(
            n(4),
            n(2) + n(3),
            "combined size is not record + FPI in {line:?}"
        );
        s.insert(f[0].to_string(), (n(1), n(2), n(3)));
    }
    assert!(
        s.contains_key("Total") && s.contains_key("XLOG"),
        "no stats table in:\n{text}"
    );
    s
}

/// `(lsn, prev, rmgr name, record bytes without FPIs, xl_tot_len)` of every record
/// `pg_waldump` prints for `[start, end)`.
fn waldump_records(
    bin: &Path,
    dir: &Path,
    start: u64,
    end: u64,
) -> Vec<(u64, u64, String, u64, u64)> {
    let args = vec![
        "-p".to_string(),
        dir.display().to_string(),
        "-s".into(),
        lsn_text(start),
        "-e".into(),
        lsn_text(end),
    ];
    let out = run_waldump(bin, &args);
    assert!(
        out.status.success(),
        "pg_waldump {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |line: &str, key: &str| -> String {
        let at = line
            .find(key)
            .unwrap_or_else(|| panic!("no {key:?} in {line:?}"))
            + key.len();
        line[at..].split(',').next().unwrap().trim().to_string()
    };
    text.lines()
        .filter(|l| l.starts_with("rmgr:"))
        .map(|l| {
            let rmgr = l["rmgr:".len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .to_string();
            let lens = field(l, "len (rec/tot):");
            let (rec, tot) = lens.split_once('/').unwrap();
            (
                parse_lsn(&field(l, " lsn:")).unwrap(),
                parse_lsn(&field(l, " prev")).unwrap(),
                rmgr,
                rec.trim().parse().unwrap(),
                tot.trim().parse().unwrap(),
            )
        })
        .collect()
}

fn compare_records(ours: &[Rec], theirs: &[(u64, u64, String, u64, u64)], what: &str) {
    for (i, (r, t)) in ours.iter().zip(theirs).enumerate() {
        let mine = (
            r.lsn,
            r.prev,
            RMGR_NAMES[r.rmid as usize].to_string(),
            u64::from(r.tot - r.fpi),
            u64::from(r.tot),
        );
        assert!(
            mine == *t,
            "{what}: record #{i}: ours {mine:?}, pg_waldump {t:?}"
        );
    }
    assert_eq!(
        ours.len(),
        theirs.len(),
        "{what}: record count, ours vs pg_waldump"
    );
}

fn compare_stats(ours: &Stats, theirs: &Stats, what: &str) {
    for (name, v) in theirs {
        let mine = ours.get(name).copied().unwrap_or_default();
        assert_eq!(
            mine, *v,
            "{what}: {name} (count, record bytes, FPI bytes): ours vs pg_waldump"
        );
    }
    for (name, v) in ours {
        assert!(
            theirs.contains_key(name),
            "{what}: pg_waldump has no row for {name} {v:?}"
        );
    }
}

/// A small workload touching most resource managers (heap, btree, hash, gin, gist, spgist,
/// brin, sequence, storage, standby, transaction with a subtransaction) with a checkpoint in
/// the middle, so that full-page images follow.
async fn workload(c: &Client) {
    for sql in [
        "CREATE TABLE w (id int PRIMARY KEY, t text, a int[], r int4range, p point)",
        "INSERT INTO w SELECT g, md5(g::text), ARRAY[g, g % 7], int4range(g, g + 10), \
         point(g, g % 13) FROM generate_series(1, 3000) g",
        "CREATE INDEX w_hash ON w USING hash (id)",
        "CREATE INDEX w_gin ON w USING gin (a)",
        "CREATE INDEX w_gist ON w USING gist (r)",
        "CREATE INDEX w_spgist ON w USING spgist (p)",
        "CREATE INDEX w_brin ON w USING brin (id)",
        "CHECKPOINT",
        "UPDATE w SET t = t || 'u', a = a || 1 WHERE id % 4 = 0",
        "DELETE FROM w WHERE id % 9 = 0",
        "VACUUM w",
        "CREATE SEQUENCE w_seq",
        "SELECT nextval('w_seq') FROM generate_series(1, 40)",
        "BEGIN; INSERT INTO w VALUES (100001, 'a'); SAVEPOINT s1; \
         INSERT INTO w VALUES (100002, 'b'); ROLLBACK TO s1; COMMIT",
        "TRUNCATE w",
        "DROP TABLE w",
    ] {
        rows(c, sql).await;
    }
}

async fn system_id(c: &Client) -> u64 {
    rows(c, "SELECT system_identifier::text FROM pg_control_system()").await[0]
        .parse()
        .unwrap()
}

// ---------------------------------------------------------------------------------------------
// Items 1-8 on 1 MB segments.

async fn edges(major: Major) {
    if require_major(major).is_none() {
        return;
    }
    let t0 = Instant::now();
    let g = Geo { seg: 1 << 20 };
    let pg = builder(major, 1).start().unwrap();
    let c = pg.client().await;
    let mut rng = Rng::new(u64::from(major.number()));

    // ---- Write the edge cases. ----
    let s0 = switch(&c, g).await;

    // 1. A 20 kB message over three pages or more.
    let p1 = rng.hex(20_000);
    rows(&c, &emit_sql("p1", &p1)).await;
    // Record headers split across a page boundary: 16 and 8 bytes before the page end.
    let h16 = rng.hex(1000);
    let (h16_at, _) = place(
        &c,
        g,
        "h16",
        |p| target(g, p, PAGE, |b| b - 16),
        &emit_sql("h16", &h16),
        msg_tot("h16", 1000),
    )
    .await;
    let h8 = rng.hex(1000);
    let (h8_at, _) = place(
        &c,
        g,
        "h8",
        |p| target(g, p, PAGE, |b| b - 8),
        &emit_sql("h8", &h8),
        msg_tot("h8", 1000),
    )
    .await;
    // A record that ends exactly at a page end (its length is a multiple of 8).
    let pe = rng.hex(504);
    let pe_tot = msg_tot("pe", 504);
    assert_eq!(pe_tot % 8, 0);
    let (pe_at, _) = place(
        &c,
        g,
        "pe",
        |p| target(g, p, PAGE, |b| g.rec_ptr(g.byte_pos(b) - pe_tot)),
        &emit_sql("pe", &pe),
        pe_tot,
    )
    .await;
    // A two-page record that ends exactly at a page end: that page is wholly continuation
    // (xlp_rem_len == the page's payload) and the next one starts with a record.
    let pe2 = rng.hex(8943);
    let pe2_tot = msg_tot("pe2", 8943);
    assert_eq!(pe2_tot, 9000);
    let (pe2_at, _) = place(
        &c,
        g,
        "pe2",
        |p| target(g, p, PAGE, |b| g.rec_ptr(g.byte_pos(b) - pe2_tot)),
        &emit_sql("pe2", &pe2),
        pe2_tot,
    )
    .await;

    // 2. A record across a segment boundary, and a record header split across one.
    let sx = rng.hex(10_000);
    let (sx_at, _) = place(
        &c,
        g,
        "sx",
        |p| target(g, p, g.seg, |b| b - 4000),
        &emit_sql("sx", &sx),
        msg_tot("sx", 10_000),
    )
    .await;
    let sh = rng.hex(2000);
    let (sh_at, _) = place(
        &c,
        g,
        "sh",
        |p| target(g, p, g.seg, |b| b - 16),
        &emit_sql("sh", &sh),
        msg_tot("sh", 2000),
    )
    .await;

    // 3. A 3 MB record: longer than three 1 MB segments.
    let big = rng.hex(3 << 20);
    rows(&c, &emit_sql("big", &big)).await;

    // 4. XLOG_SWITCH ending exactly at a (mid-segment) page boundary, then exactly at a
    //    segment end; each followed by a marker in the next segment.
    let (swp_at, swp_ret) = place(
        &c,
        g,
        "switch@page",
        |p| target(g, p, PAGE, |b| b - 24),
        "SELECT pg_switch_wal()::text",
        24,
    )
    .await;
    rows(&c, &emit_sql("after_swp", "m")).await;
    let (sws_at, sws_ret) = place(
        &c,
        g,
        "switch@seg",
        |p| target(g, p, g.seg, |b| b - 24),
        "SELECT pg_switch_wal()::text",
        24,
    )
    .await;
    rows(&c, &emit_sql("after_sws", "m")).await;
    // What pg_switch_wal() returns: the end of the switch record, moved past the next page's
    // header when it ends exactly at a page boundary.
    assert_eq!(
        swp_ret,
        swp_at + 24 + SHORT_PHD,
        "pg_switch_wal() result for the page case"
    );
    assert_eq!(
        sws_ret,
        sws_at + 24 + LONG_PHD,
        "pg_switch_wal() result for the segment case"
    );

    // 6. Ordinary WAL for the statistics comparison.
    workload(&c).await;
    let e = switch(&c, g).await;
    let t_write = t0.elapsed();

    // ---- Decode everything, two ways. ----
    let snap = snapshot(&pg, g, "snap", g.segno(s0), g.segno(e) - 1);
    let (full, how) = read_dir(g, &snap, s0, Some(e), None);
    assert_eq!(how.unwrap(), ReadEnd::ReachedEnd);
    assert!(full.len() > 1000, "only {} records", full.len());
    assert_eq!(full[0].lsn, s0 + LONG_PHD, "first record of the range");
    assert!(full.last().unwrap().is_switch() && full.last().unwrap().end == e);
    assert_chain(g, &full);
    let wal = Wal::load(g, &snap, g.segno(s0), g.segno(e) - 1);
    let segs = wal.segments();
    let whole = decode_bufs(g.cfg(), s0, &segs, |n| n);
    assert!(
        whole.err.is_none(),
        "whole-segment decoding failed: {:?}",
        whole.err
    );
    assert_same(&whole.recs, &full, "whole segments vs read_range");
    shared_parts_match(g, &snap, s0, e, &full);
    reader_chunks_match(g, &snap, s0, e, &full);

    // ---- 1. Records split across pages. ----
    let r = find_msg(&full, "p1");
    assert_eq!(r.message().unwrap().1, p1.as_bytes(), "p1 payload");
    assert_eq!(u64::from(r.tot), msg_tot("p1", 20_000));
    assert_eq!(record_crc(&r.bytes), r.crc);
    assert!(
        page_of(g.raw_end(r) - 1) >= page_of(r.lsn) + 2,
        "p1 {r:?} spans 3+ pages"
    );
    for (prefix, text, at, back) in [("h16", &h16, h16_at, 16), ("h8", &h8, h8_at, 8)] {
        let r = find_msg(&full, prefix);
        assert_eq!(r.lsn, at);
        assert_eq!(
            r.lsn % PAGE,
            PAGE - back,
            "{prefix}: header split {back} bytes before the page end"
        );
        assert_eq!(u64::from(r.tot), msg_tot(prefix, 1000));
        assert_eq!(r.message().unwrap().1, text.as_bytes(), "{prefix} payload");
    }
    let r = find_msg(&full, "pe");
    assert_eq!(r.lsn, pe_at);
    assert_eq!(r.message().unwrap().1, pe.as_bytes());
    let pe_end = g.raw_end(r);
    assert_eq!(pe_end % PAGE, 0, "pe ends exactly at a page end");
    assert_eq!(r.end, pe_end);
    assert_eq!(full[index_of(&full, pe_at) + 1].lsn, pe_end + SHORT_PHD);
    let r = find_msg(&full, "pe2");
    assert_eq!(r.lsn, pe2_at);
    assert_eq!(r.message().unwrap().1, pe2.as_bytes());
    let pe2_end = g.raw_end(r);
    assert_eq!(
        (pe2_end % PAGE, page_of(pe2_end - 1)),
        (0, page_of(r.lsn) + 1),
        "pe2 {r:?}"
    );
    let h = PageHeader::parse(&wal.data[(pe2_end - PAGE - wal.base) as usize..]).unwrap();
    assert!(
        h.is_contrecord() && u64::from(h.rem_len) == PAGE - SHORT_PHD,
        "{h:?}"
    );
    assert_eq!(full[index_of(&full, pe2_at) + 1].lsn, pe2_end + SHORT_PHD);

    // ---- 2. Across a segment boundary. ----
    let r = find_msg(&full, "sx");
    assert_eq!(r.lsn, sx_at);
    assert_eq!(r.message().unwrap().1, sx.as_bytes());
    let sx_end = g.raw_end(r);
    assert_eq!(
        g.segno(sx_end - 1),
        g.segno(r.lsn) + 1,
        "sx crosses into the next segment"
    );
    let next_seg = g.segno(sx_end) * g.seg;
    let h = PageHeader::parse(wal.segment(g.segno(next_seg))).unwrap();
    assert_eq!(
        h.info & (XLP_LONG_HEADER | XLP_FIRST_IS_CONTRECORD),
        XLP_LONG_HEADER | XLP_FIRST_IS_CONTRECORD
    );
    assert_eq!(
        u64::from(h.rem_len),
        g.byte_pos(sx_end) - g.byte_pos(next_seg),
        "xlp_rem_len"
    );
    let r = find_msg(&full, "sh");
    assert_eq!(
        (r.lsn, r.lsn % g.seg),
        (sh_at, g.seg - 16),
        "sh header split across segments"
    );
    assert_eq!(r.message().unwrap().1, sh.as_bytes());

    // ---- 3. Longer than a segment. ----
    let bigr = find_msg(&full, "big");
    assert_eq!(u64::from(bigr.tot), msg_tot("big", 3 << 20));
    assert!(
        g.segno(g.raw_end(bigr) - 1) >= g.segno(bigr.lsn) + 3,
        "big spans 4+ segments"
    );
    assert!(
        bigr.message().unwrap().1 == big.as_bytes(),
        "3 MB payload differs"
    );

    // ---- 4. Switch records ending at a page boundary / at a segment end. ----
    for (what, at) in [("page", swp_at), ("segment", sws_at)] {
        let i = index_of(&full, at);
        let sw = &full[i];
        assert!(sw.is_switch() && sw.tot == 24, "switch@{what}: {sw:?}");
        assert_eq!(
            (sw.lsn + 24) % PAGE,
            0,
            "switch@{what} ends at a page boundary"
        );
        let seg_end = g.seg_start(sw.lsn) + g.seg;
        if what == "segment" {
            assert_eq!(sw.lsn + 24, seg_end);
        } else {
            assert_ne!(sw.lsn + 24, seg_end);
        }
        assert_eq!(sw.end, seg_end, "switch@{what} end_lsn");
        let next = &full[i + 1];
        assert_eq!(
            (next.lsn, next.prev),
            (seg_end + LONG_PHD, sw.lsn),
            "after switch@{what}"
        );
        let marker = find_msg(
            &full,
            if what == "page" {
                "after_swp"
            } else {
                "after_sws"
            },
        );
        assert_eq!(g.segno(marker.lsn), g.segno(seg_end));
    }

    // ---- 6. Statistics against pg_waldump --stats. ----
    let waldump = reference_waldump(major);
    if let Some(bin) = &waldump {
        compare_stats(
            &our_stats(&full),
            &waldump_stats(bin, &snap, s0, e),
            &format!("pg{major} 1MB"),
        );
        compare_records(
            &full,
            &waldump_records(bin, &snap, s0, e),
            &format!("pg{major} 1MB"),
        );
    }
    let t_decode = t0.elapsed();

    // ---- 5. Starting in the middle. ----
    let p1r = find_msg(&full, "p1");
    let h16r = find_msg(&full, "h16");
    let sxr = find_msg(&full, "sx");
    let starts = [
        ("inside p1", p1r.lsn + 100),
        ("page wholly inside p1", page_of(p1r.lsn) * PAGE + PAGE),
        ("page where p1 ends", page_of(g.raw_end(p1r) - 1) * PAGE),
        ("page with the rest of h16's header", h16r.lsn + 16),
        ("segment where sx ends", g.seg_start(g.raw_end(sxr) - 1)),
        ("inside big, 1.5 MB in", bigr.lsn + 1_500_000),
        ("segment where big ends", g.seg_start(g.raw_end(bigr) - 1)),
        ("exactly at pe", pe_at),
        (
            "inside p1's tail, on its last page",
            page_of(g.raw_end(p1r) - 1) * PAGE + 40,
        ),
        (
            "page wholly taken by pe2's end",
            page_of(pe2_at) * PAGE + PAGE,
        ),
        ("inside pe2's tail", page_of(pe2_at) * PAGE + PAGE + 4000),
        ("inside the switch@page record", swp_at + 8),
        ("1 byte before s0's first record", s0 + LONG_PHD - 1),
    ];
    for (what, start) in starts {
        let i = full.iter().position(|r| r.lsn >= start).unwrap();
        // read_range, first record only.
        let (first, how) = read_dir(g, &snap, start, Some(e), Some(1));
        assert_eq!(how.unwrap(), ReadEnd::Stopped, "{what}");
        assert_eq!(
            first[0],
            full[i],
            "{what}: read_range from {}",
            lsn_text(start)
        );
        // The decoder from the page holding `start`, to the end: the same records as `full`.
        let d = decode_bufs(g.cfg(), start, &[wal.tail_from_page(start)], |n| n);
        assert!(d.err.is_none(), "{what}: {:?}", d.err);
        assert_same(
            &d.recs,
            &full[i..],
            &format!("{what}: decoding from {}", lsn_text(start)),
        );
        if let Some(bin) = &waldump {
            let theirs = waldump_first(bin, &snap, start)
                .unwrap_or_else(|e| panic!("{what}: pg_waldump -s {}: {e}", lsn_text(start)));
            assert_eq!(
                lsn_text(theirs),
                lsn_text(full[i].lsn),
                "{what}: pg_waldump's first record"
            );
        }
    }
    // The dead space after switch@page: pages with headers but no records. Like pg_waldump,
    // which finds no record there, the decoder stops with an end-of-WAL error.
    let dead = swp_at + 24;
    let d = decode_bufs(g.cfg(), dead, &[wal.tail_from_page(dead)], |n| n);
    let err = d
        .err
        .expect("a start in the dead space after a switch finds no record");
    assert!(err.is_end_of_wal() && d.recs.is_empty(), "{err:?}");
    let (none, how) = read_dir(g, &snap, dead, Some(e), None);
    assert!(
        none.is_empty() && matches!(how, Ok(ReadEnd::EndOfWal { .. })),
        "{how:?}"
    );
    if let Some(bin) = &waldump {
        let out = waldump_first(bin, &snap, dead);
        assert!(
            out.is_err(),
            "pg_waldump found a record in the dead space: {out:?}"
        );
    }

    // ---- 7. Random piece sizes. ----
    for seed in [1, 2, 3] {
        let mut prng = Rng::new(seed * 1000 + u64::from(major.number()));
        let d = decode_bufs(g.cfg(), s0, &[&wal.data], |_| prng.piece());
        assert!(d.err.is_none(), "seed {seed}: {:?}", d.err);
        assert_same(&d.recs, &full, &format!("random pieces, seed {seed}"));
    }
    let mid = p1r.lsn + 100;
    let i = full.iter().position(|r| r.lsn >= mid).unwrap();
    let mut prng = Rng::new(77);
    let d = decode_bufs(g.cfg(), mid, &[wal.tail_from_page(mid)], |_| prng.piece());
    assert_same(&d.recs, &full[i..], "random pieces from inside p1");
    // 1-3 byte pieces over the crafted regions: split headers, a record ending at a page end,
    // the segment crossings.
    let sxr_end = g.raw_end(sxr);
    let shr = find_msg(&full, "sh");
    let regions = [
        (
            "s0 to after pe2",
            s0,
            page_of(g.raw_end(find_msg(&full, "pe2"))) * PAGE + PAGE,
        ),
        (
            "sx's crossing",
            page_of(sxr.lsn) * PAGE,
            page_of(sxr_end) * PAGE + PAGE,
        ),
        (
            "sh's crossing",
            page_of(shr.lsn) * PAGE,
            page_of(g.raw_end(shr)) * PAGE + PAGE,
        ),
    ];
    for (k, (what, from, to)) in regions.into_iter().enumerate() {
        let mut tiny = Rng::new(5 + k as u64);
        let bytes = &wal.data[(from - wal.base) as usize..(to - wal.base) as usize];
        let d = decode_bufs(g.cfg(), from, &[bytes], |_| 1 + tiny.below(3) as usize);
        assert!(d.err.is_none(), "{what}: {:?}", d.err);
        let want: Vec<Rec> = full
            .iter()
            .filter(|r| r.lsn >= from && g.raw_end(r) <= to)
            .cloned()
            .collect();
        assert!(!want.is_empty(), "{what}");
        assert_same(&d.recs, &want, &format!("1-3 byte pieces over {what}"));
    }
    let t_mid = t0.elapsed();

    // ---- 8. Corruption vs end of WAL. ----
    corruption(&pg, &c, g, &full, &wal, &snap, s0, e, major).await;

    eprintln!(
        "pg{major} edges: {} records, {} MB of WAL; write {:.1}s, decode+stats {:.1}s, \
         mid-starts+pieces {:.1}s, total {:.1}s",
        full.len(),
        (e - s0) >> 20,
        t_write.as_secs_f64(),
        (t_decode - t_write).as_secs_f64(),
        (t_mid - t_decode).as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

/// Item 8: the end of written WAL, flipped bytes, a foreign segment, truncated files.
#[allow(clippy::too_many_arguments)]
async fn corruption(
    pg: &Cluster,
    c: &Client,
    g: Geo,
    full: &[Rec],
    wal: &Wal,
    snap: &Path,
    s0: u64,
    e: u64,
    major: Major,
) {
    // (a) The end of written WAL in the current segment: zeros after the last record.
    rows(c, "CREATE TABLE tail_probe (i int)").await;
    rows(c, "INSERT INTO tail_probe VALUES (1)").await; // commits, so flushes
    let flushed = lsn_of(c, "SELECT pg_current_wal_flush_lsn()").await;
    let cur = g.segno(flushed);
    let bytes = fs::read(pg.pg_wal_dir().join(g.file_name(cur))).unwrap();
    let d = decode_bufs(g.cfg(), cur * g.seg, &[&bytes], |n| n);
    let err = d.err.clone().expect("the live segment ends somewhere");
    assert!(err.is_end_of_wal(), "end of the live segment: {err:?}");
    assert_eq!(
        Some(err.lsn.0),
        d.last_end,
        "end-of-WAL error at the end of the last record"
    );
    assert!(
        err.lsn.0 >= flushed,
        "{err:?} before the flush position {}",
        lsn_text(flushed)
    );
    assert!(
        d.recs.iter().any(|r| r.rmid == RM_TRANSACTION),
        "the commit was decoded"
    );
    if err.lsn.0 % PAGE != 0 {
        assert_eq!(err.kind, WalErrorKind::InvalidRecordLength { got: 0 });
        let off = (err.lsn.0 % g.seg) as usize;
        assert_eq!(
            &bytes[off..off + 4],
            &[0; 4],
            "zeros at the end of written WAL"
        );
    }
    let live = make_dir(
        pg.temp_dir(),
        "live",
        vec![(g.file_name(cur), Err(bytes.clone()))],
    );
    let (recs, how) = read_dir(g, &live, cur * g.seg, None, None);
    assert_same(&recs, &d.recs, "read_range over the live segment");
    match how.unwrap() {
        ReadEnd::EndOfWal {
            at,
            reason: Some(r),
            missing: None,
        } => {
            assert_eq!((at, &r), (err.lsn, &err));
        }
        other => panic!("live segment: {other:?}"),
    }

    // (b) A flipped byte inside a record: BadCrc naming the record, wherever the byte is.
    let p1 = find_msg(full, "p1");
    let pe = find_msg(full, "pe");
    let big = find_msg(full, "big");
    let cases = [
        ("pe, single page", pe, u64::from(pe.tot) / 2),
        ("p1, its last page", p1, u64::from(p1.tot) - 10),
        ("big, its first segment", big, 100),
        ("big, its last segment", big, u64::from(big.tot) - 100),
    ];
    for (what, r, k) in cases {
        let at = g.byte_at(r, k);
        let mut data = wal.data.clone();
        data[(at - wal.base) as usize] ^= 0x01;
        let d = decode_bufs(g.cfg(), s0, &[&data], |n| n);
        let err = d
            .err
            .unwrap_or_else(|| panic!("{what}: flipped byte at {} not detected", lsn_text(at)));
        assert_eq!(err.lsn.0, r.lsn, "{what}: error LSN ({err})");
        assert!(
            matches!(err.kind, WalErrorKind::BadCrc { stored, computed } if stored == r.crc && computed != r.crc),
            "{what}: {err:?}"
        );
        assert!(
            !err.is_end_of_wal(),
            "{what}: corruption taken for end of WAL"
        );
        let i = index_of(full, r.lsn);
        assert_same(
            &d.recs,
            &full[..i],
            &format!("{what}: records before the damage"),
        );
    }
    // Through read_range, in a directory: a Corrupt error naming the record.
    let at = g.byte_at(p1, u64::from(p1.tot) - 10);
    let bad_seg = g.segno(at);
    let mut seg_bytes = wal.segment(bad_seg).to_vec();
    seg_bytes[(at % g.seg) as usize] ^= 0x80;
    let files = (g.segno(s0)..g.segno(e))
        .map(|s| {
            let f = g.file_name(s);
            let src = if s == bad_seg {
                Err(seg_bytes.clone())
            } else {
                Ok(snap.join(&f))
            };
            (f, src)
        })
        .collect();
    let flipped = make_dir(pg.temp_dir(), "flipped", files);
    let (recs, how) = read_dir(g, &flipped, s0, Some(e), None);
    match how {
        Err(SourceError::Corrupt { path, error }) => {
            assert_eq!(error.lsn.0, p1.lsn);
            assert!(
                matches!(error.kind, WalErrorKind::BadCrc { .. }),
                "{error:?}"
            );
            assert_eq!(path, flipped.join(g.file_name(bad_seg)));
        }
        other => panic!("flipped byte through read_range: {other:?}"),
    }
    assert_same(
        &recs,
        &full[..index_of(full, p1.lsn)],
        "read_range before the flipped byte",
    );

    // (c) A segment of another cluster (same major, same segment size, same file name and page
    //     addresses) spliced in after the first segment: SystemIdMismatch at its first page.
    let other = builder(major, 1).start().unwrap();
    let oc = other.client().await;
    let n = g.segno(s0);
    while g.segno(insert_lsn(&oc).await) < n + 2 {
        switch(&oc, g).await;
    }
    let foreign = fs::read(other.pg_wal_dir().join(g.file_name(n + 1))).unwrap();
    let fh = PageHeader::parse(&foreign).unwrap();
    assert_eq!(
        fh.pageaddr.0,
        (n + 1) * g.seg,
        "the foreign segment has the right address"
    );
    let (ours_id, their_id) = (system_id(c).await, system_id(&oc).await);
    assert_ne!(ours_id, their_id);
    assert_eq!(fh.long.unwrap().sysid, their_id);
    let spliced = make_dir(
        pg.temp_dir(),
        "spliced",
        vec![
            (g.file_name(n), Ok(snap.join(g.file_name(n)))),
            (g.file_name(n + 1), Err(foreign.clone())),
        ],
    );
    drop(oc);
    drop(other);
    let (recs, how) = read_dir(g, &spliced, s0, None, None);
    match how {
        Err(SourceError::Corrupt { path, error }) => {
            assert_eq!(error.lsn.0, (n + 1) * g.seg, "{error}");
            assert_eq!(
                error.kind,
                WalErrorKind::SystemIdMismatch {
                    found: their_id,
                    expected: ours_id
                }
            );
            assert!(!error.is_end_of_wal());
            assert_eq!(path, spliced.join(g.file_name(n + 1)));
        }
        other => panic!("spliced segment: {other:?}"),
    }
    let boundary = (n + 1) * g.seg;
    let before: Vec<Rec> = full
        .iter()
        .filter(|r| g.raw_end(r) <= boundary)
        .cloned()
        .collect();
    assert_same(&recs, &before, "records before the foreign segment");
    // A configured system id is checked on the very first page.
    let cfg = g.cfg().with_system_id(Some(ours_id)).with_block_refs(true);
    let d = decode_bufs(cfg, boundary, &[&foreign], |n| n);
    assert_eq!(
        d.err.map(|e| (e.lsn.0, e.kind)),
        Some((
            boundary,
            WalErrorKind::SystemIdMismatch {
                found: their_id,
                expected: ours_id
            }
        ))
    );

    // (d) Truncated segment files. A `.partial` file (what a receiver leaves while a segment is
    //     being written) ends cleanly, with EndOfWal exactly where the bytes stop and every
    //     record complete before that point. A short file named as a complete segment is
    //     `WrongSize` (PostgreSQL refuses short segments too), after the records of the
    //     complete files before it. Neither panics.
    let h16 = find_msg(full, "h16");
    let sx = find_msg(full, "sx");
    let cuts = [
        ("inside h16's first header fragment", h16.lsn + 10),
        ("at the page boundary inside h16's header", h16.lsn + 16),
        (
            "inside the page header after h16's first fragment",
            h16.lsn + 16 + 10,
        ),
        (
            "inside h16's header, after the page header",
            h16.lsn + 16 + 24 + 4,
        ),
        ("right after pe (a page boundary)", g.raw_end(pe)),
        ("inside p1's continuation", p1.lsn + 9000),
        (
            "one byte short of a segment in which sx begins",
            g.seg_start(sx.lsn) + g.seg - 1,
        ),
        ("empty file where sx continues", g.seg_start(sx.lsn) + g.seg),
        (
            "inside the long header where sx continues",
            g.seg_start(sx.lsn) + g.seg + 30,
        ),
        ("inside big's third segment", big.lsn + 2_500_000),
    ];
    for (k, (what, cut)) in cuts.into_iter().enumerate() {
        let last = g.segno(cut);
        let cut_bytes = wal.segment(last)[..(cut % g.seg) as usize].to_vec();
        let earlier = || -> Vec<(String, Result<PathBuf, Vec<u8>>)> {
            (g.segno(s0)..last)
                .map(|s| (g.file_name(s), Ok(snap.join(g.file_name(s)))))
                .collect()
        };
        let want: Vec<Rec> = full
            .iter()
            .filter(|r| g.raw_end(r) <= cut)
            .cloned()
            .collect();
        let pending = full.iter().find(|r| r.lsn < cut && g.raw_end(r) > cut);
        let want_at = pending.map_or_else(|| want.last().map_or(s0, |r| r.end), |r| r.lsn);

        let mut files = earlier();
        files.push((
            format!("{}.partial", g.file_name(last)),
            Err(cut_bytes.clone()),
        ));
        let dir = make_dir(pg.temp_dir(), &format!("cut{k}p"), files);
        let (recs, how) = read_dir(g, &dir, s0, None, None);
        assert_same(
            &recs,
            &want,
            &format!("{what}: records before the cut at {}", lsn_text(cut)),
        );
        match how {
            Ok(ReadEnd::EndOfWal {
                at,
                reason: None,
                missing: None,
            }) => {
                assert_eq!(lsn_text(at.0), lsn_text(want_at), "{what}: where WAL ends")
            }
            other => panic!("{what}: .partial truncated at {}: {other:?}", lsn_text(cut)),
        }

        let mut files = earlier();
        files.push((g.file_name(last), Err(cut_bytes)));
        let dir = make_dir(pg.temp_dir(), &format!("cut{k}"), files);
        let (recs, how) = read_dir(g, &dir, s0, None, None);
        let before = last * g.seg;
        let want_plain: Vec<Rec> = full
            .iter()
            .filter(|r| g.raw_end(r) <= before)
            .cloned()
            .collect();
        assert_same(
            &recs,
            &want_plain,
            &format!("{what}: records before the short file"),
        );
        match how {
            Err(SourceError::WrongSize {
                path,
                size,
                expected,
            }) => {
                assert_eq!(
                    (path, size, expected),
                    (dir.join(g.file_name(last)), cut % g.seg, g.seg)
                )
            }
            other => panic!("{what}: segment truncated at {}: {other:?}", lsn_text(cut)),
        }

        // The bare decoder given the same bytes: no error, the same records, and the cut-off
        // record (if any) reported as pending.
        let d = decode_bufs(
            g.cfg(),
            s0,
            &[&wal.data[..(cut - wal.base) as usize]],
            |n| n,
        );
        assert!(d.err.is_none(), "{what}: {:?}", d.err);
        assert_same(&d.recs, &want, &format!("{what}: decoder before the cut"));
        assert_eq!(d.pending, pending.map(|r| r.lsn), "{what}: pending record");
        assert_eq!(
            d.pending.or(d.last_end),
            Some(want_at),
            "{what}: decoder's end"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Item 6 with 16 MB and 64 MB segments.

async fn segment_sizes(major: Major) {
    if require_major(major).is_none() {
        return;
    }
    for mb in [16u32, 64] {
        let t0 = Instant::now();
        let g = Geo {
            seg: u64::from(mb) << 20,
        };
        let mut b = builder(major, mb);
        if mb == 16 {
            b = b.set("wal_compression", "on"); // compressed full-page images
        }
        let pg = b.start().unwrap();
        let c = pg.client().await;
        let s0 = switch(&c, g).await;
        workload(&c).await;
        // With 16 MB segments, pad (server-side, with repeat()) to 4000 bytes before the
        // segment end and write a 20 kB message across it. (With 64 MB segments that padding
        // costs 15+ s on two cores; segment crossings are covered at 1 and 16 MB.)
        let mut rng = Rng::new(u64::from(mb));
        let text = rng.hex(20_000);
        let cross = mb == 16;
        let at = if cross {
            place(
                &c,
                g,
                "m20k",
                |p| target(g, p, g.seg, |b| b - 4000),
                &emit_sql("m20k", &text),
                msg_tot("m20k", 20_000),
            )
            .await
            .0
        } else {
            let end = lsn_of(&c, &emit_sql("m20k", &text)).await;
            g.rec_ptr(g.byte_pos(end) - msg_tot("m20k", 20_000).next_multiple_of(8))
        };
        let e = switch(&c, g).await;
        let snap = snapshot(&pg, g, "snap", g.segno(s0), g.segno(e) - 1);
        let (full, how) = read_dir(g, &snap, s0, Some(e), None);
        assert_eq!(how.unwrap(), ReadEnd::ReachedEnd);
        assert!(full.len() > 1000, "only {} records", full.len());
        assert_eq!(full[0].lsn, s0 + LONG_PHD);
        assert_chain(g, &full);
        assert!(
            full.iter().any(|r| r.fpi > 0),
            "the workload wrote full-page images"
        );
        let r = find_msg(&full, "m20k");
        assert_eq!((r.lsn, r.message().unwrap().1), (at, text.as_bytes()));
        if cross {
            assert_eq!(
                g.segno(g.raw_end(r) - 1),
                g.segno(r.lsn) + 1,
                "m20k crosses a segment boundary"
            );
        }
        // The same with the decoder fed whole memory-mapped segments.
        let files: Vec<_> = (g.segno(s0)..g.segno(e))
            .map(|s| pgwal::source::read_wal_file(&snap.join(g.file_name(s))).unwrap())
            .collect();
        let bufs: Vec<&[u8]> = files.iter().map(|f| &f[..]).collect();
        let d = decode_bufs(g.cfg(), s0, &bufs, |n| n);
        assert!(d.err.is_none(), "{:?}", d.err);
        assert_same(
            &d.recs,
            &full,
            &format!("{mb} MB: whole segments vs read_range"),
        );
        // And as `dump -j` reads it: in parts, through shared mappings given back as it goes
        // (segments of 64 MB in two halves).
        shared_parts_match(g, &snap, s0, e, &full);
        reader_chunks_match(g, &snap, s0, e, &full);
        if let Some(bin) = reference_waldump(major) {
            let theirs = waldump_stats(&bin, &snap, s0, e);
            compare_stats(&our_stats(&full), &theirs, &format!("pg{major} {mb}MB"));
            compare_records(
                &full,
                &waldump_records(&bin, &snap, s0, e),
                &format!("pg{major} {mb}MB"),
            );
        }
        eprintln!(
            "pg{major} {mb} MB segments: {} records over {} segment(s), {:.1}s",
            full.len(),
            g.segno(e) - g.segno(s0),
            t0.elapsed().as_secs_f64()
        );
    }
}

macro_rules! per_major {
    ($($edges:ident, $sizes:ident => $major:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $edges() {
            edges($major).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $sizes() {
            segment_sizes($major).await;
        }
    )*};
}

per_major! {
    pg13_edges, pg13_segment_sizes => Major::V13;
    pg14_edges, pg14_segment_sizes => Major::V14;
    pg15_edges, pg15_segment_sizes => Major::V15;
    pg16_edges, pg16_segment_sizes => Major::V16;
    pg17_edges, pg17_segment_sizes => Major::V17;
    pg18_edges, pg18_segment_sizes => Major::V18;
    pg19_edges, pg19_segment_sizes => Major::V19;
}
