//! Files: uploads streamed to object storage under the org's quotas, metadata rows recorded
//! with their `file.uploaded` event only once the bytes are stored, downloads (streamed, or a
//! short-lived presigned URL where the store signs), presigned uploads with a completion step
//! that checks what arrived, deletion, and the sweeper that removes what a failure or an
//! abandoned upload left behind.
//!
//! The rule every path keeps: a row exists only for bytes that were stored and checked, and
//! bytes without a row are removed (at once when the failing request can, else by the sweeper
//! an hour later); quota reserved for work that failed is given back.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use tenantry_domain::FileId;
use tenantry_domain::files::{FileStatus, SNIFF_BYTES, TypeAllowlist, sanitize_file_name, sniff};
use tenantry_domain::quota::Quota;
use tenantry_domain::tenancy::Permission;
use tenantry_ports::{
    ByteRange, ChunkSource, Clock, Completion, Download, DownloadHeaders, FileRecord, FileRepository, IdGenerator,
    ObjectKey, ObjectStorage, StorageError,
};

use crate::jobs::{Job, JobError, StepOutcome};
use crate::quotas::{QuotaService, Reservation};
use crate::tenancy::{OrgAccess, TenancyError};

/// Everything [`FileService`] and [`FileSweeper`] need: one struct for both, so the sweeper
/// cleans exactly the stores the service writes.
#[derive(Clone)]
pub struct FilePorts {
    /// Metadata rows.
    pub files: Arc<dyn FileRepository>,
    /// The bytes.
    pub storage: Arc<dyn ObjectStorage>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: Arc<dyn IdGenerator>,
    /// The `file_uploads` and `storage_bytes` quotas; `None` leaves files unlimited.
    pub quotas: Option<Arc<QuotaService>>,
}

/// File policy from configuration: limits and lifetimes an operator tunes per deployment.
#[derive(Debug, Clone)]
pub struct FileSettings {
    /// The largest file accepted (`TENANTRY_MAX_UPLOAD_BYTES`, default 100 MiB).
    pub max_upload_bytes: u64,
    /// Sniffed types that may be stored (`TENANTRY_UPLOAD_ALLOWED_TYPES`).
    pub allowed_types: TypeAllowlist,
    /// How long a presigned upload URL works, and its pending row waits for completion.
    pub upload_ttl: Duration,
    /// How long a presigned download URL works: short, since anyone holding it can read the
    /// file (at most 5 minutes).
    pub download_ttl: Duration,
    /// Objects without a row older than this are orphans the sweeper removes: far longer
    /// than the moment between an object's last byte and its row's commit.
    pub orphan_age: Duration,
}

impl Default for FileSettings {
    fn default() -> Self {
        Self {
            max_upload_bytes: 100 * 1024 * 1024,
            allowed_types: TypeAllowlist::default(),
            upload_ttl: Duration::from_secs(15 * 60),
            download_ttl: Duration::from_secs(5 * 60),
            orphan_age: Duration::from_secs(3600),
        }
    }
}

/// Why a file use case failed: the tenancy answers every org use case shares, plus the
/// file-specific ones a client can act on (too large, wrong type, retry the upload).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not found, forbidden, a quota used up, a dependency down: as every org use case.
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    /// The file passed `limit` bytes; nothing was kept.
    #[error("file larger than {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The bytes are of a type the allowlist refuses; nothing was kept.
    #[error("content type {content_type} is not allowed")]
    UnsupportedType {
        /// The sniffed (or, for a presigned upload, declared) type.
        content_type: String,
    },
    /// The upload's body stopped before its end or was malformed; nothing was kept.
    #[error("upload interrupted")]
    Interrupted(#[source] anyhow::Error),
    /// The range lies outside the file.
    #[error("range not satisfiable")]
    RangeNotSatisfiable {
        /// The file's size.
        size: u64,
    },
    /// The store cannot sign URLs (local disk, memory): upload through the server instead.
    #[error("presigned uploads are not supported by this store")]
    PresignUnsupported,
    /// Completion found no object: the presigned PUT has not happened (yet).
    #[error("nothing was uploaded")]
    UploadMissing,
    /// Completion found another size than announced; the upload was discarded.
    #[error("uploaded {found} bytes, announced {expected}")]
    UploadMismatch {
        /// Announced.
        expected: u64,
        /// Stored.
        found: u64,
    },
    /// Object storage is unreachable or failing; retrying later may work.
    #[error("object storage unavailable")]
    StorageUnavailable(#[source] anyhow::Error),
}

impl From<StorageError> for FileError {
    fn from(err: StorageError) -> Self {
        match err {
            StorageError::TooLarge { limit } => Self::TooLarge { limit },
            StorageError::RangeNotSatisfiable { size } => Self::RangeNotSatisfiable { size },
            StorageError::Interrupted(cause) => Self::Interrupted(cause),
            StorageError::NotFound => Self::Tenancy(TenancyError::NotFound),
            err @ StorageError::Unavailable(_) => Self::StorageUnavailable(err.into()),
            err @ StorageError::Unexpected(_) => Self::Tenancy(TenancyError::Dependency(err.into())),
        }
    }
}

impl From<tenantry_ports::StoreError> for FileError {
    fn from(err: tenantry_ports::StoreError) -> Self {
        Self::Tenancy(err.into())
    }
}

impl From<crate::quotas::QuotaError> for FileError {
    fn from(err: crate::quotas::QuotaError) -> Self {
        Self::Tenancy(err.into())
    }
}

/// An upload as the HTTP layer hands it over: only what the client may choose; the id, the
/// content type and the hash are decided here from the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUpload {
    /// The name the client sent (sanitised here).
    pub name: String,
    /// An upper bound of the file's size when the request announced one (its
    /// `content-length`): the storage reservation. Without one the upload limit is reserved.
    pub size_bound: Option<u64>,
}

