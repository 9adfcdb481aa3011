//! `-j/--jobs N`: decode segment ranges on several threads, print in the sequential order.
//!
//! The range is cut at page boundaries into chunks. A worker decodes the records that *start*
//! in its chunk: it begins at the chunk's first page, skips a record continued from the chunk
//! before via the page header's `xlp_rem_len`, and reads on past the chunk's end to finish its
//! last record.
//!
//! There is no printing thread: the calling thread is one of the `N` workers, and whichever
//! worker finishes a chunk prints every finished chunk that is next in order (under one lock).
//! The worker of the chunk that is next in order (the *head*) does not even wait for its end:
//! it writes its text out in blocks as it goes, so only the other workers' text is held in
//! memory. Before a chunk's text is printed, its first record must link back (`xl_prev`) to the
//! previous chunk's last; printing stops at the first chunk that ended in an error or the end
//! of WAL. Workers run at most a few chunks ahead of the head, which keeps memory flat however
//! long the range is.

use std::collections::BTreeMap;
use std::io::Write;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use pgwal::reader::ReaderError;
use pgwal::source::{self, ReadEnd, ReadRange, SourceError};
use pgwal::wal::{PgVersion, WalError, WalErrorKind};
use pgwal::Lsn;

use super::stats::Stats;
use super::{skip_message, Outcome, Plan, Sink};

/// The head chunk's worker writes its text out whenever this much has gathered.
const STREAM_BLOCK: usize = 64 << 10;

/// What one worker produced for one chunk.
struct Chunk {
    text: String,
    /// End offset in `text` of each shown record, for `--limit` (empty without one).
    ends: Vec<u32>,
    stats: Stats,
    /// First record (LSN, `xl_prev`) and the version that wrote it.
    first: Option<(Lsn, Lsn)>,
    version: Option<PgVersion>,
    last: Option<Lsn>,
    /// End (`EndRecPtr`) of the last record: after an `XLOG_SWITCH`, the next segment.
    last_end: Option<Lsn>,
    /// How reading ended, if it ended inside this chunk.
    end: Option<Outcome>,
    failure: Option<anyhow::Error>,
    /// The chunk's start was checked against the chunk before and part of its text printed.
    streamed: bool,
    /// The start check failed: keep the text until the chunk is printed whole (or not at all).
    hold: bool,
}

/// A chunk's output buffers, passed from printed chunks back to the workers.
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

/// Where the chunks begin: `start`, then every `bytes` of WAL, and in the last `jobs` such
/// pieces every `tail_bytes`.
///
/// Workers take chunks in order, so the last ones end the run: whichever worker finishes
/// first waits for the others' last chunk. Smaller chunks at the end shorten that wait
/// without making every chunk small (each chunk has a set-up cost and, when it ends a
/// segment, gives the segment's pages back).
struct Cuts {
    start: Lsn,
    /// Index of the `bytes`-sized piece of WAL holding `start`.
    first: u64,
    bytes: u64,
    /// Chunks of `bytes` (the first may be shorter); the rest are of `tail_bytes`.
    big: usize,
    tail_bytes: u64,
    count: usize,
}

impl Cuts {
    /// Cuts `start..=last_byte` for `jobs` workers.
    fn new(start: Lsn, last_byte: u64, bytes: u64, tail_bytes: u64, jobs: usize) -> Cuts {
        let first = start.0 / bytes;
        let pieces = (last_byte / bytes).saturating_sub(first) + 1;
        // The first chunk stays whole: it may start anywhere in its piece.
        let big = pieces.saturating_sub(jobs as u64).max(1);
        let tail_start = (first + big).saturating_mul(bytes);
        let tail = if last_byte >= tail_start {
            (last_byte - tail_start) / tail_bytes + 1
        } else {
            0
        };
        Cuts {
            start,
            first,
            bytes,
            big: big as usize,
            tail_bytes,
            count: (big + tail) as usize,
        }
    }

    fn lo(&self, i: usize) -> Lsn {
        if i == 0 {
            self.start
        } else if i < self.big {
            Lsn((self.first + i as u64) * self.bytes)
        } else {
            let tail_start = (self.first + self.big as u64) * self.bytes;
            Lsn(tail_start + (i - self.big) as u64 * self.tail_bytes)
        }
    }

