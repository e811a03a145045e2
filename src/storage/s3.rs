//! Attachments in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW, ...) through the
//! `object_store` crate. Chosen by `ATTACHMENT_STORE=s3://bucket/prefix`; see
//! docs/operations.md.
//!
//! The `BlobStore` trait is synchronous (its callers are on the blocking pool or in a
//! command-line run), `object_store` is async: every call runs as a task on a small
//! runtime of this store's own and the caller waits for its answer on a plain channel.
//! That works from any thread and never drives one runtime from inside another.
//!
//! Keys: a blob `k` is the object `<prefix>/blobs/<k>` (`k` is `sha256/ab/cd/<hex>`, or
//! an attachment id for blobs stored before content keys). Uploads are multipart uploads
//! to `<prefix>/tmp/<uuid>`, which S3 shows only once completed; `commit` then copies
//! the object to its key (a server-side copy) and removes the temporary one. An upload
//! dropped before that is aborted. Blobs are listed and swept only under
//! `<prefix>/blobs/`, leftovers of a stopped node under `<prefix>/tmp/`.

use std::future::Future;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart};

use super::{BlobStore, BlobWriter};
use crate::error::AppError;

/// Where the bucket is and how to sign in to it. From `ATTACHMENT_STORE` and the usual
/// `AWS_*` variables; secrets also from `AWS_SECRET_ACCESS_KEY_FILE` (compose secrets).
#[derive(Clone)]
pub struct ObjectStoreConfig {
    pub bucket: String,
    /// Path inside the bucket, without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// `AWS_ENDPOINT_URL`: the server (MinIO, ...); AWS's own from the region if unset.
    pub endpoint: Option<String>,
    /// `AWS_REGION` (or `AWS_DEFAULT_REGION`); `us-east-1` if unset (MinIO ignores it).
    pub region: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// `AWS_ALLOW_HTTP`: a plain `http://` endpoint (loopback tests); https only by default.
    pub allow_http: bool,
}

// The secret stays out of logs and panics.
impl std::fmt::Debug for ObjectStoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStoreConfig")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("allow_http", &self.allow_http)
            .finish_non_exhaustive()
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A secret from `NAME_FILE` (a compose or systemd secret) or else `NAME`.
fn secret(name: &str) -> Result<Option<String>, AppError> {
    match var(&format!("{name}_FILE")) {
        Some(path) => std::fs::read_to_string(&path)
            .map(|s| Some(s.trim().to_string()))
            .map_err(|e| AppError::Config(format!("{name}_FILE {path}: {e}"))),
        None => Ok(var(name)),
    }
}

impl ObjectStoreConfig {
    /// `None` when `ATTACHMENT_STORE` is unset (attachments on the local disk).
    pub fn from_env() -> Result<Option<ObjectStoreConfig>, AppError> {
        let Some(url) = var("ATTACHMENT_STORE") else {
            return Ok(None);
        };
        let (bucket, prefix) = Self::parse_url(&url)?;
        let allow_http = match var("AWS_ALLOW_HTTP").as_deref() {
            None => false,
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(other) => {
                return Err(AppError::Config(format!(
                    "AWS_ALLOW_HTTP={other}: expected true or false"
                )))
            }
        };
        let endpoint = var("AWS_ENDPOINT_URL").or_else(|| var("AWS_ENDPOINT"));
        if let Some(e) = &endpoint {
            if !allow_http && !e.starts_with("https://") {
                return Err(AppError::Config(format!(
                    "AWS_ENDPOINT_URL={e}: attachments would cross the network in clear; \
                     use https:// (AWS_ALLOW_HTTP=true only for loopback or a private \
                     network no one else is on)"
                )));
            }
        }
        Ok(Some(ObjectStoreConfig {
            bucket,
            prefix,
            endpoint,
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            access_key_id: secret("AWS_ACCESS_KEY_ID")?,
            secret_access_key: secret("AWS_SECRET_ACCESS_KEY")?,
            session_token: secret("AWS_SESSION_TOKEN")?,
            allow_http,
        }))
    }

