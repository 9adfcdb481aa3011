#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use super::*;
use crate::reader::ReaderBuilder;

/// Every major in `testdata/wal`: 1 MB segments of 8 kB pages, each ending with an
/// `XLOG_SWITCH` (pg18 and pg19: two segments).
const MAJORS: [&str; 7] = ["pg13", "pg14", "pg15", "pg16", "pg17", "pg18", "pg19"];

const PAGE: u64 = 8192;
const SEG: u64 = 1 << 20;

fn testdata(major: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/wal")
        .join(major)
}

/// What is compared of a record: its LSN, length, resource manager and info.
type Rec = (Lsn, u32, u8, u8);

fn rec_of(rec: &Record<'_>) -> Rec {
    (rec.lsn(), rec.total_len(), rec.rmid(), rec.info())
}

/// How a read ended, comparable: errors by their message and `Debug` form (file and LSN).
fn ended(end: Result<ReadEnd, ReaderError>) -> Result<ReadEnd, String> {
    end.map_err(|e| format!("{e} / {e:?}"))
}

/// The records and end `for_each` gives, on one thread.
fn one_thread(b: ReaderBuilder, dir: &Path) -> (Vec<Rec>, Result<ReadEnd, String>) {
    let mut r = b.open(dir).unwrap();
    let mut v = Vec::new();
    let end = r.for_each(|rec| {
        v.push(rec_of(rec));
        ControlFlow::Continue(())
    });
    (v, ended(end))
}

/// Collects each chunk's records.
struct Collect;

impl ChunkWork for Collect {
    type Part = Vec<Rec>;
    fn part(&self) -> Vec<Rec> {
        Vec::new()
    }
    fn clear(&self, part: &mut Vec<Rec>) {
        part.clear();
    }
    fn record(&self, part: &mut Vec<Rec>, rec: &Record<'_>) -> ControlFlow<()> {
        part.push(rec_of(rec));
        ControlFlow::Continue(())
    }
}

/// The records and end `for_each_chunk` gives with `jobs` and `chunk` bytes, and the
/// handovers.
fn chunked(
    b: ReaderBuilder,
    dir: &Path,
    jobs: usize,
    chunk: u64,
) -> (Vec<Rec>, Result<ReadEnd, String>, Vec<Handover>) {
    let r = b.jobs(jobs).chunk_size(chunk).open(dir).unwrap();
    let mut v = Vec::new();
    let mut hs = Vec::new();
    let end = r.for_each_chunk(&Collect, |part, h| {
        v.append(part);
        hs.push(h);
        ControlFlow::Continue(())
    });
    (v, ended(end), hs)
}

/// Chunk sizes: every page a chunk (records cross joins often), three pages, a whole segment,
/// the default.
const CHUNKS: [u64; 4] = [PAGE, 3 * PAGE, SEG, DEFAULT_CHUNK_BYTES];

#[test]
fn chunks_give_the_records_of_one_thread_for_every_major() {
    for major in MAJORS {
        let dir = testdata(major);
        let (want, want_end) = one_thread(WalReader::builder(), &dir);
        assert!(want.len() > 1000, "{major}");
        // What the joins of one-page chunks cut through, checked to be in the data: a record
        // split across pages, an XLOG_SWITCH (whose zeroed tail chunks start in), and in the
        // two-segment samples a record split across the segments.
        let ends: Vec<u64> = {
            let mut r = WalReader::open(dir.as_path()).unwrap();
            let mut e = Vec::new();
            r.for_each(|rec| {
                e.push(rec.end_lsn().0);
                ControlFlow::Continue(())
            })
            .unwrap();
            e
        };
        let crosses = |unit: u64| {
            want.iter()
                .zip(&ends)
                .any(|(r, &e)| r.0 .0 / unit != (e - 1) / unit && e % unit != 0)
        };
        assert!(crosses(PAGE), "{major}: no record across a page");
        let switches = want
            .iter()
            .filter(|r| r.2 == 0 && r.3 & 0xF0 == 0x40)
            .count();
        assert!(switches >= 1, "{major}: no XLOG_SWITCH");
        for jobs in 1..=4 {
            for chunk in CHUNKS {
                let (got, end, hs) = chunked(WalReader::builder(), &dir, jobs, chunk);
                let what = format!("{major}: {jobs} jobs, chunks of {chunk}");
                assert_eq!(got.len(), want.len(), "{what}");
                assert!(got == want, "{what}: records differ");
                assert_eq!(end, want_end, "{what}");
                assert!(hs.iter().all(|h| h.done), "{what}");
                assert!(hs.windows(2).all(|w| w[0].index < w[1].index), "{what}");
                if jobs > 1 && chunk == PAGE {
                    // Every page is a chunk (but those a switch skips).
                    assert!(hs.len() as u64 > SEG / PAGE / 2, "{what}: {}", hs.len());
                }
            }
        }
    }
}

