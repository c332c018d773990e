//! Webhook endpoints and the delivery queue over a [`MemoryDatabase`]: the outbox filled by
//! audited changes (see `Tables::append`) is fanned out, claimed under leases and recorded
//! here, with the SQL adapter's rules.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::webhooks::{DeliveryStatus, subscribed};
use tenantry_domain::{DeliveryId, OrgId, WebhookId};
use tenantry_ports::{
    Attempt, AttemptOutcome, ClaimedDelivery, Conflict, Delivery, DeliveryQueue, Disabling, QueuedMail, StoreError,
    WebhookEndpoint, WebhookRepository,
};
use uuid::Uuid;

use crate::database::{DeliveryRow, EndpointRow, EventRow, MemoryDatabase, TEST_EVENT, Tables, count, missing};

fn page(limit: u32) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// Pending or failed: waiting for an attempt.
fn waiting(status: DeliveryStatus) -> bool {
    matches!(status, DeliveryStatus::Pending | DeliveryStatus::Failed)
}

/// [`WebhookRepository`] in memory. The endpoint limit is counted from the rows in the same
/// critical section as the creation, so concurrent creations cannot pass it.
#[derive(Clone, Debug)]
pub struct InMemoryWebhookRepository {
    db: MemoryDatabase,
}

impl InMemoryWebhookRepository {
    /// A view over `db`.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }
}

fn find_endpoint(tables: &Tables, org_id: OrgId, id: WebhookId) -> Option<&EndpointRow> {
    tables.endpoints.get(&id.as_uuid()).filter(|row| row.endpoint.org_id == org_id)
}

fn find_endpoint_mut(tables: &mut Tables, org_id: OrgId, id: WebhookId) -> Option<&mut EndpointRow> {
    tables.endpoints.get_mut(&id.as_uuid()).filter(|row| row.endpoint.org_id == org_id)
}

#[async_trait::async_trait]
impl WebhookRepository for InMemoryWebhookRepository {
    async fn create(
        &self,
        endpoint: &WebhookEndpoint,
        sealed_secret: &str,
        limit: Option<u64>,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError> {
        self.db.write(|tables| {
            let used = tables.endpoint_count(endpoint.org_id.as_uuid());
            if limit.is_some_and(|limit| used >= limit) {
                return Err(StoreError::LimitReached { used });
            }
            if tables.endpoints.contains_key(&endpoint.id.as_uuid()) {
                return Err(StoreError::Conflict(Conflict::Duplicate));
            }
            if !tables.org_exists(endpoint.org_id) {
                return Err(missing("organization"));
            }
            tables.append(audit);
            tables.endpoints.insert(
                endpoint.id.as_uuid(),
                EndpointRow {
                    endpoint: endpoint.clone(),
                    secret: sealed_secret.to_owned(),
                    previous_secret: None,
                    previous_until: None,
                },
            );
            Ok(used + 1)
        })
    }

    async fn list(
        &self,
        org_id: OrgId,
        after: Option<WebhookId>,
        limit: u32,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.db.read(|tables| {
            Ok(tables
                .endpoints
                .values()
                .map(|row| &row.endpoint)
                .filter(|endpoint| endpoint.org_id == org_id && after.is_none_or(|after| endpoint.id > after))
                .take(page(limit))
                .cloned()
                .collect())
        })
    }

    async fn get(&self, org_id: OrgId, id: WebhookId) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.db.read(|tables| Ok(find_endpoint(tables, org_id, id).map(|row| row.endpoint.clone())))
    }

    async fn update(&self, endpoint: &WebhookEndpoint, audit: &AuditEvent) -> Result<bool, StoreError> {
        self.db.write(|tables| {
            if find_endpoint(tables, endpoint.org_id, endpoint.id).is_none() {
                return Ok(false);
            }
            tables.append(audit);
            if let Some(row) = find_endpoint_mut(tables, endpoint.org_id, endpoint.id) {
                let stored = &mut row.endpoint;
                stored.url.clone_from(&endpoint.url);
                stored.events.clone_from(&endpoint.events);
                stored.description.clone_from(&endpoint.description);
                stored.enabled = endpoint.enabled;
                stored.disabled_reason.clone_from(&endpoint.disabled_reason);
                stored.failing_since = endpoint.failing_since;
                stored.updated_at = endpoint.updated_at;
            }
            Ok(true)
        })
    }

