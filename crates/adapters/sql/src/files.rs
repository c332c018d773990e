//! [`FileRepository`] on sea-orm. Every organization's request runs in its tenant
//! transaction; the sweeper's two scans (expired pending uploads, which ids have rows) are
//! cross-tenant by nature and run in declared platform transactions.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::files::FileStatus;
use tenantry_domain::{FileId, OrgId};
use tenantry_ports::{Completion, FileRecord, FileRepository, StoreError};

use crate::SqlDatabase;
use crate::database::Scope;
use crate::entities::files;
use crate::errors::{corrupt, store_error};

/// [`FileRepository`] on SQL (PostgreSQL or SQLite).
#[derive(Clone)]
pub struct SqlFileRepository {
    db: SqlDatabase,
}

impl SqlFileRepository {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }

    async fn insert(&self, file: &FileRecord, audit: Option<&AuditEvent>) -> Result<(), StoreError> {
        let model = files::ActiveModel {
            id: Set(file.id.as_uuid()),
            org_id: Set(file.org_id.as_uuid()),
            name: Set(file.name.clone()),
            size: Set(size_of(file.size)?),
            content_type: Set(file.content_type.clone()),
            sha256: Set(file.sha256.clone()),
            status: Set(file.status.as_str().to_owned()),
            created_at: Set(file.created_at),
            expires_at: Set(file.expires_at),
        };
        let txn = self.db.tenant(file.org_id).await?;
        if let Some(audit) = audit {
            crate::audit::append(&txn, audit).await?;
        }
        files::Entity::insert(model).exec_without_returning(&txn).await.map_err(store_error)?;
        txn.commit().await.map_err(store_error)
    }
}

fn record_from(model: files::Model) -> Result<FileRecord, StoreError> {
    Ok(FileRecord {
        id: FileId::from_uuid(model.id),
        org_id: OrgId::from_uuid(model.org_id),
        name: model.name,
        size: u64::try_from(model.size).map_err(|_| corrupt("file size"))?,
        content_type: model.content_type,
        sha256: model.sha256,
        status: FileStatus::parse(&model.status).ok_or_else(|| corrupt("file status"))?,
        created_at: model.created_at,
        expires_at: model.expires_at,
    })
}

fn size_of(size: u64) -> Result<i64, StoreError> {
    i64::try_from(size).map_err(|_| StoreError::Unexpected(anyhow::anyhow!("a file of {size} bytes")))
}

fn one(org_id: OrgId, id: FileId, status: FileStatus) -> sea_orm::Select<files::Entity> {
    files::Entity::find()
        .filter(files::Column::OrgId.eq(org_id.as_uuid()))
        .filter(files::Column::Id.eq(id.as_uuid()))
        .filter(files::Column::Status.eq(status.as_str()))
}

/// Deletes the file `id` of `org_id` in `status` within `txn` and commits; the row as it was,
/// or `None` (nothing committed, not an audit entry written before) when there is no such
/// file or another transaction took it first.
async fn take(
    txn: sea_orm::DatabaseTransaction,
    org_id: OrgId,
    id: FileId,
    status: FileStatus,
) -> Result<Option<FileRecord>, StoreError> {
    let Some(found) = one(org_id, id, status).one(&txn).await.map_err(store_error)? else {
        return Ok(None);
    };
    let deleted = files::Entity::delete_many()
        .filter(files::Column::OrgId.eq(org_id.as_uuid()))
        .filter(files::Column::Id.eq(id.as_uuid()))
        .filter(files::Column::Status.eq(status.as_str()))
        .exec(&txn)
        .await
        .map_err(store_error)?;
    if deleted.rows_affected != 1 {
        return Ok(None);
    }
    txn.commit().await.map_err(store_error)?;
    record_from(found).map(Some)
}

#[async_trait::async_trait]
impl FileRepository for SqlFileRepository {
    #[tracing::instrument(name = "adapter.sql.files.create", skip_all, fields(org_id = %file.org_id))]
    async fn create(&self, file: &FileRecord, audit: &AuditEvent) -> Result<(), StoreError> {
        self.insert(file, Some(audit)).await
    }

    #[tracing::instrument(name = "adapter.sql.files.create_pending", skip_all, fields(org_id = %file.org_id))]
    async fn create_pending(&self, file: &FileRecord) -> Result<(), StoreError> {
        self.insert(file, None).await
    }

