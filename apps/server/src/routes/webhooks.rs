//! Webhooks: the event catalog, an organization's endpoints (`webhooks:manage`) and their
//! deliveries.

use actix_web::HttpResponse;
use actix_web::web::{self, Data, ServiceConfig};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_application::{EndpointChange, EndpointWithSecret};
use tenantry_domain::{DeliveryId, WebhookId};
use tenantry_ports::{Attempt, Delivery, WebhookEndpoint};
use utoipa::ToSchema;
use validator::Validate;

use crate::http::org::{InOrg, WebhooksManage, tenancy_error};
use crate::http::page::{ApiQuery, PageQuery};
use crate::http::{ApiError, ApiJson};
use crate::state::AppState;

/// Registers the webhook routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(web::resource("/api/v1/webhook-event-types").route(web::get().to(event_types))).service(
        web::scope("/api/v1/orgs/{org_id}/webhooks")
            .service(web::resource("").route(web::get().to(list)).route(web::post().to(create)))
            .service(
                web::resource("/{webhook_id}")
                    .route(web::get().to(get))
                    .route(web::patch().to(update))
                    .route(web::delete().to(delete)),
            )
            .service(web::resource("/{webhook_id}/rotate-secret").route(web::post().to(rotate_secret)))
            .service(web::resource("/{webhook_id}/test").route(web::post().to(test)))
            .service(web::resource("/{webhook_id}/deliveries").route(web::get().to(deliveries)))
            .service(web::resource("/{webhook_id}/deliveries/{delivery_id}").route(web::get().to(delivery)))
            .service(web::resource("/{webhook_id}/deliveries/{delivery_id}/retry").route(web::post().to(retry))),
    );
}

/// One event type.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeEntry {
    /// Its name, such as `member.added`.
    pub name: &'static str,
    /// When it is sent.
    pub description: &'static str,
    /// An example of its `data`.
    #[schema(value_type = Object)]
    pub example: serde_json::Value,
}

/// The event catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeCatalog {
    /// Every type an endpoint can subscribe to.
    pub event_types: Vec<EventTypeEntry>,
}

/// The event types an endpoint can subscribe to, each with an example.
#[utoipa::path(get, path = "/api/v1/webhook-event-types", tag = "webhooks", responses((status = 200, body = EventTypeCatalog)))]
pub async fn event_types() -> HttpResponse {
    HttpResponse::Ok().json(EventTypeCatalog {
        event_types: tenantry_domain::events::EVENT_TYPES
            .iter()
            .map(|event| EventTypeEntry {
                name: event.name,
                description: event.description,
                example: serde_json::from_str(event.example).unwrap_or_else(|_| serde_json::json!({})),
            })
            .collect(),
    })
}

/// An endpoint (its secret only at creation and rotation).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookResponse {
    /// Id.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// Subscribed event types; empty: all.
    pub events: Vec<String>,
    /// Free text.
    pub description: Option<String>,
    /// Whether it receives events.
    pub enabled: bool,
    /// Why the system disabled it, if it did: `gone` (it answered 410) or `failing` (every
    /// attempt failed for `TENANTRY_WEBHOOK_DISABLE_AFTER`).
    pub disabled_reason: Option<String>,
    /// Since when every attempt has failed; `null` once one succeeds (or none failed).
    pub failing_since: Option<DateTime<Utc>>,
    /// `whsec_…`: present only in the answer to creation and rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<WebhookEndpoint> for WebhookResponse {
    fn from(endpoint: WebhookEndpoint) -> Self {
        Self {
            id: endpoint.id.to_string(),
            url: endpoint.url,
            events: endpoint.events,
            description: endpoint.description,
            enabled: endpoint.enabled,
            disabled_reason: endpoint.disabled_reason,
            failing_since: endpoint.failing_since,
            secret: None,
            created_at: endpoint.created_at,
            updated_at: endpoint.updated_at,
        }
    }
}

impl From<EndpointWithSecret> for WebhookResponse {
    fn from(created: EndpointWithSecret) -> Self {
        Self { secret: Some(created.secret), ..Self::from(created.endpoint) }
    }
}

/// A page of endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Oldest first.
    pub items: Vec<WebhookResponse>,
    /// The next page's cursor, or null.
    pub next_cursor: Option<String>,
}

/// `POST /orgs/{org_id}/webhooks`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookRequest {
    /// `https://…` (`http://` outside production).
    #[schema(example = "https://hooks.example.com/tenantry")]
    #[validate(custom(function = "crate::http::rules::webhook_url"))]
    pub url: String,
    /// Event types to receive; empty: all.
    #[schema(example = json!(["member.added", "member.removed"]))]
    #[validate(
        length(max = 100, message = "must list at most 100 event types"),
        custom(function = "crate::http::rules::event_types")
    )]
    pub events: Vec<String>,
    /// Up to 500 characters.
    #[validate(length(max = 500, message = "must be at most 500 characters"))]
    pub description: Option<String>,
}

