//! Object storage adapters on [`object_store`]: an S3-compatible bucket in production, a local
//! folder in the embedded default (`data/files`), memory in tests — one implementation of
//! [`ObjectStorage`] over the three, so they behave alike by construction and the contract suite
//! checks the rest.
//!
//! Uploads are pulled chunk by chunk: the size limit and the SHA-256 are applied as bytes
//! arrive; a body up to one part ([`PART_SIZE`]) goes out in one request, a larger one as a
//! multipart upload with at most [`PARTS_IN_FLIGHT`] parts buffered, so an upload holds at most
//! about `(PARTS_IN_FLIGHT + 1) × PART_SIZE` whatever the file's size. Any failure aborts the
//! multipart upload (also when the upload's future is dropped mid-way, e.g. the client went
//! away). Driver errors never cross the port: `map_error` turns them into
//! [`StorageError`] variants at this seam.

mod body;
mod s3;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::signer::{Method, SignedUrlOptions, Signer};
use object_store::{
    GetOptions, GetResultPayload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutPayload,
    WriteMultipart,
};
use sha2::{Digest, Sha256};
use tenantry_domain::OrgId;
use tenantry_ports::{
    ByteRange, ChunkSource, Download, DownloadHeaders, ObjectInfo, ObjectKey, ObjectStorage, StorageError, StoredBlob,
};

pub use s3::{S3Config, S3Credentials};

use body::{FileChunks, StreamChunks};

/// The size of one multipart part, and the threshold above which an upload becomes multipart:
/// S3's minimum part size (every part but the last must reach it).
pub const PART_SIZE: usize = 5 * 1024 * 1024;

/// How many parts of one upload may be on their way to the store at once: the memory bound
/// per upload, traded against throughput to a remote store.
pub const PARTS_IN_FLIGHT: usize = 2;

/// How long the readiness probe may take before the store counts as unreachable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a store could not be set up.
#[derive(Debug)]
pub struct BuildError(String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// [`ObjectStorage`] on an [`object_store`] backend.
#[derive(Clone)]
pub struct ObjectStoreStorage {
    store: Arc<dyn ObjectStore>,
    /// Present only where the store can sign URLs (S3).
    signer: Option<Arc<dyn Signer>>,
    /// The folder inside the store every object lives under, if any.
    root: Option<Path>,
    /// The backend lists in key order (S3 does), so a listing page can stop at `limit` instead
    /// of reading every object to sort them.
    ordered_listing: bool,
    kind: &'static str,
}

impl fmt::Debug for ObjectStoreStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectStoreStorage").field("kind", &self.kind).field("store", &self.store.to_string()).finish()
    }
}

impl ObjectStoreStorage {
    /// An S3-compatible bucket. Builds the client only: nothing is sent until the first call
    /// (use [`ObjectStorage::probe`] to check the bucket at start-up).
    ///
    /// # Errors
    /// [`BuildError`] when the configuration is incomplete or invalid (no bucket, a bad
    /// endpoint URL or prefix).
    pub fn s3(config: &S3Config) -> Result<Self, BuildError> {
        if config.bucket.trim().is_empty() {
            return Err(BuildError("S3 storage: the bucket name is empty".to_owned()));
        }
        let s3: AmazonS3 = config.builder().build().map_err(|e| BuildError(format!("S3 storage: {e}")))?;
        let s3 = Arc::new(s3);
        Ok(Self {
            store: s3.clone(),
            signer: Some(s3),
            root: parse_root(config.prefix.as_deref())?,
            ordered_listing: true,
            kind: "s3",
        })
    }

