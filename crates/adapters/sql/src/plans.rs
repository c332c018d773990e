//! [`PlanRepository`] on sea-orm: each organization's plan assignment (columns of `orgs`),
//! its seats, and the once-per-period threshold marks (`quota_marks`).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Statement, Value};
use tenantry_domain::OrgId;
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::quota::{Limits, PlanAssignment, Quota};
use tenantry_ports::{PlanRepository, QueuedMail, StoreError};

use crate::SqlDatabase;
use crate::errors::{corrupt, store_error};

/// [`PlanRepository`] on SQL (PostgreSQL or SQLite).
///
/// `orgs.plan` holds the plan's name; `orgs.plan_started_at` is `NULL` until a plan is
/// assigned, which is what marks an organization as following the configured default plan
/// (its `plan` column then only holds what it was created with).
#[derive(Clone)]
pub struct SqlPlanRepository {
    db: SqlDatabase,
}

impl SqlPlanRepository {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl PlanRepository for SqlPlanRepository {
    #[tracing::instrument(name = "adapter.sql.plans.assignment", skip_all, fields(org_id = %org_id))]
    async fn assignment(&self, org_id: OrgId) -> Result<Option<PlanAssignment>, StoreError> {
        let txn = self.db.tenant(org_id).await?;
        let row = txn
            .query_one_raw(Statement::from_sql_and_values(
                txn.get_database_backend(),
                "SELECT plan, plan_overrides, plan_started_at, created_at FROM orgs WHERE id = $1",
                [org_id.as_uuid().into()],
            ))
            .await
            .map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        let Some(row) = row else { return Ok(None) };
        let plan: String = row.try_get("", "plan").map_err(store_error)?;
        let overrides: Option<String> = row.try_get("", "plan_overrides").map_err(store_error)?;
        let started_at: Option<DateTime<Utc>> = row.try_get("", "plan_started_at").map_err(store_error)?;
        let created_at: DateTime<Utc> = row.try_get("", "created_at").map_err(store_error)?;
        let overrides = match overrides {
            Some(text) => serde_json::from_str::<Limits>(&text).map_err(|_| corrupt("plan overrides"))?,
            None => Limits::default(),
        };
        // Never assigned: on its creation plan since its creation.
        Ok(Some(PlanAssignment { plan, overrides, started_at: started_at.unwrap_or(created_at) }))
    }

    #[tracing::instrument(name = "adapter.sql.plans.assign", skip_all, fields(org_id = %org_id))]
    async fn assign(&self, org_id: OrgId, assignment: &PlanAssignment, audit: &AuditEvent) -> Result<(), StoreError> {
        let overrides = serde_json::to_string(&assignment.overrides)
            .map_err(|err| StoreError::Unexpected(anyhow::Error::new(err)))?;
        let txn = self.db.tenant(org_id).await?;
        // The audit head first: it is the organization's write lock.
        crate::audit::append(&txn, audit).await?;
        let values: [Value; 4] =
            [assignment.plan.as_str().into(), overrides.into(), assignment.started_at.into(), org_id.as_uuid().into()];
        let updated = txn
            .execute_raw(Statement::from_sql_and_values(
                txn.get_database_backend(),
                "UPDATE orgs SET plan = $1, plan_overrides = $2, plan_started_at = $3 WHERE id = $4",
                values,
            ))
            .await
            .map_err(store_error)?
            .rows_affected();
        if updated == 0 {
            // Nothing is kept, not even the audit entry.
            txn.rollback().await.map_err(store_error)?;
            return Err(StoreError::NotFound);
        }
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.plans.seats", skip_all, fields(org_id = %org_id))]
    async fn seats(&self, org_id: OrgId, now: DateTime<Utc>) -> Result<(u64, u64), StoreError> {
        let txn = self.db.tenant(org_id).await?;
        let seats = crate::invitations::seats(&txn, org_id, now).await?;
        txn.commit().await.map_err(store_error)?;
        Ok(seats)
    }

    #[tracing::instrument(name = "adapter.sql.plans.webhook_endpoints", skip_all, fields(org_id = %org_id))]
    async fn webhook_endpoints(&self, org_id: OrgId) -> Result<u64, StoreError> {
        let txn = self.db.tenant(org_id).await?;
        let count = crate::webhooks::endpoint_count(&txn, org_id).await?;
        txn.commit().await.map_err(store_error)?;
        Ok(count)
    }

    #[tracing::instrument(name = "adapter.sql.plans.mark_once", skip_all, fields(org_id = %org_id))]
    async fn mark_once(
        &self,
        org_id: OrgId,
        quota: Quota,
        period: &str,
        mark: &str,
        audit: &AuditEvent,
        mails: &[QueuedMail],
    ) -> Result<bool, StoreError> {
        let txn = self.db.tenant(org_id).await?;
        // The audit head first: concurrent marks of the organization queue here, and the one
        // that finds the mark taken drops its entry with everything else.
        crate::audit::append(&txn, audit).await?;
        let values: [Value; 5] =
            [org_id.as_uuid().into(), quota.as_str().into(), period.into(), mark.into(), audit.created_at.into()];
        let inserted = txn
            .execute_raw(Statement::from_sql_and_values(
                txn.get_database_backend(),
                "INSERT INTO quota_marks (org_id, quota, period, mark, created_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (org_id, quota, period, mark) DO NOTHING",
                values,
            ))
            .await
            .map_err(store_error)?
            .rows_affected();
        if inserted == 0 {
            txn.rollback().await.map_err(store_error)?;
            return Ok(false);
        }
        crate::mail::queue(&txn, mails).await?;
        txn.commit().await.map_err(store_error)?;
        Ok(true)
    }
}
