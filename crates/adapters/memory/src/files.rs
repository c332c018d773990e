//! Files' metadata rows over a [`MemoryDatabase`].

use chrono::{DateTime, Utc};
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::files::FileStatus;
use tenantry_domain::{FileId, OrgId};
use tenantry_ports::{Completion, FileRecord, FileRepository, StoreError};

use crate::database::{MemoryDatabase, Tables, missing};

fn page(limit: u32) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// [`FileRepository`] in memory: a row and its `file.uploaded` / `file.deleted` entry (and
/// webhook event) are written in one critical section.
#[derive(Clone, Debug)]
pub struct InMemoryFileRepository {
    db: MemoryDatabase,
}

impl InMemoryFileRepository {
    /// A view over `db`.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }

    fn insert(&self, file: &FileRecord, audit: Option<&AuditEvent>) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if tables.files.contains_key(&file.id.as_uuid()) {
                return Err(StoreError::Conflict(tenantry_ports::Conflict::Duplicate));
            }
            if !tables.org_exists(file.org_id) {
                return Err(missing("organization"));
            }
            if let Some(audit) = audit {
                tables.append(audit);
            }
            tables.files.insert(file.id.as_uuid(), file.clone());
            Ok(())
        })
    }
}

fn find(tables: &Tables, org_id: OrgId, id: FileId, status: FileStatus) -> Option<&FileRecord> {
    tables.files.get(&id.as_uuid()).filter(|file| file.org_id == org_id && file.status == status)
}

#[async_trait::async_trait]
impl FileRepository for InMemoryFileRepository {
    async fn create(&self, file: &FileRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        self.insert(file, Some(audit))
    }

    async fn create_pending(&self, file: &FileRecord) -> Result<(), StoreError> {
        self.insert(file, None)
    }

    async fn list(&self, org_id: OrgId, after: Option<FileId>, limit: u32) -> Result<Vec<FileRecord>, StoreError> {
        self.db.read(|tables| {
            Ok(tables
                .files
                .values()
                .filter(|file| file.org_id == org_id && file.status == FileStatus::Ready)
                .filter(|file| after.is_none_or(|after| file.id > after))
                .take(page(limit))
                .cloned()
                .collect())
        })
    }

    async fn get(&self, org_id: OrgId, id: FileId) -> Result<Option<FileRecord>, StoreError> {
        self.db.read(|tables| Ok(tables.files.get(&id.as_uuid()).filter(|file| file.org_id == org_id).cloned()))
    }

    async fn complete(
        &self,
        org_id: OrgId,
        id: FileId,
        completion: &Completion,
        audit: &AuditEvent,
    ) -> Result<Option<FileRecord>, StoreError> {
        self.db.write(|tables| {
            if find(tables, org_id, id, FileStatus::Pending).is_none() {
                return Ok(None);
            }
            tables.append(audit);
            let Some(file) = tables.files.get_mut(&id.as_uuid()) else {
                return Ok(None);
            };
            file.size = completion.size;
            file.content_type.clone_from(&completion.content_type);
            file.sha256 = Some(completion.sha256.clone());
            file.status = FileStatus::Ready;
            file.expires_at = None;
            Ok(Some(file.clone()))
        })
    }

    async fn delete(&self, org_id: OrgId, id: FileId, audit: &AuditEvent) -> Result<Option<FileRecord>, StoreError> {
        self.db.write(|tables| {
            if find(tables, org_id, id, FileStatus::Ready).is_none() {
                return Ok(None);
            }
            tables.append(audit);
            Ok(tables.files.remove(&id.as_uuid()))
        })
    }

    async fn discard_pending(&self, org_id: OrgId, id: FileId) -> Result<Option<FileRecord>, StoreError> {
        self.db.write(|tables| {
            if find(tables, org_id, id, FileStatus::Pending).is_none() {
                return Ok(None);
            }
            Ok(tables.files.remove(&id.as_uuid()))
        })
    }

    async fn expired_pending(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<FileRecord>, StoreError> {
        self.db.read(|tables| {
            let mut expired: Vec<&FileRecord> = tables
                .files
                .values()
                .filter(|file| file.status == FileStatus::Pending && file.expires_at.is_some_and(|at| at < now))
                .collect();
            expired.sort_by_key(|file| (file.expires_at, file.id));
            Ok(expired.into_iter().take(page(limit)).cloned().collect())
        })
    }

    async fn existing(&self, ids: &[FileId]) -> Result<Vec<FileId>, StoreError> {
        self.db.read(|tables| Ok(ids.iter().copied().filter(|id| tables.files.contains_key(&id.as_uuid())).collect()))
    }
}
