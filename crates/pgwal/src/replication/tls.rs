//! TLS for replication connections: rustls configuration following libpq's `sslmode`
//! rules, and the `tls-server-end-point` channel-binding hash for SCRAM-SHA-256-PLUS.
//!
//! | `sslmode` | server certificate check |
//! |---|---|
//! | `allow`, `prefer`, `require` | none; but if the root certificate file exists, the chain is verified (libpq loads it whenever it exists) |
//! | `verify-ca` | chain verified against `sslrootcert` (and CRLs, if given); the host name is not checked |
//! | `verify-full` | chain and host name verified: subjectAltName entries of the host's kind, else the Common Name, as libpq |
//!
//! Verification follows libpq's rules (see `libpq_verify`), so X.509 v1 certificates, as
//! PostgreSQL's documentation makes them, are accepted. The crypto provider is *ring*.

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

use super::libpq_verify::LibpqVerifier;
use super::Error;
use crate::conninfo::{Config, Host, HostSpec, SslMode};

/// The `tls-server-end-point` channel-binding data (RFC 5929) for a DER certificate: its
/// hash with the digest of its signature algorithm, SHA-256 if that is MD5 or SHA-1.
/// `None` for algorithms without a fixed digest (RSASSA-PSS, Ed25519), for which
/// PostgreSQL cannot bind either.
///
/// ```
/// // A certificate is SEQUENCE { tbsCertificate, signatureAlgorithm, signature }.
/// let cert = [
///     0x30, 0x13,
///       0x30, 0x00,                                       // tbsCertificate (empty here)
///       0x30, 0x0A, 0x06, 0x08,                           // AlgorithmIdentifier, OID:
///         0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x03, //   ecdsa-with-SHA384
///       0x03, 0x03, 0x00, 0x01, 0x02,                     // signature
/// ];
/// let hash = pgwal::replication::tls::server_end_point(&cert).unwrap();
/// assert_eq!(hash.len(), 48); // SHA-384
/// ```
pub fn server_end_point(cert_der: &[u8]) -> Option<Vec<u8>> {
    let oid = signature_algorithm_oid(cert_der)?;
    const RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01];
    const ECDSA: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04];
    const DSA_SHA1: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x38, 0x04, 0x03];
    const NIST_SIG: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03];
    enum H {
        S224,
        S256,
        S384,
        S512,
    }
    let h = if let Some(last) = oid.strip_prefix(RSA) {
        match last {
            [0x04] | [0x05] | [0x0B] => H::S256, // md5, sha1, sha256 with RSA
            [0x0C] => H::S384,
            [0x0D] => H::S512,
            [0x0E] => H::S224,
            _ => return None,
        }
    } else if let Some(rest) = oid.strip_prefix(ECDSA) {
        match rest {
            [0x01] | [0x03, 0x02] => H::S256, // ecdsa-with-SHA1, -SHA256
            [0x03, 0x01] => H::S224,
            [0x03, 0x03] => H::S384,
            [0x03, 0x04] => H::S512,
            _ => return None,
        }
    } else if oid == DSA_SHA1 {
        H::S256
    } else if let Some(last) = oid.strip_prefix(NIST_SIG) {
        match last {
            [0x01] => H::S224, // dsa-with-sha224
            [0x02] => H::S256, // dsa-with-sha256
            _ => return None,
        }
    } else {
        return None;
    };
    Some(match h {
        H::S224 => Sha224::digest(cert_der).to_vec(),
        H::S256 => Sha256::digest(cert_der).to_vec(),
        H::S384 => Sha384::digest(cert_der).to_vec(),
        H::S512 => Sha512::digest(cert_der).to_vec(),
    })
}

/// Reads one DER TLV: (tag, content, rest).
pub(crate) fn der_tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*b.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    let content = b.get(hdr..end)?;
    Some((tag, content, &b[end..]))
}

