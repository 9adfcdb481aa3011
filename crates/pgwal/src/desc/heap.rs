//! Heap (rmgr 10) and Heap2 (rmgr 9) records, as `heapdesc.c` of each major describes them.
//!
//! Three eras of text: 13–15 print `off %u flags 0x%02X`-style text; 16 switched to
//! `key: value` pairs with array dumps (`rmgrdesc_utils.c`); 17 merged Heap2's PRUNE, VACUUM and
//! FREEZE_PAGE into one `xl_heap_prune` format logged under three names, and 18 added
//! invalidation messages to INPLACE. Heap2's codes 0x10–0x30 mean different records in 13,
//! 14–16 and 17+.

use std::fmt::Write;

use super::util::{i32_at, u16_at, u32_at, u8_at};
use crate::wal::{PgVersion, Record};

/// `XLOG_HEAP_OPMASK`: the record type bits of both heap rmgrs.
const OPMASK: u8 = 0x70;
/// `XLOG_HEAP_INIT_PAGE`: the record (re)initialises its page.
const INIT_PAGE: u8 = 0x80;

// Heap record types.
const INSERT: u8 = 0x00;
const DELETE: u8 = 0x10;
const UPDATE: u8 = 0x20;
const TRUNCATE: u8 = 0x30;
const HOT_UPDATE: u8 = 0x40;
const CONFIRM: u8 = 0x50;
const LOCK: u8 = 0x60;
const INPLACE: u8 = 0x70;

// Heap2 record types (0x10..=0x30 depend on the major, see `identify_heap2`).
const REWRITE: u8 = 0x00;
const VISIBLE: u8 = 0x40;
const MULTI_INSERT: u8 = 0x50;
const LOCK_UPDATED: u8 = 0x60;
const NEW_CID: u8 = 0x70;

// `xl_heap_truncate.flags`.
const TRUNCATE_CASCADE: u8 = 0x01;
const TRUNCATE_RESTART_SEQS: u8 = 0x02;

// `xl_heap_prune.flags` (17+).
const XLHP_IS_CATALOG_REL: u8 = 1 << 1;
const XLHP_HAS_CONFLICT_HORIZON: u8 = 1 << 3;
const XLHP_HAS_FREEZE_PLANS: u8 = 1 << 4;
const XLHP_HAS_REDIRECTIONS: u8 = 1 << 5;
const XLHP_HAS_DEAD_ITEMS: u8 = 1 << 6;
const XLHP_HAS_NOW_UNUSED_ITEMS: u8 = 1 << 7;

/// `sizeof(xl_heap_freeze_plan)` (16) / `sizeof(xlhp_freeze_plan)` (17+).
const FREEZE_PLAN_SIZE: usize = 12;

/// `heap_identify`: the record type, with `+INIT` when `XLOG_HEAP_INIT_PAGE` is set on an
/// INSERT or an UPDATE; `None` for other combinations.
pub(crate) fn identify_heap(_version: PgVersion, info: u8) -> Option<&'static str> {
    Some(match info & (OPMASK | INIT_PAGE) {
        0x00 => "INSERT",
        0x80 => "INSERT+INIT",
        0x10 => "DELETE",
        0x20 => "UPDATE",
        0xA0 => "UPDATE+INIT",
        0x30 => "TRUNCATE",
        0x40 => "HOT_UPDATE",
        0xC0 => "HOT_UPDATE+INIT",
        0x50 => "HEAP_CONFIRM",
        0x60 => "LOCK",
        0x70 => "INPLACE",
        _ => return None,
    })
}

/// `heap2_identify`: codes 0x10, 0x20 and 0x30 are CLEAN / FREEZE_PAGE / CLEANUP_INFO in 13,
/// PRUNE / VACUUM / FREEZE_PAGE in 14–16 and the three PRUNE_* reasons in 17+.
pub(crate) fn identify_heap2(version: PgVersion, info: u8) -> Option<&'static str> {
    let [x10, x20, x30] = prune_names(version);
    Some(match info & (OPMASK | INIT_PAGE) {
        0x00 => "REWRITE",
        0x10 => x10,
        0x20 => x20,
        0x30 => x30,
        // 19 sets the visibility map in the PRUNE_* records instead.
        VISIBLE if version < PgVersion::V19 => "VISIBLE",
        0x50 => "MULTI_INSERT",
        0xD0 => "MULTI_INSERT+INIT",
        0x60 => "LOCK_UPDATED",
        0x70 => "NEW_CID",
        _ => return None,
    })
}

