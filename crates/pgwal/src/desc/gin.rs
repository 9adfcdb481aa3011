//! Gin (rmgr 13) records, as `gindesc.c` describes them (the same text in 13–18; 19 adds the
//! pending-list fields of UPDATE_META_PAGE and INSERT_LISTPAGE and drops the image notes).
//!
//! INSERT and VACUUM_DATA_LEAF_PAGE look into block 0: its full-page image, or its data
//! (an entry tuple, a posting-tree downlink, or the segment actions of a recompressed data
//! leaf page, `desc_recompress_leaf`).

use std::fmt::Write;

use super::util::{i32_at, u16_at, u32_at};
use crate::wal::{PgVersion, Record};

const CREATE_PTREE: u8 = 0x10;
const INSERT: u8 = 0x20;
const SPLIT: u8 = 0x30;
const VACUUM_PAGE: u8 = 0x40;
const DELETE_PAGE: u8 = 0x50;
const UPDATE_META_PAGE: u8 = 0x60;
const INSERT_LISTPAGE: u8 = 0x70;
const DELETE_LISTPAGE: u8 = 0x80;
const VACUUM_DATA_LEAF_PAGE: u8 = 0x90;

/// `GIN_INSERT_ISDATA` (insert and split records).
const ISDATA: u16 = 0x01;
/// `GIN_INSERT_ISLEAF` (insert and split records).
const ISLEAF: u16 = 0x02;
/// `GIN_SPLIT_ROOT` (split records).
const SPLIT_ROOT: u16 = 0x04;

// Segment actions of a recompressed data leaf page (`GIN_SEGMENT_*`).
const SEGMENT_DELETE: u8 = 1;
const SEGMENT_INSERT: u8 = 2;
const SEGMENT_REPLACE: u8 = 3;
const SEGMENT_ADDITEMS: u8 = 4;

/// `sizeof(ItemPointerData)`.
const ITEM_POINTER_SIZE: usize = 6;
/// `offsetof(GinPostingList, bytes)`: `ItemPointerData first; uint16 nbytes`.
const POSTING_LIST_HEADER: usize = 8;
/// `offsetof(ginxlogDeleteListPages, ndeleted)`, after a `GinMetaPageData`.
const DELETE_LISTPAGES_NDELETED: usize = 56;
/// `offsetof(ginxlogSplit, flags)`, after a `RelFileNode` and three `BlockNumber`s.
const SPLIT_FLAGS: usize = 24;
/// `offsetof(ginxlogUpdateMeta, prevTail)`: a `RelFileLocator`, then the 8-aligned
/// `GinMetaPageData` (56 bytes); `newRightlink` and `ntuples` follow.
const UPDATE_META_PREV_TAIL: usize = 72;
/// `InvalidBlockNumber`.
const INVALID_BLOCK: u32 = u32::MAX;

/// `gin_identify` (the same names in 13–18).
pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    Some(match info & 0xF0 {
        CREATE_PTREE => "CREATE_PTREE",
        INSERT => "INSERT",
        SPLIT => "SPLIT",
        VACUUM_PAGE => "VACUUM_PAGE",
        VACUUM_DATA_LEAF_PAGE => "VACUUM_DATA_LEAF_PAGE",
        DELETE_PAGE => "DELETE_PAGE",
        UPDATE_META_PAGE => "UPDATE_META_PAGE",
        INSERT_LISTPAGE => "INSERT_LISTPAGE",
        DELETE_LISTPAGE => "DELETE_LISTPAGE",
        _ => return None,
    })
}

/// `gin_desc`. Stops where the record's data runs out.
pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let _ = describe(out, rec);
}

fn describe(out: &mut String, rec: &Record<'_>) -> Option<()> {
    let d = rec.main_data();
    match rec.info() & 0xF0 {
        INSERT => insert(out, rec, d)?,
        SPLIT => {
            let flags = u16_at(d, SPLIT_FLAGS)?;
            let _ = write!(
                out,
                "isrootsplit: {} isdata: {} isleaf: {}",
                tf(flags & SPLIT_ROOT),
                tf(flags & ISDATA),
                tf(flags & ISLEAF)
            );
        }
        VACUUM_DATA_LEAF_PAGE => vacuum_data_leaf(out, rec)?,
        DELETE_LISTPAGE => {
            let _ = write!(out, "ndeleted: {}", i32_at(d, DELETE_LISTPAGES_NDELETED)?);
        }
        UPDATE_META_PAGE if rec.version() >= PgVersion::V19 => {
            let at = UPDATE_META_PREV_TAIL;
            let (prev_tail, right) = (u32_at(d, at)?, u32_at(d, at + 4)?);
            let _ = write!(out, "ntuples: {}", i32_at(d, at + 8)?);
            block_if_valid(out, " prevTail", prev_tail);
            block_if_valid(out, " newRightlink", right);
        }
        INSERT_LISTPAGE if rec.version() >= PgVersion::V19 => {
            // ginxlogInsertListPage {BlockNumber rightlink; int32 ntuples}
            let right = u32_at(d, 0)?;
            let _ = write!(out, "ntuples: {}", i32_at(d, 4)?);
            block_if_valid(out, " rightlink", right);
        }
        // CREATE_PTREE, VACUUM_PAGE, DELETE_PAGE and (before 19) UPDATE_META_PAGE and
        // INSERT_LISTPAGE: no text.
        _ => {}
    }
    Some(())
}

