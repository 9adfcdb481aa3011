//! `pgwal receive`: pg_receivewal's options and archive, as a daemon that never loses
//! acknowledged WAL. The work is done by [`pgwal::receiver`]; this module parses the
//! options, builds the connection, handles signals, slots, logging and the metrics endpoint.

use std::io::{BufRead, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{ArgAction, Args};
use pgwal::conninfo::{Config, ConnInfo, SystemEnvironment};
#[cfg(feature = "object-store")]
use pgwal::receiver::ObjectSinkHandle;
use pgwal::receiver::{
    CompressSpec, Metrics, ReceiveError, Receiver, ReceiverOptions, StopHandle, Stopped,
};
use pgwal::replication::{CreateSlotOptions, ReplicationClient, SlotName};
use pgwal::Lsn;

use crate::getopt::Scanned;
use crate::prog::{self, HelpPage, Usage};

mod metrics_http;

/// The application name sent when none is configured (`application_name`, `PGAPPNAME`).
pub const DEFAULT_APPLICATION_NAME: &str = "pgwal";

/// Arguments of `pgwal receive` (pg_receivewal's options, same spellings and defaults).
#[derive(Debug, Args)]
#[command(disable_version_flag = true, disable_help_flag = true)]
pub struct ReceiveArgs {
    /// Receive write-ahead log files into this directory (or object-store URL: s3://, az://,
    /// gs://, with --spool).
    #[arg(short = 'D', long = "directory", value_name = "DIR")]
    directory: Option<PathBuf>,
    /// Exit after receiving the specified LSN.
    #[arg(short = 'E', long = "endpos", value_name = "LSN")]
    endpos: Option<String>,
    /// Do not error if slot already exists when creating a slot.
    #[arg(long = "if-not-exists")]
    if_not_exists: bool,
    /// Do not loop on connection lost.
    #[arg(short = 'n', long = "no-loop")]
    no_loop: bool,
    /// Do not wait for changes to be written safely to disk.
    #[arg(long = "no-sync")]
    no_sync: bool,
    /// Time between status packets sent to server (default: 10).
    #[arg(short = 's', long = "status-interval", value_name = "SECS")]
    status_interval: Option<String>,
    /// Replication slot to use.
    #[arg(short = 'S', long = "slot", value_name = "SLOTNAME")]
    slot: Option<String>,
    /// Flush write-ahead log immediately after writing.
    #[arg(long = "synchronous")]
    synchronous: bool,
    /// Output verbose messages (twice: debugging output).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    verbose: u8,
    /// Compress as specified: none, gzip, lz4 or zstd, with an optional level or options
    /// (METHOD[:DETAIL]; a bare integer is a gzip level).
    #[arg(short = 'Z', long = "compress", value_name = "METHOD[:DETAIL]")]
    compress: Option<String>,
    /// Connection string (key=value or URI).
    #[arg(short = 'd', long = "dbname", value_name = "CONNSTR")]
    dbname: Option<String>,
    /// Database server host or socket directory.
    #[arg(short = 'h', long = "host", value_name = "HOSTNAME")]
    host: Option<String>,
    /// Database server port number.
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    port: Option<String>,
    /// Connect as specified database user.
    #[arg(short = 'U', long = "username", value_name = "NAME")]
    username: Option<String>,
    /// Never prompt for password.
    #[arg(short = 'w', long = "no-password")]
    no_password: bool,
    /// Force password prompt.
    #[arg(short = 'W', long = "password")]
    password: bool,
    /// Create a new physical replication slot (reserving WAL at once), then exit.
    #[arg(long = "create-slot")]
    create_slot: bool,
    /// Drop the replication slot, then exit.
    #[arg(long = "drop-slot")]
    drop_slot: bool,
    /// Report the flushed position as applied too (for synchronous_commit = remote_apply).
    #[arg(long = "report-apply")]
    report_apply: bool,
    /// Serve Prometheus metrics on HOST:PORT (GET /metrics).
    #[arg(long = "metrics-addr", value_name = "HOST:PORT")]
    metrics_addr: Option<String>,
    /// Longest wait between reconnection attempts, in seconds (default: 30).
    #[arg(long = "max-retry-delay", value_name = "SECS")]
    max_retry_delay: Option<u64>,
    /// With -D URL: the local spool directory for partial and not yet uploaded segments.
    #[arg(long = "spool", value_name = "DIR")]
    spool: Option<PathBuf>,
    /// With -D URL: stop taking WAL when this much waits for upload (default: 1GB).
    #[arg(long = "max-spool", value_name = "SIZE")]
    max_spool: Option<String>,
    /// With -D URL: what the flush position covers, `local` (the spool) or `remote` (the store).
    #[arg(long = "flush-to", value_name = "local|remote")]
    flush_to: Option<String>,
    /// With -D URL and --flush-to remote: seconds between uploads of the partial segment
    /// (default: 10).
    #[arg(long = "partial-interval", value_name = "SECS")]
    partial_interval: Option<u64>,
    /// With -D URL: segments uploaded at once (default: 2).
    #[arg(long = "upload-jobs", value_name = "N")]
    upload_jobs: Option<String>,
    /// Show help.
    #[arg(short = '?', long = "help", action = ArgAction::Help)]
    help: Option<bool>,
}

/// An option error, reported as pg_receivewal does (with the `--help` hint).
fn usage(msg: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    Err(Usage::new(msg.to_string()).into())
}

/// A value of `-E/--endpos` (an error without the hint, as pg_receivewal's).
fn parse_endpos(s: &str) -> anyhow::Result<Lsn> {
    s.parse::<Lsn>()
        .map_err(|_| anyhow!("could not parse end position \"{s}\""))
}

/// A value of `-s/--status-interval`: seconds, 0 for none (an error without the hint).
fn parse_status_interval(s: &str) -> anyhow::Result<Option<Duration>> {
    match s.trim().parse::<i64>() {
        Err(_) => bail!("invalid value \"{s}\" for option -s/--status-interval"),
        Ok(v) if !(0..=2_147_483).contains(&v) => {
            bail!("-s/--status-interval must be in range 0..2147483")
        }
        Ok(0) => Ok(None),
        Ok(v) => Ok(Some(Duration::from_secs(v as u64))),
    }
}

/// A size: bytes, or a number with `kB`, `MB`, `GB`, `TB` (powers of 1024, as PostgreSQL's
/// settings; `K`, `M`, `G`, `T` and `B` suffixes are taken too).
fn parse_size(s: &str) -> anyhow::Result<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| anyhow!("invalid size \"{s}\" for option --max-spool"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" => 10,
        "m" | "mb" => 20,
        "g" | "gb" => 30,
        "t" | "tb" => 40,
        _ => bail!("invalid size \"{s}\" for option --max-spool (units: kB, MB, GB, TB)"),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| anyhow!("invalid size \"{s}\" for option --max-spool: too large"))
}