fn prune_names(version: PgVersion) -> [&'static str; 3] {
    if version >= PgVersion::V17 {
        [
            "PRUNE_ON_ACCESS",
            "PRUNE_VACUUM_SCAN",
            "PRUNE_VACUUM_CLEANUP",
        ]
    } else if version >= PgVersion::V14 {
        ["PRUNE", "VACUUM", "FREEZE_PAGE"]
    } else {
        ["CLEAN", "FREEZE_PAGE", "CLEANUP_INFO"]
    }
}

/// `heap_desc`. Short main data ends the text where PostgreSQL would read past it.
pub(crate) fn desc_heap(out: &mut String, rec: &Record<'_>) {
    let _ = heap_desc(out, rec);
}

/// `heap2_desc`. Short main or block data ends the text where PostgreSQL would read past it.
pub(crate) fn desc_heap2(out: &mut String, rec: &Record<'_>) {
    let _ = heap2_desc(out, rec);
}

/// `xl_heap_insert`: the new tuple's offset and flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeapInsert {
    /// `offnum`.
    pub offnum: u16,
    /// `flags` (`XLH_INSERT_*`).
    pub flags: u8,
}

impl HeapInsert {
    /// Parses the main data of a Heap `INSERT` record.
    ///
    /// ```
    /// let h = pgwal::desc::HeapInsert::parse(&[5, 0, 0x08]).unwrap();
    /// assert_eq!((h.offnum, h.flags), (5, 0x08));
    /// ```
    pub fn parse(d: &[u8]) -> Option<HeapInsert> {
        Some(HeapInsert {
            offnum: u16_at(d, 0)?,
            flags: u8_at(d, 2)?,
        })
    }
}

/// `xl_heap_delete` (and `xl_heap_lock`, which shares its layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeapDelete {
    /// `xmax`.
    pub xmax: u32,
    /// `offnum`.
    pub offnum: u16,
    /// `infobits_set`.
    pub infobits: u8,
    /// `flags`.
    pub flags: u8,
}

impl HeapDelete {
    /// Parses the main data of a Heap `DELETE` (or `LOCK`) record.
    ///
    /// ```
    /// let h = pgwal::desc::HeapDelete::parse(&[0xF0, 2, 0, 0, 7, 0, 0, 0]).unwrap();
    /// assert_eq!((h.xmax, h.offnum), (752, 7));
    /// ```
    pub fn parse(d: &[u8]) -> Option<HeapDelete> {
        Some(HeapDelete {
            xmax: u32_at(d, 0)?,
            offnum: u16_at(d, 4)?,
            infobits: u8_at(d, 6)?,
            flags: u8_at(d, 7)?,
        })
    }
}

/// `xl_heap_update` (`UPDATE` and `HOT_UPDATE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HeapUpdate {
    /// `old_xmax`.
    pub old_xmax: u32,
    /// `old_offnum`.
    pub old_offnum: u16,
    /// `old_infobits_set`.
    pub old_infobits: u8,
    /// `flags`.
    pub flags: u8,
    /// `new_xmax`.
    pub new_xmax: u32,
    /// `new_offnum`.
    pub new_offnum: u16,
}

impl HeapUpdate {
    /// Parses the main data of a Heap `UPDATE` or `HOT_UPDATE` record.
    ///
    /// ```
    /// let d = [1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0];
    /// let h = pgwal::desc::HeapUpdate::parse(&d).unwrap();
    /// assert_eq!((h.old_xmax, h.old_offnum, h.new_xmax, h.new_offnum), (1, 2, 3, 4));
    /// ```
    pub fn parse(d: &[u8]) -> Option<HeapUpdate> {
        Some(HeapUpdate {
            old_xmax: u32_at(d, 0)?,
            old_offnum: u16_at(d, 4)?,
            old_infobits: u8_at(d, 6)?,
            flags: u8_at(d, 7)?,
            new_xmax: u32_at(d, 8)?,
            new_offnum: u16_at(d, 12)?,
        })
    }
}

