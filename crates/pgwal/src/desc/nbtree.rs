//! Btree (rmgr 11) records, as `nbtdesc.c` of each major describes them.
//!
//! Three eras of text: 13–15 print `key %u; key %u` text (14 changed DELETE, UNLINK_PAGE,
//! REUSE_PAGE and META_CLEANUP for full 64-bit safe XIDs); 16 switched to `key: value` pairs
//! and dumps the offset arrays of DELETE and VACUUM; 17 added
//! `isCatalogRel` to DELETE and REUSE_PAGE.

use std::fmt::Write;

use super::util::{u16_at, u32_at, u64_at};
use crate::wal::{PgVersion, Record};

const INSERT_LEAF: u8 = 0x00;
const INSERT_UPPER: u8 = 0x10;
const INSERT_META: u8 = 0x20;
const SPLIT_L: u8 = 0x30;
const SPLIT_R: u8 = 0x40;
const INSERT_POST: u8 = 0x50;
const DEDUP: u8 = 0x60;
const DELETE: u8 = 0x70;
const UNLINK_PAGE: u8 = 0x80;
const UNLINK_PAGE_META: u8 = 0x90;
const NEWROOT: u8 = 0xA0;
const MARK_PAGE_HALFDEAD: u8 = 0xB0;
const VACUUM: u8 = 0xC0;
const REUSE_PAGE: u8 = 0xD0;
const META_CLEANUP: u8 = 0xE0;

/// `btree_identify` (the same names in 13–18).
pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    Some(match info & 0xF0 {
        INSERT_LEAF => "INSERT_LEAF",
        INSERT_UPPER => "INSERT_UPPER",
        INSERT_META => "INSERT_META",
        SPLIT_L => "SPLIT_L",
        SPLIT_R => "SPLIT_R",
        INSERT_POST => "INSERT_POST",
        DEDUP => "DEDUP",
        VACUUM => "VACUUM",
        DELETE => "DELETE",
        MARK_PAGE_HALFDEAD => "MARK_PAGE_HALFDEAD",
        UNLINK_PAGE => "UNLINK_PAGE",
        UNLINK_PAGE_META => "UNLINK_PAGE_META",
        NEWROOT => "NEWROOT",
        REUSE_PAGE => "REUSE_PAGE",
        META_CLEANUP => "META_CLEANUP",
        _ => return None,
    })
}

/// `btree_desc`. Appends nothing for a record whose fixed part is cut short.
pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let _ = describe(out, rec);
}

fn describe(out: &mut String, rec: &Record<'_>) -> Option<()> {
    let v = rec.version();
    let new = v >= PgVersion::V16;
    // 16+ print `key: value`, older majors `key value`.
    let colon = if new { ":" } else { "" };
    let d = rec.main_data();
    match rec.info() & 0xF0 {
        INSERT_LEAF | INSERT_UPPER | INSERT_META | INSERT_POST => {
            let off = u16_at(d, 0)?;
            let _ = write!(out, "off{colon} {off}");
        }
        SPLIT_L | SPLIT_R => {
            // xl_btree_split {uint32 level; OffsetNumber firstrightoff, newitemoff; uint16 postingoff}
            let (level, first, newitem, posting) =
                (u32_at(d, 0)?, u16_at(d, 4)?, u16_at(d, 6)?, u16_at(d, 8)?);
            let _ = if new {
                write!(
                    out,
                    "level: {level}, firstrightoff: {first}, newitemoff: {newitem}, postingoff: {posting}"
                )
            } else {
                write!(
                    out,
                    "level {level}, firstrightoff {first}, newitemoff {newitem}, postingoff {posting}"
                )
            };
        }
        DEDUP => {
            let n = u16_at(d, 0)?;
            let _ = write!(out, "nintervals{colon} {n}");
        }
        VACUUM => {
            // xl_btree_vacuum {uint16 ndeleted; uint16 nupdated}
            let (ndeleted, nupdated) = (u16_at(d, 0)?, u16_at(d, 2)?);
            if new {
                let _ = write!(out, "ndeleted: {ndeleted}, nupdated: {nupdated}");
                delvacuum_arrays(out, rec, ndeleted, nupdated);
            } else {
                let _ = write!(out, "ndeleted {ndeleted}; nupdated {nupdated}");
            }
        }
        DELETE => delete(out, rec, d)?,
        MARK_PAGE_HALFDEAD => {
            // xl_btree_mark_page_halfdead {OffsetNumber poffset; BlockNumber leafblk, leftblk,
            // rightblk, topparent}
            let (leaf, left, right, top) =
                (u32_at(d, 4)?, u32_at(d, 8)?, u32_at(d, 12)?, u32_at(d, 16)?);
            let _ = if new {
                write!(
                    out,
                    "topparent: {top}, leaf: {leaf}, left: {left}, right: {right}"
                )
            } else {
                write!(
                    out,
                    "topparent {top}; leaf {leaf}; left {left}; right {right}"
                )
            };
        }
        UNLINK_PAGE | UNLINK_PAGE_META => unlink_page(out, v, d)?,
        NEWROOT => {
            // xl_btree_newroot {BlockNumber rootblk; uint32 level}
            let level = u32_at(d, 4)?;
            let _ = write!(out, "{} {level}", if new { "level:" } else { "lev" });
        }
        REUSE_PAGE => reuse_page(out, v, d)?,
        META_CLEANUP => {
            // xl_btree_metadata in block 0's data: {uint32 version; BlockNumber root; uint32
            // level; BlockNumber fastroot; uint32 fastlevel; then 13: TransactionId
            // oldest_btpo_xact; float8 last_cleanup_num_heap_tuples / 14+: uint32
            // last_cleanup_num_delpages; ...}
            let md = rec.block(0)?.data();
            if v == PgVersion::V13 {
                let (xact, tuples) = (u32_at(md, 20)?, f64::from_bits(u64_at(md, 24)?));
                let _ = write!(
                    out,
                    "oldest_btpo_xact {xact}; last_cleanup_num_heap_tuples: {}",
                    c_fixed6(tuples)
                );
            } else {
                let delpages = u32_at(md, 20)?;
                let _ = write!(out, "last_cleanup_num_delpages{colon} {delpages}");
            }
        }
        _ => {}
    }
    Some(())
}

