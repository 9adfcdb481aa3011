//! Acceptance: no server outlives its test — not after a panic, not after kill -9 of the test
//! process (reaper); and kill9 + restart works.

// Tests may unwrap (see clippy.toml); this also covers the helper functions here.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pgwal_testkit::{
    installed_majors, pid_alive, postgres_processes_under, reap_orphans, Cluster, Major,
};

/// Any installed major, preferring 15 (Debian's, always present here).
fn some_major() -> Major {
    let majors = installed_majors();
    assert!(!majors.is_empty(), "no PostgreSQL installed at all");
    if majors.contains(&Major::V15) {
        Major::V15
    } else {
        majors[majors.len() - 1]
    }
}

#[test]
fn panicking_test_leaves_no_server_behind() {
    let seen: Mutex<Option<(PathBuf, i32, usize)>> = Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pg = Cluster::builder(some_major()).start().unwrap();
        // Give it some children beyond the auxiliary processes: a client backend.
        let rows = pg.query_blocking("SELECT pg_backend_pid()").unwrap();
        assert_eq!(rows.len(), 1);
        let pid = pg.postmaster_pid().unwrap();
        let procs = postgres_processes_under(pg.temp_dir());
        assert!(procs.contains(&pid), "postmaster {pid} not among {procs:?}");
        *seen.lock().unwrap() = Some((pg.temp_dir().to_path_buf(), pid, procs.len()));
        panic!("deliberate failure inside a test that owns a running cluster");
    }));
    let err = result.expect_err("the closure must panic");
    let msg = err.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(
        msg.contains("deliberate failure"),
        "unexpected panic: {msg:?}"
    );

    let (dir, pid, nprocs) = seen.lock().unwrap().clone().expect("cluster was started");
    assert!(
        nprocs >= 3,
        "expected postmaster + auxiliary processes, saw {nprocs}"
    );
    assert!(!pid_alive(pid), "postmaster {pid} survived the panic");
    assert_eq!(postgres_processes_under(&dir), Vec::<i32>::new());
    assert!(!dir.exists(), "temp dir {} was not removed", dir.display());
}

#[tokio::test]
async fn kill9_then_restart_recovers() {
    let pg = Cluster::builder(some_major())
        .wal_segsize_mb(1)
        .start()
        .unwrap();
    let c = pg.client().await;
    c.batch_execute("CREATE TABLE k (i int); INSERT INTO k SELECT generate_series(1, 1000)")
        .await
        .unwrap();
    let before = pg.current_wal_lsn().await;
    drop(c);

    let children = postgres_processes_under(pg.data_dir());
    let pid = pg.kill9().unwrap();
    assert!(children.contains(&pid));
    assert!(!pid_alive(pid));
    for child in &children {
        assert!(
            !pid_alive(*child),
            "child {child} of the postmaster survived kill9"
        );
    }
    assert!(postgres_processes_under(pg.temp_dir()).is_empty());
    assert!(!pg.is_running());

    pg.restart().unwrap();
    assert!(pg.is_running());
    assert_ne!(pg.postmaster_pid(), Some(pid));
    assert_eq!(pg.query_one_string("SELECT count(*) FROM k").await, "1000");
    assert!(pg.current_wal_lsn().await >= before);
    assert!(
        pg.server_log_tail(200).contains("not properly shut down"),
        "expected crash recovery in the log:\n{}",
        pg.server_log_tail(40)
    );

    // And the ordinary stop/start paths.
    pg.stop_fast().unwrap();
    assert!(!pg.is_running());
    pg.start().unwrap();
    pg.stop_immediate().unwrap();
    pg.restart().unwrap();
    assert_eq!(pg.query_one_string("SELECT count(*) FROM k").await, "1000");
}

const CHILD_ENV: &str = "PGWAL_TESTKIT_ORPHAN_CHILD";

/// Not a test on its own: the body run by `killed_test_process_is_reaped` in a child process.
#[test]
#[ignore = "helper: run by killed_test_process_is_reaped"]
fn orphan_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let pg = Cluster::builder(some_major()).start().unwrap();
    println!(
        "CLUSTER {} {}",
        pg.postmaster_pid().unwrap(),
        pg.temp_dir().display()
    );
    std::thread::sleep(Duration::from_secs(300));
}

#[test]
fn killed_test_process_is_reaped() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "orphan_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    let mut reader = BufReader::new(stdout);
    let (pid, dir) = loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            panic!("child exited without starting a cluster");
        }
        // libtest prints "test orphan_child ... " before the test's own output.
        if let Some(at) = line.find("CLUSTER ") {
            let rest = line[at + "CLUSTER ".len()..].trim();
            let (pid, dir) = rest.split_once(' ').unwrap();
            break (pid.parse::<i32>().unwrap(), PathBuf::from(dir));
        }
    };
    assert!(pid_alive(pid));
    // SIGKILL the test process: no Drop runs, the server is orphaned.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        pid_alive(pid),
        "the server should outlive a SIGKILLed test process"
    );

    let t = Instant::now();
    let mut reaped = 0;
    while pid_alive(pid) && t.elapsed() < Duration::from_secs(30) {
        reaped += reap_orphans();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(reaped >= 1 || !pid_alive(pid));
    assert!(!pid_alive(pid), "orphaned postmaster {pid} was not reaped");
    assert!(postgres_processes_under(&dir).is_empty());
    assert!(
        !dir.exists(),
        "orphan's temp dir {} not removed",
        dir.display()
    );
}
