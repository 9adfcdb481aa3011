//! Decoding streamed WAL as it arrives: [`LiveDecoder`] feeds `XLogData` payloads into the
//! sans-IO [`WalDecoder`] and hands out each record as soon as its last byte has arrived;
//! [`LiveSource`] (in `stream`) does the rest of reading records from a server: connecting,
//! where to start, a temporary slot, status updates and timeline switches.

mod stream;

pub use stream::{LiveEnd, LiveError, LiveEvent, LiveOptions, LiveSource, StartAt};

use crate::lsn::Lsn;
use crate::replication::message::XLogData;
use crate::wal::{DecoderConfig, Record, WalDecoder, WalError};

/// Why a streamed chunk could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LiveDecodeError {
    /// The chunk does not start where the previous one ended.
    #[error("WAL chunk starts at {got}, expected {expected}")]
    Gap {
        /// Where the decoder expected the next byte.
        expected: Lsn,
        /// Where the chunk starts.
        got: Lsn,
    },
    /// The WAL itself is invalid (or ends) here.
    #[error(transparent)]
    Wal(#[from] WalError),
}

/// Decodes a replication stream's WAL into records, live.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use pgwal::conninfo::Config;
/// use pgwal::live::LiveDecoder;
/// use pgwal::replication::{ReplicationClient, ReplicationEvent, StartReplication};
/// use pgwal::wal::DecoderConfig;
///
/// let config = Config::parse("host=localhost user=postgres")?;
/// let mut client = ReplicationClient::connect(&config).await?;
/// let system = client.identify_system().await?;
/// let seg_size = client.wal_segment_size().await?;
/// // Start at the beginning of the current segment, so the decoder sees whole pages.
/// let start = system.xlogpos.segment_start(seg_size);
/// let mut live = LiveDecoder::new(DecoderConfig::new(seg_size), start);
/// let request = StartReplication::new(start).timeline(system.timeline);
/// let mut stream = client.start_replication(&request).await?;
/// while let Some(event) = stream.next_event().await {
///     if let ReplicationEvent::XLogData(chunk) = event? {
///         live.feed(&chunk, |record| println!("{}", record.lsn()))?;
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LiveDecoder {
    decoder: WalDecoder,
}

impl LiveDecoder {
    /// A decoder for a stream that starts at `start`: a page boundary (the first record found
    /// from there on is returned, a continued record is skipped) or a known record start.
    pub fn new(cfg: DecoderConfig, start: Lsn) -> LiveDecoder {
        let decoder = if start.page_offset(cfg.page_size) == 0 {
            WalDecoder::new(cfg, start)
        } else {
            WalDecoder::at_record(cfg, start)
        };
        LiveDecoder { decoder }
    }

    /// A decoder that hands out the first record at or after `start`, wherever `start` points
    /// (a record, the middle of one, a page or segment start), as pg_waldump's `-s` finds it:
    /// the stream must begin at [`position`](Self::position), the start of `start`'s page.
    pub fn find(cfg: DecoderConfig, start: Lsn) -> LiveDecoder {
        LiveDecoder {
            decoder: WalDecoder::new(cfg, start),
        }
    }

    /// The LSN of the next byte expected.
    pub fn position(&self) -> Lsn {
        self.decoder.position()
    }

    /// The end of the last complete record decoded.
    pub fn last_record_end(&self) -> Option<Lsn> {
        self.decoder.last_record_end()
    }

    /// The underlying decoder.
    pub fn decoder(&self) -> &WalDecoder {
        &self.decoder
    }

    /// Feeds one chunk, calling `on_record` for every record it completes. Bytes already fed
    /// (a chunk overlapping the previous one, as after a reconnect) are skipped.
    pub fn feed(
        &mut self,
        chunk: &XLogData,
        mut on_record: impl FnMut(&Record<'_>),
    ) -> Result<(), LiveDecodeError> {
        let expected = self.decoder.position();
        let end = Lsn(chunk.start.0 + chunk.data.len() as u64);
        if chunk.start > expected {
            return Err(LiveDecodeError::Gap {
                expected,
                got: chunk.start,
            });
        }
        if end <= expected {
            return Ok(());
        }
        let mut input: &[u8] = &chunk.data[(expected.0 - chunk.start.0) as usize..];
        while let Some(rec) = self.decoder.decode(&mut input)? {
            on_record(&rec);
        }
        Ok(())
    }
}
