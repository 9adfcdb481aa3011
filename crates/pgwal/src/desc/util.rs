//! Shared helpers for descriptions: little-endian readers, timestamps and relation paths as
//! pg_waldump prints them.

use crate::wal::{Fork, PgVersion, RelFileLocator};

/// `GLOBALTABLESPACE_OID`.
const GLOBAL_TABLESPACE: u32 = 1664;
/// `DEFAULTTABLESPACE_OID`.
const DEFAULT_TABLESPACE: u32 = 1663;

/// Microseconds per second.
const USECS_PER_SEC: i64 = 1_000_000;
/// Seconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
const POSTGRES_EPOCH_UNIX_SECS: i64 = 946_684_800;

/// Formats a `TimestampTz` (µs since 2000-01-01 UTC) as pg_waldump's frontend
/// `timestamptz_to_str` does: local time `%Y-%m-%d %H:%M:%S`, `.%06d` microseconds (C remainder,
/// so negative for times before 2000) and the `%Z` zone abbreviation.
pub(crate) fn timestamptz_to_str(ts: i64) -> String {
    // C integer division truncates toward zero, as Rust's does.
    let secs = ts / USECS_PER_SEC + POSTGRES_EPOCH_UNIX_SECS;
    let usecs = ts % USECS_PER_SEC;
    thread_local! {
        /// The last second formatted: consecutive records mostly share it.
        static LAST: std::cell::RefCell<Option<(i64, String, String)>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.as_ref().is_none_or(|(s, _, _)| *s != secs) {
            let (date, zone) = local_strftime(secs);
            *last = Some((secs, date, zone));
        }
        match last.as_ref() {
            Some((_, date, zone)) => format!("{date}.{usecs:06} {zone}"),
            None => String::new(),
        }
    })
}

extern "C" {
    /// POSIX `tzset` (not bound by the `libc` crate): reads `TZ` as C's `localtime` does.
    fn tzset();
}

/// `strftime("%Y-%m-%d %H:%M:%S")` and `strftime("%Z")` of `localtime(secs)`.
fn local_strftime(secs: i64) -> (String, String) {
    let t = secs as libc::time_t;
    static TZSET: std::sync::Once = std::sync::Once::new();
    // SAFETY: `tzset` has no preconditions; it reads `TZ` once, as pg_waldump's libc does at
    // its first `localtime` call.
    TZSET.call_once(|| unsafe { tzset() });
    // SAFETY: `localtime_r` only writes the `tm` we own; `strftime` writes at most `buf.len()`
    // bytes into `buf` and the format strings are NUL-terminated literals.
    unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            // C's localtime would return NULL too and pg_waldump would crash; print something.
            return (String::from("(invalid)"), String::new());
        }
        let mut buf = [0u8; 129];
        let fmt = |buf: &mut [u8; 129], f: &[u8]| {
            let n = libc::strftime(buf.as_mut_ptr().cast(), buf.len(), f.as_ptr().cast(), &tm);
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        let date = fmt(&mut buf, b"%Y-%m-%d %H:%M:%S\0");
        let zone = fmt(&mut buf, b"%Z\0");
        (date, zone)
    }
}

/// The path of a permanent relation fork relative to the data directory (`relpathperm`):
/// `global/<rel>`, `base/<db>/<rel>` or `pg_tblspc/<spc>/PG_<major>_<catversion>/<db>/<rel>`,
/// plus `_<fork>` for forks other than main.
pub(crate) fn relpath(version: PgVersion, rel: RelFileLocator, fork: Fork) -> String {
    let mut path = match rel.spc {
        GLOBAL_TABLESPACE => format!("global/{}", rel.rel),
        DEFAULT_TABLESPACE => format!("base/{}/{}", rel.db, rel.rel),
        spc => format!(
            "pg_tblspc/{spc}/PG_{}_{}/{}/{}",
            version.major(),
            version.catversion(),
            rel.db,
            rel.rel
        ),
    };
    if fork != Fork::Main {
        path.push('_');
        path.push_str(fork.name());
    }
    path
}

/// `N` bytes of `b` at `at`, if there are that many.
#[inline]
pub(crate) fn bytes_at<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// The byte at `at`.
#[inline]
pub(crate) fn u8_at(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

/// Little-endian `uint16` at `at`.
#[inline]
pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    bytes_at(b, at).map(u16::from_le_bytes)
}

/// Little-endian `uint32` at `at`.
#[inline]
pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    bytes_at(b, at).map(u32::from_le_bytes)
}

/// Little-endian `int32` at `at`.
#[inline]
pub(crate) fn i32_at(b: &[u8], at: usize) -> Option<i32> {
    bytes_at(b, at).map(i32::from_le_bytes)
}

/// Little-endian `uint64` at `at`.
#[inline]
pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    bytes_at(b, at).map(u64::from_le_bytes)
}

