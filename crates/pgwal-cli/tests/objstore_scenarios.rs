//! Issue #17's scenarios for `pgwal receive -D s3://…` against a real PostgreSQL 18 primary
//! under pgbench and a real SeaweedFS cluster: remote durability (`--synchronous --flush-to
//! remote`) loses no acknowledged commit when the receiver and the primary are killed and the
//! receiver's host (its spool) is lost; a volume server killed while receiving, then started
//! again; the S3 gateway stopped for 60 s; a 200+ MB receive whose objects equal the server's
//! `pg_wal`; a point-in-time recovery of a new server from a base backup plus
//! `restore_command = 'pgwal archive fetch … --prefetch 8'`.
#![allow(clippy::unwrap_used)]

mod support;
use support::objstore::*;
use support::*;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pgwal::wal::{DecoderConfig, WalDecoder};
use pgwal::{Lsn, WalFileName, WalSegSize};
use pgwal_testkit::{format_lsn, Major, SeaweedFs};

const MAJOR: Major = Major::V18;

/// The WAL the store holds contiguously from segment `first`: the complete segments, then the
/// newest partial object of the next segment; returns (segment number, bytes) in order.
fn stored_wal(objs: &BTreeMap<String, Vec<u8>>, first: u64) -> Vec<(u64, Vec<u8>)> {
    let seg = WalSegSize::new(SEG as u32).unwrap();
    let complete = segment_objects(objs, 1);
    let mut out = Vec::new();
    let mut s = first;
    while let Some((_, data)) = complete.get(&s) {
        out.push((s, (*data).clone()));
        s += 1;
    }
    let newest = objs
        .iter()
        .filter(|(n, _)| n.len() > 41 && n.ends_with(".partial") && &n[24..25] == ".")
        .filter_map(|(n, d)| {
            let w = WalFileName::parse(&n[..24])?;
            let end = u64::from_str_radix(&n[25..41], 16).ok()?;
            (w.segno(seg)?.0 == s).then_some((end, d))
        })
        .max_by_key(|(end, _)| *end);
    if let Some((end, d)) = newest {
        out.push((s, d[..(end - s * SEG) as usize].to_vec()));
    }
    out
}