/// pg_receivewal's checks while scanning the options: `-s` and `-E` values in the order given,
/// then operands (there are none).
pub fn check_options(s: &Scanned) -> anyhow::Result<()> {
    for g in &s.options {
        let v = g.value.as_deref().unwrap_or("");
        match g.id.as_str() {
            "status_interval" => {
                parse_status_interval(v)?;
            }
            "endpos" => {
                parse_endpos(v)?;
            }
            _ => {}
        }
    }
    if let Some(first) = s.operands.first() {
        return Err(Usage::new(format!(
            "too many command-line arguments (first is \"{first}\")"
        ))
        .into());
    }
    Ok(())
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        // pg_receivewal prints progress only with -v.
        0 if prog::dropin() => "warn",
        0 => "warn,pgwal=info,pgwal_cli=info,object_store=info",
        1 => "warn,pgwal=info,pgwal::receiver=debug,pgwal_cli=debug",
        _ => "debug",
    };
    let filter = std::env::var("PGWAL_LOG").unwrap_or_else(|_| default.to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    if prog::dropin() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .event_format(PgLogLine)
            .try_init();
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

/// Log lines as PostgreSQL's tools print them: `PROG: message`, `PROG: warning: …`,
/// `PROG: error: …` (drop-in mode).
struct PgLogLine;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for PgLogLine
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error: ",
            tracing::Level::WARN => "warning: ",
            _ => "",
        };
        write!(writer, "{}: {level}", prog::name())?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Reads a password from the terminal without echo.
