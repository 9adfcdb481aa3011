//! WAL inside a tar archive, as `pg_basebackup -Ft` writes it (`base.tar` with `pg_wal/…`,
//! `pg_wal.tar`), plain or compressed with gzip, LZ4 (frame) or zstd: pg_waldump 19's `-p`
//! input, here for WAL of every major.
//!
//! This module reads the tar format only; nothing is written anywhere. An uncompressed archive
//! is held in memory (a mapping) and [`index`] finds where each WAL member's bytes lie in it, so
//! that they are read in place. A compressed one is decompressed as a stream and
//! [`MemberStream`] hands over each WAL member's bytes in archive order.
//! [`crate::source::TarWal`] builds WAL reading on the two.
//!
//! A WAL member is a regular file at the top of the archive or under `pg_wal/` (as pg_waldump
//! 19 takes them; members elsewhere are skipped) whose file name is a WAL segment (plain,
//! compressed or `.partial`) or a timeline history file. Of several members with one file name
//! the first counts; the others are reported as duplicates. Only the ustar and GNU formats are
//! read; pax extended headers are refused, as pg_waldump refuses them.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::segment::{Compression, WalFileName};

/// Size of a tar block (header or data).
const BLOCK: usize = 512;
/// The largest WAL member read: a segment is at most 1 GB.
const MAX_MEMBER: u64 = 1 << 30;
/// The longest GNU long name accepted.
const MAX_LONG_NAME: u64 = 64 << 10;

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
    /// A member named as WAL is larger than any WAL file (or a long name is too long).
    #[error("tar member \"{name}\" in \"{}\" is too large ({size} bytes) to be WAL", archive.display())]
    TooLarge {
        /// The archive.
        archive: PathBuf,
        /// The member's path in the archive.
        name: String,
        /// Its size according to its header.
        size: u64,
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

/// A WAL member of an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalMember {
    /// The member's path in the archive, as its header gives it.
    pub path: String,
    /// Its file name: a WAL segment (plain, compressed or `.partial`) or a history file.
    pub name: String,
    /// Where its bytes begin in the (decompressed) archive.
    pub offset: u64,
    /// How many bytes it has.
    pub size: u64,
}

/// What a header block announces.
enum Entry {
    /// The end-of-archive marker (a zero block).
    End,
    /// A GNU long name of `size` bytes for the next header.
    LongName { size: u64 },
    /// A member of `size` bytes (padded to whole blocks) named `path`; `regular` for a file.
    Member {
        path: String,
        size: u64,
        regular: bool,
    },
}

/// Reads the header block `h` at `offset` of `archive`.
fn parse_header(h: &[u8; BLOCK], offset: u64, archive: &Path) -> Result<Entry, TarError> {
    if h.iter().all(|&b| b == 0) {
        return Ok(Entry::End);
    }
    let not_tar = || TarError::NotTar {
        archive: archive.to_path_buf(),
        offset,
    };
    if !checksum_ok(h) || &h[257..262] != b"ustar" {
        return Err(not_tar());
    }
    let size = octal(&h[124..136]).ok_or_else(not_tar)?;
    match h[156] {
        b'x' | b'g' => Err(TarError::Pax {
            archive: archive.to_path_buf(),
            offset,
        }),
        b'L' => Ok(Entry::LongName { size }),
        flag => Ok(Entry::Member {
            path: header_name(h),
            size,
            regular: matches!(flag, b'0' | 0),
        }),
    }
}

/// The file name of the member at `path` if it is a WAL member: a regular file at the top or
/// under `pg_wal/` (`.` components ignored) named as a WAL segment or history file. Empty and
/// unsafe (absolute, `..`) paths are errors.
fn wal_name(
    path: &str,
    regular: bool,
    offset: u64,
    archive: &Path,
) -> Result<Option<String>, TarError> {
    if path.is_empty() {
        return Err(TarError::EmptyName {
            archive: archive.to_path_buf(),
            offset,
        });
    }
    if path.starts_with('/') || path.split('/').any(|part| part == "..") {
        return Err(TarError::UnsafeName {
            archive: archive.to_path_buf(),
            name: path.to_string(),
        });
    }
    if !regular {
        return Ok(None);
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let (name, dirs) = match parts.split_last() {
        Some((name, dirs)) => (*name, dirs),
        None => return Ok(None),
    };
    if !matches!(dirs, [] | ["pg_wal"]) {
        return Ok(None);
    }
    let wal = WalFileName::parse(name).filter(|n| !matches!(n, WalFileName::Backup { .. }));
    Ok(wal.map(|_| name.to_string()))
}

/// The WAL members of an uncompressed archive, found by [`index`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Index {
    /// The WAL members, in archive order (the first of several with one file name).
    pub members: Vec<WalMember>,
    /// Later members with a file name already taken (pg_waldump: "ignoring duplicate WAL").
    pub duplicates: Vec<WalMember>,
}

