//! Durable file operations: write to a temporary name, fsync the file, move it into place,
//! fsync the directory.
//!
//! A file that appears under its final name is always complete: a crash leaves at most a
//! temporary file (named with [`TEMP_PREFIX`], which no WAL name parser accepts) behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use crate::archive::tempfiles::{is_temp_name, TEMP_PREFIX};
use crate::archive::tempfiles::{temp_path, InFlight};

/// What [`write_new`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteNew {
    /// The file was created (and is durable).
    Created,
    /// A file of that name already existed; nothing was written.
    AlreadyExists,
}

/// Removes the temporary file unless it was moved into place; while it exists, a signal
/// handler installed by [`crate::archive::remove_temp_files_on_signals`] removes it too.
struct TempGuard {
    path: PathBuf,
    armed: bool,
    _in_flight: InFlight,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `data` to a new temporary file in `dir` (created with `mode`, less the umask) and
/// fsyncs it.
fn write_temp(dir: &Path, name: &str, data: &[u8], mode: u32) -> io::Result<TempGuard> {
    let path = temp_path(dir, name);
    // Registered before it exists, so that no moment remains where a signal leaves it behind.
    let in_flight = InFlight::register(&path);
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&path)?;
    let guard = TempGuard {
        path,
        armed: true,
        _in_flight: in_flight,
    };
    f.write_all(data)?;
    f.sync_all()?;
    Ok(guard)
}

/// fsyncs a directory, so that entries created, renamed or removed in it are durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    let d = File::open(dir)?;
    match d.sync_all() {
        // Some file systems cannot fsync a directory; there is nothing more we can do there.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EBADF)) => Ok(()),
        r => r,
    }
}

/// fsyncs an existing file (used when an identical file is already in place, in case the
/// process that wrote it crashed before making it durable).
pub fn fsync_file(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Writes `data` as `dir/name`, durably and without ever replacing an existing file: the data
/// goes to a temporary file that is fsynced, then hard-linked to `name` (which fails if `name`
/// exists, even when another process races us), and the directory is fsynced. Where `link()`
/// fails (file systems without hard links, or any other error), the temporary file is renamed
/// with `renameat2(RENAME_NOREPLACE)`, which is as atomic; where neither works, this fails
/// rather than risk replacing a file.
///
/// The file is created with mode 0640 (less the umask): archived WAL holds table data.
pub fn write_new(dir: &Path, name: &str, data: &[u8]) -> io::Result<WriteNew> {
    write_new_linking(dir, name, data, |from, to| fs::hard_link(from, to))
}

/// [`write_new`] with the call that makes the hard link given (tests make it fail).
fn write_new_linking(
    dir: &Path,
    name: &str,
    data: &[u8],
    link: impl FnOnce(&Path, &Path) -> io::Result<()>,
) -> io::Result<WriteNew> {
    let target = dir.join(name);
    let mut guard = write_temp(dir, name, data, 0o640)?;
    let link_err = match link(&guard.path, &target) {
        Ok(()) => {
            drop(guard); // removes the temporary name
            fsync_dir(dir)?;
            return Ok(WriteNew::Created);
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(WriteNew::AlreadyExists),
        Err(e) => e,
    };
    match rename_noreplace(&guard.path, &target) {
        Ok(()) => {
            guard.armed = false;
            fsync_dir(dir)?;
            Ok(WriteNew::Created)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(WriteNew::AlreadyExists),
        Err(e) if is_unsupported(&e) => Err(io::Error::new(
            e.kind(),
            format!(
                "could not link \"{}\" ({link_err}), and this file system cannot rename without \
                 replacing ({e}); refusing to risk overwriting an existing file",
                target.display()
            ),
        )),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!(
                "could not link \"{}\" ({link_err}) nor rename it into place without replacing ({e})",
                target.display()
            ),
        )),
    }
}

/// True for the errors `renameat2` gives where the file system or kernel lacks the flag.
fn is_unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP)
    )
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

/// Writes `data` to `path` atomically, replacing any file there: temporary file in the same
/// directory, fsync, rename, fsync of the directory. The file gets mode 0600 (less the umask),
/// as PostgreSQL's own WAL files.
pub fn write_replace(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "destination has no file name")
        })?;
    let mut guard = write_temp(dir, &name, data, 0o600)?;
    fs::rename(&guard.path, path)?;
    guard.armed = false;
    fsync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            write_new(dir.path(), "a", b"one").unwrap(),
            WriteNew::Created
        );
        assert_eq!(
            write_new(dir.path(), "a", b"two").unwrap(),
            WriteNew::AlreadyExists
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
        assert!(is_temp_name(
            &temp_path(dir.path(), "x")
                .file_name()
                .unwrap()
                .to_string_lossy()
        ));
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
                            (i, write_new_linking(d, "seg", &data, no_link).unwrap())
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
