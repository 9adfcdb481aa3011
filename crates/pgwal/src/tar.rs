//! WAL inside a tar archive, as `pg_basebackup -Ft` writes it (`base.tar` with `pg_wal/…`,
//! `pg_wal.tar`), plain or compressed with gzip, LZ4 (frame) or zstd: pg_waldump 19's `-p`
//! input, here for WAL of every major.
//!
//! [`extract_wal`] streams the archive once and writes each WAL segment and history file member
//! into a directory, which then reads like any other ([`crate::source::WalDirectory`]).
//! Members that are not WAL are skipped without being kept. Only the ustar and GNU formats are
//! read; pax extended headers are refused, as pg_waldump refuses them.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::segment::{Compression, WalFileName};

/// Size of a tar block (header or data).
const BLOCK: usize = 512;
/// Piece size for copying a member out (a WAL segment is usually 16 MB).
const COPY_BUF: usize = 1 << 20;

/// Errors reading WAL from a tar archive. Each names the archive; messages follow
/// pg_waldump 19's wording where it has one.
#[derive(Debug, thiserror::Error)]
pub enum TarError {
    /// Opening, reading or decompressing the archive failed.
    #[error("could not read archive \"{}\": {source}", archive.display())]
    Read {
        /// The archive.
        archive: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Writing an extracted member failed.
    #[error("could not write \"{}\": {source}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A header block is not a tar header (bad checksum or no ustar magic).
    #[error("input file does not appear to be a valid tar archive: \"{}\" (header at offset {offset})", archive.display())]
    NotTar {
        /// The archive.
        archive: PathBuf,
        /// Offset of the bad header in the (decompressed) archive.
        offset: u64,
    },
    /// A pax extended header (type `x` or `g`).
    #[error("pax extensions to tar format are not supported: \"{}\" (header at offset {offset})", archive.display())]
    Pax {
        /// The archive.
        archive: PathBuf,
        /// Offset of the header in the (decompressed) archive.
        offset: u64,
    },
    /// A member has an empty name.
    #[error("tar member has empty name in \"{}\" (header at offset {offset})", archive.display())]
    EmptyName {
        /// The archive.
        archive: PathBuf,
        /// Offset of the header in the (decompressed) archive.
        offset: u64,
    },
    /// A member's name is absolute or climbs out with `..`.
    #[error("tar member has unsafe path name: \"{name}\" in \"{}\"", archive.display())]
    UnsafeName {
        /// The archive.
        archive: PathBuf,
        /// The member's name.
        name: String,
    },
    /// The archive ends inside a member.
    #[error("unexpected end of archive \"{}\" while reading \"{name}\": read {read} of {size} bytes", archive.display())]
    Truncated {
        /// The archive.
        archive: PathBuf,
        /// The member being read.
        name: String,
        /// Bytes of it read.
        read: u64,
        /// Its size according to its header.
        size: u64,
    },
    /// The archive holds no WAL segment.
    #[error("could not find WAL in archive \"{}\"", archive.display())]
    NoWal {
        /// The archive.
        archive: PathBuf,
    },
}

/// The compression of a tar archive named `path`, if its name says it is one: `.tar`,
/// `.tar.gz` (or `.tgz`), `.tar.lz4`, `.tar.zst`.
///
/// ```
/// use pgwal::segment::Compression;
/// use pgwal::tar::archive_kind;
/// assert_eq!(archive_kind("backup/base.tar".as_ref()), Some(Compression::None));
/// assert_eq!(archive_kind("pg_wal.tar.zst".as_ref()), Some(Compression::Zstd));
/// assert_eq!(archive_kind("pg_wal".as_ref()), None);
/// ```
pub fn archive_kind(path: &Path) -> Option<Compression> {
    let name = path.file_name()?.to_str()?;
    [
        (".tar", Compression::None),
        (".tar.gz", Compression::Gzip),
        (".tgz", Compression::Gzip),
        (".tar.lz4", Compression::Lz4),
        (".tar.zst", Compression::Zstd),
    ]
    .into_iter()
    .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix))
    .map(|(_, c)| c)
}

/// What [`extract_wal`] wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// WAL segment files written (file names).
    pub segments: Vec<String>,
    /// Timeline history files written.
    pub histories: Vec<String>,
    /// Members skipped because a file of the same name was already extracted (pg_waldump:
    /// "ignoring duplicate WAL").
    pub duplicates: Vec<String>,
}

/// Streams `archive` (compressed as `kind`) and writes every member whose file name is a WAL
/// segment (plain, compressed or `.partial`) or a timeline history file into `into`, under that
/// file name. The first of several members with one name wins.
pub fn extract_wal(archive: &Path, kind: Compression, into: &Path) -> Result<Extracted, TarError> {
    let read_err = |source| TarError::Read {
        archive: archive.to_path_buf(),
        source,
    };
    let file = BufReader::with_capacity(1 << 20, File::open(archive).map_err(read_err)?);
    let reader: Box<dyn Read> = match kind {
        Compression::None => Box::new(file),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
        Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(file)),
        #[cfg(feature = "zstd")]
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(file).map_err(read_err)?)
        }
        #[cfg(not(feature = "zstd"))]
        Compression::Zstd => return Err(read_err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "zstd-compressed archive, and this build of pgwal has no zstd (the \"zstd\" feature)",
        ))),
    };
    extract_from(reader, archive, into)
}

