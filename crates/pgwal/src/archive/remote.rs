//! The archive operations on an archive in object storage ([`ObjectArchive`]): the same checks,
//! names and outcomes as on a directory.
//!
//! - [`push_object`]: create-only; an object already there with the same content (after
//!   decompression) is success, different content a [`PushError::Conflict`] that leaves both
//!   untouched.
//! - [`fetch_object`]: with a prefetch cache ([`FetchCache`]), a miss starts a read-ahead
//!   ([`read_ahead`], a detached process) that keeps the next segments downloaded into the
//!   cache as later calls take them from there.
//! - `verify` and `status` read an object archive through its listing with the objects
//!   fetched on demand ([`crate::reader::object::list`], [`crate::archive::verify_listing`]).
//! - [`plan_cleanup_object`] / [`execute_cleanup_object`]: pg_archivecleanup's rules over the
//!   listing, deletes in batches.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::archive::cleanup::{plan_cleanup_index, CleanupError, CleanupOptions, CleanupPlan};
use crate::archive::compress::{decompress_fast, read_all};
use crate::archive::fetch::{check_fetched, FetchError, FetchOptions, FetchOutcome};
use crate::archive::push::{
    check_push, check_segment_head, compare_content, parse_push_name, PushError, PushOptions,
    PushOutcome,
};
use crate::segment::{Compression, SegNo, WalFileName, WalSegSize};
use crate::source::name_variants;
use crate::storage::codec::sniff_compression;
use crate::storage::object::{ObjectArchive, ObjectEntry, ObjectError, PutNew};
use crate::storage::temp::temp_path;
use crate::wal::{PageHeader, LONG_HEADER_SIZE};

/// The variants of `name` present in `listing` (plain first, as [`name_variants`] orders them).
fn variants_in(listing: &[ObjectEntry], name: &WalFileName) -> Vec<WalFileName> {
    name_variants(name)
        .into_iter()
        .filter(|v| {
            let s = v.to_string();
            listing.iter().any(|e| e.name == s)
        })
        .collect()
}

/// The variants of `name` in the archive (one listing request).
fn existing_object_variants(
    store: &ObjectArchive,
    name: &WalFileName,
) -> Result<Vec<WalFileName>, ObjectError> {
    let base = name.with(Compression::None, false).to_string();
    let listing = store.list(&base)?;
    Ok(variants_in(&listing, name))
}

/// The system identifier and segment size in the first page of archived segment `name`.
fn probe_object(store: &ObjectArchive, name: &WalFileName) -> Option<(u64, WalSegSize)> {
    let fname = name.to_string();
    let head: Vec<u8> = if name.compression() == Compression::None {
        store
            .get_head(&fname, LONG_HEADER_SIZE as u64)
            .ok()?
            .to_vec()
    } else {
        let raw = store.get(&fname).ok()?;
        decompress_fast(sniff_compression(&raw), &raw).ok()?
    };
    let h = PageHeader::parse(&head)?;
    h.version()?;
    let l = h.long?;
    Some((l.sysid, WalSegSize::new(l.seg_size)?))
}

/// [`crate::archive::archive_identity`] for an object archive: the previous segment of the same
/// timeline if archived, else the first readable of (at most 16) segments.
fn object_identity(
    store: &ObjectArchive,
    name: &WalFileName,
    seg_size: WalSegSize,
) -> Result<Option<(u64, WalSegSize, String)>, ObjectError> {
    if let Some(segno) = name.segno(seg_size).filter(|s| s.0 > 0) {
        let prev = WalFileName::segment(name.timeline(), SegNo(segno.0 - 1), seg_size);
        for v in existing_object_variants(store, &prev)? {
            if let Some((sysid, size)) = probe_object(store, &v) {
                return Ok(Some((sysid, size, v.to_string())));
            }
        }
    }
    let mut tries = 0;
    for e in store.list("")? {
        let Some(w @ WalFileName::Segment { .. }) = WalFileName::parse(&e.name) else {
            continue;
        };
        if let Some((sysid, size)) = probe_object(store, &w) {
            return Ok(Some((sysid, size, e.name)));
        }
        tries += 1;
        if tries >= 16 {
            break;
        }
    }
    Ok(None)
}

