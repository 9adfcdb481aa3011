//! WAL records: the 24-byte header, block references and main data, all borrowed.

use crate::lsn::Lsn;
use crate::wal::error::{WalError, WalErrorKind};
use crate::wal::span::RecordBytes;
use crate::wal::version::PgVersion;

/// Size of `XLogRecord`, the record header.
pub const RECORD_HEADER_SIZE: usize = 24;
/// PostgreSQL's data block size (`BLCKSZ`), which full-page images restore.
pub const BLCKSZ: u32 = 8192;
/// The largest block reference id (`XLR_MAX_BLOCK_ID`).
pub const MAX_BLOCK_ID: u8 = 32;
/// Largest `xl_tot_len` accepted: PostgreSQL cannot allocate more (`MaxAllocSize - 1`).
pub const MAX_RECORD_LEN: u32 = 0x3FFF_FFFF;

const BLOCK_ID_DATA_SHORT: u8 = 255;
const BLOCK_ID_DATA_LONG: u8 = 254;
const BLOCK_ID_ORIGIN: u8 = 253;
const BLOCK_ID_TOPLEVEL_XID: u8 = 252;

const BKPBLOCK_FORK_MASK: u8 = 0x0F;
const BKPBLOCK_HAS_IMAGE: u8 = 0x10;
const BKPBLOCK_HAS_DATA: u8 = 0x20;
const BKPBLOCK_WILL_INIT: u8 = 0x40;
const BKPBLOCK_SAME_REL: u8 = 0x80;

/// `xl_info` bits owned by the WAL machinery, not the resource manager (`XLR_INFO_MASK`).
pub const XLR_INFO_MASK: u8 = 0x0F;
/// `XLR_SPECIAL_REL_UPDATE`.
pub const XLR_SPECIAL_REL_UPDATE: u8 = 0x01;
/// `XLR_CHECK_CONSISTENCY`.
pub const XLR_CHECK_CONSISTENCY: u8 = 0x02;

#[inline]
pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(array(&b[at..at + 2]))
}
#[inline]
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(array(&b[at..at + 4]))
}
#[inline]
pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(array(&b[at..at + 8]))
}

/// The first `N` bytes of `b` as an array (zeros past its end; callers pass exactly `N`), so a
/// read costs one bounds check rather than one per byte.
#[inline(always)]
fn array<const N: usize>(b: &[u8]) -> [u8; N] {
    match b.first_chunk::<N>() {
        Some(a) => *a,
        None => [0; N],
    }
}

/// The fixed record header (`XLogRecord`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// Total length including this header (`xl_tot_len`).
    pub tot_len: u32,
    /// Transaction id (`xl_xid`).
    pub xid: u32,
    /// LSN of the previous record (`xl_prev`).
    pub prev: Lsn,
    /// Flag bits; the high nibble is the resource manager's record type (`xl_info`).
    pub info: u8,
    /// Resource manager id (`xl_rmid`).
    pub rmid: u8,
    /// CRC-32C of payload then header (`xl_crc`).
    pub crc: u32,
}

impl RecordHeader {
    /// Parses the header from the first 24 bytes of `b` (`None` if shorter).
    pub fn parse(b: &[u8]) -> Option<RecordHeader> {
        if b.len() < RECORD_HEADER_SIZE {
            return None;
        }
        Some(RecordHeader {
            tot_len: le32(b, 0),
            xid: le32(b, 4),
            prev: Lsn(le64(b, 8)),
            info: b[16],
            rmid: b[17],
            crc: le32(b, 20),
        })
    }
}

/// Computes a record's CRC-32C as PostgreSQL does: the payload after the header, then the
/// first 20 header bytes. `rec` must hold the whole record (at least 24 bytes).
#[inline(always)]
pub fn record_crc(rec: &[u8]) -> u32 {
    crate::wal::crc::record_crc(rec)
}