fn heap_desc(out: &mut String, rec: &Record<'_>) -> Option<()> {
    let d = rec.main_data();
    let new = rec.version() >= PgVersion::V16;
    match rec.info() & OPMASK {
        INSERT => {
            let HeapInsert { offnum: off, flags } = HeapInsert::parse(d)?;
            if new {
                let _ = write!(out, "off: {off}, flags: 0x{flags:02X}");
            } else {
                let _ = write!(out, "off {off} flags 0x{flags:02X}");
            }
        }
        // xl_heap_delete and xl_heap_lock share their layout: xmax, offnum, infobits, flags.
        DELETE | LOCK => {
            let HeapDelete {
                xmax,
                offnum: off,
                infobits: bits,
                flags,
            } = HeapDelete::parse(d)?;
            if new {
                let _ = write!(out, "xmax: {xmax}, off: {off}, ");
                infobits(out, bits, "infobits");
                let _ = write!(out, ", flags: 0x{flags:02X}");
            } else if rec.info() & OPMASK == DELETE {
                let _ = write!(out, "off {off} flags 0x{flags:02X} ");
                infobits_words(out, bits);
            } else {
                let _ = write!(out, "off {off}: xid {xmax}: flags 0x{flags:02X} ");
                infobits_words(out, bits);
            }
        }
        UPDATE | HOT_UPDATE => {
            let HeapUpdate {
                old_xmax,
                old_offnum: old_off,
                old_infobits: bits,
                flags,
                new_xmax,
                new_offnum: new_off,
            } = HeapUpdate::parse(d)?;
            if new {
                let _ = write!(out, "old_xmax: {old_xmax}, old_off: {old_off}, ");
                infobits(out, bits, "old_infobits");
                let _ = write!(
                    out,
                    ", flags: 0x{flags:02X}, new_xmax: {new_xmax}, new_off: {new_off}"
                );
            } else {
                let _ = write!(out, "off {old_off} xmax {old_xmax} flags 0x{flags:02X} ");
                infobits_words(out, bits);
                let _ = write!(out, "; new off {new_off} xmax {new_xmax}");
            }
        }
        TRUNCATE => {
            // xl_heap_truncate: dbId, nrelids, flags, then Oid relids[] at offset 12.
            let (nrelids, flags) = (u32_at(d, 4)?, u8_at(d, 8)?);
            let n = usize::try_from(nrelids).ok()?;
            if new {
                let names = [
                    (TRUNCATE_CASCADE, "CASCADE"),
                    (TRUNCATE_RESTART_SEQS, "RESTART_SEQS"),
                ];
                flag_list(out, "flags", flags, &names);
                let _ = write!(out, ", nrelids: {nrelids}, relids:");
                array(out, u32s(d, 12, n)?, |out, oid| {
                    let _ = write!(out, "{oid}");
                });
            } else {
                if flags & TRUNCATE_CASCADE != 0 {
                    out.push_str("cascade ");
                }
                if flags & TRUNCATE_RESTART_SEQS != 0 {
                    out.push_str("restart_seqs ");
                }
                let _ = write!(out, "nrelids {nrelids} relids");
                for oid in u32s(d, 12, n)? {
                    let _ = write!(out, " {oid}");
                }
            }
        }
        CONFIRM => off_only(out, d, new)?,
        INPLACE => {
            off_only(out, d, new)?;
            if rec.version() >= PgVersion::V18 {
                // xl_heap_inplace: offnum, dbId, tsId, relcacheInitFileInval, nmsgs, msgs[].
                let (db, ts, init) = (u32_at(d, 4)?, u32_at(d, 8)?, u8_at(d, 12)? != 0);
                let nmsgs = i32_at(d, 16)?;
                super::util::invalidations_desc(
                    out,
                    rec.version(),
                    nmsgs,
                    d.get(20..)?,
                    db,
                    ts,
                    init,
                );
            }
        }
        _ => {}
    }
    Some(())
}

/// `off %u` (13–15) or `off: %u` (16+), for CONFIRM and INPLACE.
fn off_only(out: &mut String, d: &[u8], new: bool) -> Option<()> {
    let off = u16_at(d, 0)?;
    let _ = if new {
        write!(out, "off: {off}")
    } else {
        write!(out, "off {off}")
    };
    Some(())
}

