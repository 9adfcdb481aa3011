//! `-p` naming a tar archive (pg_waldump 19): its WAL members are extracted into a private
//! temporary directory, removed on exit, which then reads like any other `-p` directory. The
//! argument checks and their messages are pg_waldump 19's; the archive may hold WAL of any
//! major pgwal reads.

use std::path::{Path, PathBuf};

use anyhow::bail;
use pgwal::tar;

use super::DumpArgs;

/// A directory under `$TMPDIR` (else `/tmp`), mode 0700, removed with everything in it on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    fn new() -> anyhow::Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::temp_dir();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        for attempt in 0..100u32 {
            let dir = base.join(format!(
                "pgwal-tar-{}-{stamp:08x}-{attempt}",
                std::process::id()
            ));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(TempDir(dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => bail!("could not create directory \"{}\": {e}", dir.display()),
            }
        }
        bail!(
            "could not create a temporary directory in \"{}\"",
            base.display()
        )
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// When `-p` names a tar archive (a file called `*.tar`, `*.tar.gz`, `*.tgz`, `*.tar.lz4` or
/// `*.tar.zst`): checks the other arguments as pg_waldump 19 does, extracts the archive's WAL and
/// points `-p` at it. The returned directory must live as long as the dump.
pub(crate) fn prepare(mut a: DumpArgs) -> anyhow::Result<(DumpArgs, Option<TempDir>)> {
    let Some(path) = a.path.clone() else {
        return Ok((a, None));
    };
    let Some(kind) = tar::archive_kind(&path).filter(|_| !path.is_dir()) else {
        return Ok((a, None));
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
    let dir = TempDir::new()?;
    let got = tar::extract_wal(&path, kind, dir.path())?;
    for name in &got.duplicates {
        eprintln!(
            "{}: warning: ignoring duplicate WAL \"{name}\" found in archive \"{}\"",
            crate::prog::name(),
            path.display()
        );
    }
    a.path = Some(dir.path().to_path_buf());
    Ok((a, Some(dir)))
}