/// A relation: tablespace, database and relation file number (`RelFileLocator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RelFileLocator {
    /// Tablespace OID.
    pub spc: u32,
    /// Database OID.
    pub db: u32,
    /// Relation file number.
    pub rel: u32,
}

/// A relation fork.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fork {
    /// `main`.
    Main,
    /// `fsm`: the free space map.
    Fsm,
    /// `vm`: the visibility map.
    Vm,
    /// `init`: the init fork of unlogged relations.
    Init,
    /// Any other fork number (invalid in practice).
    Other(u8),
}

impl Fork {
    /// From a fork number.
    pub fn from_number(n: u8) -> Fork {
        match n {
            0 => Fork::Main,
            1 => Fork::Fsm,
            2 => Fork::Vm,
            3 => Fork::Init,
            n => Fork::Other(n),
        }
    }

    /// The fork's name as PostgreSQL prints it (`forkNames[]`).
    pub fn name(self) -> &'static str {
        match self {
            Fork::Main => "main",
            Fork::Fsm => "fsm",
            Fork::Vm => "vm",
            Fork::Init => "init",
            Fork::Other(_) => "???",
        }
    }

    /// The fork number.
    pub fn number(self) -> u8 {
        match self {
            Fork::Main => 0,
            Fork::Fsm => 1,
            Fork::Vm => 2,
            Fork::Init => 3,
            Fork::Other(n) => n,
        }
    }
}

/// How a full-page image is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageCompression {
    /// Not compressed.
    None,
    /// PostgreSQL's pglz.
    Pglz,
    /// LZ4 block format (15+).
    Lz4,
    /// zstd frame (15+).
    Zstd,
    /// Flags set that name no known method.
    Unknown,
}

impl ImageCompression {
    /// The name pg_waldump prints after `method: `.
    pub fn name(self) -> &'static str {
        match self {
            ImageCompression::None => "none",
            ImageCompression::Pglz => "pglz",
            ImageCompression::Lz4 => "lz4",
            ImageCompression::Zstd => "zstd",
            ImageCompression::Unknown => "unknown",
        }
    }
}

/// A block reference decoded from a record, stored as offsets into the record bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RawBlock {
    pub id: u8,
    pub fork_flags: u8,
    pub data_len: u16,
    pub image_len: u16,
    pub hole_offset: u16,
    pub hole_length: u16,
    pub bimg_info: u8,
    pub rel: RelFileLocator,
    pub blkno: u32,
    /// Offsets of the image and the data, relative to [`Layout::payload_at`].
    pub image_at: u32,
    pub data_at: u32,
}

/// Where the parts of a record's payload lie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Where the payload (block images and data, then main data) starts; blocks' offsets are
    /// relative to it.
    pub payload_at: u32,
    pub main_at: u32,
    pub main_len: u32,
    pub origin: Option<u16>,
    pub toplevel_xid: Option<u32>,
    pub fpi_len: u32,
    /// Block references that carry an image.
    pub fpi_count: u32,
}

/// Decodes the fragment headers of a whole record `rec` (`DecodeXLogRecord`), appending block
/// references to `blocks` (cleared first) if `store`.
#[inline]
pub(crate) fn decode_layout(
    rec: &[u8],
    lsn: Lsn,
    version: PgVersion,
    store: bool,
    blocks: &mut Vec<RawBlock>,
    out: &mut Layout,
) -> Result<(), WalError> {
    match parse_layout::<true>(rec, rec.len(), lsn, version, store, blocks, out) {
        Ok(true) => Ok(()),
        Ok(false) => Err(layout_error(lsn, WalErrorKind::InvalidFragmentLength)),
        Err(e) => Err(e),
    }
}

/// Builds a layout error; kept out of line so the parser's hot path stays small.
#[cold]
#[inline(never)]
fn layout_error(lsn: Lsn, kind: WalErrorKind) -> WalError {
    WalError::new(lsn, kind)
}

