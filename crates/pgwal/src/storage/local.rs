//! Durable writes in a local directory: fsync of files and directories, a file written under a
//! temporary name and moved into place, create-only writes that never replace a file, and the
//! comparison that decides whether an existing file holds the same WAL.
//!
//! A file that appears under its final name is always complete: a crash leaves at most a
//! temporary file behind (named by [`temp`](super::temp), which no WAL name parser accepts, and
//! removed later by [`remove_stale_temp_files`](super::temp::remove_stale_temp_files)).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::codec::{decompress, sniff_compression};
use super::file::{open_read_nofollow, open_write_mode};
use super::temp::{temp_path, InFlight};
use crate::segment::Compression;

/// Mode of archived files ([`write_new`]): archived WAL holds table data.
pub const ARCHIVE_FILE_MODE: u32 = 0o640;

/// A local storage operation failed; every variant names the file or directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// An I/O error while doing `op` on `path`.
    #[error("could not {op} \"{}\": {source}", path.display())]
    Io {
        /// What was being done ("create file", "write file", "read file", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// An fsync failed: data written before may be lost (PostgreSQL's rule: never retried).
    #[error("could not fsync {what} \"{}\": {source}", path.display())]
    Sync {
        /// `"file"` or `"directory"`.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A rename into place failed.
    #[error("could not rename file \"{}\" to \"{}\": {source}", from.display(), to.display())]
    Rename {
        /// The temporary file.
        from: PathBuf,
        /// The final name.
        to: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl LocalError {
    /// The file or directory the error is about (the final name for a rename).
    pub fn path(&self) -> &Path {
        match self {
            LocalError::Io { path, .. } | LocalError::Sync { path, .. } => path,
            LocalError::Rename { to, .. } => to,
        }
    }

    /// The operating system's error.
    pub fn io_error(&self) -> &io::Error {
        match self {
            LocalError::Io { source, .. }
            | LocalError::Sync { source, .. }
            | LocalError::Rename { source, .. } => source,
        }
    }

    /// The kind of the operating system's error.
    pub fn kind(&self) -> io::ErrorKind {
        self.io_error().kind()
    }

    /// True for a failed fsync.
    pub fn is_sync(&self) -> bool {
        matches!(self, LocalError::Sync { .. })
    }

    /// The operating system's error, without the path.
    pub fn into_io(self) -> io::Error {
        match self {
            LocalError::Io { source, .. }
            | LocalError::Sync { source, .. }
            | LocalError::Rename { source, .. } => source,
        }
    }
}

fn io_at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> LocalError + 'a {
    move |source| LocalError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// A failed fsync of `what` (`"file"` or `"directory"`) at `path`.
pub fn sync_error<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> LocalError + 'a {
    move |source| LocalError::Sync {
        what,
        path: path.to_owned(),
        source,
    }
}

/// fsyncs a directory, so that entries created, renamed or removed in it are durable. File
/// systems that cannot fsync a directory (`EINVAL`, `EBADF`) are taken as they are.
pub fn fsync_dir(dir: &Path) -> Result<(), LocalError> {
    let d = File::open(dir).map_err(io_at("open directory", dir))?;
    match d.sync_all() {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EBADF)) => Ok(()),
        r => r.map_err(sync_error("directory", dir)),
    }
}

/// fsyncs an existing file through a new descriptor, never through a symbolic link (used when
/// a file is already in place, in case the process that wrote it crashed before making it
/// durable).
pub fn fsync_file(path: &Path) -> Result<(), LocalError> {
    open_read_nofollow(path)
        .map_err(io_at("open file", path))?
        .sync_all()
        .map_err(sync_error("file", path))
}

