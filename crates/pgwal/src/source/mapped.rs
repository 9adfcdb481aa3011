//! Read-only memory maps of complete WAL segment files.
//!
//! A mapping is read as a `&[u8]`, which Rust assumes does not change while it is borrowed, and
//! reading a page of a mapped file that was truncated meanwhile kills the process with
//! `SIGBUS`. So only a file that stays as it is while mapped may be mapped: a complete
//! segment, which PostgreSQL and pgwal write under another name (or with `.partial`) and rename
//! into place only when whole. That is a property of how the file is written, which no check
//! here can prove; [`MappedSegment::map`] is therefore `unsafe`, and each caller states why its
//! file qualifies. What can be checked is checked: the file's length is a WAL segment size.
//! [`MappedArchive`] maps an uncompressed tar archive under the same promise.

use std::fs::File;
use std::io;
use std::ops::Deref;

use memmap2::Mmap;

use crate::segment::WalSegSize;

/// A read-only memory mapping of a whole, complete WAL segment file.
///
/// It can only be made through the `unsafe` [`MappedSegment::map`] (or
/// [`MappedSegment::map_populated`]), whose caller promises that the file is not modified or
/// truncated while the mapping lives; reading it is then safe.
///
/// ```
/// use pgwal::source::MappedSegment;
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("000000010000000000000001");
/// # std::fs::write(&path, vec![7u8; 1 << 20]).unwrap();
/// let file = std::fs::File::open(&path).unwrap();
/// // SAFETY: the file is a complete segment that nothing writes to while it is mapped.
/// let map = unsafe { MappedSegment::map(&file) }.unwrap();
/// assert_eq!(map.len(), 1 << 20);
/// ```
///
/// Mapping without taking on that promise does not compile:
///
/// ```compile_fail,E0133
/// fn map(file: &std::fs::File) {
///     let _ = pgwal::source::MappedSegment::map(file);
/// }
/// ```
pub struct MappedSegment {
    map: Mmap,
}

impl MappedSegment {
    /// Maps the whole of `file` read-only, advising the kernel that it will be read in order.
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] if the file's length is not a WAL segment
    /// size (a power of two from 1 MB to 1 GB), or changed while it was being mapped: such a
    /// file is not a complete segment.
    ///
    /// # Safety
    ///
    /// `file` must be a complete WAL segment that no process writes to or truncates while the
    /// returned mapping lives: with PostgreSQL's and pgwal's files, a segment named without
    /// `.partial` (written whole under another name and then renamed into place). A file that
    /// may still change (a `.partial` segment, the segment a server is writing) must be read
    /// instead.
    pub unsafe fn map(file: &File) -> io::Result<MappedSegment> {
        // SAFETY: as promised by the caller.
        let seg = unsafe { Self::map_shared(file) }?;
        #[cfg(unix)]
        let _ = seg.map.advise(memmap2::Advice::Sequential);
        Ok(seg)
    }

    /// Like [`MappedSegment::map`], without advising the kernel that the pages will be read in
    /// order: for a mapping that several threads read at once, each populating
    /// ([`MappedSegment::populate`]) what it reads. That advice changes the mapping's flags,
    /// which takes the process's mapping lock for writing: the other threads' page faults wait.
    ///
    /// # Safety
    ///
    /// As for [`MappedSegment::map`].
    pub unsafe fn map_shared(file: &File) -> io::Result<MappedSegment> {
        check_length(file)?;
        // SAFETY: the caller guarantees the file does not change while mapped.
        let map = unsafe { Mmap::map(file) }?;
        Self::checked(map, file)
    }

    /// Like [`MappedSegment::map`], but reads all of the file's pages into the mapping at once
    /// (for a caller that uses the whole file straight away).
    ///
    /// # Safety
    ///
    /// As for [`MappedSegment::map`].
    pub unsafe fn map_populated(file: &File) -> io::Result<MappedSegment> {
        check_length(file)?;
        // SAFETY: the caller guarantees the file does not change while mapped.
        let map = unsafe { memmap2::MmapOptions::new().populate().map(file) }?;
        Self::checked(map, file)
    }

    /// The mapping, if it holds as many bytes as the file had when checked.
    fn checked(map: Mmap, file: &File) -> io::Result<MappedSegment> {
        let len = file.metadata()?.len();
        if map.len() as u64 != len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the file changed size while being mapped ({} bytes mapped, now {len})",
                    map.len()
                ),
            ));
        }
        Ok(MappedSegment { map })
    }

    /// Reads the pages of `from..to` into the mapping in one call, rather than one page fault
    /// per few pages as they are read (Linux; nothing elsewhere). Out-of-range bytes are
    /// ignored.
    #[inline]
    pub fn populate(&self, from: usize, to: usize) {
        populate(&self.map, from, to);
    }

    /// Drops the pages `from..to` (page-aligned) from this process's page tables (Linux;
    /// nothing elsewhere). The bytes stay readable: touched again, they are read back from the
    /// page cache.
    pub fn give_back(&self, from: usize, to: usize) {
        give_back(&self.map, from, to);
    }
}

