//! libpq-compatible connection parameters.
//!
//! A [`Config`] is built the way libpq builds a connection: from a connection string (either
//! `key=value` pairs or a `postgresql://` URI), then environment variables (`PGHOST`,
//! `PGPORT`, `PGUSER`, ...), then libpq's built-in defaults. The password, if not given, is
//! looked up per host in the password file (`~/.pgpass` or `PGPASSFILE`) when connecting.
//! Parsing is pure; the environment is read through the [`Environment`] trait so tests can
//! supply their own.
//!
//! ```
//! use pgwal::conninfo::{Config, Host, MapEnvironment, SslMode};
//!
//! let env = MapEnvironment::new().with_user("postgres").with_dir("/var/run/postgresql");
//! let cfg = Config::parse_with_env(
//!     "postgresql://rep@db1:5433,db2/replication?sslmode=verify-full&application_name=arch",
//!     &env,
//! )
//! .unwrap();
//! assert_eq!(cfg.hosts.len(), 2);
//! assert_eq!(cfg.hosts[0].port, 5433);
//! assert_eq!(cfg.hosts[1].port, 5432);
//! assert_eq!(cfg.user, "rep");
//! assert_eq!(cfg.ssl_mode, SslMode::VerifyFull);
//! assert_eq!(cfg.effective_application_name(), Some("arch"));
//!
//! // No host at all: the default Unix socket directory.
//! let local = Config::parse_with_env("", &env).unwrap();
//! assert_eq!(local.hosts[0].host, Host::Unix("/var/run/postgresql".into()));
//! assert_eq!(local.user, "postgres");
//! ```
//!
//! # Keywords
//! Every libpq 13–18 keyword parses. These are used: `host`, `hostaddr`, `port`, `user`,
//! `password`, `passfile`, `dbname`, `connect_timeout`, `application_name`,
//! `fallback_application_name`, `options`, `sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
//! `sslcrl`, `sslcrldir`, `channel_binding`, `min_protocol_version`, `max_protocol_version`,
//! `require_auth`, `sslnegotiation`, `service` and `servicefile` (the connection service file, see
//! [`SYSCONFDIR`]). Keywords that would change security or routing (
//! `sslpassword`, `gssencmode`,
//! `requirepeer`, `target_session_attrs`, `load_balance_hosts`,
//! `sslcertmode`, `scram_client_key`, `scram_server_key`,
//! `oauth_*`) are rejected with [`ConnInfoError::Unsupported`] unless their value is
//! libpq's default. The rest (TCP keepalives, `client_encoding`, `sslsni`, `sslcompression`,
//! `ssl_min_protocol_version`, `ssl_max_protocol_version`, `krbsrvname`, `gsslib`,
//! `gssdelegation`, `sslkeylogfile`, `replication`, `tcp_user_timeout`) are accepted and
//! ignored: a replication client always sends `replication=true`.

mod env;
mod parse;
mod pgpass;
mod redact;
mod require_auth;
pub(crate) mod service;

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use env::{Environment, MapEnvironment, SystemEnvironment};
pub use pgpass::{PassFile, PassFileError};
pub use redact::{is_secret_keyword, REDACTED};
pub use require_auth::{AuthMethod, RequireAuth};
pub use service::SYSCONFDIR;

/// libpq's default port (`DEF_PGPORT`).
pub const DEFAULT_PORT: u16 = 5432;

/// The compiled-in socket directory of Debian's libpq (`DEFAULT_PGSOCKET_DIR`).
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// The socket directory used when [`DEFAULT_SOCKET_DIR`] does not exist (upstream's default).
pub const FALLBACK_SOCKET_DIR: &str = "/tmp";

/// A connection string or its values could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnInfoError {
    /// A `key=value` string had a keyword without `=`.
    #[error("missing \"=\" after \"{0}\" in connection info string")]
    MissingEquals(String),
    /// A quoted value had no closing quote.
    #[error("unterminated quoted string in connection info string")]
    UnterminatedQuote,
    /// An unknown keyword.
    #[error("invalid connection option \"{0}\"")]
    InvalidOption(String),
    /// The string does not start with `postgresql://` or `postgres://`.
    #[error("invalid URI: \"{0}\"")]
    InvalidUri(String),
    /// An unknown URI query parameter.
    #[error("invalid URI query parameter: \"{0}\"")]
    InvalidUriParam(String),
    /// A URI query parameter without `=`.
    #[error("missing key/value separator \"=\" in URI query parameter: \"{0}\"")]
    UriParamMissingEquals(String),
    /// A URI query parameter with two `=`.
    #[error("extra key/value separator \"=\" in URI query parameter: \"{0}\"")]
    UriParamExtraEquals(String),
    /// A `[` without `]` in a URI host.
    #[error("end of string reached when looking for matching \"]\" in IPv6 host address in URI: \"{0}\"")]
    UriUnterminatedIpv6(String),
    /// `[]` in a URI host.
    #[error("IPv6 host address may not be empty in URI: \"{0}\"")]
    UriEmptyIpv6(String),
    /// Junk after `]` in a URI host.
    #[error("unexpected character \"{ch}\" at position {pos} in URI (expected \":\" or \"/\"): \"{uri}\"")]
    UriUnexpectedChar {
        /// The character.
        ch: char,
        /// Its 1-based position.
        pos: usize,
        /// The whole URI.
        uri: String,
    },
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoded token: \"{0}\"")]
    InvalidPercentEncoding(String),
    /// `%00` in a URI.
    #[error("forbidden value %00 in percent-encoded value: \"{0}\"")]
    PercentNul(String),
    /// A value decoded to bytes that are not UTF-8.
    #[error("connection parameter value is not valid UTF-8")]
    NotUtf8,
    /// A value outside its keyword's allowed set.
    #[error("invalid {option} value: \"{value}\"")]
    InvalidValue {
        /// The keyword.
        option: &'static str,
        /// The value.
        value: String,
    },
    /// `require_auth` mixes negated and plain methods.
    #[error("{}", if *.negative {
        format!("negative require_auth method \"{method}\" cannot be mixed with non-negative methods")
    } else {
        format!("require_auth method \"{method}\" cannot be mixed with negative methods")
    })]
    RequireAuthMixed {
        /// The method that breaks the pattern, as written.
        method: String,
        /// Whether it is the negated one.
        negative: bool,
    },
    /// The service file could not be used: not found, no such service, or a line libpq
    /// refuses (the message names the file and line).
    #[error("{0}")]
    ServiceFile(String),
    /// `sslnegotiation=direct` with an `sslmode` that allows a plain connection.
    #[error(
        "weak sslmode \"{0}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")"
    )]
    WeakSslModeForDirect(SslMode),
    /// `require_auth` names a method twice.
    #[error("require_auth method \"{0}\" is specified more than once")]
    RequireAuthDuplicate(String),
    /// `min_protocol_version` is above `max_protocol_version`.
    #[error("\"min_protocol_version\" is greater than \"max_protocol_version\"")]
    ProtocolVersionRange,
    /// A keyword that takes an integer got something else.
    #[error("invalid integer value \"{value}\" for connection option \"{option}\"")]
    InvalidInteger {
        /// The keyword.
        option: &'static str,
        /// The value.
        value: String,
    },
    /// `host` and `hostaddr` list different numbers of entries.
    #[error("could not match {hosts} host names to {hostaddrs} hostaddr values")]
    HostaddrCountMismatch {
        /// Entries in `host`.
        hosts: usize,
        /// Entries in `hostaddr`.
        hostaddrs: usize,
    },
    /// `port` lists neither one entry nor one per host.
    #[error("could not match {ports} port numbers to {hosts} hosts")]
    PortCountMismatch {
        /// Entries in `port`.
        ports: usize,
        /// Hosts.
        hosts: usize,
    },
    /// A `hostaddr` entry is not a numeric IP address.
    #[error("could not parse network address \"{0}\"")]
    InvalidHostaddr(String),
    /// No `user` was given and the OS user name could not be found.
    #[error("could not look up local user name; set the user explicitly (user=... or PGUSER)")]
    NoUserName,
    /// A keyword that pgwal does not implement was set to a non-default value.
    #[error("connection option \"{option}\" with value \"{value}\" is not supported")]
    Unsupported {
        /// The keyword.
        option: String,
        /// The value.
        value: String,
    },
    /// A secret keyword (see [`is_secret_keyword`]) that pgwal does not implement was set.
    /// Its value is not kept.
    #[error("connection option \"{option}\" is not supported (its value is not shown)")]
    UnsupportedSecret {
        /// The keyword.
        option: String,
    },
    /// The value of a secret keyword, or the text right after it, could not be parsed. The
    /// text is not kept: it may be (part of) the secret.
    #[error(
        "invalid value for connection option \"{option}\": {problem} (the value is not shown)"
    )]
    InvalidSecret {
        /// The keyword.
        option: String,
        /// What is wrong with it.
        problem: &'static str,
    },
}

