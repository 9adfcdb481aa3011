//! Compressing archived WAL, and reading the start of a (possibly compressed) file.
//!
//! Large inputs are cut into one chunk per core and each chunk is compressed on its own
//! thread into a complete gzip member, LZ4 frame or zstd frame; the pieces are concatenated.
//! Concatenated members and frames are standard (gzip, lz4 and zstd command-line tools and
//! [`crate::source::decompress`] read them as one stream).

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::segment::Compression;
use crate::source::{decompress, sniff_compression, WalBytes, MAX_SEGMENT_BYTES};

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
    pub const NONE: CompressionSpec = CompressionSpec { kind: Compression::None, level: None };

    /// Compresses `data` with up to `threads` threads (0 = as many as there are cores).
    pub fn compress(&self, data: &[u8], threads: usize) -> io::Result<Vec<u8>> {
        if self.kind == Compression::None {
            return Ok(data.to_vec());
        }
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
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
        let results: Vec<Mutex<Option<io::Result<Vec<u8>>>>> = pieces.iter().map(|_| Mutex::new(None)).collect();
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

    /// Compresses `data` as one gzip member / LZ4 frame / zstd frame.
    fn compress_one(&self, data: &[u8]) -> io::Result<Vec<u8>> {
        let cap = data.len() / 4 + 1024;
        match self.kind {
            Compression::None => Ok(data.to_vec()),
            Compression::Gzip => {
                let level = self.level.map_or(DEFAULT_GZIP_LEVEL, |l| l.clamp(0, 9) as u32);
                let mut e = flate2::write::GzEncoder::new(Vec::with_capacity(cap), flate2::Compression::new(level));
                e.write_all(data)?;
                e.finish()
            }
            Compression::Lz4 => {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max4MB)
                    .block_mode(lz4_flex::frame::BlockMode::Independent)
                    .block_checksums(true)
                    .content_checksum(false);
                let mut e = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::with_capacity(cap));
                e.write_all(data)?;
                e.finish().map_err(io::Error::other)
            }
            Compression::Zstd => {
                let level = self.level.unwrap_or(DEFAULT_ZSTD_LEVEL);
                let mut out = Vec::with_capacity(cap);
                let mut e = zstd::stream::write::Encoder::new(&mut out, level)?;
                e.include_checksum(true)?;
                e.set_pledged_src_size(Some(data.len() as u64))?;
                e.write_all(data)?;
                e.finish()?;
                Ok(out)
            }
        }
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

/// Reads a whole file: memory-mapped (and pre-faulted) when it is 1 MB or more, which saves
/// copying a segment.
///
/// Callers map only files that nobody modifies in place: a finished segment PostgreSQL is
/// archiving, or an archived file (written once under a temporary name, never rewritten).
pub fn read_all(path: &Path) -> io::Result<WalBytes> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if (1 << 20..=MAX_SEGMENT_BYTES).contains(&len) {
        // SAFETY: see above: the file is not modified or truncated while mapped (a concurrent
        // unlink does not affect the mapping); the mapping is read-only.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(&file) }?;
        if map.len() as u64 == len {
            return Ok(WalBytes::Mapped(map));
        }
    }
    let mut v = Vec::with_capacity(len.min(MAX_SEGMENT_BYTES) as usize);
    file.take(MAX_SEGMENT_BYTES + 1).read_to_end(&mut v)?;
    Ok(WalBytes::Owned(v))
}

/// Decompresses like [`crate::source::decompress`], but zstd data made of several frames whose
/// sizes are recorded (as [`CompressionSpec::compress`] writes them) is decompressed on several
/// threads, straight into place.
pub fn decompress_fast(kind: Compression, data: &[u8]) -> Result<Vec<u8>, String> {
    if kind == Compression::Zstd {
        if let Some(r) = zstd_frames_parallel(data) {
            return r;
        }
    }
    decompress(kind, data)
}

fn zstd_frames_parallel(data: &[u8]) -> Option<Result<Vec<u8>, String>> {
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
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8).min(jobs.len());
    let jobs = Mutex::new(jobs);
    let error: Mutex<Option<String>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let job = jobs.lock().ok().and_then(|mut j| j.pop());
                let Some((src, dst)) = job else { break };
                let want = dst.len();
                let res = match zstd_safe::decompress(dst, src) {
                    Ok(n) if n == want => None,
                    Ok(n) => Some(format!("a zstd frame holds {n} bytes, its header says {want}")),
                    Err(code) => Some(zstd_safe::get_error_name(code).to_owned()),
                };
                if let Some(e) = res {
                    if let Ok(mut slot) = error.lock() {
                        slot.get_or_insert(e);
                    }
                }
            });
        }
    });
    Some(match error.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(out),
    })
}

/// Reads up to `n` bytes from the start of a WAL file's content, decompressing only as much as
/// needed when the file is compressed (the method is told by the content, not the name).
pub fn read_head(path: &Path, n: usize) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    let mut magic = [0u8; 4];
    let got = read_full(&mut f, &mut magic)?;
    let kind = sniff_compression(&magic[..got]);
    let rest = io::Cursor::new(magic[..got].to_vec()).chain(f);
    let mut out = Vec::with_capacity(n);
    match kind {
        Compression::None => {
            rest.take(n as u64).read_to_end(&mut out)?;
        }
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(rest).take(n as u64).read_to_end(&mut out)?;
        }
        Compression::Lz4 => {
            lz4_flex::frame::FrameDecoder::new(rest).take(n as u64).read_to_end(&mut out)?;
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(rest)?.take(n as u64).read_to_end(&mut out)?;
        }
    }
    Ok(out)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

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
                assert_eq!(sniff_compression(&c), spec.kind, "{spec}");
                let back = decompress(spec.kind, &c).unwrap();
                assert!(back == data, "{spec} threads {threads}: {} bytes back of {}", back.len(), data.len());
                let fast = decompress_fast(spec.kind, &c).unwrap();
                assert!(fast == data, "{spec} threads {threads}: fast path");
                let dir = tempfile::tempdir().unwrap();
                let p = dir.path().join("f");
                std::fs::write(&p, &c).unwrap();
                assert_eq!(read_head(&p, 40).unwrap(), &data[..40]);
            }
        }
    }

    #[test]
    fn parse_specs() {
        for bad in ["", "zip", "gzip:0", "gzip:10", "zstd:23", "zstd:x", "none:1", "lz4:1"] {
            assert!(bad.parse::<CompressionSpec>().is_err(), "{bad}");
        }
        assert_eq!("GZIP".parse::<CompressionSpec>().unwrap().kind, Compression::Gzip);
        assert_eq!("none".parse::<CompressionSpec>().unwrap(), CompressionSpec::NONE);
    }
}
