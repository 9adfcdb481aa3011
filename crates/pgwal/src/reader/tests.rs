#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use super::*;
use crate::source::SourceError;
use crate::wal::DecoderConfig;

fn testdata(major: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/wal")
        .join(major)
}

/// (LSN, end LSN) of every record `for_each` hands over.
fn lsns(reader: &mut WalReader) -> (Vec<(Lsn, Lsn)>, ReadEnd) {
    let mut v = Vec::new();
    let end = reader
        .for_each(|rec| {
            v.push((rec.lsn(), rec.end_lsn()));
            ControlFlow::Continue(())
        })
        .unwrap();
    (v, end)
}

/// The same records the five-step recipe (scan, probe, config, range, read_range) gives.
fn by_hand(dir: &Path) -> Vec<(Lsn, Lsn)> {
    let wd = WalDirectory::scan(dir).unwrap();
    let (_, first) = wd.first_segment().unwrap();
    let info = probe_segment(&source::read_wal_file(&first).unwrap()).unwrap();
    let cfg = DecoderConfig::new(info.seg_size).with_page_size(info.page_size);
    let range = ReadRange::new(info.pageaddr, info.tli, cfg);
    let mut v = Vec::new();
    source::read_range(&wd, &range, |rec| {
        v.push((rec.lsn(), rec.end_lsn()));
        ControlFlow::Continue(())
    })
    .unwrap();
    v
}

#[test]
fn a_directory_reads_like_the_recipe_by_hand() {
    for major in ["pg13", "pg16", "pg18", "pg15-zstd"] {
        let dir = testdata(major);
        let mut r = WalReader::open(dir.as_path()).unwrap();
        let (got, end) = lsns(&mut r);
        assert_eq!(got, by_hand(&dir), "{major}");
        assert!(got.len() > 100, "{major}");
        assert!(matches!(end, ReadEnd::EndOfWal { .. }), "{major}: {end:?}");
        assert_eq!(r.start(), got[0].0.segment_start(r.info().seg_size));
    }
}

#[test]
fn a_data_directory_is_read_through_its_pg_wal() {
    let tmp = tempfile::tempdir().unwrap();
    let wal = tmp.path().join("pg_wal");
    std::fs::create_dir(&wal).unwrap();
    for e in std::fs::read_dir(testdata("pg17")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), wal.join(e.file_name())).unwrap();
    }
    let (got, _) = lsns(&mut WalReader::open(tmp.path()).unwrap());
    assert_eq!(got, by_hand(&testdata("pg17")));
}

#[test]
fn segment_names_and_lsns_bound_the_read() {
    let dir = testdata("pg18");
    let all = by_hand(&dir);
    let seg9 = "000000010000000000000009";
    // A file location starts at its segment and, alone, ends at its end.
    let mut r = WalReader::open(dir.join("000000010000000000000008")).unwrap();
    assert_eq!(r.end(), Some(Lsn(0x90_0000)));
    let (got, end) = lsns(&mut r);
    assert_eq!(end, ReadEnd::ReachedEnd);
    let want: Vec<_> = all
        .iter()
        .copied()
        .filter(|&(_, e)| e <= Lsn(0x90_0000))
        .collect();
    assert_eq!(got, want);
    // Start inside the named file, end segment named.
    let mid = all[all.len() / 3].0;
    let mut r = WalReader::builder()
        .start_segment("000000010000000000000008")
        .end_segment(seg9)
        .start(mid)
        .open(dir.as_path())
        .unwrap();
    let (got, _) = lsns(&mut r);
    assert_eq!(got[0].0, mid);
    assert_eq!(got.last(), all.last());
    // An end LSN alone, no segment names.
    let stop = all[all.len() / 2].1;
    let (got, end) = lsns(&mut WalReader::builder().end(stop).open(dir.as_path()).unwrap());
    assert_eq!(end, ReadEnd::ReachedEnd);
    assert_eq!(got.last().unwrap().1, stop);
}

#[test]
fn bad_names_and_positions_are_typed_errors() {
    let dir = testdata("pg18");
    let open = |b: ReaderBuilder| b.open(dir.as_path()).unwrap_err();
    let seg8 = "000000010000000000000008";
    let e = open(
        WalReader::builder()
            .start_segment(seg8)
            .start(Lsn(0x95_0000)),
    );
    assert!(
        matches!(&e, ReaderError::StartOutsideFile { start, file } if *start == Lsn(0x95_0000) && file == seg8),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "start WAL location 0/950000 is not inside file \"000000010000000000000008\""
    );
    let e = open(WalReader::builder().start_segment(seg8).end(Lsn(0xA0_0001)));
    assert!(matches!(e, ReaderError::EndOutsideFile { .. }), "{e:?}");
    let e = open(
        WalReader::builder()
            .start_segment("000000010000000000000009")
            .end_segment(seg8),
    );
    assert!(matches!(e, ReaderError::EndBeforeStart { .. }), "{e:?}");
    let e = open(WalReader::builder().start_segment("00000001000000000000000F"));
    assert!(
        matches!(&e, ReaderError::FileNotFound { name, searched } if name == "00000001000000000000000F" && searched.len() == 2),
        "{e:?}"
    );
    let e = open(
        WalReader::builder()
            .start_segment(seg8)
            .end_segment("0000000100000000000000FF"),
    );
    assert!(matches!(e, ReaderError::EndFileNotFound { .. }), "{e:?}");
    // meta.txt is there, but it is not WAL.
    let e = open(WalReader::builder().start_segment("meta.txt"));
    assert!(matches!(e, ReaderError::NotWal { .. }), "{e:?}");
    let empty = tempfile::tempdir().unwrap();
    // WAL, under a name that is not a segment's.
    std::fs::copy(dir.join(seg8), empty.path().join("copy")).unwrap();
    let e = WalReader::builder()
        .start_segment("copy")
        .open(empty.path())
        .unwrap_err();
    assert!(
        matches!(&e, ReaderError::BadFileName { name } if name == "copy"),
        "{e:?}"
    );
    std::fs::remove_file(empty.path().join("copy")).unwrap();
    let e = WalReader::open(empty.path()).unwrap_err();
    assert!(matches!(e, ReaderError::NoWalFiles { .. }), "{e:?}");
    // A file that is not WAL, named as a segment: the file and the reason.
    std::fs::write(empty.path().join(seg8), [0u8; 100]).unwrap();
    let e = WalReader::open(empty.path()).unwrap_err();
    assert!(
        matches!(&e, ReaderError::NotWal { path, .. } if path.ends_with(seg8)),
        "{e:?}"
    );
}