/// `XLOG_BTREE_DELETE`: `xl_btree_delete` is {TransactionId latestRemovedXid; uint32 ndeleted}
/// in 13, {TransactionId; uint16 ndeleted; uint16 nupdated} in 14–15, and the 16+ struct adds
/// `bool isCatalogRel` at offset 8 (printed from 17).
fn delete(out: &mut String, rec: &Record<'_>, d: &[u8]) -> Option<()> {
    let v = rec.version();
    let xid = u32_at(d, 0)?;
    if v == PgVersion::V13 {
        let ndeleted = u32_at(d, 4)?;
        let _ = write!(out, "latestRemovedXid {xid}; ndeleted {ndeleted}");
        return Some(());
    }
    let (ndeleted, nupdated) = (u16_at(d, 4)?, u16_at(d, 6)?);
    if v < PgVersion::V16 {
        let _ = write!(
            out,
            "latestRemovedXid {xid}; ndeleted {ndeleted}; nupdated {nupdated}"
        );
        return Some(());
    }
    let catalog = if v >= PgVersion::V17 {
        Some(tf(*d.get(8)?))
    } else {
        None
    };
    let _ = write!(
        out,
        "snapshotConflictHorizon: {xid}, ndeleted: {ndeleted}, nupdated: {nupdated}"
    );
    if let Some(c) = catalog {
        let _ = write!(out, ", isCatalogRel: {c}");
    }
    delvacuum_arrays(out, rec, ndeleted, nupdated);
    Some(())
}

/// `XLOG_BTREE_UNLINK_PAGE[_META]`: 13's `xl_btree_unlink_page` is {leftsib, rightsib,
/// leafleftsib, leafrightsib, topparent, btpo_xact}; 14+ is {leftsib, rightsib, uint32 level,
/// FullTransactionId safexid (offset 16), leafleftsib, leafrightsib, leaftopparent}.
fn unlink_page(out: &mut String, v: PgVersion, d: &[u8]) -> Option<()> {
    let (left, right) = (u32_at(d, 0)?, u32_at(d, 4)?);
    if v == PgVersion::V13 {
        let (leafleft, leafright) = (u32_at(d, 8)?, u32_at(d, 12)?);
        let (top, xact) = (u32_at(d, 16)?, u32_at(d, 20)?);
        let _ = write!(
            out,
            "left {left}; right {right}; btpo_xact {xact}; leafleft {leafleft}; leafright {leafright}; topparent {top}"
        );
        return Some(());
    }
    let level = u32_at(d, 8)?;
    let (epoch, xid) = full_xid(u64_at(d, 16)?);
    let (leafleft, leafright, top) = (u32_at(d, 24)?, u32_at(d, 28)?, u32_at(d, 32)?);
    let _ = if v >= PgVersion::V16 {
        write!(
            out,
            "left: {left}, right: {right}, level: {level}, safexid: {epoch}:{xid}, leafleft: {leafleft}, leafright: {leafright}, leaftopparent: {top}"
        )
    } else {
        write!(
            out,
            "left {left}; right {right}; level {level}; safexid {epoch}:{xid}; leafleft {leafleft}; leafright {leafright}; leaftopparent {top}"
        )
    };
    Some(())
}

