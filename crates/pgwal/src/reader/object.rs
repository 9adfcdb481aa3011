//! WAL read from an archive in object storage (feature `object-store`): the archive's listing
//! as a [`WalDirectory`] whose files are fetched on demand, with a bounded read-ahead.
//!
//! [`list`] lists the archive (every page) into the same index a directory scan fills, so the
//! reader, `archive verify` and `status` choose among a segment's stored forms exactly as in a
//! directory. Its files are read through [`ObjectFiles`]: each object is fetched when it is
//! first asked for, and while the caller decodes it, the next segments it will ask for are
//! fetched (and decompressed) in parallel in the background, so that decoding does not wait
//! one round trip per segment. Each object is fetched once, however many readers ask for it
//! in whatever order (`dump -j`'s workers take the read-ahead's copy). Memory stays bounded:
//! at most [`ObjectFiles::ahead`] segments are held or in flight beyond the one being read, and
//! as many again just before it for readers behind.
//!
//! ```no_run
//! use std::ops::ControlFlow;
//! use pgwal::reader::{Location, WalReader};
//!
//! // Credentials and endpoint from the environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...).
//! let location = Location::parse("s3://wal/db1")?;
//! let mut reader = WalReader::builder()
//!     .start_segment("000000010000000000000010")
//!     .end_segment("000000010000000000000012")
//!     .open(location)?;
//! let mut records = 0;
//! reader.for_each(|_rec| {
//!     records += 1;
//!     ControlFlow::Continue(())
//! })?;
//! // Only the three segments were fetched.
//! let fetched = reader.directory().remote().map(|r| r.fetched()).unwrap_or_default();
//! println!("{records} records from {fetched:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use super::{ReaderBuilder, ReaderError, WalReader};
use crate::segment::{Compression, SegNo, WalFileName};
use crate::source::{ListedFile, ReadRange, RemoteFiles, SourceError, WalDirectory};
use crate::storage::codec::{decompress, decompress_prefix, sniff_compression};
use crate::storage::location::ObjectUrl;
use crate::storage::object::{ObjectArchive, ObjectEntry, ObjectError};
use crate::storage::object_names::partial_object;
use crate::storage::probe::probe_segment;
use crate::wal::LONG_HEADER_SIZE;

/// Bytes of decompressed WAL read ahead at most (the number of segments is also capped by the
/// store's [`concurrency`](crate::storage::object::ObjectOptions::concurrency)).
pub const READ_AHEAD_BYTES: u64 = 128 << 20;

/// Names of objects fetched that are remembered at least (so that reading ahead does not fetch
/// them again); beyond that, those behind every reader are forgotten.
const SEEN_KEPT: usize = 4096;

/// Bytes fetched from the start of a compressed object to find its first page header.
const COMPRESSED_HEAD: u64 = 64 << 10;

/// Lists the archive in `store` (every page of the listing) into a [`WalDirectory`] whose
/// path is the archive's URL and whose files are read through [`ObjectFiles`].
pub fn list(store: Arc<ObjectArchive>) -> Result<WalDirectory, ObjectError> {
    index(store, false, false)
}

/// [`list`], with the receiver's partial objects (`SEGMENT.EEEEEEEEEEEEEEEE[.zst].partial`,
/// see [`crate::storage::object_names`]) as `.partial` forms of their segments when
/// `partial_objects` (for reading WAL: the newest of a segment's partial objects is its
/// preferred `.partial` form), else as other files. `following`: a reader will follow the
/// archive as it grows (the last object read is kept from the start, see
/// [`RemoteFiles::list_from`]).
fn index(
    store: Arc<ObjectArchive>,
    partial_objects: bool,
    following: bool,
) -> Result<WalDirectory, ObjectError> {
    let mut index = WalDirectory::new(PathBuf::from(store.url_str()));
    index.insert_listed(listed(store.list("")?, partial_objects));
    let files = ObjectFiles::new(store, index.clone()).with_partial_objects(partial_objects);
    files.shared.lock().following = following;
    Ok(index.with_remote(Arc::new(files)))
}

/// The entries of a listing, each with the WAL file it holds (see [`index`]).
fn listed(entries: Vec<ObjectEntry>, partial_objects: bool) -> Vec<ListedFile> {
    entries
        .into_iter()
        .map(|e| {
            let wal = WalFileName::parse(&e.name).or_else(|| {
                partial_objects
                    .then(|| partial_object(&e.name).map(|(w, _)| w))
                    .flatten()
            });
            ListedFile {
                name: e.name,
                size: e.size,
                wal,
            }
        })
        .collect()
}

