//! `pgwal dump -j N` prints exactly what the sequential dump prints: same stdout, stderr and
//! exit status, for every shipped WAL sample and the options that change what is printed.

// Test helpers outside #[test] functions: failing loudly is the point.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/wal")
}

/// Runs the dump; with `jobs`, in parallel chunks of `pages` WAL pages.
fn dump(dir: &Path, jobs: Option<(&str, &str)>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgwal"));
    c.env("TZ", "UTC").arg("dump").arg("-p").arg(dir);
    if let Some((j, pages)) = jobs {
        c.arg("-j").arg(j).env("PGWAL_DUMP_CHUNK_PAGES", pages);
    }
    c.args(args).output().expect("run pgwal")
}

fn samples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(testdata())
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

/// An LSN inside the first segment, as text: `-s` there starts mid-record.
fn middle_lsn(dir: &Path) -> String {
    let segs = segments(dir);
    let name = &segs[0];
    let seg_size: u64 = 1 << 20; // the shipped samples use 1 MB segments
    let log = u64::from_str_radix(&name[8..16], 16).unwrap();
    let seg = u64::from_str_radix(&name[16..24], 16).unwrap();
    let lsn = (log << 32) + seg * seg_size + 200_057;
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
        let mid = middle_lsn(dir);
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
            vec![&first, &last],
            vec!["-q"],
        ];
        for args in &cases {
            let want = dump(dir, None, args);
            assert!(
                !want.stdout.is_empty() || args.contains(&"-q"),
                "{dir:?} {args:?}"
            );
            // 1 page: every page boundary is a chunk boundary; 3: records cross them often;
            // 128: the whole 1 MB segment is one chunk.
            for jobs in [("2", "1"), ("3", "3"), ("2", "128")] {
                let got = dump(dir, Some(jobs), args);
                let what = format!("{} -j{} ({} pages) {args:?}", dir.display(), jobs.0, jobs.1);
                assert_eq!(got.status.code(), want.status.code(), "exit status: {what}");
                assert!(got.stdout == want.stdout, "stdout differs: {what}");
                assert_eq!(
                    String::from_utf8_lossy(&got.stderr),
                    String::from_utf8_lossy(&want.stderr),
                    "stderr: {what}"
                );
            }
        }
    }
}
