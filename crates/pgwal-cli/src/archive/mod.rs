//! `pgwal archive`: a WAL archive in a directory, for `archive_command`, `restore_command`
//! and `archive_cleanup_command`, plus `verify` and `status`.
//!
//! Exit codes:
//!
//! | command | 0 | 1 | 2 |
//! | --- | --- | --- | --- |
//! | `push` | archived (or already archived with the same content) | refused or failed: PostgreSQL retries | — |
//! | `fetch` | restored | not in the archive (recovery moves on) | a real error: damaged file, I/O error (`--error-exit-code`) |
//! | `cleanup` | done | a file could not be removed | bad arguments, archive missing (as pg_archivecleanup) |
//! | `verify` | no error found | errors found | could not verify: bad arguments, archive unreadable |
//! | `status` | done | archive unreadable | bad arguments |
//!
//! `push` and `fetch` killed by SIGTERM, SIGINT, SIGHUP or SIGQUIT (PostgreSQL signals the
//! command's whole process group at shutdown) remove the temporary file they were writing and
//! die of that signal, which PostgreSQL reads as "interrupted by shutdown" (SIGTERM) rather
//! than as "file not in the archive". Before writing, both remove the temporary files of
//! pgwal's naming that killed runs left in the directory they write to.

use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use pgwal::archive::{
    self, CleanupError, CleanupOptions, CompressionSpec, FetchOptions, PushOptions, PushOutcome,
    VerifyReport,
};
use pgwal::Lsn;
use serde_json::{json, Value};

use crate::getopt::Scanned;
use crate::prog::{self, HelpPage, Usage};

#[cfg(feature = "object-store")]
pub(crate) mod object;

/// The object-store URL `p` spells (`s3://`, `az://`, `gs://`), `None` for a directory path.
pub(crate) fn object_url(
    p: &std::path::Path,
) -> anyhow::Result<Option<pgwal::storage::location::ObjectUrl>> {
    use pgwal::storage::location::Location;
    match Location::parse(&p.to_string_lossy())? {
        Location::Dir(_) => Ok(None),
        #[cfg(feature = "object-store")]
        Location::Object(u) => Ok(Some(u)),
        #[cfg(not(feature = "object-store"))]
        Location::Object(u) => {
            anyhow::bail!("archive \"{u}\": this pgwal was built without the object-store feature")
        }
    }
}

/// Arguments of `pgwal archive`.
#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
pub struct ArchiveArgs {
    #[command(subcommand)]
    cmd: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Copy a finished WAL file into the archive (archive_command = 'pgwal archive push %p --archive DIR').
    Push(PushArgs),
    /// Restore a WAL file from the archive (restore_command = 'pgwal archive fetch %f %p --archive DIR').
    ///
    /// Exit status: 0 restored, 1 not in the archive, 2 (or --error-exit-code) on a real error.
    Fetch(FetchArgs),
    /// Remove WAL files older than OLDEST_KEPT_WALFILE, as pg_archivecleanup does
    /// (archive_cleanup_command = 'pgwal archive cleanup DIR %r').
    Cleanup(CleanupArgs),
    /// Decode every archived segment; report gaps, damage and timeline inconsistencies.
    ///
    /// Exit status: 0 when no error was found, 1 when errors were found, 2 when the archive
    /// could not be read.
    Verify(VerifyArgs),
    /// Per timeline: first and last segment, newest LSN, file count and sizes.
    Status(StatusArgs),
}

/// Output format of `verify` and `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// For people.
    Text,
    /// One JSON object.
    Json,
}

