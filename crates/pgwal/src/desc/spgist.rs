//! SPGist (rmgr 16) records, as `spgdesc.c` of each major describes them.
//!
//! 13 prints short texts (`add leaf to page; off %u; ...`, `%u leafs`, `newest XID %u`); 14
//! rewrote them as `key: value` lists; VACUUM_REDIRECT's XID is `newestredirectxid` in 14–15,
//! `snapshotConflictHorizon` in 16, and 17+ add `isCatalogRel`.

use std::fmt::Write;

use super::util::{u16_at, u32_at};
use crate::wal::{PgVersion, Record};

const ADD_LEAF: u8 = 0x10;
const MOVE_LEAFS: u8 = 0x20;
const ADD_NODE: u8 = 0x30;
const SPLIT_TUPLE: u8 = 0x40;
const PICKSPLIT: u8 = 0x50;
const VACUUM_LEAF: u8 = 0x60;
const VACUUM_ROOT: u8 = 0x70;
const VACUUM_REDIRECT: u8 = 0x80;

/// `spg_identify` (the same names in 13–18).
pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    Some(match info & 0xF0 {
        ADD_LEAF => "ADD_LEAF",
        MOVE_LEAFS => "MOVE_LEAFS",
        ADD_NODE => "ADD_NODE",
        SPLIT_TUPLE => "SPLIT_TUPLE",
        PICKSPLIT => "PICKSPLIT",
        VACUUM_LEAF => "VACUUM_LEAF",
        VACUUM_ROOT => "VACUUM_ROOT",
        VACUUM_REDIRECT => "VACUUM_REDIRECT",
        _ => return None,
    })
}

/// `spg_desc`. Appends nothing for a record whose main data is cut short.
pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let d = rec.main_data();
    let info = rec.info() & 0xF0;
    let _ = if rec.version() == PgVersion::V13 {
        describe13(out, info, d)
    } else {
        describe(out, rec.version(), info, d)
    };
}

// Field offsets of the spgxlog structs (the same in 13–18):
// spgxlogAddLeaf {bool newPage; bool storesNulls; OffsetNumber offnumLeaf, offnumHeadLeaf,
//   offnumParent; uint16 nodeI}
// spgxlogMoveLeafs {uint16 nMoves; bool newPage, replaceDead, storesNulls; OffsetNumber
//   offnumParent (6); uint16 nodeI}
// spgxlogAddNode {OffsetNumber offnum, offnumNew; bool newPage; int8 parentBlk; OffsetNumber
//   offnumParent; uint16 nodeI}
// spgxlogSplitTuple {OffsetNumber offnumPrefix, offnumPostfix; bool newPage, postfixBlkSame}
// spgxlogPickSplit {bool isRootSplit; uint16 nDelete, nInsert; bool initSrc, initDest;
//   OffsetNumber offnumInner; bool initInner, storesNulls, innerIsParent; OffsetNumber
//   offnumParent (14); uint16 nodeI}
// spgxlogVacuumLeaf {uint16 nDead, nPlaceholder, nMove, nChain}
// spgxlogVacuumRoot {uint16 nDelete}
// spgxlogVacuumRedirect {uint16 nToPlaceholder; OffsetNumber firstPlaceholder; TransactionId
//   (4); 16+: bool isCatalogRel}

