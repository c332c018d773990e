//! [`TeamRepository`] on sea-orm.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TryInsertResult,
};
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::{OrgId, TeamId, UserId};
use tenantry_ports::{Conflict, StoreError, Team, TeamRepository};

use crate::SqlDatabase;
use crate::entities::{team_members, teams};
use crate::errors::{meaning, store_error, taken};

/// [`TeamRepository`] on SQL.
#[derive(Clone)]
pub struct SqlTeamRepository {
    db: SqlDatabase,
}

impl SqlTeamRepository {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }

    async fn with_members<C: ConnectionTrait>(
        txn: &C,
        org_id: OrgId,
        models: Vec<teams::Model>,
    ) -> Result<Vec<Team>, StoreError> {
        let ids: Vec<uuid::Uuid> = models.iter().map(|t| t.id).collect();
        let members = team_members::Entity::find()
            .filter(team_members::Column::OrgId.eq(org_id.as_uuid()))
            .filter(team_members::Column::TeamId.is_in(ids))
            .order_by_asc(team_members::Column::CreatedAt)
            .order_by_asc(team_members::Column::UserId)
            .all(txn)
            .await
            .map_err(store_error)?;
        Ok(models
            .into_iter()
            .map(|model| Team {
                id: TeamId::from_uuid(model.id),
                org_id,
                members: members
                    .iter()
                    .filter(|m| m.team_id == model.id)
                    .map(|m| UserId::from_uuid(m.user_id))
                    .collect(),
                name: model.name,
                description: model.description,
                created_at: model.created_at,
                updated_at: model.updated_at,
            })
            .collect())
    }
}

#[async_trait::async_trait]
impl TeamRepository for SqlTeamRepository {
    #[tracing::instrument(name = "adapter.sql.teams.list", skip_all, fields(org_id = %org_id))]
    async fn list(&self, org_id: OrgId, after: Option<String>, limit: u32) -> Result<Vec<Team>, StoreError> {
        let txn = self.db.tenant(org_id).await?;
        let mut query = teams::Entity::find().filter(teams::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(after) = after {
            query = query.filter(teams::Column::Name.gt(after));
        }
        let models =
            query.order_by_asc(teams::Column::Name).limit(u64::from(limit)).all(&txn).await.map_err(store_error)?;
        let teams = Self::with_members(&txn, org_id, models).await?;
        txn.commit().await.map_err(store_error)?;
        Ok(teams)
    }

    #[tracing::instrument(name = "adapter.sql.teams.get", skip_all, fields(org_id = %org_id))]
    async fn get(&self, org_id: OrgId, id: TeamId) -> Result<Option<Team>, StoreError> {
        let txn = self.db.tenant(org_id).await?;
        let model = teams::Entity::find()
            .filter(teams::Column::OrgId.eq(org_id.as_uuid()))
            .filter(teams::Column::Id.eq(id.as_uuid()))
            .one(&txn)
            .await
            .map_err(store_error)?;
        let team = Self::with_members(&txn, org_id, model.into_iter().collect()).await?.into_iter().next();
        txn.commit().await.map_err(store_error)?;
        Ok(team)
    }

    #[tracing::instrument(name = "adapter.sql.teams.create", skip_all, fields(org_id = %team.org_id))]
    async fn create(&self, team: &Team, audit: &AuditEvent) -> Result<(), StoreError> {
        let txn = self.db.tenant(team.org_id).await?;
        crate::audit::append(&txn, audit).await?;
        teams::Entity::insert(teams::ActiveModel {
            id: Set(team.id.as_uuid()),
            org_id: Set(team.org_id.as_uuid()),
            name: Set(team.name.clone()),
            description: Set(team.description.clone()),
            created_at: Set(team.created_at),
            updated_at: Set(team.updated_at),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(taken(Conflict::TeamNameTaken))?;
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.teams.update", skip_all, fields(org_id = %org_id))]
    async fn update(
        &self,
        org_id: OrgId,
        id: TeamId,
        name: &str,
        description: Option<String>,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let update = teams::Entity::update_many()
            .col_expr(teams::Column::Name, Expr::value(name))
            .col_expr(teams::Column::Description, Expr::value(description))
            .col_expr(teams::Column::UpdatedAt, Expr::value(now))
            .filter(teams::Column::OrgId.eq(org_id.as_uuid()))
            .filter(teams::Column::Id.eq(id.as_uuid()));
        let updated = crate::audit::audited_single_row(&self.db, org_id, audit, |txn| {
            Box::pin(async move { Ok(update.exec(txn).await?.rows_affected) })
        })
        .await
        .map_err(meaning(Conflict::TeamNameTaken))?;
        if updated { Ok(()) } else { Err(StoreError::NotFound) }
    }

    #[tracing::instrument(name = "adapter.sql.teams.delete", skip_all, fields(org_id = %org_id))]
    async fn delete(&self, org_id: OrgId, id: TeamId, audit: &AuditEvent) -> Result<(), StoreError> {
        let txn = self.db.tenant(org_id).await?;
        crate::audit::append(&txn, audit).await?;
        team_members::Entity::delete_many()
            .filter(team_members::Column::OrgId.eq(org_id.as_uuid()))
            .filter(team_members::Column::TeamId.eq(id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        let result = teams::Entity::delete_many()
            .filter(teams::Column::OrgId.eq(org_id.as_uuid()))
            .filter(teams::Column::Id.eq(id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        if result.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.teams.add_member", skip_all, fields(org_id = %org_id))]
    async fn add_member(
        &self,
        org_id: OrgId,
        id: TeamId,
        user_id: UserId,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let txn = self.db.tenant(org_id).await?;
        crate::audit::append(&txn, audit).await?;
        let exists = teams::Entity::find()
            .filter(teams::Column::OrgId.eq(org_id.as_uuid()))
            .filter(teams::Column::Id.eq(id.as_uuid()))
            .one(&txn)
            .await
            .map_err(store_error)?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound);
        }
        let inserted = team_members::Entity::insert(team_members::ActiveModel {
            org_id: Set(org_id.as_uuid()),
            team_id: Set(id.as_uuid()),
            user_id: Set(user_id.as_uuid()),
            created_at: Set(now),
        })
        .on_conflict_do_nothing_on([team_members::Column::TeamId, team_members::Column::UserId])
        .exec_without_returning(&txn)
        .await
        .map_err(store_error)?;
        if !matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
            // Already in the team: nothing changed, nothing to record.
            return Ok(false);
        }
        txn.commit().await.map_err(store_error)?;
        Ok(true)
    }

    #[tracing::instrument(name = "adapter.sql.teams.remove_member", skip_all, fields(org_id = %org_id))]
    async fn remove_member(
        &self,
        org_id: OrgId,
        id: TeamId,
        user_id: UserId,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let remove = team_members::Entity::delete_many()
            .filter(team_members::Column::OrgId.eq(org_id.as_uuid()))
            .filter(team_members::Column::TeamId.eq(id.as_uuid()))
            .filter(team_members::Column::UserId.eq(user_id.as_uuid()));
        crate::audit::audited_single_row(&self.db, org_id, audit, |txn| {
            Box::pin(async move { Ok(remove.exec(txn).await?.rows_affected) })
        })
        .await
    }
}
