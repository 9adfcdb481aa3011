//! The object-store backend: an archive in S3 (and S3-compatible servers), Azure Blob Storage
//! or Google Cloud Storage, through the `object_store` crate.
//!
//! Objects are named `PREFIX/NAME` with the file names of a directory archive, so a directory
//! archive copied into a bucket is an archive here as is. [`ObjectArchive`] offers a blocking
//! API over its own small tokio runtime:
//!
//! - [`ObjectArchive::put_new`]: create-only (`PutMode::Create`: `If-None-Match: *` on S3 and
//!   GCS, `If-None-Match: *` on Azure); an existing object is reported, never replaced. Objects
//!   above [`ObjectOptions::multipart_threshold`] go up in parts (a multipart upload cannot be
//!   conditional, so it is preceded by a `HEAD` and its completion checked afterwards).
//! - [`ObjectArchive::get`], [`ObjectArchive::get_many`] (parallel), [`ObjectArchive::list`]
//!   (every page of the listing), [`ObjectArchive::delete_many`] (batched deletes).
//! - Every request has a timeout and is retried with exponential backoff on transport errors,
//!   timeouts and 5xx answers; each retry is logged (`tracing`, target `object_store`, level
//!   INFO). Errors are [`ObjectError`]s naming the URL and key, never a secret.
//!
//! Credentials and endpoints come from each cloud's standard environment (see
//! [`ObjectArchive::open`]).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjPath;
use object_store::{
    ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, RetryConfig,
    WriteMultipart,
};

use crate::storage::codec::{decompress_prefix, sniff_compression};
use crate::storage::location::{Cloud, ObjectUrl};

/// Request settings of an [`ObjectArchive`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ObjectOptions {
    /// Timeout of one request (connect to the end of the response body).
    pub timeout: Duration,
    /// Timeout of connecting.
    pub connect_timeout: Duration,
    /// Retries of a failed request (transport errors, timeouts, 5xx, 429).
    pub max_retries: usize,
    /// No retry starts later than this after the first attempt.
    pub retry_timeout: Duration,
    /// Objects larger than this are uploaded in parts (default 1 GiB, the largest WAL segment,
    /// so that every segment is stored with a conditional put; a multipart upload cannot be
    /// conditional and is only preceded by a `HEAD`).
    pub multipart_threshold: usize,
    /// Size of each part of a multipart upload.
    pub part_size: usize,
    /// Requests in flight at once in [`ObjectArchive::get_many`].
    pub concurrency: usize,
    /// `object_store` configuration keys for the URL's cloud (`aws_endpoint`,
    /// `aws_access_key_id`, `azure_storage_account_name`, `google_service_account`, …), applied
    /// after the environment: for embedders that do not configure through it. Values are
    /// never shown in errors.
    pub config: Vec<(String, String)>,
}

impl Default for ObjectOptions {
    fn default() -> Self {
        ObjectOptions {
            timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            max_retries: 5,
            retry_timeout: Duration::from_secs(120),
            multipart_threshold: 1 << 30,
            part_size: 16 << 20,
            concurrency: 8,
            config: Vec::new(),
        }
    }
}

