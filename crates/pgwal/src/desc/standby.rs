//! Standby (rmgr 8): AccessExclusiveLocks, running transactions and invalidations for hot
//! standby (`standbydesc.c`).

use std::fmt::Write;

use super::util::{i32_at, invalidations_desc, u32_at};
use crate::wal::{PgVersion, Record};

const LOCK: u8 = 0x00;
const RUNNING_XACTS: u8 = 0x10;
const INVALIDATIONS: u8 = 0x20;

pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    Some(match info & 0xF0 {
        LOCK => "LOCK",
        RUNNING_XACTS => "RUNNING_XACTS",
        INVALIDATIONS => "INVALIDATIONS",
        _ => return None,
    })
}

pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let d = rec.main_data();
    let _ = match rec.info() & 0xF0 {
        LOCK => locks(out, d),
        RUNNING_XACTS => running_xacts(out, rec.version(), d),
        INVALIDATIONS => {
            // xl_invalidations { Oid dbId; Oid tsId; bool relcacheInitFileInval; int nmsgs; msgs[] }
            (|| {
                let (db, ts, init) = (u32_at(d, 0)?, u32_at(d, 4)?, *d.get(8)? != 0);
                let nmsgs = i32_at(d, 12)?;
                let msgs = d.get(16..).unwrap_or(&[]);
                invalidations_desc(out, rec.version(), nmsgs, msgs, db, ts, init);
                Some(())
            })()
        }
        _ => Some(()),
    };
}

/// `xl_standby_locks { int nlocks; xl_standby_lock { xid, dbOid, relOid } locks[]; }`.
fn locks(out: &mut String, d: &[u8]) -> Option<()> {
    let n = usize::try_from(i32_at(d, 0)?).unwrap_or(0);
    for l in d.get(4..)?.chunks_exact(12).take(n) {
        let (xid, db, rel) = (u32_at(l, 0)?, u32_at(l, 4)?, u32_at(l, 8)?);
        let _ = write!(out, "xid {xid} db {db} rel {rel} ");
    }
    Some(())
}

/// `xl_running_xacts { int xcnt; int subxcnt; bool subxid_overflow; TransactionId nextXid,
/// oldestRunningXid, latestCompletedXid; TransactionId xids[]; }`.
fn running_xacts(out: &mut String, version: PgVersion, d: &[u8]) -> Option<()> {
    let (xcnt, subxcnt, overflow) = (i32_at(d, 0)?, i32_at(d, 4)?, *d.get(8)? != 0);
    let (next, oldest, latest) = (u32_at(d, 12)?, u32_at(d, 16)?, u32_at(d, 20)?);
    let _ = write!(
        out,
        "nextXid {next} latestCompletedXid {latest} oldestRunningXid {oldest}"
    );
    let xid = |i: usize| u32_at(d, 24 + 4 * i);
    if xcnt > 0 {
        let _ = write!(out, "; {xcnt} xacts:");
        for i in 0..xcnt as usize {
            let _ = write!(out, " {}", xid(i)?);
        }
    }
    if overflow {
        out.push_str(if version >= PgVersion::V16 {
            "; subxid overflowed"
        } else {
            "; subxid ovf"
        });
    }
    if version >= PgVersion::V16 && subxcnt > 0 {
        let _ = write!(out, "; {subxcnt} subxacts:");
        for i in 0..subxcnt as usize {
            let _ = write!(out, " {}", xid(xcnt.max(0) as usize + i)?);
        }
    }
    Some(())
}
