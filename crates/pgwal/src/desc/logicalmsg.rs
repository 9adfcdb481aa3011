//! LogicalMessage (rmgr 21): `pg_logical_emit_message` records (`logicalmsgdesc.c`).
//! 14 replaced the message size with the prefix and a hex dump of the payload.

use std::fmt::Write;

use super::util::{u32_at, u64_at};
use crate::wal::{PgVersion, Record};

const MESSAGE: u8 = 0x00;
/// `SizeOfLogicalMessage`: `{ Oid dbId; bool transactional; Size prefix_size;
/// Size message_size; }` before the prefix and payload bytes.
const HEADER: usize = 24;

pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    (info & 0xF0 == MESSAGE).then_some("MESSAGE")
}

/// A `pg_logical_emit_message` record (`xl_logical_message`), borrowing its bytes.
///
/// ```
/// let mut d = vec![0u8; 24];
/// d[4] = 1; // transactional
/// d[8..16].copy_from_slice(&3u64.to_le_bytes()); // prefix size, with its NUL
/// d[16..24].copy_from_slice(&2u64.to_le_bytes()); // message size
/// d.extend_from_slice(b"ab\0hi");
/// let m = pgwal::desc::LogicalMessage::parse(&d).unwrap();
/// assert_eq!((m.transactional, m.prefix, m.payload), (true, &b"ab"[..], &b"hi"[..]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogicalMessage<'a> {
    /// `dbId`.
    pub db: u32,
    /// `transactional`.
    pub transactional: bool,
    /// The prefix, up to its first NUL (or its end).
    pub prefix: &'a [u8],
    /// `message_size` as the record says it.
    pub message_size: u64,
    /// The payload bytes present (at most `message_size`).
    pub payload: &'a [u8],
}

impl<'a> LogicalMessage<'a> {
    /// Parses the main data of a LogicalMessage `MESSAGE` record.
    pub fn parse(d: &'a [u8]) -> Option<LogicalMessage<'a>> {
        let (db, &transactional, prefix_size, message_size) =
            (u32_at(d, 0)?, d.get(4)?, u64_at(d, 8)?, u64_at(d, 16)?);
        let rest = d.get(HEADER..).unwrap_or(&[]);
        let prefix = &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())];
        let payload = usize::try_from(prefix_size)
            .ok()
            .and_then(|p| d.get(HEADER.checked_add(p)?..))
            .unwrap_or(&[]);
        let len = usize::try_from(message_size).unwrap_or(usize::MAX);
        Some(LogicalMessage {
            db,
            transactional: transactional != 0,
            prefix,
            message_size,
            payload: &payload[..len.min(payload.len())],
        })
    }
}

pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    if rec.info() & 0xF0 != MESSAGE {
        return;
    }
    let Some(m) = LogicalMessage::parse(rec.main_data()) else {
        return;
    };
    if rec.version() == PgVersion::V13 {
        let kind = if m.transactional {
            "transactional"
        } else {
            "nontransactional"
        };
        let _ = write!(out, "{kind} message size {} bytes", m.message_size);
        return;
    }
    let kind = if m.transactional {
        "transactional"
    } else {
        "non-transactional"
    };
    let _ = write!(
        out,
        "{kind}, prefix \"{}\"; payload ({} bytes): ",
        String::from_utf8_lossy(m.prefix),
        m.message_size
    );
    for (i, b) in m.payload.iter().enumerate() {
        let _ = write!(out, "{}{b:02X}", if i == 0 { "" } else { " " });
    }
}
