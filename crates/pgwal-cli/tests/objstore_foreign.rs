//! An object archive holding another database system's WAL, against a real SeaweedFS cluster
//! and two real PostgreSQL 18 servers (two `initdb`s, so two system identifiers): a receiver
//! starting on an empty spool refuses to continue the other system's archive, `archive verify`
//! names the foreign object, and neither touches it.
#![allow(clippy::unwrap_used)]

mod support;
use support::objstore::*;
use support::*;

use std::fs;
use std::process::Command;
use std::time::Duration;

use pgwal_testkit::objstore::S3_SECRET_KEY;
use pgwal_testkit::{format_lsn, Major};

const MAJOR: Major = Major::V18;

/// A segment file name of timeline 1.
fn seg_name(n: u64) -> String {
    format!("{:08X}{:08X}{:08X}", 1, n >> 32, n & 0xFFFF_FFFF)
}

/// The system identifier in a segment's first (long) page header.
fn system_id(seg: &[u8]) -> u64 {
    u64::from_le_bytes(seg[24..32].try_into().unwrap())
}

#[test]
fn another_systems_wal_in_the_archive_is_refused_and_kept() {
    let Some(a) = cluster(MAJOR) else { return };
    let Some(b) = cluster(MAJOR) else { return };
    // A complete segment of system B, stored under a name after everything A has written:
    // the newest object of the archive, which a receiver with an empty spool continues from.
    b.sql_load_blocking(3_000).unwrap();
    b.scalar_blocking("SELECT pg_switch_wal()").unwrap();
    let b_first = lsn(&b, "SELECT pg_current_wal_lsn()") / SEG - 1;
    let b_seg = fs::read(b.pg_wal_dir().join(seg_name(b_first))).unwrap();
    let a_probe = fs::read(
        fs::read_dir(a.pg_wal_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.file_name().unwrap().len() == 24)
            .unwrap(),
    )
    .unwrap();
    assert_ne!(system_id(&b_seg), system_id(&a_probe), "two initdbs");
    let foreign = seg_name(0x99);
    let S3Archive { url, store, .. } = s3_archive(seaweed(), "foreign", "wal");
    store.put_new(&foreign, b_seg.clone().into()).unwrap();

    // receive: stops at once (a conflict, not retried), naming the URL, key and both systems.
    create_slot(&a, "arch");
    a.sql_load_blocking(2_000).unwrap();
    let end = end_lsn(&a);
    let tmp = scratch("objstore-foreign");
    let env = s3_env(&seaweed().endpoint());
    let o = receive_env(
        &[
            "-d",
            &conn(&a),
            "-S",
            "arch",
            "-n",
            "-E",
            &format_lsn(end - 1),
            "-D",
            &url,
            "--spool",
            s(&tmp.path().join("spool")),
        ],
        &env,
        Duration::from_secs(120),
    );
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        err.contains(&format!("{url}/{foreign}"))
            && err.contains(&system_id(&b_seg).to_string())
            && err.contains(&system_id(&a_probe).to_string()),
        "{err}"
    );
    assert!(!err.contains(S3_SECRET_KEY), "{err}");
    let objs = objects(&store);
    assert_eq!(
        objs.keys().collect::<Vec<_>>(),
        vec![&foreign],
        "nothing of A's stored"
    );
    assert_eq!(objs[&foreign], b_seg, "the foreign object is untouched");

    // With A's own segments archived beside it (the most of them), verify names the foreign
    // object.
    a.scalar_blocking("SELECT pg_switch_wal()").unwrap();
    let current = seg_name(lsn(&a, "SELECT pg_current_wal_lsn()") / SEG);
    let mut complete: Vec<String> = fs::read_dir(a.pg_wal_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 24 && *n < current)
        .collect();
    complete.sort();
    assert!(complete.len() >= 2, "{complete:?}");
    for n in complete.iter().rev().take(3) {
        let own = fs::read(a.pg_wal_dir().join(n)).unwrap();
        store.put_new(n, own.into()).unwrap();
    }
    let mut c = Command::new(BIN);
    c.args(["archive", "verify", "-A", &url]);
    for (k, v) in &env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains(&foreign) && out.contains("different database system"),
        "{out}"
    );
    assert!(!out.contains(S3_SECRET_KEY), "{out}");
    assert_eq!(objects(&store)[&foreign], b_seg);
    eprintln!(
        "receive: {}",
        err.lines().rfind(|l| l.contains("system")).unwrap_or("")
    );
}
