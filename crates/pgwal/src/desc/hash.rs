//! Hash (rmgr 12) records, as `hashdesc.c` of each major describes them.
//!
//! The text is the same in 13–18 except VACUUM_ONE_PAGE: `latest removed xid` (13),
//! `latestRemovedXid` (14–15), `snapshotConflictHorizon` (16) and `isCatalogRel` (17+); its
//! struct also changed in 16 (`int ntuples` became `uint16`).

use std::fmt::Write;

use super::util::{bytes_at, i32_at, u16_at, u32_at};
use crate::wal::{PgVersion, Record};

const INIT_META_PAGE: u8 = 0x00;
const INIT_BITMAP_PAGE: u8 = 0x10;
const INSERT: u8 = 0x20;
const ADD_OVFL_PAGE: u8 = 0x30;
const SPLIT_ALLOCATE_PAGE: u8 = 0x40;
const SPLIT_PAGE: u8 = 0x50;
const SPLIT_COMPLETE: u8 = 0x60;
const MOVE_PAGE_CONTENTS: u8 = 0x70;
const SQUEEZE_PAGE: u8 = 0x80;
const DELETE: u8 = 0x90;
const SPLIT_CLEANUP: u8 = 0xA0;
const UPDATE_META_PAGE: u8 = 0xB0;
const VACUUM_ONE_PAGE: u8 = 0xC0;

/// `XLH_SPLIT_META_UPDATE_MASKS`.
const SPLIT_META_UPDATE_MASKS: u8 = 1 << 0;
/// `XLH_SPLIT_META_UPDATE_SPLITPOINT`.
const SPLIT_META_UPDATE_SPLITPOINT: u8 = 1 << 1;

/// `hash_identify` (the same names in 13–19).
pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    Some(match info & 0xF0 {
        INIT_META_PAGE => "INIT_META_PAGE",
        INIT_BITMAP_PAGE => "INIT_BITMAP_PAGE",
        INSERT => "INSERT",
        ADD_OVFL_PAGE => "ADD_OVFL_PAGE",
        SPLIT_ALLOCATE_PAGE => "SPLIT_ALLOCATE_PAGE",
        SPLIT_PAGE => "SPLIT_PAGE",
        SPLIT_COMPLETE => "SPLIT_COMPLETE",
        MOVE_PAGE_CONTENTS => "MOVE_PAGE_CONTENTS",
        SQUEEZE_PAGE => "SQUEEZE_PAGE",
        DELETE => "DELETE",
        SPLIT_CLEANUP => "SPLIT_CLEANUP",
        UPDATE_META_PAGE => "UPDATE_META_PAGE",
        VACUUM_ONE_PAGE => "VACUUM_ONE_PAGE",
        _ => return None,
    })
}

/// `hash_desc`. Appends nothing for a record whose main data is cut short.
pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let _ = describe(out, rec);
}

fn describe(out: &mut String, rec: &Record<'_>) -> Option<()> {
    let (d, version) = (rec.main_data(), rec.version());
    let _ = match rec.info() & 0xF0 {
        INIT_META_PAGE => {
            // xl_hash_init_meta_page {double num_tuples; RegProcedure procid; uint16 ffactor}
            let (tuples, procid, ffactor) = (f64_at(d, 0)?, u32_at(d, 8)?, u16_at(d, 12)?);
            if version >= PgVersion::V19 {
                write!(
                    out,
                    "num_tuples {}, procid {procid}, fillfactor {ffactor}",
                    c_g(tuples)
                )
            } else {
                write!(out, "num_tuples {}, fillfactor {ffactor}", c_g(tuples))
            }
        }
        INIT_BITMAP_PAGE => write!(out, "bmsize {}", u16_at(d, 0)?),
        INSERT => write!(out, "off {}", u16_at(d, 0)?),
        ADD_OVFL_PAGE => {
            // xl_hash_add_ovfl_page {uint16 bmsize; bool bmpage_found}
            let (bmsize, found) = (u16_at(d, 0)?, tf(*d.get(2)?));
            write!(out, "bmsize {bmsize}, bmpage_found {found}")
        }
        SPLIT_ALLOCATE_PAGE => {
            // xl_hash_split_allocate_page {uint32 new_bucket; uint16 old_bucket_flag,
            // new_bucket_flag; uint8 flags}
            let (bucket, flags) = (u32_at(d, 0)?, *d.get(8)?);
            let _ = write!(out, "new_bucket {bucket}, ");
            if version >= PgVersion::V19 {
                let (old, new) = (u16_at(d, 4)?, u16_at(d, 6)?);
                let _ = write!(out, "old_bucket_flag {old}, new_bucket_flag {new}, ");
            }
            write!(
                out,
                "meta_page_masks_updated {}, issplitpoint_changed {}",
                tf(flags & SPLIT_META_UPDATE_MASKS),
                tf(flags & SPLIT_META_UPDATE_SPLITPOINT)
            )
        }
        SPLIT_COMPLETE => {
            let (old, new) = (u16_at(d, 0)?, u16_at(d, 2)?);
            write!(out, "old_bucket_flag {old}, new_bucket_flag {new}")
        }
        MOVE_PAGE_CONTENTS => {
            // xl_hash_move_page_contents {uint16 ntups; bool is_prim_bucket_same_wrt}
            let (ntups, prim) = (u16_at(d, 0)?, tf(*d.get(2)?));
            write!(out, "ntups {ntups}, is_primary {prim}")
        }
        SQUEEZE_PAGE => {
            // xl_hash_squeeze_page {BlockNumber prevblkno, nextblkno; uint16 ntups;
            // bool is_prim_bucket_same_wrt, is_prev_bucket_same_wrt}
            let (prev, next) = (u32_at(d, 0)?, u32_at(d, 4)?);
            let (ntups, prim) = (u16_at(d, 8)?, tf(*d.get(10)?));
            let _ = write!(
                out,
                "prevblkno {prev}, nextblkno {next}, ntups {ntups}, is_primary {prim}"
            );
            if version >= PgVersion::V19 {
                let _ = write!(out, ", is_previous {}", tf(*d.get(11)?));
            }
            Ok(())
        }
        DELETE => {
            // xl_hash_delete {bool clear_dead_marking; bool is_primary_bucket_page}
            let (clear, prim) = (tf(*d.first()?), tf(*d.get(1)?));
            write!(out, "clear_dead_marking {clear}, is_primary {prim}")
        }
        UPDATE_META_PAGE => write!(out, "ntuples {}", c_g(f64_at(d, 0)?)),
        VACUUM_ONE_PAGE => vacuum_one_page(out, rec.version(), d)?,
        _ => Ok(()),
    };
    Some(())
}