/// Why an object-store operation failed. Every variant names the archive URL and, where there
/// is one, the object's key; none carries a credential.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    /// The store could not be set up (bad configuration, e.g. no region).
    #[error("archive \"{url}\": could not configure the object store: {reason}")]
    Config {
        /// The archive.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// No credentials were found and the instance metadata service is disabled.
    #[error("archive \"{url}\": no credentials ({hint})")]
    NoCredentials {
        /// The archive.
        url: String,
        /// Where credentials are looked for.
        hint: &'static str,
    },
    /// The object does not exist.
    #[error("archive \"{url}\": object \"{key}\" not found")]
    NotFound {
        /// The archive.
        url: String,
        /// The key.
        key: String,
    },
    /// The bucket or container does not exist.
    #[error("archive \"{url}\": bucket or container \"{bucket}\" does not exist (request for \"{key}\")")]
    NoBucket {
        /// The archive.
        url: String,
        /// The bucket or container.
        bucket: String,
        /// The key requested.
        key: String,
    },
    /// The store refused the credentials or the request (401/403).
    #[error("archive \"{url}\": access denied for \"{key}\" (check the credentials): {detail}")]
    Denied {
        /// The archive.
        url: String,
        /// The key.
        key: String,
        /// The store's answer.
        detail: String,
    },
    /// A create-only put found an object there already.
    #[error("archive \"{url}\": object \"{key}\" already exists")]
    AlreadyExists {
        /// The archive.
        url: String,
        /// The key.
        key: String,
    },
    /// Any other failure, after the retries.
    #[error("archive \"{url}\": {op} \"{key}\" failed: {detail}")]
    Request {
        /// The archive.
        url: String,
        /// What was being done (`get`, `put`, `list`, `delete`, `head`).
        op: &'static str,
        /// The key (the prefix for a listing).
        key: String,
        /// The error, with the store's answer.
        detail: String,
    },
}

impl ObjectError {
    /// True for [`ObjectError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, ObjectError::NotFound { .. })
    }
}

/// An object in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectEntry {
    /// The archive file name (the key without the prefix).
    pub name: String,
    /// Its size.
    pub size: u64,
}

/// Outcome of [`ObjectArchive::put_new`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutNew {
    /// The object was created.
    Created,
    /// An object of that name exists; nothing was written.
    AlreadyExists,
}

/// An archive in object storage.
pub struct ObjectArchive {
    url: ObjectUrl,
    display: String,
    store: Arc<dyn ObjectStore>,
    rt: tokio::runtime::Runtime,
    opts: ObjectOptions,
}

/// The one way each cloud's builder is finished: timeouts, `opts.config` (unknown keys refused,
/// the key named and the value never), retries, then the store.
trait StoreBuilder: Sized {
    /// The cloud's configuration key.
    type Key: std::str::FromStr;
    /// The key of a client (HTTP) setting.
    fn client_key(k: ClientConfigKey) -> Self::Key;
    /// Sets `key` to `value`.
    fn set(self, key: Self::Key, value: &str) -> Self;
    /// Sets the retry policy and builds the store.
    fn build_store(self, retry: RetryConfig) -> object_store::Result<Arc<dyn ObjectStore>>;
}

macro_rules! store_builder {
    ($builder:ty, $key:ty) => {
        impl StoreBuilder for $builder {
            type Key = $key;
            fn client_key(k: ClientConfigKey) -> $key {
                <$key>::Client(k)
            }
            fn set(self, key: $key, value: &str) -> Self {
                self.with_config(key, value)
            }
            fn build_store(self, retry: RetryConfig) -> object_store::Result<Arc<dyn ObjectStore>> {
                Ok(Arc::new(self.with_retry(retry).build()?))
            }
        }
    };
}

store_builder!(
    object_store::aws::AmazonS3Builder,
    object_store::aws::AmazonS3ConfigKey
);
store_builder!(
    object_store::azure::MicrosoftAzureBuilder,
    object_store::azure::AzureConfigKey
);
store_builder!(
    object_store::gcp::GoogleCloudStorageBuilder,
    object_store::gcp::GoogleConfigKey
);

fn finish<B: StoreBuilder>(
    mut b: B,
    opts: &ObjectOptions,
    url: &str,
    retry: RetryConfig,
) -> Result<Arc<dyn ObjectStore>, ObjectError> {
    let config = |reason: String| ObjectError::Config {
        url: url.to_owned(),
        reason,
    };
    b = b
        .set(
            B::client_key(ClientConfigKey::Timeout),
            &format!("{}ms", opts.timeout.as_millis()),
        )
        .set(
            B::client_key(ClientConfigKey::ConnectTimeout),
            &format!("{}ms", opts.connect_timeout.as_millis()),
        );
    if plain_http_endpoint(opts) {
        // No TLS to verify: loading the system's trust store (a few hundred files) would cost
        // every short-lived process (one restore_command call) tens of milliseconds.
        b = b.set(B::client_key(ClientConfigKey::NoSystemCertificates), "true");
    }
    for (k, v) in &opts.config {
        let key = k
            .to_ascii_lowercase()
            .parse::<B::Key>()
            .map_err(|_| config(format!("unknown configuration key \"{k}\"")))?;
        b = b.set(key, v);
    }
    b.build_store(retry).map_err(|e| config(e.to_string()))
}