fn heap2_desc(out: &mut String, rec: &Record<'_>) -> Option<()> {
    let d = rec.main_data();
    let version = rec.version();
    let new = version >= PgVersion::V16;
    match rec.info() & OPMASK {
        REWRITE => {}
        0x10..=0x30 if version >= PgVersion::V17 => prune_desc(out, rec)?,
        // 13: xl_heap_clean, xl_heap_freeze_page, xl_heap_cleanup_info (xid after a RelFileNode).
        0x10 if version == PgVersion::V13 => {
            let _ = write!(out, "remxid {}", u32_at(d, 0)?);
        }
        0x20 if version == PgVersion::V13 => freeze_page_old(out, d)?,
        0x30 if version == PgVersion::V13 => {
            let _ = write!(out, "remxid {}", u32_at(d, 12)?);
        }
        // 14–16: PRUNE, VACUUM, FREEZE_PAGE.
        0x10 => {
            let (horizon, nredirected, ndead) = (u32_at(d, 0)?, u16_at(d, 4)?, u16_at(d, 6)?);
            if !new {
                let _ = write!(
                    out,
                    "latestRemovedXid {horizon} nredirected {nredirected} ndead {ndead}"
                );
                return Some(());
            }
            let _ = write!(
                out,
                "snapshotConflictHorizon: {horizon}, nredirected: {nredirected}, ndead: {ndead}"
            );
            if let Some(data) = block0_data(rec) {
                // Redirect pairs, then dead offsets; whatever follows is the unused offsets.
                let dead_at = usize::from(nredirected) * 4;
                let unused_at = dead_at + usize::from(ndead) * 2;
                let nunused = (data.len() as i64 - unused_at as i64).div_euclid(2);
                let _ = write!(out, ", nunused: {nunused}, redirected:");
                redirects(out, data, 0, usize::from(nredirected))?;
                out.push_str(", dead:");
                offsets(out, data, dead_at, usize::from(ndead))?;
                out.push_str(", unused:");
                offsets(out, data, unused_at, usize::try_from(nunused).unwrap_or(0))?;
            }
        }
        0x20 => {
            let nunused = u16_at(d, 0)?;
            if !new {
                let _ = write!(out, "nunused {nunused}");
                return Some(());
            }
            let _ = write!(out, "nunused: {nunused}");
            if let Some(data) = block0_data(rec) {
                out.push_str(", unused:");
                offsets(out, data, 0, usize::from(nunused))?;
            }
        }
        0x30 => {
            if !new {
                return freeze_page_old(out, d);
            }
            let (horizon, nplans) = (u32_at(d, 0)?, u16_at(d, 4)?);
            let _ = write!(out, "snapshotConflictHorizon: {horizon}, nplans: {nplans}");
            if let Some(data) = block0_data(rec) {
                let n = usize::from(nplans);
                out.push_str(", plans:");
                freeze_plans(out, data, 0, n, n * FREEZE_PLAN_SIZE)?;
            }
        }
        VISIBLE => {
            let (horizon, flags) = (u32_at(d, 0)?, u8_at(d, 4)?);
            if new {
                let _ = write!(
                    out,
                    "snapshotConflictHorizon: {horizon}, flags: 0x{flags:02X}"
                );
            } else {
                let _ = write!(out, "cutoff xid {horizon} flags 0x{flags:02X}");
            }
        }
        MULTI_INSERT => {
            // xl_heap_multi_insert: flags, ntuples, then OffsetNumber offsets[] at offset 4.
            let (flags, ntuples) = (u8_at(d, 0)?, u16_at(d, 2)?);
            if !new {
                let _ = write!(out, "{ntuples} tuples flags 0x{flags:02X}");
                return Some(());
            }
            let _ = write!(out, "ntuples: {ntuples}, flags: 0x{flags:02X}");
            if block0_data(rec).is_some() && rec.info() & INIT_PAGE == 0 {
                out.push_str(", offsets:");
                offsets(out, d, 4, usize::from(ntuples))?;
            }
        }
        LOCK_UPDATED => {
            let (xmax, off, bits, flags) =
                (u32_at(d, 0)?, u16_at(d, 4)?, u8_at(d, 6)?, u8_at(d, 7)?);
            if new {
                let _ = write!(out, "xmax: {xmax}, off: {off}, ");
                infobits(out, bits, "infobits");
                let _ = write!(out, ", flags: 0x{flags:02X}");
            } else {
                let _ = write!(out, "off {off}: xmax {xmax}: flags 0x{flags:02X} ");
                infobits_words(out, bits);
            }
        }
        NEW_CID => {
            // xl_heap_new_cid: top_xid, cmin, cmax, combocid, RelFileLocator, ItemPointerData.
            let (cmin, cmax, combo) = (u32_at(d, 4)?, u32_at(d, 8)?, u32_at(d, 12)?);
            let (spc, db, rel) = (u32_at(d, 16)?, u32_at(d, 20)?, u32_at(d, 24)?);
            let blk = u32::from(u16_at(d, 28)?) << 16 | u32::from(u16_at(d, 30)?);
            let off = u16_at(d, 32)?;
            if new {
                let _ = write!(
                    out,
                    "rel: {spc}/{db}/{rel}, tid: {blk}/{off}, cmin: {cmin}, cmax: {cmax}, combo: {combo}"
                );
            } else {
                let _ = write!(
                    out,
                    "rel {spc}/{db}/{rel}; tid {blk}/{off}; cmin: {cmin}, cmax: {cmax}, combo: {combo}"
                );
            }
        }
        _ => {}
    }
    Some(())
}

