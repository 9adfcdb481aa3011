//! Compressing archived WAL, and reading the start of a (possibly compressed) file.
//!
//! Large inputs are cut into one chunk per core and each chunk is compressed on its own
//! thread into a complete gzip member, LZ4 frame or zstd frame; the pieces are concatenated.
//! Concatenated members and frames are standard (gzip, lz4 and zstd command-line tools and
//! [`crate::storage::codec::decompress`] read them as one stream). Each piece goes through
//! the one encoder dispatcher, [`crate::storage::codec::Encoder`].

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::segment::{Compression, WalFileName};
use crate::source::{MappedSegment, WalBytes};
use crate::storage::codec::{self, decompress, DecompressError, Encoding, MAX_SEGMENT_BYTES};

/// Default gzip level: 1 keeps pushing a 16 MB segment fast.
pub const DEFAULT_GZIP_LEVEL: u32 = 1;
/// Default zstd level.
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// Inputs smaller than this are compressed on the calling thread, in one piece.
const PARALLEL_MIN: usize = 2 << 20;

/// LZ4 block size used (`BlockSize::Max4MB`).
const LZ4_BLOCK: usize = 4 << 20;

/// Size of the LZ4 frame header we write: magic, FLG, BD, header checksum (no content size, no
/// dictionary id).
const LZ4_HEADER: usize = 7;

/// Joins LZ4 frames written with the same settings (independent blocks, block checksums, no
/// content size or checksum) into one frame: the first header, every frame's blocks, one end
/// mark. Some LZ4 readers stop at the end of the first frame, so one frame is what we store.
fn join_lz4_frames(parts: &[Vec<u8>]) -> Option<Vec<u8>> {
    let first = parts.first()?;
    let header = first.get(..LZ4_HEADER)?;
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    out.extend_from_slice(header);
    for p in parts {
        if p.len() < LZ4_HEADER + 4 || &p[..LZ4_HEADER] != header || p[p.len() - 4..] != [0u8; 4] {
            return None;
        }
        out.extend_from_slice(&p[LZ4_HEADER..p.len() - 4]);
    }
    out.extend_from_slice(&[0u8; 4]);
    Some(out)
}

/// A compression method and level, as given to `--compress`: `none`, `gzip[:1-9]`, `lz4`,
/// `zstd[:level]` (levels -7 to 22).
///
/// ```
/// use pgwal::archive::CompressionSpec;
/// use pgwal::Compression;
/// let s: CompressionSpec = "zstd:3".parse().unwrap();
/// assert_eq!((s.kind, s.level), (Compression::Zstd, Some(3)));
/// assert_eq!(s.to_string(), "zstd:3");
/// assert!("lz4:2".parse::<CompressionSpec>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompressionSpec {
    /// The method.
    pub kind: Compression,
    /// The level, or `None` for the method's default.
    pub level: Option<i32>,
}

impl CompressionSpec {
    /// No compression.
    pub const NONE: CompressionSpec = CompressionSpec {
        kind: Compression::None,
        level: None,
    };