/// Where a download's bytes come from: a redirect when the store can presign (the bytes then
/// never pass through this process), a stream otherwise.
#[derive(Debug)]
pub enum FileBody {
    /// A presigned GET, valid for [`FileSettings::download_ttl`]: redirect the client there.
    Redirect(String),
    /// The bytes (or the asked range), streamed through this process.
    Stream(Download),
}

/// A presigned upload: where to `PUT` the bytes, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUpload {
    /// The file it will become (complete it with this id).
    pub file_id: FileId,
    /// The presigned `PUT` URL.
    pub upload_url: String,
    /// When the URL stops working and the pending upload is swept.
    pub expires_at: DateTime<Utc>,
}

/// What an upload holds until it is recorded: given back if it fails.
#[derive(Default)]
struct Held {
    uploads: Option<Reservation>,
    bytes: Option<Reservation>,
}

/// The file use cases (`files:read`, `files:write`): uploads streamed with the size limit,
/// type sniffing and SHA-256 applied as the bytes arrive, under the storage quotas, each stored
/// or deleted file audited in the organization's log.
pub struct FileService {
    ports: FilePorts,
    settings: FileSettings,
}

/// Yields the chunks read ahead for sniffing, then the rest of the source.
struct Prefixed {
    head: VecDeque<Vec<u8>>,
    rest: Option<Box<dyn ChunkSource>>,
}

#[async_trait::async_trait]
impl ChunkSource for Prefixed {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        if let Some(chunk) = self.head.pop_front() {
            return Ok(Some(chunk));
        }
        match &mut self.rest {
            Some(rest) => rest.next_chunk().await,
            None => Ok(None),
        }
    }
}

/// Reads at least [`SNIFF_BYTES`] (or everything, when shorter) from `source`, stopping early
/// past `max_bytes` (the put then refuses the file without another read).
async fn read_head(mut source: Box<dyn ChunkSource>, max_bytes: u64) -> Result<(Vec<u8>, Prefixed), StorageError> {
    let mut head = Vec::new();
    let mut chunks = VecDeque::new();
    let mut read: u64 = 0;
    let mut ended = false;
    while head.len() < SNIFF_BYTES && read <= max_bytes {
        match source.next_chunk().await? {
            None => {
                ended = true;
                break;
            }
            Some(chunk) => {
                read = read.saturating_add(chunk.len() as u64);
                let wanted = SNIFF_BYTES.saturating_sub(head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..wanted]);
                chunks.push_back(chunk);
            }
        }
    }
    Ok((head, Prefixed { head: chunks, rest: (!ended).then_some(source) }))
}

impl FileService {
    /// Wires the service; no I/O happens until a method is called.
    pub fn new(ports: FilePorts, settings: FileSettings) -> Self {
        Self { ports, settings }
    }

    /// The policy in force (the HTTP layer refuses a body announced over the limit before
    /// reading it).
    pub fn settings(&self) -> &FileSettings {
        &self.settings
    }

    fn key(org_id: tenantry_domain::OrgId, id: FileId) -> ObjectKey {
        ObjectKey::new(org_id, id.as_uuid())
    }

    async fn reserve(&self, access: &OrgAccess, bytes: u64) -> Result<Held, FileError> {
        let Some(quotas) = &self.ports.quotas else { return Ok(Held::default()) };
        let uploads = quotas.try_consume(access, Quota::FileUploads, 1).await?;
        match quotas.try_consume(access, Quota::StorageBytes, bytes).await {
            Ok(reserved) => Ok(Held { uploads: Some(uploads), bytes: Some(reserved) }),
            Err(err) => {
                self.give_back(Held { uploads: Some(uploads), bytes: None }).await;
                Err(err.into())
            }
        }
    }

    /// Gives a failed upload's reservations back; a failure here leaves usage counted too
    /// high (never too low), so it is logged, not returned.
    async fn give_back(&self, held: Held) {
        let Some(quotas) = &self.ports.quotas else { return };
        for reservation in [held.uploads, held.bytes].into_iter().flatten() {
            if let Err(err) = quotas.release(reservation).await {
                tracing::warn!(error = %err, "giving back a failed upload's quota failed");
            }
        }
    }

    async fn free_bytes(&self, org_id: tenantry_domain::OrgId, bytes: u64) {
        let Some(quotas) = &self.ports.quotas else { return };
        if let Err(err) = quotas.free(org_id, Quota::StorageBytes, bytes).await {
            tracing::warn!(error = %err, %org_id, bytes, "freeing storage quota failed; usage stays too high");
        }
    }

