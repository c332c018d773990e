//! [`ApiKeyRepository`] on sea-orm.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::tenancy::PermissionSet;
use tenantry_domain::{ApiKeyId, OrgId, UserId};
use tenantry_ports::{ApiKey, ApiKeyRepository, StoreError};

use crate::SqlDatabase;
use crate::database::Scope;
use crate::entities::api_keys;
use crate::errors::store_error;

/// [`ApiKeyRepository`] on SQL.
#[derive(Clone)]
pub struct SqlApiKeyRepository {
    db: SqlDatabase,
}

impl SqlApiKeyRepository {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }
}

pub(crate) fn key_from(model: api_keys::Model) -> Result<(ApiKey, String), StoreError> {
    let names: Vec<&str> = model.permissions.split(',').filter(|n| !n.is_empty()).collect();
    let permissions = PermissionSet::parse(&names)
        .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("stored API key permissions are invalid")))?;
    Ok((
        ApiKey {
            id: ApiKeyId::from_uuid(model.id),
            org_id: OrgId::from_uuid(model.org_id),
            name: model.name,
            public_id: model.public_id,
            permissions,
            created_by: UserId::from_uuid(model.created_by),
            created_at: model.created_at,
            expires_at: model.expires_at,
            last_used_at: model.last_used_at,
            revoked_at: model.revoked_at,
        },
        model.secret_hash,
    ))
}

async fn insert<C: ConnectionTrait>(txn: &C, key: &ApiKey, secret_hash: &str) -> Result<(), StoreError> {
    api_keys::Entity::insert(api_keys::ActiveModel {
        id: Set(key.id.as_uuid()),
        org_id: Set(key.org_id.as_uuid()),
        name: Set(key.name.clone()),
        public_id: Set(key.public_id.clone()),
        secret_hash: Set(secret_hash.to_owned()),
        permissions: Set(key.permissions.names().join(",")),
        created_by: Set(key.created_by.as_uuid()),
        created_at: Set(key.created_at),
        expires_at: Set(key.expires_at),
        last_used_at: Set(None),
        revoked_at: Set(None),
    })
    .exec_without_returning(txn)
    .await
    .map_err(store_error)?;
    Ok(())
}

