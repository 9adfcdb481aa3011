//! Secrets given to `pgwal receive` (passwords in the connection string, a URI, `PGPASSWORD` or
//! the password file; `sslpassword`, `*key*` and `*secret*` options) never appear in its
//! output, whether it fails or streams with every log level on. Against a real server whose
//! users authenticate with passwords.

#![allow(clippy::unwrap_used)]

mod support;
use support::*;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pgwal_testkit::{
    format_lsn, parse_lsn, require_major, Cluster, Major, MD5_USER, PASS_USER, SCRAM_USER,
};

/// Runs `pgwal receive ARGS` with `env` set (and everything logged), failing the test if it
/// takes longer than a minute.
fn receive(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("receive")
        .args(args)
        .env("PGWAL_LOG", "trace")
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let o = child.wait_with_output().unwrap();
            panic!("pgwal receive {args:?} timed out\n{}", text(&o));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// Asserts that the run's output does not contain `secret` and does contain `expect`.
fn check(o: &Output, secret: &str, expect: &str) {
    let all = text(o);
    assert!(!all.contains(secret), "the output shows {secret:?}:\n{all}");
    assert!(all.contains(expect), "expected {expect:?} in:\n{all}");
}

#[test]
fn secrets_are_never_echoed() {
    let tmp = tempfile::Builder::new()
        .prefix("pgwal-secrets-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().join("archive");
    fs::create_dir(&dir).unwrap();
    let d = dir.to_str().unwrap();

    // Connection strings rejected before connecting.
    for (conninfo, expect) in [
        (
            "host=/tmp sslpassword=S3cret",
            "\"sslpassword\" is not supported",
        ),
        ("host=/tmp scram_client_key=S3cret", "\"scram_client_key\""),
        (
            "password=my S3cret",
            "invalid value for connection option \"password\"",
        ),
        (
            "postgresql://rep:S3cret@[::1",
            "postgresql://rep:<redacted>@[::1",
        ),
        (
            "postgresql://rep:S3cret@[::1]x/",
            "postgresql://rep:<redacted>@[::1]x/",
        ),
        (
            "postgresql://rep:S3cret%zz@h/",
            "\"password\": invalid percent-encoded",
        ),
        (
            "postgresql://h/?oauth_client_secret=S3cret",
            "\"oauth_client_secret\"",
        ),
        (
            "postgresql://h/?password=S3c&ret",
            "\"password\": it is followed by",
        ),
    ] {
        let o = receive(&["-D", d, "-n", "-v", "-d", conninfo], &[]);
        assert_eq!(o.status.code(), Some(1), "{conninfo}: {}", text(&o));
        check(&o, "S3c", expect);
    }

    let Some(_) = require_major(Major::V16) else {
        return;
    };
    let pg = Cluster::builder(Major::V16)
        .wal_segsize_mb(1)
        .auth_users()
        .start()
        .unwrap();
    pg.sql_load_blocking(500).unwrap();
    let end = parse_lsn(
        &pg.scalar_blocking("SELECT pg_current_wal_flush_lsn()")
            .unwrap(),
    )
    .unwrap();
    let end = format_lsn(end - 1);
    let tcp = |user: &str| {
        format!(
            "host=127.0.0.1 port={} user={user} sslmode=disable",
            pg.port()
        )
    };
    let fresh = |name: &str| {
        let p = tmp.path().join(name);
        fs::create_dir(&p).unwrap();
        p.to_str().unwrap().to_owned()
    };

    // SCRAM with the password in the string; streaming with everything logged.
    let ci = format!("{} password={}", tcp(SCRAM_USER.name), SCRAM_USER.password);
    let o = receive(
        &["-D", &fresh("scram"), "-n", "-E", &end, "-v", "-d", &ci],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    check(&o, SCRAM_USER.password, "stopped log streaming");
    // The same password in a URI.
    let uri = format!(
        "postgresql://{}:{}@127.0.0.1:{}/?sslmode=disable",
        SCRAM_USER.name,
        SCRAM_USER.password,
        pg.port()
    );
    let o = receive(
        &["-D", &fresh("uri"), "-n", "-E", &end, "-v", "-d", &uri],
        &[],
    );
    assert!(o.status.success(), "{}", text(&o));
    check(&o, SCRAM_USER.password, "stopped log streaming");
    // A wrong password: the server's refusal, never the password.
    let ci = format!("{} password=S3cretWrong", tcp(SCRAM_USER.name));
    let o = receive(&["-D", &fresh("wrong"), "-n", "-v", "-d", &ci], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    check(&o, "S3cretWrong", "password authentication failed");
    // Cleartext password authentication with PGPASSWORD.
    let o = receive(
        &[
            "-D",
            &fresh("env"),
            "-n",
            "-E",
            &end,
            "-v",
            "-d",
            &tcp(PASS_USER.name),
        ],
        &[("PGPASSWORD", PASS_USER.password)],
    );
    assert!(o.status.success(), "{}", text(&o));
    check(&o, PASS_USER.password, "stopped log streaming");
    // MD5 with the password file; then an unsafe password file is reported by name only.
    let passfile = tmp.path().join("pgpass");
    fs::write(
        &passfile,
        format!("*:*:*:{}:{}\n", MD5_USER.name, MD5_USER.password),
    )
    .unwrap();
    fs::set_permissions(&passfile, fs::Permissions::from_mode(0o600)).unwrap();
    let pf = passfile.to_str().unwrap();
    let args = ["-D", "", "-n", "-E", &end, "-v", "-d", &tcp(MD5_USER.name)];
    let mut a = args;
    let dir_pf = fresh("passfile");
    a[1] = &dir_pf;
    let o = receive(&a, &[("PGPASSFILE", pf)]);
    assert!(o.status.success(), "{}", text(&o));
    check(&o, MD5_USER.password, "stopped log streaming");
    fs::set_permissions(&passfile, fs::Permissions::from_mode(0o644)).unwrap();
    let dir_bad = fresh("badpassfile");
    a[1] = &dir_bad;
    let o = receive(&a, &[("PGPASSFILE", pf)]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    check(&o, MD5_USER.password, "has group or world access");
}
