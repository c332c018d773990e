//! `/api/v1/orgs/{org_id}/audit-log*`: read and verify; no route edits or deletes entries.

use actix_web::HttpResponse;
use actix_web::web::{self, Data, ServiceConfig};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_domain::audit::{AuditEntry, ChainReport};
use tenantry_ports::AuditFilter;
use utoipa::{IntoParams, ToSchema};

use crate::http::org::{AuditRead, InOrg, tenancy_error};
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
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// An action (`member.removed`) or a family (`member.*`).
    pub action: Option<String>,
    /// Only entries by this user or API key id.
    pub actor_id: Option<String>,
    /// At or after this time.
    pub since: Option<String>,
    /// Before this time.
    pub until: Option<String>,
    /// From the previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1–100, default 20.
    pub limit: Option<u32>,
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::validation(vec![FieldError { field: field.to_owned(), message: message.to_owned() }])
}

fn time(field: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| invalid(field, "must be an RFC 3339 time such as 2026-01-31T12:00:00Z"))
    })
    .transpose()
}

impl AuditQuery {
    fn filter(&self) -> Result<(AuditFilter, u32), ApiError> {
        let limit = match self.limit {
            None => 20,
            Some(limit) if (1..=100).contains(&limit) => limit,
            Some(_) => return Err(invalid("limit", "must be between 1 and 100")),
        };
        let actor_id = self
            .actor_id
            .as_deref()
            .map(uuid::Uuid::parse_str)
            .transpose()
            .map_err(|_| invalid("actor_id", "must be a user or API key id"))?;
        let before_seq = match self.cursor.as_deref() {
            None => None,
            Some(raw) => Some(
                raw.parse::<i64>()
                    .ok()
                    .filter(|seq| *seq > 0)
                    .ok_or_else(|| invalid("cursor", "is not a cursor from this API"))?,
            ),
        };
        let filter = AuditFilter {
            action: self.action.clone(),
            actor_id,
            since: time("since", self.since.as_deref())?,
            until: time("until", self.until.as_deref())?,
            before_seq,
        };
        Ok((filter, limit))
    }
}

/// The organization's audit log, newest first (`audit:read`).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/audit-log", tag = "audit", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path), AuditQuery), responses((status = 200, body = AuditPage), (status = 403, body = crate::http::error::Problem), (status = 404, body = crate::http::error::Problem), (status = 422, body = crate::http::error::Problem)))]
pub async fn list(
    state: Data<AppState>,
    scope: InOrg<AuditRead>,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let (filter, limit) = query.filter()?;
    let mut entries = state.audit.list(&scope.access, &filter, limit + 1).await.map_err(tenancy_error)?;
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let next_cursor = if more { entries.last().map(|entry| entry.seq.to_string()) } else { None };
    Ok(HttpResponse::Ok()
        .json(AuditPage { items: entries.into_iter().map(AuditEntryResponse::from).collect(), next_cursor }))
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
