//! WAL read from inside a tar archive, without writing any file: an uncompressed archive is
//! mapped and its WAL members are read in place; a compressed one is decompressed as a stream,
//! on a thread of its own, and its WAL members are handed over in archive order.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::fs::File;
use std::ops::{Deref, Range};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

use super::mapped::MappedArchive;
use super::SourceError;
use crate::segment::{Compression, WalFileName};
use crate::tar::{self, Found, TarError};

/// Decompressed members kept for readers that ask again (the first page is probed before
/// reading, `-j` workers share segments): at least two, more while they take less than this.
const KEPT_BYTES: usize = 32 << 20;

/// A WAL member's bytes.
#[derive(Clone, Debug)]
pub enum MemberBytes {
    /// Bytes of a mapped uncompressed archive.
    Mapped(Arc<MappedArchive>, Range<usize>),
    /// Bytes decompressed from a compressed archive.
    Read(Arc<Vec<u8>>),
}

impl Deref for MemberBytes {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            MemberBytes::Mapped(map, range) => &map[range.clone()],
            MemberBytes::Read(v) => v,
        }
    }
}

impl MemberBytes {
    /// Reads the pages of the member's bytes `from..to` into the mapping at once (nothing for
    /// decompressed bytes).
    #[inline]
    pub fn populate(&self, from: usize, to: usize) {
        if let MemberBytes::Mapped(map, range) = self {
            map.populate(range.start + from, range.start + to.min(range.len()));
        }
    }

    /// Gives back the whole pages of the member's bytes `from..to` (nothing for decompressed
    /// bytes).
    pub fn give_back(&self, from: usize, to: usize) {
        if let MemberBytes::Mapped(map, range) = self {
            map.give_back(range.start + from, range.start + to.min(range.len()));
        }
    }

    /// Whether the bytes are a mapping.
    pub fn is_mapped(&self) -> bool {
        matches!(self, MemberBytes::Mapped(..))
    }
}

/// The WAL members of a tar archive (see [`crate::tar`] for which members those are).
///
/// [`crate::source::WalDirectory::from_tar`] reads them like the files of a directory.
pub struct TarWal {
    archive: PathBuf,
    body: Body,
}

enum Body {
    /// An uncompressed archive, mapped: every member is known.
    Mapped {
        map: Arc<MappedArchive>,
        members: Vec<tar::WalMember>,
    },
    /// A compressed archive read as a stream.
    Stream(Mutex<Streamer>),
}

impl std::fmt::Debug for TarWal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarWal")
            .field("archive", &self.archive)
            .field(
                "kind",
                &match self.body {
                    Body::Mapped { .. } => "mapped",
                    Body::Stream(_) => "stream",
                },
            )
            .finish()
    }
}

/// Called with the path of each duplicate WAL member (once per archive).
pub type OnDuplicate = Arc<dyn Fn(&str) + Send + Sync>;

/// Whether `file` is a finished tar archive: a regular file whose length is a whole number of
/// 512-byte blocks, ending with the two zero blocks that close an archive (written last).
fn is_finished_archive(file: &File) -> bool {
    use std::os::unix::fs::FileExt;
    const END: usize = 2 * 512;
    let Ok(meta) = file.metadata() else {
        return false;
    };
    let len = meta.len();
    if !meta.is_file() || len < END as u64 || len % 512 != 0 {
        return false;
    }
    let mut tail = [0u8; END];
    file.read_exact_at(&mut tail, len - END as u64).is_ok() && tail.iter().all(|&b| b == 0)
}

