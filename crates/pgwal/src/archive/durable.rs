//! Durable file operations: write to a temporary name, fsync the file, move it into place,
//! fsync the directory.
//!
//! A file that appears under its final name is always complete: a crash leaves at most a
//! temporary file (named with [`TEMP_PREFIX`], which no WAL name parser accepts) behind.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Temporary files start with this prefix (a dot, so directory listings and WAL name parsers
/// skip them).
pub const TEMP_PREFIX: &str = ".pgwal-tmp.";

/// True for a name written by [`write_new`] or [`write_replace`] before it was moved into place.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// What [`write_new`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteNew {
    /// The file was created (and is durable).
    Created,
    /// A file of that name already existed; nothing was written.
    AlreadyExists,
}

/// Removes the temporary file unless it was moved into place.
struct TempGuard {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn temp_path(dir: &Path, name: &str) -> PathBuf {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    dir.join(format!(
        "{TEMP_PREFIX}{name}.{}.{:08x}{:x}",
        std::process::id(),
        nanos,
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Writes `data` to a new temporary file in `dir` (created with `mode`, less the umask) and
/// fsyncs it.
fn write_temp(dir: &Path, name: &str, data: &[u8], mode: u32) -> io::Result<TempGuard> {
    let path = temp_path(dir, name);
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&path)?;
    let guard = TempGuard { path, armed: true };
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
/// exists, even when another process races us), and the directory is fsynced. On file systems
/// without hard links, falls back to an existence check and `rename`.
///
/// The file is created with mode 0640 (less the umask): archived WAL holds table data.
pub fn write_new(dir: &Path, name: &str, data: &[u8]) -> io::Result<WriteNew> {
    let target = dir.join(name);
    let guard = write_temp(dir, name, data, 0o640)?;
    match fs::hard_link(&guard.path, &target) {
        Ok(()) => {
            drop(guard); // removes the temporary name
            fsync_dir(dir)?;
            Ok(WriteNew::Created)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(WriteNew::AlreadyExists),
        Err(_) => {
            // No hard links here (some network or FUSE file systems): check, then rename.
            if fs::symlink_metadata(&target).is_ok() {
                return Ok(WriteNew::AlreadyExists);
            }
            let mut guard = guard;
            fs::rename(&guard.path, &target)?;
            guard.armed = false;
            fsync_dir(dir)?;
            Ok(WriteNew::Created)
        }
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
}
