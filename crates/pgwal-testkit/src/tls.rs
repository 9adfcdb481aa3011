//! Test certificates: a throwaway CA, a server certificate for `localhost`/127.0.0.1/::1 and a
//! client certificate, so TLS tests can use `sslmode=verify-full` and `cert` authentication.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::error::{Error, IoContext, Result};

/// PEM files of a generated test PKI, written into one directory.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// `ca.crt`: the CA certificate (use as `sslrootcert`, and as the server's `ssl_ca_file`).
    pub ca_cert: PathBuf,
    /// `server.crt`: server certificate, SANs `localhost`, `127.0.0.1`, `::1`.
    pub server_cert: PathBuf,
    /// `server.key`: the server's private key (mode 0600).
    pub server_key: PathBuf,
    /// `client.crt`: client certificate whose CN is [`TestCerts::client_cn`].
    pub client_cert: PathBuf,
    /// `client.key`: the client's private key (mode 0600).
    pub client_key: PathBuf,
    /// The client certificate's common name (the role it authenticates as with `cert`).
    pub client_cn: String,
    /// The CA certificate in PEM form.
    pub ca_pem: String,
    /// The client certificate in PEM form.
    pub client_cert_pem: String,
    /// The client key in PEM (PKCS#8) form.
    pub client_key_pem: String,
}

fn tls_err(e: rcgen::Error) -> Error {
    Error::Tls(e.to_string())
}

impl TestCerts {
    /// Generate a CA, a server certificate and a client certificate for
    /// [`crate::CERT_USER`] into `dir` (created if missing).
    pub fn generate(dir: impl AsRef<Path>) -> Result<TestCerts> {
        Self::generate_with_client_cn(dir, crate::CERT_USER.name)
    }

    /// Like [`TestCerts::generate`] with a chosen client certificate common name.
    pub fn generate_with_client_cn(dir: impl AsRef<Path>, client_cn: &str) -> Result<TestCerts> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;

        // CA.
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        ca_params.distinguished_name = rcgen::DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "pgwal-testkit test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = KeyPair::generate().map_err(tls_err)?;
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;
        let issuer = Issuer::new(ca_params, ca_key);

        // Server.
        let mut srv_params = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ])
        .map_err(tls_err)?;
        srv_params.distinguished_name = rcgen::DistinguishedName::new();
        srv_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        srv_params.use_authority_key_identifier_extension = true;
        srv_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        srv_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let srv_key = KeyPair::generate().map_err(tls_err)?;
        let srv_cert = srv_params.signed_by(&srv_key, &issuer).map_err(tls_err)?;

        // Client.
        let mut cli_params = CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        cli_params.distinguished_name = rcgen::DistinguishedName::new();
        cli_params
            .distinguished_name
            .push(DnType::CommonName, client_cn);
        cli_params.use_authority_key_identifier_extension = true;
        cli_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        cli_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cli_key = KeyPair::generate().map_err(tls_err)?;
        let cli_cert = cli_params.signed_by(&cli_key, &issuer).map_err(tls_err)?;

        let certs = TestCerts {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            client_cert: dir.join("client.crt"),
            client_key: dir.join("client.key"),
            client_cn: client_cn.to_string(),
            ca_pem: ca_cert.pem(),
            client_cert_pem: cli_cert.pem(),
            client_key_pem: cli_key.serialize_pem(),
            dir,
        };
        write_file(&certs.ca_cert, &certs.ca_pem, 0o644)?;
        write_file(&certs.server_cert, &srv_cert.pem(), 0o644)?;
        write_file(&certs.server_key, &srv_key.serialize_pem(), 0o600)?;
        write_file(&certs.client_cert, &certs.client_cert_pem, 0o644)?;
        write_file(&certs.client_key, &certs.client_key_pem, 0o600)?;
        Ok(certs)
    }
}

fn write_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    fs::write(path, contents).ctx(|| format!("write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .ctx(|| format!("chmod {}", path.display()))
}
