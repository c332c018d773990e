//! Outgoing webhooks: an organization's endpoints (here), and the dispatcher step that
//! delivers the events its changes wrote to the outbox — signed, at least once, retried on a
//! schedule ([`Dispatcher`]).

mod dispatcher;

pub use dispatcher::{DeliveryObserver, Dispatcher, PayloadSweeper};

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tenantry_domain::quota::Quota;
use tenantry_domain::tenancy::Permission;
use tenantry_domain::webhooks::{check_endpoint_url, format_secret};
use tenantry_domain::{DeliveryId, WebhookId};
use tenantry_ports::{
    Attempt, Clock, Delivery, DeliveryQueue, IdGenerator, OrgRepository, SecretCipher, SecretGenerator, StoreError,
    WebhookEndpoint, WebhookRepository, WebhookSender,
};

use crate::quotas::{Caller, QuotaService};
use crate::tenancy::{OrgAccess, TenancyError};

/// Everything [`WebhookService`] and [`Dispatcher`] need: one struct for both, so the use
/// cases and the worker step are always wired over the same stores.
#[derive(Clone)]
pub struct WebhookPorts {
    /// Endpoints and their sealed secrets.
    pub endpoints: Arc<dyn WebhookRepository>,
    /// The delivery queue.
    pub queue: Arc<dyn DeliveryQueue>,
    /// The HTTP sender (its SSRF guard also vets URLs at creation).
    pub sender: Arc<dyn WebhookSender>,
    /// Seals secrets at rest.
    pub cipher: Arc<dyn SecretCipher>,
    /// Random secrets.
    pub secrets: Arc<dyn SecretGenerator>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: Arc<dyn IdGenerator>,
    /// The `webhook_endpoints` quota; `None` leaves endpoints unlimited.
    pub quotas: Option<Arc<QuotaService>>,
    /// The organization's owners and admins, told when an endpoint is disabled.
    pub orgs: Arc<dyn OrgRepository>,
    /// How they are told: mail queued by the disabling transaction.
    pub mail: crate::mail::MailComposer,
}

/// Webhook policy from configuration: how hard delivery tries (schedule, leases, fairness),
/// how long secrets and payloads live, and when a failing endpoint is given up on.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Only `https://` endpoints (production).
    pub https_only: bool,
    /// Delays between attempts (`TENANTRY_WEBHOOK_RETRY_SCHEDULE`).
    pub schedule: Vec<Duration>,
    /// How long a rotated secret keeps signing.
    pub rotation_grace: Duration,
    /// Deliveries claimed per dispatcher step.
    pub batch: u32,
    /// Deliveries in flight per endpoint at most (fairness).
    pub per_endpoint: u32,
    /// How long a claim lasts before another worker may take the delivery over (longer than
    /// the sender's timeout).
    pub claim_lease: Duration,
    /// How long payloads and response bodies are kept after a delivery ends.
    pub retention: Duration,
    /// How long an endpoint may fail (every attempt, without a success) before it is
    /// disabled and its organization's owners and admins are mailed
    /// (`TENANTRY_WEBHOOK_DISABLE_AFTER`).
    pub disable_after: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            https_only: false,
            schedule: [5, 300, 1800, 7200, 18_000, 36_000, 36_000].into_iter().map(Duration::from_secs).collect(),
            rotation_grace: Duration::from_secs(24 * 3600),
            batch: 256,
            per_endpoint: 16,
            claim_lease: Duration::from_secs(60),
            retention: Duration::from_secs(30 * 24 * 3600),
            disable_after: Duration::from_secs(5 * 24 * 3600),
        }
    }
}

/// What the owner sees once: the endpoint and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointWithSecret {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// `whsec_…`: shown only at creation and rotation.
    pub secret: String,
}

/// A change to an endpoint: `None` keeps the field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointChange {
    /// New URL.
    pub url: Option<String>,
    /// New filter (empty: all types).
    pub events: Option<Vec<String>>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// The endpoint use cases (`webhooks:manage`): endpoints checked against the SSRF guard and
/// the endpoint quota at creation, secrets shown only when created or rotated (with a grace
/// period for the old one), deliveries listed and retried; every change audited in the
/// organization's log.
pub struct WebhookService {
    ports: WebhookPorts,
    settings: WebhookSettings,
}

fn invalid(field: &'static str, message: impl ToString) -> TenancyError {
    TenancyError::Invalid { field, message: message.to_string() }
}

impl WebhookService {
    /// Wires the service; no I/O happens until a method is called.
    pub fn new(ports: WebhookPorts, settings: WebhookSettings) -> Self {
        Self { ports, settings }
    }

