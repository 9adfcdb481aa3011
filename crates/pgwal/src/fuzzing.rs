//! Entry points for the fuzz targets under `fuzz/` (not a stable API).

use crate::lsn::Lsn;
use crate::segment::WalSegSize;
use crate::wal::{DecoderConfig, WalDecoder};

/// Feeds `data` to a decoder as WAL starting at a segment boundary, cut into pieces whose sizes
/// come from the last four bytes, and walks every record, block and image. Must never panic, hang
/// or allocate beyond the input.
pub fn decode_wal(data: &[u8]) {
    let _ = decode_wal_records(data);
}

/// [`decode_wal`], returning how many records were decoded (over both start points).
fn decode_wal_records(data: &[u8]) -> usize {
    let mut records = 0;
    // The last four bytes choose the piece sizes, so that a real WAL file is a seed as it is.
    let (wal, cuts) = data.split_at(data.len().saturating_sub(4));
    let step = |i: usize| usize::from(*cuts.get(i % cuts.len().max(1)).unwrap_or(&255)).max(1) * 37;
    // Read position and segment size from the first page header when they are plausible, so
    // real WAL seeds decode deeply; otherwise use fixed ones.
    let header = crate::wal::PageHeader::parse(wal);
    let seg = header
        .and_then(|h| h.long)
        .and_then(|l| WalSegSize::new(l.seg_size))
        .unwrap_or(WalSegSize::new(1 << 20).unwrap_or(WalSegSize::DEFAULT));
    let base = header
        .map(|h| h.pageaddr.page_start(8192))
        .unwrap_or(Lsn(0x100_0000));
    for start in [base, Lsn(0x100_2000)] {
        let full = feed(DecoderConfig::new(seg), start, wal, &step, |rec| {
            let mut s = String::new();
            crate::desc::describe(&mut s, rec);
            for b in rec.blocks() {
                let _ = b.data();
                if let Some(img) = b.image() {
                    let _ = crate::wal::restore_block_image(&img);
                }
            }
        });
        records += full.iter().filter(|r| r.is_ok()).count();
        // A decoder that keeps no block references (`dump --stats`) accepts and refuses the
        // same records, at the same places.
        let counting = DecoderConfig {
            block_refs: false,
            ..DecoderConfig::new(seg)
        };
        let counted = feed(counting, start, wal, &step, |rec| {
            assert_eq!(rec.blocks().len(), 0, "a counting decoder kept blocks");
        });
        assert_eq!(full, counted, "counting decoder differs from the full one");
        // A decoder that only checks records cut by a piece's end (`pgwal receive`) accepts
        // and refuses the same records too (their data is not kept, so not compared).
        let checking = DecoderConfig {
            keep_record_data: false,
            ..DecoderConfig::new(seg)
        };
        let checked = feed(checking, start, wal, &step, |_| {});
        let sans_data = |v: &[Result<Summary, crate::wal::WalError>]| {
            v.iter()
                .map(|r| r.clone().map(|(l, e, t, f, _)| (l, e, t, f)))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            sans_data(&full),
            sans_data(&checked),
            "checking decoder differs from the full one"
        );
        if matches!(full.last(), Some(Err(_))) {
            return records;
        }
    }
    records
}