/// Renames `from` to `to` unless `to` exists (then fails with `AlreadyExists`), atomically:
/// `renameat2(RENAME_NOREPLACE)`. Fails with `EINVAL`, `ENOSYS` or `EOPNOTSUPP` where the
/// kernel or file system does not support it (never falls back to a check, which a concurrent
/// writer could race).
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let cstr = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL"))
        };
        let (f, t) = (cstr(from)?, cstr(to)?);
        // SAFETY: two valid NUL-terminated paths relative to the working directory; the
        // syscall reads them only.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (from, to);
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }
}

/// [`rename_noreplace`], and where the file system cannot do that, a hard link to the new name
/// followed by removing the old one, which gives the same guarantee (fails with
/// `AlreadyExists` when `to` exists; a file another process creates meanwhile is never
/// replaced).
pub fn rename_noreplace_or_link(from: &Path, to: &Path) -> io::Result<()> {
    let Err(e) = rename_noreplace(from, to) else {
        return Ok(());
    };
    if !is_unsupported(&e) {
        return Err(e);
    }
    fs::hard_link(from, to)?;
    fs::remove_file(from)
}

/// True for the errors `renameat2` gives where the file system or kernel lacks the flag.
fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
    )
}

/// A file being written under a temporary name in its final directory
/// (`.pgwal-tmp.<final name>.<pid>.<stamp>`, see [`temp`](super::temp)). Removed on drop
/// unless it was moved into place; while it exists, a signal handler installed by
/// [`remove_temp_files_on_signals`](super::temp::remove_temp_files_on_signals) removes it too.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    armed: bool,
    _in_flight: InFlight,
}

impl TempFile {
    /// Creates a new temporary file in `dir` for a file to be named `name`, exclusively, never
    /// through a symbolic link, with `mode` (less the umask).
    pub fn create(dir: &Path, name: &str, mode: u32) -> Result<(TempFile, File), LocalError> {
        let path = temp_path(dir, name);
        // Registered before it exists, so that no moment remains where a signal leaves it behind.
        let in_flight = InFlight::register(&path);
        let file = open_write_mode(&path, mode).map_err(io_at("create file", &path))?;
        Ok((
            TempFile {
                path,
                armed: true,
                _in_flight: in_flight,
            },
            file,
        ))
    }

    /// The temporary path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Renames the file to `target`, replacing what is there (the directory is not fsynced).
    pub fn persist(mut self, target: &Path) -> Result<(), LocalError> {
        fs::rename(&self.path, target).map_err(|source| LocalError::Rename {
            from: self.path.clone(),
            to: target.to_owned(),
            source,
        })?;
        self.armed = false;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `dir/name` through `write` into a new temporary file, fsyncs it, renames it over
/// `dir/name` and fsyncs the directory (with `sync` off, neither fsync). The file gets `mode`
/// (less the umask); the temporary file is removed on any failure.
pub fn write_durably(
    dir: &Path,
    name: &str,
    mode: u32,
    sync: bool,
    write: impl FnOnce(File) -> io::Result<File>,
) -> Result<(), LocalError> {
    let (tmp, f) = TempFile::create(dir, name, mode)?;
    let f = write(f).map_err(io_at("write file", &tmp.path))?;
    if sync {
        f.sync_all().map_err(sync_error("file", &tmp.path))?;
    }
    drop(f);
    tmp.persist(&dir.join(name))?;
    if sync {
        fsync_dir(dir)?;
    }
    Ok(())
}

/// Writes `data` to `path` atomically and durably, replacing any file there: temporary file in
/// the same directory, fsync, rename, fsync of the directory. The file gets mode 0600 (less the
/// umask), as PostgreSQL's own WAL files.
pub fn write_replace(path: &Path, data: &[u8]) -> Result<(), LocalError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| LocalError::Io {
            op: "write file",
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "destination has no file name"),
        })?;
    write_durably(dir, &name, super::file::FILE_MODE, true, |mut f| {
        f.write_all(data)?;
        Ok(f)
    })
}

/// What [`write_new`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteNew {
    /// The file was created (and is durable).
    Created,
    /// A file of that name already existed with the same content (after decompression); it
    /// was made durable again (file and directory), nothing was written.
    Identical,
    /// A file of that name already exists with different content; both are left as they are.
    Conflict {
        /// How they differ.
        reason: String,
    },
}

