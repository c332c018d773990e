//! Plans and quotas: what each organization may use, reserved in one atomic step before the
//! work it pays for, with the 80 % and 100 % crossings and the first refusal of a period
//! announced once in the audit log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use tenantry_domain::OrgId;
use tenantry_domain::audit::{ActorKind, AuditEvent, Origin};
pub use tenantry_domain::quota::QuotaExceeded;
use tenantry_domain::quota::{Limits, Period, PlanAssignment, PlanCatalog, Quota, thresholds_crossed};
use tenantry_ports::{
    Clock, Consumed, CounterError, IdGenerator, OrgRepository, PlanRepository, QueuedMail, StoreError, Take, UsageKey,
    UsageStore,
};

use crate::leases::{LeasePolicy, Leases};
use crate::mail::{MailComposer, MailKind};
use crate::tenancy::{Actor, OrgAccess, TenancyError};

/// Why a quota operation failed; `CountersUnavailable` is kept apart from `Dependency` because
/// each route group chooses whether an unreachable counter store fails open or closed.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    /// The organization has no room left.
    #[error("quota `{}` exceeded", .0.quota)]
    Exceeded(QuotaExceeded),
    /// No such organization.
    #[error("not found")]
    NotFound,
    /// The plan named in a change is not in the catalog.
    #[error("unknown plan")]
    UnknownPlan,
    /// The counter store cannot be reached: callers decide to fail open or closed.
    #[error("usage counters unavailable")]
    CountersUnavailable(#[source] CounterError),
    /// Anything else.
    #[error("quota dependency failed")]
    Dependency(#[source] anyhow::Error),
}

impl From<StoreError> for QuotaError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => Self::NotFound,
            other => Self::Dependency(anyhow::Error::new(other)),
        }
    }
}

impl From<CounterError> for QuotaError {
    fn from(err: CounterError) -> Self {
        Self::CountersUnavailable(err)
    }
}

impl From<QuotaError> for TenancyError {
    fn from(err: QuotaError) -> Self {
        match err {
            QuotaError::Exceeded(refusal) => Self::QuotaExceeded(refusal),
            QuotaError::NotFound => Self::NotFound,
            QuotaError::CountersUnavailable(cause) => Self::Dependency(anyhow::Error::new(cause)),
            other => Self::Dependency(anyhow::Error::new(other)),
        }
    }
}

/// Units reserved by [`QuotaService::try_consume`]: hand it back to
/// [`QuotaService::release`] if the work it paid for fails.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "release the reservation if the work fails"]
pub struct Reservation {
    key: UsageKey,
    units: u64,
}

/// One quota in the usage report: the figures a tenant needs to see how close it is to a limit
/// before a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaUsage {
    /// Which quota.
    pub quota: Quota,
    /// Used now (gauges) or this period (counters).
    pub used: u64,
    /// The organization's limit; `None` is unlimited.
    pub limit: Option<u64>,
}

/// An organization's plan, period and every quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageReport {
    /// The plan's name.
    pub plan: String,
    /// The current period.
    pub period: Period,
    /// One entry per quota, in [`Quota::ALL`] order.
    pub quotas: Vec<QuotaUsage>,
}

/// What a platform admin sends to change a plan: `overrides` maps a quota to a new limit
/// (`Some`) or to "use the plan's limit" (`None`); quotas not named keep their override.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanChange {
    /// The plan to put the organization on.
    pub plan: String,
    /// Overrides to set or remove.
    pub overrides: Vec<(Quota, Option<u64>)>,
}

/// Who made the request that consumed or was refused: the actor of the audit entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The organization.
    pub org_id: OrgId,
    /// A user or an API key, with its id.
    pub actor: (ActorKind, uuid::Uuid),
    /// Where the request came from.
    pub origin: Origin,
}

impl Caller {
    /// The caller of an org-scoped request, so quota audit entries name the same actor and
    /// origin as the change that consumed.
    pub fn of(access: &OrgAccess) -> Self {
        let actor = match access.actor {
            Actor::User(principal) => (ActorKind::User, principal.user_id.as_uuid()),
            Actor::ApiKey { key_id, .. } => (ActorKind::ApiKey, key_id.as_uuid()),
        };
        Self { org_id: access.org_id, actor, origin: access.origin.clone() }
    }
}

/// Told about refusals and threshold crossings, for metrics.
pub trait QuotaObserver: Send + Sync {
    /// A request was refused by `quota` (every refusal, not only the first of a period, so the
    /// metric shows the pressure a limit causes).
    fn refused(&self, quota: Quota);
    /// An organization crossed `percent` of `quota` for the first time this period.
    fn crossed(&self, quota: Quota, percent: u8);
}

