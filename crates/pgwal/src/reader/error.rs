//! [`ReaderError`]: why a [`WalReader`](super::WalReader) or [`WalStream`](super::WalStream)
//! could not be opened or read.

use std::io;
use std::path::PathBuf;

use crate::lsn::Lsn;
use crate::source::SourceError;
use crate::storage::codec::DecompressError;
use crate::storage::probe::ProbeError;
use crate::wal::WalError;

/// Why WAL could not be opened or read. Each variant names the file, segment or LSN concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReaderError {
    /// A WAL file could not be listed, read, decompressed or decoded (corrupt WAL, as opposed
    /// to its end, is [`SourceError::Corrupt`] with the file and the LSN).
    #[error(transparent)]
    Source(#[from] SourceError),
    /// None of the directories searched holds the start segment.
    #[error("could not locate WAL file \"{name}\"")]
    FileNotFound {
        /// The segment's file name.
        name: String,
        /// The directories searched.
        searched: Vec<PathBuf>,
    },
    /// None of the directories searched holds a WAL segment.
    #[error("could not find any WAL file")]
    NoWalFiles {
        /// The directories searched.
        searched: Vec<PathBuf>,
    },
    /// The end segment is not in the directory of the start segment.
    #[error("could not open file \"{name}\"")]
    EndFileNotFound {
        /// The end segment's file name.
        name: String,
    },
    /// A start or end segment name is not a WAL segment's name.
    #[error("invalid WAL file name \"{name}\"")]
    BadFileName {
        /// The name.
        name: String,
    },
    /// The end segment comes before the start segment.
    #[error("end segment \"{end}\" is before start segment \"{start}\"")]
    EndBeforeStart {
        /// The start segment's name.
        start: String,
        /// The end segment's name.
        end: String,
    },
    /// The start LSN is not inside the start segment.
    #[error("start WAL location {start} is not inside file \"{file}\"")]
    StartOutsideFile {
        /// The start LSN.
        start: Lsn,
        /// The start segment's name.
        file: String,
    },
    /// The end LSN is neither inside the end segment nor at its end.
    #[error("end WAL location {end} is not inside file \"{file}\"")]
    EndOutsideFile {
        /// The end LSN.
        end: Lsn,
        /// The end segment's name (the start segment's when no end segment was named).
        file: String,
    },
    /// The first bytes of a WAL file could not be read.
    #[error("could not read \"{}\": {error}", path.display())]
    Head {
        /// The file.
        path: PathBuf,
        /// The error.
        error: io::Error,
    },
    /// A file does not begin with the long page header of a WAL segment.
    #[error("WAL file \"{}\": {error}", path.display())]
    NotWal {
        /// The file.
        path: PathBuf,
        /// What is wrong with its first page.
        error: ProbeError,
    },
    /// A tar archive could not be read.
    #[error(transparent)]
    Tar(#[from] crate::tar::TarError),
    /// A location that is neither a path nor a valid archive URL.
    #[error(transparent)]
    Location(#[from] crate::storage::location::LocationError),
    /// An archive URL, in a build without the feature `object-store`.
    #[error("archive \"{url}\": this build of pgwal has no object-store support")]
    NoObjectStore {
        /// The URL.
        url: String,
    },
    /// An archive in object storage could not be opened or listed (the error names the URL).
    #[cfg(feature = "object-store")]
    #[error(transparent)]
    Object(#[from] crate::storage::object::ObjectError),
    /// Reading a stream failed.
    #[error(transparent)]
    StreamRead(io::Error),
    /// A compressed stream could not be decompressed.
    #[error("{name}: {error}")]
    StreamDecompress {
        /// The stream's name ([`ReaderBuilder::stream_name`](super::ReaderBuilder::stream_name)).
        name: String,
        /// What went wrong.
        error: DecompressError,
    },
    /// A stream does not begin with the long page header of a WAL segment.
    #[error("{name}: {error}")]
    StreamNotWal {
        /// The stream's name.
        name: String,
        /// What is wrong with its first page.
        error: ProbeError,
    },
    /// A stream begins in the middle of a segment.
    #[error("{name} does not start at a segment boundary (page address {pageaddr})")]
    StreamNotAtSegmentStart {
        /// The stream's name.
        name: String,
        /// The address of its first page.
        pageaddr: Lsn,
    },
    /// Corrupt WAL (not merely its end) in a stream.
    #[error("{name}: {error}")]
    StreamCorrupt {
        /// The stream's name.
        name: String,
        /// The decoder's error, with its LSN.
        error: WalError,
    },
}
