//! Transaction (rmgr 1): commit, abort, prepare, subtransaction assignment and (14+)
//! invalidation records (`xactdesc.c`).
//!
//! The record type is `xl_info & XLOG_XACT_OPMASK` (0x70); the bit 0x80 (`XLOG_XACT_HAS_INFO`)
//! says whether an `xinfo` word follows the timestamp of a commit or abort record, and the
//! `xinfo` bits say which optional parts follow, in a fixed order (`ParseCommitRecord`).

use std::fmt::Write;

use super::util::{
    cstr_at, i32_at, i64_at, invalidations_desc, lsn_str, rel_at, relpath, timestamptz_to_str,
    u16_at, u32_at, u64_at, SIZEOF_INVAL_MSG,
};
use crate::wal::{Fork, PgVersion, Record, RelFileLocator};

const COMMIT: u8 = 0x00;
const PREPARE: u8 = 0x10;
const ABORT: u8 = 0x20;
const COMMIT_PREPARED: u8 = 0x30;
const ABORT_PREPARED: u8 = 0x40;
const ASSIGNMENT: u8 = 0x50;
const INVALIDATIONS: u8 = 0x60;
const OPMASK: u8 = 0x70;
const HAS_INFO: u8 = 0x80;

const XINFO_HAS_DBINFO: u32 = 1 << 0;
const XINFO_HAS_SUBXACTS: u32 = 1 << 1;
const XINFO_HAS_RELFILELOCATORS: u32 = 1 << 2;
const XINFO_HAS_INVALS: u32 = 1 << 3;
const XINFO_HAS_TWOPHASE: u32 = 1 << 4;
const XINFO_HAS_ORIGIN: u32 = 1 << 5;
const XINFO_HAS_GID: u32 = 1 << 7;
const XINFO_HAS_DROPPED_STATS: u32 = 1 << 8;
const COMPLETION_APPLY_FEEDBACK: u32 = 1 << 29;
const COMPLETION_UPDATE_RELCACHE_FILE: u32 = 1 << 30;
const COMPLETION_FORCE_SYNC_COMMIT: u32 = 1 << 31;

/// Size of `RelFileNode` / `RelFileLocator`.
const SIZEOF_REL: usize = 12;

pub(crate) fn identify(version: PgVersion, info: u8) -> Option<&'static str> {
    Some(match info & OPMASK {
        COMMIT => "COMMIT",
        PREPARE => "PREPARE",
        ABORT => "ABORT",
        COMMIT_PREPARED => "COMMIT_PREPARED",
        ABORT_PREPARED => "ABORT_PREPARED",
        ASSIGNMENT => "ASSIGNMENT",
        INVALIDATIONS if version >= PgVersion::V14 => "INVALIDATION",
        _ => return None,
    })
}

pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let version = rec.version();
    let d = rec.main_data();
    let origin_id = rec.origin().unwrap_or(0);
    let _ = match rec.info() & OPMASK {
        COMMIT | COMMIT_PREPARED => desc_commit(out, version, rec.info(), d, origin_id, true),
        ABORT | ABORT_PREPARED => desc_commit(out, version, rec.info(), d, origin_id, false),
        PREPARE => desc_prepare(out, version, d, origin_id),
        ASSIGNMENT => desc_assignment(out, d),
        INVALIDATIONS if version >= PgVersion::V14 => {
            // xl_xact_invals { int nmsgs; SharedInvalidationMessage msgs[]; }
            let nmsgs = i32_at(d, 0).unwrap_or(0);
            invalidations_desc(out, version, nmsgs, d.get(4..).unwrap_or(&[]), 0, 0, false);
            Some(())
        }
        _ => Some(()),
    };
}

/// What ended a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum XactOp {
    /// `COMMIT`.
    Commit,
    /// `ABORT`.
    Abort,
    /// `COMMIT_PREPARED`.
    CommitPrepared,
    /// `ABORT_PREPARED`.
    AbortPrepared,
}

impl XactOp {
    /// The JSON name: `commit`, `abort`, `commit_prepared`, `abort_prepared`.
    pub fn name(self) -> &'static str {
        match self {
            XactOp::Commit => "commit",
            XactOp::Abort => "abort",
            XactOp::CommitPrepared => "commit_prepared",
            XactOp::AbortPrepared => "abort_prepared",
        }
    }
}

