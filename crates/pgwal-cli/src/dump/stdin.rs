//! `pgwal dump -`: WAL from standard input (e.g. `zstdcat seg.zst | pgwal dump -`), read by the
//! library's [`WalStream`](pgwal::reader::WalStream).
//!
//! The stream must start at a segment boundary; its first long page header gives the segment
//! size, system and start LSN. Consecutive segments may follow; compressed input (gzip, LZ4
//! frame, zstd) is detected from its first bytes.

use std::io::Write;
use std::ops::ControlFlow;
use std::process::ExitCode;

use pgwal::reader::WalReader;
use pgwal::source::ReadEnd;

use super::config::DumpConfig;
use super::stats::Stats;
use super::Sink;

/// Dumps the WAL on standard input as `cfg` says.
pub(crate) fn run(cfg: &DumpConfig) -> anyhow::Result<ExitCode> {
    let mut builder = WalReader::builder().stream_name("standard input");
    if let Some(s) = cfg.start {
        builder = builder.start(s);
    }
    if let Some(e) = cfg.end {
        builder = builder.end(e);
    }
    let mut stream = builder
        .block_refs(cfg.block_refs())
        .open_stream(std::io::stdin().lock())?;
    let info = *stream.info();
    let sink = Sink::new(cfg, info.tli);
    let limit = cfg.limit;
    let mut stats = Stats::new();
    stats.insight = super::insight::collector_for(cfg);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let mut text = String::with_capacity(1 << 16);
    let mut shown = 0u64;
    let mut failure: Option<anyhow::Error> = None;
    let outcome = stream.for_each(|rec| {
        stats.start.get_or_insert(rec.lsn());
        match sink.handle(rec, &mut text, &mut stats) {
            Ok(true) => shown += 1,
            Ok(false) => {}
            Err(e) => {
                failure = Some(e);
                return ControlFlow::Break(());
            }
        }
        if text.len() > 1 << 15 {
            if let Err(e) = out.write_all(text.as_bytes()) {
                failure = Some(e.into());
                return ControlFlow::Break(());
            }
            text.clear();
        }
        if limit.is_some_and(|n| shown >= n) {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let end = outcome?;
    out.write_all(text.as_bytes())?;
    super::write_stats(cfg, &sink, &mut stats, info.version, &mut out)?;
    out.flush()?;
    // Where reading stopped: pg_waldump-like, it is named even after the end or the limit.
    let (at, reason) = match end {
        ReadEnd::EndOfWal { at, reason, .. } => (Some(at), reason),
        _ => (stream.position(), None),
    };
    if let Some(at) = at {
        // As the directory path prints it: padded for the majors whose pg_waldump pads (19).
        let at = info.version.lsn(at);
        let why = reason
            .map(|e| e.to_string())
            .unwrap_or_else(|| "end of input".into());
        if cfg.waldump_exit {
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
