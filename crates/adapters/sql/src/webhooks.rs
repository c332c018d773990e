//! [`WebhookRepository`] and [`DeliveryQueue`] on sea-orm: endpoints, and the delivery queue
//! fed by the transactional outbox (`webhook_events`, written by the audit append in the
//! transaction of every change whose action is in the event catalog).
//!
//! The dispatcher's steps that span tenants by nature (fan-out, claim, purge, depth) run in
//! declared platform transactions; everything an organization asks for, and recording an
//! attempt of one organization's delivery, runs in that organization's tenant transaction.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::webhooks::{DeliveryStatus, subscribed};
use tenantry_domain::{DeliveryId, OrgId, WebhookId};
use tenantry_ports::{
    Attempt, AttemptOutcome, ClaimedDelivery, Delivery, DeliveryQueue, Disabling, QueuedMail, StoreError,
    WebhookEndpoint, WebhookRepository,
};

use crate::SqlDatabase;
use crate::audit::TEST_EVENT;
use crate::database::Scope;
use crate::entities::{webhook_attempts, webhook_deliveries, webhook_endpoints, webhook_events};
use crate::errors::{corrupt, store_error};

/// Deliveries per insert statement at fan-out: far below both databases' bound on the number
/// of bound values in one statement.
const INSERT_CHUNK: usize = 500;

/// [`WebhookRepository`] on SQL (PostgreSQL or SQLite).
///
/// The event filter is stored as a JSON array of type names (`[]`: every type); secrets are
/// stored as sealed by the application, the rotated one beside the current one until its grace
/// period ends.
#[derive(Clone)]
pub struct SqlWebhookRepository {
    db: SqlDatabase,
}

impl SqlWebhookRepository {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }
}

fn endpoint_from(model: webhook_endpoints::Model) -> Result<WebhookEndpoint, StoreError> {
    let events: Vec<String> = serde_json::from_str(&model.events).map_err(|_| corrupt("webhook event filter"))?;
    Ok(WebhookEndpoint {
        id: WebhookId::from_uuid(model.id),
        org_id: OrgId::from_uuid(model.org_id),
        url: model.url,
        events,
        description: model.description,
        enabled: model.enabled,
        disabled_reason: model.disabled_reason,
        failing_since: model.failing_since,
        created_at: model.created_at,
        updated_at: model.updated_at,
    })
}

fn filter_text(events: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(events).map_err(|err| StoreError::Unexpected(anyhow::Error::new(err)))
}

/// The organization's endpoints, counted in `txn` (the `webhook_endpoints` quota).
pub(crate) async fn endpoint_count(txn: &impl ConnectionTrait, org_id: OrgId) -> Result<u64, StoreError> {
    webhook_endpoints::Entity::find()
        .filter(webhook_endpoints::Column::OrgId.eq(org_id.as_uuid()))
        .count(txn)
        .await
        .map_err(store_error)
}

/// The sealed secrets of `endpoint` that sign at `now`: the current one, then the previous
/// one while its grace period lasts.
fn signing_secrets(endpoint: &webhook_endpoints::Model, now: DateTime<Utc>) -> Vec<String> {
    let mut secrets = vec![endpoint.secret.clone()];
    if let (Some(previous), Some(until)) = (&endpoint.previous_secret, endpoint.previous_until)
        && now < until
    {
        secrets.push(previous.clone());
    }
    secrets
}