/// The end of a transaction: a commit or abort record (plain or of a prepared transaction).
///
/// ```
/// use pgwal::desc::{XactEnd, XactOp};
/// use pgwal::wal::PgVersion;
///
/// let d = 123_456i64.to_le_bytes();
/// let e = XactEnd::parse(PgVersion::V16, 0x00, &d).unwrap();
/// assert_eq!((e.op, e.xact_time), (XactOp::Commit, 123_456));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct XactEnd {
    /// Which end.
    pub op: XactOp,
    /// `xact_time`: microseconds since 2000-01-01 00:00 UTC.
    pub xact_time: i64,
    /// The prepared transaction's xid (`*_PREPARED`), if the record carries it.
    pub twophase_xid: Option<u32>,
}

impl XactEnd {
    /// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
    pub const UNIX_TO_PG_EPOCH_US: i64 = 946_684_800_000_000;

    /// Parses a Transaction record with info byte `info` and main data `d`; `None` if it is not
    /// a commit or abort or is too short.
    pub fn parse(version: PgVersion, info: u8, d: &[u8]) -> Option<XactEnd> {
        let (op, is_commit) = match info & OPMASK {
            COMMIT => (XactOp::Commit, true),
            ABORT => (XactOp::Abort, false),
            COMMIT_PREPARED => (XactOp::CommitPrepared, true),
            ABORT_PREPARED => (XactOp::AbortPrepared, false),
            _ => return None,
        };
        let p = parse(version, info, d, is_commit)?;
        Some(XactEnd {
            op,
            xact_time: p.xact_time,
            twophase_xid: (p.twophase_xid != 0).then_some(p.twophase_xid),
        })
    }

    /// [`xact_time`](Self::xact_time) in microseconds since the Unix epoch.
    pub fn unix_time_us(&self) -> i64 {
        self.xact_time.saturating_add(Self::UNIX_TO_PG_EPOCH_US)
    }
}

/// The subtransactions a commit or abort record (plain or prepared) lists, and the
/// transaction it ends: the prepared transaction's xid for `*_PREPARED` records, else `xid`
/// (the record header's). `None` for other Transaction records and records too short.
pub(crate) fn end_with_subxacts(
    version: PgVersion,
    info: u8,
    xid: u32,
    d: &[u8],
) -> Option<(u32, impl Iterator<Item = u32> + '_)> {
    let is_commit = match info & OPMASK {
        COMMIT | COMMIT_PREPARED => true,
        ABORT | ABORT_PREPARED => false,
        _ => return None,
    };
    let p = parse(version, info, d, is_commit)?;
    let ended = if p.twophase_xid != 0 {
        p.twophase_xid
    } else {
        xid
    };
    Some((ended, xids(p.subxacts, p.nsubxacts)))
}

/// An `ASSIGNMENT` record's top-level transaction and subtransactions; `None` for other
/// records and records too short.
pub(crate) fn assignment(info: u8, d: &[u8]) -> Option<(u32, impl Iterator<Item = u32> + '_)> {
    if info & OPMASK != ASSIGNMENT {
        return None;
    }
    let xtop = u32_at(d, 0)?;
    let n = i32_at(d, 4)?;
    Some((xtop, xids(d.get(8..).unwrap_or(&[]), n)))
}

/// A commit or abort record parsed as `ParseCommitRecord` / `ParseAbortRecord` do.
#[derive(Default)]
struct Parsed<'a> {
    xact_time: i64,
    xinfo: u32,
    db: u32,
    ts: u32,
    nsubxacts: i32,
    subxacts: &'a [u8],
    nrels: i32,
    rels: &'a [u8],
    nstats: i32,
    stats: &'a [u8],
    nmsgs: i32,
    msgs: &'a [u8],
    twophase_xid: u32,
    origin_lsn: u64,
    origin_time: i64,
}

/// Reads a counted array: an int count at `*pos`, then `count` items of `size` bytes.
/// Advances `*pos` past it and returns the count and the bytes (clamped to what exists).
fn counted<'a>(d: &'a [u8], pos: &mut usize, size: usize) -> Option<(i32, &'a [u8])> {
    let n = i32_at(d, *pos)?;
    let start = *pos + 4;
    let len = usize::try_from(n).unwrap_or(0).saturating_mul(size);
    *pos = start.saturating_add(len);
    let items = d.get(start..).unwrap_or(&[]);
    Some((n, &items[..len.min(items.len())]))
}