#[derive(Debug, Args)]
struct PushArgs {
    /// The file to archive (%p): a segment, .partial segment, .history or .backup file.
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// The archive: a directory, or s3://BUCKET/PREFIX, az://CONTAINER/PREFIX, gs://BUCKET/PREFIX.
    #[arg(long, short = 'A', value_name = "DIR|URL", env = "PGWAL_ARCHIVE")]
    archive: PathBuf,
    /// Compression of segments: none, gzip[:1-9] (default level 1), lz4, zstd[:level] (default
    /// level 1). History and backup history files are stored uncompressed.
    #[arg(long, short = 'c', value_name = "METHOD[:LEVEL]", default_value = "none", value_parser = parse_compression)]
    compress: CompressionSpec,
    /// Accept only WAL of this database system identifier (default: the system identifier of
    /// the segments already archived, if any).
    #[arg(long, value_name = "N")]
    system_id: Option<u64>,
    /// Compression threads (0: one per core).
    #[arg(long, value_name = "N", default_value_t = 0)]
    threads: usize,
    /// Report what was archived on stderr.
    #[arg(long, short = 'v')]
    verbose: bool,
}

#[derive(Debug, Args)]
struct FetchArgs {
    /// The WAL file name PostgreSQL asks for (%f).
    #[arg(value_name = "NAME")]
    name: String,
    /// Where to write it (%p).
    #[arg(value_name = "PATH")]
    dest: PathBuf,
    /// The archive: a directory, or s3://BUCKET/PREFIX, az://CONTAINER/PREFIX, gs://BUCKET/PREFIX.
    #[arg(long, short = 'A', value_name = "DIR|URL", env = "PGWAL_ARCHIVE")]
    archive: PathBuf,
    /// If the complete segment is not archived, restore its .partial file (zero-padded).
    #[arg(long)]
    partial: bool,
    /// Exit status for real errors (damaged file, I/O error). A value above 125 makes
    /// PostgreSQL abort recovery instead of treating the error as the end of the archive.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u8).range(2..))]
    error_exit_code: u8,
    /// Object storage: keep the next N segments downloaded ahead into a local cache
    /// (--prefetch-dir) by a detached read-ahead, from which the next calls restore without a
    /// request.
    #[arg(long, value_name = "N", default_value_t = 0)]
    prefetch: usize,
    /// The prefetch cache (default: .pgwal-prefetch beside PATH, i.e. in pg_wal).
    #[arg(long, value_name = "DIR")]
    prefetch_dir: Option<PathBuf>,
    /// Internal: the detached read-ahead into the cache from the first of these segments on
    /// (started by a fetch with --prefetch); NAME and PATH are ignored.
    #[arg(long, value_name = "NAMES", value_delimiter = ',', hide = true)]
    prefetch_only: Vec<String>,
    /// Do not report files that are not in the archive.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Report what was restored on stderr.
    #[arg(long, short = 'v')]
    verbose: bool,
}

/// Arguments of `pgwal archive cleanup` (pg_archivecleanup's, plus pgwal's).
#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// The archive: a directory, or an object-store URL (s3://, az://, gs://).
    #[arg(value_name = "ARCHIVELOCATION")]
    dir: PathBuf,
    /// Keep this file's segment and everything after it (%r): a segment, .partial or .backup name.
    #[arg(value_name = "OLDESTKEPTWALFILE")]
    oldest_kept: String,
    /// Dry run: print the paths of the files that would be removed.
    #[arg(short = 'n', long = "dry-run")]
    dry_run: bool,
    /// Strip this extension before identifying files (e.g. -x .gz).
    #[arg(short = 'x', long = "strip-extension", value_name = "EXT")]
    strip_extension: Option<String>,
    /// Also remove backup history files (.backup).
    #[arg(short = 'b', long = "clean-backup-history")]
    clean_backup_history: bool,
    /// Debug output on stderr.
    #[arg(short = 'd', long = "debug")]
    debug: bool,
    /// Recognise only the names pg_archivecleanup recognises (leave compressed segments alone).
    #[arg(long)]
    exact: bool,
    /// Keep what the timeline history files say a timeline branch that does not pass through
    /// OLDESTKEPTWALFILE still needs.
    #[arg(long)]
    keep_history_needs: bool,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The archive: a directory, or s3://BUCKET/PREFIX, az://CONTAINER/PREFIX, gs://BUCKET/PREFIX.
    #[arg(long, short = 'A', value_name = "DIR|URL", env = "PGWAL_ARCHIVE")]
    archive: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Do not show a progress bar (it is shown only when stderr is a terminal).
    #[arg(long)]
    no_progress: bool,
}