/// If the archive holds a variant of `name`: `AlreadyArchived` when one holds `data`, a
/// conflict when none does.
fn check_existing_object(
    store: &ObjectArchive,
    name: &WalFileName,
    data: &[u8],
) -> Result<Option<PushOutcome>, PushError> {
    let mut conflict = None;
    for v in existing_object_variants(store, name)? {
        let fname = v.to_string();
        let raw = match store.get(&fname) {
            Ok(r) => r,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        match compare_content(&raw, data) {
            None => return Ok(Some(PushOutcome::AlreadyArchived { name: fname })),
            Some(reason) => {
                conflict.get_or_insert(PushError::Conflict {
                    existing: store.url().key(&fname),
                    reason: format!("{reason}; in \"{}\"", store.url_str()),
                });
            }
        }
    }
    match conflict {
        Some(e) => Err(e),
        None => Ok(None),
    }
}

/// [`crate::archive::push`] into an object archive: checks the file as a push to a directory
/// does, then creates the object only if no variant of the name is there; an object that
/// appears meanwhile (a racing pusher) is compared like one found before.
pub fn push_object(
    store: &ObjectArchive,
    src: &Path,
    opts: &PushOptions,
) -> Result<PushOutcome, PushError> {
    let (_, name) = parse_push_name(src)?;
    let data = read_all(src).map_err(|source| PushError::Io {
        context: format!("could not read \"{}\"", src.display()),
        source,
    })?;
    let data: &[u8] = &data;
    let target = check_push(&name, src, data, opts, |n, size| {
        Ok(object_identity(store, n, size)?)
    })?;
    if let Some(outcome) = check_existing_object(store, &name, data)? {
        return Ok(outcome);
    }
    let payload: Bytes = match target {
        WalFileName::Segment { .. } if opts.compression.kind != Compression::None => opts
            .compression
            .compress(data, opts.threads)
            .map_err(|source| PushError::Io {
                context: format!("could not compress \"{}\"", src.display()),
                source,
            })?
            .into(),
        _ => Bytes::copy_from_slice(data),
    };
    let stored_bytes = payload.len() as u64;
    let target_name = target.to_string();
    match store.put_new(&target_name, payload)? {
        PutNew::Created => Ok(PushOutcome::Stored {
            name: target_name,
            bytes: data.len() as u64,
            stored_bytes,
        }),
        PutNew::AlreadyExists => match check_existing_object(store, &name, data)? {
            Some(o) => Ok(o),
            None => Err(PushError::Conflict {
                existing: store.url().key(&target_name),
                reason: format!(
                    "it appeared while pushing and then vanished; in \"{}\"",
                    store.url_str()
                ),
            }),
        },
    }
}

/// A local cache of prefetched WAL files (restore_command's `--prefetch`): complete, checked
/// files under their WAL names, each written atomically.
#[derive(Clone)]
pub struct FetchCache {
    /// The cache directory (created when missing).
    pub dir: PathBuf,
    /// How many segments after a requested one to hold in the cache or have on their way.
    pub ahead: usize,
    /// How to read ahead without making the caller wait: `Some(start)`, where `start(names)`
    /// starts a detached process that runs [`read_ahead`] from `names` and returns its process
    /// id. The call that needs a segment returns as soon as its own is restored; the
    /// read-ahead then keeps `ahead` segments cached or on their way as the next calls take
    /// them, and later calls wait for a segment on its way (its `.pgwal-pending.NAME` marker
    /// names the process; the starting call writes those marks before it starts the process,
    /// which takes them over) rather than fetch it again. `None`: no
    /// read-ahead (only what is cached already is used).
    pub background: Option<Background>,
}

/// Starts a detached read-ahead of the given names ([`FetchCache::background`]); returns the
/// process id.
pub type Background = std::sync::Arc<dyn Fn(&[String]) -> io::Result<u32> + Send + Sync>;

impl std::fmt::Debug for FetchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchCache")
            .field("dir", &self.dir)
            .field("ahead", &self.ahead)
            .field("background", &self.background.is_some())
            .finish()
    }
}