fn prompt_password() -> anyhow::Result<String> {
    let mut tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("could not open the terminal to read a password")?;
    write!(tty, "Password: ")?;
    tty.flush()?;
    use std::os::unix::io::AsRawFd;
    let fd = tty.as_raw_fd();
    // SAFETY: termios calls on a valid terminal descriptor with a zeroed, then filled, struct.
    let saved = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(fd, &mut t) == 0 {
            let saved = t;
            t.c_lflag &= !libc::ECHO;
            libc::tcsetattr(fd, libc::TCSANOW, &t);
            Some(saved)
        } else {
            None
        }
    };
    let mut line = String::new();
    let r = std::io::BufReader::new(&tty).read_line(&mut line);
    if let Some(t) = saved {
        // SAFETY: restores the attributes read above on the same descriptor.
        unsafe {
            libc::tcsetattr(fd, libc::TCSANOW, &t);
        }
    }
    let _ = writeln!(tty);
    r?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// The connection: `-d` (a connection string), then `-h -p -U` over it, `replication=true`
/// and the fallback application name, libpq's environment variables and password file.
fn connection(a: &ReceiveArgs) -> anyhow::Result<Config> {
    let overrides = [("host", &a.host), ("port", &a.port), ("user", &a.username)];
    connection_config(
        a.dbname.as_deref(),
        &overrides,
        a.password && !a.no_password,
    )
}

/// The connection of `receive` and `dump -d`: `dbname` (a connection string or URI), then the
/// `overrides` (`-h -p -U`) over it, the fallback application name, libpq's environment
/// variables and password file; with `prompt`, the password read from the terminal.
pub(crate) fn connection_config(
    dbname: Option<&str>,
    overrides: &[(&str, &Option<String>)],
    prompt: bool,
) -> anyhow::Result<Config> {
    let mut info = match dbname {
        Some(d) => ConnInfo::parse(d).map_err(|e| anyhow!("{e}"))?,
        None => ConnInfo::default(),
    };
    for &(key, v) in overrides {
        if let Some(v) = v {
            info.set(key, v).map_err(|e| anyhow!("{e}"))?;
        }
    }
    let fallback = if prog::dropin() {
        prog::name()
    } else {
        DEFAULT_APPLICATION_NAME
    };
    info.set("fallback_application_name", fallback)
        .map_err(|e| anyhow!("{e}"))?;
    let mut config =
        Config::from_conninfo(&info, &SystemEnvironment).map_err(|e| anyhow!("{e}"))?;
    if prompt {
        config.password = Some(prompt_password()?);
    }
    Ok(config)
}

