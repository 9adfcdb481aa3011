//! `dump -p s3://…|az://…|gs://…`: WAL read from an archive in object storage, through a local
//! copy of its WAL files (the same download `archive verify` makes), which the directory code
//! then reads.

use anyhow::bail;

use super::config::{DumpConfig, Input};
use crate::archive::object::{self, Scratch};

/// When `-p` names an object-store URL: downloads the archive's files into a scratch directory
/// (removed when the returned guard drops) and returns the configuration with `-p` pointing at
/// it.
pub(crate) fn prepare(cfg: &DumpConfig) -> anyhow::Result<Option<(DumpConfig, Scratch)>> {
    let Input::Files {
        path: Some(path),
        startseg,
        endseg,
    } = &cfg.input
    else {
        return Ok(None);
    };
    let Some(url) = crate::archive::object_url(path)? else {
        return Ok(None);
    };
    if cfg.follow {
        bail!("--follow is not supported when reading from object storage (\"{url}\")");
    }
    let store = object::open(&url)?;
    let scratch = Scratch::new("dump")?;
    pgwal::archive::remote::materialize(&store, scratch.path())?;
    let mut local = cfg.clone();
    local.input = Input::Files {
        path: Some(scratch.path().to_path_buf()),
        startseg: startseg.clone(),
        endseg: endseg.clone(),
    };
    Ok(Some((local, scratch)))
}
