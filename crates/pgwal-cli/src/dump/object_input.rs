//! `dump -p s3://…|az://…|gs://…`: WAL read from an archive in object storage through the
//! library's reader (`pgwal::reader::Location::Object`): the archive is listed, and its
//! segments are fetched as reading reaches them, the next few in parallel ahead of it.

use std::path::Path;

use anyhow::bail;
use pgwal::reader::{Location, ReaderBuilder};

use crate::archive::object;

/// When `-p` names an object-store URL: the location to read, with the request settings from
/// the environment set on `b`. `None` for a path.
pub(crate) fn location(
    path: Option<&Path>,
    follow: bool,
    b: ReaderBuilder,
) -> anyhow::Result<(Option<Location>, ReaderBuilder)> {
    let Some(path) = path else {
        return Ok((None, b));
    };
    let Some(url) = crate::archive::object_url(path)? else {
        return Ok((None, b));
    };
    if follow {
        bail!("--follow is not supported when reading from object storage (\"{url}\")");
    }
    object::init_logging();
    let b = b.object_options(object::options_from_env()?);
    Ok((Some(Location::Object(url)), b))
}