/// `XLOG_BTREE_REUSE_PAGE`: `xl_btree_reuse_page` is {RelFileNode; BlockNumber block;
/// TransactionId (13) / FullTransactionId (14+) at 16}, plus `bool isCatalogRel` at 24 (16+,
/// printed from 17).
fn reuse_page(out: &mut String, v: PgVersion, d: &[u8]) -> Option<()> {
    let (spc, db, rel) = (u32_at(d, 0)?, u32_at(d, 4)?, u32_at(d, 8)?);
    if v == PgVersion::V13 {
        let xid = u32_at(d, 16)?;
        let _ = write!(out, "rel {spc}/{db}/{rel}; latestRemovedXid {xid}");
        return Some(());
    }
    let (epoch, xid) = full_xid(u64_at(d, 16)?);
    if v < PgVersion::V16 {
        let _ = write!(out, "rel {spc}/{db}/{rel}; latestRemovedXid {epoch}:{xid}");
        return Some(());
    }
    let catalog = if v >= PgVersion::V17 {
        Some(tf(*d.get(24)?))
    } else {
        None
    };
    let _ = write!(
        out,
        "rel: {spc}/{db}/{rel}, snapshotConflictHorizon: {epoch}:{xid}"
    );
    if let Some(c) = catalog {
        let _ = write!(out, ", isCatalogRel: {c}");
    }
    Some(())
}

/// `delvacuum_desc` (16+), when block 0 carries data: `, deleted: [..], updated: [{ off: %u,
/// nptids: %u, ptids: [..] }, ..]` (the deleted list is `rmgrdesc_utils.c`'s `array_desc` of
/// offsets, which prints the same text). The data holds `ndeleted` then `nupdated` offsets, then
/// one `xl_btree_update` {uint16 ndeletedtids; uint16 ptids[]} per updated offset. Stops where
/// the data runs out.
fn delvacuum_arrays(out: &mut String, rec: &Record<'_>, ndeleted: u16, nupdated: u16) {
    let Some(block) = rec.block(0).filter(|b| b.has_data()) else {
        return;
    };
    let data = block.data();
    let (ndeleted, nupdated) = (usize::from(ndeleted), usize::from(nupdated));
    out.push_str(", deleted:");
    let Some(deleted) = u16s(data, 0, ndeleted) else {
        return;
    };
    out.push_str(" [");
    list(out, deleted);
    out.push_str("], updated: [");
    let Some(updated) = u16s(data, 2 * ndeleted, nupdated) else {
        return;
    };
    let mut at = 2 * (ndeleted + nupdated);
    for (i, off) in updated.enumerate() {
        let Some(nptids) = u16_at(data, at) else {
            return;
        };
        let Some(ptids) = u16s(data, at + 2, usize::from(nptids)) else {
            return;
        };
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{{ off: {off}, nptids: {nptids}, ptids: [");
        list(out, ptids);
        out.push_str("] }");
        at += 2 + 2 * usize::from(nptids);
    }
    out.push(']');
}

/// The numbers joined by `, `.
fn list(out: &mut String, items: impl Iterator<Item = u16>) {
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{item}");
    }
}

/// `EpochFromFullTransactionId`, `XidFromFullTransactionId`.
fn full_xid(fxid: u64) -> (u32, u32) {
    ((fxid >> 32) as u32, fxid as u32)
}

/// A C `bool` printed as `%c` of `b ? 'T' : 'F'`.
fn tf(b: u8) -> char {
    if b != 0 {
        'T'
    } else {
        'F'
    }
}

/// C's `%f` (six decimals); NaN and infinities as glibc spells them.
fn c_fixed6(x: f64) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_owned();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_owned();
    }
    format!("{x:.6}")
}

/// `n` little-endian u16 at `at`, or `None` if they are not all in `b`.
fn u16s(b: &[u8], at: usize, n: usize) -> Option<impl Iterator<Item = u16> + '_> {
    let end = at.checked_add(n.checked_mul(2)?)?;
    Some(
        b.get(at..end)?
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]])),
    )
}

/// Golden tests of this file and of the other index access methods, Sequence and Generic WAL.
#[cfg(test)]
mod golden;