/// [`ReaderBuilder::open`] of an archive at `url`: lists it, finds the start segment (or the
/// first) as in a directory and reads its first page header (a ranged request).
pub(super) fn open(b: ReaderBuilder, url: &ObjectUrl) -> Result<WalReader, ReaderError> {
    let store = Arc::new(ObjectArchive::open(url, &b.object_options)?);
    let dir = index(store, true, b.live)?;
    let searched = vec![PathBuf::from(url.to_string())];
    let file = match b.start_segment.as_deref() {
        Some(f) => dir.find(f).ok_or_else(|| ReaderError::FileNotFound {
            name: f.to_owned(),
            searched: searched.clone(),
        })?,
        None => dir
            .first_segment()
            .map(|(_, p)| p)
            .ok_or_else(|| ReaderError::NoWalFiles {
                searched: searched.clone(),
            })?,
    };
    let head = dir.read_head(&file, LONG_HEADER_SIZE)?;
    let info = probe_segment(&head).map_err(|error| ReaderError::NotWal { path: file, error })?;
    b.plan(dir, info, &searched)
}

/// The objects of an archive, fetched on demand with a bounded parallel read-ahead (see the
/// [module](self)). Errors name the archive's URL and the object's key.
#[derive(Debug)]
pub struct ObjectFiles {
    shared: Arc<Shared>,
    /// The listing, for the names of the segments that come next (listed again from a name
    /// on by [`RemoteFiles::list_from`]).
    index: Mutex<WalDirectory>,
    ahead: usize,
    /// The receiver's partial objects are `.partial` forms of their segments (see [`index`]).
    partial_objects: bool,
}

#[derive(Debug)]
struct Shared {
    store: Arc<ObjectArchive>,
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Objects read ahead: `None` while in flight.
    slots: HashMap<String, Option<Result<Vec<u8>, SourceError>>>,
    /// Readers waiting for each object read ahead that is still in flight: such a slot is
    /// never forgotten (its reader would fetch the object again).
    waiting: HashMap<String, usize>,
    /// Every object fetched whole (read ahead or asked for): reading ahead never fetches one
    /// of them again, whatever order several readers ask for them in.
    seen: HashSet<String>,
    /// The range being read, if a reader said ([`RemoteFiles::will_read`]).
    range: Option<ReadRange>,
    /// Names fetched whole, in order: the last [`SEEN_KEPT`] at least (a reader following
    /// the archive for long forgets the older ones).
    fetched: Vec<String>,
    /// When a reader follows the archive as it grows (a `live` reader, or once the listing
    /// was read again: [`RemoteFiles::list_from`]), the last object handed to a reader:
    /// resuming, it reads the segment it stopped in again, and takes it without a request.
    last: Option<(String, Arc<Vec<u8>>)>,
    /// A reader follows the archive: it was opened `live`, or [`RemoteFiles::list_from`]
    /// was called.
    following: bool,
}

impl State {
    /// Counts `name` as fetched whole; past twice [`SEEN_KEPT`] names, the older half goes.
    fn note_fetched(&mut self, name: &str) {
        if self.fetched.len() >= 2 * SEEN_KEPT {
            self.fetched.drain(..SEEN_KEPT);
        }
        self.fetched.push(name.to_owned());
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fetches object `name` whole and decompresses it.
    fn fetch(&self, name: &str) -> Result<Vec<u8>, SourceError> {
        let raw = self.store.get(name)?;
        let kind = sniff_compression(&raw[..raw.len().min(4)]);
        if kind == Compression::None {
            return Ok(Vec::from(raw));
        }
        decompress(kind, &raw).map_err(|source| SourceError::Decompress {
            path: self.path(name),
            source,
        })
    }

    /// `URL/NAME`, as errors name an object.
    fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(format!("{}/{name}", self.store.url_str()))
    }
}

impl ObjectFiles {
    /// The objects of `store` that `index` (its listing) names. Reads ahead up to
    /// [`READ_AHEAD_BYTES`] of segments, and at most the store's concurrency.
    pub fn new(store: Arc<ObjectArchive>, index: WalDirectory) -> ObjectFiles {
        let ahead = store.options().concurrency.max(1);
        ObjectFiles {
            shared: Arc::new(Shared {
                store,
                state: Mutex::new(State::default()),
                ready: Condvar::new(),
            }),
            index: Mutex::new(index),
            ahead,
            partial_objects: false,
        }
    }

