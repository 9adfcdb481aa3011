//! Where received WAL goes: the [`WalSink`] trait the receiver's driver feeds, and what a
//! sink holds at a start ([`SinkStart`]).

use crate::lsn::Lsn;
use crate::segment::{SegNo, TimelineId};
use crate::wal::DecoderConfig;

use super::ReceiveError;

/// What a sink holds when a connection starts ([`WalSink::start_position`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SinkStart {
    /// Nothing: streaming starts at the slot's `restart_lsn` (PostgreSQL 15+), else at the
    /// server's current position (each rounded down to its segment's start).
    Empty,
    /// Complete, durable WAL of timeline `tli` up to `end` (a segment boundary): streaming
    /// continues there.
    After {
        /// The timeline of the last WAL held.
        tli: TimelineId,
        /// Where it ends.
        end: Lsn,
    },
    /// A segment begun but not complete: the sink holds its valid prefix, `prefix` (the
    /// segment's bytes from its start), and streaming resumes at the end of it. The driver
    /// validates the prefix with the decoder (it must end where a record ends or is cut) and,
    /// at [`WalSink::begin`], the segment is open in the sink.
    Resume {
        /// The segment's timeline.
        tli: TimelineId,
        /// The segment.
        segno: SegNo,
        /// The bytes of the segment the sink keeps.
        prefix: Vec<u8>,
    },
}