/// Finds the WAL members of the uncompressed archive `bytes` (`archive` names it in errors):
/// only header blocks are read, so the members' bytes are not touched. An archive without
/// a WAL segment is [`TarError::NoWal`].
pub fn index(bytes: &[u8], archive: &Path) -> Result<Index, TarError> {
    let mut out = Index::default();
    let mut taken = HashSet::new();
    let mut offset = 0u64;
    let mut long_name: Option<String> = None;
    let len = bytes.len() as u64;
    loop {
        let at = usize::try_from(offset).unwrap_or(usize::MAX);
        let Some(block) = bytes.get(at..at.saturating_add(BLOCK)) else {
            if offset < len {
                // A piece of a block at the end.
                return Err(TarError::NotTar {
                    archive: archive.to_path_buf(),
                    offset,
                });
            }
            break; // no end-of-archive blocks: tolerated, as GNU tar does
        };
        let header: &[u8; BLOCK] = block.try_into().unwrap_or(&[0; BLOCK]);
        let entry = parse_header(header, offset, archive)?;
        let data = offset + BLOCK as u64;
        let (path, size, regular) = match entry {
            Entry::End => break,
            Entry::LongName { size } => {
                let name = bytes
                    .get(data as usize..)
                    .and_then(|b| b.get(..usize::try_from(size).ok()?))
                    .ok_or_else(|| truncated(archive, "././@LongLink", len - data, size))?;
                long_name = Some(long_name_of(name));
                offset = data + size.div_ceil(BLOCK as u64) * BLOCK as u64;
                continue;
            }
            Entry::Member {
                path,
                size,
                regular,
            } => (long_name.take().unwrap_or(path), size, regular),
        };
        if data.saturating_add(size) > len {
            return Err(truncated(archive, &path, len.saturating_sub(data), size));
        }
        if let Some(name) = wal_name(&path, regular, offset, archive)? {
            let m = WalMember {
                path,
                name,
                offset: data,
                size,
            };
            if taken.insert(m.name.clone()) {
                out.members.push(m);
            } else {
                out.duplicates.push(m);
            }
        }
        // Padding after the last member may be missing: tolerated, the next read ends.
        offset = data + size.div_ceil(BLOCK as u64) * BLOCK as u64;
    }
    if !out.members.iter().any(|m| is_segment(&m.name)) {
        return Err(TarError::NoWal {
            archive: archive.to_path_buf(),
        });
    }
    Ok(out)
}

/// Whether a WAL member's file name is a segment's (not a history file's).
fn is_segment(name: &str) -> bool {
    matches!(WalFileName::parse(name), Some(WalFileName::Segment { .. }))
}

fn truncated(archive: &Path, name: &str, read: u64, size: u64) -> TarError {
    TarError::Truncated {
        archive: archive.to_path_buf(),
        name: name.to_string(),
        read,
        size,
    }
}

