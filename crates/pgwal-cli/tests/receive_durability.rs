//! `pgwal receive` never reports a flush position that this process has not made durable, shown
//! with real fault injection (strace's `-e inject`) against a real server with a slot, by the
//! order of the system calls:
//!
//! - an fsync that fails with EIO stops the receiver at once (exit 1, the file and errno named),
//!   and no status update after the failure reports more than the one before it: the slot's
//!   `restart_lsn` never passes it;
//! - after a kill -9 with unsynced WAL, the restarted receiver reports a flush position above
//!   the slot's `restart_lsn` only after it wrote the kept WAL into a new file, fsynced it,
//!   renamed it into place and fsynced the directory.

#![allow(clippy::unwrap_used)]

mod support;

use support::*;

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pgwal_testkit::{parse_lsn, Cluster, Major};

fn restart_lsn(c: &Cluster, slot: &str) -> u64 {
    let v = sql(
        c,
        &format!("SELECT coalesce(restart_lsn, '0/0') FROM pg_replication_slots WHERE slot_name = '{slot}'"),
    );
    parse_lsn(&v).unwrap()
}

fn create_slot(c: &Cluster, slot: &str) {
    let o = Command::new(BIN)
        .args(["receive", "-d", &conn(c), "-S", slot, "--create-slot"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
}

/// `pgwal receive ARGS` under strace (all threads), the trace in `trace`, stderr in `log`.
fn spawn_traced(
    trace: &Path,
    syscalls: &str,
    inject: Option<&str>,
    args: &[&str],
    log: &Path,
) -> Child {
    let mut c = Command::new(strace());
    c.args(["-f", "-qq", "-xx", "-s", "512", "-o"])
        .arg(trace)
        .args(["-e", &format!("trace={syscalls}")]);
    if let Some(i) = inject {
        c.args(["-e", &format!("inject={i}")]);
    }
    c.arg(BIN)
        .arg("receive")
        .args(args)
        .stdout(Stdio::null())
        .stderr(fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// One system call from the trace, in the order calls completed (a status update counts from
/// the moment it was handed to the kernel).
#[derive(Debug, Clone)]
struct Call {
    name: String,
    args: String,
    result: String,
}

impl Call {
    fn ok(&self) -> bool {
        !self.result.starts_with('-')
    }

    /// The first argument as a number (a descriptor).
    fn fd(&self) -> Option<i64> {
        let a = self.args.trim_start();
        let end = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
        a[..end].parse().ok()
    }

    /// The bytes of the first quoted argument (`-xx` prints every byte as `\xNN`).
    fn bytes(&self) -> Vec<u8> {
        let Some(start) = self.args.find('"') else {
            return Vec::new();
        };
        let rest = &self.args[start + 1..];
        let end = rest.find('"').unwrap_or(rest.len());
        rest[..end]
            .split("\\x")
            .filter(|h| h.len() == 2)
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect()
    }

    /// The quoted strings among the arguments (paths).
    fn strings(&self) -> Vec<String> {
        self.args
            .split('"')
            .skip(1)
            .step_by(2)
            .map(|s| {
                let b: Vec<u8> = s
                    .split("\\x")
                    .filter(|h| h.len() == 2)
                    .map(|h| u8::from_str_radix(h, 16).unwrap())
                    .collect();
                String::from_utf8_lossy(&b).into_owned()
            })
            .collect()
    }

    /// Flush positions of the standby status updates (`r` messages) this call sent.
    fn status_flushes(&self) -> Vec<u64> {
        if self.name != "sendto" && self.name != "write" {
            return Vec::new();
        }
        let b = self.bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i + 39 <= b.len() {
            if b[i] == b'd' && b[i + 1..i + 5] == [0, 0, 0, 38] && b[i + 5] == b'r' {
                let flush = u64::from_be_bytes(b[i + 14..i + 22].try_into().unwrap());
                out.push(flush);
                i += 39;
            } else {
                i += 1;
            }
        }
        out
    }
}

/// Parses an strace `-f -o` file.
fn parse_trace(path: &Path) -> Vec<Call> {
    let text = fs::read_to_string(path).unwrap();
    let mut pending: std::collections::HashMap<String, (String, String)> = Default::default();
    let mut out = Vec::new();
    for line in text.lines() {
        let (pid, rest) = line.split_once(' ').unwrap_or(("", line));
        let rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("<... ") {
            let Some((name, after)) = r.split_once(" resumed>") else {
                continue;
            };
            let (n, args) = pending
                .remove(pid)
                .unwrap_or((name.to_string(), String::new()));
            let result = after.rsplit_once(" = ").map_or("", |x| x.1).to_string();
            let extra = after.rsplit_once(" = ").map_or(after, |x| x.0);
            out.push(Call {
                name: n,
                args: args + extra,
                result,
            });
            continue;
        }
        let Some((name, args)) = rest.split_once('(') else {
            continue;
        };
        if let Some(a) = args.strip_suffix(" <unfinished ...>") {
            if name == "sendto" || name == "write" {
                // Sent when called: record it now.
                out.push(Call {
                    name: name.to_string(),
                    args: a.to_string(),
                    result: String::new(),
                });
                pending.insert(pid.to_string(), ("sent".into(), String::new()));
            } else {
                pending.insert(pid.to_string(), (name.to_string(), a.to_string()));
            }
            continue;
        }
        let (a, result) = args.rsplit_once(" = ").unwrap_or((args, ""));
        out.push(Call {
            name: name.to_string(),
            args: a.to_string(),
            result: result.to_string(),
        });
    }
    out
}

#[test]
fn fsync_error_stops_and_reports_nothing_more() {
    let Some(pg) = cluster(Major::V18) else {
        return;
    };
    create_slot(&pg, "eio");
    exec(&pg, "CREATE TABLE t (x int, pad text)");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    let (trace, log) = (tmp.path().join("trace"), tmp.path().join("log"));
    let ci = conn(&pg);
    // The first three fdatasync calls succeed (segment pre-padding and flushes), every later
    // one fails with EIO.
    let mut child = spawn_traced(
        &trace,
        "fdatasync,fsync,sendto,write",
        Some("fdatasync:error=EIO:when=4+"),
        &[
            "-d",
            &ci,
            "-S",
            "eio",
            "-D",
            dir.to_str().unwrap(),
            "-s",
            "1",
            "-v",
        ],
        &log,
    );
    let t = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "no exit after the injected EIO\n{}",
            fs::read_to_string(&log).unwrap()
        );
        exec(
            &pg,
            "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(1, 2000) g",
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let err = fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("could not fsync file") && err.contains("Input/output error"),
        "{err}"
    );
    assert!(err.contains(".partial"), "the file is named: {err}");
    assert!(
        !err.contains("waiting") && !err.contains("resuming"),
        "no retry in-process: {err}"
    );
    let calls = parse_trace(&trace);
    let failed = calls
        .iter()
        .position(|c| c.name == "fdatasync" && c.result.contains("EIO"))
        .expect("an injected fdatasync failure in the trace");
    let before: Vec<u64> = calls[..failed]
        .iter()
        .flat_map(Call::status_flushes)
        .collect();
    let after: Vec<u64> = calls[failed..]
        .iter()
        .flat_map(Call::status_flushes)
        .collect();
    let last = before.iter().copied().max().unwrap_or(0);
    assert!(
        last > 0,
        "a flush was reported before the failure: {before:?}"
    );
    assert!(
        after.iter().all(|&f| f <= last),
        "flush reported after the failed fsync: {after:?} > {last:#x}"
    );
    let slot = restart_lsn(&pg, "eio");
    assert!(
        slot <= last,
        "the slot moved to {slot:#x}, past the last flush {last:#x} reported before the failure"
    );
}

/// Runs `pgwal receive ARGS` under strace (file, fsync, rename and socket calls) until slot
/// `slot` moves past `before`, then stops it with SIGTERM; returns the calls and its stderr.
fn trace_until_slot_moves(
    pg: &Cluster,
    slot: &str,
    before: u64,
    tmp: &Path,
    args: &[&str],
) -> (Vec<Call>, String) {
    let (trace, log) = (tmp.join("trace"), tmp.join("traced.log"));
    let mut child = spawn_traced(
        &trace,
        "openat,fdatasync,fsync,rename,renameat,renameat2,sendto,write",
        None,
        args,
        &log,
    );
    let t = Instant::now();
    while restart_lsn(pg, slot) <= before {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the slot never moved\n{}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Stop the receiver itself (strace would detach on a signal of its own).
    let kids = fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id())).unwrap();
    let pid: i32 = kids.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: signalling our own grandchild.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let st = wait_exit(&mut child, Duration::from_secs(30), &log);
    let err = fs::read_to_string(&log).unwrap();
    assert!(st.success(), "{err}");
    (parse_trace(&trace), err)
}

/// True for the temporary file pgwal writes a file ending in `target` under
/// (`.pgwal-tmp.<name>.<pid>.<stamp>`, the one naming of `pgwal::storage::temp`).
fn is_temp_for(path: &str, target: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.strip_prefix(".pgwal-tmp.")
        .and_then(|rest| rest.rsplitn(3, '.').nth(2))
        .is_some_and(|final_name| final_name.ends_with(target))
}

/// In `calls`, before the first status update with a flush above `before`: a new temporary
/// file for a name ending in `target` was created, fsynced, renamed to a name ending in
/// `target`, and then the directory was fsynced.
fn assert_fresh_copy_before_report(calls: &[Call], before: u64, target: &str) {
    let reported = calls
        .iter()
        .position(|c| c.status_flushes().iter().any(|&f| f > before))
        .unwrap_or_else(|| panic!("no status update above {before:#x} in the trace"));
    let created = calls[..reported]
        .iter()
        .position(|c| {
            c.name == "openat"
                && c.ok()
                && c.args.contains("O_CREAT")
                && c.strings().iter().any(|s| is_temp_for(s, target))
        })
        .unwrap_or_else(|| {
            panic!("no new temporary file for *{target} before the first report\n{calls:#?}")
        });
    let fd: i64 = calls[created].result.trim().parse().unwrap();
    let synced = calls[created..reported]
        .iter()
        .position(|c| (c.name == "fdatasync" || c.name == "fsync") && c.fd() == Some(fd) && c.ok())
        .map(|i| i + created)
        .unwrap_or_else(|| {
            panic!(
                "the copy was not fsynced before the first report: {:#?}",
                &calls[created..=reported]
            )
        });
    let renamed = calls[synced..reported]
        .iter()
        .position(|c| {
            c.name.starts_with("rename")
                && c.ok()
                && c.strings().first().is_some_and(|s| is_temp_for(s, target))
                && c.strings().get(1).is_some_and(|s| s.ends_with(target))
        })
        .map(|i| i + synced)
        .unwrap_or_else(|| panic!("the copy was not renamed into place before the first report"));
    assert!(
        calls[renamed..reported]
            .iter()
            .any(|c| c.name == "fsync" && c.ok()),
        "the directory was not fsynced between the rename and the first report"
    );
}

#[test]
fn restart_after_kill9_copies_and_fsyncs_before_reporting() {
    let Some(pg) = cluster(Major::V18) else {
        return;
    };
    create_slot(&pg, "k9");
    exec(&pg, "CREATE TABLE t (x int, pad text)");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let ci = conn(&pg);
    let log = tmp.path().join("log1");
    // A long status interval: nothing is flushed after the start until the kill.
    let mut first = Command::new(BIN)
        .args(["receive", "-d", &ci, "-S", "k9", "-D", d, "-s", "100", "-v"])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !fs::read_dir(&dir).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".partial")
    }) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    exec(
        &pg,
        "INSERT INTO t SELECT g, repeat('y', 100) FROM generate_series(1, 500) g",
    );
    let written = parse_lsn(&sql(&pg, "SELECT pg_current_wal_insert_lsn()")).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let before = restart_lsn(&pg, "k9");
    assert!(
        before < written,
        "the WAL to {written:#x} is unsynced and unreported (slot at {before:#x})"
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(first.id() as i32, libc::SIGKILL) };
    let _ = first.wait();

    let (calls, err) = trace_until_slot_moves(
        &pg,
        "k9",
        before,
        tmp.path(),
        &["-d", &ci, "-S", "k9", "-D", d, "-s", "1", "-v"],
    );
    assert!(err.contains("resuming"), "{err}");
    // The fresh copy: created, fsynced, renamed over the .partial, directory fsynced.
    assert_fresh_copy_before_report(&calls, before, ".partial");
    // And every byte the first run wrote is there, as the server has it.
    const SEG: u64 = 1 << 20;
    let segno = (written - 1) / SEG;
    let name = format!("{:08X}{:08X}{:08X}", 1, segno / 4096, segno % 4096);
    let ours = fs::read(dir.join(&name))
        .or_else(|_| fs::read(dir.join(format!("{name}.partial"))))
        .unwrap();
    let theirs = fs::read(pg.pg_wal_dir().join(&name)).unwrap();
    let n = (written - segno * SEG) as usize;
    assert!(
        ours[..n] == theirs[..n],
        "segment {name} differs from the server's"
    );
}