/// `XLOG_GIN_INSERT`: `ginxlogInsert {uint16 flags}`, then on internal pages the left and right
/// child `BlockIdData`s; block 0's data is a `ginxlogInsertEntry` (entry pages), a
/// `ginxlogRecompressDataLeaf` (data leaves) or a `ginxlogInsertDataInternal` (data internal
/// pages).
fn insert(out: &mut String, rec: &Record<'_>, d: &[u8]) -> Option<()> {
    let flags = u16_at(d, 0)?;
    let _ = write!(
        out,
        "isdata: {} isleaf: {}",
        tf(flags & ISDATA),
        tf(flags & ISLEAF)
    );
    if flags & ISLEAF == 0 {
        let (left, right) = (block_id(d, 2)?, block_id(d, 6)?);
        let _ = write!(out, " children: {left}/{right}");
    }
    if full_page_image(out, rec) {
        return Some(());
    }
    let payload = rec.block(0)?.data();
    if flags & ISDATA == 0 {
        // ginxlogInsertEntry {OffsetNumber offset; bool isDelete; IndexTupleData tuple}
        let _ = write!(out, " isdelete: {}", tf(u16::from(*payload.get(2)?)));
    } else if flags & ISLEAF != 0 {
        recompress_leaf(out, payload)?;
    } else {
        // ginxlogInsertDataInternal {OffsetNumber offset; PostingItem newitem}, PostingItem
        // being {BlockIdData child_blkno; ItemPointerData key}.
        let (child, blk, off) = (
            block_id(payload, 2)?,
            block_id(payload, 6)?,
            u16_at(payload, 10)?,
        );
        let _ = write!(out, " pitem: {child}-{blk}/{off}");
    }
    Some(())
}

/// `XLOG_GIN_VACUUM_DATA_LEAF_PAGE`: block 0's image note, or the segment actions of its
/// `ginxlogVacuumDataLeafPage {ginxlogRecompressDataLeaf data}`.
fn vacuum_data_leaf(out: &mut String, rec: &Record<'_>) -> Option<()> {
    if full_page_image(out, rec) {
        return Some(());
    }
    recompress_leaf(out, rec.block(0)?.data())
}

/// `label: block` when `block` is a valid block number.
fn block_if_valid(out: &mut String, label: &str, block: u32) {
    if block != INVALID_BLOCK {
        let _ = write!(out, "{label}: {block}");
    }
}

/// Whether block 0 has an image (then its data is not described); before 19 a note says so.
fn full_page_image(out: &mut String, rec: &Record<'_>) -> bool {
    let Some(image) = rec.block(0).and_then(|b| b.image()) else {
        return false;
    };
    if rec.version() >= PgVersion::V19 {
        return true;
    }
    out.push_str(if image.flags.apply {
        " (full page image)"
    } else {
        " (full page image, for WAL verification)"
    });
    true
}

/// `desc_recompress_leaf`: ` %d segments:` and each action of a `ginxlogRecompressDataLeaf`
/// {uint16 nactions; then per action uint8 segno, uint8 action and its payload}.
fn recompress_leaf(out: &mut String, data: &[u8]) -> Option<()> {
    let nactions = u16_at(data, 0)?;
    let _ = write!(out, " {nactions} segments:");
    let mut at = 2;
    for _ in 0..nactions {
        let (segno, action) = (*data.get(at)?, *data.get(at + 1)?);
        at += 2;
        match action {
            SEGMENT_ADDITEMS => {
                let nitems = u16_at(data, at)?;
                let _ = write!(out, " {segno} (add {nitems} items)");
                at += 2 + usize::from(nitems) * ITEM_POINTER_SIZE;
            }
            SEGMENT_DELETE => {
                let _ = write!(out, " {segno} (delete)");
            }
            SEGMENT_INSERT | SEGMENT_REPLACE => {
                let what = if action == SEGMENT_INSERT {
                    "insert"
                } else {
                    "replace"
                };
                let _ = write!(out, " {segno} ({what})");
                // Skip the new GinPostingList: SizeOfGinPostingList, SHORTALIGNed.
                let nbytes = usize::from(u16_at(data, at + ITEM_POINTER_SIZE)?);
                at += short_align(POSTING_LIST_HEADER + short_align(nbytes));
            }
            _ => {
                // Unrecognized actions cannot be decoded further.
                let _ = write!(out, " {segno} unknown action {action} ???");
                return Some(());
            }
        }
    }
    Some(())
}

/// `BlockIdGetBlockNumber` of the `BlockIdData` {uint16 bi_hi; uint16 bi_lo} at `at`.
fn block_id(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16_at(b, at)?) << 16 | u32::from(u16_at(b, at + 2)?))
}

/// `SHORTALIGN`.
fn short_align(n: usize) -> usize {
    (n + 1) & !1
}

/// A flag test printed as `%c` of `set ? 'T' : 'F'`.
fn tf(set: u16) -> char {
    if set != 0 {
        'T'
    } else {
        'F'
    }
}
