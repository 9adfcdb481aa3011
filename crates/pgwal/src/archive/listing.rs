//! The archive's view of its directory's index ([`WalDirectory`]): which of the names that are
//! not WAL are temporary files of a push or receive, and look-ups of a few names.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::segment::WalFileName;
/// The stored forms of a name: one rule, the index's ([`crate::source::name_variants`]).
pub use crate::source::name_variants;
use crate::source::{OtherEntry, WalDirectory};
use crate::storage::temp::is_temp_name;

/// A temporary file left by an interrupted (or running) push or receive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TempEntry {
    /// The file name.
    pub name: String,
    /// Time since its last modification, if known.
    pub age: Option<Duration>,
}

/// The temporary files of `dir`, sorted by name.
pub fn temp_files(dir: &WalDirectory) -> Vec<TempEntry> {
    let now = SystemTime::now();
    dir.others()
        .iter()
        .filter(|o| is_temp_name(&o.name))
        .map(|o| TempEntry {
            name: o.name.clone(),
            age: o.modified.and_then(|t| now.duration_since(t).ok()),
        })
        .collect()
}

/// The entries of `dir` that are neither WAL nor temporary files.
pub fn other_files(dir: &WalDirectory) -> impl Iterator<Item = &OtherEntry> {
    dir.others().iter().filter(|o| !is_temp_name(&o.name))
}

/// The stored forms of `name` (see [`name_variants`]) that exist in `dir`, preferred first,
/// as (name, path), found without listing the directory ([`WalDirectory::scan_names`]).
pub fn existing_variants(
    dir: &Path,
    name: &WalFileName,
) -> io::Result<Vec<(WalFileName, PathBuf)>> {
    let found = WalDirectory::scan_names(dir, &name_variants(name))?;
    Ok(found
        .variants(name)
        .into_iter()
        .map(|e| (e.wal.clone(), found.file_path(&e.name)))
        .collect())
}

/// [`WalDirectory::scan`], with the listing's I/O error as it is (the archive's operations
/// report their own context).
pub(crate) fn scan(dir: &Path) -> io::Result<WalDirectory> {
    WalDirectory::scan(dir).map_err(|e| match e {
        crate::source::SourceError::Io { source, .. } => source,
        other => io::Error::other(other),
    })
}
