//! What every CLI test binary shares: running the `pgwal` binary, the shipped WAL, scratch
//! directories, readable command output, and the real servers' small helpers. Each test file
//! says `mod support;` and uses what it needs.

#![allow(dead_code, clippy::unwrap_used)]

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgwal_testkit::{parse_lsn, Cluster};

pub mod objstore;

/// The `pgwal` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_pgwal");

/// `pgwal ARGS`, run to completion.
pub fn pgwal(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run pgwal")
}

/// The shipped WAL sample `testdata/wal/NAME` (`""` for the directory of all of them).
pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/wal")
        .join(name)
}

/// Exit status, stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A path as `&str` for command lines.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A temporary directory for one test, removed when dropped.
pub fn scratch(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("pgwal-{tag}-"))
        .tempdir()
        .unwrap()
}

/// A directory for one test that outlives it (shared fixtures), under the target directory:
/// `PREFIX-PID-TAG`, emptied first; what runs of dead processes left is removed.
pub fn scratch_dir(prefix: &str, tag: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    if let Ok(rd) = fs::read_dir(root) {
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let pid = n
                .strip_prefix(prefix)
                .and_then(|r| r.strip_prefix('-'))
                .and_then(|r| r.split('-').next())
                .and_then(|p| p.parse::<i32>().ok());
            if pid.is_some_and(|p| p != std::process::id() as i32 && !pgwal_testkit::pid_alive(p)) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = root.join(format!("{prefix}-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a command to completion, killing it (and failing) after `limit`.
pub fn run_limited(mut cmd: Command, limit: Duration) -> Output {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    let pid = child.id() as i32;
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let killer = std::thread::spawn(move || {
        let start = Instant::now();
        while !d2.load(Ordering::SeqCst) {
            if start.elapsed() > limit {
                // SAFETY: signalling our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    });
    let out = child.wait_with_output().expect("wait");
    done.store(true, Ordering::SeqCst);
    let killed = killer.join().unwrap();
    assert!(
        !killed,
        "command timed out after {limit:?}: {cmd:?}\n{}",
        text(&out)
    );
    out
}

/// `pgwal receive ARGS`, killed (and failing) after `limit`.
pub fn receive(args: &[&str], limit: Duration) -> Output {
    let mut c = Command::new(BIN);
    c.arg("receive").args(args);
    run_limited(c, limit)
}

/// Starts `pgwal receive ARGS` in the background, its stderr appended to `log`.
pub fn spawn_receive(args: &[&str], log: &Path) -> Child {
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(BIN)
        .arg("receive")
        .args(args)
        .stdout(Stdio::null())
        .stderr(f)
        .spawn()
        .expect("spawn pgwal receive")
}

/// Waits for `child` to exit, killing it and failing after `limit` (with `log` in the message).
pub fn wait_exit(child: &mut Child, limit: Duration, log: &Path) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            panic!(
                "the command did not exit within {limit:?}\n{}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGKILL to `child`, then reap it.
pub fn kill9(child: &mut Child) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
}

/// A TCP connection string for `c` as the superuser, without TLS.
pub fn conn(c: &Cluster) -> String {
    format!(
        "host=127.0.0.1 port={} user=postgres sslmode=disable",
        c.port()
    )
}

/// The single value of query `q` on `c`.
pub fn sql(c: &Cluster, q: &str) -> String {
    c.scalar_blocking(q).unwrap()
}

/// Runs a statement on `c` that returns no value.
pub fn exec(c: &Cluster, q: &str) {
    c.query_blocking(q).unwrap();
}

/// The LSN that query `q` on `c` returns.
pub fn lsn(c: &Cluster, q: &str) -> u64 {
    parse_lsn(&sql(c, q)).unwrap()
}

/// A started cluster of `major` with 1 MB segments that keeps its WAL (so that archives can be
/// compared with its `pg_wal`); `None` when that major is not installed here.
pub fn cluster(major: pgwal_testkit::Major) -> Option<Cluster> {
    pgwal_testkit::require_major(major)?;
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

/// The `strace` command, for the tests that inject faults with it (failing clearly when it is
/// missing: `scripts/install-postgres` installs it).
pub fn strace() -> &'static str {
    let ok = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "strace is needed for the fault-injection tests (scripts/install-postgres installs it)"
    );
    "strace"
}

/// A TCP proxy to `port` that overwrites 8 bytes of the server's stream once `after` bytes
/// have passed. Returns the proxy's port.
pub fn corrupting_proxy(port: u16, after: u64) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                return;
            };
            let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut c_in, &mut s_out);
            });
            let (mut s_in, mut c_out) = (server, client);
            std::thread::spawn(move || {
                let mut seen = 0u64;
                let mut done = false;
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match s_in.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if !done && seen + n as u64 > after && n >= 64 {
                        let at = n / 2;
                        for b in &mut buf[at..at + 8] {
                            *b ^= 0x5A;
                        }
                        done = true;
                    }
                    seen += n as u64;
                    if c_out.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    proxy_port
}

/// The plain segment file names (24 characters) in `dir`, sorted.
pub fn segment_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.len() == 24)
        .collect();
    v.sort();
    v
}

/// `pgwal ARGS` with extra environment variables (`None` removes one), run to completion.
pub fn pgwal_env(args: &[&str], env: &[(&str, Option<&str>)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.output().expect("run pgwal")
}

/// A server of the test kit shared by every test of one binary. It is started on a thread that
/// lives as long as the process: the kit's children die with the thread that started them.
fn shared_server<T: Send + Sync + 'static>(
    cell: &'static std::sync::OnceLock<T>,
    start: fn() -> T,
) -> &'static T {
    if let Some(t) = cell.get() {
        return t;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut started = false;
        let _ = cell.get_or_init(|| {
            started = true;
            start()
        });
        let _ = tx.send(());
        if started {
            loop {
                std::thread::park();
            }
        }
    });
    rx.recv().unwrap();
    cell.get().unwrap()
}

