//! pg_waldump's options: each value's parser (with C's `sscanf`/`strtoul` leniency where
//! pg_waldump has it), the checks in pg_waldump's order before any file is looked at, and the
//! drop-in `--help` page.

use std::path::Path;

use pgwal::wal::{Fork, RelFileLocator};
use pgwal::{desc, Lsn, TimelineId};

use crate::getopt::Scanned;
use crate::prog::{HelpPage, Usage};

/// `sscanf("%u")`: optional white space and sign, then at least one decimal digit; what
/// follows is ignored and a negative value wraps around, as in C.
fn scan_u32(s: &str) -> Option<(u32, &str)> {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let v = t[..digits]
        .parse::<u64>()
        .unwrap_or(u64::MAX)
        .min(u64::from(u32::MAX)) as u32;
    Some((if neg { v.wrapping_neg() } else { v }, &t[digits..]))
}

/// A value of `-r/--rmgr`: a resource manager id (case-insensitive name or `customNNN`).
pub(super) fn parse_rmgr(name: &str) -> Result<usize, Usage> {
    if let Some(n) = name
        .strip_prefix("custom")
        .and_then(|n| n.parse::<u16>().ok())
    {
        if !(128..=255).contains(&n) {
            return Err(Usage::new(format!(
                "custom resource manager \"{name}\" does not exist"
            )));
        }
        return Ok(usize::from(n));
    }
    desc::RMGR_NAMES
        .iter()
        .position(|r| r.eq_ignore_ascii_case(name))
        .ok_or_else(|| Usage::new(format!("resource manager \"{name}\" does not exist")))
}

/// A value of `-x/--xid`.
pub(super) fn parse_xid(x: &str) -> Result<u32, Usage> {
    scan_u32(x)
        .map(|(v, _)| v)
        .ok_or_else(|| Usage::new(format!("invalid transaction ID specification: \"{x}\"")))
}

/// A value of `-R/--relation`: `T/D/R`, T and R not zero.
pub(super) fn parse_relation(r: &str) -> Result<RelFileLocator, Usage> {
    let three = (|| {
        let (spc, rest) = scan_u32(r)?;
        let (db, rest) = scan_u32(rest.strip_prefix('/')?)?;
        let (rel, _) = scan_u32(rest.strip_prefix('/')?)?;
        Some(RelFileLocator { spc, db, rel })
    })();
    match three {
        Some(l) if l.spc != 0 && l.rel != 0 => Ok(l),
        _ => Err(Usage {
            msg: format!("invalid relation specification: \"{r}\""),
            detail: Some("Expecting \"tablespace OID/database OID/relation filenode\".".to_owned()),
        }),
    }
}

/// A value of `-B/--block`.
pub(super) fn parse_block(b: &str) -> Result<u32, Usage> {
    match scan_u32(b) {
        Some((n, _)) if n != u32::MAX => Ok(n),
        _ => Err(Usage::new(format!("invalid block number: \"{b}\""))),
    }
}

/// A value of `-F/--fork`.
pub(super) fn parse_fork(name: &str) -> Result<Fork, Usage> {
    Ok(match name {
        "main" => Fork::Main,
        "fsm" => Fork::Fsm,
        "vm" => Fork::Vm,
        "init" => Fork::Init,
        _ => return Err(Usage::new(format!("invalid fork name: \"{name}\""))),
    })
}

/// A value of `-t/--timeline`: `strtoul(s, 0)` (decimal, `0x` hex or `0` octal), 1..=u32::MAX.
pub(super) fn parse_timeline(t: &str) -> Result<TimelineId, Usage> {
    let invalid = || Usage::new(format!("invalid value \"{t}\" for option -t/--timeline"));
    let range = || Usage::new("-t/--timeline must be in range 1..4294967295");
    let s = t.trim_start();
    let (neg, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let s = s.trim_end();
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return Err(invalid());
    }
    match u64::from_str_radix(digits, radix) {
        Ok(v) if !neg && (1..=u64::from(u32::MAX)).contains(&v) => Ok(TimelineId(v as u32)),
        _ => Err(range()),
    }
}

/// A value of `-n/--limit` (`strtol`, base 10).
pub(super) fn parse_limit(n: &str) -> Result<i64, Usage> {
    let t = n.trim_start();
    t.strip_prefix('+')
        .unwrap_or(t)
        .parse::<i64>()
        .ok()
        .filter(|_| !t.starts_with("+-"))
        .ok_or_else(|| Usage::new(format!("invalid value \"{n}\" for option -n/--limit")))
}

