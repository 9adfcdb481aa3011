//! `pgwal archive` and `pgwal dump --follow` against other processes doing their worst to the
//! files (issue 16, 2.2–2.4), on WAL segments of a real PostgreSQL server:
//!
//! - a `.partial` rewritten and truncated in a loop while `archive fetch --partial`, `archive
//!   push` of it and the compare-on-push path read it, and a live segment truncated while
//!   `dump --follow` reads it: no process is killed by a signal, every run either succeeds
//!   with correct content or fails with a clear error;
//! - SIGTERM at random moments during `fetch` and `push`: no temporary file is left, the
//!   process dies of SIGTERM (as PostgreSQL expects of an interrupted `restore_command`), and a
//!   planted stale temporary file is removed by the next run while others' files stay;
//! - racing pushes of different content to one name, through `link()` and, with `link()`
//!   failing (strace fault injection), through `renameat2(RENAME_NOREPLACE)`: exactly one wins,
//!   the others report the conflict, nothing is overwritten.
#![allow(clippy::unwrap_used)]

mod support;

use support::*;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::FileExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use pgwal_testkit::{require_major, Cluster, Major};

fn names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn temp_files(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with(".pgwal-tmp."))
        .collect()
}

/// A small deterministic generator (seeded, and the seed printed, so a failure can be rerun).
struct Rng(u64);

