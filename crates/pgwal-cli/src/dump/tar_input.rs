//! `-p` naming a tar archive (pg_waldump 19): its WAL members are read in place, from the
//! mapped archive or as the compressed archive is decompressed, and nothing is written (see
//! [`pgwal::source::TarWal`]). The argument checks and their messages are pg_waldump 19's; the
//! archive may hold WAL of any major pgwal reads.

use std::sync::Arc;

use anyhow::bail;
use pgwal::source::{TarWal, WalDirectory};
use pgwal::tar;

use super::DumpArgs;

/// When `-p` names a tar archive (a file called `*.tar`, `*.tar.gz`, `*.tgz`, `*.tar.lz4` or
/// `*.tar.zst`): checks the other arguments as pg_waldump 19 does and opens the archive's WAL
/// as a directory. `None` when `-p` is not an archive.
pub(crate) fn open(a: &DumpArgs) -> anyhow::Result<Option<WalDirectory>> {
    let Some(path) = a.path.as_deref() else {
        return Ok(None);
    };
    let Some(kind) = tar::archive_kind(path).filter(|_| !path.is_dir()) else {
        return Ok(None);
    };
    if a.follow {
        bail!("--follow is not supported when reading from a tar archive");
    }
    if let Some(first) = &a.startseg {
        bail!(
            "unnecessary command-line arguments specified with tar archive (first is \"{first}\")"
        );
    }
    if a.start.is_none() {
        bail!("no start WAL location given");
    }
    let shown = path.display().to_string();
    let warn = move |member: &str| {
        eprintln!(
            "{}: warning: ignoring duplicate WAL \"{member}\" found in archive \"{shown}\"",
            crate::prog::name(),
        );
    };
    let wal = TarWal::open(path, kind, Arc::new(warn))?;
    Ok(Some(WalDirectory::from_tar(wal)))
}