    fn hi(&self, i: usize) -> Option<Lsn> {
        (i + 1 < self.count).then(|| self.lo(i + 1))
    }
}

/// The printing side, behind one lock.
struct Printer<'a, W> {
    out: &'a mut W,
    stats: &'a mut Stats,
    /// The next chunk to print.
    want: usize,
    /// Finished chunks waiting for the ones before them.
    pending: BTreeMap<usize, Chunk>,
    /// Last record of the printed chunks, and its end.
    prev_last: Option<Lsn>,
    /// pg_waldump's note on where the first record is was written (or was not needed).
    announced: bool,
    prev_end: Option<Lsn>,
    /// Records printed, for `--limit`.
    shown: u64,
    /// How the dump ended, once it has.
    result: Option<anyhow::Result<Outcome>>,
    spare: Vec<Buffers>,
}

/// What every worker shares.
struct Work<'a, W> {
    plan: &'a Plan,
    range: &'a ReadRange,
    sink: &'a Sink,
    segments: source::SharedSegments,
    cuts: Cuts,
    limit: Option<u64>,
    /// Chunks a worker may start beyond the head.
    window: usize,
    /// Capacity of a fresh text buffer.
    text_capacity: usize,
    /// The head chunk's text is written out whenever this much has gathered.
    stream_block: usize,
    printer: Mutex<Printer<'a, W>>,
    /// Signalled whenever the head moves or the dump ends.
    moved: Condvar,
    /// `printer.want`, readable without the lock.
    head: AtomicUsize,
    next: AtomicUsize,
    stop: AtomicBool,
}