impl ConnInfoError {
    /// [`ConnInfoError::Unsupported`], or [`ConnInfoError::UnsupportedSecret`] for a secret
    /// keyword.
    fn unsupported(option: &str, value: String) -> ConnInfoError {
        if is_secret_keyword(option) {
            ConnInfoError::UnsupportedSecret {
                option: option.to_owned(),
            }
        } else {
            ConnInfoError::Unsupported {
                option: option.to_owned(),
                value,
            }
        }
    }
}

/// The raw (keyword, value) pairs of a connection string, before defaults are applied.
///
/// Later occurrences of a keyword replace earlier ones, as in libpq.
///
/// ```
/// use pgwal::conninfo::ConnInfo;
/// let mut info = ConnInfo::parse("host=h1 port=5433 host=h2").unwrap();
/// assert_eq!(info.get("host"), Some("h2"));
/// info.set("user", "rep").unwrap();
/// assert!(info.set("bogus", "x").is_err());
/// // Debug output never shows a secret value.
/// info.set("password", "S3cret").unwrap();
/// assert!(!format!("{info:?}").contains("S3cret"));
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ConnInfo {
    values: BTreeMap<String, String>,
}

impl fmt::Debug for ConnInfo {
    /// The (keyword, value) pairs, with the values of secret keywords redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnInfo ")?;
        f.debug_map()
            .entries(self.values.iter().map(|(k, v)| {
                let v = if is_secret_keyword(k) { REDACTED } else { v };
                (k, v)
            }))
            .finish()
    }
}

impl ConnInfo {
    /// Parses a `key=value` string or a `postgresql://`/`postgres://` URI.
    pub fn parse(s: &str) -> Result<ConnInfo, ConnInfoError> {
        let pairs = if parse::uri_prefix_len(s).is_some() {
            parse::parse_uri(s)?
        } else {
            parse::parse_key_value(s)?
        };
        let mut info = ConnInfo::default();
        for (k, v) in pairs {
            info.values.insert(k, v);
        }
        Ok(info)
    }

    /// True if `s` looks like a connection string rather than a bare database name (libpq's
    /// `recognized_connection_string()`: a URI prefix or an `=`).
    pub fn is_connection_string(s: &str) -> bool {
        parse::uri_prefix_len(s).is_some() || s.contains('=')
    }

    /// The value of `keyword`, if set (possibly to the empty string).
    pub fn get(&self, keyword: &str) -> Option<&str> {
        self.values.get(keyword).map(String::as_str)
    }

    /// Sets `keyword`, replacing any earlier value. Unknown keywords are rejected.
    pub fn set(&mut self, keyword: &str, value: &str) -> Result<(), ConnInfoError> {
        if !parse::is_keyword(keyword) {
            return Err(ConnInfoError::InvalidOption(keyword.to_owned()));
        }
        self.values.insert(keyword.to_owned(), value.to_owned());
        Ok(())
    }

    /// Removes `keyword`, so that its environment variable or default applies again.
    pub fn remove(&mut self, keyword: &str) -> Option<String> {
        self.values.remove(keyword)
    }

    /// The set (keyword, value) pairs, sorted by keyword.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl FromStr for ConnInfo {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<ConnInfo, ConnInfoError> {
        ConnInfo::parse(s)
    }
}

/// libpq's `sslmode`.
///
/// | mode | encryption | server certificate |
/// |---|---|---|
/// | `disable` | never | – |
/// | `allow` | only if the server insists (plain first, TLS on retry) | as `require` |
/// | `prefer` (default) | if the server supports it (TLS first, plain on failure) | as `require` |
/// | `require` | always | not checked, unless a root certificate file exists: then as `verify-ca` |
/// | `verify-ca` | always | chain checked against `sslrootcert` |
/// | `verify-full` | always | chain and host name checked |
///
/// Like libpq, TLS is never used over Unix-domain sockets, whatever the mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SslMode {
    /// Only plain connections.
    Disable,
    /// Plain first; TLS if the plain attempt is rejected.
    Allow,
    /// TLS first; plain if the server does not support TLS or rejects the TLS attempt.
    #[default]
    Prefer,
    /// TLS only.
    Require,
    /// TLS only, with the server certificate's chain verified.
    VerifyCa,
    /// TLS only, with the chain and the host name verified.
    VerifyFull,
}

impl SslMode {
    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// True for `verify-ca` and `verify-full`, which need a root certificate.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    /// True for the modes that never fall back to a plain connection.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }
}

/// libpq's `sslnegotiation` (PostgreSQL 17 on): how a TLS connection starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SslNegotiation {
    /// An SSLRequest first, then the handshake if the server agrees (every major).
    #[default]
    Postgres,
    /// The TLS handshake at once, with ALPN `postgresql` (servers from 17 on); one round trip
    /// less, and only with `sslmode` `require` or stricter.
    Direct,
}

impl FromStr for SslNegotiation {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<SslNegotiation, ConnInfoError> {
        match s {
            "postgres" => Ok(SslNegotiation::Postgres),
            "direct" => Ok(SslNegotiation::Direct),
            _ => Err(ConnInfoError::InvalidValue {
                option: "sslnegotiation",
                value: s.to_owned(),
            }),
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<SslMode, ConnInfoError> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => {
                return Err(ConnInfoError::InvalidValue {
                    option: "sslmode",
                    value: s.to_owned(),
                })
            }
        })
    }
}

/// libpq's `channel_binding`: whether SCRAM must bind to the TLS channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ChannelBindingMode {
    /// Never use channel binding.
    Disable,
    /// Use `SCRAM-SHA-256-PLUS` when TLS is on and the server offers it.
    #[default]
    Prefer,
    /// Fail unless the server authenticates with `SCRAM-SHA-256-PLUS`.
    Require,
}

