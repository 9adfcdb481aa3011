//! pgwal's TLS verdicts against libpq's on a real server: for each server certificate (made with
//! the `openssl` command line, PostgreSQL's documented recipe among them) and for `verify-ca` and
//! `verify-full`, pgwal's replication client connects or refuses exactly when psql (libpq with
//! OpenSSL) does. Rows: v1 with the host in the CN only (the documented recipe), v3 with a SAN,
//! v3 with the CN only, an IP address SAN, a wrong host, an expired certificate, one revoked by a
//! CRL (and the same CRL for a certificate it does not list), and an untrusted root.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use pgwal::conninfo::{Config, MapEnvironment};
use pgwal::replication::ReplicationClient;
use pgwal_testkit::{require_build, Build, Cluster, Major};

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A CA made as PostgreSQL's documentation makes it, plus an `openssl ca` database for
/// certificates with chosen dates and for CRLs.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path, name: &str) -> Pki {
        let dir = dir.join(name);
        fs::create_dir_all(dir.join("new")).unwrap();
        openssl(
            &dir,
            &[
                "req",
                "-new",
                "-x509",
                "-days",
                "3650",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                "root.key",
                "-out",
                "root.crt",
            ],
        );
        fs::write(dir.join("index.txt"), "").unwrap();
        fs::write(dir.join("serial"), "1000\n").unwrap();
        fs::write(dir.join("crlnumber"), "1000\n").unwrap();
        fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = d\n[d]\ndir = .\ndatabase = index.txt\nnew_certs_dir = new\n\
             serial = serial\ncrlnumber = crlnumber\ncertificate = root.crt\n\
             private_key = root.key\ndefault_md = sha256\npolicy = p\ndefault_crl_days = 30\n\
             unique_subject = no\n[p]\ncommonName = supplied\n",
        )
        .unwrap();
        Pki { dir }
    }

    /// A key and CSR for `cn`, named `name`.
    fn csr(&self, name: &str, cn: &str) {
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-nodes",
                "-text",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
    }

    /// PostgreSQL's recipe: `openssl x509 -req ... -CA root.crt -CAkey root.key`, with
    /// `extensions` (none: an X.509 v1 certificate).
    fn sign(&self, name: &str, cn: &str, extensions: Option<&str>) -> PathBuf {
        self.csr(name, cn);
        let csr = format!("{name}.csr");
        let crt = format!("{name}.crt");
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-days",
            "365",
            "-CA",
            "root.crt",
            "-CAkey",
            "root.key",
            "-CAcreateserial",
            "-out",
            &crt,
        ];
        let ext = format!("{name}.ext");
        if let Some(e) = extensions {
            fs::write(self.dir.join(&ext), format!("{e}\n")).unwrap();
            args.extend(["-extfile", &ext]);
        }
        openssl(&self.dir, &args);
        self.dir.join(crt)
    }

    /// `openssl ca` with explicit dates (v1: no extensions).
    fn sign_dated(&self, name: &str, cn: &str, start: &str, end: &str) -> PathBuf {
        self.csr(name, cn);
        let (csr, crt) = (format!("{name}.csr"), format!("{name}.crt"));
        openssl(
            &self.dir,
            &[
                "ca",
                "-config",
                "ca.cnf",
                "-batch",
                "-notext",
                "-startdate",
                start,
                "-enddate",
                end,
                "-in",
                &csr,
                "-out",
                &crt,
            ],
        );
        self.dir.join(crt)
    }

    fn revoke(&self, crt: &Path) {
        openssl(
            &self.dir,
            &["ca", "-config", "ca.cnf", "-revoke", crt.to_str().unwrap()],
        );
    }

    fn crl(&self, name: &str) -> PathBuf {
        let out = format!("{name}.pem");
        openssl(
            &self.dir,
            &["ca", "-config", "ca.cnf", "-gencrl", "-out", &out],
        );
        self.dir.join(out)
    }

    fn root(&self) -> PathBuf {
        self.dir.join("root.crt")
    }
}