/// The marker of a segment a background read-ahead is fetching or will fetch next: holds that
/// process's id.
const PENDING: &str = ".pgwal-pending.";

/// The cache's read-ahead: holds the process id of the one read-ahead that works for it (a
/// read-ahead that finds another id there stops).
const CLAIM: &str = ".pgwal-read-ahead";

/// How long a call waits for a segment a background read-ahead is fetching, at most.
const PENDING_WAIT: Duration = Duration::from_secs(120);

/// How long a read-ahead whose cache is full waits for a call to take a segment before it
/// stops (the next call that finds no read-ahead running starts one).
const READ_AHEAD_IDLE: Duration = Duration::from_secs(10);

/// Downloads one read-ahead runs at once, at most (on two cores more only share them; with
/// long round trips four keep the store busy).
const READ_AHEAD_JOBS: usize = 4;

fn pending_marker(cache: &FetchCache, name: &str) -> PathBuf {
    cache.dir.join(format!("{PENDING}{name}"))
}

/// Whether process `pid` runs (a zombie, e.g. a read-ahead this process started that ended
/// already, does not).
fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next());
    !matches!(state, Some('Z' | 'X') | None)
}

/// The process id in file `path` if that process runs.
fn live_pid_in(path: &Path) -> Option<u32> {
    let text = fs::read_to_string(path).ok()?;
    text.trim().parse::<u32>().ok().filter(|&p| alive(p))
}

/// Whether a live background read-ahead is fetching `name` (a marker of a finished process is
/// removed).
fn is_pending(cache: &FetchCache, name: &str) -> bool {
    let marker = pending_marker(cache, name);
    if live_pid_in(&marker).is_some() {
        return true;
    }
    let _ = fs::remove_file(&marker);
    false
}

/// Marks `names` as on their way, fetched by process `pid`.
fn mark_pending(cache: &FetchCache, names: &[String], pid: u32) {
    for n in names {
        let _ = cache_write(
            &cache.dir,
            &format!("{PENDING}{n}"),
            pid.to_string().as_bytes(),
        );
    }
}

