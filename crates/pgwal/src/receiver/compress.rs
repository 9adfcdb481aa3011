//! `-Z/--compress METHOD[:DETAIL]` as pg_receivewal 15–18 parses it, and the sink of the
//! segment being written: a pre-padded file written in place, or a stream through the one
//! encoder dispatcher ([`crate::storage::codec::Encoder`]).

use std::fmt;
use std::fs::File;
use std::io::{self, Write};

use crate::segment::Compression;
use crate::storage::codec::{Encoder, Encoding};

/// A compression method with its options, as given to `-Z/--compress`.
///
/// ```
/// use pgwal::receiver::CompressSpec;
/// use pgwal::Compression;
/// assert_eq!(CompressSpec::parse("5").unwrap(), CompressSpec::gzip(5));
/// assert_eq!(CompressSpec::parse("0").unwrap().method, Compression::None);
/// assert_eq!(CompressSpec::parse("zstd:level=7,long").unwrap().level, Some(7));
/// assert!(CompressSpec::parse("gzip:workers=2").is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompressSpec {
    /// The method (`none`, `gzip`, `lz4`, `zstd`).
    pub method: Compression,
    /// The level; `None` is the method's default (gzip 6, lz4 fast mode, zstd 1: on WAL it
    /// compresses as well as zstd's own default 3, and faster).
    pub level: Option<i32>,
    /// `workers=N` (zstd only): compression threads; `0` compresses on the writer thread.
    /// `None` is one worker per core.
    pub workers: Option<i32>,
    /// `long` (zstd only): long-distance matching.
    pub long: bool,
}

impl Default for CompressSpec {
    fn default() -> CompressSpec {
        CompressSpec::NONE
    }
}

/// Why [`CompressSpec::parse`] refused a specification; the text is pg_receivewal's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompressSpecError {
    /// The method is not `none`, `gzip`, `lz4` or `zstd`.
    #[error("unrecognized compression algorithm: \"{0}\"")]
    UnknownAlgorithm(String),
    /// An empty detail or option.
    #[error("invalid compression specification: found empty string where a compression option was expected")]
    EmptyOption,
    /// `level` or `workers` without `=N`.
    #[error("invalid compression specification: compression option \"{0}\" requires a value")]
    MissingValue(String),
    /// `level` or `workers` with a value that is not an integer.
    #[error("invalid compression specification: value for compression option \"{0}\" must be an integer")]
    NotAnInteger(String),
    /// `long` with a value that is not a Boolean.
    #[error("invalid compression specification: value for compression option \"{0}\" must be a Boolean value")]
    NotABoolean(String),
    /// An option other than `level`, `workers` and `long`.
    #[error("invalid compression specification: unrecognized compression option: \"{0}\"")]
    UnknownOption(String),
    /// A level for `none`.
    #[error("invalid compression specification: compression algorithm \"{algorithm}\" does not accept a compression level")]
    LevelNotAccepted {
        /// The method.
        algorithm: &'static str,
    },
    /// A level outside the method's range.
    #[error("invalid compression specification: compression algorithm \"{algorithm}\" expects a compression level between {min} and {max} (default at {default})")]
    LevelOutOfRange {
        /// The method.
        algorithm: &'static str,
        /// Its lowest level.
        min: i32,
        /// Its highest level.
        max: i32,
        /// The value that means its default.
        default: i32,
    },
    /// `workers` for a method other than zstd.
    #[error("invalid compression specification: compression algorithm \"{algorithm}\" does not accept a worker count")]
    WorkersNotAccepted {
        /// The method.
        algorithm: &'static str,
    },
    /// A worker count out of range.
    #[error("invalid compression specification: compression algorithm \"{algorithm}\" expects a worker count between 0 and {max}")]
    WorkersOutOfRange {
        /// The method.
        algorithm: &'static str,
        /// The highest count.
        max: i32,
    },
    /// `long` for a method other than zstd.
    #[error("invalid compression specification: compression algorithm \"{algorithm}\" does not support long-distance mode")]
    LongNotSupported {
        /// The method.
        algorithm: &'static str,
    },
}