    /// Removes an object a failed request stored; on failure the sweeper removes it later
    /// (it has no row).
    async fn remove_object(&self, key: &ObjectKey) {
        if let Err(err) = self.ports.storage.delete(key).await {
            tracing::warn!(error = %err, org_id = %key.org_id(), "removing an unrecorded object failed; the sweeper will");
        }
    }

    /// Stores the bytes `source` yields as a new file of the organization (`files:write`):
    /// `file_uploads` and `storage_bytes` (the announced upper bound, or the upload limit)
    /// reserved first, the type sniffed from the first bytes before anything is stored, the
    /// bytes streamed to storage with the limit applied as they arrive, then the row and its
    /// `file.uploaded` event in one transaction, and the unused part of the reservation given
    /// back. Any failure leaves no row, no object, and the quota as it was.
    ///
    /// # Errors
    /// `Tenancy` (`Forbidden`, `QuotaExceeded`, `Dependency`), `TooLarge`, `UnsupportedType`,
    /// `Interrupted`, `StorageUnavailable`.
    #[tracing::instrument(name = "application.files.upload", skip_all, fields(org_id = %access.org_id))]
    pub async fn upload(
        &self,
        access: &OrgAccess,
        upload: NewUpload,
        source: Box<dyn ChunkSource>,
    ) -> Result<FileRecord, FileError> {
        access.require(Permission::FilesWrite)?;
        let max = self.settings.max_upload_bytes;
        let bound = upload.size_bound.map_or(max, |bound| bound.min(max));
        let held = self.reserve(access, bound).await?;
        let id = FileId::from_uuid(self.ports.ids.new_id());
        let key = Self::key(access.org_id, id);
        let stored = async {
            let (head, source) = read_head(source, bound).await?;
            let content_type = sniff(&head);
            if !self.settings.allowed_types.allows(content_type) {
                return Err(FileError::UnsupportedType { content_type: content_type.to_owned() });
            }
            let blob = match self.ports.storage.put(&key, Box::new(source), bound).await {
                // Past a bound below the limit, the body broke its own announced length.
                Err(StorageError::TooLarge { .. }) => return Err(FileError::TooLarge { limit: max }),
                other => other?,
            };
            Ok((content_type, blob))
        }
        .await;
        let (content_type, blob) = match stored {
            Ok(stored) => stored,
            Err(err) => {
                // `put` leaves nothing on failure; removing again is idempotent and covers a
                // store that failed after the object became visible.
                if !matches!(err, FileError::UnsupportedType { .. }) {
                    self.remove_object(&key).await;
                }
                self.give_back(held).await;
                return Err(err);
            }
        };
        let record = FileRecord {
            id,
            org_id: access.org_id,
            name: sanitize_file_name(&upload.name),
            size: blob.size,
            content_type: content_type.to_owned(),
            sha256: Some(blob.sha256.clone()),
            status: FileStatus::Ready,
            // In whole microseconds: what every database stores, so the answer and later reads
            // agree.
            created_at: self.ports.clock.now().trunc_subsecs(6),
            expires_at: None,
        };
        let event = access.event(
            (self.ports.ids.as_ref(), self.ports.clock.as_ref()),
            "file.uploaded",
            ("file", Some(id.to_string())),
            &json!({"name": record.name, "size": record.size, "content_type": record.content_type, "sha256": blob.sha256}),
        );
        if let Err(err) = self.ports.files.create(&record, &event).await {
            self.remove_object(&key).await;
            self.give_back(held).await;
            return Err(err.into());
        }
        self.free_bytes(access.org_id, bound.saturating_sub(record.size)).await;
        Ok(record)
    }

    /// A page of the organization's files, oldest first (`files:read`).
    ///
    /// # Errors
    /// `Forbidden`, `Dependency`.
    pub async fn list(
        &self,
        access: &OrgAccess,
        after: Option<FileId>,
        limit: u32,
    ) -> Result<Vec<FileRecord>, FileError> {
        access.require(Permission::FilesRead)?;
        Ok(self.ports.files.list(access.org_id, after, limit).await?)
    }

    /// One ready file (`files:read`); a pending presigned upload is not a file yet.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Dependency`.
    pub async fn get(&self, access: &OrgAccess, id: FileId) -> Result<FileRecord, FileError> {
        access.require(Permission::FilesRead)?;
        match self.ports.files.get(access.org_id, id).await? {
            Some(file) if file.status == FileStatus::Ready => Ok(file),
            _ => Err(TenancyError::NotFound.into()),
        }
    }

