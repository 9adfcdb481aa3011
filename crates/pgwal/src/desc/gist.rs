//! Gist (rmgr 14) records, as `gistdesc.c` of each major describes them.
//!
//! PAGE_REUSE and DELETE print `latestRemovedXid` in 13–15, `snapshotConflictHorizon` in 16 and
//! add `isCatalogRel` in 17+; the other records have the same text in 13–18.

use std::fmt::Write;

use super::util::{u16_at, u32_at, u64_at};
use crate::wal::{PgVersion, Record};

const PAGE_UPDATE: u8 = 0x00;
const DELETE: u8 = 0x10;
const PAGE_REUSE: u8 = 0x20;
const PAGE_SPLIT: u8 = 0x30;
const PAGE_DELETE: u8 = 0x60;
const ASSIGN_LSN: u8 = 0x70;

/// `gist_identify` (the same names in 13–18).
pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    Some(match info & 0xF0 {
        PAGE_UPDATE => "PAGE_UPDATE",
        DELETE => "DELETE",
        PAGE_REUSE => "PAGE_REUSE",
        PAGE_SPLIT => "PAGE_SPLIT",
        PAGE_DELETE => "PAGE_DELETE",
        ASSIGN_LSN => "ASSIGN_LSN",
        _ => return None,
    })
}

/// `gist_desc`. Appends nothing for a record whose main data is cut short.
pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let _ = describe(out, rec);
}

fn describe(out: &mut String, rec: &Record<'_>) -> Option<()> {
    let v = rec.version();
    let d = rec.main_data();
    let horizon = if v >= PgVersion::V16 {
        "snapshotConflictHorizon"
    } else {
        "latestRemovedXid"
    };
    match rec.info() & 0xF0 {
        PAGE_REUSE => {
            // gistxlogPageReuse {RelFileNode; BlockNumber block; FullTransactionId (at 16);
            // 16+: bool isCatalogRel}
            let (spc, db, rel, blk) = (u32_at(d, 0)?, u32_at(d, 4)?, u32_at(d, 8)?, u32_at(d, 12)?);
            let fxid = u64_at(d, 16)?;
            let catalog = catalog_rel(v, d, 24)?;
            let _ = write!(
                out,
                "rel {spc}/{db}/{rel}; blk {blk}; {horizon} {}:{}{catalog}",
                fxid >> 32,
                fxid as u32
            );
        }
        DELETE => {
            // gistxlogDelete {TransactionId; uint16 ntodelete; 16+: bool isCatalogRel}
            let (xid, n) = (u32_at(d, 0)?, u16_at(d, 4)?);
            let catalog = catalog_rel(v, d, 6)?;
            let _ = write!(out, "delete: {horizon} {xid}, nitems: {n}{catalog}");
        }
        PAGE_SPLIT => {
            // gistxlogPageSplit {BlockNumber origrlink; GistNSN orignsn; bool origleaf;
            // uint16 npage; ...}
            let _ = write!(out, "page_split: splits to {} pages", u16_at(d, 18)?);
        }
        PAGE_DELETE => {
            // gistxlogPageDelete {FullTransactionId deleteXid; OffsetNumber downlinkOffset}
            let (fxid, downlink) = (u64_at(d, 0)?, u16_at(d, 8)?);
            let _ = write!(
                out,
                "deleteXid {}:{}; downlink {downlink}",
                fxid >> 32,
                fxid as u32
            );
        }
        // PAGE_UPDATE and ASSIGN_LSN: no text.
        _ => {}
    }
    Some(())
}

/// `, isCatalogRel %c` from the bool at `at` in 17+, empty before.
fn catalog_rel(v: PgVersion, d: &[u8], at: usize) -> Option<String> {
    if v < PgVersion::V17 {
        return Some(String::new());
    }
    Some(format!(
        ", isCatalogRel {}",
        if *d.get(at)? != 0 { 'T' } else { 'F' }
    ))
}
