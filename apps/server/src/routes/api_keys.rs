//! `/api/v1/orgs/{org_id}/api-keys*`.

use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::web::{self, Data, ServiceConfig};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_application::IssuedApiKey;
use tenantry_domain::ApiKeyId;
use tenantry_ports::ApiKey;
use validator::Validate;

use crate::http::page::{ApiQuery, PageQuery};
use crate::http::rules;
use utoipa::ToSchema;

use crate::http::org::{ApiKeysManage, InOrg, tenancy_error};
use crate::http::{ApiError, ApiJson};
use crate::state::AppState;

/// Registers the API-key routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/orgs/{org_id}/api-keys")
            .service(web::resource("").route(web::get().to(list)).route(web::post().to(create)))
            .service(web::resource("/{key_id}").route(web::delete().to(revoke)))
            .service(web::resource("/{key_id}/rotate").route(web::post().to(rotate))),
    );
}

/// An API key's metadata (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyResponse {
    /// Id.
    pub id: String,
    /// Label.
    pub name: String,
    /// The public start of the key, `tk_<prefix>_…`, to recognise it.
    pub prefix: String,
    /// What it may do.
    pub permissions: Vec<&'static str>,
    /// Who created it.
    pub created_by: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use (written at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<ApiKey> for ApiKeyResponse {
    fn from(key: ApiKey) -> Self {
        Self {
            id: key.id.to_string(),
            name: key.name,
            prefix: format!("tk_{}", key.public_id),
            permissions: key.permissions.names(),
            created_by: key.created_by.to_string(),
            created_at: key.created_at,
            expires_at: key.expires_at,
            last_used_at: key.last_used_at,
        }
    }
}

/// A new key: `key` is shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewApiKeyResponse {
    /// The key's metadata.
    #[serde(flatten)]
    pub meta: ApiKeyResponse,
    /// The full key, for `Authorization: Bearer …` or `x-api-key`. Store it now: it is not
    /// retrievable later.
    pub key: String,
}

impl From<IssuedApiKey> for NewApiKeyResponse {
    fn from(issued: IssuedApiKey) -> Self {
        Self { meta: ApiKeyResponse::from(issued.key), key: issued.token }
    }
}

/// The organization's keys.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyList {
    /// Newest first; revoked keys are not listed.
    pub items: Vec<ApiKeyResponse>,
    /// Always null: one page.
    pub next_cursor: Option<String>,
}

/// `POST /api-keys`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// Label, 1–100 characters.
    #[schema(example = "CI deploys")]
    #[validate(custom(function = "rules::api_key_name"))]
    pub name: String,
    /// Permissions, all held by the caller.
    #[schema(example = json!(["org:read", "files:write"]))]
    #[validate(custom(function = "rules::permissions"))]
    pub permissions: Vec<String>,
    /// Optional expiry (RFC 3339, in the future).
    pub expires_at: Option<DateTime<Utc>>,
}

/// `POST /api-keys/{key_id}/rotate`.
#[derive(Debug, Default, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct RotateApiKeyRequest {
    /// How long the old key keeps working (default 3600, at most 30 days).
    pub grace_seconds: Option<u64>,
}

/// Creates a key (`api_keys:manage`); the full key is in this response only.
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/api-keys", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path)), request_body = CreateApiKeyRequest, responses((status = 201, body = NewApiKeyResponse), (status = 403, body = crate::http::error::Problem), (status = 422, body = crate::http::error::Problem)))]
pub async fn create(
    state: Data<AppState>,
    scope: InOrg<ApiKeysManage>,
    body: ApiJson<CreateApiKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let issued = state
        .api_keys
        .create(&scope.access, &body.name, &body.permissions, body.expires_at)
        .await
        .map_err(tenancy_error)?;
    Ok(HttpResponse::Created().json(NewApiKeyResponse::from(issued)))
}

/// The organization's keys (`api_keys:manage`), never their secrets.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/api-keys", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), PageQuery), responses((status = 200, body = ApiKeyList)))]
pub async fn list(
    state: Data<AppState>,
    scope: InOrg<ApiKeysManage>,
    query: ApiQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<ApiKeyId>(&state.cursors, "api_keys")?;
    let found = state.api_keys.list(&scope.access, page.after, page.fetch()).await.map_err(tenancy_error)?;
    let page = state.cursors.finish("api_keys", found, &page, |key| key.id)?;
    Ok(HttpResponse::Ok().json(page.map(ApiKeyResponse::from)))
}

/// Revokes a key; it stops working at once (on other replicas when they hear of it, 500 ms at most) (`api_keys:manage`).
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/api-keys/{key_id}", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), ("key_id" = String, Path)), responses((status = 204), (status = 404, body = crate::http::error::Problem)))]
pub async fn revoke(
    state: Data<AppState>,
    scope: InOrg<ApiKeysManage>,
    path: web::Path<(String, ApiKeyId)>,
) -> Result<HttpResponse, ApiError> {
    state.api_keys.revoke(&scope.access, path.into_inner().1).await.map_err(tenancy_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Issues a replacement; the old key works until the grace period ends (`api_keys:manage`).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/api-keys/{key_id}/rotate", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), ("key_id" = String, Path)), request_body = RotateApiKeyRequest, responses((status = 201, body = NewApiKeyResponse), (status = 404, body = crate::http::error::Problem)))]
pub async fn rotate(
    state: Data<AppState>,
    scope: InOrg<ApiKeysManage>,
    path: web::Path<(String, ApiKeyId)>,
    body: ApiJson<RotateApiKeyRequest>,
) -> Result<HttpResponse, ApiError> {
    let grace = Duration::from_secs(body.grace_seconds.unwrap_or(3600));
    let issued = state.api_keys.rotate(&scope.access, path.into_inner().1, grace).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Created().json(NewApiKeyResponse::from(issued)))
}