#[test]
fn corrupt_wal_names_the_file_and_lsn() {
    let tmp = tempfile::tempdir().unwrap();
    let src = testdata("pg16");
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), tmp.path().join(e.file_name())).unwrap();
    }
    let all = by_hand(&src);
    let (_, first) = WalDirectory::scan(tmp.path())
        .unwrap()
        .first_segment()
        .map(|(n, p)| (n.clone(), p.to_path_buf()))
        .unwrap();
    // Flip a byte inside the 50th record (past its header): its CRC fails.
    let (lsn, _) = all[50];
    let mut bytes = std::fs::read(&first).unwrap();
    let seg_size = WalSegSize::new(bytes.len() as u32).unwrap();
    let off = lsn.segment_offset(seg_size) as usize + 26;
    bytes[off] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();
    let mut r = WalReader::open(tmp.path()).unwrap();
    let mut n = 0;
    let e = r
        .for_each(|_| {
            n += 1;
            ControlFlow::Continue(())
        })
        .unwrap_err();
    assert_eq!(n, 50);
    match e {
        ReaderError::Source(SourceError::Corrupt { path, error }) => {
            assert_eq!(path, first);
            assert_eq!(error.lsn, lsn);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_stream_plain_or_compressed_reads_like_the_files() {
    let dir = testdata("pg15");
    let all = by_hand(&dir);
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().len() == 24)
        .collect();
    segs.sort();
    let mut raw = Vec::new();
    for s in &segs {
        raw.extend(std::fs::read(s).unwrap());
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    for input in [raw.clone(), gz] {
        let mut s = WalReader::builder().open_stream(&input[..]).unwrap();
        let mut got = Vec::new();
        let end = s
            .for_each(|rec| {
                got.push((rec.lsn(), rec.end_lsn()));
                ControlFlow::Continue(())
            })
            .unwrap();
        assert_eq!(got, all);
        assert!(matches!(end, ReadEnd::EndOfWal { .. }), "{end:?}");
    }
    // Start and end apply; the end is reported as reached.
    let (from, to) = (all[10].0, all[20].1);
    let mut s = WalReader::builder()
        .start(from)
        .end(to)
        .open_stream(&raw[..])
        .unwrap();
    let mut got = Vec::new();
    let end = s
        .for_each(|rec| {
            got.push((rec.lsn(), rec.end_lsn()));
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(end, ReadEnd::ReachedEnd);
    assert_eq!(got, all[10..=20].to_vec());
    // Not at a segment boundary, not WAL.
    let e = WalReader::builder()
        .stream_name("standard input")
        .open_stream(&raw[8192..])
        .unwrap_err();
    assert!(matches!(e, ReaderError::StreamNotWal { .. }), "{e:?}");
    assert!(e.to_string().starts_with("standard input: "), "{e}");
}

/// A tar archive (`tar` makes it, as `pg_basebackup -Ft` would: members under `pg_wal/`, a
/// non-WAL member first) reads like its directory; the extracted copy goes with the reader.
#[test]
fn a_tar_archive_reads_like_its_directory_and_leaves_nothing() {
    let dir = testdata("pg17");
    let tmp = tempfile::tempdir().unwrap();
    let wal = tmp.path().join("pg_wal");
    std::fs::create_dir(&wal).unwrap();
    let mut names = vec!["PG_VERSION".to_owned()];
    std::fs::write(tmp.path().join("PG_VERSION"), "17\n").unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        if name.len() == 24 {
            std::fs::copy(e.path(), wal.join(&name)).unwrap();
            names.push(format!("pg_wal/{name}"));
        }
    }
    let archive = tmp.path().join("base.tar");
    let st = std::process::Command::new("tar")
        .arg("--format=ustar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(tmp.path())
        .args(&names)
        .status()
        .unwrap();
    assert!(st.success());
    let dups = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = dups.clone();
    let mut r = WalReader::builder()
        .on_tar_duplicate(move |_| {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        })
        .open(archive.as_path())
        .unwrap();
    // Members are read in place: the reader's directory is the archive itself.
    assert_eq!(r.directory().path(), archive.as_path());
    let (got, _) = lsns(&mut r);
    assert_eq!(got, by_hand(&dir));
    assert_eq!(dups.load(std::sync::atomic::Ordering::Relaxed), 0);
    // A damaged archive is an error naming it.
    let bad = tmp.path().join("bad.tar");
    std::fs::write(&bad, vec![b'x'; 2048]).unwrap();
    let e = WalReader::open(bad.as_path()).unwrap_err();
    assert!(e.to_string().contains("bad.tar"), "{e}");
}
