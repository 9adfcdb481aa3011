//! Errors of the replication client: server errors with their SQLSTATE, protocol violations,
//! I/O and TLS failures.

use std::fmt;
use std::io;

use fallible_iterator::FallibleIterator;
use postgres_protocol::message::backend::ErrorFields;

use crate::conninfo::ConnInfoError;

/// The SQLSTATE of a wrong password (`invalid_password`).
pub const SQLSTATE_INVALID_PASSWORD: &str = "28P01";
/// The SQLSTATE of a refused authorization, e.g. no matching `pg_hba.conf` row
/// (`invalid_authorization_specification`).
pub const SQLSTATE_INVALID_AUTHORIZATION: &str = "28000";

/// An `ErrorResponse` or `NoticeResponse` from the server, with its fields.
///
/// ```
/// use pgwal::replication::DbError;
/// let e = DbError::new("FATAL", "28P01", "password authentication failed for user \"rep\"");
/// assert_eq!(e.code, "28P01");
/// assert_eq!(e.to_string(), "FATAL: password authentication failed for user \"rep\" (SQLSTATE 28P01)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DbError {
    /// The severity as sent (`S`, possibly localized): `ERROR`, `FATAL`, `PANIC`,
    /// `WARNING`, `NOTICE`, ...
    pub severity: String,
    /// The severity, never localized (`V`).
    pub severity_nonlocalized: Option<String>,
    /// The SQLSTATE code (`C`), five characters.
    pub code: String,
    /// The primary message (`M`).
    pub message: String,
    /// The detail (`D`).
    pub detail: Option<String>,
    /// The hint (`H`).
    pub hint: Option<String>,
    /// The cursor position in the query (`P`).
    pub position: Option<u32>,
    /// The context (`W`).
    pub where_: Option<String>,
    /// The schema name (`s`).
    pub schema: Option<String>,
    /// The table name (`t`).
    pub table: Option<String>,
    /// The column name (`c`).
    pub column: Option<String>,
    /// The data type name (`d`).
    pub datatype: Option<String>,
    /// The constraint name (`n`).
    pub constraint: Option<String>,
    /// The server source file (`F`).
    pub file: Option<String>,
    /// The server source line (`L`).
    pub line: Option<u32>,
    /// The server source routine (`R`).
    pub routine: Option<String>,
}

impl DbError {
    /// An error with the three fields every server error has.
    pub fn new(severity: &str, code: &str, message: &str) -> DbError {
        DbError {
            severity: severity.to_owned(),
            code: code.to_owned(),
            message: message.to_owned(),
            ..DbError::default()
        }
    }

    /// Reads the fields of an `ErrorResponse` or `NoticeResponse` body. Unknown field types
    /// are skipped; non-UTF-8 text is converted lossily.
    pub(crate) fn parse(mut fields: ErrorFields<'_>) -> Result<DbError, Error> {
        let mut e = DbError::default();
        while let Some(f) = fields
            .next()
            .map_err(|err| Error::protocol(format!("invalid error message: {err}")))?
        {
            let v = String::from_utf8_lossy(f.value_bytes()).into_owned();
            match f.type_() {
                b'S' => e.severity = v,
                b'V' => e.severity_nonlocalized = Some(v),
                b'C' => e.code = v,
                b'M' => e.message = v,
                b'D' => e.detail = Some(v),
                b'H' => e.hint = Some(v),
                b'P' => e.position = v.parse().ok(),
                b'W' => e.where_ = Some(v),
                b's' => e.schema = Some(v),
                b't' => e.table = Some(v),
                b'c' => e.column = Some(v),
                b'd' => e.datatype = Some(v),
                b'n' => e.constraint = Some(v),
                b'F' => e.file = Some(v),
                b'L' => e.line = v.parse().ok(),
                b'R' => e.routine = Some(v),
                _ => {}
            }
        }
        Ok(e)
    }

    /// True for `FATAL` and `PANIC`: the server closes the connection after sending it.
    pub fn is_fatal(&self) -> bool {
        let s = self
            .severity_nonlocalized
            .as_deref()
            .unwrap_or(&self.severity);
        matches!(s, "FATAL" | "PANIC")
    }
}