/// The segment `segno` (1 MB segments, timeline 1).
fn seg_name(segno: u64) -> String {
    format!("{:08X}{:08X}{:08X}", 1, segno / 4096, segno % 4096)
}

/// The receiver (paused with SIGSTOP) was writing segment N when another writer (`archive
/// push` into the same directory) created N: completing N never replaces that file.
fn complete_over_existing(same: bool) {
    let Some(pg) = cluster(Major::V16) else {
        return;
    };
    exec(&pg, "CREATE TABLE t (x int)");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    let log = tmp.path().join("log");
    let mut child = Command::new(BIN)
        .args([
            "receive",
            "-d",
            &conn(&pg),
            "-D",
            dir.to_str().unwrap(),
            "-s",
            "1",
            "-v",
        ])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let segno = parse_lsn(&sql(&pg, "SELECT pg_current_wal_insert_lsn()")).unwrap() >> 20;
    let partial = dir.join(format!("{}.partial", seg_name(segno)));
    let t = Instant::now();
    while !partial.exists() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGSTOP) };
    sql(&pg, "SELECT pg_switch_wal()");
    exec(&pg, "INSERT INTO t VALUES (1)");
    let name = seg_name(segno);
    let mut content = fs::read(pg.pg_wal_dir().join(&name)).unwrap();
    if !same {
        content[100] ^= 0xff;
    }
    fs::write(dir.join(&name), &content).unwrap();
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGCONT) };
    if same {
        let next = dir.join(format!("{}.partial", seg_name(segno + 1)));
        let t = Instant::now();
        while partial.exists() || !next.exists() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "{}",
                fs::read_to_string(&log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let st = wait_exit(&mut child, Duration::from_secs(30), &log);
        let err = fs::read_to_string(&log).unwrap();
        assert!(st.success(), "{err}");
        assert!(err.contains("already exists with the same WAL"), "{err}");
        assert_eq!(fs::read(dir.join(&name)).unwrap(), content);
    } else {
        let st = wait_exit(&mut child, Duration::from_secs(30), &log);
        let err = fs::read_to_string(&log).unwrap();
        assert_eq!(st.code(), Some(1), "{err}");
        assert!(
            err.contains("already exists with different content"),
            "{err}"
        );
        // Both files are kept: the other writer's as it wrote it, ours whole.
        assert_eq!(fs::read(dir.join(&name)).unwrap(), content);
        let ours = fs::read(&partial).unwrap();
        let server = fs::read(pg.pg_wal_dir().join(&name)).unwrap();
        assert!(
            ours == server,
            "the received segment is kept whole as .partial"
        );
    }
}