/// Starts the background read-ahead from `names` (plain segment names, in order) and marks
/// them pending.
///
/// The marks are written before the read-ahead starts, holding this process's id, and never
/// after: the read-ahead takes them over as it starts and removes its own as it ends, so no
/// mark can outlive it however the two are scheduled. This call then waits (5 s at most)
/// until the read-ahead has taken them over or ended, so that the next call finds the marks
/// of a running process (a mark whose process ended is ignored and removed).
fn start_background(cache: &FetchCache, start: &Background, names: &[String]) {
    if names.is_empty() {
        return;
    }
    let me = std::process::id().to_string();
    let holds_mine =
        |n: &String| fs::read_to_string(pending_marker(cache, n)).is_ok_and(|t| t.trim() == me);
    mark_pending(cache, names, std::process::id());
    match start(names) {
        Ok(pid) => {
            let since = std::time::Instant::now();
            while holds_mine(&names[0]) && alive(pid) && since.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        Err(e) => {
            for n in names.iter().filter(|n| holds_mine(n)) {
                let _ = fs::remove_file(pending_marker(cache, n));
            }
            tracing::warn!("could not start the read-ahead of {names:?}: {e}");
        }
    }
}

/// The plain names of the `cache.ahead` segments after `name` (of `seg_size`).
fn next_names(cache: &FetchCache, name: &WalFileName, seg_size: WalSegSize) -> Vec<String> {
    let Some(segno) = name.segno(seg_size) else {
        return Vec::new();
    };
    (1..=cache.ahead as u64)
        .map(|k| WalFileName::segment(name.timeline(), SegNo(segno.0 + k), seg_size).to_string())
        .collect()
}

/// After `name` (of `seg_size`) was restored: starts a read-ahead of the segments after it
/// from the first that is not cached. A call that had to download its own segment
/// (`take_over`) starts one in any case (the running one, if any, is not serving it, and
/// stops); a cache hit only when no read-ahead runs for the cache and fewer than half of
/// `cache.ahead` are held.
fn keep_reading_ahead(
    cache: &FetchCache,
    name: &WalFileName,
    seg_size: WalSegSize,
    take_over: bool,
) {
    let Some(start) = &cache.background else {
        return;
    };
    if cache.ahead == 0 || (!take_over && live_pid_in(&cache.dir.join(CLAIM)).is_some()) {
        return;
    }
    let names = next_names(cache, name, seg_size);
    let held = names
        .iter()
        .take_while(|n| cache.dir.join(n).exists())
        .count();
    if held == names.len() || (!take_over && held * 2 >= cache.ahead) {
        return;
    }
    start_background(cache, start, &names[held..]);
}

/// The background read-ahead ([`FetchCache::background`]): claims the cache, then fetches the
/// preferred stored form of `names[0]` and of each segment of its timeline after it (found by
/// listing, a batch at a time; `names` are marked pending meanwhile), up to
/// `READ_AHEAD_JOBS` (4) at once, checks them and stores them in the cache, as long as fewer
/// than `cache.ahead` segments are held or on their way. Segments taken from the cache make
/// room for the next ones. Stops at the end of the archive, at the first failure (the call
/// that needs that segment fetches it itself and reports), when another read-ahead claims the
/// cache, or when the cache stays full for `READ_AHEAD_IDLE` (10 s). Returns how many were stored.
pub fn read_ahead(
    store: &ObjectArchive,
    cache: &FetchCache,
    names: &[String],
) -> Result<usize, FetchError> {
    let me = std::process::id();
    let Some(first) = names.first().and_then(|n| WalFileName::parse(n)) else {
        return Ok(0);
    };
    let io_err = |source| FetchError::Io {
        context: format!("prefetch cache \"{}\"", cache.dir.display()),
        source,
    };
    fs::create_dir_all(&cache.dir).map_err(io_err)?;
    cache_write(&cache.dir, CLAIM, me.to_string().as_bytes()).map_err(io_err)?;
    // The call that started this process marked `names` with its own id; they are this
    // process's now (and removed as it ends).
    mark_pending(cache, names, me);
    let plan = std::sync::Mutex::new(Plan {
        queue: std::collections::VecDeque::new(),
        listed_to: None,
        ended: false,
        in_flight: 0,
        stored: 0,
        progress: std::time::Instant::now(),
        held: usize::MAX,
        mine: Vec::new(),
        error: None,
    });
    let first_name = first.with(Compression::None, false).to_string();
    let jobs = cache
        .ahead
        .min(store.options().concurrency)
        .clamp(1, READ_AHEAD_JOBS);
    std::thread::scope(|sc| {
        for _ in 0..jobs {
            sc.spawn(|| read_ahead_worker(store, cache, &first, &first_name, me, &plan));
        }
    });
    // What is still marked for this process will not come.
    if let Ok(entries) = fs::read_dir(&cache.dir) {
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with(PENDING) && live_pid_in(&e.path()) == Some(me) {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    if live_pid_in(&cache.dir.join(CLAIM)) == Some(me) {
        let _ = fs::remove_file(cache.dir.join(CLAIM));
    }
    let plan = plan.into_inner().unwrap_or_else(|p| p.into_inner());
    match plan.error {
        Some(e) if plan.stored == 0 => Err(e),
        _ => Ok(plan.stored),
    }
}

/// The shared state of a [`read_ahead`]'s downloads.
struct Plan {
    /// (stored name, plain name) of the listed segments not taken yet, in order.
    queue: std::collections::VecDeque<(String, String)>,
    /// The plain name of the last listed segment.
    listed_to: Option<String>,
    /// No more segments: the end of the listing, a failure, or the read-ahead is stopping.
    ended: bool,
    /// Downloads running.
    in_flight: usize,
    /// Segments stored.
    stored: usize,
    /// When a segment was last stored or taken from the cache.
    progress: std::time::Instant,
    /// Segments held in the cache at the last look.
    held: usize,
    /// The plain names of the segments this read-ahead stored that were still in the cache at
    /// the last look (files of other origin, e.g. left by an earlier recovery, take no room).
    mine: Vec<String>,
    /// The first failure.
    error: Option<FetchError>,
}

/// One download thread of [`read_ahead`].
fn read_ahead_worker(
    store: &ObjectArchive,
    cache: &FetchCache,
    first: &WalFileName,
    first_name: &str,
    me: u32,
    plan: &std::sync::Mutex<Plan>,
) {
    let lock = || plan.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        // Wait for room in the cache.
        let (stored, plain) = loop {
            if live_pid_in(&cache.dir.join(CLAIM)) != Some(me) {
                lock().ended = true;
                return;
            }
            let mut p = lock();
            p.mine.retain(|n| cache.dir.join(n).exists());
            let held = p.mine.len();
            if held < p.held {
                p.progress = std::time::Instant::now();
            }
            p.held = held;
            if p.ended && p.queue.is_empty() {
                return;
            }
            if held + p.in_flight < cache.ahead {
                if p.queue.is_empty() {
                    list_next(store, cache, first, first_name, me, &mut p);
                }
                if let Some(next) = p.queue.pop_front() {
                    p.in_flight += 1;
                    break next;
                }
                if p.ended {
                    return;
                }
            } else if p.progress.elapsed() > READ_AHEAD_IDLE {
                p.ended = true;
                p.queue.clear();
                return;
            }
            drop(p);
            std::thread::sleep(Duration::from_millis(3));
        };
        let found = WalFileName::parse(&stored);
        let r = fetch_into(store, &stored, found.as_ref(), &cache.dir, &plain);
        let _ = fs::remove_file(pending_marker(cache, &plain));
        let mut p = lock();
        p.in_flight -= 1;
        match r {
            Ok(_) => {
                p.stored += 1;
                p.mine.push(plain);
                p.progress = std::time::Instant::now();
            }
            Err(e) => {
                tracing::warn!("read-ahead of \"{plain}\": {e}");
                p.ended = true;
                p.queue.clear();
                p.error.get_or_insert(e);
            }
        }
    }
}

/// Lists the next batch of segments of `first`'s timeline after the last listed one (from
/// `first` on at the start) into `p.queue`, marked pending; none more ends the plan.
fn list_next(
    store: &ObjectArchive,
    cache: &FetchCache,
    first: &WalFileName,
    first_name: &str,
    me: u32,
    p: &mut Plan,
) {
    if p.ended {
        return;
    }
    let max = cache.ahead.max(READ_AHEAD_JOBS) * 4 + 16;
    let listing = match &p.listed_to {
        None => store.list_from(first_name, true, max),
        Some(last) => store.list_from(last, false, max),
    };
    let listing = match listing {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("read-ahead: {e}");
            p.ended = true;
            p.error.get_or_insert(e.into());
            return;
        }
    };
    let after = p.listed_to.clone();
    let mut batch: Vec<(String, String)> = Vec::new();
    for e in &listing {
        let Some(w @ WalFileName::Segment { partial: false, .. }) = WalFileName::parse(&e.name)
        else {
            continue;
        };
        if w.timeline() != first.timeline() {
            break;
        }
        let plain = w.with(Compression::None, false).to_string();
        if after.as_deref().is_some_and(|a| plain.as_str() <= a)
            || batch.iter().any(|(_, q)| *q == plain)
        {
            continue;
        }
        // The preferred stored form, as a plain fetch would pick it.
        if let Some(v) = variants_in(&listing, &w.with(Compression::None, false))
            .into_iter()
            .next()
        {
            batch.push((v.to_string(), plain));
        }
    }
    // The last segment's forms may continue past the listing's end: it is listed again with
    // the next batch.
    if listing.len() == max && batch.len() > 1 {
        batch.pop();
    }
    match batch.last() {
        Some((_, last)) => p.listed_to = Some(last.clone()),
        None => {
            p.ended = true;
            return;
        }
    }
    let plains: Vec<String> = batch.iter().map(|(_, q)| q.clone()).collect();
    mark_pending(cache, &plains, me);
    p.queue.extend(batch);
}

fn not_found(store: &ObjectArchive, name: &str) -> FetchError {
    FetchError::NotFound {
        name: name.to_owned(),
        dir: PathBuf::from(store.url_str()),
    }
}

/// A file being written from an object's bytes as they arrive, with its first bytes kept for
/// the checks.
struct Landing {
    file: fs::File,
    head: Vec<u8>,
    len: u64,
}

impl io::Write for Landing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if self.head.len() < LONG_HEADER_SIZE {
            let take = (LONG_HEADER_SIZE - self.head.len()).min(n);
            self.head.extend_from_slice(&buf[..take]);
        }
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Downloads the stored form `stored` of a file (`found`: its parsed name, `None` for a file
/// whose name is not WAL's), checks it as a fetch from a directory does, decompressed, and
/// writes it as `dir/dest_name` (under a temporary name, then renamed; not fsynced: see
/// [`fetch_cached`]). An uncompressed segment goes straight from the network into the file
/// (its page header and size checked before the rename), anything else through memory.
/// Returns (bytes written, padded).
fn fetch_into(
    store: &ObjectArchive,
    stored: &str,
    found: Option<&WalFileName>,
    dir: &Path,
    dest_name: &str,
) -> Result<(u64, bool), FetchError> {
    let label = PathBuf::from(format!("{}/{stored}", store.url_str()));
    let write_err = |source| FetchError::Io {
        context: format!("could not write \"{}\"", dir.join(dest_name).display()),
        source,
    };
    let from_memory = |raw: &[u8]| -> Result<(u64, bool), FetchError> {
        let (data, padded) = check_fetched(found, &label, raw)?;
        cache_write(dir, dest_name, &data).map_err(write_err)?;
        Ok((data.len() as u64, padded))
    };
    let segment = match found {
        Some(n @ WalFileName::Segment { .. }) if n.compression() == Compression::None => n,
        _ => return from_memory(&store.get(stored)?),
    };
    let tmp = temp_path(dir, dest_name);
    let file = fs::File::create(&tmp).map_err(write_err)?;
    let mut land = Landing {
        file,
        head: Vec::with_capacity(LONG_HEADER_SIZE),
        len: 0,
    };
    let streamed = (|| -> Result<(u64, bool), FetchError> {
        store.get_into(stored, &mut land, &tmp.display())?;
        if sniff_compression(&land.head) != Compression::None {
            // Compressed content under a plain name: decompressed as any compressed file is.
            let raw = fs::read(&tmp).map_err(write_err)?;
            return from_memory(&raw);
        }
        let partial = matches!(segment, WalFileName::Segment { partial: true, .. });
        let info = check_segment_head(segment, &land.head, land.len, partial).map_err(|e| {
            FetchError::Corrupt {
                path: label.clone(),
                reason: e.to_string(),
            }
        })?;
        let mut len = land.len;
        if partial && len < info.seg_size.bytes() {
            len = info.seg_size.bytes();
            land.file.set_len(len).map_err(write_err)?;
        }
        fs::rename(&tmp, dir.join(dest_name)).map_err(write_err)?;
        Ok((len, len != land.len))
    })();
    if streamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    streamed
}

/// [`crate::archive::fetch`] from an object archive. With `cache`, a file found there is moved
/// to `dest` (no request); a segment that is not there is downloaded, and a read-ahead of the
/// segments after it is started ([`FetchCache::background`]). Files in the cache older than
/// `name` are removed.
///
/// A plain WAL name is first asked for as is (one request when the archive holds it
/// uncompressed, as it prefers that form); when it is not there, one listing request finds
/// its other stored forms.
pub fn fetch_object(
    store: &ObjectArchive,
    name: &str,
    dest: &Path,
    opts: FetchOptions,
    cache: Option<&FetchCache>,
) -> Result<FetchOutcome, FetchError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(FetchError::BadName(name.to_owned()));
    }
    let parsed = WalFileName::parse(name).filter(|n| n.compression() == Compression::None);
    if let (Some(c), Some(WalFileName::Segment { partial: false, .. })) = (cache, &parsed) {
        if let Some(o) = fetch_cached(c, name, dest)? {
            return Ok(o);
        }
    }
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dest_name = dest
        .file_name()
        .map_or_else(|| name.to_owned(), |n| n.to_string_lossy().into_owned());
    let fetched = |stored: &str, found: Option<&WalFileName>| {
        fetch_into(store, stored, found, dir, &dest_name).map_err(|e| match e {
            FetchError::Object(o) if o.is_not_found() => not_found(store, name),
            e => e,
        })
    };
    let direct = match &parsed {
        Some(n) => match fetched(name, Some(n)) {
            Err(e) if e.is_not_found() => None,
            r => Some((name.to_owned(), r?)),
        },
        None => None,
    };
    let (found_name, (bytes, padded)) = match direct {
        Some(d) => d,
        None => {
            // One listing request: the name's stored forms.
            let listing = match &parsed {
                Some(n) => {
                    let base = n.with(Compression::None, false).to_string();
                    let l = store.list_from(&base, true, 16)?;
                    if l.len() == 16 && l.iter().all(|e| e.name.starts_with(&base)) {
                        store.list(&base)?
                    } else {
                        l
                    }
                }
                None => store.list(name)?,
            };
            let mut candidates: Vec<Option<WalFileName>> = match &parsed {
                Some(n) => variants_in(&listing, n).into_iter().map(Some).collect(),
                None if listing.iter().any(|e| e.name == name) => vec![None],
                None => vec![],
            };
            if candidates.is_empty() && opts.partial {
                if let Some(n @ WalFileName::Segment { partial: false, .. }) = &parsed {
                    candidates = variants_in(&listing, &n.with(Compression::None, true))
                        .into_iter()
                        .map(Some)
                        .collect();
                }
            }
            let Some(found) = candidates.into_iter().next() else {
                return Err(not_found(store, name));
            };
            let found_name = found
                .as_ref()
                .map_or_else(|| name.to_owned(), |f| f.to_string());
            let r = fetched(&found_name, found.as_ref())?;
            (found_name, r)
        }
    };
    if let (Some(c), Some(w @ WalFileName::Segment { partial: false, .. })) = (cache, &parsed) {
        if !padded && c.background.is_some() {
            if let Some(seg_size) = u32::try_from(bytes).ok().and_then(WalSegSize::new) {
                if fs::create_dir_all(&c.dir).is_ok() {
                    keep_reading_ahead(c, w, seg_size, true);
                }
            }
        }
    }
    Ok(FetchOutcome {
        source: found_name,
        bytes,
        padded,
    })
}

