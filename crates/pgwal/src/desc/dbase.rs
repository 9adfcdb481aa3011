//! Database (rmgr 4): CREATE / DROP DATABASE directory records (`dbasedesc.c`). 15 renumbered
//! the record types when it added the WAL_LOG strategy.

use std::fmt::Write;

use super::util::{i32_at, u32_at};
use crate::wal::{PgVersion, Record};

/// The record kinds, by version-specific `xl_info` value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// 13–14 CREATE (0x00), 15+ CREATE_FILE_COPY (0x00).
    FileCopy,
    /// 15+ CREATE_WAL_LOG (0x10).
    WalLog,
    /// DROP: 0x10 in 13–14, 0x20 from 15.
    Drop,
}

fn kind(version: PgVersion, info: u8) -> Option<Kind> {
    let new = version >= PgVersion::V15;
    match info & 0xF0 {
        0x00 => Some(Kind::FileCopy),
        0x10 if new => Some(Kind::WalLog),
        0x10 => Some(Kind::Drop),
        0x20 if new => Some(Kind::Drop),
        _ => None,
    }
}

pub(crate) fn identify(version: PgVersion, info: u8) -> Option<&'static str> {
    Some(match kind(version, info)? {
        Kind::FileCopy if version >= PgVersion::V15 => "CREATE_FILE_COPY",
        Kind::FileCopy => "CREATE",
        Kind::WalLog => "CREATE_WAL_LOG",
        Kind::Drop => "DROP",
    })
}

pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let d = rec.main_data();
    let u = |at: usize| u32_at(d, at);
    let _ = (|| {
        match kind(rec.version(), rec.info())? {
            Kind::FileCopy => {
                // { Oid db_id; Oid tablespace_id; Oid src_db_id; Oid src_tablespace_id; }
                let (db, spc, src_db, src_spc) = (u(0)?, u(4)?, u(8)?, u(12)?);
                let _ = write!(out, "copy dir {src_spc}/{src_db} to {spc}/{db}");
            }
            Kind::WalLog => {
                // { Oid db_id; Oid tablespace_id; }
                let (db, spc) = (u(0)?, u(4)?);
                let _ = write!(out, "create dir {spc}/{db}");
            }
            Kind::Drop => {
                // { Oid db_id; int ntablespaces; Oid tablespace_ids[]; }
                let (db, n) = (u(0)?, i32_at(d, 4)?);
                out.push_str("dir");
                for i in 0..usize::try_from(n).unwrap_or(0) {
                    let _ = write!(out, " {}/{db}", u(8 + 4 * i)?);
                }
            }
        }
        Some(())
    })();
}
