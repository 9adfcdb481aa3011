//! Entry points for the fuzz targets under `fuzz/` (not a stable API).

use crate::lsn::Lsn;
use crate::segment::WalSegSize;
use crate::wal::{DecoderConfig, WalDecoder};

/// Feeds `data` to a decoder as WAL starting at a segment boundary, cut into pieces whose sizes
/// come from the first bytes, and walks every record, block and image. Must never panic, hang
/// or allocate beyond the input.
pub fn decode_wal(data: &[u8]) {
    let (cuts, wal) = data.split_at(data.len().min(4));
    let step = |i: usize| usize::from(*cuts.get(i % cuts.len().max(1)).unwrap_or(&255)).max(1) * 37;
    // Read position and segment size from the first page header when they are plausible, so
    // real WAL seeds decode deeply; otherwise use fixed ones.
    let header = crate::wal::PageHeader::parse(wal);
    let seg = header
        .and_then(|h| h.long)
        .and_then(|l| WalSegSize::new(l.seg_size))
        .unwrap_or(WalSegSize::new(1 << 20).unwrap_or(WalSegSize::DEFAULT));
    let base = header
        .map(|h| h.pageaddr.page_start(8192))
        .unwrap_or(Lsn(0x100_0000));
    for start in [base, Lsn(0x100_2000)] {
        let mut d = WalDecoder::new(DecoderConfig::new(seg), start);
        let mut rest = wal;
        let mut i = 0;
        while !rest.is_empty() {
            let n = step(i).min(rest.len());
            let (mut piece, tail) = rest.split_at(n);
            rest = tail;
            i += 1;
            loop {
                match d.decode(&mut piece) {
                    Ok(Some(rec)) => {
                        let mut s = String::new();
                        crate::desc::describe(&mut s, &rec);
                        for b in rec.blocks() {
                            let _ = b.data();
                            if let Some(img) = b.image() {
                                let _ = crate::wal::restore_block_image(&img);
                            }
                        }
                        let _ = rec.main_data();
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
        }
    }
}

/// Parses `data` as a WAL file name and as a history file; formatting must round-trip.
pub fn names(data: &[u8]) {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(n) = crate::WalFileName::parse(s) {
            assert_eq!(n.to_string(), s, "file names must round-trip");
        }
        if let Ok(l) = s.parse::<Lsn>() {
            assert_eq!(l.to_string().parse::<Lsn>().ok(), Some(l));
        }
    }
    let _ = crate::TimelineHistory::parse(data);
}