impl FromStr for ChannelBindingMode {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<ChannelBindingMode, ConnInfoError> {
        Ok(match s {
            "disable" => ChannelBindingMode::Disable,
            "prefer" => ChannelBindingMode::Prefer,
            "require" => ChannelBindingMode::Require,
            _ => {
                return Err(ConnInfoError::InvalidValue {
                    option: "channel_binding",
                    value: s.to_owned(),
                })
            }
        })
    }
}

/// A version of PostgreSQL's frontend/backend protocol (libpq's `min_protocol_version` and
/// `max_protocol_version`). 3.2 (servers from 18 on) differs from 3.0 only in the length of
/// the cancel key; a server of an older major answers a 3.2 startup with
/// NegotiateProtocolVersion, and the connection goes on in 3.0.
///
/// ```
/// use pgwal::conninfo::ProtocolVersion;
///
/// assert_eq!("latest".parse::<ProtocolVersion>().unwrap(), ProtocolVersion::V3_2);
/// assert!(ProtocolVersion::V3_0 < ProtocolVersion::V3_2);
/// assert_eq!(ProtocolVersion::V3_2.code(), 196610);
/// assert_eq!(ProtocolVersion::V3_0.to_string(), "3.0");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum ProtocolVersion {
    /// 3.0, every server since 7.4 (libpq's default).
    #[default]
    V3_0,
    /// 3.2, servers from PostgreSQL 18 on: cancel keys of up to 256 bytes.
    V3_2,
}

impl ProtocolVersion {
    /// The newest version pgwal speaks (`latest`).
    pub const LATEST: ProtocolVersion = ProtocolVersion::V3_2;

    /// The number a startup packet carries: major << 16 | minor.
    pub fn code(self) -> u32 {
        match self {
            ProtocolVersion::V3_0 => 3 << 16,
            ProtocolVersion::V3_2 => 3 << 16 | 2,
        }
    }

    /// The version of startup-packet number `code`, if pgwal speaks it.
    pub fn from_code(code: u32) -> Option<ProtocolVersion> {
        [ProtocolVersion::V3_0, ProtocolVersion::V3_2]
            .into_iter()
            .find(|v| v.code() == code)
    }

    /// `value` of conninfo keyword `option`: `3.0`, `3.2` or `latest`.
    fn parse_keyword(option: &'static str, value: &str) -> Result<ProtocolVersion, ConnInfoError> {
        match value {
            "3.0" => Ok(ProtocolVersion::V3_0),
            "3.2" => Ok(ProtocolVersion::V3_2),
            "latest" => Ok(ProtocolVersion::LATEST),
            _ => Err(ConnInfoError::InvalidValue {
                option,
                value: value.to_owned(),
            }),
        }
    }
}

impl FromStr for ProtocolVersion {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<ProtocolVersion, ConnInfoError> {
        ProtocolVersion::parse_keyword("max_protocol_version", s)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        write!(f, "{}.{}", code >> 16, code & 0xffff)
    }
}

/// Where a server listens.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// A TCP host: a name (looked up at connect time, and checked by `verify-full`), a
    /// numeric address (`hostaddr`, used instead of a lookup), or both.
    Tcp {
        /// The `host` entry: a DNS name or an IP literal.
        name: Option<String>,
        /// The `hostaddr` entry.
        addr: Option<IpAddr>,
    },
    /// A Unix-domain socket directory; the socket is `<dir>/.s.PGSQL.<port>`.
    Unix(PathBuf),
}

/// One host to try, with its port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HostSpec {
    /// The host.
    pub host: Host,
    /// The TCP port, or the number in the socket file name.
    pub port: u16,
}

impl HostSpec {
    /// The socket path of a Unix-domain host.
    pub fn socket_path(&self) -> Option<PathBuf> {
        match &self.host {
            Host::Unix(dir) => Some(dir.join(format!(".s.PGSQL.{}", self.port))),
            Host::Tcp { .. } => None,
        }
    }
}

impl fmt::Display for HostSpec {
    /// libpq's wording: `socket "/tmp/.s.PGSQL.5432"` or `"db1" (10.0.0.1), port 5432`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Unix(_) => {
                let path = self.socket_path().unwrap_or_default();
                write!(f, "socket \"{}\"", path.display())
            }
            Host::Tcp { name, addr } => match (name, addr) {
                (Some(n), Some(a)) => write!(f, "\"{n}\" ({a}), port {}", self.port),
                (Some(n), None) => write!(f, "\"{n}\", port {}", self.port),
                (None, Some(a)) => write!(f, "\"{a}\", port {}", self.port),
                (None, None) => write!(f, "port {}", self.port),
            },
        }
    }
}

/// Resolved connection parameters: what to connect to and how.
///
/// Fields are public so that a caller can adjust a parsed configuration (for example apply
/// command-line options) before connecting.
///
/// ```
/// use pgwal::conninfo::{Config, MapEnvironment};
/// use std::time::Duration;
///
/// let env = MapEnvironment::new()
///     .with_user("alice")
///     .with_home("/home/alice")
///     .with_var("PGCONNECT_TIMEOUT", "1")
///     .with_var("PGAPPNAME", "from-env");
/// let cfg = Config::parse_with_env("host=db fallback_application_name=pgwal", &env).unwrap();
/// assert_eq!(cfg.connect_timeout, Some(Duration::from_secs(2))); // libpq rounds 1 up to 2
/// assert_eq!(cfg.effective_application_name(), Some("from-env"));
/// assert_eq!(cfg.dbname_or_user(), "alice");
/// assert_eq!(cfg.passfile.as_deref(), Some(std::path::Path::new("/home/alice/.pgpass")));
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Hosts to try, in order. Never empty.
    pub hosts: Vec<HostSpec>,
    /// The user name (`user`, `PGUSER`, else the OS user).
    pub user: String,
    /// The database name (`dbname`, `PGDATABASE`); `None` means libpq's default, the user
    /// name. A physical replication connection uses `replication` instead (see
    /// [`ReplicationClient`](crate::replication::client::ReplicationClient)).
    pub dbname: Option<String>,
    /// The password (`password`, `PGPASSWORD`); when `None` the password file is consulted.
    pub password: Option<String>,
    /// The password file (`passfile`, `PGPASSFILE`, else `~/.pgpass`).
    pub passfile: Option<PathBuf>,
    /// Time allowed for each connection attempt (`connect_timeout`, `PGCONNECT_TIMEOUT`).
    pub connect_timeout: Option<Duration>,
    /// `application_name` or `PGAPPNAME`.
    pub application_name: Option<String>,
    /// `fallback_application_name`, used when no application name is set.
    pub fallback_application_name: Option<String>,
    /// Command-line options for the server (`options`, `PGOPTIONS`).
    pub options: Option<String>,
    /// `sslmode` / `PGSSLMODE`.
    pub ssl_mode: SslMode,
    /// The root certificate file (`sslrootcert`, `PGSSLROOTCERT`, else
    /// `~/.postgresql/root.crt`). It need not exist unless `ssl_mode` verifies.
    pub ssl_root_cert: Option<PathBuf>,
    /// The client certificate (`sslcert`, `PGSSLCERT`, else `~/.postgresql/postgresql.crt`),
    /// used if it exists.
    pub ssl_cert: Option<PathBuf>,
    /// The client key (`sslkey`, `PGSSLKEY`, else `~/.postgresql/postgresql.key`).
    pub ssl_key: Option<PathBuf>,
    /// A certificate revocation list, PEM (`sslcrl`, `PGSSLCRL`, else
    /// `~/.postgresql/root.crl`, used if it exists).
    pub ssl_crl: Option<PathBuf>,
    /// A directory of certificate revocation lists, PEM (`sslcrldir`, `PGSSLCRLDIR`).
    pub ssl_crl_dir: Option<PathBuf>,
    /// `channel_binding` / `PGCHANNELBINDING`.
    pub channel_binding: ChannelBindingMode,
    /// `sslnegotiation` / `PGSSLNEGOTIATION`.
    pub ssl_negotiation: SslNegotiation,
    /// The authentication methods the server may ask for (`require_auth`, `PGREQUIREAUTH`);
    /// `None`: any.
    pub require_auth: Option<RequireAuth>,
    /// The oldest protocol version the connection accepts (`min_protocol_version`,
    /// `PGMINPROTOCOLVERSION`; default 3.0).
    pub min_protocol_version: ProtocolVersion,
    /// The protocol version asked for (`max_protocol_version`, `PGMAXPROTOCOLVERSION`); by
    /// default 3.0, as libpq 18, or the latest when `min_protocol_version` is above 3.0.
    pub max_protocol_version: ProtocolVersion,
    /// The socket directory an empty host means; `localhost` in the password file matches it.
    pub default_socket_dir: PathBuf,
}

