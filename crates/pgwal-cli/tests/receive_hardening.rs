//! `pgwal receive` against hostile peers: a flood of idle connections on the metrics endpoint
//! under a low file-descriptor limit (a real server streams WAL meanwhile, and the archive must
//! still complete), and a fake server sending impossible `wal_block_size` and
//! `wal_segment_size` values, an oversized message and an endless result set (each a clear
//! error, no panic, no huge allocation).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgwal::{Lsn, WalFileName, WalSegSize};
use pgwal_testkit::{format_lsn, parse_lsn, require_major, Cluster, Major};

const BIN: &str = env!("CARGO_BIN_EXE_pgwal");
const SEG: u64 = 1 << 20;

fn seg_size() -> WalSegSize {
    WalSegSize::new(SEG as u32).unwrap()
}

/// A 1 MB-segment cluster that keeps its WAL (so the archive can be compared with it).
fn cluster(major: Major) -> Option<Cluster> {
    require_major(major)?;
    Some(
        Cluster::builder(major)
            .wal_segsize_mb(1)
            .set("wal_keep_size", "2GB")
            .set("max_wal_size", "256MB")
            .set("checkpoint_timeout", "1h")
            .start()
            .unwrap(),
    )
}

fn conn(c: &Cluster) -> String {
    format!(
        "host=127.0.0.1 port={} user=postgres sslmode=disable",
        c.port()
    )
}

fn sql(c: &Cluster, q: &str) -> String {
    c.scalar_blocking(q).unwrap()
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Starts `pgwal receive` with at most `nofile` open files, its stderr appended to `log`.
fn spawn_limited(args: &[&str], log: &Path, nofile: u64) -> Child {
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("receive")
        .args(args)
        .stdout(Stdio::null())
        .stderr(f);
    // SAFETY: only setrlimit, async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: nofile,
                rlim_max: nofile,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().expect("spawn pgwal receive")
}

/// Complete segments (plain) in `dir`, by segment number.
fn complete_segments(dir: &Path) -> BTreeMap<u64, String> {
    fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            match WalFileName::parse(&n)? {
                w @ WalFileName::Segment { partial: false, .. } => {
                    Some((w.segno(seg_size())?.0, n))
                }
                _ => None,
            }
        })
        .collect()
}

/// One GET /metrics; the whole answer, or the error.
fn get_metrics(addr: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body)
}

/// How long until the server closes an idle connection (reads EOF), at most `limit`.
fn time_to_close(s: &mut TcpStream, limit: Duration) -> Duration {
    let t0 = Instant::now();
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 16];
    let _ = s.read(&mut b);
    t0.elapsed()
}

/// Keeps `n` idle connections to `addr` open, replaced every half second, until `stop`.
fn flood(addr: String, n: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut opened = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let held: Vec<TcpStream> = (0..n)
                .filter_map(|_| TcpStream::connect(&addr).ok())
                .collect();
            opened += held.len() as u64;
            std::thread::sleep(Duration::from_millis(500));
            drop(held);
        }
        opened
    })
}

// ---------------------------------------------------------------------------------------------
// The metrics endpoint under a flood, with 64 file descriptors.