/// `xl_hash_vacuum_one_page`: {TransactionId latestRemovedXid; int ntuples} in 13–15,
/// {TransactionId snapshotConflictHorizon; uint16 ntuples; bool isCatalogRel} in 16+.
fn vacuum_one_page(out: &mut String, v: PgVersion, d: &[u8]) -> Option<std::fmt::Result> {
    let xid = u32_at(d, 0)?;
    Some(match v {
        PgVersion::V13 => write!(out, "ntuples {}, latest removed xid {xid}", i32_at(d, 4)?),
        PgVersion::V14 | PgVersion::V15 => {
            write!(out, "ntuples {}, latestRemovedXid {xid}", i32_at(d, 4)?)
        }
        PgVersion::V16 => write!(
            out,
            "ntuples {}, snapshotConflictHorizon {xid}",
            u16_at(d, 4)?
        ),
        _ => {
            let (ntuples, catalog) = (u16_at(d, 4)?, tf(*d.get(6)?));
            write!(
                out,
                "ntuples {ntuples}, snapshotConflictHorizon {xid}, isCatalogRel {catalog}"
            )
        }
    })
}

/// C's `%g` (six significant digits, trailing zeros removed, exponent form below 1e-4 and from
/// 1e6), as glibc prints a double.
fn c_g(x: f64) -> String {
    const PRECISION: i32 = 6;
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.to_owned();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.to_owned();
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // The exponent after rounding to PRECISION significant digits decides the style.
    let sci = format!("{:.*e}", (PRECISION - 1) as usize, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if (-4..PRECISION).contains(&exp) {
        let fixed = format!("{:.*}", (PRECISION - 1 - exp) as usize, x);
        strip_zeros(&fixed).to_owned()
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip_zeros(mantissa), exp.unsigned_abs())
    }
}

/// Removes trailing zeros after a decimal point, and the point if nothing follows it.
fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A C `bool` (or flag test) printed as `%c` of `b ? 'T' : 'F'`.
fn tf(b: u8) -> char {
    if b != 0 {
        'T'
    } else {
        'F'
    }
}

fn f64_at(b: &[u8], at: usize) -> Option<f64> {
    bytes_at(b, at).map(f64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::c_g;

    #[test]
    fn g_matches_c() {
        // Expected values are what glibc's printf("%g") printed for these doubles.
        let cases: [(f64, &str); 15] = [
            (0.0, "0"),
            (1.0, "1"),
            (1000.0, "1000"),
            (123456.0, "123456"),
            (1234567.0, "1.23457e+06"),
            (1e6, "1e+06"),
            (999999.5, "1e+06"),
            (0.0001, "0.0001"),
            (0.00001234, "1.234e-05"),
            (-2.5, "-2.5"),
            (1e100, "1e+100"),
            (1.23456789, "1.23457"),
            (100000.5, "100000"),
            (99999.95, "99999.9"),
            (2.5e-5, "2.5e-05"),
        ];
        for (x, want) in cases {
            assert_eq!(c_g(x), want, "{x}");
        }
    }
}
