//! [`RoleRepository`] on sea-orm.

use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::tenancy::{PermissionSet, RoleName};
use tenantry_domain::{OrgId, RoleId};
use tenantry_ports::{Conflict, CustomRole, RoleRepository, StoreError};

use crate::SqlDatabase;
use crate::database::Scope;
use crate::entities::{invitations, memberships, roles};
use crate::errors::{store_error, taken};

/// [`RoleRepository`] on SQL. Permissions are stored as their comma-separated wire names.
#[derive(Clone)]
pub struct SqlRoleRepository {
    db: SqlDatabase,
}

impl SqlRoleRepository {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }
}

fn role_from(model: roles::Model) -> Result<CustomRole, StoreError> {
    let corrupt = |what: &str| StoreError::Unexpected(anyhow::anyhow!("stored role {what} is invalid"));
    let names: Vec<&str> = model.permissions.split(',').filter(|n| !n.is_empty()).collect();
    Ok(CustomRole {
        id: RoleId::from_uuid(model.id),
        org_id: OrgId::from_uuid(model.org_id),
        name: RoleName::parse(&model.name).map_err(|_| corrupt("name"))?,
        permissions: PermissionSet::parse(&names).map_err(|_| corrupt("permissions"))?,
        created_at: model.created_at,
        updated_at: model.updated_at,
    })
}

fn encode(permissions: PermissionSet) -> String {
    permissions.names().join(",")
}

#[async_trait::async_trait]
impl RoleRepository for SqlRoleRepository {
    #[tracing::instrument(name = "adapter.sql.roles.list", skip_all, fields(org_id = %org_id))]
    async fn list(&self, org_id: OrgId, after: Option<String>, limit: u32) -> Result<Vec<CustomRole>, StoreError> {
        let mut query = roles::Entity::find().filter(roles::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(after) = after {
            query = query.filter(roles::Column::Name.gt(after));
        }
        let query = query.order_by_asc(roles::Column::Name).limit(u64::from(limit));
        let found = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.all(txn).await })).await?;
        found.into_iter().map(role_from).collect()
    }

    #[tracing::instrument(name = "adapter.sql.roles.by_name", skip_all, fields(org_id = %org_id))]
    async fn by_name(&self, org_id: OrgId, name: &str) -> Result<Option<CustomRole>, StoreError> {
        let query = roles::Entity::find()
            .filter(roles::Column::OrgId.eq(org_id.as_uuid()))
            .filter(roles::Column::Name.eq(name));
        let found = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.one(txn).await })).await?;
        found.map(role_from).transpose()
    }

    #[tracing::instrument(name = "adapter.sql.roles.get", skip_all, fields(org_id = %org_id))]
    async fn get(&self, org_id: OrgId, id: RoleId) -> Result<Option<CustomRole>, StoreError> {
        let query = roles::Entity::find()
            .filter(roles::Column::OrgId.eq(org_id.as_uuid()))
            .filter(roles::Column::Id.eq(id.as_uuid()));
        let found = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.one(txn).await })).await?;
        found.map(role_from).transpose()
    }

    #[tracing::instrument(name = "adapter.sql.roles.create", skip_all, fields(org_id = %role.org_id))]
    async fn create(&self, role: &CustomRole, audit: &AuditEvent) -> Result<(), StoreError> {
        let txn = self.db.tenant(role.org_id).await?;
        crate::audit::append(&txn, audit).await?;
        roles::Entity::insert(roles::ActiveModel {
            id: Set(role.id.as_uuid()),
            org_id: Set(role.org_id.as_uuid()),
            name: Set(role.name.as_str().to_owned()),
            permissions: Set(encode(role.permissions)),
            created_at: Set(role.created_at),
            updated_at: Set(role.updated_at),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(taken(Conflict::RoleNameTaken))?;
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.roles.update", skip_all, fields(org_id = %role.org_id))]
    async fn update(&self, role: &CustomRole, audit: &AuditEvent) -> Result<(), StoreError> {
        let txn = self.db.tenant(role.org_id).await?;
        crate::audit::append(&txn, audit).await?;
        let old_name = || {
            sea_orm::sea_query::Query::select()
                .column(roles::Column::Name)
                .from(roles::Entity)
                .and_where(roles::Column::Id.eq(role.id.as_uuid()))
                .and_where(roles::Column::OrgId.eq(role.org_id.as_uuid()))
                .to_owned()
        };
        // Pending invitations follow a rename too, or accepting one would name a missing role.
        invitations::Entity::update_many()
            .col_expr(invitations::Column::Role, Expr::value(role.name.as_str()))
            .filter(invitations::Column::OrgId.eq(role.org_id.as_uuid()))
            .filter(invitations::Column::AcceptedAt.is_null())
            .filter(invitations::Column::RevokedAt.is_null())
            .filter(invitations::Column::Role.in_subquery(old_name()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        // Members follow a rename. Written first (the old name comes from a subquery), so the
        // transaction never reads before it writes (SQLite would refuse a stale snapshot).
        memberships::Entity::update_many()
            .col_expr(memberships::Column::Role, Expr::value(role.name.as_str()))
            .filter(memberships::Column::OrgId.eq(role.org_id.as_uuid()))
            .filter(memberships::Column::Role.in_subquery(old_name()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        let previous = roles::Entity::update_many()
            .col_expr(roles::Column::Name, Expr::value(role.name.as_str()))
            .col_expr(roles::Column::Permissions, Expr::value(encode(role.permissions)))
            .col_expr(roles::Column::UpdatedAt, Expr::value(role.updated_at))
            .filter(roles::Column::OrgId.eq(role.org_id.as_uuid()))
            .filter(roles::Column::Id.eq(role.id.as_uuid()))
            .exec_with_returning(&txn)
            .await
            .map_err(taken(Conflict::RoleNameTaken))?;
        if previous.is_empty() {
            return Err(StoreError::NotFound);
        }
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.roles.delete", skip_all, fields(org_id = %org_id))]
    async fn delete(&self, org_id: OrgId, id: RoleId, audit: &AuditEvent) -> Result<(), StoreError> {
        let txn = self.db.tenant(org_id).await?;
        crate::audit::append(&txn, audit).await?;
        let deleted = roles::Entity::delete_many()
            .filter(roles::Column::OrgId.eq(org_id.as_uuid()))
            .filter(roles::Column::Id.eq(id.as_uuid()))
            .exec_with_returning(&txn)
            .await
            .map_err(store_error)?;
        let Some(role) = deleted.into_iter().next() else {
            return Err(StoreError::NotFound);
        };
        let holders = memberships::Entity::find()
            .filter(memberships::Column::OrgId.eq(org_id.as_uuid()))
            .filter(memberships::Column::Role.eq(role.name.as_str()))
            .count(&txn)
            .await
            .map_err(store_error)?;
        // An invitation still open (not accepted, revoked or expired) would grant it later.
        let invited = invitations::Entity::find()
            .filter(invitations::Column::OrgId.eq(org_id.as_uuid()))
            .filter(invitations::Column::Role.eq(role.name.as_str()))
            .filter(invitations::Column::AcceptedAt.is_null())
            .filter(invitations::Column::RevokedAt.is_null())
            // The change's own time, from the application's clock.
            .filter(invitations::Column::ExpiresAt.gt(audit.created_at))
            .count(&txn)
            .await
            .map_err(store_error)?;
        if holders > 0 || invited > 0 {
            // Rolled back on drop: the role stays while members or open invitations hold it.
            return Err(StoreError::Conflict(Conflict::RoleInUse));
        }
        txn.commit().await.map_err(store_error)
    }
}