/// The fragment-header parser behind [`decode_layout`] (`WHOLE`: `rec` is the whole record,
/// `total == rec.len()`). Without `WHOLE`, it decodes a record of `total` bytes of which only
/// the first `rec.len()` are at hand, and returns `Ok(false)` if the fragment headers run past
/// them. The layout is written to `out` (which the decoder keeps, so records refer to it rather
/// than copy it).
#[inline(always)]
pub(crate) fn parse_layout<const WHOLE: bool>(
    rec: &[u8],
    total: usize,
    lsn: Lsn,
    version: PgVersion,
    store: bool,
    blocks: &mut Vec<RawBlock>,
    out: &mut Layout,
) -> Result<bool, WalError> {
    blocks.clear();
    let err = |kind| Err(layout_error(lsn, kind));
    let mut pos = RECORD_HEADER_SIZE;
    let mut datatotal: usize = 0;
    let mut layout = Layout::default();
    let mut main_len: usize = 0;
    // Whether a block named its relation yet, and the last one named (kept only if `store`).
    let mut seen_rel = false;
    let mut last_rel = RelFileLocator::default();
    let mut max_id: i32 = -1;
    // Takes the next `N` header bytes as an array, failing with "invalid length" if the record
    // is too short (or, for a prefix, returning `Ok(false)` if they are not at hand).
    macro_rules! take {
        ($n:literal) => {{
            let got = rec.get(pos..).and_then(|r| r.first_chunk::<$n>());
            let a: &[u8; $n] = match got {
                Some(a) if WHOLE || total - pos >= $n => a,
                _ if WHOLE || total - pos < $n => {
                    return err(WalErrorKind::InvalidFragmentLength);
                }
                _ => return Ok(false),
            };
            pos += $n;
            a
        }};
    }
    while total - pos > datatotal {
        let [id] = *take!(1);
        match id {
            BLOCK_ID_DATA_SHORT => {
                main_len = usize::from(take!(1)[0]);
                datatotal += main_len;
                break;
            }
            BLOCK_ID_DATA_LONG => {
                main_len = u32::from_le_bytes(*take!(4)) as usize;
                datatotal += main_len;
                break;
            }
            BLOCK_ID_ORIGIN => layout.origin = Some(u16::from_le_bytes(*take!(2))),
            BLOCK_ID_TOPLEVEL_XID if version >= PgVersion::V14 => {
                layout.toplevel_xid = Some(u32::from_le_bytes(*take!(4)))
            }
            id if id <= MAX_BLOCK_ID => {
                if i32::from(id) <= max_id {
                    return err(WalErrorKind::OutOfOrderBlockId { id });
                }
                max_id = i32::from(id);
                let &[fork_flags, d0, d1] = take!(3);
                let data_len = u16::from_le_bytes([d0, d1]);
                let has_data = fork_flags & BKPBLOCK_HAS_DATA != 0;
                if has_data != (data_len != 0) {
                    return err(if has_data {
                        WalErrorKind::HasDataButNoData
                    } else {
                        WalErrorKind::NoHasDataButData { len: data_len }
                    });
                }
                // The block's payload (image, then data) starts where the payload counted
                // so far ends: offsets relative to the payload's start.
                let at = datatotal as u32;
                datatotal += usize::from(data_len);
                let mut image = [0u16; 3]; // length, hole offset, hole length
                let mut bimg_info = 0;
                if fork_flags & BKPBLOCK_HAS_IMAGE != 0 {
                    let ih = take!(5);
                    let il = u16::from_le_bytes([ih[0], ih[1]]);
                    let off = u16::from_le_bytes([ih[2], ih[3]]);
                    bimg_info = ih[4];
                    let flags = ImageFlags::of(version, bimg_info);
                    let compressed = flags.compression != ImageCompression::None;
                    let hl = if flags.has_hole && compressed {
                        u16::from_le_bytes(*take!(2))
                    } else if flags.has_hole {
                        (BLCKSZ as u16).wrapping_sub(il)
                    } else {
                        0
                    };
                    datatotal += usize::from(il);
                    let bad_hole = if flags.has_hole {
                        off == 0 || hl == 0 || u32::from(il) == BLCKSZ
                    } else {
                        off != 0 || hl != 0
                    };
                    if bad_hole {
                        return err(WalErrorKind::InvalidHole {
                            offset: off,
                            length: hl,
                            image_len: il,
                        });
                    }
                    if compressed && u32::from(il) == BLCKSZ {
                        return err(WalErrorKind::InvalidCompressedLength { image_len: il });
                    }
                    if !flags.has_hole && !compressed && u32::from(il) != BLCKSZ {
                        return err(WalErrorKind::InvalidImageLength { image_len: il });
                    }
                    layout.fpi_len += u32::from(il);
                    layout.fpi_count += 1;
                    image = [il, off, hl];
                }
                let rel_bytes = if fork_flags & BKPBLOCK_SAME_REL == 0 {
                    seen_rel = true;
                    Some(take!(12))
                } else if !seen_rel {
                    return err(WalErrorKind::SameRelWithoutPrevious);
                } else {
                    None
                };
                let blkno = take!(4);
                // Everything above checks the headers; what follows only keeps them, and a
                // caller that only counts records skips it.
                if store {
                    if let Some(r) = rel_bytes {
                        last_rel = RelFileLocator {
                            spc: u32::from_le_bytes([r[0], r[1], r[2], r[3]]),
                            db: u32::from_le_bytes([r[4], r[5], r[6], r[7]]),
                            rel: u32::from_le_bytes([r[8], r[9], r[10], r[11]]),
                        };
                    }
                    let [image_len, hole_offset, hole_length] = image;
                    let b = RawBlock {
                        id,
                        fork_flags,
                        data_len,
                        image_len,
                        hole_offset,
                        hole_length,
                        bimg_info,
                        rel: last_rel,
                        blkno: u32::from_le_bytes(*blkno),
                        image_at: at,
                        data_at: at + u32::from(image_len),
                    };
                    blocks.push(b);
                }
            }
            id => return err(WalErrorKind::InvalidBlockId { id }),
        }
    }
    if total - pos != datatotal {
        return err(WalErrorKind::InvalidFragmentLength);
    }
    layout.payload_at = pos as u32;
    layout.main_at = (pos + datatotal - main_len) as u32;
    layout.main_len = main_len as u32;
    *out = layout;
    Ok(true)
}