    #[tracing::instrument(name = "adapter.sql.files.list", skip_all, fields(org_id = %org_id))]
    async fn list(&self, org_id: OrgId, after: Option<FileId>, limit: u32) -> Result<Vec<FileRecord>, StoreError> {
        let mut query = files::Entity::find()
            .filter(files::Column::OrgId.eq(org_id.as_uuid()))
            .filter(files::Column::Status.eq(FileStatus::Ready.as_str()));
        if let Some(after) = after {
            query = query.filter(files::Column::Id.gt(after.as_uuid()));
        }
        // Ids are UUIDv7: id order is creation order, and a total one for the cursor.
        let query = query.order_by_asc(files::Column::Id).limit(u64::from(limit));
        let found = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.all(txn).await })).await?;
        found.into_iter().map(record_from).collect()
    }

    #[tracing::instrument(name = "adapter.sql.files.get", skip_all, fields(org_id = %org_id))]
    async fn get(&self, org_id: OrgId, id: FileId) -> Result<Option<FileRecord>, StoreError> {
        let query = files::Entity::find()
            .filter(files::Column::OrgId.eq(org_id.as_uuid()))
            .filter(files::Column::Id.eq(id.as_uuid()));
        let found = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.one(txn).await })).await?;
        found.map(record_from).transpose()
    }

    #[tracing::instrument(name = "adapter.sql.files.complete", skip_all, fields(org_id = %org_id))]
    async fn complete(
        &self,
        org_id: OrgId,
        id: FileId,
        completion: &Completion,
        audit: &AuditEvent,
    ) -> Result<Option<FileRecord>, StoreError> {
        let txn = self.db.tenant(org_id).await?;
        // The audit head first: the organization's write lock, so two completions of one
        // upload cannot both find it pending.
        crate::audit::append(&txn, audit).await?;
        let Some(pending) = one(org_id, id, FileStatus::Pending).one(&txn).await.map_err(store_error)? else {
            return Ok(None);
        };
        let updated = files::Entity::update_many()
            .col_expr(files::Column::Size, Expr::value(size_of(completion.size)?))
            .col_expr(files::Column::ContentType, Expr::value(completion.content_type.clone()))
            .col_expr(files::Column::Sha256, Expr::value(completion.sha256.clone()))
            .col_expr(files::Column::Status, Expr::value(FileStatus::Ready.as_str()))
            .col_expr(files::Column::ExpiresAt, Expr::value(Option::<DateTime<Utc>>::None))
            .filter(files::Column::OrgId.eq(org_id.as_uuid()))
            .filter(files::Column::Id.eq(id.as_uuid()))
            .filter(files::Column::Status.eq(FileStatus::Pending.as_str()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        if updated.rows_affected != 1 {
            return Ok(None);
        }
        txn.commit().await.map_err(store_error)?;
        let mut ready = record_from(pending)?;
        ready.size = completion.size;
        ready.content_type.clone_from(&completion.content_type);
        ready.sha256 = Some(completion.sha256.clone());
        ready.status = FileStatus::Ready;
        ready.expires_at = None;
        Ok(Some(ready))
    }

    #[tracing::instrument(name = "adapter.sql.files.delete", skip_all, fields(org_id = %org_id))]
    async fn delete(&self, org_id: OrgId, id: FileId, audit: &AuditEvent) -> Result<Option<FileRecord>, StoreError> {
        let txn = self.db.tenant(org_id).await?;
        crate::audit::append(&txn, audit).await?;
        take(txn, org_id, id, FileStatus::Ready).await
    }

    #[tracing::instrument(name = "adapter.sql.files.discard_pending", skip_all, fields(org_id = %org_id))]
    async fn discard_pending(&self, org_id: OrgId, id: FileId) -> Result<Option<FileRecord>, StoreError> {
        let txn = self.db.tenant(org_id).await?;
        take(txn, org_id, id, FileStatus::Pending).await
    }

    #[tracing::instrument(name = "adapter.sql.files.expired_pending", skip_all)]
    async fn expired_pending(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<FileRecord>, StoreError> {
        let query = files::Entity::find()
            .filter(files::Column::Status.eq(FileStatus::Pending.as_str()))
            .filter(files::Column::ExpiresAt.lt(now))
            .order_by_asc(files::Column::ExpiresAt)
            .limit(u64::from(limit));
        let found = self.db.read(Scope::Platform, |txn| Box::pin(async move { query.all(txn).await })).await?;
        found.into_iter().map(record_from).collect()
    }

    #[tracing::instrument(name = "adapter.sql.files.existing", skip_all)]
    async fn existing(&self, ids: &[FileId]) -> Result<Vec<FileId>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let query = files::Entity::find()
            .select_only()
            .column(files::Column::Id)
            .filter(files::Column::Id.is_in(ids.iter().map(FileId::as_uuid)))
            .into_tuple::<uuid::Uuid>();
        let found = self.db.read(Scope::Platform, |txn| Box::pin(async move { query.all(txn).await })).await?;
        Ok(found.into_iter().map(FileId::from_uuid).collect())
    }
}
