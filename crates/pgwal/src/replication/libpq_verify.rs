//! Server certificate verification as libpq (with OpenSSL) does it, for `verify-ca` and
//! `verify-full`: X.509 version 1 certificates are accepted (PostgreSQL's documented recipe
//! makes them), the chain is built to a certificate of the root file by subject and checked
//! signature by signature, every certificate must be within its validity period, CRLs (when
//! given) must cover every non-root certificate and must not list it, and the host name is
//! checked with libpq's rules: subjectAltName `dNSName` (one-label `*.` wildcards) and
//! `iPAddress` entries, and the Common Name when no entry of the host's kind exists.
//!
//! rustls's own verifier (webpki) refuses v1 certificates and ignores the CN, hence this one;
//! the handshake signatures are still checked with rustls's algorithms.

use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::prelude::{
    ASN1Time, CertificateRevocationList, FromDer, GeneralName, X509Certificate,
};

/// The longest chain followed (OpenSSL's default depth is 100; real chains are short).
const MAX_DEPTH: usize = 16;

/// A verifier with libpq's acceptance rules.
#[derive(Debug)]
pub(crate) struct LibpqVerifier {
    /// DER of each certificate of the root file.
    roots: Vec<Vec<u8>>,
    /// DER of each CRL (`sslcrl`, `sslcrldir`); when any is given, every certificate of the
    /// chain below the root needs one from its issuer (OpenSSL's CRL_CHECK_ALL, as libpq sets).
    crls: Vec<Vec<u8>>,
    /// Whether the host name is checked (`verify-full`).
    check_name: bool,
    provider: Arc<CryptoProvider>,
}

fn bad(e: CertificateError) -> rustls::Error {
    rustls::Error::InvalidCertificate(e)
}

