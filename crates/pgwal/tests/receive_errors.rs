//! The receiver's errors as a library caller sees them, against a real PostgreSQL 18 server:
//! the variant, its `kind()`, whether it is retried, the SQLSTATE, and the message.

#![cfg(feature = "receiver")]
#![allow(clippy::unwrap_used)]

use std::path::Path;

use pgwal::conninfo::{Config, MapEnvironment};
use pgwal::receiver::{ErrorKind, ReceiveError, Receiver, ReceiverOptions};
use pgwal::replication::SlotName;
use pgwal_testkit::{Cluster, Major, PASS_USER};

fn config(pg: &Cluster, home: &Path, extra: &str) -> Config {
    let s = format!("host=127.0.0.1 port={} sslmode=disable {extra}", pg.port());
    let env = MapEnvironment::new().with_user("postgres").with_home(home);
    Config::parse_with_env(&s, &env).unwrap()
}

async fn run_once(conn: Config, dir: &Path, slot: Option<&str>) -> ReceiveError {
    let mut opts = ReceiverOptions::new(dir);
    opts.no_loop = true;
    opts.slot = slot.map(|s| SlotName::new(s).unwrap());
    match Receiver::new(conn, opts).run().await {
        Ok(s) => panic!("the receiver stopped without an error: {s:?}"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_kinds_and_retry_rules() {
    let major = Major::V18;
    if pgwal_testkit::require_major(major).is_none() {
        return;
    }
    let pg = Cluster::builder(major)
        .wal_segsize_mb(1)
        .auth_users()
        .start()
        .unwrap_or_else(|e| panic!("starting PostgreSQL {major}: {e}"));
    let home = tempfile::tempdir().unwrap();
    let trust = config(&pg, home.path(), "user=postgres");

    // A file where the directory should be: a configuration error, never retried.
    let file = home.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let e = run_once(trust.clone(), &file, None).await;
    assert!(
        matches!(e, ReceiveError::NotADirectory(ref p) if p == &file),
        "{e:?}"
    );
    assert_eq!(
        (e.kind(), e.is_retryable()),
        (ErrorKind::Configuration, false)
    );
    assert_eq!(
        e.to_string(),
        format!("\"{}\" is not a directory", file.display())
    );

    // A wrong password: the server's error with its SQLSTATE, retried (here, with no_loop,
    // returned as a disconnection).
    let empty = tempfile::tempdir().unwrap();
    let wrong = config(
        &pg,
        home.path(),
        &format!("user={} password=wrong", PASS_USER.name),
    );
    let e = run_once(wrong, empty.path(), None).await;
    let ReceiveError::Disconnected(inner) = &e else {
        panic!("{e:?}")
    };
    assert!(
        matches!(
            **inner,
            ReceiveError::Replication {
                context: "could not connect to the server",
                ..
            }
        ),
        "{inner:?}"
    );
    assert_eq!((e.kind(), e.is_retryable()), (ErrorKind::Server, true));
    assert_eq!(e.sqlstate(), Some("28P01"));
    assert!(
        e.to_string()
            .starts_with("disconnected: could not connect to the server: ")
            && e.to_string().contains("password authentication failed"),
        "{e}"
    );
    assert!(std::error::Error::source(&e).is_some());

    // A slot that does not exist (READ_REPLICATION_SLOT, 15+): retried, it may be created.
    let e = run_once(trust.clone(), empty.path(), Some("no_such_slot")).await;
    let ReceiveError::Disconnected(inner) = &e else {
        panic!("{e:?}")
    };
    assert!(
        matches!(**inner, ReceiveError::SlotMissing(ref s) if s == "no_such_slot"),
        "{inner:?}"
    );
    assert_eq!((e.kind(), e.is_retryable()), (ErrorKind::Server, true));
    assert_eq!(
        e.to_string(),
        "disconnected: replication slot \"no_such_slot\" does not exist"
    );

    // A `.partial` of another database system in the archive: a conflict, fatal at once.
    let foreign = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/wal/pg16/000000010000000000000009");
    let partial = foreign.path().join("000000010000000000000009.partial");
    std::fs::copy(&sample, &partial).unwrap();
    let e = run_once(trust, foreign.path(), None).await;
    let server: u64 = pg
        .query_one_string("SELECT system_identifier FROM pg_control_system()")
        .await
        .parse()
        .unwrap();
    match &e {
        ReceiveError::ForeignWal {
            path,
            found,
            server: s,
        } => {
            assert_eq!(path, &partial);
            assert_ne!(*found, server);
            assert_eq!(*s, server);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!((e.kind(), e.is_retryable()), (ErrorKind::Conflict, false));
    assert!(e.to_string().starts_with(&format!(
        "file \"{}\" holds WAL of database system ",
        partial.display()
    )));
    assert_eq!(
        std::fs::read(&partial).unwrap(),
        std::fs::read(&sample).unwrap()
    );
}
