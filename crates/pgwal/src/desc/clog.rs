//! CLOG (rmgr 3): commit-log page zeroing and truncation (`clogdesc.c`). Page numbers are
//! `int` up to 16 and `int64` from 17.

use std::fmt::Write;

use super::util::{i32_at, i64_at, u32_at};
use crate::wal::{PgVersion, Record};

const ZEROPAGE: u8 = 0x00;
const TRUNCATE: u8 = 0x10;

pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    match info & 0xF0 {
        ZEROPAGE => Some("ZEROPAGE"),
        TRUNCATE => Some("TRUNCATE"),
        _ => None,
    }
}

/// An SLRU page number at the start of `d` and the offset of what follows it (`int` before
/// 17, `int64` from 17), shared by CLOG, CommitTs and MultiXact.
pub(crate) fn slru_page(version: PgVersion, d: &[u8]) -> Option<(i64, usize)> {
    if version >= PgVersion::V17 {
        Some((i64_at(d, 0)?, 8))
    } else {
        Some((i64::from(i32_at(d, 0)?), 4))
    }
}

pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let (version, d) = (rec.version(), rec.main_data());
    let Some((page, next)) = slru_page(version, d) else {
        return;
    };
    match rec.info() & 0xF0 {
        ZEROPAGE => {
            let _ = write!(out, "page {page}");
        }
        TRUNCATE => {
            // xl_clog_truncate { pageno; TransactionId oldestXact; Oid oldestXactDb; }
            if let Some(oldest) = u32_at(d, next) {
                let _ = write!(out, "page {page}; oldestXact {oldest}");
            }
        }
        _ => {}
    }
}
