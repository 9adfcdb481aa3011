//! A long-running WAL archiver: what pg_receivewal does, and WAL that is acknowledged is
//! never lost.
//!
//! A [`Receiver`] streams WAL from a server over a physical replication connection into a
//! directory laid out exactly as pg_receivewal lays it out: segment files named as
//! PostgreSQL names them, the one being written named `.partial` (uncompressed ones
//! pre-padded to the full segment size), completed segments fsynced, renamed and the
//! directory fsynced, `TTTTTTTT.history` files at timeline switches, and the old timeline's
//! last segment left as `.partial`. The start position follows pg_receivewal's rules: the
//! directory first, then the slot (`READ_REPLICATION_SLOT`, 15+), then the server's position.
//!
//! On top of that:
//!
//! - a `.partial` segment is checked with the [`WalDecoder`](crate::wal::WalDecoder) and
//!   streaming resumes at its valid end, not at the start of the segment;
//! - incoming WAL is validated as it arrives (page headers, system identifier, timeline,
//!   record CRCs); only validated bytes are written, and a mismatch stops the receiver;
//! - compression (gzip, lz4, zstd) and fsync run on a writer thread behind a bounded queue, so
//!   the connection is always served;
//! - the flush position sent to the server is always a position that is durable (fsynced),
//!   and the apply position can be reported too;
//! - every connection, including the first, is retried with backoff; [`ReceiveError`] says
//!   which errors are retried ([`ReceiveError::is_retryable`]: a failed fsync, WAL that fails
//!   validation or another system's WAL stop the receiver) and what they are
//!   ([`ReceiveError::kind`], [`ReceiveError::sqlstate`], [`ReceiveError::wal_error`]);
//! - a lock file stops two receivers from sharing a directory;
//! - [`Metrics`] can be rendered for Prometheus.
//!
//! The receiver is a driver and a sink: the driver (connections, retries with backoff, the
//! start position, timeline following, validation, status updates) feeds validated WAL to a
//! [`WalSink`] and reports flushed only what the sink says is durable. The directory described
//! above is [`DirectorySink`], what [`Receiver::new`] uses; [`Receiver::with_sink`] takes a sink
//! of the embedder's own (an example is on [`WalSink`]).
//!
//! ```no_run
//! use pgwal::conninfo::Config;
//! use pgwal::receiver::{Receiver, ReceiverOptions};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::parse("host=db1 user=rep fallback_application_name=pgwal")?;
//! let receiver = Receiver::new(config, ReceiverOptions::new("/archive/wal"));
//! let stop = receiver.stop_handle();
//! tokio::spawn(async move {
//!     tokio::signal::ctrl_c().await.ok();
//!     stop.stop();
//! });
//! receiver.run().await?;
//! # Ok(()) }
//! ```

mod compress;
mod directory;
mod error;
mod lock;
mod metrics;
#[cfg(feature = "object-store")]
mod object_sink;
mod scan;
mod session;
mod sink;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::conninfo::Config;
use crate::lsn::Lsn;
use crate::replication::SlotName;

pub use compress::{CompressSpec, CompressSpecError};
pub use directory::DirectorySink;
pub use error::{ErrorKind, ReceiveError, WalDamage};
pub use lock::{DirectoryLock, LOCK_FILE};
pub use metrics::Metrics;
#[cfg(feature = "object-store")]
pub use object_sink::{
    FlushTo, ObjectSink, ObjectSinkError, ObjectSinkHandle, ObjectSinkOptions, DEFAULT_UPLOAD_JOBS,
};
pub use scan::Candidate;
pub use sink::{SinkStart, WalSink};

/// How a [`Receiver`] runs.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReceiverOptions {
    /// The archive directory (`-D`).
    pub directory: PathBuf,
    /// The physical replication slot (`-S`).
    pub slot: Option<SlotName>,
    /// Stop once WAL past this position has been received (`-E`).
    pub endpos: Option<Lsn>,
    /// Do not retry after a connection is lost or fails (`-n`).
    pub no_loop: bool,
    /// Status update interval (`-s`, default 10 s; `None` for 0).
    pub status_interval: Option<Duration>,
    /// fsync after every batch of received WAL and report the flush at once
    /// (`--synchronous`).
    pub synchronous: bool,
    /// fsync at all (off with `--no-sync`).
    pub sync: bool,
    /// Compression of segment files (`-Z`).
    pub compress: CompressSpec,
    /// Report the flushed position as applied too (`--report-apply`).
    pub report_apply: bool,
    /// First wait before reconnecting; doubled after each failure up to
    /// [`max_reconnect_delay`](Self::max_reconnect_delay).
    pub reconnect_delay: Duration,
    /// Longest wait between reconnection attempts.
    pub max_reconnect_delay: Duration,
    /// Depth of the queue to the writer thread, in batches of WAL messages received together
    /// (each batch about 1 MB at most).
    pub queue_depth: usize,
}

