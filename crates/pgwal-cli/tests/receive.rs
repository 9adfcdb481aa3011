//! `pgwal receive` against real servers: the archive is byte-identical to pg_receivewal's and to
//! the server's own segments (plain, gzip, lz4, zstd), survives kill -9 of the receiver under
//! load, loses no commit acknowledged with `--synchronous` when the primary is killed, follows
//! a promotion, and handles a full disk; plus the lock file, signals and metrics.

#![allow(clippy::unwrap_used)]

mod support;

use support::*;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgwal::wal::{DecoderConfig, WalDecoder};
use pgwal::{Compression, Lsn, WalFileName, WalSegSize};
use pgwal_testkit::{format_lsn, parse_lsn, Cluster, Major, PgbenchLength};

const SEG: u64 = 1 << 20;

fn seg_size() -> WalSegSize {
    WalSegSize::new(SEG as u32).unwrap()
}

/// WAL file names in `dir` (no lock file, no temporary files).
fn wal_files(dir: &Path) -> BTreeMap<String, WalFileName> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            WalFileName::parse(&n).map(|w| (n, w))
        })
        .collect()
}

fn read_plain(path: &Path, kind: Compression) -> Vec<u8> {
    let data = fs::read(path).unwrap();
    pgwal::storage::codec::decompress(kind, &data)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks every WAL file in `archive` against the server's `pg_wal`: complete segments
/// byte for byte, partial ones up to `limit` (an LSN) within their segment. Returns the
/// number of complete segments.
fn check_against_server(archive: &Path, pg_wal: &Path, limit: u64) -> usize {
    let mut complete = 0;
    for (name, w) in wal_files(archive) {
        let WalFileName::Segment {
            partial,
            compression,
            ..
        } = w
        else {
            continue;
        };
        let base = w.base_segment_name().unwrap();
        let server = fs::read(pg_wal.join(&base))
            .unwrap_or_else(|e| panic!("server segment {base} for {name}: {e}"));
        let ours = read_plain(&archive.join(&name), compression);
        let seg_start = w.segno(seg_size()).unwrap().0 * SEG;
        if partial {
            if compression == Compression::None {
                assert_eq!(ours.len() as u64, SEG, "{name} is not padded");
            }
            let n = (limit.saturating_sub(seg_start))
                .min(SEG)
                .min(ours.len() as u64) as usize;
            assert!(
                ours[..n] == server[..n],
                "{name}: first {n} bytes differ from the server's {base}"
            );
        } else {
            assert!(ours == server, "{name} differs from the server's {base}");
            complete += 1;
        }
    }
    complete
}

/// Segments of `archive`: (tli, segno) → names; asserts no segment is there twice.
fn segments(archive: &Path) -> BTreeMap<(u32, u64), String> {
    let mut out = BTreeMap::new();
    for (name, w) in wal_files(archive) {
        if let WalFileName::Segment { tli, .. } = w {
            let seg = w.segno(seg_size()).unwrap().0;
            if let Some(other) = out.insert((tli.0, seg), name.clone()) {
                panic!("segment stored twice: {other} and {name}");
            }
        }
    }
    out
}

fn assert_contiguous(segs: &BTreeMap<(u32, u64), String>, tli: u32) -> (u64, u64) {
    let nos: Vec<u64> = segs.keys().filter(|k| k.0 == tli).map(|k| k.1).collect();
    assert!(!nos.is_empty(), "no segments on timeline {tli}");
    for w in nos.windows(2) {
        assert_eq!(
            w[1],
            w[0] + 1,
            "gap in the archive after segment {:X}: {segs:?}",
            w[0]
        );
    }
    let last = *nos.last().unwrap();
    for (k, name) in segs {
        if k.0 == tli && k.1 != last {
            assert!(
                !name.ends_with(".partial"),
                "{name} is partial but not the last segment"
            );
        }
    }
    (nos[0], last)
}

// ---------------------------------------------------------------------------------------------
// (a) The same archive as pg_receivewal, and as the server's own segments.

fn same_archive(major: Major, in_depth: bool) {
    let Some(pg) = cluster(major) else { return };
    let ci = conn(&pg);
    // Slots created before the WAL is written, each reserving WAL at once: one for
    // pg_receivewal, one per pgwal run.
    let names = ["pgrw", "plain", "gz", "lz4", "zst"];
    let used = if in_depth { &names[..] } else { &names[..2] };
    for n in used {
        if *n == "plain" {
            let o = receive(
                &["-d", &ci, "-S", n, "--create-slot"],
                Duration::from_secs(60),
            );
            assert!(o.status.success(), "{}", text(&o));
            // --if-not-exists makes a second creation a no-op.
            let o = receive(
                &["-d", &ci, "-S", n, "--create-slot", "--if-not-exists"],
                Duration::from_secs(60),
            );
            assert!(o.status.success(), "{}", text(&o));
        } else {
            sql(
                &pg,
                &format!("SELECT lsn FROM pg_create_physical_replication_slot('{n}', true)"),
            );
        }
    }
    let restart = sql(
        &pg,
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'plain'",
    );
    assert!(
        parse_lsn(&restart).is_some(),
        "--create-slot must reserve WAL, restart_lsn = {restart:?}"
    );

    let tmp = scratch(&format!("same{major}"));
    let pgrw_dir = tmp.path().join("pg_receivewal");
    fs::create_dir(&pgrw_dir).unwrap();
    let pg_receivewal = pg.binaries().pg_receivewal().unwrap();
    let ours = tmp.path().join("plain");
    fs::create_dir(&ours).unwrap();
    let (end, endpos);
    if major >= Major::V15 {
        // Both start from their slot's restart_lsn (READ_REPLICATION_SLOT), then stop at -E.
        pg.sql_load_blocking(20_000).unwrap();
        sql(&pg, "SELECT pg_switch_wal()");
        pg.sql_load_blocking(2_000).unwrap();
        end = lsn(&pg, "SELECT pg_current_wal_flush_lsn()");
        endpos = format_lsn(end - 1);
        let mut c = Command::new(&pg_receivewal);
        c.args(["-d", &ci, "-S", "pgrw", "-n", "-E", &endpos, "-D"])
            .arg(&pgrw_dir);
        let o = run_limited(c, Duration::from_secs(120));
        assert!(o.status.success(), "pg_receivewal: {}", text(&o));
        let o = receive(
            &[
                "-d",
                &ci,
                "-S",
                "plain",
                "-n",
                "-E",
                &endpos,
                "-D",
                ours.to_str().unwrap(),
            ],
            Duration::from_secs(120),
        );
        assert!(o.status.success(), "{}", text(&o));
    } else {
        // No READ_REPLICATION_SLOT before 15: both start at the server's position, so run
        // them side by side while the WAL is written, then stop them with SIGINT.
        let log = tmp.path().join("pgrw.log");
        let mut a = Command::new(&pg_receivewal)
            .args(["-d", &ci, "-S", "pgrw", "-n", "-D"])
            .arg(&pgrw_dir)
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut b = spawn_receive(
            &["-d", &ci, "-S", "plain", "-n", "-D", ours.to_str().unwrap()],
            &tmp.path().join("ours.log"),
        );
        let t = Instant::now();
        while sql(
            &pg,
            "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
        ) != "2"
        {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "receivers did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        pg.sql_load_blocking(20_000).unwrap();
        sql(&pg, "SELECT pg_switch_wal()");
        pg.sql_load_blocking(2_000).unwrap();
        end = lsn(&pg, "SELECT pg_current_wal_flush_lsn()");
        endpos = format_lsn(end - 1);
        let q = format!(
            "SELECT count(*) FROM pg_stat_replication WHERE write_lsn >= '{}'",
            format_lsn(end)
        );
        while sql(&pg, &q) != "2" {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "receivers did not catch up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        for child in [&mut a, &mut b] {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
            assert!(child.wait().unwrap().success());
        }
    }
    let _ = &endpos;

    // The same files, byte for byte (pg_receivewal wrote past -E what the last message held;
    // so did we; compare partials up to -E).
    let a = wal_files(&pgrw_dir);
    let b = wal_files(&ours);
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        b.keys().collect::<Vec<_>>(),
        "file names differ"
    );
    for (name, w) in &a {
        let x = fs::read(pgrw_dir.join(name)).unwrap();
        let y = fs::read(ours.join(name)).unwrap();
        if matches!(w, WalFileName::Segment { partial: true, .. }) {
            let seg_start = w.segno(seg_size()).unwrap().0 * SEG;
            let n = (end - seg_start) as usize;
            assert_eq!(x.len(), y.len(), "{name}: sizes differ");
            assert!(x[..n] == y[..n], "{name}: differs from pg_receivewal's");
        } else {
            assert!(x == y, "{name}: differs from pg_receivewal's");
        }
    }
    let complete = check_against_server(&ours, &pg.pg_wal_dir(), end);
    assert!(
        complete >= 2,
        "expected several complete segments, got {complete}: {b:?}"
    );
    let segs = segments(&ours);
    assert_contiguous(&segs, 1);
    assert!(ours.join(pgwal::receiver::LOCK_FILE).exists());

    if !in_depth {
        return;
    }
    // Compressed archives decompress to the same bytes.
    for (slot, method, suffix) in [
        ("gz", "gzip", ".gz"),
        ("lz4", "lz4", ".lz4"),
        ("zst", "zstd:level=5", ".zst"),
    ] {
        let dir = tmp.path().join(slot);
        fs::create_dir(&dir).unwrap();
        let o = receive(
            &[
                "-d",
                &ci,
                "-S",
                slot,
                "-n",
                "-E",
                &endpos,
                "-Z",
                method,
                "-D",
                dir.to_str().unwrap(),
            ],
            Duration::from_secs(120),
        );
        assert!(o.status.success(), "-Z {method}: {}", text(&o));
        let files = wal_files(&dir);
        assert_eq!(files.len(), b.len(), "-Z {method}: {files:?}");
        for (name, w) in &files {
            let WalFileName::Segment {
                partial,
                compression,
                ..
            } = w
            else {
                continue;
            };
            assert!(name.contains(suffix), "{name}");
            let plain_name = w.with(Compression::None, *partial).to_string();
            let want = fs::read(ours.join(&plain_name)).unwrap();
            let got = read_plain(&dir.join(name), *compression);
            if *partial {
                let seg_start = w.segno(seg_size()).unwrap().0 * SEG;
                let n = (end - seg_start) as usize;
                assert!(
                    got.len() >= n && got[..n] == want[..n],
                    "{name} (-Z {method}) differs"
                );
            } else {
                assert!(got == want, "{name} (-Z {method}) differs");
            }
        }
    }
}

#[test]
fn same_archive_as_pg_receivewal_15() {
    same_archive(Major::V15, true);
}

#[test]
fn same_archive_as_pg_receivewal_18() {
    same_archive(Major::V18, true);
}

#[test]
fn same_archive_as_pg_receivewal_19() {
    same_archive(Major::V19, true);
}

#[test]
fn same_archive_smoke_13_14_16_17() {
    for m in [Major::V13, Major::V14, Major::V16, Major::V17] {
        same_archive(m, false);
    }
}

// ---------------------------------------------------------------------------------------------
// (b) kill -9 of the receiver at random moments under load.

/// A small xorshift generator, seeded from the clock (printed, so a failure can be replayed
/// with PGWAL_TEST_SEED).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("PGWAL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("random seed {seed} (set PGWAL_TEST_SEED to repeat)");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Runs pgbench against `pg` on a thread until `stop` is set.
fn pgbench_until(pg: Arc<Cluster>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let _ = pg.pgbench_run(2, PgbenchLength::Seconds(1));
        }
    })
}

