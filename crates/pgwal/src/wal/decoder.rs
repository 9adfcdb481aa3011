//! The sans-IO WAL decoder: bytes in, records out.

use crate::lsn::Lsn;
use crate::segment::WalSegSize;
use crate::wal::error::{WalError, WalErrorKind};
use crate::wal::page::{
    PageHeader, LONG_HEADER_SIZE, SHORT_HEADER_SIZE, XLP_ALL_FLAGS,
    XLP_FIRST_IS_OVERWRITE_CONTRECORD, XLP_LONG_HEADER,
};
use crate::wal::record::{
    decode_layout, le32, parse_layout, record_crc, Layout, RawBlock, Record, RecordHeader,
    MAX_RECORD_LEN, RECORD_HEADER_SIZE, XLR_INFO_MASK,
};
use crate::wal::span::{Pieces, RecordBytes};
use crate::wal::version::PgVersion;

/// How far ahead of each record the fast path prefetches.
const RECORD_PREFETCH: usize = 4096;
/// `RM_XLOG_ID`.
const RM_XLOG_ID: u8 = 0;
/// `XLOG_SWITCH`.
const XLOG_SWITCH: u8 = 0x40;

/// What the decoder must know about the WAL before it sees any bytes.
///
/// Built with [`DecoderConfig::new`] and the `with_` methods (fields may be added):
///
/// ```
/// use pgwal::wal::DecoderConfig;
/// use pgwal::WalSegSize;
/// let cfg = DecoderConfig::new(WalSegSize::DEFAULT)
///     .with_page_size(8192)
///     .with_system_id(Some(7_300_000_000_000_000_000));
/// assert_eq!(cfg.system_id, Some(7_300_000_000_000_000_000));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DecoderConfig {
    /// The segment size (long page headers must agree).
    pub seg_size: WalSegSize,
    /// The WAL page size, `XLOG_BLCKSZ` (long page headers must agree).
    pub page_size: u32,
    /// The cluster's system identifier; when `None`, the first long page header sets it and
    /// later ones must agree.
    pub system_id: Option<u64>,
    /// Whether records carry their block references (the default). With `false`, every
    /// check is made as before and [`Record::fpi_len`], [`Record::total_len`] and the main
    /// data stay exact, but [`Record::blocks`] is empty: for a caller that only counts records
    /// (`pgwal dump --stats`), it saves storing each reference, 5% of such a run on WAL of
    /// short records.
    ///
    /// ```
    /// use pgwal::wal::DecoderConfig;
    /// use pgwal::WalSegSize;
    /// let counting = DecoderConfig::new(WalSegSize::DEFAULT).with_block_refs(false);
    /// assert!(DecoderConfig::new(WalSegSize::DEFAULT).block_refs);
    /// assert!(!counting.block_refs);
    /// ```
    pub block_refs: bool,
    /// Whether a record cut by the end of an input is copied whole into the decoder's buffer
    /// so that it comes back complete (the default). With `false`, such a record is checked as
    /// its bytes arrive (header, CRC computed piece by piece, block-reference layout from its
    /// first bytes) and only its first [`KEPT_PREFIX`] bytes are kept: the decoder's memory
    /// stays small whatever the record's size (up to 1 GB), and the record comes back with
    /// its header, length and layout, but its bytes ([`Record::bytes`], and data or images
    /// past the prefix) cut at the prefix (empty where cut). For a caller that only
    /// validates the WAL and keeps its bytes elsewhere (`pgwal receive`).
    pub keep_record_data: bool,
}

/// With [`DecoderConfig::keep_record_data`] off, the bytes kept of a record cut by the end of
/// an input: more than its header and fragment headers can take (at most 33 block references
/// of 27 bytes each, plus the record header and the origin, transaction and main-data headers:
/// under 1 kB).
pub const KEPT_PREFIX: usize = 8192;

impl DecoderConfig {
    /// A configuration with PostgreSQL's default page size and the given segment size.
    pub fn new(seg_size: WalSegSize) -> DecoderConfig {
        DecoderConfig {
            seg_size,
            page_size: crate::wal::page::DEFAULT_PAGE_SIZE,
            system_id: None,
            block_refs: true,
            keep_record_data: true,
        }
    }

    /// With WAL pages of `page_size` bytes (`XLOG_BLCKSZ`).
    pub fn with_page_size(mut self, page_size: u32) -> DecoderConfig {
        self.page_size = page_size;
        self
    }