impl fmt::Debug for Config {
    /// Like a derived `Debug`, with the password and the key file (secret keywords, see
    /// [`is_secret_keyword`]) redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("hosts", &self.hosts)
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("passfile", &self.passfile)
            .field("connect_timeout", &self.connect_timeout)
            .field("application_name", &self.application_name)
            .field("fallback_application_name", &self.fallback_application_name)
            .field("options", &self.options)
            .field("ssl_mode", &self.ssl_mode)
            .field("ssl_root_cert", &self.ssl_root_cert)
            .field("ssl_cert", &self.ssl_cert)
            .field("ssl_key", &self.ssl_key.as_ref().map(|_| REDACTED))
            .field("ssl_crl", &self.ssl_crl)
            .field("ssl_crl_dir", &self.ssl_crl_dir)
            .field("channel_binding", &self.channel_binding)
            .field("ssl_negotiation", &self.ssl_negotiation)
            .field("require_auth", &self.require_auth)
            .field("min_protocol_version", &self.min_protocol_version)
            .field("max_protocol_version", &self.max_protocol_version)
            .field("default_socket_dir", &self.default_socket_dir)
            .finish()
    }
}

impl Config {
    /// Parses a connection string, filling defaults from the process environment.
    pub fn parse(conninfo: &str) -> Result<Config, ConnInfoError> {
        Config::parse_with_env(conninfo, &SystemEnvironment)
    }

    /// Parses a connection string, filling defaults from `env`.
    pub fn parse_with_env(conninfo: &str, env: &dyn Environment) -> Result<Config, ConnInfoError> {
        Config::from_conninfo(&ConnInfo::parse(conninfo)?, env)
    }

    /// Applies environment variables and defaults to parsed values (libpq's
    /// `conninfo_add_defaults()` and `pqConnectOptions2()`).
    pub fn from_conninfo(info: &ConnInfo, env: &dyn Environment) -> Result<Config, ConnInfoError> {
        // The service file's parameters fill what the string leaves unset, before the
        // environment does.
        let serviced = service::apply_service(info, env)?;
        let info = serviced.as_ref().unwrap_or(info);
        // A keyword set in the string, even to "", wins over its environment variable.
        let value = |key: &str, var: Option<&str>| -> Option<String> {
            match info.get(key) {
                Some(v) => Some(v.to_owned()),
                None => var.and_then(|v| env.var(v)),
            }
        };
        let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());

        check_unsupported(info, env)?;

        let home = env.home_dir();
        let default_socket_dir = if env.is_dir(Path::new(DEFAULT_SOCKET_DIR)) {
            PathBuf::from(DEFAULT_SOCKET_DIR)
        } else {
            PathBuf::from(FALLBACK_SOCKET_DIR)
        };

        let hosts = resolve_hosts(
            value("host", Some("PGHOST")).as_deref(),
            value("hostaddr", Some("PGHOSTADDR")).as_deref(),
            value("port", Some("PGPORT")).as_deref(),
            &default_socket_dir,
        )?;

        let user = match non_empty(value("user", Some("PGUSER"))) {
            Some(u) => u,
            None => env.user_name().ok_or(ConnInfoError::NoUserName)?,
        };
        let dbname = non_empty(value("dbname", Some("PGDATABASE")));
        let password = non_empty(value("password", Some("PGPASSWORD")));
        let passfile = match non_empty(value("passfile", Some("PGPASSFILE"))) {
            Some(p) => Some(PathBuf::from(p)),
            None => home.as_ref().map(|h| h.join(".pgpass")),
        };

        let connect_timeout = match non_empty(value("connect_timeout", Some("PGCONNECT_TIMEOUT"))) {
            None => None,
            Some(v) => {
                let secs = parse_int(&v, "connect_timeout")?;
                match secs {
                    s if s <= 0 => None,
                    1 => Some(Duration::from_secs(2)),
                    s => Some(Duration::from_secs(s.unsigned_abs())),
                }
            }
        };