impl fmt::Display for DbError {
    /// `SEVERITY: message (SQLSTATE code)`, then `DETAIL:` and `HINT:` lines if present.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.severity, self.message)?;
        if !self.code.is_empty() {
            write!(f, " (SQLSTATE {})", self.code)?;
        }
        if let Some(d) = &self.detail {
            write!(f, "\nDETAIL: {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\nHINT: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DbError {}

/// What went wrong talking to a server.
///
/// Server errors keep their SQLSTATE ([`Error::Db`]); a wrong password is `Db` with code
/// `28P01` and the server's message, never an I/O error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server sent an `ErrorResponse`.
    #[error("{0}")]
    Db(Box<DbError>),
    /// The connection parameters are invalid.
    #[error(transparent)]
    Config(#[from] ConnInfoError),
    /// Opening the connection to a host failed.
    #[error("connection to server {target} failed: {source}")]
    Connect {
        /// The server, in libpq's wording: `at "db1" (10.0.0.1), port 5432` or
        /// `on socket "/tmp/.s.PGSQL.5432"`.
        target: String,
        /// The cause.
        source: io::Error,
    },
    /// A connection attempt did not finish within `connect_timeout`.
    #[error("connection to server {target} timed out")]
    Timeout {
        /// The server, as in [`Error::Connect`].
        target: String,
    },
    /// Every host in the list failed: (server, error) per attempt, in order.
    #[error("{}", display_attempts(.0))]
    AllHostsFailed(Vec<(String, Error)>),
    /// Reading from or writing to the socket failed.
    #[error("could not communicate with the server: {0}")]
    Io(#[from] io::Error),
    /// TLS could not be set up or the handshake failed.
    #[error("TLS error: {0}")]
    Tls(String),
    /// TLS is required (`sslmode=require` or stronger) but the server refused it.
    #[error("server does not support SSL, but SSL was required")]
    TlsNotSupported,
    /// The server closed the connection.
    #[error("server closed the connection unexpectedly")]
    Closed,
    /// The server asked for a password and none was configured or found in the password file.
    #[error("password authentication requires a password, but none was supplied")]
    PasswordRequired,
    /// Authentication could not proceed (unsupported method, SCRAM verification failure,
    /// channel binding rules).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The server broke the protocol (malformed or unexpected message).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The server asked for an authentication method `require_auth` does not allow, or
    /// completed none when one is required.
    #[error("authentication method requirement \"{required}\" failed: {reason}")]
    AuthMethodRequirement {
        /// The `require_auth` value.
        required: String,
        /// What the server did, in libpq's words ("server requested a hashed password").
        reason: String,
    },
    /// The server answered the startup with an older protocol version than
    /// `min_protocol_version` allows.
    #[error(
        "server only supports protocol version {server}, but \"min_protocol_version\" was set to {min}"
    )]
    ProtocolVersion {
        /// The newest version the server speaks.
        server: crate::conninfo::ProtocolVersion,
        /// `min_protocol_version`.
        min: crate::conninfo::ProtocolVersion,
    },
    /// A command's result did not have the expected shape.
    #[error("unexpected result for {command}: {reason}")]
    UnexpectedResult {
        /// The command.
        command: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The command needs a newer server.
    #[error("{command} requires PostgreSQL {required} or later, but the server is {server}")]
    UnsupportedByServer {
        /// The command.
        command: &'static str,
        /// The first major version that has it.
        required: u32,
        /// The server's version string.
        server: String,
    },
    /// A name or value was rejected before anything was sent.
    #[error("{0}")]
    InvalidArgument(String),
    /// An operation was requested in a state that does not allow it (for example a status
    /// update outside streaming).
    #[error("invalid state: {0}")]
    InvalidState(&'static str),
}

fn display_attempts(errors: &[(String, Error)]) -> String {
    let mut s = String::from("could not connect to any host:");
    for (target, e) in errors {
        s.push_str(&format!("\n  {target}: "));
        s.push_str(&e.to_string().replace('\n', "\n    "));
    }
    s
}

impl Error {
    /// Builds a [`Error::Protocol`].
    pub(crate) fn protocol(msg: impl Into<String>) -> Error {
        Error::Protocol(msg.into())
    }

    /// Builds a [`Error::UnexpectedResult`].
    pub(crate) fn result(command: &'static str, reason: impl Into<String>) -> Error {
        Error::UnexpectedResult {
            command,
            reason: reason.into(),
        }
    }

    /// The server error behind this error, if any. For [`Error::AllHostsFailed`] it is the
    /// last server error among the attempts.
    pub fn db_error(&self) -> Option<&DbError> {
        match self {
            Error::Db(e) => Some(e),
            Error::AllHostsFailed(v) => v.iter().rev().find_map(|(_, e)| e.db_error()),
            _ => None,
        }
    }

    /// The SQLSTATE of the server error behind this error, if any.
    pub fn code(&self) -> Option<&str> {
        self.db_error().map(|e| e.code.as_str())
    }

    /// True if the connection can still be used after this error: a non-fatal server error
    /// in answer to a command, or a rejected argument.
    pub fn is_recoverable(&self) -> bool {
        match self {
            Error::Db(e) => !e.is_fatal(),
            Error::InvalidArgument(_)
            | Error::UnsupportedByServer { .. }
            | Error::InvalidState(_)
            | Error::UnexpectedResult { .. } => true,
            _ => false,
        }
    }
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Error {
        Error::Db(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_codes() {
        let mut e = DbError::new("ERROR", "42704", "replication slot \"x\" does not exist");
        e.hint = Some("try again".into());
        e.detail = Some("d".into());
        assert_eq!(
            e.to_string(),
            "ERROR: replication slot \"x\" does not exist (SQLSTATE 42704)\nDETAIL: d\nHINT: try again"
        );
        let err = Error::from(e.clone());
        assert_eq!(err.code(), Some("42704"));
        assert!(err.is_recoverable());
        let fatal = Error::from(DbError::new("FATAL", "28P01", "bad"));
        assert!(!fatal.is_recoverable());
        let all = Error::AllHostsFailed(vec![
            ("at \"a\", port 1".into(), fatal),
            ("at \"b\", port 1".into(), Error::Closed),
            (
                "at \"c\", port 1".into(),
                Error::Timeout {
                    target: "at \"c\", port 1".into(),
                },
            ),
        ]);
        assert_eq!(all.code(), Some("28P01"));
        assert!(
            all.to_string()
                .starts_with("could not connect to any host:\n  at \"a\", port 1: FATAL: bad"),
            "{all}"
        );
    }

    #[test]
    fn fatal_uses_nonlocalized_severity() {
        let mut e = DbError::new("FATAL", "28000", "x");
        assert!(e.is_fatal());
        e.severity = "SCHWERWIEGEND".into();
        e.severity_nonlocalized = Some("FATAL".into());
        assert!(e.is_fatal());
        e.severity_nonlocalized = Some("ERROR".into());
        assert!(!e.is_fatal());
    }
}