    /// The file's bytes (`files:read`): a presigned URL valid for
    /// [`FileSettings::download_ttl`] when the store signs one (it answers with the recorded
    /// type and a safe `content-disposition`), else the bytes or `range` of them, streamed.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `RangeNotSatisfiable`, `StorageUnavailable`, `Dependency`.
    #[tracing::instrument(name = "application.files.download", skip_all, fields(org_id = %access.org_id))]
    pub async fn download(
        &self,
        access: &OrgAccess,
        id: FileId,
        range: Option<ByteRange>,
    ) -> Result<(FileRecord, FileBody), FileError> {
        let file = self.get(access, id).await?;
        let key = Self::key(access.org_id, id);
        let headers = DownloadHeaders {
            content_type: Some(file.content_type.clone()),
            content_disposition: Some(tenantry_domain::files::content_disposition(&file.name)),
        };
        if let Some(url) = self.ports.storage.presign_get(&key, self.settings.download_ttl, &headers).await? {
            return Ok((file, FileBody::Redirect(url)));
        }
        let download = match self.ports.storage.get(&key, range).await {
            // A row without its object: the store lost it, not the client's fault.
            Err(StorageError::NotFound) => {
                return Err(TenancyError::Dependency(anyhow::anyhow!("file {id} has a row but no object")).into());
            }
            other => other?,
        };
        Ok((file, FileBody::Stream(download)))
    }

    /// Deletes a file (`files:write`): the row with its `file.deleted` event, then the object
    /// (the sweeper removes it later if that fails), then its bytes leave the storage quota.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Dependency`.
    #[tracing::instrument(name = "application.files.delete", skip_all, fields(org_id = %access.org_id))]
    pub async fn delete(&self, access: &OrgAccess, id: FileId) -> Result<(), FileError> {
        access.require(Permission::FilesWrite)?;
        let event = access.event(
            (self.ports.ids.as_ref(), self.ports.clock.as_ref()),
            "file.deleted",
            ("file", Some(id.to_string())),
            &json!({}),
        );
        let Some(deleted) = self.ports.files.delete(access.org_id, id, &event).await? else {
            return Err(TenancyError::NotFound.into());
        };
        self.remove_object(&Self::key(access.org_id, id)).await;
        self.free_bytes(access.org_id, deleted.size).await;
        Ok(())
    }

    /// A presigned `PUT` URL for a file of `size` bytes of type `content_type` (`files:write`),
    /// where the store signs: the quotas are reserved now and a pending row waits for
    /// [`Self::complete`] until the URL expires.
    ///
    /// # Errors
    /// `Forbidden`, `TooLarge`, `UnsupportedType` (the declared type; completion sniffs the
    /// bytes again), `PresignUnsupported`, `QuotaExceeded`, `StorageUnavailable`, `Dependency`.
    #[tracing::instrument(name = "application.files.presign_upload", skip_all, fields(org_id = %access.org_id))]
    pub async fn presign_upload(
        &self,
        access: &OrgAccess,
        name: &str,
        size: u64,
        content_type: &str,
    ) -> Result<PresignedUpload, FileError> {
        access.require(Permission::FilesWrite)?;
        if size > self.settings.max_upload_bytes {
            return Err(FileError::TooLarge { limit: self.settings.max_upload_bytes });
        }
        let declared = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if !self.settings.allowed_types.allows(&declared) {
            return Err(FileError::UnsupportedType { content_type: declared });
        }
        let id = FileId::from_uuid(self.ports.ids.new_id());
        let key = Self::key(access.org_id, id);
        let Some(upload_url) = self.ports.storage.presign_put(&key, self.settings.upload_ttl).await? else {
            return Err(FileError::PresignUnsupported);
        };
        let now = self.ports.clock.now().trunc_subsecs(6);
        let expires_at = now + chrono::Duration::from_std(self.settings.upload_ttl).unwrap_or(chrono::Duration::MAX);
        let held = self.reserve(access, size).await?;
        let pending = FileRecord {
            id,
            org_id: access.org_id,
            name: sanitize_file_name(name),
            size,
            content_type: declared,
            sha256: None,
            status: FileStatus::Pending,
            created_at: now,
            expires_at: Some(expires_at),
        };
        if let Err(err) = self.ports.files.create_pending(&pending).await {
            self.give_back(held).await;
            return Err(err.into());
        }
        Ok(PresignedUpload { file_id: id, upload_url, expires_at })
    }