/// A read-only memory mapping of a whole uncompressed tar archive, whose WAL members are read
/// in place ([`crate::source::TarWal`]).
///
/// Like [`MappedSegment`], it can only be made through an `unsafe` constructor whose caller
/// promises that the file does not change while mapped.
pub struct MappedArchive {
    map: Mmap,
}

impl MappedArchive {
    /// Maps the whole of `file` read-only, advising the kernel that it will be read in order.
    /// Fails with [`io::ErrorKind::InvalidInput`] for an empty file or one that changed size
    /// while being mapped.
    ///
    /// # Safety
    ///
    /// `file` must be a finished archive that no process writes to or truncates while the
    /// returned mapping lives (an archive being written must be read as a stream instead).
    pub unsafe fn map(file: &File) -> io::Result<MappedArchive> {
        if file.metadata()?.len() == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty file"));
        }
        // SAFETY: the caller guarantees the file does not change while mapped.
        let map = unsafe { Mmap::map(file) }?;
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        let len = file.metadata()?.len();
        if map.len() as u64 != len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the file changed size while being mapped ({} bytes mapped, now {len})",
                    map.len()
                ),
            ));
        }
        Ok(MappedArchive { map })
    }

    /// As [`MappedSegment::populate`]; `from` need not be page-aligned.
    #[inline]
    pub fn populate(&self, from: usize, to: usize) {
        populate(&self.map, from / OS_PAGE * OS_PAGE, to);
    }

    /// As [`MappedSegment::give_back`], for the whole pages inside `from..to` (any offsets).
    pub fn give_back(&self, from: usize, to: usize) {
        let from = from.div_ceil(OS_PAGE) * OS_PAGE;
        let to = if to >= self.map.len() {
            self.map.len()
        } else {
            to / OS_PAGE * OS_PAGE
        };
        give_back(&self.map, from, to);
    }
}

impl Deref for MappedArchive {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl std::fmt::Debug for MappedArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedArchive")
            .field("len", &self.map.len())
            .finish()
    }
}

/// The operating system's memory page.
const OS_PAGE: usize = 4096;

/// Reads the pages of `from..to` (`from` page-aligned) of `map` in one call (Linux).
#[inline]
fn populate(map: &Mmap, from: usize, to: usize) {
    #[cfg(target_os = "linux")]
    {
        let to = to.min(map.len());
        if to > from {
            let _ = map.advise_range(memmap2::Advice::PopulateRead, from, to - from);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (map, from, to);
}

/// Drops the pages `from..to` (`from` page-aligned) of `map` from the page tables (Linux).
fn give_back(map: &Mmap, from: usize, to: usize) {
    #[cfg(target_os = "linux")]
    {
        let to = to.min(map.len());
        if to > from {
            // SAFETY: the mapping is read-only and backed by a file that does not change
            // (the invariant of both mapping types), so dropping its pages only means they are
            // read from the page cache again if touched, by this reader or another.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - from)
            };
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (map, from, to);
}

/// Refuses a file whose length is not a WAL segment size.
fn check_length(file: &File) -> io::Result<()> {
    let len = file.metadata()?.len();
    if u32::try_from(len).ok().and_then(WalSegSize::new).is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{len} bytes is not the size of a complete WAL segment; not mapped"),
        ));
    }
    Ok(())
}

