//! The ports behind plans, quotas and rate limits: counters that must be exact across every
//! replica, and the plan each organization is on.

use chrono::{DateTime, Utc};
use tenantry_domain::OrgId;
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::quota::{PlanAssignment, Quota};
use tenantry_domain::rate::{RateGrant, RatePolicy};

use crate::{QueuedMail, StoreError};

/// Failures of a counter store ([`UsageStore`], [`RateLimitStore`]); callers decide per route
/// group whether an unavailable store fails open or closed, so the two are kept apart.
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    /// The backing store could not be reached.
    #[error("counter store unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else; carries the cause for the logs.
    #[error("unexpected counter store failure")]
    Unexpected(#[source] anyhow::Error),
}

/// One counter: a quota of an organization in one period (`period` is the period's key; gauges
/// use one key forever).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UsageKey {
    /// Whose usage.
    pub org_id: OrgId,
    /// Of what.
    pub quota: Quota,
    /// Which period (see `Period::key`).
    pub period: String,
}

impl UsageKey {
    /// The key as one string, for stores keyed by strings (Redis); every adapter builds it
    /// here, so two adapters sharing a store agree on the key.
    pub fn flat(&self) -> String {
        format!("usage:{}:{}:{}", self.org_id, self.quota, self.period)
    }
}

/// How much a consume asks for: the two shapes differ in what a partial fit means, so the
/// store, which sees the counter atomically, decides rather than the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// All of it or nothing (a reservation for one piece of work).
    Exactly(u64),
    /// As much as fits, up to this many (a lease of units handed out locally).
    UpTo(u64),
}

/// What a consume did: the grant to act on and the counter it left, so the caller can announce
/// thresholds crossed without a second read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumed {
    /// Units added: the whole request, part of it (only for [`Take::UpTo`]), or 0 (refused).
    pub granted: u64,
    /// The counter after this call; with `granted`, it tells which thresholds this call
    /// crossed.
    pub used: u64,
}

/// Usage counters that never pass their limit, however many replicas consume at once:
/// each consume checks and adds in one atomic step, never check-then-increment.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait UsageStore: Send + Sync {
    /// Adds to `key` what `take` asks without passing `limit` (`None`: unlimited); a counter
    /// seen for the first time starts at 0. `expires_at` lets a store drop a period's counter
    /// once the period is long over.
    ///
    /// # Errors
    /// [`CounterError::Unavailable`], [`CounterError::Unexpected`].
    async fn consume(
        &self,
        key: &UsageKey,
        take: Take,
        limit: Option<u64>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Consumed, CounterError>;

    /// Takes back `units` consumed earlier (work that failed, a lease not used, a file
    /// deleted); the counter never goes below 0.
    ///
    /// # Errors
    /// [`CounterError::Unavailable`], [`CounterError::Unexpected`].
    async fn release(&self, key: &UsageKey, units: u64) -> Result<(), CounterError>;

    /// The counters at `keys`, in order (0 for one never written), read in one call so a usage
    /// report shows every quota as of about the same moment.
    ///
    /// # Errors
    /// [`CounterError::Unavailable`], [`CounterError::Unexpected`].
    async fn used(&self, keys: &[UsageKey]) -> Result<Vec<u64>, CounterError>;
}

/// GCRA buckets shared by every replica: one atomic step per decision, so a client cannot get
/// N times its rate by spreading requests over N replicas.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait RateLimitStore: Send + Sync {
    /// First gives back `give_back` tokens taken earlier and not used, then takes up to `want`
    /// tokens from the bucket `key` under `policy`, at `now_us` (microseconds since the epoch),
    /// all in one atomic step.
    ///
    /// # Errors
    /// [`CounterError::Unavailable`], [`CounterError::Unexpected`].
    async fn acquire(
        &self,
        key: &str,
        policy: RatePolicy,
        want: u32,
        give_back: u32,
        now_us: i64,
    ) -> Result<RateGrant, CounterError>;
}

/// The plan of each organization, and the per-period marks of threshold announcements.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait PlanRepository: Send + Sync {
    /// The plan `org_id` is on; `None` when the organization does not exist. An organization
    /// never assigned a plan is on the plan it was created with, since its creation.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Unexpected`].
    async fn assignment(&self, org_id: OrgId) -> Result<Option<PlanAssignment>, StoreError>;

    /// Puts `org_id` on `assignment`, with its audit entry in the same transaction.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the organization does not exist; [`StoreError::Unavailable`],
    /// [`StoreError::Unexpected`].
    async fn assign(&self, org_id: OrgId, assignment: &PlanAssignment, audit: &AuditEvent) -> Result<(), StoreError>;

    /// Members of `org_id` now, and its pending (unexpired, unanswered) invitations.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Unexpected`].
    async fn seats(&self, org_id: OrgId, now: DateTime<Utc>) -> Result<(u64, u64), StoreError>;

    /// Webhook endpoints of `org_id` now: that quota is counted from the rows (inside the
    /// creating transaction), never from a counter that could drift.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Unexpected`].
    async fn webhook_endpoints(&self, org_id: OrgId) -> Result<u64, StoreError>;

    /// Records that `mark` (`"80"`, `"100"`, `"exceeded"`) of `quota` happened in `period`,
    /// and writes `audit` with it in one transaction, only the first time: `true` when this
    /// call was the first. `mails` (the threshold notice to owners and admins) are queued in
    /// that transaction, so each crossing mails once (ADR 0018).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`], [`StoreError::Unexpected`].
    async fn mark_once(
        &self,
        org_id: OrgId,
        quota: Quota,
        period: &str,
        mark: &str,
        audit: &AuditEvent,
        mails: &[QueuedMail],
    ) -> Result<bool, StoreError>;
}
