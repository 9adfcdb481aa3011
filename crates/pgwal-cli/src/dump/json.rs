//! `--format json`: JSON Lines, one object per record and one for statistics.
//!
//! The schema is a stable contract, documented in the README ("JSON output") and checked by
//! the `dump_json_schema` test. Fields are only ever added, never renamed or removed.

use pgwal::desc::{self, Fields};
use pgwal::wal::Record;
use serde_json::{json, Map, Value};

use super::text::record_len;

/// Structured fields for common records, rendered from the typed records `desc` parses (the
/// same values its description text prints).
fn fields(rec: &Record<'_>) -> Option<Value> {
    let lsn_text = |l: pgwal::Lsn| l.to_string();
    Some(match desc::fields(rec)? {
        Fields::Checkpoint(c) => json!({
            "redo": lsn_text(c.redo), "timeline": c.timeline, "prev_timeline": c.prev_timeline,
            "full_page_writes": c.full_page_writes, "next_xid": c.next_xid,
            "next_oid": c.next_oid, "online": c.online,
        }),
        Fields::NextOid(oid) => json!({ "next_oid": oid }),
        Fields::XactEnd(e) => json!({
            "op": e.op.name(), "xact_time_us": e.xact_time,
            "xact_time_unix_us": e.unix_time_us(),
        }),
        Fields::HeapInsert(h) => json!({ "offnum": h.offnum, "flags": h.flags }),
        Fields::HeapDelete(h) => json!({ "xmax": h.xmax, "offnum": h.offnum }),
        Fields::HeapUpdate(h) => json!({
            "old_xmax": h.old_xmax, "old_offnum": h.old_offnum,
            "new_xmax": h.new_xmax, "new_offnum": h.new_offnum,
        }),
        Fields::LogicalMessage(m) => json!({
            "db": m.db, "transactional": m.transactional,
            "prefix": String::from_utf8_lossy(m.prefix), "message_size": m.message_size,
        }),
        _ => return None,
    })
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
        desc::record_type(rec.version(), rec.rmid(), rec.info())
            .into_owned()
            .into(),
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
