//! `pgwal dump`'s options, parsed and checked once: [`DumpArgs`] (the low level: clap's raw
//! strings, as the user spelled them) becomes a [`DumpConfig`] (the high level: typed values,
//! what to read and what to show) before any file is looked at, and everything after that
//! works from the [`DumpConfig`] alone.
//!
//! Each value is parsed by its pg_waldump parser in `options.rs` (same messages), in the order
//! pgwal has always checked them; `check_options` has already checked them in command-line
//! order for the `getopt` path.

use std::path::PathBuf;

use pgwal::wal::{Fork, RelFileLocator};
use pgwal::{Lsn, TimelineId};

use super::insight::{parse_breakdown, Breakdown};
use super::options::{
    parse_block, parse_fork, parse_limit, parse_lsn, parse_relation, parse_rmgr, parse_stats,
    parse_timeline, parse_xid,
};
use super::{DumpArgs, Format};
use crate::prog::Usage;

/// Where the WAL comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// `-d`: WAL streamed from a server (`pgwal dump -d`, [`super::live`]).
    Live {
        /// The connection string or URI.
        conninfo: String,
        /// `-S`: start at this slot's position.
        slot: Option<String>,
        /// `--no-slot`: no temporary slot.
        no_slot: bool,
    },
    /// `STARTSEG` is `-`: one stream of WAL on standard input.
    Stdin,
    /// `-p` names a tar archive (pg_waldump 19's input).
    Tar {
        /// The archive.
        archive: PathBuf,
        /// A `STARTSEG` operand (refused with a tar archive).
        startseg: Option<String>,
    },
    /// Segment files: `-p` (a directory, if given) and the `STARTSEG`/`ENDSEG` operands.
    Files {
        /// `-p`.
        path: Option<PathBuf>,
        /// The first file to read, as given (it may have a directory part).
        startseg: Option<String>,
        /// The last file to read, as given.
        endseg: Option<String>,
    },
}

/// `--stats` and its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatsMode {
    /// `--stats` (`=rmgr`): per resource manager.
    PerRmgr,
    /// `--stats=record`: per record type.
    PerRecord,
}

/// What is done with each record that passes the filters.
#[derive(Clone, Debug)]
pub(crate) struct Output {
    /// `--format`.
    pub(crate) format: Format,
    /// `-q`: nothing but errors.
    pub(crate) quiet: bool,
    /// `-b`: block references in detail.
    pub(crate) bkp_details: bool,
    /// `-z`: statistics instead of records.
    pub(crate) stats: Option<StatsMode>,
    /// `--save-fullpage`: where full-page images go.
    pub(crate) save_fullpage: Option<PathBuf>,
}

/// The breakdowns beyond pg_waldump's `--stats` ([`super::insight`]) and `pgwal report`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Insight {
    /// `--stats=relation|xid|time[=INTERVAL]`.
    pub(crate) breakdown: Option<Breakdown>,
    /// `--top`.
    pub(crate) top: Option<usize>,
    /// `--names`: the connection that names relations.
    pub(crate) names: Option<String>,
    /// `pgwal report -o FILE`.
    pub(crate) report: Option<PathBuf>,
}

impl Insight {
    /// Whether any breakdown is gathered (which reads block references).
    pub(crate) fn active(&self) -> bool {
        self.breakdown.is_some() || self.report.is_some()
    }
}

/// Record filters (pg_waldump's `-r -x -R -B -F -w`).
#[derive(Clone, Default)]
pub(crate) struct Filters {
    pub(crate) rmgrs: Option<[bool; 256]>,
    pub(crate) xid: Option<u32>,
    pub(crate) relation: Option<RelFileLocator>,
    pub(crate) block: Option<u32>,
    pub(crate) fork: Option<Fork>,
    pub(crate) fullpage: bool,
    /// Whether any filter is set (if not, every record matches).
    pub(crate) any: bool,
}

/// Everything `pgwal dump` was asked to do, typed and checked.
#[derive(Clone)]
pub(crate) struct DumpConfig {
    /// Where the WAL is.
    pub(crate) input: Input,
    /// `-s`: the first record at or after this LSN.
    pub(crate) start: Option<Lsn>,
    /// `-e`: stop before a record that ends after this LSN.
    pub(crate) end: Option<Lsn>,
    /// `-t`.
    pub(crate) timeline: Option<TimelineId>,
    /// `--follow-timelines`.
    pub(crate) follow_timelines: bool,
    /// `-f`: wait for more WAL at its end.
    pub(crate) follow: bool,
    /// `-j` (at least 1).
    pub(crate) jobs: usize,
    /// `-n`: show at most this many records (pg_waldump: a value of 0 or less shows all).
    pub(crate) limit: Option<u64>,
    /// Which records are shown.
    pub(crate) filters: Filters,
    /// How they are shown.
    pub(crate) output: Output,
    /// `--waldump-exit`: exit 1 at the end of valid WAL.
    pub(crate) waldump_exit: bool,
    /// The breakdowns and the report.
    pub(crate) insight: Insight,
}