/// The kernel's boot id: a cache written in another boot is not trusted (its files were
/// written without fsync).
fn boot_id() -> String {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

const BOOT_FILE: &str = ".pgwal-boot-id";

/// Empties the cache if it was written in another boot (or by no known one), then marks it as
/// this boot's.
fn check_cache_boot(cache: &FetchCache) -> io::Result<()> {
    let now = boot_id();
    let marker = cache.dir.join(BOOT_FILE);
    match fs::read_to_string(&marker) {
        Ok(b) if b.trim() == now && !now.is_empty() => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !cache.dir.exists() => {
            fs::create_dir_all(&cache.dir)?;
        }
        _ => {
            for e in fs::read_dir(&cache.dir)?.flatten() {
                let _ = fs::remove_file(e.path());
            }
        }
    }
    fs::write(&marker, now)
}

/// Restores `name` from the prefetch cache if it is there or on its way: moves it to `dest`
/// (no request to the store), and removes cached segments older than it. `Ok(None)` when it is
/// neither. A hit with no read-ahead running starts one when fewer than half of
/// `cache.ahead` segments after it are held.
///
/// Cached files are complete and checked, written under a temporary name and renamed, but not
/// fsynced: a cache from an earlier boot is emptied first (the kernel's boot id), and what is
/// restored needs no fsync either (after a crash, recovery asks for the file again).
pub fn fetch_cached(
    cache: &FetchCache,
    name: &str,
    dest: &Path,
) -> Result<Option<FetchOutcome>, FetchError> {
    let io_err = |context: String| move |source| FetchError::Io { context, source };
    check_cache_boot(cache).map_err(io_err(format!(
        "prefetch cache \"{}\"",
        cache.dir.display()
    )))?;
    let mut hit = None;
    let entries = fs::read_dir(&cache.dir).map_err(io_err(format!(
        "could not read \"{}\"",
        cache.dir.display()
    )))?;
    for e in entries.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        let older = |n: &str| n.len() == name.len() && n < name;
        if fname == name {
            hit = Some(e.path());
        } else if older(&fname) || fname.strip_prefix(PENDING).is_some_and(older) {
            let _ = fs::remove_file(e.path());
        }
    }
    let path = cache.dir.join(name);
    if hit.is_none() {
        // On its way: wait for it rather than fetch it again.
        let since = std::time::Instant::now();
        while !path.exists() && is_pending(cache, name) && since.elapsed() < PENDING_WAIT {
            std::thread::sleep(Duration::from_millis(2));
        }
        if !path.exists() {
            return Ok(None);
        }
    }
    let bytes = fs::metadata(&path)
        .map_err(io_err(format!("could not read \"{}\"", path.display())))?
        .len();
    fs::rename(&path, dest).map_err(io_err(format!(
        "could not move \"{}\" to \"{}\"",
        path.display(),
        dest.display()
    )))?;
    if let (Some(w), Some(seg_size)) = (
        WalFileName::parse(name),
        u32::try_from(bytes).ok().and_then(WalSegSize::new),
    ) {
        keep_reading_ahead(cache, &w, seg_size, false);
    }
    Ok(Some(FetchOutcome {
        source: format!("{name} (prefetched)"),
        bytes,
        padded: false,
    }))
}