#[async_trait::async_trait]
impl ApiKeyRepository for SqlApiKeyRepository {
    #[tracing::instrument(name = "adapter.sql.api_keys.create", skip_all, fields(org_id = %key.org_id))]
    async fn create(&self, key: &ApiKey, secret_hash: &str, audit: &AuditEvent) -> Result<(), StoreError> {
        let txn = self.db.tenant(key.org_id).await?;
        crate::audit::append(&txn, audit).await?;
        insert(&txn, key, secret_hash).await?;
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.api_keys.list", skip_all, fields(org_id = %org_id))]
    async fn list(&self, org_id: OrgId, before: Option<ApiKeyId>, limit: u32) -> Result<Vec<ApiKey>, StoreError> {
        let mut query = api_keys::Entity::find()
            .filter(api_keys::Column::OrgId.eq(org_id.as_uuid()))
            .filter(api_keys::Column::RevokedAt.is_null());
        if let Some(before) = before {
            query = query.filter(api_keys::Column::Id.lt(before.as_uuid()));
        }
        // Ids are UUIDv7: id order is creation order, and a total one for the cursor.
        let query = query.order_by_desc(api_keys::Column::Id).limit(u64::from(limit));
        let found = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.all(txn).await })).await?;
        found.into_iter().map(|model| key_from(model).map(|(key, _)| key)).collect()
    }

    #[tracing::instrument(name = "adapter.sql.api_keys.get", skip_all, fields(org_id = %org_id))]
    async fn get(&self, org_id: OrgId, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        let query = api_keys::Entity::find()
            .filter(api_keys::Column::OrgId.eq(org_id.as_uuid()))
            .filter(api_keys::Column::Id.eq(id.as_uuid()));
        let found = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.one(txn).await })).await?;
        found.map(|model| key_from(model).map(|(key, _)| key)).transpose()
    }

    #[tracing::instrument(name = "adapter.sql.api_keys.by_public_id", skip_all)]
    async fn by_public_id(&self, public_id: &str) -> Result<Option<(ApiKey, String)>, StoreError> {
        let query = api_keys::Entity::find().filter(api_keys::Column::PublicId.eq(public_id));
        let found = self.db.read(Scope::Platform, |txn| Box::pin(async move { query.one(txn).await })).await?;
        found.map(key_from).transpose()
    }

    #[tracing::instrument(name = "adapter.sql.api_keys.by_public_id_in", skip_all, fields(org_id = %org_id))]
    async fn by_public_id_in(&self, org_id: OrgId, public_id: &str) -> Result<Option<(ApiKey, String)>, StoreError> {
        let query = api_keys::Entity::find()
            .filter(api_keys::Column::OrgId.eq(org_id.as_uuid()))
            .filter(api_keys::Column::PublicId.eq(public_id));
        let found = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.one(txn).await })).await?;
        found.map(key_from).transpose()
    }

    #[tracing::instrument(name = "adapter.sql.api_keys.revoke", skip_all, fields(org_id = %org_id))]
    async fn revoke(
        &self,
        org_id: OrgId,
        id: ApiKeyId,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let revoke = api_keys::Entity::update_many()
            .col_expr(api_keys::Column::RevokedAt, Expr::value(now))
            .filter(api_keys::Column::OrgId.eq(org_id.as_uuid()))
            .filter(api_keys::Column::Id.eq(id.as_uuid()))
            .filter(api_keys::Column::RevokedAt.is_null());
        crate::audit::audited_single_row(&self.db, org_id, audit, |txn| {
            Box::pin(async move { Ok(revoke.exec(txn).await?.rows_affected) })
        })
        .await
    }

    #[tracing::instrument(name = "adapter.sql.api_keys.rotate", skip_all, fields(org_id = %replacement.org_id))]
    async fn rotate(
        &self,
        old: ApiKeyId,
        until: DateTime<Utc>,
        replacement: &ApiKey,
        secret_hash: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let txn = self.db.tenant(replacement.org_id).await?;
        crate::audit::append(&txn, audit).await?;
        let now = replacement.created_at;
        let org = replacement.org_id.as_uuid();
        // Still active (a concurrent revoke or rotation did not win)? The transaction wrote
        // first (the audit append), so on SQLite this read holds the write lock already.
        let current = api_keys::Entity::find()
            .filter(api_keys::Column::OrgId.eq(org))
            .filter(api_keys::Column::Id.eq(old.as_uuid()))
            .filter(api_keys::Column::RevokedAt.is_null())
            .filter(
                Condition::any().add(api_keys::Column::ExpiresAt.is_null()).add(api_keys::Column::ExpiresAt.gt(now)),
            )
            .one(&txn)
            .await
            .map_err(store_error)?
            .ok_or(StoreError::NotFound)?;
        // A rotation only ever shortens the old key's life: never past its own expiry.
        let ends = current.expires_at.map_or(until, |at| at.min(until));
        api_keys::Entity::update_many()
            .col_expr(api_keys::Column::ExpiresAt, Expr::value(ends))
            .filter(api_keys::Column::OrgId.eq(org))
            .filter(api_keys::Column::Id.eq(old.as_uuid()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        insert(&txn, replacement, secret_hash).await?;
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.api_keys.touch", skip_all)]
    async fn touch(&self, org_id: OrgId, id: ApiKeyId, now: DateTime<Utc>) -> Result<(), StoreError> {
        let txn = self.db.tenant(org_id).await?;
        api_keys::Entity::update_many()
            .col_expr(api_keys::Column::LastUsedAt, Expr::value(now))
            .filter(api_keys::Column::OrgId.eq(org_id.as_uuid()))
            .filter(api_keys::Column::Id.eq(id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.api_keys.active_created_by", skip_all)]
    async fn active_created_by(&self, user_id: UserId, now: DateTime<Utc>) -> Result<Vec<ApiKey>, StoreError> {
        // A user's keys across the organizations they created them in.
        let query = api_keys::Entity::find()
            .filter(api_keys::Column::CreatedBy.eq(user_id.as_uuid()))
            .filter(api_keys::Column::RevokedAt.is_null())
            .filter(
                Condition::any().add(api_keys::Column::ExpiresAt.is_null()).add(api_keys::Column::ExpiresAt.gt(now)),
            )
            .order_by_asc(api_keys::Column::OrgId);
        let found = self.db.read(Scope::Platform, |txn| Box::pin(async move { query.all(txn).await })).await?;
        found.into_iter().map(|model| key_from(model).map(|(key, _)| key)).collect()
    }

    #[tracing::instrument(name = "adapter.sql.api_keys.revoke_created_by", skip_all)]
    async fn revoke_created_by(&self, user_id: UserId, now: DateTime<Utc>) -> Result<Vec<OrgId>, StoreError> {
        // A disabled account's keys, in every organization it created them in.
        let txn = self.db.platform().await?;
        let revoked = api_keys::Entity::update_many()
            .col_expr(api_keys::Column::RevokedAt, Expr::value(now))
            .filter(api_keys::Column::CreatedBy.eq(user_id.as_uuid()))
            .filter(api_keys::Column::RevokedAt.is_null())
            .exec_with_returning(&txn)
            .await
            .map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        let mut orgs: Vec<OrgId> = revoked.iter().map(|key| OrgId::from_uuid(key.org_id)).collect();
        orgs.sort();
        orgs.dedup();
        Ok(orgs)
    }
}
