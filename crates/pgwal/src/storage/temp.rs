//! pgwal's temporary files: their names, their removal when a signal ends the process, and
//! the removal of those a killed process left behind.
//!
//! A temporary file is named `.pgwal-tmp.<final name>.<pid>.<hex stamp>`: the pid of the
//! process writing it, so that a later run can tell a leftover from a file still being written.
//! This is the one naming of every file pgwal writes before moving it into place (`archive
//! push` and `fetch`, the receiver's fresh copies of a resumed `.partial` and its history
//! files: [`TempFile`](super::local::TempFile)), and [`remove_stale_temp_files`] the one sweep
//! (before every `push`/`fetch`, and at each start of the receiver).
//!
//! PostgreSQL signals the whole process group of a `restore_command` or `archive_command` at
//! shutdown. A process that called [`remove_temp_files_on_signals`] removes the temporary file
//! it is writing on SIGTERM, SIGINT, SIGHUP and SIGQUIT and then dies of that same signal, which
//! is how PostgreSQL tells a command interrupted by its shutdown from one that failed. A
//! process killed by SIGKILL (or a crash) cannot clean up: [`remove_stale_temp_files`], run
//! before every write, removes such leftovers of pgwal's own naming.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Temporary files start with this prefix (a dot, so directory listings and WAL name parsers
/// skip them).
pub const TEMP_PREFIX: &str = ".pgwal-tmp.";

/// A leftover whose writing process is gone is removed once unmodified this long (a writer in
/// another pid namespace, whose pid we cannot see, keeps its file fresh while writing).
pub const STALE_DEAD_WRITER: Duration = Duration::from_secs(60);

/// A leftover is removed once unmodified this long, even if a process with its pid exists (the
/// pid was reused after the writer was killed).
pub const STALE_ANY: Duration = Duration::from_secs(3600);

/// The signals after which the temporary file being written is removed.
const SIGNALS: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

/// True for a name written by pgwal before it was moved into place.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

/// The pid in a temporary file name of pgwal's own making, or `None` for any other name.
pub fn temp_name_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(TEMP_PREFIX)?;
    let mut parts = rest.rsplitn(3, '.');
    let stamp = parts.next()?;
    let pid = parts.next()?;
    let target = parts.next()?;
    if target.is_empty()
        || stamp.is_empty()
        || !stamp.bytes().all(|b| b.is_ascii_hexdigit())
        || pid.is_empty()
        || !pid.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    pid.parse().ok().filter(|&p: &i32| p > 0)
}

/// A new temporary path in `dir` for a file to be named `name`.
pub(crate) fn temp_path(dir: &Path, name: &str) -> PathBuf {
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

/// Whether the handlers are installed (only then are paths registered).
static INSTALLED: AtomicBool = AtomicBool::new(false);

/// Paths being written, as C strings the signal handler can pass to `unlink`. A process
/// writes one file at a time per thread; eight slots leave room for threads.
static IN_FLIGHT: [AtomicPtr<libc::c_char>; 8] = [const { AtomicPtr::new(ptr::null_mut()) }; 8];

extern "C" fn on_signal(sig: libc::c_int) {
    for slot in &IN_FLIGHT {
        let p = slot.load(Ordering::SeqCst);
        if !p.is_null() {
            // SAFETY: registered pointers come from leaked `CString`s and are never freed;
            // unlink is async-signal-safe.
            unsafe { libc::unlink(p) };
        }
    }
    // The handler was reset to the default on entry (SA_RESETHAND): the signal, delivered
    // again when this returns, ends the process as it would have without us.
    // SAFETY: raise is async-signal-safe.
    unsafe { libc::raise(sig) };
}

/// Installs handlers that remove the temporary file being written on SIGTERM, SIGINT, SIGHUP
/// and SIGQUIT, then end the process by the same signal (so its exit status is that of a
/// process killed by it). Signals ignored when the process started stay ignored.
///
/// For short-lived commands (`archive push`, `archive fetch`): each file written afterwards
/// keeps a small record of its temporary name for the life of the process.
pub fn remove_temp_files_on_signals() -> io::Result<()> {
    for sig in SIGNALS {
        // SAFETY: plain sigaction calls with zero-initialised, then filled, structures; the
        // handler only calls async-signal-safe functions.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, ptr::null(), &mut old) != 0 {
                return Err(io::Error::last_os_error());
            }
            if old.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            act.sa_flags = libc::SA_RESETHAND;
            libc::sigemptyset(&mut act.sa_mask);
            for other in SIGNALS {
                libc::sigaddset(&mut act.sa_mask, other);
            }
            if libc::sigaction(sig, &act, ptr::null_mut()) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    INSTALLED.store(true, Ordering::SeqCst);
    Ok(())
}

/// Registration of a temporary path with the signal handler, undone on drop.
#[derive(Debug)]
pub(crate) struct InFlight(Option<usize>);

impl InFlight {
    /// Registers `path` (before the file is created) if the handlers are installed.
    pub(crate) fn register(path: &Path) -> InFlight {
        if !INSTALLED.load(Ordering::SeqCst) {
            return InFlight(None);
        }
        let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
            return InFlight(None);
        };
        // Leaked: the handler may read it at any moment, even while this slot is cleared.
        let p = c.into_raw();
        for (i, slot) in IN_FLIGHT.iter().enumerate() {
            if slot
                .compare_exchange(ptr::null_mut(), p, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                return InFlight(Some(i));
            }
        }
        // Every slot taken: left to the next run's sweep. Reclaim the string.
        // SAFETY: `p` came from `into_raw` above and was published nowhere.
        drop(unsafe { CString::from_raw(p) });
        InFlight(None)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            IN_FLIGHT[i].store(ptr::null_mut(), Ordering::SeqCst);
        }
    }
}

/// Whether process `pid` exists (in our pid namespace).
fn pid_exists(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Removes from `dir` the temporary files of pgwal's own naming that no process is writing:
/// those whose writer (the pid in the name) is gone and that were not modified for
/// [`STALE_DEAD_WRITER`], and any not modified for [`STALE_ANY`]. Files of other names, and
/// this process's own, are never touched. Returns the names removed.
pub fn remove_stale_temp_files(dir: &Path) -> io::Result<Vec<String>> {
    let me = std::process::id() as i32;
    let now = SystemTime::now();
    let mut removed = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        let Some(pid) = temp_name_pid(&name).filter(|&p| p != me) else {
            continue;
        };
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let idle = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        let stale = idle >= STALE_ANY || (idle >= STALE_DEAD_WRITER && !pid_exists(pid));
        if !stale {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed.push(name),
            // Removed meanwhile by another run's sweep.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_and_pids() {
        let p = temp_path(Path::new("/x"), "000000010000000000000001.partial");
        let n = p.file_name().unwrap().to_str().unwrap();
        assert!(is_temp_name(n));
        assert_eq!(temp_name_pid(n), Some(std::process::id() as i32));
        assert_eq!(temp_name_pid(".pgwal-tmp.00000002.history.12.ab"), Some(12));
        for other in [
            ".pgwal-tmp.",
            ".pgwal-tmp.x.12",
            ".pgwal-tmp.x.12.",
            ".pgwal-tmp.x.1a.ff",
            ".pgwal-tmp.x.12.zz",
            ".pgwal-tmp..12.ff",
            "xlogtemp.123",
            "000000010000000000000001.tmp",
        ] {
            assert_eq!(temp_name_pid(other), None, "{other}");
        }
    }
}
