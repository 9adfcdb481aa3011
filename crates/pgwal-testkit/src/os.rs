//! OS plumbing: the `postgres` OS user, running commands, process trees, the leak registry.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};

/// Whether this process runs as root (then servers run as the `postgres` OS user).
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The OS user that servers run as when this process is root.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PgUser {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

fn lookup_passwd(name: &str) -> Option<PgUser> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| PgUser {
            uid: f[2].parse().unwrap_or(u32::MAX),
            gid: f[3].parse().unwrap_or(u32::MAX),
        })
    })
}

/// The `postgres` OS user when running as root (created with `useradd` if missing), or `None`
/// when not root (servers then run as the current user).
pub(crate) fn postgres_user() -> Result<Option<PgUser>> {
    if !is_root() {
        return Ok(None);
    }
    static USER: OnceLock<std::result::Result<PgUser, String>> = OnceLock::new();
    let r = USER.get_or_init(|| {
        if let Some(u) = lookup_passwd("postgres") {
            return Ok(u);
        }
        let out = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "postgres",
            ])
            .output();
        lookup_passwd("postgres").ok_or_else(|| {
            format!(
                "running as root but there is no `postgres` OS user, and `useradd postgres` \
                 failed: {out:?}"
            )
        })
    });
    match r {
        Ok(u) if u.uid == u32::MAX || u.gid == u32::MAX => Err(Error::Other(
            "could not parse the postgres user's uid/gid from /etc/passwd".into(),
        )),
        Ok(u) => Ok(Some(*u)),
        Err(e) => Err(Error::Other(e.clone())),
    }
}

/// Give `path` to the server's OS user (no-op when not root).
pub(crate) fn chown_to_postgres(path: &Path) -> Result<()> {
    if let Some(u) = postgres_user()? {
        std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid))
            .ctx(|| format!("chown postgres {}", path.display()))?;
    }
    Ok(())
}

/// Set a path's permission bits.
pub(crate) fn chmod(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .ctx(|| format!("chmod {mode:o} {}", path.display()))
}

/// A command with a clean environment (no `PG*` variables, C locale), stdin from /dev/null,
/// running in `cwd`; as the `postgres` OS user if `as_postgres` and this process is root.
pub(crate) fn command(program: &Path, cwd: &Path, as_postgres: bool) -> Result<Command> {
    let mut c = Command::new(program);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PG") {
            c.env_remove(k);
        }
    }
    c.env("LC_ALL", "C").env("LANG", "C");
    c.current_dir(cwd).stdin(Stdio::null());
    if as_postgres {
        if let Some(u) = postgres_user()? {
            // std drops supplementary groups (setgroups(0)) before setuid.
            c.uid(u.uid).gid(u.gid);
            c.env("USER", "postgres").env("LOGNAME", "postgres");
            c.env("HOME", cwd);
        }
    }
    Ok(c)
}

/// Render a command line for messages.
pub(crate) fn display_command(c: &Command) -> String {
    let mut s = c.get_program().to_string_lossy().into_owned();
    for a in c.get_args() {
        let a = a.to_string_lossy();
        if a.contains(' ') || a.is_empty() {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// Output of a finished command.
#[derive(Debug)]
pub(crate) struct Finished {
    pub(crate) status: ExitStatus,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Run a command to completion with a time limit, capturing stdout/stderr through files in
/// `scratch` (files, not pipes, so a daemon that inherits them cannot block us).
pub(crate) fn run_raw(mut c: Command, scratch: &Path, timeout: Duration) -> Result<Finished> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let out_path = scratch.join(format!(".cmd-{}-{n}.out", std::process::id()));
    let err_path = scratch.join(format!(".cmd-{}-{n}.err", std::process::id()));
    let out = fs::File::create(&out_path).ctx(|| format!("create {}", out_path.display()))?;
    let err = fs::File::create(&err_path).ctx(|| format!("create {}", err_path.display()))?;
    c.stdout(out).stderr(err);
    let shown = display_command(&c);
    let mut child = c.spawn().map_err(|e| Error::Command {
        command: shown.clone(),
        status: format!("could not start: {e}"),
        stdout: String::new(),
        stderr: String::new(),
        log_tail: String::new(),
    })?;
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Ok(st),
            Ok(None) if start.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                return Err(Error::Io {
                    context: format!("waiting for {shown}"),
                    source: e,
                })
            }
        }
    };
    let read = |p: &Path| {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(p) {
            let mut buf = Vec::new();
            let _ = f.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).trim_end().to_string();
        }
        let _ = fs::remove_file(p);
        s
    };
    let stdout = read(&out_path);
    let stderr = read(&err_path);
    match status {
        Ok(status) => Ok(Finished {
            status,
            stdout,
            stderr,
        }),
        Err(()) => Err(Error::Command {
            command: shown,
            status: format!("killed after the {}s time limit", timeout.as_secs()),
            stdout,
            stderr,
            log_tail: String::new(),
        }),
    }
}

