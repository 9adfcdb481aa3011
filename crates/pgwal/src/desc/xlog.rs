//! XLOG (rmgr 0): checkpoints, full-page images, parameter changes and other WAL-machinery
//! records (`xlogdesc.c`).

use std::fmt::Write;

use super::util::{cstr_at, i32_at, i64_at, lsn_str, timestamptz_to_str, u32_at, u64_at};
use crate::lsn::Lsn;
use crate::wal::{PgVersion, Record};

const CHECKPOINT_SHUTDOWN: u8 = 0x00;
const CHECKPOINT_ONLINE: u8 = 0x10;
const NOOP: u8 = 0x20;
const NEXTOID: u8 = 0x30;
const SWITCH: u8 = 0x40;
const BACKUP_END: u8 = 0x50;
const PARAMETER_CHANGE: u8 = 0x60;
const RESTORE_POINT: u8 = 0x70;
const FPW_CHANGE: u8 = 0x80;
const END_OF_RECOVERY: u8 = 0x90;
const FPI_FOR_HINT: u8 = 0xA0;
const FPI: u8 = 0xB0;
const OVERWRITE_CONTRECORD: u8 = 0xD0;
const CHECKPOINT_REDO: u8 = 0xE0;
/// 19: a record whose only purpose is to give something a fresh LSN (no main data).
const ASSIGN_LSN: u8 = 0xC0;
/// 19: logical decoding switched on or off while `wal_level` is `replica` (one bool).
const LOGICAL_DECODING_STATUS_CHANGE: u8 = 0xF0;

/// `MAXFNAMELEN`: the size of `xl_restore_point.rp_name`.
const MAXFNAMELEN: usize = 64;

pub(crate) fn identify(version: PgVersion, info: u8) -> Option<&'static str> {
    Some(match info & 0xF0 {
        CHECKPOINT_SHUTDOWN => "CHECKPOINT_SHUTDOWN",
        CHECKPOINT_ONLINE => "CHECKPOINT_ONLINE",
        NOOP => "NOOP",
        NEXTOID => "NEXTOID",
        SWITCH => "SWITCH",
        BACKUP_END => "BACKUP_END",
        PARAMETER_CHANGE => "PARAMETER_CHANGE",
        RESTORE_POINT => "RESTORE_POINT",
        FPW_CHANGE => "FPW_CHANGE",
        END_OF_RECOVERY => "END_OF_RECOVERY",
        // Back-patched into 13.5, so every 13 pg_waldump of interest knows it.
        OVERWRITE_CONTRECORD => "OVERWRITE_CONTRECORD",
        FPI => "FPI",
        FPI_FOR_HINT => "FPI_FOR_HINT",
        CHECKPOINT_REDO if version >= PgVersion::V17 => "CHECKPOINT_REDO",
        ASSIGN_LSN if version >= PgVersion::V19 => "ASSIGN_LSN",
        LOGICAL_DECODING_STATUS_CHANGE if version >= PgVersion::V19 => {
            "LOGICAL_DECODING_STATUS_CHANGE"
        }
        _ => return None,
    })
}

/// The `wal_level` name (`get_wal_level_string`; the first `wal_level_options` entry with
/// that value).
fn wal_level_name(level: i32) -> &'static str {
    match level {
        0 => "minimal",
        1 => "replica",
        2 => "logical",
        _ => "?",
    }
}

fn on_off(b: u8) -> &'static str {
    if b != 0 {
        "on"
    } else {
        "off"
    }
}

fn true_false(b: u8) -> &'static str {
    if b != 0 {
        "true"
    } else {
        "false"
    }
}

pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let _ = desc_inner(out, rec);
}

