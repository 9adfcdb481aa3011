//! Parsing of libpq connection strings: `key=value` lists and `postgresql://` URIs.
//!
//! Both follow `conninfo_parse()` and `conninfo_uri_parse_options()` in libpq's
//! `fe-connect.c`, including their error messages.

use super::redact::{is_secret_keyword, is_secret_param, redact_uri};
use super::ConnInfoError;

/// The keywords libpq 13–18 accepts, in `PQconninfoOptions` order.
///
/// pgwal uses only some of them (see [`Config`](super::Config)); the others are accepted so
/// that connection strings written for libpq parse, and are checked or ignored as documented
/// on [`Config`](super::Config).
pub(crate) const KEYWORDS: &[&str] = &[
    "service",
    "servicefile",
    "user",
    "password",
    "passfile",
    "channel_binding",
    "connect_timeout",
    "dbname",
    "host",
    "hostaddr",
    "port",
    "client_encoding",
    "options",
    "application_name",
    "fallback_application_name",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "sslmode",
    "sslnegotiation",
    "sslcompression",
    "sslcert",
    "sslkey",
    "sslcertmode",
    "sslpassword",
    "sslrootcert",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "sslkeylogfile",
    "requirepeer",
    "require_auth",
    "min_protocol_version",
    "max_protocol_version",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "gssencmode",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "replication",
    "target_session_attrs",
    "load_balance_hosts",
    "scram_client_key",
    "scram_server_key",
    "oauth_issuer",
    "oauth_client_id",
    "oauth_client_secret",
    "oauth_scope",
];

/// True if `keyword` is a libpq connection keyword.
pub(crate) fn is_keyword(keyword: &str) -> bool {
    KEYWORDS.contains(&keyword)
}

/// True if `s` starts with a URI designator that libpq recognises.
pub(crate) fn uri_prefix_len(s: &str) -> Option<usize> {
    ["postgresql://", "postgres://"]
        .iter()
        .find(|p| s.starts_with(**p))
        .map(|p| p.len())
}

/// Parses a `key=value` connection string into (keyword, value) pairs in order.
pub(crate) fn parse_key_value(s: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    let b = s.as_bytes();
    let mut out: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    let is_space = |c: u8| c.is_ascii_whitespace();
    // A word that cannot be parsed right after a secret value may be the rest of that value
    // (an unquoted space in it): it is not shown.
    let after_secret = |out: &[(String, String)], problem: &'static str| {
        out.last()
            .filter(|(k, _)| is_secret_keyword(k))
            .map(|(k, _)| ConnInfoError::InvalidSecret {
                option: k.clone(),
                problem,
            })
    };
    const FOLLOWED: &str =
        "it is followed by text that is not a valid keyword=value pair (quote a value that contains spaces)";
    loop {
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        // The keyword runs to whitespace or '='.
        let kstart = i;
        while i < b.len() && !is_space(b[i]) && b[i] != b'=' {
            i += 1;
        }
        let keyword = &s[kstart..i];
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            return Err(after_secret(&out, FOLLOWED)
                .unwrap_or_else(|| ConnInfoError::MissingEquals(keyword.to_owned())));
        }
        i += 1;
        while i < b.len() && is_space(b[i]) {
            i += 1;
        }
        let mut value = Vec::new();
        if i < b.len() && b[i] == b'\'' {
            i += 1;
            loop {
                if i >= b.len() {
                    return Err(ConnInfoError::UnterminatedQuote);
                }
                match b[i] {
                    b'\\' => {
                        i += 1;
                        if i < b.len() {
                            value.push(b[i]);
                            i += 1;
                        }
                    }
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !is_space(b[i]) {
                if b[i] == b'\\' {
                    i += 1;
                    if i < b.len() {
                        value.push(b[i]);
                        i += 1;
                    }
                } else {
                    value.push(b[i]);
                    i += 1;
                }
            }
        }
        if !is_keyword(keyword) {
            return Err(after_secret(&out, FOLLOWED)
                .unwrap_or_else(|| ConnInfoError::InvalidOption(keyword.to_owned())));
        }
        // Escapes only remove ASCII backslashes, so the bytes stay valid UTF-8.
        let value = String::from_utf8(value).map_err(|_| ConnInfoError::NotUtf8)?;
        out.push((keyword.to_owned(), value));
    }
    Ok(out)
}