/// Like [`run_raw`] but an unsuccessful exit is an error carrying `log_tail()`.
pub(crate) fn run(
    c: Command,
    scratch: &Path,
    timeout: Duration,
    log_tail: impl FnOnce() -> String,
) -> Result<Finished> {
    let shown = display_command(&c);
    let f = run_raw(c, scratch, timeout)?;
    if f.status.success() {
        Ok(f)
    } else {
        Err(Error::Command {
            command: shown,
            status: f.status.to_string(),
            stdout: f.stdout,
            stderr: f.stderr,
            log_tail: log_tail(),
        })
    }
}

/// Fields of `/proc/<pid>/stat` after the command name: index 0 is the state.
fn proc_stat(pid: i32) -> Option<Vec<String>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Whether a process exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    match proc_stat(pid) {
        Some(f) => f.first().is_some_and(|s| s != "Z" && s != "X"),
        None => false,
    }
}

/// Whether a pid exists at all, zombies included.
pub(crate) fn pid_exists(pid: i32) -> bool {
    pid > 0 && Path::new(&format!("/proc/{pid}")).exists()
}

/// A process's start time in clock ticks since boot (to detect pid reuse).
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    proc_stat(pid)?.get(19)?.parse().ok()
}

fn all_pids() -> Vec<i32> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                v.push(pid);
            }
        }
    }
    v
}

