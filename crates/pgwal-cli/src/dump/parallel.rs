//! `-j/--jobs N`: decode segment ranges on several threads, print in the sequential order.
//!
//! The range is cut at segment boundaries into chunks. A worker decodes the records that
//! *start* in its chunk: it begins at the chunk's first page, skips a record continued from
//! the chunk before via the page header's `xlp_rem_len`, and reads on past the chunk's end to
//! finish its last record. The main thread prints the chunks in order, checks that each
//! chunk's first record links back (`xl_prev`) to the previous chunk's last, and stops at the
//! first chunk that ended in an error or the end of WAL.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use pgwal::source::{self, ReadEnd, ReadRange, SourceError};
use pgwal::wal::{WalError, WalErrorKind};
use pgwal::Lsn;

use super::stats::Stats;
use super::{skip_message, Outcome, Plan, Sink};

/// What one worker produced for one chunk.
struct Chunk {
    text: String,
    /// End offset in `text` of each shown record, for `--limit` (empty without one).
    ends: Vec<u32>,
    stats: Stats,
    first: Option<(Lsn, Lsn)>,
    last: Option<Lsn>,
    /// End (`EndRecPtr`) of the last record: after an `XLOG_SWITCH`, the next segment.
    last_end: Option<Lsn>,
    /// How reading ended, if it ended inside this chunk.
    end: Option<Outcome>,
    failure: Option<anyhow::Error>,
}