    async fn delete(&self, org_id: OrgId, id: WebhookId, audit: &AuditEvent) -> Result<bool, StoreError> {
        self.db.write(|tables| {
            if find_endpoint(tables, org_id, id).is_none() {
                return Ok(false);
            }
            tables.append(audit);
            let gone: Vec<Uuid> = tables
                .deliveries
                .iter()
                .filter(|(_, row)| row.delivery.endpoint_id == id)
                .map(|(delivery, _)| *delivery)
                .collect();
            for delivery in gone {
                tables.drop_delivery(delivery);
            }
            tables.endpoints.remove(&id.as_uuid());
            Ok(true)
        })
    }

    async fn rotate_secret(
        &self,
        org_id: OrgId,
        id: WebhookId,
        sealed_secret: &str,
        previous_until: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.db.write(|tables| {
            if find_endpoint(tables, org_id, id).is_none() {
                return Ok(false);
            }
            tables.append(audit);
            if let Some(row) = find_endpoint_mut(tables, org_id, id) {
                row.previous_secret = Some(std::mem::replace(&mut row.secret, sealed_secret.to_owned()));
                row.previous_until = Some(previous_until);
                row.endpoint.updated_at = audit.created_at;
            }
            Ok(true)
        })
    }

    async fn secrets(
        &self,
        org_id: OrgId,
        id: WebhookId,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        self.db.read(|tables| Ok(find_endpoint(tables, org_id, id).map(|row| row.signing_secrets(now))))
    }

    async fn count(&self, org_id: OrgId) -> Result<u64, StoreError> {
        self.db.read(|tables| Ok(tables.endpoint_count(org_id.as_uuid())))
    }
}

/// [`DeliveryQueue`] in memory. Claims are leases, as in SQL: a claimed delivery is not
/// claimed again before its lease ends, and per-endpoint concurrency counts the leases held.
#[derive(Clone, Debug)]
pub struct InMemoryDeliveryQueue {
    db: MemoryDatabase,
}

impl InMemoryDeliveryQueue {
    /// A view over `db`.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }
}

fn pending(id: Uuid, endpoint: WebhookId, event_id: Uuid, event: &EventRow, due: DateTime<Utc>) -> DeliveryRow {
    DeliveryRow {
        delivery: Delivery {
            id: DeliveryId::from_uuid(id),
            org_id: OrgId::from_uuid(event.org_id),
            endpoint_id: endpoint,
            event_id,
            event_type: event.event_type.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_response_status: None,
            last_latency_ms: None,
            next_attempt_at: Some(due),
            created_at: due,
            event_created_at: event.created_at,
            payload: Some(event.data.clone()),
        },
        claimed_until: None,
        finished_at: None,
    }
}

fn due_at(row: &DeliveryRow) -> Option<DateTime<Utc>> {
    row.delivery.next_attempt_at
}

