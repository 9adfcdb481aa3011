//! Locating PostgreSQL builds: servers per major, client tools, reference `pg_waldump`s.
//!
//! The layout under [`pg_dir()`] is the contract with `scripts/install-postgres`:
//!
//! ```text
//! server/13/bin/{postgres,initdb,pg_ctl}   npm builds (also 14, 16, 17), with SSL
//! server/15 -> /usr/lib/postgresql/15      Debian, full tool set
//! server/18/bin/...                        PyPI 18, full tool set, NO SSL
//! server/18-ssl/bin/...                    npm 18, SSL, only postgres/initdb/pg_ctl
//! server/19 -> deb/sid/.../postgresql/19   Debian experimental 19 run with sid's libc, full tool set
//! tools/bin/{pgbench,pg_basebackup,...}    18's client tools, work against 13-18
//! waldump/{13,15,16,17,18,19}/pg_waldump   reference pg_waldump per major
//! ```
//!
//! When the cache lacks a major, `/usr/lib/postgresql/<major>/bin` (Debian's layout) is used.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};

/// A PostgreSQL major version supported by pgwal (13 through 19).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Major {
    /// PostgreSQL 13.
    V13,
    /// PostgreSQL 14.
    V14,
    /// PostgreSQL 15.
    V15,
    /// PostgreSQL 16.
    V16,
    /// PostgreSQL 17.
    V17,
    /// PostgreSQL 18.
    V18,
    /// PostgreSQL 19.
    V19,
}

impl Major {
    /// Every supported major, oldest first.
    pub const ALL: [Major; 7] = [
        Major::V13,
        Major::V14,
        Major::V15,
        Major::V16,
        Major::V17,
        Major::V18,
        Major::V19,
    ];

    /// The major as a number, e.g. `15`.
    pub const fn number(self) -> u32 {
        match self {
            Major::V13 => 13,
            Major::V14 => 14,
            Major::V15 => 15,
            Major::V16 => 16,
            Major::V17 => 17,
            Major::V18 => 18,
            Major::V19 => 19,
        }
    }

    /// The major for a number such as `15`; `None` outside 13..=19.
    pub const fn from_number(n: u32) -> Option<Major> {
        match n {
            13 => Some(Major::V13),
            14 => Some(Major::V14),
            15 => Some(Major::V15),
            16 => Some(Major::V16),
            17 => Some(Major::V17),
            18 => Some(Major::V18),
            19 => Some(Major::V19),
            _ => None,
        }
    }

    /// Whether a `server_version_num` (e.g. `150018`) belongs to this major.
    pub const fn matches_server_version_num(self, num: u32) -> bool {
        num / 10000 == self.number()
    }
}

impl fmt::Display for Major {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.number())
    }
}

impl FromStr for Major {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        s.trim()
            .parse::<u32>()
            .ok()
            .and_then(Major::from_number)
            .ok_or_else(|| Error::Other(format!("not a supported PostgreSQL major: {s:?}")))
    }
}

/// Which server build to use. Only PostgreSQL 18 has two builds; for every other major both
/// choices select the same binaries (all of which support SSL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Build {
    /// The full build: for 18 the PyPI build in `server/18` (every tool, but **no SSL**).
    #[default]
    Full,
    /// The SSL-capable build: for 18 the npm build in `server/18-ssl` (postgres, initdb, pg_ctl).
    Ssl,
}

/// The root of the installed builds: `$PGWAL_PG_DIR`, else `/var/cache/pgwal/pg` when running
/// as root, else `$HOME/.cache/pgwal/pg`.
pub fn pg_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PGWAL_PG_DIR") {
        if !dir.is_empty() {
            return PathBuf::from(dir);
        }
    }
    if crate::os::is_root() {
        return PathBuf::from("/var/cache/pgwal/pg");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache/pgwal/pg")
}

/// The directory of the shared client tools (`<pg_dir>/tools/bin`, 18's tools; 19's come from
/// `server/19/bin`).
pub fn tools_dir() -> PathBuf {
    pg_dir().join("tools/bin")
}

fn debian_bin(major: u32) -> PathBuf {
    PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"))
}

