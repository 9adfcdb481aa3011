//! libpq's connection service file (`pg_service.conf`): `service=NAME` (or `PGSERVICE`) takes
//! connection parameters from group `[NAME]` of a file, as `parseServiceInfo()` does.
//!
//! The file is `servicefile` (libpq 18 on), else `PGSERVICEFILE`, else `~/.pg_service.conf`;
//! when the group is not there (or that last file does not exist), the system file
//! `$PGSYSCONFDIR/pg_service.conf` (default [`SYSCONFDIR`]). A parameter from the file never
//! replaces one set in the connection string, and wins over its environment variable.

use std::fs;
use std::path::{Path, PathBuf};

use super::{parse, ConnInfo, ConnInfoError, Environment};

/// The system service file's directory when `PGSYSCONFDIR` is not set: where Debian's and
/// Ubuntu's libpq look (`pg_config --sysconfdir` of their packages).
pub const SYSCONFDIR: &str = "/etc/postgresql-common";

/// `info` with the parameters of its service (`service`, else `PGSERVICE`) added where it
/// sets none; `info` itself when no service is named.
pub(super) fn apply_service(
    info: &ConnInfo,
    env: &dyn Environment,
) -> Result<Option<ConnInfo>, ConnInfoError> {
    let Some(service) = info
        .get("service")
        .map(str::to_owned)
        .or_else(|| env.var("PGSERVICE"))
    else {
        return Ok(None);
    };
    let mut out = info.clone();
    let explicit = info
        .get("servicefile")
        .map(str::to_owned)
        .or_else(|| env.var("PGSERVICEFILE"));
    let user_file = match &explicit {
        Some(f) => {
            let f = PathBuf::from(f);
            if !f.exists() {
                return Err(ConnInfoError::ServiceFile(format!(
                    "service file \"{}\" not found",
                    f.display()
                )));
            }
            Some(f)
        }
        None => env
            .home_dir()
            .map(|h| h.join(".pg_service.conf"))
            .filter(|f| f.exists()),
    };
    if let Some(f) = user_file {
        if read_group(&f, &service, &mut out)? {
            return Ok(Some(out));
        }
    }
    let dir = env
        .var("PGSYSCONFDIR")
        .unwrap_or_else(|| SYSCONFDIR.to_owned());
    let system = Path::new(&dir).join("pg_service.conf");
    if system.exists() && read_group(&system, &service, &mut out)? {
        return Ok(Some(out));
    }
    Err(ConnInfoError::ServiceFile(format!(
        "definition of service \"{service}\" not found"
    )))
}

/// Adds the parameters of group `[service]` of `file` to `info` where it sets none; whether
/// the group was found.
fn read_group(file: &Path, service: &str, info: &mut ConnInfo) -> Result<bool, ConnInfoError> {
    let text = fs::read(file).map_err(|_| {
        ConnInfoError::ServiceFile(format!("service file \"{}\" not found", file.display()))
    })?;
    group_from_text(&String::from_utf8_lossy(&text), file, service, info)
}

/// [`read_group`] on the text of `file`.
pub(crate) fn group_from_text(
    text: &str,
    file: &Path,
    service: &str,
    info: &mut ConnInfo,
) -> Result<bool, ConnInfoError> {
    let err = |what: String, line: usize| {
        ConnInfoError::ServiceFile(format!(
            "{what} in service file \"{}\", line {line}",
            file.display()
        ))
    };
    let mut found = false;
    for (i, line) in text.split('\n').enumerate() {
        let line = line.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(group) = line.strip_prefix('[') {
            if found {
                break;
            }
            found = group
                .strip_prefix(service)
                .is_some_and(|rest| rest.starts_with(']'));
            continue;
        }
        if !found {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err("syntax error".into(), i + 1));
        };
        if key == "service" || key == "servicefile" {
            return Err(err(
                format!("nested \"{key}\" specifications not supported"),
                i + 1,
            ));
        }
        if !parse::is_keyword(key) {
            return Err(err("syntax error".into(), i + 1));
        }
        if info.get(key).is_none() {
            info.set(key, value)?;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conninfo::{Config, MapEnvironment};

    fn file(dir: &Path, name: &str, text: &str) -> String {
        let p = dir.join(name);
        fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    #[test]
    fn groups_precedence_and_errors_as_libpq_19() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let f = file(
            d,
            "s.conf",
            "# services\n[b]\nhost=x\n[a] \n  host=db.example.com\nport=5433\nuser=svc\n\
             dbname=\n[c]\nport=1\n",
        );
        let env = MapEnvironment::new()
            .with_user("me")
            .with_home(d.join("home"))
            .with_var("PGSERVICEFILE", &f)
            .with_var("PGUSER", "envuser")
            .with_var("PGSYSCONFDIR", &d.join("none").display().to_string());
        let c = Config::parse_with_env("service=a port=6000", &env).unwrap();
        assert_eq!(c.hosts.len(), 1);
        assert_eq!(c.hosts[0].port, 6000, "the string wins over the file");
        assert_eq!(c.user, "svc", "the file wins over the environment");
        let env_service = env.clone().with_var("PGSERVICE", "a");
        let c = Config::parse_with_env("port=6000", &env_service).unwrap();
        assert_eq!(c.user, "svc");

        let err = |conninfo: &str, env: &MapEnvironment| {
            Config::parse_with_env(conninfo, env)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("service=zz", &env),
            "definition of service \"zz\" not found"
        );
        let missing = d.join("missing.conf").display().to_string();
        assert_eq!(
            err(&format!("service=a servicefile={missing}"), &env),
            format!("service file \"{missing}\" not found")
        );
        for (text, want) in [
            ("[a]\nhost\n", "syntax error in service file \"F\", line 2"),
            ("[a]\nfoo=1\n", "syntax error in service file \"F\", line 2"),
            (
                "\n[a]\n dbname = x\n",
                "syntax error in service file \"F\", line 3",
            ),
            (
                "[a]\nservice=b\n",
                "nested \"service\" specifications not supported in service file \"F\", line 2",
            ),
            (
                "[a]\nservicefile=/x\n",
                "nested \"servicefile\" specifications not supported in service file \"F\", \
                 line 2",
            ),
        ] {
            let f = file(d, "bad.conf", text);
            assert_eq!(
                err(&format!("service=a servicefile={f}"), &env),
                want.replace('F', &f)
            );
        }
        // Not in ~/.pg_service.conf: the system file.
        fs::create_dir_all(d.join("home")).unwrap();
        file(&d.join("home"), ".pg_service.conf", "[q]\nport=1\n");
        fs::create_dir_all(d.join("sys")).unwrap();
        file(
            &d.join("sys"),
            "pg_service.conf",
            "[a]\nport=7000\n[a]\nport=1\n",
        );
        let env = MapEnvironment::new()
            .with_user("me")
            .with_home(d.join("home"))
            .with_var("PGSYSCONFDIR", &d.join("sys").display().to_string());
        let c = Config::parse_with_env("service=a", &env).unwrap();
        assert_eq!(c.hosts[0].port, 7000, "the first group of that name");
    }
}
