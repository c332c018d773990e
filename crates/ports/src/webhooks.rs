//! The ports behind outgoing webhooks: endpoints, the delivery queue fed by the transactional
//! outbox, and the sender.

use chrono::{DateTime, Utc};
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::webhooks::DeliveryStatus;
use tenantry_domain::{DeliveryId, OrgId, WebhookId};

use crate::{QueuedMail, StoreError};

/// An organization's webhook endpoint (never its secret: that is read on its own, sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Id (UUIDv7).
    pub id: WebhookId,
    /// Its organization.
    pub org_id: OrgId,
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types it receives; empty: all of them.
    pub events: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// Disabled endpoints receive nothing (new events skip them).
    pub enabled: bool,
    /// Why it was disabled by the system (`gone`, `failing`), if it was.
    pub disabled_reason: Option<String>,
    /// Since when every attempt to it has failed (`None`: the last one succeeded, or none
    /// failed yet): an endpoint failing for long enough is disabled.
    pub failing_since: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Endpoints, with their secrets stored sealed by the application's `SecretCipher`.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait WebhookRepository: Send + Sync {
    /// Stores `endpoint` with its sealed secret and the audit entry, in one transaction, unless
    /// the organization already has `limit` endpoints: counted inside that transaction, after
    /// the organization's write lock, so concurrent creations cannot pass the limit and no
    /// counter can drift from the rows. Returns how many endpoints the organization has now.
    ///
    /// # Errors
    /// [`StoreError::LimitReached`] with the count when the limit is reached (nothing
    /// written); `Unavailable`, `Unexpected`.
    async fn create(
        &self,
        endpoint: &WebhookEndpoint,
        sealed_secret: &str,
        limit: Option<u64>,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError>;

    /// A page of the organization's endpoints, oldest first: at most `limit`, after `after`.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn list(
        &self,
        org_id: OrgId,
        after: Option<WebhookId>,
        limit: u32,
    ) -> Result<Vec<WebhookEndpoint>, StoreError>;

    /// One endpoint of the organization; `None` for another organization's endpoint, as for a
    /// missing one.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn get(&self, org_id: OrgId, id: WebhookId) -> Result<Option<WebhookEndpoint>, StoreError>;

    /// Writes `endpoint`'s url, events, description, enabled flag, disabled reason and failing
    /// mark, with its audit entry; `false` when there is no such endpoint (nothing written).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn update(&self, endpoint: &WebhookEndpoint, audit: &AuditEvent) -> Result<bool, StoreError>;

    /// Deletes the endpoint with its deliveries, attempts and payloads; `false` when absent.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn delete(&self, org_id: OrgId, id: WebhookId, audit: &AuditEvent) -> Result<bool, StoreError>;

    /// Makes `sealed_secret` the signing secret; the previous one keeps signing until
    /// `previous_until`. `false` when there is no such endpoint.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn rotate_secret(
        &self,
        org_id: OrgId,
        id: WebhookId,
        sealed_secret: &str,
        previous_until: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// The sealed secrets that sign at `now`: the current one first, then the previous one
    /// while its grace period lasts. `None` when there is no such endpoint.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn secrets(
        &self,
        org_id: OrgId,
        id: WebhookId,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<String>>, StoreError>;

    /// How many endpoints the organization has (for usage reports; the limit itself is
    /// enforced by [`Self::create`], counted in its transaction).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn count(&self, org_id: OrgId) -> Result<u64, StoreError>;
}

