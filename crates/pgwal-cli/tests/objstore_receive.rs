//! `pgwal receive -D s3://…` (and `az://…`) against real stores (a SeaweedFS cluster, Azurite)
//! and a real PostgreSQL 18 server with 1 MB segments: objects byte-identical to the server's
//! `pg_wal` (none, zstd), kill -9 and restart (no multipart upload left open), the store
//! stopped while the server writes (`--max-spool`), `--flush-to remote` (the flush position
//! never ahead of the store, a new host resuming from the newest partial object), and a
//! timeline switch.
#![allow(clippy::unwrap_used)]

mod support;
use support::objstore::*;
use support::*;

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pgwal::storage::object::ObjectArchive;
use pgwal_testkit::objstore::{S3_ACCESS_KEY, S3_SECRET_KEY};
use pgwal_testkit::{format_lsn, Cluster, Major, SeaweedFs};

const MAJOR: Major = Major::V18;

/// One run to `-E` into `url`, compressed with `z`; every object equals the server's WAL and
/// the spool keeps no complete segment.
fn identical(url: &str, env: &[(String, String)], store: ObjectArchive, z: &str) {
    let Some(pg) = cluster(MAJOR) else { return };
    create_slot(&pg, "arch");
    pg.sql_load_blocking(15_000).unwrap();
    let end = end_lsn(&pg);
    let tmp = scratch("objrecv-same");
    let spool = tmp.path().join("spool");
    let ci = conn(&pg);
    let o = receive_env(
        &[
            "-d",
            &ci,
            "-S",
            "arch",
            "-n",
            "-E",
            &format_lsn(end - 1),
            "-D",
            url,
            "--spool",
            s(&spool),
            "-Z",
            z,
        ],
        env,
        Duration::from_secs(180),
    );
    assert!(o.status.success(), "{}", text(&o));
    let objs = objects(&store);
    let (first, last) = check_segments(&objs, &pg.pg_wal_dir(), 1);
    assert!(last >= first + 5, "too little WAL: {:?}", objs.keys());
    let suffix = if z == "zstd" { ".zst" } else { "" };
    for n in objs
        .keys()
        .filter(|n| n.len() >= 24 && !n.contains("partial"))
    {
        assert_eq!(&n[24..], suffix, "{n}");
    }
    assert_eq!(spool_segments(&spool), Vec::<String>::new());
    eprintln!(
        "{url} -Z {z}: segments {first:X}..={last:X} identical to pg_wal; spool: {:?}",
        fs::read_dir(&spool)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
}

#[test]
fn s3_objects_equal_pg_wal_none_and_zstd() {
    for z in ["none", "zstd"] {
        let S3Archive {
            url, env, store, ..
        } = s3_archive(seaweed(), z, "db1/wal");
        identical(&url, &env, store, z);
    }
}

#[test]
fn azure_objects_equal_pg_wal() {
    let c = unique("az");
    azurite().create_container(&c).unwrap();
    let url = format!("az://{c}/wal");
    identical(&url, &az_env(), open_az(&url), "zstd");
}

#[test]
fn kill9_and_restart_no_gap_no_duplicate() {
    let Some(pg) = cluster(MAJOR) else { return };
    let pg = Arc::new(pg);
    pg.pgbench_init(1).unwrap();
    create_slot(&pg, "arch");
    let S3Archive {
        bucket, url, env, ..
    } = s3_archive(seaweed(), "kill", "wal");
    let tmp = scratch("objrecv-kill");
    let spool = tmp.path().join("spool");
    let log = tmp.path().join("receive.log");
    let ci = conn(&pg);
    let stop = Arc::new(AtomicBool::new(false));
    let bench = pgbench_until(pg.clone(), stop.clone());
    let mut seed = std::process::id() as u64;
    for i in 0..10 {
        let z = ["zstd", "none"][i % 2];
        let mut child = spawn_env(
            &receiver_args(&ci, "arch", &url, &spool, &["-s", "1", "-Z", z]),
            &env,
            &log,
        );
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis(700 + (seed >> 33) % 1500));
        kill9(&mut child);
    }
    stop.store(true, Ordering::SeqCst);
    bench.join().unwrap();
    let end = end_lsn(&pg);
    let o = receive_env(
        &[
            "-d",
            &ci,
            "-S",
            "arch",
            "-n",
            "-E",
            &format_lsn(end - 1),
            "-D",
            &url,
            "--spool",
            s(&spool),
        ],
        &env,
        Duration::from_secs(300),
    );
    assert!(o.status.success(), "{}", text(&o));
    let log_text = fs::read_to_string(&log).unwrap() + &String::from_utf8_lossy(&o.stderr);
    let mut objs = objects(&open_s3(&url, &seaweed().endpoint()));
    // An upload a receiver sent just before its kill -9 can land after its successor stored
    // the same segment in the other compression (the successor's listings, before and after
    // its own put, did not show it yet): both must hold the same WAL; the twin is set aside
    // (and counted) so that the rest is checked for gaps and equality.
    let mut twins = 0;
    let names: Vec<String> = objs.keys().cloned().collect();
    for n in names.iter().filter(|n| n.ends_with(".zst")) {
        let plain = n.trim_end_matches(".zst");
        if let Some(other) = objs.get(plain) {
            assert_eq!(other, &objs[n], "{n} and {plain} hold different WAL");
            objs.remove(n);
            twins += 1;
        }
    }
    let (first, last) = check_segments(&objs, &pg.pg_wal_dir(), 1);
    assert!(
        last + 1 >= (end - 1) / SEG,
        "archive ends at segment {last:X}, WAL at {}",
        format_lsn(end)
    );
    assert_eq!(
        spool_segments(&spool),
        Vec::<String>::new(),
        "spool not cleaned"
    );
    let uploads = log_text.matches("uploaded \"").count();
    eprintln!(
        "kill -9 x10: segments {first:X}..={last:X} contiguous and identical, {uploads} uploads logged, resumed {} times, {twins} identical twin(s) from a killed receiver's late upload",
        log_text.matches("resuming \"").count()
    );
    assert!(twins <= 2, "{twins} segments stored twice");
    assert!(last > first + 3, "too little WAL");
    // No multipart upload left behind: a segment (at most 1 GB, the multipart threshold) goes
    // up in one conditional put, so a killed receiver cannot leave one open; the check does
    // see an upload that is left open.
    let open = seaweed().open_multipart_uploads(&bucket).unwrap();
    assert_eq!(open, Vec::<String>::new(), "orphaned multipart uploads");
    let seen = with_open_multipart_upload(&bucket, "wal/probe", || {
        seaweed().open_multipart_uploads(&bucket).unwrap()
    });
    assert_eq!(seen.len(), 1, "the probe upload not seen: {seen:?}");
    let open = seaweed().open_multipart_uploads(&bucket).unwrap();
    assert_eq!(open, Vec::<String>::new(), "the probe upload not aborted");
    eprintln!("no multipart upload left open (the check saw the probe's {seen:?})");
}