#[test]
fn metrics_flood_under_low_fd_limit() {
    let Some(pg) = cluster(Major::V17) else {
        return;
    };
    let tmp = tempfile::Builder::new()
        .prefix("pgwal-hardening-flood-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    let log = tmp.path().join("receive.log");
    let addr = format!("127.0.0.1:{}", free_port());
    let ci = conn(&pg);
    let mut child = spawn_limited(
        &[
            "-d",
            &ci,
            "-D",
            dir.to_str().unwrap(),
            "--metrics-addr",
            &addr,
            "-s",
            "1",
            "--max-retry-delay",
            "1",
        ],
        &log,
        64,
    );
    let t0 = Instant::now();
    while get_metrics(&addr).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no metrics endpoint"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The cap: 16 idle connections are served (and closed after the 2 s request limit, not
    // 5 s); one more is closed at once.
    let mut idle: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(&addr).unwrap();
    let waited = time_to_close(&mut extra, Duration::from_secs(10));
    assert!(
        waited < Duration::from_secs(1),
        "17th connection kept {waited:?}"
    );
    let waited = time_to_close(&mut idle[0], Duration::from_secs(10));
    assert!(
        waited < Duration::from_millis(2500),
        "an idle connection was kept {waited:?}"
    );
    drop(idle);

    // The flood: 100 idle connections held at all times, while WAL is generated in whole
    // segments and the walsender is terminated (forcing reconnections).
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood(addr.clone(), 100, stop.clone());
    std::thread::sleep(Duration::from_secs(1));
    pg.query_blocking("CREATE TABLE IF NOT EXISTS f (x int, pad text)")
        .unwrap();
    for round in 0..6 {
        pg.query_blocking(
            "INSERT INTO f SELECT g, repeat('x', 200) FROM generate_series(1, 3000) g",
        )
        .unwrap();
        sql(&pg, "SELECT pg_switch_wal()");
        if round % 2 == 1 {
            let t = Instant::now();
            while sql(
                &pg,
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_replication",
            ) == "0"
            {
                assert!(
                    t.elapsed() < Duration::from_secs(30),
                    "receiver never reconnected"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    // Every segment before the current one must be archived while the flood goes on.
    let end = parse_lsn(&sql(&pg, "SELECT pg_current_wal_insert_lsn()")).unwrap();
    let last = Lsn(end).segment(seg_size()).0 - 1;
    let t = Instant::now();
    while complete_segments(&dir).last_key_value().map(|(k, _)| *k) < Some(last) {
        let log_text = fs::read_to_string(&log).unwrap_or_default();
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "segment {last:X} was not archived during the flood (up to {})\n{log_text}",
            format_lsn(end)
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "receiver died\n{log_text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::SeqCst);
    let opened = flooder.join().unwrap();
    assert!(opened >= 200, "the flood opened only {opened} connections");

    // The endpoint still answers, and counts the three reconnections.
    let t = Instant::now();
    loop {
        let body = get_metrics(&addr).unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        let reconnects = body
            .lines()
            .find_map(|l| l.strip_prefix("pgwal_receive_reconnects_total "))
            .unwrap_or_else(|| panic!("no reconnects in {body}"));
        if reconnects.parse::<f64>().unwrap() >= 3.0 {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "{body}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    let log_text = fs::read_to_string(&log).unwrap();
    assert!(st.success(), "{st:?}\n{log_text}");
    assert!(
        !log_text.contains("Too many open files"),
        "the receiver ran out of descriptors:\n{log_text}"
    );
    // Complete segments equal the server's, with no gap from the first to `last`.
    let segs = complete_segments(&dir);
    let first = *segs.keys().next().unwrap();
    assert_eq!(
        segs.keys().copied().collect::<Vec<_>>(),
        (first..=segs.keys().last().copied().unwrap()).collect::<Vec<_>>(),
        "gap in the archive"
    );
    assert!(segs.len() >= 6, "{segs:?}");
    for name in segs.values() {
        let ours = fs::read(dir.join(name)).unwrap();
        let server = fs::read(pg.pg_wal_dir().join(name)).unwrap();
        assert!(ours == server, "{name} differs from the server's");
    }
}

// ---------------------------------------------------------------------------------------------
// Memory: a record of 200 MB is held once, not twice.

/// `VmHWM` (peak resident set) of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

#[test]
fn large_record_is_held_once() {
    let Some(pg) = cluster(Major::V17) else {
        return;
    };
    let tmp = tempfile::Builder::new()
        .prefix("pgwal-hardening-bigrecord-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    let log = tmp.path().join("receive.log");
    let ci = conn(&pg);
    let mut child = spawn_limited(
        &["-d", &ci, "-D", dir.to_str().unwrap(), "-s", "1"],
        &log,
        1024,
    );
    let t = Instant::now();
    while sql(&pg, "SELECT count(*) FROM pg_stat_replication") != "1" {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "receiver did not connect"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = peak_rss(child.id());
    const RECORD: u64 = 200 << 20;
    let start = parse_lsn(&sql(
        &pg,
        &format!("SELECT pg_logical_emit_message(false, 'x', repeat('x', {RECORD}))"),
    ))
    .unwrap();
    sql(&pg, "SELECT pg_switch_wal()");
    let end = parse_lsn(&sql(&pg, "SELECT pg_current_wal_insert_lsn()")).unwrap();
    let last = Lsn(end).segment(seg_size()).0 - 1;
    let t = Instant::now();
    while complete_segments(&dir).last_key_value().map(|(k, _)| *k) < Some(last) {
        let log_text = fs::read_to_string(&log).unwrap_or_default();
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "segment {last:X} was not archived\n{log_text}"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "receiver died\n{log_text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let peak = peak_rss(child.id());
    eprintln!(
        "record of {} MB at {}: peak RSS {} MB before, {} MB after",
        RECORD >> 20,
        format_lsn(start),
        before >> 20,
        peak >> 20
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    let log_text = fs::read_to_string(&log).unwrap();
    assert!(st.success(), "{st:?}\n{log_text}");
    for (segno, name) in complete_segments(&dir) {
        let ours = fs::read(dir.join(&name)).unwrap();
        let server = fs::read(pg.pg_wal_dir().join(&name)).unwrap();
        assert!(
            ours == server,
            "{name} ({segno:X}) differs from the server's"
        );
    }
    assert!(
        complete_segments(&dir).len() as u64 >= RECORD / SEG,
        "{:?}",
        complete_segments(&dir)
    );
    // Held once: the record (plus page headers and read buffers), not twice.
    assert!(
        peak < before + RECORD * 3 / 2,
        "peak RSS {} MB for a record of {} MB",
        peak >> 20,
        RECORD >> 20
    );
}
