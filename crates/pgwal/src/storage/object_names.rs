//! Names of objects that a directory archive does not have: the partial objects that
//! `pgwal receive -D URL --flush-to remote` stores, `SEGMENT.EEEEEEEEEEEEEEEE[.gz|.lz4|.zst].partial`
//! (`E…`: the end of the WAL the object holds, as 16 upper-case hex digits). The one place
//! that writes and parses them: the receiver's object sink names them, and the reader of an
//! object archive (`dump -p URL`) reads each as a `.partial` form of its segment.

use crate::lsn::Lsn;
use crate::segment::{Compression, SegNo, TimelineId, WalFileName, WalSegSize};

/// A partial object's name, parsed: the `.partial` form of its segment (with the object's
/// compression) and the end of the WAL it holds. `None` for any other name.
pub fn partial_object(name: &str) -> Option<(WalFileName, Lsn)> {
    let rest = name.strip_suffix(".partial")?;
    let (seg, rest) = (rest.get(..24)?, rest.get(24..)?);
    let rest = rest.strip_prefix('.')?;
    let (hex, comp) = (rest.get(..16)?, rest.get(16..)?);
    if !hex
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase())
    {
        return None;
    }
    let end = Lsn(u64::from_str_radix(hex, 16).ok()?);
    let compression = [
        Compression::None,
        Compression::Gzip,
        Compression::Lz4,
        Compression::Zstd,
    ]
    .into_iter()
    .find(|c| c.suffix() == comp)?;
    let w @ WalFileName::Segment {
        partial: false,
        compression: Compression::None,
        ..
    } = WalFileName::parse(seg)?
    else {
        return None;
    };
    Some((w.with(compression, true), end))
}

/// `SEGMENT.EEEEEEEEEEEEEEEE[.gz|.lz4|.zst].partial`: (tli, segno, end, compression).
pub fn parse_partial_object(
    name: &str,
    seg_size: WalSegSize,
) -> Option<(TimelineId, SegNo, Lsn, Compression)> {
    let (w, end) = partial_object(name)?;
    let segno = w.segno(seg_size)?;
    Some((w.timeline(), segno, end, w.compression()))
}

/// The partial object name for segment (`tli`, `segno`) holding WAL up to `end`.
pub fn partial_object_name(
    tli: TimelineId,
    segno: SegNo,
    end: Lsn,
    seg_size: WalSegSize,
    compression: Compression,
) -> String {
    format!(
        "{}.{:016X}{}.partial",
        WalFileName::segment(tli, segno, seg_size),
        end.0,
        compression.suffix()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_object_names_round_trip() {
        let seg = WalSegSize::DEFAULT;
        let n = partial_object_name(
            TimelineId(1),
            SegNo(3),
            Lsn(0x030A_1B28),
            seg,
            Compression::Zstd,
        );
        assert_eq!(n, "000000010000000000000003.00000000030A1B28.zst.partial");
        assert_eq!(
            parse_partial_object(&n, seg),
            Some((TimelineId(1), SegNo(3), Lsn(0x030A_1B28), Compression::Zstd))
        );
        assert_eq!(
            partial_object(&n).map(|(w, _)| w.to_string()),
            Some("000000010000000000000003.zst.partial".to_owned())
        );
        let plain = partial_object_name(
            TimelineId(2),
            SegNo(3),
            Lsn(0x0300_0000),
            seg,
            Compression::None,
        );
        assert_eq!(plain, "000000020000000000000003.0000000003000000.partial");
        assert!(parse_partial_object(&plain, seg).is_some());
        for bad in [
            "000000010000000000000003.partial",
            "000000010000000000000003.zst.partial",
            "000000010000000000000003.00000000030a1b28.partial",
            "000000010000000000000003.00000000030A1B28.xz.partial",
            "00000001000000000000000X.00000000030A1B28.partial",
        ] {
            assert_eq!(parse_partial_object(bad, seg), None, "{bad}");
        }
    }
}
