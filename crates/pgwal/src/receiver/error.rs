//! Why the receiver stopped, or why it is retrying: [`ReceiveError`], its [`ErrorKind`] and
//! whether it is retried ([`ReceiveError::is_retryable`]).

use crate::storage::local::LocalError;
use std::io;
use std::path::PathBuf;

use crate::conninfo::ConnInfoError;
use crate::lsn::Lsn;
use crate::replication::{self, ServerVersion};
use crate::segment::{TimelineId, WalSegSize};
use crate::wal::WalError;

/// Lowest server major whose WAL the receiver accepts.
pub(crate) const MIN_MAJOR: u32 = 13;
/// Highest server major whose WAL the receiver accepts.
pub(crate) const MAX_MAJOR: u32 = 19;

/// What kind of problem a [`ReceiveError`] is, for a caller that reacts by category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// WAL that fails validation (see [`ReceiveError::wal_error`]).
    InvalidWal,
    /// A file or directory could not be read, written, renamed or removed.
    Io,
    /// An fsync failed: WAL written before may not be on disk (never retried in the process).
    Durability,
    /// The connection, the server, or what the server sent (see [`ReceiveError::sqlstate`]).
    Server,
    /// Invalid options: the connection string, the directory.
    Configuration,
    /// The archive and the server disagree, or a file exists with other content, or another
    /// receiver holds the directory.
    Conflict,
    /// A broken invariant of the receiver itself.
    Internal,
}

/// Why received WAL failed validation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WalDamage {
    /// The decoder's error (page header, record header, CRC...), with its LSN.
    #[error(transparent)]
    Decode(#[from] WalError),
    /// A page of a higher timeline than the one being streamed.
    #[error("a WAL page of timeline {page} while streaming timeline {streaming}")]
    Timeline {
        /// The page's timeline.
        page: u32,
        /// The timeline streamed.
        streaming: TimelineId,
    },
}