impl TarWal {
    /// Opens `archive`, compressed as `kind`. An uncompressed archive that can be mapped is
    /// indexed at once (its header blocks only); a compressed one is read up to its first WAL
    /// segment. Errors: not a tar archive, no WAL in it (up to its first segment for a stream),
    /// or the file cannot be read. `on_duplicate` hears of members whose file name an earlier
    /// member had (pg_waldump warns of them).
    ///
    /// An uncompressed archive is memory-mapped only when it is finished: its length is a whole
    /// number of tar blocks and it ends with tar's end-of-archive blocks, which `tar` and
    /// `pg_basebackup -Ft` write last. One still being written (or cut short) is read as a
    /// stream instead, so a writer appending to it cannot change bytes a reader borrows.
    pub fn open(
        archive: &Path,
        kind: Compression,
        on_duplicate: OnDuplicate,
    ) -> Result<TarWal, SourceError> {
        Self::open_keeping(archive, kind, on_duplicate, KEPT_BYTES)
    }

    /// [`TarWal::open`], keeping up to `kept_bytes` of decompressed members.
    fn open_keeping(
        archive: &Path,
        kind: Compression,
        on_duplicate: OnDuplicate,
        kept_bytes: usize,
    ) -> Result<TarWal, SourceError> {
        if kind == Compression::None {
            let file = File::open(archive).map_err(|source| SourceError::Io {
                path: archive.to_owned(),
                source,
            })?;
            // Only a finished archive is mapped; one that cannot be mapped (a pipe) or is
            // not finished is streamed below.
            let mapped = if is_finished_archive(&file) {
                // SAFETY: the archive is finished (checked just above): its writer is done
                // with it, so nothing appends to or rewrites it while mapped.
                unsafe { MappedArchive::map(&file) }.ok()
            } else {
                None
            };
            if let Some(map) = mapped {
                let ix = tar::index(&map, archive)?;
                for d in &ix.duplicates {
                    on_duplicate(&d.path);
                }
                return Ok(TarWal {
                    archive: archive.to_owned(),
                    body: Body::Mapped {
                        map: Arc::new(map),
                        members: ix.members,
                    },
                });
            }
        }
        let mut s = Streamer {
            archive: archive.to_owned(),
            kind,
            rx: None,
            pass: HashSet::new(),
            passes: 0,
            kept: VecDeque::new(),
            kept_bytes,
            found: BTreeSet::new(),
            complete: false,
            on_duplicate,
            reported: Arc::default(),
            give_back: None,
        };
        s.restart()?;
        // Up to the first segment, as pg_waldump 19 reads to learn the segment size.
        while !s.found.iter().any(|n| is_segment(n)) {
            if !s.pull()? {
                return Err(TarError::NoWal {
                    archive: archive.to_owned(),
                }
                .into());
            }
        }
        Ok(TarWal {
            archive: archive.to_owned(),
            body: Body::Stream(Mutex::new(s)),
        })
    }

    /// The archive's path.
    pub fn path(&self) -> &Path {
        &self.archive
    }

    /// Whether every WAL member is known ([`TarWal::names`] is complete): an uncompressed
    /// archive, or a compressed one read to its end.
    pub fn is_indexed(&self) -> bool {
        match &self.body {
            Body::Mapped { .. } => true,
            Body::Stream(s) => s.lock().is_ok_and(|s| s.complete),
        }
    }

    /// The file names of the WAL members known: all of them for an uncompressed archive; for a
    /// compressed one those read so far.
    pub fn names(&self) -> Vec<String> {
        match &self.body {
            Body::Mapped { members, .. } => members.iter().map(|m| m.name.clone()).collect(),
            Body::Stream(s) => s
                .lock()
                .map(|s| s.found.iter().cloned().collect())
                .unwrap_or_default(),
        }
    }