/// [`extract_wal`] over an already decompressed stream; `archive` only names it in errors.
pub fn extract_from(
    mut reader: impl Read,
    archive: &Path,
    into: &Path,
) -> Result<Extracted, TarError> {
    let archive_buf = || archive.to_path_buf();
    let mut out = Extracted::default();
    let mut header = [0u8; BLOCK];
    let mut offset = 0u64;
    // A GNU long name (type `L`) applies to the next header.
    let mut long_name: Option<String> = None;
    loop {
        let got = read_full(&mut reader, &mut header).map_err(|source| TarError::Read {
            archive: archive_buf(),
            source,
        })?;
        if got == 0 {
            break; // no end-of-archive blocks: tolerated, as GNU tar does
        }
        if got < BLOCK {
            return Err(TarError::NotTar {
                archive: archive_buf(),
                offset,
            });
        }
        if header.iter().all(|&b| b == 0) {
            break; // end-of-archive marker
        }
        if !checksum_ok(&header) || &header[257..262] != b"ustar" {
            return Err(TarError::NotTar {
                archive: archive_buf(),
                offset,
            });
        }
        let size = octal(&header[124..136]).ok_or(TarError::NotTar {
            archive: archive_buf(),
            offset,
        })?;
        let typeflag = header[156];
        if matches!(typeflag, b'x' | b'g') {
            return Err(TarError::Pax {
                archive: archive_buf(),
                offset,
            });
        }
        let name = match long_name.take() {
            Some(n) => n,
            None => header_name(&header),
        };
        let header_offset = offset;
        offset += BLOCK as u64;
        let padded = size.div_ceil(BLOCK as u64) * BLOCK as u64;
        if typeflag == b'L' {
            let mut buf = Vec::new();
            copy_member(
                &mut reader,
                (&mut buf, None),
                size,
                padded,
                archive,
                "././@LongLink",
            )?;
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            long_name = Some(String::from_utf8_lossy(&buf[..end]).into_owned());
            offset += padded;
            continue;
        }
        if name.is_empty() {
            return Err(TarError::EmptyName {
                archive: archive_buf(),
                offset: header_offset,
            });
        }
        if name.starts_with('/') || name.split('/').any(|part| part == "..") {
            return Err(TarError::UnsafeName {
                archive: archive_buf(),
                name,
            });
        }
        let base = name.rsplit('/').next().unwrap_or(&name).to_string();
        let regular = matches!(typeflag, b'0' | 0);
        let wal = regular
            .then(|| WalFileName::parse(&base))
            .flatten()
            .filter(|n| !matches!(n, WalFileName::Backup { .. }));
        match wal {
            Some(kind) => {
                let dest = into.join(&base);
                if dest.exists() {
                    out.duplicates.push(base);
                    copy_member(
                        &mut reader,
                        (&mut io::sink(), None),
                        size,
                        padded,
                        archive,
                        &name,
                    )?;
                } else {
                    let mut f = File::create(&dest).map_err(|source| TarError::Write {
                        path: dest.clone(),
                        source,
                    })?;
                    copy_member(
                        &mut reader,
                        (&mut f, Some(&dest)),
                        size,
                        padded,
                        archive,
                        &name,
                    )?;
                    if matches!(kind, WalFileName::History { .. }) {
                        out.histories.push(base);
                    } else {
                        out.segments.push(base);
                    }
                }
            }
            None => copy_member(
                &mut reader,
                (&mut io::sink(), None),
                size,
                padded,
                archive,
                &name,
            )?,
        }
        offset += padded;
    }
    if out.segments.is_empty() {
        return Err(TarError::NoWal {
            archive: archive_buf(),
        });
    }
    Ok(out)
}