#[async_trait::async_trait]
impl WebhookRepository for SqlWebhookRepository {
    #[tracing::instrument(name = "adapter.sql.webhooks.create", skip_all, fields(org_id = %endpoint.org_id))]
    async fn create(
        &self,
        endpoint: &WebhookEndpoint,
        sealed_secret: &str,
        limit: Option<u64>,
        audit: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let events = filter_text(&endpoint.events)?;
        let txn = self.db.tenant(endpoint.org_id).await?;
        // The audit head first: it is the organization's write lock, so the count below cannot
        // change before this transaction ends.
        crate::audit::append(&txn, audit).await?;
        let used = endpoint_count(&txn, endpoint.org_id).await?;
        if limit.is_some_and(|limit| used >= limit) {
            txn.rollback().await.map_err(store_error)?;
            return Err(StoreError::LimitReached { used });
        }
        webhook_endpoints::Entity::insert(webhook_endpoints::ActiveModel {
            id: Set(endpoint.id.as_uuid()),
            org_id: Set(endpoint.org_id.as_uuid()),
            url: Set(endpoint.url.clone()),
            events: Set(events),
            description: Set(endpoint.description.clone()),
            enabled: Set(endpoint.enabled),
            disabled_reason: Set(endpoint.disabled_reason.clone()),
            failing_since: Set(endpoint.failing_since),
            secret: Set(sealed_secret.to_owned()),
            previous_secret: Set(None),
            previous_until: Set(None),
            created_at: Set(endpoint.created_at),
            updated_at: Set(endpoint.updated_at),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        Ok(used + 1)
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.list", skip_all, fields(org_id = %org_id))]
    async fn list(
        &self,
        org_id: OrgId,
        after: Option<WebhookId>,
        limit: u32,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let mut query = webhook_endpoints::Entity::find().filter(webhook_endpoints::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(after) = after {
            query = query.filter(webhook_endpoints::Column::Id.gt(after.as_uuid()));
        }
        // Ids are UUIDv7: id order is creation order, and a total one for the cursor.
        let query = query.order_by_asc(webhook_endpoints::Column::Id).limit(u64::from(limit));
        let found = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.all(txn).await })).await?;
        found.into_iter().map(endpoint_from).collect()
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.get", skip_all, fields(org_id = %org_id))]
    async fn get(&self, org_id: OrgId, id: WebhookId) -> Result<Option<WebhookEndpoint>, StoreError> {
        let query = webhook_endpoints::Entity::find()
            .filter(webhook_endpoints::Column::OrgId.eq(org_id.as_uuid()))
            .filter(webhook_endpoints::Column::Id.eq(id.as_uuid()));
        let found = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.one(txn).await })).await?;
        found.map(endpoint_from).transpose()
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.update", skip_all, fields(org_id = %endpoint.org_id))]
    async fn update(&self, endpoint: &WebhookEndpoint, audit: &AuditEvent) -> Result<bool, StoreError> {
        let update = webhook_endpoints::Entity::update_many()
            .col_expr(webhook_endpoints::Column::Url, Expr::value(endpoint.url.clone()))
            .col_expr(webhook_endpoints::Column::Events, Expr::value(filter_text(&endpoint.events)?))
            .col_expr(webhook_endpoints::Column::Description, Expr::value(endpoint.description.clone()))
            .col_expr(webhook_endpoints::Column::Enabled, Expr::value(endpoint.enabled))
            .col_expr(webhook_endpoints::Column::DisabledReason, Expr::value(endpoint.disabled_reason.clone()))
            .col_expr(webhook_endpoints::Column::FailingSince, Expr::value(endpoint.failing_since))
            .col_expr(webhook_endpoints::Column::UpdatedAt, Expr::value(endpoint.updated_at))
            .filter(webhook_endpoints::Column::OrgId.eq(endpoint.org_id.as_uuid()))
            .filter(webhook_endpoints::Column::Id.eq(endpoint.id.as_uuid()));
        crate::audit::audited_single_row(&self.db, endpoint.org_id, audit, |txn| {
            Box::pin(async move { Ok(update.exec(txn).await?.rows_affected) })
        })
        .await
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.delete", skip_all, fields(org_id = %org_id))]
    async fn delete(&self, org_id: OrgId, id: WebhookId, audit: &AuditEvent) -> Result<bool, StoreError> {
        let org = org_id.as_uuid();
        crate::audit::audited_single_row(&self.db, org_id, audit, |txn| {
            Box::pin(async move {
                // Attempts and deliveries go with the endpoint (ON DELETE CASCADE); deleting them
                // explicitly too keeps SQLite correct even on a connection without foreign keys.
                let deliveries = Query::select()
                    .column(webhook_deliveries::Column::Id)
                    .from(webhook_deliveries::Entity)
                    .and_where(webhook_deliveries::Column::OrgId.eq(org))
                    .and_where(webhook_deliveries::Column::EndpointId.eq(id.as_uuid()))
                    .to_owned();
                webhook_attempts::Entity::delete_many()
                    .filter(webhook_attempts::Column::OrgId.eq(org))
                    .filter(webhook_attempts::Column::DeliveryId.in_subquery(deliveries))
                    .exec(txn)
                    .await?;
                webhook_deliveries::Entity::delete_many()
                    .filter(webhook_deliveries::Column::OrgId.eq(org))
                    .filter(webhook_deliveries::Column::EndpointId.eq(id.as_uuid()))
                    .exec(txn)
                    .await?;
                let deleted = webhook_endpoints::Entity::delete_many()
                    .filter(webhook_endpoints::Column::OrgId.eq(org))
                    .filter(webhook_endpoints::Column::Id.eq(id.as_uuid()))
                    .exec(txn)
                    .await?;
                Ok(deleted.rows_affected)
            })
        })
        .await
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.rotate_secret", skip_all, fields(org_id = %org_id))]
    async fn rotate_secret(
        &self,
        org_id: OrgId,
        id: WebhookId,
        sealed_secret: &str,
        previous_until: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        // Both databases evaluate the right-hand sides on the row as it was: the current secret
        // becomes the previous one in the same statement that replaces it.
        let rotate = webhook_endpoints::Entity::update_many()
            .col_expr(webhook_endpoints::Column::PreviousSecret, Expr::col(webhook_endpoints::Column::Secret))
            .col_expr(webhook_endpoints::Column::Secret, Expr::value(sealed_secret))
            .col_expr(webhook_endpoints::Column::PreviousUntil, Expr::value(previous_until))
            .col_expr(webhook_endpoints::Column::UpdatedAt, Expr::value(audit.created_at))
            .filter(webhook_endpoints::Column::OrgId.eq(org_id.as_uuid()))
            .filter(webhook_endpoints::Column::Id.eq(id.as_uuid()));
        crate::audit::audited_single_row(&self.db, org_id, audit, |txn| {
            Box::pin(async move { Ok(rotate.exec(txn).await?.rows_affected) })
        })
        .await
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.secrets", skip_all, fields(org_id = %org_id))]
    async fn secrets(
        &self,
        org_id: OrgId,
        id: WebhookId,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let query = webhook_endpoints::Entity::find()
            .filter(webhook_endpoints::Column::OrgId.eq(org_id.as_uuid()))
            .filter(webhook_endpoints::Column::Id.eq(id.as_uuid()));
        let found = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.one(txn).await })).await?;
        Ok(found.map(|model| signing_secrets(&model, now)))
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.count", skip_all, fields(org_id = %org_id))]
    async fn count(&self, org_id: OrgId) -> Result<u64, StoreError> {
        let txn = self.db.tenant(org_id).await?;
        let count = endpoint_count(&txn, org_id).await?;
        txn.commit().await.map_err(store_error)?;
        Ok(count)
    }
}

/// [`DeliveryQueue`] on SQL (PostgreSQL or SQLite).
///
/// On PostgreSQL any number of workers run the dispatcher's steps at once: fan-out and claims
/// lock what they take with `FOR UPDATE SKIP LOCKED`, so each event is fanned out once and each
/// claim is given to one worker, and no worker waits for another. On SQLite every step starts
/// with its write, which takes the database's write lock: one node, one step at a time.
///
/// `per_endpoint` bounds an endpoint's claims in force, not only its share of one batch: an
/// endpoint with `k` deliveries in flight gets at most `per_endpoint - k` more, so one with
/// `per_endpoint` in flight is skipped. A claim is `claimed_until` in the future; recording an
/// attempt, a `410 Gone` or the lease running out ends it.
#[derive(Clone)]
pub struct SqlDeliveryQueue {
    db: SqlDatabase,
}

impl SqlDeliveryQueue {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }
}