impl Deref for MappedSegment {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl std::fmt::Debug for MappedSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedSegment")
            .field("len", &self.map.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> File {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        File::open(path).unwrap()
    }

    #[test]
    fn maps_a_segment_and_keeps_its_bytes_after_giving_pages_back() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..2u32 << 20).map(|i| (i * 31 + i / 4096) as u8).collect();
        let file = file_of(&dir, "seg", &bytes);
        for populated in [false, true] {
            // SAFETY: the test's own file, not written while mapped.
            let map = unsafe {
                if populated {
                    MappedSegment::map_populated(&file)
                } else {
                    MappedSegment::map(&file)
                }
            }
            .unwrap();
            assert_eq!(&map[..], &bytes[..]);
            map.populate(4096, 3 << 20);
            map.give_back(0, 1 << 20);
            map.give_back(1 << 20, 5 << 20);
            assert_eq!(&map[..], &bytes[..], "pages given back are read again");
        }
    }

    #[test]
    fn refuses_files_that_are_not_a_whole_segment() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0usize, 8192, (1 << 20) - 1, (1 << 20) + 8192, 3 << 20] {
            let file = file_of(&dir, "f", &vec![1u8; len]);
            for populated in [false, true] {
                // SAFETY: the test's own file, not written while mapped.
                let got = unsafe {
                    if populated {
                        MappedSegment::map_populated(&file)
                    } else {
                        MappedSegment::map(&file)
                    }
                };
                let err = got.expect_err("not a segment size");
                assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{len}: {err}");
                assert!(err.to_string().contains(&format!("{len} bytes")), "{err}");
            }
        }
    }

    /// Plain files of `len` bytes under `name`, and whether each reader mapped it.
    fn mapped_by_readers(dir: &tempfile::TempDir, name: &str, len: usize) -> Vec<bool> {
        let path = dir.path().join(name);
        let bytes: Vec<u8> = (0..len).map(|i| (i / 8192) as u8 | 1).collect();
        std::fs::write(&path, &bytes).unwrap();
        let readers = [
            Some(crate::source::read_wal_file(&path).unwrap()),
            #[cfg(feature = "archive")]
            Some(crate::archive::read_all(&path).unwrap()),
            #[cfg(not(feature = "archive"))]
            None,
        ];
        readers
            .iter()
            .flatten()
            .map(|got| {
                assert_eq!(&got[..], &bytes[..], "{name}");
                matches!(got, crate::source::WalBytes::Mapped(_))
            })
            .collect()
    }

    #[test]
    fn readers_map_only_whole_complete_segments() {
        let dir = tempfile::tempdir().unwrap();
        let all = |v: Vec<bool>, want: bool| v.iter().all(|&m| m == want);
        assert!(all(
            mapped_by_readers(&dir, "000000010000000000000001", 1 << 20),
            true
        ));
        // Named as a complete segment, but not a segment's length: read, not mapped.
        let odd = (1 << 20) + 8192;
        assert!(all(
            mapped_by_readers(&dir, "000000010000000000000002", odd),
            false
        ));
        assert!(all(
            mapped_by_readers(&dir, "000000010000000000000003", 8192),
            false
        ));
        // A `.partial` segment may still change: read.
        let partial = "000000010000000000000004.partial";
        assert!(all(mapped_by_readers(&dir, partial, 1 << 20), false));
    }
}
