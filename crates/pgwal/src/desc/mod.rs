//! Record descriptions exactly as PostgreSQL's `pg_waldump` prints them, for every built-in
//! resource manager of majors 13 to 18.
//!
//! [`rmgr_name`] gives the resource manager's name, [`identify`] the record type (`rm_identify`)
//! and [`describe`] the description text (`rm_desc`), each chosen by the WAL's version.

use crate::wal::{PgVersion, Record};

mod brin;
mod clog;
mod committs;
mod dbase;
mod generic;
mod gin;
mod gist;
mod hash;
mod heap;
mod logicalmsg;
mod multixact;
mod nbtree;
mod relmap;
mod replorigin;
mod seq;
mod smgr;
mod spgist;
mod standby;
mod tblspc;
mod util;
mod xact;
mod xlog;

pub use heap::{HeapDelete, HeapInsert, HeapUpdate};
pub use logicalmsg::LogicalMessage;
pub use xact::{XactEnd, XactOp};
pub(crate) use xact::{assignment as xact_assignment, end_with_subxacts as xact_end_subxacts};
pub use xlog::Checkpoint;

/// The typed contents of the records that have them, parsed by the same code that writes
/// their description, so the two never disagree (`pgwal dump --format json` renders its
/// `fields` from this).
///
/// ```no_run
/// # fn demo(rec: &pgwal::wal::Record<'_>) {
/// if let Some(pgwal::desc::Fields::Checkpoint(c)) = pgwal::desc::fields(rec) {
///     println!("redo at {}", c.redo);
/// }
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fields<'a> {
    /// XLOG `CHECKPOINT_SHUTDOWN` / `CHECKPOINT_ONLINE`.
    Checkpoint(Checkpoint),
    /// XLOG `NEXTOID`: the next OID.
    NextOid(u32),
    /// Transaction `COMMIT`, `ABORT`, `COMMIT_PREPARED`, `ABORT_PREPARED`.
    XactEnd(XactEnd),
    /// Heap `INSERT`.
    HeapInsert(HeapInsert),
    /// Heap `DELETE`.
    HeapDelete(HeapDelete),
    /// Heap `UPDATE` and `HOT_UPDATE`.
    HeapUpdate(HeapUpdate),
    /// LogicalMessage `MESSAGE`.
    LogicalMessage(LogicalMessage<'a>),
}

/// The typed contents of `rec`, for the record kinds [`Fields`] covers; `None` for others
/// and for main data too short for the kind.
pub fn fields<'a>(rec: &Record<'a>) -> Option<Fields<'a>> {
    let (v, info, d) = (rec.version(), rec.info(), rec.main_data());
    match (rec.rmid(), info & 0xF0) {
        (0, _) => Checkpoint::parse(v, info, d)
            .map(Fields::Checkpoint)
            .or_else(|| xlog::next_oid(info, d).map(Fields::NextOid)),
        (1, _) => XactEnd::parse(v, info, d).map(Fields::XactEnd),
        (10, k) => match k & 0x70 {
            0x00 => HeapInsert::parse(d).map(Fields::HeapInsert),
            0x10 => HeapDelete::parse(d).map(Fields::HeapDelete),
            0x20 | 0x40 => HeapUpdate::parse(d).map(Fields::HeapUpdate),
            _ => None,
        },
        (21, 0x00) => LogicalMessage::parse(d).map(Fields::LogicalMessage),
        _ => None,
    }
}

/// Built-in resource manager names in `RmgrId` order (`rmgrlist.h`, the same in 13–18).
pub const RMGR_NAMES: [&str; 22] = [
    "XLOG",
    "Transaction",
    "Storage",
    "CLOG",
    "Database",
    "Tablespace",
    "MultiXact",
    "RelMap",
    "Standby",
    "Heap2",
    "Heap",
    "Btree",
    "Hash",
    "Gin",
    "Gist",
    "Sequence",
    "SPGist",
    "BRIN",
    "CommitTs",
    "ReplicationOrigin",
    "Generic",
    "LogicalMessage",
];

