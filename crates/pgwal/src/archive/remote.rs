//! The archive operations on an archive in object storage ([`ObjectArchive`]): the same checks,
//! names and outcomes as on a directory.
//!
//! - [`push_object`]: create-only; an object already there with the same content (after
//!   decompression) is success, different content a [`PushError::Conflict`] that leaves both
//!   untouched.
//! - [`fetch_object`]: with a prefetch cache ([`FetchCache`]), a miss also downloads the next
//!   segments in parallel into the cache, and later calls take them from there.
//! - `verify` and `status` read an object archive through its listing with the objects
//!   fetched on demand ([`crate::reader::object::list`], [`crate::archive::verify_listing`]).
//! - [`plan_cleanup_object`] / [`execute_cleanup_object`]: pg_archivecleanup's rules over the
//!   listing, deletes in batches.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::archive::cleanup::{plan_cleanup_index, CleanupError, CleanupOptions, CleanupPlan};
use crate::archive::compress::{decompress_fast, read_all};
use crate::archive::fetch::{check_fetched, FetchError, FetchOptions, FetchOutcome};
use crate::archive::push::{
    check_push, compare_content, parse_push_name, PushError, PushOptions, PushOutcome,
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
    /// How many segments after a requested one to download with it.
    pub ahead: usize,
    /// How to read ahead without making the caller wait: `Some(start)`, where `start(names)`
    /// starts a detached process that runs [`prefetch_names`] for `names` and returns its
    /// process id. The call that needs a segment then returns as soon as its own is restored;
    /// later calls wait for a segment being fetched (its `.pgwal-pending.NAME` marker names
    /// the process) rather than fetch it again, and a hit that leaves fewer than half of
    /// `ahead` segments cached or on their way starts the next ones. `None`: the segments
    /// ahead are fetched in the same call, in parallel with the requested one.
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

/// The marker of a segment a background read-ahead is fetching: holds that process's id.
const PENDING: &str = ".pgwal-pending.";

/// How long a call waits for a segment a background read-ahead is fetching, at most.
const PENDING_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

fn pending_marker(cache: &FetchCache, name: &str) -> PathBuf {
    cache.dir.join(format!("{PENDING}{name}"))
}

/// Whether process `pid` runs.
fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether a live background read-ahead is fetching `name` (a marker of a finished process is
/// removed).
fn is_pending(cache: &FetchCache, name: &str) -> bool {
    let marker = pending_marker(cache, name);
    let Ok(text) = fs::read_to_string(&marker) else {
        return false;
    };
    match text.trim().parse::<u32>() {
        Ok(pid) if alive(pid) => true,
        _ => {
            let _ = fs::remove_file(&marker);
            false
        }
    }
}

/// Starts the background read-ahead of `names` (plain segment names) and marks them pending.
fn start_background(cache: &FetchCache, start: &Background, names: &[String]) {
    if names.is_empty() {
        return;
    }
    match start(names) {
        Ok(pid) => {
            for n in names {
                let _ = cache_write(
                    &cache.dir,
                    &format!("{PENDING}{n}"),
                    pid.to_string().as_bytes(),
                );
            }
        }
        Err(e) => tracing::warn!("could not start the read-ahead of {names:?}: {e}"),
    }
}

/// The plain names of the segments after `name` (of `seg_size`) that the cache neither holds
/// nor expects, when fewer than half of `cache.ahead` are held or expected: the next read-ahead.
fn refill_names(cache: &FetchCache, name: &WalFileName, seg_size: WalSegSize) -> Vec<String> {
    let Some(segno) = name.segno(seg_size) else {
        return Vec::new();
    };
    let tli = name.timeline();
    let mut have = 0;
    let mut k = 1;
    // Held or on their way, in order.
    loop {
        let next = WalFileName::segment(tli, SegNo(segno.0 + k), seg_size).to_string();
        if cache.dir.join(&next).exists() || is_pending(cache, &next) {
            have += 1;
            k += 1;
        } else {
            break;
        }
    }
    if have * 2 >= cache.ahead {
        return Vec::new();
    }
    (k..k + (cache.ahead - have) as u64)
        .map(|i| WalFileName::segment(tli, SegNo(segno.0 + i), seg_size).to_string())
        .collect()
}

/// The background read-ahead ([`FetchCache::background`]): fetches the preferred stored form of
/// each of `names` (plain segment names; one listing request, then up to the store's
/// concurrency at once), checks them and stores them in the cache, removing each one's
/// pending marker. Returns how many were stored.
pub fn prefetch_names(
    store: &ObjectArchive,
    cache: &FetchCache,
    names: &[String],
) -> Result<usize, FetchError> {
    let clear = || {
        for n in names {
            let _ = fs::remove_file(pending_marker(cache, n));
        }
    };
    let Some(first) = names.first() else {
        return Ok(0);
    };
    let listing = match store.list_from(first, true, names.len() * 8 + 16) {
        Ok(l) => l,
        Err(e) => {
            clear();
            return Err(e.into());
        }
    };
    let stored: Vec<String> = names
        .iter()
        .filter_map(|n| {
            let w = WalFileName::parse(n)?;
            variants_in(&listing, &w)
                .into_iter()
                .next()
                .map(|v| v.to_string())
        })
        .collect();
    let got = store.get_many(&stored);
    let n = fill_cache(store, cache, &stored, got);
    clear();
    n
}

fn not_found(store: &ObjectArchive, name: &str) -> FetchError {
    FetchError::NotFound {
        name: name.to_owned(),
        dir: PathBuf::from(store.url_str()),
    }
}

/// [`crate::archive::fetch`] from an object archive. With `cache`, a file found there is moved
/// to `dest` (no request); a segment that is not there is downloaded together with the next
/// `cache.ahead` segments of its timeline (in parallel), which are checked and stored in the
/// cache for the next calls. Files in the cache older than `name` are removed.
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
    let prefetch = cache.filter(|c| {
        c.ahead > 0 && matches!(parsed, Some(WalFileName::Segment { partial: false, .. }))
    });
    // One listing request: the name's stored forms and, when prefetching, the segments after
    // it (a segment's forms, `.partial` ones and backup files sort right after its name).
    let listing = match &parsed {
        Some(n) => {
            let base = n.with(Compression::None, false).to_string();
            let max = 16 + prefetch.map_or(0, |c| c.ahead * 8);
            let l = store.list_from(&base, true, max)?;
            if l.len() == max && l.iter().all(|e| e.name.starts_with(&base)) {
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
    let label = PathBuf::from(format!("{}/{found_name}", store.url_str()));
    let ahead = match (prefetch, &found) {
        // The next segments of the timeline in the archive, in name order: downloaded in the
        // same parallel round as the requested one.
        (Some(c), Some(f @ WalFileName::Segment { partial: false, .. })) => {
            Some((c, next_segments(&listing, f, c.ahead)))
        }
        _ => None,
    };
    let mut want = vec![found_name.clone()];
    if let Some((c, next)) = &ahead {
        want.extend(
            next.iter()
                .filter(|n| {
                    !c.dir
                        .join(n.with(Compression::None, false).to_string())
                        .exists()
                })
                .map(|n| n.to_string()),
        );
    }
    if let (Some((c, _)), Some(start)) = (&ahead, cache.and_then(|c| c.background.as_ref())) {
        // Read ahead in a detached process, in parallel with this download; this call returns
        // as soon as its own segment is restored.
        fs::create_dir_all(&c.dir).map_err(|source| FetchError::Io {
            context: format!("could not create \"{}\"", c.dir.display()),
            source,
        })?;
        let next: Vec<String> = want[1..]
            .iter()
            .filter_map(|n| WalFileName::parse(n))
            .filter(|n| !is_pending(c, &n.with(Compression::None, false).to_string()))
            .map(|n| n.with(Compression::None, false).to_string())
            .collect();
        start_background(c, start, &next);
        want.truncate(1);
    }
    let mut got = store.get_many(&want).into_iter();
    let raw = match got.next() {
        Some(Ok(r)) => r,
        Some(Err(e)) if e.is_not_found() => return Err(not_found(store, name)),
        Some(Err(e)) => return Err(e.into()),
        None => return Err(not_found(store, name)),
    };
    // Not fsynced: the server makes durable what it keeps of a restored file, and after a
    // crash recovery asks for the file again.
    let (data, padded) = check_fetched(found.as_ref(), &label, &raw)?;
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dest_name = dest
        .file_name()
        .map_or_else(|| found_name.clone(), |n| n.to_string_lossy().into_owned());
    cache_write(dir, &dest_name, &data).map_err(|source| FetchError::Io {
        context: format!("could not write \"{}\"", dest.display()),
        source,
    })?;
    let bytes = data.len() as u64;
    if let Some((c, _)) = ahead.as_ref().filter(|_| want.len() > 1) {
        // Best effort: a segment not cached is downloaded by the call that needs it.
        if let Err(e) = fill_cache(store, c, &want[1..], got.collect()) {
            tracing::warn!("prefetch after \"{name}\": {e}");
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

/// Restores `name` from the prefetch cache if it is there: moves it to `dest` (no request to
/// the store), and removes cached segments older than it. `Ok(None)` when it is not cached.
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
            std::thread::sleep(std::time::Duration::from_millis(2));
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
    if let (Some(start), Some(w), Some(seg_size)) = (
        &cache.background,
        WalFileName::parse(name),
        u32::try_from(bytes).ok().and_then(WalSegSize::new),
    ) {
        start_background(cache, start, &refill_names(cache, &w, seg_size));
    }
    Ok(Some(FetchOutcome {
        source: format!("{name} (prefetched)"),
        bytes,
        padded: false,
    }))
}

/// The archived variants of the (up to) `n` complete segments of `found`'s timeline that
/// follow it in `listing` (names in order, from `found`'s on).
fn next_segments(listing: &[ObjectEntry], found: &WalFileName, n: usize) -> Vec<WalFileName> {
    let after = found.with(Compression::None, false).to_string();
    let mut out: Vec<WalFileName> = Vec::new();
    for e in listing.iter().filter(|e| e.name.as_str() > after.as_str()) {
        let Some(w @ WalFileName::Segment { partial: false, .. }) = WalFileName::parse(&e.name)
        else {
            continue;
        };
        if w.timeline() != found.timeline() {
            break;
        }
        let plain = w.with(Compression::None, false);
        if out
            .iter()
            .any(|o| o.with(Compression::None, false) == plain)
        {
            continue;
        }
        if out.len() == n {
            break;
        }
        // The preferred variant, as a plain fetch would pick it.
        if let Some(v) = variants_in(listing, &plain).into_iter().next() {
            out.push(v);
        }
    }
    out
}

/// Checks the downloaded `got` (for `names`) and stores them in the cache, decompressed, each
/// written under a temporary name and renamed, in parallel. Returns how many were stored.
fn fill_cache(
    store: &ObjectArchive,
    cache: &FetchCache,
    names: &[String],
    got: Vec<Result<Bytes, ObjectError>>,
) -> Result<usize, FetchError> {
    fs::create_dir_all(&cache.dir).map_err(|source| FetchError::Io {
        context: format!("could not create \"{}\"", cache.dir.display()),
        source,
    })?;
    let stored = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|sc| {
        for (fname, got) in names.iter().zip(got) {
            let stored = &stored;
            sc.spawn(move || {
                let (Ok(bytes), Some(v)) = (got, WalFileName::parse(fname)) else {
                    return;
                };
                let label = PathBuf::from(format!("{}/{fname}", store.url_str()));
                // A damaged object is never cached: its own fetch reports it.
                let Ok((data, _)) = check_fetched(Some(&v), &label, &bytes) else {
                    return;
                };
                let target = v.with(Compression::None, false).to_string();
                if cache_write(&cache.dir, &target, &data).is_ok() {
                    stored.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            });
        }
    });
    Ok(stored.into_inner())
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