/// Parses a `postgresql://` or `postgres://` URI into (keyword, value) pairs.
pub(crate) fn parse_uri(uri: &str) -> Result<Vec<(String, String)>, ConnInfoError> {
    let prefix = uri_prefix_len(uri).ok_or_else(|| ConnInfoError::InvalidUri(redact_uri(uri)))?;
    let b = uri.as_bytes();
    let mut out: Vec<(String, String)> = Vec::new();
    let store = |out: &mut Vec<(String, String)>, k: &str, raw: &str| {
        let v = decode_value(k, raw)?;
        out.push((k.to_owned(), v));
        Ok::<(), ConnInfoError>(())
    };
    let start = prefix;
    let mut p = start;
    // Look ahead for user credentials: "user[:password]@".
    while p < b.len() && b[p] != b'@' && b[p] != b'/' {
        p += 1;
    }
    if p < b.len() && b[p] == b'@' {
        let at = p;
        let cred = &uri[start..at];
        let (user, password) = match cred.find(':') {
            Some(c) => (&cred[..c], Some(&cred[c + 1..])),
            None => (cred, None),
        };
        if !user.is_empty() {
            store(&mut out, "user", user)?;
        }
        if let Some(pw) = password {
            if !pw.is_empty() {
                store(&mut out, "password", pw)?;
            }
        }
        p = at + 1;
    } else {
        p = start;
    }

    // One or more netloc[:port] pairs separated by commas.
    let mut hosts = String::new();
    let mut ports = String::new();
    let mut terminator: Option<u8>;
    loop {
        let host;
        if p < b.len() && b[p] == b'[' {
            p += 1;
            let hstart = p;
            while p < b.len() && b[p] != b']' {
                p += 1;
            }
            if p >= b.len() {
                return Err(ConnInfoError::UriUnterminatedIpv6(redact_uri(uri)));
            }
            if p == hstart {
                return Err(ConnInfoError::UriEmptyIpv6(redact_uri(uri)));
            }
            host = &uri[hstart..p];
            p += 1;
            if p < b.len() && !matches!(b[p], b':' | b'/' | b'?' | b',') {
                // The position and character are those of the redacted URI that is shown.
                let shown = redact_uri(uri);
                let at = redact_uri(&uri[..p]).len().min(shown.len());
                return Err(ConnInfoError::UriUnexpectedChar {
                    ch: shown
                        .get(at..)
                        .and_then(|s| s.chars().next())
                        .unwrap_or('?'),
                    pos: at + 1,
                    uri: shown,
                });
            }
        } else {
            let hstart = p;
            while p < b.len() && !matches!(b[p], b':' | b'/' | b'?' | b',') {
                p += 1;
            }
            host = &uri[hstart..p];
        }
        hosts.push_str(host);
        terminator = b.get(p).copied();
        if terminator == Some(b':') {
            p += 1;
            let pstart = p;
            while p < b.len() && !matches!(b[p], b'/' | b'?' | b',') {
                p += 1;
            }
            ports.push_str(&uri[pstart..p]);
            terminator = b.get(p).copied();
        }
        if terminator != Some(b',') {
            break;
        }
        p += 1;
        hosts.push(',');
        ports.push(',');
    }
    if !hosts.is_empty() {
        store(&mut out, "host", &hosts)?;
    }
    if !ports.is_empty() {
        store(&mut out, "port", &ports)?;
    }

    if terminator.is_some() && terminator != Some(b'?') {
        // A '/' starts the database name.
        p += 1;
        let dstart = p;
        while p < b.len() && b[p] != b'?' {
            p += 1;
        }
        let dbname = &uri[dstart..p];
        terminator = b.get(p).copied();
        // An empty name is not stored, so that PGDATABASE and the default still apply.
        if !dbname.is_empty() {
            store(&mut out, "dbname", dbname)?;
        }
    }
    if terminator.is_some() {
        p += 1;
        parse_uri_params(&uri[p.min(uri.len())..], &mut out)?;
    }
    Ok(out)
}