/// What a crash between two renames can leave in `dir`, planted by hand: the newest partial
/// again under another format's name with half of its bytes (the old file of a resume into
/// another format), a complete segment's bytes as its `.partial` (the source of a partial
/// that was finished at a restart), an unfinished `.tmp` file of an older pgwal and a stale
/// temporary file of today's naming (two hours old: removed whoever wrote it). Returns the
/// names that must
/// go, and the pair of partials of which one must go.
fn plant_leftovers(dir: &Path) -> (Vec<String>, [String; 2]) {
    let files = wal_files(dir);
    let segment = |w: &WalFileName| match w {
        WalFileName::Segment {
            partial,
            compression,
            ..
        } => Some((*partial, *compression)),
        _ => None,
    };
    let (newest, newest_kind) = files
        .iter()
        .filter_map(|(n, w)| match segment(w) {
            Some((true, c)) => Some((n.clone(), c)),
            _ => None,
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .expect("no partial segment after the kills");
    let base = WalFileName::parse(&newest)
        .and_then(|w| w.base_segment_name())
        .unwrap();
    let mut half = read_plain(&dir.join(&newest), newest_kind);
    half.resize(SEG as usize, 0);
    half[SEG as usize / 2..].fill(0);
    let other = if newest_kind == Compression::None {
        let spec = pgwal::archive::CompressionSpec {
            kind: Compression::Zstd,
            level: None,
        };
        fs::write(
            dir.join(format!("{base}.zst.partial")),
            spec.compress(&half, 1).unwrap(),
        )
        .unwrap();
        format!("{base}.zst.partial")
    } else {
        fs::write(dir.join(format!("{base}.partial")), &half).unwrap();
        format!("{base}.partial")
    };
    let (complete, _) = files
        .iter()
        .find(|(_, w)| matches!(segment(w), Some((false, _))))
        .expect("no complete segment after the kills");
    let stale = format!("{complete}.partial");
    fs::copy(dir.join(complete), dir.join(&stale)).unwrap();
    let tmp = format!("{newest}.tmp");
    fs::write(dir.join(&tmp), b"cut short").unwrap();
    let temp = format!(".pgwal-tmp.{newest}.1.ff");
    let f = fs::File::create(dir.join(&temp)).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();
    (vec![stale, tmp, temp], [newest, other])
}

fn kill9_receiver(major: Major) {
    let Some(pg) = cluster(major) else { return };
    let pg = Arc::new(pg);
    let ci = conn(&pg);
    pg.pgbench_init(1).unwrap();
    let o = receive(
        &["-d", &ci, "-S", "arch", "--create-slot"],
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", text(&o));
    let tmp = scratch(&format!("kill{major}"));
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    let log = tmp.path().join("receive.log");
    let d = dir.to_str().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let bench = pgbench_until(pg.clone(), stop.clone());
    let mut rng = Rng::new();
    // 15 writes plain segments (byte-identical to the server's); 18 and 19 switch compression
    // at every restart, so partial segments are also resumed into another format.
    let methods: &[&str] = if major >= Major::V18 {
        &["zstd", "gzip", "lz4", "none"]
    } else {
        &["none"]
    };
    for i in 0..20 {
        let z = methods[i % methods.len()];
        let mut child = spawn_receive(
            &[
                "-d",
                &ci,
                "-S",
                "arch",
                "-D",
                d,
                "-s",
                "1",
                "--synchronous",
                "-Z",
                z,
            ],
            &log,
        );
        std::thread::sleep(Duration::from_millis(200 + rng.below(1300)));
        kill9(&mut child);
    }
    stop.store(true, Ordering::SeqCst);
    bench.join().unwrap();
    sql(&pg, "SELECT pg_switch_wal()");
    pg.sql_load_blocking(500).unwrap();
    let end = lsn(&pg, "SELECT pg_current_wal_flush_lsn()");
    let (must_go, one_of) = plant_leftovers(&dir);
    let o = receive(
        &[
            "-d",
            &ci,
            "-S",
            "arch",
            "-D",
            d,
            "-n",
            "-E",
            &format_lsn(end - 1),
        ],
        Duration::from_secs(300),
    );
    assert!(o.status.success(), "{}", text(&o));
    let log_text = fs::read_to_string(&log).unwrap() + &String::from_utf8_lossy(&o.stderr);
    for name in &must_go {
        assert!(
            log_text.contains(&format!("removing \"{name}\"")) && !dir.join(name).exists(),
            "leftover {name} not removed:\n{log_text}"
        );
    }
    assert!(
        one_of
            .iter()
            .any(|n| log_text.contains(&format!("removing \"{n}\""))),
        "neither of {one_of:?} removed:\n{log_text}"
    );
    let segs = segments(&dir);
    let (first, last) = assert_contiguous(&segs, 1);
    let complete = check_against_server(&dir, &pg.pg_wal_dir(), end);
    eprintln!(
        "kill -9 x20 ({major}): segments {first:X}..{last:X}, {complete} complete, {} leftover files removed",
        log_text.matches("removing ").count()
    );
    assert!(last > first + 3, "too little WAL: {segs:?}");
    assert!(
        log_text.contains("resuming \""),
        "no restart resumed a partial segment:\n{log_text}"
    );
    // The slot follows what is durable.
    let restart = lsn(
        &pg,
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'arch'",
    );
    assert!(
        restart >= end - 1 && restart <= end + SEG,
        "restart_lsn {} vs end {}",
        format_lsn(restart),
        format_lsn(end)
    );
}

#[test]
fn kill9_receiver_15() {
    kill9_receiver(Major::V15);
}

#[test]
fn kill9_receiver_18() {
    kill9_receiver(Major::V18);
}

#[test]
fn kill9_receiver_19() {
    kill9_receiver(Major::V19);
}

/// A `.partial` file holding no valid WAL (a receiver killed right after creating it: a zstd
/// frame with nothing in it) under another compression's name than this run's: its segment is
/// streamed again into a file of this run's format, and the empty file must go. It stayed
/// beside the segment once that was complete, which `kill9_receiver_19` once met as "segment
/// stored twice" (its last receive resumed such a file, kept over the planted plain copy as
/// equally long).
#[test]
fn partial_without_wal_under_another_format_goes() {
    let Some(pg) = cluster(Major::V19) else {
        return;
    };
    let ci = conn(&pg);
    let o = receive(
        &["-d", &ci, "-S", "empty", "--create-slot"],
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", text(&o));
    let first = lsn(
        &pg,
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'empty'",
    );
    let segno = pgwal::SegNo(first / SEG);
    let base = segno.file_name(pgwal::TimelineId(1), seg_size());
    let tmp = scratch("emptypartial");
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    let spec = pgwal::archive::CompressionSpec {
        kind: Compression::Zstd,
        level: None,
    };
    let empty = format!("{base}.zst.partial");
    fs::write(dir.join(&empty), spec.compress(&[], 1).unwrap()).unwrap();
    pg.sql_load_blocking(500).unwrap();
    sql(&pg, "SELECT pg_switch_wal()");
    pg.sql_load_blocking(500).unwrap();
    let end = lsn(&pg, "SELECT pg_current_wal_flush_lsn()");
    assert!(end / SEG > segno.0, "the segment did not end");
    let d = dir.to_str().unwrap();
    let o = receive(
        &[
            "-d",
            &ci,
            "-S",
            "empty",
            "-D",
            d,
            "-n",
            "-E",
            &format_lsn(end - 1),
        ],
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("\"{empty}\" holds no valid WAL")),
        "{}",
        text(&o)
    );
    let segs = segments(&dir);
    assert_eq!(segs.get(&(1, segno.0)), Some(&base), "{segs:?}");
    assert!(!dir.join(&empty).exists(), "{empty} left: {segs:?}");
    check_against_server(&dir, &pg.pg_wal_dir(), end);
}

// ---------------------------------------------------------------------------------------------
// (c) --synchronous: no acknowledged commit is missing after kill -9 of the primary.

/// Commit records in the archive: the xids (low 32 bits) of every `COMMIT` / `COMMIT PREPARED`.
fn archived_commits(dir: &Path, tli: u32) -> std::collections::HashSet<u32> {
    let segs = segments(dir);
    let cfg = DecoderConfig::new(seg_size());
    let mut out = std::collections::HashSet::new();
    let mut dec: Option<WalDecoder> = None;
    for ((t, seg), name) in &segs {
        if *t != tli {
            continue;
        }
        let w = WalFileName::parse(name).unwrap();
        let data = read_plain(&dir.join(name), w.compression());
        let d = dec.get_or_insert_with(|| WalDecoder::new(cfg, Lsn(seg * SEG)));
        let mut input: &[u8] = &data;
        loop {
            match d.decode(&mut input) {
                Ok(Some(r)) => {
                    // RM_XACT_ID = 1; XLOG_XACT_COMMIT = 0x00, COMMIT_PREPARED = 0x30.
                    let op = r.info() & 0x70;
                    if r.rmid() == 1 && (op == 0x00 || op == 0x30) {
                        out.insert(r.xid());
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_end_of_wal() => break,
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }
    out
}

fn synchronous_kill9_primary(major: Major) {
    let Some(pg) = cluster(major) else { return };
    let pg = Arc::new(pg);
    pg.pgbench_init(1).unwrap();
    pg.query_blocking("CREATE TABLE acked (id serial PRIMARY KEY, v text)")
        .unwrap();
    let ci = conn(&pg);
    let o = receive(
        &["-d", &ci, "-S", "sync", "--create-slot"],
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", text(&o));
    let tmp = scratch(&format!("sync{major}"));
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    let d = dir.to_str().unwrap().to_owned();
    let log = tmp.path().join("receive.log");
    let mut recv = spawn_receive(
        &[
            "-d",
            &ci,
            "-S",
            "sync",
            "-D",
            &d,
            "--synchronous",
            "--max-retry-delay",
            "1",
        ],
        &log,
    );
    // Commits wait for pgwal receive (its application name is "pgwal") from now on.
    pg.set_config("synchronous_standby_names", "pgwal").unwrap();
    pg.set_config("synchronous_commit", "on").unwrap();
    pg.reload().unwrap();
    let t = Instant::now();
    while sql(
        &pg,
        "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'",
    ) != "1"
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "pgwal receive is not a synchronous standby\n{}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Clients that record the xid of every transaction whose COMMIT returned success.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<u32>>> = Arc::new(Mutex::new(Vec::new()));
    let port = pg.port();
    let mut clients = Vec::new();
    for i in 0..3 {
        let (stop, acked) = (stop.clone(), acked.clone());
        clients.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let ci = format!(
                    "host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=5"
                );
                while !stop.load(Ordering::SeqCst) {
                    let Ok(client) = pgwal_testkit::connect(&ci).await else {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    loop {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        let r = async {
                            client.batch_execute("BEGIN").await?;
                            let row = client
                                .query_one(
                                    "INSERT INTO acked (v) VALUES ($1) RETURNING txid_current()",
                                    &[&format!("c{i}")],
                                )
                                .await?;
                            let xid: i64 = row.get(0);
                            client.batch_execute("COMMIT").await?;
                            Ok::<i64, pgwal_testkit::tokio_postgres::Error>(xid)
                        }
                        .await;
                        match r {
                            Ok(xid) => acked.lock().unwrap().push(xid as u32),
                            Err(_) => break,
                        }
                    }
                }
            })
        }));
    }
    let bench_stop = Arc::new(AtomicBool::new(false));
    let bench = pgbench_until(pg.clone(), bench_stop.clone());
    let mut rng = Rng::new();
    for round in 0..10 {
        std::thread::sleep(Duration::from_millis(500 + rng.below(1500)));
        let before = acked.lock().unwrap().len();
        pg.kill9().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        pg.start().unwrap();
        eprintln!("round {round}: {before} commits acknowledged before the kill");
    }
    // Let the clients commit a little more after the last restart, then stop everything.
    std::thread::sleep(Duration::from_secs(2));
    // A receiver that stopped would leave the clients waiting for it forever: fail instead.
    if let Some(st) = recv.try_wait().unwrap() {
        panic!(
            "pgwal receive exited during the test: {st:?}\n{}",
            fs::read_to_string(&log).unwrap()
        );
    }
    stop.store(true, Ordering::SeqCst);
    bench_stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    bench.join().unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(recv.id() as i32, libc::SIGTERM) };
    let status = recv.wait().unwrap();
    let log_text = fs::read_to_string(&log).unwrap();
    assert!(
        status.success(),
        "SIGTERM should end pgwal receive with 0: {status:?}\n{log_text}"
    );

    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "too few acknowledged commits: {}",
        acked.len()
    );
    let archived = archived_commits(&dir, 1);
    let missing: Vec<u32> = acked
        .iter()
        .copied()
        .filter(|x| !archived.contains(x))
        .collect();
    eprintln!(
        "{} acknowledged commits, {} commit records archived",
        acked.len(),
        archived.len()
    );
    assert!(
        missing.is_empty(),
        "acknowledged commits missing from the archive: {missing:?}\n{log_text}"
    );
    let segs = segments(&dir);
    assert_contiguous(&segs, 1);
}

#[test]
fn synchronous_kill9_primary_15() {
    synchronous_kill9_primary(Major::V15);
}

#[test]
fn synchronous_kill9_primary_18() {
    synchronous_kill9_primary(Major::V18);
}

#[test]
fn synchronous_kill9_primary_19() {
    synchronous_kill9_primary(Major::V19);
}

// ---------------------------------------------------------------------------------------------
// (d) A standby is promoted; the receiver follows it onto the new timeline.

fn follows_promotion(major: Major) {
    let Some(primary) = cluster(major) else {
        return;
    };
    let standby = primary.create_standby().unwrap();
    let tmp = scratch(&format!("promote{major}"));
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    let d = dir.to_str().unwrap().to_owned();
    let log = tmp.path().join("receive.log");
    // Both servers, in order: the receiver moves to the standby when the primary is gone.
    let ci = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=postgres sslmode=disable connect_timeout=5",
        primary.port(),
        standby.port()
    );
    let mut recv = spawn_receive(
        &[
            "-d",
            &ci,
            "-D",
            &d,
            "-s",
            "1",
            "--max-retry-delay",
            "1",
            "-v",
        ],
        &log,
    );
    primary.sql_load_blocking(10_000).unwrap();
    sql(&primary, "SELECT pg_switch_wal()");
    primary.sql_load_blocking(3_000).unwrap();
    primary.wait_for_catchup(&standby).unwrap();
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "timed out waiting for {what}\n{}",
                fs::read_to_string(&log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for("timeline 1 segments", &|| segments(&dir).len() >= 3);
    primary.stop_fast().unwrap();
    standby.promote().unwrap();
    standby.sql_load_blocking(10_000).unwrap();
    sql(&standby, "SELECT pg_switch_wal()");
    standby.sql_load_blocking(1_000).unwrap();
    let end = lsn(&standby, "SELECT pg_current_wal_flush_lsn()");
    wait_for("the archive to reach the end on timeline 2", &|| {
        segments(&dir)
            .keys()
            .any(|k| k.0 == 2 && (k.1 + 1) * SEG > end)
            && fs::read_to_string(&log).unwrap().contains("timeline 2")
    });
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(recv.id() as i32, libc::SIGINT) };
    assert!(
        recv.wait().unwrap().success(),
        "{}",
        fs::read_to_string(&log).unwrap()
    );
    let log_text = fs::read_to_string(&log).unwrap();
    eprintln!("--- pgwal receive log ---\n{log_text}");

    assert!(
        dir.join("00000002.history").exists(),
        "no history file:\n{log_text}"
    );
    let history = fs::read(dir.join("00000002.history")).unwrap();
    assert_eq!(
        history,
        fs::read(standby.pg_wal_dir().join("00000002.history")).unwrap()
    );
    let segs = segments(&dir);
    let (_, last1) = assert_contiguous(&segs, 1);
    let (first2, _) = assert_contiguous(&segs, 2);
    let h = pgwal::TimelineHistory::parse(&history).unwrap();
    let switch = h.switchpoint_of(pgwal::TimelineId(1)).unwrap().0;
    assert_eq!(
        first2,
        switch / SEG,
        "timeline 2 must start at the switch segment: {segs:?}"
    );
    assert!(
        last1 >= switch / SEG - u64::from(switch % SEG == 0),
        "gap before the switch: {segs:?}"
    );
    // The old timeline's last segment stays partial when the switch is inside it.
    if switch % SEG != 0 {
        assert!(segs[&(1, switch / SEG)].ends_with(".partial"), "{segs:?}");
    }
    // Timeline 1 equals the old primary's WAL, timeline 2 the new primary's.
    let only = |tli: u32, into: &Path| {
        fs::create_dir_all(into).unwrap();
        for (k, n) in &segs {
            if k.0 == tli {
                fs::copy(dir.join(n), into.join(n)).unwrap();
            }
        }
    };
    let t1 = tmp.path().join("t1");
    let t2 = tmp.path().join("t2");
    only(1, &t1);
    only(2, &t2);
    check_against_server(&t1, &primary.pg_wal_dir(), switch);
    let n2 = check_against_server(&t2, &standby.pg_wal_dir(), end);
    assert!(n2 >= 1, "{segs:?}");

    // The archive pgwal receive wrote across the promotion passes `pgwal archive verify`.
    let v = Command::new(BIN)
        .args(["archive", "verify", "--no-progress", "-A"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "archive verify failed on the received archive:\n{}",
        text(&v)
    );

    // pgwal dump reads across the switch.
    let first1 = segs.keys().find(|k| k.0 == 1).unwrap().1;
    let start = format_lsn(first1 * SEG + SEG); // a record boundary is found from a segment start
    let end = format_lsn(end);
    for mode in ["-q", "--stats"] {
        let args = [
            "dump",
            "--follow-timelines",
            "-p",
            &d,
            "-t",
            "2",
            "-s",
            &start,
        ];
        let o = Command::new(BIN)
            .args(args)
            .args(["-e", &end, mode])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "pgwal dump --follow-timelines {mode}: {}",
            text(&o)
        );
        if mode == "--stats" {
            assert!(
                String::from_utf8_lossy(&o.stdout).contains("\nTotal"),
                "--stats printed no totals: {}",
                text(&o)
            );
        }
    }
}

#[test]
fn follows_promotion_15() {
    follows_promotion(Major::V15);
}

#[test]
fn follows_promotion_18() {
    follows_promotion(Major::V18);
}

#[test]
fn follows_promotion_19() {
    follows_promotion(Major::V19);
}

// ---------------------------------------------------------------------------------------------
// (e) A full disk: a clear error, no damaged complete segment, and resuming once there is room.

fn mount_tmpfs(at: &Path, size: &str) -> bool {
    let o = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .output();
    matches!(o, Ok(o) if o.status.success())
}

fn umount(at: &Path) {
    let _ = Command::new("umount").arg(at).output();
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        umount(&self.0);
    }
}