    /// A folder on local disk (the embedded default is `data/files`), created if missing.
    /// Writes are fsynced before they count as stored, as a remote store's would be durable;
    /// emptied folders are removed on deletion.
    ///
    /// # Errors
    /// [`BuildError`] when the folder cannot be created or resolved.
    pub fn local(dir: impl AsRef<std::path::Path>) -> Result<Self, BuildError> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| BuildError(format!("storage folder {}: {e}", dir.display())))?;
        let local = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| BuildError(format!("storage folder {}: {e}", dir.display())))?
            .with_automatic_cleanup(true)
            .with_fsync(true);
        Ok(Self { store: Arc::new(local), signer: None, root: None, ordered_listing: false, kind: "local" })
    }

    /// Objects in this process's memory, gone when it exits: for tests and demos.
    pub fn in_memory() -> Self {
        Self { store: Arc::new(InMemory::new()), signer: None, root: None, ordered_listing: false, kind: "memory" }
    }

    /// Where `key` lives in the store.
    fn path(&self, key: &ObjectKey) -> Path {
        self.under_root(&key.to_string())
    }

    fn under_root(&self, relative: &str) -> Path {
        match &self.root {
            Some(root) => Path::from(format!("{root}/{relative}")),
            None => Path::from(relative),
        }
    }

    /// The key a listed location holds, or `None` for anything that is not one of ours.
    fn key_of(&self, location: &Path) -> Option<ObjectKey> {
        let text = location.as_ref();
        let relative = match &self.root {
            Some(root) => text.strip_prefix(root.as_ref())?.strip_prefix('/')?,
            None => text,
        };
        relative.parse().ok()
    }

    fn info(&self, meta: &ObjectMeta) -> Option<ObjectInfo> {
        Some(ObjectInfo { key: self.key_of(&meta.location)?, size: meta.size, last_modified: meta.last_modified })
    }

    async fn signed_url(
        &self,
        method: Method,
        key: &ObjectKey,
        ttl: Duration,
        options: SignedUrlOptions,
    ) -> Result<Option<String>, StorageError> {
        let Some(signer) = &self.signer else { return Ok(None) };
        let url = signer.signed_url_opts(method, &self.path(key), ttl, &options).await.map_err(map_error)?;
        Ok(Some(url.to_string()))
    }
}

fn parse_root(prefix: Option<&str>) -> Result<Option<Path>, BuildError> {
    let Some(prefix) = prefix.map(|p| p.trim_matches('/')).filter(|p| !p.is_empty()) else { return Ok(None) };
    Path::parse(prefix).map(Some).map_err(|e| BuildError(format!("storage prefix {prefix:?}: {e}")))
}

/// `object_store`'s errors as the port's: a missing object is [`StorageError::NotFound`]; I/O
/// and transport failures (what `Generic` carries: refused connections, timeouts, 5xx after
/// retries, a full disk) are [`StorageError::Unavailable`]; the rest (refused credentials, an
/// invalid path, an unsupported operation) is [`StorageError::Unexpected`].
pub(crate) fn map_error(err: object_store::Error) -> StorageError {
    match err {
        object_store::Error::NotFound { .. } => StorageError::NotFound,
        err @ (object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }) => {
            StorageError::Unavailable(err.into())
        }
        err => StorageError::Unexpected(err.into()),
    }
}

/// A multipart upload in progress that is aborted unless it completes: explicitly on a
/// failure, and from `Drop` when the upload's future is dropped mid-way (a client that went
/// away), so no invisible partial upload keeps occupying the bucket.
struct Multipart {
    writer: Option<WriteMultipart>,
}

impl Multipart {
    async fn start(store: &dyn ObjectStore, path: &Path) -> Result<Self, StorageError> {
        let upload = store.put_multipart_opts(path, PutMultipartOptions::default()).await.map_err(map_error)?;
        Ok(Self { writer: Some(WriteMultipart::new_with_chunk_size(upload, PART_SIZE)) })
    }

    /// Hands `chunk` on, first waiting while [`PARTS_IN_FLIGHT`] parts are still uploading.
    async fn write(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        let Some(writer) = self.writer.as_mut() else { return Err(finished()) };
        writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(map_error)?;
        writer.put(chunk);
        Ok(())
    }

    /// Uploads the last part and completes the upload (which `object_store` aborts itself if
    /// completing fails).
    async fn finish(&mut self) -> Result<(), StorageError> {
        let Some(writer) = self.writer.take() else { return Err(finished()) };
        writer.finish().await.map(drop).map_err(map_error)
    }

    async fn abort(&mut self) {
        if let Some(writer) = self.writer.take()
            && let Err(err) = writer.abort().await
        {
            tracing::warn!(error = %err, "could not abort a multipart upload; the bucket's lifecycle rule must clear it");
        }
    }
}

impl Drop for Multipart {
    fn drop(&mut self) {
        if let Some(writer) = self.writer.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                if let Err(err) = writer.abort().await {
                    tracing::warn!(error = %err, "could not abort a dropped multipart upload");
                }
            });
        }
    }
}

