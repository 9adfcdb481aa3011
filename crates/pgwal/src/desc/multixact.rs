//! MultiXact (rmgr 6): multixact SLRU records (`mxactdesc.c`). Page numbers are `int64`
//! from 17; member offsets (`MultiXactOffset`) are 64-bit from 19.

use std::fmt::Write;

use super::clog::slru_page;
use super::util::{i32_at, u32_at, u64_at};
use crate::wal::{PgVersion, Record};

const ZERO_OFF_PAGE: u8 = 0x00;
const ZERO_MEM_PAGE: u8 = 0x10;
const CREATE_ID: u8 = 0x20;
const TRUNCATE_ID: u8 = 0x30;

pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    Some(match info & 0xF0 {
        ZERO_OFF_PAGE => "ZERO_OFF_PAGE",
        ZERO_MEM_PAGE => "ZERO_MEM_PAGE",
        CREATE_ID => "CREATE_ID",
        TRUNCATE_ID => "TRUNCATE_ID",
        _ => return None,
    })
}

pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let (version, d) = (rec.version(), rec.main_data());
    let _ = match rec.info() & 0xF0 {
        ZERO_OFF_PAGE | ZERO_MEM_PAGE => slru_page(version, d).map(|(page, _)| {
            let _ = write!(out, "{page}");
        }),
        CREATE_ID => create(out, version, d),
        TRUNCATE_ID if version >= PgVersion::V19 => (|| {
            // 19: xl_multixact_truncate { Oid oldestMultiDB; MultiXactId oldestMulti;
            // MultiXactOffset oldestOffset (64-bit, 8-aligned); }
            let (multi, offset) = (u32_at(d, 4)?, u64_at(d, 8)?);
            let _ = write!(out, "oldestMulti {multi}, oldestOffset {offset}");
            Some(())
        })(),
        TRUNCATE_ID => (|| {
            // xl_multixact_truncate { Oid oldestMultiDB; MultiXactId startTruncOff,
            // endTruncOff; MultiXactOffset startTruncMemb, endTruncMemb; }
            let (so, eo, sm, em) = (u32_at(d, 4)?, u32_at(d, 8)?, u32_at(d, 12)?, u32_at(d, 16)?);
            let _ = write!(out, "offsets [{so}, {eo}), members [{sm}, {em})");
            Some(())
        })(),
        _ => None,
    };
}

/// `xl_multixact_create { MultiXactId mid; MultiXactOffset moff; int32 nmembers;
/// MultiXactMember { TransactionId xid; MultiXactStatus status; } members[]; }`; in 19 `moff`
/// is 64-bit and 8-aligned (at 8, so `nmembers` at 16 and the members at 20).
fn create(out: &mut String, version: PgVersion, d: &[u8]) -> Option<()> {
    let (moff, n, members) = if version >= PgVersion::V19 {
        (u64_at(d, 8)?, i32_at(d, 16)?, 20)
    } else {
        (u64::from(u32_at(d, 4)?), i32_at(d, 8)?, 12)
    };
    let mid = u32_at(d, 0)?;
    let _ = write!(out, "{mid} offset {moff} nmembers {n}: ");
    for m in d
        .get(members..)?
        .chunks_exact(8)
        .take(usize::try_from(n).unwrap_or(0))
    {
        let (xid, status) = (u32_at(m, 0)?, i32_at(m, 4)?);
        let status = match status {
            0 => "keysh",
            1 => "sh",
            2 => "fornokeyupd",
            3 => "forupd",
            4 => "nokeyupd",
            5 => "upd",
            _ => "unk",
        };
        let _ = write!(out, "{xid} ({status}) ");
    }
    Some(())
}