/// The decoded meaning of `bimg_info`, whose bits were renumbered in 15.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageFlags {
    /// `BKPIMAGE_HAS_HOLE`.
    pub has_hole: bool,
    /// `BKPIMAGE_APPLY`: the image is restored at replay (else only kept for WAL consistency
    /// checking).
    pub apply: bool,
    /// The compression method.
    pub compression: ImageCompression,
}

impl ImageFlags {
    /// Interprets `bimg_info` for WAL of `version`.
    pub fn of(version: PgVersion, bimg_info: u8) -> ImageFlags {
        if version <= PgVersion::V14 {
            ImageFlags {
                has_hole: bimg_info & 0x01 != 0,
                apply: bimg_info & 0x04 != 0,
                compression: if bimg_info & 0x02 != 0 {
                    ImageCompression::Pglz
                } else {
                    ImageCompression::None
                },
            }
        } else {
            ImageFlags {
                has_hole: bimg_info & 0x01 != 0,
                apply: bimg_info & 0x02 != 0,
                compression: if bimg_info & 0x04 != 0 {
                    ImageCompression::Pglz
                } else if bimg_info & 0x08 != 0 {
                    ImageCompression::Lz4
                } else if bimg_info & 0x10 != 0 {
                    ImageCompression::Zstd
                } else {
                    ImageCompression::None
                },
            }
        }
    }
}

