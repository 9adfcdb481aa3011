//! Storage: the one place that writes and reads pgwal's files at the byte level, below the
//! readers (`source`), the receiver and the archive, which use only this module for it.
//!
//! - [`local`]: durable writes in a local directory (fsync of files and directories, a file
//!   written under a temporary name and moved into place, create-only writes where identical
//!   content is kept and different content is a conflict, `RENAME_NOREPLACE`), with
//!   [`local::LocalError`] naming the path of every failure;
//! - [`temp`]: the one naming of temporary files, their removal on signals and the sweep of
//!   those a killed process left behind;
//! - [`codec`]: the one compression and decompression dispatcher (gzip, LZ4, zstd), and the
//!   sniffing of a file's method from its first bytes;
//! - [`probe`]: the one page-header sniffer (what the first page of a WAL file says);
//! - [`location`]: where an archive lives: a directory path or an object-store URL
//!   (`s3://`, `az://`, `gs://`);
//! - `object` (feature `object-store`): the object-store backend, `ObjectArchive`;
//!   `object_names`: the names of objects a directory archive does not have (the receiver's
//!   partial objects).
//!
//! Files are opened without following symbolic links and fresh ones created exclusively
//! (`file`, crate-internal).

pub mod codec;
// The receiver's helpers are unused in builds without it.
#[cfg_attr(not(feature = "receiver"), allow(dead_code))]
pub(crate) mod file;
pub mod local;
pub mod location;
#[cfg(feature = "object-store")]
pub mod object;
#[cfg(feature = "object-store")]
pub mod object_names;
pub mod probe;
pub mod temp;
