//! Compression of WAL files: the one place that maps a [`Compression`] method to its encoder
//! and decoder (gzip members, LZ4 frames, zstd frames), tells a file's method from its first
//! bytes, and decompresses whole files, the prefix of a stream cut short by a crash, or just
//! the start of a file.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use crate::segment::Compression;

/// The largest segment PostgreSQL allows (1 GB): decompression never produces more.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;

/// Tells the compression of a file from its first bytes (gzip, zstd or LZ4 frame magic).
pub fn sniff_compression(head: &[u8]) -> Compression {
    match head {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
        [0x04, 0x22, 0x4d, 0x18, ..] => Compression::Lz4,
        _ => Compression::None,
    }
}

/// Why compressed WAL could not be decompressed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecompressError {
    /// The compressed stream is damaged or cut short (the decoder's error).
    #[error(transparent)]
    Stream(io::Error),
    /// A frame or block fails its checksum or layout checks.
    #[error("{0}")]
    Damaged(String),
    /// More than [`MAX_SEGMENT_BYTES`] of output.
    #[error("decompressed data is larger than any WAL segment")]
    TooLarge,
    /// zstd data, and this build has no zstd (the `zstd` feature).
    #[error("zstd-compressed file, and this build of pgwal has no zstd (the \"zstd\" feature)")]
    Unsupported(Compression),
}

/// The decoder dispatcher: a reader of the decompressed bytes of `input`, compressed with
/// `kind` (`Compression::None` reads `input` as it is).
pub fn decoder<'a>(
    kind: Compression,
    input: impl Read + 'a,
) -> Result<Box<dyn Read + 'a>, DecompressError> {
    Ok(match kind {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(input)),
        #[cfg(feature = "zstd")]
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(input).map_err(DecompressError::Stream)?)
        }
        #[cfg(not(feature = "zstd"))]
        Compression::Zstd => return Err(DecompressError::Unsupported(kind)),
    })
}

/// Decompresses `data` (at most [`MAX_SEGMENT_BYTES`] of output; more is an error).
pub fn decompress(kind: Compression, data: &[u8]) -> Result<Vec<u8>, DecompressError> {
    if kind == Compression::None {
        return Ok(data.to_vec());
    }
    let mut out = Vec::new();
    decoder(kind, data)?
        .take(MAX_SEGMENT_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(DecompressError::Stream)?;
    if out.len() as u64 > MAX_SEGMENT_BYTES {
        return Err(DecompressError::TooLarge);
    }
    Ok(out)
}

/// Decompresses as much of `data` as possible: `(bytes, true)` for a complete, valid stream;
/// `(prefix, false)` when the stream is cut short or damaged (a crash while it was written),
/// with everything that decoded before the damage. At most `limit` bytes are produced.
pub fn decompress_prefix(kind: Compression, data: &[u8], limit: u64) -> (Vec<u8>, bool) {
    if kind == Compression::None {
        let n = (data.len() as u64).min(limit) as usize;
        return (data[..n].to_vec(), true);
    }
    let Ok(mut r) = decoder(kind, data) else {
        return (Vec::new(), false);
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() as u64 > limit {
                    out.truncate(limit as usize);
                    return (out, false);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return (out, false),
        }
    }
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
    decoder(kind, rest)
        .map_err(|e| match e {
            DecompressError::Stream(e) => e,
            other => io::Error::other(other),
        })?
        .take(n as u64)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// Reads until `buf` is full or the input ends.
pub(crate) fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
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

/// How an [`Encoder`] compresses: the method, its level and the format options pgwal uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Encoding {
    /// The method.
    pub method: Compression,
    /// The level (gzip 0–9, zstd's levels; LZ4 has one level here).
    pub level: i32,
    /// LZ4: one frame of independent 4 MB blocks with block checksums (which can be decoded in
    /// parallel and joined), rather than the library's default frame.
    pub lz4_independent_blocks: bool,
    /// zstd: a content checksum in each frame.
    pub zstd_checksum: bool,
    /// zstd: the input's size, recorded in the frame header.
    pub zstd_pledged_size: Option<u64>,
    /// zstd: the minimum match length, if not the level's.
    pub zstd_min_match: Option<u32>,
    /// zstd: long-distance matching.
    pub zstd_long: bool,
    /// zstd: compression threads (0: on the calling thread).
    pub zstd_workers: u32,
}

impl Encoding {
    /// `method` at `level`, with the libraries' default format options.
    pub fn new(method: Compression, level: i32) -> Encoding {
        Encoding {
            method,
            level,
            lz4_independent_blocks: false,
            zstd_checksum: false,
            zstd_pledged_size: None,
            zstd_min_match: None,
            zstd_long: false,
            zstd_workers: 0,
        }
    }
}

/// The encoder dispatcher: a streaming compressor writing to `W`.
pub enum Encoder<W: Write> {
    /// No compression: bytes go to `W` as they are.
    Plain(W),
    /// A gzip member.
    Gzip(flate2::write::GzEncoder<W>),
    /// An LZ4 frame.
    Lz4(lz4_flex::frame::FrameEncoder<W>),
    /// A zstd frame.
    #[cfg(feature = "zstd")]
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> std::fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoder::Plain(_) => "Encoder::Plain",
            Encoder::Gzip(_) => "Encoder::Gzip",
            Encoder::Lz4(_) => "Encoder::Lz4",
            #[cfg(feature = "zstd")]
            Encoder::Zstd(_) => "Encoder::Zstd",
        })
    }
}