/// The smallest zstd level (`ZSTD_minCLevel()`).
const ZSTD_MIN_LEVEL: i32 = -(1 << 17);
/// The largest zstd level (`ZSTD_maxCLevel()`).
const ZSTD_MAX_LEVEL: i32 = 22;
/// `ZSTD_CLEVEL_DEFAULT`: what pg_receivewal's validation calls the default (an explicit
/// `zstd:3` is kept as level 3).
const ZSTD_LIBRARY_DEFAULT_LEVEL: i32 = 3;
/// The level used for `-Z zstd` without a level. On WAL, level 1 gives the same archive size
/// as level 3 (and as gzip's default 6) for about two thirds of the CPU.
pub(crate) const ZSTD_DEFAULT_LEVEL: i32 = 1;
/// The minimum match length used with the default level (level 1's own is 6).
const ZSTD_DEFAULT_MIN_MATCH: u32 = 5;
/// The largest worker count zstd accepts (`ZSTDMT_NBWORKERS_MAX` on 64-bit systems).
const ZSTD_MAX_WORKERS: i32 = 256;

impl CompressSpec {
    /// No compression.
    pub const NONE: CompressSpec = CompressSpec {
        method: Compression::None,
        level: None,
        workers: None,
        long: false,
    };

    /// gzip at `level`.
    pub fn gzip(level: i32) -> CompressSpec {
        CompressSpec {
            method: Compression::Gzip,
            level: Some(level),
            ..CompressSpec::NONE
        }
    }

    /// Parses `METHOD[:DETAIL]` with pg_receivewal's rules and messages: a bare integer is a
    /// gzip level (`0` means none); DETAIL is a level or a comma list of `level=N`,
    /// `workers=N` and `long[=BOOL]`.
    pub fn parse(text: &str) -> Result<CompressSpec, CompressSpecError> {
        let (alg, detail) = if let Ok(n) = text.parse::<i64>() {
            if n == 0 {
                ("none", None)
            } else {
                ("gzip", Some(text))
            }
        } else {
            match text.split_once(':') {
                Some((a, d)) => (a, Some(d)),
                None => (text, None),
            }
        };
        let method = match alg {
            "none" => Compression::None,
            "gzip" => Compression::Gzip,
            "lz4" => Compression::Lz4,
            "zstd" => Compression::Zstd,
            _ => return Err(CompressSpecError::UnknownAlgorithm(alg.to_owned())),
        };
        let mut spec = CompressSpec {
            method,
            ..CompressSpec::NONE
        };
        if let Some(d) = detail {
            if let Ok(level) = d.parse::<i32>() {
                spec.level = Some(level);
            } else {
                if d.is_empty() {
                    return Err(CompressSpecError::EmptyOption);
                }
                for item in d.split(',') {
                    let (key, value) = match item.split_once('=') {
                        Some((k, v)) => (k, Some(v)),
                        None => (item, None),
                    };
                    if key.is_empty() {
                        return Err(CompressSpecError::EmptyOption);
                    }
                    let int = |v: Option<&str>| -> Result<i32, CompressSpecError> {
                        let v = v.ok_or_else(|| CompressSpecError::MissingValue(key.to_owned()))?;
                        v.parse::<i32>()
                            .map_err(|_| CompressSpecError::NotAnInteger(key.to_owned()))
                    };
                    match key {
                        "level" => spec.level = Some(int(value)?),
                        "workers" => spec.workers = Some(int(value)?),
                        "long" => {
                            spec.long = match value.map(str::to_ascii_lowercase).as_deref() {
                                None | Some("yes" | "on" | "true" | "1") => true,
                                Some("no" | "off" | "false" | "0") => false,
                                _ => return Err(CompressSpecError::NotABoolean(key.to_owned())),
                            }
                        }
                        _ => return Err(CompressSpecError::UnknownOption(key.to_owned())),
                    }
                }
            }
        }
        // validate_compress_specification()
        let algorithm = method_name(method);
        if let Some(level) = spec.level {
            let (min, max, default) = match method {
                Compression::None => {
                    if level != 0 {
                        return Err(CompressSpecError::LevelNotAccepted { algorithm });
                    }
                    (0, 0, 0)
                }
                Compression::Gzip => (1, 9, -1),
                Compression::Lz4 => (1, 12, 0),
                Compression::Zstd => (ZSTD_MIN_LEVEL, ZSTD_MAX_LEVEL, ZSTD_LIBRARY_DEFAULT_LEVEL),
            };
            if level != default && !(min..=max).contains(&level) {
                return Err(CompressSpecError::LevelOutOfRange {
                    algorithm,
                    min,
                    max,
                    default,
                });
            }
            // gzip's -1 and lz4's 0 mean "the default"; every zstd level is a level.
            if (level == default && method != Compression::Zstd) || method == Compression::None {
                spec.level = None;
            }
        }
        if spec.workers.is_some() && method != Compression::Zstd {
            return Err(CompressSpecError::WorkersNotAccepted { algorithm });
        }
        if let Some(w) = spec.workers {
            if !(0..=ZSTD_MAX_WORKERS).contains(&w) {
                return Err(CompressSpecError::WorkersOutOfRange {
                    algorithm,
                    max: ZSTD_MAX_WORKERS,
                });
            }
        }
        if spec.long && method != Compression::Zstd {
            return Err(CompressSpecError::LongNotSupported { algorithm });
        }
        Ok(spec)
    }
}