    fn check_url(&self, url: &str) -> Result<(), TenancyError> {
        check_endpoint_url(url, self.settings.https_only).map_err(|err| invalid("url", err))?;
        if let Some(reason) = self.ports.sender.refuses_literal(url) {
            return Err(invalid("url", format!("targets a refused address ({reason})")));
        }
        Ok(())
    }

    fn check_events(events: &[String]) -> Result<(), TenancyError> {
        for event in events {
            if tenantry_domain::events::event_type(event).is_none() {
                return Err(invalid(
                    "events",
                    format!("`{event}` is not an event type (see GET /api/v1/webhook-event-types)"),
                ));
            }
        }
        Ok(())
    }

    fn new_secret(&self) -> Result<(String, String), TenancyError> {
        // 32 random bytes, URL-safe base64: its 43 characters are the key (in 24..=64 bytes).
        let secret = format_secret(self.ports.secrets.token(32).as_bytes());
        let sealed = self.ports.cipher.seal(secret.as_bytes()).map_err(|err| TenancyError::Dependency(err.into()))?;
        Ok((secret, sealed))
    }

    /// Creates an endpoint (counted against `webhook_endpoints`); its secret is returned once.
    ///
    /// # Errors
    /// `Forbidden`, `Invalid` (url, events), `QuotaExceeded`, `Dependency`.
    pub async fn create(
        &self,
        access: &OrgAccess,
        url: &str,
        events: Vec<String>,
        description: Option<String>,
    ) -> Result<EndpointWithSecret, TenancyError> {
        access.require(Permission::WebhooksManage)?;
        self.check_url(url)?;
        Self::check_events(&events)?;
        let now = self.ports.clock.now();
        let endpoint = WebhookEndpoint {
            id: WebhookId::from_uuid(self.ports.ids.new_id()),
            org_id: access.org_id,
            url: url.to_owned(),
            events,
            description,
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        let (secret, sealed) = self.new_secret()?;
        // The quota is counted from the rows inside the creating transaction: exact under
        // concurrency, and nothing to give back when the creation fails.
        let limit = match &self.ports.quotas {
            Some(quotas) => quotas.limit_of(access.org_id, Quota::WebhookEndpoints).await?,
            None => None,
        };
        let event = access.event(
            (self.ports.ids.as_ref(), self.ports.clock.as_ref()),
            "webhook.created",
            ("webhook", Some(endpoint.id.to_string())),
            &json!({"url": endpoint.url, "events": endpoint.events}),
        );
        let caller = Caller::of(access);
        match self.ports.endpoints.create(&endpoint, &sealed, limit, &event).await {
            Ok(used) => {
                if let Some(quotas) = &self.ports.quotas {
                    quotas.taken(&caller, Quota::WebhookEndpoints, used, limit).await;
                }
            }
            Err(StoreError::LimitReached { used }) => {
                return Err(match (&self.ports.quotas, limit) {
                    (Some(quotas), Some(limit)) => {
                        quotas.refused(&caller, Quota::WebhookEndpoints, used, limit).await.into()
                    }
                    _ => TenancyError::Dependency(anyhow::anyhow!("the endpoint store refused an unlimited quota")),
                });
            }
            Err(err) => return Err(err.into()),
        }
        Ok(EndpointWithSecret { endpoint, secret })
    }

    /// A page of the organization's endpoints.
    ///
    /// # Errors
    /// `Forbidden`, `Dependency`.
    pub async fn list(
        &self,
        access: &OrgAccess,
        after: Option<WebhookId>,
        limit: u32,
    ) -> Result<Vec<WebhookEndpoint>, TenancyError> {
        access.require(Permission::WebhooksManage)?;
        Ok(self.ports.endpoints.list(access.org_id, after, limit).await?)
    }

    /// One endpoint.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Dependency`.
    pub async fn get(&self, access: &OrgAccess, id: WebhookId) -> Result<WebhookEndpoint, TenancyError> {
        access.require(Permission::WebhooksManage)?;
        self.ports.endpoints.get(access.org_id, id).await?.ok_or(TenancyError::NotFound)
    }

    /// Changes an endpoint; enabling it again clears the reason it was disabled.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Invalid`, `Dependency`.
    pub async fn update(
        &self,
        access: &OrgAccess,
        id: WebhookId,
        change: EndpointChange,
    ) -> Result<WebhookEndpoint, TenancyError> {
        let mut endpoint = self.get(access, id).await?;
        if let Some(url) = change.url {
            self.check_url(&url)?;
            endpoint.url = url;
        }
        if let Some(events) = change.events {
            Self::check_events(&events)?;
            endpoint.events = events;
        }
        if let Some(description) = change.description {
            endpoint.description = description;
        }
        if let Some(enabled) = change.enabled {
            if enabled && !endpoint.enabled {
                // A fresh start: the reason and the failing period end with the owner's decision.
                endpoint.disabled_reason = None;
                endpoint.failing_since = None;
            }
            endpoint.enabled = enabled;
        }
        endpoint.updated_at = self.ports.clock.now();
        let event = access.event(
            (self.ports.ids.as_ref(), self.ports.clock.as_ref()),
            "webhook.updated",
            ("webhook", Some(id.to_string())),
            &json!({"url": endpoint.url, "events": endpoint.events, "enabled": endpoint.enabled}),
        );
        if !self.ports.endpoints.update(&endpoint, &event).await? {
            return Err(TenancyError::NotFound);
        }
        Ok(endpoint)
    }

    /// Deletes an endpoint with its deliveries and payloads (its quota unit is the row).
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Dependency`.
    pub async fn delete(&self, access: &OrgAccess, id: WebhookId) -> Result<(), TenancyError> {
        access.require(Permission::WebhooksManage)?;
        let event = access.event(
            (self.ports.ids.as_ref(), self.ports.clock.as_ref()),
            "webhook.deleted",
            ("webhook", Some(id.to_string())),
            &json!({}),
        );
        if !self.ports.endpoints.delete(access.org_id, id, &event).await? {
            return Err(TenancyError::NotFound);
        }
        Ok(())
    }

    /// A new secret; the previous one keeps signing (a second signature) for the grace period.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Dependency`.
    pub async fn rotate_secret(&self, access: &OrgAccess, id: WebhookId) -> Result<EndpointWithSecret, TenancyError> {
        let endpoint = self.get(access, id).await?;
        let (secret, sealed) = self.new_secret()?;
        let until = self.ports.clock.now()
            + chrono::Duration::from_std(self.settings.rotation_grace).unwrap_or(chrono::Duration::MAX);
        let event = access.event(
            (self.ports.ids.as_ref(), self.ports.clock.as_ref()),
            "webhook.secret_rotated",
            ("webhook", Some(id.to_string())),
            &json!({"previous_valid_until": until}),
        );
        if !self.ports.endpoints.rotate_secret(access.org_id, id, &sealed, until, &event).await? {
            return Err(TenancyError::NotFound);
        }
        Ok(EndpointWithSecret { endpoint, secret })
    }

    /// Queues a `webhook.test` event for this endpoint only.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `EndpointDisabled` (nothing would be sent), `Dependency`.
    pub async fn send_test(&self, access: &OrgAccess, id: WebhookId) -> Result<DeliveryId, TenancyError> {
        let endpoint = self.get(access, id).await?;
        if !endpoint.enabled {
            return Err(TenancyError::EndpointDisabled);
        }
        let event = access.event(
            (self.ports.ids.as_ref(), self.ports.clock.as_ref()),
            "webhook.test",
            ("webhook", Some(endpoint.id.to_string())),
            &json!({"endpoint_id": endpoint.id, "message": "This is a test event from Tenantry."}),
        );
        Ok(self.ports.queue.enqueue_test(endpoint.id, &event).await?)
    }

    /// A page of an endpoint's deliveries, newest first.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Dependency`.
    pub async fn deliveries(
        &self,
        access: &OrgAccess,
        id: WebhookId,
        before: Option<DeliveryId>,
        limit: u32,
    ) -> Result<Vec<Delivery>, TenancyError> {
        self.get(access, id).await?;
        Ok(self.ports.queue.list(access.org_id, id, before, limit).await?)
    }

    /// One delivery with every attempt.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Dependency`.
    pub async fn delivery(
        &self,
        access: &OrgAccess,
        id: WebhookId,
        delivery_id: DeliveryId,
    ) -> Result<(Delivery, Vec<Attempt>), TenancyError> {
        access.require(Permission::WebhooksManage)?;
        self.ports.queue.get(access.org_id, id, delivery_id).await?.ok_or(TenancyError::NotFound)
    }

    /// A new attempt now for a `failed` or `dead` delivery.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound` (no such delivery, or not failed or dead), `EndpointDisabled`
    /// (it would never be attempted), `Dependency`.
    pub async fn retry(&self, access: &OrgAccess, id: WebhookId, delivery_id: DeliveryId) -> Result<(), TenancyError> {
        if !self.get(access, id).await?.enabled {
            return Err(TenancyError::EndpointDisabled);
        }
        if self.ports.queue.retry(access.org_id, id, delivery_id, self.ports.clock.now()).await? {
            Ok(())
        } else {
            Err(TenancyError::NotFound)
        }
    }
}