/// A value of `--stats`: per record or not.
pub(super) fn parse_stats(v: &str) -> Result<bool, Usage> {
    match v {
        "rmgr" => Ok(false),
        "record" => Ok(true),
        // The breakdowns: counted per resource manager too, shown on their own.
        _ => match super::insight::parse_breakdown(v) {
            Some(b) => b.map(|_| false),
            None => Err(Usage::new(format!(
                "unrecognized value for option --stats: {v}"
            ))),
        },
    }
}

/// What the option check found.
pub enum Checked {
    /// Go on.
    Run,
    /// `--rmgr=list` came before any bad value: the list was printed.
    Listed,
}

/// pg_waldump's option checks, in its order: each value as it comes on the command line
/// (`--rmgr=list` prints the list there and then), then `-B` without `-R`, too many operands,
/// and `-p` not a directory. Runs before any file is looked at.
pub fn check_options(s: &Scanned) -> anyhow::Result<Checked> {
    let mut relation = false;
    let mut block = false;
    for g in &s.options {
        let v = g.value.as_deref().unwrap_or("");
        match g.id.as_str() {
            "block" => {
                parse_block(v)?;
                block = true;
            }
            "end" | "start" => {
                parse_lsn(v)?;
            }
            "fork" => {
                parse_fork(v)?;
            }
            "limit" => {
                parse_limit(v)?;
            }
            "rmgr" if v.eq_ignore_ascii_case("list") => {
                print_rmgr_list();
                return Ok(Checked::Listed);
            }
            "rmgr" => {
                parse_rmgr(v)?;
            }
            "relation" => {
                parse_relation(v)?;
                relation = true;
            }
            "timeline" => {
                parse_timeline(v)?;
            }
            "xid" => {
                parse_xid(v)?;
            }
            "stats" if g.value.is_some() => {
                parse_stats(v)?;
            }
            _ => {}
        }
    }
    if block && !relation {
        return Err(
            Usage::new("option -B/--block requires option -R/--relation to be specified").into(),
        );
    }
    if let Some(first) = s.operands.get(2) {
        return Err(Usage::new(format!(
            "too many command-line arguments (first is \"{first}\")"
        ))
        .into());
    }
    if let Some(p) = s.options.iter().rev().find(|g| g.id == "path") {
        let p = p.value.as_deref().unwrap_or("");
        // A tar archive (pg_waldump 19) and an object-store URL are checked where they are read.
        if !Path::new(p).is_dir()
            && pgwal::tar::archive_kind(Path::new(p)).is_none()
            && !p.contains("://")
        {
            return Err(Usage::new(format!(
                "could not open directory \"{p}\": No such file or directory"
            ))
            .into());
        }
    }
    Ok(Checked::Run)
}

pub(crate) fn parse_lsn(s: &str) -> Result<Lsn, Usage> {
    s.parse::<Lsn>()
        .map_err(|_| Usage::new(format!("invalid WAL location: \"{s}\"")))
}

pub(super) fn print_rmgr_list() {
    for n in desc::RMGR_NAMES {
        println!("{n}");
    }
}

