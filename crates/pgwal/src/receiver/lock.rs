//! The directory lock: one receiver per archive directory.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

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
    pub fn acquire(dir: &Path) -> io::Result<DirectoryLock> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)?;
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
}
