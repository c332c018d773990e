//! `/api/v1/orgs/{org_id}/audit-log*`: read and verify; no route edits or deletes entries.

use actix_web::HttpResponse;
use actix_web::web::{self, Data, ServiceConfig};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_domain::audit::{AuditEntry, ChainReport};
use tenantry_ports::AuditFilter;
use utoipa::{IntoParams, ToSchema};
use validator::Validate;

use crate::http::org::{AuditRead, InOrg, tenancy_error};
use crate::http::page::{ApiQuery, Cursors, PageRequest, page};
use crate::http::{ApiError, FieldError};
use crate::state::AppState;

/// Registers the audit-log routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/orgs/{org_id}/audit-log")
            .service(web::resource("").route(web::get().to(list)))
            .service(web::resource("/verify").route(web::get().to(verify))),
    );
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryResponse {
    /// Id.
    pub id: String,
    /// The organization.
    pub org_id: String,
    /// Position in the organization's log, from 1.
    pub seq: i64,
    /// Dotted action, such as `member.role_changed`.
    #[schema(example = "member.role_changed")]
    pub action: String,
    /// `user` or `api_key`.
    pub actor_type: String,
    /// The user's or key's id.
    pub actor_id: String,
    /// What kind of thing changed.
    pub target_type: String,
    /// Which one.
    pub target_id: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// The request's `x-request-id`.
    pub request_id: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The change, as a small JSON object.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    /// The previous entry's hash.
    pub prev_hash: String,
    /// SHA-256 of this entry's canonical content and `prev_hash`.
    pub hash: String,
}

impl From<AuditEntry> for AuditEntryResponse {
    fn from(entry: AuditEntry) -> Self {
        let e = entry.event;
        Self {
            id: e.id.to_string(),
            org_id: e.org_id.to_string(),
            seq: entry.seq,
            action: e.action,
            actor_type: e.actor_type.as_str().to_owned(),
            actor_id: e.actor_id.to_string(),
            target_type: e.target_type,
            target_id: e.target_id,
            ip: e.origin.ip,
            user_agent: e.origin.user_agent,
            request_id: e.origin.request_id,
            created_at: e.created_at,
            data: serde_json::from_str(&e.data).unwrap_or(serde_json::Value::String(e.data)),
            prev_hash: entry.prev_hash,
            hash: entry.hash,
        }
    }
}

/// A page of entries, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries.
    pub items: Vec<AuditEntryResponse>,
    /// Pass as `cursor` for older entries; null on the last page.
    pub next_cursor: Option<String>,
}

/// Filters and paging. Times are RFC 3339.
#[derive(Debug, Deserialize, Validate, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// An action (`member.removed`) or a family (`member.*`).
    pub action: Option<String>,
    /// Only entries by this user or API key id.
    #[param(value_type = Option<String>, format = Uuid)]
    pub actor_id: Option<String>,
    /// At or after this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub since: Option<String>,
    /// Before this time.
    #[param(value_type = Option<String>, format = DateTime)]
    pub until: Option<String>,
    /// The previous page's `next_cursor`; opaque.
    pub cursor: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

fn time(field: &str, raw: Option<&str>, errors: &mut Vec<FieldError>) -> Option<DateTime<Utc>> {
    let raw = raw?;
    match DateTime::parse_from_rfc3339(raw) {
        Ok(at) => Some(at.with_timezone(&Utc)),
        Err(_) => {
            errors.push(FieldError {
                field: field.to_owned(),
                message: "must be an RFC 3339 time such as 2026-01-31T12:00:00Z".to_owned(),
            });
            None
        }
    }
}

impl AuditQuery {
    /// The filter and page, with every bad parameter named at once.
    fn filter(&self, cursors: &Cursors) -> Result<(AuditFilter, PageRequest<i64>), ApiError> {
        let mut errors = Vec::new();
        let page = page::<i64>(cursors, "audit_log", self.limit.as_deref(), self.cursor.as_deref())
            .map_err(|found| errors.extend(found))
            .ok();
        let actor_id = match self.actor_id.as_deref().map(uuid::Uuid::parse_str) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => {
                errors.push(FieldError {
                    field: "actor_id".to_owned(),
                    message: "must be a user or API key id".to_owned(),
                });
                None
            }
        };
        let since = time("since", self.since.as_deref(), &mut errors);
        let until = time("until", self.until.as_deref(), &mut errors);
        match page {
            Some(page) if errors.is_empty() => {
                let filter =
                    AuditFilter { action: self.action.clone(), actor_id, since, until, before_seq: page.after };
                Ok((filter, page))
            }
            _ => Err(ApiError::validation(errors)),
        }
    }
}

/// The organization's audit log, newest first (`audit:read`).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/audit-log", tag = "audit", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path), AuditQuery), responses((status = 200, body = AuditPage), (status = 403, body = crate::http::error::Problem), (status = 404, body = crate::http::error::Problem), (status = 422, body = crate::http::error::Problem)))]
pub async fn list(
    state: Data<AppState>,
    scope: InOrg<AuditRead>,
    query: ApiQuery<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let (filter, page) = query.filter(&state.cursors)?;
    let entries = state.audit.list(&scope.access, &filter, page.fetch()).await.map_err(tenancy_error)?;
    let page = state.cursors.finish("audit_log", entries, &page, |entry| entry.seq)?;
    Ok(HttpResponse::Ok().json(page.map(AuditEntryResponse::from)))
}

/// The outcome of re-computing the organization's hash chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyResponse {
    /// Whether every entry is unchanged and in place.
    pub valid: bool,
    /// How many entries were checked.
    pub entries_checked: u64,
    /// The first entry that was changed, moved or follows a removed one (absent when valid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken_id: Option<String>,
}

impl From<ChainReport> for VerifyResponse {
    fn from(report: ChainReport) -> Self {
        Self {
            valid: report.valid,
            entries_checked: report.entries_checked,
            first_broken_id: report.first_broken_id.map(|id| id.to_string()),
        }
    }
}

/// Re-computes the organization's hash chain (`audit:read`), detecting any entry edited,
/// removed or re-ordered behind the API's back.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/audit-log/verify", tag = "audit", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path)), responses((status = 200, body = VerifyResponse), (status = 403, body = crate::http::error::Problem), (status = 404, body = crate::http::error::Problem)))]
pub async fn verify(state: Data<AppState>, scope: InOrg<AuditRead>) -> Result<HttpResponse, ApiError> {
    let report = state.audit.verify(&scope.access).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Ok().json(VerifyResponse::from(report)))
}