#[test]
fn completing_a_segment_keeps_an_identical_existing_one() {
    complete_over_existing(true);
}

#[test]
fn completing_a_segment_never_replaces_a_different_one() {
    complete_over_existing(false);
}

/// A `.partial` that a killed receiver had filled completely: the restart writes it under its
/// final name from a new file (created, fsynced, renamed, directory fsynced) before it reports
/// any flush position above the slot's.
#[test]
fn complete_partial_is_copied_and_fsynced_before_reporting() {
    let Some(pg) = cluster(Major::V18) else {
        return;
    };
    create_slot(&pg, "fin");
    exec(&pg, "CREATE TABLE t (x int)");
    exec(&pg, "INSERT INTO t SELECT generate_series(1, 1000)");
    let segno = parse_lsn(&sql(&pg, "SELECT pg_current_wal_insert_lsn()")).unwrap() >> 20;
    sql(&pg, "SELECT pg_switch_wal()");
    exec(&pg, "INSERT INTO t VALUES (1)");
    let before = restart_lsn(&pg, "fin");
    assert!(before < (segno + 1) << 20, "slot at {before:#x}");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    let name = seg_name(segno);
    let server = fs::read(pg.pg_wal_dir().join(&name)).unwrap();
    // Every segment up to it, as a killed receiver would have left them.
    for s in (before >> 20)..segno {
        let n = seg_name(s);
        fs::copy(pg.pg_wal_dir().join(&n), dir.join(&n)).unwrap();
    }
    fs::write(dir.join(format!("{name}.partial")), &server).unwrap();

    let d = dir.to_str().unwrap();
    let ci = conn(&pg);
    let (calls, err) = trace_until_slot_moves(
        &pg,
        "fin",
        before,
        tmp.path(),
        &["-d", &ci, "-S", "fin", "-D", d, "-s", "1", "-v"],
    );
    assert!(err.contains("is complete; renaming it"), "{err}");
    assert_eq!(fs::read(dir.join(&name)).unwrap(), server);
    assert!(!dir.join(format!("{name}.partial")).exists());
    assert_fresh_copy_before_report(&calls, before, &name);
}

/// A failed fsync while starting (the directory fsync around removing a crash's leftovers) is
/// fatal too: exit 1 at once, no retry.
#[test]
fn fsync_error_at_start_is_fatal() {
    let Some(pg) = cluster(Major::V16) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    // An unfinished temporary file, as a crash of an older pgwal leaves it: removing it
    // fsyncs the directory.
    fs::write(dir.join("000000010000000000000001.tmp"), b"x").unwrap();
    let (trace, log) = (tmp.path().join("trace"), tmp.path().join("log"));
    let ci = conn(&pg);
    let mut child = spawn_traced(
        &trace,
        "fsync,fdatasync",
        Some("fsync:error=EIO"),
        &["-d", &ci, "-D", dir.to_str().unwrap(), "-v"],
        &log,
    );
    let st = wait_exit(&mut child, Duration::from_secs(30), &log);
    let err = fs::read_to_string(&log).unwrap();
    assert_eq!(st.code(), Some(1), "{err}");
    assert!(
        err.contains("could not fsync directory") && err.contains("Input/output error"),
        "{err}"
    );
    assert!(!err.contains("waiting"), "no retry: {err}");
}