/// Runs `check` while a multipart upload of `key` in `bucket` (of the shared SeaweedFS) is
/// started, one part sent and neither completed nor aborted; aborts it afterwards.
fn with_open_multipart_upload<T>(bucket: &str, key: &str, check: impl FnOnce() -> T) -> T {
    use object_store::ObjectStoreExt;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(seaweed().endpoint())
        .with_bucket_name(bucket)
        .with_access_key_id(S3_ACCESS_KEY)
        .with_secret_access_key(S3_SECRET_KEY)
        .with_region("us-east-1")
        .with_allow_http(true)
        .build()
        .unwrap();
    let mut upload = rt
        .block_on(store.put_multipart(&object_store::path::Path::from(key)))
        .unwrap();
    rt.block_on(upload.put_part(vec![0u8; 5 << 20].into()))
        .unwrap();
    let out = check();
    rt.block_on(upload.abort()).unwrap();
    out
}

fn flush_lsn(pg: &Cluster) -> Option<u64> {
    let v = sql(
        pg,
        "SELECT coalesce(max(flush_lsn)::text, '') FROM pg_stat_replication WHERE application_name = 'pgwal'",
    );
    pgwal_testkit::parse_lsn(&v)
}

#[test]
fn flush_to_remote_never_ahead_of_the_store_and_new_host_resumes() {
    let Some(pg) = cluster(MAJOR) else { return };
    let pg = Arc::new(pg);
    pg.pgbench_init(1).unwrap();
    create_slot(&pg, "arch");
    let start_lsn = lsn(
        &pg,
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'arch'",
    );
    let first = start_lsn / SEG;
    let S3Archive {
        url, env, store, ..
    } = s3_archive(seaweed(), "remote", "wal");
    let tmp = scratch("objrecv-remote");
    let spool = tmp.path().join("spool");
    let log = tmp.path().join("receive.log");
    let ci = conn(&pg);
    let stop = Arc::new(AtomicBool::new(false));
    let bench = pgbench_until(pg.clone(), stop.clone());
    let args = [
        "-d",
        &ci,
        "-S",
        "arch",
        "-D",
        &url,
        "--spool",
        s(&spool),
        "-s",
        "1",
        "-Z",
        "zstd",
        "--flush-to",
        "remote",
        "--partial-interval",
        "1",
    ];
    let mut child = spawn_env(&args, &env, &log);
    let t = Instant::now();
    let (mut checks, mut max_flush) = (0, 0);
    while t.elapsed() < Duration::from_secs(12) {
        if let Some(f) = flush_lsn(&pg) {
            // Read the flush position first: what the store holds only grows.
            let stored = stored_end(&store, first);
            assert!(
                f <= stored,
                "flush_lsn {} ahead of the store's {}",
                format_lsn(f),
                format_lsn(stored)
            );
            checks += 1;
            max_flush = max_flush.max(f);
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    assert!(
        checks > 20 && max_flush > start_lsn,
        "flush never reported ({checks} checks)"
    );
    // The host is lost: kill -9, its spool gone.
    kill9(&mut child);
    stop.store(true, Ordering::SeqCst);
    bench.join().unwrap();
    let stored_at_kill = stored_end(&store, first);
    fs::remove_dir_all(&spool).unwrap();
    let names: Vec<String> = store
        .list("")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    let partials: Vec<&String> = names
        .iter()
        .filter(|n| n.len() > 41 && n.ends_with(".partial"))
        .collect();
    assert!(
        partials.len() <= 2,
        "older partial objects left: {partials:?}"
    );
    let end = end_lsn(&pg);
    let mut final_args = args.to_vec();
    let endpos = format_lsn(end - 1);
    final_args.extend(["-n", "-E", &endpos]);
    let o = receive_env(&final_args, &env, Duration::from_secs(300));
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("resuming from the archive's partial object")
            || (stored_at_kill % SEG == 0 && err.contains("the archive's newest segment")),
        "{err}"
    );
    let objs = objects(&store);
    let (f, last) = check_segments(&objs, &pg.pg_wal_dir(), 1);
    assert_eq!(f, first);
    assert!(last + 1 >= (end - 1) / SEG);
    // Only the last, incomplete segment may have a partial object: the rest were removed.
    let partials: Vec<&String> = objs.keys().filter(|n| n.ends_with(".partial")).collect();
    let newest = format!("{:08X}{:08X}{:08X}", 1, last >> 32, last & 0xFFFF_FFFF);
    assert!(
        partials.iter().all(|n| n[..24] > *newest.as_str()),
        "partial objects of completed segments left: {partials:?}"
    );
    // Partial objects do not disturb the archive's readers.
    let env_ref: Vec<(&str, Option<&str>)> = env
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .collect();
    let v = pgwal_env(
        &["archive", "verify", "--no-progress", "-A", &url],
        &env_ref,
    );
    assert!(v.status.success(), "archive verify: {}", text(&v));
    eprintln!(
        "--flush-to remote: {checks} checks, flush never ahead of the store (max {}), stored at kill {}, new host resumed; segments {f:X}..={last:X} identical",
        format_lsn(max_flush),
        format_lsn(stored_at_kill)
    );
}

#[test]
fn store_down_spool_stops_at_max_spool_then_drains() {
    let Some(pg) = cluster(MAJOR) else { return };
    let mut weed = SeaweedFs::start().unwrap();
    let S3Archive { url, env, .. } = s3_archive(&weed, "down", "wal");
    create_slot(&pg, "arch");
    let tmp = scratch("objrecv-down");
    let spool = tmp.path().join("spool");
    let log = tmp.path().join("receive.log");
    let ci = conn(&pg);
    let mut child = spawn_env(
        &receiver_args(
            &ci,
            "arch",
            &url,
            &spool,
            &["-s", "1", "--max-spool", "3MB"],
        ),
        &env,
        &log,
    );
    pg.sql_load_blocking(2_000).unwrap();
    sql(&pg, "SELECT pg_switch_wal()");
    std::thread::sleep(Duration::from_secs(3));
    weed.stop_gateway();
    let before = lsn(&pg, "SELECT pg_current_wal_lsn()");
    // About 15 segments while the store is down.
    pg.sql_load_blocking(25_000).unwrap();
    sql(&pg, "SELECT pg_switch_wal()");
    let written = lsn(&pg, "SELECT pg_current_wal_lsn()");
    assert!(written > before + 8 * SEG, "too little WAL");
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the receiver exited:\n{}",
        fs::read_to_string(&log).unwrap()
    );
    let waiting = spool_segments(&spool);
    assert!(
        waiting.len() <= 3,
        "spool holds {} segments: {waiting:?}",
        waiting.len()
    );
    let restart = lsn(
        &pg,
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'arch'",
    );
    assert!(
        restart < before + 5 * SEG,
        "the slot moved past what was stored: restart_lsn {} (store stopped at {})",
        format_lsn(restart),
        format_lsn(before)
    );
    let log_text = fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("upload failed:") && log_text.contains("retrying in"),
        "{log_text}"
    );
    assert!(log_text.contains("--max-spool 3 MB"), "{log_text}");
    // The store comes back: the spool drains and the receiver catches up.
    weed.start_gateway().unwrap();
    let end = end_lsn(&pg);
    let store = open_s3(&url, &weed.endpoint());
    let t = Instant::now();
    loop {
        let objs = objects(&store);
        let segs = segment_objects(&objs, 1);
        if segs
            .keys()
            .last()
            .is_some_and(|l| (l + 1) * SEG >= end - 1 - (end - 1) % SEG)
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "not caught up: {:?}\n{}",
            segs.keys(),
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // SIGTERM: an orderly stop.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = wait_exit(&mut child, Duration::from_secs(60), &log);
    assert!(
        st.success(),
        "{st:?}\n{}",
        fs::read_to_string(&log).unwrap()
    );
    let objs = objects(&store);
    let (first, last) = check_segments(&objs, &pg.pg_wal_dir(), 1);
    assert_eq!(spool_segments(&spool), Vec::<String>::new());
    eprintln!(
        "store down: spool held {} segments at most, restart_lsn {} held; drained: segments {first:X}..={last:X} identical; {} retry lines",
        waiting.len(),
        format_lsn(restart),
        log_text.matches("retrying in").count()
    );
}