        let ssl_mode = match non_empty(value("sslmode", Some("PGSSLMODE"))) {
            Some(v) => v.parse()?,
            None => SslMode::default(),
        };
        let ssl_negotiation = match non_empty(value("sslnegotiation", Some("PGSSLNEGOTIATION"))) {
            Some(v) => v.parse()?,
            None => SslNegotiation::default(),
        };
        if ssl_negotiation == SslNegotiation::Direct
            && matches!(
                ssl_mode,
                SslMode::Disable | SslMode::Allow | SslMode::Prefer
            )
        {
            return Err(ConnInfoError::WeakSslModeForDirect(ssl_mode));
        }
        let channel_binding = match non_empty(value("channel_binding", Some("PGCHANNELBINDING"))) {
            Some(v) => v.parse()?,
            None => ChannelBindingMode::default(),
        };
        // libpq's `pqConnectOptions2()`: the version asked for defaults to 3.0 (servers and
        // poolers that predate NegotiateProtocolVersion refuse others), or to the latest when
        // the minimum is above 3.0.
        let version =
            |key: &'static str, var: &str| -> Result<Option<ProtocolVersion>, ConnInfoError> {
                non_empty(value(key, Some(var)))
                    .map(|v| ProtocolVersion::parse_keyword(key, &v))
                    .transpose()
            };
        let min_protocol_version =
            version("min_protocol_version", "PGMINPROTOCOLVERSION")?.unwrap_or_default();
        let max_protocol_version = match version("max_protocol_version", "PGMAXPROTOCOLVERSION")? {
            Some(v) => v,
            None if min_protocol_version > ProtocolVersion::V3_0 => ProtocolVersion::LATEST,
            None => ProtocolVersion::V3_0,
        };
        if min_protocol_version > max_protocol_version {
            return Err(ConnInfoError::ProtocolVersionRange);
        }
        // Set even to "" (which allows no method and requires none, as in libpq).
        let require_auth = value("require_auth", Some("PGREQUIREAUTH"))
            .map(|v| RequireAuth::parse(&v))
            .transpose()?;
        let pg_dir = home.as_ref().map(|h| h.join(".postgresql"));
        let ssl_path = |key: &str, var: &str, file: &str| -> Option<PathBuf> {
            match non_empty(value(key, Some(var))) {
                Some(p) => Some(PathBuf::from(p)),
                None => pg_dir.as_ref().map(|d| d.join(file)),
            }
        };
        let ssl_root_cert = ssl_path("sslrootcert", "PGSSLROOTCERT", "root.crt");
        if ssl_root_cert.as_deref() == Some(Path::new("system")) {
            return Err(ConnInfoError::unsupported("sslrootcert", "system".into()));
        }
        let ssl_cert = ssl_path("sslcert", "PGSSLCERT", "postgresql.crt");
        let ssl_key = ssl_path("sslkey", "PGSSLKEY", "postgresql.key");
        let ssl_crl = ssl_path("sslcrl", "PGSSLCRL", "root.crl");
        let ssl_crl_dir = non_empty(value("sslcrldir", Some("PGSSLCRLDIR"))).map(PathBuf::from);

        for key in [
            "keepalives",
            "keepalives_idle",
            "keepalives_interval",
            "keepalives_count",
        ] {
            if let Some(v) = non_empty(info.get(key).map(str::to_owned)) {
                parse_int(&v, static_keyword(key))?;
            }
        }

        Ok(Config {
            hosts,
            user,
            dbname,
            password,
            passfile,
            connect_timeout,
            application_name: value("application_name", Some("PGAPPNAME")),
            fallback_application_name: info.get("fallback_application_name").map(str::to_owned),
            options: non_empty(value("options", Some("PGOPTIONS"))),
            ssl_mode,
            ssl_root_cert,
            ssl_cert,
            ssl_key,
            ssl_crl,
            ssl_crl_dir,
            channel_binding,
            ssl_negotiation,
            require_auth,
            min_protocol_version,
            max_protocol_version,
            default_socket_dir,
        })
    }

    /// The application name sent to the server: `application_name` if set and non-empty,
    /// else `fallback_application_name`.
    pub fn effective_application_name(&self) -> Option<&str> {
        match self.application_name.as_deref() {
            Some(a) if !a.is_empty() => Some(a),
            _ => self
                .fallback_application_name
                .as_deref()
                .filter(|s| !s.is_empty()),
        }
    }

    /// The database name libpq would use: `dbname`, or else the user name.
    pub fn dbname_or_user(&self) -> &str {
        self.dbname.as_deref().unwrap_or(&self.user)
    }

    /// The host name a password-file line must match for `host` (libpq's rules): the host
    /// name, else the `hostaddr`; `localhost` for the default socket directory; other socket
    /// directories as their path.
    pub fn pgpass_host(&self, host: &HostSpec) -> String {
        match &host.host {
            Host::Tcp { name: Some(n), .. } => n.clone(),
            Host::Tcp {
                name: None,
                addr: Some(a),
            } => a.to_string(),
            Host::Tcp {
                name: None,
                addr: None,
            } => "localhost".to_owned(),
            Host::Unix(dir) => {
                if *dir == self.default_socket_dir || dir == Path::new(DEFAULT_SOCKET_DIR) {
                    "localhost".to_owned()
                } else {
                    dir.display().to_string()
                }
            }
        }
    }

    /// The password for connecting to `host` as database `dbname`: [`Config::password`] if
    /// set, else the first matching password-file line. An unusable password file is
    /// reported through `tracing` (as libpq's warning) and ignored.
    pub fn password_for(&self, host: &HostSpec, dbname: &str) -> Option<String> {
        if let Some(p) = &self.password {
            return Some(p.clone());
        }
        let path = self.passfile.as_ref()?;
        match PassFile::read(path) {
            Ok(file) => file.find(
                &self.pgpass_host(host),
                &host.port.to_string(),
                dbname,
                &self.user,
            ),
            Err(PassFileError::Missing(_)) => None,
            Err(e) => {
                tracing::warn!("WARNING: {e}");
                None
            }
        }
    }
}

/// Maps a keyword to its `'static` spelling for error values.
fn static_keyword(key: &str) -> &'static str {
    parse::KEYWORDS
        .iter()
        .find(|k| **k == key)
        .copied()
        .unwrap_or("option")
}

/// libpq's `parse_int_param()`: optional surrounding whitespace, a sign, decimal digits.
fn parse_int(v: &str, option: &'static str) -> Result<i64, ConnInfoError> {
    v.trim()
        .parse::<i32>()
        .map(i64::from)
        .map_err(|_| ConnInfoError::InvalidInteger {
            option,
            value: v.to_owned(),
        })
}

/// Rejects keywords whose non-default values pgwal would otherwise silently ignore.
fn check_unsupported(info: &ConnInfo, env: &dyn Environment) -> Result<(), ConnInfoError> {
    // (keyword, environment variable, values that mean "libpq's default behaviour").
    const CHECKED: &[(&str, Option<&str>, &[&str])] = &[
        ("sslpassword", None, &[]),
        ("sslcertmode", Some("PGSSLCERTMODE"), &["allow"]),
        ("gssencmode", Some("PGGSSENCMODE"), &["disable", "prefer"]),
        ("requirepeer", Some("PGREQUIREPEER"), &[]),
        (
            "target_session_attrs",
            Some("PGTARGETSESSIONATTRS"),
            &["any"],
        ),
        (
            "load_balance_hosts",
            Some("PGLOADBALANCEHOSTS"),
            &["disable"],
        ),
        ("scram_client_key", None, &[]),
        ("scram_server_key", None, &[]),
        ("oauth_issuer", None, &[]),
        ("oauth_client_id", None, &[]),
        ("oauth_client_secret", None, &[]),
        ("oauth_scope", None, &[]),
    ];
    for (key, var, ok) in CHECKED {
        let v = match info.get(key) {
            Some(v) => Some(v.to_owned()),
            None => var.and_then(|v| env.var(v)),
        };
        if let Some(v) = v {
            if !v.is_empty() && !ok.contains(&v.as_str()) {
                return Err(ConnInfoError::unsupported(key, v));
            }
        }
    }
    Ok(())
}