/// 14+ texts.
fn describe(out: &mut String, v: PgVersion, info: u8, d: &[u8]) -> Option<()> {
    match info {
        ADD_LEAF => {
            let f = [u16_at(d, 2)?, u16_at(d, 4)?, u16_at(d, 6)?, u16_at(d, 8)?];
            let (new_page, nulls) = (flag(d, 0)?, flag(d, 1)?);
            let [off, head, parent, node] = f;
            let _ = write!(
                out,
                "off: {off}, headoff: {head}, parentoff: {parent}, nodeI: {node}"
            );
            note(out, new_page, " (newpage)");
            note(out, nulls, " (nulls)");
        }
        MOVE_LEAFS => {
            let (n, parent, node) = (u16_at(d, 0)?, u16_at(d, 6)?, u16_at(d, 8)?);
            let (new_page, dead, nulls) = (flag(d, 2)?, flag(d, 3)?, flag(d, 4)?);
            let _ = write!(out, "nmoves: {n}, parentoff: {parent}, nodeI: {node}");
            note(out, new_page, " (newpage)");
            note(out, dead, " (replacedead)");
            note(out, nulls, " (nulls)");
        }
        ADD_NODE => {
            let (off, new_off, new_page) = (u16_at(d, 0)?, u16_at(d, 2)?, flag(d, 4)?);
            let parent_blk = *d.get(5)? as i8;
            let (parent, node) = (u16_at(d, 6)?, u16_at(d, 8)?);
            let _ = write!(
                out,
                "off: {off}, newoff: {new_off}, parentBlk: {parent_blk}, parentoff: {parent}, nodeI: {node}"
            );
            note(out, new_page, " (newpage)");
        }
        SPLIT_TUPLE => {
            let (prefix, postfix) = (u16_at(d, 0)?, u16_at(d, 2)?);
            let (new_page, same) = (flag(d, 4)?, flag(d, 5)?);
            let _ = write!(out, "prefixoff: {prefix}, postfixoff: {postfix}");
            note(out, new_page, " (newpage)");
            note(out, same, " (same)");
        }
        PICKSPLIT => {
            let f = [
                u16_at(d, 2)?,
                u16_at(d, 4)?,
                u16_at(d, 8)?,
                u16_at(d, 14)?,
                u16_at(d, 16)?,
            ];
            let (root, nulls, inner_parent) = (flag(d, 0)?, flag(d, 11)?, flag(d, 12)?);
            let [ndelete, ninsert, inner, parent, node] = f;
            let _ = write!(
                out,
                "ndelete: {ndelete}, ninsert: {ninsert}, inneroff: {inner}, parentoff: {parent}, nodeI: {node}"
            );
            note(out, inner_parent, " (innerIsParent)");
            note(out, nulls, " (nulls)");
            note(out, root, " (isRootSplit)");
        }
        VACUUM_LEAF => {
            let f = [u16_at(d, 0)?, u16_at(d, 2)?, u16_at(d, 4)?, u16_at(d, 6)?];
            let [dead, placeholder, moved, chain] = f;
            let _ = write!(
                out,
                "ndead: {dead}, nplaceholder: {placeholder}, nmove: {moved}, nchain: {chain}"
            );
        }
        VACUUM_ROOT => {
            let _ = write!(out, "ndelete: {}", u16_at(d, 0)?);
        }
        VACUUM_REDIRECT => {
            let (n, first, xid) = (u16_at(d, 0)?, u16_at(d, 2)?, u32_at(d, 4)?);
            let _ = match v {
                PgVersion::V13 | PgVersion::V14 | PgVersion::V15 => write!(
                    out,
                    "ntoplaceholder: {n}, firstplaceholder: {first}, newestredirectxid: {xid}"
                ),
                PgVersion::V16 => write!(
                    out,
                    "ntoplaceholder: {n}, firstplaceholder: {first}, snapshotConflictHorizon: {xid}"
                ),
                _ => write!(
                    out,
                    "ntoplaceholder: {n}, firstplaceholder: {first}, snapshotConflictHorizon: {xid}, isCatalogRel: {}",
                    if flag(d, 8)? { 'T' } else { 'F' }
                ),
            };
        }
        _ => {}
    }
    Some(())
}

/// 13's texts.
fn describe13(out: &mut String, info: u8, d: &[u8]) -> Option<()> {
    match info {
        ADD_LEAF => {
            let (off, head, parent) = (u16_at(d, 2)?, u16_at(d, 4)?, u16_at(d, 6)?);
            let (new_page, nulls) = (flag(d, 0)?, flag(d, 1)?);
            let _ = write!(
                out,
                "add leaf to page; off {off}; headoff {head}; parentoff {parent}"
            );
            note(out, new_page, " (newpage)");
            note(out, nulls, " (nulls)");
        }
        MOVE_LEAFS => {
            let _ = write!(out, "{} leafs", u16_at(d, 0)?);
        }
        ADD_NODE => {
            let _ = write!(out, "off {}", u16_at(d, 0)?);
        }
        SPLIT_TUPLE => {
            let (prefix, postfix) = (u16_at(d, 0)?, u16_at(d, 2)?);
            // `%d` of the two bools, newPage at 4 and postfixBlkSame at 5.
            let (new_page, same) = (*d.get(4)?, *d.get(5)?);
            let _ = write!(
                out,
                "prefix off: {prefix}, postfix off: {postfix} (same {same}, new {new_page})"
            );
        }
        PICKSPLIT => {
            let (ndel, nins) = (u16_at(d, 2)?, u16_at(d, 4)?);
            let (root, inner_parent) = (flag(d, 0)?, flag(d, 12)?);
            let _ = write!(out, "ndel {ndel}; nins {nins}");
            note(out, inner_parent, " (innerIsParent)");
            note(out, root, " (isRootSplit)");
        }
        VACUUM_REDIRECT => {
            let _ = write!(out, "newest XID {}", u32_at(d, 4)?);
        }
        // VACUUM_LEAF and VACUUM_ROOT: no text.
        _ => {}
    }
    Some(())
}

/// The C `bool` at `at`.
fn flag(d: &[u8], at: usize) -> Option<bool> {
    d.get(at).map(|&b| b != 0)
}

/// Appends `text` when `set`.
fn note(out: &mut String, set: bool, text: &str) {
    if set {
        out.push_str(text);
    }
}
