//! [`WalDirectory`]: the one index of a place holding WAL files (a `pg_wal` directory, a WAL
//! archive, an extracted tar archive; an object-store prefix listed into it by its own
//! listing), by name and size.
//!
//! The index is names and sizes only: [`WalDirectory::scan`] fills it from a directory, and
//! [`WalDirectory::new`] with [`WalDirectory::insert`] from any other listing. Every reader of
//! such a place (dump and the high-level reader, archive verify, status, cleanup, fetch) asks
//! it the same questions: which forms of a segment are there and which is preferred, which
//! history files, what else.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::{decompress, io_err, read_wal_file, sniff_compression, SourceError, TarWal, WalBytes};
use crate::history::TimelineHistory;
use crate::segment::{Compression, SegNo, TimelineId, WalFileName, WalSegSize};
use crate::storage::codec::read_head;

/// A file whose name is a WAL file name: a segment (any compression, `.partial` or not), a
/// timeline history file or a backup history file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalEntry {
    /// The file name.
    pub name: String,
    /// What the name denotes.
    pub wal: WalFileName,
    /// Its size as stored (compressed, for a compressed file).
    pub size: u64,
}

/// A file (or directory, or other entry) whose name is not a WAL file name: temporary files,
/// `archive_status`, anything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherEntry {
    /// The name (not UTF-8: lossily converted).
    pub name: String,
    /// The size, for a regular file.
    pub size: Option<u64>,
    /// The time of its last modification, if known.
    pub modified: Option<SystemTime>,
}

/// The files of one directory (or other listing) holding WAL, indexed by name, by timeline and
/// segment, and by timeline for history files.
#[derive(Clone, Debug, Default)]
pub struct WalDirectory {
    path: PathBuf,
    /// Sorted by name.
    entries: Vec<WalEntry>,
    /// Sorted by name.
    others: Vec<OtherEntry>,
    /// (tli, log, seg) → indices into `entries`, preferred form first ([`preference`]).
    segments: BTreeMap<(u32, u32, u32), Vec<usize>>,
    /// tli → index into `entries` of its history file.
    histories: BTreeMap<u32, usize>,
    /// The tar archive the files are members of (their paths are the archive's path joined
    /// with their names), read in place.
    pub(super) tar: Option<Arc<TarWal>>,
    /// Where the files are read from when they are not in a local directory (an object
    /// store's objects; their paths are the listing's path joined with their names).
    pub(super) remote: Option<Arc<dyn RemoteFiles>>,
}

/// The files of a listing that are not in a local directory (an object store's objects), read
/// by name: what [`WalDirectory::with_remote`] reads through. An implementation may read
/// ahead (the next segments, in parallel) and must keep what it holds bounded.
pub trait RemoteFiles: Send + Sync + std::fmt::Debug {
    /// The content of file `name`, decompressed when it is compressed (told by its content).
    fn read(&self, name: &str) -> Result<Vec<u8>, SourceError>;
    /// At least the first `len` bytes of file `name`'s content (fewer if it is shorter),
    /// decompressed when it is compressed: without reading the whole file where the store
    /// allows.
    fn read_head(&self, name: &str, len: usize) -> Result<Vec<u8>, SourceError>;
    /// The first `len` bytes of each of `names` ([`read_head`](Self::read_head)), in the
    /// order of `names`: several at once where the store allows.
    fn read_heads(&self, names: &[String], len: usize) -> Vec<Result<Vec<u8>, SourceError>> {
        names.iter().map(|n| self.read_head(n, len)).collect()
    }
    /// Told the range a reader is about to read ([`read_range`](super::read_range)), so that
    /// reading ahead fetches the segments it will ask for, and no others (by default: nothing).
    fn will_read(&self, _range: &super::ReadRange) {}
    /// The names of the files read whole so far, in the order they were asked for (those read
    /// ahead included): what reading cost (by default: not counted, empty). A reader that
    /// follows a growing archive for long may keep only the most recent thousands.
    fn fetched(&self) -> Vec<String> {
        Vec::new()
    }
    /// Lists the files whose names sort at or after `from` again (for a reader following a
    /// listing that grows, [`WalDirectory::relist_from`]), in name order, each with the WAL
    /// file it is a form of; `None` when the listing cannot be read again (the default).
    fn list_from(&self, _from: &str) -> Result<Option<Vec<ListedFile>>, SourceError> {
        Ok(None)
    }
}