    /// The file name of the best member holding segment `base` (a plain segment file name):
    /// plain, then compressed, then `.partial` forms, as in a directory. For a compressed
    /// archive, read on until a member of that segment appears (or the archive ends).
    pub fn segment_member(&self, base: &str) -> Result<Option<String>, SourceError> {
        let best = |names: &mut dyn Iterator<Item = &String>| {
            names
                .filter(|n| n.starts_with(base))
                .filter_map(|n| Some((super::preference(&WalFileName::parse(n)?), n)))
                .filter(|(p, _)| *p != (true, u8::MAX))
                .min()
                .map(|(_, n)| n.clone())
        };
        match &self.body {
            Body::Mapped { members, .. } => Ok(best(&mut members.iter().map(|m| &m.name))),
            Body::Stream(s) => {
                let mut s = lock(s, &self.archive)?;
                loop {
                    if let Some(n) = best(&mut s.found.iter()) {
                        return Ok(Some(n));
                    }
                    if s.complete {
                        return Ok(None);
                    }
                    if s.rx.is_none() {
                        s.restart()?;
                    }
                    s.pull()?;
                }
            }
        }
    }

    /// The bytes of the member named `name` (a file name), or `None` if the archive has none.
    pub fn member(&self, name: &str) -> Result<Option<MemberBytes>, SourceError> {
        match &self.body {
            Body::Mapped { map, members } => Ok(members.iter().find(|m| m.name == name).map(|m| {
                // Inside the mapping: `index` checked every member's extent.
                let start = m.offset as usize;
                MemberBytes::Mapped(map.clone(), start..start + m.size as usize)
            })),
            Body::Stream(s) => lock(s, &self.archive)?
                .member(name)
                .map(|b| b.map(MemberBytes::Read)),
        }
    }
}

fn lock<'a>(
    s: &'a Mutex<Streamer>,
    archive: &Path,
) -> Result<std::sync::MutexGuard<'a, Streamer>, SourceError> {
    s.lock().map_err(|_| SourceError::NotWal {
        path: archive.to_owned(),
        reason: "a reader of the archive failed".into(),
    })
}

fn is_segment(name: &str) -> bool {
    matches!(WalFileName::parse(name), Some(WalFileName::Segment { .. }))
}

/// A message from the decompressing thread.
type Item = Result<(String, Vec<u8>), TarError>;

/// The reading side of a compressed archive: members come from a thread that decompresses
/// the archive and parses it, one member ahead of the reader. Readers ask for members in
/// about archive order; a member asked for again after it was dropped, or before the
/// archive's start after the stream passed it, is found by reading the archive again
/// from its start.
struct Streamer {
    archive: PathBuf,
    kind: Compression,
    /// The current pass over the archive; `None` once it ended (or failed).
    rx: Option<Receiver<Item>>,
    /// Members met in the current pass.
    pass: HashSet<String>,
    /// Passes begun.
    passes: u32,
    /// The most recent members, newest last.
    kept: VecDeque<(String, Arc<Vec<u8>>)>,
    /// `kept` holds more than two members only while they take at most this.
    kept_bytes: usize,
    /// Every WAL member met so far.
    found: BTreeSet<String>,
    /// A pass read the whole archive: `found` is every WAL member.
    complete: bool,
    on_duplicate: OnDuplicate,
    /// Offsets of the duplicates reported.
    reported: Arc<Mutex<HashSet<u64>>>,
    /// Where buffers of members no longer kept go back to the current pass's thread.
    give_back: Option<Sender<Vec<u8>>>,
}

impl Streamer {
    /// Begins a pass over the archive from its start (ending the current one).
    fn restart(&mut self) -> Result<(), SourceError> {
        self.rx = None;
        let mut stream = tar::open_stream(&self.archive, self.kind)?;
        let (tx, rx) = sync_channel::<Item>(1);
        let (give_back, given_back) = channel::<Vec<u8>>();
        let reported = self.reported.clone();
        let on_duplicate = self.on_duplicate.clone();
        std::thread::Builder::new()
            .name("pgwal-tar".into())
            .spawn(move || loop {
                while let Ok(buf) = given_back.try_recv() {
                    stream.recycle(buf);
                }
                let item = match stream.next_member() {
                    Ok(Some(Found::Member(m, data))) => Ok((m.name, data)),
                    Ok(Some(Found::Duplicate(m))) => {
                        // Once, whichever pass meets it first.
                        if reported.lock().is_ok_and(|mut r| r.insert(m.offset)) {
                            on_duplicate(&m.path);
                        }
                        continue;
                    }
                    Ok(None) => return,
                    Err(e) => Err(e),
                };
                let failed = item.is_err();
                // The reader hung up (done, or began another pass): stop.
                if tx.send(item).is_err() || failed {
                    return;
                }
            })
            .map_err(|source| SourceError::Io {
                path: self.archive.clone(),
                source,
            })?;
        self.rx = Some(rx);
        self.give_back = Some(give_back);
        self.pass.clear();
        self.passes += 1;
        Ok(())
    }