/// The name of resource manager `rmid`: a built-in name, or `custom###` for 128..=255 (15+).
pub fn rmgr_name(rmid: u8) -> Option<std::borrow::Cow<'static, str>> {
    match rmid {
        0..=21 => Some(RMGR_NAMES[rmid as usize].into()),
        128..=255 => Some(format!("custom{rmid:03}").into()),
        _ => None,
    }
}

/// The record type as pg_waldump prints it: [`identify`]'s name, or `UNKNOWN (x)` with the
/// high four bits of `info` in hex when the resource manager does not know it.
///
/// ```
/// use pgwal::desc::record_type;
/// use pgwal::wal::PgVersion;
/// assert_eq!(record_type(PgVersion::V16, 0, 0x10), "CHECKPOINT_ONLINE");
/// assert_eq!(record_type(PgVersion::V16, 0, 0xF1), "UNKNOWN (f0)");
/// ```
pub fn record_type(version: PgVersion, rmid: u8, info: u8) -> std::borrow::Cow<'static, str> {
    match identify(version, rmid, info) {
        Some(id) => id.into(),
        None => format!("UNKNOWN ({:x})", info & 0xF0).into(),
    }
}

/// The record type name (`rm_identify`) of `info` for resource manager `rmid` in WAL of
/// `version`, or `None` when unknown (see [`record_type`]).
///
/// ```
/// use pgwal::desc::identify;
/// use pgwal::wal::PgVersion;
/// assert_eq!(identify(PgVersion::V16, 0, 0x00), Some("CHECKPOINT_SHUTDOWN"));
/// ```
pub fn identify(version: PgVersion, rmid: u8, info: u8) -> Option<&'static str> {
    match rmid {
        0 => xlog::identify(version, info),
        1 => xact::identify(version, info),
        2 => smgr::identify(version, info),
        3 => clog::identify(version, info),
        4 => dbase::identify(version, info),
        5 => tblspc::identify(version, info),
        6 => multixact::identify(version, info),
        7 => relmap::identify(version, info),
        8 => standby::identify(version, info),
        9 => heap::identify_heap2(version, info),
        10 => heap::identify_heap(version, info),
        11 => nbtree::identify(version, info),
        12 => hash::identify(version, info),
        13 => gin::identify(version, info),
        14 => gist::identify(version, info),
        15 => seq::identify(version, info),
        16 => spgist::identify(version, info),
        17 => brin::identify(version, info),
        18 => committs::identify(version, info),
        19 => replorigin::identify(version, info),
        20 => generic::identify(version, info),
        21 => logicalmsg::identify(version, info),
        _ => None,
    }
}

/// Appends the description text of `rec` (`rm_desc`) to `out`, as pg_waldump of the record's
/// version prints it after `desc: <TYPE> `. Malformed record data never panics: the text then
/// says what could not be decoded.
pub fn describe(out: &mut String, rec: &Record<'_>) {
    let version = rec.version();
    match rec.rmid() {
        0 => xlog::desc(out, rec),
        1 => xact::desc(out, rec),
        2 => smgr::desc(out, rec),
        3 => clog::desc(out, rec),
        4 => dbase::desc(out, rec),
        5 => tblspc::desc(out, rec),
        6 => multixact::desc(out, rec),
        7 => relmap::desc(out, rec),
        8 => standby::desc(out, rec),
        9 => heap::desc_heap2(out, rec),
        10 => heap::desc_heap(out, rec),
        11 => nbtree::desc(out, rec),
        12 => hash::desc(out, rec),
        13 => gin::desc(out, rec),
        14 => gist::desc(out, rec),
        15 => seq::desc(out, rec),
        16 => spgist::desc(out, rec),
        17 => brin::desc(out, rec),
        18 => committs::desc(out, rec),
        19 => replorigin::desc(out, rec),
        20 => generic::desc(out, rec),
        21 => logicalmsg::desc(out, rec),
        rmid if version >= PgVersion::V15 && rmid >= 128 => {
            use std::fmt::Write;
            let _ = write!(out, "rmid: {rmid}");
        }
        _ => {}
    }
}