/// A destination for validated WAL.
///
/// The driver (connections with retries and backoff, the start position, timeline following,
/// validation of every byte with the decoder, status updates) hands a sink only WAL that
/// passed validation, segment by segment, on a thread of its own (so a sink may block on
/// I/O). The sink says what it has made durable ([`durable`]); the flush position sent to the
/// server never exceeds it, so a slot never lets the server recycle WAL that only the sink's
/// memory holds.
///
/// [`DirectorySink`](super::DirectorySink) is pg_receivewal's directory; an embedder's own
/// sink implements the trait and runs with [`Receiver::with_sink`](super::Receiver::with_sink):
///
/// ```no_run
/// use pgwal::conninfo::Config;
/// use pgwal::receiver::{ReceiveError, Receiver, ReceiverOptions, SinkStart, WalSink};
/// use pgwal::wal::DecoderConfig;
/// use pgwal::{Lsn, SegNo, TimelineId};
///
/// /// Keeps WAL in memory and calls it durable once a flush was asked for: a stand-in for a
/// /// sink that ships WAL somewhere and knows when it is safe there.
/// #[derive(Default)]
/// struct Counting {
///     bytes: u64,
///     written: Lsn,
///     durable: Lsn,
/// }
///
/// impl WalSink for Counting {
///     fn start_position(&mut self, _cfg: &DecoderConfig) -> Result<SinkStart, ReceiveError> {
///         // Holding nothing yet: the driver starts at the slot's or the server's position.
///         Ok(SinkStart::Empty)
///     }
///     fn begin(&mut self, _tli: TimelineId, start: Lsn) -> Result<(), ReceiveError> {
///         self.written = start;
///         self.durable = start; // nothing before `start` is needed from us
///         Ok(())
///     }
///     fn begin_segment(&mut self, _tli: TimelineId, _segno: SegNo) -> Result<(), ReceiveError> {
///         Ok(())
///     }
///     fn write(&mut self, start: Lsn, data: &[&[u8]]) -> Result<(), ReceiveError> {
///         let n: usize = data.iter().map(|d| d.len()).sum();
///         self.bytes += n as u64;
///         self.written = Lsn(start.0 + n as u64);
///         Ok(())
///     }
///     fn finish_segment(&mut self) -> Result<(), ReceiveError> {
///         self.flush()
///     }
///     fn flush(&mut self) -> Result<(), ReceiveError> {
///         self.durable = self.written; // e.g. after the remote store acknowledged it
///         Ok(())
///     }
///     fn close(&mut self) -> Result<(), ReceiveError> {
///         self.flush()
///     }
///     fn durable(&self) -> Lsn {
///         self.durable
///     }
///     fn read_history(&mut self, _tli: TimelineId) -> Result<Option<Vec<u8>>, ReceiveError> {
///         Ok(None)
///     }
///     fn write_history(&mut self, _tli: TimelineId, _content: &[u8]) -> Result<(), ReceiveError> {
///         Ok(())
///     }
/// }
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let config = Config::parse("host=db1 user=rep")?;
/// let mut opts = ReceiverOptions::new("/unused/for/own/sinks");
/// opts.slot = Some("mine".parse()?);
/// let receiver = Receiver::with_sink(config, opts, Counting::default());
/// receiver.run().await?;
/// # Ok(()) }
/// ```
///
/// The driver calls, on one thread, in this order per connection: [`start_position`]
/// (where the sink's WAL ends; also the moment to drop whatever a previous connection left
/// open), [`read_history`]/[`write_history`] for timelines above 1, then per timeline
/// [`begin`], any number of [`begin_segment`] → [`write`]… → [`finish_segment`] (the last
/// segment of a timeline or of a stop is [`close`]d instead of finished), with [`flush`]
/// whenever the driver wants the durable position to advance (at least every status
/// interval, after each batch with `--synchronous`, and when the server asks for a reply).
/// After any call, [`durable`] is read; the flush position reported to the server is never
/// above it (nor above the WAL written).
///
/// An error stops the connection: [`ReceiveError::is_retryable`] decides whether the driver
/// reconnects (use [`ReceiveError::sink`] for errors of a sink's own).
///
/// [`start_position`]: WalSink::start_position
/// [`read_history`]: WalSink::read_history
/// [`write_history`]: WalSink::write_history
/// [`begin`]: WalSink::begin
/// [`begin_segment`]: WalSink::begin_segment
/// [`write`]: WalSink::write
/// [`finish_segment`]: WalSink::finish_segment
/// [`close`]: WalSink::close
/// [`flush`]: WalSink::flush
/// [`durable`]: WalSink::durable
pub trait WalSink: Send + 'static {
    /// Where this sink's WAL ends, for a connection to the server whose sizes and system
    /// identifier `cfg` holds. A sink that holds WAL of another system should return
    /// [`ReceiveError::ForeignWal`].
    fn start_position(&mut self, cfg: &DecoderConfig) -> Result<SinkStart, ReceiveError>;

    /// The history file of timeline `tli`, if the sink holds it.
    fn read_history(&mut self, tli: TimelineId) -> Result<Option<Vec<u8>>, ReceiveError>;

    /// Stores the history file of timeline `tli` durably (also when it holds the same content
    /// already: it may not be durable yet). Called before any WAL of `tli`.
    fn write_history(&mut self, tli: TimelineId, content: &[u8]) -> Result<(), ReceiveError>;

    /// Streaming (re)starts at `start` on timeline `tli`. After a
    /// [`SinkStart::Resume`] whose end is `start`, the resumed segment is open now and its
    /// prefix must become durable before [`durable`](WalSink::durable) reaches `start`.
    fn begin(&mut self, tli: TimelineId, start: Lsn) -> Result<(), ReceiveError>;

    /// A new segment of timeline `tli` begins (its WAL follows from the segment's start).
    fn begin_segment(&mut self, tli: TimelineId, segno: SegNo) -> Result<(), ReceiveError>;

    /// Validated WAL, `data` back to back from `start`, all inside the open segment and
    /// contiguous with what came before.
    fn write(&mut self, start: Lsn, data: &[&[u8]]) -> Result<(), ReceiveError>;

    /// The open segment is complete (its last byte was written).
    fn finish_segment(&mut self) -> Result<(), ReceiveError>;

    /// Make everything written durable (as far as this sink can), then let
    /// [`durable`](WalSink::durable) say so.
    fn flush(&mut self) -> Result<(), ReceiveError>;

    /// The open segment, if any, ends incomplete here (the end of a timeline, a stop or
    /// `--endpos`); make what was written durable.
    fn close(&mut self) -> Result<(), ReceiveError>;

    /// The end of the WAL this sink holds durably: the flush position the driver may report.
    fn durable(&self) -> Lsn;

    /// The connection failed (or the WAL did): drop whatever is open as it is, without making
    /// more of it durable. The next call is [`start_position`](WalSink::start_position).
    fn abandon(&mut self) {}
}