/// The collaborators of [`QuotaService`]; two usage stores because durable counters and the
/// hot API-call counter have different needs (survive restarts versus cost no database write).
pub struct QuotaPorts {
    /// Plans, seats and threshold marks.
    pub plans: Arc<dyn PlanRepository>,
    /// Counters that must survive restarts: stored bytes, uploads, webhook endpoints.
    pub durable: Arc<dyn UsageStore>,
    /// The counter of API calls: hot, so it may live in Redis.
    pub metered: Arc<dyn UsageStore>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids of audit entries.
    pub ids: Arc<dyn IdGenerator>,
}

/// How quotas behave, from configuration: which plans exist, whether API calls are metered,
/// and how much this process may cache or lease to keep the counters off the request path.
#[derive(Debug, Clone)]
pub struct QuotaSettings {
    /// The plans on offer.
    pub catalog: PlanCatalog,
    /// Whether authenticated API requests count against `api_calls`.
    pub meter_api_calls: bool,
    /// How API calls are leased from the shared counter.
    pub lease: LeasePolicy,
    /// How long a plan read from the store is reused by this process.
    pub plan_ttl: std::time::Duration,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            catalog: PlanCatalog::builtin(),
            meter_api_calls: true,
            lease: LeasePolicy::REMOTE,
            plan_ttl: std::time::Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Default)]
struct CallLease {
    key: Option<UsageKey>,
}

/// A plan read from the store, and when.
type CachedPlan = (Arc<PlanAssignment>, DateTime<Utc>);

/// Plans, quotas and usage of organizations: reserves units in one atomic step before the work
/// they pay for (so no replica race passes a limit), and announces the 80 % and 100 % crossings
/// and the first refusal of a period once each, in the audit log (and by mail, when wired).
pub struct QuotaService {
    ports: QuotaPorts,
    settings: QuotaSettings,
    plans: Mutex<HashMap<OrgId, CachedPlan>>,
    calls: Leases<OrgId, CallLease>,
    observer: Option<Arc<dyn QuotaObserver>>,
    /// Who is mailed about threshold crossings (the org's owners and admins), and how.
    mail: Option<(MailComposer, Arc<dyn OrgRepository>)>,
    /// Marks known to be recorded: an org past its limit is refused on every request, and each
    /// refusal must not open a write transaction to learn the mark exists.
    announced: Mutex<std::collections::HashSet<(OrgId, Quota, String, String)>>,
}

