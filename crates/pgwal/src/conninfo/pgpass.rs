//! The password file (`~/.pgpass` or `PGPASSFILE`), with libpq's matching rules.
//!
//! Each line is `hostname:port:database:username:password`. A field that is exactly `*`
//! matches anything; `\:` and `\\` escape a colon and a backslash; lines starting with `#`
//! are comments; the first matching line wins. A file that is group- or world-accessible is
//! ignored with a warning, as libpq's `passwordFromFile()` does.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A password file's lines, ready for lookups.
///
/// ```
/// use pgwal::conninfo::PassFile;
/// let file = PassFile::parse("# comment\n*:5432:replication:rep:s\\:cret\nlocalhost:*:*:*:other\n");
/// assert_eq!(file.find("db1", "5432", "replication", "rep"), Some("s:cret".to_owned()));
/// assert_eq!(file.find("localhost", "5433", "x", "y"), Some("other".to_owned()));
/// assert_eq!(file.find("db1", "5433", "x", "y"), None);
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PassFile {
    lines: Vec<String>,
}

impl std::fmt::Debug for PassFile {
    /// Only the number of lines: they hold passwords.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassFile")
            .field("lines", &self.lines.len())
            .finish_non_exhaustive()
    }
}

/// Why a password file was not used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PassFileError {
    /// The file does not exist (not worth a warning: libpq silently ignores it).
    #[error("password file \"{}\" does not exist", .0.display())]
    Missing(PathBuf),
    /// The path is not a regular file.
    #[error("password file \"{}\" is not a plain file", .0.display())]
    NotPlainFile(PathBuf),
    /// The file is readable or writable by group or others.
    #[error(
        "password file \"{}\" has group or world access; permissions should be u=rw (0600) or less",
        .0.display()
    )]
    InsecurePermissions(PathBuf),
    /// The file could not be read.
    #[error("could not read password file \"{}\": {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl PassFile {
    /// Reads `path`, applying libpq's checks: it must be a regular file without group or
    /// world permission bits.
    pub fn read(path: &Path) -> Result<PassFile, PassFileError> {
        let meta = match fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(PassFileError::Missing(path.to_owned()))
            }
            Err(e) => {
                return Err(PassFileError::Io {
                    path: path.to_owned(),
                    source: e,
                })
            }
        };
        if !meta.is_file() {
            return Err(PassFileError::NotPlainFile(path.to_owned()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(PassFileError::InsecurePermissions(path.to_owned()));
            }
        }
        let bytes = fs::read(path).map_err(|e| PassFileError::Io {
            path: path.to_owned(),
            source: e,
        })?;
        Ok(PassFile::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// Parses the text of a password file.
    pub fn parse(text: &str) -> PassFile {
        let lines = text
            .split('\n')
            .map(|l| l.trim_end_matches(['\r', '\n']))
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect();
        PassFile { lines }
    }

    /// The password of the first line matching all four fields, de-escaped.
    ///
    /// `host` should already be mapped as libpq does: `localhost` for a connection through
    /// the default Unix socket directory (see [`Config::pgpass_host`](super::Config::pgpass_host)).
    pub fn find(&self, host: &str, port: &str, dbname: &str, user: &str) -> Option<String> {
        if dbname.is_empty() || user.is_empty() {
            return None;
        }
        self.lines.iter().find_map(|line| {
            let rest = match_field(line, host)?;
            let rest = match_field(rest, port)?;
            let rest = match_field(rest, dbname)?;
            let rest = match_field(rest, user)?;
            Some(unescape_password(rest))
        })
    }
}

/// Matches one field at the start of `line` against `token` (`pwdfMatchesString()`), returning
/// the rest of the line after the field's colon.
fn match_field<'a>(line: &'a str, token: &str) -> Option<&'a str> {
    if let Some(rest) = line.strip_prefix("*:") {
        return Some(rest);
    }
    let b = line.as_bytes();
    let t = token.as_bytes();
    let (mut i, mut j) = (0, 0);
    while i < b.len() {
        let mut escaped = false;
        if b[i] == b'\\' {
            i += 1;
            escaped = true;
            if i >= b.len() {
                return None;
            }
        }
        if b[i] == b':' && !escaped && j == t.len() {
            // The colon is ASCII, so i + 1 is a char boundary.
            return Some(&line[i + 1..]);
        }
        if j == t.len() || b[i] != t[j] {
            return None;
        }
        i += 1;
        j += 1;
    }
    None
}

/// The password field runs to the first unescaped colon; backslashes escape the next character.
fn unescape_password(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_rules() {
        let f = PassFile::parse(concat!(
            "# comment line\n",
            "\n",
            "host1:5432:db:user:pw1\n",
            "host\\:2:5432:*:user:pw2\n",
            "*:*:*:us\\\\er:pw3\r\n",
            "*:*:*:*:pw\\:4\\\\x:ignored\n",
        ));
        assert_eq!(
            f.find("host1", "5432", "db", "user").as_deref(),
            Some("pw1")
        );
        assert_eq!(
            f.find("host:2", "5432", "any", "user").as_deref(),
            Some("pw2")
        );
        assert_eq!(f.find("h", "1", "d", "us\\er").as_deref(), Some("pw3"));
        assert_eq!(f.find("h", "1", "d", "u").as_deref(), Some("pw:4\\x"));
        // First match wins.
        assert_eq!(
            f.find("host1", "5432", "db", "other").as_deref(),
            Some("pw:4\\x")
        );
        // Prefixes and longer tokens do not match.
        let g = PassFile::parse("host:5432:db:user:pw\n");
        assert_eq!(g.find("hos", "5432", "db", "user"), None);
        assert_eq!(g.find("hostx", "5432", "db", "user"), None);
        assert_eq!(g.find("host", "5432", "db", "use"), None);
        // A '*' only matches as the whole field.
        let h = PassFile::parse("a*:5432:db:user:pw\n");
        assert_eq!(h.find("abc", "5432", "db", "user"), None);
        assert_eq!(h.find("a*", "5432", "db", "user").as_deref(), Some("pw"));
        // Lines with too few fields never match.
        let i = PassFile::parse("host:5432:db\n");
        assert_eq!(i.find("host", "5432", "db", "user"), None);
        // Empty password field.
        let j = PassFile::parse("*:*:*:*:\n");
        assert_eq!(j.find("h", "1", "d", "u").as_deref(), Some(""));
        // Empty dbname or user never match (libpq returns no password).
        assert_eq!(j.find("h", "1", "", "u"), None);
    }

    #[cfg(unix)]
    #[test]
    fn permission_check() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let f = PassFile::read(&path).unwrap();
        assert_eq!(f.find("h", "5432", "d", "u").as_deref(), Some("secret"));
        let shown = format!("{f:?}");
        assert!(!shown.contains("secret"), "{shown}");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = PassFile::read(&path).unwrap_err();
        assert!(matches!(e, PassFileError::InsecurePermissions(_)));
        assert!(e.to_string().contains("has group or world access"));

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
        assert!(matches!(
            PassFile::read(&path),
            Err(PassFileError::InsecurePermissions(_))
        ));

        assert!(matches!(
            PassFile::read(&dir.path().join("missing")),
            Err(PassFileError::Missing(_))
        ));
        assert!(matches!(
            PassFile::read(dir.path()),
            Err(PassFileError::NotPlainFile(_))
        ));
    }
}