/// Parses the `key=value&key=value` query part of a URI.
fn parse_uri_params(query: &str, out: &mut Vec<(String, String)>) -> Result<(), ConnInfoError> {
    if query.is_empty() {
        return Ok(());
    }
    // A parameter that cannot be parsed right after a secret one may be the rest of its
    // value (an unencoded '&' in it): it is not shown.
    const FOLLOWED: &str =
        "it is followed by an invalid parameter (percent-encode \"&\" and \"=\" in the value)";
    let mut previous_secret: Option<String> = None;
    for param in query.split('&') {
        if param.is_empty() {
            // libpq skips empty parameters such as the one in "a=b&&c=d"; a trailing '&' too.
            continue;
        }
        let hide = |e: ConnInfoError| match &previous_secret {
            Some(option) => ConnInfoError::InvalidSecret {
                option: option.clone(),
                problem: FOLLOWED,
            },
            None => e,
        };
        let mut parts = param.splitn(2, '=');
        let key = parts.next().unwrap_or_default();
        let value = match parts.next() {
            Some(v) => v,
            None => return Err(hide(ConnInfoError::UriParamMissingEquals(param.to_owned()))),
        };
        let secret = is_secret_param(key);
        if value.contains('=') {
            if secret {
                return Err(ConnInfoError::InvalidSecret {
                    option: percent_decode(key).unwrap_or_else(|_| key.to_owned()),
                    problem: "extra key/value separator \"=\" (percent-encode it as %3D)",
                });
            }
            return Err(hide(ConnInfoError::UriParamExtraEquals(param.to_owned())));
        }
        let mut key = percent_decode(key).map_err(hide)?;
        let mut value = decode_value(&key, value)?;
        // JDBC compatibility: "ssl=true" means "sslmode=require".
        if key == "ssl" && value == "true" {
            key = "sslmode".to_owned();
            value = "require".to_owned();
        }
        if !is_keyword(&key) {
            return Err(hide(ConnInfoError::InvalidUriParam(key)));
        }
        previous_secret = secret.then(|| key.clone());
        out.push((key, value));
    }
    Ok(())
}

/// Decodes the value of `keyword`; an error about a secret keyword's value does not hold it.
fn decode_value(keyword: &str, raw: &str) -> Result<String, ConnInfoError> {
    percent_decode(raw).map_err(|e| {
        if !is_secret_keyword(keyword) {
            return e;
        }
        let problem = match e {
            ConnInfoError::PercentNul(_) => "forbidden value %00 in percent-encoded value",
            ConnInfoError::NotUtf8 => "not valid UTF-8",
            _ => "invalid percent-encoded token",
        };
        ConnInfoError::InvalidSecret {
            option: keyword.to_owned(),
            problem,
        }
    })
}

