//! `/api/v1/orgs`, `/api/v1/orgs/{org_id}`, `/api/v1/orgs/{org_id}/me` and `/api/v1/permissions`.

use actix_web::web::{self, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_domain::OrgId;
use tenantry_domain::tenancy::{BuiltinRole, Permission};
use tenantry_ports::Org;
use validator::Validate;

use crate::http::rules;
use utoipa::ToSchema;

use crate::http::org::{AnyMember, InOrg, OrgDelete, OrgRead, OrgUpdate, origin, tenancy_error};
use crate::http::page::{ApiQuery, PageQuery};
use crate::http::{ApiError, ApiJson, Authenticated};
use crate::state::AppState;

/// Registers the organization routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(web::resource("/api/v1/permissions").route(web::get().to(permissions)))
        .service(web::resource("/api/v1/orgs").route(web::post().to(create)).route(web::get().to(list_mine)))
        .service(
            web::resource("/api/v1/orgs/{org_id}")
                .route(web::get().to(get))
                .route(web::patch().to(update))
                .route(web::delete().to(delete)),
        )
        .service(web::resource("/api/v1/orgs/{org_id}/me").route(web::get().to(me)));
}

/// An organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgResponse {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Unique handle.
    pub slug: String,
    /// Plan.
    pub plan: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<Org> for OrgResponse {
    fn from(org: Org) -> Self {
        Self {
            id: org.id.to_string(),
            name: org.name,
            slug: org.slug.to_string(),
            plan: org.plan,
            created_at: org.created_at,
            updated_at: org.updated_at,
        }
    }
}

/// An organization the caller belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyOrg {
    /// The organization.
    #[serde(flatten)]
    pub org: OrgResponse,
    /// The caller's role there.
    pub role: String,
}

/// The caller's organizations.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyOrgList {
    /// Oldest membership first.
    pub items: Vec<MyOrg>,
    /// Always null: one page.
    pub next_cursor: Option<String>,
}

/// `POST /orgs`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgRequest {
    /// Display name, 1–100 characters.
    #[schema(example = "Acme Corp")]
    #[validate(custom(function = "rules::org_name"))]
    pub name: String,
    /// Unique handle: 3–63 of a-z, 0-9 and inner hyphens.
    #[schema(example = "acme")]
    #[validate(custom(function = "rules::slug"))]
    pub slug: String,
}

/// `PATCH /orgs/{org_id}`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrgRequest {
    /// New name.
    #[validate(custom(function = "rules::org_name"))]
    pub name: Option<String>,
    /// New slug.
    #[validate(custom(function = "rules::slug"))]
    pub slug: Option<String>,
}

/// The caller's role and effective permissions in an organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrgMeResponse {
    /// Organization id.
    pub org_id: String,
    /// Role name.
    pub role: String,
    /// Effective permissions, catalog order.
    pub permissions: Vec<&'static str>,
}

/// One permission of the catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionEntry {
    /// `resource:action`.
    pub name: &'static str,
    /// What it allows.
    pub description: &'static str,
}

/// A built-in role.
#[derive(Debug, Serialize, ToSchema)]
pub struct BuiltinRoleEntry {
    /// Name.
    pub name: &'static str,
    /// Its permissions.
    pub permissions: Vec<&'static str>,
}

/// The permission catalog and the built-in roles.
#[derive(Debug, Serialize, ToSchema)]
pub struct PermissionCatalog {
    /// Every permission.
    pub permissions: Vec<PermissionEntry>,
    /// The built-in roles, highest first.
    pub builtin_roles: Vec<BuiltinRoleEntry>,
}

/// The permission catalog.
#[utoipa::path(get, path = "/api/v1/permissions", tag = "orgs", responses((status = 200, body = PermissionCatalog)))]
pub async fn permissions() -> HttpResponse {
    HttpResponse::Ok().json(PermissionCatalog {
        permissions: Permission::all()
            .iter()
            .map(|p| PermissionEntry { name: p.as_str(), description: p.description() })
            .collect(),
        builtin_roles: BuiltinRole::ALL
            .iter()
            .map(|role| BuiltinRoleEntry { name: role.as_str(), permissions: role.permissions().names() })
            .collect(),
    })
}

/// Creates an organization; the caller becomes its owner.
#[utoipa::path(post, path = "/api/v1/orgs", tag = "orgs", security(("bearer" = [])), request_body = CreateOrgRequest, responses((status = 201, body = OrgResponse), (status = 409, body = crate::http::error::Problem), (status = 422, body = crate::http::error::Problem)))]
pub async fn create(
    state: Data<AppState>,
    req: HttpRequest,
    caller: Authenticated,
    body: ApiJson<CreateOrgRequest>,
) -> Result<HttpResponse, ApiError> {
    let org = state.tenancy.create_org(caller.0, origin(&req), &body.name, &body.slug).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Created().json(OrgResponse::from(org)))
}

/// The caller's organizations with their role in each.
#[utoipa::path(get, path = "/api/v1/orgs", tag = "orgs", security(("bearer" = [])), params(PageQuery), responses((status = 200, body = MyOrgList)))]
pub async fn list_mine(
    state: Data<AppState>,
    caller: Authenticated,
    query: ApiQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<OrgId>(&state.cursors, "my_orgs")?;
    let found = state.tenancy.my_orgs(caller.0, page.after, page.fetch()).await.map_err(tenancy_error)?;
    let page = state.cursors.finish("my_orgs", found, &page, |(org, _)| org.id)?;
    Ok(HttpResponse::Ok().json(page.map(|(org, role)| MyOrg { org: OrgResponse::from(org), role })))
}

/// The organization (`org:read`).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path)), responses((status = 200, body = OrgResponse), (status = 404, body = crate::http::error::Problem)))]
pub async fn get(state: Data<AppState>, scope: InOrg<OrgRead>) -> Result<HttpResponse, ApiError> {
    let org = state.tenancy.get(&scope.access).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Ok().json(OrgResponse::from(org)))
}

/// Renames or re-slugs the organization (`org:update`).
#[utoipa::path(patch, path = "/api/v1/orgs/{org_id}", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path)), request_body = UpdateOrgRequest, responses((status = 200, body = OrgResponse), (status = 403, body = crate::http::error::Problem), (status = 409, body = crate::http::error::Problem)))]
pub async fn update(
    state: Data<AppState>,
    scope: InOrg<OrgUpdate>,
    body: ApiJson<UpdateOrgRequest>,
) -> Result<HttpResponse, ApiError> {
    let org =
        state.tenancy.update(&scope.access, body.name.as_deref(), body.slug.as_deref()).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Ok().json(OrgResponse::from(org)))
}

/// Deletes the organization (`org:delete`, owners).
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path)), responses((status = 204), (status = 403, body = crate::http::error::Problem)))]
pub async fn delete(state: Data<AppState>, scope: InOrg<OrgDelete>) -> Result<HttpResponse, ApiError> {
    state.tenancy.delete(&scope.access).await.map_err(tenancy_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's role and effective permissions here.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/me", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path)), responses((status = 200, body = OrgMeResponse), (status = 404, body = crate::http::error::Problem)))]
pub async fn me(scope: InOrg<AnyMember>) -> HttpResponse {
    HttpResponse::Ok().json(OrgMeResponse {
        org_id: scope.access.org_id.to_string(),
        role: scope.access.role.name().to_owned(),
        permissions: scope.access.permissions().names(),
    })
}