    /// With the cluster's system identifier (see [`DecoderConfig::system_id`]).
    pub fn with_system_id(mut self, system_id: Option<u64>) -> DecoderConfig {
        self.system_id = system_id;
        self
    }

    /// With or without block references (see [`DecoderConfig::block_refs`]).
    pub fn with_block_refs(mut self, block_refs: bool) -> DecoderConfig {
        self.block_refs = block_refs;
        self
    }

    /// Keeping records cut by the end of an input whole, or not (see
    /// [`DecoderConfig::keep_record_data`]).
    pub fn with_keep_record_data(mut self, keep: bool) -> DecoderConfig {
        self.keep_record_data = keep;
        self
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the first page: skip a continuation, then read records.
    Find,
    /// At a record boundary.
    Record,
    /// Collecting a record into `buf`.
    Assembling,
}

/// A streaming WAL decoder that does no I/O.
///
/// Feed it WAL bytes in order, in pieces of any size, with [`WalDecoder::decode`]; it returns
/// each record as soon as its last byte has arrived. A record that lies whole inside the
/// current input borrows from it, even when it crosses page boundaries (its CRC is computed
/// piece by piece, and its pieces are joined only if a caller asks for a byte range that spans
/// two pages); a record cut by the end of an input piece is reassembled in an internal buffer.
///
/// It validates every page header (magic, info bits, address, timeline, and in long headers
/// the system identifier, segment size and page size), every record header (length, resource
/// manager, prev-link), every CRC and the layout of block references.
///
/// ```
/// use pgwal::wal::{DecoderConfig, WalDecoder};
/// use pgwal::{Lsn, WalSegSize};
///
/// # fn segment_bytes() -> Vec<u8> { vec![0; 8192] }
/// let segment: Vec<u8> = segment_bytes(); // a whole segment, starting at its first page
/// let mut decoder = WalDecoder::new(DecoderConfig::new(WalSegSize::DEFAULT), Lsn(0x100_0000));
/// let mut input: &[u8] = &segment;
/// loop {
///     match decoder.decode(&mut input) {
///         Ok(Some(record)) => println!("{} rmgr {}", record.lsn(), record.rmid()),
///         Ok(None) => break, // needs more input
///         Err(e) if e.is_end_of_wal() => { println!("end of WAL at {}", e.lsn); break }
///         Err(e) => { eprintln!("corrupt WAL: {e}"); break }
///     }
/// }
/// ```
#[derive(Debug)]
pub struct WalDecoder {
    cfg: DecoderConfig,
    /// LSN of the next input byte.
    pos: Lsn,
    /// Records starting before this are decoded and checked but not returned.
    want_from: Lsn,
    state: State,
    /// Input bytes still to discard (alignment padding, the rest of a segment after a switch,
    /// or a continuation being skipped).
    skip: u64,
    /// A page header split across inputs.
    hdr: [u8; LONG_HEADER_SIZE],
    hdr_len: usize,
    /// Reassembly buffer and what it holds (with `keep_record_data` off, only the record's
    /// first [`KEPT_PREFIX`] bytes).
    buf: Vec<u8>,
    /// While assembling into `buf`: the record's bytes collected so far, and (with
    /// `keep_record_data` off) the CRC-32C of those past its header.
    rec_got: u32,
    rec_crc: u32,
    /// While assembling: true if the record's pieces are only noted in `pieces` (all of them
    /// in the current input), false if they are copied into `buf`.
    spanning: bool,
    pieces: Pieces,
    /// The header of the record being decoded or last decoded (records refer to it).
    cur: RecordHeader,
    /// While assembling: whether `cur` was already checked (it fitted on the first page).
    cur_checked: bool,
    rec_start: Lsn,
    rec_total: u32,
    rec_version: PgVersion,
    rec_tli: u32,
    /// The previous record, for the prev-link check (`None` before the first record).
    prev: Option<Lsn>,
    /// End of the last record returned or skipped (`EndRecPtr`).
    last_end: Option<Lsn>,
    /// From the latest page header.
    version: Option<PgVersion>,
    tli: u32,
    sysid: Option<u64>,
    blocks: Vec<RawBlock>,
    /// The layout of the last complete record (records refer to it).
    layout: Layout,
    failed: Option<WalError>,
}

impl WalDecoder {
    /// A decoder that returns the first record starting at or after `start` and every one
    /// after it (like `XLogFindNextRecord`). Input must begin at the start of the page that
    /// holds `start`; a record continued onto that page from an earlier one is skipped by
    /// its page header's `xlp_rem_len`.
    pub fn new(cfg: DecoderConfig, start: Lsn) -> WalDecoder {
        let mut d = WalDecoder::at_record(cfg, start.page_start(cfg.page_size));
        d.state = State::Find;
        d.want_from = start;
        d
    }