/// Copies a member's `size` bytes to `to` (the file `dest`, if it is one) and skips its padding
/// up to `padded`.
fn copy_member(
    reader: &mut impl Read,
    (to, dest): (&mut impl Write, Option<&Path>),
    size: u64,
    padded: u64,
    archive: &Path,
    name: &str,
) -> Result<(), TarError> {
    // Large pieces: `io::copy`'s 8 kB buffer costs a write call per 8 kB of segment.
    let mut buf = vec![0u8; COPY_BUF.min(usize::try_from(size).unwrap_or(COPY_BUF))];
    let mut copied = 0u64;
    while copied < size {
        let want = buf
            .len()
            .min(usize::try_from(size - copied).unwrap_or(buf.len()));
        let n = read_full(reader, &mut buf[..want]).map_err(|source| TarError::Read {
            archive: archive.to_path_buf(),
            source,
        })?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n]).map_err(|source| TarError::Write {
            path: dest.map_or_else(|| PathBuf::from(name), Path::to_path_buf),
            source,
        })?;
        copied += n as u64;
    }
    if copied < size {
        return Err(TarError::Truncated {
            archive: archive.to_path_buf(),
            name: name.to_string(),
            read: copied,
            size,
        });
    }
    let pad = padded - size;
    let skipped =
        io::copy(&mut reader.take(pad), &mut io::sink()).map_err(|source| TarError::Read {
            archive: archive.to_path_buf(),
            source,
        })?;
    if skipped < pad {
        return Err(TarError::Truncated {
            archive: archive.to_path_buf(),
            name: name.to_string(),
            read: size,
            size: padded,
        });
    }
    Ok(())
}

/// Reads until `buf` is full or the stream ends; returns how much was read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The header's checksum: the sum of its bytes with the checksum field taken as spaces.
fn checksum_ok(h: &[u8; BLOCK]) -> bool {
    let Some(want) = octal(&h[148..156]) else {
        return false;
    };
    let sum: u64 = h
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                u64::from(b)
            }
        })
        .sum();
    sum == want
}

/// An octal number field (NUL- or space-terminated), or GNU base-256 when the top bit is set.
fn octal(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        return field[1..]
            .iter()
            .try_fold(u64::from(field[0] & 0x7F), |acc, &b| {
                acc.checked_mul(256)?.checked_add(u64::from(b))
            });
    }
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c: char| c == '\0' || c == ' ');
    if digits.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(digits, 8).ok()
}

/// The member name: ustar `prefix/name`, each field NUL-terminated.
fn header_name(h: &[u8; BLOCK]) -> String {
    let field = |b: &[u8]| {
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        String::from_utf8_lossy(&b[..end]).into_owned()
    };
    let name = field(&h[0..100]);
    let prefix = if &h[257..263] == b"ustar\0" {
        field(&h[345..500])
    } else {
        String::new()
    };
    if prefix.is_empty() {
        name
    } else {
        format!("{prefix}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ustar header for a regular file `name` of `size` bytes.
    fn header(name: &str, size: usize, typeflag: u8) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[156] = typeflag;
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].fill(b' ');
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    fn tar(members: &[(&str, &[u8], u8)]) -> Vec<u8> {
        let mut t = Vec::new();
        for (name, data, flag) in members {
            t.extend_from_slice(&header(name, data.len(), *flag));
            t.extend_from_slice(data);
            t.resize(t.len().div_ceil(BLOCK) * BLOCK, 0);
        }
        t.extend_from_slice(&[0u8; 2 * BLOCK]);
        t
    }

    #[test]
    fn keeps_wal_members_only_and_the_first_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let t = tar(&[
            ("PG_VERSION", b"19\n", b'0'),
            ("pg_wal/000000010000000000000001", b"first", b'0'),
            (
                "pg_wal/00000002.history",
                b"1\t0/3000000\tno recovery target specified\n",
                b'0',
            ),
            ("other/000000010000000000000001", b"second", b'0'),
            ("pg_wal/archive_status", b"", b'5'),
        ]);
        let got = extract_from(&t[..], "x.tar".as_ref(), dir.path()).unwrap();
        assert_eq!(got.segments, ["000000010000000000000001"]);
        assert_eq!(got.histories, ["00000002.history"]);
        assert_eq!(got.duplicates, ["000000010000000000000001"]);
        let data = std::fs::read(dir.path().join("000000010000000000000001")).unwrap();
        assert_eq!(data, b"first");
        assert!(!dir.path().join("PG_VERSION").exists());
    }

    #[test]
    fn errors_name_the_archive_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let ex = |t: &[u8]| {
            extract_from(t, "a.tar".as_ref(), dir.path())
                .unwrap_err()
                .to_string()
        };
        let msg = ex(&tar(&[("PG_VERSION", b"19\n", b'0')]));
        assert_eq!(msg, "could not find WAL in archive \"a.tar\"");
        let msg = ex(&tar(&[("../000000010000000000000001", b"x", b'0')]));
        assert!(
            msg.contains("unsafe path name: \"../000000010000000000000001\""),
            "{msg}"
        );
        let msg = ex(&tar(&[("pax", b"", b'x')]));
        assert!(
            msg.starts_with("pax extensions to tar format are not supported"),
            "{msg}"
        );
        let msg = ex(&[7u8; 1024]);
        assert!(
            msg.starts_with("input file does not appear to be a valid tar archive"),
            "{msg}"
        );
        let mut cut = tar(&[("000000010000000000000002", &[1u8; 2000], b'0')]);
        cut.truncate(BLOCK + 1000);
        let msg = ex(&cut);
        assert!(
            msg.contains("while reading \"000000010000000000000002\": read 1000 of 2000 bytes"),
            "{msg}"
        );
    }
}