    /// Compresses `data` with up to `threads` threads (0 = as many as there are cores).
    pub fn compress(&self, data: &[u8], threads: usize) -> io::Result<Vec<u8>> {
        if self.kind == Compression::None {
            return Ok(data.to_vec());
        }
        let threads = if threads == 0 {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(8)
        } else {
            threads
        };
        if threads <= 1 || data.len() < PARALLEL_MIN {
            return self.compress_one(data);
        }
        // Twice as many pieces as threads, taken in turn, so that a thread that drew an easy
        // piece helps with the rest.
        let mut chunk = data.len().div_ceil(threads * 2).max(1 << 20);
        if self.kind == Compression::Lz4 {
            // Whole LZ4 blocks per piece, so that the pieces join into one frame.
            chunk = chunk.div_ceil(LZ4_BLOCK) * LZ4_BLOCK;
        }
        let pieces: Vec<&[u8]> = data.chunks(chunk).collect();
        let next = AtomicUsize::new(0);
        let results: Vec<Mutex<Option<io::Result<Vec<u8>>>>> =
            pieces.iter().map(|_| Mutex::new(None)).collect();
        std::thread::scope(|s| {
            for _ in 0..threads.min(pieces.len()) {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(piece) = pieces.get(i) else { break };
                    let r = self.compress_one(piece);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                });
            }
        });
        let parts: Vec<io::Result<Vec<u8>>> = results
            .into_iter()
            .map(|m| {
                m.into_inner()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| Err(io::Error::other("compression thread failed")))
            })
            .collect();
        let parts = parts.into_iter().collect::<io::Result<Vec<Vec<u8>>>>()?;
        if self.kind == Compression::Lz4 {
            return match join_lz4_frames(&parts) {
                Some(joined) => Ok(joined),
                None => self.compress_one(data),
            };
        }
        Ok(parts.concat())
    }

    /// Compresses `data` as one gzip member / LZ4 frame (independent blocks with checksums) /
    /// zstd frame (with its content size and checksum).
    fn compress_one(&self, data: &[u8]) -> io::Result<Vec<u8>> {
        let level = match self.kind {
            Compression::Gzip => self
                .level
                .map_or(DEFAULT_GZIP_LEVEL as i32, |l| l.clamp(0, 9)),
            Compression::Zstd => self.level.unwrap_or(DEFAULT_ZSTD_LEVEL),
            _ => 0,
        };
        let mut enc = Encoding::new(self.kind, level);
        enc.lz4_independent_blocks = true;
        enc.zstd_checksum = true;
        enc.zstd_pledged_size = Some(data.len() as u64);
        codec::compress(&enc, data)
    }
}

impl Default for CompressionSpec {
    fn default() -> Self {
        CompressionSpec::NONE
    }
}

impl fmt::Display for CompressionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.kind {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        };
        match self.level {
            Some(l) => write!(f, "{name}:{l}"),
            None => f.write_str(name),
        }
    }
}

/// `--compress` was not `none`, `gzip[:level]`, `lz4` or `zstd[:level]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid compression \"{0}\": expected none, gzip[:1-9], lz4 or zstd[:-7..22]")]
pub struct ParseCompressionError(pub String);

impl FromStr for CompressionSpec {
    type Err = ParseCompressionError;

    fn from_str(s: &str) -> Result<CompressionSpec, ParseCompressionError> {
        let err = || ParseCompressionError(s.to_owned());
        let (name, level) = match s.split_once(':') {
            Some((n, l)) => (n, Some(l.trim().parse::<i32>().map_err(|_| err())?)),
            None => (s, None),
        };
        let kind = match name.trim().to_ascii_lowercase().as_str() {
            "none" | "off" => Compression::None,
            "gzip" | "gz" => Compression::Gzip,
            "lz4" => Compression::Lz4,
            "zstd" | "zst" => Compression::Zstd,
            _ => return Err(err()),
        };
        let ok = match (kind, level) {
            (_, None) => true,
            (Compression::Gzip, Some(l)) => (1..=9).contains(&l),
            (Compression::Zstd, Some(l)) => (-7..=22).contains(&l) && l != 0,
            _ => false,
        };
        if !ok {
            return Err(err());
        }
        Ok(CompressionSpec { kind, level })
    }
}