/// All live descendants of `pid` (children, grandchildren, ...).
pub(crate) fn descendants(pid: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for p in all_pids() {
        if let Some(f) = proc_stat(p) {
            if let Some(ppid) = f.get(1).and_then(|s| s.parse::<i32>().ok()) {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![pid];
    let mut seen = HashSet::new();
    while let Some(p) = stack.pop() {
        for &c in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
            if seen.insert(c) {
                out.push(c);
                stack.push(c);
            }
        }
    }
    out
}

fn cmdline(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn is_postgres_process(pid: i32) -> bool {
    if let Ok(exe) = fs::read_link(format!("/proc/{pid}/exe")) {
        let name = exe
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = name.trim_end_matches(" (deleted)");
        if name == "postgres" || name == "postmaster" {
            return true;
        }
    }
    cmdline(pid).first().is_some_and(|a| {
        let base = a.rsplit('/').next().unwrap_or(a);
        base.starts_with("postgres") || base.starts_with("postmaster")
    })
}

/// PIDs of live PostgreSQL processes (postmasters and their children) whose working directory
/// or command line refers to a path under `dir`. Use it to assert that nothing was leaked.
pub fn postgres_processes_under(dir: impl AsRef<Path>) -> Vec<i32> {
    let dir = dir.as_ref();
    let canon = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let needles: Vec<String> = {
        let mut v = vec![dir.to_string_lossy().into_owned()];
        let c = canon.to_string_lossy().into_owned();
        if !v.contains(&c) {
            v.push(c);
        }
        v
    };
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for pid in all_pids() {
        if pid == me || !pid_alive(pid) || !is_postgres_process(pid) {
            continue;
        }
        let cwd_hit = fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| {
            let cwd = PathBuf::from(cwd.to_string_lossy().trim_end_matches(" (deleted)"));
            cwd.starts_with(dir) || cwd.starts_with(&canon)
        });
        let cmd_hit = cmdline(pid)
            .iter()
            .any(|a| needles.iter().any(|n| a.contains(n.as_str())));
        if cwd_hit || cmd_hit {
            out.push(pid);
        }
    }
    out.sort_unstable();
    out
}

fn send_signal(pid: i32, sig: libc::c_int) {
    if pid > 0 {
        // SAFETY: kill has no memory-safety preconditions; errors (ESRCH) are ignored.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

fn process_group(pid: i32) -> Option<i32> {
    proc_stat(pid)?.get(2)?.parse().ok()
}

/// SIGKILL a postmaster, its process group and every descendant, then wait (up to 10 s) until
/// none is alive. Returns the pids that were signalled.
pub(crate) fn kill_tree(pid: i32) -> Vec<i32> {
    if pid <= 0 {
        return Vec::new();
    }
    let mut victims = descendants(pid);
    // Kill the postmaster first so it cannot fork replacements, then its group and children.
    send_signal(pid, libc::SIGKILL);
    if process_group(pid) == Some(pid) {
        send_signal(-pid, libc::SIGKILL);
    }
    for &v in &victims {
        send_signal(v, libc::SIGKILL);
    }
    victims.push(pid);
    let deadline = Instant::now() + Duration::from_secs(10);
    while victims.iter().any(|&v| pid_alive(v)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Give init a moment to reap the zombies too: PostgreSQL's lock-file check treats a
    // zombie postmaster (kill(pid, 0) succeeds) as "another postmaster running".
    let deadline = Instant::now() + Duration::from_secs(3);
    while victims.iter().any(|&v| pid_exists(v)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    victims
}

/// The kit's scratch root: `$PGWAL_TESTKIT_TMP`, else `/tmp/pgwal-testkit` (mode 1777, so the
/// `postgres` OS user can traverse it and other users can share it).
pub fn testkit_root() -> PathBuf {
    std::env::var_os("PGWAL_TESTKIT_TMP")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/tmp/pgwal-testkit"), PathBuf::from)
}

/// Create a world-traversable shared directory (mode 1777, like /tmp) if missing.
pub(crate) fn ensure_shared_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        match fs::create_dir_all(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(Error::Io {
                    context: format!("create {}", dir.display()),
                    source: e,
                })
            }
        }
    }
    // Only the owner may chmod; someone else's 1777 directory is fine as it is.
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o1777));
    Ok(())
}

fn registry_dir() -> PathBuf {
    testkit_root().join("registry")
}

/// One cluster in the leak registry.
#[derive(Debug, Clone, Default)]
pub(crate) struct RegistryEntry {
    pub(crate) owner_pid: i32,
    pub(crate) owner_start: u64,
    pub(crate) temp_dir: PathBuf,
    pub(crate) postmaster_pid: i32,
}

impl RegistryEntry {
    pub(crate) fn for_this_process(temp_dir: &Path) -> RegistryEntry {
        let me = std::process::id() as i32;
        RegistryEntry {
            owner_pid: me,
            owner_start: start_time(me).unwrap_or(0),
            temp_dir: temp_dir.to_path_buf(),
            postmaster_pid: 0,
        }
    }

    fn render(&self) -> String {
        format!(
            "owner_pid={}\nowner_start={}\ntemp_dir={}\npostmaster_pid={}\n",
            self.owner_pid,
            self.owner_start,
            self.temp_dir.display(),
            self.postmaster_pid
        )
    }

    fn parse(s: &str) -> Option<RegistryEntry> {
        let mut e = RegistryEntry::default();
        for line in s.lines() {
            let (k, v) = line.split_once('=')?;
            match k {
                "owner_pid" => e.owner_pid = v.parse().ok()?,
                "owner_start" => e.owner_start = v.parse().ok()?,
                "temp_dir" => e.temp_dir = PathBuf::from(v),
                "postmaster_pid" => e.postmaster_pid = v.parse().ok()?,
                _ => {}
            }
        }
        (e.owner_pid > 0 && !e.temp_dir.as_os_str().is_empty()).then_some(e)
    }

    /// The registry file for this entry (named after the temp dir).
    pub(crate) fn path(&self) -> PathBuf {
        let name: OsString = self
            .temp_dir
            .file_name()
            .map_or_else(|| OsString::from("unnamed"), |n| n.to_os_string());
        registry_dir().join(name)
    }

    /// Write (or rewrite) the registry file atomically.
    pub(crate) fn write(&self) -> Result<()> {
        ensure_shared_dir(&registry_dir())?;
        let path = self.path();
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        fs::write(&tmp, self.render()).ctx(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, &path).ctx(|| format!("rename to {}", path.display()))
    }

    /// Remove the registry file.
    pub(crate) fn remove(&self) {
        let _ = fs::remove_file(self.path());
    }

    fn owner_alive(&self) -> bool {
        pid_alive(self.owner_pid)
            && (self.owner_start == 0 || start_time(self.owner_pid) == Some(self.owner_start))
    }
}

/// Kill every postgres process belonging to `temp_dir` (the recorded postmaster only if it
/// still is a postgres process there) and remove the directory.
pub(crate) fn destroy_cluster_dir(temp_dir: &Path, postmaster_pid: i32, keep_dir: bool) {
    if postmaster_pid > 0
        && pid_alive(postmaster_pid)
        && postgres_processes_under(temp_dir).contains(&postmaster_pid)
    {
        kill_tree(postmaster_pid);
    }
    // Anything else still running from there (e.g. a restarted postmaster with a new pid).
    for _ in 0..3 {
        let left = postgres_processes_under(temp_dir);
        if left.is_empty() {
            break;
        }
        for p in left {
            kill_tree(p);
        }
    }
    if !keep_dir {
        let _ = fs::remove_dir_all(temp_dir);
    }
}

/// Kill the servers and delete the directories of test clusters whose owning test process no
/// longer exists (e.g. it was killed with SIGKILL, so no `Drop` ran). Returns how many
/// clusters were reaped. Called automatically when a cluster is created; safe to call
/// concurrently from several test processes.
pub fn reap_orphans() -> usize {
    let dir = registry_dir();
    let Ok(rd) = fs::read_dir(&dir) else {
        return 0;
    };
    let mut reaped = 0;
    for e in rd.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains(".tmp") || name.contains(".reaping") {
            // A half-written entry or one being reaped: leave it unless it is stale.
            let stale = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(600));
            if stale {
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        let Some(entry) = fs::read_to_string(&path)
            .ok()
            .and_then(|s| RegistryEntry::parse(&s))
        else {
            continue;
        };
        if entry.owner_alive() {
            continue;
        }
        // Claim it: only the process whose rename succeeds reaps.
        let claimed = dir.join(format!("{name}.reaping{}", std::process::id()));
        if fs::rename(&path, &claimed).is_err() {
            continue;
        }
        destroy_cluster_dir(&entry.temp_dir, entry.postmaster_pid, false);
        let _ = fs::remove_file(&claimed);
        reaped += 1;
    }
    reaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_roundtrip() {
        let e = RegistryEntry {
            owner_pid: 42,
            owner_start: 7,
            temp_dir: PathBuf::from("/tmp/pgwal-testkit/x"),
            postmaster_pid: 99,
        };
        let p = RegistryEntry::parse(&e.render()).unwrap();
        assert_eq!(p.owner_pid, 42);
        assert_eq!(p.owner_start, 7);
        assert_eq!(p.postmaster_pid, 99);
        assert_eq!(p.temp_dir, e.temp_dir);
    }

    #[test]
    fn self_is_alive() {
        let me = std::process::id() as i32;
        assert!(pid_alive(me));
        assert!(start_time(me).is_some());
        assert!(!pid_alive(0));
    }
}