/// Runs the dump with `jobs` threads; same output as the sequential path.
pub(crate) fn run(
    plan: &Plan,
    range: &ReadRange,
    sink: &Sink,
    jobs: usize,
    limit: i64,
    out: &mut impl Write,
    stats: &mut Stats,
) -> anyhow::Result<Outcome> {
    let seg_size = range.config.seg_size;
    // Chunks of 4 MB of WAL (at page boundaries) keep each worker's text small; without
    // text (--stats, --quiet) chunks of 16 MB mean fewer chunks to set up and fewer times
    // pages are given back (each a TLB flush on every core): about 3% faster than 8 MB, for
    // about 40 MB instead of 25 with two threads. Tests set PGWAL_DUMP_CHUNK_PAGES to cut the
    // small shipped samples into many chunks.
    let page = u64::from(range.config.page_size);
    let default_chunk: u64 = if sink.prints_text() {
        4 << 20
    } else {
        16 << 20
    };
    let chunk_bytes = std::env::var("PGWAL_DUMP_CHUNK_PAGES")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|&n| n > 0)
        .map_or(default_chunk, |n| n.saturating_mul(page))
        .min(seg_size.bytes());
    let first = range.start.0 / chunk_bytes;
    let last_byte = match range.end {
        Some(e) => e.0.saturating_sub(1),
        None => {
            let last_seg = plan
                .dir
                .segments()
                .filter_map(|(n, _)| n.segno(seg_size))
                .map(|s| s.0)
                .max()
                .unwrap_or(0);
            (last_seg + 1)
                .saturating_mul(seg_size.bytes())
                .saturating_sub(1)
                .max(range.start.0)
        }
    };
    let nchunks = (last_byte / chunk_bytes).saturating_sub(first) as usize + 1;
    let bounds = |i: usize| -> Lsn {
        if i == 0 {
            range.start
        } else {
            Lsn((first + i as u64) * chunk_bytes)
        }
    };
    // Workers read parts of the same segments: map each once for all of them.
    let shared = source::SharedSegments::new(jobs + 1);
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    // Bounded in-flight chunks keep memory flat however long the range is.
    let window = jobs + 1;
    std::thread::scope(|scope| -> anyhow::Result<Outcome> {
        // The channels live inside the scope: returning early drops the senders, which wakes
        // and ends every worker before the scope joins them.
        let (done_tx, done_rx) = mpsc::channel::<(usize, Chunk)>();
        // A credit is a set of output buffers: the main thread hands each printed chunk's
        // buffers back, so workers reuse a few allocations instead of making new ones (fresh
        // pages each cost a fault and, with several threads, a TLB flush on every core).
        let (credit_tx, credit_rx) = mpsc::sync_channel::<Buffers>(window);
        for _ in 0..window {
            let _ = credit_tx.send(Buffers {
                // Room for the text of most chunks from the start: growing a buffer of
                // megabytes moves it, which also flushes the TLBs of every core.
                text: String::with_capacity(if sink.prints_text() {
                    2 * chunk_bytes as usize
                } else {
                    0
                }),
                ends: Vec::new(),
                stats: Stats::new(),
            });
        }
        let credit_rx = std::sync::Arc::new(std::sync::Mutex::new(credit_rx));
        for _ in 0..jobs {
            let done_tx = done_tx.clone();
            let credit_rx = credit_rx.clone();
            let (next, stop, shared) = (&next, &stop, &shared);
            scope.spawn(move || loop {
                let Some(bufs) = credit_rx.lock().ok().and_then(|rx| rx.recv().ok()) else {
                    return;
                };
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= nchunks || stop.load(Ordering::SeqCst) {
                    return;
                }
                let lo = bounds(i);
                let hi = if i + 1 < nchunks {
                    Some(bounds(i + 1))
                } else {
                    None
                };
                let chunk =
                    decode_chunk(plan, range, shared, sink, lo, hi, i == 0, limit > 0, bufs);
                if done_tx.send((i, chunk)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        let mut pending: BTreeMap<usize, Chunk> = BTreeMap::new();
        let mut want = 0usize;
        let mut shown: i64 = 0;
        let mut prev_last: Option<Lsn> = None;
        let mut prev_end: Option<Lsn> = None;
        let finish = |stop: &AtomicBool| stop.store(true, Ordering::SeqCst);
        while want < nchunks {
            let Ok((i, chunk)) = done_rx.recv() else {
                break;
            };
            pending.insert(i, chunk);
            while let Some(mut chunk) = pending.remove(&want) {
                let (lo, hi) = (bounds(want), (want + 1 < nchunks).then(|| bounds(want + 1)));
                want += 1;
                // A chunk that begins in the zeroed tail of a segment ended by XLOG_SWITCH finds
                // no page header there: decode it again from where the switch really ends.
                if let Some(prev_end) = prev_end {
                    if prev_end > lo && chunk.first.is_none_or(|(l, _)| l < prev_end) {
                        if hi.is_some_and(|h| prev_end >= h) {
                            let _ = credit_tx.try_send(chunk.into_buffers());
                            continue;
                        }
                        let bufs = chunk.into_buffers();
                        chunk = decode_chunk(
                            plan,
                            range,
                            &shared,
                            sink,
                            prev_end,
                            hi,
                            false,
                            limit > 0,
                            bufs,
                        );
                    }
                }
                if let Some(e) = chunk.failure {
                    finish(&stop);
                    return Err(e);
                }
                if let (Some(prev), Some((lsn, link))) = (prev_last, chunk.first) {
                    if link != prev {
                        finish(&stop);
                        let error = WalError {
                            lsn,
                            kind: WalErrorKind::IncorrectPrevLink {
                                prev: link,
                                expected: Some(prev),
                            },
                        };
                        return Ok(Err(SourceError::Corrupt {
                            path: plan.dir.path().to_owned(),
                            error,
                        }));
                    }
                }
                if chunk.last.is_some() {
                    prev_last = chunk.last;
                    prev_end = chunk.last_end;
                }
                // Print (or count) this chunk's records, honouring --limit.
                let mut upto = chunk.text.len();
                let mut reached_limit = false;
                if limit > 0 {
                    let room = (limit - shown) as usize;
                    if chunk.ends.len() >= room {
                        upto = chunk
                            .ends
                            .get(room.wrapping_sub(1))
                            .map_or(0, |&e| e as usize);
                        reached_limit = true;
                    }
                }
                out.write_all(&chunk.text.as_bytes()[..upto])?;
                shown += chunk.ends.len() as i64;
                stats.merge(&chunk.stats);
                let end = chunk.end.take();
                let _ = credit_tx.try_send(chunk.into_buffers());
                if reached_limit {
                    finish(&stop);
                    return Ok(Ok(ReadEnd::Stopped));
                }
                if let Some(end) = end {
                    finish(&stop);
                    return Ok(end);
                }
            }
        }
        Ok(Ok(ReadEnd::ReachedEnd))
    })
}

/// A chunk's output buffers, passed back and forth between the workers and the printer.
struct Buffers {
    text: String,
    ends: Vec<u32>,
    stats: Stats,
}

impl Chunk {
    /// The chunk's buffers, emptied for reuse.
    fn into_buffers(self) -> Buffers {
        let Chunk {
            mut text,
            mut ends,
            mut stats,
            ..
        } = self;
        text.clear();
        ends.clear();
        stats.clear();
        Buffers { text, ends, stats }
    }
}

/// Decodes the records that start in `lo..hi` into `bufs` (emptied buffers to reuse);
/// `track_ends` (for `--limit`) notes where each record's text ends.
#[allow(clippy::too_many_arguments)]
fn decode_chunk(
    plan: &Plan,
    range: &ReadRange,
    shared: &source::SharedSegments,
    sink: &Sink,
    lo: Lsn,
    hi: Option<Lsn>,
    first_chunk: bool,
    track_ends: bool,
    bufs: Buffers,
) -> Chunk {
    // Plain --stats: each record is just counted.
    let counts_only = sink.counts_only() && !track_ends;
    let mut c = Chunk {
        text: bufs.text,
        ends: bufs.ends,
        stats: bufs.stats,
        first: None,
        last: None,
        last_end: None,
        end: None,
        failure: None,
    };
    let sub = ReadRange {
        start: lo,
        ..range.clone()
    };
    let outcome = source::read_range_shared(&plan.dir, &sub, shared, |rec| {
        if hi.is_some_and(|h| rec.lsn() >= h) {
            return ControlFlow::Break(());
        }
        if c.first.is_none() {
            c.first = Some((rec.lsn(), rec.prev()));
            if first_chunk {
                skip_message(plan, rec, sink, &mut c.text);
                c.stats.start = Some(rec.lsn());
            }
        }
        c.last = Some(rec.lsn());
        c.last_end = Some(rec.end_lsn());
        if counts_only {
            c.stats.add(rec);
            return ControlFlow::Continue(());
        }
        match sink.handle(rec, &mut c.text, &mut c.stats) {
            Ok(true) if track_ends => c.ends.push(c.text.len() as u32),
            Ok(true) => {}
            Ok(false) => {}
            Err(e) => {
                c.failure = Some(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    match outcome {
        Ok(ReadEnd::Stopped) => {}
        Ok(ReadEnd::ReachedEnd) if hi.is_some() => {}
        other => c.end = Some(other),
    }
    c
}