/// Reads a whole file. A complete segment (named as one, plain or compressed, without
/// `.partial`) whose length is a segment size is memory-mapped (and pre-faulted), which saves copying it:
/// such files are immutable (PostgreSQL does not touch a segment it is archiving, and an
/// archived one is written once under a temporary name and never rewritten).
///
/// Every other file (a `.partial` segment a receiver may be rewriting, history files, anything
/// else) is read with `read()`, so that whatever another process does to it, the worst outcome
/// is an error, never a signal: a file that shrinks while it is read is read again (a few
/// times, then this fails with an error saying it kept changing); one that grows (a receiver
/// appending) gives the prefix read.
pub fn read_all(path: &Path) -> io::Result<WalBytes> {
    let mut file = File::open(path)?;
    let immutable = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(WalFileName::parse)
        .is_some_and(|n| matches!(n, WalFileName::Segment { partial: false, .. }));
    if immutable {
        // SAFETY: see above: the file is a complete segment, which is not modified or truncated
        // while mapped (a concurrent unlink does not affect the mapping).
        match unsafe { MappedSegment::map_populated(&file) } {
            Ok(map) => return Ok(WalBytes::Mapped(map)),
            // Not a segment's length (or it changed while being mapped): read it.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {}
            Err(e) => return Err(e),
        }
    }
    read_settled(&mut file, !immutable).map(WalBytes::Owned)
}

/// Reads `file` from its start with `read()`, again if it shrank meanwhile (it was truncated
/// under us, so the bytes read may mix two versions). A file that `may_change` (a `.partial`
/// one) is read twice, and kept only when both reads agree (the second may have grown): a
/// truncation racing a read can hand it zeroed bytes where the file is then written again,
/// which the lengths alone do not show.
fn read_settled(file: &mut File, may_change: bool) -> io::Result<Vec<u8>> {
    use std::io::{Seek, SeekFrom};
    const TRIES: u32 = 5;
    let read_once = |file: &mut File| -> io::Result<Option<Vec<u8>>> {
        let before = file.metadata()?.len();
        file.seek(SeekFrom::Start(0))?;
        let mut v = Vec::with_capacity(before.min(MAX_SEGMENT_BYTES) as usize);
        Read::by_ref(file)
            .take(MAX_SEGMENT_BYTES + 1)
            .read_to_end(&mut v)?;
        let after = file.metadata()?.len();
        Ok((after >= v.len() as u64 && (v.len() as u64) >= before.min(after)).then_some(v))
    };
    for attempt in 0..TRIES {
        if let Some(v) = read_once(file)? {
            if !may_change {
                return Ok(v);
            }
            if let Some(again) = read_once(file)? {
                if again.starts_with(&v) {
                    return Ok(v);
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5 << attempt));
    }
    Err(io::Error::other(format!(
        "the file was truncated while being read, {TRIES} times in a row; is another process rewriting it?"
    )))
}

/// Decompresses like [`crate::storage::codec::decompress`], but zstd data made of several frames whose
/// sizes are recorded (as [`CompressionSpec::compress`] writes them) is decompressed on several
/// threads, straight into place.
///
/// Likewise one LZ4 frame of independent blocks is decoded block by block on several threads
/// (header, block and content checksums are checked).
pub fn decompress_fast(kind: Compression, data: &[u8]) -> Result<Vec<u8>, DecompressError> {
    let fast = match kind {
        Compression::Zstd => zstd_frames_parallel(data),
        Compression::Lz4 => lz4_blocks_parallel(data),
        _ => None,
    };
    match fast {
        Some(r) => r,
        None => decompress(kind, data),
    }
}

fn damaged(reason: impl Into<String>) -> DecompressError {
    DecompressError::Damaged(reason.into())
}

/// Runs `work` over `jobs` on up to one thread per core, each thread taking the next job.
fn run_parallel<J: Send>(jobs: Vec<J>, work: impl Fn(J) + Sync) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
        .min(jobs.len());
    let queue = Mutex::new(jobs);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let job = queue.lock().ok().and_then(|mut q| q.pop());
                let Some(job) = job else { break };
                work(job);
            });
        }
    });
}