/// Writes the description; `None` when the main data is too short (nothing then written for
/// that record, or only what could be read before).
fn desc_inner(out: &mut String, rec: &Record<'_>) -> Option<()> {
    let version = rec.version();
    let d = rec.main_data();
    match rec.info() & 0xF0 {
        info @ (CHECKPOINT_SHUTDOWN | CHECKPOINT_ONLINE) => checkpoint(out, version, d, info),
        NEXTOID => {
            let _ = write!(out, "{}", next_oid(rec.info(), d)?);
            Some(())
        }
        RESTORE_POINT => {
            // xl_restore_point { TimestampTz rp_time; char rp_name[MAXFNAMELEN]; }
            let name = d.get(8..)?;
            out.push_str(&cstr_at(&name[..name.len().min(MAXFNAMELEN)], 0));
            Some(())
        }
        BACKUP_END => {
            out.push_str(&lsn_str(version, u64_at(d, 0)?));
            Some(())
        }
        PARAMETER_CHANGE => {
            // xl_parameter_change: six ints, then two bools.
            let int = |i: usize| i32_at(d, 4 * i);
            let (wal_log_hints, track_commit_ts) = (*d.get(24)?, *d.get(25)?);
            let _ = write!(
                out,
                "max_connections={} max_worker_processes={} max_wal_senders={} \
                 max_prepared_xacts={} max_locks_per_xact={} wal_level={} \
                 wal_log_hints={} track_commit_timestamp={}",
                int(0)?,
                int(1)?,
                int(2)?,
                int(3)?,
                int(4)?,
                wal_level_name(int(5)?),
                on_off(wal_log_hints),
                on_off(track_commit_ts),
            );
            Some(())
        }
        FPW_CHANGE => {
            out.push_str(true_false(*d.first()?));
            Some(())
        }
        LOGICAL_DECODING_STATUS_CHANGE if version >= PgVersion::V19 => {
            out.push_str(true_false(*d.first()?));
            Some(())
        }
        END_OF_RECOVERY => {
            // xl_end_of_recovery { TimestampTz end_time; TimeLineID this, prev; int wal_level (17+) }
            let (end_time, tli, prev) = (i64_at(d, 0)?, u32_at(d, 8)?, u32_at(d, 12)?);
            let level = if version >= PgVersion::V17 {
                Some(i32_at(d, 16)?)
            } else {
                None
            };
            let _ = write!(
                out,
                "tli {tli}; prev tli {prev}; time {}",
                timestamptz_to_str(end_time)
            );
            if let Some(level) = level {
                let _ = write!(out, "; wal_level {}", wal_level_name(level));
            }
            Some(())
        }
        OVERWRITE_CONTRECORD => {
            // xl_overwrite_contrecord { XLogRecPtr overwritten_lsn; TimestampTz overwrite_time; }
            let (lsn, time) = (u64_at(d, 0)?, i64_at(d, 8)?);
            let _ = write!(
                out,
                "lsn {}; time {}",
                lsn_str(version, lsn),
                timestamptz_to_str(time)
            );
            Some(())
        }
        CHECKPOINT_REDO if version >= PgVersion::V17 => {
            let _ = write!(out, "wal_level {}", wal_level_name(i32_at(d, 0)?));
            Some(())
        }
        // NOOP, SWITCH, FPI, FPI_FOR_HINT and (19) ASSIGN_LSN print nothing.
        _ => Some(()),
    }
}

/// The `CheckPoint` of a `CHECKPOINT_SHUTDOWN` or `CHECKPOINT_ONLINE` record.
///
/// ```
/// use pgwal::desc::Checkpoint;
/// use pgwal::wal::PgVersion;
///
/// let mut d = vec![0u8; 88];
/// d[0..8].copy_from_slice(&0x0100_0028u64.to_le_bytes()); // redo
/// d[8..12].copy_from_slice(&1u32.to_le_bytes()); // timeline
/// d[24..32].copy_from_slice(&752u64.to_le_bytes()); // next full xid
/// d[32..36].copy_from_slice(&24576u32.to_le_bytes()); // next oid
/// let c = Checkpoint::parse(PgVersion::V14, 0x10, &d).unwrap();
/// assert_eq!((c.redo.0, c.next_xid, c.next_oid, c.online), (0x0100_0028, 752, 24576, true));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Checkpoint {
    /// Where redo starts.
    pub redo: Lsn,
    /// `ThisTimeLineID`.
    pub timeline: u32,
    /// `PrevTimeLineID`.
    pub prev_timeline: u32,
    /// `fullPageWrites`.
    pub full_page_writes: bool,
    /// `wal_level` (17+).
    pub wal_level: Option<i32>,
    /// `logicalDecodingEnabled` (19+).
    pub logical_decoding: Option<bool>,
    /// `nextXid`, a `FullTransactionId`: epoch in the high 32 bits.
    pub next_xid: u64,
    /// `nextOid`.
    pub next_oid: u32,
    /// `nextMulti`.
    pub next_multi: u32,
    /// `nextMultiOffset` (64 bits wide from 19 on).
    pub next_multi_offset: u64,
    /// `oldestXid`.
    pub oldest_xid: u32,
    /// `oldestXidDB`.
    pub oldest_xid_db: u32,
    /// `oldestMulti`.
    pub oldest_multi: u32,
    /// `oldestMultiDB`.
    pub oldest_multi_db: u32,
    /// `oldestCommitTsXid`.
    pub oldest_commit_ts_xid: u32,
    /// `newestCommitTsXid`.
    pub newest_commit_ts_xid: u32,
    /// `oldestActiveXid`.
    pub oldest_active_xid: u32,
    /// `time`: when the checkpoint began, in seconds since the Unix epoch (`pg_time_t`).
    pub time: i64,
    /// `CHECKPOINT_ONLINE` (else a shutdown checkpoint).
    pub online: bool,
}

