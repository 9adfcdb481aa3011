//! Which connection values are secret, and how text that may hold them is shown.
//!
//! The value of a secret keyword never appears in an error, a log line or `Debug` output: it is
//! replaced by [`REDACTED`]. A URI in an error message is shown with its password and the
//! values of secret query parameters replaced.

use super::parse::{percent_decode, uri_prefix_len};

/// What is shown instead of a secret value.
pub const REDACTED: &str = "<redacted>";

/// True for the keywords whose values are secret: `password`, `sslpassword`, and every keyword
/// whose name contains `password`, `key` or `secret` (such as `sslkey`, `scram_client_key` and
/// `oauth_client_secret`). Also used for environment variables (`PGPASSWORD`, `PGSSLKEY`).
///
/// ```
/// use pgwal::conninfo::is_secret_keyword;
/// assert!(is_secret_keyword("sslpassword"));
/// assert!(is_secret_keyword("scram_server_key"));
/// assert!(!is_secret_keyword("user"));
/// ```
pub fn is_secret_keyword(keyword: &str) -> bool {
    let k = keyword.to_ascii_lowercase();
    k.contains("password") || k.contains("key") || k.contains("secret")
}

/// `uri` with the password of its user information and the values of secret query parameters
/// replaced by [`REDACTED`]. Works on malformed URIs too (it is used for error messages).
pub(crate) fn redact_uri(uri: &str) -> String {
    let Some(start) = uri_prefix_len(uri) else {
        return uri.to_owned();
    };
    let b = uri.as_bytes();
    let mut out = String::with_capacity(uri.len());
    out.push_str(&uri[..start]);
    // User information, found as the parser finds it: up to an '@' before any '/'.
    let mut p = start;
    while p < b.len() && b[p] != b'@' && b[p] != b'/' {
        p += 1;
    }
    let mut rest = start;
    if p < b.len() && b[p] == b'@' {
        let cred = &uri[start..p];
        match cred.find(':') {
            Some(c) => {
                out.push_str(&cred[..=c]);
                out.push_str(REDACTED);
            }
            None => out.push_str(cred),
        }
        out.push('@');
        rest = p + 1;
    }
    // The query starts at the first '?' (even inside a malformed IPv6 bracket: anything that
    // looks like a secret parameter is hidden).
    let mut q = rest;
    while q < b.len() && b[q] != b'?' {
        q += 1;
    }
    out.push_str(&uri[rest..q]);
    if q >= b.len() {
        return out;
    }
    out.push('?');
    let mut after_secret = false;
    for (i, param) in uri[q + 1..].split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        // A parameter after a secret one may be the rest of an unencoded '&' in its value.
        if after_secret && !param.is_empty() {
            out.push_str(REDACTED);
            continue;
        }
        match param.split_once('=') {
            Some((k, _)) if is_secret_param(k) => {
                out.push_str(k);
                out.push('=');
                out.push_str(REDACTED);
                after_secret = true;
            }
            _ => out.push_str(param),
        }
    }
    out
}

/// True if the (percent-encoded) query parameter name `key` names a secret keyword.
pub(crate) fn is_secret_param(key: &str) -> bool {
    is_secret_keyword(key) || percent_decode(key).is_ok_and(|k| is_secret_keyword(&k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keywords() {
        for k in [
            "password",
            "sslpassword",
            "sslkey",
            "sslkeylogfile",
            "scram_client_key",
            "scram_server_key",
            "oauth_client_secret",
        ] {
            assert!(is_secret_keyword(k), "{k}");
        }
        for k in [
            "user",
            "host",
            "keepalives",
            "sslcert",
            "passfile",
            "options",
        ] {
            assert!(!is_secret_keyword(k), "{k}");
        }
        assert!(is_secret_keyword("PGPASSWORD"));
        assert!(is_secret_keyword("PGSSLKEY"));
        assert!(!is_secret_keyword("PGUSER"));
    }

    #[test]
    fn uris() {
        assert_eq!(
            redact_uri("postgresql://u:S3cret@h:1/db?sslpassword=S3cret&sslmode=require"),
            "postgresql://u:<redacted>@h:1/db?sslpassword=<redacted>&<redacted>"
        );
        assert_eq!(
            redact_uri("postgres://u@[::1?x=1&password%3d=S3cret&y=S3cret"),
            "postgres://u@[::1?x=1&password%3d=<redacted>&<redacted>"
        );
        assert_eq!(
            redact_uri("postgres://u@[::1]?pass%77ord=S3cret"),
            "postgres://u@[::1]?pass%77ord=<redacted>"
        );
        assert_eq!(
            redact_uri("postgresql://u:pa?ss@[::1"),
            "postgresql://u:<redacted>@[::1"
        );
        assert_eq!(redact_uri("postgresql://h/db"), "postgresql://h/db");
        assert_eq!(redact_uri("host=x"), "host=x");
    }
}