/// Little-endian `int64` at `at`.
#[inline]
pub(crate) fn i64_at(b: &[u8], at: usize) -> Option<i64> {
    bytes_at(b, at).map(i64::from_le_bytes)
}

/// The NUL-terminated C string starting at `at`, cut at the end of `b` if unterminated
/// (lossily decoded: PostgreSQL prints the raw bytes).
pub(crate) fn cstr_at(b: &[u8], at: usize) -> std::borrow::Cow<'_, str> {
    let s = b.get(at..).unwrap_or(&[]);
    let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
    String::from_utf8_lossy(&s[..end])
}

/// An LSN as `version`'s descriptions print it (`%X/%X`, from 19 on `%X/%08X`).
pub(crate) fn lsn_str(version: PgVersion, lsn: u64) -> String {
    version.lsn(crate::Lsn(lsn)).to_string()
}

/// The relation at `at` (`RelFileNode`/`RelFileLocator`: tablespace, database, relation).
pub(crate) fn rel_at(b: &[u8], at: usize) -> Option<RelFileLocator> {
    Some(RelFileLocator {
        spc: u32_at(b, at)?,
        db: u32_at(b, at + 4)?,
        rel: u32_at(b, at + 8)?,
    })
}

/// Size of `SharedInvalidationMessage`.
pub(crate) const SIZEOF_INVAL_MSG: usize = 16;

/// Appends the text of `nmsgs` shared-invalidation messages stored at the start of `msgs`
/// (`standby_desc_invalidations`, used by Standby INVALIDATIONS, Transaction COMMIT / PREPARE /
/// INVALIDATION and, in 18, Heap INPLACE): nothing when `nmsgs <= 0`, else an optional
/// `; relcache init file inval dbid %u tsid %u` then `; inval msgs:` and one item per message.
/// Stops early, without panicking, if `msgs` holds fewer messages than `nmsgs`.
pub(crate) fn invalidations_desc(
    out: &mut String,
    version: PgVersion,
    nmsgs: i32,
    msgs: &[u8],
    db: u32,
    ts: u32,
    relcache_init_file_inval: bool,
) {
    use std::fmt::Write;
    if nmsgs <= 0 {
        return;
    }
    if relcache_init_file_inval {
        let _ = write!(out, "; relcache init file inval dbid {db} tsid {ts}");
    }
    out.push_str("; inval msgs:");
    for msg in msgs.chunks_exact(SIZEOF_INVAL_MSG).take(nmsgs as usize) {
        let id = msg[0] as i8;
        // Every message kind keeps its second Oid (catalog, relation) at offset 8.
        let oid8 = u32_at(msg, 8).unwrap_or(0);
        let _ = match id {
            0.. => write!(out, " catcache {id}"),
            -1 => write!(out, " catalog {oid8}"),
            -2 => write!(out, " relcache {oid8}"),
            -3 => write!(out, " smgr"),
            -4 => write!(out, " relmap db {}", u32_at(msg, 4).unwrap_or(0)),
            -5 => write!(out, " snapshot {oid8}"),
            -6 if version >= PgVersion::V18 => write!(out, " relsync {oid8}"),
            _ => write!(out, " unrecognized id {id}"),
        };
    }
}

/// The descriptions of this module's sibling files (XLOG, Transaction, Storage, CLOG, Database,
/// Tablespace, MultiXact, RelMap, Standby, CommitTs, ReplicationOrigin, LogicalMessage)
/// against real pg_waldump output: `testdata/desc/misc/<major>/` holds `wal.zst` (a real WAL
/// segment of that major, see `generate.sh` there) and `waldump.txt.zst` (those resource
/// managers' lines of the reference pg_waldump's output for it).
#[cfg(test)]
mod golden {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use crate::desc;
    use crate::lsn::Lsn;
    use crate::segment::WalSegSize;
    use crate::wal::{DecoderConfig, PgVersion, WalDecoder, RECORD_HEADER_SIZE};