/// `PATCH /orgs/{org_id}/webhooks/{webhook_id}`: fields left out stay.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhookRequest {
    /// New URL.
    #[validate(custom(function = "crate::http::rules::webhook_url"))]
    pub url: Option<String>,
    /// New event filter.
    #[validate(
        length(max = 100, message = "must list at most 100 event types"),
        custom(function = "crate::http::rules::event_types")
    )]
    pub events: Option<Vec<String>>,
    /// New description; `null` clears it.
    #[serde(default, deserialize_with = "crate::http::rules::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

/// Creates an endpoint (`webhooks:manage`, counted against `webhook_endpoints`); the answer
/// carries its secret, shown only here.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/webhooks", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path)), request_body = CreateWebhookRequest, responses((status = 201, body = WebhookResponse)))]
pub async fn create(
    state: Data<AppState>,
    scope: InOrg<WebhooksManage>,
    body: ApiJson<CreateWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let created =
        state.webhooks.create(&scope.access, &body.url, body.events, body.description).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Created().json(WebhookResponse::from(created)))
}

/// The organization's endpoints, oldest first (`webhooks:manage`).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/webhooks", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path), PageQuery), responses((status = 200, body = WebhookList)))]
pub async fn list(
    state: Data<AppState>,
    scope: InOrg<WebhooksManage>,
    query: ApiQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<WebhookId>(&state.cursors, "webhooks")?;
    let found = state.webhooks.list(&scope.access, page.after, page.fetch()).await.map_err(tenancy_error)?;
    let page = state.cursors.finish("webhooks", found, &page, |endpoint| endpoint.id)?;
    Ok(HttpResponse::Ok().json(page.map(WebhookResponse::from)))
}

/// One endpoint (`webhooks:manage`).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/webhooks/{webhook_id}", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path), ("webhook_id" = String, Path)), responses((status = 200, body = WebhookResponse)))]
pub async fn get(
    state: Data<AppState>,
    scope: InOrg<WebhooksManage>,
    path: web::Path<(String, WebhookId)>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = state.webhooks.get(&scope.access, path.into_inner().1).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Ok().json(WebhookResponse::from(endpoint)))
}

/// Changes an endpoint, or enables or disables it (`webhooks:manage`).
#[utoipa::path(patch, path = "/api/v1/orgs/{org_id}/webhooks/{webhook_id}", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path), ("webhook_id" = String, Path)), request_body = UpdateWebhookRequest, responses((status = 200, body = WebhookResponse)))]
pub async fn update(
    state: Data<AppState>,
    scope: InOrg<WebhooksManage>,
    path: web::Path<(String, WebhookId)>,
    body: ApiJson<UpdateWebhookRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if let Some(Some(description)) = &body.description
        && description.chars().count() > 500
    {
        return Err(ApiError::validation(vec![crate::http::FieldError {
            field: "description".to_owned(),
            message: "must be at most 500 characters".to_owned(),
        }]));
    }
    let change =
        EndpointChange { url: body.url, events: body.events, description: body.description, enabled: body.enabled };
    let endpoint = state.webhooks.update(&scope.access, path.into_inner().1, change).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Ok().json(WebhookResponse::from(endpoint)))
}

/// Deletes an endpoint with its deliveries and their payloads (`webhooks:manage`).
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/webhooks/{webhook_id}", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path), ("webhook_id" = String, Path)), responses((status = 204)))]
pub async fn delete(
    state: Data<AppState>,
    scope: InOrg<WebhooksManage>,
    path: web::Path<(String, WebhookId)>,
) -> Result<HttpResponse, ApiError> {
    state.webhooks.delete(&scope.access, path.into_inner().1).await.map_err(tenancy_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// A new secret (shown only here); the previous one keeps signing, as a second signature, for
/// 24 hours (`webhooks:manage`).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/webhooks/{webhook_id}/rotate-secret", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path), ("webhook_id" = String, Path)), responses((status = 200, body = WebhookResponse)))]
pub async fn rotate_secret(
    state: Data<AppState>,
    scope: InOrg<WebhooksManage>,
    path: web::Path<(String, WebhookId)>,
) -> Result<HttpResponse, ApiError> {
    let rotated = state.webhooks.rotate_secret(&scope.access, path.into_inner().1).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Ok().json(WebhookResponse::from(rotated)))
}

/// The delivery a test queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    /// The delivery to follow.
    pub delivery_id: String,
}

/// Sends a `webhook.test` event to this endpoint (`webhooks:manage`).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/webhooks/{webhook_id}/test", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path), ("webhook_id" = String, Path)), responses((status = 202, body = Queued)))]
pub async fn test(
    state: Data<AppState>,
    scope: InOrg<WebhooksManage>,
    path: web::Path<(String, WebhookId)>,
) -> Result<HttpResponse, ApiError> {
    let id = state.webhooks.send_test(&scope.access, path.into_inner().1).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Accepted().json(Queued { delivery_id: id.to_string() }))
}

