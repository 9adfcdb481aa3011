//! Builder options, settings, sockets, port-clash retry, and the binaries lookup.

// Tests may unwrap (see clippy.toml); this also covers the helper functions here.
#![allow(clippy::unwrap_used)]

use std::net::TcpListener;

use pgwal_testkit::{
    connect, installed_majors, Binaries, Build, Cluster, Major, PgbenchLength, TestCerts,
};

fn some_major() -> Major {
    let majors = installed_majors();
    if majors.contains(&Major::V15) {
        Major::V15
    } else {
        *majors.last().expect("no PostgreSQL installed")
    }
}

#[tokio::test]
async fn settings_checksums_hba_and_socket() {
    let major = some_major();
    let pg = Cluster::builder(major)
        .wal_segsize_mb(4)
        .data_checksums(true)
        .initdb_arg("--waldir=pg_wal_elsewhere_is_not_used")
        .set("wal_level", "logical")
        .set("max_wal_senders", 7)
        .set("application_name", "it's quoted")
        .hba_row("host all nobody 127.0.0.1/32 reject")
        .start();
    // --waldir must be absolute: initdb rejects it, and the error names the command.
    let err = pg.unwrap_err().to_string();
    assert!(err.contains("initdb") && err.contains("waldir"), "{err}");

    let pg = Cluster::builder(major)
        .wal_segsize_mb(4)
        .data_checksums(true)
        .set("wal_level", "logical")
        .set("max_wal_senders", 7)
        .set("application_name", "it's quoted")
        .hba_row("host all nobody 127.0.0.1/32 reject")
        .start()
        .unwrap();
    assert_eq!(pg.query_one_string("SHOW wal_segment_size").await, "4MB");
    assert_eq!(pg.query_one_string("SHOW data_checksums").await, "on");
    assert_eq!(pg.query_one_string("SHOW wal_level").await, "logical");
    assert_eq!(pg.query_one_string("SHOW max_wal_senders").await, "7");
    assert_eq!(
        pg.query_one_string("SHOW max_replication_slots").await,
        "10"
    );
    assert_eq!(
        pg.query_one_string("SHOW listen_addresses").await,
        "127.0.0.1"
    );
    assert_eq!(
        pg.query_one_string("SHOW port").await,
        pg.port().to_string()
    );

    // The custom hba row comes first.
    pg.query_blocking("CREATE ROLE nobody LOGIN").unwrap();
    let e = pg.connect_as("nobody", None).await.err().unwrap();
    assert_eq!(e.code().unwrap().code(), "28000", "{e:?}");

    // The unix socket in the cluster's own directory.
    assert!(pg.socket_dir().starts_with(pg.temp_dir()));
    let c = connect(&pg.socket_conninfo("postgres", "postgres"))
        .await
        .unwrap();
    let row = c
        .query_one("SELECT coalesce(inet_client_addr()::text, 'unix')", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "unix");

    // Data directory owned by the server's user, mode 0700.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let md = std::fs::metadata(pg.data_dir()).unwrap();
    assert_eq!(md.permissions().mode() & 0o777, 0o700);
    if unsafe_free_is_root() {
        assert_ne!(md.uid(), 0, "data dir must not be owned by root");
    }

    // set_config + restart.
    pg.set_config("work_mem", "7MB").unwrap();
    pg.reload().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(pg.query_one_string("SHOW work_mem").await, "7MB");
}

fn unsafe_free_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

#[test]
fn data_checksums_off_on_18() {
    if pgwal_testkit::require_major(Major::V18).is_none() {
        return;
    }
    let pg = Cluster::builder(Major::V18)
        .data_checksums(false)
        .start()
        .unwrap();
    assert_eq!(pg.scalar_blocking("SHOW data_checksums").unwrap(), "off");
}

#[test]
fn start_retries_when_the_port_is_taken() {
    let pg = Cluster::builder(some_major()).init().unwrap();
    let taken = pg.port();
    let _squatter = TcpListener::bind(("127.0.0.1", taken)).unwrap();
    pg.start().unwrap();
    assert_ne!(pg.port(), taken);
    assert_eq!(pg.scalar_blocking("SELECT 1").unwrap(), "1");
    assert!(pg.server_log_tail(200).contains("could not bind"));
}

#[test]
fn failed_start_reports_the_server_log() {
    let pg = Cluster::builder(some_major())
        .set("shared_buffers", "not-a-size")
        .init()
        .unwrap();
    let err = pg.start().unwrap_err().to_string();
    assert!(err.contains("pg_ctl"), "{err}");
    assert!(err.contains("server log"), "{err}");
    assert!(err.contains("shared_buffers"), "{err}");
}

#[test]
fn binaries_and_tools() {
    for m in installed_majors() {
        let b = Binaries::locate(m).unwrap();
        assert!(b.postgres().is_file() && b.initdb().is_file() && b.pg_ctl().is_file());
        let bb = b.pg_basebackup().unwrap();
        let v = std::process::Command::new(&bb)
            .arg("--version")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&v.stdout).to_string();
        let tool_major: u32 = text
            .split("PostgreSQL) ")
            .nth(1)
            .map(|r| {
                r.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert!(
            tool_major >= m.number(),
            "{} is older than {m}",
            bb.display()
        );
        assert!(b.pgbench().is_ok() && b.psql().is_ok());
    }
    // Build::Ssl of 18 is the npm build.
    if let Ok(b) = Binaries::locate_build(Major::V18, Build::Ssl) {
        assert!(
            b.bin_dir().to_string_lossy().contains("18-ssl"),
            "{}",
            b.bin_dir().display()
        );
    }
    assert!(Major::V18 > Major::V13);
}

#[tokio::test]
async fn pgbench_by_duration_and_certs_helper() {
    let pg = Cluster::builder(some_major()).start().unwrap();
    pg.pgbench_init(1).unwrap();
    let out = pg.pgbench_run(2, PgbenchLength::Seconds(1)).unwrap();
    assert!(out.contains("duration: 1 s"), "{out}");
    let n: u64 = pg
        .query_one_string("SELECT count(*) FROM pgbench_history")
        .await
        .parse()
        .unwrap();
    assert!(n > 0);

    let certs = TestCerts::generate(pg.temp_dir().join("my-certs")).unwrap();
    assert!(certs.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(certs.client_key_pem.contains("PRIVATE KEY"));
    assert_eq!(certs.client_cn, "cert_user");
}