impl<W: Write> Encoder<W> {
    /// A new compressed stream written to `out`.
    pub fn new(enc: &Encoding, out: W) -> io::Result<Encoder<W>> {
        Ok(match enc.method {
            Compression::None => Encoder::Plain(out),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(enc.level.clamp(0, 9) as u32),
            )),
            Compression::Lz4 if enc.lz4_independent_blocks => {
                let info = lz4_flex::frame::FrameInfo::new()
                    .block_size(lz4_flex::frame::BlockSize::Max4MB)
                    .block_mode(lz4_flex::frame::BlockMode::Independent)
                    .block_checksums(true)
                    .content_checksum(false);
                Encoder::Lz4(lz4_flex::frame::FrameEncoder::with_frame_info(info, out))
            }
            Compression::Lz4 => Encoder::Lz4(lz4_flex::frame::FrameEncoder::new(out)),
            #[cfg(feature = "zstd")]
            Compression::Zstd => {
                let mut e = zstd::stream::write::Encoder::new(out, enc.level)?;
                if enc.zstd_checksum {
                    e.include_checksum(true)?;
                }
                if let Some(n) = enc.zstd_pledged_size {
                    e.set_pledged_src_size(Some(n))?;
                }
                if let Some(m) = enc.zstd_min_match {
                    e.set_parameter(zstd::zstd_safe::CParameter::MinMatch(m))?;
                }
                if enc.zstd_long {
                    e.long_distance_matching(true)?;
                }
                if enc.zstd_workers > 0 {
                    e.multithread(enc.zstd_workers)?;
                }
                Encoder::Zstd(e)
            }
            #[cfg(not(feature = "zstd"))]
            Compression::Zstd => {
                return Err(io::Error::other(DecompressError::Unsupported(
                    Compression::Zstd,
                )))
            }
        })
    }

    /// The output.
    pub fn get_ref(&self) -> &W {
        match self {
            Encoder::Plain(w) => w,
            Encoder::Gzip(e) => e.get_ref(),
            Encoder::Lz4(e) => e.get_ref(),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.get_ref(),
        }
    }

    /// Ends the stream (trailer, end mark) and returns the output.
    pub fn finish(self) -> io::Result<W> {
        Ok(match self {
            Encoder::Plain(w) => w,
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Lz4(e) => e.finish().map_err(io::Error::other)?,
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.finish()?,
        })
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Lz4(e) => e.write(buf),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.write_all(buf),
            Encoder::Gzip(e) => e.write_all(buf),
            Encoder::Lz4(e) => e.write_all(buf),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.write_all(buf),
        }
    }

    /// Pushes everything written so far to the output (a sync flush for compressed streams,
    /// so a reader of the output can decompress all of it).
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(e) => e.flush(),
            Encoder::Lz4(e) => e.flush(),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

/// Compresses `data` whole with `enc` (one gzip member, LZ4 frame or zstd frame).
pub fn compress(enc: &Encoding, data: &[u8]) -> io::Result<Vec<u8>> {
    let mut e = Encoder::new(enc, Vec::with_capacity(data.len() / 4 + 1024))?;
    e.write_all(data)?;
    e.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_round_trips_and_is_sniffed() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for method in [
            Compression::None,
            Compression::Gzip,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut enc = Encoding::new(method, 1);
            enc.lz4_independent_blocks = true;
            let c = compress(&enc, &data).unwrap();
            assert_eq!(sniff_compression(&c), method);
            assert_eq!(decompress(method, &c).unwrap(), data, "{method:?}");
            let (all, complete) = decompress_prefix(method, &c, u64::MAX);
            assert!(complete && all == data, "{method:?}");
            // A stream cut short gives the prefix that decoded, and says so.
            if method != Compression::None {
                let (cut, complete) = decompress_prefix(method, &c[..c.len() - 9], u64::MAX);
                assert!(!complete, "{method:?}");
                assert_eq!(cut, data[..cut.len()], "{method:?}");
                assert!(decompress(method, &c[..c.len() - 9]).is_err(), "{method:?}");
            }
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("f");
            std::fs::write(&p, &c).unwrap();
            assert_eq!(read_head(&p, 40).unwrap(), &data[..40]);
        }
    }
}
