//! [`WalStream`]: WAL from any [`Read`], as `zstdcat seg.zst | pgwal dump -` gives it.

use std::io::{self, Read};
use std::ops::ControlFlow;

use super::{decoder_config, ReaderBuilder, ReaderError};
use crate::lsn::Lsn;
use crate::segment::Compression;
use crate::source::ReadEnd;
use crate::storage::codec::{decompress, sniff_compression};
use crate::storage::probe::{probe_segment, SegmentInfo};
use crate::wal::{Record, WalDecoder};

/// Bytes read per call.
const PIECE: usize = 1 << 20;

/// WAL read from a stream: one or more consecutive segments from a segment boundary, plain or
/// compressed. Made by [`ReaderBuilder::open_stream`], which reads the first page.
#[derive(Debug)]
pub struct WalStream<R> {
    input: R,
    name: String,
    info: SegmentInfo,
    /// The first bytes read (plain input), not yet decoded.
    first: Vec<u8>,
    /// The whole input, decompressed (compressed input).
    whole: Option<Vec<u8>>,
    decoder: WalDecoder,
    start: Lsn,
    end: Option<Lsn>,
    /// The input has been read to its end.
    done: bool,
}

impl<R: Read> WalStream<R> {
    pub(super) fn open(mut input: R, opts: ReaderBuilder) -> Result<WalStream<R>, ReaderError> {
        let name = opts.stream_name;
        let mut first = vec![0u8; PIECE];
        let mut got = 0;
        while got < first.len() {
            let n = read(&mut input, &mut first[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        first.truncate(got);
        let kind = sniff_compression(&first);
        let mut whole = None;
        if kind != Compression::None {
            input
                .read_to_end(&mut first)
                .map_err(ReaderError::StreamRead)?;
            whole =
                Some(
                    decompress(kind, &first).map_err(|error| ReaderError::StreamDecompress {
                        name: name.clone(),
                        error,
                    })?,
                );
            first = Vec::new();
        }
        let head: &[u8] = whole.as_deref().unwrap_or(&first);
        let info = probe_segment(head).map_err(|error| ReaderError::StreamNotWal {
            name: name.clone(),
            error,
        })?;
        if info.pageaddr.segment_offset(info.seg_size) != 0 {
            return Err(ReaderError::StreamNotAtSegmentStart {
                name,
                pageaddr: info.pageaddr,
            });
        }
        let decoder = WalDecoder::new(decoder_config(&info, opts.block_refs), info.pageaddr);
        Ok(WalStream {
            input,
            name,
            info,
            first,
            whole,
            decoder,
            start: opts.start.unwrap_or(info.pageaddr),
            end: opts.end,
            done: false,
        })
    }

    /// What the first page header says (version, system, sizes, the first page's address
    /// and timeline).
    pub fn info(&self) -> &SegmentInfo {
        &self.info
    }

    /// Where the valid WAL read so far ends: the start of a record left incomplete, else the
    /// end of the last complete record (`None` before any).
    pub fn position(&self) -> Option<Lsn> {
        self.decoder
            .pending_record()
            .or(self.decoder.last_record_end())
    }

    /// Hands each record that starts at or after the start, in order, to `visit`, until
    /// `visit` breaks, a record ends after the end ([`ReadEnd::ReachedEnd`]) or the input
    /// ends. At the end of the input, [`ReadEnd::EndOfWal`]'s `at` is
    /// [`position`](Self::position) (and [`ReadEnd::ReachedEnd`] if no record was read);
    /// where the WAL ends before that (zeroed or stale space), `at` and `reason` say where and
    /// why. Call it once: the input is read as it goes.
    pub fn for_each(
        &mut self,
        mut visit: impl FnMut(&Record<'_>) -> ControlFlow<()>,
    ) -> Result<ReadEnd, ReaderError> {
        let (start, end) = (self.start, self.end);
        let mut feed = |decoder: &mut WalDecoder, piece: &[u8]| -> Feed {
            let mut rest = piece;
            loop {
                match decoder.decode(&mut rest) {
                    Ok(Some(ref rec)) => {
                        if rec.lsn() < start {
                            continue;
                        }
                        if end.is_some_and(|e| rec.end_lsn() > e) {
                            return Feed::Ended(ReadEnd::ReachedEnd);
                        }
                        if visit(rec).is_break() {
                            return Feed::Ended(ReadEnd::Stopped);
                        }
                    }
                    Ok(None) => return Feed::More,
                    Err(e) if e.is_end_of_wal() => {
                        return Feed::Ended(ReadEnd::EndOfWal {
                            at: e.lsn,
                            reason: Some(e),
                            missing: None,
                        })
                    }
                    Err(e) => return Feed::Corrupt(e),
                }
            }
        };
        let fed = if let Some(w) = self.whole.take() {
            feed(&mut self.decoder, &w)
        } else {
            let first = std::mem::take(&mut self.first);
            let mut f = feed(&mut self.decoder, &first);
            let mut buf = first;
            buf.resize(PIECE, 0);
            while matches!(f, Feed::More) && !self.done {
                let n = read(&mut self.input, &mut buf)?;
                if n == 0 {
                    self.done = true;
                } else {
                    f = feed(&mut self.decoder, &buf[..n]);
                }
            }
            f
        };
        match fed {
            Feed::Ended(end) => Ok(end),
            Feed::Corrupt(error) => Err(ReaderError::StreamCorrupt {
                name: self.name.clone(),
                error,
            }),
            Feed::More => Ok(match self.position() {
                Some(at) => ReadEnd::EndOfWal {
                    at,
                    reason: None,
                    missing: None,
                },
                None => ReadEnd::ReachedEnd,
            }),
        }
    }
}

/// How feeding a piece ended.
enum Feed {
    /// The piece is decoded: more input, please.
    More,
    Ended(ReadEnd),
    Corrupt(crate::wal::WalError),
}

/// One `read`, retried when interrupted.
fn read(input: &mut impl Read, buf: &mut [u8]) -> Result<usize, ReaderError> {
    loop {
        match input.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            r => return r.map_err(ReaderError::StreamRead),
        }
    }
}
