//! Test kit: throwaway **real** PostgreSQL clusters (majors 13-19) for pgwal's integration
//! tests. No mocks: every [`Cluster`] is an `initdb`'d data directory with a running postmaster.
//!
//! * [`Binaries`] finds server builds and client tools under [`pg_dir()`] (installed by
//!   `scripts/install-postgres`), falling back to `/usr/lib/postgresql/<major>/bin`;
//!   [`installed_majors`] lists what is there, [`reference_waldump`] the reference `pg_waldump`.
//! * [`Cluster::builder`] configures initdb, `postgresql.conf`, `pg_hba.conf` (auth users,
//!   SSL), then [`ClusterBuilder::start`] runs it on a free 127.0.0.1 port with its own socket
//!   directory, as the `postgres` OS user when the tests run as root.
//! * Lifecycle is synchronous (so `Drop` can clean up, even while a test panics); SQL helpers
//!   are async (tokio-postgres) with `_blocking` variants.
//! * Leaks are guarded against: each cluster is recorded in a registry under
//!   [`testkit_root()`]`/registry`, and [`reap_orphans`] (run whenever a cluster is created)
//!   kills servers whose test process died without cleaning up.
//!   [`postgres_processes_under`] lets tests assert that nothing is left running.
//!
//! ```no_run
//! use pgwal_testkit::{Cluster, Major};
//! # async fn demo() -> pgwal_testkit::Result<()> {
//! let pg = Cluster::builder(Major::V15).wal_segsize_mb(1).start()?;
//! let before = pg.current_wal_lsn().await;
//! pg.sql_load(1000).await;
//! assert!(pg.current_wal_lsn().await > before);
//! let standby = pg.create_standby()?;
//! pg.wait_for_catchup(&standby)?;
//! standby.promote()?;
//! # Ok(()) }
//! ```
//!
//! * [`SeaweedFs`] and [`Azurite`] ([`objstore`]) start real object stores (S3 and Azure Blob)
//!   from the builds `scripts/install-objstore` caches.
//!
//! Environment: `PGWAL_PG_DIR` (builds), `PGWAL_TESTKIT_TMP` (scratch root, default
//! `/tmp/pgwal-testkit`), `PGWAL_TESTKIT_KEEP=1` (keep temp dirs after drop, for debugging).

#![warn(missing_docs)]

mod binaries;
mod cluster;
mod error;
pub mod objstore;
mod os;
mod sql;
mod tls;

pub use binaries::{
    installed_majors, pg_dir, reference_waldump, tools_dir, Binaries, Build, Major,
};
pub use cluster::{
    AuthUser, Cluster, ClusterBuilder, PgbenchLength, AUTH_USERS, CERT_USER, MD5_USER, PASS_USER,
    SCRAM_USER, SSL_USER, SUPERUSER, TRUST_USER,
};
pub use error::{Error, Result};
pub use objstore::{Azurite, SeaweedFs};
pub use os::{pid_alive, postgres_processes_under, reap_orphans, testkit_root};
pub use sql::{format_lsn, parse_lsn, TextRows};
pub use tls::TestCerts;
/// The tokio-postgres crate the kit's clients come from (so tests need no separate dependency).
pub use tokio_postgres;

/// Connect with tokio-postgres (no TLS) using a key=value `conninfo` (e.g. from
/// [`Cluster::conninfo`] or [`Cluster::socket_conninfo`]), spawning the connection task on the
/// current tokio runtime.
pub async fn connect(
    conninfo: &str,
) -> std::result::Result<tokio_postgres::Client, tokio_postgres::Error> {
    sql::connect(conninfo).await
}

/// The majors a test suite must cover. Panics (so the test fails, not skips) if any of 13..=19
/// is not installed, unless `PGWAL_ALLOW_MISSING_MAJORS=1` is set; then returns the installed
/// ones.
pub fn required_majors() -> Vec<Major> {
    let installed = installed_majors();
    let missing: Vec<Major> = Major::ALL
        .into_iter()
        .filter(|m| !installed.contains(m))
        .collect();
    if !missing.is_empty() && !allow_missing_majors() {
        panic!(
            "PostgreSQL majors {missing:?} are not installed under {} (run scripts/install-postgres, \
             or set PGWAL_ALLOW_MISSING_MAJORS=1 while developing)",
            pg_dir().display()
        );
    }
    installed
}

/// Whether `PGWAL_ALLOW_MISSING_MAJORS=1` is set.
pub fn allow_missing_majors() -> bool {
    std::env::var("PGWAL_ALLOW_MISSING_MAJORS").is_ok_and(|v| v == "1" || v == "true")
}

/// Locate `major` for a test: `Some(binaries)` if installed; if not, panics (the test fails)
/// unless `PGWAL_ALLOW_MISSING_MAJORS=1`, in which case it prints a note and returns `None`
/// so the test can return early.
pub fn require_major(major: Major) -> Option<Binaries> {
    require_build(major, Build::Full)
}

/// Like [`require_major`] for a specific [`Build`].
pub fn require_build(major: Major, build: Build) -> Option<Binaries> {
    match Binaries::locate_build(major, build) {
        Ok(b) => Some(b),
        Err(e) if allow_missing_majors() => {
            eprintln!(
                "skipping PostgreSQL {major} ({build:?}): {e} [PGWAL_ALLOW_MISSING_MAJORS=1]"
            );
            None
        }
        Err(e) => panic!(
            "{e}\n(set PGWAL_ALLOW_MISSING_MAJORS=1 to skip missing majors while developing)"
        ),
    }
}

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn shareable_across_threads() {
        assert_send_sync::<crate::Cluster>();
        assert_send_sync::<crate::Binaries>();
        assert_send_sync::<crate::Error>();
    }
}