/// A decoded WAL record. Its bytes borrow from the decoder's input, or from the decoder's
/// reassembly buffer when the record crossed a page boundary.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub(crate) lsn: Lsn,
    pub(crate) end: Lsn,
    pub(crate) header: &'a RecordHeader,
    pub(crate) bytes: RecordBytes<'a>,
    pub(crate) version: PgVersion,
    pub(crate) tli: u32,
    pub(crate) layout: &'a Layout,
    pub(crate) blocks: &'a [RawBlock],
}

impl<'a> Record<'a> {
    /// Where the record starts (`ReadRecPtr`).
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The LSN just past the record's last byte (`EndRecPtr`); for `XLOG_SWITCH`, the start of
    /// the next segment.
    pub fn end_lsn(&self) -> Lsn {
        self.end
    }

    /// The fixed header.
    pub fn header(&self) -> &RecordHeader {
        self.header
    }

    /// The PostgreSQL version that wrote the record (from its page's magic).
    pub fn version(&self) -> PgVersion {
        self.version
    }

    /// The timeline of the page where the record starts.
    pub fn page_timeline(&self) -> u32 {
        self.tli
    }

    /// Resource manager id.
    pub fn rmid(&self) -> u8 {
        self.header.rmid
    }

    /// `xl_info` (record type in the high nibble).
    pub fn info(&self) -> u8 {
        self.header.info
    }

    /// Transaction id.
    pub fn xid(&self) -> u32 {
        self.header.xid
    }

    /// Previous record's LSN.
    pub fn prev(&self) -> Lsn {
        self.header.prev
    }

    /// `xl_tot_len`.
    pub fn total_len(&self) -> u32 {
        self.header.tot_len
    }

    /// Total bytes of full-page images.
    pub fn fpi_len(&self) -> u32 {
        self.layout.fpi_len
    }

    /// How many full-page images the record carries (known whether or not the decoder keeps
    /// block references, see [`DecoderConfig::with_block_refs`](crate::wal::DecoderConfig::with_block_refs)).
    pub fn fpi_count(&self) -> u32 {
        self.layout.fpi_count
    }

    /// The whole record, header included.
    ///
    /// A record that crossed a page boundary is joined into one buffer on the first call
    /// (once per record); [`Record::main_data`], [`BlockRef::data`] and [`BlockRef::image`]
    /// avoid that copy when their bytes lie on one page.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes.all()
    }

    /// The main data.
    pub fn main_data(&self) -> &'a [u8] {
        self.bytes
            .range(self.layout.main_at as usize, self.layout.main_len as usize)
    }

    /// Replication origin id, if the record carries one.
    pub fn origin(&self) -> Option<u16> {
        self.layout.origin
    }

    /// The top-level transaction id recorded for a subtransaction (14+), if any.
    pub fn toplevel_xid(&self) -> Option<u32> {
        self.layout.toplevel_xid
    }

    /// The block references, in id order.
    pub fn blocks(&self) -> impl ExactSizeIterator<Item = BlockRef<'a>> + '_ {
        let (bytes, version, base) = (self.bytes, self.version, self.layout.payload_at);
        self.blocks.iter().map(move |raw| BlockRef {
            raw,
            base,
            bytes,
            version,
        })
    }

    /// The block reference with id `id`.
    pub fn block(&self, id: u8) -> Option<BlockRef<'a>> {
        self.blocks.iter().find(|b| b.id == id).map(|raw| BlockRef {
            raw,
            base: self.layout.payload_at,
            bytes: self.bytes,
            version: self.version,
        })
    }

    /// The highest block id in use, if any block is referenced.
    pub fn max_block_id(&self) -> Option<u8> {
        self.blocks.last().map(|b| b.id)
    }
}

/// One block reference of a record.
#[derive(Clone, Copy, Debug)]
pub struct BlockRef<'a> {
    raw: &'a RawBlock,
    /// The record's [`Layout::payload_at`].
    base: u32,
    bytes: RecordBytes<'a>,
    version: PgVersion,
}

