//! The kit's error type.

use std::time::Duration;

/// Result alias for the kit.
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong while managing a test cluster. Messages name the command that
/// failed, its output, and the tail of the server log where one exists.
#[derive(thiserror::Error)]
pub enum Error {
    /// A server build or tool is not installed.
    #[error("{what} is not installed (looked in: {searched}); run scripts/install-postgres")]
    NotInstalled {
        /// What was looked for.
        what: String,
        /// Where it was looked for.
        searched: String,
    },
    /// An external command exited unsuccessfully or could not be run.
    #[error("command failed: {command}\n  status: {status}\n  stdout: {stdout}\n  stderr: {stderr}{}", log_section(.log_tail))]
    Command {
        /// The command line.
        command: String,
        /// Its exit status (or why it could not be started).
        status: String,
        /// Its standard output (trimmed).
        stdout: String,
        /// Its standard error (trimmed).
        stderr: String,
        /// The tail of the server log, if relevant.
        log_tail: String,
    },
    /// Waiting for something timed out.
    #[error("timed out after {:.1}s waiting for {what}{}", .after.as_secs_f64(), log_section(.log_tail))]
    Timeout {
        /// What was being waited for.
        what: String,
        /// How long it waited.
        after: Duration,
        /// The tail of the server log, if relevant.
        log_tail: String,
    },
    /// A SQL statement failed.
    #[error("SQL failed on {conninfo}: {sql}\n  error: {message}")]
    Sql {
        /// The connection string used.
        conninfo: String,
        /// The statement.
        sql: String,
        /// The error text (including SQLSTATE where available).
        message: String,
    },
    /// A file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, including the path.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Generating TLS certificates failed.
    #[error("generating test certificates failed: {0}")]
    Tls(String),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// `Debug` shows the readable message, so `.unwrap()` in tests prints it with real newlines.
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

fn log_section(tail: &str) -> String {
    if tail.trim().is_empty() {
        String::new()
    } else {
        format!("\n--- server log (last lines) ---\n{}", tail.trim_end())
    }
}

/// Attach context to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io {
            context: context(),
            source,
        })
    }
}

/// Format a tokio-postgres error with its SQLSTATE and server message.
pub(crate) fn pg_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}