/// XXH32, as the LZ4 frame format uses it for its checksums.
fn xxh32(input: &[u8], seed: u32) -> u32 {
    const P1: u32 = 2_654_435_761;
    const P2: u32 = 2_246_822_519;
    const P3: u32 = 3_266_489_917;
    const P4: u32 = 668_265_263;
    const P5: u32 = 374_761_393;
    let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let round = |acc: u32, v: u32| {
        acc.wrapping_add(v.wrapping_mul(P2))
            .rotate_left(13)
            .wrapping_mul(P1)
    };
    let mut rest = input;
    let mut h = if input.len() >= 16 {
        let mut v = [
            seed.wrapping_add(P1).wrapping_add(P2),
            seed.wrapping_add(P2),
            seed,
            seed.wrapping_sub(P1),
        ];
        while rest.len() >= 16 {
            for (i, lane) in v.iter_mut().enumerate() {
                *lane = round(*lane, word(&rest[i * 4..]));
            }
            rest = &rest[16..];
        }
        v[0].rotate_left(1)
            .wrapping_add(v[1].rotate_left(7))
            .wrapping_add(v[2].rotate_left(12))
            .wrapping_add(v[3].rotate_left(18))
    } else {
        seed.wrapping_add(P5)
    };
    h = h.wrapping_add(input.len() as u32);
    while rest.len() >= 4 {
        h = h
            .wrapping_add(word(rest).wrapping_mul(P3))
            .rotate_left(17)
            .wrapping_mul(P4);
        rest = &rest[4..];
    }
    for &b in rest {
        h = h
            .wrapping_add(u32::from(b).wrapping_mul(P5))
            .rotate_left(11)
            .wrapping_mul(P1);
    }
    h ^= h >> 15;
    h = h.wrapping_mul(P2);
    h ^= h >> 13;
    h = h.wrapping_mul(P3);
    h ^ (h >> 16)
}

fn le32_at(data: &[u8], pos: usize) -> Option<u32> {
    let w = data.get(pos..pos.checked_add(4)?)?;
    Some(u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
}

/// One LZ4 frame of independent blocks, decoded in parallel. `None` for anything else
/// (several frames, linked blocks, a dictionary, a legacy frame, a single block): the
/// streaming decoder handles those.
fn lz4_blocks_parallel(data: &[u8]) -> Option<Result<Vec<u8>, DecompressError>> {
    const MAGIC: u32 = 0x184D_2204;
    if le32_at(data, 0)? != MAGIC || data.len() < 7 {
        return None;
    }
    let (flg, bd) = (data[4], data[5]);
    let independent = flg & 0x20 != 0;
    let block_checksums = flg & 0x10 != 0;
    let has_size = flg & 0x08 != 0;
    let content_checksum = flg & 0x04 != 0;
    if flg >> 6 != 1 || !independent || flg & 0x01 != 0 {
        return None;
    }
    let max_block: usize = match (bd >> 4) & 7 {
        4 => 64 << 10,
        5 => 256 << 10,
        6 => 1 << 20,
        7 => 4 << 20,
        _ => return None,
    };
    let hc_at = 6 + if has_size { 8 } else { 0 };
    let hc = *data.get(hc_at)?;
    if (xxh32(&data[4..hc_at], 0) >> 8) as u8 != hc {
        return Some(Err(damaged("LZ4 frame header checksum mismatch")));
    }
    // Blocks: (compressed bytes, stored uncompressed?).
    let mut blocks: Vec<(&[u8], bool)> = Vec::new();
    let mut pos = hc_at + 1;
    loop {
        let word = le32_at(data, pos)?;
        pos += 4;
        if word == 0 {
            break;
        }
        let len = (word & 0x7FFF_FFFF) as usize;
        if len > max_block {
            return Some(Err(damaged("LZ4 block larger than the frame's block size")));
        }
        let block = data.get(pos..pos + len)?;
        pos += len;
        if block_checksums {
            if xxh32(block, 0) != le32_at(data, pos)? {
                return Some(Err(damaged("LZ4 block checksum mismatch")));
            }
            pos += 4;
        }
        blocks.push((block, word & 0x8000_0000 != 0));
    }
    let expected_checksum = if content_checksum {
        let c = le32_at(data, pos)?;
        pos += 4;
        Some(c)
    } else {
        None
    };
    if pos != data.len() || blocks.len() < 2 {
        return None; // another frame follows, or nothing to share out
    }
    let capacity = blocks.len().checked_mul(max_block)?;
    if capacity as u64 > MAX_SEGMENT_BYTES + max_block as u64 {
        return None;
    }
    let mut out = vec![0u8; capacity];
    let lens: Vec<Mutex<Result<usize, String>>> = blocks
        .iter()
        .map(|_| Mutex::new(Err(String::new())))
        .collect();
    type Job<'a> = (usize, (&'a [u8], bool), &'a mut [u8]);
    let jobs: Vec<Job<'_>> = blocks
        .iter()
        .copied()
        .zip(out.chunks_mut(max_block))
        .enumerate()
        .map(|(i, (b, dst))| (i, b, dst))
        .collect();
    run_parallel(jobs, |(i, (src, raw), dst)| {
        let r = if raw {
            dst[..src.len()].copy_from_slice(src);
            Ok(src.len())
        } else {
            lz4_flex::block::decompress_into(src, dst).map_err(|e| e.to_string())
        };
        if let Ok(mut slot) = lens[i].lock() {
            *slot = r;
        }
    });
    // Close the gaps left by blocks shorter than the maximum.
    let mut total = 0usize;
    for (i, l) in lens.into_iter().enumerate() {
        let n = match l.into_inner() {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Some(Err(damaged(format!("LZ4 block {i}: {e}")))),
            Err(_) => return Some(Err(damaged("LZ4 decompression thread failed"))),
        };
        let start = i * max_block;
        if start != total {
            out.copy_within(start..start + n, total);
        }
        total += n;
    }
    out.truncate(total);
    if total as u64 > MAX_SEGMENT_BYTES {
        return Some(Err(DecompressError::TooLarge));
    }
    if expected_checksum.is_some_and(|c| c != xxh32(&out, 0)) {
        return Some(Err(damaged("LZ4 content checksum mismatch")));
    }
    Some(Ok(out))
}

