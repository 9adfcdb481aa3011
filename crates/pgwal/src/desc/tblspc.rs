//! Tablespace (rmgr 5): CREATE / DROP TABLESPACE (`tblspcdesc.c`).

use std::fmt::Write;

use super::util::{cstr_at, u32_at};
use crate::wal::{PgVersion, Record};

const CREATE: u8 = 0x00;
const DROP: u8 = 0x10;

pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    match info & 0xF0 {
        CREATE => Some("CREATE"),
        DROP => Some("DROP"),
        _ => None,
    }
}

pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let d = rec.main_data();
    let Some(ts_id) = u32_at(d, 0) else { return };
    match rec.info() & 0xF0 {
        // xl_tblspc_create_rec { Oid ts_id; char ts_path[]; }
        CREATE => {
            let _ = write!(out, "{ts_id} \"{}\"", cstr_at(d, 4));
        }
        DROP => {
            let _ = write!(out, "{ts_id}");
        }
        _ => {}
    }
}