/// Parses the optional parts after `xact_time` of a commit (`is_commit`) or abort record.
fn parse(version: PgVersion, info: u8, d: &[u8], is_commit: bool) -> Option<Parsed<'_>> {
    let mut p = Parsed {
        xact_time: i64_at(d, 0)?,
        ..Parsed::default()
    };
    let mut pos = 8;
    if info & HAS_INFO != 0 {
        p.xinfo = u32_at(d, pos)?;
        pos += 4;
    }
    if p.xinfo & XINFO_HAS_DBINFO != 0 {
        p.db = u32_at(d, pos)?;
        p.ts = u32_at(d, pos + 4)?;
        pos += 8;
    }
    if p.xinfo & XINFO_HAS_SUBXACTS != 0 {
        (p.nsubxacts, p.subxacts) = counted(d, &mut pos, 4)?;
    }
    if p.xinfo & XINFO_HAS_RELFILELOCATORS != 0 {
        (p.nrels, p.rels) = counted(d, &mut pos, SIZEOF_REL)?;
    }
    if version >= PgVersion::V15 && p.xinfo & XINFO_HAS_DROPPED_STATS != 0 {
        (p.nstats, p.stats) = counted(d, &mut pos, stats_item_size(version))?;
    }
    if is_commit && p.xinfo & XINFO_HAS_INVALS != 0 {
        (p.nmsgs, p.msgs) = counted(d, &mut pos, SIZEOF_INVAL_MSG)?;
    }
    if p.xinfo & XINFO_HAS_TWOPHASE != 0 {
        p.twophase_xid = u32_at(d, pos)?;
        pos += 4;
        if p.xinfo & XINFO_HAS_GID != 0 {
            pos += cstr_at(d, pos).len() + 1;
        }
    }
    if p.xinfo & XINFO_HAS_ORIGIN != 0 {
        p.origin_lsn = u64_at(d, pos)?;
        p.origin_time = i64_at(d, pos + 8)?;
    }
    Some(p)
}

/// Size of `xl_xact_stats_item`: `{int kind; Oid dboid; Oid objoid}` in 15–17, the object id
/// split into two `uint32` halves in 18.
fn stats_item_size(version: PgVersion) -> usize {
    if version >= PgVersion::V18 {
        16
    } else {
        12
    }
}

fn desc_commit(
    out: &mut String,
    version: PgVersion,
    info: u8,
    d: &[u8],
    origin_id: u16,
    is_commit: bool,
) -> Option<()> {
    let p = parse(version, info, d, is_commit)?;
    if p.twophase_xid != 0 {
        let _ = write!(out, "{}: ", p.twophase_xid);
    }
    out.push_str(&timestamptz_to_str(p.xact_time));
    relations(out, version, "rels", p.nrels, p.rels);
    subxacts(out, p.nsubxacts, p.subxacts);
    let origin = |out: &mut String| {
        if p.xinfo & XINFO_HAS_ORIGIN != 0 {
            origin_desc(out, version, origin_id, p.origin_lsn, p.origin_time);
        }
    };
    if is_commit {
        dropped_stats(out, version, "", p.nstats, p.stats);
        let init_file_inval = p.xinfo & COMPLETION_UPDATE_RELCACHE_FILE != 0;
        invalidations_desc(out, version, p.nmsgs, p.msgs, p.db, p.ts, init_file_inval);
        if version >= PgVersion::V15 && p.xinfo & COMPLETION_APPLY_FEEDBACK != 0 {
            out.push_str("; apply_feedback");
        }
        if p.xinfo & COMPLETION_FORCE_SYNC_COMMIT != 0 {
            out.push_str("; sync");
        }
        origin(out);
    } else if version >= PgVersion::V15 {
        origin(out);
        dropped_stats(out, version, "", p.nstats, p.stats);
    }
    Some(())
}

