//! LogicalMessage (rmgr 21): `pg_logical_emit_message` records (`logicalmsgdesc.c`).
//! 14 replaced the message size with the prefix and a hex dump of the payload.

use std::fmt::Write;

use super::util::{cstr_at, u64_at};
use crate::wal::{PgVersion, Record};

const MESSAGE: u8 = 0x00;
/// `SizeOfLogicalMessage`: `{ Oid dbId; bool transactional; Size prefix_size;
/// Size message_size; }` before the prefix and payload bytes.
const HEADER: usize = 24;

pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    (info & 0xF0 == MESSAGE).then_some("MESSAGE")
}

pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    if rec.info() & 0xF0 != MESSAGE {
        return;
    }
    let d = rec.main_data();
    let (Some(&transactional), Some(prefix_size), Some(message_size)) =
        (d.get(4), u64_at(d, 8), u64_at(d, 16))
    else {
        return;
    };
    let transactional = transactional != 0;
    if rec.version() == PgVersion::V13 {
        let kind = if transactional {
            "transactional"
        } else {
            "nontransactional"
        };
        let _ = write!(out, "{kind} message size {message_size} bytes");
        return;
    }
    let kind = if transactional {
        "transactional"
    } else {
        "non-transactional"
    };
    let prefix = cstr_at(d, HEADER);
    let _ = write!(
        out,
        "{kind}, prefix \"{prefix}\"; payload ({message_size} bytes): "
    );
    let payload = usize::try_from(prefix_size)
        .ok()
        .and_then(|p| d.get(HEADER.checked_add(p)?..))
        .unwrap_or(&[]);
    let len = usize::try_from(message_size).unwrap_or(usize::MAX);
    for (i, b) in payload.iter().take(len).enumerate() {
        let _ = write!(out, "{}{b:02X}", if i == 0 { "" } else { " " });
    }
}