/// Feeds `wal` to a decoder made with `cfg` at `start`, in pieces of `step(i)` bytes, handing
/// each record to `visit`; returns what a counting caller sees of each record, and the error
/// that stopped the decoder if one did.
fn feed(
    cfg: DecoderConfig,
    start: Lsn,
    wal: &[u8],
    step: &dyn Fn(usize) -> usize,
    mut visit: impl FnMut(&crate::wal::Record<'_>),
) -> Vec<Result<Summary, crate::wal::WalError>> {
    let mut out = Vec::new();
    let mut d = WalDecoder::new(cfg, start);
    let (mut rest, mut i) = (wal, 0);
    while !rest.is_empty() {
        let n = step(i).min(rest.len());
        let (mut piece, tail) = rest.split_at(n);
        rest = tail;
        i += 1;
        loop {
            match d.decode(&mut piece) {
                Ok(Some(rec)) => {
                    out.push(Ok(summary(&rec)));
                    visit(&rec);
                }
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }
    out
}

/// Position, end, total and image lengths, and main data of a record.
type Summary = (Lsn, Lsn, u32, u32, Vec<u8>);

/// What a counting caller sees of a record: position, end, lengths, main data.
fn summary(rec: &crate::wal::Record<'_>) -> Summary {
    (
        rec.lsn(),
        rec.end_lsn(),
        rec.total_len(),
        rec.fpi_len(),
        rec.main_data().to_vec(),
    )
}

/// Parses `data` as a WAL file name and as a history file; formatting must round-trip.
pub fn names(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(n) = crate::WalFileName::parse(s) {
            assert_eq!(n.to_string(), s, "file names must round-trip");
        }
        if let Ok(l) = s.parse::<Lsn>() {
            assert_eq!(l.to_string().parse::<Lsn>().ok(), Some(l));
        }
    }
    let _ = crate::TimelineHistory::parse(data);
}

/// Parses `data` as a connection string or URI (in a fixed environment: no `PG*` variables, no
/// home directory, no service file read), as a service file and as a password file looked up
/// with a few names. Must never panic.
#[cfg(feature = "replication")]
pub fn conninfo(data: &[u8]) {
    use crate::conninfo::{Config, ConnInfo, MapEnvironment, PassFile};
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let env = MapEnvironment::new()
        .with_user("fuzz")
        .with_home("/nonexistent/pgwal-fuzz");
    if let Ok(mut info) = ConnInfo::parse(s) {
        // No file is read: the input as a service file instead.
        info.remove("service");
        info.remove("servicefile");
        match Config::from_conninfo(&info, &env) {
            Ok(c) => {
                let _ = format!("{c:?}");
                let _ = c.effective_application_name();
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
    let mut info = ConnInfo::default();
    let _ = crate::conninfo::service::group_from_text(
        s,
        std::path::Path::new("pg_service.conf"),
        "a",
        &mut info,
    );
    let file = PassFile::parse(s);
    let _ = file.find("localhost", "5432", "replication", "fuzz");
    let _ = file.find("db:1", "*", "\\", "*");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The connection-string target's entry point on a few inputs of each kind.
    #[cfg(feature = "replication")]
    #[test]
    fn conninfo_inputs_never_panic() {
        for s in [
            "host=a,b port=1,2 user=u password='x\\' y' max_protocol_version=latest",
            "postgresql://u:p%41@[::1]:5432,h2/db?sslmode=require&application_name=x",
            "postgresql://[::1",
            "host=h min_protocol_version=3.2 max_protocol_version=3.0",
            "localhost:5432:*:fuzz:se\\:cret\n#c\n*:*:*:*:x",
            "\u{0}=\u{0}",
        ] {
            conninfo(s.as_bytes());
        }
        conninfo(&[0xFF, 0xFE]);
    }

    /// The start of a real segment, as the fuzzing README makes seeds, decodes many records;
    /// and the seeds cover every major the decoder knows (a new major's `testdata/wal` sample
    /// is its seed).
    #[test]
    fn real_wal_seeds_decode_deeply() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/wal");
        let mut seeds = 0;
        let mut majors = std::collections::BTreeSet::new();
        for dir in std::fs::read_dir(&root).expect("testdata/wal") {
            let dir = dir.expect("entry").path();
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .expect("sample dir")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('0'))
                })
                .collect();
            files.sort();
            let Some(first) = files.first() else { continue };
            let mut data = std::fs::read(first).expect("segment");
            data.truncate(65536);
            let n = decode_wal_records(&data);
            assert!(n > 50, "{}: only {n} records decoded", first.display());
            let info = crate::storage::probe::probe_segment(&data).expect("a seed's first page");
            majors.insert(info.version.major());
            seeds += 1;
        }
        let all: std::collections::BTreeSet<u32> = crate::wal::PgVersion::ALL
            .iter()
            .map(|v| v.major())
            .collect();
        assert_eq!(majors, all, "fuzz seeds (testdata/wal samples) per major");
        assert!(
            seeds >= all.len(),
            "expected a sample per major, found {seeds}"
        );
    }
}