/// Runs `pgwal receive` (or pg_receivewal in drop-in mode); the options were checked in the
/// order given by [`check_options`] (`_s`).
pub fn run(a: ReceiveArgs, _s: &Scanned) -> anyhow::Result<ExitCode> {
    if a.create_slot && a.drop_slot {
        return usage("cannot use --create-slot together with --drop-slot");
    }
    if (a.create_slot || a.drop_slot) && a.slot.is_none() {
        let opt = if a.create_slot {
            "--create-slot"
        } else {
            "--drop-slot"
        };
        return usage(format!("{opt} needs a slot to be specified using --slot"));
    }
    if a.synchronous && a.no_sync {
        return usage("cannot use --synchronous together with --no-sync");
    }
    if a.directory.is_none() && !a.create_slot && !a.drop_slot {
        return usage("no target directory specified");
    }
    let endpos = a.endpos.as_deref().map(parse_endpos).transpose()?;
    let status_interval = match &a.status_interval {
        None => Some(Duration::from_secs(10)),
        Some(s) => parse_status_interval(s)?,
    };
    // pg_receivewal reports a bad specification without the hint.
    let compress = match &a.compress {
        None => CompressSpec::NONE,
        Some(s) => CompressSpec::parse(s).map_err(|e| anyhow!("{e}"))?,
    };
    let slot = match &a.slot {
        None => None,
        Some(s) => match SlotName::new(s.as_str()) {
            Ok(n) => Some(n),
            Err(e) => return usage(e),
        },
    };
    let url = match &a.directory {
        Some(d) if !a.create_slot && !a.drop_slot => crate::archive::object_url(d)?,
        _ => None,
    };
    let object_only = [
        ("--spool", a.spool.is_some()),
        ("--max-spool", a.max_spool.is_some()),
        ("--flush-to", a.flush_to.is_some()),
        ("--partial-interval", a.partial_interval.is_some()),
        ("--upload-jobs", a.upload_jobs.is_some()),
    ];
    if url.is_none() {
        if let Some((opt, _)) = object_only.iter().find(|(_, set)| *set) {
            return usage(format!(
                "{opt} is used only with an object-store URL as -D (s3://, az://, gs://)"
            ));
        }
    }
    if url.is_some() && a.spool.is_none() {
        return usage("-D with an object-store URL needs a local spool directory: --spool DIR");
    }
    if let Some(d) = a
        .directory
        .as_ref()
        .filter(|_| !a.create_slot && !a.drop_slot && url.is_none())
    {
        if let Err(e) = std::fs::read_dir(d) {
            bail!(
                "could not open directory \"{}\": {}",
                d.display(),
                prog::strerror(&e)
            );
        }
    }
    init_logging(a.verbose);
    let config = connection(&a)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;

    if a.create_slot || a.drop_slot {
        let Some(slot) = slot else {
            return Ok(ExitCode::FAILURE);
        };
        return rt.block_on(slot_action(&config, &slot, a.create_slot, a.if_not_exists));
    }
    let Some(directory) = a.directory.clone() else {
        return Ok(ExitCode::FAILURE);
    };
    // pg_receivewal exits at once when its first connection fails (no retry loop).
    if prog::dropin() {
        if let Err(e) = rt.block_on(first_connection(&config)) {
            eprintln!("{}: error: {}", prog::name(), libpq_style(&e));
            return Ok(ExitCode::FAILURE);
        }
    }
    let mut opts = ReceiverOptions::new(directory);
    opts.slot = slot;
    opts.endpos = endpos;
    opts.no_loop = a.no_loop;
    opts.status_interval = status_interval;
    opts.synchronous = a.synchronous;
    opts.sync = !a.no_sync;
    opts.compress = compress;
    opts.report_apply = a.report_apply;
    if let Some(s) = a.max_retry_delay {
        opts.max_reconnect_delay = Duration::from_secs(s.max(1));
    }
    let (receiver, interrupt) = match url {
        None => (Receiver::new(config, opts), None),
        #[cfg(feature = "object-store")]
        Some(u) => {
            let (sink, interrupt, metrics) = object_sink(&a, &u, compress)?;
            let r = Receiver::with_sink(config, opts, sink).with_metrics(metrics);
            (r, Some(interrupt))
        }
        #[cfg(not(feature = "object-store"))]
        Some(_) => unreachable!("object_url refuses URLs without the feature"),
    };
    let metrics = receiver.metrics();
    let stop = receiver.stop_handle();
    let uploads = interrupt.clone();
    rt.block_on(async move {
        if let Some(addr) = &a.metrics_addr {
            metrics_http::start(addr, metrics.clone())
                .await
                .with_context(|| format!("could not serve metrics on {addr}"))?;
        }
        spawn_signal_handler(stop, interrupt)?;
        let r = receiver.run().await;
        if let Some(h) = &uploads {
            // The sink is gone: it waited for the uploads while the store took them.
            if let Some(e) = h.fatal_error() {
                eprintln!("{}: error: {e}", prog::name());
                return Ok(ExitCode::FAILURE);
            }
            let n = h.pending_uploads();
            if n > 0 {
                tracing::warn!("{n} uploads left in the spool; they are made at the next start");
            }
        }
        match r {
            Ok(Stopped::EndPosition(_)) | Ok(Stopped::Requested) => Ok(ExitCode::SUCCESS),
            // pg_receivewal's two lines: the cause, then that it is disconnected.
            Err(ReceiveError::Disconnected(cause)) => {
                eprintln!("{}: error: {cause}", prog::name());
                eprintln!("{}: error: disconnected", prog::name());
                Ok(ExitCode::FAILURE)
            }
            Err(e) => {
                eprintln!("{}: error: {e}", prog::name());
                Ok(ExitCode::FAILURE)
            }
        }
    })
}

/// Connects once and closes again (drop-in mode's check of the first connection).
async fn first_connection(config: &Config) -> Result<(), pgwal::replication::Error> {
    let mut c = ReplicationClient::connect(config).await?;
    c.identify_system().await?;
    let _ = c.close().await;
    Ok(())
}

/// A connection error worded as libpq words it: the C library's text for the cause, and
/// libpq's second line for a refused connection.
fn libpq_style(e: &pgwal::replication::Error) -> String {
    match e {
        pgwal::replication::Error::Connect { target, source } => {
            let mut s = format!(
                "connection to server {target} failed: {}",
                prog::strerror(source)
            );
            if source.kind() == std::io::ErrorKind::ConnectionRefused {
                if target.starts_with("on socket") {
                    s.push_str("\n\tIs the server running locally and accepting connections on that socket?");
                } else {
                    s.push_str(
                        "\n\tIs the server running on that host and accepting TCP/IP connections?",
                    );
                }
            }
            s
        }
        pgwal::replication::Error::AllHostsFailed(all) => all
            .iter()
            .map(|(_, e)| libpq_style(e))
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    }
}

