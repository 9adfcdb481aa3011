//! The sans-IO WAL decoder: bytes in, records out.

use crate::lsn::Lsn;
use crate::segment::WalSegSize;
use crate::wal::error::{WalError, WalErrorKind};
use crate::wal::page::{
    PageHeader, LONG_HEADER_SIZE, SHORT_HEADER_SIZE, XLP_ALL_FLAGS,
    XLP_FIRST_IS_OVERWRITE_CONTRECORD, XLP_LONG_HEADER,
};
use crate::wal::record::{
    decode_layout, le32, record_crc, Layout, RawBlock, Record, RecordHeader, MAX_RECORD_LEN,
    RECORD_HEADER_SIZE, XLR_INFO_MASK,
};
use crate::wal::version::PgVersion;

/// `RM_XLOG_ID`.
const RM_XLOG_ID: u8 = 0;
/// `XLOG_SWITCH`.
const XLOG_SWITCH: u8 = 0x40;

/// What the decoder must know about the WAL before it sees any bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecoderConfig {
    /// The segment size (long page headers must agree).
    pub seg_size: WalSegSize,
    /// The WAL page size, `XLOG_BLCKSZ` (long page headers must agree).
    pub page_size: u32,
    /// The cluster's system identifier; when `None`, the first long page header sets it and
    /// later ones must agree.
    pub system_id: Option<u64>,
}

impl DecoderConfig {
    /// A configuration with PostgreSQL's default page size and the given segment size.
    pub fn new(seg_size: WalSegSize) -> DecoderConfig {
        DecoderConfig {
            seg_size,
            page_size: crate::wal::page::DEFAULT_PAGE_SIZE,
            system_id: None,
        }
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
/// current input and on one page borrows from the input; one that crosses a page boundary or
/// the end of an input piece is reassembled in an internal buffer.
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
    /// Reassembly buffer and what it holds.
    buf: Vec<u8>,
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
            rec_start: lsn,
            rec_total: 0,
            rec_version: PgVersion::V18,
            rec_tli: 0,
            prev: None,
            last_end: None,
            version: None,
            tli: 0,
            blocks: Vec::with_capacity(8),
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
    pub fn decode<'s, 'i: 's>(
        &'s mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<Record<'s>>, WalError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.step(input) {
            Ok(Some(Found::Input(bytes, hdr, layout, lsn, end, version, tli))) => {
                Ok(Some(Record {
                    lsn,
                    end,
                    header: hdr,
                    bytes,
                    version,
                    tli,
                    layout,
                    blocks: &self.blocks,
                }))
            }
            Ok(Some(Found::Buffer(hdr, layout, lsn, end, version, tli))) => Ok(Some(Record {
                lsn,
                end,
                header: hdr,
                bytes: &self.buf,
                version,
                tli,
                layout,
                blocks: &self.blocks,
            })),
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

    fn step<'i>(&mut self, input: &mut &'i [u8]) -> Result<Option<Found<'i>>, WalError> {
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
                        let hdr = self.check_header(&input[..RECORD_HEADER_SIZE], lsn, version)?;
                        if tot as usize <= page_left && input.len() >= tot as usize {
                            let whole: &'i [u8] = &input[..tot as usize];
                            self.advance(input, tot as usize);
                            let (layout, end) = self.finish(whole, hdr, lsn, version)?;
                            if lsn >= self.want_from {
                                return Ok(Some(Found::Input(
                                    whole, hdr, layout, lsn, end, version, tli,
                                )));
                            }
                            continue;
                        }
                        self.begin_assembly(lsn, tot, version, tli);
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
                    let n = (target - self.buf.len()).min(page_left).min(input.len());
                    self.buf.extend_from_slice(&input[..n]);
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
                    if self.rec_total != 0 && self.buf.len() == self.rec_total as usize {
                        let lsn = self.rec_start;
                        let (version, tli) = (self.rec_version, self.rec_tli);
                        let hdr =
                            self.check_header(&self.buf[..RECORD_HEADER_SIZE], lsn, version)?;
                        let buf = std::mem::take(&mut self.buf);
                        let res = self.finish(&buf, hdr, lsn, version);
                        self.buf = buf;
                        let (layout, end) = res?;
                        self.state = State::Record;
                        if lsn >= self.want_from {
                            return Ok(Some(Found::Buffer(hdr, layout, lsn, end, version, tli)));
                        }
                    }
                }
            }
        }
    }

    fn begin_assembly(&mut self, lsn: Lsn, total: u32, version: PgVersion, tli: u32) {
        self.buf.clear();
        self.rec_start = lsn;
        self.rec_total = total;
        self.rec_version = version;
        self.rec_tli = tli;
        self.state = State::Assembling;
    }

    /// Checks length, rmgr and prev-link of a record header (`ValidXLogRecordHeader`).
    fn check_header(
        &self,
        h: &[u8],
        lsn: Lsn,
        version: PgVersion,
    ) -> Result<RecordHeader, WalError> {
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
        Ok(hdr)
    }

    /// CRC and layout of a complete record; sets up the skip to the next record.
    fn finish(
        &mut self,
        whole: &[u8],
        hdr: RecordHeader,
        lsn: Lsn,
        version: PgVersion,
    ) -> Result<(Layout, Lsn), WalError> {
        let computed = record_crc(whole);
        if computed != hdr.crc {
            return Err(WalError::new(
                lsn,
                WalErrorKind::BadCrc {
                    stored: hdr.crc,
                    computed,
                },
            ));
        }
        let layout = decode_layout(whole, lsn, version, &mut self.blocks)?;
        let mut end = Lsn(self.pos.0.wrapping_add(7) & !7);
        if hdr.rmid == RM_XLOG_ID && hdr.info & !XLR_INFO_MASK == XLOG_SWITCH {
            let seg = self.cfg.seg_size.bytes();
            end = Lsn(end.0.wrapping_add(seg - 1) & !(seg - 1));
        }
        self.skip = end.0.wrapping_sub(self.pos.0);
        self.prev = Some(lsn);
        self.last_end = Some(end);
        Ok((layout, end))
    }

    /// Reads and checks the page header at `self.pos` (`XLogReaderValidatePageHeader`).
    /// Returns false if more input is needed.
    fn page_header(&mut self, input: &mut &[u8]) -> Result<bool, WalError> {
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
                    if h.info & XLP_FIRST_IS_OVERWRITE_CONTRECORD != 0 {
                        // The rest of the record was lost and overwritten (a crash during
                        // recovery): drop it and read a new record right after this header.
                        self.buf.clear();
                        self.state = State::Record;
                        return Ok(true);
                    }
                    return Err(WalError::new(
                        self.rec_start,
                        WalErrorKind::MissingContrecord,
                    ));
                }
                let expected = self.rec_total.wrapping_sub(self.buf.len() as u32);
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

/// A complete record found by `step`, before it is wrapped with borrowed block references.
enum Found<'i> {
    Input(&'i [u8], RecordHeader, Layout, Lsn, Lsn, PgVersion, u32),
    Buffer(RecordHeader, Layout, Lsn, Lsn, PgVersion, u32),
}