/// Runs the dump with `jobs` threads; same output as the sequential path.
pub(crate) fn run<W: Write + Send>(
    plan: &Plan,
    sink: &Sink,
    jobs: usize,
    limit: Option<u64>,
    out: &mut W,
    stats: &mut Stats,
) -> anyhow::Result<Outcome> {
    let range = plan.reader.range();
    let seg_size = range.config.seg_size;
    // Chunks of 4 MB of WAL (at page boundaries) keep each worker's text small; without
    // text (--stats, --quiet) chunks of 16 MB mean fewer chunks to set up and fewer times
    // pages are given back (each a TLB flush on every core). Tests set
    // PGWAL_DUMP_CHUNK_PAGES to cut the small shipped samples into many chunks.
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
    // The last chunks are a quarter of that (whole pages).
    let tail_bytes = (chunk_bytes / 4 / page).max(1) * page;
    let last_byte = plan.reader.last_byte().0;
    let work = Work {
        plan,
        range,
        sink,
        // Workers read parts of the same segments: map each once for all of them.
        segments: source::SharedSegments::new(jobs + 1),
        cuts: Cuts::new(range.start, last_byte, chunk_bytes, tail_bytes, jobs),
        limit,
        window: jobs + 1,
        // Room for the text of most chunks from the start: growing a buffer of megabytes
        // moves it, which also flushes the TLBs of every core.
        text_capacity: if sink.prints_text() {
            2 * chunk_bytes as usize
        } else {
            0
        },
        // Tests set PGWAL_DUMP_STREAM_BYTES to stream after (nearly) every record.
        stream_block: std::env::var("PGWAL_DUMP_STREAM_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(STREAM_BLOCK),
        printer: Mutex::new(Printer {
            out,
            stats,
            want: 0,
            pending: BTreeMap::new(),
            prev_last: None,
            announced: false,
            prev_end: None,
            shown: 0,
            result: None,
            spare: Vec::new(),
        }),
        moved: Condvar::new(),
        head: AtomicUsize::new(0),
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    };
    std::thread::scope(|scope| {
        for _ in 1..jobs {
            scope.spawn(|| work.worker());
        }
        work.worker();
    });
    let printer = work
        .printer
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    printer.result.unwrap_or(Ok(Ok(ReadEnd::ReachedEnd)))
}

impl<'a, W: Write> Work<'a, W> {
    fn lock(&self) -> MutexGuard<'_, Printer<'a, W>> {
        self.printer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One thread's loop: take the next chunk, decode it, print what is next in order.
    fn worker(&self) {
        let mut bufs: Option<Buffers> = None;
        loop {
            let i = self.next.fetch_add(1, Ordering::SeqCst);
            if i >= self.cuts.count || self.stop.load(Ordering::SeqCst) {
                return;
            }
            if i >= self.head.load(Ordering::SeqCst) + self.window {
                let mut p = self.lock();
                while i >= p.want + self.window && !self.stop.load(Ordering::SeqCst) {
                    p = self
                        .moved
                        .wait(p)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                if self.stop.load(Ordering::SeqCst) {
                    return;
                }
            }
            let b = bufs.take().unwrap_or_else(|| Buffers {
                text: String::with_capacity(self.text_capacity),
                ends: Vec::new(),
                stats: Stats::new(),
            });
            let chunk = self.decode(i, self.cuts.lo(i), b, true);
            let mut p = self.lock();
            p.pending.insert(i, chunk);
            let before = p.want;
            self.print_ready(&mut p);
            bufs = p.spare.pop();
            let (moved, want) = (p.want != before, p.want);
            if moved || p.result.is_some() {
                self.moved.notify_all();
            }
            drop(p);
            // Every chunk before `want` is read: their segments' pages can go.
            if moved && want < self.cuts.count {
                self.segments.give_back_before(self.cuts.lo(want));
            }
        }
    }

    /// Prints every finished chunk that is next in order, until one is missing or the dump
    /// ends (then `result` is set and every worker told to stop).
    fn print_ready(&self, p: &mut Printer<'a, W>) {
        while p.result.is_none() {
            let want = p.want;
            let Some(chunk) = p.pending.remove(&want) else {
                return;
            };
            match self.print(p, want, chunk) {
                Ok(None) => {}
                Ok(Some(end)) => p.result = Some(Ok(end)),
                Err(e) => p.result = Some(Err(e)),
            }
            p.want += 1;
            self.head.store(p.want, Ordering::SeqCst);
            if p.result.is_some() || p.want >= self.cuts.count {
                self.stop.store(true, Ordering::SeqCst);
                p.result.get_or_insert(Ok(Ok(ReadEnd::ReachedEnd)));
            }
        }
    }

    /// Checks and prints chunk `i`; returns how the dump ended if it ended here.
    fn print(
        &self,
        p: &mut Printer<'a, W>,
        i: usize,
        mut chunk: Chunk,
    ) -> anyhow::Result<Option<Outcome>> {
        if !chunk.streamed {
            match p.switch_check(self.cuts.lo(i), self.cuts.hi(i), &chunk) {
                SwitchCheck::Fits => {}
                SwitchCheck::Redo(from) => {
                    // The chunk began in the zeroed tail of a segment ended by XLOG_SWITCH and
                    // found no page header there: decode it again from where the switch ends.
                    let bufs = chunk.into_buffers();
                    chunk = self.decode(i, from, bufs, false);
                }
                SwitchCheck::Skip => {
                    p.spare.push(chunk.into_buffers());
                    return Ok(None);
                }
            }
            if let Err(error) = p.link_check(&chunk) {
                return Ok(Some(Err(SourceError::Corrupt {
                    path: self.plan.reader.directory().path().to_owned(),
                    error,
                }
                .into())));
            }
            self.announce(p, &chunk)?;
        }
        if let Some(e) = chunk.failure.take() {
            p.out.write_all(chunk.text.as_bytes())?;
            return Err(e);
        }
        if chunk.last.is_some() {
            p.prev_last = chunk.last;
            p.prev_end = chunk.last_end;
        }
        // Print (or count) this chunk's records, honouring --limit.
        let mut upto = chunk.text.len();
        let mut reached_limit = false;
        if let Some(limit) = self.limit {
            let room = limit.saturating_sub(p.shown) as usize;
            if chunk.ends.len() >= room {
                upto = chunk
                    .ends
                    .get(room.wrapping_sub(1))
                    .map_or(0, |&e| e as usize);
                reached_limit = true;
            }
        }
        p.out.write_all(&chunk.text.as_bytes()[..upto])?;
        p.shown += chunk.ends.len() as u64;
        p.stats.merge(&chunk.stats);
        let end = chunk.end.take();
        p.spare.push(chunk.into_buffers());
        if reached_limit {
            return Ok(Some(Ok(ReadEnd::Stopped)));
        }
        Ok(end)
    }

    /// Writes out the head chunk's text gathered so far, once its start is checked.
    fn stream(&self, i: usize, c: &mut Chunk) -> ControlFlow<()> {
        if c.hold || self.head.load(Ordering::SeqCst) != i {
            return ControlFlow::Continue(());
        }
        let mut p = self.lock();
        if p.result.is_some() {
            return ControlFlow::Break(());
        }
        if !c.streamed {
            let fits = matches!(
                p.switch_check(self.cuts.lo(i), self.cuts.hi(i), c),
                SwitchCheck::Fits
            ) && p.link_check(c).is_ok();
            if !fits {
                c.hold = true;
                return ControlFlow::Continue(());
            }
            c.streamed = true;
            if let Err(e) = self.announce(&mut p, c) {
                c.failure = Some(e);
                return ControlFlow::Break(());
            }
        }
        if let Err(e) = p.out.write_all(c.text.as_bytes()) {
            c.failure = Some(e.into());
            return ControlFlow::Break(());
        }
        c.text.clear();
        ControlFlow::Continue(())
    }

    /// Before the first chunk that has a record is printed: where that record is, if it is not
    /// where the range starts (as the sequential dump says it at its first record).
    fn announce(&self, p: &mut Printer<'a, W>, chunk: &Chunk) -> anyhow::Result<()> {
        if p.announced {
            return Ok(());
        }
        if let (Some((lsn, _)), Some(version)) = (chunk.first, chunk.version) {
            p.announced = true;
            let mut note = String::new();
            let seg_size = self.range.config.seg_size;
            let start = (self.plan.start, self.plan.explicit_start, seg_size);
            skip_message(start, lsn, version, self.sink, &mut note);
            p.out.write_all(note.as_bytes())?;
        }
        Ok(())
    }

    /// Decodes the records that start in `lo..` (up to chunk `i`'s end) into `bufs` (emptied
    /// buffers to reuse); `may_stream` lets the head chunk write its text out as it goes.
    fn decode(&self, i: usize, lo: Lsn, bufs: Buffers, may_stream: bool) -> Chunk {
        let (sink, hi) = (self.sink, self.cuts.hi(i));
        let track_ends = self.limit.is_some();
        // Plain --stats: each record is just counted.
        let counts_only = sink.counts_only() && !track_ends;
        let may_stream = may_stream && sink.prints_text() && !track_ends;
        let mut c = Chunk {
            text: bufs.text,
            ends: bufs.ends,
            stats: bufs.stats,
            first: None,
            version: None,
            last: None,
            last_end: None,
            end: None,
            failure: None,
            streamed: false,
            hold: false,
        };
        let mut sub = self.range.clone();
        sub.start = lo;
        let dir = self.plan.reader.directory();
        let outcome = source::read_range_shared(dir, &sub, &self.segments, |rec| {
            if hi.is_some_and(|h| rec.lsn() >= h) {
                return ControlFlow::Break(());
            }
            if c.first.is_none() {
                c.first = Some((rec.lsn(), rec.prev()));
                c.version = Some(rec.version());
                // Merged in order, the first chunk with a record sets where the stats begin.
                c.stats.start = Some(rec.lsn());
            }
            c.last = Some(rec.lsn());
            c.last_end = Some(rec.end_lsn());
            if counts_only {
                c.stats.add(rec);
                return ControlFlow::Continue(());
            }
            match sink.handle(rec, &mut c.text, &mut c.stats) {
                Ok(true) if track_ends => c.ends.push(c.text.len() as u32),
                Ok(_) => {}
                Err(e) => {
                    c.failure = Some(e);
                    return ControlFlow::Break(());
                }
            }
            if may_stream && c.text.len() >= self.stream_block {
                return self.stream(i, &mut c);
            }
            ControlFlow::Continue(())
        });
        match outcome {
            Ok(ReadEnd::Stopped) => {}
            Ok(ReadEnd::ReachedEnd) if hi.is_some() => {}
            other => c.end = Some(other.map_err(ReaderError::from)),
        }
        c
    }
}

/// Where a chunk starts, given where the `XLOG_SWITCH` record before it ended.
enum SwitchCheck {
    Fits,
    /// Decode the chunk again from this LSN (the end of an `XLOG_SWITCH` record).
    Redo(Lsn),
    /// The chunk lies wholly in the zeroed tail after an `XLOG_SWITCH`: nothing to print.
    Skip,
}

impl<W> Printer<'_, W> {
    /// Whether chunk `lo..hi` began inside what the last printed record (an `XLOG_SWITCH`)
    /// skipped.
    fn switch_check(&self, lo: Lsn, hi: Option<Lsn>, chunk: &Chunk) -> SwitchCheck {
        match self.prev_end {
            Some(end) if end > lo && chunk.first.is_none_or(|(l, _)| l < end) => {
                if hi.is_some_and(|h| end >= h) {
                    SwitchCheck::Skip
                } else {
                    SwitchCheck::Redo(end)
                }
            }
            _ => SwitchCheck::Fits,
        }
    }

    /// Checks that the chunk's first record links back to the last record printed.
    fn link_check(&self, chunk: &Chunk) -> Result<(), WalError> {
        match (self.prev_last, chunk.first) {
            (Some(prev), Some((lsn, link))) if link != prev => Err(WalError {
                lsn,
                kind: WalErrorKind::IncorrectPrevLink {
                    prev: link,
                    expected: Some(prev),
                },
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chunks start at `start`, follow each other without gap, end after `last_byte`, and
    /// only the last `jobs` pieces are cut small.
    #[test]
    fn cuts_cover_the_range_with_small_chunks_at_the_end() {
        let (mb, kb) = (1u64 << 20, 1u64 << 10);
        for (start, last_byte, bytes, tail, jobs) in [
            (Lsn(0x100_0028), 29 * mb - 1, 16 * mb, 4 * mb, 2),
            (Lsn(0x100_0028), 64 * mb - 1, 16 * mb, 4 * mb, 2),
            (Lsn(40 * mb + 8 * kb), 200 * mb + 5, 4 * mb, mb, 3),
            (Lsn(8 * kb), 8 * kb, 8 * kb, 8 * kb, 2),
            (Lsn(5 * kb), 40 * kb - 1, 8 * kb, 8 * kb, 4),
            (Lsn(16 * kb + 24), 16 * kb + 100, 16 * kb, 8 * kb, 2),
        ] {
            let c = Cuts::new(start, last_byte, bytes, tail, jobs);
            let what = format!("{start} ..= {last_byte:#x}, {bytes} / {tail}, {jobs} jobs");
            assert_eq!(c.lo(0), start, "{what}");
            assert!(c.count >= 1, "{what}");
            let mut small = 0;
            for i in 0..c.count {
                let lo = c.lo(i);
                assert!(
                    lo.0 <= last_byte,
                    "chunk {i} starts after the range: {what}"
                );
                match c.hi(i) {
                    Some(hi) => {
                        assert!(hi > lo, "chunk {i} is empty: {what}");
                        let len = hi.0 - lo.0;
                        assert!(len <= bytes, "chunk {i} too long: {what}");
                        if i > 0 && len < bytes {
                            assert_eq!(len, tail, "chunk {i}: {what}");
                            small += 1;
                        } else if i > 0 {
                            assert_eq!(small, 0, "a large chunk {i} after small ones: {what}");
                        }
                        assert_eq!(c.lo(i + 1), hi, "{what}");
                    }
                    None => {
                        assert_eq!(i + 1, c.count, "{what}");
                        assert!(last_byte - lo.0 < bytes, "last chunk too long: {what}");
                    }
                }
            }
            // Small chunks only in the last `jobs` pieces of `bytes`.
            assert!(small * tail <= jobs as u64 * bytes, "{what}");
        }
    }
}