/// The two-segment samples: the first segment ends with an `XLOG_SWITCH`, and chunks begin in
/// its zeroed tail and at the second segment. (Records across a segment boundary, a header
/// split across one and a record over four segments, all written by a server, are in
/// `tests/decoder_edges.rs`, which reads them with `for_each_chunk` too.)
#[test]
fn chunks_after_a_switch_join_the_next_segment_as_one_thread() {
    for major in ["pg18", "pg19"] {
        let dir = testdata(major);
        let (want, want_end) = one_thread(WalReader::builder(), &dir);
        let first_seg = want[0].0 .0 / SEG;
        let switch = want
            .iter()
            .find(|r| r.2 == 0 && r.3 & 0xF0 == 0x40)
            .unwrap();
        assert_eq!(
            switch.0 .0 / SEG,
            first_seg,
            "{major}: a switch ends the first segment"
        );
        assert!(
            want.iter().any(|r| r.0 .0 / SEG == first_seg + 1),
            "{major}"
        );
        for jobs in 2..=4 {
            for chunk in [PAGE, 5 * PAGE, SEG / 2, SEG] {
                let (got, end, _) = chunked(WalReader::builder(), &dir, jobs, chunk);
                assert!(got == want, "{major}: {jobs} jobs, chunks of {chunk}");
                assert_eq!(end, want_end);
            }
        }
    }
}

#[test]
fn a_start_and_end_in_the_middle_bound_the_chunks_as_one_thread() {
    for major in MAJORS {
        let dir = testdata(major);
        let first = WalReader::open(dir.as_path()).unwrap().start().0;
        // Mid-record, a few bytes before a page ends, and right at a page start.
        for (s, e) in [
            (200_057, 700_001),
            (20 * PAGE - 8, 64 * PAGE + 3),
            (5 * PAGE, 9 * PAGE),
            (100, SEG - 1),
        ] {
            let b = || {
                WalReader::builder()
                    .start(Lsn(first + s))
                    .end(Lsn(first + e))
            };
            let (want, want_end) = one_thread(b(), &dir);
            assert!(!want.is_empty(), "{major} {s}..{e}");
            assert!(want[0].0 >= Lsn(first + s));
            for jobs in 1..=4 {
                for chunk in [PAGE, 3 * PAGE, SEG] {
                    let (got, end, _) = chunked(b(), &dir, jobs, chunk);
                    let what = format!("{major} {s}..{e}: {jobs} jobs, chunks of {chunk}");
                    assert!(got == want, "{what}: records differ");
                    assert_eq!(end, want_end, "{what}");
                }
            }
        }
    }
}

/// A copy of `major`'s sample with one byte of the segment changed.
fn damaged(major: &str, seg_file: &str, at: usize) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(testdata(major)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    let path = tmp.path().join(seg_file);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at] ^= 0x5A;
    std::fs::write(&path, bytes).unwrap();
    tmp
}