#[async_trait::async_trait]
impl DeliveryQueue for InMemoryDeliveryQueue {
    async fn fan_out(&self, now: DateTime<Utc>, limit: u32) -> Result<u32, StoreError> {
        self.db.write(|tables| {
            let taken: Vec<Uuid> = tables
                .events
                .iter()
                .filter(|(_, event)| !event.fanned_out)
                .map(|(id, _)| *id)
                .take(page(limit))
                .collect();
            let mut created = Vec::new();
            for id in &taken {
                let Some(event) = tables.events.get_mut(id) else { continue };
                event.fanned_out = true;
                let event = event.clone();
                for row in tables.endpoints.values() {
                    let endpoint = &row.endpoint;
                    if endpoint.org_id.as_uuid() == event.org_id
                        && endpoint.enabled
                        && subscribed(&endpoint.events, &event.event_type)
                    {
                        created.push(pending(Uuid::now_v7(), endpoint.id, *id, &event, now));
                    }
                }
            }
            for row in created {
                tables.deliveries.insert(row.delivery.id.as_uuid(), row);
            }
            Ok(u32::try_from(taken.len()).unwrap_or(limit))
        })
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        per_endpoint: u32,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        if limit == 0 || per_endpoint == 0 {
            return Ok(Vec::new());
        }
        self.db.write(|tables| {
            let mut busy: HashMap<WebhookId, usize> = HashMap::new();
            for row in tables.deliveries.values() {
                if row.claimed_until.is_some_and(|until| until >= now) {
                    *busy.entry(row.delivery.endpoint_id).or_default() += 1;
                }
            }
            let mut due: Vec<(DateTime<Utc>, Uuid, WebhookId)> = tables
                .deliveries
                .iter()
                .filter(|(_, row)| {
                    let enabled =
                        tables.endpoints.get(&row.delivery.endpoint_id.as_uuid()).is_some_and(|e| e.endpoint.enabled);
                    enabled
                        && waiting(row.delivery.status)
                        && due_at(row).is_some_and(|at| at <= now)
                        && row.claimed_until.is_none_or(|until| until < now)
                })
                .filter_map(|(id, row)| due_at(row).map(|at| (at, *id, row.delivery.endpoint_id)))
                .collect();
            due.sort();
            let room = usize::try_from(per_endpoint).unwrap_or(usize::MAX);
            let mut placed: HashMap<WebhookId, usize> = HashMap::new();
            let mut chosen = Vec::new();
            for (_, id, endpoint) in due {
                let place = placed.entry(endpoint).or_insert_with(|| busy.get(&endpoint).copied().unwrap_or(0));
                *place += 1;
                if *place <= room {
                    chosen.push(id);
                }
                if chosen.len() >= page(limit) {
                    break;
                }
            }
            let mut claimed = Vec::with_capacity(chosen.len());
            for id in chosen {
                let Some(row) = tables.deliveries.get_mut(&id) else { continue };
                row.claimed_until = Some(lease_until);
                let delivery = row.delivery.clone();
                let endpoint = tables
                    .endpoints
                    .get(&delivery.endpoint_id.as_uuid())
                    .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("a claimed delivery lost its endpoint")))?;
                claimed.push(ClaimedDelivery {
                    url: endpoint.endpoint.url.clone(),
                    secrets: endpoint.signing_secrets(now),
                    failing_since: endpoint.endpoint.failing_since,
                    delivery,
                });
            }
            Ok(claimed)
        })
    }

    async fn record(&self, delivery: &Delivery, attempt: &Attempt, outcome: &AttemptOutcome) -> Result<(), StoreError> {
        self.db.write(|tables| {
            let id = delivery.id.as_uuid();
            if tables.deliveries.get(&id).is_none_or(|row| row.delivery.org_id != delivery.org_id) {
                return Ok(());
            }
            if tables.attempts.contains_key(&(id, attempt.attempt)) {
                return Err(StoreError::Conflict(Conflict::Duplicate));
            }
            let finished = matches!(outcome.status, DeliveryStatus::Succeeded | DeliveryStatus::Dead)
                .then(|| attempt.started_at + chrono::Duration::milliseconds(i64::from(attempt.latency_ms)));
            let endpoint_id = {
                let Some(row) = tables.deliveries.get_mut(&id) else { return Ok(()) };
                row.delivery.status = outcome.status;
                row.delivery.attempts = attempt.attempt;
                row.delivery.last_response_status = attempt.response_status;
                row.delivery.last_latency_ms = Some(attempt.latency_ms);
                row.delivery.next_attempt_at = outcome.next_attempt_at;
                row.claimed_until = None;
                row.finished_at = finished;
                row.delivery.endpoint_id
            };
            tables.attempts.insert((id, attempt.attempt), attempt.clone());
            if outcome.status != DeliveryStatus::Succeeded
                && let Some(row) = find_endpoint_mut(tables, delivery.org_id, endpoint_id)
                && row.endpoint.failing_since.is_none()
            {
                row.endpoint.failing_since = Some(attempt.started_at);
            }
            Ok(())
        })
    }

    async fn disable(
        &self,
        org_id: OrgId,
        endpoint_id: WebhookId,
        why: Disabling,
        sparing: Option<DeliveryId>,
        audit: &AuditEvent,
        mails: &[QueuedMail],
    ) -> Result<bool, StoreError> {
        let now = audit.created_at;
        self.db.write(|tables| {
            let applies = find_endpoint(tables, org_id, endpoint_id).is_some_and(|row| {
                row.endpoint.enabled
                    && match why {
                        Disabling::Gone => true,
                        Disabling::FailingSince(since) => row.endpoint.failing_since.is_some_and(|at| at <= since),
                    }
            });
            if !applies {
                return Ok(false);
            }
            tables.queue_mail(mails)?;
            tables.append(audit);
            if let Some(row) = find_endpoint_mut(tables, org_id, endpoint_id) {
                row.endpoint.enabled = false;
                row.endpoint.disabled_reason = Some(why.reason().to_owned());
                row.endpoint.updated_at = now;
            }
            for row in tables.deliveries.values_mut() {
                let delivery = &mut row.delivery;
                if delivery.org_id == org_id
                    && delivery.endpoint_id == endpoint_id
                    && waiting(delivery.status)
                    && Some(delivery.id) != sparing
                {
                    delivery.status = DeliveryStatus::Dead;
                    delivery.next_attempt_at = None;
                    row.claimed_until = None;
                    row.finished_at = Some(now);
                }
            }
            Ok(true)
        })
    }

    async fn recovered(&self, org_id: OrgId, endpoint_id: WebhookId, audit: &AuditEvent) -> Result<bool, StoreError> {
        self.db.write(|tables| {
            if find_endpoint(tables, org_id, endpoint_id).is_none_or(|row| row.endpoint.failing_since.is_none()) {
                return Ok(false);
            }
            tables.append(audit);
            if let Some(row) = find_endpoint_mut(tables, org_id, endpoint_id) {
                row.endpoint.failing_since = None;
            }
            Ok(true)
        })
    }

    async fn list(
        &self,
        org_id: OrgId,
        endpoint_id: WebhookId,
        before: Option<DeliveryId>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.db.read(|tables| {
            Ok(tables
                .deliveries
                .values()
                .rev()
                .map(|row| &row.delivery)
                .filter(|delivery| delivery.org_id == org_id && delivery.endpoint_id == endpoint_id)
                .filter(|delivery| before.is_none_or(|before| delivery.id < before))
                .take(page(limit))
                .cloned()
                .collect())
        })
    }

    async fn get(
        &self,
        org_id: OrgId,
        endpoint_id: WebhookId,
        id: DeliveryId,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>, StoreError> {
        self.db.read(|tables| {
            let Some(row) = tables
                .deliveries
                .get(&id.as_uuid())
                .filter(|row| row.delivery.org_id == org_id && row.delivery.endpoint_id == endpoint_id)
            else {
                return Ok(None);
            };
            let attempts = tables
                .attempts
                .range((id.as_uuid(), 0)..=(id.as_uuid(), u32::MAX))
                .map(|(_, attempt)| attempt.clone())
                .collect();
            Ok(Some((row.delivery.clone(), attempts)))
        })
    }

    async fn retry(
        &self,
        org_id: OrgId,
        endpoint_id: WebhookId,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.db.write(|tables| {
            Ok(match tables.deliveries.get_mut(&id.as_uuid()) {
                Some(row)
                    if row.delivery.org_id == org_id
                        && row.delivery.endpoint_id == endpoint_id
                        && row.delivery.payload.is_some()
                        && matches!(row.delivery.status, DeliveryStatus::Failed | DeliveryStatus::Dead) =>
                {
                    row.delivery.status = DeliveryStatus::Pending;
                    row.delivery.next_attempt_at = Some(now);
                    row.finished_at = None;
                    true
                }
                _ => false,
            })
        })
    }

    async fn enqueue_test(&self, endpoint_id: WebhookId, event: &AuditEvent) -> Result<DeliveryId, StoreError> {
        if event.action != TEST_EVENT {
            return Err(StoreError::Unexpected(anyhow::anyhow!("enqueue_test takes a {TEST_EVENT} event")));
        }
        self.db.write(|tables| {
            if find_endpoint(tables, event.org_id, endpoint_id).is_none() {
                return Err(StoreError::NotFound);
            }
            if tables.events.contains_key(&event.id) {
                return Err(StoreError::Conflict(Conflict::Duplicate));
            }
            tables.append(event);
            let stored = EventRow {
                org_id: event.org_id.as_uuid(),
                event_type: event.action.clone(),
                data: event.data.clone(),
                created_at: event.created_at,
                fanned_out: true,
            };
            let id = Uuid::now_v7();
            let row = pending(id, endpoint_id, event.id, &stored, event.created_at);
            tables.events.insert(event.id, stored);
            tables.deliveries.insert(id, row);
            Ok(DeliveryId::from_uuid(id))
        })
    }

    async fn purge(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        self.db.write(|tables| {
            let mut finished: Vec<(DateTime<Utc>, Uuid)> = tables
                .deliveries
                .iter()
                .filter(|(_, row)| row.delivery.payload.is_some())
                .filter_map(|(id, row)| row.finished_at.filter(|at| *at < before).map(|at| (at, *id)))
                .collect();
            finished.sort();
            finished.truncate(page(limit));
            for (_, id) in &finished {
                if let Some(row) = tables.deliveries.get_mut(id) {
                    row.delivery.payload = None;
                }
                for (_, attempt) in tables.attempts.range_mut((*id, 0)..=(*id, u32::MAX)) {
                    attempt.response_body = None;
                }
            }
            Ok(count(finished.len()))
        })
    }

    async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        self.db.write(|tables| {
            let pruned: Vec<Uuid> = tables
                .events
                .iter()
                .filter(|(_, event)| event.fanned_out && event.created_at < before)
                .map(|(id, _)| *id)
                .take(page(limit))
                .collect();
            for id in &pruned {
                tables.events.remove(id);
            }
            Ok(count(pruned.len()))
        })
    }

    async fn depth(&self) -> Result<u64, StoreError> {
        self.db.read(|tables| Ok(count(tables.deliveries.values().filter(|row| waiting(row.delivery.status)).count())))
    }
}