fn other(msg: &str) -> rustls::Error {
    rustls::Error::General(msg.to_owned())
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, rustls::Error> {
    X509Certificate::from_der(der)
        .map(|(_, c)| c)
        .map_err(|_| bad(CertificateError::BadEncoding))
}

impl LibpqVerifier {
    /// A verifier trusting `roots` (DER), checking `crls` (DER) and, if `check_name`, the host.
    pub(crate) fn new(
        roots: Vec<Vec<u8>>,
        crls: Vec<Vec<u8>>,
        check_name: bool,
        provider: Arc<CryptoProvider>,
    ) -> LibpqVerifier {
        LibpqVerifier {
            roots,
            crls,
            check_name,
            provider,
        }
    }

    /// Follows issuers from `ee` to a root, checking signatures, validity, CA flags and CRLs.
    fn verify_chain(
        &self,
        ee: &[u8],
        intermediates: &[CertificateDer<'_>],
        now: &ASN1Time,
    ) -> Result<(), rustls::Error> {
        let roots: Vec<X509Certificate<'_>> = self
            .roots
            .iter()
            .filter_map(|d| X509Certificate::from_der(d).ok().map(|(_, c)| c))
            .collect();
        let inter: Vec<X509Certificate<'_>> = intermediates
            .iter()
            .filter_map(|d| X509Certificate::from_der(d.as_ref()).ok().map(|(_, c)| c))
            .collect();
        let mut current = parse(ee)?;
        for depth in 0..MAX_DEPTH {
            check_validity(&current, now)?;
            if depth == 0 {
                check_server_purpose(&current)?;
            }
            // The certificate itself in the root file: trusted as is.
            if roots.iter().any(|r| r.as_raw() == current.as_raw()) {
                return Ok(());
            }
            let issued_by = |c: &&X509Certificate<'_>| {
                c.subject().as_raw() == current.issuer().as_raw()
                    && current.verify_signature(Some(c.public_key())).is_ok()
            };
            if let Some(root) = roots.iter().find(issued_by) {
                check_validity(root, now)?;
                check_ca(root, true)?;
                self.check_revocation(&current, root, now)?;
                return Ok(());
            }
            let Some(next) = inter
                .iter()
                .find(issued_by)
                .filter(|c| c.as_raw() != current.as_raw())
            else {
                return Err(bad(CertificateError::UnknownIssuer));
            };
            check_ca(next, false)?;
            self.check_revocation(&current, next, now)?;
            current = next.clone();
        }
        Err(other("certificate chain too long"))
    }

    /// With CRLs configured: `cert` must be covered by a valid CRL of `issuer`, and not listed.
    fn check_revocation(
        &self,
        cert: &X509Certificate<'_>,
        issuer: &X509Certificate<'_>,
        now: &ASN1Time,
    ) -> Result<(), rustls::Error> {
        if self.crls.is_empty() {
            return Ok(());
        }
        let crl = self
            .crls
            .iter()
            .filter_map(|d| CertificateRevocationList::from_der(d).ok().map(|(_, c)| c))
            .find(|crl| {
                crl.issuer().as_raw() == issuer.subject().as_raw()
                    && crl.verify_signature(issuer.public_key()).is_ok()
            })
            .ok_or(bad(CertificateError::UnknownRevocationStatus))?;
        if crl.last_update() > *now {
            return Err(other("CRL is not yet valid"));
        }
        if crl.next_update().is_some_and(|n| n < *now) {
            return Err(bad(CertificateError::ExpiredRevocationList));
        }
        if crl
            .iter_revoked_certificates()
            .any(|r| r.raw_serial() == cert.raw_serial())
        {
            return Err(bad(CertificateError::Revoked));
        }
        Ok(())
    }
}

fn check_validity(c: &X509Certificate<'_>, now: &ASN1Time) -> Result<(), rustls::Error> {
    let v = c.validity();
    if *now < v.not_before {
        return Err(bad(CertificateError::NotValidYet));
    }
    if *now > v.not_after {
        return Err(bad(CertificateError::Expired));
    }
    Ok(())
}

/// OpenSSL's CA rule: a certificate with basicConstraints must say CA; one with keyUsage must
/// allow certificate signing; a v1 certificate (no extensions) may issue.
fn check_ca(c: &X509Certificate<'_>, is_root: bool) -> Result<(), rustls::Error> {
    let bc = c
        .basic_constraints()
        .map_err(|_| bad(CertificateError::BadEncoding))?;
    if bc.is_some_and(|b| !b.value.ca) && !is_root {
        return Err(other("invalid CA certificate"));
    }
    let ku = c
        .key_usage()
        .map_err(|_| bad(CertificateError::BadEncoding))?;
    if ku.is_some_and(|k| !k.value.key_cert_sign()) {
        return Err(other("key usage does not include certificate signing"));
    }
    Ok(())
}

/// OpenSSL's "SSL server" purpose for the server's own certificate: an extendedKeyUsage, if
/// present, allows server authentication; a keyUsage, if present, allows the key exchange.
fn check_server_purpose(c: &X509Certificate<'_>) -> Result<(), rustls::Error> {
    let eku = c
        .extended_key_usage()
        .map_err(|_| bad(CertificateError::BadEncoding))?;
    if eku.is_some_and(|e| !e.value.server_auth && !e.value.any) {
        return Err(bad(CertificateError::InvalidPurpose));
    }
    let ku = c
        .key_usage()
        .map_err(|_| bad(CertificateError::BadEncoding))?;
    if ku.is_some_and(|k| {
        !(k.value.digital_signature() || k.value.key_encipherment() || k.value.key_agreement())
    }) {
        return Err(bad(CertificateError::InvalidPurpose));
    }
    Ok(())
}

/// libpq's name match: case-insensitive, or `*.REST` matching a host whose part from its first
/// dot is `.REST` (the wildcard stands for the first label).
fn name_matches(pattern: &str, host: &str) -> bool {
    if pattern.contains('\0') {
        return false;
    }
    if let Some(suffix) = pattern.strip_prefix('*').filter(|s| s.starts_with('.')) {
        return host
            .find('.')
            .is_some_and(|dot| host[dot..].eq_ignore_ascii_case(suffix));
    }
    pattern.eq_ignore_ascii_case(host)
}

/// Whether the certificate `c` is valid for `host` by libpq's rules (PostgreSQL 14+): SAN
/// entries of the host's kind (DNS name or IP address) are checked, and the first Common Name
/// only when there is none of that kind.
pub(crate) fn host_matches(c: &X509Certificate<'_>, host: &str) -> bool {
    let ip: Option<IpAddr> = host.parse().ok();
    let mut check_cn = true;
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => {
                    if ip.is_none() {
                        check_cn = false;
                    }
                    if name_matches(d, host) {
                        return true;
                    }
                }
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip {
                        check_cn = false;
                        let same = match ip {
                            IpAddr::V4(a) => bytes[..] == a.octets()[..],
                            IpAddr::V6(a) => bytes[..] == a.octets()[..],
                        };
                        if same {
                            return true;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    check_cn
        && c.subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .is_some_and(|cn| name_matches(cn, host))
}

/// The host text libpq would compare: the DNS name, or the address.
fn host_text(name: &ServerName<'_>) -> Option<String> {
    match name {
        ServerName::DnsName(d) => Some(d.as_ref().to_owned()),
        ServerName::IpAddress(ip) => Some(IpAddr::from(*ip).to_string()),
        _ => None,
    }
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let now = ASN1Time::from_timestamp(now.as_secs() as i64)
            .map_err(|_| other("the clock is out of range"))?;
        self.verify_chain(end_entity.as_ref(), intermediates, &now)?;
        if self.check_name {
            let cert = parse(end_entity.as_ref())?;
            let host = host_text(server_name).ok_or(bad(CertificateError::NotValidForName))?;
            if !host_matches(&cert, &host) {
                return Err(bad(CertificateError::NotValidForName));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake(&self.provider, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        use SignatureScheme as S;
        let tls13 = matches!(
            dss.scheme,
            S::ECDSA_NISTP256_SHA256
                | S::ECDSA_NISTP384_SHA384
                | S::ECDSA_NISTP521_SHA512
                | S::RSA_PSS_SHA256
                | S::RSA_PSS_SHA384
                | S::RSA_PSS_SHA512
                | S::ED25519
                | S::ED448
        );
        if !tls13 {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
        verify_handshake(&self.provider, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Checks a handshake signature with the certificate's key (any certificate version), using
/// the provider's algorithms for the scheme whose key type matches the certificate's.
pub(crate) fn verify_handshake(
    provider: &CryptoProvider,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let c = parse(cert.as_ref())?;
    let spki = c.public_key();
    // The AlgorithmIdentifier's contents (OID and parameters), as webpki compares them.
    let alg_id = super::tls::der_tlv(spki.raw)
        .and_then(|(_, body, _)| super::tls::der_tlv(body))
        .map(|(_, alg, _)| alg)
        .ok_or(bad(CertificateError::BadEncoding))?;
    let key = spki.subject_public_key.data.as_ref();
    let algs = provider
        .signature_verification_algorithms
        .mapping
        .iter()
        .find(|(s, _)| *s == dss.scheme)
        .map(|(_, a)| *a)
        .ok_or(rustls::Error::PeerMisbehaved(
            rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
        ))?;
    let alg = algs
        .iter()
        .find(|a| a.public_key_alg_id().as_ref() == alg_id)
        .ok_or(bad(CertificateError::BadSignature))?;
    alg.verify_signature(key, message, dss.signature())
        .map(|()| HandshakeSignatureValid::assertion())
        .map_err(|_| bad(CertificateError::BadSignature))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn libpq_name_rules() {
        assert!(name_matches("db.example.com", "DB.Example.com"));
        assert!(name_matches("*.example.com", "db.example.com"));
        assert!(!name_matches("*.example.com", "a.db.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("db*.example.com", "db1.example.com"));
        assert!(!name_matches("db.example.com\0.evil", "db.example.com"));
    }

    fn cert(params: rcgen::CertificateParams) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn san_of_the_hosts_kind_hides_the_cn() {
        let with = |sans: &[&str], cn: &str| {
            let mut p = rcgen::CertificateParams::new(
                sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
            )
            .unwrap();
            p.distinguished_name = rcgen::DistinguishedName::new();
            p.distinguished_name.push(rcgen::DnType::CommonName, cn);
            cert(p)
        };
        let check = |der: &[u8], host: &str| host_matches(&parse(der).unwrap(), host);
        let cn_only = with(&[], "dbhost");
        assert!(check(&cn_only, "dbhost"));
        assert!(!check(&cn_only, "other"));
        let dns = with(&["db.example.com"], "dbhost");
        assert!(check(&dns, "db.example.com"));
        assert!(!check(&dns, "dbhost"), "a dNSName hides the CN");
        // An IP host: dNSName entries do not hide the CN, iPAddress entries do.
        let dns_cn_ip = with(&["db.example.com"], "127.0.0.1");
        assert!(check(&dns_cn_ip, "127.0.0.1"));
        let ip = with(&["10.0.0.1"], "127.0.0.1");
        assert!(check(&ip, "10.0.0.1"));
        assert!(!check(&ip, "127.0.0.1"));
        assert!(!check(&ip, "10.0.0.2"));
        let v6 = with(&["::1"], "x");
        assert!(check(&v6, "::1"));
    }
}
