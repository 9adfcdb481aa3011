//! An archive location: a plain directory path, or an object-store URL
//! (`s3://BUCKET/PREFIX`, `az://CONTAINER/PREFIX`, `gs://BUCKET/PREFIX`).

use std::fmt;
use std::path::PathBuf;

/// The cloud of an [`ObjectUrl`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cloud {
    /// AWS S3 and S3-compatible servers (`s3://`).
    S3,
    /// Azure Blob Storage (`az://`).
    Azure,
    /// Google Cloud Storage (`gs://`).
    Gcs,
}

impl Cloud {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            Cloud::S3 => "s3",
            Cloud::Azure => "az",
            Cloud::Gcs => "gs",
        }
    }
}

/// An archive in object storage: cloud, bucket (or container) and key prefix. Objects are named
/// `PREFIX/NAME` with the file names of a directory archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectUrl {
    /// Which cloud.
    pub cloud: Cloud,
    /// The bucket (S3, GCS) or container (Azure).
    pub bucket: String,
    /// The key prefix, without leading or trailing `/` (empty: the bucket's root).
    pub prefix: String,
}

impl ObjectUrl {
    /// The key of archive file `name`.
    pub fn key(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

impl fmt::Display for ObjectUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.cloud.scheme(), self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

/// Where an archive lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A local directory.
    Dir(PathBuf),
    /// An object store.
    Object(ObjectUrl),
}

/// Why [`Location::parse`] refused a location.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LocationError {
    /// A URL scheme that is not `s3`, `az` or `gs`.
    #[error("unsupported archive URL scheme \"{0}://\" (use s3://, az:// or gs://, or a directory path)")]
    Scheme(String),
    /// No bucket or container name.
    #[error("archive URL \"{0}\" names no bucket or container")]
    NoBucket(String),
    /// A bucket name or prefix that is not allowed.
    #[error("archive URL \"{url}\": {reason}")]
    Invalid {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl Location {
    /// Parses `s`: `SCHEME://BUCKET[/PREFIX]` for an object store, anything without `://` as a
    /// directory path (so plain paths keep meaning what they meant).
    pub fn parse(s: &str) -> Result<Location, LocationError> {
        let Some((scheme, rest)) = s.split_once("://") else {
            return Ok(Location::Dir(PathBuf::from(s)));
        };
        let cloud = match scheme {
            "s3" | "s3a" => Cloud::S3,
            "az" | "azure" | "abfs" => Cloud::Azure,
            "gs" | "gcs" => Cloud::Gcs,
            other => return Err(LocationError::Scheme(other.to_owned())),
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(LocationError::NoBucket(s.to_owned()));
        }
        if bucket.contains(['?', '#', '@']) || prefix.contains(['?', '#']) {
            return Err(LocationError::Invalid {
                url: s.to_owned(),
                reason: "query strings, fragments and credentials do not belong in the URL (use the environment)",
            });
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
            && !prefix.is_empty()
        {
            return Err(LocationError::Invalid {
                url: s.to_owned(),
                reason: "the prefix has an empty, \".\" or \"..\" component",
            });
        }
        Ok(Location::Object(ObjectUrl {
            cloud,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        }))
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Dir(d) => write!(f, "{}", d.display()),
            Location::Object(u) => write!(f, "{u}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_paths() {
        assert_eq!(
            Location::parse("/var/lib/archive").unwrap(),
            Location::Dir(PathBuf::from("/var/lib/archive"))
        );
        assert_eq!(
            Location::parse("relative/dir").unwrap(),
            Location::Dir(PathBuf::from("relative/dir"))
        );
        let u = Location::parse("s3://wal/db1/main/").unwrap();
        assert_eq!(
            u,
            Location::Object(ObjectUrl {
                cloud: Cloud::S3,
                bucket: "wal".into(),
                prefix: "db1/main".into()
            })
        );
        assert_eq!(u.to_string(), "s3://wal/db1/main");
        let Location::Object(o) = Location::parse("az://c").unwrap() else {
            panic!()
        };
        assert_eq!((o.cloud, o.key("X")), (Cloud::Azure, "X".to_owned()));
        let Location::Object(o) = Location::parse("gs://b/p").unwrap() else {
            panic!()
        };
        assert_eq!(
            o.key("000000010000000000000001"),
            "p/000000010000000000000001"
        );
    }

    #[test]
    fn refuses_bad_urls() {
        assert!(matches!(
            Location::parse("ftp://x/y"),
            Err(LocationError::Scheme(_))
        ));
        assert!(matches!(
            Location::parse("s3:///p"),
            Err(LocationError::NoBucket(_))
        ));
        assert!(matches!(
            Location::parse("s3://b/a//c"),
            Err(LocationError::Invalid { .. })
        ));
        assert!(matches!(
            Location::parse("s3://b/../c"),
            Err(LocationError::Invalid { .. })
        ));
        assert!(matches!(
            Location::parse("s3://key:secret@b/p"),
            Err(LocationError::Invalid { .. })
        ));
    }
}
