//! A record's bytes without copying: one slice, or the pieces of a record that crosses pages.
//!
//! A record that crosses a page boundary is stored in the WAL as pieces separated by page
//! headers. When all of its pieces lie in the decoder's current input, the decoder does not
//! copy them: it checks the CRC piece by piece and hands out [`RecordBytes::Paged`], which
//! resolves a byte range of the record to a slice of the input when the range lies within one
//! piece, and only otherwise joins the pieces (once per record, into a buffer it reuses).

use std::cell::{Cell, OnceCell};
use std::fmt;

/// One piece of a record: `len` bytes of the record starting at record offset `rec`, found at
/// offset `at` of the span (the input from the record's first byte to its last).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) rec: u32,
    pub(crate) at: u32,
    pub(crate) len: u32,
}

/// The pieces of the current record and the lazily joined copy of them. Owned by the decoder
/// and reused from record to record.
#[derive(Default)]
pub(crate) struct Pieces {
    pub(crate) list: Vec<Piece>,
    joined: OnceCell<Vec<u8>>,
    spare: Cell<Vec<u8>>,
}

impl fmt::Debug for Pieces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pieces")
            .field("list", &self.list)
            .field("joined", &self.joined.get().map(Vec::len))
            .finish()
    }
}

impl Pieces {
    /// Forgets the previous record (keeping the joined buffer's allocation).
    pub(crate) fn reset(&mut self) {
        if let Some(v) = self.joined.take() {
            self.spare.set(v);
        }
        self.list.clear();
    }

    /// Adds the next piece.
    pub(crate) fn push(&mut self, rec: u32, at: u32, len: u32) {
        self.list.push(Piece { rec, at, len });
    }

    /// Bytes of the record collected so far.
    pub(crate) fn collected(&self) -> u32 {
        self.list.last().map_or(0, |p| p.rec + p.len)
    }

    /// The record's bytes joined into one buffer (done once per record).
    pub(crate) fn joined<'a>(&'a self, span: &[u8]) -> &'a [u8] {
        self.joined.get_or_init(|| {
            let mut v = self.spare.take();
            v.clear();
            self.append_to(span, &mut v);
            v
        })
    }

    /// Appends the record's bytes, in order, to `out`.
    pub(crate) fn append_to(&self, span: &[u8], out: &mut Vec<u8>) {
        for p in &self.list {
            let (at, len) = (p.at as usize, p.len as usize);
            out.extend_from_slice(span.get(at..at + len).unwrap_or(&[]));
        }
    }

    /// CRC-32C of record bytes `from..` (up to the end), continuing from `crc`.
    pub(crate) fn crc_from(&self, span: &[u8], from: u32, mut crc: u32) -> u32 {
        for p in &self.list {
            let end = p.rec + p.len;
            if end <= from {
                continue;
            }
            let skip = from.saturating_sub(p.rec) as usize;
            let (at, len) = (p.at as usize, p.len as usize);
            let bytes = span.get(at + skip..at + len).unwrap_or(&[]);
            crc = crate::wal::crc32c_append(crc, bytes);
        }
        crc
    }

    /// Copies record bytes `from..from + out.len()` into `out`; false if they are not all
    /// there.
    pub(crate) fn copy_out(&self, span: &[u8], from: u32, out: &mut [u8]) -> bool {
        let mut done = 0usize;
        for p in &self.list {
            if done == out.len() {
                break;
            }
            let want = from + done as u32;
            if want < p.rec || want >= p.rec + p.len {
                continue;
            }
            let skip = (want - p.rec) as usize;
            let n = (p.len as usize - skip).min(out.len() - done);
            let at = p.at as usize + skip;
            match span.get(at..at + n) {
                Some(s) => out[done..done + n].copy_from_slice(s),
                None => return false,
            }
            done += n;
        }
        done == out.len()
    }
}

/// Where a record's bytes are: one slice (header included), or pieces of a span.
#[derive(Clone, Copy, Debug)]
pub(crate) enum RecordBytes<'a> {
    /// The whole record, contiguous.
    Flat(&'a [u8]),
    /// The record's pieces inside `span` (which also holds the page headers between them).
    Paged { span: &'a [u8], pieces: &'a Pieces },
}

impl<'a> RecordBytes<'a> {
    /// The whole record as one slice (joins the pieces on first use).
    pub(crate) fn all(self) -> &'a [u8] {
        match self {
            RecordBytes::Flat(b) => b,
            RecordBytes::Paged { span, pieces } => pieces.joined(span),
        }
    }

    /// Record bytes `at..at + len`, or an empty slice if the record is shorter. Borrows the
    /// input directly when the range lies within one piece.
    pub(crate) fn range(self, at: usize, len: usize) -> &'a [u8] {
        match self {
            RecordBytes::Flat(b) => b.get(at..at + len).unwrap_or(&[]),
            RecordBytes::Paged { span, pieces } => {
                for p in &pieces.list {
                    let (rec, pat, plen) = (p.rec as usize, p.at as usize, p.len as usize);
                    if at >= rec && at < rec + plen {
                        if at + len <= rec + plen {
                            let from = pat + (at - rec);
                            return span.get(from..from + len).unwrap_or(&[]);
                        }
                        break;
                    }
                }
                if len == 0 {
                    return &[];
                }
                pieces.joined(span).get(at..at + len).unwrap_or(&[])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Record "abcdefghij" stored as "abc" + 2-byte header "XY" + "defg" + "ZZ" + "hij".
    fn sample() -> (Vec<u8>, Pieces) {
        let span = b"abcXYdefgZZhij".to_vec();
        let mut p = Pieces::default();
        p.push(0, 0, 3);
        p.push(3, 5, 4);
        p.push(7, 11, 3);
        (span, p)
    }

    #[test]
    fn ranges_borrow_within_a_piece_and_join_across() {
        let (span, p) = sample();
        let b = RecordBytes::Paged {
            span: &span,
            pieces: &p,
        };
        assert_eq!(b.range(3, 4), b"defg");
        assert!(
            p.joined.get().is_none(),
            "a range inside one piece must not join"
        );
        assert_eq!(b.range(2, 3), b"cde");
        assert_eq!(b.all(), b"abcdefghij");
        assert_eq!(b.range(8, 5), b"");
        assert_eq!(p.collected(), 10);
    }

    #[test]
    fn crc_and_copy_follow_the_pieces() {
        let (span, p) = sample();
        assert_eq!(p.crc_from(&span, 2, 0), crc32c::crc32c(b"cdefghij"));
        let mut out = [0u8; 5];
        assert!(p.copy_out(&span, 1, &mut out));
        assert_eq!(&out, b"bcdef");
        let mut out = [0u8; 5];
        assert!(!p.copy_out(&span, 8, &mut out));
    }

    #[test]
    fn reset_reuses_the_joined_buffer() {
        let (span, mut p) = sample();
        let cap = {
            let j = p.joined(&span);
            assert_eq!(j, b"abcdefghij");
            j.len()
        };
        p.reset();
        assert!(p.list.is_empty());
        assert!(p.spare.take().capacity() >= cap);
    }
}