    /// `s3://bucket/prefix` into its bucket and prefix; any other scheme is refused.
    pub fn parse_url(url: &str) -> Result<(String, String), AppError> {
        let bad = |why: &str| {
            AppError::Config(format!(
                "ATTACHMENT_STORE={url}: {why} (expected s3://bucket/prefix)"
            ))
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| bad("only S3-compatible stores (s3://) are supported"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
        if !bucket_ok {
            return Err(bad("not a valid bucket name"));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|s| s == "." || s == ".." || (s.is_empty() && !prefix.is_empty()))
        {
            return Err(bad("the prefix has an empty, `.` or `..` segment"));
        }
        Ok((bucket.to_string(), prefix.to_string()))
    }

    /// The store's address for messages (no credentials).
    pub fn describe(&self) -> String {
        format!(
            "s3://{}/{} at {}",
            self.bucket,
            self.prefix,
            self.endpoint.as_deref().unwrap_or("AWS")
        )
    }
}

/// How long one request may take, and how long retries of a failing one may go on: an
/// upload's or download's request waits on the store, never beyond these.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_TIMEOUT: Duration = Duration::from_secs(20);
/// Multipart part size (S3's least but for the last part) and parts in flight: an
/// upload holds at most `PART_SIZE * (1 + PARTS_IN_FLIGHT)` bytes in memory.
const PART_SIZE: usize = 5 * 1024 * 1024;
const PARTS_IN_FLIGHT: usize = 1;

/// The runtime the store's requests run on. Shut down in the background when the store
/// is dropped (dropping a runtime inside another one's task would panic).
struct Runtime(Option<tokio::runtime::Runtime>);

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

pub struct S3Store {
    store: Arc<dyn ObjectStore>,
    blobs: ObjectPath,
    tmp: ObjectPath,
    where_: String,
    rt: Arc<Runtime>,
}

/// Runs `fut` on the store's runtime and waits for its answer.
fn wait<F>(rt: &Runtime, fut: F) -> Result<F::Output, AppError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let rt =
        rt.0.as_ref()
            .ok_or_else(|| AppError::internal("object store runtime stopped"))?;
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .map_err(|_| AppError::internal("object store request abandoned"))
}

/// The store failed (unreachable, a 5xx, a timeout, refused credentials): 503, so that
/// clients retry later; the request's transaction is rolled back with it.
fn store_error(what: &str, e: object_store::Error) -> AppError {
    AppError::StoreUnavailable(format!(
        "attachment store, {what}: {}",
        first_line(&e.to_string())
    ))
}

impl S3Store {
    /// Connects to the bucket and checks, once, that it answers and that the credentials
    /// may list and write under the prefix: a node with a wrong configuration refuses to
    /// start instead of failing its first upload.
    pub fn open(config: &ObjectStoreConfig) -> Result<S3Store, AppError> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_allow_http(config.allow_http)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(config.allow_http)
                    .with_timeout(REQUEST_TIMEOUT)
                    .with_connect_timeout(CONNECT_TIMEOUT),
            )
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: RETRY_TIMEOUT,
                ..RetryConfig::default()
            });
        if let Some(e) = &config.endpoint {
            // MinIO and most other servers are addressed by path, not by bucket host.
            builder = builder
                .with_endpoint(e)
                .with_virtual_hosted_style_request(false);
        }
        if let Some(k) = &config.access_key_id {
            builder = builder.with_access_key_id(k);
        }
        if let Some(s) = &config.secret_access_key {
            builder = builder.with_secret_access_key(s);
        }
        if let Some(t) = &config.session_token {
            builder = builder.with_token(t);
        }
        let where_ = config.describe();
        let store: Arc<dyn ObjectStore> = Arc::new(
            builder
                .build()
                .map_err(|e| AppError::Config(format!("ATTACHMENT_STORE {where_}: {e}")))?,
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("object-store")
            .enable_all()
            .build()
            .map_err(|e| AppError::Config(format!("object store runtime: {e}")))?;
        let prefix = ObjectPath::from(config.prefix.as_str());
        let s3 = S3Store {
            store,
            blobs: prefix.clone().join("blobs"),
            tmp: prefix.clone().join("tmp"),
            where_,
            rt: Arc::new(Runtime(Some(rt))),
        };
        s3.check()?;
        Ok(s3)
    }

    /// Lists under the prefix and writes (then removes) a small probe object.
    fn check(&self) -> Result<(), AppError> {
        let store = self.store.clone();
        let probe = self.blobs.clone().join("probe-start-up");
        let blobs = self.blobs.clone();
        let result = wait(&self.rt, async move {
            store.list(Some(&blobs)).next().await.transpose()?;
            store.put(&probe, "ok".into()).await?;
            store.delete(&probe).await
        })?;
        result.map_err(|e| match e {
            // 401/403 (S3's AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch): the
            // store answers but not to these keys. A listing's refusal comes as a generic
            // error whose text has the status.
            e if credentials_refused(&e) => AppError::Config(format!(
                "ATTACHMENT_STORE {}: the store refused the credentials ({}); check \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or its _FILE), and that this \
                 key may list, write and delete under the prefix",
                self.where_,
                first_line(&e.to_string())
            )),
            e => AppError::Config(format!(
                "ATTACHMENT_STORE {}: the bucket cannot be used ({}); check the bucket name, \
                 AWS_ENDPOINT_URL, AWS_REGION and the credentials",
                self.where_,
                first_line(&e.to_string())
            )),
        })
    }

    fn object(&self, key: &str) -> Result<ObjectPath, AppError> {
        super::check_key(key)?;
        Ok(key.split('/').fold(self.blobs.clone(), |p, s| p.join(s)))
    }

    /// Every object under `under` with its time.
    fn list_under(&self, under: &ObjectPath) -> Result<Vec<object_store::ObjectMeta>, AppError> {
        let store = self.store.clone();
        let under = under.clone();
        wait(&self.rt, async move {
            let mut out = Vec::new();
            let mut listing = store.list(Some(&under));
            while let Some(meta) = listing.next().await {
                out.push(meta?);
            }
            Ok::<_, object_store::Error>(out)
        })?
        .map_err(|e| store_error("list", e))
    }

    /// Every committed blob with its key and time.
    fn list(&self) -> Result<Vec<(String, SystemTime)>, AppError> {
        Ok(self
            .list_under(&self.blobs)?
            .into_iter()
            .filter_map(|m| {
                let key = m
                    .location
                    .prefix_match(&self.blobs)?
                    .map(|p| p.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/");
                let at = SystemTime::from(m.last_modified);
                // Only what `object` would name: a stray object is none of ours.
                (self.object(&key).ok()? == m.location).then_some((key, at))
            })
            .collect())
    }

    /// Removes one object; gone already is fine.
    fn delete(&self, path: ObjectPath) -> Result<(), AppError> {
        let store = self.store.clone();
        match wait(&self.rt, async move { store.delete(&path).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("removing", e)),
        }
    }
}

