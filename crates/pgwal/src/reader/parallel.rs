//! Decoding a [`WalReader`]'s range on several threads ([`ReaderBuilder::jobs`]), with the
//! results handed over in LSN order.
//!
//! The range is cut at page boundaries into chunks. A worker decodes the records that *start*
//! in its chunk: it begins at the chunk's first page, skips a record continued from the chunk
//! before via the page header's `xlp_rem_len`, and reads on past the chunk's end to finish its
//! last record. Each chunk's records go to the caller's [`ChunkWork`], which gathers them into
//! a *part*; the parts are handed to the caller's consumer one at a time, in LSN order.
//!
//! There is no collecting thread: the calling thread is one of the workers, and whichever
//! worker finishes a chunk hands over every finished chunk that is next in order (under one
//! lock). The worker of the chunk that is next in order (the *head*) need not wait for its end:
//! when [`ChunkWork::ready`] says so it hands over what it has gathered so far. Before a chunk
//! is handed over its first record must link back (`xl_prev`) to the previous chunk's last,
//! and a chunk that began in the zeroed tail of a segment ended by `XLOG_SWITCH` is decoded
//! again from where the switch ends (or skipped); handing over stops at the first chunk that
//! ended in an error or the end of WAL. Workers run at most a few chunks ahead of the head,
//! which keeps memory flat however long the range is.
//!
//! [`ReaderBuilder::jobs`]: super::ReaderBuilder::jobs

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use super::{ReaderError, WalReader};
use crate::lsn::Lsn;
use crate::source::{self, ReadEnd, SharedSegments, SourceError};
use crate::wal::{Record, WalError, WalErrorKind};

/// Bytes of WAL per chunk unless [`ReaderBuilder::chunk_size`](super::ReaderBuilder::chunk_size)
/// says otherwise: few chunks to set up, and few times pages are given back.
pub const DEFAULT_CHUNK_BYTES: u64 = 16 << 20;

/// What each chunk's worker does with the chunk's records: see
/// [`WalReader::for_each_chunk`].
///
/// A *part* is what one chunk gathers (counts, text, anything); parts are made by
/// [`part`](ChunkWork::part), filled by [`record`](ChunkWork::record) on a worker thread,
/// handed to the consumer in LSN order, then [`clear`](ChunkWork::clear)ed and reused for a
/// later chunk (so buffers are allocated once per worker, not once per chunk).
pub trait ChunkWork: Sync {
    /// What one chunk gathers.
    type Part: Send;

    /// A new, empty part.
    fn part(&self) -> Self::Part;

    /// Empties `part` for reuse (keeping its allocations).
    fn clear(&self, part: &mut Self::Part);

    /// Takes one record of the chunk (in LSN order within the chunk). Breaking ends the read
    /// at this record: the chunk is handed over as it is, and no later chunk.
    fn record(&self, part: &mut Self::Part, rec: &Record<'_>) -> ControlFlow<()>;

    /// Asked after each record of the chunk that is next in order: whether to hand over what
    /// the part has gathered so far now, rather than when the chunk is done (for output that
    /// can be written out as it comes; the consumer then empties what it took). By default
    /// never.
    #[inline]
    fn ready(&self, _part: &Self::Part) -> bool {
        false
    }
}

/// What the consumer of [`WalReader::for_each_chunk`] learns about the chunk whose part it is
/// handed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Handover {
    /// The chunk's place in LSN order, from 0.
    pub index: usize,
    /// The LSN of the chunk's first record, if it has one (yet).
    pub first: Option<Lsn>,
    /// Whether the chunk is done: this is the last time its part is handed over. Before, the
    /// part is handed over because [`ChunkWork::ready`] said so.
    pub done: bool,
}

