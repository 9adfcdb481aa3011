//! Small durable file-system helpers: fsync of directories, durable renames, pre-allocation.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// Mode of the files we create (`pg_file_create_mode`).
pub(crate) const FILE_MODE: u32 = 0o600;

/// fsyncs a directory so that entries created or renamed in it are durable.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    let d = File::open(dir)?;
    match d.sync_all() {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EBADF)) => Ok(()),
        r => r,
    }
}

/// Opens `path` for writing, creating it (mode 0600) and optionally truncating it.
pub(crate) fn open_write(path: &Path, create: bool, truncate: bool) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .read(true)
        .create(create)
        .truncate(truncate)
        .mode(FILE_MODE)
        .open(path)
}

/// Makes `file` `len` bytes long with real blocks behind every byte (so that a full disk is
/// found now, not in the middle of a segment): `fallocate`, or writing zeros where the file
/// system cannot allocate. Bytes already in the file are kept; new ones read as zeros.
pub(crate) fn preallocate(file: &File, len: u64) -> io::Result<()> {
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
pub(crate) fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
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

/// Renames `from` to `to` unless `to` exists (`renameat2(RENAME_NOREPLACE)`): fails with
/// [`io::ErrorKind::AlreadyExists`] then, atomically, so that a file another process creates
/// meanwhile is never replaced. Where the file system cannot do that, a hard link to the new
/// name followed by removing the old one gives the same guarantee.
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cstr = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
    };
    let (f, t) = (cstr(from)?, cstr(to)?);
    // SAFETY: both paths are valid NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if !matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS)) {
        return Err(e);
    }
    fs::hard_link(from, to)?;
    fs::remove_file(from)
}

/// Writes all of `bufs`, back to back, at offset `off` of `file`: `pwritev`, so a batch of
/// WAL messages costs one system call and no copy.
pub(crate) fn write_all_vectored_at(file: &File, mut off: u64, bufs: &[&[u8]]) -> io::Result<()> {
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