impl<'a> BlockRef<'a> {
    /// The block id (0..=32).
    pub fn id(&self) -> u8 {
        self.raw.id
    }
    /// The relation.
    pub fn rel(&self) -> RelFileLocator {
        self.raw.rel
    }
    /// The fork.
    pub fn fork(&self) -> Fork {
        Fork::from_number(self.raw.fork_flags & BKPBLOCK_FORK_MASK)
    }
    /// The block number.
    pub fn blkno(&self) -> u32 {
        self.raw.blkno
    }
    /// `BKPBLOCK_WILL_INIT`: replay reinitialises the page.
    pub fn will_init(&self) -> bool {
        self.raw.fork_flags & BKPBLOCK_WILL_INIT != 0
    }
    /// The rmgr-specific data attached to the block (empty if none).
    pub fn data(&self) -> &'a [u8] {
        if self.raw.data_len == 0 {
            return &[];
        }
        self.bytes.range(
            (self.base + self.raw.data_at) as usize,
            usize::from(self.raw.data_len),
        )
    }
    /// True if the block carries data (`BKPBLOCK_HAS_DATA`).
    pub fn has_data(&self) -> bool {
        self.raw.data_len > 0
    }
    /// The length of the block's data, without touching it.
    pub fn data_len(&self) -> u16 {
        self.raw.data_len
    }
    /// True if the block carries a full-page image (`BKPBLOCK_HAS_IMAGE`).
    pub fn has_image(&self) -> bool {
        self.raw.fork_flags & BKPBLOCK_HAS_IMAGE != 0
    }
    /// What the full-page image's header says (length, hole, flags), if there is an image,
    /// without touching its bytes: [`BlockRef::image`] must join the record's pieces when the
    /// image crosses a WAL page, which describing it does not need.
    pub fn image_info(&self) -> Option<ImageInfo> {
        self.has_image().then(|| ImageInfo {
            len: self.raw.image_len,
            hole_offset: self.raw.hole_offset,
            hole_length: self.raw.hole_length,
            flags: ImageFlags::of(self.version, self.raw.bimg_info),
            bimg_info: self.raw.bimg_info,
        })
    }
    /// The full-page image, if any.
    pub fn image(&self) -> Option<BlockImage<'a>> {
        if self.raw.fork_flags & BKPBLOCK_HAS_IMAGE == 0 {
            return None;
        }
        Some(BlockImage {
            bytes: self.bytes.range(
                (self.base + self.raw.image_at) as usize,
                usize::from(self.raw.image_len),
            ),
            hole_offset: self.raw.hole_offset,
            hole_length: self.raw.hole_length,
            flags: ImageFlags::of(self.version, self.raw.bimg_info),
            bimg_info: self.raw.bimg_info,
        })
    }
}

/// A full-page image's header, as [`BlockRef::image_info`] returns it.
///
/// ```
/// use pgwal::wal::{ImageCompression, ImageFlags, ImageInfo};
/// let info = ImageInfo {
///     len: 700,
///     hole_offset: 100,
///     hole_length: 5000,
///     flags: ImageFlags { has_hole: true, apply: true, compression: ImageCompression::Lz4 },
///     bimg_info: 0,
/// };
/// assert_eq!(info.compression_saved(), 8192 - 5000 - 700);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// Stored length (`bimg_len`).
    pub len: u16,
    /// Start of the removed hole.
    pub hole_offset: u16,
    /// Length of the removed hole.
    pub hole_length: u16,
    /// Decoded flags.
    pub flags: ImageFlags,
    /// Raw `bimg_info`.
    pub bimg_info: u8,
}

impl ImageInfo {
    /// Bytes saved by compression: `BLCKSZ - hole_length - bimg_len` (as pg_waldump prints).
    pub fn compression_saved(&self) -> i64 {
        i64::from(BLCKSZ) - i64::from(self.hole_length) - i64::from(self.len)
    }
}