/// FREEZE_PAGE of 13–15 (`xl_heap_freeze_page`: cutoff_xid, ntuples).
fn freeze_page_old(out: &mut String, d: &[u8]) -> Option<()> {
    let (cutoff, ntuples) = (u32_at(d, 0)?, u16_at(d, 4)?);
    let _ = write!(out, "cutoff xid {cutoff} ntuples {ntuples}");
    Some(())
}

/// The merged prune/freeze record of 17+ (`xl_heap_prune`; block 0 data as deserialised by
/// `heap_xlog_deserialize_prune_and_freeze`).
fn prune_desc(out: &mut String, rec: &Record<'_>) -> Option<()> {
    let d = rec.main_data();
    // xl_heap_prune: 17–18 {uint8 reason; uint8 flags}, 19 {uint8 flags; uint8 vmflags}; then
    // the unaligned conflict horizon when flagged.
    let v19 = rec.version() >= PgVersion::V19;
    let (flags, vm_flags) = if v19 {
        (u8_at(d, 0)?, u8_at(d, 1)?)
    } else {
        (u8_at(d, 1)?, 0)
    };
    if flags & XLHP_HAS_CONFLICT_HORIZON != 0 {
        let _ = write!(out, "snapshotConflictHorizon: {}", u32_at(d, 2)?);
    }
    let catalog = if flags & XLHP_IS_CATALOG_REL != 0 {
        'T'
    } else {
        'F'
    };
    let _ = write!(out, ", isCatalogRel: {catalog}");
    // 19 sets visibility-map bits in the same record (no separate VISIBLE record).
    if vm_flags != 0 {
        let _ = write!(out, ", vm_flags: 0x{vm_flags:02X}");
    }
    let Some(data) = block0_data(rec) else {
        return Some(());
    };

    // Each present part: (count, where its elements start); parts follow one another.
    let mut at = 0;
    let mut part = |flag: u8, header: usize, elem: usize| -> Option<(usize, usize)> {
        if flags & flag == 0 {
            return Some((0, 0));
        }
        let n = usize::from(u16_at(data, at)?);
        let start = at + header;
        at = start + n * elem;
        Some((n, start))
    };
    // xlhp_freeze_plans {uint16 nplans; pad; plans[]}; xlhp_prune_items {uint16 n; data[]}.
    let (nplans, plans_at) = part(XLHP_HAS_FREEZE_PLANS, 4, FREEZE_PLAN_SIZE)?;
    let (nredirected, redirected_at) = part(XLHP_HAS_REDIRECTIONS, 2, 4)?;
    let (ndead, dead_at) = part(XLHP_HAS_DEAD_ITEMS, 2, 2)?;
    let (nunused, unused_at) = part(XLHP_HAS_NOW_UNUSED_ITEMS, 2, 2)?;
    let frz_offsets_at = at;

    let _ = write!(
        out,
        ", nplans: {nplans}, nredirected: {nredirected}, ndead: {ndead}, nunused: {nunused}"
    );
    if nplans > 0 {
        out.push_str(", plans:");
        freeze_plans(out, data, plans_at, nplans, frz_offsets_at)?;
    }
    if nredirected > 0 {
        out.push_str(", redirected:");
        redirects(out, data, redirected_at, nredirected)?;
    }
    if ndead > 0 {
        out.push_str(", dead:");
        offsets(out, data, dead_at, ndead)?;
    }
    if nunused > 0 {
        out.push_str(", unused:");
        offsets(out, data, unused_at, nunused)?;
    }
    Some(())
}

/// Block 0's data, if block 0 is referenced and carries data (`XLogRecHasBlockData(record, 0)`).
fn block0_data<'a>(rec: &Record<'a>) -> Option<&'a [u8]> {
    rec.block(0).filter(|b| b.has_data()).map(|b| b.data())
}

