//! Sequence (rmgr 15) records, as `seqdesc.c` describes them (the same text in 13–18).

use std::fmt::Write;

use super::util::rel_at;
use crate::wal::{PgVersion, Record};

/// `XLOG_SEQ_LOG`.
const LOG: u8 = 0x00;

/// `seq_identify`.
pub(crate) fn identify(_version: PgVersion, info: u8) -> Option<&'static str> {
    (info & 0xF0 == LOG).then_some("LOG")
}

/// `seq_desc`: `rel %u/%u/%u` of `xl_seq_rec {RelFileNode node}`.
pub(crate) fn desc(out: &mut String, rec: &Record<'_>) {
    if rec.info() & 0xF0 != LOG {
        return;
    }
    if let Some(rel) = rel_at(rec.main_data(), 0) {
        let _ = write!(out, "rel {}/{}/{}", rel.spc, rel.db, rel.rel);
    }
}