fn zstd_frames_parallel(data: &[u8]) -> Option<Result<Vec<u8>, DecompressError>> {
    use zstd::zstd_safe;
    let mut frames: Vec<(&[u8], usize)> = Vec::new();
    let mut rest = data;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let n = zstd_safe::find_frame_compressed_size(rest).ok()?;
        if n == 0 || n > rest.len() {
            return None;
        }
        let size = zstd_safe::get_frame_content_size(&rest[..n]).ok()??;
        total = total.checked_add(size)?;
        if total > MAX_SEGMENT_BYTES {
            return None;
        }
        frames.push((&rest[..n], size as usize));
        rest = &rest[n..];
    }
    if frames.len() < 2 {
        return None;
    }
    let mut out = vec![0u8; total as usize];
    let mut jobs: Vec<(&[u8], &mut [u8])> = Vec::with_capacity(frames.len());
    let mut tail: &mut [u8] = &mut out;
    for &(src, size) in &frames {
        let (dst, t) = tail.split_at_mut(size);
        jobs.push((src, dst));
        tail = t;
    }
    let error: Mutex<Option<String>> = Mutex::new(None);
    run_parallel(jobs, |(src, dst)| {
        let want = dst.len();
        let res = match zstd_safe::decompress(dst, src) {
            Ok(n) if n == want => None,
            Ok(n) => Some(format!(
                "a zstd frame holds {n} bytes, its header says {want}"
            )),
            Err(code) => Some(zstd_safe::get_error_name(code).to_owned()),
        };
        if let Some(e) = res {
            if let Ok(mut slot) = error.lock() {
                slot.get_or_insert(e);
            }
        }
    });
    Some(match error.into_inner().ok().flatten() {
        Some(e) => Err(damaged(e)),
        None => Ok(out),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn round_trip_every_method_and_parallel_pieces() {
        let mut data = Vec::new();
        for i in 0u32..3_000_000 {
            data.extend_from_slice(&(i.wrapping_mul(2_654_435_761) >> (i % 13)).to_le_bytes());
        }
        for spec in ["none", "gzip", "gzip:6", "lz4", "zstd", "zstd:3", "zstd:-3"] {
            let spec: CompressionSpec = spec.parse().unwrap();
            for threads in [1, 3] {
                let c = spec.compress(&data, threads).unwrap();
                assert_eq!(codec::sniff_compression(&c), spec.kind, "{spec}");
                let back = decompress(spec.kind, &c).unwrap();
                assert!(
                    back == data,
                    "{spec} threads {threads}: {} bytes back of {}",
                    back.len(),
                    data.len()
                );
                let fast = decompress_fast(spec.kind, &c).unwrap();
                assert!(fast == data, "{spec} threads {threads}: fast path");
                let dir = tempfile::tempdir().unwrap();
                let p = dir.path().join("f");
                std::fs::write(&p, &c).unwrap();
                assert_eq!(codec::read_head(&p, 40).unwrap(), &data[..40]);
            }
        }
    }

    #[test]
    fn xxh32_known_values() {
        assert_eq!(xxh32(b"", 0), 0x02CC_5D05);
        assert_eq!(xxh32(b"a", 0), 0x550D_7456);
        assert_eq!(xxh32(b"abc", 0), 0x32D1_53FF);
        assert_eq!(
            xxh32(b"Nobody inspects the spammish repetition", 0),
            0xE229_3B2F
        );
    }

    #[test]
    fn lz4_fast_path_checks_and_falls_back() {
        let data: Vec<u8> = (0..9_000_000u32)
            .map(|i| (i.wrapping_mul(7919) >> 9) as u8)
            .collect();
        let spec: CompressionSpec = "lz4".parse().unwrap();
        let c = spec.compress(&data, 2).unwrap();
        assert!(lz4_blocks_parallel(&c).unwrap().unwrap() == data);
        // A damaged block is caught by its checksum.
        let mut bad = c.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x10;
        assert!(decompress_fast(Compression::Lz4, &bad).is_err());
        // Linked blocks (as the lz4 tool writes by default): the streaming decoder.
        let info = lz4_flex::frame::FrameInfo::new()
            .block_mode(lz4_flex::frame::BlockMode::Linked)
            .content_checksum(true);
        let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        e.write_all(&data).unwrap();
        let linked = e.finish().unwrap();
        assert!(lz4_blocks_parallel(&linked).is_none());
        assert!(decompress_fast(Compression::Lz4, &linked).unwrap() == data);
        // Small independent blocks, content size and checksum.
        let info = lz4_flex::frame::FrameInfo::new()
            .block_size(lz4_flex::frame::BlockSize::Max64KB)
            .content_checksum(true)
            .content_size(Some(data.len() as u64));
        let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
        e.write_all(&data).unwrap();
        let checked = e.finish().unwrap();
        assert!(lz4_blocks_parallel(&checked).unwrap().unwrap() == data);
        let mut bad = checked.clone();
        let n = bad.len();
        bad[n - 1] ^= 1; // the content checksum
        assert!(lz4_blocks_parallel(&bad).unwrap().is_err());
    }

    #[test]
    fn parse_specs() {
        for bad in [
            "", "zip", "gzip:0", "gzip:10", "zstd:23", "zstd:x", "none:1", "lz4:1",
        ] {
            assert!(bad.parse::<CompressionSpec>().is_err(), "{bad}");
        }
        assert_eq!(
            "GZIP".parse::<CompressionSpec>().unwrap().kind,
            Compression::Gzip
        );
        assert_eq!(
            "none".parse::<CompressionSpec>().unwrap(),
            CompressionSpec::NONE
        );
    }
}
