//! Plans and usage: `GET /api/v1/plans`, `GET /api/v1/orgs/{org_id}/usage` and the platform
//! admin's `PUT /api/v1/admin/orgs/{org_id}/plan`.

use actix_web::web::{self, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_application::{PlanChange, UsageReport};
use tenantry_domain::OrgId;
use tenantry_domain::quota::{Limits, Period, Quota};
use utoipa::ToSchema;
use validator::{Validate, ValidationError, ValidationErrors};

use crate::http::auth::PlatformAdmin;
use crate::http::limits::quota_error;
use crate::http::org::{InOrg, OrgRead, origin};
use crate::http::{ApiError, ApiJson};
use crate::state::AppState;

/// Registers the public catalog and the usage route (the admin route lives in the admin
/// scope, see [`crate::routes::admin`]).
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(web::resource("/api/v1/plans").route(web::get().to(plans)))
        .service(web::resource("/api/v1/orgs/{org_id}/usage").route(web::get().to(usage)));
}

/// A limit of every quota; `null` is unlimited.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaLimits {
    /// Members (and pending invitations when inviting).
    pub members: Option<u64>,
    /// Bytes of stored files.
    pub storage_bytes: Option<u64>,
    /// Authenticated API requests per period.
    pub api_calls: Option<u64>,
    /// File uploads per period.
    pub file_uploads: Option<u64>,
    /// Webhook endpoints.
    pub webhook_endpoints: Option<u64>,
}

impl QuotaLimits {
    fn of(limit: impl Fn(Quota) -> Option<u64>) -> Self {
        Self {
            members: limit(Quota::Members),
            storage_bytes: limit(Quota::StorageBytes),
            api_calls: limit(Quota::ApiCalls),
            file_uploads: limit(Quota::FileUploads),
            webhook_endpoints: limit(Quota::WebhookEndpoints),
        }
    }
}

/// A plan on offer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanEntry {
    /// Its name.
    #[schema(example = "pro")]
    pub name: String,
    /// Its limits.
    pub limits: QuotaLimits,
}

/// The plans of this deployment.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlanCatalogResponse {
    /// Every plan, in the operator's order.
    pub plans: Vec<PlanEntry>,
    /// The plan new organizations start on.
    pub default_plan: String,
}

/// The plans on offer and their limits.
#[utoipa::path(get, path = "/api/v1/plans", tag = "plans", responses((status = 200, body = PlanCatalogResponse)))]
pub async fn plans(state: Data<AppState>) -> HttpResponse {
    let catalog = state.quotas.catalog();
    HttpResponse::Ok().json(PlanCatalogResponse {
        plans: catalog
            .plans()
            .iter()
            .map(|plan| PlanEntry { name: plan.name.clone(), limits: QuotaLimits::of(|quota| plan.limits.get(quota)) })
            .collect(),
        default_plan: catalog.default_plan().to_owned(),
    })
}

/// Use of one quota.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaUse {
    /// Used now (members, stored bytes, endpoints) or this period (calls, uploads).
    pub used: u64,
    /// The organization's limit; `null` is unlimited.
    pub limit: Option<u64>,
}

/// Use of every quota.
#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaUses {
    /// Members.
    pub members: QuotaUse,
    /// Bytes of stored files.
    pub storage_bytes: QuotaUse,
    /// API requests this period.
    pub api_calls: QuotaUse,
    /// Uploads this period.
    pub file_uploads: QuotaUse,
    /// Webhook endpoints.
    pub webhook_endpoints: QuotaUse,
}

/// An organization's plan, period and usage.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsageResponse {
    /// The plan's name.
    pub plan: String,
    /// First instant of the current period.
    pub period_start: DateTime<Utc>,
    /// First instant of the next period.
    pub period_end: DateTime<Utc>,
    /// Every quota.
    pub quotas: QuotaUses,
}

impl From<UsageReport> for UsageResponse {
    fn from(report: UsageReport) -> Self {
        let of = |quota: Quota| {
            report
                .quotas
                .iter()
                .find(|usage| usage.quota == quota)
                .map_or(QuotaUse { used: 0, limit: None }, |usage| QuotaUse { used: usage.used, limit: usage.limit })
        };
        Self {
            plan: report.plan.clone(),
            period_start: report.period.start,
            period_end: report.period.end,
            quotas: QuotaUses {
                members: of(Quota::Members),
                storage_bytes: of(Quota::StorageBytes),
                api_calls: of(Quota::ApiCalls),
                file_uploads: of(Quota::FileUploads),
                webhook_endpoints: of(Quota::WebhookEndpoints),
            },
        }
    }
}