/// ` [{ xmax: %u, infomask: %u, infomask2: %u, ntuples: %u, offsets: [..] }, ...]` for `n`
/// freeze plans at `plans_at`; their tuple offsets follow one another from `offsets_at`.
fn freeze_plans(
    out: &mut String,
    data: &[u8],
    plans_at: usize,
    n: usize,
    mut offsets_at: usize,
) -> Option<()> {
    // Parse before printing, so that short data prints nothing of the array.
    let mut plans = Vec::with_capacity(n.min(data.len() / FREEZE_PLAN_SIZE + 1));
    for i in 0..n {
        // xlhp_freeze_plan: xmax, t_infomask2, t_infomask, frzflags, pad, ntuples.
        let p = plans_at + i * FREEZE_PLAN_SIZE;
        let (xmax, infomask2, infomask) =
            (u32_at(data, p)?, u16_at(data, p + 4)?, u16_at(data, p + 6)?);
        let ntuples = u16_at(data, p + 10)?;
        let offs = u16s(data, offsets_at, usize::from(ntuples))?;
        offsets_at += usize::from(ntuples) * 2;
        plans.push((xmax, infomask, infomask2, ntuples, offs));
    }
    array(
        out,
        plans.into_iter(),
        |out, (xmax, infomask, infomask2, ntuples, offs)| {
            let _ = write!(
            out,
            "{{ xmax: {xmax}, infomask: {infomask}, infomask2: {infomask2}, ntuples: {ntuples}, offsets:"
        );
            array(out, offs, |out, o| {
                let _ = write!(out, "{o}");
            });
            out.push_str(" }");
        },
    );
    Some(())
}

/// ` [a, b, ...]` of `n` OffsetNumbers at `at` (nothing if they are not all there).
fn offsets(out: &mut String, data: &[u8], at: usize, n: usize) -> Option<()> {
    array(out, u16s(data, at, n)?, |out, o| {
        let _ = write!(out, "{o}");
    });
    Some(())
}

/// ` [from->to, ...]` of `n` OffsetNumber pairs at `at`.
fn redirects(out: &mut String, data: &[u8], at: usize, n: usize) -> Option<()> {
    let pairs = data
        .get(at..at.checked_add(n.checked_mul(4)?)?)?
        .chunks_exact(4);
    array(out, pairs, |out, p| {
        let _ = write!(out, "{}->{}", le16(p), le16(&p[2..]));
    });
    Some(())
}

/// `array_desc` of rmgrdesc_utils.c: ` []` or ` [e1, e2, ...]`.
fn array<T>(
    out: &mut String,
    items: impl Iterator<Item = T>,
    mut elem: impl FnMut(&mut String, T),
) {
    out.push_str(" [");
    for (i, item) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        elem(out, item);
    }
    out.push(']');
}

/// `infobits_desc` (16+): `key: [IS_MULTI, LOCK_ONLY, ...]`.
fn infobits(out: &mut String, bits: u8, key: &str) {
    flag_list(out, key, bits, &INFOBITS);
}

/// `out_infobits` (13–15): each set bit's name followed by a space.
fn infobits_words(out: &mut String, bits: u8) {
    for (bit, name) in INFOBITS {
        if bits & bit != 0 {
            out.push_str(name);
            out.push(' ');
        }
    }
}

/// `XLHL_*` bits of `infobits_set`.
const INFOBITS: [(u8, &str); 5] = [
    (0x01, "IS_MULTI"),
    (0x02, "LOCK_ONLY"),
    (0x04, "EXCL_LOCK"),
    (0x08, "KEYSHR_LOCK"),
    (0x10, "KEYS_UPDATED"),
];

/// `key: [A, B]` listing the names of the set bits.
fn flag_list(out: &mut String, key: &str, bits: u8, names: &[(u8, &str)]) {
    let _ = write!(out, "{key}: [");
    let set: Vec<&str> = names
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
        .collect();
    out.push_str(&set.join(", "));
    out.push(']');
}

/// The first two bytes of `b` as a little-endian u16 (`b` holds at least two).
fn le16(b: &[u8]) -> u16 {
    u16::from_le_bytes([b[0], b[1]])
}

/// `n` little-endian u16 at `at`, or `None` if they are not all in `b`.
fn u16s(b: &[u8], at: usize, n: usize) -> Option<impl Iterator<Item = u16> + '_> {
    let end = at.checked_add(n.checked_mul(2)?)?;
    Some(b.get(at..end)?.chunks_exact(2).map(le16))
}

/// `n` little-endian u32 at `at`, or `None` if they are not all in `b`.
fn u32s(b: &[u8], at: usize, n: usize) -> Option<impl Iterator<Item = u32> + '_> {
    let end = at.checked_add(n.checked_mul(4)?)?;
    Some(
        b.get(at..end)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
    )
}

#[cfg(test)]
mod tests;