/// One row: the server's certificate and key, how to connect, the root file and CRL.
struct Case {
    what: &'static str,
    cert: PathBuf,
    /// `host=... [hostaddr=127.0.0.1]`.
    host: String,
    root: PathBuf,
    crl: Option<PathBuf>,
}

/// Installs `cert` (and its key) as the server's certificate and restarts the server.
fn serve(pg: &Cluster, cert: &Path) {
    let data = pg.data_dir();
    let owner = {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(data).unwrap();
        (m.uid(), m.gid())
    };
    for (src, dst) in [
        (cert.to_path_buf(), "testkit_server.crt"),
        (cert.with_extension("key"), "testkit_server.key"),
    ] {
        let to = data.join(dst);
        fs::copy(&src, &to).unwrap();
        std::os::unix::fs::chown(&to, Some(owner.0), Some(owner.1)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&to, fs::Permissions::from_mode(0o600)).unwrap();
    }
    pg.restart().unwrap();
}

/// libpq's verdict: psql connects (and runs a query) or not.
fn psql_accepts(psql: &Path, pg: &Cluster, case: &Case, mode: &str) -> (bool, String) {
    let mut conn = format!(
        "{} port={} user=postgres dbname=postgres sslmode={mode} sslrootcert={}",
        case.host,
        pg.port(),
        case.root.display()
    );
    if let Some(crl) = &case.crl {
        conn.push_str(&format!(" sslcrl={}", crl.display()));
    }
    let o = Command::new(psql)
        .args(["-X", "-A", "-t", "-c", "select 1", &conn])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn config(pg: &Cluster, case: &Case, mode: &str) -> Config {
    let mut conn = format!(
        "{} port={} user=postgres sslmode={mode} sslrootcert={} sslcert=/nonexistent \
         connect_timeout=10",
        case.host,
        pg.port(),
        case.root.display()
    );
    if let Some(crl) = &case.crl {
        conn.push_str(&format!(" sslcrl={}", crl.display()));
    }
    Config::parse_with_env(&conn, &MapEnvironment::new().with_user("postgres")).unwrap()
}

/// pgwal's verdict: the replication client connects (with the same `sslcrl` as psql) and
/// identifies the system.
async fn pgwal_accepts(pg: &Cluster, case: &Case, mode: &str) -> (bool, String) {
    let config = config(pg, case, mode);
    match ReplicationClient::connect(&config).await {
        Ok(mut c) => match c.identify_system().await {
            Ok(_) => (true, String::new()),
            Err(e) => (false, e.to_string()),
        },
        Err(e) => (false, e.to_string()),
    }
}

fn matrix(major: Major, build: Build) {
    let Some(_) = require_build(major, build) else {
        return;
    };
    // libpq with OpenSSL: Debian 15's psql (the 18 client tools here are built without SSL).
    let psql = PathBuf::from("/usr/lib/postgresql/15/bin/psql");
    assert!(
        psql.exists(),
        "Debian's PostgreSQL 15 psql (libpq with OpenSSL) is needed; scripts/install-postgres installs it"
    );
    let tmp = tempfile::Builder::new()
        .prefix("pgwal-tls-matrix-")
        .tempdir()
        .unwrap();
    let pki = Pki::new(tmp.path(), "pgwal-matrix-root");
    let other = Pki::new(tmp.path(), "pgwal-other-root");
    let named = "host=dbhost hostaddr=127.0.0.1".to_owned();
    let v1 = pki.sign("v1", "dbhost", None);
    let revoked = pki.sign("revoked", "dbhost", None);
    pki.revoke(&revoked);
    let crl = pki.crl("crl");
    let cases = vec![
        Case {
            what: "v1, CN only (PostgreSQL's documented recipe)",
            cert: v1.clone(),
            host: named.clone(),
            root: pki.root(),
            crl: None,
        },
        Case {
            what: "v3 with a DNS SAN",
            cert: pki.sign("v3san", "other", Some("subjectAltName=DNS:dbhost")),
            host: named.clone(),
            root: pki.root(),
            crl: None,
        },
        Case {
            what: "v3, CN only",
            cert: pki.sign("v3cn", "dbhost", Some("basicConstraints=CA:FALSE")),
            host: named.clone(),
            root: pki.root(),
            crl: None,
        },
        Case {
            what: "v3, DNS SAN for another name hides a matching CN",
            cert: pki.sign("v3hide", "dbhost", Some("subjectAltName=DNS:elsewhere")),
            host: named.clone(),
            root: pki.root(),
            crl: None,
        },
        Case {
            what: "IP address SAN",
            cert: pki.sign("ipsan", "whatever", Some("subjectAltName=IP:127.0.0.1")),
            host: "host=127.0.0.1".to_owned(),
            root: pki.root(),
            crl: None,
        },
        Case {
            what: "IP host against a CN",
            cert: pki.sign("ipcn", "127.0.0.1", None),
            host: "host=127.0.0.1".to_owned(),
            root: pki.root(),
            crl: None,
        },
        Case {
            what: "wildcard CN",
            cert: pki.sign("wild", "*.example.com", None),
            host: "host=db.example.com hostaddr=127.0.0.1".to_owned(),
            root: pki.root(),
            crl: None,
        },
        Case {
            what: "wrong host",
            cert: pki.sign("wrong", "otherhost", None),
            host: named.clone(),
            root: pki.root(),
            crl: None,
        },
        Case {
            what: "expired",
            cert: pki.sign_dated("expired", "dbhost", "20200101000000Z", "20200201000000Z"),
            host: named.clone(),
            root: pki.root(),
            crl: None,
        },
        Case {
            what: "revoked by the CRL",
            cert: revoked,
            host: named.clone(),
            root: pki.root(),
            crl: Some(crl.clone()),
        },
        Case {
            what: "not in the CRL",
            cert: v1.clone(),
            host: named.clone(),
            root: pki.root(),
            crl: Some(crl),
        },
        Case {
            what: "untrusted root",
            cert: other.sign("untrusted", "dbhost", None),
            host: named.clone(),
            root: pki.root(),
            crl: None,
        },
    ];
    // The documented recipe really makes a version 1 certificate.
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&v1)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("Version: 1 (0x0)"),
        "not a v1 certificate"
    );
    let pg = Cluster::builder(major)
        .build(build)
        .ssl(&v1, v1.with_extension("key"), pki.root())
        .start()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut accepted = 0;
    let mut refused = 0;
    for case in &cases {
        serve(&pg, &case.cert);
        for mode in ["verify-ca", "verify-full"] {
            let (want, why) = psql_accepts(&psql, &pg, case, mode);
            if !want {
                assert!(
                    why.contains("SSL") || why.contains("certificate") || why.contains("server"),
                    "{}: psql failed for another reason: {why}",
                    case.what
                );
            }
            let (got, ours) = rt.block_on(pgwal_accepts(&pg, case, mode));
            assert_eq!(
                got,
                want,
                "{major} {}, {mode}: psql {} ({why}), pgwal {} ({ours})",
                case.what,
                if want { "accepts" } else { "refuses" },
                if got { "accepts" } else { "refuses" },
            );
            eprintln!(
                "{major} {mode:<11} {:<50} {}",
                case.what,
                if got { "accepted" } else { "refused" }
            );
            if want {
                accepted += 1;
            } else {
                refused += 1;
            }
        }
    }
    // The matrix has both outcomes in it (it is not vacuous).
    assert!(
        accepted >= 10 && refused >= 6,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn tls_matrix_15() {
    matrix(Major::V15, Build::Full);
}

#[test]
fn tls_matrix_18() {
    matrix(Major::V18, Build::Ssl);
}

#[test]
fn tls_matrix_13_14_16_17() {
    for major in [Major::V13, Major::V14, Major::V16, Major::V17] {
        matrix(major, Build::Full);
    }
}