/// The object-store sink of `-D URL`: the store opened with the `PGWAL_OBJECT_*` settings and
/// the cloud's credentials from the environment, the spool and its options.
#[cfg(feature = "object-store")]
fn object_sink(
    a: &ReceiveArgs,
    url: &pgwal::storage::location::ObjectUrl,
    compress: CompressSpec,
) -> anyhow::Result<(pgwal::receiver::ObjectSink, ObjectSinkHandle, Arc<Metrics>)> {
    use pgwal::receiver::{FlushTo, ObjectSink, ObjectSinkOptions};
    let Some(spool) = &a.spool else {
        bail!("-D with an object-store URL needs --spool DIR");
    };
    let mut o = ObjectSinkOptions::new(spool);
    o.compress = compress;
    o.sync = !a.no_sync;
    if let Some(m) = &a.max_spool {
        o.max_spool = parse_size(m)?;
    }
    o.flush_to = match a.flush_to.as_deref() {
        None | Some("local") => FlushTo::Local,
        Some("remote") => FlushTo::Remote,
        Some(other) => bail!("invalid value \"{other}\" for option --flush-to (local or remote)"),
    };
    if let Some(s) = a.partial_interval {
        o.partial_interval = Duration::from_secs(s.max(1));
    }
    if let Some(n) = &a.upload_jobs {
        o.upload_jobs = match n.parse::<usize>() {
            Ok(n @ 1..=64) => n,
            _ => bail!("invalid value \"{n}\" for option --upload-jobs (1 to 64)"),
        };
    }
    let store = crate::archive::object::open(url)?;
    let metrics = Arc::new(Metrics::default());
    let sink = ObjectSink::open(store, o, metrics.clone())?;
    let interrupt = sink.handle();
    Ok((sink, interrupt, metrics))
}

#[cfg(not(feature = "object-store"))]
#[derive(Clone, Debug)]
struct ObjectSinkHandle;

#[cfg(not(feature = "object-store"))]
impl ObjectSinkHandle {
    fn interrupt(&self) {}
    fn fatal_error(&self) -> Option<String> {
        None
    }
    fn pending_uploads(&self) -> usize {
        0
    }
}

/// SIGINT and SIGTERM stop the receiver in order (and an object sink's wait for room in its
/// spool); a second one exits at once.
fn spawn_signal_handler(stop: StopHandle, spool: Option<ObjectSinkHandle>) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).context("could not install a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("could not install a SIGINT handler")?;
    tokio::spawn(async move {
        let mut n = 0;
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            n += 1;
            if n > 1 {
                eprintln!("{}: second interrupt signal, exiting at once", prog::name());
                std::process::exit(1);
            }
            if let Some(s) = &spool {
                s.interrupt();
            }
            stop.stop();
        }
    });
    Ok(())
}