/// The OID bytes of a certificate's outer `signatureAlgorithm`.
fn signature_algorithm_oid(cert: &[u8]) -> Option<&[u8]> {
    let (0x30, body, _) = der_tlv(cert)? else {
        return None;
    };
    let (0x30, _, rest) = der_tlv(body)? else {
        return None; // tbsCertificate
    };
    let (0x30, alg, _) = der_tlv(rest)? else {
        return None;
    };
    let (0x06, oid, _) = der_tlv(alg)? else {
        return None;
    };
    Some(oid)
}

/// Accepts any certificate (libpq's `require`/`prefer`/`allow` without a root file), but
/// still checks the handshake signatures.
#[derive(Debug)]
struct NoCertificateCheck(Arc<CryptoProvider>);

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A TLS client configuration built from a [`Config`], reused for every host.
#[derive(Clone, Debug)]
pub struct TlsSetup {
    config: Arc<ClientConfig>,
    mode: SslMode,
}

impl TlsSetup {
    /// Loads the root and client certificates named by `config` and builds the rustls
    /// configuration for its `sslmode`.
    pub fn from_config(config: &Config) -> Result<TlsSetup, Error> {
        // libpq reads the default `~/.postgresql/root.crl` only if it exists; a file or
        // directory named in the connection settings must be readable.
        let crl_file = config
            .ssl_crl
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty() && p.exists());
        Self::from_config_with_crls(config, crl_file, config.ssl_crl_dir.as_deref())
    }

    /// [`TlsSetup::from_config`] with certificate revocation lists, as libpq's `sslcrl` (a PEM
    /// file) and `sslcrldir` (a directory of PEM files): when any is given, each certificate
    /// of the server's chain below the root needs a CRL from its issuer, and must not be in it.
    pub fn from_config_with_crls(
        config: &Config,
        crl_file: Option<&Path>,
        crl_dir: Option<&Path>,
    ) -> Result<TlsSetup, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let root_file = config
            .ssl_root_cert
            .as_deref()
            .filter(|p| !p.as_os_str().is_empty());
        let root_exists = root_file.is_some_and(Path::exists);
        let roots = if root_exists {
            root_file.map(load_roots).transpose()?
        } else {
            if config.ssl_mode.verifies() {
                let shown = root_file
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "~/.postgresql/root.crt".into());
                return Err(Error::Tls(format!(
                    "root certificate file \"{shown}\" does not exist; either provide the file \
                     or change sslmode to disable server certificate verification"
                )));
            }
            None
        };
        let verifier: Arc<dyn ServerCertVerifier> = match roots {
            Some(roots) => Arc::new(LibpqVerifier::new(
                roots,
                load_crls(crl_file, crl_dir)?,
                config.ssl_mode == SslMode::VerifyFull,
                provider.clone(),
            )),
            None => Arc::new(NoCertificateCheck(provider.clone())),
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut client = match client_certificate(config)? {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| Error::Tls(format!("could not load client certificate: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        // PostgreSQL 17+ checks ALPN when a client sends it; older servers ignore it.
        client.alpn_protocols = vec![b"postgresql".to_vec()];
        Ok(TlsSetup {
            config: Arc::new(client),
            mode: config.ssl_mode,
        })
    }

    /// The rustls configuration.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The name to present (SNI) and, for `verify-full`, to verify, when connecting to
    /// `host` at `peer`.
    pub fn server_name(&self, host: &HostSpec, peer: IpAddr) -> Result<ServerName<'static>, Error> {
        let name = match &host.host {
            Host::Tcp { name: Some(n), .. } if !n.is_empty() => Some(n.as_str()),
            _ => None,
        };
        match name {
            Some(n) => match ServerName::try_from(n.to_owned()) {
                Ok(sn) => Ok(sn),
                Err(_) if self.mode == SslMode::VerifyFull => Err(Error::Tls(format!(
                    "host name \"{n}\" cannot be verified against a certificate"
                ))),
                Err(_) => Ok(ServerName::IpAddress(peer.into())),
            },
            None if self.mode == SslMode::VerifyFull => Err(Error::Tls(
                "host name must be specified for a verified SSL connection".into(),
            )),
            None => Ok(ServerName::IpAddress(peer.into())),
        }
    }
}

/// The certificates of the root file, as DER (any X.509 version).
fn load_roots(path: &Path) -> Result<Vec<Vec<u8>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| {
            Error::Tls(format!(
                "could not read root certificate file \"{}\": {e}",
                path.display()
            ))
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::Tls(format!(
                "could not read root certificate file \"{}\": {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "no certificates found in root certificate file \"{}\"",
            path.display()
        )));
    }
    use x509_parser::prelude::{FromDer, X509Certificate};
    for c in &certs {
        X509Certificate::from_der(c.as_ref()).map_err(|e| {
            Error::Tls(format!(
                "invalid certificate in root certificate file \"{}\": {e}",
                path.display()
            ))
        })?;
    }
    Ok(certs.into_iter().map(|c| c.as_ref().to_vec()).collect())
}

