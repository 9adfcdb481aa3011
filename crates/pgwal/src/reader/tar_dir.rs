//! A tar archive's WAL, extracted into a private directory that lives as long as the reader.

use std::path::{Path, PathBuf};

use super::ReaderError;
use crate::tar;

/// A directory under `$TMPDIR` (else `/tmp`), mode 0700, holding the WAL members of a tar
/// archive; removed with everything in it on drop.
#[derive(Debug)]
pub(super) struct ExtractedTar {
    dir: PathBuf,
    /// WAL members found more than once (the first copy is kept).
    pub(super) duplicates: Vec<String>,
}

impl ExtractedTar {
    /// Extracts the WAL of `archive` (compressed as its name says, see
    /// [`tar::archive_kind`]).
    pub(super) fn extract(archive: &Path) -> Result<ExtractedTar, ReaderError> {
        let kind = tar::archive_kind(archive).unwrap_or(crate::Compression::None);
        let mut t = ExtractedTar {
            dir: private_dir()?,
            duplicates: Vec::new(),
        };
        // On an error, `t` is dropped and the directory removed.
        t.duplicates = tar::extract_wal(archive, kind, &t.dir)?.duplicates;
        Ok(t)
    }

    /// The directory.
    pub(super) fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for ExtractedTar {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Creates a fresh directory only this user can read.
fn private_dir() -> Result<PathBuf, ReaderError> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for attempt in 0..100u32 {
        let dir = base.join(format!(
            "pgwal-tar-{}-{stamp:08x}-{attempt}",
            std::process::id()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(error) => return Err(ReaderError::TempDir { dir, error }),
        }
    }
    Err(ReaderError::TempDir {
        dir: base,
        error: std::io::ErrorKind::AlreadyExists.into(),
    })
}
