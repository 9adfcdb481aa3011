//! `pgwal dump -d CONNSTR`: WAL streamed from a server over a physical replication connection
//! (no files), through [`pgwal::live::LiveSource`], into the same [`Sink`] as files: the
//! output of a range is the output of `pgwal dump` on the server's `pg_wal` for that range.

use std::io::Write;
use std::ops::ControlFlow;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use pgwal::live::{LiveEvent, LiveOptions, LiveSource, StartAt};
use pgwal::replication::SlotName;
use pgwal::source::SegmentInfo;

use super::stats::Stats;
use super::{parse_lsn, skip_note, DumpArgs, Filters, Sink};
use crate::prog::Usage;

/// Output is written out once this much text is pending (and whenever the stream waits).
const FLUSH_AT: usize = 1 << 15;

/// The options that name files, which a live dump has none of.
fn check(a: &DumpArgs) -> Result<(), Usage> {
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

/// Runs a live dump: `per_record`, `limit` and `filters` as parsed for files.
pub(crate) fn run(
    a: &DumpArgs,
    per_record: Option<bool>,
    limit: i64,
    filters: Filters,
) -> anyhow::Result<ExitCode> {
    check(a)?;
    if let Some(dir) = &a.save_fullpage {
        super::fullpage::prepare_dir(dir)?;
    }
    let conninfo = a.dbname.as_deref();
    let start = match (&a.start, &a.slot) {
        (Some(s), _) => StartAt::Lsn(parse_lsn(s)?),
        (None, Some(slot)) => {
            StartAt::Slot(SlotName::new(slot.as_str()).map_err(|e| Usage::new(e.to_string()))?)
        }
        (None, None) => StartAt::Current,
    };
    let end = a.end.as_deref().map(parse_lsn).transpose()?;
    let options = LiveOptions::new(start)
        .end(end)
        .follow(a.follow)
        .temporary_slot(!a.no_slot);
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
        let sink = Sink::new(a, filters, per_record.is_some(), system.timeline);
        let cfg = sink.decoder_config(&info);
        let explicit_start = a.start.is_some();
        let start = source.start();
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
        let mut text = String::with_capacity(1 << 16);
        let mut stats = Stats::new();
        stats.insight = super::insight::collector_for(a)?;
        let mut shown = 0i64;
        let mut failure: Option<anyhow::Error> = None;
        let outcome = source
            .run(cfg, |event| {
                let step = match event {
                    LiveEvent::Record(rec) => {
                        if stats.start.is_none() {
                            stats.start = Some(rec.lsn());
                            if explicit_start {
                                skip_note(
                                    start,
                                    info.seg_size,
                                    rec.lsn(),
                                    rec.version(),
                                    &sink,
                                    &mut text,
                                );
                            }
                        }
                        match sink.handle(rec, &mut text, &mut stats) {
                            Ok(true) => {
                                shown += 1;
                                if limit > 0 && shown >= limit {
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
        if let Some(per_record) = per_record {
            if !a.quiet {
                stats.set_version(version);
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
        Ok(ExitCode::SUCCESS)
    })
}
