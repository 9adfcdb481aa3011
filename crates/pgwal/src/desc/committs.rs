//! CommitTs (rmgr 18): commit-timestamp SLRU records (`committsdesc.c`). 13 also knows the
//! (never written) SETTS record; page numbers are `int64` from 17.

use std::fmt::Write;

use super::clog::slru_page;
use super::util::{i64_at, u16_at, u32_at};
use crate::wal::{PgVersion, Record};

const ZEROPAGE: u8 = 0x00;
const TRUNCATE: u8 = 0x10;
const SETTS: u8 = 0x20;

/// Note: `commit_ts_identify` switches on the raw `xl_info`, low bits included.
pub(crate) fn identify(version: PgVersion, info: u8) -> Option<&'static str> {
    match info {
        ZEROPAGE => Some("ZEROPAGE"),
        TRUNCATE => Some("TRUNCATE"),
        SETTS if version == PgVersion::V13 => Some("SETTS"),
        _ => None,
    }
}

pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let (version, d) = (rec.version(), rec.main_data());
    match rec.info() & 0xF0 {
        ZEROPAGE => {
            if let Some((page, _)) = slru_page(version, d) {
                let _ = write!(out, "{page}");
            }
        }
        TRUNCATE => {
            // xl_commit_ts_truncate { pageno; TransactionId oldestXid; }
            if let Some((page, next)) = slru_page(version, d) {
                if let Some(oldest) = u32_at(d, next) {
                    let _ = write!(out, "pageno {page}, oldestXid {oldest}");
                }
            }
        }
        SETTS if version == PgVersion::V13 => {
            let _ = setts(out, d);
        }
        _ => {}
    }
}

/// 13's `xl_commit_ts_set { TimestampTz timestamp; RepOriginId nodeid; TransactionId mainxid; }`
/// followed by subtransaction ids up to the end of the data.
fn setts(out: &mut String, d: &[u8]) -> Option<()> {
    const SIZE_OF_SET: usize = 16;
    let (ts, node, main) = (i64_at(d, 0)?, u16_at(d, 8)?, u32_at(d, 12)?);
    let _ = write!(
        out,
        "set {}/{node} for: {main}",
        super::util::timestamptz_to_str(ts)
    );
    for x in d.get(SIZE_OF_SET..).unwrap_or(&[]).chunks_exact(4) {
        let _ = write!(out, ", {}", u32::from_le_bytes([x[0], x[1], x[2], x[3]]));
    }
    Some(())
}
