//! The directory lock: one receiver per archive directory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::storage::file::nofollow_error;

/// The lock file's name in the archive directory.
pub const LOCK_FILE: &str = ".pgwal-receive.lock";

/// An exclusive `flock` on `DIR/.pgwal-receive.lock`, held until dropped (or until the
/// process ends, however it ends). The file holds the owner's process id.
#[derive(Debug)]
pub struct DirectoryLock {
    _file: File,
    path: PathBuf,
}

impl DirectoryLock {
    /// Takes the lock, or fails at once if another process holds it.
    ///
    /// The lock file is never opened through a symbolic link (`O_NOFOLLOW`), and a lock file
    /// with other hard links is refused, so that writing the process id can never truncate
    /// or overwrite another file.
    pub fn acquire(dir: &Path) -> io::Result<DirectoryLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(|e| {
                let e = nofollow_error(e, &path);
                io::Error::new(
                    e.kind(),
                    format!("could not open lock file \"{}\": {e}", path.display()),
                )
            })?;
        let meta = file.metadata()?;
        if !meta.is_file() || meta.nlink() != 1 {
            return Err(io::Error::other(format!(
                "lock file \"{}\" is not a plain file with a single link; remove it",
                path.display()
            )));
        }
        // SAFETY: flock on a valid descriptor owned by `file`.
        let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                let owner = owner.trim();
                let who = if owner.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {owner})")
                };
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                        "directory \"{}\" is in use by another pgwal receive{who}: lock file \"{}\" is locked",
                        dir.display(),
                        path.display()
                    ),
                ));
            }
            return Err(e);
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(file, "{}", std::process::id())?;
        Ok(DirectoryLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails() {
        let dir = tempfile::tempdir().unwrap();
        let a = DirectoryLock::acquire(dir.path()).unwrap();
        let e = DirectoryLock::acquire(dir.path()).unwrap_err();
        assert!(
            e.to_string().contains("in use by another pgwal receive"),
            "{e}"
        );
        assert!(
            e.to_string().contains(&std::process::id().to_string()),
            "{e}"
        );
        drop(a);
        DirectoryLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious\n").unwrap();
        let sub = dir.path().join("archive");
        std::fs::create_dir(&sub).unwrap();
        let lock = sub.join(LOCK_FILE);
        std::os::unix::fs::symlink(&victim, &lock).unwrap();
        let e = DirectoryLock::acquire(&sub).unwrap_err().to_string();
        assert!(e.contains("symbolic link") && e.contains(LOCK_FILE), "{e}");
        // A dangling link is not followed either (O_CREAT would create its target).
        std::fs::remove_file(&lock).unwrap();
        let target = dir.path().join("created");
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        assert!(DirectoryLock::acquire(&sub).is_err());
        assert!(!target.exists());
        std::fs::remove_file(&lock).unwrap();
        // A hard link to another file is refused too.
        std::fs::hard_link(&victim, &lock).unwrap();
        let e = DirectoryLock::acquire(&sub).unwrap_err().to_string();
        assert!(e.contains("single link") && e.contains(LOCK_FILE), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    }
}