/// `xl_xact_prepare` (the two-phase state file header) followed by MAXALIGNed arrays:
/// gid, subxacts, commit rels, abort rels, (15+) commit and abort stats, invalidations.
fn desc_prepare(out: &mut String, version: PgVersion, d: &[u8], origin_id: u16) -> Option<()> {
    let maxalign = |n: usize| n.saturating_add(7) & !7;
    let has_stats = version >= PgVersion::V15;
    // magic, total_len and xid (at 8) are not printed.
    let db = u32_at(d, 12)?;
    let prepared_at = i64_at(d, 16)?;
    let count = |at: usize| i32_at(d, at).map(|n| usize::try_from(n).unwrap_or(0));
    let (nsubxacts, ncommitrels, nabortrels) = (count(28)?, count(32)?, count(36)?);
    let (ncommitstats, nabortstats, rest) = if has_stats {
        (count(40)?, count(44)?, 48)
    } else {
        (0, 0, 40)
    };
    let ninvalmsgs = i32_at(d, rest)?;
    let initfileinval = *d.get(rest + 4)? != 0;
    let gidlen = usize::from(u16_at(d, rest + 6)?);
    let origin_lsn = u64_at(d, rest + 8)?;
    let origin_time = i64_at(d, rest + 16)?;
    let mut pos = maxalign(rest + 24);

    // strncpy(gid, bufptr, gidlen) into a zeroed GIDSIZE buffer.
    let gid_bytes = d.get(pos..).unwrap_or(&[]);
    let gid = cstr_at(&gid_bytes[..gidlen.min(gid_bytes.len())], 0);
    pos = pos.saturating_add(maxalign(gidlen));
    // Takes `n` items of `size` bytes at `pos`, then moves `pos` past their MAXALIGNed length.
    let mut take = |n: usize, size: usize| {
        let len = n.saturating_mul(size);
        let all = d.get(pos..).unwrap_or(&[]);
        pos = pos.saturating_add(maxalign(len));
        &all[..len.min(all.len())]
    };
    let subxact_bytes = take(nsubxacts, 4);
    let commit_rels = take(ncommitrels, SIZEOF_REL);
    let abort_rels = take(nabortrels, SIZEOF_REL);
    let commit_stats = take(ncommitstats, stats_item_size(version));
    let abort_stats = take(nabortstats, stats_item_size(version));
    let msgs = take(usize::try_from(ninvalmsgs).unwrap_or(0), SIZEOF_INVAL_MSG);

    let _ = write!(out, "gid {gid}: {}", timestamptz_to_str(prepared_at));
    relations(
        out,
        version,
        "rels(commit)",
        ncommitrels as i32,
        commit_rels,
    );
    relations(out, version, "rels(abort)", nabortrels as i32, abort_rels);
    if has_stats {
        dropped_stats(out, version, "commit ", ncommitstats as i32, commit_stats);
        dropped_stats(out, version, "abort ", nabortstats as i32, abort_stats);
    }
    subxacts(out, nsubxacts as i32, subxact_bytes);
    // ParsePrepareRecord leaves tsId zero.
    invalidations_desc(out, version, ninvalmsgs, msgs, db, 0, initfileinval);
    if has_stats && origin_id != 0 {
        origin_desc(out, version, origin_id, origin_lsn, origin_time);
    }
    Some(())
}

/// `xl_xact_assignment { TransactionId xtop; int nsubxacts; TransactionId xsub[]; }`.
fn desc_assignment(out: &mut String, d: &[u8]) -> Option<()> {
    let xtop = u32_at(d, 0)?;
    let n = i32_at(d, 4)?;
    let _ = write!(out, "xtop {xtop}: subxacts:");
    for x in xids(d.get(8..).unwrap_or(&[]), n) {
        let _ = write!(out, " {x}");
    }
    Some(())
}

/// Up to `n` transaction ids from `b`.
fn xids(b: &[u8], n: i32) -> impl Iterator<Item = u32> + '_ {
    b.chunks_exact(4)
        .take(usize::try_from(n).unwrap_or(0))
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

fn relations(out: &mut String, version: PgVersion, label: &str, n: i32, rels: &[u8]) {
    if n <= 0 {
        return;
    }
    let _ = write!(out, "; {label}:");
    for r in rels.chunks_exact(SIZEOF_REL).take(n as usize) {
        let rel: RelFileLocator = rel_at(r, 0).unwrap_or_default();
        let _ = write!(out, " {}", relpath(version, rel, Fork::Main));
    }
}

fn subxacts(out: &mut String, n: i32, b: &[u8]) {
    if n <= 0 {
        return;
    }
    out.push_str("; subxacts:");
    for x in xids(b, n) {
        let _ = write!(out, " {x}");
    }
}

/// `; <label>dropped stats: kind/dboid/objid …` (15+; the object id is 64-bit in 18).
fn dropped_stats(out: &mut String, version: PgVersion, label: &str, n: i32, b: &[u8]) {
    if n <= 0 {
        return;
    }
    let _ = write!(out, "; {label}dropped stats:");
    let size = stats_item_size(version);
    for item in b.chunks_exact(size).take(n as usize) {
        let kind = i32_at(item, 0).unwrap_or(0);
        let db = u32_at(item, 4).unwrap_or(0);
        let objid = if version >= PgVersion::V18 {
            u64::from(u32_at(item, 12).unwrap_or(0)) << 32 | u64::from(u32_at(item, 8).unwrap_or(0))
        } else {
            u64::from(u32_at(item, 8).unwrap_or(0))
        };
        let _ = write!(out, " {kind}/{db}/{objid}");
    }
}

fn origin_desc(out: &mut String, version: PgVersion, origin_id: u16, lsn: u64, time: i64) {
    let _ = write!(
        out,
        "; origin: node {origin_id}, lsn {}, at {}",
        lsn_str(version, lsn),
        timestamptz_to_str(time)
    );
}