/// Whether the store answered 401 or 403: it is there, but not for these credentials.
fn credentials_refused(e: &object_store::Error) -> bool {
    if matches!(
        e,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. }
    ) {
        return true;
    }
    let text = e.to_string();
    [
        "403 Forbidden",
        "401 Unauthorized",
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
    ]
    .iter()
    .any(|s| text.contains(s))
}

/// The first line of an error, whose full text can run to a page of XML.
fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect()
}

impl BlobStore for S3Store {
    fn create(&self) -> Result<Box<dyn BlobWriter>, AppError> {
        let tmp = self
            .tmp
            .clone()
            .join(uuid::Uuid::new_v4().simple().to_string());
        let store = self.store.clone();
        let path = tmp.clone();
        let upload = wait(&self.rt, async move { store.put_multipart(&path).await })?
            .map_err(|e| store_error("starting an upload", e))?;
        Ok(Box::new(S3Writer {
            upload: Some(WriteMultipart::new_with_chunk_size(upload, PART_SIZE)),
            rt: self.rt.clone(),
            store: self.store.clone(),
            tmp,
            blobs: self.blobs.clone(),
        }))
    }

    fn path(&self, _key: &str) -> Result<Option<std::path::PathBuf>, AppError> {
        Ok(None)
    }

    fn open(&self, key: &str) -> Result<(Box<dyn Read + Send>, u64), AppError> {
        let path = self.object(key)?;
        let store = self.store.clone();
        let got = wait(&self.rt, async move { store.get(&path).await })?;
        let got = match got {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(AppError::AttachmentDamaged(format!("blob {key}: missing")))
            }
            Err(e) => return Err(store_error("reading", e)),
        };
        let size = got.meta.size;
        // A task moves the body into a small channel: at most a few chunks in memory.
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
        let rt = self
            .rt
            .0
            .as_ref()
            .ok_or_else(|| AppError::internal("object store runtime stopped"))?;
        rt.spawn(async move {
            let mut body = got.into_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(std::io::Error::other);
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok((
            Box::new(S3Reader {
                rx,
                current: bytes::Bytes::new(),
                _rt: self.rt.clone(),
            }),
            size,
        ))
    }

    fn is_empty(&self) -> Result<bool, AppError> {
        Ok(self.list()?.is_empty())
    }

    fn remove_parts(&self, before: SystemTime) -> Result<usize, AppError> {
        // Unfinished multipart uploads are aborted when their writer is dropped; those a
        // killed process left are invisible and expire by the bucket's lifecycle rule
        // (AbortIncompleteMultipartUpload, docs/operations.md): object_store cannot list
        // them. A completed temporary object that a stopped node did not get to copy to
        // its key is listed under `tmp/` and removed here.
        let mut removed = 0;
        for meta in self.list_under(&self.tmp)? {
            if SystemTime::from(meta.last_modified) < before {
                self.delete(meta.location)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn committed_before(&self, before: SystemTime) -> Result<Vec<String>, AppError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|(_, at)| *at < before)
            .map(|(key, _)| key)
            .collect())
    }

    fn remove(&self, key: &str, before: SystemTime) -> Result<bool, AppError> {
        let path = self.object(key)?;
        let store = self.store.clone();
        let head = path.clone();
        let meta = match wait(&self.rt, async move { store.head(&head).await })? {
            Ok(meta) => meta,
            Err(object_store::Error::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(store_error("reading", e)),
        };
        // Copied to again since (the same content uploaded anew): kept for its new row.
        if SystemTime::from(meta.last_modified) >= before {
            return Ok(false);
        }
        self.delete(path)?;
        Ok(true)
    }
}

struct S3Writer {
    upload: Option<WriteMultipart>,
    rt: Arc<Runtime>,
    store: Arc<dyn ObjectStore>,
    /// Where the upload goes before it is copied to its key.
    tmp: ObjectPath,
    blobs: ObjectPath,
}

impl BlobWriter for S3Writer {
    fn write(&mut self, bytes: &[u8]) -> Result<(), AppError> {
        let mut upload = self
            .upload
            .take()
            .ok_or_else(|| AppError::internal("blob already committed or failed"))?;
        let chunk = bytes::Bytes::copy_from_slice(bytes);
        // Parts are sent as they fill; waiting for room keeps memory bounded.
        let (upload, result) = wait(&self.rt, async move {
            upload.put(chunk);
            let result = upload.wait_for_capacity(PARTS_IN_FLIGHT).await;
            (upload, result)
        })?;
        match result {
            Ok(()) => {
                self.upload = Some(upload);
                Ok(())
            }
            Err(e) => {
                abort(&self.rt, upload);
                Err(store_error("uploading", e))
            }
        }
    }

    fn commit(mut self: Box<Self>, key: &str) -> Result<(), AppError> {
        super::check_key(key)?;
        let target = key.split('/').fold(self.blobs.clone(), |p, s| p.join(s));
        let upload = self
            .upload
            .take()
            .ok_or_else(|| AppError::internal("blob already committed or failed"))?;
        let (store, tmp) = (self.store.clone(), self.tmp.clone());
        // Completing the multipart upload makes the temporary object appear; the copy
        // puts it under its key (over an object of the same content, which it marks as
        // just written: the sweep leaves it to the row on its way); the temporary object
        // goes (or, if that fails, to the sweep of parts).
        wait(&self.rt, async move {
            upload
                .finish()
                .await
                .map_err(|e| store_error("completing an upload", e))?;
            store
                .copy(&tmp, &target)
                .await
                .map_err(|e| store_error("publishing an upload", e))?;
            if let Err(e) = store.delete(&tmp).await {
                tracing::warn!(error = %e, "a temporary upload object stays for the sweep");
            }
            Ok(())
        })?
    }
}

/// Aborts an upload in the background: S3 discards its parts.
fn abort(rt: &Runtime, upload: WriteMultipart) {
    if let Some(rt) = rt.0.as_ref() {
        rt.spawn(async move {
            if let Err(e) = upload.abort().await {
                tracing::warn!(error = %e, "aborting an attachment upload failed");
            }
        });
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        if let Some(upload) = self.upload.take() {
            abort(&self.rt, upload);
        }
    }
}

struct S3Reader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
    current: bytes::Bytes,
    // Keeps the runtime that feeds the channel alive.
    _rt: Arc<Runtime>,
}

impl Read for S3Reader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            let next = wait_recv(&mut self.rx);
            match next {
                None => return Ok(0),
                Some(chunk) => self.current = chunk?,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// The next item of the channel, waiting on this thread whatever it is.
fn wait_recv<T>(rx: &mut tokio::sync::mpsc::Receiver<T>) -> Option<T> {
    // `blocking_recv` refuses to run on a runtime's own thread; a tiny executor of our
    // own does not care which thread it is on.
    let waker = std::task::Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    loop {
        match rx.poll_recv(&mut cx) {
            std::task::Poll::Ready(item) => return item,
            std::task::Poll::Pending => std::thread::park(),
        }
    }
}

struct ThreadWaker(std::thread::Thread);

impl std::task::Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}