/// The CRLs of `file` and of every file in `dir` (PEM), as DER. A file that does not exist is
/// ignored, as libpq ignores it.
fn load_crls(file: Option<&Path>, dir: Option<&Path>) -> Result<Vec<Vec<u8>>, Error> {
    let mut paths: Vec<std::path::PathBuf> = file
        .filter(|p| p.exists())
        .map(Path::to_path_buf)
        .into_iter()
        .collect();
    if let Some(d) = dir.filter(|d| d.is_dir()) {
        let entries = fs::read_dir(d).map_err(|e| {
            Error::Tls(format!(
                "could not read CRL directory \"{}\": {e}",
                d.display()
            ))
        })?;
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        paths.extend(files);
    }
    let mut crls = vec![];
    for p in paths {
        let it = CertificateRevocationListDer::pem_file_iter(&p)
            .map_err(|e| Error::Tls(format!("could not read CRL file \"{}\": {e}", p.display())))?;
        for crl in it {
            let crl = crl.map_err(|e| {
                Error::Tls(format!("could not read CRL file \"{}\": {e}", p.display()))
            })?;
            crls.push(crl.as_ref().to_vec());
        }
    }
    Ok(crls)
}

type ClientCert = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The client certificate and key, if the certificate file exists (libpq ignores a missing
/// certificate, but not a missing or unsafe key).
fn client_certificate(config: &Config) -> Result<Option<ClientCert>, Error> {
    let Some(cert_path) = config.ssl_cert.as_deref().filter(|p| p.exists()) else {
        return Ok(None);
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            Error::Tls(format!(
                "could not read certificate file \"{}\": {e}",
                cert_path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "no certificate in file \"{}\"",
            cert_path.display()
        )));
    }
    let key_path = config
        .ssl_key
        .as_deref()
        .filter(|p| p.exists())
        .ok_or_else(|| {
            Error::Tls(format!(
                "certificate present, but not private key file \"{}\"",
                config
                    .ssl_key
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ))
        })?;
    check_key_permissions(key_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
        Error::Tls(format!(
            "could not load private key file \"{}\": {e}",
            key_path.display()
        ))
    })?;
    Ok(Some((certs, key)))
}