/// The SeaweedFS cluster (master, two volume servers, filer with S3 gateway) the tests share.
pub fn seaweed() -> &'static pgwal_testkit::SeaweedFs {
    static S: std::sync::OnceLock<pgwal_testkit::SeaweedFs> = std::sync::OnceLock::new();
    shared_server(&S, || pgwal_testkit::SeaweedFs::start().unwrap())
}

/// The Azurite blob service the tests share.
pub fn azurite() -> &'static pgwal_testkit::Azurite {
    static A: std::sync::OnceLock<pgwal_testkit::Azurite> = std::sync::OnceLock::new();
    shared_server(&A, || pgwal_testkit::Azurite::start().unwrap())
}

/// What [`fault_proxy`] does to each connection.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// The first N connections get `503 Service Unavailable`; later ones pass through.
    Unavailable(usize),
    /// Every connection is accepted and never answered.
    Hang,
}

/// An HTTP proxy on 127.0.0.1 in front of `port` that injects `fault`. Returns its port and a
/// counter of the connections it saw.
pub fn fault_proxy(port: u16, fault: Fault) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for client in listener.incoming() {
            let Ok(mut client) = client else { return };
            let n = count.fetch_add(1, Ordering::SeqCst);
            match fault {
                Fault::Hang => held.push(client),
                Fault::Unavailable(k) if n < k => {
                    // Read the request head, answer 503, close.
                    let _ = client.set_read_timeout(Some(Duration::from_millis(500)));
                    let mut buf = [0u8; 16384];
                    let _ = client.read(&mut buf);
                    let _ = client.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                }
                Fault::Unavailable(_) => {
                    let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
                        return;
                    };
                    let (mut c_in, mut s_out) =
                        (client.try_clone().unwrap(), server.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut c_in, &mut s_out);
                        let _ = s_out.shutdown(std::net::Shutdown::Write);
                    });
                    let (mut s_in, mut c_out) = (server, client);
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut s_in, &mut c_out);
                        let _ = c_out.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        }
    });
    (proxy_port, seen)
}
