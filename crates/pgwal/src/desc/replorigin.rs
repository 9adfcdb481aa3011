//! ReplicationOrigin (rmgr 19): replication origin progress and drops (`replorigindesc.c`).

use std::fmt::Write;

use super::util::{lsn_str, u16_at, u64_at};
use crate::wal::{PgVersion, Record};

const SET: u8 = 0x00;
const DROP: u8 = 0x10;

/// Note: `replorigin_identify` switches on the raw `xl_info`, low bits included.
pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    match info {
        SET => Some("SET"),
        DROP => Some("DROP"),
        _ => None,
    }
}

pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let d = rec.main_data();
    match rec.info() & 0xF0 {
        SET => {
            // xl_replorigin_set { XLogRecPtr remote_lsn; RepOriginId node_id; bool force; }
            if let (Some(lsn), Some(node), Some(&force)) = (u64_at(d, 0), u16_at(d, 8), d.get(10)) {
                let _ = write!(
                    out,
                    "set {node}; lsn {}; force: {force}",
                    lsn_str(rec.version(), lsn)
                );
            }
        }
        DROP => {
            // xl_replorigin_drop { RepOriginId node_id; }
            if let Some(node) = u16_at(d, 0) {
                let _ = write!(out, "drop {node}");
            }
        }
        _ => {}
    }
}