/// libpq's key file rule: no group/world access, except group read for root-owned files.
fn check_key_permissions(path: &Path) -> Result<(), Error> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(path).map_err(|e| {
            Error::Tls(format!(
                "could not stat private key file \"{}\": {e}",
                path.display()
            ))
        })?;
        if !meta.is_file() {
            return Err(Error::Tls(format!(
                "private key file \"{}\" is not a regular file",
                path.display()
            )));
        }
        let mode = meta.mode();
        let bad = if meta.uid() == 0 {
            mode & 0o037 != 0
        } else {
            mode & 0o077 != 0
        };
        if bad {
            return Err(Error::Tls(format!(
                "private key file \"{}\" has group or world access; file must have permissions \
                 u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r \
                 (0640) or less if owned by root",
                path.display()
            )));
        }
    }
    #[cfg(not(unix))]
    let _ = (path, fs::metadata(path));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conninfo::MapEnvironment;

    /// Wraps an algorithm OID into a minimal certificate-shaped DER structure.
    fn cert_with_oid(oid: &[u8]) -> Vec<u8> {
        let mut alg = vec![0x06, oid.len() as u8];
        alg.extend_from_slice(oid);
        alg.extend_from_slice(&[0x05, 0x00]); // NULL parameters
        let mut body = vec![0x30, 0x02, 0x02, 0x00]; // tbsCertificate { INTEGER }
        body.push(0x30);
        body.push(alg.len() as u8);
        body.extend_from_slice(&alg);
        body.extend_from_slice(&[0x03, 0x02, 0x00, 0xFF]); // signature
        let mut cert = vec![0x30, body.len() as u8];
        cert.extend_from_slice(&body);
        cert
    }

    #[test]
    fn end_point_hash_algorithms() {
        let rsa = |n: u8| cert_with_oid(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, n]);
        let ecdsa = |rest: &[u8]| {
            let mut o = vec![0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04];
            o.extend_from_slice(rest);
            cert_with_oid(&o)
        };
        let len = |c: &[u8]| server_end_point(c).map(|h| h.len());
        assert_eq!(len(&rsa(0x04)), Some(32)); // md5 -> sha256
        assert_eq!(len(&rsa(0x05)), Some(32)); // sha1 -> sha256
        assert_eq!(len(&rsa(0x0B)), Some(32));
        assert_eq!(len(&rsa(0x0C)), Some(48));
        assert_eq!(len(&rsa(0x0D)), Some(64));
        assert_eq!(len(&rsa(0x0E)), Some(28));
        assert_eq!(len(&rsa(0x0A)), None); // RSASSA-PSS
        assert_eq!(len(&ecdsa(&[0x03, 0x02])), Some(32));
        assert_eq!(len(&ecdsa(&[0x03, 0x03])), Some(48));
        assert_eq!(len(&ecdsa(&[0x03, 0x04])), Some(64));
        assert_eq!(len(&ecdsa(&[0x01])), Some(32));
        assert_eq!(len(&cert_with_oid(&[0x2B, 0x65, 0x70])), None); // Ed25519
        let c = rsa(0x0B);
        assert_eq!(server_end_point(&c).unwrap(), Sha256::digest(&c).to_vec());
        // Garbage never panics.
        assert_eq!(server_end_point(&[]), None);
        assert_eq!(
            server_end_point(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]),
            None
        );
        assert_eq!(server_end_point(&c[..c.len() - 1]), None);
    }

    fn config(s: &str) -> Config {
        Config::parse_with_env(s, &MapEnvironment::new().with_user("u")).unwrap()
    }

    #[test]
    fn verify_modes_need_a_root_file() {
        let e = TlsSetup::from_config(&config("sslmode=verify-ca sslrootcert=/nonexistent/ca.pem"))
            .unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        // require without a root file: no verification, no error.
        TlsSetup::from_config(&config("sslmode=require sslrootcert=/nonexistent/ca.pem")).unwrap();
    }

    #[test]
    fn server_names() {
        let setup = TlsSetup::from_config(&config("sslmode=require")).unwrap();
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let host = |s: &str| config(s).hosts[0].clone();
        assert!(matches!(
            setup.server_name(&host("host=db.example"), peer).unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            setup.server_name(&host("host=10.0.0.1"), peer).unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            setup.server_name(&host("hostaddr=10.0.0.1"), peer).unwrap(),
            ServerName::IpAddress(_)
        ));
        let full = TlsSetup {
            config: setup.config.clone(),
            mode: SslMode::VerifyFull,
        };
        assert!(full.server_name(&host("hostaddr=10.0.0.1"), peer).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn key_permission_rules() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        std::fs::write(&key, "x").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_key_permissions(&key).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
        // Owned by the test user (root in CI allows 0640).
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert_eq!(check_key_permissions(&key).is_ok(), root);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(check_key_permissions(&key).is_err());
    }
}