impl DumpConfig {
    /// Parses and checks every option value of `a` (the first bad one is the error, with
    /// pg_waldump's message).
    pub(crate) fn from_args(a: DumpArgs) -> anyhow::Result<DumpConfig> {
        let stats = match a.stats.as_deref().map(parse_stats).transpose()? {
            None => None,
            Some(false) => Some(StatsMode::PerRmgr),
            Some(true) => Some(StatsMode::PerRecord),
        };
        let limit = a
            .limit
            .as_deref()
            .map(parse_limit)
            .transpose()?
            .and_then(|n| u64::try_from(n).ok())
            .filter(|&n| n > 0);
        let filters = parse_filters(&a)?;
        let breakdown = a.stats.as_deref().and_then(parse_breakdown).transpose()?;
        let takes_top = matches!(breakdown, Some(Breakdown::Relation | Breakdown::Xid));
        if a.top.is_some() && !takes_top && a.report.is_none() {
            return Err(Usage::new("option --top requires --stats=relation or --stats=xid").into());
        }
        if a.names.is_some() && breakdown != Some(Breakdown::Relation) && a.report.is_none() {
            return Err(Usage::new("option --names requires --stats=relation").into());
        }
        let insight = Insight {
            breakdown,
            top: a.top,
            names: a.names.clone(),
            report: a.report.clone(),
        };
        let timeline = a.timeline.as_deref().map(parse_timeline).transpose()?;
        let start = a.start.as_deref().map(parse_lsn).transpose()?;
        let end = a.end.as_deref().map(parse_lsn).transpose()?;
        let input = if a.dbname.is_some() || a.slot.is_some() || a.no_slot {
            super::live::check(&a)?;
            Input::Live {
                conninfo: a.dbname.clone().unwrap_or_default(),
                slot: a.slot.clone(),
                no_slot: a.no_slot,
            }
        } else if a.startseg.as_deref() == Some("-") {
            Input::Stdin
        } else {
            match a.path {
                Some(p) if !p.is_dir() && pgwal::tar::archive_kind(&p).is_some() => Input::Tar {
                    archive: p,
                    startseg: a.startseg,
                },
                path => Input::Files {
                    path,
                    startseg: a.startseg,
                    endseg: a.endseg,
                },
            }
        };
        Ok(DumpConfig {
            input,
            start,
            end,
            timeline,
            follow_timelines: a.follow_timelines,
            follow: a.follow,
            // The breakdowns are gathered in LSN order, by one thread (a chunk's records would
            // not reach the collector).
            jobs: if insight.active() {
                1
            } else {
                a.jobs.unwrap_or(1).max(1)
            },
            limit,
            filters,
            output: Output {
                format: a.format,
                quiet: a.quiet,
                bkp_details: a.bkp_details,
                stats,
                save_fullpage: a.save_fullpage,
            },
            waldump_exit: a.waldump_exit,
            insight,
        })
    }
}

impl DumpConfig {
    /// Whether every record is only counted for `--stats`: no filter, no image to save (the
    /// decoder then need not keep block references).
    pub(crate) fn counts_only(&self) -> bool {
        self.output.stats.is_some()
            && !self.output.quiet
            && self.output.save_fullpage.is_none()
            && !self.filters.any
    }

    /// Whether the decoder keeps block references: for anything but counting, and for the
    /// breakdowns by relation (and the report, which has one): the others need only a
    /// record's image count and bytes, which the decoder keeps anyway.
    pub(crate) fn block_refs(&self) -> bool {
        !self.counts_only()
            || self.insight.report.is_some()
            || self.insight.breakdown == Some(super::insight::Breakdown::Relation)
    }
}

fn parse_filters(a: &DumpArgs) -> anyhow::Result<Filters> {
    let mut f = Filters {
        fullpage: a.fullpage,
        ..Filters::default()
    };
    for name in &a.rmgr {
        let mut set = f.rmgrs.unwrap_or([false; 256]);
        set[parse_rmgr(name)?] = true;
        f.rmgrs = Some(set);
    }
    f.xid = a.xid.as_deref().map(parse_xid).transpose()?;
    f.relation = a.relation.as_deref().map(parse_relation).transpose()?;
    f.block = a.block.as_deref().map(parse_block).transpose()?;
    if f.block.is_some() && f.relation.is_none() {
        return Err(
            Usage::new("option -B/--block requires option -R/--relation to be specified").into(),
        );
    }
    f.fork = a.fork.as_deref().map(parse_fork).transpose()?;
    f.any = f.rmgrs.is_some()
        || f.xid.is_some()
        || f.relation.is_some()
        || f.block.is_some()
        || f.fork.is_some()
        || f.fullpage;
    Ok(f)
}
