//! `pgwal dump -d CONNSTR`: WAL streamed from a server over a physical replication connection
//! (no files), through [`pgwal::live::LiveSource`], into the same [`Sink`] as files: the
//! output of a range is the output of `pgwal dump` on the server's `pg_wal` for that range.

use std::io::Write;
use std::ops::ControlFlow;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use pgwal::live::{LiveEvent, LiveOptions, LiveSource, StartAt};
use pgwal::replication::SlotName;
use pgwal::storage::probe::SegmentInfo;

use super::config::{DumpConfig, Input};
use super::stats::Stats;
use super::{skip_message, DumpArgs, Sink};
use crate::prog::Usage;

/// Output is written out once this much text is pending (and whenever the stream waits).
const FLUSH_AT: usize = 1 << 15;

/// The options that name files, which a live dump has none of.
pub(super) fn check(a: &DumpArgs) -> Result<(), Usage> {
    let Some(_) = &a.dbname else {
        let opt = if a.slot.is_some() {
            "-S/--slot"
        } else {
            "--no-slot"
        };
        return Err(Usage::new(format!(
            "option {opt} requires option -d/--dbname to be specified"
        )));
    };
    let conflicts = [
        (a.startseg.is_some(), "STARTSEG"),
        (a.path.is_some(), "-p/--path"),
        (a.timeline.is_some(), "-t/--timeline"),
        (a.follow_timelines, "--follow-timelines"),
        (a.jobs.is_some(), "-j/--jobs"),
    ];
    if let Some((_, what)) = conflicts.iter().find(|(set, _)| *set) {
        return Err(Usage::new(format!(
            "{what} cannot be used with -d/--dbname (WAL comes from the server; timelines are followed)"
        )));
    }
    if a.start.is_some() && a.slot.is_some() {
        return Err(Usage::new("cannot use -s/--start together with -S/--slot"));
    }
    Ok(())
}

/// Runs a live dump of `cfg` (whose input is [`Input::Live`]): output, filters and limit as
/// for files.
pub(crate) fn run(cfg: &DumpConfig) -> anyhow::Result<ExitCode> {
    let Input::Live {
        conninfo,
        slot,
        no_slot,
    } = &cfg.input
    else {
        return Err(anyhow!("not a live dump"));
    };
    let start = match (cfg.start, slot) {
        (Some(s), _) => StartAt::Lsn(s),
        (None, Some(slot)) => {
            StartAt::Slot(SlotName::new(slot.as_str()).map_err(|e| Usage::new(e.to_string()))?)
        }
        (None, None) => StartAt::Current,
    };
    let end = cfg.end;
    let limit = cfg.limit;
    let conninfo = Some(conninfo.as_str());
    let options = LiveOptions::new(start)
        .end(end)
        .follow(cfg.follow)
        .temporary_slot(!no_slot);
    let config = crate::receive::connection_config(conninfo, &[], false)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    rt.block_on(async {
        let mut source = LiveSource::connect(&config, options).await?;
        let version = source.wal_version().ok_or_else(|| {
            anyhow!(
                "server {} runs PostgreSQL {}, whose WAL pgwal cannot decode",
                source.server(),
                source
                    .server_version()
                    .map_or_else(|| "?".to_owned(), |v| v.to_string())
            )
        })?;
        let system = source.system().clone();
        let info = SegmentInfo {
            version,
            system_id: system.system_id,
            seg_size: source.seg_size(),
            page_size: source.page_size(),
            tli: system.timeline,
            pageaddr: source.start(),
        };
        // As `dump --follow-timelines` of files, records carry the server's timeline.
        let sink = Sink::new(cfg, system.timeline);
        let decoder = pgwal::wal::DecoderConfig::new(info.seg_size)
            .with_page_size(info.page_size)
            .with_system_id(Some(info.system_id))
            .with_block_refs(cfg.block_refs());
        let explicit_start = cfg.start.is_some();
        let start = source.start();
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
        let mut text = String::with_capacity(1 << 16);
        let mut stats = Stats::new();
        stats.insight = super::insight::collector_for(cfg);
        let mut shown = 0u64;
        let mut failure: Option<anyhow::Error> = None;
        let outcome = source
            .run(decoder, |event| {
                let step = match event {
                    LiveEvent::Record(rec) => {
                        if stats.start.is_none() {
                            stats.start = Some(rec.lsn());
                            skip_message(
                                (start, explicit_start, info.seg_size),
                                rec.lsn(),
                                rec.version(),
                                &sink,
                                &mut text,
                            );
                        }
                        match sink.handle(rec, &mut text, &mut stats) {
                            Ok(true) => {
                                shown += 1;
                                if limit.is_some_and(|n| shown >= n) {
                                    return ControlFlow::Break(());
                                }
                            }
                            Ok(false) => {}
                            Err(e) => {
                                failure = Some(e);
                                return ControlFlow::Break(());
                            }
                        }
                        text.len() >= FLUSH_AT
                    }
                    LiveEvent::CaughtUp { .. } => true,
                    LiveEvent::Timeline { .. } => false,
                };
                if step {
                    let written = out.write_all(text.as_bytes()).and_then(|()| out.flush());
                    text.clear();
                    if let Err(e) = written {
                        failure = Some(e.into());
                        return ControlFlow::Break(());
                    }
                }
                ControlFlow::Continue(())
            })
            .await;
        source.close().await;
        out.write_all(text.as_bytes())?;
        if let Some(e) = failure {
            return Err(e);
        }
        outcome?;
        super::write_stats(cfg, &sink, &mut stats, version, &mut out)?;
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    })
}
