//! `dump -p s3://…|az://…|gs://…`: WAL read from an archive in object storage through the
//! library's reader (`pgwal::reader::Location::Object`): the archive is listed, and its
//! segments are fetched as reading reaches them, the next few in parallel ahead of it.
//!
//! With `--follow`, at the end of the WAL stored the archive is listed again every second from
//! the segment being read on (one listing request, a debug log line `pgwal::follow` each
//! time), and reading goes on with the objects that appeared, in any compression. The
//! receiver's partial objects (`--flush-to remote`: `SEGMENT.EEEEEEEEEEEEEEEE[.zst].partial`)
//! are read as the segment's `.partial`: the newest one up to its last complete record, then
//! from that record on the next partial object or the complete segment, so no record is
//! printed twice or skipped.

use std::path::Path;

use pgwal::reader::{Location, ReaderBuilder};

use crate::archive::object;

/// When `-p` names an object-store URL: the location to read, with the request settings from
/// the environment set on `b`. `None` for a path.
pub(crate) fn location(
    path: Option<&Path>,
    b: ReaderBuilder,
) -> anyhow::Result<(Option<Location>, ReaderBuilder)> {
    let Some(path) = path else {
        return Ok((None, b));
    };
    let Some(url) = crate::archive::object_url(path)? else {
        return Ok((None, b));
    };
    object::init_logging();
    let b = b.object_options(object::options_from_env()?);
    Ok((Some(Location::Object(url)), b))
}
