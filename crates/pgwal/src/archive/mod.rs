//! A WAL archive in a directory: the layout `pgwal archive` and `pgwal receive` share, and the
//! operations on it.
//!
//! # Layout
//!
//! A flat directory of files named as PostgreSQL names them:
//!
//! | file | meaning |
//! | --- | --- |
//! | `TTTTTTTTXXXXXXXXYYYYYYYY` | a complete segment |
//! | `…` + `.gz` / `.lz4` / `.zst` | a complete segment, compressed (gzip members, LZ4 frames or zstd frames, possibly several concatenated) |
//! | `…[.gz/.lz4/.zst].partial` | an incomplete segment: the parent timeline's last segment at a promotion, or the segment a receiver is writing |
//! | `TTTTTTTT.history` | a timeline history file, stored uncompressed |
//! | `…YYYYYYYY.OOOOOOOO.backup` | a backup history file, stored uncompressed |
//! | `.pgwal-tmp.<name>.<pid>.<stamp>` | a file being written (see [`crate::storage::temp`]; removed on signals and, when left by a killed process, by the next `push`/`fetch` or `receive`: [`remove_stale_temp_files`](crate::storage::temp::remove_stale_temp_files)) |
//!
//! Every file appears under its final name only when complete and durable
//! ([`write_new`](crate::storage::local::write_new): temporary file, fsync, link into place, or where `link()` fails
//! rename with `RENAME_NOREPLACE`, fsync of the directory), and an archived file is never
//! overwritten. Complete segments are immutable and may be memory-mapped; every other file
//! (a `.partial` a receiver may rewrite, history files) is read with `read()`.
//!
//! # Operations
//!
//! - [`push`]: `archive_command` (checks, compresses, stores; idempotent).
//! - [`fetch`]: `restore_command` (finds, decompresses, checks, writes atomically).
//! - [`plan_cleanup`] / [`execute_cleanup`]: pg_archivecleanup's rules.
//! - [`verify()`]: decodes everything and reports gaps, damage and timeline inconsistencies.
//! - [`status`]: per-timeline summary.
//! - `remote` (feature `object-store`): the same on an archive in object storage; `twins`:
//!   a segment stored there in several forms, settled to one.

pub mod cleanup;
mod compress;
mod fetch;
mod listing;
mod push;
#[cfg(feature = "object-store")]
pub mod remote;
mod status;
#[cfg(feature = "object-store")]
pub mod twins;
pub mod verify;

pub use cleanup::{execute_cleanup, plan_cleanup, CleanupError, CleanupOptions, CleanupPlan};
pub use compress::{
    decompress_fast, read_all, CompressionSpec, ParseCompressionError, DEFAULT_GZIP_LEVEL,
    DEFAULT_ZSTD_LEVEL,
};
pub use fetch::{fetch, FetchError, FetchOptions, FetchOutcome};
pub use listing::{existing_variants, name_variants, other_files, temp_files, TempEntry};
pub use push::{
    archive_identity, check_segment, push, PushError, PushOptions, PushOutcome, SegmentCheckError,
};
pub use status::{status, status_listing, ArchiveStatus, TimelineStatus};
pub use verify::{
    verify, verify_listing, Problem, ProblemKind, Severity, TimelineSummary, VerifyProgress,
    VerifyReport,
};
