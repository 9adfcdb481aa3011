//! BRIN (rmgr 17) records, as `brindesc.c` describes them (the same text in 13–18).
//!
//! The record type is `info & XLOG_BRIN_OPMASK` (0x70); bit 0x80 (`XLOG_BRIN_INIT_PAGE`) marks
//! INSERT and UPDATE records that initialise their page, named `+INIT`.

use std::fmt::Write;

use super::util::{u16_at, u32_at};
use crate::wal::{PgVersion, Record};

const CREATE_INDEX: u8 = 0x00;
const INSERT: u8 = 0x10;
const UPDATE: u8 = 0x20;
const SAMEPAGE_UPDATE: u8 = 0x30;
const REVMAP_EXTEND: u8 = 0x40;
const DESUMMARIZE: u8 = 0x50;
/// `XLOG_BRIN_OPMASK`.
const OPMASK: u8 = 0x70;
/// `XLOG_BRIN_INIT_PAGE`.
const INIT_PAGE: u8 = 0x80;
const INSERT_INIT: u8 = INSERT | INIT_PAGE;
const UPDATE_INIT: u8 = UPDATE | INIT_PAGE;

/// `brin_identify` (the same names in 13–18).
pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    Some(match info & 0xF0 {
        CREATE_INDEX => "CREATE_INDEX",
        INSERT => "INSERT",
        INSERT_INIT => "INSERT+INIT",
        UPDATE => "UPDATE",
        UPDATE_INIT => "UPDATE+INIT",
        SAMEPAGE_UPDATE => "SAMEPAGE_UPDATE",
        REVMAP_EXTEND => "REVMAP_EXTEND",
        DESUMMARIZE => "DESUMMARIZE",
        _ => return None,
    })
}

/// `brin_desc`. Appends nothing for a record whose main data is cut short.
pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let _ = describe(out, rec.info(), rec.main_data());
}

fn describe(out: &mut String, info: u8, d: &[u8]) -> Option<()> {
    let _ = match info & OPMASK {
        // xl_brin_createidx {BlockNumber pagesPerRange; uint16 version}
        CREATE_INDEX => {
            let (ppr, version) = (u32_at(d, 0)?, u16_at(d, 4)?);
            write!(out, "v{version} pagesPerRange {ppr}")
        }
        // xl_brin_insert {BlockNumber heapBlk; BlockNumber pagesPerRange; OffsetNumber offnum}
        INSERT => {
            let (blk, ppr, off) = (u32_at(d, 0)?, u32_at(d, 4)?, u16_at(d, 8)?);
            write!(out, "heapBlk {blk} pagesPerRange {ppr} offnum {off}")
        }
        // xl_brin_update {OffsetNumber oldOffnum; xl_brin_insert insert (at 4)}
        UPDATE => {
            let (old, blk, ppr, new) =
                (u16_at(d, 0)?, u32_at(d, 4)?, u32_at(d, 8)?, u16_at(d, 12)?);
            write!(
                out,
                "heapBlk {blk} pagesPerRange {ppr} old offnum {old}, new offnum {new}"
            )
        }
        // xl_brin_samepage_update {OffsetNumber offnum}
        SAMEPAGE_UPDATE => write!(out, "offnum {}", u16_at(d, 0)?),
        // xl_brin_revmap_extend {BlockNumber targetBlk}
        REVMAP_EXTEND => write!(out, "targetBlk {}", u32_at(d, 0)?),
        // xl_brin_desummarize {BlockNumber pagesPerRange; BlockNumber heapBlk; OffsetNumber regOffset}
        DESUMMARIZE => {
            let (ppr, blk, off) = (u32_at(d, 0)?, u32_at(d, 4)?, u16_at(d, 8)?);
            write!(out, "pagesPerRange {ppr}, heapBlk {blk}, page offset {off}")
        }
        _ => Ok(()),
    };
    Some(())
}