#[derive(Debug, Args)]
struct StatusArgs {
    /// The archive: a directory, or s3://BUCKET/PREFIX, az://CONTAINER/PREFIX, gs://BUCKET/PREFIX.
    #[arg(long, short = 'A', value_name = "DIR|URL", env = "PGWAL_ARCHIVE")]
    archive: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

fn parse_compression(s: &str) -> Result<CompressionSpec, String> {
    s.parse::<CompressionSpec>().map_err(|e| e.to_string())
}

/// Runs `pgwal archive`.
pub fn run(a: ArchiveArgs) -> anyhow::Result<ExitCode> {
    match a.cmd {
        Command::Push(p) => Ok(push(p)),
        Command::Fetch(f) => Ok(fetch(f)),
        Command::Cleanup(c) => Ok(cleanup(c, &Scanned::default())),
        Command::Verify(v) => verify(v),
        Command::Status(s) => status(s),
    }
}

/// Prepares a command that writes into `dir`: temporary files are removed on signals, and
/// stale ones in `dir` now. Neither is a reason to fail the command.
fn prepare_writes(cmd: &str, dir: &std::path::Path) {
    if let Err(e) = pgwal::storage::temp::remove_temp_files_on_signals() {
        eprintln!("pgwal archive {cmd}: warning: could not install signal handlers: {e}");
    }
    match pgwal::storage::temp::remove_stale_temp_files(dir) {
        Ok(removed) => {
            for name in removed {
                eprintln!(
                    "pgwal archive {cmd}: removed stale temporary file \"{}\"",
                    dir.join(name).display()
                );
            }
        }
        // A missing directory is reported by the command itself.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => eprintln!(
            "pgwal archive {cmd}: warning: could not look for stale temporary files in \"{}\": {e}",
            dir.display()
        ),
    }
}

