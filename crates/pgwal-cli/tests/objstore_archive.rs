//! `pgwal archive -A s3://…` against a real SeaweedFS cluster (master, two volume servers,
//! filer with its S3 gateway checking signatures) and `-A az://…` against Azurite, with real WAL
//! from a PostgreSQL server: byte-identical push/fetch round trips in every compression,
//! create-only pushes (racing pushers, the conflict rule), verify/status/cleanup on a bucket
//! against the same archive in a directory, a directory archive copied into a bucket used as
//! is, prefetching restores, multipart uploads, and faults (wrong bucket, no credentials, wrong
//! secret, a store answering 503 or not at all, an object that is not WAL).
#![allow(clippy::unwrap_used)]

mod support;
use support::objstore::{az_config, s3_config};
use support::*;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pgwal::storage::location::{Location, ObjectUrl};
use pgwal::storage::object::{ObjectArchive, ObjectOptions};
use pgwal_testkit::objstore::{AZURITE_KEY, S3_SECRET_KEY};
use pgwal_testkit::{Cluster, Major};

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Real WAL: a directory archive written by a PostgreSQL server's archive_command, with a
// timeline switch (.history, .partial) and a base backup (.backup).

struct Fixture {
    archive: PathBuf,
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn wait_archived(c: &Cluster) {
    let status = c.pg_wal_dir().join("archive_status");
    let start = Instant::now();
    while names(&status).iter().any(|n| n.ends_with(".ready")) {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not archived after 2 minutes\n{}",
            c.server_log_tail(40)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn fixture() -> Option<&'static Fixture> {
    static F: OnceLock<Option<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let major = Major::V15;
        pgwal_testkit::require_major(major)?;
        let root = scratch_dir("objstore-test", "fixture");
        let archive = root.join("archive");
        fs::create_dir(&archive).unwrap();
        let primary = Cluster::builder(major)
            .wal_segsize_mb(1)
            .set("archive_mode", "on")
            .set(
                "archive_command",
                format!("{BIN} archive push %p --archive {}", s(&archive)),
            )
            .init()
            .unwrap();
        let m = fs::metadata(primary.data_dir()).unwrap();
        std::os::unix::fs::chown(&archive, Some(m.uid()), Some(m.gid())).unwrap();
        primary.start().unwrap();
        primary.sql_load_blocking(8_000).unwrap();
        let standby = primary.create_standby().unwrap();
        primary.sql_load_blocking(4_000).unwrap();
        primary.wait_for_catchup(&standby).unwrap();
        primary.stop_fast().unwrap();
        standby.promote().unwrap();
        standby.sql_load_blocking(3_000).unwrap();
        standby.scalar_blocking("SELECT pg_switch_wal()").unwrap();
        wait_archived(&standby);
        standby.stop_fast().unwrap();
        let got = names(&archive);
        assert!(got.iter().any(|n| n.ends_with(".history")), "{got:?}");
        assert!(got.iter().any(|n| n.ends_with(".partial")), "{got:?}");
        assert!(got.iter().any(|n| n.ends_with(".backup")), "{got:?}");
        assert!(got.len() >= 12, "{got:?}");
        Some(Fixture { archive })
    })
    .as_ref()
}

/// The complete segments of the fixture (24-character names), sorted.
fn segments(f: &Fixture) -> Vec<String> {
    segment_names(&f.archive)
}

// ---------------------------------------------------------------------------------------------
// The stores.

static BUCKETS: AtomicUsize = AtomicUsize::new(0);

/// A fresh bucket in SeaweedFS; its URL with a prefix.
fn s3_bucket(tag: &str) -> String {
    let name = format!(
        "{tag}-{}-{}",
        std::process::id(),
        BUCKETS.fetch_add(1, Ordering::SeqCst)
    );
    seaweed().create_bucket(&name).unwrap();
    format!("s3://{name}/cluster1/wal")
}

/// A fresh container in Azurite; its URL with a prefix.
fn az_container(tag: &str) -> String {
    let name = format!(
        "{tag}-{}-{}",
        std::process::id(),
        BUCKETS.fetch_add(1, Ordering::SeqCst)
    );
    azurite().create_container(&name).unwrap();
    format!("az://{name}/wal")
}

/// The environment of a client of `url`'s store; instance metadata is off (and pointed at a
/// closed loopback port), so a missing credential fails at once and locally.
fn store_env(url: &str) -> Vec<(String, String)> {
    let mut env = if url.starts_with("s3://") {
        seaweed().env()
    } else {
        azurite().env()
    };
    env.push(("AWS_EC2_METADATA_DISABLED".into(), "true".into()));
    env.push(("AWS_METADATA_ENDPOINT".into(), "http://127.0.0.1:9".into()));
    env.push(("PGWAL_OBJECT_RETRY_TIMEOUT".into(), "20".into()));
    env
}

/// `pgwal ARGS` against `url`'s store, with `overrides` on top of its environment.
fn run(url: &str, args: &[&str], overrides: &[(&str, Option<&str>)]) -> Output {
    let env = store_env(url);
    let mut all: Vec<(&str, Option<&str>)> = env
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .collect();
    all.extend_from_slice(overrides);
    pgwal_env(args, &all)
}

/// The library's view of `url` (for copying files in and reading objects back).
fn open(url: &str) -> ObjectArchive {
    let Location::Object(u) = Location::parse(url).unwrap() else {
        panic!("{url}")
    };
    let mut o = ObjectOptions::default();
    o.config = config_for(&u);
    ObjectArchive::open(&u, &o).unwrap()
}

fn config_for(u: &ObjectUrl) -> Vec<(String, String)> {
    match u.cloud {
        pgwal::storage::location::Cloud::S3 => s3_config(&seaweed().endpoint()),
        _ => az_config(),
    }
}

/// Every object of the archive at `url`: name → content.
fn objects(url: &str) -> BTreeMap<String, Bytes> {
    let store = open(url);
    store
        .list("")
        .unwrap()
        .into_iter()
        .map(|e| {
            let b = store.get(&e.name).unwrap();
            (e.name, b)
        })
        .collect()
}

/// Copies every file of directory `dir` into the archive at `url` as it is.
fn copy_into(dir: &Path, url: &str) {
    let store = open(url);
    for n in names(dir) {
        store
            .put_new(&n, Bytes::from(fs::read(dir.join(&n)).unwrap()))
            .unwrap();
    }
}

fn assert_no_secret(o: &Output) {
    let all = format!("{}{}", stdout(o), stderr(o));
    for secret in [S3_SECRET_KEY, AZURITE_KEY] {
        assert!(!all.contains(secret), "a secret was printed:\n{}", text(o));
    }
}

// ---------------------------------------------------------------------------------------------
// Round trips.