    /// Takes the next member of the current pass into `kept`; false at the end of the pass.
    fn pull(&mut self) -> Result<bool, SourceError> {
        let Some(rx) = &self.rx else {
            return Ok(false);
        };
        match rx.recv() {
            Ok(Ok((name, data))) => {
                self.pass.insert(name.clone());
                self.found.insert(name.clone());
                self.kept.push_back((name, Arc::new(data)));
                let mut bytes: usize = self.kept.iter().map(|(_, d)| d.len()).sum();
                while self.kept.len() > 2 && bytes > self.kept_bytes {
                    if let Some((_, d)) = self.kept.pop_front() {
                        bytes -= d.len();
                        // Unless a reader still holds it, its buffer holds a later member.
                        if let (Ok(buf), Some(to)) = (Arc::try_unwrap(d), &self.give_back) {
                            let _ = to.send(buf);
                        }
                    }
                }
                Ok(true)
            }
            Ok(Err(e)) => {
                self.rx = None;
                Err(e.into())
            }
            Err(_) => {
                self.rx = None;
                self.complete = true;
                Ok(false)
            }
        }
    }

    fn member(&mut self, name: &str) -> Result<Option<Arc<Vec<u8>>>, SourceError> {
        let mut restarted = false;
        loop {
            if let Some((_, d)) = self.kept.iter().rev().find(|(n, _)| n == name) {
                return Ok(Some(d.clone()));
            }
            if self.complete && !self.found.contains(name) {
                return Ok(None);
            }
            // Passed already in this pass (and dropped), or the pass is over: read again.
            if self.rx.is_none() || self.pass.contains(name) {
                if restarted && self.rx.is_none() {
                    return Ok(None);
                }
                self.restart()?;
                restarted = true;
            }
            self.pull()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar archive of `members` (name, bytes), gzip-compressed.
    fn tar_gz(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
        use std::io::Write;
        let mut t = Vec::new();
        for (name, data) in members {
            let mut h = [0u8; 512];
            h[..name.len()].copy_from_slice(name.as_bytes());
            h[100..108].copy_from_slice(b"0000644\0");
            h[124..136].copy_from_slice(format!("{:011o}\0", data.len()).as_bytes());
            h[156] = b'0';
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[148..156].fill(b' ');
            let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
            h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            t.extend_from_slice(&h);
            t.extend_from_slice(data);
            t.resize(t.len().div_ceil(512) * 512, 0);
        }
        t.extend_from_slice(&[0u8; 1024]);
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&t).unwrap();
        z.finish().unwrap()
    }

    /// A stream keeps two members: asking for one it passed (out of order, or again) reads the
    /// archive again from its start; a name it does not have is `None` once it was read to
    /// the end; duplicates are reported once, however often the archive is read.
    #[test]
    fn stream_reads_again_for_members_it_passed() {
        let seg = |n: u32| format!("0000000100000000000000{n:02X}");
        let order = [3u32, 1, 5, 2, 4];
        let mut members: Vec<(String, Vec<u8>)> = order
            .iter()
            .map(|&n| (format!("pg_wal/{}", seg(n)), vec![n as u8; 3000]))
            .collect();
        members.push((format!("pg_wal/{}", seg(1)), vec![9; 10]));
        let refs: Vec<(&str, Vec<u8>)> = members
            .iter()
            .map(|(n, d)| (n.as_str(), d.clone()))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.tar.gz");
        std::fs::write(&path, tar_gz(&refs)).unwrap();
        let dups = Arc::new(Mutex::new(Vec::new()));
        let heard = dups.clone();
        let on_dup: OnDuplicate =
            Arc::new(move |p: &str| heard.lock().unwrap().push(p.to_string()));
        let wal = TarWal::open_keeping(&path, Compression::Gzip, on_dup, 0).unwrap();
        assert!(!wal.is_indexed());
        assert_eq!(wal.names(), [seg(3)], "read up to the first segment");
        for round in 0..2 {
            for n in 1..=5u32 {
                let got = wal.member(&seg(n)).unwrap().expect("member");
                assert_eq!(
                    &got[..],
                    &vec![n as u8; 3000][..],
                    "round {round}, segment {n}"
                );
            }
        }
        assert_eq!(wal.segment_member(&seg(4)).unwrap(), Some(seg(4)));
        assert_eq!(wal.member(&seg(6)).unwrap().map(|b| b.len()), None);
        assert_eq!(wal.segment_member(&seg(6)).unwrap(), None);
        assert!(wal.is_indexed());
        let Body::Stream(s) = &wal.body else {
            panic!("not a stream")
        };
        assert!(
            s.lock().unwrap().passes > 2,
            "members passed were not read again"
        );
        assert_eq!(*dups.lock().unwrap(), [format!("pg_wal/{}", seg(1))]);
    }

    /// An uncompressed archive is mapped and its members are slices of the mapping.
    #[test]
    fn plain_archive_members_are_read_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.tar.gz");
        std::fs::write(
            &path,
            tar_gz(&[("000000010000000000000001", vec![7; 5000])]),
        )
        .unwrap();
        let plain = dir.path().join("w.tar");
        let raw =
            crate::source::decompress(Compression::Gzip, &std::fs::read(&path).unwrap()).unwrap();
        std::fs::write(&plain, raw).unwrap();
        let wal = TarWal::open(&plain, Compression::None, Arc::new(|_: &str| {})).unwrap();
        let got = wal.member("000000010000000000000001").unwrap().unwrap();
        assert!(got.is_mapped());
        assert_eq!(&got[..], &[7u8; 5000][..]);
        assert!(wal.member("000000010000000000000002").unwrap().is_none());
    }

