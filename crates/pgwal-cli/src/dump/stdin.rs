//! `pgwal dump -`: WAL from standard input (e.g. `zstdcat seg.zst | pgwal dump -`).
//!
//! The stream must start at a segment boundary; its first long page header gives the segment
//! size, system and start LSN. Consecutive segments may follow; compressed input (gzip, LZ4
//! frame, zstd) is detected from its first bytes.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use pgwal::source::{decompress, probe_segment, sniff_compression};
use pgwal::wal::WalDecoder;
use pgwal::Compression;

use super::stats::Stats;
use super::{DumpArgs, Filters, Sink};

const PIECE: usize = 1 << 20;

pub(crate) fn run(
    a: &DumpArgs,
    per_record: Option<bool>,
    limit: i64,
    filters: Filters,
) -> anyhow::Result<ExitCode> {
    let mut input = std::io::stdin().lock();
    let mut first = vec![0u8; PIECE];
    let mut got = 0;
    while got < first.len() {
        let n = input.read(&mut first[got..])?;
        if n == 0 {
            break;
        }
        got += n;
    }
    first.truncate(got);
    let kind = sniff_compression(&first);
    let mut whole: Option<Vec<u8>> = None;
    if kind != Compression::None {
        input.read_to_end(&mut first)?;
        whole = Some(decompress(kind, &first).map_err(|e| anyhow!("standard input: {e}"))?);
    }
    let head: &[u8] = whole.as_deref().unwrap_or(&first);
    let info = probe_segment(head).map_err(|e| anyhow!("standard input: {e}"))?;
    if info.pageaddr.segment_offset(info.seg_size) != 0 {
        bail!(
            "standard input does not start at a segment boundary (page address {})",
            info.pageaddr
        );
    }
    let start = match &a.start {
        Some(s) => super::parse_lsn(s)?,
        None => info.pageaddr,
    };
    let end = a.end.as_deref().map(super::parse_lsn).transpose()?;
    let sink = Sink::new(a, filters, per_record.is_some(), info.tli);
    let cfg = sink.decoder_config(&info);
    let mut decoder = WalDecoder::new(cfg, info.pageaddr);
    let mut stats = Stats::new();
    stats.insight = super::insight::collector_for(a)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut text = String::with_capacity(1 << 16);
    let mut shown = 0i64;
    let mut done = false;
    let mut end_error = None;
    let mut feed = |piece: &[u8], out: &mut dyn Write| -> anyhow::Result<bool> {
        let mut rest = piece;
        loop {
            match decoder.decode(&mut rest) {
                Ok(Some(rec)) => {
                    if rec.lsn() < start {
                        continue;
                    }
                    if end.is_some_and(|e| rec.end_lsn() > e) {
                        return Ok(false);
                    }
                    stats.start.get_or_insert(rec.lsn());
                    if sink.handle(&rec, &mut text, &mut stats)? {
                        shown += 1;
                    }
                    if text.len() > 1 << 15 {
                        out.write_all(text.as_bytes())?;
                        text.clear();
                    }
                    if limit > 0 && shown >= limit {
                        return Ok(false);
                    }
                }
                Ok(None) => return Ok(true),
                Err(e) if e.is_end_of_wal() => {
                    end_error = Some(e);
                    return Ok(false);
                }
                Err(e) => bail!("standard input: {e}"),
            }
        }
    };
    if let Some(w) = &whole {
        feed(w, &mut out)?;
    } else {
        let mut more = feed(&first, &mut out)?;
        let mut buf = vec![0u8; PIECE];
        while more && !done {
            let n = input.read(&mut buf)?;
            if n == 0 {
                done = true;
            } else {
                more = feed(&buf[..n], &mut out)?;
            }
        }
    }
    out.write_all(text.as_bytes())?;
    if let Some(per_record) = per_record {
        if !a.quiet {
            stats.set_version(info.version);
            let mut t = String::new();
            if super::insight::finish(a, &mut stats, &mut t)? {
            } else if sink.json {
                t.push_str(&stats.to_json(per_record).to_string());
                t.push('\n');
            } else {
                stats.write(&mut t, per_record);
            }
            out.write_all(t.as_bytes())?;
        }
    }
    out.flush()?;
    let at = end_error
        .as_ref()
        .map(|e| e.lsn)
        .or(decoder.pending_record())
        .or(decoder.last_record_end());
    if let Some(at) = at {
        // As the directory path prints it: padded for the majors whose pg_waldump pads (19).
        let at = info.version.lsn(at);
        let why = end_error
            .map(|e| e.to_string())
            .unwrap_or_else(|| "end of input".into());
        if a.waldump_exit {
            eprintln!(
                "{}: error: error in WAL record at {at}: {why}",
                crate::prog::name()
            );
            return Ok(ExitCode::FAILURE);
        }
        eprintln!("{}: end of valid WAL at {at} ({why})", crate::prog::name());
    }
    Ok(ExitCode::SUCCESS)
}