    /// The receiver's partial objects count as `.partial` forms of their segments in what
    /// [`RemoteFiles::list_from`] lists (see [`index`]).
    fn with_partial_objects(mut self, on: bool) -> ObjectFiles {
        self.partial_objects = on;
        self
    }

    /// The listing ([`WalDirectory`] lookups of the names that come next).
    fn index(&self) -> MutexGuard<'_, WalDirectory> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many segments are read ahead at most.
    pub fn ahead(&self) -> usize {
        self.ahead
    }

    /// The names of up to `ahead` segments that follow `name` in reading order: the range's
    /// segments when a reader told its range (each from the timeline the range takes it from,
    /// none past its end), else the next segments of `name`'s timeline in the listing.
    fn next_names(&self, name: &str, range: Option<&ReadRange>) -> Vec<String> {
        let Some(w @ WalFileName::Segment { .. }) = WalFileName::parse(name) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        match range {
            Some(r) => {
                let seg_size = r.config.seg_size;
                let n = ((READ_AHEAD_BYTES / seg_size.bytes()) as usize).clamp(1, self.ahead);
                let Some(mut segno) = w.segno(seg_size) else {
                    return out;
                };
                while out.len() < n {
                    segno = SegNo(segno.0 + 1);
                    let Some(start) = segno.start_lsn(seg_size) else {
                        break;
                    };
                    if r.end.is_some_and(|e| start >= e) {
                        break;
                    }
                    let p = self.index().segment(r.timeline_of(segno), segno, seg_size);
                    let Some(p) = p else {
                        break;
                    };
                    let Some(next) = p.file_name() else { break };
                    out.push(next.to_string_lossy().into_owned());
                }
            }
            None => {
                // Segments of 16 MB (the default) when the size is not known.
                let n = ((READ_AHEAD_BYTES >> 24) as usize).clamp(1, self.ahead);
                let plain = w.with(Compression::None, false).to_string();
                let index = self.index();
                for (next, path) in index.segments() {
                    if out.len() == n {
                        break;
                    }
                    let later = next.with(Compression::None, false).to_string() > plain;
                    if next.timeline() != w.timeline() || !later {
                        continue;
                    }
                    if let Some(f) = path.file_name() {
                        out.push(f.to_string_lossy().into_owned());
                    }
                }
            }
        }
        out
    }

    /// Starts fetching `names` in the background (those not fetched before), and forgets
    /// what was read ahead for names other than `keep` and `names`, except objects a reader
    /// waits for and, for readers behind this one (several read at once), up to
    /// [`ahead`](Self::ahead) objects just before `keep`.
    fn read_ahead(&self, st: &mut State, keep: &str, names: &[String]) {
        let State { slots, waiting, .. } = st;
        let mut behind: Vec<&String> = slots
            .keys()
            .filter(|k| k.as_str() < keep && !waiting.contains_key(*k))
            .collect();
        behind.sort_unstable();
        let lagging: HashSet<String> = behind
            .iter()
            .rev()
            .take(self.ahead)
            .map(|k| (*k).clone())
            .collect();
        slots.retain(|k, _| {
            k == keep
                || names.iter().any(|n| n == k)
                || waiting.contains_key(k)
                || lagging.contains(k)
        });
        // A reader following a growing archive for long: forget the names well behind every
        // reader (none reads ahead from there any more).
        if st.seen.len() > SEEN_KEPT {
            let floor = st.slots.keys().chain([&keep.to_owned()]).min().cloned();
            if let Some(floor) = floor {
                st.seen.retain(|n| *n >= floor);
            }
        }
        for n in names {
            if st.seen.contains(n) {
                continue;
            }
            st.slots.insert(n.clone(), None);
            st.seen.insert(n.clone());
            st.note_fetched(n);
            let shared = Arc::clone(&self.shared);
            let name = n.clone();
            let spawned = std::thread::Builder::new()
                .name("pgwal-read-ahead".into())
                .spawn(move || {
                    let got = shared.fetch(&name);
                    let mut st = shared.lock();
                    // Still wanted (not forgotten meanwhile): hand it over.
                    if let Some(slot @ None) = st.slots.get_mut(&name) {
                        *slot = Some(got);
                    }
                    drop(st);
                    shared.ready.notify_all();
                });
            if spawned.is_err() {
                // No thread: the object is fetched when it is asked for.
                st.slots.remove(n);
                st.seen.remove(n);
                st.fetched.pop();
            }
        }
    }