/// The organization's plan, current period and the use of every quota (`org:read`).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/usage", tag = "plans", security(("bearer" = []), ("api_key" = [])), params(("org_id" = String, Path)), responses((status = 200, body = UsageResponse)))]
pub async fn usage(state: Data<AppState>, caller: InOrg<OrgRead>) -> Result<HttpResponse, ApiError> {
    let report = state.quotas.usage(caller.access.org_id).await.map_err(quota_error)?;
    Ok(HttpResponse::Ok().json(UsageResponse::from(report)))
}

/// The largest limit: exact in every JSON parser and in a signed 64-bit column.
const MAX_LIMIT: u64 = (1 << 53) - 1;

/// Overrides to set (an integer) or remove (`null`); quotas left out keep theirs.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverridesRequest {
    /// Members.
    #[serde(default, deserialize_with = "crate::http::rules::present")]
    #[schema(value_type = Option<u64>)]
    pub members: Option<Option<u64>>,
    /// Bytes of stored files.
    #[serde(default, deserialize_with = "crate::http::rules::present")]
    #[schema(value_type = Option<u64>)]
    pub storage_bytes: Option<Option<u64>>,
    /// API requests per period.
    #[serde(default, deserialize_with = "crate::http::rules::present")]
    #[schema(value_type = Option<u64>)]
    pub api_calls: Option<Option<u64>>,
    /// Uploads per period.
    #[serde(default, deserialize_with = "crate::http::rules::present")]
    #[schema(value_type = Option<u64>)]
    pub file_uploads: Option<Option<u64>>,
    /// Webhook endpoints.
    #[serde(default, deserialize_with = "crate::http::rules::present")]
    #[schema(value_type = Option<u64>)]
    pub webhook_endpoints: Option<Option<u64>>,
}

impl OverridesRequest {
    fn entries(&self) -> [(Quota, &'static str, Option<Option<u64>>); 5] {
        [
            (Quota::Members, "members", self.members),
            (Quota::StorageBytes, "storage_bytes", self.storage_bytes),
            (Quota::ApiCalls, "api_calls", self.api_calls),
            (Quota::FileUploads, "file_uploads", self.file_uploads),
            (Quota::WebhookEndpoints, "webhook_endpoints", self.webhook_endpoints),
        ]
    }
}

impl Validate for OverridesRequest {
    fn validate(&self) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::new();
        for (_, field, value) in self.entries() {
            if let Some(Some(limit)) = value
                && limit > MAX_LIMIT
            {
                let mut error = ValidationError::new("range");
                error.message = Some(format!("must be at most {MAX_LIMIT}").into());
                errors.add(field, error);
            }
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }
}

/// `PUT /admin/orgs/{org_id}/plan`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct SetPlanRequest {
    /// A plan of `GET /api/v1/plans`.
    #[schema(example = "pro")]
    pub plan: String,
    /// Per-organization limits replacing the plan's.
    #[validate(nested)]
    pub overrides: Option<OverridesRequest>,
}

/// An organization's plan after a change.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgPlanResponse {
    /// The organization.
    pub org_id: String,
    /// Its plan.
    pub plan: String,
    /// Its own limits (only the overridden quotas).
    #[schema(value_type = Object)]
    pub overrides: Limits,
    /// What applies now: overrides, else the plan's; `null` is unlimited.
    pub limits: QuotaLimits,
    /// First instant of the current period.
    pub period_start: DateTime<Utc>,
    /// First instant of the next period.
    pub period_end: DateTime<Utc>,
}

/// Puts an organization on a plan and sets or removes its overrides, audited as
/// `plan.changed` (platform admins). A new plan starts a new period.
#[utoipa::path(put, path = "/api/v1/admin/orgs/{org_id}/plan", tag = "admin", security(("bearer" = [])), params(("org_id" = String, Path)), request_body = SetPlanRequest, responses((status = 200, body = OrgPlanResponse)))]
pub async fn set_plan(
    state: Data<AppState>,
    req: HttpRequest,
    caller: PlatformAdmin,
    path: web::Path<OrgId>,
    body: ApiJson<SetPlanRequest>,
) -> Result<HttpResponse, ApiError> {
    let org_id = path.into_inner();
    let body = body.into_inner();
    let overrides = body
        .overrides
        .as_ref()
        .map(|o| o.entries().into_iter().filter_map(|(quota, _, value)| value.map(|limit| (quota, limit))).collect())
        .unwrap_or_default();
    let change = PlanChange { plan: body.plan, overrides };
    let assignment =
        state.quotas.change_plan(caller.0.user_id, origin(&req), org_id, &change).await.map_err(quota_error)?;
    let catalog = state.quotas.catalog();
    let period = Period::monthly(assignment.started_at, Utc::now());
    Ok(HttpResponse::Ok().json(OrgPlanResponse {
        org_id: org_id.to_string(),
        plan: assignment.plan.clone(),
        limits: QuotaLimits::of(|quota| assignment.limit(catalog, quota)),
        overrides: assignment.overrides,
        period_start: period.start,
        period_end: period.end,
    }))
}
