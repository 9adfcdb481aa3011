//! `-j/--jobs N`: the dump's part of the library's parallel reading
//! ([`WalReader::for_each_chunk`](pgwal::reader::WalReader::for_each_chunk)): each chunk's
//! records are formatted into text (or counted) on the worker threads, and the chunks' text and
//! statistics are written out and merged in LSN order. The chunk next in order writes its text
//! out every 64 kB as it goes, so only the other workers' text is held in memory.

use std::io::Write;
use std::ops::ControlFlow;

use pgwal::reader::{ChunkWork, Handover};
use pgwal::wal::Record;

use super::config::DumpConfig;
use super::stats::Stats;
use super::{skip_message, Outcome, Plan, Sink};

/// The chunk next in order writes its text out whenever this much has gathered.
const STREAM_BLOCK: usize = 64 << 10;

/// Bytes of WAL per chunk when records are printed: small chunks keep each worker's text small
/// (without text, as with `--stats`, the library's larger default means fewer chunks to set up
/// and fewer times pages are given back).
pub(crate) const TEXT_CHUNK_BYTES: u64 = 4 << 20;

/// The chunk size `-j` uses for the dump `cfg` describes: tests set `PGWAL_DUMP_CHUNK_PAGES`
/// (pages of 8 kB) to cut the small shipped samples into many chunks.
pub(crate) fn chunk_bytes(cfg: &DumpConfig) -> u64 {
    let prints_text = !cfg.output.quiet && cfg.output.stats.is_none();
    std::env::var("PGWAL_DUMP_CHUNK_PAGES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .map_or(
            if prints_text {
                TEXT_CHUNK_BYTES
            } else {
                pgwal::reader::DEFAULT_CHUNK_BYTES
            },
            |n| n.saturating_mul(8192),
        )
}

/// What one chunk gathers.
pub(crate) struct Part {
    text: String,
    /// End offset in `text` of each shown record, for `--limit` (empty without one).
    ends: Vec<u32>,
    stats: Stats,
    /// Why the sink failed (saving an image), at the chunk's last record.
    failure: Option<anyhow::Error>,
}

/// Formats or counts each chunk's records.
struct DumpWork<'a> {
    sink: &'a Sink,
    /// `--limit`: the end of each shown record's text is kept.
    track_ends: bool,
    /// Plain `--stats`: each record is just counted.
    counts_only: bool,
    /// The chunk next in order writes its text out whenever `stream_block` bytes gathered.
    may_stream: bool,
    stream_block: usize,
    /// Capacity of a fresh text buffer.
    text_capacity: usize,
}

impl ChunkWork for DumpWork<'_> {
    type Part = Part;

    fn part(&self) -> Part {
        Part {
            text: String::with_capacity(self.text_capacity),
            ends: Vec::new(),
            stats: Stats::new(),
            failure: None,
        }
    }

    fn clear(&self, part: &mut Part) {
        part.text.clear();
        part.ends.clear();
        part.stats.clear();
        part.failure = None;
    }

    #[inline]
    fn record(&self, part: &mut Part, rec: &Record<'_>) -> ControlFlow<()> {
        // Merged in order, the first chunk with a record sets where the stats begin.
        part.stats.start.get_or_insert(rec.lsn());
        if self.counts_only {
            part.stats.add(rec);
            return ControlFlow::Continue(());
        }
        match self.sink.handle(rec, &mut part.text, &mut part.stats) {
            Ok(true) if self.track_ends => part.ends.push(part.text.len() as u32),
            Ok(_) => {}
            Err(e) => {
                part.failure = Some(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }

    #[inline]
    fn ready(&self, part: &Part) -> bool {
        self.may_stream && part.text.len() >= self.stream_block
    }
}

/// Runs the dump with the reader's jobs; same output as the sequential path.
pub(crate) fn run<W: Write + Send>(
    cfg: &DumpConfig,
    plan: &Plan,
    sink: &Sink,
    limit: Option<u64>,
    out: &mut W,
    stats: &mut Stats,
) -> anyhow::Result<Outcome> {
    let track_ends = limit.is_some();
    let work = DumpWork {
        sink,
        track_ends,
        counts_only: sink.counts_only() && !track_ends,
        may_stream: sink.prints_text() && !track_ends,
        // Tests set PGWAL_DUMP_STREAM_BYTES to stream after (nearly) every record.
        stream_block: std::env::var("PGWAL_DUMP_STREAM_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(STREAM_BLOCK),
        // Room for the text of most chunks from the start: growing a buffer of megabytes
        // moves it, which also flushes the TLBs of every core.
        text_capacity: if sink.prints_text() {
            2 * chunk_bytes(cfg).min(plan.info().seg_size.bytes()) as usize
        } else {
            0
        },
    };
    let seg_size = plan.info().seg_size;
    let version = plan.info().version;
    let mut announced = false;
    let mut shown: u64 = 0;
    let mut failure: Option<anyhow::Error> = None;
    let outcome = plan.reader.for_each_chunk(&work, |part, h: Handover| {
        // Before the first record: where it is, if not where the range starts (as the
        // sequential dump says it at its first record).
        if !announced {
            if let Some(first) = h.first {
                announced = true;
                let mut note = String::new();
                let start = (plan.start, plan.explicit_start, seg_size);
                skip_message(start, first, version, sink, &mut note);
                if let Err(e) = out.write_all(note.as_bytes()) {
                    failure = Some(e.into());
                    return ControlFlow::Break(());
                }
            }
        }
        if let Some(e) = part.failure.take() {
            failure = Some(match out.write_all(part.text.as_bytes()) {
                Ok(()) => e,
                Err(w) => w.into(),
            });
            return ControlFlow::Break(());
        }
        // Print (or count) this chunk's records, honouring --limit.
        let mut upto = part.text.len();
        let mut reached_limit = false;
        if let Some(limit) = limit {
            let room = limit.saturating_sub(shown) as usize;
            if part.ends.len() >= room {
                upto = part
                    .ends
                    .get(room.wrapping_sub(1))
                    .map_or(0, |&e| e as usize);
                reached_limit = true;
            }
        }
        if let Err(e) = out.write_all(&part.text.as_bytes()[..upto]) {
            failure = Some(e.into());
            return ControlFlow::Break(());
        }
        if !h.done {
            // Part of the chunk next in order: its text is out, the rest comes later.
            part.text.clear();
            return ControlFlow::Continue(());
        }
        shown += part.ends.len() as u64;
        stats.merge(&part.stats);
        if reached_limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(outcome)
}