#[test]
fn a_broken_link_at_a_chunk_join_fails_as_one_thread_does() {
    for major in MAJORS {
        let dir = testdata(major);
        let r = WalReader::open(dir.as_path()).unwrap();
        let (seg_start, seg_file) = {
            let (name, path) = r.directory().first_segment().unwrap();
            let _ = name;
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            (r.start().0 / SEG * SEG, file)
        };
        let (recs, _) = one_thread(WalReader::builder(), &dir);
        // The first record starting on a page from page 40 on (with one-page chunks, a chunk's
        // first record), and the next on that page (found inside a chunk), both with their
        // header wholly on their page.
        let on_page = |p: u64| {
            recs.iter()
                .map(|r| r.0 .0 - seg_start)
                .filter(|&off| off / PAGE == p && off % PAGE <= PAGE - 24)
                .collect::<Vec<u64>>()
        };
        let page = (40..).map(on_page).find(|v| v.len() >= 2).unwrap();
        for off in [page[0], page[1]] {
            // The low byte of xl_prev (the header's bytes 8..16).
            let tmp = damaged(major, &seg_file, (off + 8) as usize);
            let (want, want_end) = one_thread(WalReader::builder(), tmp.path());
            let why = want_end.clone().unwrap_err();
            assert!(
                why.contains("incorrect prev-link") && why.contains(&seg_file),
                "{major}: {why}"
            );
            assert!(want.last().unwrap().0 .0 - seg_start < off, "{major}");
            for jobs in 1..=4 {
                for chunk in CHUNKS {
                    let (got, end, _) = chunked(WalReader::builder(), tmp.path(), jobs, chunk);
                    let what = format!("{major} at {off:#x}: {jobs} jobs, chunks of {chunk}");
                    assert!(got == want, "{what}: records differ");
                    assert_eq!(end, want_end, "{what}");
                }
            }
        }
    }
}