#[test]
fn timeline_switch_uploads_history_and_last_partial() {
    let Some(primary) = cluster(MAJOR) else {
        return;
    };
    let standby = primary.create_standby().unwrap();
    let S3Archive {
        url, env, store, ..
    } = s3_archive(seaweed(), "tli", "wal");
    let tmp = scratch("objrecv-tli");
    let spool = tmp.path().join("spool");
    let log = tmp.path().join("receive.log");
    // Both servers, in order: the receiver moves to the standby when the primary is gone.
    let ci = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user=postgres sslmode=disable connect_timeout=5",
        primary.port(),
        standby.port()
    );
    let mut recv = spawn_env(
        &[
            "-d",
            &ci,
            "-D",
            &url,
            "--spool",
            s(&spool),
            "-Z",
            "zstd",
            "-s",
            "1",
            "--max-retry-delay",
            "1",
        ],
        &env,
        &log,
    );
    let wait_for = |what: &str, f: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !f() {
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "timed out waiting for {what}\n{}",
                fs::read_to_string(&log).unwrap()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    primary.sql_load_blocking(10_000).unwrap();
    sql(&primary, "SELECT pg_switch_wal()");
    primary.sql_load_blocking(3_000).unwrap();
    primary.wait_for_catchup(&standby).unwrap();
    wait_for("timeline 1 segments", &|| {
        segment_objects(&objects(&store), 1).len() >= 3
    });
    primary.stop_fast().unwrap();
    standby.promote().unwrap();
    standby.sql_load_blocking(10_000).unwrap();
    sql(&standby, "SELECT pg_switch_wal()");
    standby.sql_load_blocking(1_000).unwrap();
    let end = lsn(&standby, "SELECT pg_current_wal_flush_lsn()");
    wait_for("timeline 2 in the store", &|| {
        segment_objects(&objects(&store), 2)
            .keys()
            .last()
            .is_some_and(|l| l + 1 >= (end - 1) / SEG)
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(recv.id() as i32, libc::SIGINT) };
    let st = wait_exit(&mut recv, Duration::from_secs(60), &log);
    let log_text = fs::read_to_string(&log).unwrap();
    assert!(st.success(), "{log_text}");
    let objs = objects(&store);
    let history = objs
        .get("00000002.history")
        .unwrap_or_else(|| panic!("no history object: {:?}", objs.keys()));
    assert_eq!(
        *history,
        fs::read(standby.pg_wal_dir().join("00000002.history")).unwrap()
    );
    let h = pgwal::TimelineHistory::parse(history).unwrap();
    let switch = h.switchpoint_of(pgwal::TimelineId(1)).unwrap().0;
    let (_, last1) = check_segments(&objs, &primary.pg_wal_dir(), 1);
    let (first2, last2) = check_segments(&objs, &standby.pg_wal_dir(), 2);
    assert_eq!(
        first2,
        switch / SEG,
        "timeline 2 starts at the switch segment"
    );
    if switch % SEG != 0 {
        // The old timeline's last segment, partial as pg_receivewal leaves it.
        assert_eq!(last1 + 1, switch / SEG);
        let plain = format!(
            "{:08X}{:08X}{:08X}",
            1,
            (switch / SEG) >> 32,
            (switch / SEG) & 0xFFFF_FFFF
        );
        let name = format!("{plain}.zst.partial");
        let data = objs
            .get(&name)
            .unwrap_or_else(|| panic!("no {name}: {:?}", objs.keys()));
        let server = fs::read(primary.pg_wal_dir().join(&plain)).unwrap();
        let upto = (switch % SEG) as usize;
        assert_eq!(
            data[..upto],
            server[..upto],
            "{name} differs before the switch"
        );
    }
    // The archive reads as any archive: `pgwal archive verify` on the bucket.
    let env_ref: Vec<(&str, Option<&str>)> = env
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .collect();
    let v = pgwal_env(
        &["archive", "verify", "--no-progress", "-A", &url],
        &env_ref,
    );
    assert!(v.status.success(), "archive verify: {}", text(&v));
    assert_eq!(spool_segments(&spool), Vec::<String>::new());
    eprintln!(
        "timeline switch at {}: timeline 1 up to {last1:X}, 00000002.history, timeline 2 {first2:X}..={last2:X}; verify: {}",
        format_lsn(switch),
        String::from_utf8_lossy(&v.stdout).lines().next().unwrap_or("")
    );
}

#[test]
fn existing_objects_same_wal_is_success_other_wal_stops() {
    let Some(pg) = cluster(MAJOR) else { return };
    create_slot(&pg, "same");
    create_slot(&pg, "other");
    let first = lsn(
        &pg,
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'same'",
    ) / SEG;
    pg.sql_load_blocking(8_000).unwrap();
    let end = end_lsn(&pg);
    let ci = conn(&pg);
    let env = s3_env(&seaweed().endpoint());
    let seg_name = |n: u64| format!("{:08X}{:08X}{:08X}", 1, n >> 32, n & 0xFFFF_FFFF);
    let target = seg_name(first + 2);
    let server = fs::read(pg.pg_wal_dir().join(&target)).unwrap();
    let tmp = scratch("objrecv-exist");
    // A first run stops inside the first segment, so the spool holds WAL and the next run
    // goes on from it (an empty spool would continue after the store's newest segment).
    let run = |slot: &str, url: &str, endpos: u64| {
        receive_env(
            &[
                "-d",
                &ci,
                "-S",
                slot,
                "-n",
                "-E",
                &format_lsn(endpos),
                "-D",
                url,
                "--spool",
                s(&tmp.path().join(slot)),
            ],
            &env,
            Duration::from_secs(180),
        )
    };
    // The same WAL, pushed zstd-compressed before: success, and no second copy.
    let b1 = unique("same");
    seaweed().create_bucket(&b1).unwrap();
    let url1 = format!("s3://{b1}/wal");
    let store1 = open_s3(&url1, &seaweed().endpoint());
    let o = run("same", &url1, first * SEG + 200_000);
    assert!(o.status.success(), "{}", text(&o));
    let mut enc = pgwal::storage::codec::Encoding::new(pgwal::Compression::Zstd, 1);
    enc.zstd_workers = 0;
    let z = pgwal::storage::codec::compress(&enc, &server).unwrap();
    store1
        .put_new(&format!("{target}.zst"), z.clone().into())
        .unwrap();
    let o = run("same", &url1, end - 1);
    assert!(o.status.success(), "{}", text(&o));
    let objs = objects(&store1);
    assert!(
        !objs.contains_key(&target),
        "stored twice: {:?}",
        objs.keys()
    );
    assert_eq!(store1.get(&format!("{target}.zst")).unwrap().to_vec(), z);
    check_segments(&objs, &pg.pg_wal_dir(), 1);
    // Other WAL under the name: the receiver stops naming URL and key, the object is kept.
    let b2 = unique("other");
    seaweed().create_bucket(&b2).unwrap();
    let url2 = format!("s3://{b2}/wal");
    let store2 = open_s3(&url2, &seaweed().endpoint());
    let o = run("other", &url2, first * SEG + 200_000);
    assert!(o.status.success(), "{}", text(&o));
    let mut other = server.clone();
    other[100_000] ^= 0xFF;
    store2.put_new(&target, other.clone().into()).unwrap();
    let o = run("other", &url2, end - 1);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        err.contains(&format!(
            "archive \"{url2}\": object \"wal/{target}\" already exists with other content"
        )),
        "{err}"
    );
    assert!(!err.contains(S3_SECRET_KEY), "{err}");
    assert_eq!(store2.get(&target).unwrap().to_vec(), other);
    assert!(
        tmp.path().join("other").join(&target).exists(),
        "the spool copy must stay"
    );
    eprintln!(
        "conflict: {}",
        err.lines()
            .rfind(|l| l.contains("already exists"))
            .unwrap_or("")
    );
}