impl fmt::Debug for ObjectArchive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectArchive")
            .field("url", &self.display)
            .finish_non_exhaustive()
    }
}

/// Credentials from the AWS shared credentials file (`AWS_SHARED_CREDENTIALS_FILE`, else
/// `~/.aws/credentials`), profile `AWS_PROFILE` (else `default`), and the region from the
/// config file (`AWS_CONFIG_FILE`, else `~/.aws/config`).
fn aws_shared_files() -> (HashMap<String, String>, Option<String>) {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned());
    let file = |var: &str, default: &str| -> Option<PathBuf> {
        std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| home.as_ref().map(|h| h.join(default)))
    };
    let creds = file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| ini_section(&t, &profile))
        .unwrap_or_default();
    let config_section = if profile == "default" {
        "default".to_owned()
    } else {
        format!("profile {profile}")
    };
    let region = file("AWS_CONFIG_FILE", ".aws/config")
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| ini_section(&t, &config_section).remove("region"));
    (creds, region)
}

/// The `key = value` lines of `[section]` in an INI text.
fn ini_section(text: &str, section: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') || line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                out.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
    }
    out
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

impl ObjectArchive {
    /// Connects to the archive at `url` with credentials and endpoint from the environment:
    ///
    /// - S3: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`
    ///   (or `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL` (S3-compatible servers; path-style
    ///   requests), `AWS_ALLOW_HTTP=true` (a plain-HTTP endpoint), then the shared credentials
    ///   file (`AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials`, profile `AWS_PROFILE`) and
    ///   `~/.aws/config`'s region, then web identity, container and instance metadata
    ///   credentials (the latter disabled by `AWS_EC2_METADATA_DISABLED=true`), and every other
    ///   `AWS_*` key `object_store` knows.
    /// - Azure: `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_KEY`,
    ///   `AZURE_STORAGE_USE_EMULATOR=true` with `AZURITE_BLOB_STORAGE_URL` (Azurite), the
    ///   `AZURE_CLIENT_*`/`AZURE_TENANT_ID` service principal, managed identity.
    /// - GCS: `GOOGLE_APPLICATION_CREDENTIALS` / `GOOGLE_SERVICE_ACCOUNT` (a service account
    ///   file), `GOOGLE_SERVICE_ACCOUNT_KEY`, application default credentials.
    pub fn open(url: &ObjectUrl, opts: &ObjectOptions) -> Result<ObjectArchive, ObjectError> {
        let display = url.to_string();
        // reqwest is built without a provider of its own: rustls' ring provider, as for the
        // replication client (an error only means one is installed already).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = |reason: String| ObjectError::Config {
            url: display.clone(),
            reason,
        };
        let retry = RetryConfig {
            max_retries: opts.max_retries,
            retry_timeout: opts.retry_timeout,
            ..RetryConfig::default()
        };
        let store: Arc<dyn ObjectStore> = match url.cloud {
            Cloud::S3 => {
                use object_store::aws::AmazonS3Builder;
                let mut b = AmazonS3Builder::from_env().with_bucket_name(&url.bucket);
                let configured =
                    |k: &str| opts.config.iter().any(|(c, _)| c.eq_ignore_ascii_case(k));
                let have_key = (env_set("AWS_ACCESS_KEY_ID") && env_set("AWS_SECRET_ACCESS_KEY"))
                    || (configured("aws_access_key_id") && configured("aws_secret_access_key"));
                let (file_creds, file_region) = aws_shared_files();
                let mut have_creds = have_key;
                if !have_key {
                    if let (Some(id), Some(secret)) = (
                        file_creds.get("aws_access_key_id"),
                        file_creds.get("aws_secret_access_key"),
                    ) {
                        b = b.with_access_key_id(id).with_secret_access_key(secret);
                        if let Some(t) = file_creds.get("aws_session_token") {
                            b = b.with_token(t);
                        }
                        have_creds = true;
                    }
                }
                if !env_set("AWS_REGION") && !env_set("AWS_DEFAULT_REGION") {
                    b = b.with_region(file_region.unwrap_or_else(|| "us-east-1".to_owned()));
                }
                let other_sources = env_set("AWS_WEB_IDENTITY_TOKEN_FILE")
                    || env_set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                    || env_set("AWS_CONTAINER_CREDENTIALS_FULL_URI");
                let imds_off = std::env::var("AWS_EC2_METADATA_DISABLED")
                    .is_ok_and(|v| v.eq_ignore_ascii_case("true"));
                if !have_creds && !other_sources && imds_off {
                    return Err(ObjectError::NoCredentials {
                        url: display,
                        hint: "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials; instance metadata is disabled by AWS_EC2_METADATA_DISABLED",
                    });
                }
                if env_set("AWS_ENDPOINT_URL")
                    || env_set("AWS_ENDPOINT")
                    || configured("aws_endpoint")
                {
                    // S3-compatible servers take path-style requests.
                    b = b.with_virtual_hosted_style_request(false);
                }
                finish(b, opts, &display, retry)?
            }
            Cloud::Azure => {
                use object_store::azure::MicrosoftAzureBuilder;
                let b = MicrosoftAzureBuilder::from_env().with_container_name(&url.bucket);
                finish(b, opts, &display, retry)?
            }
            Cloud::Gcs => {
                use object_store::gcp::GoogleCloudStorageBuilder;
                let mut b = GoogleCloudStorageBuilder::from_env().with_bucket_name(&url.bucket);
                if let Some(f) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS") {
                    b = b.with_application_credentials(f.to_string_lossy());
                }
                finish(b, opts, &display, retry)?
            }
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| config(format!("could not start the I/O runtime: {e}")))?;
        Ok(ObjectArchive {
            url: url.clone(),
            display,
            store,
            rt,
            opts: opts.clone(),
        })
    }

    /// The archive's URL.
    pub fn url(&self) -> &ObjectUrl {
        &self.url
    }

    /// The URL as text (`s3://bucket/prefix`).
    pub fn url_str(&self) -> &str {
        &self.display
    }

    fn path(&self, name: &str) -> ObjPath {
        ObjPath::from(self.url.key(name))
    }

    /// Maps an `object_store` error to an [`ObjectError`] for `op` on `key`.
    fn error(&self, op: &'static str, key: &str, e: object_store::Error) -> ObjectError {
        let url = self.display.clone();
        let key = key.to_owned();
        let detail = redact_queries(&error_chain(&e));
        let bucket_missing = [
            "NoSuchBucket",
            "ContainerNotFound",
            "The specified bucket does not exist",
        ]
        .iter()
        .any(|m| detail.contains(m));
        if bucket_missing {
            return ObjectError::NoBucket {
                url,
                bucket: self.url.bucket.clone(),
                key,
            };
        }
        match e {
            object_store::Error::NotFound { .. } => ObjectError::NotFound { url, key },
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => ObjectError::AlreadyExists { url, key },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => ObjectError::Denied {
                url,
                key,
                detail: short(&detail),
            },
            _ if detail.contains("403 Forbidden") || detail.contains("401 Unauthorized") => {
                ObjectError::Denied {
                    url,
                    key,
                    detail: short(&detail),
                }
            }
            _ => ObjectError::Request {
                url,
                op,
                key,
                detail: short(&detail),
            },
        }
    }

    /// Reads object `name` whole.
    pub fn get(&self, name: &str) -> Result<Bytes, ObjectError> {
        self.rt.block_on(self.get_async(name, None))
    }

    /// The WAL object `name` holds: its content decompressed as far as it decompresses (the
    /// method told by its first bytes); `None` when it does not exist. The one way an object
    /// is compared with other WAL (an upload's, another stored form's), with
    /// [`describe_difference`](crate::storage::local::describe_difference).
    pub fn get_wal(&self, name: &str) -> Result<Option<Vec<u8>>, ObjectError> {
        let raw = match self.get(name) {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let (wal, _) = decompress_prefix(sniff_compression(&raw), &raw, u64::MAX);
        Ok(Some(wal))
    }

    /// Reads the first `len` bytes of object `name` (fewer if it is shorter).
    pub fn get_head(&self, name: &str, len: u64) -> Result<Bytes, ObjectError> {
        self.rt.block_on(self.get_async(name, Some(len)))
    }

    /// The one GET: object `name` whole, or its first `len` bytes.
    async fn get_async(&self, name: &str, len: Option<u64>) -> Result<Bytes, ObjectError> {
        let path = self.path(name);
        let key = path.to_string();
        match len {
            None => tracing::debug!(target: "pgwal::object", "get {key}"),
            Some(l) => tracing::debug!(target: "pgwal::object", "get {key} (first {l} bytes)"),
        }
        let opts = object_store::GetOptions {
            range: len.map(|l| object_store::GetRange::Bounded(0..l)),
            ..Default::default()
        };
        let r = self
            .store
            .get_opts(&path, opts)
            .await
            .map_err(|e| self.error("get", &key, e))?;
        r.bytes().await.map_err(|e| self.error("get", &key, e))
    }

    /// Reads object `name` into `out` piece by piece as its bytes arrive (the object is never
    /// whole in memory) and returns its size. A failure of `out` is a [`ObjectError::Request`]
    /// naming the key and `what` (the local copy).
    pub fn get_into(
        &self,
        name: &str,
        out: &mut dyn io::Write,
        what: &dyn fmt::Display,
    ) -> Result<u64, ObjectError> {
        let path = self.path(name);
        let key = path.to_string();
        tracing::debug!(target: "pgwal::object", "get {key} (streamed)");
        self.rt.block_on(async {
            let r = self
                .store
                .get_opts(&path, object_store::GetOptions::default())
                .await
                .map_err(|e| self.error("get", &key, e))?;
            let mut body = r.into_stream();
            let mut n = 0u64;
            while let Some(chunk) = body
                .try_next()
                .await
                .map_err(|e| self.error("get", &key, e))?
            {
                out.write_all(&chunk).map_err(|e| ObjectError::Request {
                    url: self.display.clone(),
                    op: "get",
                    key: key.clone(),
                    detail: format!("could not write {what}: {e}"),
                })?;
                n += chunk.len() as u64;
            }
            Ok(n)
        })
    }

    /// Reads several objects, up to [`ObjectOptions::concurrency`] at once; each result in the
    /// order of `names`.
    pub fn get_many(&self, names: &[String]) -> Vec<Result<Bytes, ObjectError>> {
        self.get_many_async(names, None)
    }

    /// [`get_head`](Self::get_head) of several objects, up to
    /// [`ObjectOptions::concurrency`] at once; each result in the order of `names`.
    pub fn get_heads(&self, names: &[String], len: u64) -> Vec<Result<Bytes, ObjectError>> {
        self.get_many_async(names, Some(len))
    }

    fn get_many_async(
        &self,
        names: &[String],
        len: Option<u64>,
    ) -> Vec<Result<Bytes, ObjectError>> {
        self.rt.block_on(async {
            futures::stream::iter(names.iter().map(|n| self.get_async(n, len)))
                .buffered(self.opts.concurrency.max(1))
                .collect()
                .await
        })
    }

    /// The request settings the archive was opened with.
    pub fn options(&self) -> &ObjectOptions {
        &self.opts
    }

    /// Size of object `name`, `None` when absent.
    pub fn head(&self, name: &str) -> Result<Option<u64>, ObjectError> {
        let path = self.path(name);
        self.rt.block_on(self.head_async(&path))
    }

    /// Creates object `name` with `data` if no object of that name exists (never overwrites).
    pub fn put_new(&self, name: &str, data: Bytes) -> Result<PutNew, ObjectError> {
        let path = self.path(name);
        let key = path.to_string();
        tracing::debug!(target: "pgwal::object", "put {key}");
        self.rt.block_on(async {
            if data.len() > self.opts.multipart_threshold {
                if self.head_async(&path).await?.is_some() {
                    return Ok(PutNew::AlreadyExists);
                }
                let upload = self
                    .store
                    .put_multipart(&path)
                    .await
                    .map_err(|e| self.error("put", &key, e))?;
                let mut w = WriteMultipart::new_with_chunk_size(upload, self.opts.part_size);
                w.put(data);
                match w.finish().await {
                    Ok(_) => return Ok(PutNew::Created),
                    Err(e) => return Err(self.error("put", &key, e)),
                }
            }
            let opts = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            match self
                .store
                .put_opts(&path, PutPayload::from_bytes(data), opts)
                .await
            {
                Ok(_) => Ok(PutNew::Created),
                Err(
                    object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. },
                ) => Ok(PutNew::AlreadyExists),
                Err(e) => Err(self.error("put", &key, e)),
            }
        })
    }

    async fn head_async(&self, path: &ObjPath) -> Result<Option<u64>, ObjectError> {
        let key = path.to_string();
        tracing::debug!(target: "pgwal::object", "head {key}");
        match self.store.head(path).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.error("head", &key, e)),
        }
    }

    /// The one listing: objects directly under the prefix (all pages) from the first whose
    /// name sorts after `offset` (from the start without one), in name order, each passed to
    /// `take`: kept (`Continue(true)`), passed over (`Continue(false)`), or the end of the
    /// listing (`Break`). Objects in deeper "directories" are not archive files and are left
    /// out.
    fn list_with(
        &self,
        offset: Option<&str>,
        mut take: impl FnMut(&str) -> std::ops::ControlFlow<(), bool>,
    ) -> Result<Vec<ObjectEntry>, ObjectError> {
        let dir = (!self.url.prefix.is_empty()).then(|| ObjPath::from(self.url.prefix.as_str()));
        let key = self.url.key(offset.unwrap_or(""));
        tracing::debug!(target: "pgwal::object", "list {key}");
        let strip = if self.url.prefix.is_empty() {
            0
        } else {
            self.url.prefix.len() + 1
        };
        let mut out = self.rt.block_on(async {
            let offset = offset.map(|o| ObjPath::from(self.url.key(o)));
            let mut stream = match &offset {
                Some(o) => self.store.list_with_offset(dir.as_ref(), o),
                None => self.store.list(dir.as_ref()),
            };
            let mut out = Vec::new();
            while let Some(meta) = stream
                .try_next()
                .await
                .map_err(|e| self.error("list", &key, e))?
            {
                let full = meta.location.to_string();
                let name = full.get(strip..).unwrap_or_default();
                if name.contains('/') {
                    continue;
                }
                match take(name) {
                    std::ops::ControlFlow::Continue(true) => out.push(ObjectEntry {
                        name: name.to_owned(),
                        size: meta.size,
                    }),
                    std::ops::ControlFlow::Continue(false) => {}
                    std::ops::ControlFlow::Break(()) => break,
                }
            }
            Ok::<_, ObjectError>(out)
        })?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every object directly under the prefix whose name starts with `name_prefix` (all pages of
    /// the listing), sorted by name; one request for a short answer (the listing starts just
    /// before the name prefix).
    pub fn list(&self, name_prefix: &str) -> Result<Vec<ObjectEntry>, ObjectError> {
        let offset = just_before(name_prefix);
        self.list_with(offset.as_deref(), |name| {
            if name.starts_with(name_prefix) {
                std::ops::ControlFlow::Continue(true)
            } else if offset.is_some() && name > name_prefix {
                // Past the prefix: listings come in key order.
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(false)
            }
        })
    }

    /// Up to `max` objects directly under the prefix whose names sort after `after`, in name
    /// order (one listing request on S3 for up to 1000).
    pub fn list_after(&self, after: &str, max: usize) -> Result<Vec<ObjectEntry>, ObjectError> {
        self.list_from(after, false, max)
    }

    /// Up to `max` objects directly under the prefix whose names sort at (`inclusive`) or
    /// after `from`, in name order: one listing request on S3 for up to 1000.
    pub fn list_from(
        &self,
        from: &str,
        inclusive: bool,
        max: usize,
    ) -> Result<Vec<ObjectEntry>, ObjectError> {
        let offset = if inclusive {
            just_before(from)
        } else {
            Some(from.to_owned())
        };
        let mut n = 0;
        self.list_with(offset.as_deref(), |name| {
            if n >= max {
                return std::ops::ControlFlow::Break(());
            }
            let keep = name > from || (inclusive && name == from);
            n += usize::from(keep);
            std::ops::ControlFlow::Continue(keep)
        })
    }

    /// Deletes the named objects in batches (S3 `DeleteObjects`, Azure blob batches) and
    /// returns how many were deleted (an object already gone counts as deleted).
    pub fn delete_many(&self, names: &[String]) -> Result<usize, ObjectError> {
        let mut n = 0;
        for batch in names.chunks(delete_batch(self.url.cloud)) {
            n += self.delete_batch(batch)?;
        }
        Ok(n)
    }

    /// One batch of deletes: one request on S3 (`DeleteObjects`) and Azure (a blob batch).
    fn delete_batch(&self, names: &[String]) -> Result<usize, ObjectError> {
        tracing::debug!(target: "pgwal::object", "delete batch of {} keys", names.len());
        let paths: Vec<object_store::Result<ObjPath>> =
            names.iter().map(|n| Ok(self.path(n))).collect();
        self.rt.block_on(async {
            let mut n = 0;
            let mut s = self
                .store
                .delete_stream(futures::stream::iter(paths).boxed());
            while let Some(r) = s.next().await {
                match r {
                    Ok(_) => n += 1,
                    // Already gone: the goal is reached.
                    Err(object_store::Error::NotFound { .. }) => n += 1,
                    Err(e) => {
                        let key = match &e {
                            object_store::Error::NotFound { path, .. }
                            | object_store::Error::PermissionDenied { path, .. }
                            | object_store::Error::Unauthenticated { path, .. } => path.clone(),
                            _ => self.url.key("*"),
                        };
                        return Err(self.error("delete", &key, e));
                    }
                }
            }
            Ok(n)
        })
    }
}

/// Whether the store's endpoint is set, in the environment or `opts.config`, to a plain
/// `http://` URL (an S3-compatible server or Azurite on a private network): then no
/// certificate is ever checked.
fn plain_http_endpoint(opts: &ObjectOptions) -> bool {
    const KEYS: [&str; 5] = [
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT",
        "AZURITE_BLOB_STORAGE_URL",
        "AZURE_STORAGE_ENDPOINT",
        "GOOGLE_STORAGE_URL",
    ];
    // Credentials fetched over HTTPS from elsewhere (STS, Entra ID, Google OAuth) still need
    // the trust store.
    const TLS_CREDENTIALS: [&str; 7] = [
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AZURE_CLIENT_ID",
        "AZURE_FEDERATED_TOKEN_FILE",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GOOGLE_SERVICE_ACCOUNT",
    ];
    if TLS_CREDENTIALS.iter().any(|k| env_set(k)) {
        return false;
    }
    let http = |v: &str| v.trim().to_ascii_lowercase().starts_with("http://");
    let from_env = KEYS
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .any(|v| http(&v));
    let from_config = opts.config.iter().any(|(k, v)| {
        KEYS.iter().any(|e| e.eq_ignore_ascii_case(k))
            || ["aws_endpoint", "azure_storage_endpoint", "endpoint"]
                .iter()
                .any(|e| e.eq_ignore_ascii_case(k))
    } && http(v));
    from_env || from_config
}

/// Keys deleted in one request at most: S3's `DeleteObjects` takes 1,000, an Azure blob batch
/// 256; GCS has no batch delete in the client (its deletes run in parallel).
fn delete_batch(cloud: Cloud) -> usize {
    match cloud {
        Cloud::S3 => 1000,
        Cloud::Azure => 256,
        Cloud::Gcs => 100,
    }
}

/// A name that sorts before `name` and after every other name that does not start with it,
/// among names of ASCII letters, digits and `.`/`-`/`_` (archive file names): `name` with its
/// last character lowered by one and `~` appended. `None` for an empty name.
fn just_before(name: &str) -> Option<String> {
    let last = *name.as_bytes().last()?;
    if !last.is_ascii() || last == 0 {
        return None;
    }
    let mut s = name[..name.len() - 1].to_owned();
    s.push(char::from(last - 1));
    s.push('~');
    Some(s)
}

/// The error and its sources, joined by ": ".
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// `text` with the query string of every URL in it replaced by `?…`: a query may carry a
/// credential (an Azure SAS token, a presigned URL's signature).
fn redact_queries(text: &str) -> String {
    text.split(' ')
        .map(|w| match w.split_once('?') {
            Some((base, _)) if w.starts_with("http://") || w.starts_with("https://") => {
                format!("{base}?…")
            }
            _ => w.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A store's answer cut to a readable length.
fn short(s: &str) -> String {
    const MAX: usize = 600;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections() {
        let t = "[default]\naws_access_key_id = A\n# c\n[other]\naws_access_key_id=B\naws_secret_access_key = S\n";
        assert_eq!(
            ini_section(t, "default").get("aws_access_key_id").unwrap(),
            "A"
        );
        let o = ini_section(t, "other");
        assert_eq!(
            (
                o["aws_access_key_id"].as_str(),
                o["aws_secret_access_key"].as_str()
            ),
            ("B", "S")
        );
        assert!(ini_section(t, "none").is_empty());
    }

    #[test]
    fn urls_lose_their_query_strings() {
        let t = "Error performing GET https://a.blob.core.windows.net/c/k?sv=1&sig=SECRET in 1s";
        let r = redact_queries(t);
        assert!(!r.contains("SECRET"), "{r}");
        assert!(
            r.contains("https://a.blob.core.windows.net/c/k?… in 1s"),
            "{r}"
        );
    }

    /// A prefix's listing starts just before it: every name starting with it comes after the
    /// offset, and the forms of the segment before it do not.
    #[test]
    fn listing_offsets_sort_just_before_the_prefix() {
        let p = "000000010000000000000010";
        let b = just_before(p).unwrap();
        assert!(b.as_str() < p);
        for before in [
            "00000001000000000000000F",
            "00000001000000000000000F.zst",
            "00000001000000000000000F.gz.partial",
            "00000001000000000000000F.00000028.backup",
        ] {
            assert!(before < b.as_str(), "{before}");
        }
        for after in [
            p,
            "000000010000000000000010.lz4",
            "000000010000000000000010.partial",
        ] {
            assert!(after > b.as_str(), "{after}");
        }
        assert_eq!(just_before(""), None);
    }

    #[test]
    fn short_cuts_at_char_boundaries() {
        let s = "é".repeat(400);
        assert!(short(&s).ends_with('…'));
        assert_eq!(short("abc"), "abc");
    }
}