fn finished() -> StorageError {
    StorageError::Unexpected(anyhow::anyhow!("the multipart upload was already finished"))
}

/// An upload in progress: the first part's worth of bytes is held back, so a small body goes
/// out in one request and only a larger one becomes a multipart upload.
struct Upload<'a> {
    store: &'a dyn ObjectStore,
    path: &'a Path,
    held: Vec<Bytes>,
    held_len: usize,
    multipart: Option<Multipart>,
}

impl Upload<'_> {
    async fn push(&mut self, chunk: Bytes) -> Result<(), StorageError> {
        if let Some(multipart) = &mut self.multipart {
            return multipart.write(chunk).await;
        }
        self.held_len += chunk.len();
        self.held.push(chunk);
        if self.held_len > PART_SIZE {
            let mut multipart = Multipart::start(self.store, self.path).await?;
            for held in std::mem::take(&mut self.held) {
                multipart.write(held).await?;
            }
            self.multipart = Some(multipart);
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), StorageError> {
        match &mut self.multipart {
            Some(multipart) => multipart.finish().await,
            None => {
                let payload: PutPayload = std::mem::take(&mut self.held).into_iter().collect();
                self.store.put(self.path, payload).await.map(drop).map_err(map_error)
            }
        }
    }

    async fn abort(&mut self) {
        if let Some(multipart) = &mut self.multipart {
            multipart.abort().await;
        }
    }
}

/// Pulls `source` into `upload`, hashing and counting, until it ends or passes `max_bytes`.
async fn pump(
    upload: &mut Upload<'_>,
    source: &mut dyn ChunkSource,
    max_bytes: u64,
) -> Result<StoredBlob, StorageError> {
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(chunk) = source.next_chunk().await? {
        size = size.saturating_add(chunk.len() as u64);
        if size > max_bytes {
            return Err(StorageError::TooLarge { limit: max_bytes });
        }
        if chunk.is_empty() {
            continue;
        }
        hasher.update(&chunk);
        upload.push(Bytes::from(chunk)).await?;
    }
    upload.finish().await?;
    Ok(StoredBlob { size, sha256: hex::encode(hasher.finalize()) })
}

#[async_trait::async_trait]
impl ObjectStorage for ObjectStoreStorage {
    #[tracing::instrument(name = "adapter.storage.put", skip_all, fields(org_id = %key.org_id(), store = self.kind))]
    async fn put(
        &self,
        key: &ObjectKey,
        mut source: Box<dyn ChunkSource>,
        max_bytes: u64,
    ) -> Result<StoredBlob, StorageError> {
        let path = self.path(key);
        let mut upload =
            Upload { store: self.store.as_ref(), path: &path, held: Vec::new(), held_len: 0, multipart: None };
        let result = pump(&mut upload, source.as_mut(), max_bytes).await;
        if result.is_err() {
            upload.abort().await;
        }
        result
    }

    #[tracing::instrument(name = "adapter.storage.get", skip_all, fields(org_id = %key.org_id(), store = self.kind))]
    async fn get(&self, key: &ObjectKey, range: Option<ByteRange>) -> Result<Download, StorageError> {
        let path = self.path(key);
        let mut options = GetOptions::new();
        if let Some(range) = range {
            // Resolved here, against the object's size, so every backend answers a range the
            // same way (they disagree on out-of-range requests).
            let size = self.store.head(&path).await.map_err(map_error)?.size;
            let resolved = range.resolve(size).ok_or(StorageError::RangeNotSatisfiable { size })?;
            options = options.with_range(Some(resolved));
        }
        let result = self.store.get_opts(&path, options).await.map_err(map_error)?;
        let size = result.meta.size;
        let range = result.range.clone();
        let body: Box<dyn ChunkSource> = match result.payload {
            GetResultPayload::File(file, _) => Box::new(FileChunks::new(file, range.clone())),
            GetResultPayload::Stream(stream) => Box::new(StreamChunks(stream)),
        };
        Ok(Download { size, range, body })
    }

    #[tracing::instrument(name = "adapter.storage.head", skip_all, fields(org_id = %key.org_id(), store = self.kind))]
    async fn head(&self, key: &ObjectKey) -> Result<ObjectInfo, StorageError> {
        let meta = self.store.head(&self.path(key)).await.map_err(map_error)?;
        Ok(ObjectInfo { key: *key, size: meta.size, last_modified: meta.last_modified })
    }

