//! pg_waldump's text form of a record: the record line, its description and block references.

use std::fmt::Write;

use pgwal::desc;
use pgwal::wal::{Fork, PgVersion, Record, BLCKSZ};

use super::fastfmt::Line;

/// `rec_len` as pg_waldump computes it: the total length minus the full-page image bytes.
pub fn record_len(rec: &Record<'_>) -> u32 {
    rec.total_len().saturating_sub(rec.fpi_len())
}

/// Appends the record line(s) for `rec` to `out`, ending with a newline.
pub fn write_record(out: &mut String, rec: &Record<'_>, bkp_details: bool) {
    let name = desc::rmgr_name(rec.rmid()).unwrap_or_default();
    let mut l = Line::new(out);
    l.str("rmgr: ");
    l.str(&name);
    l.spaces(11usize.saturating_sub(name.len()));
    l.str(" len (rec/tot): ");
    l.dec(u64::from(record_len(rec)), 6);
    l.str("/");
    l.dec(u64::from(rec.total_len()), 6);
    l.str(", tx: ");
    l.dec(u64::from(rec.xid()), 10);
    l.str(", lsn: ");
    l.lsn_padded(rec.lsn().0);
    l.str(", prev ");
    l.lsn_padded(rec.prev().0);
    l.str(", ");
    out.push_str("desc: ");
    out.push_str(&desc::record_type(rec.version(), rec.rmid(), rec.info()));
    out.push(' ');
    desc::describe(out, rec);
    write_block_refs(out, rec, bkp_details);
}

/// The block references in pg_waldump's short (same line) or detailed (`-b`) form, with the
/// trailing newline.
pub fn write_block_refs(out: &mut String, rec: &Record<'_>, detailed: bool) {
    if detailed {
        out.push('\n');
    }
    for b in rec.blocks() {
        let r = b.rel();
        if detailed {
            let _ = write!(
                out,
                "\tblkref #{}: rel {}/{}/{} fork {} blk {}",
                b.id(),
                r.spc,
                r.db,
                r.rel,
                b.fork().name(),
                b.blkno()
            );
            if let Some(img) = b.image_info() {
                let apply = if img.flags.apply {
                    ""
                } else {
                    " for WAL verification"
                };
                let _ = write!(
                    out,
                    " (FPW{apply}); hole: offset: {}, length: {}",
                    img.hole_offset, img.hole_length
                );
                if img.flags.compression != pgwal::wal::ImageCompression::None {
                    let saved = BLCKSZ
                        .wrapping_sub(u32::from(img.hole_length))
                        .wrapping_sub(u32::from(img.len));
                    let _ = write!(out, ", compression saved: {saved}");
                    if rec.version() >= PgVersion::V15 {
                        let _ = write!(out, ", method: {}", img.flags.compression.name());
                    }
                }
            }
            out.push('\n');
        } else {
            let mut l = Line::new(out);
            l.str(", blkref #");
            l.dec(u64::from(b.id()), 0);
            l.str(": rel ");
            l.dec(u64::from(r.spc), 0);
            l.str("/");
            l.dec(u64::from(r.db), 0);
            l.str("/");
            l.dec(u64::from(r.rel), 0);
            if b.fork() != Fork::Main {
                l.str(" fork ");
                l.str(b.fork().name());
            }
            l.str(" blk ");
            l.dec(u64::from(b.blkno()), 0);
            if let Some(img) = b.image_info() {
                out.push_str(if img.flags.apply {
                    " FPW"
                } else {
                    " FPW for WAL verification"
                });
            }
        }
    }
    if !detailed {
        out.push('\n');
    }
}