/// A full-page image as stored in the record (possibly compressed, with its hole removed).
#[derive(Clone, Copy, Debug)]
pub struct BlockImage<'a> {
    /// The stored bytes (`bimg_len` of them).
    pub bytes: &'a [u8],
    /// Start of the removed hole.
    pub hole_offset: u16,
    /// Length of the removed hole.
    pub hole_length: u16,
    /// Decoded flags.
    pub flags: ImageFlags,
    /// Raw `bimg_info`.
    pub bimg_info: u8,
}

impl BlockImage<'_> {
    /// Bytes saved by compression: `BLCKSZ - hole_length - bimg_len` (as pg_waldump prints).
    pub fn compression_saved(&self) -> i64 {
        i64::from(BLCKSZ) - i64::from(self.hole_length) - self.bytes.len() as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::{DecoderConfig, WalDecoder};
    use crate::{WalFileName, WalSegSize};
    use std::path::Path;

    /// Every record of every major's sample WAL, and single-byte changes to its fragment
    /// headers: decoding without keeping block references (`store` false, `--stats`) accepts
    /// and refuses the same records as the full decoding, with the same layout and error.
    #[test]
    fn counting_checks_what_full_decoding_checks() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/wal");
        let (mut records, mut changed, mut refused) = (0, 0, 0);
        let sorted = |dir: &Path| {
            let mut paths: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            paths.sort();
            paths
        };
        for dir in sorted(&root) {
            for path in sorted(&dir) {
                let name = path.file_name().unwrap().to_str().unwrap();
                let Some(file) = WalFileName::parse(name) else {
                    continue;
                };
                let data = std::fs::read(&path).unwrap();
                let seg = WalSegSize::new(data.len() as u32).unwrap();
                let start = file.segno(seg).unwrap().start_lsn(seg).unwrap();
                let mut dec = WalDecoder::new(DecoderConfig::new(seg), start);
                let mut input = &data[..];
                while let Ok(Some(rec)) = dec.decode(&mut input) {
                    records += 1;
                    let bytes = rec.bytes().to_vec();
                    let (lsn, version) = (rec.lsn(), rec.version());
                    let mut blocks = Vec::new();
                    let mut layout = Layout::default();
                    decode_layout(&bytes, lsn, version, true, &mut blocks, &mut layout).unwrap();
                    assert_eq!(&blocks, rec.blocks, "{name} at {lsn}: blocks");
                    assert_eq!(&layout, rec.layout, "{name} at {lsn}: layout");
                    let headers = (layout.payload_at as usize).min(RECORD_HEADER_SIZE + 48);
                    for k in RECORD_HEADER_SIZE..headers {
                        let b = bytes[k];
                        for v in [0x00, 0xFF, b ^ 0x01, b ^ 0x20, b.wrapping_add(1)] {
                            let mut m = bytes.clone();
                            m[k] = v;
                            let (mut full_blocks, mut counted) = (Vec::new(), Vec::new());
                            let (mut full, mut count) = (Layout::default(), Layout::default());
                            let a =
                                decode_layout(&m, lsn, version, true, &mut full_blocks, &mut full);
                            let c =
                                decode_layout(&m, lsn, version, false, &mut counted, &mut count);
                            assert_eq!(a, c, "{name} at {lsn}: byte {k} set to {v:#04x}");
                            assert_eq!(full, count, "{name} at {lsn}: byte {k} set to {v:#04x}");
                            assert!(counted.is_empty());
                            changed += 1;
                            refused += usize::from(a.is_err());
                        }
                    }
                }
            }
        }
        eprintln!("{records} records, {changed} changes, {refused} refused");
        assert!(records > 10_000, "{records} records");
        assert!(
            refused > changed / 10,
            "{refused} of {changed} changes refused"
        );
    }
}