    #[tracing::instrument(name = "adapter.storage.delete", skip_all, fields(org_id = %key.org_id(), store = self.kind))]
    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        match self.store.delete(&self.path(key)).await.map_err(map_error) {
            Ok(()) | Err(StorageError::NotFound) => Ok(()),
            Err(err) => Err(err),
        }
    }

    #[tracing::instrument(name = "adapter.storage.delete_org", skip_all, fields(org_id = %org_id, store = self.kind))]
    async fn delete_org(&self, org_id: OrgId) -> Result<u64, StorageError> {
        // A prefix matches whole path segments only: another org's objects never match,
        // whatever its id.
        let prefix = self.under_root(ObjectKey::org_prefix(org_id).trim_end_matches('/'));
        let locations = self.store.list(Some(&prefix)).map_ok(|meta| meta.location).boxed();
        let mut deleted = self.store.delete_stream(locations);
        let mut count = 0;
        while let Some(result) = deleted.next().await {
            match result.map_err(map_error) {
                Ok(_) => count += 1,
                Err(StorageError::NotFound) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(count)
    }

    #[tracing::instrument(name = "adapter.storage.list_older_than", skip_all, fields(store = self.kind))]
    async fn list_older_than(
        &self,
        before: DateTime<Utc>,
        after: Option<ObjectKey>,
        limit: usize,
    ) -> Result<Vec<ObjectInfo>, StorageError> {
        let prefix = self.under_root("orgs");
        let mut listing = match &after {
            Some(after) => self.store.list_with_offset(Some(&prefix), &self.path(after)),
            None => self.store.list(Some(&prefix)),
        };
        let mut found = Vec::new();
        loop {
            let meta = match listing.next().await {
                None => break,
                Some(Ok(meta)) => meta,
                // Nothing stored yet: a local store has no `orgs` folder until the first upload.
                Some(Err(object_store::Error::NotFound { .. })) => break,
                Some(Err(err)) => return Err(map_error(err)),
            };
            let Some(info) = self.info(&meta) else { continue };
            if info.last_modified >= before || after.is_some_and(|after| info.key <= after) {
                continue;
            }
            found.push(info);
            if self.ordered_listing && found.len() >= limit {
                break;
            }
        }
        found.sort_by_key(|info| info.key);
        found.truncate(limit);
        Ok(found)
    }

    #[tracing::instrument(name = "adapter.storage.presign_get", skip_all, fields(org_id = %key.org_id(), store = self.kind))]
    async fn presign_get(
        &self,
        key: &ObjectKey,
        ttl: Duration,
        headers: &DownloadHeaders,
    ) -> Result<Option<String>, StorageError> {
        // S3's response-header overrides, signed into the URL so the holder cannot change them.
        let mut query = Vec::new();
        if let Some(content_type) = &headers.content_type {
            query.push(("response-content-type", content_type.as_str()));
        }
        if let Some(disposition) = &headers.content_disposition {
            query.push(("response-content-disposition", disposition.as_str()));
        }
        self.signed_url(Method::GET, key, ttl, SignedUrlOptions::new().with_query(query)).await
    }

    #[tracing::instrument(name = "adapter.storage.presign_put", skip_all, fields(org_id = %key.org_id(), store = self.kind))]
    async fn presign_put(&self, key: &ObjectKey, ttl: Duration) -> Result<Option<String>, StorageError> {
        self.signed_url(Method::PUT, key, ttl, SignedUrlOptions::new()).await
    }

    #[tracing::instrument(name = "adapter.storage.probe", skip_all, fields(store = self.kind))]
    async fn probe(&self) -> Result<(), StorageError> {
        let path = self.under_root(&format!("_tenantry/probe/{}", uuid::Uuid::now_v7()));
        let check = async {
            self.store.put(&path, PutPayload::from_static(b"ready")).await?;
            self.store.delete(&path).await
        };
        match tokio::time::timeout(PROBE_TIMEOUT, check).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(StorageError::Unavailable(err.into())),
            Err(_) => Err(StorageError::Unavailable(anyhow::anyhow!("no answer within {PROBE_TIMEOUT:?}"))),
        }
    }
}