/// Decodes `%XX` escapes as libpq's `conninfo_uri_decode()` does (`+` is not a space).
pub(crate) fn percent_decode(s: &str) -> Result<String, ConnInfoError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: Option<&u8>| c.and_then(|c| (*c as char).to_digit(16));
            match (hex(b.get(i + 1)), hex(b.get(i + 2))) {
                (Some(h), Some(l)) => {
                    let v = (h * 16 + l) as u8;
                    if v == 0 {
                        return Err(ConnInfoError::PercentNul(s.to_owned()));
                    }
                    out.push(v);
                    i += 3;
                }
                _ => return Err(ConnInfoError::InvalidPercentEncoding(s.to_owned())),
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ConnInfoError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(s: &str) -> Vec<(String, String)> {
        parse_key_value(s).unwrap()
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn key_value_basic() {
        assert_eq!(
            kv("host=localhost port=5432 dbname=mydb"),
            pairs(&[("host", "localhost"), ("port", "5432"), ("dbname", "mydb")])
        );
        assert_eq!(
            kv("  host = h1   user=u "),
            pairs(&[("host", "h1"), ("user", "u")])
        );
        assert_eq!(kv(""), pairs(&[]));
        assert_eq!(kv("   "), pairs(&[]));
    }

    #[test]
    fn key_value_quoting_and_escapes() {
        assert_eq!(
            kv(r"password='a b\'c\\d' user=x"),
            pairs(&[("password", r"a b'c\d"), ("user", "x")])
        );
        assert_eq!(kv(r"password=a\ b"), pairs(&[("password", "a b")]));
        assert_eq!(kv("password=''"), pairs(&[("password", "")]));
        assert_eq!(kv(r"password=x\"), pairs(&[("password", "x")]));
        // An unquoted value runs to the next whitespace: libpq reads "port=1" as host's value.
        assert_eq!(kv("host= port=1"), pairs(&[("host", "port=1")]));
        assert_eq!(
            kv("application_name='héllo wörld'"),
            pairs(&[("application_name", "héllo wörld")])
        );
    }

    #[test]
    fn key_value_errors() {
        assert_eq!(
            parse_key_value("mydb").unwrap_err().to_string(),
            "missing \"=\" after \"mydb\" in connection info string"
        );
        assert_eq!(
            parse_key_value("host").unwrap_err(),
            ConnInfoError::MissingEquals("host".into())
        );
        assert_eq!(
            parse_key_value("password='abc").unwrap_err().to_string(),
            "unterminated quoted string in connection info string"
        );
        assert_eq!(
            parse_key_value("hots=x").unwrap_err().to_string(),
            "invalid connection option \"hots\""
        );
    }

    #[test]
    fn uri_full() {
        assert_eq!(
            parse_uri("postgresql://user:secret@host1:5433,host2:5434/db?application_name=app&sslmode=require")
                .unwrap(),
            pairs(&[
                ("user", "user"),
                ("password", "secret"),
                ("host", "host1,host2"),
                ("port", "5433,5434"),
                ("dbname", "db"),
                ("application_name", "app"),
                ("sslmode", "require"),
            ])
        );
    }

    #[test]
    fn uri_minimal_forms() {
        assert_eq!(parse_uri("postgresql://").unwrap(), pairs(&[]));
        assert_eq!(parse_uri("postgres://h").unwrap(), pairs(&[("host", "h")]));
        assert_eq!(
            parse_uri("postgresql://h/").unwrap(),
            pairs(&[("host", "h")])
        );
        assert_eq!(
            parse_uri("postgresql:///db").unwrap(),
            pairs(&[("dbname", "db")])
        );
        assert_eq!(
            parse_uri("postgresql://:5433").unwrap(),
            pairs(&[("port", "5433")])
        );
        assert_eq!(
            parse_uri("postgresql://u@").unwrap(),
            pairs(&[("user", "u")])
        );
        assert_eq!(
            parse_uri("postgresql://u:@h").unwrap(),
            pairs(&[("user", "u"), ("host", "h")])
        );
        assert_eq!(
            parse_uri("postgresql://?host=/tmp&port=1").unwrap(),
            pairs(&[("host", "/tmp"), ("port", "1")])
        );
        assert_eq!(
            parse_uri("postgresql://h?").unwrap(),
            pairs(&[("host", "h")])
        );
    }

    #[test]
    fn uri_percent_decoding_and_unix_sockets() {
        assert_eq!(
            parse_uri("postgresql://%2Fvar%2Frun%2Fpostgresql/db").unwrap(),
            pairs(&[("host", "/var/run/postgresql"), ("dbname", "db")])
        );
        assert_eq!(
            parse_uri("postgresql://us%40er:p%3Aw%2Fd@h/d%20b").unwrap(),
            pairs(&[
                ("user", "us@er"),
                ("password", "p:w/d"),
                ("host", "h"),
                ("dbname", "d b")
            ])
        );
        assert_eq!(
            parse_uri("postgresql:///db?host=%2Ftmp").unwrap(),
            pairs(&[("dbname", "db"), ("host", "/tmp")])
        );
        // '+' stays a plus sign.
        assert_eq!(
            parse_uri("postgresql://h/?application_name=a+b").unwrap(),
            pairs(&[("host", "h"), ("application_name", "a+b")])
        );
    }

    #[test]
    fn uri_ipv6() {
        assert_eq!(
            parse_uri("postgresql://[::1]:5433,[fe80::1]/db").unwrap(),
            pairs(&[("host", "::1,fe80::1"), ("port", "5433,"), ("dbname", "db")])
        );
        assert_eq!(
            parse_uri("postgresql://[::1").unwrap_err(),
            ConnInfoError::UriUnterminatedIpv6("postgresql://[::1".into())
        );
        assert_eq!(
            parse_uri("postgresql://[]").unwrap_err(),
            ConnInfoError::UriEmptyIpv6("postgresql://[]".into())
        );
        assert_eq!(
            parse_uri("postgresql://[::1]x").unwrap_err().to_string(),
            "unexpected character \"x\" at position 19 in URI (expected \":\" or \"/\"): \"postgresql://[::1]x\""
        );
    }

    #[test]
    fn uri_ssl_true_and_errors() {
        assert_eq!(
            parse_uri("postgresql://h?ssl=true").unwrap(),
            pairs(&[("host", "h"), ("sslmode", "require")])
        );
        assert_eq!(
            parse_uri("postgresql://h?bogus=1").unwrap_err().to_string(),
            "invalid URI query parameter: \"bogus\""
        );
        assert_eq!(
            parse_uri("postgresql://h?sslmode").unwrap_err(),
            ConnInfoError::UriParamMissingEquals("sslmode".into())
        );
        assert_eq!(
            parse_uri("postgresql://h?a=b=c").unwrap_err(),
            ConnInfoError::UriParamExtraEquals("a=b=c".into())
        );
        assert_eq!(
            parse_uri("postgresql://h/%zz").unwrap_err(),
            ConnInfoError::InvalidPercentEncoding("%zz".into())
        );
        assert_eq!(
            parse_uri("postgresql://h/%00").unwrap_err(),
            ConnInfoError::PercentNul("%00".into())
        );
        assert_eq!(
            parse_uri("postgresql://h/%4").unwrap_err(),
            ConnInfoError::InvalidPercentEncoding("%4".into())
        );
    }

    #[test]
    fn keywords_known() {
        for k in ["host", "sslrootcert", "replication", "target_session_attrs"] {
            assert!(is_keyword(k));
        }
        assert!(!is_keyword("ssl"));
    }
}
