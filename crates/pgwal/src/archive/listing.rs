//! Listing an archive directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::segment::{Compression, WalFileName};
use crate::storage::temp::is_temp_name;

/// A WAL file (segment, history or backup history file) in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveEntry {
    /// The file name.
    pub name: String,
    /// What the name denotes.
    pub wal: WalFileName,
    /// Full path.
    pub path: PathBuf,
    /// Size on disk.
    pub size: u64,
}

/// A temporary file left by an interrupted (or running) push or receive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TempEntry {
    /// The file name.
    pub name: String,
    /// Time since its last modification, if known.
    pub age: Option<Duration>,
}

/// The files of an archive directory, classified by name.
#[derive(Clone, Debug, Default)]
pub struct ArchiveListing {
    /// The directory.
    pub dir: PathBuf,
    /// WAL files, sorted by name.
    pub entries: Vec<ArchiveEntry>,
    /// Temporary files.
    pub temp: Vec<TempEntry>,
    /// Names that are neither WAL nor temporary files (sorted).
    pub other: Vec<String>,
}

impl ArchiveListing {
    /// Lists `dir`.
    pub fn scan(dir: &Path) -> io::Result<ArchiveListing> {
        let mut l = ArchiveListing {
            dir: dir.to_owned(),
            ..ArchiveListing::default()
        };
        let now = SystemTime::now();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = match entry.file_name().into_string() {
                Ok(n) => n,
                Err(n) => {
                    l.other.push(n.to_string_lossy().into_owned());
                    continue;
                }
            };
            if is_temp_name(&name) {
                let age = entry
                    .metadata()
                    .ok()
                    .and_then(|m| m.modified().ok())
                    .and_then(|t| now.duration_since(t).ok());
                l.temp.push(TempEntry { name, age });
                continue;
            }
            match WalFileName::parse(&name) {
                Some(wal) => {
                    let meta = entry.metadata()?;
                    if !meta.is_file() {
                        l.other.push(name);
                        continue;
                    }
                    l.entries.push(ArchiveEntry {
                        path: entry.path(),
                        size: meta.len(),
                        name,
                        wal,
                    });
                }
                None => l.other.push(name),
            }
        }
        l.entries.sort_by(|a, b| a.name.cmp(&b.name));
        l.temp.sort_by(|a, b| a.name.cmp(&b.name));
        l.other.sort();
        Ok(l)
    }
}

/// Every compression variant of `name` (a segment keeps its `.partial` flag), plain first.
pub fn name_variants(name: &WalFileName) -> Vec<WalFileName> {
    let partial = matches!(name, WalFileName::Segment { partial: true, .. });
    [
        Compression::None,
        Compression::Zstd,
        Compression::Lz4,
        Compression::Gzip,
    ]
    .into_iter()
    .map(|c| name.with(c, partial))
    .collect()
}

/// The variants of `name` (see [`name_variants`]) that exist in `dir`, as (name, path).
pub fn existing_variants(
    dir: &Path,
    name: &WalFileName,
) -> io::Result<Vec<(WalFileName, PathBuf)>> {
    let mut found = Vec::new();
    for v in name_variants(name) {
        let p = dir.join(v.to_string());
        match fs::symlink_metadata(&p) {
            Ok(_) => found.push((v, p)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}