impl WalReader {
    /// Reads the range on [`jobs`](super::ReaderBuilder::jobs) threads: cuts it at page
    /// boundaries into chunks ([`chunk_size`](super::ReaderBuilder::chunk_size) bytes of WAL
    /// each, smaller at the end), hands each chunk's records to `work` on a worker thread,
    /// and hands each chunk's part to `take` in LSN order (on whichever thread finished it,
    /// one at a time), until `take` or `work` breaks, the end is reached or the WAL ends.
    ///
    /// What `take` is handed in order is what [`for_each`](WalReader::for_each) would give
    /// one record at a time: the same records, the same end ([`ReadEnd`]) and the same
    /// errors (a chunk's first record is checked against the chunk before's last, as the
    /// single reader checks each record's `xl_prev`). With one job, or a
    /// [`live`](super::ReaderBuilder::live) directory, the whole range is one chunk read on
    /// the calling thread.
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use pgwal::reader::{ChunkWork, Handover, WalReader};
    /// use pgwal::wal::Record;
    ///
    /// /// Counts records and bytes per resource manager.
    /// struct PerRmgr;
    /// impl ChunkWork for PerRmgr {
    ///     type Part = Vec<(u64, u64)>;
    ///     fn part(&self) -> Self::Part {
    ///         vec![(0, 0); 256]
    ///     }
    ///     fn clear(&self, part: &mut Self::Part) {
    ///         part.fill((0, 0));
    ///     }
    ///     fn record(&self, part: &mut Self::Part, rec: &Record<'_>) -> ControlFlow<()> {
    ///         let row = &mut part[usize::from(rec.rmid())];
    ///         row.0 += 1;
    ///         row.1 += u64::from(rec.total_len());
    ///         ControlFlow::Continue(())
    ///     }
    /// }
    ///
    /// let reader = WalReader::builder().jobs(2).chunk_size(64 << 10).open("../../testdata/wal/pg19")?;
    /// let mut totals = vec![(0u64, 0u64); 256];
    /// let mut order = Vec::new();
    /// reader.for_each_chunk(&PerRmgr, |part, h: Handover| {
    ///     order.push(h.index);
    ///     for (t, p) in totals.iter_mut().zip(part.iter()) {
    ///         t.0 += p.0;
    ///         t.1 += p.1;
    ///     }
    ///     ControlFlow::Continue(())
    /// })?;
    /// assert!(order.windows(2).all(|w| w[0] < w[1]), "handed over in order");
    ///
    /// // The same counts as one thread.
    /// let mut one = vec![(0u64, 0u64); 256];
    /// WalReader::open("../../testdata/wal/pg19")?.for_each(|rec| {
    ///     let row = &mut one[usize::from(rec.rmid())];
    ///     row.0 += 1;
    ///     row.1 += u64::from(rec.total_len());
    ///     ControlFlow::Continue(())
    /// })?;
    /// assert_eq!(totals, one);
    /// # Ok::<(), pgwal::reader::ReaderError>(())
    /// ```
    pub fn for_each_chunk<W, C>(&self, work: &W, take: C) -> Result<ReadEnd, ReaderError>
    where
        W: ChunkWork,
        C: FnMut(&mut W::Part, Handover) -> ControlFlow<()> + Send,
    {
        run(self, work, take)
    }