    /// Completes a presigned upload (`files:write`): the stored object must have the
    /// announced size, and its bytes (read once, hashed, sniffed) a type the allowlist
    /// allows; then the row becomes ready with its `file.uploaded` event. A mismatch discards
    /// the upload (object, row, reservation). Completing a ready file answers it again.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound` (no such upload, or expired), `UploadMissing`,
    /// `UploadMismatch`, `UnsupportedType`, `StorageUnavailable`, `Dependency`.
    #[tracing::instrument(name = "application.files.complete", skip_all, fields(org_id = %access.org_id))]
    pub async fn complete(&self, access: &OrgAccess, id: FileId) -> Result<FileRecord, FileError> {
        access.require(Permission::FilesWrite)?;
        let pending = match self.ports.files.get(access.org_id, id).await? {
            Some(file) if file.status == FileStatus::Ready => return Ok(file),
            Some(file) if file.expires_at.is_some_and(|at| at > self.ports.clock.now()) => file,
            _ => return Err(TenancyError::NotFound.into()),
        };
        let key = Self::key(access.org_id, id);
        let stored = match self.ports.storage.head(&key).await {
            Err(StorageError::NotFound) => return Err(FileError::UploadMissing),
            other => other?,
        };
        if stored.size != pending.size {
            self.discard(&pending).await;
            return Err(FileError::UploadMismatch { expected: pending.size, found: stored.size });
        }
        let mut body = self.ports.storage.get(&key, None).await?.body;
        let mut hasher = Sha256::new();
        let mut head = Vec::new();
        while let Some(chunk) = body.next_chunk().await? {
            if head.len() < SNIFF_BYTES {
                head.extend_from_slice(&chunk[..chunk.len().min(SNIFF_BYTES - head.len())]);
            }
            hasher.update(&chunk);
        }
        let content_type = sniff(&head);
        if !self.settings.allowed_types.allows(content_type) {
            self.discard(&pending).await;
            return Err(FileError::UnsupportedType { content_type: content_type.to_owned() });
        }
        let completion = Completion {
            size: stored.size,
            content_type: content_type.to_owned(),
            sha256: hex::encode(hasher.finalize()),
        };
        let event = access.event(
            (self.ports.ids.as_ref(), self.ports.clock.as_ref()),
            "file.uploaded",
            ("file", Some(id.to_string())),
            &json!({"name": pending.name, "size": completion.size, "content_type": completion.content_type, "sha256": completion.sha256}),
        );
        self.ports.files.complete(access.org_id, id, &completion, &event).await?.ok_or(TenancyError::NotFound.into())
    }

    /// Removes a pending upload that will never be completed: its object, its row, its bytes'
    /// reservation.
    async fn discard(&self, pending: &FileRecord) {
        self.remove_object(&Self::key(pending.org_id, pending.id)).await;
        match self.ports.files.discard_pending(pending.org_id, pending.id).await {
            Ok(Some(discarded)) => self.free_bytes(discarded.org_id, discarded.size).await,
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "discarding a pending upload failed; the sweeper will"),
        }
    }
}

#[async_trait::async_trait]
impl crate::tenancy::OrgDeletionFollowUp for FileService {
    /// Removes the organization's objects after the organization was deleted (its rows went
    /// with it). Best effort: what is left has no row, so the sweeper removes it later.
    async fn org_deleted(&self, org_id: tenantry_domain::OrgId) {
        match self.ports.storage.delete_org(org_id).await {
            Ok(removed) => tracing::info!(%org_id, removed, "removed a deleted organization's files"),
            Err(err) => {
                tracing::warn!(error = %err, %org_id, "removing a deleted organization's files failed; the sweeper will")
            }
        }
    }
}

/// Pending uploads and orphans the sweeper handles per step.
const SWEEP_BATCH: usize = 100;

/// The file sweeper: a worker step that removes expired pending uploads (object, row and
/// reservation) and objects without a row older than [`FileSettings::orphan_age`] (left by a
/// crash between store and commit, or a failed cleanup). Any number of workers may run it:
/// every removal is idempotent.
pub struct FileSweeper {
    service: Arc<FileService>,
    /// Where the orphan scan goes on from; `None` starts over. Losing it only means
    /// scanning again.
    cursor: Mutex<Option<ObjectKey>>,
}

impl FileSweeper {
    /// Sweeps `service`'s stores under its settings (the orphan age decides what is an orphan).
    pub fn new(service: Arc<FileService>) -> Self {
        Self { service, cursor: Mutex::new(None) }
    }

    async fn expired(&self) -> Result<usize, JobError> {
        let ports = &self.service.ports;
        let expired = ports
            .files
            .expired_pending(ports.clock.now(), SWEEP_BATCH as u32)
            .await
            .map_err(|err| JobError(err.into()))?;
        for pending in &expired {
            ports
                .storage
                .delete(&FileService::key(pending.org_id, pending.id))
                .await
                .map_err(|e| JobError(e.into()))?;
            if let Some(discarded) =
                ports.files.discard_pending(pending.org_id, pending.id).await.map_err(|e| JobError(e.into()))?
            {
                self.service.free_bytes(discarded.org_id, discarded.size).await;
            }
        }
        Ok(expired.len())
    }

    async fn orphans(&self) -> Result<usize, JobError> {
        let ports = &self.service.ports;
        let age = chrono::Duration::from_std(self.service.settings.orphan_age).unwrap_or(chrono::Duration::MAX);
        let before = ports.clock.now() - age;
        let after = *self.cursor.lock().unwrap_or_else(PoisonError::into_inner);
        let page = ports.storage.list_older_than(before, after, SWEEP_BATCH).await.map_err(|e| JobError(e.into()))?;
        let ids: Vec<FileId> = page.iter().map(|info| FileId::from_uuid(info.key.file_id())).collect();
        let known: HashSet<FileId> =
            ports.files.existing(&ids).await.map_err(|e| JobError(e.into()))?.into_iter().collect();
        for info in page.iter().filter(|info| !known.contains(&FileId::from_uuid(info.key.file_id()))) {
            tracing::info!(org_id = %info.key.org_id(), "removing an orphaned object");
            ports.storage.delete(&info.key).await.map_err(|e| JobError(e.into()))?;
        }
        *self.cursor.lock().unwrap_or_else(PoisonError::into_inner) =
            if page.len() < SWEEP_BATCH { None } else { page.last().map(|info| info.key) };
        Ok(page.len())
    }
}