/// pg_waldump's `--help` layout (drop-in mode), with pgwal's extra options after its own.
pub fn help_page() -> HelpPage<'static> {
    HelpPage {
        summary: "decodes and shows PostgreSQL write-ahead log (pgwal, for PostgreSQL 13 to 18).",
        usage: "[OPTION]... [STARTSEG [ENDSEG]]",
        sections: &[
            (
                "Options:",
                &[
                    ("-b, --bkp-details", &["show the details of backup blocks"]),
                    ("-B, --block=N", &["with --relation, only records touching block N"]),
                    ("-e, --end=RECPTR", &["stop at WAL location RECPTR"]),
                    ("-f, --follow", &["keep trying when the end of WAL is reached"]),
                    (
                        "-F, --fork=FORK",
                        &["only records touching fork FORK;", "one of main, fsm, vm, init"],
                    ),
                    ("-n, --limit=N", &["show at most N records"]),
                    (
                        "-p, --path=PATH",
                        &[
                            "directory holding the WAL segment files, or one",
                            "whose ./pg_wal holds them (default: current",
                            "directory, ./pg_wal, $PGDATA/pg_wal)",
                        ],
                    ),
                    ("-q, --quiet", &["print nothing but errors"]),
                    (
                        "-r, --rmgr=RMGR",
                        &[
                            "only records of resource manager RMGR;",
                            "--rmgr=list lists the names",
                        ],
                    ),
                    ("-R, --relation=T/D/R", &["only records touching relation T/D/R"]),
                    ("-s, --start=RECPTR", &["start at WAL location RECPTR"]),
                    (
                        "-t, --timeline=TLI",
                        &["timeline to read records of", "(default: 1 or STARTSEG's)"],
                    ),
                    ("-V, --version", &["print the version and exit"]),
                    ("-w, --fullpage", &["only records with a full page image"]),
                    ("-x, --xid=XID", &["only records of transaction XID"]),
                    (
                        "-z, --stats[=record]",
                        &["show statistics, not records", "(=record: per record type)"],
                    ),
                    ("--save-fullpage=DIR", &["write full page images into DIR"]),
                    ("-?, --help", &["print this help and exit"]),
                ],
            ),
            (
                "pgwal options:",
                &[
                    ("--format=text|json", &["records as text (default) or JSON Lines"]),
                    ("--follow-timelines", &["follow timeline switches through history files"]),
                    ("-j, --jobs=N", &["decode with N threads"]),
                    (
                        "--stats=relation|xid|time[=INTERVAL]",
                        &["WAL per relation fork, transaction, or interval"],
                    ),
                    ("--top=N", &["rows of --stats=relation|xid shown (20; 0: all)"]),
                    ("--names=CONNSTR", &["name relations through this connection"]),
                    ("--waldump-exit", &["kept for pgwal dump; always on under this name"]),
                ],
            ),
            (
                "Live dump (WAL streamed from a server, no files):",
                &[
                    (
                        "-d, --dbname=CONNSTR",
                        &[
                            "stream from this server (connection string",
                            "or URI; PG* variables, .pgpass, sslmode);",
                            "-s, -e, --follow apply; default start: the",
                            "server's current position",
                        ],
                    ),
                    ("-S, --slot=SLOT", &["start at replication slot SLOT's restart_lsn"]),
                    ("--no-slot", &["no temporary slot keeping the WAL meanwhile"]),
                ],
            ),
        ],
        footer: &[
            "Reads .partial and compressed (.gz, .lz4, .zst) segment files too.",
            "pgwal home page: <https://github.com/pgwal/pgwal> (README: differences from pg_waldump)",
        ],
        column: 25,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn values_parse_as_pg_waldump_parses_them() {
        // sscanf("%u"): leading blanks, trailing junk ignored, negatives wrap.
        assert_eq!(parse_xid(" 42abc").unwrap(), 42);
        assert_eq!(parse_xid("-1").unwrap(), u32::MAX);
        assert!(parse_xid("x1").is_err());
        assert_eq!(parse_block("7").unwrap(), 7);
        assert!(parse_block("4294967295").is_err());
        let r = parse_relation("1663/0/1259").unwrap();
        assert_eq!((r.spc, r.db, r.rel), (1663, 0, 1259));
        assert!(parse_relation("0/1/2").is_err());
        assert!(parse_relation("1/2").unwrap_err().detail.is_some());
        // strtoul base 0, 1..=u32::MAX.
        assert_eq!(parse_timeline("0x10").unwrap(), TimelineId(16));
        assert_eq!(parse_timeline("010").unwrap(), TimelineId(8));
        assert_eq!(parse_timeline(" 3 ").unwrap(), TimelineId(3));
        assert_eq!(
            parse_timeline("0").unwrap_err().msg,
            "-t/--timeline must be in range 1..4294967295"
        );
        assert_eq!(
            parse_timeline("3x").unwrap_err().msg,
            "invalid value \"3x\" for option -t/--timeline"
        );
        assert_eq!(parse_limit("+5").unwrap(), 5);
        assert_eq!(parse_limit("-5").unwrap(), -5);
        assert!(parse_limit("5x").is_err());
        assert!(parse_stats("record").unwrap());
        assert_eq!(parse_rmgr("heap2").unwrap(), parse_rmgr("Heap2").unwrap());
        assert!(parse_rmgr("custom100").is_err());
        assert_eq!(parse_rmgr("custom200").unwrap(), 200);
    }
}