#[test]
fn full_disk() {
    let Some(pg) = cluster(Major::V15) else {
        return;
    };
    let ci = conn(&pg);
    let o = receive(
        &["-d", &ci, "-S", "full", "--create-slot"],
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", text(&o));
    let tmp = scratch("full");
    let dir = tmp.path().join("small");
    fs::create_dir(&dir).unwrap();
    if !mount_tmpfs(&dir, "6m") {
        eprintln!("skipping full_disk: cannot mount a tmpfs (not root?)");
        return;
    }
    let _guard = Unmount(dir.clone());
    pg.sql_load_blocking(60_000).unwrap();
    sql(&pg, "SELECT pg_switch_wal()");
    pg.sql_load_blocking(500).unwrap();
    let end = lsn(&pg, "SELECT pg_current_wal_flush_lsn()");
    let d = dir.to_str().unwrap();
    let endpos = format_lsn(end - 1);
    let o = receive(
        &["-d", &ci, "-S", "full", "-D", d, "-n", "-E", &endpos],
        Duration::from_secs(120),
    );
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(err.contains("No space left on device"), "{}", text(&o));
    // Every complete segment is whole and correct.
    let complete = check_against_server(&dir, &pg.pg_wal_dir(), 0);
    assert!(complete >= 3, "{complete} complete segments");
    // Without -n the receiver keeps retrying while the disk is full...
    let log = tmp.path().join("receive.log");
    let mut child = spawn_receive(
        &[
            "-d",
            &ci,
            "-S",
            "full",
            "-D",
            d,
            "-E",
            &endpos,
            "--max-retry-delay",
            "1",
        ],
        &log,
    );
    let t = Instant::now();
    while fs::read_to_string(&log)
        .unwrap()
        .matches("No space left on device")
        .count()
        < 2
    {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "{}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // ... and goes on once there is room: move the complete segments away, grow the disk.
    let moved = tmp.path().join("moved");
    fs::create_dir(&moved).unwrap();
    for (name, w) in wal_files(&dir) {
        if matches!(w, WalFileName::Segment { partial: false, .. }) {
            fs::copy(dir.join(&name), moved.join(&name)).unwrap();
            fs::remove_file(dir.join(&name)).unwrap();
        }
    }
    let o = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let status = wait_exit(&mut child, Duration::from_secs(120), &log);
    assert!(status.success(), "{}", fs::read_to_string(&log).unwrap());
    for (name, _) in wal_files(&dir) {
        fs::copy(dir.join(&name), moved.join(&name)).unwrap();
    }
    let segs = segments(&moved);
    assert_contiguous(&segs, 1);
    check_against_server(&moved, &pg.pg_wal_dir(), end);
}

// ---------------------------------------------------------------------------------------------
// Lock file, signals, metrics.

#[test]
fn lock_signals_and_metrics() {
    let Some(pg) = cluster(Major::V16) else {
        return;
    };
    let ci = conn(&pg);
    let tmp = scratch("misc");
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let log = tmp.path().join("receive.log");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    let mut child = spawn_receive(
        &[
            "-d",
            &ci,
            "-D",
            d,
            "--metrics-addr",
            &addr,
            "--report-apply",
            "-s",
            "1",
        ],
        &log,
    );
    pg.sql_load_blocking(5_000).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    // A second receiver on the same directory is refused.
    let o = receive(&["-d", &ci, "-D", d, "-n"], Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("in use by another pgwal receive"),
        "{}",
        text(&o)
    );
    // Metrics.
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    let value = |name: &str| -> u64 {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("pgwal_receive_{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {body}"))
            .parse::<f64>()
            .unwrap() as u64
    };
    assert!(value("received_bytes_total") > 0, "{body}");
    assert!(value("flushed_lsn") > 0, "{body}");
    assert_eq!(value("streaming"), 1, "{body}");
    // pg_stat_replication sees the application name, and apply is reported.
    let row = sql(
        &pg,
        "SELECT application_name || ' ' || (replay_lsn IS NOT NULL) FROM pg_stat_replication",
    );
    assert_eq!(row, "pgwal true");
    // SIGTERM: exit 0, the partial segment fsynced and kept.
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    let log_text = fs::read_to_string(&log).unwrap();
    assert!(st.success(), "{st:?}\n{log_text}");
    assert!(
        log_text.contains("received interrupt signal, exiting"),
        "{log_text}"
    );
    assert!(
        wal_files(&dir).keys().any(|n| n.ends_with(".partial")),
        "{log_text}"
    );
    // A restart resumes the partial at its valid end.
    let end = lsn(&pg, "SELECT pg_current_wal_flush_lsn()");
    let o = receive(
        &["-d", &ci, "-D", d, "-n", "-E", &format_lsn(end - 1), "-v"],
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("resuming \""),
        "{}",
        text(&o)
    );
    check_against_server(&dir, &pg.pg_wal_dir(), end);
    // No retry loop with -n when nothing listens.
    let o = receive(
        &["-h", "127.0.0.1", "-p", "1", "-D", d, "-n"],
        Duration::from_secs(30),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("disconnected"),
        "{}",
        text(&o)
    );
}

// ---------------------------------------------------------------------------------------------
// Validation: WAL damaged in transit stops the receiver; the archive keeps only valid WAL.

#[test]
fn damaged_wal_is_refused() {
    let Some(pg) = cluster(Major::V17) else {
        return;
    };
    pg.sql_load_blocking(20_000).unwrap();
    let o = receive(
        &["-d", &conn(&pg), "-S", "v", "--create-slot"],
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", text(&o));
    pg.sql_load_blocking(30_000).unwrap();
    let end = lsn(&pg, "SELECT pg_current_wal_flush_lsn()");
    let port = corrupting_proxy(pg.port(), 2_500_000);
    let tmp = scratch("damaged");
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    let ci = format!("host=127.0.0.1 port={port} user=postgres sslmode=disable");
    // Not -n: a validation failure is fatal anyway.
    let o = receive(
        &[
            "-d",
            &ci,
            "-S",
            "v",
            "-D",
            dir.to_str().unwrap(),
            "-E",
            &format_lsn(end - 1),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    eprintln!("{err}");
    assert!(err.contains("failed validation"), "{}", text(&o));
    // What is on disk is valid: complete segments equal the server's, and the partial one
    // holds nothing but the server's bytes (then zeros).
    check_against_server(&dir, &pg.pg_wal_dir(), 0);
    for (name, w) in wal_files(&dir) {
        if let WalFileName::Segment { partial: true, .. } = w {
            let ours = fs::read(dir.join(&name)).unwrap();
            let server = fs::read(pg.pg_wal_dir().join(w.base_segment_name().unwrap())).unwrap();
            let n = ours.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
            assert!(
                ours[..n] == server[..n],
                "{name} holds bytes that are not the server's"
            );
        }
    }
}