#[async_trait::async_trait]
impl Job for FileSweeper {
    fn name(&self) -> &'static str {
        "files.sweep"
    }

    async fn step(&self) -> Result<StepOutcome, JobError> {
        let expired = self.expired().await?;
        let scanned = self.orphans().await?;
        Ok(if expired == SWEEP_BATCH || scanned == SWEEP_BATCH {
            StepOutcome::Worked
        } else {
            StepOutcome::Idle { next_in: Duration::from_secs(300) }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use chrono::TimeZone;
    use mockall::predicate::eq;
    use tenantry_adapter_memory::{InMemoryUsageStore, ManualClock, UuidV7Generator};
    use tenantry_domain::audit::Origin;
    use tenantry_domain::quota::{Limits, PlanAssignment};
    use tenantry_domain::tenancy::{BuiltinRole, Role};
    use tenantry_domain::{OrgId, SessionId, UserId};
    use tenantry_ports::{
        MockFileRepository, MockObjectStorage, MockPlanRepository, ObjectInfo, StoreError, StoredBlob,
    };

    use super::*;
    use crate::auth::Principal;
    use crate::quotas::{QuotaPorts, QuotaSettings};
    use crate::tenancy::Actor;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).single().expect("date")
    }

    fn access(role: BuiltinRole) -> OrgAccess {
        OrgAccess {
            org_id: OrgId::from_uuid(uuid::Uuid::now_v7()),
            actor: Actor::User(Principal {
                user_id: UserId::from_uuid(uuid::Uuid::now_v7()),
                session_id: SessionId::from_uuid(uuid::Uuid::now_v7()),
            }),
            role: Role::Builtin(role),
            origin: Origin::default(),
        }
    }

    /// Yields `chunks`, counting the pulls.
    struct Chunks(VecDeque<Vec<u8>>, Arc<AtomicUsize>);

    #[async_trait::async_trait]
    impl ChunkSource for Chunks {
        async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
            self.1.fetch_add(1, Ordering::SeqCst);
            Ok(self.0.pop_front())
        }
    }

    fn source(chunks: &[&[u8]]) -> (Box<dyn ChunkSource>, Arc<AtomicUsize>) {
        let pulled = Arc::new(AtomicUsize::new(0));
        (Box::new(Chunks(chunks.iter().map(|c| c.to_vec()).collect(), pulled.clone())), pulled)
    }

    fn service(
        files: MockFileRepository,
        storage: MockObjectStorage,
        quotas: Option<Arc<QuotaService>>,
    ) -> FileService {
        FileService::new(
            FilePorts {
                files: Arc::new(files),
                storage: Arc::new(storage),
                clock: Arc::new(ManualClock::new(start())),
                ids: Arc::new(UuidV7Generator),
                quotas,
            },
            FileSettings { max_upload_bytes: 1000, ..FileSettings::default() },
        )
    }

    /// A quota service whose organizations may store `bytes` bytes.
    fn quotas(bytes: u64) -> Arc<QuotaService> {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(start()));
        let mut plans = MockPlanRepository::new();
        plans.expect_assignment().returning(move |_| {
            let mut overrides = Limits::default();
            overrides.set(Quota::StorageBytes, Some(bytes));
            Ok(Some(PlanAssignment { plan: "free".into(), overrides, started_at: start() }))
        });
        plans.expect_mark_once().returning(|_, _, _, _, _, _| Ok(true));
        Arc::new(QuotaService::new(
            QuotaPorts {
                plans: Arc::new(plans),
                durable: Arc::new(InMemoryUsageStore::new(clock.clone())),
                metered: Arc::new(InMemoryUsageStore::new(clock.clone())),
                clock,
                ids: Arc::new(UuidV7Generator),
            },
            QuotaSettings::default(),
        ))
    }

    fn upload(name: &str) -> NewUpload {
        NewUpload { name: name.to_owned(), size_bound: None }
    }

    #[tokio::test]
    async fn an_upload_without_files_write_touches_nothing() {
        let (body, pulled) = source(&[b"hello"]);
        let result = service(MockFileRepository::new(), MockObjectStorage::new(), None)
            .upload(&access(BuiltinRole::Viewer), upload("a.txt"), body)
            .await;
        assert!(matches!(result, Err(FileError::Tenancy(TenancyError::Forbidden(Permission::FilesWrite)))));
        assert_eq!(pulled.load(Ordering::SeqCst), 0, "not a byte read");
    }

    #[tokio::test]
    async fn an_upload_is_stored_under_its_id_and_recorded_with_its_event_and_sniffed_type() {
        let access = access(BuiltinRole::Member);
        let org = access.org_id;
        let mut storage = MockObjectStorage::new();
        storage.expect_put().times(1).returning(move |key, mut body, limit| {
            assert_eq!((key.org_id(), limit), (org, 1000));
            let mut bytes = Vec::new();
            while let Some(chunk) =
                futures_util::FutureExt::now_or_never(body.next_chunk()).expect("ready").expect("ok")
            {
                bytes.extend(chunk);
            }
            assert_eq!(bytes, b"hello, world", "the sniffed head is stored too, once");
            Ok(StoredBlob { size: 12, sha256: "aa".repeat(32) })
        });
        let mut files = MockFileRepository::new();
        files.expect_create().times(1).returning(move |file, event| {
            assert_eq!((event.action.as_str(), event.org_id), ("file.uploaded", org));
            assert_eq!(event.target_id, Some(file.id.to_string()));
            assert_eq!((file.name.as_str(), file.content_type.as_str(), file.size), ("b.txt", "text/plain", 12));
            Ok(())
        });
        let (body, _) = source(&[b"hello, ", b"world"]);
        let file = service(files, storage, None).upload(&access, upload("../a/b.txt"), body).await.expect("stored");
        assert_eq!((file.status, file.sha256), (FileStatus::Ready, Some("aa".repeat(32))));
    }

    #[tokio::test]
    async fn a_disallowed_type_is_refused_before_anything_is_stored_and_its_quota_given_back() {
        let quotas = quotas(1000);
        let access = access(BuiltinRole::Member);
        let (body, _) = source(&[b"<html><script>alert(1)</script>"]);
        let result = service(MockFileRepository::new(), MockObjectStorage::new(), Some(quotas.clone()))
            .upload(&access, upload("x.html"), body)
            .await;
        assert!(
            matches!(&result, Err(FileError::UnsupportedType { content_type }) if content_type == "text/html"),
            "{result:?}"
        );
        let _all = quotas.try_consume(&access, Quota::StorageBytes, 1000).await.expect("the whole quota is free again");
    }

    #[tokio::test]
    async fn an_oversize_upload_is_cut_off_leaves_no_row_and_no_object_and_gives_its_quota_back() {
        let quotas = quotas(1000);
        let access = access(BuiltinRole::Member);
        let mut storage = MockObjectStorage::new();
        storage.expect_put().times(1).returning(|_, _, limit| Err(StorageError::TooLarge { limit }));
        storage.expect_delete().times(1).returning(|_| Ok(()));
        let (body, _) = source(&[b"text"]);
        let result = service(MockFileRepository::new(), storage, Some(quotas.clone()))
            .upload(&access, NewUpload { name: "big.txt".into(), size_bound: Some(5000) }, body)
            .await;
        assert!(matches!(result, Err(FileError::TooLarge { limit: 1000 })), "{result:?}");
        let _all = quotas.try_consume(&access, Quota::StorageBytes, 1000).await.expect("nothing kept");
    }

    #[tokio::test]
    async fn a_failed_record_removes_the_stored_object_and_gives_the_quota_back() {
        let quotas = quotas(1000);
        let access = access(BuiltinRole::Member);
        let stored_key = Arc::new(Mutex::new(None));
        let mut storage = MockObjectStorage::new();
        let seen = stored_key.clone();
        storage.expect_put().returning(move |key, _, _| {
            *seen.lock().expect("lock") = Some(*key);
            Ok(StoredBlob { size: 5, sha256: "bb".repeat(32) })
        });
        let deleted = stored_key.clone();
        storage
            .expect_delete()
            .times(1)
            .withf(move |key| Some(*key) == *deleted.lock().expect("lock"))
            .returning(|_| Ok(()));
        let mut files = MockFileRepository::new();
        files.expect_create().returning(|_, _| Err(StoreError::Unavailable(anyhow::anyhow!("down"))));
        let (body, _) = source(&[b"hello"]);
        let result = service(files, storage, Some(quotas.clone())).upload(&access, upload("a.txt"), body).await;
        assert!(matches!(result, Err(FileError::Tenancy(TenancyError::Dependency(_)))), "{result:?}");
        let _all = quotas.try_consume(&access, Quota::StorageBytes, 1000).await.expect("nothing kept");
    }

    #[tokio::test]
    async fn a_stored_upload_keeps_only_its_own_size_of_the_reservation() {
        let quotas = quotas(1000);
        let access = access(BuiltinRole::Member);
        let mut storage = MockObjectStorage::new();
        storage.expect_put().returning(|_, _, _| Ok(StoredBlob { size: 5, sha256: "cc".repeat(32) }));
        let mut files = MockFileRepository::new();
        files.expect_create().returning(|_, _| Ok(()));
        let (body, _) = source(&[b"hello"]);
        service(files, storage, Some(quotas.clone())).upload(&access, upload("a.txt"), body).await.expect("stored");
        assert!(quotas.try_consume(&access, Quota::StorageBytes, 996).await.is_err(), "5 bytes are used");
        let _all =
            quotas.try_consume(&access, Quota::StorageBytes, 995).await.expect("the rest of the bound came back");
    }

    #[tokio::test]
    async fn a_storage_quota_refusal_stores_nothing() {
        let quotas = quotas(10);
        let access = access(BuiltinRole::Member);
        let (body, pulled) = source(&[b"hello"]);
        let result = service(MockFileRepository::new(), MockObjectStorage::new(), Some(quotas))
            .upload(&access, NewUpload { name: "a.txt".into(), size_bound: Some(500) }, body)
            .await;
        assert!(
            matches!(&result, Err(FileError::Tenancy(TenancyError::QuotaExceeded(refusal))) if refusal.quota == Quota::StorageBytes),
            "{result:?}"
        );
        assert_eq!(pulled.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn presigning_on_a_store_that_cannot_sign_is_refused_with_nothing_reserved() {
        let quotas = quotas(1000);
        let access = access(BuiltinRole::Member);
        let mut storage = MockObjectStorage::new();
        storage.expect_presign_put().returning(|_, _| Ok(None));
        let result = service(MockFileRepository::new(), storage, Some(quotas.clone()))
            .presign_upload(&access, "a.pdf", 100, "application/pdf")
            .await;
        assert!(matches!(result, Err(FileError::PresignUnsupported)), "{result:?}");
        let _all = quotas.try_consume(&access, Quota::StorageBytes, 1000).await.expect("nothing reserved");
        let refused = service(MockFileRepository::new(), MockObjectStorage::new(), None)
            .presign_upload(&access, "a.html", 100, "text/html; charset=utf-8")
            .await;
        assert!(matches!(refused, Err(FileError::UnsupportedType { .. })), "{refused:?}");
    }

    fn pending(access: &OrgAccess, size: u64) -> FileRecord {
        FileRecord {
            id: FileId::from_uuid(uuid::Uuid::now_v7()),
            org_id: access.org_id,
            name: "a.pdf".into(),
            size,
            content_type: "application/pdf".into(),
            sha256: None,
            status: FileStatus::Pending,
            created_at: start(),
            expires_at: Some(start() + chrono::Duration::minutes(15)),
        }
    }

    #[tokio::test]
    async fn a_completion_with_another_size_discards_the_upload() {
        let access = access(BuiltinRole::Member);
        let upload = pending(&access, 100);
        let id = upload.id;
        let mut files = MockFileRepository::new();
        let found = upload.clone();
        files.expect_get().returning(move |_, _| Ok(Some(found.clone())));
        let discarded = upload.clone();
        files
            .expect_discard_pending()
            .times(1)
            .with(eq(access.org_id), eq(id))
            .returning(move |_, _| Ok(Some(discarded.clone())));
        let mut storage = MockObjectStorage::new();
        storage.expect_head().returning(|key| Ok(ObjectInfo { key: *key, size: 99, last_modified: start() }));
        storage.expect_delete().times(1).returning(|_| Ok(()));
        let result = service(files, storage, None).complete(&access, id).await;
        assert!(matches!(result, Err(FileError::UploadMismatch { expected: 100, found: 99 })), "{result:?}");
    }

    #[tokio::test]
    async fn a_completion_before_the_put_leaves_the_upload_pending() {
        let access = access(BuiltinRole::Member);
        let upload = pending(&access, 100);
        let id = upload.id;
        let mut files = MockFileRepository::new();
        files.expect_get().returning(move |_, _| Ok(Some(upload.clone())));
        let mut storage = MockObjectStorage::new();
        storage.expect_head().returning(|_| Err(StorageError::NotFound));
        let result = service(files, storage, None).complete(&access, id).await;
        assert!(matches!(result, Err(FileError::UploadMissing)), "{result:?}");
    }

    #[tokio::test]
    async fn the_sweeper_removes_expired_uploads_and_orphans_but_never_an_object_with_a_row() {
        let access = access(BuiltinRole::Member);
        let expired = pending(&access, 10);
        let expired_key = ObjectKey::new(expired.org_id, expired.id.as_uuid());
        let kept = ObjectKey::new(access.org_id, uuid::Uuid::now_v7());
        let orphan = ObjectKey::new(access.org_id, uuid::Uuid::now_v7());
        let mut files = MockFileRepository::new();
        let once = Mutex::new(Some(expired.clone()));
        files
            .expect_expired_pending()
            .returning(move |_, _| Ok(once.lock().expect("lock").take().into_iter().collect()));
        let discarded = expired.clone();
        files.expect_discard_pending().times(1).returning(move |_, _| Ok(Some(discarded.clone())));
        files
            .expect_existing()
            .returning(move |ids| Ok(ids.iter().copied().filter(|id| id.as_uuid() == kept.file_id()).collect()));
        let mut storage = MockObjectStorage::new();
        storage.expect_list_older_than().returning(move |before, after, _| {
            assert_eq!(before, start() - chrono::Duration::hours(1), "only objects older than an hour");
            assert_eq!(after, None);
            Ok([kept, orphan].iter().map(|key| ObjectInfo { key: *key, size: 1, last_modified: start() }).collect())
        });
        storage.expect_delete().times(1).with(eq(expired_key)).returning(|_| Ok(()));
        storage.expect_delete().times(1).with(eq(orphan)).returning(|_| Ok(()));
        let sweeper = FileSweeper::new(Arc::new(service(files, storage, None)));
        assert!(matches!(sweeper.step().await.expect("step"), StepOutcome::Idle { .. }));
    }
}
