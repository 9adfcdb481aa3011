//! `-p` naming a tar archive (pg_waldump 19): the library's reader reads its WAL members in
//! place, from the mapped archive or as the compressed archive is decompressed, and nothing
//! is written ([`pgwal::reader::Location::Tar`], [`pgwal::source::TarWal`]). The argument checks and their messages are
//! pg_waldump 19's; the archive may hold WAL of any major pgwal reads.

use std::path::Path;

use anyhow::bail;

use super::config::DumpConfig;

/// When `-p` names a tar archive (a file called `*.tar`, `*.tar.gz`, `*.tgz`, `*.tar.lz4` or
/// `*.tar.zst`; `startseg` is a `STARTSEG` operand): checks the other arguments as pg_waldump
/// 19 does.
pub(crate) fn check(cfg: &DumpConfig, startseg: Option<&str>) -> anyhow::Result<()> {
    if cfg.follow {
        bail!("--follow is not supported when reading from a tar archive");
    }
    if let Some(first) = startseg {
        bail!(
            "unnecessary command-line arguments specified with tar archive (first is \"{first}\")"
        );
    }
    if cfg.start.is_none() {
        bail!("no start WAL location given");
    }
    Ok(())
}

/// pg_waldump 19's warning for each WAL member of `archive` found more than once.
pub(crate) fn duplicate_warning(archive: &Path) -> impl Fn(&str) + Send + Sync + 'static {
    let shown = archive.display().to_string();
    move |member: &str| {
        eprintln!(
            "{}: warning: ignoring duplicate WAL \"{member}\" found in archive \"{shown}\"",
            crate::prog::name(),
        );
    }
}
