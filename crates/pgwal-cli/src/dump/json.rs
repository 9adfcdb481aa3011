//! `--format json`: JSON Lines, one object per record and one for statistics.
//!
//! The schema is a stable contract, documented in the README ("JSON output") and checked by
//! the `dump_json_schema` test. Fields are only ever added, never renamed or removed.

use pgwal::desc;
use pgwal::wal::{PgVersion, Record};
use serde_json::{json, Map, Value};

use super::text::record_len;

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}
fn le_i64(b: &[u8], at: usize) -> Option<i64> {
    le_u64(b, at).map(|v| v as i64)
}
fn lsn_text(v: u64) -> String {
    pgwal::Lsn(v).to_string()
}

/// Structured fields for common records (a subset of what the description text says).
fn fields(rec: &Record<'_>) -> Option<Value> {
    let d = rec.main_data();
    let kind = rec.info() & 0xF0;
    let v = rec.version();
    match (rec.rmid(), kind) {
        // XLOG checkpoints: redo pointer and timelines.
        (0, 0x00) | (0, 0x10) => {
            let redo = le_u64(d, 0)?;
            let tli = le_u32(d, 8)?;
            let prev_tli = le_u32(d, 12)?;
            let fpw = *d.get(16)? != 0;
            let base = if v >= PgVersion::V17 { 24 } else { 20 };
            let next_xid = le_u64(d, base)?;
            let next_oid = le_u32(d, base + 8)?;
            Some(json!({
                "redo": lsn_text(redo), "timeline": tli, "prev_timeline": prev_tli,
                "full_page_writes": fpw, "next_xid": next_xid, "next_oid": next_oid,
                "online": kind == 0x10,
            }))
        }
        // XLOG NEXTOID.
        (0, 0x30) => Some(json!({ "next_oid": le_u32(d, 0)? })),
        // Transaction COMMIT / ABORT (and prepared forms): the timestamp.
        (1, k) if matches!(k & 0x70, 0x00 | 0x20 | 0x30 | 0x40) => {
            let ts = le_i64(d, 0)?;
            let op = match k & 0x70 {
                0x00 => "commit",
                0x20 => "abort",
                0x30 => "commit_prepared",
                _ => "abort_prepared",
            };
            Some(
                json!({ "op": op, "xact_time_us": ts, "xact_time_unix_us": ts + 946_684_800_000_000 }),
            )
        }
        // Heap INSERT / DELETE / HOT_UPDATE / UPDATE: offsets.
        (10, 0x00) => Some(json!({ "offnum": le_u16(d, 0)?, "flags": *d.get(2)? })),
        (10, 0x10) => {
            let (xmax, off) = (le_u32(d, 0)?, le_u16(d, 4)?);
            Some(json!({ "xmax": xmax, "offnum": off }))
        }
        (10, 0x20) | (10, 0x40) => Some(json!({
            "old_xmax": le_u32(d, 0)?, "old_offnum": le_u16(d, 4)?,
            "new_xmax": le_u32(d, 8)?, "new_offnum": le_u16(d, 12)?,
        })),
        // Logical messages: prefix and payload size.
        (21, 0x00) => {
            let db = le_u32(d, 0)?;
            let transactional = *d.get(4)? != 0;
            let prefix_size = le_u64(d, 8)? as usize;
            let message_size = le_u64(d, 16)?;
            let prefix = d.get(24..24 + prefix_size.saturating_sub(1))?;
            Some(json!({
                "db": db, "transactional": transactional,
                "prefix": String::from_utf8_lossy(prefix), "message_size": message_size,
            }))
        }
        _ => None,
    }
}

/// Appends one JSON object (and a newline) describing `rec`.
pub fn write_record(out: &mut String, rec: &Record<'_>, timeline: u32) {
    let mut desc_text = String::new();
    desc::describe(&mut desc_text, rec);
    let blocks: Vec<Value> = rec
        .blocks()
        .map(|b| {
            let r = b.rel();
            let image = b.image_info().map(|img| {
                json!({
                    "len": img.len,
                    "hole_offset": img.hole_offset,
                    "hole_length": img.hole_length,
                    "compression": img.flags.compression.name(),
                    "apply": img.flags.apply,
                })
            });
            json!({
                "id": b.id(),
                "rel": { "spc": r.spc, "db": r.db, "rel": r.rel },
                "fork": b.fork().name(),
                "blk": b.blkno(),
                "will_init": b.will_init(),
                "data_len": b.data_len(),
                "image": image,
            })
        })
        .collect();
    let mut m = Map::new();
    m.insert("type".into(), "record".into());
    m.insert("lsn".into(), rec.lsn().to_string().into());
    m.insert("end_lsn".into(), rec.end_lsn().to_string().into());
    m.insert("prev".into(), rec.prev().to_string().into());
    m.insert("timeline".into(), timeline.into());
    m.insert("pg_version".into(), rec.version().major().into());
    m.insert("rmid".into(), rec.rmid().into());
    m.insert(
        "rmgr".into(),
        desc::rmgr_name(rec.rmid())
            .unwrap_or_default()
            .into_owned()
            .into(),
    );
    m.insert(
        "record_type".into(),
        match desc::identify(rec.version(), rec.rmid(), rec.info()) {
            Some(id) => id.into(),
            None => format!("UNKNOWN ({:x})", rec.info() & 0xF0).into(),
        },
    );
    m.insert("info".into(), rec.info().into());
    m.insert("rec_len".into(), record_len(rec).into());
    m.insert("tot_len".into(), rec.total_len().into());
    m.insert("fpi_len".into(), rec.fpi_len().into());
    m.insert("xid".into(), rec.xid().into());
    m.insert("toplevel_xid".into(), rec.toplevel_xid().into());
    m.insert("origin".into(), rec.origin().into());
    m.insert("blocks".into(), blocks.into());
    m.insert("main_data_len".into(), rec.main_data().len().into());
    m.insert("desc".into(), desc_text.into());
    m.insert("fields".into(), fields(rec).unwrap_or(Value::Null));
    out.push_str(&Value::Object(m).to_string());
    out.push('\n');
}
