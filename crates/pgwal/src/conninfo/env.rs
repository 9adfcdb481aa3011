//! Where connection defaults come from: environment variables, the home directory, the OS
//! user name and the file system. Behind a trait so tests can supply their own.

use std::collections::{HashMap, HashSet};
use std::ffi::CStr;
use std::path::{Path, PathBuf};

use super::redact::{is_secret_keyword, REDACTED};

/// The outside world as libpq's option defaults see it.
///
/// [`SystemEnvironment`] reads the real process environment; [`MapEnvironment`] is a fixed
/// set of values for tests.
///
/// ```
/// use pgwal::conninfo::{Config, MapEnvironment};
/// let env = MapEnvironment::new()
///     .with_var("PGHOST", "db.example.com")
///     .with_var("PGPORT", "5433")
///     .with_user("alice");
/// let cfg = Config::parse_with_env("dbname=app", &env).unwrap();
/// assert_eq!(cfg.hosts[0].port, 5433);
/// assert_eq!(cfg.user, "alice");
/// ```
pub trait Environment {
    /// The value of the environment variable `name`, if set (and valid UTF-8).
    fn var(&self, name: &str) -> Option<String>;
    /// The user's home directory (`~`), used for `~/.pgpass` and `~/.postgresql/`.
    fn home_dir(&self) -> Option<PathBuf>;
    /// The operating-system user name, libpq's default for `user`.
    fn user_name(&self) -> Option<String>;
    /// True if `path` exists and is a directory (used to choose the default socket directory).
    fn is_dir(&self, path: &Path) -> bool;
}

/// The real environment: `std::env`, `getpwuid_r(geteuid())` and the file system.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemEnvironment;

impl Environment for SystemEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    /// `$HOME` if set and non-empty, else the passwd entry's home directory (as libpq's
    /// `pqGetHomeDirectory()`).
    fn home_dir(&self) -> Option<PathBuf> {
        match std::env::var_os("HOME") {
            Some(h) if !h.is_empty() => Some(PathBuf::from(h)),
            _ => passwd_entry().map(|(_, home)| home),
        }
    }

    /// The passwd entry's name for the effective user id (as libpq's `pg_fe_getusername()`).
    fn user_name(&self) -> Option<String> {
        passwd_entry().map(|(name, _)| name)
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
}

/// Looks up the passwd entry of the effective user: (name, home directory).
fn passwd_entry() -> Option<(String, PathBuf)> {
    let mut buf: Vec<u8> = vec![0; 1024];
    loop {
        // SAFETY: `passwd` is a plain C struct of integers and pointers, for which all-zero
        // bytes are a valid value; getpwuid_r overwrites it.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the duration of the call: `pwd` and `result`
        // are live locals, and `buf` is a live allocation of `buf.len()` bytes.
        let rc = unsafe {
            libc::getpwuid_r(
                libc::geteuid(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            let len = buf.len() * 2;
            buf.resize(len, 0);
            continue;
        }
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() || pwd.pw_dir.is_null() {
            return None;
        }
        // SAFETY: on success getpwuid_r stores NUL-terminated strings inside `buf`, which is
        // still alive and unmodified here.
        let name = unsafe { CStr::from_ptr(pwd.pw_name) };
        // SAFETY: as above.
        let dir = unsafe { CStr::from_ptr(pwd.pw_dir) };
        let name = name.to_str().ok()?.to_owned();
        let dir = PathBuf::from(dir.to_str().ok()?);
        return Some((name, dir));
    }
}

/// A fixed environment for tests: only what was set exists.
#[derive(Clone, Default)]
pub struct MapEnvironment {
    vars: HashMap<String, String>,
    home: Option<PathBuf>,
    user: Option<String>,
    dirs: HashSet<PathBuf>,
}

impl std::fmt::Debug for MapEnvironment {
    /// Like a derived `Debug`, with the values of secret variables (`PGPASSWORD`, ...) redacted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let vars: std::collections::BTreeMap<&str, &str> = self
            .vars
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_keyword(k) { REDACTED } else { v };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("MapEnvironment")
            .field("vars", &vars)
            .field("home", &self.home)
            .field("user", &self.user)
            .field("dirs", &self.dirs)
            .finish()
    }
}

impl MapEnvironment {
    /// An empty environment: no variables, no home directory, no user name, no directories.
    pub fn new() -> MapEnvironment {
        MapEnvironment::default()
    }

    /// Sets an environment variable.
    pub fn with_var(mut self, name: &str, value: &str) -> MapEnvironment {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    /// Sets the home directory.
    pub fn with_home(mut self, dir: impl Into<PathBuf>) -> MapEnvironment {
        self.home = Some(dir.into());
        self
    }

    /// Sets the operating-system user name.
    pub fn with_user(mut self, name: &str) -> MapEnvironment {
        self.user = Some(name.to_owned());
        self
    }

    /// Declares that a directory exists.
    pub fn with_dir(mut self, path: impl Into<PathBuf>) -> MapEnvironment {
        self.dirs.insert(path.into());
        self
    }
}

impl Environment for MapEnvironment {
    fn var(&self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }

    fn home_dir(&self) -> Option<PathBuf> {
        self.home.clone()
    }

    fn user_name(&self) -> Option<String> {
        self.user.clone()
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.dirs.contains(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_environment_has_a_user() {
        // Every account the tests run under has a passwd entry.
        let env = SystemEnvironment;
        let name = env.user_name().unwrap();
        assert!(!name.is_empty());
        assert!(env.home_dir().is_some());
        assert!(env.is_dir(Path::new("/")));
    }

    #[test]
    fn map_environment() {
        let env = MapEnvironment::new()
            .with_var("A", "1")
            .with_home("/h")
            .with_user("u")
            .with_dir("/d");
        assert_eq!(env.var("A").as_deref(), Some("1"));
        assert_eq!(env.var("B"), None);
        assert_eq!(env.home_dir(), Some(PathBuf::from("/h")));
        assert_eq!(env.user_name().as_deref(), Some("u"));
        assert!(env.is_dir(Path::new("/d")));
        assert!(!env.is_dir(Path::new("/e")));
        let shown = format!("{:?}", env.with_var("PGPASSWORD", "S3cret"));
        assert!(
            !shown.contains("S3cret") && shown.contains("PGPASSWORD"),
            "{shown}"
        );
    }
}