/// One delivery: an event to an endpoint, tracked on its own so one failing endpoint delays or
/// loses nothing for the organization's other endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Id (UUIDv7): also the `webhook-id` header, stable across attempts so receivers
    /// can deduplicate.
    pub id: DeliveryId,
    /// The organization.
    pub org_id: OrgId,
    /// The endpoint.
    pub endpoint_id: WebhookId,
    /// The event (the audit entry's id).
    pub event_id: uuid::Uuid,
    /// Its type, such as `member.added`.
    pub event_type: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// The HTTP status of the last answer, if one came.
    pub last_response_status: Option<u16>,
    /// How long the last attempt took.
    pub last_latency_ms: Option<u32>,
    /// When the next attempt is due (`None` once succeeded or dead).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the delivery was created (fan-out time).
    pub created_at: DateTime<Utc>,
    /// When the event was committed: the start of commit-to-delivery latency.
    pub event_created_at: DateTime<Utc>,
    /// The event's `data` (JSON text); erased after the retention period.
    pub payload: Option<String>,
}

/// One attempt of a delivery, kept so a tenant can see why deliveries to their endpoint fail
/// (status, latency, the start of the answer, or the error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first.
    pub attempt: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The answer's status, if one came.
    pub response_status: Option<u16>,
    /// How long it took.
    pub latency_ms: u32,
    /// The first 4 KiB of the answer's body.
    pub response_body: Option<String>,
    /// Why no (good) answer came: a timeout, a refused address, a connection error.
    pub error: Option<String>,
}

/// A delivery claimed for one attempt, with what sending it needs: read with the claim, so
/// an attempt costs no other query before its record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// The delivery.
    pub delivery: Delivery,
    /// The endpoint's URL.
    pub url: String,
    /// The endpoint's sealed secrets that sign at the claim's `now`: the current one first,
    /// then the previous one while its grace period lasts.
    pub secrets: Vec<String>,
    /// Since when the endpoint has been failing, as the claim found it.
    pub failing_since: Option<DateTime<Utc>>,
}

/// Why the system disables an endpoint: an endpoint that is gone, or has failed for too long,
/// is switched off so its queue stops growing, and its owners are told why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disabling {
    /// It answered `410 Gone`: at once.
    Gone,
    /// It has failed since at least this time (only if it still has: an endpoint that
    /// recovered or was re-enabled meanwhile stays as it is).
    FailingSince(DateTime<Utc>),
}

impl Disabling {
    /// The reason stored on the endpoint and shown in the API: a stable code a client can
    /// branch on.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::Gone => "gone",
            Self::FailingSince(_) => "failing",
        }
    }
}

/// What an attempt changed: decided by the application's retry policy, written by the queue
/// with the attempt itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    /// The delivery's new status.
    pub status: DeliveryStatus,
    /// When to try again (`Failed` only).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// The delivery queue: fed by the outbox (events written with the changes that cause them),