/// A file of a listing that is not a directory's ([`RemoteFiles::list_from`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedFile {
    /// Its name.
    pub name: String,
    /// Its size as stored.
    pub size: u64,
    /// The WAL file it is a stored form of, if any: the name's own meaning, or for a name
    /// that is not a WAL file name but holds one (a receiver's partial object, say) that WAL
    /// file.
    pub wal: Option<WalFileName>,
}

/// The order in which the stored forms of one segment are preferred: complete before
/// `.partial`, then plain, zstd, LZ4, gzip (the cheapest to read first).
pub fn preference(name: &WalFileName) -> (bool, u8) {
    match name {
        WalFileName::Segment {
            partial,
            compression,
            ..
        } => (
            *partial,
            match compression {
                Compression::None => 0,
                Compression::Zstd => 1,
                Compression::Lz4 => 2,
                Compression::Gzip => 3,
            },
        ),
        _ => (true, u8::MAX),
    }
}

/// Every stored form of `name`'s file, in [`preference`] order: for a segment its compressed
/// forms (a segment keeps its `.partial` flag), for other names the name itself.
pub fn name_variants(name: &WalFileName) -> Vec<WalFileName> {
    let partial = matches!(name, WalFileName::Segment { partial: true, .. });
    let mut v: Vec<WalFileName> = [
        Compression::None,
        Compression::Zstd,
        Compression::Lz4,
        Compression::Gzip,
    ]
    .into_iter()
    .map(|c| name.with(c, partial))
    .collect();
    v.dedup();
    v
}

impl WalDirectory {
    /// An empty index of the files at `path` (fill it with [`WalDirectory::insert`]).
    pub fn new(path: impl Into<PathBuf>) -> WalDirectory {
        WalDirectory {
            path: path.into(),
            ..WalDirectory::default()
        }
    }