#[test]
fn option_errors() {
    let t = scratch("objrecv-opts");
    let cases: [(&[&str], &str); 5] = [
        (
            &["-D", "s3://b/p", "-d", "host=127.0.0.1 port=9"],
            "-D with an object-store URL needs a local spool directory: --spool DIR",
        ),
        (
            &["-D", s(t.path()), "--spool", s(t.path()), "-d", "port=9"],
            "--spool is used only with an object-store URL as -D",
        ),
        (
            &[
                "-D",
                "s3://b/p",
                "--spool",
                s(t.path()),
                "--max-spool",
                "3XB",
                "-d",
                "port=9",
            ],
            "invalid size \"3XB\" for option --max-spool",
        ),
        (
            &[
                "-D",
                "s3://b/p",
                "--spool",
                s(t.path()),
                "--flush-to",
                "disk",
                "-d",
                "port=9",
            ],
            "invalid value \"disk\" for option --flush-to (local or remote)",
        ),
        (
            &[
                "-D",
                "s3://b/p",
                "--spool",
                s(t.path()),
                "--upload-jobs",
                "0",
                "-d",
                "port=9",
            ],
            "invalid value \"0\" for option --upload-jobs (1 to 64)",
        ),
    ];
    for (args, want) in cases {
        let o = receive_env(args, &s3_env("http://127.0.0.1:9"), Duration::from_secs(30));
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(want),
            "{args:?}: {}",
            text(&o)
        );
    }
}

#[test]
fn unreachable_store_or_missing_bucket_names_the_url() {
    let Some(pg) = cluster(MAJOR) else { return };
    let ci = conn(&pg);
    let t = scratch("objrecv-unreach");
    // Nothing listens on port 9: the store cannot be listed at the start (retried; -n ends it).
    let o = receive_env(
        &[
            "-d",
            &ci,
            "-n",
            "-D",
            "s3://nobucket/wal",
            "--spool",
            s(&t.path().join("a")),
        ],
        &s3_env("http://127.0.0.1:9"),
        Duration::from_secs(120),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(err.contains("archive \"s3://nobucket/wal\": list"), "{err}");
    assert!(err.contains("disconnected"), "{err}");
    // A bucket that does not exist: fatal at once, naming it.
    let o = receive_env(
        &[
            "-d",
            &ci,
            "-D",
            "s3://nobucket/wal",
            "--spool",
            s(&t.path().join("b")),
        ],
        &s3_env(&seaweed().endpoint()),
        Duration::from_secs(120),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        err.contains("bucket or container \"nobucket\" does not exist"),
        "{err}"
    );
    assert!(!err.contains(S3_SECRET_KEY), "{err}");
}