/// The row-locking clause of a dispatcher step: PostgreSQL skips what another worker holds;
/// SQLite has one writer at a time and no such clause.
fn skip_locked(backend: DbBackend) -> &'static str {
    if backend == DbBackend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" }
}

/// Counts and numbers are `INTEGER`: values past its range are capped (none comes near).
fn int(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

fn delivery_from(model: webhook_deliveries::Model) -> Result<Delivery, StoreError> {
    let last_response_status = match model.last_response_status {
        Some(status) => Some(u16::try_from(status).map_err(|_| corrupt("delivery response status"))?),
        None => None,
    };
    let last_latency_ms = match model.last_latency_ms {
        Some(latency) => Some(u32::try_from(latency).map_err(|_| corrupt("delivery latency"))?),
        None => None,
    };
    Ok(Delivery {
        id: DeliveryId::from_uuid(model.id),
        org_id: OrgId::from_uuid(model.org_id),
        endpoint_id: WebhookId::from_uuid(model.endpoint_id),
        event_id: model.event_id,
        event_type: model.event_type,
        status: DeliveryStatus::parse(&model.status).ok_or_else(|| corrupt("delivery status"))?,
        attempts: u32::try_from(model.attempts).map_err(|_| corrupt("delivery attempt count"))?,
        last_response_status,
        last_latency_ms,
        next_attempt_at: model.next_attempt_at,
        created_at: model.created_at,
        event_created_at: model.event_created_at,
        payload: model.payload,
    })
}

fn attempt_from(model: webhook_attempts::Model) -> Result<Attempt, StoreError> {
    let response_status = match model.response_status {
        Some(status) => Some(u16::try_from(status).map_err(|_| corrupt("attempt response status"))?),
        None => None,
    };
    Ok(Attempt {
        attempt: u32::try_from(model.attempt).map_err(|_| corrupt("attempt number"))?,
        started_at: model.started_at,
        response_status,
        latency_ms: u32::try_from(model.latency_ms).map_err(|_| corrupt("attempt latency"))?,
        response_body: model.response_body,
        error: model.error,
    })
}

/// A new pending delivery `id` of an event to one endpoint, due at `due`.
fn pending(
    id: uuid::Uuid,
    org_id: uuid::Uuid,
    endpoint_id: uuid::Uuid,
    event: &webhook_events::Model,
    due: DateTime<Utc>,
) -> webhook_deliveries::ActiveModel {
    webhook_deliveries::ActiveModel {
        id: Set(id),
        org_id: Set(org_id),
        endpoint_id: Set(endpoint_id),
        event_id: Set(event.id),
        event_type: Set(event.event_type.clone()),
        payload: Set(Some(event.data.clone())),
        status: Set(DeliveryStatus::Pending.as_str().to_owned()),
        attempts: Set(0),
        last_response_status: Set(None),
        last_latency_ms: Set(None),
        next_attempt_at: Set(Some(due)),
        claimed_until: Set(None),
        created_at: Set(due),
        event_created_at: Set(event.created_at),
        finished_at: Set(None),
    }
}

const WAITING: [&str; 2] = ["pending", "failed"];

#[async_trait::async_trait]
impl DeliveryQueue for SqlDeliveryQueue {
    #[tracing::instrument(name = "adapter.sql.webhooks.fan_out", skip_all, fields(limit = limit))]
    async fn fan_out(&self, now: DateTime<Utc>, limit: u32) -> Result<u32, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        // The outbox of every organization: the dispatcher serves them all.
        let txn = self.db.platform().await?;
        let backend = txn.get_database_backend();
        // Marking first takes the events (and on SQLite the write lock) before anything is read:
        // concurrent workers skip what another one marks, and a failure below rolls the marks
        // back with everything else, so each event is fanned out exactly once.
        let taken = txn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE webhook_events SET fanned_out = TRUE WHERE id IN (SELECT id FROM webhook_events \
                     WHERE fanned_out = FALSE ORDER BY id LIMIT $1{}) \
                     RETURNING id, org_id, event_type, data, created_at, fanned_out",
                    skip_locked(backend)
                ),
                [i64::from(limit).into()],
            ))
            .await
            .map_err(store_error)?;
        let mut events = taken
            .iter()
            .map(|row| webhook_events::Model::from_query_result(row, ""))
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        if events.is_empty() {
            txn.commit().await.map_err(store_error)?;
            return Ok(0);
        }
        events.sort_by_key(|event| event.id);
        let mut orgs: Vec<uuid::Uuid> = events.iter().map(|event| event.org_id).collect();
        orgs.sort_unstable();
        orgs.dedup();
        let endpoints = webhook_endpoints::Entity::find()
            .filter(webhook_endpoints::Column::OrgId.is_in(orgs))
            .filter(webhook_endpoints::Column::Enabled.eq(true))
            .order_by_asc(webhook_endpoints::Column::Id)
            .all(&txn)
            .await
            .map_err(store_error)?;
        let mut by_org: HashMap<uuid::Uuid, Vec<(uuid::Uuid, Vec<String>)>> = HashMap::new();
        for endpoint in endpoints {
            let filter: Vec<String> =
                serde_json::from_str(&endpoint.events).map_err(|_| corrupt("webhook event filter"))?;
            by_org.entry(endpoint.org_id).or_default().push((endpoint.id, filter));
        }
        // In event order, so delivery ids (UUIDv7) follow the events they carry.
        let deliveries: Vec<webhook_deliveries::ActiveModel> = events
            .iter()
            .flat_map(|event| {
                by_org
                    .get(&event.org_id)
                    .into_iter()
                    .flatten()
                    .filter(|(_, filter)| subscribed(filter, &event.event_type))
                    .map(|(endpoint, _)| pending(uuid::Uuid::now_v7(), event.org_id, *endpoint, event, now))
            })
            .collect();
        for chunk in deliveries.chunks(INSERT_CHUNK) {
            webhook_deliveries::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&txn)
                .await
                .map_err(store_error)?;
        }
        txn.commit().await.map_err(store_error)?;
        Ok(u32::try_from(events.len()).unwrap_or(limit))
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.claim", skip_all, fields(limit = limit, per_endpoint = per_endpoint))]
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
        // Due work of every organization: the dispatcher serves them all.
        let txn = self.db.platform().await?;
        let backend = txn.get_database_backend();
        // Fairness: each due delivery is ranked within its endpoint (oldest due first), and an
        // endpoint's rank plus its claims still in force may not pass `per_endpoint`, so a slow
        // endpoint holds at most that many at once and never blocks the others. The candidates
        // are then locked, skipping rows another claimer holds, and re-checked under the lock,
        // so each is given to one claimer. The cap holds across concurrent claimers too: one
        // whose snapshot missed another's fresh claims ranks the same oldest rows first, finds
        // them locked or claimed under the re-check, and takes none in their place (ranks past
        // the cap are never candidates; the contract suite runs eight claimers at once). On SQLite the statement is a write from its start: it
        // holds the write lock.
        let statement = Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE webhook_deliveries SET claimed_until = $3 WHERE id IN ( \
                   SELECT id FROM webhook_deliveries WHERE id IN ( \
                     SELECT id FROM ( \
                       SELECT d.id, d.next_attempt_at, \
                         ROW_NUMBER() OVER (PARTITION BY d.endpoint_id ORDER BY d.next_attempt_at, d.id) \
                           + COALESCE(f.busy, 0) AS place \
                       FROM webhook_deliveries d \
                       JOIN webhook_endpoints e ON e.id = d.endpoint_id \
                       LEFT JOIN (SELECT endpoint_id, COUNT(*) AS busy FROM webhook_deliveries \
                         WHERE claimed_until >= $1 GROUP BY endpoint_id) f ON f.endpoint_id = d.endpoint_id \
                       WHERE e.enabled = TRUE AND d.status IN ('pending', 'failed') AND d.next_attempt_at <= $1 \
                         AND (d.claimed_until IS NULL OR d.claimed_until < $1) \
                     ) due WHERE place <= $4 ORDER BY next_attempt_at, id LIMIT $2 \
                   ) AND status IN ('pending', 'failed') AND next_attempt_at <= $1 \
                     AND (claimed_until IS NULL OR claimed_until < $1){} \
                 ) RETURNING *",
                skip_locked(backend)
            ),
            [now.into(), i64::from(limit).into(), lease_until.into(), i64::from(per_endpoint).into()],
        );
        let rows = txn.query_all_raw(statement).await.map_err(store_error)?;
        let mut claimed = rows
            .iter()
            .map(|row| webhook_deliveries::Model::from_query_result(row, ""))
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        let mut ids: Vec<uuid::Uuid> = claimed.iter().map(|delivery| delivery.endpoint_id).collect();
        ids.sort_unstable();
        ids.dedup();
        // What the attempts need from their endpoints, read with the claim: an attempt then
        // costs no query of its own before it is recorded.
        let endpoints: HashMap<uuid::Uuid, webhook_endpoints::Model> = webhook_endpoints::Entity::find()
            .filter(webhook_endpoints::Column::Id.is_in(ids))
            .all(&txn)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|endpoint| (endpoint.id, endpoint))
            .collect();
        txn.commit().await.map_err(store_error)?;
        claimed.sort_by_key(|delivery| (delivery.next_attempt_at, delivery.id));
        claimed
            .into_iter()
            .map(|model| {
                let endpoint = endpoints.get(&model.endpoint_id).ok_or_else(|| corrupt("claimed delivery endpoint"))?;
                Ok(ClaimedDelivery {
                    delivery: delivery_from(model)?,
                    url: endpoint.url.clone(),
                    secrets: signing_secrets(endpoint, now),
                    failing_since: endpoint.failing_since,
                })
            })
            .collect()
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.record", skip_all, fields(org_id = %delivery.org_id))]
    async fn record(&self, delivery: &Delivery, attempt: &Attempt, outcome: &AttemptOutcome) -> Result<(), StoreError> {
        let org = delivery.org_id.as_uuid();
        let latency = int(attempt.latency_ms);
        let finished = matches!(outcome.status, DeliveryStatus::Succeeded | DeliveryStatus::Dead)
            .then(|| attempt.started_at + chrono::Duration::milliseconds(i64::from(attempt.latency_ms)));
        let txn = self.db.tenant(delivery.org_id).await?;
        // The delivery first: on SQLite that takes the write lock; and a delivery deleted with
        // its endpoint meanwhile leaves nothing to record.
        let updated = webhook_deliveries::Entity::update_many()
            .col_expr(webhook_deliveries::Column::Status, Expr::value(outcome.status.as_str()))
            .col_expr(webhook_deliveries::Column::Attempts, Expr::value(int(attempt.attempt)))
            .col_expr(
                webhook_deliveries::Column::LastResponseStatus,
                Expr::value(attempt.response_status.map(i32::from)),
            )
            .col_expr(webhook_deliveries::Column::LastLatencyMs, Expr::value(Some(latency)))
            .col_expr(webhook_deliveries::Column::NextAttemptAt, Expr::value(outcome.next_attempt_at))
            .col_expr(webhook_deliveries::Column::ClaimedUntil, Expr::value(None::<DateTime<Utc>>))
            .col_expr(webhook_deliveries::Column::FinishedAt, Expr::value(finished))
            .filter(webhook_deliveries::Column::OrgId.eq(org))
            .filter(webhook_deliveries::Column::Id.eq(delivery.id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(store_error)?
            .rows_affected;
        if updated == 0 {
            txn.rollback().await.map_err(store_error)?;
            return Ok(());
        }
        // The same attempt recorded twice (a lease that ran out mid-attempt) is a `Conflict`,
        // and nothing of the second record is kept.
        webhook_attempts::Entity::insert(webhook_attempts::ActiveModel {
            delivery_id: Set(delivery.id.as_uuid()),
            attempt: Set(int(attempt.attempt)),
            org_id: Set(org),
            started_at: Set(attempt.started_at),
            response_status: Set(attempt.response_status.map(i32::from)),
            latency_ms: Set(latency),
            response_body: Set(attempt.response_body.clone()),
            error: Set(attempt.error.clone()),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(store_error)?;
        if outcome.status != DeliveryStatus::Succeeded {
            // The endpoint's failing mark, set once: a row an attempt already marked is not
            // matched, so it is not written (nor locked) again by every failure.
            webhook_endpoints::Entity::update_many()
                .col_expr(webhook_endpoints::Column::FailingSince, Expr::value(Some(attempt.started_at)))
                .filter(webhook_endpoints::Column::OrgId.eq(org))
                .filter(webhook_endpoints::Column::Id.eq(delivery.endpoint_id.as_uuid()))
                .filter(webhook_endpoints::Column::FailingSince.is_null())
                .exec(&txn)
                .await
                .map_err(store_error)?;
        }
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.disable", skip_all, fields(org_id = %org_id))]
    async fn disable(
        &self,
        org_id: OrgId,
        endpoint_id: WebhookId,
        why: Disabling,
        sparing: Option<DeliveryId>,
        audit: &AuditEvent,
        mails: &[QueuedMail],
    ) -> Result<bool, StoreError> {
        let org = org_id.as_uuid();
        let now = audit.created_at;
        let txn = self.db.tenant(org_id).await?;
        // The audit head first: it is the organization's write lock.
        crate::audit::append(&txn, audit).await?;
        let mut disable = webhook_endpoints::Entity::update_many()
            .col_expr(webhook_endpoints::Column::Enabled, Expr::value(false))
            .col_expr(webhook_endpoints::Column::DisabledReason, Expr::value(why.reason()))
            .col_expr(webhook_endpoints::Column::UpdatedAt, Expr::value(now))
            .filter(webhook_endpoints::Column::OrgId.eq(org))
            .filter(webhook_endpoints::Column::Id.eq(endpoint_id.as_uuid()))
            .filter(webhook_endpoints::Column::Enabled.eq(true));
        if let Disabling::FailingSince(since) = why {
            disable = disable.filter(webhook_endpoints::Column::FailingSince.lte(since));
        }
        let disabled = disable.exec(&txn).await.map_err(store_error)?.rows_affected;
        if disabled == 0 {
            // Deleted, disabled, recovered or re-enabled meanwhile: nothing is kept (not the
            // entry).
            txn.rollback().await.map_err(store_error)?;
            return Ok(false);
        }
        webhook_deliveries::Entity::update_many()
            .col_expr(webhook_deliveries::Column::Status, Expr::value(DeliveryStatus::Dead.as_str()))
            .col_expr(webhook_deliveries::Column::NextAttemptAt, Expr::value(None::<DateTime<Utc>>))
            .col_expr(webhook_deliveries::Column::ClaimedUntil, Expr::value(None::<DateTime<Utc>>))
            .col_expr(webhook_deliveries::Column::FinishedAt, Expr::value(Some(now)))
            .filter(webhook_deliveries::Column::OrgId.eq(org))
            .filter(webhook_deliveries::Column::EndpointId.eq(endpoint_id.as_uuid()))
            .filter(webhook_deliveries::Column::Status.is_in(WAITING))
            .filter(webhook_deliveries::Column::Id.ne(sparing.map_or_else(uuid::Uuid::nil, |id| id.as_uuid())))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        crate::mail::queue(&txn, mails).await?;
        txn.commit().await.map_err(store_error)?;
        Ok(true)
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.recovered", skip_all, fields(org_id = %org_id))]
    async fn recovered(&self, org_id: OrgId, endpoint_id: WebhookId, audit: &AuditEvent) -> Result<bool, StoreError> {
        let clear = webhook_endpoints::Entity::update_many()
            .col_expr(webhook_endpoints::Column::FailingSince, Expr::value(None::<DateTime<Utc>>))
            .filter(webhook_endpoints::Column::OrgId.eq(org_id.as_uuid()))
            .filter(webhook_endpoints::Column::Id.eq(endpoint_id.as_uuid()))
            .filter(webhook_endpoints::Column::FailingSince.is_not_null());
        crate::audit::audited_single_row(&self.db, org_id, audit, |txn| {
            Box::pin(async move { Ok(clear.exec(txn).await?.rows_affected) })
        })
        .await
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.list_deliveries", skip_all, fields(org_id = %org_id))]
    async fn list(
        &self,
        org_id: OrgId,
        endpoint_id: WebhookId,
        before: Option<DeliveryId>,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut query = webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::OrgId.eq(org_id.as_uuid()))
            .filter(webhook_deliveries::Column::EndpointId.eq(endpoint_id.as_uuid()));
        if let Some(before) = before {
            query = query.filter(webhook_deliveries::Column::Id.lt(before.as_uuid()));
        }
        // Ids are UUIDv7: id order is creation order, and a total one for the cursor.
        let query = query.order_by_desc(webhook_deliveries::Column::Id).limit(u64::from(limit));
        let found = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.all(txn).await })).await?;
        found.into_iter().map(delivery_from).collect()
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.get_delivery", skip_all, fields(org_id = %org_id))]
    async fn get(
        &self,
        org_id: OrgId,
        endpoint_id: WebhookId,
        id: DeliveryId,
    ) -> Result<Option<(Delivery, Vec<Attempt>)>, StoreError> {
        let org = org_id.as_uuid();
        let txn = self.db.tenant(org_id).await?;
        let delivery = webhook_deliveries::Entity::find()
            .filter(webhook_deliveries::Column::OrgId.eq(org))
            .filter(webhook_deliveries::Column::EndpointId.eq(endpoint_id.as_uuid()))
            .filter(webhook_deliveries::Column::Id.eq(id.as_uuid()))
            .one(&txn)
            .await
            .map_err(store_error)?;
        let Some(delivery) = delivery else {
            txn.commit().await.map_err(store_error)?;
            return Ok(None);
        };
        let attempts = webhook_attempts::Entity::find()
            .filter(webhook_attempts::Column::OrgId.eq(org))
            .filter(webhook_attempts::Column::DeliveryId.eq(id.as_uuid()))
            .order_by_asc(webhook_attempts::Column::Attempt)
            .all(&txn)
            .await
            .map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        let attempts = attempts.into_iter().map(attempt_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Some((delivery_from(delivery)?, attempts)))
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.retry", skip_all, fields(org_id = %org_id))]
    async fn retry(
        &self,
        org_id: OrgId,
        endpoint_id: WebhookId,
        id: DeliveryId,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // A claim is left as it is: an expired one frees the delivery anyway, and one in force
        // is an attempt in flight (of a failed delivery), whose outcome then stands for the retry
        // instead of a second, concurrent attempt.
        let retry = webhook_deliveries::Entity::update_many()
            .col_expr(webhook_deliveries::Column::Status, Expr::value(DeliveryStatus::Pending.as_str()))
            .col_expr(webhook_deliveries::Column::NextAttemptAt, Expr::value(Some(now)))
            .col_expr(webhook_deliveries::Column::FinishedAt, Expr::value(None::<DateTime<Utc>>))
            .filter(webhook_deliveries::Column::OrgId.eq(org_id.as_uuid()))
            .filter(webhook_deliveries::Column::EndpointId.eq(endpoint_id.as_uuid()))
            .filter(webhook_deliveries::Column::Id.eq(id.as_uuid()))
            // A delivery whose payload was erased by the retention sweep has nothing to send.
            .filter(webhook_deliveries::Column::Payload.is_not_null())
            .filter(
                webhook_deliveries::Column::Status
                    .is_in([DeliveryStatus::Failed.as_str(), DeliveryStatus::Dead.as_str()]),
            );
        let txn = self.db.tenant(org_id).await?;
        let retried = retry.exec(&txn).await.map_err(store_error)?.rows_affected;
        txn.commit().await.map_err(store_error)?;
        Ok(retried == 1)
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.enqueue_test", skip_all, fields(org_id = %event.org_id))]
    async fn enqueue_test(&self, endpoint_id: WebhookId, event: &AuditEvent) -> Result<DeliveryId, StoreError> {
        if event.action != TEST_EVENT {
            // Any other catalog action would also be fanned out to every endpoint.
            return Err(StoreError::Unexpected(anyhow::anyhow!("enqueue_test takes a {TEST_EVENT} event")));
        }
        let org = event.org_id.as_uuid();
        let txn = self.db.tenant(event.org_id).await?;
        // The audit head first: it is the organization's write lock. A `webhook.test` entry is
        // not put in the outbox by the append: it goes to this endpoint only, below.
        crate::audit::append(&txn, event).await?;
        let endpoint = webhook_endpoints::Entity::find()
            .filter(webhook_endpoints::Column::OrgId.eq(org))
            .filter(webhook_endpoints::Column::Id.eq(endpoint_id.as_uuid()))
            .one(&txn)
            .await
            .map_err(store_error)?;
        if endpoint.is_none() {
            txn.rollback().await.map_err(store_error)?;
            return Err(StoreError::NotFound);
        }
        let stored = webhook_events::Model {
            id: event.id,
            org_id: org,
            event_type: event.action.clone(),
            data: event.data.clone(),
            created_at: event.created_at,
            fanned_out: true,
        };
        webhook_events::Entity::insert(webhook_events::ActiveModel {
            id: Set(stored.id),
            org_id: Set(stored.org_id),
            event_type: Set(stored.event_type.clone()),
            data: Set(stored.data.clone()),
            created_at: Set(stored.created_at),
            // Already fanned out: to this one endpoint.
            fanned_out: Set(true),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(store_error)?;
        let id = DeliveryId::from_uuid(uuid::Uuid::now_v7());
        webhook_deliveries::Entity::insert(pending(
            id.as_uuid(),
            org,
            endpoint_id.as_uuid(),
            &stored,
            event.created_at,
        ))
        .exec_without_returning(&txn)
        .await
        .map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        Ok(id)
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.purge", skip_all, fields(limit = limit))]
    async fn purge(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        // Retention spans every organization.
        let txn = self.db.platform().await?;
        let backend = txn.get_database_backend();
        let erased = txn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "UPDATE webhook_deliveries SET payload = NULL WHERE id IN (SELECT id FROM webhook_deliveries \
                     WHERE finished_at < $1 AND payload IS NOT NULL ORDER BY finished_at LIMIT $2{}) RETURNING id",
                    skip_locked(backend)
                ),
                [before.into(), i64::from(limit).into()],
            ))
            .await
            .map_err(store_error)?;
        let ids = erased
            .iter()
            .map(|row| row.try_get::<uuid::Uuid>("", "id"))
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        if !ids.is_empty() {
            webhook_attempts::Entity::update_many()
                .col_expr(webhook_attempts::Column::ResponseBody, Expr::value(None::<String>))
                .filter(webhook_attempts::Column::DeliveryId.is_in(ids.clone()))
                .filter(webhook_attempts::Column::ResponseBody.is_not_null())
                .exec(&txn)
                .await
                .map_err(store_error)?;
        }
        txn.commit().await.map_err(store_error)?;
        Ok(u64::try_from(ids.len()).unwrap_or(u64::MAX))
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.prune_events", skip_all, fields(limit = limit))]
    async fn prune_events(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        if limit == 0 {
            return Ok(0);
        }
        // The outbox of every organization.
        let txn = self.db.platform().await?;
        let backend = txn.get_database_backend();
        // Ids are UUIDv7: the oldest come first in the primary key.
        let pruned = txn
            .execute_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "DELETE FROM webhook_events WHERE id IN (SELECT id FROM webhook_events \
                     WHERE fanned_out = TRUE AND created_at < $1 ORDER BY id LIMIT $2{})",
                    skip_locked(backend)
                ),
                [before.into(), i64::from(limit).into()],
            ))
            .await
            .map_err(store_error)?
            .rows_affected();
        txn.commit().await.map_err(store_error)?;
        Ok(pruned)
    }

    #[tracing::instrument(name = "adapter.sql.webhooks.depth", skip_all)]
    async fn depth(&self) -> Result<u64, StoreError> {
        // The queue of every organization, for one metric.
        let query = webhook_deliveries::Entity::find().filter(webhook_deliveries::Column::Status.is_in(WAITING));
        self.db.read(Scope::Platform, |txn| Box::pin(async move { query.count(txn).await })).await
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::TransactionTrait;
    use secrecy::SecretString;
    use tenantry_domain::audit::{ActorKind, Origin};
    use tenantry_ports::OrgRepository;

    use super::*;
    use crate::{SqlConfig, SqlOrgRepository};

    const TABLES: [&str; 4] = ["webhook_endpoints", "webhook_events", "webhook_deliveries", "webhook_attempts"];

    use crate::fenced_orgs::count;

    fn event(org: OrgId, action: &str) -> AuditEvent {
        AuditEvent::new(
            uuid::Uuid::now_v7(),
            org,
            action,
            (ActorKind::User, uuid::Uuid::now_v7()),
            ("test", None),
            Origin::default(),
            Utc::now(),
            &serde_json::json!({"k": "v"}),
        )
    }

    /// One row per webhook table for `org`: an endpoint, an event (queued by an audited change
    /// of a catalog type, then fanned out), its delivery and one attempt of it.
    async fn populate(db: &SqlDatabase, org: OrgId) {
        let now = Utc::now();
        let endpoint = WebhookEndpoint {
            id: WebhookId::from_uuid(uuid::Uuid::now_v7()),
            org_id: org,
            url: "https://hooks.example.com/in".to_owned(),
            events: Vec::new(),
            description: None,
            enabled: true,
            disabled_reason: None,
            failing_since: None,
            created_at: now,
            updated_at: now,
        };
        SqlWebhookRepository::new(db.clone())
            .create(&endpoint, "sealed", None, &event(org, "webhook.created"))
            .await
            .expect("create endpoint");
        let txn = db.tenant(org).await.expect("tenant");
        crate::audit::append(&txn, &event(org, "org.updated")).await.expect("append");
        txn.commit().await.expect("commit");
        let queue = SqlDeliveryQueue::new(db.clone());
        assert_eq!(queue.fan_out(now, 10).await.expect("fan out"), 1);
        let claimed = queue.claim(now, 10, 10, now + chrono::Duration::seconds(60)).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        let attempt = Attempt {
            attempt: 1,
            started_at: now,
            response_status: Some(500),
            latency_ms: 5,
            response_body: Some("no".to_owned()),
            error: None,
        };
        let later = Some(now + chrono::Duration::hours(1));
        let outcome = AttemptOutcome { status: DeliveryStatus::Failed, next_attempt_at: later };
        queue.record(&claimed[0].delivery, &attempt, &outcome).await.expect("record");
    }

    #[tokio::test]
    async fn webhook_rows_are_fenced_by_row_level_security_and_go_with_their_org() {
        let Some(crate::fenced_orgs::FencedOrgs { scratch, db, superuser, orgs }) =
            crate::fenced_orgs::fenced_orgs(2).await
        else {
            return;
        };
        for org in &orgs {
            populate(&db, *org).await;
        }
        let server = db.connection();
        for table in TABLES {
            assert_eq!(count(&superuser, &format!("SELECT COUNT(*) FROM {table}")).await, 2, "{table}");
            assert_eq!(count(server, &format!("SELECT COUNT(*) FROM {table}")).await, 0, "{table} without a tenant");
            let txn = server.begin().await.expect("begin");
            txn.execute_unprepared(&format!("SELECT set_config('tenantry.org_id', '{}', true)", orgs[0]))
                .await
                .expect("set");
            assert_eq!(count(&txn, &format!("SELECT COUNT(*) FROM {table}")).await, 1, "{table}: the tenant's own");
            let foreign = format!("SELECT COUNT(*) FROM {table} WHERE org_id <> '{}'", orgs[0]);
            assert_eq!(count(&txn, &foreign).await, 0, "{table} showed another tenant's rows");
            let smuggled = txn
                .execute_unprepared(&format!(
                    "INSERT INTO webhook_events (id, org_id, event_type, data, created_at) \
                     VALUES (gen_random_uuid(), '{}', 'org.updated', '{{}}', now())",
                    orgs[1]
                ))
                .await;
            assert!(smuggled.is_err(), "a write into another tenant is refused");
            txn.rollback().await.expect("rollback");
        }
        SqlOrgRepository::new(db.clone()).delete(orgs[1], &event(orgs[1], "org.deleted")).await.expect("delete");
        for table in TABLES {
            let left = count(&superuser, &format!("SELECT COUNT(*) FROM {table} WHERE org_id = '{}'", orgs[1])).await;
            assert_eq!(left, 0, "{table} rows go with their organization");
            assert_eq!(count(&superuser, &format!("SELECT COUNT(*) FROM {table}")).await, 1, "{table}: others stay");
        }
        superuser.close().await.ok();
        db.close().await;
        scratch.drop_database().await;
    }

    #[tokio::test]
    async fn an_event_of_an_org_that_does_not_exist_is_not_kept_and_fails_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("outbox.db").display());
        let db = SqlDatabase::connect(&SqlConfig::new(SecretString::from(url))).await.expect("connects");
        db.migrate().await.expect("migrates");
        let nowhere = OrgId::from_uuid(uuid::Uuid::now_v7());
        let txn = db.tenant(nowhere).await.expect("tenant");
        crate::audit::append(&txn, &event(nowhere, "member.removed")).await.expect("the change goes through");
        txn.commit().await.expect("commit");
        assert_eq!(SqlDeliveryQueue::new(db.clone()).fan_out(Utc::now(), 10).await.expect("fan out"), 0);
        db.close().await;
    }
}