impl Rng {
    fn new(tag: &str) -> Rng {
        let seed = std::env::var("HARDENING_SEED")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{tag}: HARDENING_SEED={seed}");
        Rng(seed | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Two consecutive complete 16 MB segments of a real server.
struct Wal {
    first: String,
    first_bytes: Vec<u8>,
    second: String,
    second_bytes: Vec<u8>,
}

fn wal() -> Option<&'static Wal> {
    static W: OnceLock<Option<Wal>> = OnceLock::new();
    W.get_or_init(build_wal).as_ref()
}

fn build_wal() -> Option<Wal> {
    let major = Major::V16;
    require_major(major)?;
    let c = Cluster::builder(major)
        .set("wal_keep_size", "1GB")
        .start()
        .unwrap();
    let start = c
        .scalar_blocking("SELECT pg_walfile_name(pg_current_wal_lsn())")
        .unwrap();
    c.pgbench_init(4).unwrap();
    c.scalar_blocking("SELECT pg_switch_wal()").unwrap();
    let current = c
        .scalar_blocking("SELECT pg_walfile_name(pg_current_wal_lsn())")
        .unwrap();
    // The two segments before the current one, both complete and after the first.
    let segs: Vec<String> = names(&c.pg_wal_dir())
        .into_iter()
        .filter(|n| n.len() == 24 && n.as_str() > start.as_str() && n < &current)
        .collect();
    assert!(
        segs.len() >= 2,
        "not enough WAL: {segs:?} (current {current})"
    );
    let (first, second) = (segs[segs.len() - 2].clone(), segs[segs.len() - 1].clone());
    let first_bytes = fs::read(c.pg_wal_dir().join(&first)).unwrap();
    let second_bytes = fs::read(c.pg_wal_dir().join(&second)).unwrap();
    assert_eq!(first_bytes.len(), 16 << 20);
    c.stop_fast().unwrap();
    Some(Wal {
        first,
        first_bytes,
        second,
        second_bytes,
    })
}

/// The signal that ended `st`, if one did.
fn signal_of(st: &ExitStatus) -> Option<i32> {
    st.signal()
}

/// True if `got` is `want[..n]` followed by zeros, for some `n` of at least one page.
fn is_padded_prefix(got: &[u8], want: &[u8]) -> bool {
    let n = got.iter().zip(want).take_while(|(a, b)| a == b).count();
    n >= 8192 && got[n..].iter().all(|&b| b == 0)
}

/// True if `got` is a prefix of `want` of at least one page.
fn is_prefix(got: &[u8], want: &[u8]) -> bool {
    got.len() >= 8192 && want.starts_with(got)
}

/// Rewrites `paths` over and over as a misbehaving writer would: truncated to a random length,
/// then written back in pieces, until `stop`.
/// Sets the flag when dropped: a failing assertion inside `thread::scope` then stops the
/// rewriting thread instead of leaving the scope waiting for it forever.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn rewrite_loop(paths: &[PathBuf], content: &[u8], stop: &AtomicBool, seed: u64) -> u64 {
    let mut rng = Rng(seed | 1);
    let mut cycles = 0;
    let files: Vec<fs::File> = paths
        .iter()
        .map(|p| fs::OpenOptions::new().write(true).open(p).unwrap())
        .collect();
    while !stop.load(Ordering::Relaxed) {
        for f in &files {
            let cut = rng.below(content.len() as u64 / 8192) * 8192;
            f.set_len(cut).unwrap();
        }
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        for f in &files {
            let len = f.metadata().unwrap().len() as usize;
            for (i, piece) in content[len..].chunks(256 << 10).enumerate() {
                f.write_all_at(piece, (len + i * (256 << 10)) as u64)
                    .unwrap();
            }
        }
        std::thread::sleep(Duration::from_micros(rng.below(3000)));
        cycles += 1;
    }
    cycles
}

#[test]
fn rewritten_partial_never_kills_fetch_push_or_compare() {
    let Some(w) = wal() else { return };
    let work = scratch_dir("hardening", "rewrite");
    let (archive, pg_wal, stable) = (
        work.join("archive"),
        work.join("pg_wal"),
        work.join("stable"),
    );
    for d in [&archive, &pg_wal, &stable] {
        fs::create_dir(d).unwrap();
    }
    // The receiver's .partial in the archive and PostgreSQL's in pg_wal: the first 2 MB of a
    // real segment, rewritten in a loop. A stable copy is pushed against the archive's.
    let partial = format!("{}.partial", w.first);
    let content = &w.first_bytes[..2 << 20];
    for d in [&archive, &pg_wal, &stable] {
        fs::write(d.join(&partial), content).unwrap();
    }
    let stop = AtomicBool::new(false);
    let mut rng = Rng::new("rewrite");
    let seed = rng.below(u64::MAX);
    let runs = 200;
    let (mut ok, mut failed) = ([0; 3], [0; 3]);
    let cycles = std::thread::scope(|sc| {
        let writer = sc.spawn(|| {
            rewrite_loop(
                &[archive.join(&partial), pg_wal.join(&partial)],
                content,
                &stop,
                seed,
            )
        });
        let _stop = StopOnDrop(&stop);
        for i in 0..runs {
            // fetch --partial of the rewritten .partial.
            let dest = work.join("RECOVERYXLOG");
            let o = pgwal(&[
                "archive",
                "fetch",
                &w.first,
                s(&dest),
                "--archive",
                s(&archive),
                "--partial",
            ]);
            assert_eq!(signal_of(&o.status), None, "fetch run {i}: {}", text(&o));
            match o.status.code() {
                Some(0) => {
                    let got = fs::read(&dest).unwrap();
                    assert_eq!(got.len(), 16 << 20, "fetch run {i}");
                    assert!(
                        is_padded_prefix(&got, content),
                        "fetch run {i}: wrong content"
                    );
                    ok[0] += 1;
                }
                Some(2) => {
                    let err = String::from_utf8_lossy(&o.stderr);
                    assert!(
                        err.contains("error:") && err.contains(&partial),
                        "fetch run {i}: unclear error: {}",
                        text(&o)
                    );
                    failed[0] += 1;
                }
                _ => panic!("fetch run {i}: {}", text(&o)),
            }
            let _ = fs::remove_file(&dest);

            // push of the rewritten .partial into an empty archive.
            let fresh = work.join(format!("pushed-{i}"));
            fs::create_dir(&fresh).unwrap();
            let o = pgwal(&[
                "archive",
                "push",
                s(&pg_wal.join(&partial)),
                "--archive",
                s(&fresh),
            ]);
            assert_eq!(signal_of(&o.status), None, "push run {i}: {}", text(&o));
            match o.status.code() {
                Some(0) => {
                    let got = fs::read(fresh.join(&partial)).unwrap();
                    assert!(
                        is_prefix(&got, content),
                        "push run {i}: wrong content stored"
                    );
                    ok[1] += 1;
                }
                Some(1) => {
                    assert!(
                        String::from_utf8_lossy(&o.stderr).contains("error:"),
                        "push run {i}: {}",
                        text(&o)
                    );
                    assert!(!fresh.join(&partial).exists(), "push run {i}");
                    failed[1] += 1;
                }
                _ => panic!("push run {i}: {}", text(&o)),
            }
            assert!(temp_files(&fresh).is_empty(), "push run {i}");
            fs::remove_dir_all(&fresh).unwrap();

            // push of a stable copy, compared with the archive's rewritten .partial.
            let o = pgwal(&[
                "archive",
                "push",
                s(&stable.join(&partial)),
                "--archive",
                s(&archive),
            ]);
            assert_eq!(signal_of(&o.status), None, "compare run {i}: {}", text(&o));
            let err = String::from_utf8_lossy(&o.stderr);
            match o.status.code() {
                Some(0) => {
                    assert!(
                        err.contains("already archived"),
                        "compare run {i}: {}",
                        text(&o)
                    );
                    ok[2] += 1;
                }
                Some(1) => {
                    assert!(
                        err.contains("refusing to overwrite") || err.contains(&partial),
                        "compare run {i}: {}",
                        text(&o)
                    );
                    failed[2] += 1;
                }
                _ => panic!("compare run {i}: {}", text(&o)),
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap()
    });
    eprintln!(
        "{runs} runs each against {cycles} rewrites: fetch --partial {} ok / {} clear errors, \
         push {} / {}, compare {} / {}",
        ok[0], failed[0], ok[1], failed[1], ok[2], failed[2]
    );
    assert!(
        cycles >= runs as u64,
        "the file was rewritten only {cycles} times"
    );
    // Every path was exercised both ways or at least succeeded sometimes.
    assert!(ok.iter().all(|&n| n > 0), "{ok:?}");
    // The files left in place are untouched by the readers.
    assert_eq!(fs::read(stable.join(&partial)).unwrap(), content);
}

/// The LSNs of the records in pg_waldump-style text output.
fn record_lsns(out: &str) -> Vec<u64> {
    out.lines()
        .filter_map(|l| l.split("lsn: ").nth(1))
        .filter_map(|r| r.split(',').next())
        .filter_map(|l| pgwal_testkit::parse_lsn(l.trim()))
        .collect()
}

#[test]
fn dump_follow_survives_the_live_segment_being_truncated() {
    let Some(w) = wal() else { return };
    let work = scratch_dir("hardening", "follow");
    let live = work.join("pg_wal");
    fs::create_dir(&live).unwrap();
    fs::write(live.join(&w.first), &w.first_bytes).unwrap();
    // The next segment appears as PostgreSQL creates one: full size, zeros, then written in
    // place page by page.
    let next = live.join(&w.second);
    fs::write(&next, vec![0u8; w.second_bytes.len()]).unwrap();
    let seg_start = |name: &str| {
        (u64::from_str_radix(&name[8..16], 16).unwrap() << 32)
            | (u64::from_str_radix(&name[16..24], 16).unwrap() << 24)
    };
    let from = seg_start(&w.first);
    let from = format!("{:X}/{:X}", from >> 32, from as u32);
    let dumps: Vec<(Child, PathBuf)> = (0..3)
        .map(|i| {
            let out = work.join(format!("dump-{i}.out"));
            let child = Command::new(BIN)
                .args(["dump", "--follow", "-p", s(&live), "-s", &from])
                .stdout(fs::File::create(&out).unwrap())
                .stderr(fs::File::create(work.join(format!("dump-{i}.err"))).unwrap())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    let stop = AtomicBool::new(false);
    let mut rng = Rng::new("follow");
    let seed = rng.below(u64::MAX);
    let cycles = std::thread::scope(|sc| {
        let writer = sc.spawn(|| {
            let f = fs::OpenOptions::new().write(true).open(&next).unwrap();
            for (i, page) in w.second_bytes.chunks(64 << 10).enumerate() {
                f.write_all_at(page, (i * (64 << 10)) as u64).unwrap();
                std::thread::sleep(Duration::from_millis(8));
            }
            // Then the hostile part: truncated and restored, again and again.
            rewrite_loop(std::slice::from_ref(&next), &w.second_bytes, &stop, seed)
        });
        let _stop = StopOnDrop(&stop);
        std::thread::sleep(Duration::from_secs(10));
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap()
    });
    // Let the readers see the complete segment once more.
    std::thread::sleep(Duration::from_millis(2500));
    let second_start = seg_start(&w.second);
    // What a reader of the finished files sees, to the end of valid WAL.
    let o = pgwal(&["dump", "-p", s(&live), "-s", &from]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let expected = record_lsns(&String::from_utf8_lossy(&o.stdout));
    let last = *expected.last().unwrap();
    assert!(last >= second_start, "{}", text(&o));
    for (i, (mut child, out)) in dumps.into_iter().enumerate() {
        let status = child.try_wait().unwrap();
        let err = fs::read_to_string(work.join(format!("dump-{i}.err"))).unwrap();
        // Still following: a truncated live segment is the end of WAL for now, not an error,
        // and never a signal.
        assert!(status.is_none(), "dump {i} ended: {status:?}\n{err}");
        child.kill().unwrap();
        child.wait().unwrap();
        let lsns = record_lsns(&fs::read_to_string(&out).unwrap());
        // Every record once, in order, up to the last one written.
        assert!(
            lsns == expected,
            "dump {i}: {} records, {} expected, last {:?} (want {last})\n{err}",
            lsns.len(),
            expected.len(),
            lsns.last()
        );
    }
    eprintln!("3 followers against {cycles} truncations of the live segment");
    assert!(cycles > 20, "only {cycles} truncations");
}

/// Runs `args` `runs` times, each sent SIGTERM after a random delay up to 70% of what a
/// normal run takes (on a loaded machine runs vary a lot, and a longer window let most of them
/// finish first: 4 of 30 pushes interrupted once); checks `check(run, status)` and that `dir` never keeps a temporary file.
fn sigterm_loop(
    tag: &str,
    runs: usize,
    dir: &Path,
    args: &[&str],
    mut reset: impl FnMut(),
    mut check_done: impl FnMut(usize),
) -> (usize, usize) {
    let mut time_one = || {
        reset();
        let t = Instant::now();
        let o = pgwal(args);
        assert_eq!(o.status.code(), Some(0), "{tag}: {}", text(&o));
        t.elapsed()
    };
    let mut normal = [time_one(), time_one(), time_one()];
    normal.sort();
    let span = normal[1].as_micros() as u64 * 7 / 10 + 1;
    let mut rng = Rng::new(tag);
    let (mut finished, mut killed) = (0, 0);
    for i in 0..runs {
        reset();
        let child = Command::new(BIN)
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(span)));
        // SAFETY: signalling our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let o = child.wait_with_output().unwrap();
        match (o.status.code(), signal_of(&o.status)) {
            (Some(0), None) => {
                check_done(i);
                finished += 1;
            }
            (None, Some(libc::SIGTERM)) => killed += 1,
            _ => panic!("{tag} run {i}: {}", text(&o)),
        }
        let left = temp_files(dir);
        assert!(left.is_empty(), "{tag} run {i} left {left:?}");
    }
    eprintln!(
        "{tag}: {runs} runs, SIGTERM within {span} µs (a run takes {:?}): {finished} finished, \
         {killed} died of SIGTERM, no temporary file left",
        normal[1]
    );
    (finished, killed)
}

#[test]
fn sigterm_during_fetch_and_push_leaves_no_temporary_file() {
    let Some(w) = wal() else { return };
    let work = scratch_dir("hardening", "sigterm");
    let (archive, pg_wal) = (work.join("archive"), work.join("pg_wal"));
    fs::create_dir(&archive).unwrap();
    fs::create_dir(&pg_wal).unwrap();
    fs::write(archive.join(&w.first), &w.first_bytes).unwrap();
    let dest = pg_wal.join("RECOVERYXLOG");
    let (_, killed) = sigterm_loop(
        "fetch",
        60,
        &pg_wal,
        &[
            "archive",
            "fetch",
            &w.first,
            s(&dest),
            "--archive",
            s(&archive),
        ],
        || {
            let _ = fs::remove_file(&dest);
        },
        |i| assert!(fs::read(&dest).unwrap() == w.first_bytes, "fetch run {i}"),
    );
    assert!(killed >= 10, "only {killed} of 60 fetches were interrupted");

    let src = pg_wal.join(&w.second);
    fs::write(&src, &w.second_bytes).unwrap();
    let target = archive.join(&w.second);
    let (_, killed) = sigterm_loop(
        "push",
        30,
        &archive,
        &["archive", "push", s(&src), "--archive", s(&archive)],
        || {
            let _ = fs::remove_file(&target);
        },
        |i| assert!(fs::read(&target).unwrap() == w.second_bytes, "push run {i}"),
    );
    assert!(killed >= 5, "only {killed} of 30 pushes were interrupted");
}

#[test]
fn next_run_removes_stale_temporary_files_only() {
    let Some(w) = wal() else { return };
    let work = scratch_dir("hardening", "stale");
    let (archive, pg_wal) = (work.join("archive"), work.join("pg_wal"));
    fs::create_dir(&archive).unwrap();
    fs::create_dir(&pg_wal).unwrap();
    fs::write(archive.join(&w.first), &w.first_bytes).unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    // A live process that is not us (pgwal never removes its own).
    let mut alive = Command::new("sleep").arg("60").spawn().unwrap();
    let live = alive.id();
    let hours_ago = |h: u64| SystemTime::now() - Duration::from_secs(h * 3600 + 60);
    let plant = |dir: &Path, name: &str, mtime: SystemTime| {
        let p = dir.join(name);
        fs::write(&p, vec![7u8; 1 << 20]).unwrap();
        fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
    };
    let seg = &w.first;
    for dir in [&pg_wal, &archive] {
        // Left by a killed run: removed.
        plant(
            dir,
            &format!(".pgwal-tmp.RECOVERYXLOG.{dead}.1a2b3c"),
            hours_ago(0) - Duration::from_secs(120),
        );
        plant(dir, &format!(".pgwal-tmp.{seg}.{live}.77"), hours_ago(2));
        // A writer that may be running (dead pid but just modified; live pid, recent): kept.
        plant(
            dir,
            &format!(".pgwal-tmp.{seg}.{dead}.ff"),
            SystemTime::now(),
        );
        plant(
            dir,
            &format!(".pgwal-tmp.RECOVERYXLOG.{live}.10"),
            hours_ago(0) - Duration::from_secs(600),
        );
        // Not pgwal's naming: kept whatever its age.
        plant(dir, "xlogtemp.12345", hours_ago(5));
        plant(dir, ".pgwal-tmp.not-ours", hours_ago(5));
    }
    let expect_kept: BTreeSet<String> = [
        format!(".pgwal-tmp.{seg}.{dead}.ff"),
        format!(".pgwal-tmp.RECOVERYXLOG.{live}.10"),
        "xlogtemp.12345".to_owned(),
        ".pgwal-tmp.not-ours".to_owned(),
    ]
    .into_iter()
    .collect();

    let dest = pg_wal.join("RECOVERYXLOG");
    let o = pgwal(&["archive", "fetch", seg, s(&dest), "--archive", s(&archive)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("removed stale temporary file"));
    let mut left = names(&pg_wal);
    left.remove("RECOVERYXLOG");
    assert_eq!(left, expect_kept, "{}", text(&o));

    let src = pg_wal.join(&w.second);
    fs::write(&src, &w.second_bytes).unwrap();
    let o = pgwal(&["archive", "push", s(&src), "--archive", s(&archive)]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let mut left = names(&archive);
    left.remove(&w.first);
    left.remove(&w.second);
    assert_eq!(left, expect_kept, "{}", text(&o));
    alive.kill().unwrap();
    alive.wait().unwrap();
}

/// `k` copies of the segment `w.first`, each with different content (a byte changed past the
/// page header), in directories under `work`.
fn variants(work: &Path, w: &Wal, k: usize, same: bool) -> Vec<(PathBuf, Vec<u8>)> {
    (0..k)
        .map(|i| {
            let dir = work.join(format!("src-{i}"));
            fs::create_dir_all(&dir).unwrap();
            let mut bytes = w.first_bytes.clone();
            if !same {
                bytes[(8 << 20) + 4321] ^= 1 + i as u8;
            }
            let p = dir.join(&w.first);
            fs::write(&p, &bytes).unwrap();
            (p, bytes)
        })
        .collect()
}

/// Starts `k` pushes of `srcs` into `archive` at once (through `wrap`, e.g. strace) and checks
/// that exactly one stored its file (the others: a conflict, or with `same` content, "already
/// archived"), and the sources are untouched. Returns the winner.
fn race(
    archive: &Path,
    srcs: &[(PathBuf, Vec<u8>)],
    same: bool,
    wrap: &dyn Fn(usize) -> Command,
    round: usize,
) -> usize {
    let children: Vec<Child> = srcs
        .iter()
        .enumerate()
        .map(|(i, (p, _))| {
            wrap(i)
                .args(["archive", "push", s(p), "--archive", s(archive), "-v"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outs: Vec<Output> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let mut winners = Vec::new();
    for (i, o) in outs.iter().enumerate() {
        let err = String::from_utf8_lossy(&o.stderr);
        match o.status.code() {
            Some(0) if err.contains("archived \"") && !err.contains("already") => winners.push(i),
            Some(0) if same && err.contains("already archived with the same content") => {}
            Some(1) if !same && err.contains("refusing to overwrite") => {}
            _ => panic!("round {round} push {i}: {}", text(o)),
        }
    }
    assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
    let stored = fs::read(archive.join(srcs[0].0.file_name().unwrap())).unwrap();
    assert!(
        stored == srcs[winners[0]].1,
        "round {round}: the archive holds another push's file"
    );
    for (i, (p, bytes)) in srcs.iter().enumerate() {
        assert!(
            fs::read(p).unwrap() == *bytes,
            "round {round}: source {i} changed"
        );
    }
    assert!(temp_files(archive).is_empty(), "round {round}");
    winners[0]
}

#[test]
fn racing_pushes_never_overwrite() {
    let Some(w) = wal() else { return };
    let work = scratch_dir("hardening", "race");
    let plain = |_: usize| Command::new(BIN);
    for (same, rounds) in [(false, 25), (true, 10)] {
        let srcs = variants(&work.join(format!("same-{same}")), w, 4, same);
        let mut wins = [0usize; 4];
        for round in 0..rounds {
            let archive = work.join(format!("archive-{same}-{round}"));
            fs::create_dir(&archive).unwrap();
            wins[race(&archive, &srcs, same, &plain, round)] += 1;
            fs::remove_dir_all(&archive).unwrap();
        }
        eprintln!("link(): {rounds} races of 4 pushes (same content: {same}), wins {wins:?}");
    }
}

#[test]
fn without_hard_links_pushes_use_rename_noreplace() {
    let Some(w) = wal() else { return };
    let work = scratch_dir("hardening", "noreplace");
    let strace = strace();
    let logs = work.join("logs");
    fs::create_dir(&logs).unwrap();
    // link() fails as on a file system without hard links; the push must then rename with
    // RENAME_NOREPLACE, which the strace log shows.
    let no_link = |tag: String| {
        let logs = logs.clone();
        move |i: usize| {
            let mut c = Command::new(strace);
            c.args([
                "-f",
                "-qq",
                "-e",
                "trace=link,linkat,rename,renameat,renameat2",
            ])
            .args(["-e", "inject=link,linkat:error=EPERM", "-o"])
            .arg(logs.join(format!("{tag}-{i}.log")))
            .arg(BIN);
            c
        }
    };
    for (same, rounds) in [(false, 12), (true, 4)] {
        let srcs = variants(&work.join(format!("same-{same}")), w, 4, same);
        for round in 0..rounds {
            let archive = work.join(format!("archive-{same}-{round}"));
            fs::create_dir(&archive).unwrap();
            let tag = format!("{same}-{round}");
            let winner = race(&archive, &srcs, same, &no_link(tag.clone()), round);
            let log = fs::read_to_string(logs.join(format!("{tag}-{winner}.log"))).unwrap();
            assert!(
                log.contains("EPERM (Operation not permitted) (INJECTED)")
                    && log
                        .lines()
                        .any(|l| l.contains("renameat2(") && l.contains("RENAME_NOREPLACE) = 0")),
                "round {round}: the winner did not rename with RENAME_NOREPLACE:\n{log}"
            );
            assert!(
                !log.lines()
                    .any(|l| l.contains("rename(") || l.contains("renameat(")),
                "round {round}: a plain rename was used:\n{log}"
            );
            fs::remove_dir_all(&archive).unwrap();
        }
    }

    // Where rename without replacing does not work either: a clear error, nothing written.
    let archive = work.join("archive-neither");
    fs::create_dir(&archive).unwrap();
    let src = &variants(&work.join("neither"), w, 1, true)[0].0;
    let o = Command::new(strace)
        .args(["-f", "-qq", "-o", "/dev/null"])
        .args(["-e", "inject=link,linkat:error=EPERM"])
        .args(["-e", "inject=renameat2:error=EINVAL"])
        .args([BIN, "archive", "push", s(src), "--archive", s(&archive)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        err.contains("cannot rename without replacing") && err.contains(&w.first),
        "{}",
        text(&o)
    );
    assert!(names(&archive).is_empty(), "{:?}", names(&archive));
}

#[test]
fn dump_follow_on_a_live_server_prints_every_record() {
    let major = Major::V16;
    if require_major(major).is_none() {
        return;
    }
    // 1 MB segments, so the load below fills many; all are kept for the comparison.
    let c = Cluster::builder(major)
        .wal_segsize_mb(1)
        .set("wal_keep_size", "256MB")
        .start()
        .unwrap();
    let work = scratch_dir("hardening", "follow-live");
    let start = c.scalar_blocking("SELECT pg_current_wal_lsn()").unwrap();
    let out = work.join("follow.out");
    let mut follower = Command::new(BIN)
        .args(["dump", "--follow", "-p", s(&c.pg_wal_dir()), "-s", &start])
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(work.join("follow.err")).unwrap())
        .spawn()
        .unwrap();
    for _ in 0..12 {
        c.sql_load_blocking(1500).unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    let end = c
        .scalar_blocking("SELECT pg_current_wal_flush_lsn()")
        .unwrap();
    let end_lsn = pgwal_testkit::parse_lsn(&end).unwrap();
    // The follower catches up within its one-second polls.
    let deadline = Instant::now() + Duration::from_secs(30);
    let expected = loop {
        let o = pgwal(&["dump", "-p", s(&c.pg_wal_dir()), "-s", &start, "-e", &end]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let expected = record_lsns(&String::from_utf8_lossy(&o.stdout));
        let got = record_lsns(&fs::read_to_string(&out).unwrap());
        if got.iter().filter(|&&l| l < end_lsn).count() >= expected.len()
            || Instant::now() > deadline
        {
            break expected;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let status = follower.try_wait().unwrap();
    let err = fs::read_to_string(work.join("follow.err")).unwrap();
    assert!(status.is_none(), "the follower ended: {status:?}\n{err}");
    follower.kill().unwrap();
    follower.wait().unwrap();
    let got: Vec<u64> = record_lsns(&fs::read_to_string(&out).unwrap())
        .into_iter()
        .filter(|&l| l < end_lsn)
        .collect();
    let segments = (end_lsn - pgwal_testkit::parse_lsn(&start).unwrap()) >> 20;
    eprintln!(
        "followed {} records over about {segments} segments written live",
        got.len()
    );
    assert!(segments >= 5, "too little WAL: {start}..{end}");
    assert!(
        got == expected,
        "the follower printed {} records before {end}, a reader afterwards {}\n{err}",
        got.len(),
        expected.len()
    );
}