/// A GNU long name's data: the name up to its first NUL.
fn long_name_of(data: &[u8]) -> String {
    let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// What [`MemberStream::next_member`] found.
#[derive(Debug)]
pub enum Found {
    /// A WAL member and its bytes.
    Member(WalMember, Vec<u8>),
    /// A member whose file name an earlier member already had (its bytes are skipped).
    Duplicate(WalMember),
}

/// An archive read as a stream (decompressed as it is read), WAL member by WAL member; other
/// members are skipped. Each WAL member is read whole into memory when reached.
pub struct MemberStream<R> {
    reader: R,
    archive: PathBuf,
    offset: u64,
    taken: HashSet<String>,
    ended: bool,
    /// Buffers given back ([`MemberStream::recycle`]) for the next members' bytes.
    spare: Vec<Vec<u8>>,
}

impl<R> std::fmt::Debug for MemberStream<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemberStream")
            .field("archive", &self.archive)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

/// Opens `archive` (compressed as `kind`) as a [`MemberStream`].
pub fn open_stream(
    archive: &Path,
    kind: Compression,
) -> Result<MemberStream<Box<dyn Read + Send>>, TarError> {
    let read_err = |source| TarError::Read {
        archive: archive.to_path_buf(),
        source,
    };
    let file = BufReader::with_capacity(1 << 20, File::open(archive).map_err(read_err)?);
    let reader: Box<dyn Read + Send> = match kind {
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
    Ok(MemberStream::new(reader, archive))
}

impl<R: Read> MemberStream<R> {
    /// Reads the (decompressed) archive `reader`; `archive` names it in errors.
    pub fn new(reader: R, archive: &Path) -> MemberStream<R> {
        MemberStream {
            reader,
            archive: archive.to_path_buf(),
            offset: 0,
            taken: HashSet::new(),
            ended: false,
            spare: Vec::new(),
        }
    }

    /// Gives back the buffer of a member read before, to hold a later member's bytes: a
    /// buffer that is already in memory costs neither the page faults of a new allocation nor
    /// zeroing (at most two are kept).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        if self.spare.len() < 2 {
            self.spare.push(buf);
        }
    }

    /// The next WAL member with its bytes (or a duplicate's name), or `None` at the end of the
    /// archive.
    pub fn next_member(&mut self) -> Result<Option<Found>, TarError> {
        let archive = self.archive.clone();
        let read_err = |source| TarError::Read {
            archive: archive.clone(),
            source,
        };
        let mut long_name: Option<String> = None;
        let mut header = [0u8; BLOCK];
        while !self.ended {
            let got = read_full(&mut self.reader, &mut header).map_err(read_err)?;
            if got == 0 {
                self.ended = true; // no end-of-archive blocks: tolerated, as GNU tar does
                break;
            }
            if got < BLOCK {
                return Err(TarError::NotTar {
                    archive,
                    offset: self.offset,
                });
            }
            let header_at = self.offset;
            let entry = parse_header(&header, header_at, &archive)?;
            self.offset += BLOCK as u64;
            let (path, size, regular) = match entry {
                Entry::End => {
                    self.ended = true;
                    break;
                }
                Entry::LongName { size } => {
                    if size > MAX_LONG_NAME {
                        return Err(TarError::TooLarge {
                            archive,
                            name: "././@LongLink".into(),
                            size,
                        });
                    }
                    let data = self.read_member("././@LongLink", size)?;
                    long_name = Some(long_name_of(&data));
                    continue;
                }
                Entry::Member {
                    path,
                    size,
                    regular,
                } => (long_name.take().unwrap_or(path), size, regular),
            };
            let Some(name) = wal_name(&path, regular, header_at, &archive)? else {
                self.skip_member(&path, size)?;
                continue;
            };
            let m = WalMember {
                path,
                name,
                offset: self.offset,
                size,
            };
            if !self.taken.insert(m.name.clone()) {
                self.skip_member(&m.path, size)?;
                return Ok(Some(Found::Duplicate(m)));
            }
            if size > MAX_MEMBER {
                return Err(TarError::TooLarge {
                    archive,
                    name: m.path,
                    size,
                });
            }
            let data = self.read_member(&m.path, size)?;
            return Ok(Some(Found::Member(m, data)));
        }
        Ok(None)
    }

    /// Reads a member's `size` bytes (at most [`MAX_MEMBER`]) and skips its padding.
    fn read_member(&mut self, name: &str, size: u64) -> Result<Vec<u8>, TarError> {
        let len = usize::try_from(size.min(MAX_MEMBER)).unwrap_or(0);
        let mut data = match self.spare.pop() {
            // Only bytes beyond the buffer's length are zeroed.
            Some(mut buf) => {
                buf.resize(len, 0);
                buf
            }
            // Zeroed pages from the kernel, not zeroed here.
            None => vec![0u8; len],
        };
        let got = read_full(&mut self.reader, &mut data).map_err(|source| TarError::Read {
            archive: self.archive.clone(),
            source,
        })?;
        if got < len {
            return Err(truncated(&self.archive, name, got as u64, size));
        }
        self.offset += size;
        self.skip_padding(name, size)?;
        Ok(data)
    }

    /// Skips a member's `size` bytes and its padding.
    fn skip_member(&mut self, name: &str, size: u64) -> Result<(), TarError> {
        let skipped =
            io::copy(&mut (&mut self.reader).take(size), &mut io::sink()).map_err(|source| {
                TarError::Read {
                    archive: self.archive.clone(),
                    source,
                }
            })?;
        if skipped < size {
            return Err(truncated(&self.archive, name, skipped, size));
        }
        self.offset += size;
        self.skip_padding(name, size)
    }

    /// Skips the padding after a member of `size` bytes. Missing padding at the very end of
    /// the archive is tolerated: the next header read finds the end.
    fn skip_padding(&mut self, name: &str, size: u64) -> Result<(), TarError> {
        let pad = size.div_ceil(BLOCK as u64) * BLOCK as u64 - size;
        let skipped =
            io::copy(&mut (&mut self.reader).take(pad), &mut io::sink()).map_err(|source| {
                TarError::Read {
                    archive: self.archive.clone(),
                    source,
                }
            })?;
        self.offset += skipped;
        if skipped > 0 && skipped < pad {
            return Err(truncated(&self.archive, name, size, size + pad));
        }
        Ok(())
    }
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

    /// WAL members (file name, bytes) and duplicates (paths).
    type Members = (Vec<(String, Vec<u8>)>, Vec<String>);

    /// The WAL members (file name, bytes) and duplicates (paths) of `t`, read both ways: by
    /// [`index`] over the bytes and by a [`MemberStream`]; both must agree.
    fn both(t: &[u8], archive: &str) -> Result<Members, String> {
        let archive = Path::new(archive);
        let indexed = index(t, archive).map(|ix| {
            let members = ix
                .members
                .iter()
                .map(|m| {
                    let at = m.offset as usize;
                    (m.name.clone(), t[at..at + m.size as usize].to_vec())
                })
                .collect::<Vec<_>>();
            let dups = ix
                .duplicates
                .iter()
                .map(|m| m.path.clone())
                .collect::<Vec<_>>();
            (members, dups)
        });
        let mut stream = MemberStream::new(t, archive);
        let mut streamed = (Vec::new(), Vec::new());
        let streamed = loop {
            match stream.next_member() {
                Ok(Some(Found::Member(m, data))) => streamed.0.push((m.name, data)),
                Ok(Some(Found::Duplicate(m))) => streamed.1.push(m.path),
                Ok(None) if streamed.0.iter().any(|(n, _)| is_segment(n)) => break Ok(streamed),
                Ok(None) => {
                    break Err(TarError::NoWal {
                        archive: archive.to_path_buf(),
                    })
                }
                Err(e) => break Err(e),
            }
        };
        let (a, b) = (
            indexed.map_err(|e| e.to_string()),
            streamed.map_err(|e| e.to_string()),
        );
        assert_eq!(a, b, "index and stream differ");
        a
    }

    #[test]
    fn keeps_wal_members_at_the_top_or_in_pg_wal_and_the_first_duplicate() {
        let t = tar(&[
            ("PG_VERSION", b"19\n", b'0'),
            ("./pg_wal/000000010000000000000001", b"first", b'0'),
            (
                "pg_wal/00000002.history",
                b"1\t0/3000000\tno recovery target specified\n",
                b'0',
            ),
            ("other/000000010000000000000003", b"elsewhere", b'0'),
            ("000000010000000000000001", b"second", b'0'),
            ("pg_wal/archive_status", b"", b'5'),
            ("000000010000000000000002.zst", b"z", b'0'),
        ]);
        let (members, dups) = both(&t, "x.tar").unwrap();
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "000000010000000000000001",
                "00000002.history",
                "000000010000000000000002.zst"
            ]
        );
        assert_eq!(members[0].1, b"first");
        assert_eq!(dups, ["000000010000000000000001"]);
    }

    #[test]
    fn errors_name_the_archive_and_the_problem() {
        let ex = |t: &[u8]| both(t, "a.tar").unwrap_err();
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

    #[test]
    fn gnu_long_names_are_read() {
        let long = format!("pg_wal/{}/../000000010000000000000001", "d".repeat(120));
        let t = tar(&[
            ("././@LongLink", format!("{long}\0").as_bytes(), b'L'),
            ("truncated-name", b"wal", b'0'),
        ]);
        // `..` is refused wherever it is.
        assert!(both(&t, "l.tar").unwrap_err().contains("unsafe path name"));
        let long = format!("{}pg_wal/000000010000000000000001", "./".repeat(60));
        let t = tar(&[
            ("././@LongLink", format!("{long}\0").as_bytes(), b'L'),
            ("truncated-name", b"wal", b'0'),
        ]);
        let (members, _) = both(&t, "l.tar").unwrap();
        assert_eq!(
            members,
            [("000000010000000000000001".to_string(), b"wal".to_vec())]
        );
    }
}
