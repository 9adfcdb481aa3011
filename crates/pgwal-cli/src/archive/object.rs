//! `pgwal archive … -A s3://…|az://…|gs://…`: the archive commands on object storage.
//!
//! Request settings come from the environment (all optional): `PGWAL_OBJECT_TIMEOUT` (seconds
//! per request, default 60), `PGWAL_OBJECT_CONNECT_TIMEOUT` (5), `PGWAL_OBJECT_RETRIES` (5),
//! `PGWAL_OBJECT_RETRY_TIMEOUT` (seconds, 120), `PGWAL_OBJECT_MULTIPART_THRESHOLD` (bytes,
//! 1 GiB), `PGWAL_OBJECT_PART_SIZE` (bytes, 16 MiB), `PGWAL_OBJECT_CONCURRENCY` (8).
//! Each retry is logged on stderr (`PGWAL_LOG` filters the log, default `warn,object_store=info`).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use pgwal::storage::location::ObjectUrl;
use pgwal::storage::object::{ObjectArchive, ObjectOptions};

fn env_num(name: &str) -> anyhow::Result<Option<u64>> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<u64>()
            .map(Some)
            .with_context(|| format!("invalid {name} \"{v}\": not a whole number")),
        _ => Ok(None),
    }
}

/// Request settings from the `PGWAL_OBJECT_*` variables.
pub fn options_from_env() -> anyhow::Result<ObjectOptions> {
    let mut o = ObjectOptions::default();
    if let Some(v) = env_num("PGWAL_OBJECT_TIMEOUT")? {
        o.timeout = Duration::from_secs(v.max(1));
    }
    if let Some(v) = env_num("PGWAL_OBJECT_CONNECT_TIMEOUT")? {
        o.connect_timeout = Duration::from_secs(v.max(1));
    }
    if let Some(v) = env_num("PGWAL_OBJECT_RETRIES")? {
        o.max_retries = v as usize;
    }
    if let Some(v) = env_num("PGWAL_OBJECT_RETRY_TIMEOUT")? {
        o.retry_timeout = Duration::from_secs(v);
    }
    if let Some(v) = env_num("PGWAL_OBJECT_MULTIPART_THRESHOLD")? {
        o.multipart_threshold = v as usize;
    }
    if let Some(v) = env_num("PGWAL_OBJECT_PART_SIZE")? {
        // S3's smallest part.
        o.part_size = (v as usize).max(5 << 20);
    }
    if let Some(v) = env_num("PGWAL_OBJECT_CONCURRENCY")? {
        o.concurrency = (v as usize).clamp(1, 64);
    }
    Ok(o)
}

/// Logging of the object store's retries (and pgwal's warnings) on stderr.
pub fn init_logging() {
    let default = "warn,object_store=info";
    let filter = std::env::var("PGWAL_LOG").unwrap_or_else(|_| default.to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .without_time()
        .try_init();
}

/// Connects to the archive at `url`.
pub fn open(url: &ObjectUrl) -> anyhow::Result<ObjectArchive> {
    init_logging();
    let opts = options_from_env()?;
    Ok(ObjectArchive::open(url, &opts)?)
}

/// Connects to the archive at `url` and lists it into the directory index, its objects read
/// on demand ([`pgwal::reader::object::list`]).
pub fn list(url: &ObjectUrl) -> anyhow::Result<pgwal::source::WalDirectory> {
    let store = std::sync::Arc::new(open(url)?);
    Ok(pgwal::reader::object::list(store)?)
}

/// The [`pgwal::archive::remote::Background`] of `fetch --prefetch N`: this program, detached
/// (its own session, no standard streams, so that neither PostgreSQL's wait for the
/// restore_command nor a signal to its process group concerns it), running `archive fetch
/// --prefetch-only NAMES` against the same archive and cache.
pub fn read_ahead_process(
    archive: &Path,
    dir: &Path,
    ahead: usize,
) -> pgwal::archive::remote::Background {
    use std::os::unix::process::CommandExt;
    let (archive, dir) = (archive.to_owned(), dir.to_owned());
    std::sync::Arc::new(move |names: &[String]| {
        let exe = std::env::current_exe()?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("archive")
            .arg("fetch")
            .arg(&names[0])
            .arg(dir.join(".pgwal-read-ahead"))
            .arg("-A")
            .arg(&archive)
            .arg("--prefetch-dir")
            .arg(&dir)
            .arg("--prefetch")
            .arg(ahead.to_string())
            .arg("--prefetch-only")
            .arg(names.join(","))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // SAFETY: setsid is async-signal-safe and touches no memory of this process.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(cmd.spawn()?.id())
    })
}