impl QuotaService {
    /// A service over `ports`; no I/O happens until a method is called.
    pub fn new(ports: QuotaPorts, settings: QuotaSettings) -> Self {
        Self {
            ports,
            settings,
            plans: Mutex::new(HashMap::new()),
            calls: Leases::new(),
            observer: None,
            mail: None,
            announced: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Mails each first crossing of 80 % and 100 % to the organization's owners and admins
    /// (found in `orgs`), queued with the crossing's mark in one transaction: once per
    /// crossing, whichever replica records it.
    #[must_use]
    pub fn with_mail(mut self, composer: MailComposer, orgs: Arc<dyn OrgRepository>) -> Self {
        self.mail = Some((composer, orgs));
        self
    }

    /// The threshold mails of a crossing of `percent` (none for a refusal, or without mail).
    async fn threshold_mails(&self, org_id: OrgId, quota: Quota, percent: u8, what: &QuotaExceeded) -> Vec<QueuedMail> {
        let Some((composer, orgs)) = &self.mail else { return Vec::new() };
        let composed = async {
            let org_name = orgs.get(org_id).await?.map_or_else(|| org_id.to_string(), |org| org.name);
            let context = serde_json::json!({
                "org_name": org_name,
                "quota": quota.as_str(),
                "percent": percent,
                "used": what.used,
                "limit": what.limit,
                "period_end": what.period_end.map(|end| end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                "usage_path": format!("/api/v1/orgs/{org_id}/usage"),
            });
            composer.to_admins(orgs.as_ref(), org_id, MailKind::QuotaThreshold, &context).await
        };
        composed.await.unwrap_or_else(|err| {
            // The mark (and its webhook event) is still recorded: the announcement must not fail
            // the request it rides on.
            tracing::warn!(error = %err, quota = quota.as_str(), percent, "composing a quota threshold mail failed");
            Vec::new()
        })
    }

    /// Reports refusals and crossings to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn QuotaObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The plans on offer, as configured: what a plan change is validated against.
    pub fn catalog(&self) -> &PlanCatalog {
        &self.settings.catalog
    }

    /// The plan `org_id` is on, read through a short per-process cache (a change made on
    /// another replica is seen within `plan_ttl`).
    async fn assignment(&self, org_id: OrgId) -> Result<Arc<PlanAssignment>, QuotaError> {
        let now = self.ports.clock.now();
        let ttl = chrono::Duration::from_std(self.settings.plan_ttl).unwrap_or_default();
        {
            let plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((assignment, read_at)) = plans.get(&org_id)
                && now - *read_at < ttl
            {
                return Ok(assignment.clone());
            }
        }
        let assignment = Arc::new(self.fresh_assignment(org_id).await?);
        let mut plans = self.plans.lock().unwrap_or_else(PoisonError::into_inner);
        if plans.len() > 50_000 {
            plans.clear();
        }
        plans.insert(org_id, (assignment.clone(), now));
        Ok(assignment)
    }

    async fn fresh_assignment(&self, org_id: OrgId) -> Result<PlanAssignment, QuotaError> {
        self.ports.plans.assignment(org_id).await?.ok_or(QuotaError::NotFound)
    }

    fn period_of(&self, quota: Quota, assignment: &PlanAssignment) -> Period {
        if quota.is_periodic() {
            Period::monthly(assignment.started_at, self.ports.clock.now())
        } else {
            Period::forever()
        }
    }

    fn store_of(&self, quota: Quota) -> &Arc<dyn UsageStore> {
        if quota == Quota::ApiCalls { &self.ports.metered } else { &self.ports.durable }
    }

    fn key(org_id: OrgId, quota: Quota, period: &Period) -> UsageKey {
        let period = if quota.is_periodic() { period.key() } else { "total".to_owned() };
        UsageKey { org_id, quota, period }
    }

    fn expiry(quota: Quota, period: &Period) -> Option<DateTime<Utc>> {
        // Kept a month past its end, for the record; gauges never expire.
        quota.is_periodic().then(|| period.end + chrono::Duration::days(31))
    }

    /// Reserves `units` of `quota` for work `access` is about to do, or refuses with nothing
    /// reserved. Reservations are all or nothing and exact under concurrency.
    ///
    /// # Errors
    /// [`QuotaError::Exceeded`]; [`QuotaError::CountersUnavailable`], [`QuotaError::NotFound`],
    /// [`QuotaError::Dependency`].
    pub async fn try_consume(&self, access: &OrgAccess, quota: Quota, units: u64) -> Result<Reservation, QuotaError> {
        let assignment = self.fresh_assignment(access.org_id).await?;
        let limit = assignment.limit(&self.settings.catalog, quota);
        let period = self.period_of(quota, &assignment);
        let key = Self::key(access.org_id, quota, &period);
        let consumed =
            self.store_of(quota).consume(&key, Take::Exactly(units), limit, Self::expiry(quota, &period)).await?;
        self.after_consume(&Caller::of(access), quota, limit, &period, units, consumed).await?;
        Ok(Reservation { key, units })
    }

    /// Gives back a reservation whose work failed, or units freed later (a deleted file).
    ///
    /// # Errors
    /// [`QuotaError::CountersUnavailable`].
    pub async fn release(&self, reservation: Reservation) -> Result<(), QuotaError> {
        if reservation.units == 0 {
            return Ok(());
        }
        self.store_of(reservation.key.quota).release(&reservation.key, reservation.units).await?;
        Ok(())
    }

    /// Frees `units` of a gauge quota (`members` aside: it counts rows) when what they paid
    /// for is gone: a deleted webhook endpoint, a deleted file's bytes.
    ///
    /// # Errors
    /// [`QuotaError::CountersUnavailable`].
    pub async fn free(&self, org_id: OrgId, quota: Quota, units: u64) -> Result<(), QuotaError> {
        if quota.is_periodic() || units == 0 {
            return Ok(());
        }
        let key = Self::key(org_id, quota, &Period::forever());
        self.store_of(quota).release(&key, units).await?;
        Ok(())
    }

    /// Announces crossings of a grant, or the refusal.
    async fn after_consume(
        &self,
        by: &Caller,
        quota: Quota,
        limit: Option<u64>,
        period: &Period,
        asked: u64,
        consumed: Consumed,
    ) -> Result<(), QuotaError> {
        let Some(limit) = limit else { return Ok(()) };
        if consumed.granted == 0 && asked > 0 {
            let refusal = QuotaExceeded {
                quota,
                limit,
                used: consumed.used,
                period_end: quota.is_periodic().then_some(period.end),
            };
            self.announce(by, quota, period, "exceeded", &refusal).await;
            if let Some(observer) = &self.observer {
                observer.refused(quota);
            }
            return Err(QuotaError::Exceeded(refusal));
        }
        let before = consumed.used.saturating_sub(consumed.granted);
        for percent in thresholds_crossed(before, consumed.used, limit) {
            let reached = QuotaExceeded { quota, limit, used: consumed.used, period_end: Some(period.end) };
            if self.announce(by, quota, period, &percent.to_string(), &reached).await
                && let Some(observer) = &self.observer
            {
                observer.crossed(quota, percent);
            }
        }
        Ok(())
    }

    /// Writes the audit entry of a mark (`80`, `100`, `exceeded`) the first time it happens in
    /// the period. A failure is logged, never returned: the request it rides on already
    /// reserved or was refused, and must not fail for the announcement.
    async fn announce(&self, by: &Caller, quota: Quota, period: &Period, mark: &str, what: &QuotaExceeded) -> bool {
        let (action, data) = match mark.parse::<u8>() {
            Ok(percent) => (
                "quota.threshold_reached",
                serde_json::json!({
                    "quota": quota.as_str(), "percent": percent, "limit": what.limit, "used": what.used,
                    "period_start": period.start, "period_end": what.period_end,
                }),
            ),
            Err(_) => (
                "quota.exceeded",
                serde_json::json!({
                    "quota": quota.as_str(), "limit": what.limit, "used": what.used,
                    "period_start": period.start, "period_end": what.period_end,
                }),
            ),
        };
        let event = AuditEvent::new(
            self.ports.ids.new_id(),
            by.org_id,
            action,
            by.actor,
            ("quota", Some(quota.as_str().to_owned())),
            by.origin.clone(),
            self.ports.clock.now(),
            &data,
        );
        let period_key = if quota.is_periodic() { period.key() } else { "total".to_owned() };
        let memo = (by.org_id, quota, period_key.clone(), mark.to_owned());
        if self.announced.lock().unwrap_or_else(PoisonError::into_inner).contains(&memo) {
            return false;
        }
        let mails = match mark.parse::<u8>() {
            Ok(percent) => self.threshold_mails(by.org_id, quota, percent, what).await,
            Err(_) => Vec::new(),
        };
        match self.ports.plans.mark_once(by.org_id, quota, &period_key, mark, &event, &mails).await {
            Ok(first) => {
                let mut announced = self.announced.lock().unwrap_or_else(PoisonError::into_inner);
                if announced.len() > 100_000 {
                    announced.clear();
                }
                announced.insert(memo);
                first
            }
            Err(err) => {
                tracing::warn!(error = %err, quota = quota.as_str(), mark, "recording a quota announcement failed");
                false
            }
        }
    }

    /// Counts one API request of `access` against `api_calls`, from a local lease of the
    /// shared counter when one holds units (no round trip), else from a fresh batch.
    ///
    /// # Errors
    /// [`QuotaError::Exceeded`] when the period's calls are used up;
    /// [`QuotaError::CountersUnavailable`] (callers fail open), [`QuotaError::NotFound`],
    /// [`QuotaError::Dependency`].
    pub async fn meter_api_call(&self, access: &OrgAccess) -> Result<(), QuotaError> {
        if !self.settings.meter_api_calls {
            return Ok(());
        }
        let assignment = self.assignment(access.org_id).await?;
        let limit = assignment.limit(&self.settings.catalog, Quota::ApiCalls);
        let period = self.period_of(Quota::ApiCalls, &assignment);
        let key = Self::key(access.org_id, Quota::ApiCalls, &period);
        let slot = self.calls.slot(&access.org_id);
        let mut lease = slot.lock().await;
        let now = self.ports.clock.now().timestamp_micros();
        if lease.state.key.as_ref() == Some(&key) && lease.take(now) {
            return Ok(());
        }
        // The lease is spent, expired or of another period: give back what is left of it.
        let leftover = if lease.state.key.as_ref() == Some(&key) {
            lease.expired_units(now)
        } else {
            std::mem::take(&mut lease.units)
        };
        if leftover > 0
            && let Some(old) = &lease.state.key
        {
            self.ports.metered.release(old, u64::from(leftover)).await?;
        }
        let want = u64::from(self.settings.lease.batch(lease.remaining));
        let consumed =
            self.ports.metered.consume(&key, Take::UpTo(want), limit, Self::expiry(Quota::ApiCalls, &period)).await?;
        // Unlimited: batches as large as the policy allows.
        lease.remaining = Some(limit.map_or(u64::MAX, |limit| limit.saturating_sub(consumed.used)));
        lease.state.key = Some(key);
        if consumed.granted > 0 {
            lease.units = u32::try_from(consumed.granted - 1).unwrap_or(0);
            lease.expires_us = now + i64::try_from(self.settings.lease.ttl.as_micros()).unwrap_or(i64::MAX);
        }
        drop(lease);
        self.after_consume(&Caller::of(access), Quota::ApiCalls, limit, &period, 1, consumed).await
    }

    /// Gives back the API calls of expired leases (all of them with `everything`, at
    /// shutdown). Returns how many units went back.
    ///
    /// # Errors
    /// [`QuotaError::CountersUnavailable`] after every lease was tried; what could not go back
    /// stays counted.
    pub async fn flush(&self, everything: bool) -> Result<u64, QuotaError> {
        let mut returned = 0;
        let mut failure = None;
        for (_, slot) in self.calls.all() {
            let mut lease = slot.lock().await;
            let now = self.ports.clock.now().timestamp_micros();
            let units = if everything { std::mem::take(&mut lease.units) } else { lease.expired_units(now) };
            let Some(key) = lease.state.key.clone() else { continue };
            if units == 0 {
                continue;
            }
            // Best effort, as for rate-limit tokens: calls that cannot go back stay counted.
            match self.ports.metered.release(&key, u64::from(units)).await {
                Ok(()) => returned += u64::from(units),
                Err(err) => failure = Some(QuotaError::from(err)),
            }
        }
        failure.map_or(Ok(returned), Err)
    }

    /// API calls this process holds in leases for `org_id` and has not used.
    async fn leased_calls(&self, org_id: OrgId, key: &UsageKey) -> u64 {
        let slot = self.calls.slot(&org_id);
        let lease = slot.lock().await;
        if lease.state.key.as_ref() == Some(key) { u64::from(lease.units) } else { 0 }
    }

    /// The limit of `quota` for `org_id`, for a store that counts the quota's rows inside its
    /// own transaction (members, webhook endpoints) instead of a counter.
    ///
    /// # Errors
    /// [`QuotaError::NotFound`], [`QuotaError::Dependency`].
    pub async fn limit_of(&self, org_id: OrgId, quota: Quota) -> Result<Option<u64>, QuotaError> {
        let assignment = self.fresh_assignment(org_id).await?;
        Ok(assignment.limit(&self.settings.catalog, quota))
    }

    /// Announces the thresholds of a counted `quota` that the unit just taken crossed (`used`
    /// now, of `limit`). Counted after the fact: the unit itself was checked in its
    /// transaction.
    pub async fn taken(&self, by: &Caller, quota: Quota, used: u64, limit: Option<u64>) {
        let Some(limit) = limit else { return };
        let period = Period::forever();
        for percent in thresholds_crossed(used.saturating_sub(1), used, limit) {
            let reached = QuotaExceeded { quota, limit, used, period_end: None };
            if self.announce(by, quota, &period, &percent.to_string(), &reached).await
                && let Some(observer) = &self.observer
            {
                observer.crossed(quota, percent);
            }
        }
    }

    /// Seats taken in `org_id` now: members, plus pending invitations with `with_pending`.
    ///
    /// # Errors
    /// [`QuotaError::Dependency`].
    pub async fn seats(&self, org_id: OrgId, with_pending: bool) -> Result<u64, QuotaError> {
        let (members, pending) = self.ports.plans.seats(org_id, self.ports.clock.now()).await?;
        Ok(if with_pending { members + pending } else { members })
    }

    /// The refusal for a counted `quota` its store found full (`used` of `limit`), announced
    /// like any other.
    pub async fn refused(&self, by: &Caller, quota: Quota, used: u64, limit: u64) -> QuotaError {
        let refusal = QuotaExceeded { quota, limit, used, period_end: None };
        self.announce(by, quota, &Period::forever(), "exceeded", &refusal).await;
        if let Some(observer) = &self.observer {
            observer.refused(quota);
        }
        QuotaError::Exceeded(refusal)
    }

    /// The organization's plan, period and usage of every quota.
    ///
    /// # Errors
    /// [`QuotaError::NotFound`], [`QuotaError::CountersUnavailable`], [`QuotaError::Dependency`].
    pub async fn usage(&self, org_id: OrgId) -> Result<UsageReport, QuotaError> {
        let assignment = self.fresh_assignment(org_id).await?;
        let period = Period::monthly(assignment.started_at, self.ports.clock.now());
        let (members, _) = self.ports.plans.seats(org_id, self.ports.clock.now()).await?;
        let endpoints = self.ports.plans.webhook_endpoints(org_id).await?;
        let durable_quotas = [Quota::StorageBytes, Quota::FileUploads];
        let durable_keys: Vec<UsageKey> = durable_quotas
            .iter()
            .map(|quota| Self::key(org_id, *quota, &self.period_of(*quota, &assignment)))
            .collect();
        let durable = self.ports.durable.used(&durable_keys).await?;
        let calls_key = Self::key(org_id, Quota::ApiCalls, &period);
        let calls = self.ports.metered.used(std::slice::from_ref(&calls_key)).await?;
        let calls = calls.first().copied().unwrap_or(0).saturating_sub(self.leased_calls(org_id, &calls_key).await);
        let used = |quota: Quota| match quota {
            Quota::Members => members,
            Quota::WebhookEndpoints => endpoints,
            Quota::ApiCalls => calls,
            other => durable_quotas.iter().position(|q| *q == other).and_then(|i| durable.get(i).copied()).unwrap_or(0),
        };
        Ok(UsageReport {
            plan: assignment.plan.clone(),
            period,
            quotas: Quota::ALL
                .into_iter()
                .map(|quota| QuotaUsage {
                    quota,
                    used: used(quota),
                    limit: assignment.limit(&self.settings.catalog, quota),
                })
                .collect(),
        })
    }

    /// Puts `org_id` on a plan and changes its overrides, audited as `plan.changed` by the
    /// platform admin `admin`. A new plan starts a new period; a change of overrides alone
    /// keeps the current one.
    ///
    /// # Errors
    /// [`QuotaError::UnknownPlan`], [`QuotaError::NotFound`], [`QuotaError::Dependency`].
    pub async fn change_plan(
        &self,
        admin: tenantry_domain::UserId,
        origin: Origin,
        org_id: OrgId,
        change: &PlanChange,
    ) -> Result<PlanAssignment, QuotaError> {
        if self.settings.catalog.get(&change.plan).is_none() {
            return Err(QuotaError::UnknownPlan);
        }
        let current = self.fresh_assignment(org_id).await?;
        let now = self.ports.clock.now();
        let mut overrides: Limits = current.overrides.clone();
        for (quota, limit) in &change.overrides {
            overrides.set(*quota, *limit);
        }
        let started_at = if current.plan == change.plan { current.started_at } else { now };
        let next = PlanAssignment { plan: change.plan.clone(), overrides, started_at };
        let event = AuditEvent::new(
            self.ports.ids.new_id(),
            org_id,
            "plan.changed",
            (ActorKind::User, admin.as_uuid()),
            ("org", Some(org_id.to_string())),
            origin,
            now,
            &serde_json::json!({
                "from": {"plan": current.plan, "overrides": current.overrides},
                "to": {"plan": next.plan, "overrides": next.overrides},
            }),
        );
        self.ports.plans.assign(org_id, &next, &event).await?;
        self.plans.lock().unwrap_or_else(PoisonError::into_inner).remove(&org_id);
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use chrono::TimeZone;
    use tenantry_adapter_memory::{InMemoryUsageStore, ManualClock, UuidV7Generator};
    use tenantry_domain::SessionId;
    use tenantry_domain::tenancy::{BuiltinRole, Role};
    use tenantry_ports::MockPlanRepository;

    use super::*;
    use crate::auth::Principal;

    /// A usage store that counts the calls reaching it, to see leases at work.
    struct Counting {
        inner: InMemoryUsageStore,
        consumes: AtomicU64,
    }

    #[async_trait::async_trait]
    impl UsageStore for Counting {
        async fn consume(
            &self,
            key: &UsageKey,
            take: Take,
            limit: Option<u64>,
            expires_at: Option<DateTime<Utc>>,
        ) -> Result<Consumed, CounterError> {
            self.consumes.fetch_add(1, Ordering::SeqCst);
            self.inner.consume(key, take, limit, expires_at).await
        }
        async fn release(&self, key: &UsageKey, units: u64) -> Result<(), CounterError> {
            self.inner.release(key, units).await
        }
        async fn used(&self, keys: &[UsageKey]) -> Result<Vec<u64>, CounterError> {
            self.inner.used(keys).await
        }
    }

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 10, 12, 0, 0).single().expect("date")
    }

    fn access(org_id: OrgId) -> OrgAccess {
        OrgAccess {
            org_id,
            actor: Actor::User(Principal {
                user_id: tenantry_domain::UserId::from_uuid(uuid::Uuid::now_v7()),
                session_id: SessionId::from_uuid(uuid::Uuid::now_v7()),
            }),
            role: Role::Builtin(BuiltinRole::Owner),
            origin: Origin::default(),
        }
    }

    /// A plan store whose org is on `free` with `overrides`, recording every mark.
    fn plans(overrides: Limits, marks: Arc<Mutex<Vec<(Quota, String, String)>>>) -> MockPlanRepository {
        let mut plans = MockPlanRepository::new();
        plans.expect_assignment().returning(move |_| {
            Ok(Some(PlanAssignment { plan: "free".into(), overrides: overrides.clone(), started_at: start() }))
        });
        plans.expect_mark_once().returning(move |_, quota, _, mark, event, _| {
            let mut marks = marks.lock().expect("marks");
            let first = !marks.iter().any(|(q, m, _)| *q == quota && m == mark);
            if first {
                marks.push((quota, mark.to_owned(), event.action.clone()));
            }
            Ok(first)
        });
        plans.expect_seats().returning(|_, _| Ok((1, 0)));
        plans.expect_webhook_endpoints().returning(|_| Ok(0));
        plans
    }

    fn service(
        plans: MockPlanRepository,
        metered: Arc<dyn UsageStore>,
        lease: LeasePolicy,
    ) -> (QuotaService, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(start()));
        let durable = Arc::new(InMemoryUsageStore::new(clock.clone()));
        let service = QuotaService::new(
            QuotaPorts {
                plans: Arc::new(plans),
                durable,
                metered,
                clock: clock.clone(),
                ids: Arc::new(UuidV7Generator),
            },
            QuotaSettings { lease, ..QuotaSettings::default() },
        );
        (service, clock)
    }

    fn limits(pairs: &[(Quota, u64)]) -> Limits {
        let mut limits = Limits::default();
        for (quota, limit) in pairs {
            limits.set(*quota, Some(*limit));
        }
        limits
    }

    #[tokio::test]
    async fn a_reservation_is_all_or_nothing_and_the_first_refusal_is_announced_once() {
        let marks = Arc::default();
        let clock_store = Arc::new(ManualClock::new(start()));
        let metered = Arc::new(InMemoryUsageStore::new(clock_store));
        let (quotas, _) =
            service(plans(limits(&[(Quota::StorageBytes, 100)]), Arc::clone(&marks)), metered, LeasePolicy::NONE);
        let org = OrgId::from_uuid(uuid::Uuid::now_v7());
        let caller = access(org);
        let first = quotas.try_consume(&caller, Quota::StorageBytes, 70).await.expect("fits");
        let refused = quotas.try_consume(&caller, Quota::StorageBytes, 40).await;
        let Err(QuotaError::Exceeded(refusal)) = refused else { panic!("refused: {refused:?}") };
        assert_eq!((refusal.limit, refusal.used, refusal.period_end), (100, 70, None));
        assert!(quotas.try_consume(&caller, Quota::StorageBytes, 40).await.is_err());
        quotas.release(first).await.expect("released");
        let _kept = quotas.try_consume(&caller, Quota::StorageBytes, 100).await.expect("fits after the release");
        let marks = marks.lock().expect("marks").clone();
        let exceeded: Vec<_> = marks.iter().filter(|(_, mark, _)| mark == "exceeded").collect();
        assert_eq!(exceeded.len(), 1, "{marks:?}");
        assert_eq!(exceeded[0].2, "quota.exceeded");
        for (_, _, action) in &marks {
            assert!(tenantry_domain::events::event_type(action).is_some(), "{action} is in the event catalog");
        }
        let reached: Vec<&str> = marks
            .iter()
            .filter(|(_, _, action)| action == "quota.threshold_reached")
            .map(|(_, m, _)| m.as_str())
            .collect();
        assert_eq!(reached, ["80", "100"], "70 crossed nothing; 0 to 100 after the release crossed both, once");
    }

    #[tokio::test]
    async fn api_calls_are_served_from_leases_and_stop_exactly_at_the_limit() {
        let marks = Arc::default();
        let clock = Arc::new(ManualClock::new(start()));
        let store = Arc::new(Counting { inner: InMemoryUsageStore::new(clock), consumes: AtomicU64::new(0) });
        let (quotas, _) =
            service(plans(limits(&[(Quota::ApiCalls, 1000)]), Arc::clone(&marks)), store.clone(), LeasePolicy::REMOTE);
        let caller = access(OrgId::from_uuid(uuid::Uuid::now_v7()));
        let mut passed = 0;
        for _ in 0..1200 {
            match quotas.meter_api_call(&caller).await {
                Ok(()) => passed += 1,
                Err(QuotaError::Exceeded(refusal)) => assert_eq!(refusal.limit, 1000),
                Err(other) => panic!("{other:?}"),
            }
        }
        assert_eq!(passed, 1000, "exactly the limit");
        let trips = store.consumes.load(Ordering::SeqCst);
        assert!(trips < 300, "leases save round trips: {trips} for 1200 calls");
        let report = quotas.usage(caller.org_id).await.expect("usage");
        let calls = report.quotas.iter().find(|q| q.quota == Quota::ApiCalls).expect("api_calls");
        assert_eq!((calls.used, calls.limit), (1000, Some(1000)));
        let marks = marks.lock().expect("marks").clone();
        let announced: Vec<&str> = marks.iter().map(|(_, mark, _)| mark.as_str()).collect();
        assert_eq!(announced, ["80", "100", "exceeded"]);
    }

    #[tokio::test]
    async fn unused_leased_calls_go_back_and_a_new_period_starts_from_zero() {
        let clock = Arc::new(ManualClock::new(start()));
        let store = Arc::new(InMemoryUsageStore::new(clock.clone()));
        let (quotas, service_clock) =
            service(plans(limits(&[(Quota::ApiCalls, 1_000_000)]), Arc::default()), store.clone(), LeasePolicy::REMOTE);
        let caller = access(OrgId::from_uuid(uuid::Uuid::now_v7()));
        for _ in 0..40 {
            quotas.meter_api_call(&caller).await.expect("allowed");
        }
        let report = quotas.usage(caller.org_id).await.expect("usage");
        assert_eq!(report.quotas.iter().find(|q| q.quota == Quota::ApiCalls).map(|q| q.used), Some(40));
        service_clock.advance(chrono::Duration::seconds(1));
        assert!(quotas.flush(false).await.expect("flushed") > 0, "the expired lease went back");
        service_clock.advance(chrono::Duration::days(31));
        quotas.meter_api_call(&caller).await.expect("allowed");
        let report = quotas.usage(caller.org_id).await.expect("usage");
        assert!(report.period.start > start());
        assert_eq!(report.quotas.iter().find(|q| q.quota == Quota::ApiCalls).map(|q| q.used), Some(1));
    }

    #[tokio::test]
    async fn a_plan_change_patches_overrides_and_a_new_plan_restarts_the_period() {
        let mut store = MockPlanRepository::new();
        let current = PlanAssignment {
            plan: "free".into(),
            overrides: limits(&[(Quota::Members, 3), (Quota::ApiCalls, 10)]),
            started_at: start(),
        };
        store.expect_assignment().returning(move |_| Ok(Some(current.clone())));
        store.expect_assign().times(2).returning(|_, _, event| {
            assert_eq!(event.action, "plan.changed");
            Ok(())
        });
        let clock = Arc::new(ManualClock::new(start()));
        let (quotas, service_clock) = service(store, Arc::new(InMemoryUsageStore::new(clock)), LeasePolicy::NONE);
        service_clock.advance(chrono::Duration::days(3));
        let org = OrgId::from_uuid(uuid::Uuid::now_v7());
        let admin = tenantry_domain::UserId::from_uuid(uuid::Uuid::now_v7());
        let unknown = PlanChange { plan: "gold".into(), overrides: vec![] };
        assert!(matches!(
            quotas.change_plan(admin, Origin::default(), org, &unknown).await,
            Err(QuotaError::UnknownPlan)
        ));
        let same =
            PlanChange { plan: "free".into(), overrides: vec![(Quota::Members, None), (Quota::StorageBytes, Some(5))] };
        let next = quotas.change_plan(admin, Origin::default(), org, &same).await.expect("changed");
        assert_eq!(next.started_at, start(), "same plan: same period");
        assert_eq!(next.overrides, limits(&[(Quota::ApiCalls, 10), (Quota::StorageBytes, 5)]));
        let upgrade = PlanChange { plan: "pro".into(), overrides: vec![] };
        let next = quotas.change_plan(admin, Origin::default(), org, &upgrade).await.expect("changed");
        assert_eq!(next.started_at, start() + chrono::Duration::days(3), "a new plan starts a new period");
    }

    #[tokio::test]
    async fn a_first_crossing_mails_the_owners_and_admins_with_its_mark_and_a_refusal_mails_nobody() {
        use tenantry_ports::{Member, MockOrgRepository, Org};
        let org = OrgId::from_uuid(uuid::Uuid::now_v7());
        /// Each mark, with the recipients of the mails it carried.
        type Mailed = Arc<Mutex<Vec<(String, Vec<String>)>>>;
        let mailed: Mailed = Arc::default();
        let mut plans = MockPlanRepository::new();
        plans.expect_assignment().returning(move |_| {
            let overrides = limits(&[(Quota::StorageBytes, 100)]);
            Ok(Some(PlanAssignment { plan: "free".into(), overrides, started_at: start() }))
        });
        let seen = Arc::clone(&mailed);
        plans.expect_mark_once().returning(move |_, _, _, mark, _, mails| {
            let composer = crate::mail::tests::composer();
            let to = mails
                .iter()
                .map(|mail| composer.open(mail.id, &mail.sealed).expect("opens").to.as_str().to_owned())
                .collect();
            seen.lock().expect("mailed").push((mark.to_owned(), to));
            Ok(true)
        });
        let mut orgs = MockOrgRepository::new();
        orgs.expect_get().returning(move |id| {
            Ok(Some(Org {
                id,
                name: "Acme".into(),
                slug: tenantry_domain::Slug::parse("acme").expect("slug"),
                plan: "free".into(),
                created_at: start(),
                updated_at: start(),
            }))
        });
        orgs.expect_list_members().returning(|_, _, _| {
            let member = |email: &str, role: &str| Member {
                user_id: tenantry_domain::UserId::from_uuid(uuid::Uuid::now_v7()),
                email: tenantry_domain::Email::parse(email).expect("email"),
                display_name: None,
                role: role.into(),
                joined_at: start(),
            };
            Ok(vec![
                member("owner@acme.io", "owner"),
                member("admin@acme.io", "admin"),
                member("dev@acme.io", "member"),
            ])
        });
        let clock = Arc::new(ManualClock::new(start()));
        let durable = Arc::new(InMemoryUsageStore::new(clock.clone()));
        let quotas = QuotaService::new(
            QuotaPorts {
                plans: Arc::new(plans),
                durable: durable.clone(),
                metered: durable,
                clock,
                ids: Arc::new(UuidV7Generator),
            },
            QuotaSettings::default(),
        )
        .with_mail(crate::mail::tests::composer(), Arc::new(orgs));
        let caller = access(org);
        let _kept = quotas.try_consume(&caller, Quota::StorageBytes, 85).await.expect("fits");
        assert!(quotas.try_consume(&caller, Quota::StorageBytes, 40).await.is_err(), "refused");
        let mailed = mailed.lock().expect("mailed").clone();
        assert_eq!(
            mailed,
            [
                ("80".to_owned(), vec!["owner@acme.io".to_owned(), "admin@acme.io".to_owned()]),
                ("exceeded".to_owned(), vec![]),
            ],
            "the crossing mails owners and admins with its mark; a refusal is an event, not a mail"
        );
    }
}