fn method_name(c: Compression) -> &'static str {
    match c {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    }
}

impl fmt::Display for CompressSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(method_name(self.method))?;
        if let Some(l) = self.level {
            write!(f, ":{l}")?;
        }
        Ok(())
    }
}

/// A file that counts the bytes written to it.
#[derive(Debug)]
pub(crate) struct CountingFile {
    pub(crate) file: File,
    pub(crate) bytes: u64,
}

impl Write for CountingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The number of zstd worker threads for `spec`: `workers=N` if given, else one per core.
pub(crate) fn zstd_workers(spec: &CompressSpec) -> u32 {
    static CORES: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    match spec.workers {
        Some(w) => w.clamp(0, ZSTD_MAX_WORKERS) as u32,
        None => *CORES.get_or_init(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
                .min(ZSTD_MAX_WORKERS as u32)
        }),
    }
}

/// Where the bytes of the segment being written go.
#[derive(Debug)]
pub(crate) enum Sink {
    /// Uncompressed, pre-padded: written in place with `pwrite`.
    Plain(File),
    /// A compressed stream, appended to.
    Compressed(Box<Encoder<CountingFile>>),
}

impl CompressSpec {
    /// The encoder settings for this specification: gzip 6, zstd 1 with 5-byte matches unless
    /// a level is given, zstd's workers and long-distance mode.
    pub(crate) fn encoding(&self) -> Encoding {
        let level = match self.method {
            Compression::Gzip => self.level.map_or(6, |l| l.clamp(0, 9)),
            Compression::Zstd => self.level.unwrap_or(ZSTD_DEFAULT_LEVEL),
            // lz4_flex has one (fast) level; the level is accepted and ignored.
            _ => 0,
        };
        let mut enc = Encoding::new(self.method, level);
        if self.method == Compression::Zstd {
            if self.level.is_none() {
                // Level 1 with 5-byte instead of 6-byte matches: about 1.5% smaller on WAL
                // for the same speed (see the README's measurements).
                enc.zstd_min_match = Some(ZSTD_DEFAULT_MIN_MATCH);
            }
            enc.zstd_long = self.long;
            // With workers the writer thread only hands input over; jobs compress on zstd's
            // worker threads while the next WAL is validated.
            enc.zstd_workers = zstd_workers(self);
        }
        enc
    }
}

impl Sink {
    /// A compressing sink writing a new stream to `file` (plain for no compression).
    pub(crate) fn compressed(spec: &CompressSpec, file: File) -> io::Result<Sink> {
        if spec.method == Compression::None {
            return Ok(Sink::Plain(file));
        }
        let out = CountingFile { file, bytes: 0 };
        Ok(Sink::Compressed(Box::new(Encoder::new(
            &spec.encoding(),
            out,
        )?)))
    }

    /// Writes `data` at uncompressed offset `off` (compressed sinks only append).
    pub(crate) fn write(&mut self, off: u64, data: &[u8]) -> io::Result<()> {
        match self {
            Sink::Plain(f) => std::os::unix::fs::FileExt::write_all_at(f, data, off),
            Sink::Compressed(e) => e.write_all(data),
        }
    }

    /// Writes `bufs`, back to back, at uncompressed offset `off` (one system call for a plain
    /// file; compressed sinks only append).
    pub(crate) fn write_vectored(&mut self, off: u64, bufs: &[&[u8]]) -> io::Result<()> {
        match self {
            Sink::Plain(f) => crate::storage::file::write_all_vectored_at(f, off, bufs),
            Sink::Compressed(e) => {
                for b in bufs {
                    e.write_all(b)?;
                }
                Ok(())
            }
        }
    }