    /// Object `name`: the read-ahead's copy, the last object handed over, else fetched now;
    /// starts reading ahead of it.
    fn take(&self, name: &str) -> Result<Vec<u8>, SourceError> {
        let mut st = self.shared.lock();
        if let Some((_, got)) = st.last.as_ref().filter(|(n, _)| n == name) {
            return Ok(got.as_ref().clone());
        }
        let held = st.slots.contains_key(name);
        if !held {
            // Fetched here: reading ahead (for this or another reader) must not fetch it too.
            st.seen.insert(name.to_owned());
            st.note_fetched(name);
        }
        let range = st.range.clone();
        let next = self.next_names(name, range.as_ref());
        self.read_ahead(&mut st, name, &next);
        if held {
            *st.waiting.entry(name.to_owned()).or_default() += 1;
            let got = loop {
                match st.slots.get_mut(name) {
                    Some(slot @ Some(_)) => {
                        let got = slot.take();
                        st.slots.remove(name);
                        break got;
                    }
                    Some(None) => {
                        st = self
                            .shared
                            .ready
                            .wait(st)
                            .unwrap_or_else(|e| e.into_inner());
                    }
                    // Another reader of the same object took it: fetched again here.
                    None => break None,
                }
            };
            if let Some(w) = st.waiting.get_mut(name) {
                *w -= 1;
                if *w == 0 {
                    st.waiting.remove(name);
                }
            }
            if let Some(got) = got {
                return got;
            }
            st.note_fetched(name);
        }
        drop(st);
        self.shared.fetch(name)
    }
}

impl RemoteFiles for ObjectFiles {
    fn read(&self, name: &str) -> Result<Vec<u8>, SourceError> {
        let got = self.take(name)?;
        let mut st = self.shared.lock();
        if st.following {
            st.last = Some((name.to_owned(), Arc::new(got.clone())));
        }
        Ok(got)
    }

    fn list_from(&self, from: &str) -> Result<Option<Vec<ListedFile>>, SourceError> {
        let files = listed(
            self.shared.store.list_from(from, true, usize::MAX)?,
            self.partial_objects,
        );
        self.index().replace_from(from, files.clone());
        self.shared.lock().following = true;
        Ok(Some(files))
    }

    fn read_head(&self, name: &str, len: usize) -> Result<Vec<u8>, SourceError> {
        self.read_heads(&[name.to_owned()], len)
            .pop()
            .unwrap_or_else(|| Ok(Vec::new()))
    }

    fn read_heads(&self, names: &[String], len: usize) -> Vec<Result<Vec<u8>, SourceError>> {
        let compressed = |n: &String| {
            WalFileName::parse(n).is_some_and(|w| w.compression() != Compression::None)
        };
        // Plain objects: their first `len` bytes; compressed ones: enough to decompress that.
        let want = if names.iter().any(compressed) {
            COMPRESSED_HEAD.max(len as u64)
        } else {
            len as u64
        };
        let store = &self.shared.store;
        store
            .get_heads(names, want)
            .into_iter()
            .zip(names)
            .map(|(got, name)| {
                let raw = got?;
                let kind = sniff_compression(&raw[..raw.len().min(4)]);
                if kind == Compression::None {
                    return Ok(raw[..raw.len().min(len)].to_vec());
                }
                let (head, _) = decompress_prefix(kind, &raw, len as u64);
                if head.len() >= len {
                    return Ok(head);
                }
                // The first page did not fit in the bytes fetched: the whole object.
                let whole = self.shared.fetch(name)?;
                Ok(whole[..whole.len().min(len)].to_vec())
            })
            .collect()
    }

    fn will_read(&self, range: &ReadRange) {
        self.shared.lock().range = Some(range.clone());
    }

    fn fetched(&self) -> Vec<String> {
        self.shared.lock().fetched.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_follower_keeps_only_the_recent_fetched_names() {
        let mut st = State::default();
        let names: Vec<String> = (0..5 * SEEN_KEPT).map(|i| format!("{i:024X}")).collect();
        for n in &names {
            st.note_fetched(n);
            assert!(st.fetched.len() <= 2 * SEEN_KEPT);
        }
        assert!(st.fetched.len() >= SEEN_KEPT);
        assert_eq!(st.fetched[..], names[names.len() - st.fetched.len()..]);
    }
}