/// The xids (low 32 bits) of every commit record in `wal` (consecutive segments).
fn commits(wal: &[(u64, Vec<u8>)]) -> HashSet<u32> {
    let mut out = HashSet::new();
    let Some((first, _)) = wal.first() else {
        return out;
    };
    let mut dec = WalDecoder::new(
        DecoderConfig::new(WalSegSize::new(SEG as u32).unwrap()),
        Lsn(first * SEG),
    );
    for (segno, data) in wal {
        let mut input: &[u8] = data;
        loop {
            match dec.decode(&mut input) {
                Ok(Some(r)) => {
                    // RM_XACT_ID = 1; XLOG_XACT_COMMIT = 0x00, COMMIT_PREPARED = 0x30.
                    let op = r.info() & 0x70;
                    if r.rmid() == 1 && (op == 0x00 || op == 0x30) {
                        out.insert(r.xid());
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_end_of_wal() => break,
                Err(e) => panic!("segment {segno:X}: {e}"),
            }
        }
    }
    out
}

/// Clients that insert into `acked` and record the xid of every transaction whose COMMIT
/// returned success, until `stop`.
fn committing_clients(
    port: u16,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u32>>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..2)
        .map(|i| {
            let (stop, acked) = (stop.clone(), acked.clone());
            std::thread::spawn(move || {
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
                        while !stop.load(Ordering::SeqCst) {
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
            })
        })
        .collect()
}

fn env_refs(env: &[(String, String)]) -> Vec<(&str, Option<&str>)> {
    env.iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .collect()
}

/// Remote durability: the receiver is the synchronous standby with `--flush-to remote`; after
/// kill -9 of the receiver, an immediate stop of the primary and the loss of the receiver's
/// spool, every commit a client saw succeed is in the store, and a receiver on a fresh spool
/// completes the archive identical to `pg_wal`.
#[test]
fn remote_durability_zero_loss_after_host_and_primary_lost() {
    let Some(pg) = cluster(MAJOR) else { return };
    let pg = Arc::new(pg);
    pg.pgbench_init(1).unwrap();
    exec(&pg, "CREATE TABLE acked (id serial PRIMARY KEY, v text)");
    create_slot(&pg, "sync");
    let start_lsn = lsn(
        &pg,
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'sync'",
    );
    let first = start_lsn / SEG;
    let S3Archive {
        url, env, store, ..
    } = s3_archive(seaweed(), "sync", "wal");
    let tmp = scratch("objscen-sync");
    let spool = tmp.path().join("spool");
    let log = tmp.path().join("receive.log");
    let ci = conn(&pg);
    let args = [
        "-d",
        &ci,
        "-S",
        "sync",
        "-D",
        &url,
        "--spool",
        s(&spool),
        "--synchronous",
        "--flush-to",
        "remote",
        "--partial-interval",
        "1",
        "-Z",
        "zstd",
    ];
    let mut recv = spawn_env(&args, &env, &log);
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
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<u32>>> = Arc::new(Mutex::new(Vec::new()));
    let clients = committing_clients(pg.port(), stop.clone(), acked.clone());
    let bench = pgbench_until(pg.clone(), stop.clone());
    std::thread::sleep(Duration::from_secs(10));
    if let Some(st) = recv.try_wait().unwrap() {
        panic!(
            "pgwal receive exited: {st:?}\n{}",
            fs::read_to_string(&log).unwrap()
        );
    }
    // The receiver's host is lost, then the primary crashes.
    kill9(&mut recv);
    pg.stop_immediate().unwrap();
    let acked_at_kill: Vec<u32> = acked.lock().unwrap().clone();
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    bench.join().unwrap();
    fs::remove_dir_all(&spool).unwrap();
    assert!(
        acked_at_kill.len() >= 8,
        "too few commits: {}",
        acked_at_kill.len()
    );

    // What the store held when both were gone: every acknowledged commit, and bytes equal to
    // the server's (the primary keeps its flushed WAL through the crash).
    let wal = stored_wal(&objects(&store), first);
    let (last_seg, last) = wal.last().unwrap();
    let server = fs::read(pg.pg_wal_dir().join(seg_file(*last_seg))).unwrap();
    assert!(
        server.starts_with(last),
        "the stored WAL of segment {last_seg:X} differs from the server's"
    );
    let stored = commits(&wal);
    let missing: Vec<&u32> = acked_at_kill
        .iter()
        .filter(|x| !stored.contains(x))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged commits are not in the store: {:?}",
        missing.len(),
        acked_at_kill.len(),
        &missing[..missing.len().min(10)]
    );
    let stored_at_kill = last_seg * SEG + last.len() as u64;

    // A new host: the primary back without a synchronous standby, the receiver on a fresh
    // spool, to the server's end.
    pg.set_config("synchronous_standby_names", "").unwrap();
    pg.start().unwrap();
    let end = end_lsn(&pg);
    let endpos = format_lsn(end - 1);
    let mut final_args = args.to_vec();
    final_args.extend(["-n", "-E", &endpos]);
    let o = receive_env(&final_args, &env, Duration::from_secs(300));
    assert!(o.status.success(), "{}", text(&o));
    let objs = objects(&store);
    let (f, l) = check_segments(&objs, &pg.pg_wal_dir(), 1);
    assert_eq!(f, first);
    assert!(l + 1 >= (end - 1) / SEG, "archive ends at {l:X}");
    let all = commits(&stored_wal(&objs, first));
    assert!(acked_at_kill.iter().all(|x| all.contains(x)));
    let v = pgwal_env(
        &["archive", "verify", "--no-progress", "-A", &url],
        &env_refs(&env),
    );
    assert!(v.status.success(), "archive verify: {}", text(&v));
    eprintln!(
        "remote durability: {} acknowledged commits all in the store at the kill (stored to {}); new host completed {f:X}..={l:X} identical to pg_wal",
        acked_at_kill.len(),
        format_lsn(stored_at_kill)
    );
}

/// The file name of segment `segno` of timeline 1.
fn seg_file(segno: u64) -> String {
    let per = 0x1_0000_0000 / SEG;
    format!("{:08X}{:08X}{:08X}", 1, segno / per, segno % per)
}

/// A volume server killed while receiving under pgbench, then started again. SeaweedFS
/// (replication `001` on two volume servers) times out every write while one is down, so the
/// receiver keeps retrying with its WAL in the spool: it stays up, the store's replica keeps
/// every object already stored readable and equal to `pg_wal` (`archive verify` passes), and
/// the objects plus the spool cover the WAL without a gap, the spool's segments equal to the
/// server's. With the volume server back (same data directory and ports) the spool drains and
/// the whole WAL is in the store, equal to `pg_wal`.
#[test]
fn volume_server_killed_then_restarted_during_receive() {
    let Some(Receiving {
        pg,
        first,
        mut weed,
        url,
        env,
        store,
        tmp: _tmp,
        spool,
        log,
        mut recv,
        stop,
        bench,
        before,
    }) = receiving_under_pgbench("vol")
    else {
        return;
    };
    weed.kill_volume(0);
    // Beside pgbench (slow when the host is busy), a known amount of WAL: about 3 segments.
    pg.sql_load_blocking(5_000).unwrap();
    std::thread::sleep(Duration::from_secs(10));
    stop.store(true, Ordering::SeqCst);
    bench.join().unwrap();
    let end = end_lsn(&pg);
    // The receiver writes the rest into its spool.
    std::thread::sleep(Duration::from_secs(5));
    if let Some(st) = recv.try_wait().unwrap() {
        panic!(
            "pgwal receive exited: {st:?}\n{}",
            fs::read_to_string(&log).unwrap()
        );
    }
    let log_text = fs::read_to_string(&log).unwrap();
    let objs = objects(&store);
    let (f, l) = check_segments(&objs, &pg.pg_wal_dir(), 1);
    assert_eq!(f, first);
    assert!(l * SEG >= before.saturating_sub(SEG), "objects lost");
    let v = pgwal_env(
        &["archive", "verify", "--no-progress", "-A", &url],
        &env_refs(&env),
    );
    assert!(v.status.success(), "archive verify: {}", text(&v));
    // No gap: every later segment to the end is in the spool, equal to the server's.
    let in_spool = spool_segments(&spool);
    for segno in l + 1..(end - 1) / SEG {
        let name = seg_file(segno);
        assert!(
            in_spool.contains(&name),
            "segment {name} neither stored nor in the spool {in_spool:?}\n{log_text}"
        );
        assert!(
            fs::read(spool.join(&name)).unwrap() == fs::read(pg.pg_wal_dir().join(&name)).unwrap(),
            "spool's {name} differs from pg_wal"
        );
    }
    assert!(
        !in_spool.is_empty(),
        "nothing waited in the spool while the volume server was down\n{log_text}"
    );
    // The volume server comes back: the spool drains into the store.
    weed.restart_volume(0).unwrap();
    let t = Instant::now();
    let drained = wait_drained(&store, first, end, &spool, &log, Duration::from_secs(180));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(recv.id() as i32, libc::SIGTERM) };
    let st = wait_exit(&mut recv, Duration::from_secs(60), &log);
    assert!(
        st.success(),
        "{st:?}\n{}",
        fs::read_to_string(&log).unwrap()
    );
    let objs = objects(&store);
    let (f2, l2) = check_segments(&objs, &pg.pg_wal_dir(), 1);
    assert_eq!(f2, first);
    assert!(l2 + 1 >= (end - 1) / SEG, "archive ends at {l2:X}");
    assert_eq!(spool_segments(&spool), Vec::<String>::new());
    let v = pgwal_env(
        &["archive", "verify", "--no-progress", "-A", &url],
        &env_refs(&env),
    );
    assert!(v.status.success(), "archive verify: {}", text(&v));
    eprintln!(
        "volume server killed at {}: objects {f:X}..={l:X} readable and identical, verify passed; spool held {} segments to {}, {} upload retries logged; restarted: drained in {drained:?} ({:?} with the restart), segments {f2:X}..={l2:X} identical",
        format_lsn(before),
        in_spool.len(),
        format_lsn(end),
        log_text.matches("upload failed").count(),
        t.elapsed()
    );
}

