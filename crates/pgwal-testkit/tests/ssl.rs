//! SSL: generated test PKI, verify-full against localhost/127.0.0.1, hostssl-only and
//! client-certificate users. Uses Debian's psql (its libpq has SSL; the PyPI 18 tools do not).

// Tests may unwrap (see clippy.toml); this also covers the helper functions here.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use pgwal_testkit::{require_build, Build, Cluster, Major, TestCerts, CERT_USER, SSL_USER};

fn ssl_psql() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin/psql"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// Run psql with a conninfo; Ok(stdout) or Err(stderr).
fn psql(conninfo: &str, sql: &str) -> Result<String, String> {
    let psql = ssl_psql().expect("Debian's psql (postgresql-client) is needed for SSL tests");
    let out = Command::new(psql)
        .args(["-X", "-A", "-t", "-d", conninfo, "-c", sql])
        .env_remove("PGSSLMODE")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// With `own_files`, the test makes its own PKI and passes the PEM files to `ssl()`; otherwise
/// the kit generates it (`ssl_test_certs()`).
fn check_ssl(major: Major, own_files: bool) {
    if require_build(major, Build::Ssl).is_none() {
        return;
    }
    let scratch = pgwal_testkit::testkit_root().join(format!("ssl-test-{}", std::process::id()));
    let (pg, certs) = if own_files {
        let certs = TestCerts::generate(&scratch).unwrap();
        let pg = Cluster::builder(major)
            .ssl(&certs.server_cert, &certs.server_key, &certs.ca_cert)
            .start()
            .unwrap();
        (pg, certs)
    } else {
        let pg = Cluster::builder(major).ssl_test_certs().start().unwrap();
        let certs = pg.test_certs().unwrap();
        (pg, certs)
    };
    assert_eq!(pg.binaries().build(), Build::Ssl);
    let port = pg.port();
    let ssl_query =
        "SELECT ssl::text || ':' || current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

    for host in ["localhost", "127.0.0.1"] {
        let ci = format!(
            "host={host} port={port} user=postgres dbname=postgres sslmode=verify-full sslrootcert={}",
            certs.ca_cert.display()
        );
        assert_eq!(
            psql(&ci, ssl_query).unwrap(),
            "true:postgres",
            "verify-full via {host}"
        );
    }

    // ssl_user: only over TLS.
    let base = format!(
        "host=localhost port={port} dbname=postgres user={}",
        SSL_USER.name
    );
    let with_pw = format!("{base} password={}", SSL_USER.password);
    let ok = psql(
        &format!(
            "{with_pw} sslmode=verify-full sslrootcert={}",
            certs.ca_cert.display()
        ),
        ssl_query,
    );
    assert_eq!(ok.unwrap(), "true:ssl_user");
    let refused = psql(&format!("{with_pw} sslmode=disable"), "SELECT 1").unwrap_err();
    assert!(
        refused.contains("no encryption") || refused.contains("rejects"),
        "{refused}"
    );

    // cert_user: client certificate authentication.
    let cert_ci = format!(
        "host=localhost port={port} dbname=postgres user={} sslmode=verify-full sslrootcert={} sslcert={} sslkey={}",
        CERT_USER.name,
        certs.ca_cert.display(),
        certs.client_cert.display(),
        certs.client_key.display()
    );
    assert_eq!(psql(&cert_ci, ssl_query).unwrap(), "true:cert_user");
    let no_cert = format!(
        "host=localhost port={port} dbname=postgres user={} sslmode=verify-full sslrootcert={}",
        CERT_USER.name,
        certs.ca_cert.display()
    );
    assert!(psql(&no_cert, "SELECT 1").is_err());
    drop(pg);
    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn ssl_15() {
    check_ssl(Major::V15, false);
}

#[test]
fn ssl_18_uses_the_ssl_build() {
    check_ssl(Major::V18, false);
}

#[test]
fn ssl_19() {
    check_ssl(Major::V19, false);
}

#[test]
fn ssl_13_with_own_pem_files() {
    check_ssl(Major::V13, true);
}
