//! What the object-storage test binaries share: the kit's S3 and Azure clients, the receiver
//! run in the background or to its end, and the objects compared with a server's `pg_wal`.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use pgwal::storage::codec::{decompress, sniff_compression};
use pgwal::storage::location::Location;
use pgwal::storage::object::{ObjectArchive, ObjectOptions};
use pgwal::{WalFileName, WalSegSize};
use pgwal_testkit::objstore::{AZURITE_KEY, S3_ACCESS_KEY, S3_SECRET_KEY};
use pgwal_testkit::Cluster;

use super::*;

/// The segment size of the servers of [`cluster`] (1 MB).
pub const SEG: u64 = 1 << 20;

pub static BUCKETS: AtomicUsize = AtomicUsize::new(0);

pub fn unique(tag: &str) -> String {
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        BUCKETS.fetch_add(1, Ordering::SeqCst)
    )
}

/// The environment of a client of an S3 endpoint: the kit's credentials, instance metadata
/// off, short timeouts so that a stopped store fails fast.
pub fn s3_env(endpoint: &str) -> Vec<(String, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID".into(), S3_ACCESS_KEY.into()),
        ("AWS_SECRET_ACCESS_KEY".into(), S3_SECRET_KEY.into()),
        ("AWS_REGION".into(), "us-east-1".into()),
        ("AWS_ENDPOINT_URL".into(), endpoint.into()),
        ("AWS_ALLOW_HTTP".into(), "true".into()),
        ("AWS_EC2_METADATA_DISABLED".into(), "true".into()),
        ("PGWAL_OBJECT_RETRIES".into(), "2".into()),
        ("PGWAL_OBJECT_RETRY_TIMEOUT".into(), "5".into()),
        ("PGWAL_OBJECT_TIMEOUT".into(), "20".into()),
        ("PGWAL_OBJECT_CONNECT_TIMEOUT".into(), "2".into()),
    ]
}

pub fn az_env() -> Vec<(String, String)> {
    let mut e = azurite().env();
    e.push(("PGWAL_OBJECT_RETRIES".into(), "2".into()));
    e
}

/// The object-store client settings of the S3 endpoint `endpoint` with the kit's credentials.
pub fn s3_config(endpoint: &str) -> Vec<(String, String)> {
    vec![
        ("aws_endpoint".into(), endpoint.into()),
        ("aws_access_key_id".into(), S3_ACCESS_KEY.into()),
        ("aws_secret_access_key".into(), S3_SECRET_KEY.into()),
        ("aws_region".into(), "us-east-1".into()),
        ("aws_allow_http".into(), "true".into()),
    ]
}

/// The object-store client settings of the shared Azurite.
pub fn az_config() -> Vec<(String, String)> {
    vec![
        (
            "azure_storage_account_name".into(),
            "devstoreaccount1".into(),
        ),
        ("azure_storage_account_key".into(), AZURITE_KEY.into()),
        ("azure_allow_http".into(), "true".into()),
        (
            "azure_storage_endpoint".into(),
            format!("{}/devstoreaccount1", azurite().endpoint()),
        ),
    ]
}

/// The library's view of the archive at `url` with client settings `config`.
fn open_with(url: &str, config: Vec<(String, String)>, max_retries: usize) -> ObjectArchive {
    let Location::Object(u) = Location::parse(url).unwrap() else {
        panic!("{url}")
    };
    let mut o = ObjectOptions::default();
    o.config = config;
    o.max_retries = max_retries;
    ObjectArchive::open(&u, &o).unwrap()
}

/// The library's view of an S3 archive at `endpoint`.
pub fn open_s3(url: &str, endpoint: &str) -> ObjectArchive {
    open_with(url, s3_config(endpoint), 1)
}

/// The library's view of an archive in the shared Azurite.
pub fn open_az(url: &str) -> ObjectArchive {
    open_with(url, az_config(), ObjectOptions::default().max_retries)
}

/// An archive in a new bucket of a SeaweedFS cluster: its URL, a client's environment for it
/// and the library's view of it.
pub struct S3Archive {
    /// The bucket.
    pub bucket: String,
    /// `s3://BUCKET/PREFIX`.
    pub url: String,
    /// The environment of a `pgwal` process using it ([`s3_env`]).
    pub env: Vec<(String, String)>,
    /// The library's view of it ([`open_s3`]).
    pub store: ObjectArchive,
}

/// Creates a bucket named after `tag` in `weed` and the archive `s3://BUCKET/{prefix}` in it.
pub fn s3_archive(weed: &pgwal_testkit::SeaweedFs, tag: &str, prefix: &str) -> S3Archive {
    let bucket = unique(tag);
    weed.create_bucket(&bucket).unwrap();
    let url = format!("s3://{bucket}/{prefix}");
    S3Archive {
        env: s3_env(&weed.endpoint()),
        store: open_s3(&url, &weed.endpoint()),
        url,
        bucket,
    }
}