/// Why [`Receiver::run`](super::Receiver::run) failed, or (logged) why it reconnects.
///
/// [`is_retryable`](Self::is_retryable) says which errors the receiver retries with backoff
/// (unless `no_loop`) and which stop it; [`kind`](Self::kind) groups them. The text is the
/// message `pgwal receive` prints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiveError {
    /// The archive directory is not a directory.
    #[error("\"{}\" is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// The connection options are invalid.
    #[error("invalid connection options: {0}")]
    InvalidConnection(#[source] ConnInfoError),
    /// The connection names a database (`dbname`): a physical replication connection must not.
    #[error("replication connection is unexpectedly database specific")]
    DatabaseSpecific,
    /// The archive directory cannot be used: it cannot be opened, or a file the receiver would
    /// write is a symbolic link.
    #[error("could not {op} \"{}\": {source}", path.display())]
    UnusableDirectory {
        /// What was being done (`open directory`, `read directory`).
        op: &'static str,
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The directory lock could not be taken (another receiver holds it:
    /// [`io::ErrorKind::WouldBlock`]).
    #[error(transparent)]
    Lock(io::Error),
    /// The writer thread could not be started.
    #[error("could not start the writer thread: {0}")]
    WriterThread(#[source] io::Error),
    /// A file operation failed (retried).
    #[error("could not {op} \"{}\": {source}", path.display())]
    Io {
        /// What was being done (`write to file`, `read directory`...).
        op: &'static str,
        /// The file or directory, as named in the message (a timeline history file by its
        /// name in the archive directory).
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A file could not be renamed into place (retried).
    #[error("could not rename file \"{}\" to \"{}\": {source}", from.display(), to.display())]
    Rename {
        /// The temporary file.
        from: PathBuf,
        /// Its final name.
        to: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// An fsync of a file or directory failed: fatal. After a failed fsync, Linux may have
    /// marked the unwritten pages clean: they read back fine from the page cache but are on
    /// no disk, and a later fsync reports success without writing them. Nothing this process
    /// wrote can be trusted durable any more; the next start copies the valid prefix of the
    /// file into a new file and fsyncs that instead.
    #[error("could not fsync {what} \"{}\": {source}; stopping: data written before may be lost, and is never reported flushed", path.display())]
    Sync {
        /// `file` or `directory`.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A replication command or the connection failed (retried); the server's SQLSTATE, if
    /// any, is [`ReceiveError::sqlstate`].
    #[error("{context}: {source}")]
    Replication {
        /// What was being done (`could not connect to the server`...).
        context: &'static str,
        /// The cause.
        source: replication::Error,
    },
    /// A server setting the receiver depends on has an impossible value.
    #[error("the server's {setting} is unusable: {source}")]
    UnusableSetting {
        /// `wal_segment_size` or `wal_block_size`.
        setting: &'static str,
        /// The cause.
        source: replication::Error,
    },
    /// The server's major version is not one whose WAL the receiver knows.
    #[error("incompatible server version {version}; pgwal receive supports PostgreSQL {MIN_MAJOR} to {MAX_MAJOR}")]
    UnsupportedServer {
        /// The server's version.
        version: ServerVersion,
    },
    /// The replication slot does not exist (retried: it may be created).
    #[error("replication slot \"{0}\" does not exist")]
    SlotMissing(String),
    /// The server sent a timeline history file under an unexpected name.
    #[error("server reported unexpected history file name for timeline {tli}: {name}")]
    UnexpectedHistoryName {
        /// The timeline asked for.
        tli: TimelineId,
        /// The name received.
        name: String,
    },
    /// At the end of a timeline, the server named a next timeline that is not higher.
    #[error("server reported unexpected next timeline {next}, following timeline {current}")]
    UnexpectedNextTimeline {
        /// The timeline named.
        next: TimelineId,
        /// The timeline that ended.
        current: TimelineId,
    },
    /// At the end of a timeline, the server named a switch point past what it sent.
    #[error("server stopped streaming timeline {tli} at {received}, but reported next timeline {next_tli} to begin at {next_start}")]
    SwitchPastEnd {
        /// The timeline that ended.
        tli: TimelineId,
        /// The end of the WAL received.
        received: Lsn,
        /// The next timeline.
        next_tli: TimelineId,
        /// Where the server says it begins.
        next_start: Lsn,
    },
    /// The server sent WAL that does not continue what it sent before.
    #[error("got WAL data at {got}, expected {expected}")]
    UnexpectedWalPosition {
        /// Where the message starts.
        got: Lsn,
        /// Where the WAL received ends.
        expected: Lsn,
    },
    /// The server ended streaming before the end position.
    #[error("replication stream was terminated before stop point")]
    StreamEnded,
    /// The archive is on a higher timeline than the server (retried).
    #[error("the archive is on timeline {archive}, but the server is on timeline {server}")]
    ArchiveAhead {
        /// The archive's timeline.
        archive: TimelineId,
        /// The server's.
        server: TimelineId,
    },
    /// The archive's timeline is not an ancestor of the server's (retried).
    #[error(
        "timeline {archive} of the archive is not in the history of the server's timeline {server}"
    )]
    TimelineNotInHistory {
        /// The archive's timeline.
        archive: TimelineId,
        /// The server's.
        server: TimelineId,
    },
    /// The server's system identifier changed between connections.
    #[error("the server's system identifier changed from {from} to {to}")]
    SystemIdChanged {
        /// The identifier of the first connection.
        from: u64,
        /// The new one.
        to: u64,
    },
    /// The server's segment size changed between connections.
    #[error("the server's WAL segment size changed from {} to {} bytes", from.bytes(), to.bytes())]
    SegmentSizeChanged {
        /// The size of the first connection.
        from: WalSegSize,
        /// The new one.
        to: WalSegSize,
    },
    /// A file of the archive holds WAL of another database system than the server's.
    #[error("file \"{}\" holds WAL of database system {found}, but the server's system identifier is {server}", path.display())]
    ForeignWal {
        /// The file.
        path: PathBuf,
        /// Its system identifier.
        found: u64,
        /// The server's.
        server: u64,
    },
    /// A timeline history file exists with other content than the server's.
    #[error("timeline history file \"{}\" exists with other content than the server's history of timeline {tli}", path.display())]
    HistoryConflict {
        /// The file.
        path: PathBuf,
        /// Its timeline.
        tli: TimelineId,
    },
    /// A complete segment file exists (another writer was first) with other WAL than the WAL
    /// received; both files are kept.
    #[error("segment file \"{}\" already exists with different content than the WAL received in \"{}\"; keeping both", existing.display(), received.display())]
    SegmentConflict {
        /// The existing file.
        existing: PathBuf,
        /// The file with the WAL received.
        received: PathBuf,
    },
    /// WAL received from the server failed validation: fatal (a retry fetches the same WAL).
    #[error("WAL received from the server failed validation: {reason}; the archive keeps the valid WAL before {valid_until}")]
    InvalidWal {
        /// What is wrong.
        #[source]
        reason: WalDamage,
        /// The end of the valid WAL written.
        valid_until: Lsn,
    },
    /// A `.partial` segment found complete at start could not be stored under its final name.
    #[error("could not complete \"{}\": {source}", path.display())]
    CompletePartial {
        /// The `.partial` file.
        path: PathBuf,
        /// The cause.
        source: Box<ReceiveError>,
    },
    /// A timeline history file could not be written.
    #[error("could not write timeline history file \"{name}\": {source}")]
    WriteHistory {
        /// The file's name.
        name: String,
        /// The cause.
        source: Box<ReceiveError>,
    },
    /// With `no_loop`: the connection ended with a retryable error (the cause).
    #[error("disconnected: {0}")]
    Disconnected(#[source] Box<ReceiveError>),
    /// The writer thread stopped without an error (it panicked).
    #[error("the writer thread has stopped")]
    WriterStopped,
    /// The decoder did not resume a `.partial` segment where its validation said it ends.
    #[error("internal error: the decoder did not resume at {expected} but at {found}")]
    ResumeMismatch {
        /// The valid end found at start.
        expected: Lsn,
        /// Where the decoder stood.
        found: Lsn,
    },
    /// Another broken invariant (retried).
    #[error("internal error: {0}")]
    Internal(String),
    /// A sink of the embedder's own failed ([`ReceiveError::sink`],
    /// [`ReceiveError::sink_fatal`]).
    #[error("the WAL sink failed: {source}")]
    Sink {
        /// The sink's error.
        source: Box<dyn std::error::Error + Send + Sync>,
        /// Whether the receiver reconnects and tries again.
        retryable: bool,
    },
}

impl From<LocalError> for ReceiveError {
    /// Storage errors keep their path; a failed fsync stays fatal ([`ReceiveError::Sync`]).
    fn from(e: LocalError) -> ReceiveError {
        match e {
            LocalError::Io { op, path, source } => ReceiveError::Io { op, path, source },
            LocalError::Sync { what, path, source } => ReceiveError::Sync { what, path, source },
            LocalError::Rename { from, to, source } => ReceiveError::Rename { from, to, source },
        }
    }
}

impl ReceiveError {
    /// An error of a [`WalSink`](super::WalSink) of the embedder's own, after which the
    /// receiver reconnects (with backoff) and the sink is asked for its start position again.
    pub fn sink(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ReceiveError {
        ReceiveError::Sink {
            source: source.into(),
            retryable: true,
        }
    }

    /// An error of a [`WalSink`](super::WalSink) of the embedder's own that stops the receiver.
    pub fn sink_fatal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> ReceiveError {
        ReceiveError::Sink {
            source: source.into(),
            retryable: false,
        }
    }

    /// The category of the error (that of the cause for [`ReceiveError::CompletePartial`],
    /// [`ReceiveError::WriteHistory`] and [`ReceiveError::Disconnected`]).
    pub fn kind(&self) -> ErrorKind {
        use ReceiveError as E;
        match self {
            E::NotADirectory(_) | E::InvalidConnection(_) | E::DatabaseSpecific => {
                ErrorKind::Configuration
            }
            E::Lock(e) if e.kind() == io::ErrorKind::WouldBlock => ErrorKind::Conflict,
            E::UnusableDirectory { .. }
            | E::Lock(_)
            | E::WriterThread(_)
            | E::Io { .. }
            | E::Rename { .. } => ErrorKind::Io,
            E::Sync { .. } => ErrorKind::Durability,
            E::Replication { .. }
            | E::UnusableSetting { .. }
            | E::UnsupportedServer { .. }
            | E::SlotMissing(_)
            | E::UnexpectedHistoryName { .. }
            | E::UnexpectedNextTimeline { .. }
            | E::SwitchPastEnd { .. }
            | E::UnexpectedWalPosition { .. }
            | E::StreamEnded => ErrorKind::Server,
            E::ArchiveAhead { .. }
            | E::TimelineNotInHistory { .. }
            | E::SystemIdChanged { .. }
            | E::SegmentSizeChanged { .. }
            | E::ForeignWal { .. }
            | E::HistoryConflict { .. }
            | E::SegmentConflict { .. } => ErrorKind::Conflict,
            E::InvalidWal { .. } => ErrorKind::InvalidWal,
            E::CompletePartial { source, .. } | E::WriteHistory { source, .. } => source.kind(),
            E::Disconnected(e) => e.kind(),
            E::WriterStopped | E::ResumeMismatch { .. } | E::Internal(_) => ErrorKind::Internal,
            E::Sink { .. } => ErrorKind::Io,
        }
    }

    /// True if the receiver reconnects (with backoff) after this error, false if it stops:
    /// retrying cannot fix it (another system's WAL, WAL that fails validation, an
    /// unsupported server, an unusable directory) or is unsafe (a failed fsync).
    /// [`ReceiveError::Disconnected`] is retryable: it is returned only because of `no_loop`.
    pub fn is_retryable(&self) -> bool {
        use ReceiveError as E;
        match self {
            E::Io { .. }
            | E::Rename { .. }
            | E::Replication { .. }
            | E::SlotMissing(_)
            | E::UnexpectedHistoryName { .. }
            | E::UnexpectedNextTimeline { .. }
            | E::SwitchPastEnd { .. }
            | E::UnexpectedWalPosition { .. }
            | E::StreamEnded
            | E::ArchiveAhead { .. }
            | E::TimelineNotInHistory { .. }
            | E::Disconnected(_)
            | E::WriterStopped
            | E::Internal(_) => true,
            E::CompletePartial { source, .. } | E::WriteHistory { source, .. } => {
                source.is_retryable()
            }
            E::Sink { retryable, .. } => *retryable,
            E::NotADirectory(_)
            | E::InvalidConnection(_)
            | E::DatabaseSpecific
            | E::UnusableDirectory { .. }
            | E::Lock(_)
            | E::WriterThread(_)
            | E::Sync { .. }
            | E::UnusableSetting { .. }
            | E::UnsupportedServer { .. }
            | E::SystemIdChanged { .. }
            | E::SegmentSizeChanged { .. }
            | E::ForeignWal { .. }
            | E::HistoryConflict { .. }
            | E::SegmentConflict { .. }
            | E::InvalidWal { .. }
            | E::ResumeMismatch { .. } => false,
        }
    }

    /// The SQLSTATE of the server error behind this error, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            ReceiveError::Replication { source, .. }
            | ReceiveError::UnusableSetting { source, .. } => source.code(),
            ReceiveError::CompletePartial { source, .. }
            | ReceiveError::WriteHistory { source, .. }
            | ReceiveError::Disconnected(source) => source.sqlstate(),
            _ => None,
        }
    }

    /// The decoder's error (with its LSN) behind WAL that failed validation, if that is the
    /// cause.
    pub fn wal_error(&self) -> Option<&WalError> {
        match self {
            ReceiveError::InvalidWal {
                reason: WalDamage::Decode(e),
                ..
            } => Some(e),
            ReceiveError::CompletePartial { source, .. }
            | ReceiveError::WriteHistory { source, .. }
            | ReceiveError::Disconnected(source) => source.wal_error(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::DbError;
    use crate::wal::WalErrorKind;

    #[test]
    fn kinds_retries_and_messages() {
        let fsync = ReceiveError::Sync {
            what: "file",
            path: "/a/x.partial".into(),
            source: io::Error::from_raw_os_error(libc::EIO),
        };
        assert_eq!(fsync.kind(), ErrorKind::Durability);
        assert!(!fsync.is_retryable());
        assert!(fsync.to_string().starts_with(
            "could not fsync file \"/a/x.partial\": Input/output error (os error 5); stopping:"
        ));
        assert!(std::error::Error::source(&fsync).is_some());

        let bad = WalError {
            lsn: Lsn(0x100),
            kind: WalErrorKind::InvalidRmgr { rmid: 200 },
        };
        let invalid = ReceiveError::InvalidWal {
            reason: bad.clone().into(),
            valid_until: Lsn(0x100),
        };
        assert_eq!(invalid.kind(), ErrorKind::InvalidWal);
        assert!(!invalid.is_retryable());
        assert_eq!(invalid.wal_error(), Some(&bad));
        assert_eq!(
            invalid.to_string(),
            "WAL received from the server failed validation: invalid resource manager ID 200 at 0/100; the archive keeps the valid WAL before 0/100"
        );

        let server = ReceiveError::Replication {
            context: "could not start WAL streaming",
            source: DbError::new(
                "ERROR",
                "58P01",
                "requested WAL segment has already been removed",
            )
            .into(),
        };
        let lost = ReceiveError::Disconnected(Box::new(server));
        assert!(lost.is_retryable());
        assert_eq!(lost.kind(), ErrorKind::Server);
        assert_eq!(lost.sqlstate(), Some("58P01"));
        assert_eq!(
            lost.to_string(),
            "disconnected: could not start WAL streaming: ERROR: requested WAL segment has already been removed (SQLSTATE 58P01)"
        );

        let history = ReceiveError::WriteHistory {
            name: "00000002.history".into(),
            source: Box::new(ReceiveError::Sync {
                what: "directory",
                path: "/a".into(),
                source: io::Error::from_raw_os_error(libc::EIO),
            }),
        };
        assert!(!history.is_retryable());
        assert_eq!(history.kind(), ErrorKind::Durability);
        let busy = ReceiveError::Lock(io::Error::new(io::ErrorKind::WouldBlock, "in use"));
        assert_eq!(
            (busy.kind(), busy.is_retryable()),
            (ErrorKind::Conflict, false)
        );
        assert_eq!(busy.to_string(), "in use");
    }
}