fn push(a: PushArgs) -> ExitCode {
    let url = match object_url(&a.archive) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("pgwal archive push: error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if url.is_none() {
        prepare_writes("push", &a.archive);
    }
    let mut opts = PushOptions::default();
    opts.compression = a.compress;
    opts.system_id = a.system_id;
    opts.threads = a.threads;
    let res: anyhow::Result<PushOutcome> = match &url {
        None => archive::push(&a.archive, &a.path, &opts).map_err(Into::into),
        #[cfg(feature = "object-store")]
        Some(u) => object::open(u)
            .and_then(|store| Ok(archive::remote::push_object(&store, &a.path, &opts)?)),
        #[cfg(not(feature = "object-store"))]
        Some(_) => unreachable!("object_url refuses URLs without the feature"),
    };
    match res {
        Ok(PushOutcome::Stored {
            name,
            bytes,
            stored_bytes,
        }) => {
            if a.verbose {
                eprintln!("pgwal archive push: archived \"{}\" as \"{name}\" ({bytes} bytes, {stored_bytes} stored)", a.path.display());
            }
            ExitCode::SUCCESS
        }
        Ok(PushOutcome::AlreadyArchived { name }) => {
            eprintln!("pgwal archive push: \"{name}\" is already archived with the same content");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pgwal archive push: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn fetch(a: FetchArgs) -> ExitCode {
    let dest_dir = match a.dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    prepare_writes("fetch", dest_dir);
    let url = match object_url(&a.archive) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("pgwal archive fetch: error: {e:#}");
            return ExitCode::from(a.error_exit_code);
        }
    };
    let opts = FetchOptions::default().with_partial(a.partial);
    let res = match &url {
        None => archive::fetch(&a.archive, &a.name, &a.dest, opts),
        #[cfg(feature = "object-store")]
        Some(u) => {
            let cache = (a.prefetch > 0).then(|| {
                let dir = a
                    .prefetch_dir
                    .clone()
                    .unwrap_or_else(|| dest_dir.join(".pgwal-prefetch"));
                archive::remote::FetchCache {
                    background: Some(object::read_ahead_process(&a.archive, &dir, a.prefetch)),
                    dir,
                    ahead: a.prefetch,
                }
            });
            if let (false, Some(c)) = (a.prefetch_only.is_empty(), &cache) {
                // The detached read-ahead: no output, nothing to report to PostgreSQL.
                let _ = object::open(u)
                    .map(|store| archive::remote::read_ahead(&store, c, &a.prefetch_only));
                return ExitCode::SUCCESS;
            }
            // A cached segment needs no connection to the store.
            let cached = match &cache {
                Some(c) => archive::remote::fetch_cached(c, &a.name, &a.dest),
                None => Ok(None),
            };
            match cached {
                Ok(Some(o)) => Ok(o),
                Err(e) => Err(e),
                Ok(None) => match object::open(u) {
                    Ok(store) => archive::remote::fetch_object(
                        &store,
                        &a.name,
                        &a.dest,
                        opts,
                        cache.as_ref(),
                    ),
                    Err(e) => {
                        eprintln!("pgwal archive fetch: error: {e:#}");
                        return ExitCode::from(a.error_exit_code);
                    }
                },
            }
        }
        #[cfg(not(feature = "object-store"))]
        Some(_) => unreachable!("object_url refuses URLs without the feature"),
    };
    match res {
        Ok(o) => {
            if a.verbose {
                let pad = if o.padded { ", padded with zeros" } else { "" };
                eprintln!(
                    "pgwal archive fetch: restored \"{}\" from \"{}\" ({} bytes{pad})",
                    a.name, o.source, o.bytes
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) if e.is_not_found() => {
            if !a.quiet {
                eprintln!("pgwal archive fetch: {e}");
            }
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("pgwal archive fetch: error: {e}");
            ExitCode::from(a.error_exit_code)
        }
    }
}

/// pg_archivecleanup's operand checks (usage errors, exit 2): both operands, no more.
pub fn check_cleanup_options(s: &Scanned) -> anyhow::Result<()> {
    let msg = match s.operands.len() {
        0 => "must specify archive location",
        1 => "must specify oldest kept WAL file",
        2 => return Ok(()),
        _ => "too many command-line arguments",
    };
    Err(Usage::new(msg).into())
}

/// Runs `pgwal archive cleanup` (or pg_archivecleanup in drop-in mode); the operands were
/// checked by [`check_cleanup_options`] (`_s`).
pub fn cleanup(a: CleanupArgs, _s: &Scanned) -> ExitCode {
    let n = prog::name();
    let mut opts = CleanupOptions::default();
    opts.strip_extension = a.strip_extension.clone();
    opts.clean_backup_history = a.clean_backup_history;
    opts.exact = a.exact;
    opts.keep_history_needs = a.keep_history_needs;
    let url = match object_url(&a.dir) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("{n}: error: {e:#}");
            return ExitCode::from(2);
        }
    };
    #[cfg(feature = "object-store")]
    let mut remote = None;
    let planned = match &url {
        None => archive::plan_cleanup(&a.dir, &a.oldest_kept, &opts),
        #[cfg(feature = "object-store")]
        Some(u) => {
            let store = match object::open(u) {
                Ok(s) => std::sync::Arc::new(s),
                Err(e) => {
                    eprintln!("{n}: error: {e:#}");
                    return ExitCode::from(2);
                }
            };
            let p = archive::remote::plan_cleanup_object(&store, &a.oldest_kept, &opts);
            remote = Some(store);
            p
        }
        #[cfg(not(feature = "object-store"))]
        Some(_) => unreachable!("object_url refuses URLs without the feature"),
    };
    let plan = match planned {
        Ok(p) => p,
        Err(e @ (CleanupError::ArchiveMissing(_) | CleanupError::InvalidName(_))) => {
            if matches!(e, CleanupError::InvalidName(_)) {
                // pg_archivecleanup does not name the argument.
                if prog::dropin() {
                    eprintln!("{n}: error: invalid file name argument");
                } else {
                    eprintln!("{n}: error: {e}");
                }
                prog::print_hint();
            } else {
                eprintln!("{n}: error: {e}");
            }
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("{n}: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = a.dir.display().to_string();
    if a.debug {
        eprintln!("{n}: keeping WAL file \"{dir}/{}\" and later", plan.cutoff);
    }
    for note in &plan.notes {
        eprintln!("{n}: {note}");
    }
    for (name, leaf) in &plan.kept_for_history {
        if a.debug || a.dry_run {
            eprintln!("{n}: keeping \"{dir}/{name}\": timeline {leaf} still needs it");
        }
    }
    // An object store's identical twins, settled to one form; twins that differ are kept.
    let would = if a.dry_run {
        "would remove"
    } else {
        "removing"
    };
    for (removed, kept) in &plan.settled_twins {
        eprintln!(
            "{n}: {would} \"{dir}/{removed}\": an identical twin of \"{dir}/{kept}\" (the same WAL), which is kept"
        );
    }
    for c in &plan.conflicting_twins {
        eprintln!("{n}: error: archive \"{dir}\": {c}");
    }
    let done = if plan.conflicting_twins.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    if a.dry_run {
        let mut out = std::io::stdout().lock();
        for name in &plan.remove {
            let _ = writeln!(out, "{dir}/{name}");
            if a.debug {
                eprintln!("{n}: file \"{dir}/{name}\" would be removed");
            }
        }
        return done;
    }
    #[cfg(feature = "object-store")]
    if let Some(store) = &remote {
        let res = archive::remote::execute_cleanup_object(store, &plan, |p| {
            if a.debug {
                eprintln!("{n}: removing file \"{p}\"");
            }
        });
        return match res {
            Ok(_) => done,
            Err(e) => {
                eprintln!("{n}: error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let res = archive::execute_cleanup(&a.dir, &plan, |p| {
        if a.debug {
            eprintln!("{n}: removing file \"{}\"", p.display());
        }
    });
    match res {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{n}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn lsn_json(l: Option<Lsn>) -> Value {
    l.map_or(Value::Null, |l| Value::String(l.to_string()))
}

fn verify(a: VerifyArgs) -> anyhow::Result<ExitCode> {
    let bar = (!a.no_progress && std::io::stderr().is_terminal()).then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} verifying [{bar:40}] {pos}/{len} segments {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        b
    });
    let progress = |p: &archive::VerifyProgress| {
        if let Some(b) = &bar {
            b.set_length(p.total as u64);
            b.set_position(p.done as u64);
            b.set_message(p.file.clone());
        }
    };
    let report = match object_url(&a.archive)? {
        None => archive::verify(&a.archive, progress),
        #[cfg(feature = "object-store")]
        Some(u) => {
            // The listing, its objects read as the checks reach them.
            object::list(&u)
                .map_err(std::io::Error::other)
                .map(|listing| archive::verify_listing(&listing, progress))
        }
        #[cfg(not(feature = "object-store"))]
        Some(_) => unreachable!("object_url refuses URLs without the feature"),
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            // Could not verify at all: 2, to tell it from "verified, problems found" (1).
            eprintln!(
                "pgwal archive verify: error: could not read archive \"{}\": {e}",
                a.archive.display()
            );
            return Ok(ExitCode::from(2));
        }
    };
    match a.format {
        Format::Text => print_verify_text(&report),
        Format::Json => println!("{}", serde_json::to_string_pretty(&verify_json(&report))?),
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn verify_json(r: &VerifyReport) -> Value {
    json!({
        "archive": r.dir.display().to_string(),
        "ok": r.is_ok(),
        "errors": r.errors(),
        "warnings": r.warnings(),
        "system_identifier": r.system_id.map(|s| s.to_string()),
        "segment_size": r.seg_size.map(|s| s.bytes()),
        "postgresql_major": r.version.map(|v| v.major()),
        "segments_checked": r.segments_checked,
        "bytes_checked": r.bytes_checked,
        "records": r.records,
        "history_files": r.history_files,
        "timelines": r.timelines.iter().map(|t| json!({
            "timeline": t.tli.0,
            "parent": t.parent.map(|(p, _)| p.0),
            "switch_point": lsn_json(t.parent.map(|(_, x)| x)),
            "has_history": t.has_history,
            "first_segment": t.first_segment,
            "last_segment": t.last_segment,
            "segment_files": t.segment_files,
            "start_lsn": lsn_json(t.start_lsn),
            "end_lsn": lsn_json(t.end_lsn),
            "records": t.records,
        })).collect::<Vec<_>>(),
        "problems": r.problems.iter().map(|p| json!({
            "severity": p.severity.as_str(),
            "code": p.kind.code(),
            "timeline": p.tli.map(|t| t.0),
            "file": p.file,
            "lsn": lsn_json(p.lsn),
            "end_lsn": lsn_json(p.end_lsn),
            "message": p.message,
        })).collect::<Vec<_>>(),
    })
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn opt_lsn(l: Option<Lsn>) -> String {
    l.map_or_else(|| "?".to_owned(), |l| l.to_string())
}

fn print_verify_text(r: &VerifyReport) {
    let mut out = String::new();
    out.push_str(&format!("archive \"{}\"", r.dir.display()));
    if let Some(s) = r.system_id {
        out.push_str(&format!(": system identifier {s}"));
    }
    if let Some(s) = r.seg_size {
        out.push_str(&format!(", segment size {s}"));
    }
    if let Some(v) = r.version {
        out.push_str(&format!(", PostgreSQL {}", v.major()));
    }
    out.push('\n');
    for t in &r.timelines {
        out.push_str(&format!("timeline {}", t.tli));
        if let Some((p, x)) = t.parent {
            out.push_str(&format!(" (from timeline {p} at {x})"));
        }
        match (&t.first_segment, &t.last_segment) {
            (Some(f), Some(l)) => out.push_str(&format!(
                ": {f} .. {l}, {} files, WAL {} .. {}, {} records\n",
                t.segment_files,
                opt_lsn(t.start_lsn),
                opt_lsn(t.end_lsn),
                t.records
            )),
            _ => out.push_str(": no segments (history file only)\n"),
        }
    }
    let mut problems: Vec<_> = r.problems.iter().collect();
    problems.sort_by_key(|p| p.severity);
    for p in problems {
        out.push_str(&format!("{}: {}\n", p.severity.as_str(), p.message));
    }
    let verdict = if r.is_ok() { "OK" } else { "FAILED" };
    out.push_str(&format!(
        "verify: {verdict}: {} segments ({} of WAL), {} records checked; {} errors, {} warnings\n",
        r.segments_checked,
        human_bytes(r.bytes_checked),
        r.records,
        r.errors(),
        r.warnings()
    ));
    print!("{out}");
}

fn status(a: StatusArgs) -> anyhow::Result<ExitCode> {
    let st = match object_url(&a.archive)? {
        None => archive::status(&a.archive),
        #[cfg(feature = "object-store")]
        Some(u) => object::list(&u)
            .map_err(std::io::Error::other)
            .map(|listing| archive::status_listing(&listing)),
        #[cfg(not(feature = "object-store"))]
        Some(_) => unreachable!("object_url refuses URLs without the feature"),
    }
    .with_context(|| format!("could not read archive \"{}\"", a.archive.display()))?;
    match a.format {
        Format::Json => {
            let v = json!({
                "archive": st.dir.display().to_string(),
                "system_identifier": st.system_id.map(|s| s.to_string()),
                "segment_size": st.seg_size.map(|s| s.bytes()),
                "postgresql_major": st.version.map(|v| v.major()),
                "timelines": st.timelines.iter().map(|t| json!({
                    "timeline": t.tli.0,
                    "first_segment": t.first_segment,
                    "last_segment": t.last_segment,
                    "newest_lsn": lsn_json(t.newest_lsn),
                    "files": t.files,
                    "partial_files": t.partial_files,
                    "total_bytes": t.total_bytes,
                    "stored_bytes": t.stored_bytes,
                    "has_history": t.has_history,
                })).collect::<Vec<_>>(),
                "history_files": st.history_files,
                "backup_files": st.backup_files,
                "temp_files": st.temp_files,
                "other_files": st.other_files,
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Text => {
            let mut out = format!("archive \"{}\"", st.dir.display());
            if let Some(s) = st.system_id {
                out.push_str(&format!(": system identifier {s}"));
            }
            if let Some(s) = st.seg_size {
                out.push_str(&format!(", segment size {s}"));
            }
            if let Some(v) = st.version {
                out.push_str(&format!(", PostgreSQL {}", v.major()));
            }
            out.push('\n');
            if st.timelines.is_empty() {
                out.push_str("no segments\n");
            }
            for t in &st.timelines {
                let ratio = if t.stored_bytes > 0 {
                    t.total_bytes as f64 / t.stored_bytes as f64
                } else {
                    1.0
                };
                out.push_str(&format!(
                    "timeline {}: {} .. {}, newest LSN {}, {} files{}, {} of WAL, {} stored ({ratio:.1}x){}\n",
                    t.tli,
                    t.first_segment,
                    t.last_segment,
                    opt_lsn(t.newest_lsn),
                    t.files,
                    if t.partial_files > 0 { format!(" ({} partial)", t.partial_files) } else { String::new() },
                    human_bytes(t.total_bytes),
                    human_bytes(t.stored_bytes),
                    if t.tli.0 > 1 && !t.has_history { ", NO HISTORY FILE" } else { "" },
                ));
            }
            out.push_str(&format!(
                "{} history files, {} backup history files, {} temporary files, {} other files\n",
                st.history_files.len(),
                st.backup_files.len(),
                st.temp_files,
                st.other_files
            ));
            print!("{out}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// pg_archivecleanup's `--help` layout (drop-in mode), with pgwal's extra options after its own.
pub fn cleanup_help_page() -> HelpPage<'static> {
    HelpPage {
        summary: "removes WAL files no longer needed from a PostgreSQL archive (pgwal).",
        usage: "[OPTION]... ARCHIVELOCATION OLDESTKEPTWALFILE",
        sections: &[
            (
                "Options:",
                &[
                    (
                        "-b, --clean-backup-history",
                        &["remove backup history files too"],
                    ),
                    ("-d, --debug", &["say what is kept and removed"]),
                    (
                        "-n, --dry-run",
                        &["only print the files that would be removed"],
                    ),
                    ("-V, --version", &["print the version and exit"]),
                    (
                        "-x, --strip-extension=EXT",
                        &["ignore this extension when matching file names"],
                    ),
                    ("-?, --help", &["print this help and exit"]),
                ],
            ),
            (
                "pgwal options:",
                &[
                    (
                        "    --exact",
                        &["recognise only pg_archivecleanup's file names"],
                    ),
                    (
                        "    --keep-history-needs",
                        &["keep what other timelines' history still needs"],
                    ),
                ],
            ),
        ],
        footer: &[
            "In postgresql.conf:",
            "  archive_cleanup_command = 'pg_archivecleanup /path/to/archive %r'",
            "pgwal home page: <https://github.com/pgwal/pgwal>",
        ],
        column: 30,
    }
}