    /// Pushes everything written so far to the file (a sync flush for compressed streams,
    /// so a reader of the file can decompress all of it).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(_) => Ok(()),
            Sink::Compressed(e) => e.flush(),
        }
    }

    pub(crate) fn file(&self) -> &File {
        match self {
            Sink::Plain(f) => f,
            Sink::Compressed(e) => &e.get_ref().file,
        }
    }

    /// Bytes written to the file by a compressing sink (0 for plain files).
    pub(crate) fn compressed_bytes(&self) -> u64 {
        match self {
            Sink::Plain(_) => 0,
            Sink::Compressed(e) => e.get_ref().bytes,
        }
    }

    /// Ends the compressed stream (trailer, end mark) and returns the file.
    pub(crate) fn finish(self) -> io::Result<File> {
        Ok(match self {
            Sink::Plain(f) => f,
            Sink::Compressed(e) => (*e).finish()?.file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::codec::decompress_prefix;

    #[test]
    fn parse_like_pg_receivewal() {
        let p = |s: &str| CompressSpec::parse(s);
        let e = |s: &str| CompressSpec::parse(s).unwrap_err().to_string();
        assert_eq!(p("0").unwrap(), CompressSpec::NONE);
        assert_eq!(p("none").unwrap(), CompressSpec::NONE);
        assert_eq!(p("9").unwrap(), CompressSpec::gzip(9));
        assert_eq!(p("gzip:3").unwrap(), CompressSpec::gzip(3));
        assert_eq!(p("gzip").unwrap().level, None);
        assert_eq!(p("lz4").unwrap().method, Compression::Lz4);
        assert_eq!(p("lz4:level=12").unwrap().level, Some(12));
        let z = p("zstd:level=-5,workers=2,long=on").unwrap();
        assert_eq!((z.level, z.workers, z.long), (Some(-5), Some(2), true));
        assert_eq!(e("gzip:workers=2"),
            "invalid compression specification: compression algorithm \"gzip\" does not accept a worker count");
        assert_eq!(e("none:1"),
            "invalid compression specification: compression algorithm \"none\" does not accept a compression level");
        assert_eq!(e("gzip:10"),
            "invalid compression specification: compression algorithm \"gzip\" expects a compression level between 1 and 9 (default at -1)");
        assert_eq!(
            e("brotli"),
            "unrecognized compression algorithm: \"brotli\""
        );
        assert_eq!(e("GZIP"), "unrecognized compression algorithm: \"GZIP\"");
        assert_eq!(e("zstd:"),
            "invalid compression specification: found empty string where a compression option was expected");
        assert_eq!(
            e("zstd:speed=3"),
            "invalid compression specification: unrecognized compression option: \"speed\""
        );
        assert_eq!(
            e("zstd:level"),
            "invalid compression specification: compression option \"level\" requires a value"
        );
        assert_eq!(e("zstd:level=x"),
            "invalid compression specification: value for compression option \"level\" must be an integer");
        assert_eq!(
            p("lz4:long"),
            Err(CompressSpecError::LongNotSupported { algorithm: "lz4" })
        );
        // An explicit zstd level is kept, even zstd's own default.
        assert_eq!(p("zstd:3").unwrap().level, Some(3));
        assert_eq!(p("zstd").unwrap().level, None);
        assert_eq!(p("zstd:workers=0").unwrap().workers, Some(0));
        assert_eq!(e("zstd:workers=-1"),
            "invalid compression specification: compression algorithm \"zstd\" expects a worker count between 0 and 256");
    }

    #[test]
    fn zstd_workers_default_to_the_cores() {
        let mut spec = CompressSpec::parse("zstd").unwrap();
        assert!(zstd_workers(&spec) >= 1);
        spec.workers = Some(0);
        assert_eq!(zstd_workers(&spec), 0);
        spec.workers = Some(3);
        assert_eq!(zstd_workers(&spec), 3);
    }

    #[test]
    fn sinks_flush_decodable_prefixes() {
        let data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let specs = [
            CompressSpec::parse("gzip").unwrap(),
            CompressSpec::parse("lz4").unwrap(),
            CompressSpec::parse("zstd").unwrap(),
            CompressSpec::parse("zstd:workers=0").unwrap(),
            CompressSpec::parse("zstd:level=3,workers=2,long").unwrap(),
        ];
        for spec in specs {
            let method = spec.method;
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            let mut sink = Sink::compressed(&spec, File::create(&path).unwrap()).unwrap();
            sink.write(0, &data[..500_000]).unwrap();
            sink.flush().unwrap();
            // A crash now: the file holds a cut stream that decodes to what was flushed.
            let cut = std::fs::read(&path).unwrap();
            let (prefix, complete) = decompress_prefix(method, &cut, u64::MAX);
            assert!(!complete || prefix.len() == 500_000, "{method:?}");
            assert_eq!(prefix, &data[..500_000], "{method:?}");
            sink.write(500_000, &data[500_000..]).unwrap();
            assert!(sink.compressed_bytes() > 0);
            sink.finish().unwrap();
            let all = std::fs::read(&path).unwrap();
            let (out, complete) = decompress_prefix(method, &all, u64::MAX);
            assert!(complete, "{method:?}");
            assert_eq!(out, data, "{method:?}");
        }
    }
}