impl Checkpoint {
    /// Parses the main data `d` of a checkpoint record with info byte `info`; `None` if it is
    /// not a checkpoint or too short. Layout: redo LSN, two timelines, `fullPageWrites`,
    /// (17+) an int `wal_level`, (19) a bool `logicalDecodingEnabled`, then the 8-aligned
    /// `FullTransactionId nextXid` (at 24, 19: 32) and the rest; 19's `nextMultiOffset` is 64
    /// bits wide (8-aligned), which moves every later field.
    pub fn parse(version: PgVersion, info: u8, d: &[u8]) -> Option<Checkpoint> {
        let online = match info & 0xF0 {
            CHECKPOINT_SHUTDOWN => false,
            CHECKPOINT_ONLINE => true,
            _ => return None,
        };
        let v19 = version >= PgVersion::V19;
        // 19's fields sit 8 bytes later from nextXid on, 12 after the wider nextMultiOffset,
        // and 8 again from the 8-aligned `time` on.
        let (a, b) = if v19 { (8, 12) } else { (0, 0) };
        let u = |at: usize| u32_at(d, at);
        Some(Checkpoint {
            redo: Lsn(u64_at(d, 0)?),
            timeline: u(8)?,
            prev_timeline: u(12)?,
            full_page_writes: *d.get(16)? != 0,
            wal_level: if version >= PgVersion::V17 {
                Some(i32_at(d, 20)?)
            } else {
                None
            },
            logical_decoding: if v19 { Some(*d.get(24)? != 0) } else { None },
            next_xid: u64_at(d, 24 + a)?,
            next_oid: u(32 + a)?,
            next_multi: u(36 + a)?,
            next_multi_offset: if v19 {
                u64_at(d, 48)?
            } else {
                u64::from(u(40)?)
            },
            oldest_xid: u(44 + b)?,
            oldest_xid_db: u(48 + b)?,
            oldest_multi: u(52 + b)?,
            oldest_multi_db: u(56 + b)?,
            // pg_time_t time (64, 19: 72) is not printed.
            time: i64_at(d, 64 + a)?,
            oldest_commit_ts_xid: u(72 + a)?,
            newest_commit_ts_xid: u(76 + a)?,
            oldest_active_xid: u(80 + a)?,
            online,
        })
    }
}

fn checkpoint(out: &mut String, version: PgVersion, d: &[u8], info: u8) -> Option<()> {
    let c = Checkpoint::parse(version, info, d)?;
    let _ = write!(
        out,
        "redo {}; tli {}; prev tli {}; fpw {}; ",
        lsn_str(version, c.redo.0),
        c.timeline,
        c.prev_timeline,
        true_false(u8::from(c.full_page_writes))
    );
    if let Some(level) = c.wal_level {
        let _ = write!(out, "wal_level {}; ", wal_level_name(level));
    }
    if let Some(enabled) = c.logical_decoding {
        let _ = write!(out, "logical decoding {}; ", true_false(u8::from(enabled)));
    }
    let _ = write!(
        out,
        "xid {}:{}; oid {}; multi {}; offset {}; oldest xid {} in DB {}; \
         oldest multi {} in DB {}; oldest/newest commit timestamp xid: {}/{}; \
         oldest running xid {}; {}",
        c.next_xid >> 32,
        c.next_xid as u32,
        c.next_oid,
        c.next_multi,
        c.next_multi_offset,
        c.oldest_xid,
        c.oldest_xid_db,
        c.oldest_multi,
        c.oldest_multi_db,
        c.oldest_commit_ts_xid,
        c.newest_commit_ts_xid,
        c.oldest_active_xid,
        if c.online { "online" } else { "shutdown" },
    );
    Some(())
}

/// The new OID of a `NEXTOID` record.
pub(crate) fn next_oid(info: u8, d: &[u8]) -> Option<u32> {
    (info & 0xF0 == NEXTOID).then(|| u32_at(d, 0)).flatten()
}
