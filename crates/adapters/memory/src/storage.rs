//! Files' bytes in this process's memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tenantry_domain::OrgId;
use tenantry_ports::{
    ByteRange, ChunkSource, Clock, Download, DownloadHeaders, ObjectInfo, ObjectKey, ObjectStorage, StorageError,
    StoredBlob,
};

/// How many bytes a download hands out per chunk.
const CHUNK: usize = 64 * 1024;

/// Every mutation is a single insert or remove, so a map behind a poisoned lock is still
/// consistent and can be used on.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Clone)]
struct Blob {
    bytes: Arc<Vec<u8>>,
    written_at: DateTime<Utc>,
}

/// An [`ObjectStorage`] in this process's memory, for tests and for services that embed
/// Tenantry without a disk or S3: the whole object is held, so it suits small files only.
/// It cannot presign (both presign methods answer `None`, and the bytes go through the
/// caller), and `last_modified` comes from the injected [`Clock`] so the orphan sweeper can be
/// tested without waiting.
pub struct InMemoryObjectStorage {
    clock: Arc<dyn Clock>,
    objects: Mutex<BTreeMap<ObjectKey, Blob>>,
}

impl InMemoryObjectStorage {
    /// An empty store whose writes are dated by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, objects: Mutex::new(BTreeMap::new()) }
    }
}

impl std::fmt::Debug for InMemoryObjectStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InMemoryObjectStorage").field("objects", &lock(&self.objects).len()).finish_non_exhaustive()
    }
}

/// A download's body: slices of the stored bytes, handed out one chunk at a time.
struct Slices {
    bytes: Arc<Vec<u8>>,
    next: usize,
    end: usize,
}

#[async_trait::async_trait]
impl ChunkSource for Slices {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        if self.next >= self.end {
            return Ok(None);
        }
        let until = self.end.min(self.next.saturating_add(CHUNK));
        let chunk = self.bytes.get(self.next..until).map(<[u8]>::to_vec);
        self.next = until;
        Ok(chunk)
    }
}

fn index(offset: u64) -> Result<usize, StorageError> {
    usize::try_from(offset).map_err(|err| StorageError::Unexpected(err.into()))
}

#[async_trait::async_trait]
impl ObjectStorage for InMemoryObjectStorage {
    async fn put(
        &self,
        key: &ObjectKey,
        mut source: Box<dyn ChunkSource>,
        max_bytes: u64,
    ) -> Result<StoredBlob, StorageError> {
        // The bytes are gathered outside the lock and become visible only complete.
        let mut bytes = Vec::new();
        let mut hasher = Sha256::new();
        while let Some(chunk) = source.next_chunk().await? {
            if (bytes.len() as u64).saturating_add(chunk.len() as u64) > max_bytes {
                return Err(StorageError::TooLarge { limit: max_bytes });
            }
            hasher.update(&chunk);
            bytes.extend_from_slice(&chunk);
        }
        let stored = StoredBlob { size: bytes.len() as u64, sha256: format!("{:x}", hasher.finalize()) };
        let blob = Blob { bytes: Arc::new(bytes), written_at: self.clock.now() };
        lock(&self.objects).insert(*key, blob);
        Ok(stored)
    }

    async fn get(&self, key: &ObjectKey, range: Option<ByteRange>) -> Result<Download, StorageError> {
        let blob = lock(&self.objects).get(key).cloned().ok_or(StorageError::NotFound)?;
        let size = blob.bytes.len() as u64;
        let range = match range {
            None => 0..size,
            Some(range) => range.resolve(size).ok_or(StorageError::RangeNotSatisfiable { size })?,
        };
        let body = Slices { bytes: blob.bytes, next: index(range.start)?, end: index(range.end)? };
        Ok(Download { size, range, body: Box::new(body) })
    }

    async fn head(&self, key: &ObjectKey) -> Result<ObjectInfo, StorageError> {
        let objects = lock(&self.objects);
        let blob = objects.get(key).ok_or(StorageError::NotFound)?;
        Ok(ObjectInfo { key: *key, size: blob.bytes.len() as u64, last_modified: blob.written_at })
    }

    async fn delete(&self, key: &ObjectKey) -> Result<(), StorageError> {
        lock(&self.objects).remove(key);
        Ok(())
    }

    async fn delete_org(&self, org_id: OrgId) -> Result<u64, StorageError> {
        let mut objects = lock(&self.objects);
        let before = objects.len();
        objects.retain(|key, _| key.org_id() != org_id);
        Ok((before - objects.len()) as u64)
    }

    async fn list_older_than(
        &self,
        before: DateTime<Utc>,
        after: Option<ObjectKey>,
        limit: usize,
    ) -> Result<Vec<ObjectInfo>, StorageError> {
        let objects = lock(&self.objects);
        Ok(objects
            .iter()
            .filter(|(key, blob)| after.is_none_or(|after| **key > after) && blob.written_at < before)
            .take(limit)
            .map(|(key, blob)| ObjectInfo { key: *key, size: blob.bytes.len() as u64, last_modified: blob.written_at })
            .collect())
    }

    async fn presign_get(
        &self,
        _key: &ObjectKey,
        _ttl: Duration,
        _headers: &DownloadHeaders,
    ) -> Result<Option<String>, StorageError> {
        Ok(None)
    }

    async fn presign_put(&self, _key: &ObjectKey, _ttl: Duration) -> Result<Option<String>, StorageError> {
        Ok(None)
    }

    async fn probe(&self) -> Result<(), StorageError> {
        // Memory is always reachable; taking the lock proves nothing holds it for ever.
        drop(lock(&self.objects));
        Ok(())
    }
}