/// Writes `stored` as `dir/name`, durably and without ever replacing an existing file: the
/// data goes to a temporary file that is fsynced, then hard-linked to `name` (which fails if
/// `name` exists, even when another process races us), and the directory is fsynced. Where
/// `link()` fails (file systems without hard links, or any other error), the temporary file is
/// renamed with `renameat2(RENAME_NOREPLACE)`, which is as atomic; where neither works, this
/// fails rather than risk replacing a file.
///
/// When `name` exists, its content (decompressed) is compared with `content` (what `stored`
/// holds, uncompressed): the same is [`WriteNew::Identical`], different
/// [`WriteNew::Conflict`] (pgBackRest's rule: never overwrite, never lose either).
///
/// The file is created with mode 0640 (less the umask): archived WAL holds table data.
pub fn write_new(
    dir: &Path,
    name: &str,
    stored: &[u8],
    content: &[u8],
) -> Result<WriteNew, LocalError> {
    write_new_linking(dir, name, stored, content, |from, to| {
        fs::hard_link(from, to)
    })
}

/// [`write_new`] with the call that makes the hard link given (tests make it fail).
fn write_new_linking(
    dir: &Path,
    name: &str,
    stored: &[u8],
    content: &[u8],
    link: impl FnOnce(&Path, &Path) -> io::Result<()>,
) -> Result<WriteNew, LocalError> {
    let target = dir.join(name);
    let (mut tmp, mut f) = TempFile::create(dir, name, ARCHIVE_FILE_MODE)?;
    f.write_all(stored)
        .map_err(io_at("write file", &tmp.path))?;
    f.sync_all().map_err(sync_error("file", &tmp.path))?;
    drop(f);
    let link_err = match link(&tmp.path, &target) {
        Ok(()) => {
            drop(tmp); // removes the temporary name
            fsync_dir(dir)?;
            return Ok(WriteNew::Created);
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            drop(tmp);
            return keep_existing(dir, &target, content);
        }
        Err(e) => e,
    };
    match rename_noreplace(&tmp.path, &target) {
        Ok(()) => {
            tmp.armed = false;
            fsync_dir(dir)?;
            Ok(WriteNew::Created)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            drop(tmp);
            keep_existing(dir, &target, content)
        }
        Err(e) if is_unsupported(&e) => Err(LocalError::Io {
            op: "write file",
            path: target.clone(),
            source: io::Error::new(
                e.kind(),
                format!(
                    "could not link \"{}\" ({link_err}), and this file system cannot rename without \
                     replacing ({e}); refusing to risk overwriting an existing file",
                    target.display()
                ),
            ),
        }),
        Err(e) => Err(LocalError::Io {
            op: "write file",
            path: target.clone(),
            source: io::Error::new(
                e.kind(),
                format!(
                    "could not link \"{}\" ({link_err}) nor rename it into place without replacing ({e})",
                    target.display()
                ),
            ),
        }),
    }
}

/// `target` exists: identical content is kept (made durable again), different content is a
/// conflict.
fn keep_existing(dir: &Path, target: &Path, content: &[u8]) -> Result<WriteNew, LocalError> {
    match compare_existing(target, content) {
        Ok(Existing::Same) => {
            fsync_file(target)?;
            fsync_dir(dir)?;
            Ok(WriteNew::Identical)
        }
        Ok(Existing::Differs(reason)) => Ok(WriteNew::Conflict { reason }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(WriteNew::Conflict {
            reason: "it appeared while writing and then vanished".into(),
        }),
        Err(e) => Err(e),
    }
}

/// How an existing file compares with the content it should hold ([`compare_existing`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Existing {
    /// The same bytes (after decompression).
    Same,
    /// Different: how.
    Differs(String),
}