/// Writes `data` as `dir/name` under a temporary name, then renames it (no fsync: see
/// [`fetch_cached`]).
fn cache_write(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = temp_path(dir, name);
    let res = fs::write(&tmp, data).and_then(|()| fs::rename(&tmp, dir.join(name)));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

/// [`crate::archive::plan_cleanup`] for an object archive: the same rules over its listing;
/// the history files that `opts.keep_history_needs` reads are read from the store into memory
/// (and a segment's first page, for the segment size), nothing is written locally. Identical
/// twins among the files kept are settled to one form ([`crate::archive::twins`]).
pub fn plan_cleanup_object(
    store: &Arc<ObjectArchive>,
    oldest_kept: &str,
    opts: &CleanupOptions,
) -> Result<CleanupPlan, CleanupError> {
    let obj_err = |e: ObjectError| CleanupError::Io {
        context: format!("could not read archive location \"{}\"", store.url_str()),
        source: io::Error::other(e),
    };
    let index = crate::reader::object::list(Arc::clone(store)).map_err(obj_err)?;
    let mut plan = plan_cleanup_index(&index, oldest_kept, opts)?;
    let (settled, conflicts) = crate::archive::twins::settle_plan(store, &index, |n| {
        plan.remove.binary_search_by(|r| r.as_str().cmp(n)).is_err()
    })
    .map_err(obj_err)?;
    for s in settled {
        for r in s.removed {
            plan.settled_twins.push((r.clone(), s.kept.clone()));
            plan.remove.push(r);
        }
    }
    plan.remove.sort();
    plan.conflicting_twins = conflicts
        .into_iter()
        .map(|c| {
            format!(
                "\"{}\" and \"{}\" hold different WAL ({}); both are kept",
                c.first, c.other, c.reason
            )
        })
        .collect();
    Ok(plan)
}

/// Deletes the plan's files from the object archive in batches; `each` is called with every
/// object's URL before. Returns how many were deleted.
pub fn execute_cleanup_object(
    store: &ObjectArchive,
    plan: &CleanupPlan,
    mut each: impl FnMut(&str),
) -> Result<usize, CleanupError> {
    for n in &plan.remove {
        each(&format!("{}/{n}", store.url_str()));
    }
    store
        .delete_many(&plan.remove)
        .map_err(|e| CleanupError::Io {
            context: format!("could not remove files from \"{}\"", store.url_str()),
            source: io::Error::other(e),
        })
}