async fn slot_action(
    config: &Config,
    slot: &SlotName,
    create: bool,
    if_not_exists: bool,
) -> anyhow::Result<ExitCode> {
    let mut client = match ReplicationClient::connect(config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}: error: {e}", prog::name());
            return Ok(ExitCode::FAILURE);
        }
    };
    let id = client.identify_system().await?;
    if id.dbname.is_some() {
        eprintln!(
            "{}: error: replication connection using slot \"{}\" is unexpectedly database specific",
            prog::name(),
            slot.as_str()
        );
        return Ok(ExitCode::FAILURE);
    }
    let r = if create {
        tracing::info!("creating replication slot \"{}\"", slot.as_str());
        let opts = CreateSlotOptions {
            reserve_wal: true,
            ..Default::default()
        };
        match client.create_replication_slot(slot, opts).await {
            Ok(_) => Ok(()),
            Err(e) if if_not_exists && e.code() == Some("42710") => {
                tracing::info!("replication slot \"{}\" already exists", slot.as_str());
                Ok(())
            }
            Err(e) => Err(e),
        }
    } else {
        tracing::info!("dropping replication slot \"{}\"", slot.as_str());
        client.drop_replication_slot(slot, false).await
    };
    let _ = client.close().await;
    match r {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            match e.db_error().filter(|_| prog::dropin()) {
                // pg_receivewal's wording: the command it sends, then libpq's error text.
                Some(db) => {
                    let command = if create {
                        format!("CREATE_REPLICATION_SLOT \"{}\" PHYSICAL", slot.as_str())
                    } else {
                        format!("DROP_REPLICATION_SLOT \"{}\"", slot.as_str())
                    };
                    eprintln!(
                        "{}: error: could not send replication command \"{command}\": {}",
                        prog::name(),
                        libpq_server_error(db)
                    );
                }
                None => eprintln!("{}: error: {e}", prog::name()),
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A server error as libpq's default verbosity shows it: `SEVERITY:  message`, then
/// `DETAIL:  …` and `HINT:  …` lines.
fn libpq_server_error(db: &pgwal::replication::DbError) -> String {
    let mut s = format!("{}:  {}", db.severity, db.message);
    if let Some(d) = &db.detail {
        s.push_str(&format!("\nDETAIL:  {d}"));
    }
    if let Some(h) = &db.hint {
        s.push_str(&format!("\nHINT:  {h}"));
    }
    s
}

/// The metrics type, re-exported for the HTTP endpoint.
pub(crate) type SharedMetrics = Arc<Metrics>;

/// pg_receivewal's `--help` layout (drop-in mode), with pgwal's extra options after its own.
pub fn help_page() -> HelpPage<'static> {
    HelpPage {
        summary: "receives PostgreSQL streaming write-ahead log (pgwal, for PostgreSQL 13 to 18).",
        usage: "[OPTION]...",
        sections: &[
            (
                "Options:",
                &[
                    (
                        "-D, --directory=DIR",
                        &["write the WAL files into this directory"],
                    ),
                    (
                        "-E, --endpos=LSN",
                        &["exit once this LSN has been received"],
                    ),
                    (
                        "    --if-not-exists",
                        &["with --create-slot, an existing slot is fine"],
                    ),
                    ("-n, --no-loop", &["exit when the connection is lost"]),
                    ("    --no-sync", &["do not wait for WAL to reach the disk"]),
                    (
                        "-s, --status-interval=SECS",
                        &["seconds between status packets (default: 10)"],
                    ),
                    ("-S, --slot=SLOTNAME", &["replication slot to stream from"]),
                    ("    --synchronous", &["flush WAL as soon as it is written"]),
                    ("-v, --verbose", &["print progress messages"]),
                    ("-V, --version", &["print the version and exit"]),
                    (
                        "-Z, --compress=METHOD[:DETAIL]",
                        &["compression of the WAL files"],
                    ),
                    ("-?, --help", &["print this help and exit"]),
                ],
            ),
            (
                "Connection options:",
                &[
                    ("-d, --dbname=CONNSTR", &["connection string"]),
                    ("-h, --host=HOSTNAME", &["server host or socket directory"]),
                    ("-p, --port=PORT", &["server port"]),
                    ("-U, --username=NAME", &["user to connect as"]),
                    ("-w, --no-password", &["never ask for a password"]),
                    ("-W, --password", &["always ask for a password"]),
                ],
            ),
            (
                "Optional actions:",
                &[
                    (
                        "    --create-slot",
                        &["create the slot named by --slot, then exit"],
                    ),
                    (
                        "    --drop-slot",
                        &["drop the slot named by --slot, then exit"],
                    ),
                ],
            ),
            (
                "pgwal options:",
                &[
                    (
                        "    --report-apply",
                        &["report the flushed position as applied too"],
                    ),
                    (
                        "    --metrics-addr=HOST:PORT",
                        &["serve Prometheus metrics there"],
                    ),
                    (
                        "    --max-retry-delay=SECS",
                        &["longest wait between reconnections"],
                    ),
                    (
                        "    --spool=DIR",
                        &["with -D s3://|az://|gs://: local spool directory"],
                    ),
                    (
                        "    --max-spool=SIZE",
                        &["stop taking WAL when this much waits for upload"],
                    ),
                    (
                        "    --flush-to=local|remote",
                        &["report flushed what is in the spool or in the store"],
                    ),
                    (
                        "    --partial-interval=SECS",
                        &["upload the partial segment this often (remote)"],
                    ),
                    (
                        "    --upload-jobs=N",
                        &["with -D s3://|az://|gs://: segments uploaded at once"],
                    ),
                ],
            ),
        ],
        footer: &[
            "Differences: --create-slot reserves WAL at once; WAL is validated as it arrives.",
            "pgwal home page: <https://github.com/pgwal/pgwal>",
        ],
        column: 25,
    }
}
