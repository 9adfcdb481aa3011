//! Opening and writing one file safely: never through a symbolic link (`O_NOFOLLOW`), fresh
//! files created exclusively, pre-allocation, vectored positional writes.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Mode of the files we create (`pg_file_create_mode`).
pub const FILE_MODE: u32 = 0o600;

/// Opens `path` for reading and writing without following a symbolic link at `path` itself
/// (`O_NOFOLLOW`): a symbolic link is refused with an error that names it, so that nobody can
/// redirect our writes to another file by planting a link in the directory.
///
/// With `create` and `truncate` the file is made fresh: an existing file of that name is
/// removed and a new one created exclusively (`O_CREAT | O_EXCL`, mode 0600), so that neither
/// a symbolic nor a hard link to another file is ever truncated. With `create` alone an
/// existing file is opened as it is. An existing file opened for writing must not have other
/// hard links.
pub fn open_write(path: &Path, create: bool, truncate: bool) -> io::Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true)
        .read(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW);
    if create && truncate {
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => return Err(symlink_refused(path)),
            Ok(_) => fs::remove_file(path)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        opts.create_new(true);
    } else {
        opts.create(create).truncate(truncate);
    }
    let file = opts.open(path).map_err(|e| nofollow_error(e, path))?;
    if !(create && truncate) {
        let links = file.metadata()?.nlink();
        if links > 1 {
            return Err(io::Error::other(format!(
                "refusing to write to \"{}\": it has {links} hard links",
                path.display()
            )));
        }
    }
    Ok(file)
}

/// Creates a new file at `path` exclusively (`O_CREAT | O_EXCL`: never an existing file or a
/// link) without following a symbolic link, with `mode` (less the umask), for reading and
/// writing.
pub fn open_write_mode(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .read(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| nofollow_error(e, path))
}

/// Opens an existing file read-only without following a symbolic link at `path`.
pub fn open_read_nofollow(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| nofollow_error(e, path))
}

/// The error for a symbolic link where pgwal writes a file of its own.
pub fn symlink_refused(path: &Path) -> io::Error {
    io::Error::other(SymlinkRefused(path.to_path_buf()))
}

/// The cause inside the error of [`symlink_refused`]: retrying cannot help.
#[derive(Debug)]
pub struct SymlinkRefused(std::path::PathBuf);

impl std::fmt::Display for SymlinkRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "refusing to follow symbolic link \"{}\" (pgwal never writes through a symbolic link)",
            self.0.display()
        )
    }
}

impl std::error::Error for SymlinkRefused {}

/// True for an error of [`symlink_refused`].
pub fn is_symlink_refused(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<SymlinkRefused>())
}

/// Turns the `ELOOP` of an `O_NOFOLLOW` open on a symbolic link into [`symlink_refused`].
pub fn nofollow_error(e: io::Error, path: &Path) -> io::Error {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if e.raw_os_error() == Some(libc::ELOOP) && is_link {
        symlink_refused(path)
    } else {
        e
    }
}

/// Makes `file` `len` bytes long with real blocks behind every byte (so that a full disk is
/// found now, not in the middle of a segment): `fallocate`, or writing zeros where the file
/// system cannot allocate. Bytes already in the file are kept; new ones read as zeros.
pub fn preallocate(file: &File, len: u64) -> io::Result<()> {
    // SAFETY: fallocate on a valid, open descriptor with in-range arguments.
    let r = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len as libc::off_t) };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) | Some(libc::EINVAL) => {}
        _ => return Err(e),
    }
    let have = file.metadata()?.len();
    if have >= len {
        return Ok(());
    }
    write_zeros(file, have, len)
}

/// Writes zeros to `[from, to)` of `file`.
pub fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    const CHUNK: usize = 1 << 20;
    let zeros = vec![0u8; CHUNK.min(to.saturating_sub(from) as usize)];
    let mut off = from;
    while off < to {
        let n = ((to - off) as usize).min(zeros.len());
        file.write_all_at(&zeros[..n], off)?;
        off += n as u64;
    }
    Ok(())
}

/// Writes all of `bufs`, back to back, at offset `off` of `file`: `pwritev`, so a batch of
/// WAL messages costs one system call and no copy.
pub fn write_all_vectored_at(file: &File, mut off: u64, bufs: &[&[u8]]) -> io::Result<()> {
    /// `IOV_MAX` on Linux.
    const MAX_IOV: usize = 1024;
    let mut iov: Vec<libc::iovec> = bufs
        .iter()
        .filter(|b| !b.is_empty())
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    let mut first = 0;
    while first < iov.len() {
        let rest = &iov[first..];
        let count = rest.len().min(MAX_IOV);
        let Ok(at) = libc::off_t::try_from(off) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        // SAFETY: every iovec points into a live slice of `bufs` (advanced within its bounds
        // below), `count` iovecs are readable, and the descriptor is open.
        let n = unsafe { libc::pwritev(file.as_raw_fd(), rest.as_ptr(), count as libc::c_int, at) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::WriteZero));
        }
        let mut n = n as usize;
        off += n as u64;
        while n > 0 {
            let v = &mut iov[first];
            if n >= v.iov_len {
                n -= v.iov_len;
                first += 1;
            } else {
                // SAFETY: `n < iov_len`, so the new base stays inside the same slice.
                v.iov_base = unsafe { v.iov_base.cast::<u8>().add(n).cast() };
                v.iov_len -= n;
                n = 0;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_are_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let link = dir.path().join("000000010000000000000001.partial");
        symlink(&victim, &link).unwrap();
        for (create, truncate) in [(true, true), (true, false), (false, false)] {
            let e = open_write(&link, create, truncate).unwrap_err().to_string();
            assert!(e.contains("symbolic link") && e.contains(".partial"), "{e}");
        }
        let e = open_read_nofollow(&link).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        // A dangling link: O_CREAT does not create its target.
        let missing = dir.path().join("missing");
        let dangling = dir.path().join("000000010000000000000002.partial.tmp");
        symlink(&missing, &dangling).unwrap();
        assert!(open_write(&dangling, true, true).is_err());
        assert!(open_write(&dangling, true, false).is_err());
        assert!(!missing.exists());
        // A hard link to another file is replaced by a fresh file, or refused when reopened.
        let hard = dir.path().join("000000010000000000000003.partial");
        fs::hard_link(&victim, &hard).unwrap();
        let e = open_write(&hard, false, false).unwrap_err().to_string();
        assert!(e.contains("hard links"), "{e}");
        let f = open_write(&hard, true, true).unwrap();
        f.write_all_at(b"new", 0).unwrap();
        assert_eq!(fs::read(&hard).unwrap(), b"new");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        // rename_noreplace never replaces a link, dangling or not, nor writes through it.
        let src = dir.path().join("src");
        fs::write(&src, b"x").unwrap();
        let e = super::super::local::rename_noreplace_or_link(&src, &dangling).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert!(!missing.exists());
        assert_eq!(fs::read(&src).unwrap(), b"x");
        // An ordinary existing file is recreated empty, with mode 0600.
        let plain = dir.path().join("plain");
        fs::write(&plain, b"old").unwrap();
        let f = open_write(&plain, true, true).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 0);
        assert_eq!(f.metadata().unwrap().mode() & 0o077, 0);
    }
}
