//! Files' metadata: one row per stored object, written with its audit entry (the
//! `file.uploaded` and `file.deleted` events) in the organization's transaction. The bytes are
//! the [`crate::ObjectStorage`]'s.

use chrono::{DateTime, Utc};
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::files::FileStatus;
use tenantry_domain::{FileId, OrgId};

use crate::StoreError;

/// A file's metadata row: what the organization sees of a file, kept apart from the bytes so
/// listing and quota checks never touch object storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Id (UUIDv7): also the object's key inside the org's prefix.
    pub id: FileId,
    /// Its organization.
    pub org_id: OrgId,
    /// The sanitised name, for display and `content-disposition` only.
    pub name: String,
    /// Bytes stored (for a pending upload: the size it announced, which its storage
    /// reservation covers).
    pub size: u64,
    /// The content type sniffed from the bytes (for a pending upload: the declared one until
    /// completion sniffs the stored bytes).
    pub content_type: String,
    /// SHA-256 of the bytes, lower-case hex; `None` until a pending upload is completed.
    pub sha256: Option<String>,
    /// Ready, or a presigned upload still pending.
    pub status: FileStatus,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When a pending upload expires unless completed; `None` once ready.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What completing a pending upload writes: the facts established from the stored bytes, which
/// replace what the client declared when it asked for the presigned URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The stored size (equal to the announced one, or the completion is refused).
    pub size: u64,
    /// The content type sniffed from the stored bytes.
    pub content_type: String,
    /// Their SHA-256.
    pub sha256: String,
}

/// Files' metadata rows. Tenant methods take the org id first and see only its rows; the two
/// sweeper methods cross tenants by nature and say so.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait FileRepository: Send + Sync {
    /// Stores a ready `file` with `audit` (its `file.uploaded`) in the same transaction, so the
    /// row, its entry and its webhook event commit together or not at all.
    ///
    /// # Errors
    /// `Conflict(Duplicate)` for a reused id; `Unavailable`, `Unexpected`.
    async fn create(&self, file: &FileRecord, audit: &AuditEvent) -> Result<(), StoreError>;

    /// Stores a pending presigned upload's row (not audited: nothing is stored yet).
    ///
    /// # Errors
    /// `Conflict(Duplicate)` for a reused id; `Unavailable`, `Unexpected`.
    async fn create_pending(&self, file: &FileRecord) -> Result<(), StoreError>;

    /// A page of the organization's ready files, oldest first: at most `limit`, after `after`.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn list(&self, org_id: OrgId, after: Option<FileId>, limit: u32) -> Result<Vec<FileRecord>, StoreError>;

    /// One file of the organization, ready or pending.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn get(&self, org_id: OrgId, id: FileId) -> Result<Option<FileRecord>, StoreError>;

    /// Makes a pending upload ready with what its completion found, with `audit`
    /// (`file.uploaded`), in one transaction. `None`, with nothing written, when there is no
    /// such pending upload (completed already, expired and swept, or never presigned); the
    /// ready record otherwise.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn complete(
        &self,
        org_id: OrgId,
        id: FileId,
        completion: &Completion,
        audit: &AuditEvent,
    ) -> Result<Option<FileRecord>, StoreError>;

    /// Deletes a ready file's row with `audit` (`file.deleted`) in one transaction and returns
    /// what was deleted; `None`, with nothing written, when there is no such ready file.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn delete(&self, org_id: OrgId, id: FileId, audit: &AuditEvent) -> Result<Option<FileRecord>, StoreError>;

    /// Deletes a pending upload's row (refused at completion, or expired) and returns it;
    /// `None` when it is not pending (any more). Not audited: nothing was ever stored.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn discard_pending(&self, org_id: OrgId, id: FileId) -> Result<Option<FileRecord>, StoreError>;

    /// Up to `limit` pending uploads of any organization that expired before `now`, oldest
    /// first: the sweeper's work (cross-tenant).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn expired_pending(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<FileRecord>, StoreError>;

    /// Which of `ids` have a row (ready or pending), in any organization: the sweeper deletes
    /// objects whose id has none (cross-tenant).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn existing(&self, ids: &[FileId]) -> Result<Vec<FileId>, StoreError>;
}