/// One delivery: an event to this endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryResponse {
    /// Id (also the `webhook-id` header of every attempt).
    pub id: String,
    /// The event.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// `pending`, `succeeded`, `failed` (another attempt is scheduled) or `dead`.
    pub status: String,
    /// Attempts made.
    pub attempts: u32,
    /// Status of the last answer.
    pub last_response_status: Option<u16>,
    /// Duration of the last attempt.
    pub last_latency_ms: Option<u32>,
    /// When the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<Delivery> for DeliveryResponse {
    fn from(delivery: Delivery) -> Self {
        Self {
            id: delivery.id.to_string(),
            event_id: delivery.event_id.to_string(),
            event_type: delivery.event_type,
            status: delivery.status.as_str().to_owned(),
            attempts: delivery.attempts,
            last_response_status: delivery.last_response_status,
            last_latency_ms: delivery.last_latency_ms,
            next_attempt_at: delivery.next_attempt_at,
            created_at: delivery.created_at,
        }
    }
}

/// A page of deliveries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub items: Vec<DeliveryResponse>,
    /// The next page's cursor, or null.
    pub next_cursor: Option<String>,
}

/// One attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptResponse {
    /// 1 for the first.
    pub attempt: u32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// The answer's status, if one came.
    pub response_status: Option<u16>,
    /// How long it took.
    pub latency_ms: u32,
    /// The first 4 KiB of the answer (erased after the retention period).
    pub response_body: Option<String>,
    /// Why no good answer came.
    pub error: Option<String>,
}

impl From<Attempt> for AttemptResponse {
    fn from(attempt: Attempt) -> Self {
        Self {
            attempt: attempt.attempt,
            started_at: attempt.started_at,
            response_status: attempt.response_status,
            latency_ms: attempt.latency_ms,
            response_body: attempt.response_body,
            error: attempt.error,
        }
    }
}

/// A delivery with every attempt: the list row's fields, with `attempts` holding the attempts
/// themselves rather than their count.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryDetail {
    /// Id (also the `webhook-id` header of every attempt).
    pub id: String,
    /// The event.
    pub event_id: String,
    /// Its type.
    pub event_type: String,
    /// `pending`, `succeeded`, `failed` or `dead`.
    pub status: String,
    /// Every attempt, oldest first.
    pub attempts: Vec<AttemptResponse>,
    /// Status of the last answer.
    pub last_response_status: Option<u16>,
    /// Duration of the last attempt.
    pub last_latency_ms: Option<u32>,
    /// When the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// The event's data as sent (erased after the retention period).
    #[schema(value_type = Option<Object>)]
    pub payload: Option<serde_json::Value>,
}

/// The endpoint's deliveries, newest first (`webhooks:manage`).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/webhooks/{webhook_id}/deliveries", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path), ("webhook_id" = String, Path), PageQuery), responses((status = 200, body = DeliveryList)))]
pub async fn deliveries(
    state: Data<AppState>,
    scope: InOrg<WebhooksManage>,
    path: web::Path<(String, WebhookId)>,
    query: ApiQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<DeliveryId>(&state.cursors, "deliveries")?;
    let found = state
        .webhooks
        .deliveries(&scope.access, path.into_inner().1, page.after, page.fetch())
        .await
        .map_err(tenancy_error)?;
    let page = state.cursors.finish("deliveries", found, &page, |delivery| delivery.id)?;
    Ok(HttpResponse::Ok().json(page.map(DeliveryResponse::from)))
}

/// One delivery with every attempt (`webhooks:manage`).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/webhooks/{webhook_id}/deliveries/{delivery_id}", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path), ("webhook_id" = String, Path), ("delivery_id" = String, Path)), responses((status = 200, body = DeliveryDetail)))]
pub async fn delivery(
    state: Data<AppState>,
    scope: InOrg<WebhooksManage>,
    path: web::Path<(String, WebhookId, DeliveryId)>,
) -> Result<HttpResponse, ApiError> {
    let (_, id, delivery_id) = path.into_inner();
    let (delivery, attempts) = state.webhooks.delivery(&scope.access, id, delivery_id).await.map_err(tenancy_error)?;
    let payload = delivery.payload.as_deref().and_then(|payload| serde_json::from_str(payload).ok());
    Ok(HttpResponse::Ok().json(DeliveryDetail {
        id: delivery.id.to_string(),
        event_id: delivery.event_id.to_string(),
        event_type: delivery.event_type,
        status: delivery.status.as_str().to_owned(),
        attempts: attempts.into_iter().map(AttemptResponse::from).collect(),
        last_response_status: delivery.last_response_status,
        last_latency_ms: delivery.last_latency_ms,
        next_attempt_at: delivery.next_attempt_at,
        created_at: delivery.created_at,
        payload,
    }))
}

/// A new attempt now, for a `failed` or `dead` delivery (`webhooks:manage`).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", tag = "webhooks", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path), ("webhook_id" = String, Path), ("delivery_id" = String, Path)), responses((status = 202)))]
pub async fn retry(
    state: Data<AppState>,
    scope: InOrg<WebhooksManage>,
    path: web::Path<(String, WebhookId, DeliveryId)>,
) -> Result<HttpResponse, ApiError> {
    let (_, id, delivery_id) = path.into_inner();
    state.webhooks.retry(&scope.access, id, delivery_id).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Accepted().finish())
}
