//! `pgwal dump -j N` prints exactly what the sequential dump prints: same stdout, stderr and
//! exit status, for every shipped WAL sample and the options that change what is printed.

// Test helpers outside #[test] functions: failing loudly is the point.
#![allow(clippy::unwrap_used)]

mod support;
use support::*;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// How to run in parallel: jobs, chunk size in WAL pages, and after how many bytes of text the
/// chunk being printed writes its text out (as it goes, rather than when done).
type Jobs<'a> = (&'a str, &'a str, &'a str);

/// Runs the dump; with `jobs`, in parallel.
fn dump(dir: &Path, jobs: Option<Jobs<'_>>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgwal"));
    c.env("TZ", "UTC").arg("dump").arg("-p").arg(dir);
    if let Some((j, pages, stream)) = jobs {
        c.arg("-j").arg(j);
        c.env("PGWAL_DUMP_CHUNK_PAGES", pages);
        c.env("PGWAL_DUMP_STREAM_BYTES", stream);
    }
    c.args(args).output().expect("run pgwal")
}

/// Compares `-j` runs with the sequential one: stdout, stderr and exit status.
fn assert_like_sequential(dir: &Path, args: &[&str], jobs: &[Jobs<'_>]) {
    let want = dump(dir, None, args);
    assert!(
        !want.stdout.is_empty() || args.contains(&"-q"),
        "{dir:?} {args:?}"
    );
    for &j in jobs {
        let got = dump(dir, Some(j), args);
        let what = format!(
            "{} -j{} ({} pages, stream every {} bytes) {args:?}",
            dir.display(),
            j.0,
            j.1,
            j.2
        );
        assert_same(&got, &want, &what);
    }
}

/// The parallel run `got` gave the sequential run's stdout, stderr and exit status.
fn assert_same(got: &Output, want: &Output, what: &str) {
    assert_eq!(got.status.code(), want.status.code(), "exit status: {what}");
    assert!(got.stdout == want.stdout, "stdout differs: {what}");
    assert_eq!(
        String::from_utf8_lossy(&got.stderr),
        String::from_utf8_lossy(&want.stderr),
        "stderr: {what}"
    );
}

/// 1 page: every page boundary is a chunk boundary; 3: records cross them often; 128: the
/// whole 1 MB segment is one chunk. Streaming every byte: whichever chunk is next to print
/// writes its text after each record, from the moment it becomes next.
const JOBS: [Jobs<'static>; 5] = [
    ("2", "1", "65536"),
    ("3", "3", "65536"),
    ("2", "128", "65536"),
    ("2", "3", "1"),
    ("3", "1", "1"),
];

fn samples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(testdata(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("meta.txt").exists())
        .collect();
    v.sort();
    v
}

/// The segment file names in `dir`, in order (as `pgwal::source::WalDirectory` finds them).
fn segments(dir: &Path) -> Vec<String> {
    let scanned = pgwal::source::WalDirectory::scan(dir).unwrap();
    let mut names: Vec<String> = scanned.segments().map(|(n, _)| n.to_string()).collect();
    names.sort();
    names
}

/// The LSN `offset` bytes into the first segment, as text: `-s` there starts mid-record.
fn lsn_in_first_segment(dir: &Path, offset: u64) -> String {
    let segs = segments(dir);
    let name = &segs[0];
    let seg_size: u64 = 1 << 20; // the shipped samples use 1 MB segments
    let log = u64::from_str_radix(&name[8..16], 16).unwrap();
    let seg = u64::from_str_radix(&name[16..24], 16).unwrap();
    let lsn = (log << 32) + seg * seg_size + offset;
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

#[test]
fn jobs_print_exactly_the_sequential_output() {
    let samples = samples();
    assert!(samples.len() >= 6, "expected the shipped WAL samples");
    for dir in &samples {
        let segs = segments(dir);
        let first = segs[0].clone();
        let last = segs[segs.len() - 1].clone();
        let mid = lsn_in_first_segment(dir, 200_057);
        // 8 bytes before a page ends: a record crosses into the next page, so with chunks of
        // one page the first chunk holds no record, and the note on where the first record is
        // comes from the second.
        let page_end = lsn_in_first_segment(dir, 20 * 8192 - 8);
        let cases: Vec<Vec<&str>> = vec![
            vec![],
            vec!["-b"],
            vec!["--stats"],
            vec!["--stats=record"],
            vec!["--format", "json"],
            vec!["-n", "777"],
            vec!["-r", "Heap", "-r", "Transaction"],
            vec!["-w"],
            vec!["-s", &mid],
            vec!["-s", &page_end],
            vec!["-s", &page_end, "--stats"],
            vec![&first, &last],
            vec!["-q"],
        ];
        for args in &cases {
            assert_like_sequential(dir, args, &JOBS);
        }
    }
}

#[test]
fn jobs_stop_where_the_sequential_dump_stops_on_corrupt_wal() {
    for name in ["pg13", "pg16", "pg18", "pg19"] {
        let src = testdata("").join(name);
        let seg = segments(&src)[0].clone();
        let bytes = std::fs::read(src.join(&seg)).unwrap();
        // Offsets in the segment of the records' starts, from the dump's `lsn: X/Y` fields.
        let clean = dump(&src, None, &[]);
        let starts: Vec<usize> = String::from_utf8_lossy(&clean.stdout)
            .lines()
            .filter_map(|l| l.split("lsn: ").nth(1)?.split(',').next())
            .filter_map(|t| {
                let (hi, lo) = t.split_once('/')?;
                let lsn =
                    (u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?;
                Some((lsn % (1 << 20)) as usize)
            })
            .filter(|off| off % 8192 < 8000)
            .collect();
        assert!(starts.len() > 1000, "{name}: {} records", starts.len());
        // A record's xl_xid (a checksum error there, a third and two thirds of the way in) and
        // a page header's magic, each in its own copy.
        let third = starts.len() / 3;
        for at in [starts[third] + 4, starts[2 * third] + 4, 8192 * 40] {
            let tmp = tempfile::tempdir().unwrap();
            let mut bad = bytes.clone();
            bad[at] ^= 0x5A;
            std::fs::write(tmp.path().join(&seg), &bad).unwrap();
            let plain = dump(tmp.path(), None, &[]);
            assert!(
                plain.stdout.len() < clean.stdout.len(),
                "{name}: flipping byte {at} must stop the dump early"
            );
            for args in [&[][..], &["--stats"][..], &["-n", "5000"][..]] {
                assert_like_sequential(tmp.path(), args, &JOBS);
            }
        }
    }
}

/// Random ranges (starts and ends anywhere, a third of them a few bytes from a page boundary),
/// options, job counts, chunk sizes and streaming sizes, from a fixed seed: `-j` prints what
/// the sequential dump prints.
#[test]
fn jobs_match_sequential_at_random_ranges() {
    // xorshift64*: reproducible without a dependency.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: u64| {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    };
    let options: [&[&str]; 8] = [
        &[],
        &["-b"],
        &["--stats"],
        &["--stats=record", "-r", "Heap"],
        &["--format", "json"],
        &["-q"],
        &["-n", "300"],
        &["-w"],
    ];
    let pages = ["1", "2", "5", "64"];
    for dir in &samples() {
        for _ in 0..8 {
            let mut offset = || {
                if next(3) == 0 {
                    let page = 1 + next(127);
                    (page * 8192).saturating_sub(next(40))
                } else {
                    next(1 << 20)
                }
            };
            let (a, b) = (offset(), offset());
            let start = lsn_in_first_segment(dir, a.min(b));
            let end = lsn_in_first_segment(dir, a.max(b) + 1);
            let mut args: Vec<&str> = vec!["-s", &start];
            if next(2) == 0 {
                args.extend(["-e", &end]);
            }
            args.extend(options[next(options.len() as u64) as usize]);
            let jobs = ["2", "3", "4"][next(3) as usize];
            let chunk = pages[next(pages.len() as u64) as usize];
            let stream = ["1", "65536"][next(2) as usize];
            let want = dump(dir, None, &args);
            let got = dump(dir, Some((jobs, chunk, stream)), &args);
            let what = format!("{} -j{jobs} ({chunk} pages) {args:?}", dir.display());
            assert_same(&got, &want, &what);
        }
    }
}