fn round_trip(url: &str, compress: &str) {
    let f = fixture().unwrap();
    let segs = segments(f);
    let some: Vec<&String> = segs.iter().take(4).collect();
    for n in &some {
        let o = run(
            url,
            &[
                "archive",
                "push",
                s(&f.archive.join(n)),
                "-A",
                url,
                "-c",
                compress,
                "-v",
            ],
            &[],
        );
        assert_eq!(code(&o), 0, "{}", text(&o));
    }
    let history = names(&f.archive)
        .into_iter()
        .find(|n| n.ends_with(".history"))
        .unwrap();
    let o = run(
        url,
        &["archive", "push", s(&f.archive.join(&history)), "-A", url],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    // The object layout is the directory layout.
    let suffix = match compress {
        "none" => "",
        "gzip" => ".gz",
        "lz4" => ".lz4",
        _ => ".zst",
    };
    let objs = objects(url);
    let mut expect: Vec<String> = some.iter().map(|n| format!("{n}{suffix}")).collect();
    expect.push(history.clone());
    expect.sort();
    assert_eq!(objs.keys().cloned().collect::<Vec<_>>(), expect);
    // Pushing again is a success without a write.
    let o = run(
        url,
        &[
            "archive",
            "push",
            s(&f.archive.join(some[0])),
            "-A",
            url,
            "-c",
            compress,
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(stderr(&o).contains("already archived"), "{}", text(&o));
    // Fetch: byte-identical.
    let out = scratch("objstore-fetch");
    for n in some.iter().map(|n| n.as_str()).chain([history.as_str()]) {
        let dest = out.path().join("RECOVERYXLOG");
        let o = run(url, &["archive", "fetch", n, s(&dest), "-A", url], &[]);
        assert_eq!(code(&o), 0, "{n}: {}", text(&o));
        assert_eq!(
            fs::read(&dest).unwrap(),
            fs::read(f.archive.join(n)).unwrap(),
            "{n} from {url}"
        );
    }
    // Not archived: exit 1, as restore_command expects.
    let o = run(
        url,
        &[
            "archive",
            "fetch",
            "0000000900000000000000AA",
            s(&out.path().join("x")),
            "-A",
            url,
        ],
        &[],
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert_no_secret(&o);
}

#[test]
fn s3_push_fetch_round_trip_in_every_compression() {
    if fixture().is_none() {
        return;
    }
    for c in ["none", "gzip", "lz4", "zstd"] {
        round_trip(&s3_bucket(&format!("rt-{c}")), c);
    }
}

#[test]
fn az_push_fetch_round_trip() {
    if fixture().is_none() {
        return;
    }
    for c in ["none", "zstd"] {
        round_trip(&az_container(&format!("rt-{c}")), c);
    }
}

#[test]
fn s3_multipart_upload_round_trip() {
    let Some(f) = fixture() else { return };
    let url = s3_bucket("multipart");
    let n = &segments(f)[0];
    // Every object above 1 kB goes up in parts.
    let o = run(
        &url,
        &["archive", "push", s(&f.archive.join(n)), "-A", &url],
        &[("PGWAL_OBJECT_MULTIPART_THRESHOLD", Some("1024"))],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        objects(&url)[n.as_str()].as_ref(),
        fs::read(f.archive.join(n)).unwrap().as_slice()
    );
    // And the existing object is found before a second multipart upload.
    let o = run(
        &url,
        &["archive", "push", s(&f.archive.join(n)), "-A", &url],
        &[("PGWAL_OBJECT_MULTIPART_THRESHOLD", Some("1024"))],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(stderr(&o).contains("already archived"), "{}", text(&o));
}

// ---------------------------------------------------------------------------------------------
// Never overwrite.

/// A copy of segment `name` with different WAL after its first page (still a valid header).
fn altered(f: &Fixture, name: &str, dir: &Path) -> PathBuf {
    let mut data = fs::read(f.archive.join(name)).unwrap();
    for b in &mut data[100_000..100_064] {
        *b ^= 0xA5;
    }
    let p = dir.join(name);
    fs::write(&p, &data).unwrap();
    p
}

fn conflict_rule(url: &str) {
    let f = fixture().unwrap();
    let n = &segments(f)[1];
    let tmp = scratch("objstore-conflict");
    let other = altered(f, n, tmp.path());
    let o = run(
        url,
        &[
            "archive",
            "push",
            s(&f.archive.join(n)),
            "-A",
            url,
            "-c",
            "lz4",
        ],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let before = objects(url);
    // Different content under the same name, in any compression: refused, both untouched.
    for c in ["none", "lz4", "zstd"] {
        let o = run(
            url,
            &["archive", "push", s(&other), "-A", url, "-c", c],
            &[],
        );
        assert_eq!(code(&o), 1, "{}", text(&o));
        let e = stderr(&o);
        assert!(e.contains("different content"), "{e}");
        assert!(
            e.contains(url) && e.contains(&format!("{n}.lz4")),
            "names URL and key: {e}"
        );
        assert_no_secret(&o);
    }
    assert_eq!(objects(url), before);
    assert_eq!(fs::read(&other).unwrap().len(), 1 << 20);
}

#[test]
fn s3_conflict_is_an_error_and_leaves_both_untouched() {
    if fixture().is_none() {
        return;
    }
    conflict_rule(&s3_bucket("conflict"));
}

#[test]
fn az_conflict_is_an_error_and_leaves_both_untouched() {
    if fixture().is_none() {
        return;
    }
    conflict_rule(&az_container("conflict"));
}

/// Pushers racing on one segment: with the same content all succeed; with different content
/// exactly one wins and the stored object is the winner's.
fn racing_pushers(url_for: impl Fn(&str) -> String) {
    let f = fixture().unwrap();
    let n = segments(f)[2].clone();
    let tmp = scratch("objstore-race");
    let other = altered(f, &n, tmp.path());
    let original = f.archive.join(&n);
    for round in 0..3 {
        let url = url_for(&format!("race-same-{round}"));
        let outs: Vec<Output> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    sc.spawn(|| run(&url, &["archive", "push", s(&original), "-A", &url], &[]))
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for o in &outs {
            assert_eq!(code(o), 0, "{}", text(o));
        }
        let url = url_for(&format!("race-diff-{round}"));
        let (a, b) = std::thread::scope(|sc| {
            let a = sc.spawn(|| run(&url, &["archive", "push", s(&original), "-A", &url], &[]));
            let b = sc.spawn(|| run(&url, &["archive", "push", s(&other), "-A", &url], &[]));
            (a.join().unwrap(), b.join().unwrap())
        });
        let winners = [&a, &b].iter().filter(|o| code(o) == 0).count();
        assert_eq!(winners, 1, "exactly one wins:\n{}\n{}", text(&a), text(&b));
        let loser = if code(&a) == 0 { &b } else { &a };
        assert!(
            stderr(loser).contains("different content"),
            "{}",
            text(loser)
        );
        let winner_file = if code(&a) == 0 { &original } else { &other };
        let objs = objects(&url);
        assert_eq!(objs.len(), 1, "{:?}", objs.keys());
        assert_eq!(
            objs[n.as_str()].as_ref(),
            fs::read(winner_file).unwrap().as_slice()
        );
    }
}

#[test]
fn s3_racing_pushers_never_overwrite() {
    if fixture().is_none() {
        return;
    }
    racing_pushers(s3_bucket);
}

#[test]
fn az_racing_pushers_never_overwrite() {
    if fixture().is_none() {
        return;
    }
    racing_pushers(az_container);
}

// ---------------------------------------------------------------------------------------------
// verify, status, cleanup: a bucket holding a copy of a directory archive answers as the
// directory does.

fn same_as_directory(url: &str) {
    let f = fixture().unwrap();
    let dir = scratch_dir(
        "objstore-test",
        &format!("asdir-{}", url.replace(['/', ':'], "_")),
    );
    fs::create_dir_all(&dir).unwrap();
    for n in names(&f.archive) {
        fs::copy(f.archive.join(&n), dir.join(&n)).unwrap();
    }
    copy_into(&dir, url);
    let d = s(&dir).to_owned();
    let norm = |o: &Output, loc: &str| stdout(o).replace(loc, "ARCHIVE");
    // Objects are read on demand: nothing is written into $TMPDIR.
    let tmp = scratch("objstore-asdir-tmpdir");
    for args in [
        vec!["archive", "verify", "--format", "text"],
        vec!["archive", "verify", "--format", "json"],
        vec!["archive", "status", "--format", "text"],
        vec!["archive", "status", "--format", "json"],
    ] {
        let mut on_dir = args.clone();
        on_dir.extend(["-A", &d]);
        let mut on_url = args.clone();
        on_url.extend(["-A", url]);
        let a = pgwal(&on_dir);
        let b = run(url, &on_url, &[("TMPDIR", Some(s(tmp.path())))]);
        assert_eq!(code(&a), 0, "{}", text(&a));
        assert_eq!(code(&b), code(&a), "{}", text(&b));
        assert_eq!(norm(&b, url), norm(&a, &d), "{args:?}\n{}", text(&b));
        assert!(stdout(&b).contains(url), "reports the URL: {}", text(&b));
        assert!(names(tmp.path()).is_empty(), "{:?}", names(tmp.path()));
    }
    // cleanup: the same plan, then the same files left.
    let segs = segments(f);
    let cutoff = &segs[segs.len() / 2];
    let a = pgwal(&["archive", "cleanup", "-n", &d, cutoff]);
    let b = run(url, &["archive", "cleanup", "-n", url, cutoff], &[]);
    assert_eq!(code(&a), 0, "{}", text(&a));
    assert_eq!(code(&b), 0, "{}", text(&b));
    assert_eq!(norm(&b, url), norm(&a, &d));
    assert!(!stdout(&a).is_empty());
    let a = pgwal(&["archive", "cleanup", "--keep-history-needs", &d, cutoff]);
    // The history files are read from the store into memory: no local scratch copy (a
    // $TMPDIR that does not exist does not matter).
    let no_tmp = tmp.path().join("does-not-exist");
    let b = run(
        url,
        &["archive", "cleanup", "--keep-history-needs", url, cutoff],
        &[("TMPDIR", Some(s(&no_tmp)))],
    );
    assert_eq!(code(&a), 0, "{}", text(&a));
    assert_eq!(code(&b), 0, "{}", text(&b));
    let left: Vec<String> = objects(url).into_keys().collect();
    assert_eq!(left, names(&dir));
    assert!(left.len() < names(&f.archive).len());
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn s3_directory_archive_copied_into_bucket_verifies_and_cleans_up_as_the_directory() {
    if fixture().is_none() {
        return;
    }
    same_as_directory(&s3_bucket("asdir"));
}

#[test]
fn az_directory_archive_copied_into_container_verifies_and_cleans_up_as_the_directory() {
    if fixture().is_none() {
        return;
    }
    same_as_directory(&az_container("asdir"));
}

#[test]
fn s3_cleanup_deletes_more_than_one_batch() {
    // S3 DeleteObjects takes 1000 keys a request; 1100 objects also need two listing pages.
    let url = s3_bucket("batch");
    let store = open(&url);
    let names: Vec<String> = (0..1100u32)
        .map(|i| format!("00000001{:08X}{:08X}", i / 256, i % 256))
        .collect();
    let payloads = Bytes::from_static(b"x");
    std::thread::scope(|sc| {
        for chunk in names.chunks(275) {
            let store = &store;
            let p = payloads.clone();
            sc.spawn(move || {
                for n in chunk {
                    store.put_new(n, p.clone()).unwrap();
                }
            });
        }
    });
    assert_eq!(store.list("").unwrap().len(), 1100);
    let cutoff = "000000010000000400000000"; // index 1024
    let o = run(
        &url,
        &["archive", "cleanup", &url, cutoff],
        &[("PGWAL_LOG", Some("warn,pgwal::object=debug"))],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    // Two delete requests (S3 DeleteObjects takes 1000 keys), not 1024.
    let log = stderr(&o);
    let batches: Vec<&str> = log
        .lines()
        .filter_map(|l| {
            l.split_once("pgwal::object: delete batch of ")
                .map(|(_, n)| n)
        })
        .collect();
    assert_eq!(batches, ["1000 keys", "24 keys"], "{}", text(&o));
    let left: Vec<String> = store
        .list("")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(left, names[1024..].to_vec());
}

// ---------------------------------------------------------------------------------------------
// Prefetch.

/// Restores `segments` one by one into `dest` as `restore_command` would, with `--prefetch 3`,
/// each equal to its file in `archive`; how many came from the prefetch cache.
fn fetch_each_with_prefetch(url: &str, segments: &[String], dest: &Path, archive: &Path) -> usize {
    let mut prefetched = 0;
    for n in segments {
        let o = run(
            url,
            &[
                "archive",
                "fetch",
                n,
                s(dest),
                "-A",
                url,
                "--prefetch",
                "3",
                "-v",
            ],
            &[],
        );
        assert_eq!(code(&o), 0, "{}", text(&o));
        assert_eq!(
            fs::read(dest).unwrap(),
            fs::read(archive.join(n)).unwrap(),
            "{n}"
        );
        prefetched += usize::from(stderr(&o).contains("(prefetched)"));
    }
    prefetched
}

#[test]
fn s3_fetch_with_prefetch_restores_every_segment_identically() {
    let Some(f) = fixture() else { return };
    let url = s3_bucket("prefetch");
    let dir = scratch_dir("objstore-test", "prefetch-src");
    fs::create_dir_all(&dir).unwrap();
    for n in names(&f.archive) {
        fs::copy(f.archive.join(&n), dir.join(&n)).unwrap();
    }
    copy_into(&dir, &url);
    let tli1: Vec<String> = segments(f)
        .into_iter()
        .filter(|n| n.starts_with("00000001"))
        .collect();
    assert!(tli1.len() >= 6, "{tli1:?}");
    let pg_wal = scratch("objstore-prefetch");
    let dest = pg_wal.path().join("RECOVERYXLOG");
    // A cache left by another boot (its files were not fsynced) is not trusted: a garbage file
    // under the first name is never served.
    let cache = pg_wal.path().join(".pgwal-prefetch");
    fs::create_dir_all(&cache).unwrap();
    fs::write(cache.join(".pgwal-boot-id"), "another-boot").unwrap();
    fs::write(cache.join(&tli1[0]), vec![0u8; 1 << 20]).unwrap();
    let prefetched = fetch_each_with_prefetch(&url, &tli1, &dest, &f.archive);
    // Only the first call downloads its own segment: the read-ahead runs in a detached process
    // (each later call waits for a segment on its way, and a hit leaving fewer than half of the
    // three cached or pending starts the next ones), so every later call is a cache hit.
    assert_eq!(
        prefetched,
        tli1.len() - 1,
        "{prefetched} of {} prefetched",
        tli1.len()
    );
    // The cache holds nothing older than the last request.
    let last = tli1.last().unwrap();
    for n in names(&cache).into_iter().filter(|n| !n.starts_with('.')) {
        assert!(n.as_str() > last.as_str(), "stale {n} left in the cache");
    }
    // At the end of the timeline the read-ahead stops by itself: its claim on the cache and
    // its pending markers go with it.
    let t0 = Instant::now();
    while cache.join(".pgwal-read-ahead").exists() && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<String> = names(&cache)
        .into_iter()
        .filter(|n| n.starts_with(".pgwal-read-ahead") || n.starts_with(".pgwal-pending."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    fs::remove_dir_all(&dir).unwrap();
}

/// Segments an earlier recovery left in the cache, further on in the timeline, take no room
/// from the read-ahead: every call after the first is still served from the cache (a read-ahead
/// that counted them would wait for room until it gave up, and the calls with it).
#[test]
fn s3_prefetch_is_not_held_up_by_files_left_in_the_cache() {
    let Some(f) = fixture() else { return };
    let url = s3_bucket("prefetch-left");
    let tli1: Vec<String> = segments(f)
        .into_iter()
        .filter(|n| n.starts_with("00000001"))
        .collect();
    assert!(tli1.len() >= 6, "{tli1:?}");
    copy_into(&f.archive, &url);
    let pg_wal = scratch("objstore-prefetch-left");
    let dest = pg_wal.path().join("RECOVERYXLOG");
    let cache = pg_wal.path().join(".pgwal-prefetch");
    // This boot's cache, holding the last three segments already.
    fs::create_dir_all(&cache).unwrap();
    fs::write(
        cache.join(".pgwal-boot-id"),
        fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .unwrap()
            .trim(),
    )
    .unwrap();
    for n in &tli1[tli1.len() - 3..] {
        fs::copy(f.archive.join(n), cache.join(n)).unwrap();
    }
    let t0 = Instant::now();
    let prefetched = fetch_each_with_prefetch(&url, &tli1, &dest, &f.archive);
    assert_eq!(prefetched, tli1.len() - 1, "{prefetched} of {}", tli1.len());
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
}

/// A segment stored uncompressed is restored with one request (no listing), written into its
/// file as it arrives; a truncated one is refused before it reaches the destination, and its
/// temporary file is removed.
#[test]
fn s3_fetch_of_a_plain_segment_is_one_streamed_get() {
    let Some(f) = fixture() else { return };
    let url = s3_bucket("streamed");
    let segs = segments(f);
    let store = open(&url);
    let (n, cut) = (&segs[0], &segs[1]);
    store
        .put_new(n, Bytes::from(fs::read(f.archive.join(n)).unwrap()))
        .unwrap();
    let whole = fs::read(f.archive.join(cut)).unwrap();
    store
        .put_new(cut, Bytes::copy_from_slice(&whole[..whole.len() / 2]))
        .unwrap();
    let dest = scratch("objstore-streamed");
    let d = dest.path().join("RECOVERYXLOG");
    let debug = [("PGWAL_LOG", Some("pgwal::object=debug"))];
    let o = run(&url, &["archive", "fetch", n, s(&d), "-A", &url], &debug);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(fs::read(&d).unwrap(), fs::read(f.archive.join(n)).unwrap());
    let e = stderr(&o);
    let requests: Vec<&str> = e.lines().filter(|l| l.contains("pgwal::object")).collect();
    assert_eq!(requests.len(), 1, "{e}");
    assert!(requests[0].contains("(streamed)"), "{e}");

    fs::remove_file(&d).unwrap();
    let o = run(&url, &["archive", "fetch", cut, s(&d), "-A", &url], &debug);
    assert_eq!(code(&o), 2, "{}", text(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("{url}/{cut}")) && e.contains("damaged"),
        "{e}"
    );
    assert!(!d.exists());
    assert!(names(dest.path()).is_empty(), "{:?}", names(dest.path()));
    // A name that is not there: the direct request, then one listing, exit 1.
    let absent = &segs[2];
    let o = run(
        &url,
        &["archive", "fetch", absent, s(&d), "-A", &url],
        &debug,
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(stderr(&o).contains("list "), "{}", text(&o));
}

// ---------------------------------------------------------------------------------------------
// Faults: each a clear error naming the URL (and key), never the secret, archive untouched.

#[test]
fn s3_wrong_bucket_missing_credentials_and_wrong_secret() {
    let Some(f) = fixture() else { return };
    let url = s3_bucket("faults");
    let n = &segments(f)[0];
    let o = run(
        &url,
        &["archive", "push", s(&f.archive.join(n)), "-A", &url],
        &[],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    let before = objects(&url);
    let dest = scratch("objstore-faults");
    let d = dest.path().join("RECOVERYXLOG");

    // A bucket that does not exist.
    let wrong = "s3://no-such-bucket-pgwal/x";
    let o = run(wrong, &["archive", "fetch", n, s(&d), "-A", wrong], &[]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        stderr(&o).contains(wrong) && stderr(&o).contains("does not exist"),
        "{}",
        text(&o)
    );
    let o = run(
        wrong,
        &["archive", "push", s(&f.archive.join(n)), "-A", wrong],
        &[],
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(stderr(&o).contains("no-such-bucket-pgwal"), "{}", text(&o));

    // No credentials at all.
    let o = run(
        &url,
        &["archive", "fetch", n, s(&d), "-A", &url],
        &[
            ("AWS_ACCESS_KEY_ID", None),
            ("AWS_SECRET_ACCESS_KEY", None),
            ("HOME", Some("/nonexistent")),
        ],
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(
        stderr(&o).contains(&url) && stderr(&o).contains("no credentials"),
        "{}",
        text(&o)
    );

    // A wrong secret: the store answers 403.
    let bad_secret = "wrong-secret-value-9876543210";
    for args in [
        vec!["archive", "fetch", n.as_str(), s(&d), "-A", &url],
        vec![
            "archive",
            "push",
            s(&f.archive.join(&segments(f)[1])),
            "-A",
            &url,
        ],
        vec!["archive", "status", "-A", &url],
    ] {
        let o = run(&url, &args, &[("AWS_SECRET_ACCESS_KEY", Some(bad_secret))]);
        assert_ne!(code(&o), 0, "{}", text(&o));
        let e = stderr(&o);
        assert!(
            e.contains("access denied") && e.contains(&url),
            "{args:?}: {e}"
        );
        assert!(!e.contains(bad_secret), "{e}");
        assert_no_secret(&o);
    }
    // The shared credentials file is read when the variables are absent.
    let home = scratch("objstore-home");
    fs::create_dir_all(home.path().join(".aws")).unwrap();
    fs::write(
        home.path().join(".aws/credentials"),
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {S3_SECRET_KEY}\n",
            pgwal_testkit::objstore::S3_ACCESS_KEY
        ),
    )
    .unwrap();
    let o = run(
        &url,
        &["archive", "fetch", n, s(&d), "-A", &url],
        &[
            ("AWS_ACCESS_KEY_ID", None),
            ("AWS_SECRET_ACCESS_KEY", None),
            ("HOME", Some(s(home.path()))),
        ],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(objects(&url), before, "the archive is untouched");
}

#[test]
fn s3_store_answering_503_is_retried_and_then_reported() {
    let Some(f) = fixture() else { return };
    let url = s3_bucket("fivexx");
    let n = &segments(f)[0];
    let (port, seen) = fault_proxy(seaweed().s3_port(), Fault::Unavailable(2));
    let endpoint = format!("http://127.0.0.1:{port}");
    // Two 503s, then the store: the push succeeds, and each retry is logged.
    let o = run(
        &url,
        &["archive", "push", s(&f.archive.join(n)), "-A", &url],
        &[("AWS_ENDPOINT_URL", Some(&endpoint))],
    );
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(seen.load(Ordering::SeqCst) >= 3);
    let retries = stderr(&o).matches("backing off").count();
    assert!(retries >= 2, "a log line per retry:\n{}", text(&o));
    assert_eq!(objects(&url)[n.as_str()].len(), 1 << 20);
    // Always 503: the retries run out and the error names the URL and key.
    let (port, _) = fault_proxy(seaweed().s3_port(), Fault::Unavailable(usize::MAX));
    let endpoint = format!("http://127.0.0.1:{port}");
    let dest = scratch("objstore-5xx");
    let o = run(
        &url,
        &["archive", "fetch", n, s(&dest.path().join("X")), "-A", &url],
        &[
            ("AWS_ENDPOINT_URL", Some(&endpoint)),
            ("PGWAL_OBJECT_RETRIES", Some("2")),
        ],
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    let e = stderr(&o);
    assert!(e.contains(&url) && e.contains("503"), "{e}");
    assert_eq!(
        e.matches("backing off").count(),
        2,
        "a log line per retry: {e}"
    );
    assert!(!dest.path().join("X").exists());
}

#[test]
fn s3_store_that_does_not_answer_times_out() {
    let Some(f) = fixture() else { return };
    let url = s3_bucket("hang");
    let n = &segments(f)[0];
    let (port, _) = fault_proxy(seaweed().s3_port(), Fault::Hang);
    let endpoint = format!("http://127.0.0.1:{port}");
    let t0 = Instant::now();
    let o = run(
        &url,
        &["archive", "push", s(&f.archive.join(n)), "-A", &url],
        &[
            ("AWS_ENDPOINT_URL", Some(&endpoint)),
            ("PGWAL_OBJECT_TIMEOUT", Some("1")),
            ("PGWAL_OBJECT_RETRIES", Some("1")),
        ],
    );
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    let e = stderr(&o);
    assert!(e.contains(&url) && e.contains("cluster1/wal/"), "{e}");
    assert!(
        e.to_lowercase().contains("timed out") || e.contains("timeout"),
        "{e}"
    );
    assert!(objects(&url).is_empty());
}

fn not_wal(url: &str) {
    let f = fixture().unwrap();
    let n = segments(f)[3].clone();
    let store = open(url);
    // A file of the right size that is not WAL, and a foreign-looking one under a .zst name.
    store.put_new(&n, Bytes::from(vec![7u8; 1 << 20])).unwrap();
    let dest = scratch("objstore-notwal");
    let d = dest.path().join("RECOVERYXLOG");
    let o = run(url, &["archive", "fetch", &n, s(&d), "-A", url], &[]);
    assert_eq!(code(&o), 2, "{}", text(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("{url}/{n}")) && e.contains("damaged"),
        "{e}"
    );
    assert!(!d.exists());
    // verify says the same, and the archive is untouched.
    let o = run(url, &["archive", "verify", "-A", url], &[]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert_eq!(
        objects(url)[n.as_str()].as_ref(),
        vec![7u8; 1 << 20].as_slice()
    );
}

#[test]
fn s3_object_that_is_not_wal_is_reported() {
    if fixture().is_none() {
        return;
    }
    not_wal(&s3_bucket("notwal"));
}

#[test]
fn az_object_that_is_not_wal_and_wrong_key() {
    if fixture().is_none() {
        return;
    }
    let url = az_container("notwal");
    not_wal(&url);
    let o = run(
        &url,
        &["archive", "status", "-A", &url],
        &[(
            "AZURE_STORAGE_ACCOUNT_KEY",
            Some("d3JvbmcgYXp1cml0ZSBrZXkgMDEyMzQ1Njc4OQ=="),
        )],
    );
    assert_ne!(code(&o), 0, "{}", text(&o));
    assert!(stderr(&o).contains(&url), "{}", text(&o));
    assert_no_secret(&o);
    let wrong = "az://no-such-container-pgwal/x";
    let o = run(
        wrong,
        &[
            "archive",
            "fetch",
            "000000010000000000000001",
            "/tmp/x-never",
            "-A",
            wrong,
        ],
        &[],
    );
    assert_eq!(code(&o), 2, "{}", text(&o));
    assert!(stderr(&o).contains("does not exist"), "{}", text(&o));
}

// ---------------------------------------------------------------------------------------------
// dump -p URL.

/// The fixture's files in a directory and in the archive at `url`, complete segments in turn
/// plain, zstd, gzip and LZ4, the `.partial` gzip-compressed (`NAME.gz.partial`), history and
/// backup files as they are. Returns the directory.
fn mixed_archive(f: &Fixture, url: &str) -> PathBuf {
    use pgwal::storage::codec::{compress, Encoding};
    use pgwal::Compression;
    let dir = scratch_dir(
        "objstore-test",
        &format!("mixed-{}", url.replace(['/', ':'], "_")),
    );
    fs::create_dir_all(&dir).unwrap();
    let kinds = [
        (Compression::None, ""),
        (Compression::Zstd, ".zst"),
        (Compression::Gzip, ".gz"),
        (Compression::Lz4, ".lz4"),
    ];
    let mut i = 0;
    for n in names(&f.archive) {
        let data = fs::read(f.archive.join(&n)).unwrap();
        let (kind, name) = if n.len() == 24 {
            let (k, suffix) = kinds[i % kinds.len()];
            i += 1;
            (k, format!("{n}{suffix}"))
        } else if let Some(base) = n.strip_suffix(".partial") {
            (Compression::Gzip, format!("{base}.gz.partial"))
        } else {
            (Compression::None, n.clone())
        };
        let stored = if kind == Compression::None {
            data
        } else {
            compress(&Encoding::new(kind, 3), &data).unwrap()
        };
        fs::write(dir.join(&name), &stored).unwrap();
    }
    copy_into(&dir, url);
    dir
}

/// The names of the objects a `pgwal` run fetched whole, from its `pgwal::object` debug log.
fn fetched_whole(o: &Output) -> Vec<String> {
    let mut v: Vec<String> = stderr(o)
        .lines()
        .filter_map(|l| l.split_once("pgwal::object: get ").map(|(_, k)| k))
        .filter(|k| !k.contains(" (first "))
        .map(|k| k.rsplit('/').next().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// The file `dir` holds for plain segment name `n` (its one stored form).
fn stored_form(dir: &Path, n: &str) -> String {
    names(dir)
        .into_iter()
        .find(|x| x.starts_with(n) && !x.ends_with(".partial"))
        .unwrap()
}

/// `X/X` of segment `n`'s start (1 MB segments) plus `off`.
fn lsn_in(n: &str, off: u64) -> String {
    let log = u64::from_str_radix(&n[8..16], 16).unwrap();
    let seg = u64::from_str_radix(&n[16..24], 16).unwrap();
    let lsn = (log * 4096 + seg) * (1 << 20) + off;
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// `dump -p URL` prints what `dump -p DIR` prints for the same archive (a whole timeline to
/// its compressed `.partial`, and a start and end in the middle, in text and `--stats`, on one
/// thread and with `-j 2`),
/// fetching only the objects of the range, and writing nothing into `$TMPDIR`; a missing
/// object in the middle, a wrong bucket and an object that is not WAL are errors naming the
/// URL and key.
fn dump_url_as_directory(url: &str) {
    let f = fixture().unwrap();
    let dir = mixed_archive(f, url);
    let tli1: Vec<String> = segments(f)
        .into_iter()
        .filter(|n| n.starts_with("00000001"))
        .collect();
    assert!(tli1.len() >= 6, "{tli1:?}");
    let tmp = scratch("objstore-dump-tmpdir");
    let env = [
        ("PGWAL_LOG", Some("warn,pgwal::object=debug")),
        ("TMPDIR", Some(s(tmp.path()))),
    ];
    let partial = names(&dir)
        .into_iter()
        .find(|n| n.ends_with(".gz.partial") && n.starts_with("00000001"))
        .unwrap();
    // The whole of timeline 1: every segment of it and its `.partial`, each once.
    let mut whole: Vec<String> = tli1.iter().map(|n| stored_form(&dir, n)).collect();
    whole.push(partial.clone());
    whole.sort();
    let (start, end) = (lsn_in(&tli1[2], 0x1234), lsn_in(&tli1[4], 0x5678));
    let mut middle: Vec<String> = tli1[2..=4].iter().map(|n| stored_form(&dir, n)).collect();
    middle.sort();
    let cases: [(Vec<&str>, &Vec<String>); 5] = [
        (vec![], &whole),
        (vec!["-s", &start, "-e", &end], &middle),
        (vec!["-s", &start, "-e", &end, "--stats"], &middle),
        // The parallel reader over the same listing: the same output and objects.
        (vec!["-j", "2"], &whole),
        (
            vec!["-s", &start, "-e", &end, "--stats", "-j", "2"],
            &middle,
        ),
    ];
    for (extra, expect) in cases {
        let mut on_dir = vec!["dump", "-p", s(&dir)];
        on_dir.extend(extra.iter().copied());
        let mut on_url = vec!["dump", "-p", url];
        on_url.extend(extra.iter().copied());
        let a = pgwal(&on_dir);
        let b = run(url, &on_url, &env);
        assert_eq!(code(&a), 0, "{}", text(&a));
        assert_eq!(code(&b), 0, "{}", text(&b));
        assert!(stdout(&a).lines().count() > 10, "{}", text(&a));
        assert_eq!(stdout(&b), stdout(&a), "{extra:?}");
        // Each object of the range exactly once, also with -j (the workers take the
        // read-ahead's copies).
        let fetched = fetched_whole(&b);
        assert_eq!(&fetched, expect, "{extra:?}\n{}", stderr(&b));
        assert!(names(tmp.path()).is_empty(), "{:?}", names(tmp.path()));
    }
    // verify and status read compressed objects' first pages and contents as the directory's.
    for cmd in ["verify", "status"] {
        let a = pgwal(&["archive", cmd, "--format", "json", "-A", s(&dir)]);
        let b = run(url, &["archive", cmd, "--format", "json", "-A", url], &env);
        assert_eq!(code(&b), code(&a), "{}\n{}", text(&a), text(&b));
        assert_eq!(
            stdout(&b).replace(url, "ARCHIVE"),
            stdout(&a).replace(s(&dir), "ARCHIVE"),
            "{cmd}"
        );
        assert!(names(tmp.path()).is_empty(), "{:?}", names(tmp.path()));
    }
    // An object missing in the middle of the range: the URL and key named.
    let gone = stored_form(&dir, &tli1[3]);
    open(url).delete_many(std::slice::from_ref(&gone)).unwrap();
    let o = run(url, &["dump", "-p", url, "-s", &start, "-e", &end], &[]);
    assert!(
        stderr(&o).contains(&format!("{url}/{}", tli1[3])),
        "{}",
        text(&o)
    );
    assert!(!stdout(&o).is_empty(), "{}", text(&o));
    // A bucket or container that does not exist.
    let wrong = if url.starts_with("s3://") {
        "s3://no-such-bucket-pgwal/x"
    } else {
        "az://no-such-container-pgwal/x"
    };
    let o = run(wrong, &["dump", "-p", wrong], &[]);
    assert_ne!(code(&o), 0, "{}", text(&o));
    assert!(
        stderr(&o).contains("does not exist") && stderr(&o).contains(wrong),
        "{}",
        text(&o)
    );
    // An object that is not WAL where the first segment should be.
    let junk = format!("{url}-junk");
    copy_into(&dir, &junk);
    let first = stored_form(&dir, &tli1[0]);
    open(&junk)
        .delete_many(std::slice::from_ref(&first))
        .unwrap();
    open(&junk)
        .put_new(&first, Bytes::from(vec![7u8; 1 << 20]))
        .unwrap();
    let o = run(&junk, &["dump", "-p", &junk], &[]);
    assert_ne!(code(&o), 0, "{}", text(&o));
    assert!(
        stderr(&o).contains(&format!("{junk}/{first}")),
        "{}",
        text(&o)
    );
    assert_no_secret(&o);
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn s3_dump_reads_an_archive_url_as_the_directory() {
    if fixture().is_none() {
        return;
    }
    dump_url_as_directory(&s3_bucket("dump"));
}

#[test]
fn az_dump_reads_an_archive_url_as_the_directory() {
    if fixture().is_none() {
        return;
    }
    dump_url_as_directory(&az_container("dump"));
}

/// The library's reader over an archive URL: the same records as over the directory, only the
/// range's objects fetched (the read-ahead stops at the end), and an object deleted after the
/// listing is an error naming the URL and key.
#[test]
fn s3_library_reader_over_a_url_fetches_on_demand() {
    use pgwal::reader::{Location as ReadLocation, ReaderError, WalReader};
    use pgwal::source::SourceError;
    use pgwal::storage::object::ObjectError;
    use std::ops::ControlFlow;
    let Some(f) = fixture() else { return };
    let url = s3_bucket("reader");
    let dir = mixed_archive(f, &url);
    let tli1: Vec<String> = segments(f)
        .into_iter()
        .filter(|n| n.starts_with("00000001"))
        .collect();
    let ReadLocation::Object(u) = ReadLocation::parse(&url).unwrap() else {
        panic!("{url} is not an object location");
    };
    let mut opts = ObjectOptions::default();
    opts.config = config_for(&u);
    let builder = || {
        WalReader::builder()
            .start_segment(tli1[1].clone())
            .end_segment(tli1[4].clone())
            .object_options(opts.clone())
    };
    let lsns = |r: &mut WalReader| {
        let mut v = Vec::new();
        let end = r
            .for_each(|rec| {
                v.push((rec.lsn(), rec.end_lsn()));
                ControlFlow::Continue(())
            })
            .unwrap();
        (v, end)
    };
    let mut on_dir = builder().open(dir.as_path()).unwrap();
    let mut on_url = builder().open(ReadLocation::parse(&url).unwrap()).unwrap();
    assert_eq!(on_url.info(), on_dir.info());
    assert_eq!(
        (on_url.start(), on_url.end()),
        (on_dir.start(), on_dir.end())
    );
    let (a, b) = (lsns(&mut on_dir), lsns(&mut on_url));
    assert!(a.0.len() > 100, "{}", a.0.len());
    assert_eq!(b, a);
    let fetched = on_url.directory().remote().unwrap().fetched();
    let expect: Vec<String> = tli1[1..=4].iter().map(|n| stored_form(&dir, n)).collect();
    assert_eq!(fetched, expect);
    // Deleted after the listing: the error names the URL and the key.
    let mut r = builder().open(ReadLocation::parse(&url).unwrap()).unwrap();
    let gone = stored_form(&dir, &tli1[3]);
    open(&url).delete_many(std::slice::from_ref(&gone)).unwrap();
    let e = r.for_each(|_| ControlFlow::Continue(())).unwrap_err();
    assert!(
        matches!(
            &e,
            ReaderError::Source(SourceError::Object(ObjectError::NotFound { .. }))
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains(&url) && msg.contains(&format!("cluster1/wal/{gone}")),
        "{msg}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// `dump --follow -p URL` goes on as objects arrive, as `--follow` on a directory does: the
/// segments of a real server's WAL pushed with `archive push` in every compression while it
/// runs, then a receiver's partial objects of the next segment (an older and a newer one, both
/// there for a while, then the older deleted) and the complete segment replacing them. After
/// each step the follower has printed exactly what `dump -p DIR` prints over the same files
/// (no record twice, none skipped), logs each poll, and is still running at the end.
#[test]
fn s3_dump_follow_reads_objects_as_they_arrive() {
    use pgwal::storage::codec::{compress, Encoding};
    use pgwal::Compression;
    use std::process::{Command, Stdio};
    let Some(f) = fixture() else { return };
    let url = s3_bucket("follow");
    let tli1: Vec<String> = segments(f)
        .into_iter()
        .filter(|n| n.starts_with("00000001"))
        .collect();
    assert!(tli1.len() >= 6, "{tli1:?}");
    let dir = scratch_dir("objstore-test", "follow-dir");
    fs::create_dir_all(&dir).unwrap();
    let work = scratch_dir("objstore-test", "follow-out");
    fs::create_dir_all(&work).unwrap();
    let push = |n: &str, method: &str| {
        let path = f.archive.join(n);
        let o = run(
            &url,
            &["archive", "push", s(&path), "-A", &url, "-c", method],
            &[],
        );
        assert_eq!(code(&o), 0, "{}", text(&o));
        fs::copy(&path, dir.join(n)).unwrap();
    };
    for (n, method) in tli1[..3].iter().zip(["none", "zstd", "gzip"]) {
        push(n, method);
    }
    let (out, err) = (work.join("follow.out"), work.join("follow.err"));
    let mut follower = Command::new(BIN)
        .args(["dump", "--follow", "-p", &url])
        .envs(store_env(&url))
        .env("PGWAL_LOG", "warn,pgwal::follow=debug,pgwal::object=debug")
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    // Until the follower has printed what a dump of the directory prints (30 s at most).
    let mut printed = 0;
    let mut caught_up = |step: &str| {
        let o = pgwal(&["dump", "-p", s(&dir)]);
        assert_eq!(code(&o), 0, "{}", text(&o));
        let want = stdout(&o);
        assert!(want.lines().count() > printed, "{step}: no new records");
        printed = want.lines().count();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got = fs::read_to_string(&out).unwrap();
            if got == want {
                return;
            }
            if Instant::now() > deadline || !want.starts_with(&got) {
                let log = fs::read_to_string(&err).unwrap();
                panic!(
                    "{step}: the follower printed {} lines, the directory's dump {}\n{log}",
                    got.lines().count(),
                    want.lines().count()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    caught_up("first three segments");
    push(&tli1[3], "lz4");
    push(&tli1[4], "none");
    caught_up("two more segments");
    // The receiver's partial objects of the next segment (`--flush-to remote`), zstd.
    let seg = fs::read(f.archive.join(&tli1[5])).unwrap();
    let seg_start = u64::from_str_radix(&tli1[5][8..16], 16).unwrap() * (1u64 << 32)
        + u64::from_str_radix(&tli1[5][16..24], 16).unwrap() * (1 << 20);
    let store = open(&url);
    let partial = |len: usize| {
        let name = format!("{}.{:016X}.zst.partial", tli1[5], seg_start + len as u64);
        let z = compress(&Encoding::new(Compression::Zstd, 3), &seg[..len]).unwrap();
        store.put_new(&name, Bytes::from(z)).unwrap();
        fs::write(dir.join(format!("{}.partial", tli1[5])), &seg[..len]).unwrap();
        name
    };
    let older = partial(300_000);
    caught_up("a partial object");
    // A newer one beside it: the newer is read (the older deleted afterwards, as the
    // receiver does).
    let newer = partial(700_001);
    caught_up("a newer partial object");
    store.delete_many(std::slice::from_ref(&older)).unwrap();
    // The complete segment replaces them.
    fs::remove_file(dir.join(format!("{}.partial", tli1[5]))).unwrap();
    push(&tli1[5], "gzip");
    store.delete_many(std::slice::from_ref(&newer)).unwrap();
    caught_up("the complete segment");
    let status = follower.try_wait().unwrap();
    let log = fs::read_to_string(&err).unwrap();
    assert!(status.is_none(), "the follower ended: {status:?}\n{log}");
    follower.kill().unwrap();
    follower.wait().unwrap();
    let polls = log
        .lines()
        .filter(|l| l.contains("pgwal::follow") && l.contains("looking for more"))
        .count();
    assert!(polls >= 3, "{polls} polls logged\n{log}");
    // Each object fetched once: resuming in the segment it stopped in takes the copy it kept.
    let mut gets: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_once("pgwal::object: get ").map(|(_, k)| k))
        .filter(|k| !k.contains(" (first "))
        .collect();
    gets.sort_unstable();
    let n = gets.len();
    gets.dedup();
    assert_eq!(gets.len(), n, "an object fetched twice: {gets:?}\n{log}");
    assert_eq!(n, 8, "{gets:?}");
    assert!(!log.contains(S3_SECRET_KEY), "a secret was logged");
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&work).unwrap();
}

/// Identical twins (one segment stored in two forms, as a receiver killed with kill -9 during
/// an upload can leave): `archive verify` names them in a warning and passes; `archive cleanup`
/// settles them to the preferred form (plain, zstd, LZ4, gzip: the receiver's rule), also in
/// a dry run saying so without deleting; a twin holding other WAL fails verify, and cleanup
/// leaves both and exits 1.
#[test]
fn s3_identical_twins_are_reported_and_settled() {
    use pgwal::storage::codec::{compress, Encoding};
    use pgwal::Compression;
    let Some(f) = fixture() else { return };
    let url = s3_bucket("twins");
    copy_into(&f.archive, &url);
    let tli1: Vec<String> = segments(f)
        .into_iter()
        .filter(|n| n.starts_with("00000001"))
        .collect();
    let store = open(&url);
    let put = |name: String, kind: Compression, data: &[u8]| {
        let z = compress(&Encoding::new(kind, 3), data).unwrap();
        store.put_new(&name, Bytes::from(z)).unwrap();
        name
    };
    let seg = |n: &str| fs::read(f.archive.join(n)).unwrap();
    // A plain segment and its zstd twin; a segment stored only as LZ4 and gzip twins.
    let zst = put(
        format!("{}.zst", tli1[1]),
        Compression::Zstd,
        &seg(&tli1[1]),
    );
    store.delete_many(std::slice::from_ref(&tli1[2])).unwrap();
    let lz4 = put(format!("{}.lz4", tli1[2]), Compression::Lz4, &seg(&tli1[2]));
    let gz = put(format!("{}.gz", tli1[2]), Compression::Gzip, &seg(&tli1[2]));
    let codes = |o: &Output| -> Vec<(String, String)> {
        let v: serde_json::Value = serde_json::from_str(&stdout(o)).unwrap();
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["code"].as_str().unwrap().to_owned(),
                    p["file"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let verify = || {
        run(
            &url,
            &["archive", "verify", "--format", "json", "-A", &url],
            &[],
        )
    };
    let o = verify();
    assert_eq!(code(&o), 0, "{}", text(&o));
    let twins: Vec<(String, String)> = codes(&o)
        .into_iter()
        .filter(|(c, _)| c == "identical_copies")
        .collect();
    assert_eq!(
        twins,
        [
            ("identical_copies".to_owned(), zst.clone()),
            ("identical_copies".to_owned(), gz.clone())
        ],
        "{}",
        text(&o)
    );
    let o = run(
        &url,
        &["archive", "verify", "--format", "text", "-A", &url],
        &[],
    );
    assert!(
        stdout(&o).contains(&format!(
            "\"{}\" and \"{zst}\" are identical twins",
            tli1[1]
        )),
        "{}",
        text(&o)
    );
    // A dry run says what it would settle and deletes nothing.
    let before: Vec<String> = objects(&url).into_keys().collect();
    let o = run(&url, &["archive", "cleanup", "-n", &url, &tli1[0]], &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert_eq!(
        stdout(&o),
        format!("{url}/{zst}\n{url}/{gz}\n"),
        "{}",
        text(&o)
    );
    assert!(
        stderr(&o).contains(&format!(
            "would remove \"{url}/{gz}\": an identical twin of \"{url}/{lz4}\""
        )),
        "{}",
        text(&o)
    );
    assert_eq!(objects(&url).into_keys().collect::<Vec<_>>(), before);
    // Settled: the preferred form of each stays.
    let o = run(&url, &["archive", "cleanup", &url, &tli1[0]], &[]);
    assert_eq!(code(&o), 0, "{}", text(&o));
    let left: Vec<String> = objects(&url).into_keys().collect();
    let expect: Vec<String> = before
        .iter()
        .filter(|n| **n != zst && **n != gz)
        .cloned()
        .collect();
    assert_eq!(left, expect);
    assert!(left.contains(&tli1[1]) && left.contains(&lz4));
    let o = verify();
    assert_eq!(code(&o), 0, "{}", text(&o));
    assert!(
        !codes(&o).iter().any(|(c, _)| c == "identical_copies"),
        "{}",
        text(&o)
    );
    // A twin with other WAL: verify fails, cleanup keeps both and exits 1.
    let tmp = scratch("objstore-twins");
    let other = put(
        format!("{}.zst", tli1[3]),
        Compression::Zstd,
        &fs::read(altered(f, &tli1[3], tmp.path())).unwrap(),
    );
    let o = verify();
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        codes(&o).contains(&("conflicting_copies".to_owned(), other.clone())),
        "{}",
        text(&o)
    );
    let o = run(&url, &["archive", "cleanup", &url, &tli1[0]], &[]);
    assert_eq!(code(&o), 1, "{}", text(&o));
    assert!(
        stderr(&o).contains(&format!(
            "\"{}\" and \"{other}\" hold different WAL",
            tli1[3]
        )),
        "{}",
        text(&o)
    );
    let now: Vec<String> = objects(&url).into_keys().collect();
    assert!(now.contains(&tli1[3]) && now.contains(&other), "{now:?}");
    assert_eq!(now.len(), left.len() + 1);
}