/// Compares the file at `path` (decompressed, whatever its compression: told by its content)
/// with `content`.
pub fn compare_existing(path: &Path, content: &[u8]) -> Result<Existing, LocalError> {
    let raw = fs::read(path).map_err(io_at("read file", path))?;
    let kind = sniff_compression(&raw);
    let decompressed;
    let existing: &[u8] = if kind == Compression::None {
        &raw
    } else {
        match decompress(kind, &raw) {
            Ok(c) => {
                decompressed = c;
                &decompressed
            }
            Err(e) => {
                return Ok(Existing::Differs(format!(
                    "the existing file cannot be decompressed: {e}"
                )))
            }
        }
    };
    Ok(describe_difference(existing, content))
}

/// [`Existing::Same`], or how `existing` differs from `wanted`.
pub fn describe_difference(existing: &[u8], wanted: &[u8]) -> Existing {
    if existing == wanted {
        return Existing::Same;
    }
    if existing.len() != wanted.len() {
        return Existing::Differs(format!(
            "{} bytes archived, {} bytes pushed",
            existing.len(),
            wanted.len()
        ));
    }
    let at = existing
        .iter()
        .zip(wanted)
        .position(|(a, b)| a != b)
        .unwrap_or(0);
    Existing::Differs(format!("first difference at byte offset {at}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            write_new(dir.path(), "a", b"one", b"one").unwrap(),
            WriteNew::Created
        );
        assert_eq!(
            write_new(dir.path(), "a", b"two", b"two").unwrap(),
            WriteNew::Conflict {
                reason: "first difference at byte offset 0".into()
            }
        );
        assert_eq!(
            write_new(dir.path(), "a", b"one", b"one").unwrap(),
            WriteNew::Identical
        );
        // Compared after decompression.
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(b"one").unwrap();
            e.finish().unwrap()
        };
        assert_eq!(
            write_new(dir.path(), "a", &gz, b"one").unwrap(),
            WriteNew::Identical
        );
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"one");
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a")]);
        write_replace(&dir.path().join("a"), b"three").unwrap();
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"three");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert!(super::super::temp::is_temp_name(
            &temp_path(dir.path(), "x")
                .file_name()
                .unwrap()
                .to_string_lossy()
        ));
        // Errors name the file.
        let e = write_replace(&dir.path().join("missing/a"), b"x").unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
    }

    #[test]
    fn without_hard_links_racing_writers_never_replace() {
        let no_link = |_: &Path, _: &Path| Err(io::Error::from_raw_os_error(libc::EPERM));
        for round in 0..50 {
            let dir = tempfile::tempdir().unwrap();
            let outcomes: Vec<(usize, WriteNew)> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..4)
                    .map(|i| {
                        let d = dir.path();
                        s.spawn(move || {
                            let data = vec![i as u8; 64 << 10];
                            (
                                i,
                                write_new_linking(d, "seg", &data, &data, no_link).unwrap(),
                            )
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let winners: Vec<usize> = outcomes
                .iter()
                .filter(|(_, o)| *o == WriteNew::Created)
                .map(|(i, _)| *i)
                .collect();
            assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
            assert!(
                outcomes
                    .iter()
                    .all(|(_, o)| matches!(o, WriteNew::Created | WriteNew::Conflict { .. })),
                "round {round}: {outcomes:?}"
            );
            let got = fs::read(dir.path().join("seg")).unwrap();
            assert!(got == vec![winners[0] as u8; 64 << 10], "round {round}");
            assert_eq!(
                fs::read_dir(dir.path()).unwrap().count(),
                1,
                "round {round}"
            );
        }
    }

    #[test]
    fn rename_noreplace_refuses_an_existing_target() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, b"a").unwrap();
        fs::write(&b, b"b").unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&b).unwrap(), b"b");
        fs::remove_file(&b).unwrap();
        rename_noreplace(&a, &b).unwrap();
        assert_eq!(fs::read(&b).unwrap(), b"a");
        assert!(!a.exists());
    }
}