fn server_dir_name(major: Major, build: Build) -> String {
    match (major, build) {
        (Major::V18, Build::Ssl) => "18-ssl".to_string(),
        _ => major.number().to_string(),
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The majors whose server binaries (postgres, initdb, pg_ctl) can be found, oldest first.
pub fn installed_majors() -> Vec<Major> {
    Major::ALL
        .into_iter()
        .filter(|m| Binaries::locate(*m).is_ok())
        .collect()
}

/// The reference `pg_waldump` for a major: `<pg_dir>/waldump/<major>/pg_waldump`, else the one
/// in the major's own full server build or Debian's directory. `None` when there is none (14).
pub fn reference_waldump(major: Major) -> Option<PathBuf> {
    let n = major.number();
    let mut candidates = vec![pg_dir().join(format!("waldump/{n}/pg_waldump"))];
    candidates.push(pg_dir().join(format!("server/{n}/bin/pg_waldump")));
    candidates.push(debian_bin(n).join("pg_waldump"));
    candidates.into_iter().find(|p| is_executable(p))
}

/// The binaries of one server build, plus access to matching client tools.
#[derive(Debug, Clone)]
pub struct Binaries {
    major: Major,
    build: Build,
    bin_dir: PathBuf,
}

impl Binaries {
    /// Locate the [`Build::Full`] server binaries of `major`.
    pub fn locate(major: Major) -> Result<Binaries> {
        Self::locate_build(major, Build::Full)
    }

    /// Locate the server binaries of `major` in the given build: `<pg_dir>/server/<major>` (or
    /// `server/18-ssl`), falling back to `/usr/lib/postgresql/<major>/bin`.
    pub fn locate_build(major: Major, build: Build) -> Result<Binaries> {
        let candidates = [
            pg_dir()
                .join("server")
                .join(server_dir_name(major, build))
                .join("bin"),
            debian_bin(major.number()),
        ];
        for dir in &candidates {
            if ["postgres", "initdb", "pg_ctl"]
                .iter()
                .all(|t| is_executable(&dir.join(t)))
            {
                return Ok(Binaries {
                    major,
                    build,
                    bin_dir: dir.clone(),
                });
            }
        }
        Err(Error::NotInstalled {
            what: format!("PostgreSQL {major} ({build:?} build)"),
            searched: candidates
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// The major of these binaries.
    pub fn major(&self) -> Major {
        self.major
    }

    /// The build these binaries were located for.
    pub fn build(&self) -> Build {
        self.build
    }

    /// The server's `bin` directory.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The `postgres` server binary.
    pub fn postgres(&self) -> PathBuf {
        self.bin_dir.join("postgres")
    }

    /// The `initdb` binary.
    pub fn initdb(&self) -> PathBuf {
        self.bin_dir.join("initdb")
    }

    /// The `pg_ctl` binary.
    pub fn pg_ctl(&self) -> PathBuf {
        self.bin_dir.join("pg_ctl")
    }

    /// A tool in the server's own `bin` directory, if present (npm builds only have
    /// postgres/initdb/pg_ctl).
    pub fn server_tool(&self, name: &str) -> Option<PathBuf> {
        let p = self.bin_dir.join(name);
        is_executable(&p).then_some(p)
    }

    /// `pgbench`: the shared one (18's) when it is not older than this server, else the newest.
    pub fn pgbench(&self) -> Result<PathBuf> {
        find_client_tool("pgbench", Some(self.major.number()), false)
    }

    /// `psql`: the shared one (18's) when it is not older than this server, else the newest.
    pub fn psql(&self) -> Result<PathBuf> {
        find_client_tool("psql", Some(self.major.number()), false)
    }

    /// The newest `pg_basebackup` that is not older than this server.
    pub fn pg_basebackup(&self) -> Result<PathBuf> {
        find_client_tool("pg_basebackup", Some(self.major.number()), false)
    }

    /// The newest `pg_receivewal` that is not older than this server.
    pub fn pg_receivewal(&self) -> Result<PathBuf> {
        find_client_tool("pg_receivewal", Some(self.major.number()), false)
    }

    /// A `pg_controldata` for this major: the same major's if available, else a newer one.
    pub fn pg_controldata(&self) -> Result<PathBuf> {
        find_client_tool("pg_controldata", Some(self.major.number()), true)
    }

    /// The reference `pg_waldump` of `major` (see the free function [`reference_waldump`]).
    pub fn reference_waldump(major: Major) -> Option<PathBuf> {
        reference_waldump(major)
    }

    /// Any client tool by name: the newest not older than this server (see [`Binaries::pgbench`]).
    pub fn tool(&self, name: &str) -> Result<PathBuf> {
        find_client_tool(name, Some(self.major.number()), false)
    }
}

/// All places a client tool may live, in no particular order.
fn client_tool_candidates(name: &str) -> Vec<PathBuf> {
    let mut out = vec![tools_dir().join(name)];
    let server = pg_dir().join("server");
    if let Ok(rd) = std::fs::read_dir(&server) {
        for e in rd.flatten() {
            out.push(e.path().join("bin").join(name));
        }
    }
    if let Ok(rd) = std::fs::read_dir("/usr/lib/postgresql") {
        for e in rd.flatten() {
            out.push(e.path().join("bin").join(name));
        }
    }
    out.retain(|p| is_executable(p));
    out
}

/// The major a client tool reports with `--version` (cached per path).
pub(crate) fn tool_major(path: &Path) -> Option<u32> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Option<u32>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(v) = cache.lock().ok().and_then(|c| c.get(path).copied()) {
        return v;
    }
    let v = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| parse_version_major(&String::from_utf8_lossy(&o.stdout)));
    if let Ok(mut c) = cache.lock() {
        c.insert(path.to_path_buf(), v);
    }
    v
}

/// Parse "pg_basebackup (PostgreSQL) 18.6" → 18.
fn parse_version_major(s: &str) -> Option<u32> {
    let rest = &s[s.find("PostgreSQL)")? + "PostgreSQL)".len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

/// Find a client tool: among candidates whose major is `>= min_major`, the exact major if
/// `prefer_exact`, else the shared one in [`tools_dir`] (so that adding a newer major does not
/// change the tools the older majors' tests run), else the newest.
fn find_client_tool(name: &str, min_major: Option<u32>, prefer_exact: bool) -> Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = client_tool_candidates(name)
        .into_iter()
        .filter_map(|p| tool_major(&p).map(|m| (m, p)))
        .filter(|(m, _)| min_major.is_none_or(|min| *m >= min))
        .collect();
    // Newest first; among equal majors keep the candidate order (tools/bin first).
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    if prefer_exact {
        if let Some(min) = min_major {
            if let Some((_, p)) = found.iter().find(|(m, _)| *m == min) {
                return Ok(p.clone());
            }
        }
    }
    let shared = tools_dir();
    if let Some(i) = found.iter().position(|(_, p)| p.starts_with(&shared)) {
        return Ok(found.swap_remove(i).1);
    }
    found
        .into_iter()
        .next()
        .map(|(_, p)| p)
        .ok_or_else(|| Error::NotInstalled {
            what: match min_major {
                Some(m) => format!("client tool `{name}` of PostgreSQL {m} or newer"),
                None => format!("client tool `{name}`"),
            },
            searched: format!(
                "{}, {}/server/*/bin, /usr/lib/postgresql/*/bin",
                tools_dir().display(),
                pg_dir().display()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn majors_roundtrip() {
        for m in Major::ALL {
            assert_eq!(Major::from_number(m.number()), Some(m));
            assert_eq!(m.to_string().parse::<Major>().unwrap(), m);
        }
        assert!(Major::from_number(12).is_none());
        assert!(Major::V15.matches_server_version_num(150018));
        assert!(!Major::V15.matches_server_version_num(160000));
    }

    #[test]
    fn version_parsing() {
        assert_eq!(
            parse_version_major("pg_basebackup (PostgreSQL) 18.6\n"),
            Some(18)
        );
        assert_eq!(
            parse_version_major("pgbench (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(15)
        );
        assert_eq!(parse_version_major("garbage"), None);
    }
}