    /// An archive without its end-of-archive blocks (still being written, or cut short) is
    /// streamed, not mapped: a writer appending to it cannot change what a reader borrows.
    #[test]
    fn unfinished_plain_archive_is_streamed_not_mapped() {
        let dir = tempfile::tempdir().unwrap();
        let gz = tar_gz(&[
            ("000000010000000000000001", vec![7; 5000]),
            ("000000010000000000000002", vec![8; 5000]),
        ]);
        let raw = crate::source::decompress(Compression::Gzip, &gz).unwrap();
        // Cut after the first member (header + 5000 bytes padded to 5120): no end blocks.
        let unfinished = dir.path().join("w.tar");
        std::fs::write(&unfinished, &raw[..512 + 5120]).unwrap();
        let wal = TarWal::open(&unfinished, Compression::None, Arc::new(|_: &str| {})).unwrap();
        assert!(!wal.is_indexed(), "an unfinished archive was mapped");
        let got = wal.member("000000010000000000000001").unwrap().unwrap();
        assert!(!got.is_mapped());
        assert_eq!(&got[..], &[7u8; 5000][..]);
        // The finished archive is mapped.
        let finished = dir.path().join("f.tar");
        std::fs::write(&finished, &raw).unwrap();
        let wal = TarWal::open(&finished, Compression::None, Arc::new(|_: &str| {})).unwrap();
        assert!(wal.is_indexed());
        assert!(wal
            .member("000000010000000000000002")
            .unwrap()
            .unwrap()
            .is_mapped());
    }
}
