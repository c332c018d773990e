//! Plans and quota marks over a [`MemoryDatabase`].

use chrono::{DateTime, Utc};
use tenantry_domain::OrgId;
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::quota::{PlanAssignment, Quota};
use tenantry_ports::{PlanRepository, QueuedMail, StoreError};

use crate::database::{MemoryDatabase, missing};

/// [`PlanRepository`] in memory. Seats and webhook endpoints are counted from the rows, as in
/// SQL, and a threshold mark is recorded with its audit entry only the first time.
#[derive(Clone, Debug)]
pub struct InMemoryPlanRepository {
    db: MemoryDatabase,
}

impl InMemoryPlanRepository {
    /// A view over `db`.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl PlanRepository for InMemoryPlanRepository {
    async fn assignment(&self, org_id: OrgId) -> Result<Option<PlanAssignment>, StoreError> {
        self.db.read(|tables| {
            Ok(tables.orgs.get(&org_id.as_uuid()).map(|row| PlanAssignment {
                plan: row.org.plan.clone(),
                overrides: row.overrides.clone().unwrap_or_default(),
                started_at: row.plan_started_at.unwrap_or(row.org.created_at),
            }))
        })
    }

    async fn assign(&self, org_id: OrgId, assignment: &PlanAssignment, audit: &AuditEvent) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if !tables.org_exists(org_id) {
                return Err(StoreError::NotFound);
            }
            tables.append(audit);
            let row = tables.orgs.get_mut(&org_id.as_uuid()).ok_or(StoreError::NotFound)?;
            row.org.plan.clone_from(&assignment.plan);
            row.overrides = Some(assignment.overrides.clone());
            row.plan_started_at = Some(assignment.started_at);
            Ok(())
        })
    }

    async fn seats(&self, org_id: OrgId, now: DateTime<Utc>) -> Result<(u64, u64), StoreError> {
        self.db.read(|tables| Ok(tables.seats(org_id.as_uuid(), now)))
    }

    async fn webhook_endpoints(&self, org_id: OrgId) -> Result<u64, StoreError> {
        self.db.read(|tables| Ok(tables.endpoint_count(org_id.as_uuid())))
    }

    async fn mark_once(
        &self,
        org_id: OrgId,
        quota: Quota,
        period: &str,
        mark: &str,
        audit: &AuditEvent,
        mails: &[QueuedMail],
    ) -> Result<bool, StoreError> {
        self.db.write(|tables| {
            let key = (org_id.as_uuid(), quota.as_str().to_owned(), period.to_owned(), mark.to_owned());
            if tables.quota_marks.contains(&key) {
                return Ok(false);
            }
            if !tables.org_exists(org_id) {
                return Err(missing("organization"));
            }
            tables.queue_mail(mails)?;
            tables.append(audit);
            tables.quota_marks.insert(key);
            Ok(true)
        })
    }
}