impl ReceiverOptions {
    /// pg_receivewal's defaults for directory `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> ReceiverOptions {
        ReceiverOptions {
            directory: dir.into(),
            slot: None,
            endpos: None,
            no_loop: false,
            status_interval: Some(Duration::from_secs(10)),
            synchronous: false,
            sync: true,
            compress: CompressSpec::NONE,
            report_apply: false,
            reconnect_delay: Duration::from_secs(1),
            max_reconnect_delay: Duration::from_secs(30),
            queue_depth: 8,
        }
    }
}

/// Why [`Receiver::run`] returned normally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// WAL past `--endpos` was received; this is the end of what was written.
    EndPosition(Lsn),
    /// [`StopHandle::stop`] was called (SIGINT/SIGTERM in the CLI).
    Requested,
}

/// Asks a running [`Receiver`] to stop: the write in progress is finished and fsynced, a final
/// status update is sent, and [`Receiver::run`] returns [`Stopped::Requested`].
#[derive(Clone, Debug)]
pub struct StopHandle {
    tx: Arc<watch::Sender<bool>>,
}

impl StopHandle {
    /// Requests the stop.
    pub fn stop(&self) {
        self.tx.send_replace(true);
    }

    /// True once a stop was requested.
    pub fn is_stopping(&self) -> bool {
        *self.tx.borrow()
    }
}

/// The WAL receiver; see the [module documentation](self).
pub struct Receiver {
    conn: Config,
    opts: ReceiverOptions,
    metrics: Arc<Metrics>,
    stop: Arc<watch::Sender<bool>>,
    /// A sink of the embedder's own; `None` for the directory of the options.
    sink: Option<Box<dyn WalSink>>,
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("conn", &self.conn)
            .field("opts", &self.opts)
            .field("own_sink", &self.sink.is_some())
            .finish_non_exhaustive()
    }
}

impl Receiver {
    /// A receiver connecting with `conn` (a physical replication connection is made from it:
    /// `replication=true`, database `replication` unless `dbname` is set).
    /// It writes to the [`DirectorySink`] of `opts.directory`.
    pub fn new(conn: Config, opts: ReceiverOptions) -> Receiver {
        let (tx, _) = watch::channel(false);
        Receiver {
            conn,
            opts,
            metrics: Arc::new(Metrics::default()),
            stop: Arc::new(tx),
            sink: None,
        }
    }

    /// A receiver that streams validated WAL into `sink` instead of a directory (see
    /// [`WalSink`]). Of `opts`, the directory, `compress` and `sync` are the directory's and
    /// not used; `synchronous` asks the sink to flush after every batch.
    pub fn with_sink(conn: Config, opts: ReceiverOptions, sink: impl WalSink) -> Receiver {
        let mut r = Receiver::new(conn, opts);
        r.sink = Some(Box::new(sink));
        r
    }

    /// Counts into `metrics` (e.g. the ones a sink of the embedder's own was given) instead of
    /// metrics of its own.
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Receiver {
        self.metrics = metrics;
        self
    }

    /// The live metrics.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// A handle to stop the receiver from another task or a signal handler.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle {
            tx: self.stop.clone(),
        }
    }

    /// Runs until `--endpos` is reached, a stop is requested, or a fatal error (or, with
    /// `no_loop`, any error). Takes the directory lock first (the directory sink).
    pub async fn run(self) -> Result<Stopped, ReceiveError> {
        let sink = match self.sink {
            Some(s) => s,
            None => Box::new(DirectorySink::open(&self.opts, self.metrics.clone())?),
        };
        session::run(
            self.conn,
            self.opts,
            sink,
            self.metrics,
            self.stop.subscribe(),
        )
        .await
    }
}