/// drained by dispatcher steps on any number of workers.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait DeliveryQueue: Send + Sync {
    /// Turns up to `limit` outbox events not yet fanned out into pending deliveries, one per
    /// enabled endpoint of their organization subscribed to their type, due at `now`. Returns
    /// how many events it handled (0: nothing waiting).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn fan_out(&self, now: DateTime<Utc>, limit: u32) -> Result<u32, StoreError>;

    /// Claims up to `limit` due deliveries (pending or failed, due by `now`), at most
    /// `per_endpoint` per endpoint and skipping endpoints with that many already in flight,
    /// for one attempt each: no other worker claims them before `lease_until` (a worker that
    /// dies loses its claims then, so every delivery is attempted at least once).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn claim(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        per_endpoint: u32,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Records an attempt of a claimed delivery and its outcome, releasing the claim. An
    /// attempt that did not deliver also marks the endpoint failing since the attempt started,
    /// unless it is marked already (a success clears the mark through [`Self::recovered`]).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn record(&self, delivery: &Delivery, attempt: &Attempt, outcome: &AttemptOutcome) -> Result<(), StoreError>;

    /// Disables the endpoint (reason [`Disabling::reason`]) and ends its pending and failed
    /// deliveries `dead`, with `audit`, in one transaction. `false`, with nothing written (not
    /// the entry), when there is no such enabled endpoint, or when `FailingSince(t)` and the
    /// endpoint is not failing since `t` or earlier. `sparing` is the delivery whose attempt
    /// led here: it is left for that attempt's record to end, so it never shows `dead` with
    /// its attempt missing. `mails` (to the organization's owners and admins) are queued in
    /// the same transaction, so only the call that disabled the endpoint mails (ADR 0018).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn disable(
        &self,
        org_id: OrgId,
        endpoint_id: WebhookId,
        why: Disabling,
        sparing: Option<DeliveryId>,
        audit: &AuditEvent,
        mails: &[QueuedMail],
    ) -> Result<bool, StoreError>;

    /// Clears the endpoint's failing mark, with `audit` (a recovery), in one transaction;
    /// `false`, with nothing written, when it was not marked (another worker recorded the
    /// recovery first, or the endpoint is gone).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn recovered(&self, org_id: OrgId, endpoint_id: WebhookId, audit: &AuditEvent) -> Result<bool, StoreError>;

    /// A page of an endpoint's deliveries, newest first: at most `limit`, older than `before`.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn list(
        &self,
        org_id: OrgId,
        endpoint_id: WebhookId,
        before: Option<DeliveryId>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError>;

    /// One delivery of an endpoint with every attempt, oldest first.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn get(
        &self,
        org_id: OrgId,
        endpoint_id: WebhookId,
        id: DeliveryId,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>, StoreError>;

    /// Makes a `failed` or `dead` delivery due at `now` (a manual retry); `false` when there
    /// is no such delivery, it is not in one of those states, or its payload was erased.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn retry(
        &self,
        org_id: OrgId,
        endpoint_id: WebhookId,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Queues `event` (a `webhook.test`) for one endpoint only, with its audit entry; returns
    /// the new delivery's id.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn enqueue_test(&self, endpoint_id: WebhookId, event: &AuditEvent) -> Result<DeliveryId, StoreError>;

    /// Erases payloads and response bodies of deliveries finished before `before`; returns
    /// how many deliveries were erased.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn purge(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;

    /// Deletes up to `limit` outbox events created before `before` and already fanned out:
    /// each delivery carries its own copy of the payload, and the audit log keeps the entry,
    /// so the outbox need not grow for ever. Returns how many were deleted.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;

    /// Deliveries waiting (pending or failed), for the queue-depth metric.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn depth(&self) -> Result<u64, StoreError>;
}

/// One webhook request, signed and ready: the sender only transports it, so signing and the
/// payload format stay in the application and every sender adapter signs the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingWebhook {
    /// The endpoint.
    pub url: String,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`, `content-type`.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// What the endpoint answered: whatever the status, it is an answer; the application decides
/// what counts as delivered and when to retry (honouring `Retry-After`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAnswer {
    /// The HTTP status.
    pub status: u16,
    /// Its `Retry-After` header, verbatim.
    pub retry_after: Option<String>,
    /// The first 4 KiB of its body (lossy UTF-8).
    pub body: String,
}

/// Why no answer came; recorded on the attempt so a tenant can tell a blocked address from an
/// endpoint that is slow or down. Every variant is retried by the dispatcher's schedule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The address is private, loopback, link-local… (the SSRF guard), or unresolvable.
    #[error("refused: {0}")]
    Refused(String),
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// The connection failed.
    #[error("failed: {0}")]
    Failed(String),
}

/// Sends webhook requests: no redirects followed, a bounded time, and only to addresses the
/// SSRF guard allows (checked on the address actually connected to).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait WebhookSender: Send + Sync {
    /// POSTs `request` once; retries are the dispatcher's, which records every attempt.
    ///
    /// # Errors
    /// [`SendError`].
    async fn send(&self, request: &OutgoingWebhook) -> Result<WebhookAnswer, SendError>;

    /// Whether `url` names a literal address the guard refuses (checked at creation; host
    /// names are checked at send time, on what they resolve to).
    fn refuses_literal(&self, url: &str) -> Option<String>;
}