/// Builds the host list from the `host`, `hostaddr` and `port` lists (`pqConnectOptions2()`).
fn resolve_hosts(
    host: Option<&str>,
    hostaddr: Option<&str>,
    port: Option<&str>,
    default_socket_dir: &Path,
) -> Result<Vec<HostSpec>, ConnInfoError> {
    let split = |s: Option<&str>| -> Vec<String> {
        match s {
            Some(s) if !s.is_empty() => s.split(',').map(str::to_owned).collect(),
            _ => Vec::new(),
        }
    };
    let names = split(host);
    let addrs = split(hostaddr);
    let count = if !addrs.is_empty() {
        if !names.is_empty() && names.len() != addrs.len() {
            return Err(ConnInfoError::HostaddrCountMismatch {
                hosts: names.len(),
                hostaddrs: addrs.len(),
            });
        }
        addrs.len()
    } else {
        names.len().max(1)
    };
    let ports = split(port);
    if ports.len() > 1 && ports.len() != count {
        return Err(ConnInfoError::PortCountMismatch {
            ports: ports.len(),
            hosts: count,
        });
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let name = names.get(i).filter(|s| !s.is_empty());
        let addr = match addrs.get(i).filter(|s| !s.is_empty()) {
            Some(a) => Some(
                a.parse::<IpAddr>()
                    .map_err(|_| ConnInfoError::InvalidHostaddr(a.clone()))?,
            ),
            None => None,
        };
        let port_text = if ports.len() == 1 {
            ports.first()
        } else {
            ports.get(i)
        };
        let port = match port_text.filter(|s| !s.is_empty()) {
            None => DEFAULT_PORT,
            Some(p) => {
                let v = parse_int(p, "port")?;
                u16::try_from(v).ok().filter(|v| *v != 0).ok_or_else(|| {
                    ConnInfoError::InvalidInteger {
                        option: "port",
                        value: p.clone(),
                    }
                })?
            }
        };
        let host = match (name, addr) {
            (_, Some(a)) => Host::Tcp {
                name: name.cloned(),
                addr: Some(a),
            },
            (Some(n), None) if n.starts_with('/') => Host::Unix(PathBuf::from(n)),
            (Some(n), None) => Host::Tcp {
                name: Some(n.clone()),
                addr: None,
            },
            (None, None) => Host::Unix(default_socket_dir.to_owned()),
        };
        out.push(HostSpec { host, port });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> MapEnvironment {
        MapEnvironment::new()
            .with_user("osuser")
            .with_home("/home/osuser")
            .with_dir(DEFAULT_SOCKET_DIR)
    }

    fn cfg(s: &str) -> Config {
        Config::parse_with_env(s, &env()).unwrap()
    }

    #[test]
    fn ssl_negotiation_as_libpq_19() {
        assert_eq!(cfg("host=h").ssl_negotiation, SslNegotiation::Postgres);
        let c = cfg("host=h sslnegotiation=direct sslmode=verify-full");
        assert_eq!(c.ssl_negotiation, SslNegotiation::Direct);
        let bad =
            |s: &str, e: &MapEnvironment| Config::parse_with_env(s, e).unwrap_err().to_string();
        for mode in ["disable", "allow", "prefer"] {
            assert_eq!(
                bad(&format!("host=h sslnegotiation=direct sslmode={mode}"), &env()),
                format!("weak sslmode \"{mode}\" may not be used with sslnegotiation=direct (use \"require\", \"verify-ca\", or \"verify-full\")")
            );
        }
        // sslmode's default, prefer, is weak too.
        let e = env().with_var("PGSSLNEGOTIATION", "direct");
        assert!(bad("host=h", &e).starts_with("weak sslmode \"prefer\""));
        assert_eq!(
            bad("host=h sslnegotiation=foo", &env()),
            "invalid sslnegotiation value: \"foo\""
        );
    }

    #[test]
    fn protocol_versions_as_libpq_18() {
        let c = cfg("host=h");
        assert_eq!(
            (c.min_protocol_version, c.max_protocol_version),
            (ProtocolVersion::V3_0, ProtocolVersion::V3_0)
        );
        let c = cfg("host=h max_protocol_version=latest");
        assert_eq!(c.max_protocol_version, ProtocolVersion::V3_2);
        // A minimum above 3.0 asks for the latest unless a maximum is given.
        let c = cfg("host=h min_protocol_version=3.2");
        assert_eq!(
            (c.min_protocol_version, c.max_protocol_version),
            (ProtocolVersion::V3_2, ProtocolVersion::V3_2)
        );
        let e = env()
            .with_var("PGMAXPROTOCOLVERSION", "3.2")
            .with_var("PGMINPROTOCOLVERSION", "3.0");
        let c = Config::parse_with_env("host=h", &e).unwrap();
        assert_eq!(c.max_protocol_version, ProtocolVersion::V3_2);
        // The string wins over the environment.
        let c = Config::parse_with_env("host=h max_protocol_version=3.0", &e).unwrap();
        assert_eq!(c.max_protocol_version, ProtocolVersion::V3_0);
        let bad = |s: &str| Config::parse_with_env(s, &env()).unwrap_err().to_string();
        assert_eq!(
            bad("host=h min_protocol_version=3.2 max_protocol_version=3.0"),
            "\"min_protocol_version\" is greater than \"max_protocol_version\""
        );
        assert_eq!(
            bad("host=h max_protocol_version=3.1"),
            "invalid max_protocol_version value: \"3.1\""
        );
        assert_eq!(
            bad("host=h min_protocol_version=4"),
            "invalid min_protocol_version value: \"4\""
        );
    }

    fn tcp(name: &str, port: u16) -> HostSpec {
        HostSpec {
            host: Host::Tcp {
                name: Some(name.into()),
                addr: None,
            },
            port,
        }
    }

    #[test]
    fn libpq_defaults() {
        let c = cfg("");
        assert_eq!(
            c.hosts,
            vec![HostSpec {
                host: Host::Unix(DEFAULT_SOCKET_DIR.into()),
                port: 5432
            }]
        );
        assert_eq!(c.user, "osuser");
        assert_eq!(c.dbname, None);
        assert_eq!(c.dbname_or_user(), "osuser");
        assert_eq!(c.password, None);
        assert_eq!(c.passfile, Some(PathBuf::from("/home/osuser/.pgpass")));
        assert_eq!(c.connect_timeout, None);
        assert_eq!(c.ssl_mode, SslMode::Prefer);
        assert_eq!(c.channel_binding, ChannelBindingMode::Prefer);
        assert_eq!(
            c.ssl_root_cert,
            Some(PathBuf::from("/home/osuser/.postgresql/root.crt"))
        );
        assert_eq!(
            c.ssl_cert,
            Some(PathBuf::from("/home/osuser/.postgresql/postgresql.crt"))
        );
        assert_eq!(
            c.ssl_key,
            Some(PathBuf::from("/home/osuser/.postgresql/postgresql.key"))
        );
        assert_eq!(c.effective_application_name(), None);
        assert_eq!(
            c.hosts[0].socket_path(),
            Some(PathBuf::from("/var/run/postgresql/.s.PGSQL.5432"))
        );
    }

    #[test]
    fn socket_dir_falls_back_to_tmp() {
        let c = Config::parse_with_env("port=5433", &MapEnvironment::new().with_user("u")).unwrap();
        assert_eq!(c.hosts[0].host, Host::Unix("/tmp".into()));
        assert_eq!(
            c.hosts[0].socket_path(),
            Some(PathBuf::from("/tmp/.s.PGSQL.5433"))
        );
        // Without a home directory there is no default password file or certificates.
        assert_eq!(c.passfile, None);
        assert_eq!(c.ssl_root_cert, None);
    }

    #[test]
    fn environment_variables() {
        let e = env()
            .with_var("PGHOST", "h1,/sockets")
            .with_var("PGPORT", "6000")
            .with_var("PGUSER", "envuser")
            .with_var("PGPASSWORD", "envpw")
            .with_var("PGPASSFILE", "/etc/pgpass")
            .with_var("PGDATABASE", "envdb")
            .with_var("PGAPPNAME", "envapp")
            .with_var("PGSSLMODE", "verify-ca")
            .with_var("PGSSLROOTCERT", "/ca.pem")
            .with_var("PGSSLCERT", "/c.pem")
            .with_var("PGSSLKEY", "/k.pem")
            .with_var("PGCONNECT_TIMEOUT", "7")
            .with_var("PGCHANNELBINDING", "require")
            .with_var("PGOPTIONS", "-c wal_sender_timeout=0");
        let c = Config::parse_with_env("", &e).unwrap();
        assert_eq!(
            c.hosts,
            vec![
                tcp("h1", 6000),
                HostSpec {
                    host: Host::Unix("/sockets".into()),
                    port: 6000
                }
            ]
        );
        assert_eq!(c.user, "envuser");
        assert_eq!(c.password.as_deref(), Some("envpw"));
        assert_eq!(c.passfile, Some(PathBuf::from("/etc/pgpass")));
        assert_eq!(c.dbname.as_deref(), Some("envdb"));
        assert_eq!(c.effective_application_name(), Some("envapp"));
        assert_eq!(c.ssl_mode, SslMode::VerifyCa);
        assert_eq!(c.ssl_root_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(c.ssl_cert, Some(PathBuf::from("/c.pem")));
        assert_eq!(c.ssl_key, Some(PathBuf::from("/k.pem")));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(7)));
        assert_eq!(c.channel_binding, ChannelBindingMode::Require);
        assert_eq!(c.options.as_deref(), Some("-c wal_sender_timeout=0"));

        // Explicit values win over the environment, even empty ones.
        let c = Config::parse_with_env("host=x port=1 user=u application_name=''", &e).unwrap();
        assert_eq!(c.hosts, vec![tcp("x", 1)]);
        assert_eq!(c.user, "u");
        assert_eq!(c.effective_application_name(), None);
        // An explicitly empty host means the default socket directory, not PGHOST.
        let c = Config::parse_with_env("host=''", &e).unwrap();
        assert_eq!(c.hosts[0].host, Host::Unix(DEFAULT_SOCKET_DIR.into()));
    }

    #[test]
    fn multiple_hosts_and_ports() {
        let c = cfg("host=a,b,/s port=1,,3");
        assert_eq!(
            c.hosts,
            vec![
                tcp("a", 1),
                tcp("b", 5432),
                HostSpec {
                    host: Host::Unix("/s".into()),
                    port: 3
                }
            ]
        );
        let c = cfg("host=a,b port=7");
        assert_eq!(c.hosts, vec![tcp("a", 7), tcp("b", 7)]);
        // An empty entry is the default socket directory.
        let c = cfg("host=a,");
        assert_eq!(c.hosts[1].host, Host::Unix(DEFAULT_SOCKET_DIR.into()));
        assert_eq!(
            Config::parse_with_env("host=a,b port=1,2,3", &env()).unwrap_err(),
            ConnInfoError::PortCountMismatch { ports: 3, hosts: 2 }
        );
        let c = cfg("postgresql://u@h1:1,h2:2,[::1]:3/db");
        assert_eq!(c.hosts, vec![tcp("h1", 1), tcp("h2", 2), tcp("::1", 3)]);
        assert_eq!(c.dbname.as_deref(), Some("db"));
    }

    #[test]
    fn hostaddr() {
        let c = cfg("hostaddr=127.0.0.1,::1 port=9");
        assert_eq!(
            c.hosts[0].host,
            Host::Tcp {
                name: None,
                addr: Some("127.0.0.1".parse().unwrap())
            }
        );
        assert_eq!(c.hosts.len(), 2);
        let c = cfg("host=db hostaddr=10.0.0.1");
        assert_eq!(
            c.hosts[0].host,
            Host::Tcp {
                name: Some("db".into()),
                addr: Some("10.0.0.1".parse().unwrap())
            }
        );
        assert_eq!(c.hosts[0].to_string(), "\"db\" (10.0.0.1), port 5432");
        assert_eq!(
            Config::parse_with_env("host=a,b hostaddr=1.2.3.4", &env()).unwrap_err(),
            ConnInfoError::HostaddrCountMismatch {
                hosts: 2,
                hostaddrs: 1
            }
        );
        assert_eq!(
            Config::parse_with_env("hostaddr=db.example", &env()).unwrap_err(),
            ConnInfoError::InvalidHostaddr("db.example".into())
        );
    }

    #[test]
    fn uri_unix_socket_hosts() {
        let c = cfg("postgresql://%2Fvar%2Flib%2Fpg:5499/db");
        assert_eq!(c.hosts[0].host, Host::Unix("/var/lib/pg".into()));
        assert_eq!(c.hosts[0].port, 5499);
        assert_eq!(
            c.hosts[0].to_string(),
            "socket \"/var/lib/pg/.s.PGSQL.5499\""
        );
        let c = cfg("postgresql:///db?host=/tmp/x&port=5");
        assert_eq!(c.hosts[0].host, Host::Unix("/tmp/x".into()));
        assert_eq!(c.hosts[0].port, 5);
    }

    #[test]
    fn invalid_values() {
        let bad = |s: &str| Config::parse_with_env(s, &env()).unwrap_err();
        assert_eq!(
            bad("port=x").to_string(),
            "invalid integer value \"x\" for connection option \"port\""
        );
        assert_eq!(
            bad("port=0").to_string(),
            "invalid integer value \"0\" for connection option \"port\""
        );
        assert_eq!(
            bad("port=65536").to_string(),
            "invalid integer value \"65536\" for connection option \"port\""
        );
        assert_eq!(
            bad("sslmode=maybe").to_string(),
            "invalid sslmode value: \"maybe\""
        );
        assert_eq!(
            bad("channel_binding=x").to_string(),
            "invalid channel_binding value: \"x\""
        );
        assert_eq!(
            bad("connect_timeout=soon").to_string(),
            "invalid integer value \"soon\" for connection option \"connect_timeout\""
        );
        assert!(matches!(bad("service=x"), ConnInfoError::ServiceFile(_)));
        assert!(matches!(
            bad("target_session_attrs=read-write"),
            ConnInfoError::Unsupported { .. }
        ));
        assert!(matches!(
            bad("sslrootcert=system"),
            ConnInfoError::Unsupported { .. }
        ));
        assert!(matches!(
            bad("keepalives=x"),
            ConnInfoError::InvalidInteger { .. }
        ));
        // Defaults of checked keywords are fine, and ignored keywords are accepted.
        cfg("target_session_attrs=any sslnegotiation=postgres gssencmode=disable keepalives=1 sslsni=1 replication=true client_encoding=UTF8");
        // Unsupported values in the environment are rejected too.
        let e = env().with_var("PGSERVICE", "svc");
        assert!(Config::parse_with_env("", &e).is_err());
    }

    #[test]
    fn no_user_name() {
        let e = MapEnvironment::new();
        assert_eq!(
            Config::parse_with_env("", &e).unwrap_err(),
            ConnInfoError::NoUserName
        );
        assert_eq!(Config::parse_with_env("user=x", &e).unwrap().user, "x");
    }

    #[test]
    fn connect_timeout_rules() {
        let t = |s: &str| cfg(s).connect_timeout;
        assert_eq!(t("connect_timeout=0"), None);
        assert_eq!(t("connect_timeout=-5"), None);
        assert_eq!(t("connect_timeout=1"), Some(Duration::from_secs(2)));
        assert_eq!(t("connect_timeout=10"), Some(Duration::from_secs(10)));
        assert_eq!(t("connect_timeout=' 3 '"), Some(Duration::from_secs(3)));
    }

    #[test]
    fn application_names() {
        assert_eq!(
            cfg("fallback_application_name=fb").effective_application_name(),
            Some("fb")
        );
        assert_eq!(
            cfg("application_name=a fallback_application_name=fb").effective_application_name(),
            Some("a")
        );
        let e = env().with_var("PGAPPNAME", "envapp");
        let c = Config::parse_with_env("fallback_application_name=fb", &e).unwrap();
        assert_eq!(c.effective_application_name(), Some("envapp"));
    }

    #[test]
    fn pgpass_host_mapping() {
        let c = cfg("host='db,/var/run/postgresql,/other,'");
        let names: Vec<String> = c.hosts.iter().map(|h| c.pgpass_host(h)).collect();
        assert_eq!(names, ["db", "localhost", "/other", "localhost"]);
        let c = cfg("hostaddr=10.1.2.3");
        assert_eq!(c.pgpass_host(&c.hosts[0]), "10.1.2.3");
    }

    #[cfg(unix)]
    #[test]
    fn password_from_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(
            &file,
            "db1:5432:replication:rep:pw-db1\nlocalhost:5432:*:rep:pw-local\n*:*:*:*:pw-any\n",
        )
        .unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let s = format!("host='db1,,db2' user=rep passfile={}", file.display());
        let c = cfg(&s);
        assert_eq!(
            c.password_for(&c.hosts[0], "replication").as_deref(),
            Some("pw-db1")
        );
        assert_eq!(
            c.password_for(&c.hosts[0], "other").as_deref(),
            Some("pw-any")
        );
        assert_eq!(
            c.password_for(&c.hosts[1], "x").as_deref(),
            Some("pw-local")
        );
        assert_eq!(c.password_for(&c.hosts[2], "x").as_deref(), Some("pw-any"));
        // An explicit password wins.
        let c = cfg(&format!("{s} password=explicit"));
        assert_eq!(
            c.password_for(&c.hosts[0], "replication").as_deref(),
            Some("explicit")
        );
        // A group-readable file is ignored.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = cfg(&s);
        assert_eq!(c.password_for(&c.hosts[0], "replication"), None);
    }

    #[test]
    fn conninfo_set_and_iter() {
        let mut i = ConnInfo::parse("host=a").unwrap();
        i.set("port", "1").unwrap();
        assert_eq!(
            i.iter().collect::<Vec<_>>(),
            vec![("host", "a"), ("port", "1")]
        );
        assert_eq!(i.remove("host").as_deref(), Some("a"));
        assert!(ConnInfo::is_connection_string("host=a"));
        assert!(ConnInfo::is_connection_string("postgres://"));
        assert!(!ConnInfo::is_connection_string("mydb"));
        assert_eq!("host=b".parse::<ConnInfo>().unwrap().get("host"), Some("b"));
    }

    #[test]
    fn debug_redacts_password() {
        let c = cfg("password=hunter2");
        let text = format!("{c:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains(REDACTED));
    }

    /// Every error that can carry text from the connection string, for inputs with a secret
    /// in them: neither its message nor its `Debug` output holds the secret.
    #[test]
    fn secrets_never_shown() {
        let cases: &[(&str, &str)] = &[
            (
                "host=/tmp sslpassword=S3cret",
                "\"sslpassword\" is not supported",
            ),
            (
                "scram_client_key=S3cret",
                "\"scram_client_key\" is not supported",
            ),
            (
                "scram_server_key=S3cret",
                "\"scram_server_key\" is not supported",
            ),
            (
                "oauth_client_secret=S3cret",
                "\"oauth_client_secret\" is not supported",
            ),
            ("password=my S3cret", "\"password\": it is followed by text"),
            (
                "password=my S3cret=x",
                "\"password\": it is followed by text",
            ),
            (
                "sslpassword=my S3cret",
                "\"sslpassword\": it is followed by text",
            ),
            ("password='S3cret", "unterminated quoted string"),
            (
                "postgresql://u:S3cret@[::1",
                "postgresql://u:<redacted>@[::1\"",
            ),
            ("postgresql://u:S3cret@[]", "postgresql://u:<redacted>@[]\""),
            (
                "postgresql://u:S3cret@h/db?application_name=a&sslpassword=S3cret",
                "is not supported",
            ),
            (
                "postgresql://u:S3cret%zz@h",
                "\"password\": invalid percent-encoded token",
            ),
            (
                "postgresql://u:S3cret%00@h",
                "\"password\": forbidden value %00",
            ),
            (
                "postgresql://u:%ff%feS3cret@h",
                "\"password\": not valid UTF-8",
            ),
            (
                "postgresql://h?password=S3cret%zz",
                "invalid percent-encoded token",
            ),
            (
                "postgresql://h?password=S3cret=x",
                "extra key/value separator",
            ),
            (
                "postgresql://h?pass%77ord=S3cret=x",
                "extra key/value separator",
            ),
            (
                "postgresql://h?password=S3c&ret",
                "\"password\": it is followed by",
            ),
            (
                "postgresql://h?password=S3c&ret=1",
                "\"password\": it is followed by",
            ),
            (
                "postgresql://h?password=S3c&r=e=t",
                "\"password\": it is followed by",
            ),
            (
                "postgresql://h?password=S3c&%zzret=1",
                "\"password\": it is followed by",
            ),
            (
                "postgresql://u:S3cret@h:port/db",
                "for connection option \"port\"",
            ),
            (
                "postgresql://u:S3cret@h/db?sslmode=maybe",
                "invalid sslmode value",
            ),
            (
                "postgresql://u:S3cret@[::1?password=S3cret",
                "@[::1?password=<redacted>\"",
            ),
        ];
        for (input, expect) in cases {
            let e = Config::parse_with_env(input, &env()).unwrap_err();
            let shown = format!("{e} {e:?} {:?}", crate::replication::Error::from(e.clone()));
            assert!(!shown.contains("S3c"), "{input}: {shown}");
            assert!(e.to_string().contains(expect), "{input}: {e}");
        }
        // The position of an unexpected character is that of the URI shown.
        let e = ConnInfo::parse("postgresql://u:S3cret@[::1]x/db").unwrap_err();
        let ConnInfoError::UriUnexpectedChar { ch, pos, uri } = &e else {
            panic!("{e:?}");
        };
        assert_eq!((*ch, uri.as_bytes()[pos - 1]), ('x', b'x'), "{e}");
        assert!(!e.to_string().contains("S3cret"), "{e}");
        // Debug output of parsed values, from the string and from the environment.
        let s = "host=h password=S3cret sslkey=/k/S3cret.key sslpassword='' sslkeylogfile=/S3cret";
        let info = ConnInfo::parse(s).unwrap();
        let shown = format!("{info:?}");
        assert!(
            !shown.contains("S3cret") && shown.contains("\"host\": \"h\""),
            "{shown}"
        );
        let c = cfg(s);
        let shown = format!("{c:?} {:#?}", c.clone());
        assert!(
            !shown.contains("S3cret") && shown.contains("password"),
            "{shown}"
        );
        let e = env()
            .with_var("PGPASSWORD", "S3cret")
            .with_var("PGSSLKEY", "/S3cret");
        let c = Config::parse_with_env("", &e).unwrap();
        let shown = format!("{c:?} {e:?}");
        assert!(!shown.contains("S3cret"), "{shown}");
        // Other unsupported options still show their value.
        assert_eq!(
            cfg_err("target_session_attrs=read-write").to_string(),
            "connection option \"target_session_attrs\" with value \"read-write\" is not supported"
        );
    }

    fn cfg_err(s: &str) -> ConnInfoError {
        Config::parse_with_env(s, &env()).unwrap_err()
    }

    #[test]
    fn sslmode_helpers() {
        for m in [
            SslMode::Disable,
            SslMode::Allow,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(m.to_string().parse::<SslMode>().unwrap(), m);
        }
        assert!(SslMode::VerifyCa.verifies() && !SslMode::Require.verifies());
        assert!(SslMode::Require.requires_tls() && !SslMode::Prefer.requires_tls());
    }
}
