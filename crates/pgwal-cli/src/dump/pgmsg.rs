//! pg_waldump's wording of the reader's errors (xlogreader's messages, per major), for the
//! drop-in `error in WAL record at ...` line. pgwal's own wording ([`WalError`]'s `Display`)
//! is used by `pgwal dump`.

use pgwal::wal::{PgVersion, WalError, WalErrorKind};
use pgwal::{TimelineId, WalSegSize};

/// The message pg_waldump of `version` prints for `e`, met while reading timeline `tli`.
pub fn reason(e: &WalError, version: PgVersion, tli: TimelineId, seg_size: WalSegSize) -> String {
    let at = e.lsn;
    let new = version >= PgVersion::V16;
    // Page-header errors name the segment (13–15 "log segment", 16+ also the page's LSN).
    let where_ = |offset: &u64| {
        let file = at.segment(seg_size).file_name(tli, seg_size);
        if new {
            format!("in WAL segment {file}, LSN {at}, offset {offset}")
        } else {
            format!("in log segment {file}, offset {offset}")
        }
    };
    match &e.kind {
        WalErrorKind::InvalidRecordLength { got } if new => {
            format!("invalid record length at {at}: expected at least 24, got {got}")
        }
        WalErrorKind::InvalidRecordLength { got } => {
            format!("invalid record length at {at}: wanted 24, got {got}")
        }
        WalErrorKind::BadMagic { magic, offset } => {
            format!("invalid magic number {magic:04X} {}", where_(offset))
        }
        WalErrorKind::InvalidInfoBits { info, offset } => {
            format!("invalid info bits {info:04X} {}", where_(offset))
        }
        WalErrorKind::UnexpectedPageAddr { found, offset } => {
            format!("unexpected pageaddr {found} {}", where_(offset))
        }
        WalErrorKind::InvalidContrecordLength { rem_len, .. } if version == PgVersion::V13 => {
            format!("invalid contrecord length {rem_len} at {at}")
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use pgwal::Lsn;

    #[test]
    fn wording_per_major() {
        let seg = WalSegSize::new(1 << 20).unwrap();
        let e = WalError {
            lsn: Lsn(0x880000),
            kind: WalErrorKind::BadMagic {
                magic: 0,
                offset: 524288,
            },
        };
        assert_eq!(
            reason(&e, PgVersion::V18, TimelineId(1), seg),
            "invalid magic number 0000 in WAL segment 000000010000000000000008, LSN 0/880000, offset 524288"
        );
        assert_eq!(
            reason(&e, PgVersion::V15, TimelineId(1), seg),
            "invalid magic number 0000 in log segment 000000010000000000000008, offset 524288"
        );
        let e = WalError {
            lsn: Lsn(0x16EF4D0),
            kind: WalErrorKind::InvalidRecordLength { got: 0 },
        };
        assert_eq!(
            reason(&e, PgVersion::V15, TimelineId(1), seg),
            "invalid record length at 0/16EF4D0: wanted 24, got 0"
        );
    }
}