    /// The resource managers described by the files this test covers.
    const RMIDS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 18, 19, 21];

    fn testdata(major: u32) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/desc/misc")
            .join(major.to_string())
    }

    fn unzstd(path: &Path) -> Vec<u8> {
        zstd::decode_all(std::fs::File::open(path).unwrap()).unwrap()
    }

    /// `TYPE desc` (up to the block references) of each line, by LSN.
    fn expected(waldump: &str) -> BTreeMap<u64, String> {
        waldump
            .lines()
            .map(|line| {
                let lsn = line
                    .split("lsn: ")
                    .nth(1)
                    .and_then(|s| s.split(',').next())
                    .unwrap();
                let (hi, lo) = lsn.split_once('/').unwrap();
                let lsn = u64::from_str_radix(hi, 16).unwrap() << 32
                    | u64::from_str_radix(lo, 16).unwrap();
                let desc = line.split_once("desc: ").unwrap().1;
                (lsn, desc.split(", blkref #").next().unwrap().to_string())
            })
            .collect()
    }

    /// Every record of `wal` (a segment from its first page), passed to `f`.
    fn for_each_record(wal: &[u8], mut f: impl FnMut(&crate::wal::Record<'_>)) {
        let start = Lsn(u64::from_le_bytes(wal[8..16].try_into().unwrap()));
        let mut decoder = WalDecoder::new(DecoderConfig::new(WalSegSize::DEFAULT), start);
        let mut input = wal;
        loop {
            match decoder.decode(&mut input) {
                Ok(Some(rec)) => f(&rec),
                Ok(None) => break,
                Err(e) if e.is_end_of_wal() => break,
                Err(e) => panic!("bad WAL: {e}"),
            }
        }
    }

    /// Our `TYPE desc` of every record of the covered resource managers, by LSN.
    fn ours(wal: &[u8]) -> BTreeMap<u64, String> {
        let mut map = BTreeMap::new();
        for_each_record(wal, |rec| {
            if !RMIDS.contains(&rec.rmid()) {
                return;
            }
            let mut text = format!(
                "{} ",
                desc::record_type(rec.version(), rec.rmid(), rec.info())
            );
            desc::describe(&mut text, rec);
            map.insert(rec.lsn().0, text);
        });
        map
    }

    /// 16.2, the reference pg_waldump 16, predates the 16.x fix that made `ParsePrepareRecord`
    /// fill in the dropped-stats counts, so its PREPARE lines lack them; pgwal follows the fix.
    fn without_prepare_stats(desc: &str) -> String {
        desc.split("; ")
            .filter(|part| {
                !part.starts_with("commit dropped stats:")
                    && !part.starts_with("abort dropped stats:")
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn golden(major: u32) {
        let dir = testdata(major);
        let wal = unzstd(&dir.join("wal.zst"));
        let want = expected(&String::from_utf8(unzstd(&dir.join("waldump.txt.zst"))).unwrap());
        let ours = ours(&wal);
        let mut bad = Vec::new();
        for (lsn, want) in &want {
            let got = ours.get(lsn).map(|g| {
                if major == 16 && g.starts_with("PREPARE ") {
                    without_prepare_stats(g)
                } else {
                    g.clone()
                }
            });
            if got.as_ref() != Some(want) {
                bad.push(format!(
                    "{:X}/{:08X}\n  want: {want}\n  got:  {got:?}",
                    lsn >> 32,
                    *lsn as u32
                ));
            }
        }
        // 14's expected output leaves out lines with tablespace paths (see generate.sh).
        let skipped = ours
            .iter()
            .filter(|(l, d)| !(want.contains_key(l) || major == 14 && d.contains("pg_tblspc/")));
        for (lsn, _) in skipped {
            bad.push(format!(
                "{:X}/{:08X}: decoded but not in pg_waldump output",
                lsn >> 32,
                *lsn as u32
            ));
        }
        assert!(
            bad.is_empty(),
            "{} mismatches of {}:\n{}",
            bad.len(),
            want.len(),
            bad[..bad.len().min(20)].join("\n")
        );
        assert!(want.len() > 1000, "{}", want.len());
    }

    #[test]
    fn golden_13() {
        golden(13);
    }
    #[test]
    fn golden_14() {
        golden(14);
    }
    #[test]
    fn golden_15() {
        golden(15);
    }
    #[test]
    fn golden_16() {
        golden(16);
    }
    #[test]
    fn golden_17() {
        golden(17);
    }
    #[test]
    fn golden_18() {
        golden(18);
    }
    #[test]
    fn golden_19() {
        golden(19);
    }

    /// Every sample record of the covered resource managers, its main data cut at every length
    /// and also overwritten with 0xFF, described as every major: no panics.
    #[test]
    fn malformed_data_never_panics() {
        let mut described = 0;
        for major in [13, 18, 19] {
            let wal = unzstd(&testdata(major).join("wal.zst"));
            for_each_record(&wal, |rec| {
                if !RMIDS.contains(&rec.rmid()) {
                    return;
                }
                let mut ff = rec.bytes().to_vec();
                ff[RECORD_HEADER_SIZE..].fill(0xFF);
                for bytes in [rec.bytes(), &ff[..]] {
                    for version in PgVersion::ALL {
                        for main_len in 0..=rec.layout.main_len.min(600) {
                            let mut r = *rec;
                            let mut layout = *rec.layout;
                            layout.main_len = main_len;
                            r.bytes = crate::wal::span::RecordBytes::Flat(bytes);
                            r.version = version;
                            r.layout = &layout;
                            let mut out = String::new();
                            desc::describe(&mut out, &r);
                            described += 1;
                        }
                    }
                }
            });
        }
        assert!(described > 100_000, "{described}");
    }
}