    /// A decoder for input that begins exactly at a record boundary `lsn` (a record start, or
    /// a page start where no record continues).
    pub fn at_record(cfg: DecoderConfig, lsn: Lsn) -> WalDecoder {
        WalDecoder {
            sysid: cfg.system_id,
            cfg,
            pos: lsn,
            want_from: lsn,
            state: State::Record,
            skip: 0,
            hdr: [0; LONG_HEADER_SIZE],
            hdr_len: 0,
            buf: Vec::new(),
            rec_got: 0,
            rec_crc: 0,
            spanning: false,
            pieces: Pieces::default(),
            cur: RecordHeader::default(),
            cur_checked: false,
            rec_start: lsn,
            rec_total: 0,
            rec_version: PgVersion::V18,
            rec_tli: 0,
            prev: None,
            last_end: None,
            version: None,
            tli: 0,
            blocks: Vec::with_capacity(8),
            layout: Layout::default(),
            failed: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DecoderConfig {
        &self.cfg
    }

    /// The LSN of the next byte the decoder expects.
    pub fn position(&self) -> Lsn {
        self.pos
    }

    /// The end (`EndRecPtr`, MAXALIGNed) of the last complete record, if any.
    pub fn last_record_end(&self) -> Option<Lsn> {
        self.last_end
    }

    /// The LSN of the last complete record.
    pub fn last_record(&self) -> Option<Lsn> {
        self.prev
    }

    /// The start of a record that has begun but is not yet complete, if any.
    pub fn pending_record(&self) -> Option<Lsn> {
        (self.state == State::Assembling).then_some(self.rec_start)
    }

    /// The system identifier seen in long page headers (or configured).
    pub fn system_id(&self) -> Option<u64> {
        self.sysid
    }

    /// The PostgreSQL version of the latest page read.
    pub fn version(&self) -> Option<PgVersion> {
        self.version
    }

    /// The timeline of the latest page read.
    pub fn page_timeline(&self) -> u32 {
        self.tli
    }

    /// Decodes the next record from `input`, which must hold the bytes at
    /// [`WalDecoder::position`] onwards; consumed bytes are removed from the front of `input`.
    ///
    /// Returns `Ok(None)` when `input` is used up before the next record is complete (call again
    /// with the following bytes), and an error naming the LSN when the WAL is invalid there;
    /// after an error every call returns the same error.
    #[inline(always)]
    pub fn decode<'s, 'i: 's>(
        &'s mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<Record<'s>>, WalError> {
        // Fast path: the next record starts within the padding still to skip and lies whole
        // on the current page of `input` (most records); everything else takes `decode_slow`.
        if self.state == State::Record && self.skip < 8 && self.failed.is_none() {
            let padding = self.skip as usize;
            let at = Lsn(self.pos.0 + padding as u64);
            let off = at.page_offset(self.cfg.page_size) as usize;
            if let Some(rest) = input
                .get(padding..)
                .filter(|r| r.len() >= RECORD_HEADER_SIZE)
            {
                let tot = le32(rest, 0) as usize;
                // Short records follow each other faster than the hardware prefetcher ramps
                // up after each 4 kB page: touch the line 4 kB ahead, one per record.
                prefetch(rest.get(RECORD_PREFETCH..));
                let page_left = self.cfg.page_size as usize - off;
                if off != 0 && tot >= RECORD_HEADER_SIZE && tot <= page_left && tot <= rest.len() {
                    let (whole, after) = rest.split_at(tot);
                    *input = after;
                    self.pos = Lsn(at.0 + tot as u64);
                    self.skip = 0;
                    let version = self.version.unwrap_or(PgVersion::V18);
                    match self.finish_whole(whole, at, version) {
                        Ok(end) if at >= self.want_from => {
                            return Ok(Some(Record {
                                lsn: at,
                                end,
                                header: &self.cur,
                                bytes: RecordBytes::Flat(whole),
                                version,
                                tli: self.tli,
                                layout: &self.layout,
                                blocks: &self.blocks,
                            }))
                        }
                        Ok(_) => {}
                        Err(e) => {
                            self.failed = Some(e.clone());
                            return Err(e);
                        }
                    }
                }
            }
        }
        self.decode_slow(input)
    }

    /// [`WalDecoder::decode`] for everything but a record lying whole on its page: page
    /// headers, padding after a segment switch, records split across pages or inputs, errors.
    #[inline(never)]
    fn decode_slow<'s, 'i: 's>(
        &'s mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<Record<'s>>, WalError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.pieces.reset();
        let mut span_base = None;
        let found = self.step(input, &mut span_base);
        if self.spanning && !matches!(found, Ok(Some(_))) {
            // Out of input mid-record: keep what we have, the input goes away.
            self.spanning = false;
            self.buf.clear();
            self.rec_got = 0;
            self.rec_crc = 0;
            if let Some(base) = span_base {
                let pieces = std::mem::take(&mut self.pieces.list);
                for p in &pieces {
                    let (at, len) = (p.at as usize, p.len as usize);
                    self.collect(base.get(at..at + len).unwrap_or(&[]));
                }
                self.pieces.list = pieces;
            }
            self.pieces.reset();
        }
        match found {
            Ok(Some(Found {
                at,
                lsn,
                end,
                version,
                tli,
            })) => {
                let bytes = match at {
                    At::Input(b) => RecordBytes::Flat(b),
                    At::Buffer => RecordBytes::Flat(&self.buf),
                    At::Span(span) => RecordBytes::Paged {
                        span,
                        pieces: &self.pieces,
                    },
                };
                Ok(Some(Record {
                    lsn,
                    end,
                    header: &self.cur,
                    bytes,
                    version,
                    tli,
                    layout: &self.layout,
                    blocks: &self.blocks,
                }))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    fn advance(&mut self, input: &mut &[u8], n: usize) {
        *input = &input[n..];
        self.pos = Lsn(self.pos.0 + n as u64);
    }

    /// Advances to the next complete record. `span_base` is set to the input at the start
    /// of a record being assembled without copying.
    fn step<'i>(
        &mut self,
        input: &mut &'i [u8],
        span_base: &mut Option<&'i [u8]>,
    ) -> Result<Option<Found<'i>>, WalError> {
        let ps = self.cfg.page_size;
        loop {
            if self.skip > 0 {
                let n = self.skip.min(input.len() as u64) as usize;
                self.advance(input, n);
                self.skip -= n as u64;
                if self.skip > 0 {
                    return Ok(None);
                }
            }
            if input.is_empty() {
                return Ok(None);
            }
            let off = self.pos.page_offset(ps) as usize;
            if off == 0 {
                if !self.page_header(input)? {
                    return Ok(None);
                }
                continue;
            }
            match self.state {
                State::Find => {
                    // Input started mid-page without a page header: treat as a record boundary.
                    self.state = State::Record;
                }
                State::Record => {
                    let page_left = ps as usize - off;
                    if input.len() >= RECORD_HEADER_SIZE && page_left >= RECORD_HEADER_SIZE {
                        let tot = le32(input, 0);
                        let lsn = self.pos;
                        if (tot as usize) < RECORD_HEADER_SIZE {
                            return Err(WalError::new(
                                lsn,
                                WalErrorKind::InvalidRecordLength { got: tot },
                            ));
                        }
                        if tot > MAX_RECORD_LEN {
                            return Err(WalError::new(
                                lsn,
                                WalErrorKind::RecordTooLong { got: tot },
                            ));
                        }
                        let (version, tli) = (self.version.unwrap_or(PgVersion::V18), self.tli);
                        if tot as usize <= page_left && input.len() >= tot as usize {
                            let whole: &'i [u8] = &input[..tot as usize];
                            self.advance(input, tot as usize);
                            let end = self.finish_whole(whole, lsn, version)?;
                            if lsn >= self.want_from {
                                return Ok(Some(Found {
                                    at: At::Input(whole),
                                    lsn,
                                    end,
                                    version,
                                    tli,
                                }));
                            }
                            continue;
                        }
                        self.check_header(&input[..RECORD_HEADER_SIZE], lsn, version)?;
                        self.begin_assembly(lsn, tot, version, tli);
                        self.cur_checked = true;
                        self.spanning = true;
                        *span_base = Some(*input);
                    } else {
                        let (version, tli) = (self.version.unwrap_or(PgVersion::V18), self.tli);
                        self.begin_assembly(self.pos, 0, version, tli);
                    }
                }
                State::Assembling => {
                    let target = if self.rec_total == 0 {
                        4
                    } else {
                        self.rec_total as usize
                    };
                    let page_left = ps as usize - off;
                    let got = self.got();
                    let n = (target - got as usize).min(page_left).min(input.len());
                    if self.spanning {
                        let at = (self.pos.0 - self.rec_start.0) as u32;
                        self.pieces.push(got, at, n as u32);
                    } else {
                        self.collect(&input[..n]);
                    }
                    self.advance(input, n);
                    if self.rec_total == 0 && self.buf.len() >= 4 {
                        let tot = le32(&self.buf, 0);
                        if (tot as usize) < RECORD_HEADER_SIZE {
                            return Err(WalError::new(
                                self.rec_start,
                                WalErrorKind::InvalidRecordLength { got: tot },
                            ));
                        }
                        if tot > MAX_RECORD_LEN {
                            return Err(WalError::new(
                                self.rec_start,
                                WalErrorKind::RecordTooLong { got: tot },
                            ));
                        }
                        self.rec_total = tot;
                        continue;
                    }
                    if self.rec_total != 0 && self.got() == self.rec_total {
                        let lsn = self.rec_start;
                        let (version, tli) = (self.rec_version, self.rec_tli);
                        let at = match *span_base {
                            Some(base) if self.spanning => {
                                let span = &base[..(self.pos.0 - lsn.0) as usize];
                                self.finish_span(span, lsn, version)?;
                                At::Span(span)
                            }
                            _ => {
                                if !self.cur_checked {
                                    let buf = std::mem::take(&mut self.buf);
                                    let res =
                                        self.check_header(&buf[..RECORD_HEADER_SIZE], lsn, version);
                                    self.buf = buf;
                                    res?;
                                }
                                self.finish_buffer(lsn, version)?;
                                At::Buffer
                            }
                        };
                        let end = self.complete(lsn);
                        self.state = State::Record;
                        self.spanning = false;
                        if lsn >= self.want_from {
                            return Ok(Some(Found {
                                at,
                                lsn,
                                end,
                                version,
                                tli,
                            }));
                        }
                    }
                }
            }
        }
    }

    /// Checks a record that lies whole in `whole` (header, CRC, block layout), keeps its
    /// header and layout, and sets up the skip to the next one; returns its end.
    #[inline(always)]
    fn finish_whole(
        &mut self,
        whole: &[u8],
        lsn: Lsn,
        version: PgVersion,
    ) -> Result<Lsn, WalError> {
        self.check_header(&whole[..RECORD_HEADER_SIZE], lsn, version)?;
        self.check_crc(whole, lsn)?;
        let store = self.cfg.block_refs;
        decode_layout(
            whole,
            lsn,
            version,
            store,
            &mut self.blocks,
            &mut self.layout,
        )?;
        Ok(self.complete(lsn))
    }

    /// Bytes of the record being assembled collected so far.
    fn got(&self) -> u32 {
        if self.spanning {
            self.pieces.collected()
        } else {
            self.rec_got
        }
    }

    /// Adds the next bytes of the record being assembled into `buf`: all of them, or with
    /// `keep_record_data` off the part within [`KEPT_PREFIX`], the rest only into the CRC.
    fn collect(&mut self, bytes: &[u8]) {
        if self.cfg.keep_record_data {
            self.buf.extend_from_slice(bytes);
        } else {
            let room = KEPT_PREFIX.saturating_sub(self.buf.len()).min(bytes.len());
            self.buf.extend_from_slice(&bytes[..room]);
            let header_left = RECORD_HEADER_SIZE.saturating_sub(self.rec_got as usize);
            let past_header = bytes.get(header_left..).unwrap_or(&[]);
            self.rec_crc = crate::wal::crc32c_append(self.rec_crc, past_header);
        }
        self.rec_got = self.rec_got.wrapping_add(bytes.len() as u32);
    }

    /// CRC and layout of the record assembled in `buf` (whole, or its prefix).
    fn finish_buffer(&mut self, lsn: Lsn, version: PgVersion) -> Result<(), WalError> {
        let (blocks, layout, store) = (&mut self.blocks, &mut self.layout, self.cfg.block_refs);
        if self.cfg.keep_record_data {
            crc_matches(record_crc(&self.buf), self.cur.crc, lsn)?;
            return decode_layout(&self.buf, lsn, version, store, blocks, layout);
        }
        let head = self.buf.get(..20).unwrap_or(&[]);
        crc_matches(
            crate::wal::crc32c_append(self.rec_crc, head),
            self.cur.crc,
            lsn,
        )?;
        let total = self.rec_total as usize;
        if parse_layout::<false>(&self.buf, total, lsn, version, store, blocks, layout)? {
            Ok(())
        } else {
            Err(WalError::new(lsn, WalErrorKind::InvalidFragmentLength))
        }
    }

    fn begin_assembly(&mut self, lsn: Lsn, total: u32, version: PgVersion, tli: u32) {
        self.buf.clear();
        self.rec_got = 0;
        self.rec_crc = 0;
        self.pieces.reset();
        self.spanning = false;
        self.cur_checked = false;
        self.rec_start = lsn;
        self.rec_total = total;
        self.rec_version = version;
        self.rec_tli = tli;
        self.state = State::Assembling;
    }

    /// Checks length, rmgr and prev-link of a record header (`ValidXLogRecordHeader`) and
    /// keeps it as the current one.
    fn check_header(&mut self, h: &[u8], lsn: Lsn, version: PgVersion) -> Result<(), WalError> {
        let hdr = match RecordHeader::parse(h) {
            Some(hdr) => hdr,
            None => return Err(WalError::new(lsn, WalErrorKind::InvalidFragmentLength)),
        };
        if !version.rmid_is_valid(hdr.rmid) {
            return Err(WalError::new(
                lsn,
                WalErrorKind::InvalidRmgr { rmid: hdr.rmid },
            ));
        }
        match self.prev {
            None if hdr.prev >= lsn => {
                return Err(WalError::new(
                    lsn,
                    WalErrorKind::IncorrectPrevLink {
                        prev: hdr.prev,
                        expected: None,
                    },
                ))
            }
            Some(p) if hdr.prev != p => {
                return Err(WalError::new(
                    lsn,
                    WalErrorKind::IncorrectPrevLink {
                        prev: hdr.prev,
                        expected: Some(p),
                    },
                ))
            }
            _ => {}
        }
        self.cur = hdr;
        Ok(())
    }

    /// Checks the CRC of a contiguous record against the current header.
    #[inline(always)]
    fn check_crc(&self, whole: &[u8], lsn: Lsn) -> Result<(), WalError> {
        crc_matches(record_crc(whole), self.cur.crc, lsn)
    }

    /// Header, CRC and layout of a record whose pieces lie in `span`, read without joining
    /// them unless the block headers themselves cross a page.
    fn finish_span(&mut self, span: &[u8], lsn: Lsn, version: PgVersion) -> Result<(), WalError> {
        let mut h = [0u8; RECORD_HEADER_SIZE];
        if !self.cur_checked || !self.pieces.copy_out(span, 0, &mut h) {
            return Err(WalError::new(lsn, WalErrorKind::InvalidFragmentLength));
        }
        let crc = self.pieces.crc_from(span, RECORD_HEADER_SIZE as u32, 0);
        crc_matches(crate::wal::crc32c_append(crc, &h[..20]), self.cur.crc, lsn)?;
        let total = self.rec_total as usize;
        let first = self.pieces.list.first().map_or(0, |p| p.len as usize);
        let prefix = span.get(..first).unwrap_or(&[]);
        let (blocks, layout, store) = (&mut self.blocks, &mut self.layout, self.cfg.block_refs);
        if !parse_layout::<false>(prefix, total, lsn, version, store, blocks, layout)? {
            decode_layout(
                self.pieces.joined(span),
                lsn,
                version,
                store,
                blocks,
                layout,
            )?;
        }
        Ok(())
    }

    /// Notes a complete, checked record and sets up the skip to the next one; returns its end.
    fn complete(&mut self, lsn: Lsn) -> Lsn {
        let hdr = &self.cur;
        let mut end = Lsn(self.pos.0.wrapping_add(7) & !7);
        if hdr.rmid == RM_XLOG_ID && hdr.info & !XLR_INFO_MASK == XLOG_SWITCH {
            let seg = self.cfg.seg_size.bytes();
            end = Lsn(end.0.wrapping_add(seg - 1) & !(seg - 1));
        }
        self.skip = end.0.wrapping_sub(self.pos.0);
        self.prev = Some(lsn);
        self.last_end = Some(end);
        end
    }

    /// Reads and checks the page header at `self.pos` (`XLogReaderValidatePageHeader`).
    /// Returns false if more input is needed.
    fn page_header(&mut self, input: &mut &[u8]) -> Result<bool, WalError> {
        // The hardware prefetcher stops at 4 kB boundaries, so the first read of every page
        // waits for memory: ask for the pages after next now.
        let ahead = 2 * self.cfg.page_size as usize;
        prefetch(input.get(ahead..));
        prefetch(input.get(ahead + 4096..));
        // Gather the header, staging it if it is split across inputs.
        let page_lsn = self.pos;
        let h = if self.hdr_len == 0 {
            match PageHeader::parse(input) {
                Some(h) => h,
                None => return self.stage_header(input),
            }
        } else {
            if !self.stage_header(input)? {
                return Ok(false);
            }
            match PageHeader::parse(&self.hdr[..self.hdr_len]) {
                Some(h) => h,
                None => return Ok(false),
            }
        };
        let seg_off = page_lsn.segment_offset(self.cfg.seg_size);
        let Some(version) = h.version() else {
            return Err(WalError::new(
                page_lsn,
                WalErrorKind::BadMagic {
                    magic: h.magic,
                    offset: seg_off,
                },
            ));
        };
        if let Some(v) = self.version {
            if v != version && h.long.is_none() {
                return Err(WalError::new(
                    page_lsn,
                    WalErrorKind::MagicChanged {
                        magic: h.magic,
                        expected: v.magic(),
                    },
                ));
            }
        }
        if h.info & !XLP_ALL_FLAGS != 0 || (seg_off == 0 && h.info & XLP_LONG_HEADER == 0) {
            return Err(WalError::new(
                page_lsn,
                WalErrorKind::InvalidInfoBits {
                    info: h.info,
                    offset: seg_off,
                },
            ));
        }
        if let Some(l) = h.long {
            match self.sysid {
                Some(s) if s != l.sysid => {
                    return Err(WalError::new(
                        page_lsn,
                        WalErrorKind::SystemIdMismatch {
                            found: l.sysid,
                            expected: s,
                        },
                    ))
                }
                _ => self.sysid = Some(l.sysid),
            }
            if l.seg_size != self.cfg.seg_size.bytes_u32() {
                return Err(WalError::new(
                    page_lsn,
                    WalErrorKind::SegmentSizeMismatch {
                        found: l.seg_size,
                        expected: self.cfg.seg_size.bytes_u32(),
                    },
                ));
            }
            if l.page_size != self.cfg.page_size {
                return Err(WalError::new(
                    page_lsn,
                    WalErrorKind::PageSizeMismatch {
                        found: l.page_size,
                        expected: self.cfg.page_size,
                    },
                ));
            }
        }
        if h.pageaddr != page_lsn {
            return Err(WalError::new(
                page_lsn,
                WalErrorKind::UnexpectedPageAddr {
                    found: h.pageaddr,
                    offset: seg_off,
                },
            ));
        }
        if h.tli < self.tli {
            return Err(WalError::new(
                page_lsn,
                WalErrorKind::OutOfSequenceTimeline {
                    tli: h.tli,
                    after: self.tli,
                },
            ));
        }
        // Header accepted: consume it.
        let size = h.size();
        if self.hdr_len == 0 {
            self.advance(input, size);
        } else {
            // The staged bytes were consumed from earlier inputs already.
            self.pos = Lsn(page_lsn.0 + size as u64);
            self.hdr_len = 0;
        }
        self.version = Some(version);
        self.tli = h.tli;
        let page_payload = self.cfg.page_size as usize - size;
        match self.state {
            State::Assembling => {
                if !h.is_contrecord() {
                    if h.info & overwrite_flags(version) != 0 {
                        // The rest of the record was lost and overwritten (a crash during
                        // recovery): drop it and read a new record right after this header.
                        self.buf.clear();
                        self.pieces.reset();
                        self.spanning = false;
                        self.state = State::Record;
                        return Ok(true);
                    }
                    return Err(WalError::new(
                        self.rec_start,
                        WalErrorKind::MissingContrecord,
                    ));
                }
                let expected = self.rec_total.wrapping_sub(self.got());
                if self.rec_total == 0 || h.rem_len == 0 || h.rem_len != expected {
                    return Err(WalError::new(
                        self.rec_start,
                        WalErrorKind::InvalidContrecordLength {
                            rem_len: h.rem_len,
                            expected,
                        },
                    ));
                }
            }
            State::Find => {
                if h.is_contrecord() {
                    let skip = (u64::from(h.rem_len) + 7) & !7;
                    if skip >= page_payload as u64 {
                        self.skip = page_payload as u64;
                    } else {
                        self.skip = skip;
                        self.state = State::Record;
                    }
                } else {
                    self.state = State::Record;
                }
            }
            State::Record => {}
        }
        Ok(true)
    }

    /// Copies header bytes into the staging area; true once the whole header is there.
    fn stage_header(&mut self, input: &mut &[u8]) -> Result<bool, WalError> {
        let need = if self.hdr_len >= 4
            && u16::from_le_bytes([self.hdr[2], self.hdr[3]]) & XLP_LONG_HEADER != 0
        {
            LONG_HEADER_SIZE
        } else {
            SHORT_HEADER_SIZE
        };
        let n = (need - self.hdr_len).min(input.len());
        self.hdr[self.hdr_len..self.hdr_len + n].copy_from_slice(&input[..n]);
        self.hdr_len += n;
        *input = &input[n..];
        if self.hdr_len < need {
            return Ok(false);
        }
        if need == SHORT_HEADER_SIZE
            && u16::from_le_bytes([self.hdr[2], self.hdr[3]]) & XLP_LONG_HEADER != 0
        {
            // Now we know it is a long header: fetch the rest.
            return self.stage_header(input);
        }
        Ok(true)
    }
}

/// Compares a computed CRC with the header's.
/// Hints the CPU to load the cache line at the start of `bytes` (nothing if `None`).
#[inline(always)]
fn prefetch(bytes: Option<&[u8]>) {
    #[cfg(target_arch = "x86_64")]
    if let Some(b) = bytes.filter(|b| !b.is_empty()) {
        // SAFETY: prefetching has no effect on memory and cannot fault; the pointer is in
        // bounds of a live slice anyway.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(b.as_ptr().cast())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

#[inline(always)]
fn crc_matches(computed: u32, stored: u32, lsn: Lsn) -> Result<(), WalError> {
    if computed == stored {
        return Ok(());
    }
    Err(bad_crc(computed, stored, lsn))
}

#[cold]
#[inline(never)]
fn bad_crc(computed: u32, stored: u32, lsn: Lsn) -> WalError {
    WalError::new(lsn, WalErrorKind::BadCrc { stored, computed })
}

/// Where a complete record's bytes are.
enum At<'i> {
    /// One slice of the input.
    Input(&'i [u8]),
    /// The reassembly buffer.
    Buffer,
    /// Pieces (in `pieces`) of this stretch of the input.
    Span(&'i [u8]),
}

/// A complete record found by `step`, before it is wrapped with borrowed block references.
struct Found<'i> {
    at: At<'i>,
    lsn: Lsn,
    end: Lsn,
    version: PgVersion,
    tli: u32,
}

/// The `xlp_info` bits that mark a page whose first record replaces the lost rest of a record
/// (a crash in mid-record): `XLP_FIRST_IS_OVERWRITE_CONTRECORD` (0x0008) up to 18. PostgreSQL 19
/// marks such a page with 0x0004 (the bit 18 called `XLP_BKP_REMOVABLE`, which no page of
/// 13–18 WAL carries): seen on 19 rc1 after a kill -9 of the primary in mid-record, where
/// pg_waldump 19 reads past the lost record to the `OVERWRITE_CONTRECORD` record.
fn overwrite_flags(v: PgVersion) -> u16 {
    if v >= PgVersion::V19 {
        XLP_FIRST_IS_OVERWRITE_CONTRECORD | 0x0004
    } else {
        XLP_FIRST_IS_OVERWRITE_CONTRECORD
    }
}

#[cfg(test)]
mod tests;
