//! `pgwal receive` against hostile peers and huge records: a flood of idle connections on the
//! metrics endpoint under a low file-descriptor limit (a real server streams WAL meanwhile, and
//! the archive must still complete); a 200 MB record held once in memory, and a 20 MB one
//! damaged in transit refused; and a fake server sending impossible `wal_block_size` and
//! `wal_segment_size` values, an oversized message and an endless result set (each a clear
//! error, no panic, no huge allocation).

#![allow(clippy::unwrap_used)]

mod support;

use support::*;

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
use pgwal_testkit::{format_lsn, parse_lsn, Major};

const SEG: u64 = 1 << 20;

fn seg_size() -> WalSegSize {
    WalSegSize::new(SEG as u32).unwrap()
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

/// Sets the open-file limit of a running process (`prlimit`).
fn set_nofile(pid: u32, n: u64) {
    let lim = libc::rlimit {
        rlim_cur: n,
        rlim_max: 64,
    };
    // SAFETY: prlimit on our own child with a valid limit; the old limit is not read.
    let r = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &lim,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(r, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// User plus system CPU time of a process, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses): utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
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
    let (cpu0, t_flood) = (cpu_seconds(child.id()), Instant::now());
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
    // The flood costs the receiver little CPU (no accept loop spinning).
    let (cpu, wall) = (
        cpu_seconds(child.id()) - cpu0,
        t_flood.elapsed().as_secs_f64(),
    );
    eprintln!("flood: {opened} connections in {wall:.1} s; receiver CPU {cpu:.2} s");
    assert!(
        cpu < wall / 2.0,
        "receiver used {cpu:.2} s of CPU in {wall:.1} s"
    );

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
    let log_text = fs::read_to_string(&log).unwrap();
    assert!(
        !log_text.contains("Too many open files"),
        "the receiver ran out of descriptors:\n{log_text}"
    );

    // accept() failing (EMFILE: the limit lowered to 2 descriptors above those open, the
    // server idle) neither ends the listener nor spins: little CPU, and once the limit is
    // back the endpoint answers again.
    let open = fs::read_dir(format!("/proc/{}/fd", child.id()))
        .unwrap()
        .count() as u64;
    set_nofile(child.id(), open + 2);
    let (cpu0, t_emfile) = (cpu_seconds(child.id()), Instant::now());
    let stop = Arc::new(AtomicBool::new(false));
    let flooder = flood(addr.clone(), 50, stop.clone());
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    flooder.join().unwrap();
    let (cpu, wall) = (
        cpu_seconds(child.id()) - cpu0,
        t_emfile.elapsed().as_secs_f64(),
    );
    eprintln!("accept errors: receiver CPU {cpu:.2} s in {wall:.1} s ({open} descriptors open)");
    assert!(
        cpu < wall / 4.0,
        "receiver used {cpu:.2} s of CPU in {wall:.1} s"
    );
    set_nofile(child.id(), 64);
    let t = Instant::now();
    loop {
        match get_metrics(&addr) {
            Ok(body) if body.starts_with("HTTP/1.1 200 OK") => break,
            other => assert!(t.elapsed() < Duration::from_secs(10), "{other:?}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log_text = fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("metrics endpoint: could not accept a connection: Too many open files"),
        "{log_text}"
    );

    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    let log_text = fs::read_to_string(&log).unwrap();
    assert!(st.success(), "{st:?}\n{log_text}");
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

// ---------------------------------------------------------------------------------------------
// A hostile server: impossible sizes, an oversized message, an endless result set.

/// What the fake server does wrong.
#[derive(Clone, Copy, Debug)]
enum Hostile {
    /// Answers `SHOW wal_block_size` with this.
    BlockSize(&'static str),
    /// Answers `SHOW wal_segment_size` with this.
    SegSize(&'static str),
    /// Answers `IDENTIFY_SYSTEM` with a row whose message claims 2 GB.
    HugeMessage,
    /// Answers `IDENTIFY_SYSTEM` with rows until the client hangs up.
    EndlessRows,
}

fn backend(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    m.extend_from_slice(body);
    m
}

fn row_description(names: &[&str]) -> Vec<u8> {
    let mut b = (names.len() as u16).to_be_bytes().to_vec();
    for n in names {
        b.extend_from_slice(n.as_bytes());
        b.push(0);
        b.extend_from_slice(&0u32.to_be_bytes()); // table
        b.extend_from_slice(&0u16.to_be_bytes()); // column
        b.extend_from_slice(&25u32.to_be_bytes()); // text
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&0u16.to_be_bytes());
    }
    backend(b'T', &b)
}

fn data_row(values: &[Option<&str>]) -> Vec<u8> {
    let mut b = (values.len() as u16).to_be_bytes().to_vec();
    for v in values {
        match v {
            Some(v) => {
                b.extend_from_slice(&(v.len() as i32).to_be_bytes());
                b.extend_from_slice(v.as_bytes());
            }
            None => b.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    backend(b'D', &b)
}

fn cstring(s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    b
}

/// One row of one column, then the command's completion.
fn answer(name: &str, value: &str, tag: &str) -> Vec<u8> {
    let mut m = row_description(&[name]);
    m.extend(data_row(&[Some(value)]));
    m.extend(backend(b'C', &cstring(tag)));
    m.extend(backend(b'Z', b"I"));
    m
}

/// Serves one replication connection as a PostgreSQL 17 server gone wrong.
fn serve_hostile(mut s: TcpStream, h: Hostile) -> std::io::Result<()> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut startup = vec![0u8; u32::from_be_bytes(len) as usize - 4];
    s.read_exact(&mut startup)?;
    let mut hello = backend(b'R', &0u32.to_be_bytes());
    for (k, v) in [("server_version", "17.0"), ("integer_datetimes", "on")] {
        let mut b = cstring(k);
        b.extend(cstring(v));
        hello.extend(backend(b'S', &b));
    }
    hello.extend(backend(b'K', &[0, 0, 0, 1, 0, 0, 0, 2]));
    hello.extend(backend(b'Z', b"I"));
    s.write_all(&hello)?;
    loop {
        let mut head = [0u8; 5];
        s.read_exact(&mut head)?;
        let mut body =
            vec![0u8; u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize - 4];
        s.read_exact(&mut body)?;
        if head[0] != b'Q' {
            return Ok(());
        }
        let q = String::from_utf8_lossy(&body)
            .trim_end_matches('\0')
            .to_owned();
        if q.starts_with("IDENTIFY_SYSTEM") {
            let cols = ["systemid", "timeline", "xlogpos", "dbname"];
            let mut m = row_description(&cols);
            match h {
                Hostile::HugeMessage => {
                    m.push(b'D');
                    m.extend_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
                    m.extend_from_slice(&[0u8; 4096]);
                    s.write_all(&m)?;
                    std::thread::sleep(Duration::from_secs(5));
                    return Ok(());
                }
                Hostile::EndlessRows => {
                    s.write_all(&m)?;
                    let row = data_row(&[Some("7"), Some("1"), Some("0/1000000"), None]);
                    let batch: Vec<u8> =
                        row.iter().copied().cycle().take(row.len() * 1000).collect();
                    loop {
                        s.write_all(&batch)?;
                    }
                }
                _ => {
                    m.extend(data_row(&[
                        Some("7000000000000000001"),
                        Some("1"),
                        Some("0/1000000"),
                        None,
                    ]));
                    m.extend(backend(b'C', &cstring("IDENTIFY_SYSTEM")));
                    m.extend(backend(b'Z', b"I"));
                    s.write_all(&m)?;
                }
            }
        } else if q == "SHOW wal_segment_size" {
            let v = match h {
                Hostile::SegSize(v) => v,
                _ => "1MB",
            };
            s.write_all(&answer("wal_segment_size", v, "SHOW"))?;
        } else if q == "SHOW wal_block_size" {
            let v = match h {
                Hostile::BlockSize(v) => v,
                _ => "8192",
            };
            s.write_all(&answer("wal_block_size", v, "SHOW"))?;
        } else {
            let mut e = Vec::new();
            for (t, v) in [(b'S', "ERROR"), (b'C', "0A000"), (b'M', "not in this test")] {
                e.push(t);
                e.extend(cstring(v));
            }
            e.push(0);
            let mut m = backend(b'E', &e);
            m.extend(backend(b'Z', b"I"));
            s.write_all(&m)?;
        }
    }
}

/// A fake server on a free port, serving every connection with `h`; returns the port and the
/// number of connections served so far.
fn hostile_server(h: Hostile) -> (u16, Arc<std::sync::atomic::AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let n = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let n2 = n.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            n2.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || serve_hostile(s, h));
        }
    });
    (port, n)
}

/// Runs `pgwal receive` to its end (killed after 60 s): exit code, stderr and peak RSS.
// The child is reaped by `wait4` (for its rusage), not by `Child::wait`.
#[allow(clippy::zombie_processes)]
fn receive_measured(args: &[&str]) -> (Option<i32>, String, u64) {
    let mut child = Command::new(BIN)
        .arg("receive")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    std::thread::spawn(move || {
        let t = Instant::now();
        while !d2.load(Ordering::SeqCst) {
            if t.elapsed() > Duration::from_secs(60) {
                // SAFETY: signalling our own child, not yet reaped.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let mut status = 0;
    // SAFETY: a zeroed rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, whose Child handle is never waited on.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    done.store(true, Ordering::SeqCst);
    assert_eq!(r, pid);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, reader.join().unwrap(), usage.ru_maxrss as u64 * 1024)
}

#[test]
fn hostile_server_values_are_refused() {
    let tmp = tempfile::Builder::new()
        .prefix("pgwal-hardening-hostile-")
        .tempdir()
        .unwrap();
    let cases: [(Hostile, &str, bool); 8] = [
        (
            Hostile::BlockSize("0"),
            "invalid wal_block_size \"0\"",
            true,
        ),
        (
            Hostile::BlockSize("3"),
            "invalid wal_block_size \"3\"",
            true,
        ),
        (
            Hostile::BlockSize("131072"),
            "invalid wal_block_size \"131072\"",
            true,
        ),
        (
            Hostile::SegSize("0"),
            "invalid wal_segment_size \"0\"",
            true,
        ),
        (
            Hostile::SegSize("3MB"),
            "invalid wal_segment_size \"3MB\"",
            true,
        ),
        (
            Hostile::SegSize("2GB"),
            "invalid wal_segment_size \"2GB\"",
            true,
        ),
        (
            Hostile::HugeMessage,
            "is too long (2147483647 bytes)",
            false,
        ),
        (Hostile::EndlessRows, "more than 100000 rows", false),
    ];
    for (i, (h, expected, fatal)) in cases.into_iter().enumerate() {
        let (port, served) = hostile_server(h);
        let dir = tmp.path().join(format!("archive{i}"));
        fs::create_dir(&dir).unwrap();
        let ci = format!("host=127.0.0.1 port={port} user=rep sslmode=disable");
        // Impossible sizes are fatal: no -n, the receiver must stop by itself.
        let mut args = vec!["-d", &ci, "-D", dir.to_str().unwrap()];
        if !fatal {
            args.push("-n");
        }
        let (code, err, rss) = receive_measured(&args);
        eprintln!(
            "{h:?}: exit {code:?}, peak RSS {} MB: {}",
            rss >> 20,
            err.trim()
        );
        assert_eq!(code, Some(1), "{h:?}: {err}");
        assert!(err.contains(expected), "{h:?}: {err}");
        assert!(!err.contains("panicked"), "{h:?}: {err}");
        assert!(rss < 64 << 20, "{h:?}: peak RSS {} MB", rss >> 20);
        if fatal {
            assert_eq!(served.load(Ordering::SeqCst), 1, "{h:?}: retried: {err}");
        }
        // Nothing was written.
        assert_eq!(
            fs::read_dir(&dir)
                .unwrap()
                .filter(|e| {
                    let n = e.as_ref().unwrap().file_name();
                    WalFileName::parse(&n.to_string_lossy()).is_some()
                })
                .count(),
            0,
            "{h:?}"
        );
    }
}

/// A large record damaged in transit far past its first 8 kB (where the receiver's decoder
/// keeps nothing and runs the CRC as the bytes arrive) is refused, naming the record.
#[test]
fn damaged_large_record_is_refused() {
    let Some(pg) = cluster(Major::V17) else {
        return;
    };
    let tmp = tempfile::Builder::new()
        .prefix("pgwal-hardening-bigdamage-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    let log = tmp.path().join("receive.log");
    // 5 MB into the stream: inside the 20 MB record written right after the receiver starts.
    let port = corrupting_proxy(pg.port(), 5 << 20);
    let ci = format!("host=127.0.0.1 port={port} user=postgres sslmode=disable");
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
    let before = parse_lsn(&sql(&pg, "SELECT pg_current_wal_insert_lsn()")).unwrap();
    let after = parse_lsn(&sql(
        &pg,
        "SELECT pg_logical_emit_message(false, 'x', repeat('x', 20 * 1024 * 1024))",
    ))
    .unwrap();
    sql(&pg, "SELECT pg_switch_wal()");
    let status = wait_exit(&mut child, Duration::from_secs(60), &log);
    let log_text = fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{log_text}");
    let at = log_text
        .split("checksum in record at ")
        .nth(1)
        .and_then(|r| r.split(|c: char| c == ';' || c.is_whitespace()).next())
        .unwrap_or_else(|| panic!("no damaged record named:\n{log_text}"));
    let at = parse_lsn(at).unwrap();
    eprintln!(
        "record {}..{}: {}",
        format_lsn(before),
        format_lsn(after),
        log_text
            .lines()
            .find(|l| l.contains("failed validation"))
            .unwrap_or("")
    );
    assert!(
        (before..after).contains(&at),
        "damage reported at {}, the record lies in {}..{}\n{log_text}",
        format_lsn(at),
        format_lsn(before),
        format_lsn(after)
    );
    // Nothing of the damaged record was written: complete segments are the server's, and the
    // partial one holds the server's bytes up to the record, then zeros.
    for (_, name) in complete_segments(&dir) {
        let ours = fs::read(dir.join(&name)).unwrap();
        assert!(
            ours == fs::read(pg.pg_wal_dir().join(&name)).unwrap(),
            "{name}"
        );
    }
    for e in fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        let Some(w @ WalFileName::Segment { partial: true, .. }) = WalFileName::parse(&name) else {
            continue;
        };
        let ours = fs::read(dir.join(&name)).unwrap();
        let server = fs::read(pg.pg_wal_dir().join(w.base_segment_name().unwrap())).unwrap();
        let n = ours.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        assert!(
            ours[..n] == server[..n],
            "{name} holds bytes that are not the server's"
        );
        let seg_start = w.segno(seg_size()).unwrap().0 * SEG;
        assert!(
            seg_start + n as u64 <= at,
            "{name} holds WAL past {}",
            format_lsn(at)
        );
    }
}
