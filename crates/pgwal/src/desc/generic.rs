//! Generic WAL (rmgr 20) records, as `genericdesc.c` describes them (the same in 13–18).

use std::fmt::Write;

use super::util::u16_at;
use crate::wal::{PgVersion, Record};

/// `generic_identify`: no subtypes, every record is `Generic`.
pub(crate) fn identify(_version: PgVersion, _info: u8) -> Option<&'static str> {
    Some("Generic")
}

/// `generic_desc`: the page regions in the main data, each {OffsetNumber offset; OffsetNumber
/// length; then `length` bytes}, as `offset %u, length %u` joined by `; `. (Generic WAL keeps
/// its page deltas in block data, so the main data is normally empty.) Stops at a region
/// header cut short.
pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let d = rec.main_data();
    let mut at = 0;
    while at < d.len() {
        let (Some(offset), Some(length)) = (u16_at(d, at), u16_at(d, at + 2)) else {
            return;
        };
        at += 4 + usize::from(length);
        let sep = if at < d.len() { "; " } else { "" };
        let _ = write!(out, "offset {offset}, length {length}{sep}");
    }
}
