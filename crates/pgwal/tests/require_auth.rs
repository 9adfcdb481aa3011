//! libpq's `require_auth` against psql on a real server: for each authentication method the
//! server asks for (trust, password, md5, scram-sha-256) and each `require_auth` value (plain
//! lists, negated lists, `none`, methods pgwal does not implement, the empty value, and values
//! libpq refuses), pgwal's replication client connects exactly when psql of the same major
//! does, and fails with the same words.

#![cfg(feature = "replication")]
#![allow(clippy::unwrap_used)]

use std::process::Command;

use pgwal::conninfo::{Config, MapEnvironment};
use pgwal::replication::ReplicationClient;
use pgwal_testkit::{require_major, AuthUser, Cluster, Major, AUTH_USERS};

/// The `require_auth` values tried for every user.
const VALUES: &[&str] = &[
    "password",
    "md5",
    "scram-sha-256",
    "none",
    "!none",
    "!password",
    "!md5,!scram-sha-256",
    "password,md5",
    "scram-sha-256,none",
    "oauth",
    "gss",
    "sspi",
    "",
    "md5,!password",
    "!md5,password",
    "md5,md5",
    "none,none",
    "MD5",
    "md5,",
];

fn conninfo(pg: &Cluster, user: &AuthUser, value: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={} password={} sslmode=disable require_auth='{value}'",
        pg.port(),
        user.name,
        user.password
    )
}

/// psql's verdict: `Ok` when it connects and runs a query, else its error after the
/// "connection to server ... failed: " (or "psql: error: ") prefix.
fn psql(psql: &std::path::Path, pg: &Cluster, user: &AuthUser, value: &str) -> Result<(), String> {
    let o = Command::new(psql)
        .args(["-X", "-A", "-t", "-c", "select 1"])
        .arg(format!("{} dbname=postgres", conninfo(pg, user, value)))
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    if o.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("psql: error: "))
        .unwrap_or(&err);
    Err(reason(line.trim_start_matches("psql: error: ")))
}

/// The reason in an error: the text after the last "failed: " of a connection error.
fn reason(e: &str) -> String {
    e.rsplit_once(" failed: ")
        .map_or(e, |(_, r)| r)
        .trim()
        .to_owned()
}

/// pgwal's verdict: the replication client connects and identifies the system.
async fn pgwal(pg: &Cluster, user: &AuthUser, value: &str) -> Result<(), String> {
    let env = MapEnvironment::new().with_user("postgres");
    let config = Config::parse_with_env(&conninfo(pg, user, value), &env)
        .map_err(|e| reason(&e.to_string()))?;
    let mut c = ReplicationClient::connect(&config)
        .await
        .map_err(|e| reason(&e.to_string()))?;
    c.identify_system()
        .await
        .map(|_| ())
        .map_err(|e| reason(&e.to_string()))
}

async fn matrix(major: Major) {
    let Some(bins) = require_major(major) else {
        return;
    };
    let psql_bin = bins.psql().unwrap();
    let pg = Cluster::builder(major)
        .auth_users()
        .start()
        .unwrap_or_else(|e| panic!("starting PostgreSQL {major}: {e}"));
    let mut rows = 0;
    let mut refused = 0;
    for user in AUTH_USERS {
        for value in VALUES {
            let want = psql(&psql_bin, &pg, &user, value);
            let got = pgwal(&pg, &user, value).await;
            assert_eq!(
                got, want,
                "PostgreSQL {major}, {} ({}), require_auth='{value}': pgwal, then psql",
                user.name, user.method
            );
            rows += 1;
            refused += usize::from(want.is_err());
        }
    }
    // Both kinds of verdict were seen.
    assert!(refused > rows / 3 && refused < rows, "{refused} of {rows}");
    eprintln!(
        "PostgreSQL {major}: {rows} require_auth verdicts equal to psql's ({refused} refusals)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_auth_as_psql_18() {
    matrix(Major::V18).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_auth_as_psql_19() {
    matrix(Major::V19).await;
}
