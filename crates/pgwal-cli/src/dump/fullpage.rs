//! `--save-fullpage=DIR`: every full-page image of the records shown, restored and written to
//! its own file in DIR, named as pg_waldump names it.
//!
//! Page images are table data, so the directory is created with mode 0700 (as pg_waldump
//! creates it) and each file with mode 0600; a file is never written through a symbolic link.
//! An existing directory must be empty and is used as it is, as in pg_waldump.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{anyhow, bail, Context};
use pgwal::wal::Record;
use pgwal::TimelineId;

/// Mode of the directory when it is created (`pg_dir_create_mode`).
const DIR_MODE: u32 = 0o700;

/// Mode of each page file.
const FILE_MODE: u32 = 0o600;

/// Checks DIR before any record is read: an existing directory must be empty (dot files count);
/// a missing one is created with mode 0700, its missing parents as `mkdir -p` would.
pub(super) fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    match dir.read_dir() {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!("directory \"{}\" exists but is not empty", dir.display());
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| {
                    format!("could not create directory \"{}\"", parent.display())
                })?;
            }
            DirBuilder::new()
                .mode(DIR_MODE)
                .create(dir)
                .with_context(|| format!("could not create directory \"{}\"", dir.display()))
        }
        Err(e) => {
            Err(e).with_context(|| format!("could not access directory \"{}\"", dir.display()))
        }
    }
}

/// Writes the full-page images of `rec` to DIR.
pub(super) fn save(dir: &Path, tli: TimelineId, rec: &Record<'_>) -> anyhow::Result<()> {
    for b in rec.blocks() {
        let Some(img) = b.image() else { continue };
        let page = pgwal::wal::restore_block_image(&img).map_err(|e| {
            anyhow!(
                "could not restore image at {}, block {}: {e}",
                rec.lsn(),
                b.id()
            )
        })?;
        let r = b.rel();
        let name = format!(
            "{:08X}-{:08X}-{:08X}.{}.{}.{}.{}_{}",
            tli.0,
            rec.lsn().0 >> 32,
            rec.lsn().0 as u32,
            r.spc,
            r.db,
            r.rel,
            b.blkno(),
            b.fork().name()
        );
        let path = dir.join(name);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .and_then(|mut f| f.write_all(&page[..]))
            .with_context(|| format!("could not write file \"{}\"", path.display()))?;
    }
    Ok(())
}