    /// [`for_each_chunk`](WalReader::for_each_chunk) with closures: each chunk's records are
    /// folded by `visit` (on a worker thread) into a value that `init` makes, and the values
    /// are handed to `merge` in LSN order. `init` is called about twice per chunk.
    ///
    /// ```
    /// use std::ops::ControlFlow;
    /// use pgwal::reader::WalReader;
    ///
    /// // The LSN of every record, on 3 threads, in order.
    /// let reader = WalReader::builder().jobs(3).chunk_size(8192).open("../../testdata/wal/pg18")?;
    /// let mut lsns = Vec::new();
    /// reader.fold_chunks(
    ///     Vec::new,
    ///     |v, rec| {
    ///         v.push(rec.lsn());
    ///         ControlFlow::Continue(())
    ///     },
    ///     |v| {
    ///         lsns.extend(v);
    ///         ControlFlow::Continue(())
    ///     },
    /// )?;
    /// assert!(lsns.len() > 1000);
    /// assert!(lsns.windows(2).all(|w| w[0] < w[1]));
    /// # Ok::<(), pgwal::reader::ReaderError>(())
    /// ```
    pub fn fold_chunks<A, I, V, M>(
        &self,
        init: I,
        visit: V,
        mut merge: M,
    ) -> Result<ReadEnd, ReaderError>
    where
        A: Send,
        I: Fn() -> A + Sync,
        V: Fn(&mut A, &Record<'_>) -> ControlFlow<()> + Sync,
        M: FnMut(A) -> ControlFlow<()> + Send,
    {
        let work = Fold { init, visit };
        let init = &work.init;
        run(self, &work, |a: &mut A, _| {
            merge(std::mem::replace(a, init()))
        })
    }
}

/// [`WalReader::fold_chunks`]'s work.
struct Fold<I, V> {
    init: I,
    visit: V,
}

impl<A, I, V> ChunkWork for Fold<I, V>
where
    A: Send,
    I: Fn() -> A + Sync,
    V: Fn(&mut A, &Record<'_>) -> ControlFlow<()> + Sync,
{
    type Part = A;

    fn part(&self) -> A {
        (self.init)()
    }

    fn clear(&self, part: &mut A) {
        *part = (self.init)();
    }

    #[inline]
    fn record(&self, part: &mut A, rec: &Record<'_>) -> ControlFlow<()> {
        (self.visit)(part, rec)
    }
}

/// Runs `work` over `reader`'s range; see [`WalReader::for_each_chunk`].
pub(super) fn run<W, C>(reader: &WalReader, work: &W, take: C) -> Result<ReadEnd, ReaderError>
where
    W: ChunkWork,
    C: FnMut(&mut W::Part, Handover) -> ControlFlow<()> + Send,
{
    let range = reader.range();
    let jobs = reader.jobs.max(1);
    // A directory being written is read by one thread, as `for_each` reads it.
    let single = jobs == 1 || reader.live;
    let seg_bytes = range.config.seg_size.bytes();
    let page = u64::from(range.config.page_size);
    let chunk_bytes = (reader.chunk_bytes.clamp(page, seg_bytes) / page) * page;
    // The last chunks are a quarter of that (whole pages).
    let tail_bytes = (chunk_bytes / 4 / page).max(1) * page;
    let cuts = if single {
        Cuts::whole(range.start)
    } else {
        Cuts::new(
            range.start,
            reader.last_byte().0,
            chunk_bytes,
            tail_bytes,
            jobs,
        )
    };
    let engine = Engine {
        reader,
        work,
        // Workers read parts of the same segments: map each once for all of them. Chunks from
        // the head to `window` ahead are read at once, each reading on into the next segment:
        // with chunks of a segment, `jobs + 2` segments, all kept so that none is mapped (or
        // fetched from an object store) twice.
        segments: SharedSegments::new(jobs + 2),
        cuts,
        single,
        window: jobs + 1,
        order: Mutex::new(Order {
            take,
            want: 0,
            pending: BTreeMap::new(),
            prev_last: None,
            prev_end: None,
            result: None,
            spare: Vec::new(),
        }),
        moved: Condvar::new(),
        head: AtomicUsize::new(0),
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    };
    let threads = if single { 1 } else { jobs };
    // One CPU for each worker, the calling thread's own first, if asked and there are enough.
    let cpus = if reader.bind_cpus && !single {
        cpus::plan(threads)
    } else {
        None
    };
    std::thread::scope(|scope| {
        let engine = &engine;
        for k in 1..threads {
            let cpu = cpus.as_ref().and_then(|c| c.get(k).copied());
            scope.spawn(move || {
                if let Some(cpu) = cpu {
                    cpus::bind_this_thread(cpu);
                }
                engine.worker()
            });
        }
        // The calling thread's own binding, restored when the read is done.
        let own = cpus
            .as_ref()
            .and_then(|c| c.first().copied())
            .and_then(cpus::bind_calling_thread);
        if !single {
            // While the other workers start.
            engine.map_ahead(0);
        }
        engine.worker();
        drop(own);
    });
    let order = engine
        .order
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    order.result.unwrap_or(Ok(ReadEnd::ReachedEnd))
}

/// Where the chunks begin: `start`, then every `bytes` of WAL, and in the last `jobs` such
/// pieces every `tail_bytes`.
///
/// Workers take chunks in order, so the last ones end the run: whichever worker finishes
/// first waits for the others' last chunk. Smaller chunks at the end shorten that wait
/// without making every chunk small (each chunk has a set-up cost and, when it ends a
/// segment, gives the segment's pages back).
#[derive(Debug)]
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

    /// One chunk: the whole range.
    fn whole(start: Lsn) -> Cuts {
        Cuts {
            start,
            first: 0,
            bytes: u64::MAX,
            big: 1,
            tail_bytes: u64::MAX,
            count: 1,
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

/// What one worker gathered from one chunk.
struct Chunk<P> {
    part: P,
    /// First record (LSN, `xl_prev`).
    first: Option<(Lsn, Lsn)>,
    last: Option<Lsn>,
    /// End (`EndRecPtr`) of the last record: after an `XLOG_SWITCH`, the next segment.
    last_end: Option<Lsn>,
    /// How reading ended, if it ended inside this chunk.
    end: Option<Result<ReadEnd, ReaderError>>,
    /// The chunk's start was checked against the chunk before and part of it handed over.
    streamed: bool,
    /// The start check failed: keep the part until the chunk is done.
    hold: bool,
}

/// The ordered side, behind one lock.
struct Order<P, C> {
    take: C,
    /// The next chunk to hand over.
    want: usize,
    /// Finished chunks waiting for the ones before them.
    pending: BTreeMap<usize, Chunk<P>>,
    /// Last record of the chunks handed over, and its end.
    prev_last: Option<Lsn>,
    prev_end: Option<Lsn>,
    /// How the read ended, once it has.
    result: Option<Result<ReadEnd, ReaderError>>,
    /// Parts handed over, emptied, for workers to reuse.
    spare: Vec<P>,
}

/// What every worker shares.
struct Engine<'a, W: ChunkWork, C> {
    reader: &'a WalReader,
    work: &'a W,
    segments: SharedSegments,
    cuts: Cuts,
    /// One chunk, read as [`WalReader::for_each`] reads (also a live directory).
    single: bool,
    /// Chunks a worker may start beyond the head.
    window: usize,
    order: Mutex<Order<W::Part, C>>,
    /// Signalled whenever the head moves or the read ends.
    moved: Condvar,
    /// `order.want`, readable without the lock.
    head: AtomicUsize,
    next: AtomicUsize,
    stop: AtomicBool,
}

/// Where a chunk starts, given where the `XLOG_SWITCH` record before it ended.
enum SwitchCheck {
    Fits,
    /// Decode the chunk again from this LSN (the end of an `XLOG_SWITCH` record).
    Redo(Lsn),
    /// The chunk lies wholly in the zeroed tail after an `XLOG_SWITCH`: nothing to hand over.
    Skip,
}

impl<W, C> Engine<'_, W, C>
where
    W: ChunkWork,
    C: FnMut(&mut W::Part, Handover) -> ControlFlow<()> + Send,
{
    fn lock(&self) -> MutexGuard<'_, Order<W::Part, C>> {
        self.order
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One thread's loop: take the next chunk, decode it, hand over what is next in order.
    fn worker(&self) {
        let mut spare: Option<W::Part> = None;
        loop {
            let i = self.next.fetch_add(1, Ordering::SeqCst);
            if i >= self.cuts.count || self.stop.load(Ordering::SeqCst) {
                return;
            }
            if i >= self.head.load(Ordering::SeqCst) + self.window {
                let mut o = self.lock();
                while i >= o.want + self.window && !self.stop.load(Ordering::SeqCst) {
                    o = self
                        .moved
                        .wait(o)
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                }
                if self.stop.load(Ordering::SeqCst) {
                    return;
                }
            }
            if !self.single {
                self.map_ahead(i);
            }
            let part = spare.take().unwrap_or_else(|| self.work.part());
            let chunk = self.decode(i, self.cuts.lo(i), part, true);
            // The segments wholly in this chunk are read: their pages go now, from this core.
            if let Some(hi) = self.cuts.hi(i) {
                self.segments.give_back_within(self.cuts.lo(i), hi);
            }
            let mut o = self.lock();
            o.pending.insert(i, chunk);
            let before = o.want;
            self.hand_over_ready(&mut o);
            spare = o.spare.pop();
            let (moved, want) = (o.want != before, o.want);
            if moved || o.result.is_some() {
                self.moved.notify_all();
            }
            drop(o);
            // Every chunk before `want` is read: their segments' pages can go.
            if moved && want < self.cuts.count {
                self.segments.give_back_before(self.cuts.lo(want));
            }
        }
    }

    /// Maps the segment files of chunk `i` and after ahead of the workers (see
    /// [`SharedSegments::map_ahead`]).
    fn map_ahead(&self, i: usize) {
        let dir = self.reader.directory();
        self.segments
            .map_ahead(dir, self.reader.range(), self.cuts.lo(i));
    }

    /// Hands over every finished chunk that is next in order, until one is missing or the
    /// read ends (then `result` is set and every worker told to stop).
    fn hand_over_ready(&self, o: &mut Order<W::Part, C>) {
        while o.result.is_none() {
            let want = o.want;
            let Some(chunk) = o.pending.remove(&want) else {
                return;
            };
            if let Some(end) = self.finish(o, want, chunk) {
                o.result = Some(end);
            }
            o.want += 1;
            self.head.store(o.want, Ordering::SeqCst);
            if o.result.is_some() || o.want >= self.cuts.count {
                self.stop.store(true, Ordering::SeqCst);
                o.result.get_or_insert(Ok(ReadEnd::ReachedEnd));
            }
        }
    }

    /// Checks chunk `i` against the chunks before and hands it over; returns how the read
    /// ended if it ended here.
    fn finish(
        &self,
        o: &mut Order<W::Part, C>,
        i: usize,
        mut chunk: Chunk<W::Part>,
    ) -> Option<Result<ReadEnd, ReaderError>> {
        if !chunk.streamed {
            match o.switch_check(self.cuts.lo(i), self.cuts.hi(i), &chunk) {
                SwitchCheck::Fits => {}
                SwitchCheck::Redo(from) => {
                    // The chunk began in the zeroed tail of a segment ended by XLOG_SWITCH and
                    // found no page header there: decode it again from where the switch ends.
                    let mut part = chunk.part;
                    self.work.clear(&mut part);
                    chunk = self.decode(i, from, part, false);
                }
                SwitchCheck::Skip => {
                    let mut part = chunk.part;
                    self.work.clear(&mut part);
                    o.spare.push(part);
                    return None;
                }
            }
            if let Err(error) = o.link_check(&chunk) {
                return Some(self.link_failure(o.prev_last, error));
            }
        }
        if chunk.last.is_some() {
            o.prev_last = chunk.last;
            o.prev_end = chunk.last_end;
        }
        let handover = Handover {
            index: i,
            first: chunk.first.map(|(lsn, _)| lsn),
            done: true,
        };
        let flow = (o.take)(&mut chunk.part, handover);
        let end = chunk.end.take();
        let mut part = chunk.part;
        self.work.clear(&mut part);
        o.spare.push(part);
        if flow.is_break() {
            return Some(Ok(ReadEnd::Stopped));
        }
        end
    }

    /// How the read ends at a chunk whose first record does not link back to the record
    /// before: as a single reader's read ends there (read again from that record, so the
    /// error names the file as a single reader's does), else with the link error.
    fn link_failure(&self, prev: Option<Lsn>, error: WalError) -> Result<ReadEnd, ReaderError> {
        if let Some(prev) = prev {
            let mut range = self.reader.range().clone();
            range.start = prev;
            let again = source::read_range_shared(
                self.reader.directory(),
                &range,
                &self.segments,
                None,
                |rec| {
                    if rec.lsn() >= error.lsn {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                },
            );
            match again {
                Ok(ReadEnd::Stopped) => {}
                other => return other.map_err(ReaderError::from),
            }
        }
        Err(SourceError::Corrupt {
            path: self.reader.directory().path().to_owned(),
            error,
        }
        .into())
    }

    /// Hands over what the head chunk gathered so far, once its start is checked.
    fn stream(&self, i: usize, c: &mut Chunk<W::Part>) -> ControlFlow<()> {
        if c.hold || self.head.load(Ordering::SeqCst) != i {
            return ControlFlow::Continue(());
        }
        let mut o = self.lock();
        if o.result.is_some() {
            return ControlFlow::Break(());
        }
        if !c.streamed {
            let fits = matches!(
                o.switch_check(self.cuts.lo(i), self.cuts.hi(i), c),
                SwitchCheck::Fits
            ) && o.link_check(c).is_ok();
            if !fits {
                c.hold = true;
                return ControlFlow::Continue(());
            }
            c.streamed = true;
        }
        let handover = Handover {
            index: i,
            first: c.first.map(|(lsn, _)| lsn),
            done: false,
        };
        if (o.take)(&mut c.part, handover).is_break() {
            o.result = Some(Ok(ReadEnd::Stopped));
            self.stop.store(true, Ordering::SeqCst);
            self.moved.notify_all();
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    /// Decodes the records that start in `lo..` (up to chunk `i`'s end) into `part` (emptied
    /// for reuse); `may_stream` lets the head chunk hand over what it gathered as it goes.
    fn decode(&self, i: usize, lo: Lsn, part: W::Part, may_stream: bool) -> Chunk<W::Part> {
        let hi = self.cuts.hi(i);
        let mut c = Chunk {
            part,
            first: None,
            last: None,
            last_end: None,
            end: None,
            streamed: false,
            hold: false,
        };
        let mut sub = self.reader.range().clone();
        sub.start = lo;
        let dir = self.reader.directory();
        // Whether `work` ended the read (rather than a record past the chunk's end).
        let mut by_work = false;
        let visit = |rec: &Record<'_>| {
            if hi.is_some_and(|h| rec.lsn() >= h) {
                return ControlFlow::Break(());
            }
            if c.first.is_none() {
                c.first = Some((rec.lsn(), rec.prev()));
            }
            c.last = Some(rec.lsn());
            c.last_end = Some(rec.end_lsn());
            if self.work.record(&mut c.part, rec).is_break() {
                by_work = true;
                return ControlFlow::Break(());
            }
            if may_stream && self.work.ready(&c.part) {
                return self.stream(i, &mut c);
            }
            ControlFlow::Continue(())
        };
        let outcome = if self.single {
            source::read_range_live(dir, &sub, self.reader.live, visit)
        } else {
            source::read_range_shared(dir, &sub, &self.segments, hi, visit)
        };
        match outcome {
            Ok(ReadEnd::Stopped) if !by_work => {}
            Ok(ReadEnd::ReachedEnd) if hi.is_some() => {}
            other => c.end = Some(other.map_err(ReaderError::from)),
        }
        c
    }
}

impl<P, C> Order<P, C> {
    /// Whether chunk `lo..hi` began inside what the last record handed over (an
    /// `XLOG_SWITCH`) skipped.
    fn switch_check(&self, lo: Lsn, hi: Option<Lsn>, chunk: &Chunk<P>) -> SwitchCheck {
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

    /// Checks that the chunk's first record links back to the last record handed over.
    fn link_check(&self, chunk: &Chunk<P>) -> Result<(), WalError> {
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

mod cpus;

#[cfg(test)]
mod tests;
