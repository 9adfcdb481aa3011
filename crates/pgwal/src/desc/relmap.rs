//! RelMap (rmgr 7): relation mapper file updates (`relmapdesc.c`).

use std::fmt::Write;

use super::util::{i32_at, u32_at};
use crate::wal::{PgVersion, Record};

const UPDATE: u8 = 0x00;

pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    (info & 0xF0 == UPDATE).then_some("UPDATE")
}

pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    if rec.info() & 0xF0 != UPDATE {
        return;
    }
    // xl_relmap_update { Oid dbid; Oid tsid; int32 nbytes; char data[]; }
    let d = rec.main_data();
    let (Some(db), Some(ts), Some(nbytes)) = (u32_at(d, 0), u32_at(d, 4), i32_at(d, 8)) else {
        return;
    };
    // Printed with %u up to 14, %d from 15.
    if rec.version() >= PgVersion::V15 {
        let _ = write!(out, "database {db} tablespace {ts} size {nbytes}");
    } else {
        let _ = write!(out, "database {db} tablespace {ts} size {}", nbytes as u32);
    }
}
