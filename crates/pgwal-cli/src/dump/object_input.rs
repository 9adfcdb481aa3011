//! `dump -p s3://…|az://…|gs://…`: WAL read from an archive in object storage, through a local
//! copy of its WAL files (the same download `archive verify` makes), which the directory code
//! then reads.

use anyhow::bail;

use super::DumpArgs;
use crate::archive::object::{self, Scratch};

/// When `-p` names an object-store URL: downloads the archive's files into a scratch directory
/// (removed when the returned guard drops) and points `-p` at it.
pub(crate) fn prepare(mut a: DumpArgs) -> anyhow::Result<(DumpArgs, Option<Scratch>)> {
    let Some(path) = a.path.clone() else {
        return Ok((a, None));
    };
    let Some(url) = crate::archive::object_url(&path)? else {
        return Ok((a, None));
    };
    if a.follow {
        bail!("--follow is not supported when reading from object storage (\"{url}\")");
    }
    let store = object::open(&url)?;
    let scratch = Scratch::new("dump")?;
    pgwal::archive::remote::materialize(&store, scratch.path())?;
    a.path = Some(scratch.path().to_path_buf());
    Ok((a, Some(scratch)))
}
