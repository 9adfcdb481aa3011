//! A physical streaming-replication client: what pg_receivewal speaks, as a library.
//!
//! Two layers, as in rust-postgres:
//!
//! - [`protocol`]: the protocol without I/O. Bytes in, [`Event`](protocol::Event)s and bytes
//!   out; startup and authentication (trust, password, MD5, SCRAM-SHA-256 and
//!   SCRAM-SHA-256-PLUS with channel binding), replication commands and their results, and
//!   the CopyBoth streaming phase. [`message`] has the CopyData payloads ([`XLogData`],
//!   [`PrimaryKeepalive`], [`StandbyStatusUpdate`], [`HotStandbyFeedback`]) and [`command`]
//!   the command texts (by server version) and typed results.
//! - [`client`]: a thin tokio driver. [`ReplicationClient::connect`] takes a libpq-style
//!   [`Config`](crate::conninfo::Config) (hosts tried in order, Unix sockets, TLS per
//!   `sslmode` with rustls, the password file), runs commands, and
//!   [`start_replication`](ReplicationClient::start_replication) returns a
//!   [`ReplicationStream`] of [`ReplicationEvent`]s with a cloneable [`FeedbackHandle`],
//!   automatic replies to keepalives and a status-update timer.
//!
//! ```text
//!  ReplicationClient ──connect──▶ [SSLRequest ─ TLS] ─ StartupMessage(replication=true) ─ auth
//!        │ identify_system / show / timeline_history / create_, read_, drop_replication_slot
//!        └─ start_replication ──▶ ReplicationStream: XLogData, Keepalive, ... TimelineEnded
//!                                    ▲ FeedbackHandle: write / flush / apply, hot standby
//! ```
//!
//! # Example: stream WAL, following timeline switches
//!
//! ```no_run
//! use pgwal::conninfo::Config;
//! use pgwal::replication::{ReplicationClient, ReplicationEvent, StartReplication};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::parse("postgresql://rep@db1/?application_name=demo&sslmode=verify-full")?;
//! let mut client = ReplicationClient::connect(&config).await?;
//! let system = client.identify_system().await?;
//! let seg_size = client.wal_segment_size().await?;
//!
//! // Like pg_receivewal: start at the beginning of the current segment.
//! let mut timeline = system.timeline;
//! let mut start = system.xlogpos.segment_start(seg_size);
//! loop {
//!     let cmd = StartReplication::new(start).timeline(timeline);
//!     let mut stream = client.start_replication(&cmd).await?;
//!     let feedback = stream.feedback();
//!     let mut next = None;
//!     while let Some(event) = stream.next_event().await {
//!         match event? {
//!             ReplicationEvent::XLogData(wal) => {
//!                 println!("WAL {}..{} ({} bytes)", wal.start, wal.end, wal.data.len());
//!                 // ... store wal.data, then report it as durable:
//!                 feedback.set_flush(wal.end);
//!             }
//!             ReplicationEvent::TimelineEnded { next_tli, next_start } => {
//!                 println!("timeline {timeline} ended at {next_start}; next is {next_tli}");
//!                 next = Some((next_tli, next_start));
//!             }
//!             _ => {}
//!         }
//!     }
//!     // The same connection continues on the next timeline.
//!     match next {
//!         Some((tli, switch)) => {
//!             let history = client.timeline_history(tli).await?;
//!             println!("{} has {} entries", history.filename, history.history.entries.len());
//!             timeline = tli;
//!             start = switch.segment_start(seg_size);
//!         }
//!         None => break,
//!     }
//! }
//! client.close().await?;
//! # Ok(()) }
//! ```

pub mod client;
pub mod command;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod libpq_verify;
pub mod message;
pub mod protocol;
mod result;
#[cfg(test)]
pub(crate) mod testutil;
pub mod tls;

pub use client::{
    FeedbackHandle, ReplicationClient, ReplicationEvent, ReplicationStream, StreamOptions,
};
pub use command::{
    CreateSlotOptions, CreatedSlot, IdentifySystem, ReplicationCommand, ServerVersion, SlotInfo,
    SlotName, StartReplication, TimelineHistoryFile, TimelineSwitch,
};
pub use error::{DbError, Error, SQLSTATE_INVALID_AUTHORIZATION, SQLSTATE_INVALID_PASSWORD};
pub use message::{
    HotStandbyFeedback, PgTimestamp, PrimaryKeepalive, ServerMessage, StandbyStatusUpdate, XLogData,
};