#[test]
fn breaking_in_work_or_take_stops_where_for_each_would() {
    let dir = testdata("pg17");
    let (all, _) = one_thread(WalReader::builder(), &dir);
    let stop_at = all[all.len() / 2].0;
    // `work` breaks at a record: it is the last handed over, and the read is `Stopped`.
    struct Until(Lsn);
    impl ChunkWork for Until {
        type Part = Vec<Rec>;
        fn part(&self) -> Vec<Rec> {
            Vec::new()
        }
        fn clear(&self, part: &mut Vec<Rec>) {
            part.clear();
        }
        fn record(&self, part: &mut Vec<Rec>, rec: &Record<'_>) -> ControlFlow<()> {
            part.push(rec_of(rec));
            if rec.lsn() == self.0 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
    }
    for jobs in 1..=4 {
        let r = WalReader::builder()
            .jobs(jobs)
            .chunk_size(2 * PAGE)
            .open(dir.as_path())
            .unwrap();
        let mut got = Vec::new();
        let end = r
            .for_each_chunk(&Until(stop_at), |part, _| {
                got.append(part);
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(end, ReadEnd::Stopped, "{jobs} jobs");
        assert_eq!(got.last().unwrap().0, stop_at, "{jobs} jobs");
        assert!(got[..] == all[..got.len()], "{jobs} jobs");
        // `take` breaks after three chunks (one job: the one chunk): nothing more is handed
        // over.
        let stop_after = if jobs == 1 { 1 } else { 3 };
        let mut taken = 0;
        let end = r
            .for_each_chunk(&Collect, |_, _| {
                taken += 1;
                if taken == stop_after {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .unwrap();
        assert_eq!(end, ReadEnd::Stopped, "{jobs} jobs");
        assert_eq!(taken, stop_after, "{jobs} jobs");
    }
}

#[test]
fn the_head_chunk_hands_over_as_it_goes_when_ready() {
    /// Ready after every record.
    struct Eager;
    impl ChunkWork for Eager {
        type Part = Vec<Rec>;
        fn part(&self) -> Vec<Rec> {
            Vec::new()
        }
        fn clear(&self, part: &mut Vec<Rec>) {
            part.clear();
        }
        fn record(&self, part: &mut Vec<Rec>, rec: &Record<'_>) -> ControlFlow<()> {
            part.push(rec_of(rec));
            ControlFlow::Continue(())
        }
        fn ready(&self, part: &Vec<Rec>) -> bool {
            !part.is_empty()
        }
    }
    for major in ["pg15", "pg19"] {
        let dir = testdata(major);
        let (want, want_end) = one_thread(WalReader::builder(), &dir);
        for jobs in 1..=3 {
            for chunk in [PAGE, 16 * PAGE] {
                let r = WalReader::builder()
                    .jobs(jobs)
                    .chunk_size(chunk)
                    .open(dir.as_path())
                    .unwrap();
                let mut got = Vec::new();
                let mut early = 0;
                let end = r.for_each_chunk(&Eager, |part, h| {
                    early += usize::from(!h.done);
                    // The consumer empties what it takes.
                    got.append(part);
                    ControlFlow::Continue(())
                });
                let what = format!("{major}: {jobs} jobs, chunks of {chunk}");
                assert!(got == want, "{what}");
                assert_eq!(ended(end), want_end, "{what}");
                assert!(early > 0, "{what}: nothing handed over early");
            }
        }
    }
}

#[test]
fn fold_chunks_counts_as_one_thread_counts() {
    let dir = testdata("pg16");
    let (want, _) = one_thread(WalReader::builder(), &dir);
    let r = WalReader::builder()
        .jobs(2)
        .chunk_size(4 * PAGE)
        .open(dir.as_path())
        .unwrap();
    let (mut n, mut bytes) = (0usize, 0u64);
    let end = r
        .fold_chunks(
            || (0usize, 0u64),
            |a, rec| {
                a.0 += 1;
                a.1 += u64::from(rec.total_len());
                ControlFlow::Continue(())
            },
            |(c, b)| {
                n += c;
                bytes += b;
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    assert!(matches!(end, ReadEnd::EndOfWal { .. }), "{end:?}");
    assert_eq!(n, want.len());
    assert_eq!(bytes, want.iter().map(|r| u64::from(r.1)).sum::<u64>());
}

/// The chunks start at `start`, follow each other without gap, end after `last_byte`, and
/// only the last `jobs` pieces are cut small.
#[test]
fn cuts_cover_the_range_with_small_chunks_at_the_end() {
    let (mb, kb) = (1u64 << 20, 1u64 << 10);
    for (start, last_byte, bytes, tail, jobs) in [
        (Lsn(0x100_0028), 29 * mb - 1, 16 * mb, 4 * mb, 2),
        (Lsn(0x100_0028), 64 * mb - 1, 16 * mb, 4 * mb, 2),
        (Lsn(40 * mb + 8 * kb), 200 * mb + 5, 4 * mb, mb, 3),
        (Lsn(8 * kb), 8 * kb, 8 * kb, 8 * kb, 2),
        (Lsn(5 * kb), 40 * kb - 1, 8 * kb, 8 * kb, 4),
        (Lsn(16 * kb + 24), 16 * kb + 100, 16 * kb, 8 * kb, 2),
    ] {
        let c = Cuts::new(start, last_byte, bytes, tail, jobs);
        let what = format!("{start} ..= {last_byte:#x}, {bytes} / {tail}, {jobs} jobs");
        assert_eq!(c.lo(0), start, "{what}");
        assert!(c.count >= 1, "{what}");
        let mut small = 0;
        for i in 0..c.count {
            let lo = c.lo(i);
            assert!(
                lo.0 <= last_byte,
                "chunk {i} starts after the range: {what}"
            );
            match c.hi(i) {
                Some(hi) => {
                    assert!(hi > lo, "chunk {i} is empty: {what}");
                    let len = hi.0 - lo.0;
                    assert!(len <= bytes, "chunk {i} too long: {what}");
                    if i > 0 && len < bytes {
                        assert_eq!(len, tail, "chunk {i}: {what}");
                        small += 1;
                    } else if i > 0 {
                        assert_eq!(small, 0, "a large chunk {i} after small ones: {what}");
                    }
                    assert_eq!(c.lo(i + 1), hi, "{what}");
                }
                None => {
                    assert_eq!(i + 1, c.count, "{what}");
                    assert!(last_byte - lo.0 < bytes, "last chunk too long: {what}");
                }
            }
        }
        // Small chunks only in the last `jobs` pieces of `bytes`.
        assert!(small * tail <= jobs as u64 * bytes, "{what}");
    }
    let w = Cuts::whole(Lsn(0x123));
    assert_eq!((w.count, w.lo(0), w.hi(0)), (1, Lsn(0x123), None));
}