/// A receiver streaming from a PostgreSQL primary under pgbench into a bucket of a SeaweedFS
/// cluster of its own (`-s 1 -Z zstd`, spool and log in `tmp`), 4 s in.
struct Receiving {
    pg: Arc<pgwal_testkit::Cluster>,
    /// The segment number the slot starts in.
    first: u64,
    weed: SeaweedFs,
    url: String,
    env: Vec<(String, String)>,
    store: pgwal::storage::object::ObjectArchive,
    tmp: tempfile::TempDir,
    spool: std::path::PathBuf,
    log: std::path::PathBuf,
    recv: std::process::Child,
    /// Stops pgbench.
    stop: Arc<AtomicBool>,
    bench: std::thread::JoinHandle<()>,
    /// Where the stored WAL ended 4 s in.
    before: u64,
}

/// Starts a [`Receiving`] (`tag` names the bucket and scratch directory).
fn receiving_under_pgbench(tag: &str) -> Option<Receiving> {
    let pg = Arc::new(cluster(MAJOR)?);
    pg.pgbench_init(1).unwrap();
    create_slot(&pg, "arch");
    let first = lsn(
        &pg,
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'arch'",
    ) / SEG;
    let weed = SeaweedFs::start().unwrap();
    let S3Archive {
        url, env, store, ..
    } = s3_archive(&weed, tag, "wal");
    let tmp = scratch(&format!("objscen-{tag}"));
    let spool = tmp.path().join("spool");
    let log = tmp.path().join("receive.log");
    let ci = conn(&pg);
    let recv = spawn_env(
        &receiver_args(&ci, "arch", &url, &spool, &["-s", "1", "-Z", "zstd"]),
        &env,
        &log,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let bench = pgbench_until(pg.clone(), stop.clone());
    std::thread::sleep(Duration::from_secs(4));
    let before = stored_end(&store, first);
    Some(Receiving {
        pg,
        first,
        weed,
        url,
        env,
        store,
        tmp,
        spool,
        log,
        recv,
        stop,
        bench,
        before,
    })
}

/// Waits until the store holds every complete segment from `first` up to the one before the
/// segment of `end` (the WAL the server wrote), and the spool no complete segment; fails after
/// `limit` with the receiver's log. Returns the time it took.
fn wait_drained(
    store: &pgwal::storage::object::ObjectArchive,
    first: u64,
    end: u64,
    spool: &std::path::Path,
    log: &std::path::Path,
    limit: Duration,
) -> Duration {
    let t = Instant::now();
    let want = (end - 1) / SEG * SEG;
    loop {
        let stored = stored_end(store, first);
        let waiting = spool_segments(spool);
        if stored >= want && waiting.is_empty() {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < limit,
            "not drained after {limit:?}: stored to {}, WAL to {}, spool {waiting:?}\n{}",
            format_lsn(stored),
            format_lsn(end),
            fs::read_to_string(log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The S3 gateway stopped for a full 60 s under continuous pgbench (and a bulk load), with the
/// default `--max-spool` (1 GB): the receiver stays up and its spool grows (completed segments
/// wait there); with the gateway back the spool drains, and the store holds every segment from the
/// slot's start to the end, no gap, each (decompressed) equal to the server's.
#[test]
fn gateway_stopped_60s_spool_grows_then_drains() {
    let Some(Receiving {
        pg,
        first,
        mut weed,
        store,
        tmp: _tmp,
        spool,
        log,
        mut recv,
        stop,
        bench,
        before,
        ..
    }) = receiving_under_pgbench("gw60")
    else {
        return;
    };
    weed.stop_gateway();
    let down = Instant::now();
    let lsn_down = lsn(&pg, "SELECT pg_current_wal_lsn()");
    // Beside pgbench (slow when the host is busy), a known amount of WAL: about 9 segments.
    pg.sql_load_blocking(15_000).unwrap();
    let mut most = 0;
    while down.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_secs(2));
        if let Some(st) = recv.try_wait().unwrap() {
            panic!(
                "pgwal receive exited while the gateway was down: {st:?}\n{}",
                fs::read_to_string(&log).unwrap()
            );
        }
        most = most.max(spool_segments(&spool).len());
    }
    let lsn_up = lsn(&pg, "SELECT pg_current_wal_lsn()");
    let at_restart = spool_segments(&spool).len();
    let log_down = fs::read_to_string(&log).unwrap();
    assert!(
        log_down.contains("upload failed"),
        "no failed upload logged while the gateway was down\n{log_down}"
    );
    // Several segments completed while the store was away: they waited in the spool.
    assert!(
        most >= 5 && (lsn_up - lsn_down) / SEG >= 5,
        "the spool did not grow: at most {most} segments ({} MB of WAL written)\n{log_down}",
        (lsn_up - lsn_down) >> 20
    );
    weed.start_gateway().unwrap();
    let up = Instant::now();
    // pgbench goes on a little with the store back.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    bench.join().unwrap();
    let end = end_lsn(&pg);
    wait_drained(&store, first, end, &spool, &log, Duration::from_secs(240));
    let drained = up.elapsed();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(recv.id() as i32, libc::SIGTERM) };
    let st = wait_exit(&mut recv, Duration::from_secs(60), &log);
    let log_text = fs::read_to_string(&log).unwrap();
    assert!(st.success(), "{st:?}\n{log_text}");
    let objs = objects(&store);
    let (f, l) = check_segments(&objs, &pg.pg_wal_dir(), 1);
    assert_eq!(f, first);
    assert!(l + 1 >= (end - 1) / SEG, "archive ends at {l:X}");
    assert_eq!(spool_segments(&spool), Vec::<String>::new());
    eprintln!(
        "gateway down 60 s from {} (stored to {}): {} MB of WAL written meanwhile, spool grew to {most} segments ({at_restart} at the restart); drained {:?} after the restart; segments {f:X}..={l:X} identical to pg_wal; {} failed uploads logged",
        format_lsn(lsn_down),
        format_lsn(before),
        (lsn_up - lsn_down) >> 20,
        drained,
        log_text.matches("upload failed").count()
    );
}

/// More than 200 MB of WAL (pgbench and a bulk load) received with gzip, zstd and none: every
/// object, decompressed, equals the server's segment.
#[test]
fn receive_200mb_gzip_zstd_none() {
    let Some(pg) = cluster(MAJOR) else { return };
    pg.pgbench_init(1).unwrap();
    // One slot per run, all at the same start.
    for z in ["gzip", "zstd", "none"] {
        create_slot(&pg, &format!("big_{z}"));
    }
    let start_lsn = lsn(&pg, "SELECT min(restart_lsn) FROM pg_replication_slots");
    pg.pgbench_run(2, pgwal_testkit::PgbenchLength::Seconds(5))
        .unwrap();
    exec(
        &pg,
        "CREATE TABLE bulk AS SELECT g, md5(g::text) || repeat('x', 900) AS v FROM generate_series(1, 200000) g",
    );
    let end = end_lsn(&pg);
    assert!(
        end - start_lsn >= 200 << 20,
        "only {} bytes of WAL",
        end - start_lsn
    );
    let ci = conn(&pg);
    for z in ["gzip", "zstd", "none"] {
        let t = Instant::now();
        let S3Archive { url, env, .. } = s3_archive(seaweed(), &format!("big-{z}"), "wal");
        let tmp = scratch("objscen-big");
        let spool = tmp.path().join("spool");
        let o = receive_env(
            &[
                "-d",
                &ci,
                "-S",
                &format!("big_{z}"),
                "-n",
                "-E",
                &format_lsn(end - 1),
                "-D",
                &url,
                "--spool",
                s(&spool),
                "-Z",
                z,
            ],
            &env,
            Duration::from_secs(900),
        );
        assert!(o.status.success(), "{}", text(&o));
        let objs = objects(&open_s3(&url, &seaweed().endpoint()));
        let (f, l) = check_segments(&objs, &pg.pg_wal_dir(), 1);
        assert_eq!(f, start_lsn / SEG);
        assert!(l + 1 >= (end - 1) / SEG, "archive ends at {l:X}");
        let suffix = match z {
            "gzip" => ".gz",
            "zstd" => ".zst",
            _ => "",
        };
        let segs = segment_objects(&objs, 1);
        assert!(segs.values().all(|(n, _)| &n[24..] == suffix));
        assert_eq!(
            spool_segments(&spool),
            Vec::<String>::new(),
            "spool not emptied"
        );
        eprintln!(
            "-Z {z}: {} segments ({} MB) identical to pg_wal in {:?}",
            segs.len(),
            (end - start_lsn) >> 20,
            t.elapsed()
        );
    }
}

/// Per-table checksums of the pgbench tables: the md5 of each table's rows in order, and the
/// history's row count.
const PGBENCH_CHECKSUMS: &str = "SELECT concat_ws(' ', \
    (SELECT md5(string_agg(t::text, ',' ORDER BY aid)) FROM pgbench_accounts t), \
    (SELECT md5(string_agg(t::text, ',' ORDER BY bid)) FROM pgbench_branches t), \
    (SELECT md5(string_agg(t::text, ',' ORDER BY tid)) FROM pgbench_tellers t), \
    (SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') \
     FROM pgbench_history t))";

/// Point-in-time recovery of a new server from object storage: the archive filled by
/// `pgwal receive -D s3://… --spool DIR` under pgbench, a base backup (`pg_basebackup -X
/// stream`) recovered with `restore_command = 'pgwal archive fetch %f %p -A s3://…
/// --prefetch 8'` to a named restore point taken at a quiet moment, then promoted
/// (`recovery_target_action = promote`). Its pgbench tables equal the primary's at the target,
/// the work done after the target is not there, and segments came from the prefetch cache.
#[test]
fn point_in_time_recovery_from_s3_with_prefetch() {
    let Some(pg) = cluster(MAJOR) else { return };
    pg.pgbench_init(1).unwrap();
    create_slot(&pg, "arch");
    let first = lsn(
        &pg,
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'arch'",
    ) / SEG;
    let S3Archive {
        url, env, store, ..
    } = s3_archive(seaweed(), "pitr", "wal");
    let tmp = scratch("objscen-pitr");
    let spool = tmp.path().join("spool");
    let log = tmp.path().join("receive.log");
    let ci = conn(&pg);
    let mut recv = spawn_env(
        &receiver_args(&ci, "arch", &url, &spool, &["-s", "1", "-Z", "zstd"]),
        &env,
        &log,
    );
    // The base backup: the kit's pg_basebackup -X stream (it starts the copy as a standby to
    // check it; stopped at once, before any more work), made a new server that recovers from
    // the archive only.
    let restored = pg.create_standby().unwrap();
    restored.stop_fast().unwrap();
    let data = restored.data_dir();
    let auto = data.join("postgresql.auto.conf");
    let kept: String = fs::read_to_string(&auto)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("primary_conninfo") && !l.starts_with("primary_slot_name"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs::write(&auto, kept).unwrap();
    fs::remove_file(data.join("standby.signal")).unwrap();
    let signal = data.join("recovery.signal");
    fs::write(&signal, "").unwrap();
    let owner = fs::metadata(data).unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        std::os::unix::fs::chown(&signal, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    let env_words: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    restored
        .set_config(
            "restore_command",
            format!(
                "env {} {BIN} archive fetch %f %p -A {url} --prefetch 8 -v",
                env_words.join(" ")
            ),
        )
        .unwrap();
    restored.set_config("recovery_target_name", "pitr").unwrap();
    restored
        .set_config("recovery_target_action", "promote")
        .unwrap();

    // Work (pgbench, and an update of every account for a known amount of WAL however busy
    // the host), a quiet moment with the target, more work.
    pg.pgbench_run(2, pgwal_testkit::PgbenchLength::Seconds(3))
        .unwrap();
    exec(&pg, "UPDATE pgbench_accounts SET abalance = abalance + 1");
    pg.pgbench_run(2, pgwal_testkit::PgbenchLength::Seconds(2))
        .unwrap();
    let at_target = sql(&pg, PGBENCH_CHECKSUMS);
    let target = lsn(&pg, "SELECT pg_create_restore_point('pitr')");
    pg.pgbench_run(2, pgwal_testkit::PgbenchLength::Seconds(2))
        .unwrap();
    exec(&pg, "CREATE TABLE after_target AS SELECT 1 AS x");
    let after = sql(&pg, PGBENCH_CHECKSUMS);
    assert_ne!(after, at_target, "no work after the target");
    // The end of the segment the switch completed: the archive must reach it.
    let end = lsn(&pg, "SELECT pg_switch_wal()");
    let t = Instant::now();
    while stored_end(&store, first) < (end - 1) / SEG * SEG + SEG {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the archive does not reach {}\n{}",
            format_lsn(end),
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let waited = t.elapsed();
    kill9(&mut recv);

    // Recovery of the new server: to the restore point, then promoted.
    let t = Instant::now();
    restored.start().unwrap();
    restored
        .wait_until(
            "recovery to the restore point and promotion",
            "SELECT pg_is_in_recovery()",
            |rows| rows.first().and_then(|r| r.first()).cloned().flatten() == Some("f".into()),
        )
        .unwrap();
    let took = t.elapsed();
    eprintln!("waited {waited:?} for the archive, recovery took {took:?}");
    let server_log = fs::read_to_string(restored.log_path()).unwrap();
    assert!(
        server_log.contains("recovery stopping at restore point \"pitr\""),
        "{}",
        restored.server_log_tail(40)
    );
    assert_eq!(sql(&restored, PGBENCH_CHECKSUMS), at_target);
    assert_eq!(
        sql(&restored, "SELECT to_regclass('after_target') IS NULL"),
        "t",
        "work after the target was recovered"
    );
    // The recovered server writes: it is a new timeline, promoted.
    exec(&restored, "CREATE TABLE after_promotion AS SELECT 1 AS x");
    let restored_files = server_log.matches("restored log file").count();
    let prefetched = server_log.matches("(prefetched)").count();
    assert!(
        restored_files >= 10,
        "only {restored_files} segments restored\n{}",
        restored.server_log_tail(40)
    );
    assert!(
        prefetched * 2 >= restored_files,
        "{prefetched} of {restored_files} segments came from the prefetch cache\n{}",
        restored.server_log_tail(40)
    );
    assert!(restored.pg_wal_dir().join(".pgwal-prefetch").is_dir());
    eprintln!(
        "PITR to restore point at {} (WAL to {}): {restored_files} segments restored in {took:?}, {prefetched} from the prefetch cache; checksums equal to the primary's at the target, later work absent",
        format_lsn(target),
        format_lsn(end)
    );
}