/// `pgwal receive`'s arguments for slot `slot` of the server at conninfo `ci` into archive
/// `url`, spooling in `spool`, followed by `extra`.
pub fn receiver_args<'a>(
    ci: &'a str,
    slot: &'a str,
    url: &'a str,
    spool: &'a Path,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec!["-d", ci, "-S", slot, "-D", url, "--spool", s(spool)];
    a.extend_from_slice(extra);
    a
}

/// `pgwal receive ARGS` with `env`, in the background, stderr appended to `log`.
pub fn spawn_env(args: &[&str], env: &[(String, String)], log: &Path) -> std::process::Child {
    let f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut c = std::process::Command::new(BIN);
    c.arg("receive").args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.env("PGWAL_LOG", "info");
    c.stdout(std::process::Stdio::null())
        .stderr(f)
        .spawn()
        .unwrap()
}

/// `pgwal receive ARGS` with `env`, to its end (failing after `limit`).
pub fn receive_env(
    args: &[&str],
    env: &[(String, String)],
    limit: Duration,
) -> std::process::Output {
    let mut c = std::process::Command::new(BIN);
    c.arg("receive").args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.env("PGWAL_LOG", "info");
    run_limited(c, limit)
}

/// Every object: name → decompressed content.
pub fn objects(store: &ObjectArchive) -> BTreeMap<String, Vec<u8>> {
    store
        .list("")
        .unwrap()
        .into_iter()
        .map(|e| {
            let raw = store.get(&e.name).unwrap();
            let plain = decompress(sniff_compression(&raw), &raw).unwrap();
            (e.name, plain)
        })
        .collect()
}

/// Complete segment objects of timeline `tli`: segment number → (name, content).
pub fn segment_objects(
    objs: &BTreeMap<String, Vec<u8>>,
    tli: u32,
) -> BTreeMap<u64, (String, &Vec<u8>)> {
    let seg = WalSegSize::new(SEG as u32).unwrap();
    let mut out = BTreeMap::new();
    for (n, data) in objs {
        if let Some(w @ WalFileName::Segment { partial: false, .. }) = WalFileName::parse(n) {
            if w.timeline().0 == tli {
                let segno = w.segno(seg).unwrap().0;
                assert!(
                    out.insert(segno, (n.clone(), data)).is_none(),
                    "segment {segno:X} stored twice: {n}"
                );
            }
        }
    }
    out
}

/// The complete segments are contiguous, each equal to the server's file; returns their
/// range.
pub fn check_segments(objs: &BTreeMap<String, Vec<u8>>, pg_wal: &Path, tli: u32) -> (u64, u64) {
    let segs = segment_objects(objs, tli);
    assert!(!segs.is_empty(), "no segments: {:?}", objs.keys());
    let (first, last) = (*segs.keys().next().unwrap(), *segs.keys().last().unwrap());
    for s in first..=last {
        let (name, data) = segs
            .get(&s)
            .unwrap_or_else(|| panic!("gap: segment {s:X} missing in {:?}", objs.keys()));
        let plain = name.split('.').next().unwrap();
        let server = fs::read(pg_wal.join(plain)).unwrap();
        assert!(
            **data == server,
            "object {name} differs from the server's {plain}"
        );
    }
    (first, last)
}

/// The files left in a spool: complete segments must be gone.
pub fn spool_segments(spool: &Path) -> Vec<String> {
    segment_names(spool)
}

pub fn create_slot(pg: &Cluster, name: &str) {
    sql(
        pg,
        &format!("SELECT lsn FROM pg_create_physical_replication_slot('{name}', true)"),
    );
}

pub fn end_lsn(pg: &Cluster) -> u64 {
    sql(pg, "SELECT pg_switch_wal()");
    pg.sql_load_blocking(300).unwrap();
    lsn(pg, "SELECT pg_current_wal_flush_lsn()")
}

/// Runs pgbench against `pg` on a thread until `stop` is set.
pub fn pgbench_until(pg: Arc<Cluster>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let _ = pg.pgbench_run(2, pgwal_testkit::PgbenchLength::Seconds(1));
        }
    })
}

/// The end of the WAL stored contiguously from segment `first` (complete segments, then the
/// newest partial object of the next one).
pub fn stored_end(store: &ObjectArchive, first: u64) -> u64 {
    let names: Vec<String> = store
        .list("")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    let seg = WalSegSize::new(SEG as u32).unwrap();
    let mut complete = std::collections::BTreeSet::new();
    let mut partial_end: BTreeMap<u64, u64> = BTreeMap::new();
    for n in &names {
        if n.ends_with(".partial") && n.len() > 41 {
            let segno = WalFileName::parse(&n[..24]).unwrap().segno(seg).unwrap().0;
            let end = u64::from_str_radix(&n[25..41], 16).unwrap();
            let e = partial_end.entry(segno).or_default();
            *e = (*e).max(end);
        } else if let Some(w @ WalFileName::Segment { partial: false, .. }) = WalFileName::parse(n)
        {
            complete.insert(w.segno(seg).unwrap().0);
        }
    }
    let mut s = first;
    while complete.contains(&s) {
        s += 1;
    }
    partial_end.get(&s).copied().unwrap_or(s * SEG)
}
