//! Storage (rmgr 2): relation file creation and truncation (`smgrdesc.c`).

use std::fmt::Write;

use super::util::{i32_at, rel_at, relpath, u32_at};
use crate::wal::{Fork, PgVersion, Record};

const CREATE: u8 = 0x10;
const TRUNCATE: u8 = 0x20;

pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    match info & 0xF0 {
        CREATE => Some("CREATE"),
        TRUNCATE => Some("TRUNCATE"),
        _ => None,
    }
}

pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    let _ = desc_inner(out, rec);
}

fn desc_inner(out: &mut String, rec: &Record<'_>) -> Option<()> {
    let (version, d) = (rec.version(), rec.main_data());
    match rec.info() & 0xF0 {
        CREATE => {
            // xl_smgr_create { RelFileLocator rlocator; ForkNumber forkNum; }
            let fork = Fork::from_number(u8::try_from(i32_at(d, 12)?).unwrap_or(u8::MAX));
            out.push_str(&relpath(version, rel_at(d, 0)?, fork));
        }
        TRUNCATE => {
            // xl_smgr_truncate { BlockNumber blkno; RelFileLocator rlocator; int flags; }
            let (blkno, rel, flags) = (u32_at(d, 0)?, rel_at(d, 4)?, i32_at(d, 16)?);
            let path = relpath(version, rel, Fork::Main);
            let _ = write!(out, "{path} to {blkno} blocks flags {flags}");
        }
        _ => {}
    }
    Some(())
}