    /// Lists `dir` and indexes every file in it. A symbolic link counts as what it points
    /// to.
    pub fn scan(dir: &Path) -> Result<WalDirectory, SourceError> {
        let mut d = WalDirectory::new(dir);
        let mut wal = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name();
            let (name, parsed) = match name.to_str() {
                Some(n) => (n.to_owned(), WalFileName::parse(n)),
                None => (name.to_string_lossy().into_owned(), None),
            };
            let meta = match entry.file_type() {
                Ok(t) if t.is_symlink() => std::fs::metadata(entry.path()),
                _ => entry.metadata(),
            };
            let meta = match meta {
                Ok(m) => Some(m),
                // Removed meanwhile, or a dangling link.
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(io_err(&entry.path())(e)),
            };
            let file = meta.as_ref().filter(|m| m.is_file());
            match (parsed, file) {
                (Some(w), Some(m)) => wal.push(WalEntry {
                    name,
                    wal: w,
                    size: m.len(),
                }),
                _ => d.others.push(OtherEntry {
                    name,
                    size: file.map(|m| m.len()),
                    modified: meta.and_then(|m| m.modified().ok()),
                }),
            }
        }
        d.extend(wal);
        d.others.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(d)
    }

    /// The WAL members of a tar archive as a directory: each member's path is the archive's
    /// path joined with its file name, and reading it ([`WalDirectory::read_file`]) reads the
    /// member in place (from the mapped archive, or as the compressed archive is
    /// decompressed), without writing any file.
    ///
    /// An uncompressed archive's members are all listed at once. A compressed one is read as
    /// a stream: [`WalDirectory::segments`] and [`WalDirectory::first_segment`] list only the
    /// members read so far, while [`read_range`](super::read_range) reads on to the segments
    /// it needs.
    pub fn from_tar(tar: TarWal) -> WalDirectory {
        let mut d = WalDirectory::new(tar.path());
        for name in tar.names() {
            d.insert(&name, 0, None);
        }
        d.tar = Some(Arc::new(tar));
        d
    }

    /// This index (of a listing that is not a local directory) with its files read through
    /// `remote` ([`WalDirectory::read_file`], [`WalDirectory::read_head`] and the readers of
    /// ranges then ask it, not the file system).
    pub fn with_remote(mut self, remote: Arc<dyn RemoteFiles>) -> WalDirectory {
        self.remote = Some(remote);
        self
    }

    /// Where the files are read from, when not from a local directory
    /// ([`WalDirectory::with_remote`]).
    pub fn remote(&self) -> Option<&Arc<dyn RemoteFiles>> {
        self.remote.as_ref()
    }

    /// Whether the files are read in place from something other than a file of their own (a
    /// tar archive's members, an object store's objects).
    pub(super) fn is_virtual(&self) -> bool {
        self.tar.is_some() || self.remote.is_some()
    }

    /// The first `len` bytes of the content of the file at `path` (one this directory
    /// listed), decompressing only as much as needed: [`read_head`] for a file.
    pub fn read_head(&self, path: &Path, len: usize) -> Result<Vec<u8>, SourceError> {
        if let Some(r) = &self.remote {
            return r.read_head(&file_name(path), len);
        }
        if self.tar.is_some() {
            let mut whole = self.read_file(path)?.to_vec();
            whole.truncate(len);
            return Ok(whole);
        }
        read_head(path, len).map_err(io_err(path))
    }

    /// [`WalDirectory::read_head`] of each of `paths`, in their order (several requests at
    /// once for an object store's objects).
    pub fn read_heads(&self, paths: &[PathBuf], len: usize) -> Vec<Result<Vec<u8>, SourceError>> {
        match &self.remote {
            Some(r) => r.read_heads(&paths.iter().map(|p| file_name(p)).collect::<Vec<_>>(), len),
            None => paths.iter().map(|p| self.read_head(p, len)).collect(),
        }
    }

    /// The tar archive whose members these are ([`WalDirectory::from_tar`]), if any.
    pub fn archive(&self) -> Option<&Path> {
        self.tar.as_deref().map(TarWal::path)
    }

    /// The file to read for segment `segno` of timeline `tli`, as [`WalDirectory::segment`];
    /// in a compressed archive, read on until it appears (or the archive ends).
    pub(super) fn locate(
        &self,
        tli: TimelineId,
        segno: SegNo,
        seg_size: WalSegSize,
    ) -> Result<Option<PathBuf>, SourceError> {
        match &self.tar {
            Some(tar) if !tar.is_indexed() => {
                let member = tar.segment_member(&segno.file_name(tli, seg_size))?;
                Ok(member.map(|m| tar.path().join(m)))
            }
            _ => Ok(self.segment(tli, segno, seg_size)),
        }
    }

    /// Reads the file at `path` (one this directory listed) whole, decompressing it if its
    /// content is compressed: [`read_wal_file`] for a file; for an archive member, its bytes
    /// in place when uncompressed.
    pub fn read_file(&self, path: &Path) -> Result<WalBytes, SourceError> {
        if let Some(r) = &self.remote {
            return r.read(&file_name(path)).map(WalBytes::Owned);
        }
        let Some(tar) = &self.tar else {
            return read_wal_file(path);
        };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let bytes = tar.member(name)?.ok_or_else(|| SourceError::Missing {
            name: name.to_string(),
            dir: tar.path().to_owned(),
        })?;
        let kind = sniff_compression(&bytes[..bytes.len().min(4)]);
        if kind == Compression::None {
            return Ok(WalBytes::Member(bytes));
        }
        decompress(kind, &bytes)
            .map(WalBytes::Owned)
            .map_err(|source| SourceError::Decompress {
                path: path.to_owned(),
                source,
            })
    }

    /// Indexes only the files of `dir` among `names` (one look-up per name, no listing of a
    /// directory that may hold thousands of files): for callers that want a few names, such
    /// as a `restore_command` asking for one segment in any of its forms. Every entry that
    /// exists counts, whatever its type (a symbolic link is not followed): a caller about to
    /// write a name must not replace what is there.
    pub fn scan_names(dir: &Path, names: &[WalFileName]) -> io::Result<WalDirectory> {
        let mut d = WalDirectory::new(dir);
        let mut wal = Vec::new();
        for n in names {
            let name = n.to_string();
            match std::fs::symlink_metadata(dir.join(&name)) {
                Ok(m) => wal.push(WalEntry {
                    name,
                    wal: n.clone(),
                    size: m.len(),
                }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        d.extend(wal);
        Ok(d)
    }

    /// Adds a file of `size` bytes named `name` (a listing other than a directory's): a WAL
    /// file name joins the index, any other name the other files. Returns whether it was a WAL
    /// file name.
    pub fn insert(&mut self, name: &str, size: u64, modified: Option<SystemTime>) -> bool {
        match WalFileName::parse(name) {
            Some(wal) => {
                self.extend([WalEntry {
                    name: name.to_owned(),
                    wal,
                    size,
                }]);
                true
            }
            None => {
                let at = self.others.partition_point(|o| o.name.as_str() < name);
                self.others.insert(
                    at,
                    OtherEntry {
                        name: name.to_owned(),
                        size: Some(size),
                        modified,
                    },
                );
                false
            }
        }
    }

    /// Adds the files of a listing at once (see [`ListedFile::wal`]): the WAL ones join the
    /// index as forms of the WAL file they hold, the others the other files.
    pub fn insert_listed(&mut self, files: impl IntoIterator<Item = ListedFile>) {
        let mut wal = Vec::new();
        for f in files {
            match f.wal {
                Some(w) => wal.push(WalEntry {
                    name: f.name,
                    wal: w,
                    size: f.size,
                }),
                None => self.others.push(OtherEntry {
                    name: f.name,
                    size: Some(f.size),
                    modified: None,
                }),
            }
        }
        self.others.sort_by(|a, b| a.name.cmp(&b.name));
        self.extend(wal);
    }

    /// Lists the files from `from` on again (their names sort at or after it; the files
    /// before are kept as they were): a listing read through [`RemoteFiles::list_from`], a
    /// directory scanned again (whole). Returns whether the files from `from` on changed
    /// (names or sizes; always true for a directory, false for a tar archive or a listing that
    /// cannot be read again).
    pub fn relist_from(&mut self, from: &str) -> Result<bool, SourceError> {
        if self.tar.is_some() {
            // A tar archive does not grow.
            return Ok(false);
        }
        let Some(remote) = self.remote.clone() else {
            *self = WalDirectory::scan(&self.path)?;
            return Ok(true);
        };
        match remote.list_from(from)? {
            Some(listed) => Ok(self.replace_from(from, listed)),
            None => Ok(false),
        }
    }

    /// Replaces the files whose names sort at or after `from` by `listed`; returns whether
    /// they changed.
    pub(crate) fn replace_from(&mut self, from: &str, listed: Vec<ListedFile>) -> bool {
        let before: Vec<(&str, u64)> = self
            .entries
            .iter()
            .map(|e| (e.name.as_str(), e.size))
            .chain(
                self.others
                    .iter()
                    .map(|o| (o.name.as_str(), o.size.unwrap_or(0))),
            )
            .filter(|(n, _)| *n >= from)
            .collect();
        let mut before: Vec<(String, u64)> =
            before.into_iter().map(|(n, s)| (n.to_owned(), s)).collect();
        before.sort();
        let mut after: Vec<(String, u64)> =
            listed.iter().map(|f| (f.name.clone(), f.size)).collect();
        after.sort();
        if before == after {
            return false;
        }
        self.entries.retain(|e| e.name.as_str() < from);
        self.others.retain(|o| o.name.as_str() < from);
        self.insert_listed(listed);
        true
    }

    /// Adds WAL entries and rebuilds the lookup tables.
    fn extend(&mut self, more: impl IntoIterator<Item = WalEntry>) {
        self.entries.extend(more);
        self.entries.sort_by(|a, b| a.name.cmp(&b.name));
        self.entries.dedup_by(|a, b| a.name == b.name);
        self.segments.clear();
        self.histories.clear();
        for (i, e) in self.entries.iter().enumerate() {
            match e.wal {
                WalFileName::Segment { tli, log, seg, .. } => {
                    self.segments.entry((tli.0, log, seg)).or_default().push(i);
                }
                WalFileName::History { tli, .. } => {
                    self.histories.insert(tli.0, i);
                }
                WalFileName::Backup { .. } => {}
            }
        }
        let entries = &self.entries;
        for v in self.segments.values_mut() {
            // Forms alike in preference (a receiver's partial objects of one segment, which
            // carry their end in their names): the later name, holding more WAL, first.
            v.sort_by(|&a, &b| {
                preference(&entries[a].wal)
                    .cmp(&preference(&entries[b].wal))
                    .then_with(|| entries[b].name.cmp(&entries[a].name))
            });
        }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of a file of this directory.
    pub fn file_path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Every WAL file (segments in every form, history and backup history files), sorted by
    /// name.
    pub fn entries(&self) -> &[WalEntry] {
        &self.entries
    }

    /// Every other entry (sorted by name).
    pub fn others(&self) -> &[OtherEntry] {
        &self.others
    }

    /// The WAL file named `name`, if there is one.
    pub fn entry(&self, name: &str) -> Option<&WalEntry> {
        self.entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Every stored form of segment (`tli`, `log`, `seg`), preferred first ([`preference`]):
    /// complete before `.partial`, plain before compressed.
    pub fn forms(&self, tli: TimelineId, log: u32, seg: u32) -> impl Iterator<Item = &WalEntry> {
        self.segments
            .get(&(tli.0, log, seg))
            .into_iter()
            .flatten()
            .map(|&i| &self.entries[i])
    }

    /// The stored forms of the file `name` names (a segment, complete or `.partial`, in every
    /// compression; a history or backup file as it is), preferred first.
    pub fn variants(&self, name: &WalFileName) -> Vec<&WalEntry> {
        name_variants(name)
            .iter()
            .filter_map(|v| self.entry(&v.to_string()))
            .collect()
    }

    /// The preferred file for segment `segno` of timeline `tli`: complete before `.partial`,
    /// plain before compressed.
    pub fn segment(&self, tli: TimelineId, segno: SegNo, seg_size: WalSegSize) -> Option<PathBuf> {
        let per = seg_size.segments_per_xlogid();
        let log = u32::try_from(segno.0 / per).ok()?;
        let e = self.forms(tli, log, (segno.0 % per) as u32).next()?;
        Some(self.file_path(&e.name))
    }

    /// The file `name` names in this directory: the file itself if there is one, else, for a
    /// plain segment name (no suffix), that segment's preferred form as
    /// [`WalDirectory::segment`] picks it (compressed, then `.partial` forms).
    pub fn find(&self, name: &str) -> Option<PathBuf> {
        let exact = self.entry(name).is_some()
            || self
                .others
                .binary_search_by(|o| o.name.as_str().cmp(name))
                .is_ok_and(|i| self.others[i].size.is_some());
        if exact {
            return Some(self.file_path(name));
        }
        match WalFileName::parse(name)? {
            WalFileName::Segment {
                tli,
                log,
                seg,
                partial: false,
                compression: Compression::None,
            } => self
                .forms(tli, log, seg)
                .next()
                .map(|e| self.file_path(&e.name)),
            _ => None,
        }
    }

    /// Every segment (its preferred file), ordered by timeline then segment.
    pub fn segments(&self) -> impl Iterator<Item = (&WalFileName, PathBuf)> {
        self.segments.values().filter_map(|v| {
            let e = &self.entries[*v.first()?];
            Some((&e.wal, self.file_path(&e.name)))
        })
    }

    /// The preferred file of the lowest-numbered segment (of the lowest timeline that has it):
    /// where WAL begins.
    pub fn first_segment(&self) -> Option<(&WalFileName, PathBuf)> {
        self.segments
            .iter()
            .min_by_key(|(&(tli, log, seg), _)| (log, seg, tli))
            .and_then(|(_, v)| {
                let e = &self.entries[*v.first()?];
                Some((&e.wal, self.file_path(&e.name)))
            })
    }

    /// The history file of timeline `tli`, parsed, if the directory has one.
    pub fn history(&self, tli: TimelineId) -> Result<Option<TimelineHistory>, SourceError> {
        let name = format!("{:08X}.history", tli.0);
        let path = match (self.histories.get(&tli.0), &self.tar) {
            (Some(&i), _) => self.file_path(&self.entries[i].name),
            // A compressed archive not yet read that far.
            (None, Some(tar)) if !tar.is_indexed() && tar.member(&name)?.is_some() => {
                tar.path().join(&name)
            }
            (None, _) => return Ok(None),
        };
        let bytes = self.read_file(&path)?;
        TimelineHistory::parse(&bytes)
            .map(Some)
            .map_err(|e| SourceError::History {
                path,
                reason: e.to_string(),
            })
    }

    /// Timelines that have a history file here.
    pub fn history_timelines(&self) -> impl Iterator<Item = TimelineId> + '_ {
        self.histories.keys().map(|&t| TimelineId(t))
    }
}

/// The file name of `path` (a path this index made: its directory joined with the name).
fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn find_takes_the_file_or_a_plain_names_other_forms() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for f in [
            "000000010000000000000001.partial",
            "000000010000000000000001.zst",
            "000000010000000000000002.gz.partial",
            "000000010000000000000003",
            "000000010000000000000003.lz4",
        ] {
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let wd = WalDirectory::scan(d).unwrap();
        let found = |n: &str| wd.find(n).map(|p| p.file_name().unwrap().to_owned());
        // Compressed before .partial; the plain file when there is one; exact names as given.
        assert_eq!(
            found("000000010000000000000001").unwrap(),
            "000000010000000000000001.zst"
        );
        assert_eq!(
            found("000000010000000000000002").unwrap(),
            "000000010000000000000002.gz.partial"
        );
        assert_eq!(
            found("000000010000000000000003").unwrap(),
            "000000010000000000000003"
        );
        assert_eq!(
            found("000000010000000000000001.partial").unwrap(),
            "000000010000000000000001.partial"
        );
        assert!(found("000000010000000000000004").is_none());
        assert!(found("000000010000000000000002.gz").is_none());
        assert!(found("000000020000000000000001").is_none());
    }

    /// A listing that is not a directory (as an object store's) builds the same index as a
    /// scan of the same names.
    #[test]
    fn inserted_names_index_like_a_scanned_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let names = [
            ("000000010000000000000002.gz", 10),
            ("000000010000000000000002", 16),
            ("000000010000000000000002.zst.partial", 7),
            ("000000010000000000000001.lz4", 9),
            ("00000002.history", 42),
            ("000000010000000000000001.00000028.backup", 200),
            (".pgwal-tmp.000000010000000000000003.77.ab", 3),
            ("notes.txt", 5),
        ];
        for (n, len) in names {
            std::fs::write(tmp.path().join(n), vec![0u8; len]).unwrap();
        }
        std::fs::create_dir(tmp.path().join("000000010000000000000009")).unwrap();
        let scanned = WalDirectory::scan(tmp.path()).unwrap();
        let mut listed = WalDirectory::new(tmp.path());
        for (n, len) in names.iter().rev() {
            listed.insert(n, *len as u64, None);
        }
        let key = |d: &WalDirectory| {
            (
                d.entries().to_vec(),
                d.segments()
                    .map(|(n, p)| (n.clone(), p))
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(key(&scanned), key(&listed));
        // A directory named like a segment is not a WAL file.
        let others: Vec<&str> = scanned.others().iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            others,
            [
                ".pgwal-tmp.000000010000000000000003.77.ab",
                "000000010000000000000009",
                "notes.txt"
            ]
        );
        assert!(scanned.others()[1].size.is_none());
        // Forms in preference order: complete (plain, zstd, lz4, gzip), then `.partial`.
        let forms: Vec<&str> = scanned
            .forms(TimelineId(1), 0, 2)
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(
            forms,
            [
                "000000010000000000000002",
                "000000010000000000000002.gz",
                "000000010000000000000002.zst.partial"
            ]
        );
        assert_eq!(scanned.entry("00000002.history").unwrap().size, 42);
        assert_eq!(
            scanned.history_timelines().collect::<Vec<_>>(),
            [TimelineId(2)]
        );
        let (first, _) = scanned.first_segment().unwrap();
        assert_eq!(first.to_string(), "000000010000000000000001.lz4");
        let seg2 = WalFileName::parse("000000010000000000000002").unwrap();
        let v: Vec<&str> = scanned
            .variants(&seg2)
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(
            v,
            ["000000010000000000000002", "000000010000000000000002.gz"]
        );
        // Looked up by name, without a listing: the same forms, and what is not there is not.
        let few = WalDirectory::scan_names(tmp.path(), &name_variants(&seg2)).unwrap();
        let v: Vec<&str> = few
            .variants(&seg2)
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(
            v,
            ["000000010000000000000002", "000000010000000000000002.gz"]
        );
        assert_eq!(few.entries().len(), 2);
    }

    /// A listing read again from a name on: the files before it stay, those from it on are
    /// replaced (gone ones leave), the answer says whether anything changed, and forms alike in
    /// preference (a receiver's partial objects) put the later name first.
    #[test]
    fn relisting_from_a_name_replaces_what_follows_it() {
        let wal = |n: &str| WalFileName::parse(n);
        let file = |n: &str, size: u64, w: Option<WalFileName>| ListedFile {
            name: n.to_owned(),
            size,
            wal: w,
        };
        // A receiver's partial objects: `.partial` forms of segment 3.
        let partial = || wal("000000010000000000000003.zst.partial");
        let mut d = WalDirectory::new("s3://b/p");
        d.insert_listed([
            file(
                "000000010000000000000001",
                16,
                wal("000000010000000000000001"),
            ),
            file(
                "000000010000000000000002.zst",
                9,
                wal("000000010000000000000002.zst"),
            ),
            file(
                "000000010000000000000003.0000000003001000.zst.partial",
                5,
                partial(),
            ),
            file("notes.txt", 1, None),
        ]);
        let again = || {
            vec![
                file(
                    "000000010000000000000002.zst",
                    9,
                    wal("000000010000000000000002.zst"),
                ),
                file(
                    "000000010000000000000003.0000000003001000.zst.partial",
                    5,
                    partial(),
                ),
                file(
                    "000000010000000000000003.0000000003002000.zst.partial",
                    7,
                    partial(),
                ),
            ]
        };
        assert!(d.replace_from("000000010000000000000002", again()));
        assert!(!d.replace_from("000000010000000000000002", again()));
        let names: Vec<&str> = d.entries().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "000000010000000000000001",
                "000000010000000000000002.zst",
                "000000010000000000000003.0000000003001000.zst.partial",
                "000000010000000000000003.0000000003002000.zst.partial",
            ]
        );
        // The other file sorts after the name and was not listed again: gone. The newer
        // partial object is preferred.
        assert!(d.others().is_empty());
        let seg3 = d
            .segment(TimelineId(1), SegNo(3), WalSegSize::DEFAULT)
            .unwrap();
        assert_eq!(
            seg3.file_name().unwrap(),
            "000000010000000000000003.0000000003002000.zst.partial"
        );
    }

    /// A symbolic link to a segment file is that segment (a `pg_wal` may link them); a dangling
    /// one is not WAL.
    #[test]
    fn links_count_as_what_they_point_to() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("elsewhere");
        std::fs::write(&target, vec![0u8; 123]).unwrap();
        let seg = "000000010000000000000005";
        std::os::unix::fs::symlink(&target, tmp.path().join(seg)).unwrap();
        std::os::unix::fs::symlink(
            tmp.path().join("gone"),
            tmp.path().join("000000010000000000000006"),
        )
        .unwrap();
        let d = WalDirectory::scan(tmp.path()).unwrap();
        assert_eq!(d.entry(seg).unwrap().size, 123);
        assert!(d.entry("000000010000000000000006").is_none());
        assert_eq!(d.find(seg).unwrap(), tmp.path().join(seg));
        let others: Vec<&str> = d.others().iter().map(|o| o.name.as_str()).collect();
        assert_eq!(others, ["000000010000000000000006", "elsewhere"]);
    }
}
