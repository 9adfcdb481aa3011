//! `fetch`: restore a WAL file from the archive (PostgreSQL's `restore_command`).

use std::borrow::Cow;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::archive::compress::{decompress_fast, read_all};
use crate::archive::listing::existing_variants;
use crate::archive::push::check_segment;
use crate::history::TimelineHistory;
use crate::segment::{Compression, WalFileName};
use crate::storage::codec::sniff_compression;
use crate::storage::local::write_replace;

/// Settings of [`fetch`]: [`FetchOptions::default`], then the fields to change (more may be
/// added).
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct FetchOptions {
    /// When the complete segment is not archived, serve its `.partial` file (zero-padded to a
    /// whole segment).
    pub partial: bool,
}

impl FetchOptions {
    /// With or without serving a `.partial` file (see [`FetchOptions::partial`]).
    pub fn with_partial(mut self, on: bool) -> FetchOptions {
        self.partial = on;
        self
    }
}

/// What [`fetch`] restored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchOutcome {
    /// The archived file it came from.
    pub source: String,
    /// Bytes written.
    pub bytes: u64,
    /// True if a short `.partial` segment was padded with zeros.
    pub padded: bool,
}

/// Why [`fetch`] did not restore the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The archive has no such file: the normal end of archived WAL.
    #[error("\"{name}\" is not in archive \"{}\"", dir.display())]
    NotFound {
        /// The requested name.
        name: String,
        /// The archive.
        dir: PathBuf,
    },
    /// The requested name is not a plain file name.
    #[error("invalid WAL file name \"{0}\"")]
    BadName(String),
    /// The archived file is damaged.
    #[error("archived file \"{}\" is damaged: {reason}", path.display())]
    Corrupt {
        /// The archived file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An object-store request failed (names the URL and key).
    #[cfg(feature = "object-store")]
    #[error(transparent)]
    Object(#[from] crate::storage::object::ObjectError),
    /// An I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
}

impl FetchError {
    /// True for [`FetchError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::NotFound { .. })
    }
}

/// Finds `name` in the archive directory `dir` (uncompressed or compressed; with
/// `opts.partial`, its `.partial` form as a last resort), decompresses and checks it (segments:
/// page header and size; history files: syntax), and writes it to `dest` atomically.
pub fn fetch(
    dir: &Path,
    name: &str,
    dest: &Path,
    opts: FetchOptions,
) -> Result<FetchOutcome, FetchError> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(FetchError::BadName(name.to_owned()));
    }
    let meta = fs::metadata(dir).map_err(|source| FetchError::Io {
        context: format!("archive directory \"{}\"", dir.display()),
        source,
    })?;
    if !meta.is_dir() {
        return Err(FetchError::Io {
            context: format!("archive directory \"{}\"", dir.display()),
            source: io::Error::other("not a directory"),
        });
    }
    let list_err = |source| FetchError::Io {
        context: format!("could not read archive directory \"{}\"", dir.display()),
        source,
    };
    let parsed = WalFileName::parse(name).filter(|n| n.compression() == Compression::None);
    let mut candidates: Vec<(Option<WalFileName>, PathBuf)> = match &parsed {
        Some(n) => existing_variants(dir, n)
            .map_err(list_err)?
            .into_iter()
            .map(|(v, p)| (Some(v), p))
            .collect(),
        None => {
            let p = dir.join(name);
            if p.is_file() {
                vec![(None, p)]
            } else {
                vec![]
            }
        }
    };
    if candidates.is_empty() && opts.partial {
        if let Some(n @ WalFileName::Segment { partial: false, .. }) = &parsed {
            let p = n.with(Compression::None, true);
            candidates = existing_variants(dir, &p)
                .map_err(list_err)?
                .into_iter()
                .map(|(v, p)| (Some(v), p))
                .collect();
        }
    }
    let Some((found, path)) = candidates.into_iter().next() else {
        return Err(FetchError::NotFound {
            name: name.to_owned(),
            dir: dir.to_owned(),
        });
    };
    let raw = match read_all(&path) {
        Ok(r) => r,
        // Removed between the look-up and the read (a concurrent cleanup).
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(FetchError::NotFound {
                name: name.to_owned(),
                dir: dir.to_owned(),
            })
        }
        Err(source) => {
            return Err(FetchError::Io {
                context: format!("could not read \"{}\"", path.display()),
                source,
            })
        }
    };
    let (bytes, padded) = check_and_write(found.as_ref(), &path, &raw, dest)?;
    Ok(FetchOutcome {
        source: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes,
        padded,
    })
}

/// Decompresses the archived file `raw` (from `path`, named `found`), checks it (segments:
/// page header and size, a `.partial` padded to a whole segment; history files: syntax) and
/// writes it to `dest` atomically. Returns the bytes written and whether it was padded.
pub(crate) fn check_and_write(
    found: Option<&WalFileName>,
    path: &Path,
    raw: &[u8],
    dest: &Path,
) -> Result<(u64, bool), FetchError> {
    let data = check_fetched(found, path, raw)?;
    write_replace(dest, &data.0).map_err(|e| FetchError::Io {
        context: format!("could not write \"{}\"", dest.display()),
        source: e.into_io(),
    })?;
    Ok((data.0.len() as u64, data.1))
}

/// The checking half of [`check_and_write`]: the content to restore and whether it was padded.
pub(crate) fn check_fetched<'a>(
    found: Option<&WalFileName>,
    path: &Path,
    raw: &'a [u8],
) -> Result<(Cow<'a, [u8]>, bool), FetchError> {
    let kind = sniff_compression(raw);
    let corrupt = |reason: String| FetchError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let mut data: Cow<'_, [u8]> = if kind == Compression::None {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(decompress_fast(kind, raw).map_err(|e| corrupt(e.to_string()))?)
    };
    let mut padded = false;
    match found {
        Some(n @ WalFileName::Segment { partial, .. }) => {
            let info = check_segment(n, &data, *partial).map_err(|e| corrupt(e.to_string()))?;
            if *partial && (data.len() as u64) < info.seg_size.bytes() {
                data.to_mut().resize(info.seg_size.bytes() as usize, 0);
                padded = true;
            }
        }
        Some(WalFileName::History { .. }) => {
            TimelineHistory::parse(&data).map_err(|e| corrupt(e.to_string()))?;
        }
        _ => {}
    }
    Ok((data, padded))
}
