//! `/api/v1/orgs/{org_id}/roles`: an organization's custom roles.

use actix_web::HttpResponse;
use actix_web::web::{self, Data, ServiceConfig};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_domain::RoleId;
use validator::Validate;

use crate::http::rules;
use utoipa::ToSchema;

use crate::http::org::{InOrg, RolesManage, RolesRead, tenancy_error};
use crate::http::page::{ApiQuery, PageQuery};
use crate::http::{ApiError, ApiJson};
use crate::state::AppState;

/// Registers the custom-role routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        web::resource("/api/v1/orgs/{org_id}/roles").route(web::get().to(roles)).route(web::post().to(create_role)),
    )
    .service(
        web::resource("/api/v1/orgs/{org_id}/roles/{role_id}")
            .route(web::patch().to(update_role))
            .route(web::delete().to(delete_role)),
    );
}

/// A custom role.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleResponse {
    /// Id.
    pub id: String,
    /// Name (what memberships and invitations refer to).
    pub name: String,
    /// Its permissions, catalog order.
    pub permissions: Vec<&'static str>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<tenantry_ports::CustomRole> for RoleResponse {
    fn from(role: tenantry_ports::CustomRole) -> Self {
        Self {
            id: role.id.to_string(),
            name: role.name.as_str().to_owned(),
            permissions: role.permissions.names(),
            created_at: role.created_at,
            updated_at: role.updated_at,
        }
    }
}

/// The organization's custom roles.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleList {
    /// By name.
    pub items: Vec<RoleResponse>,
    /// Always null: one page.
    pub next_cursor: Option<String>,
}

/// `POST /orgs/{org_id}/roles`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateRoleRequest {
    /// 2–50 of a-z, 0-9, `-`, `_`; not a built-in name.
    #[schema(example = "billing")]
    #[validate(custom(function = "rules::role_name"))]
    pub name: String,
    /// Permission names from the catalog, all held by the caller.
    #[schema(example = json!(["org:read", "usage:read"]))]
    #[validate(custom(function = "rules::permissions"))]
    pub permissions: Vec<String>,
}

/// `PATCH /orgs/{org_id}/roles/{role_id}`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoleRequest {
    /// New name (members holding the role follow).
    #[validate(custom(function = "rules::role_name"))]
    pub name: Option<String>,
    /// New permissions (replace the old ones).
    #[validate(custom(function = "rules::permissions"))]
    pub permissions: Option<Vec<String>>,
}

/// Custom roles (`roles:read`).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/roles", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), PageQuery), responses((status = 200, body = RoleList)))]
pub async fn roles(
    state: Data<AppState>,
    scope: InOrg<RolesRead>,
    query: ApiQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<String>(&state.cursors, "roles")?;
    let found = state.tenancy.roles(&scope.access, page.after.clone(), page.fetch()).await.map_err(tenancy_error)?;
    let page = state.cursors.finish("roles", found, &page, |role| role.name.as_str().to_owned())?;
    Ok(HttpResponse::Ok().json(page.map(RoleResponse::from)))
}

/// Creates a custom role (`roles:manage`; only permissions the caller holds).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/roles", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path)), request_body = CreateRoleRequest, responses((status = 201, body = RoleResponse), (status = 403, body = crate::http::error::Problem), (status = 409, body = crate::http::error::Problem), (status = 422, body = crate::http::error::Problem)))]
pub async fn create_role(
    state: Data<AppState>,
    scope: InOrg<RolesManage>,
    body: ApiJson<CreateRoleRequest>,
) -> Result<HttpResponse, ApiError> {
    let role = state.tenancy.create_role(&scope.access, &body.name, &body.permissions).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Created().json(RoleResponse::from(role)))
}

/// Renames a custom role or replaces its permissions (`roles:manage`).
#[utoipa::path(patch, path = "/api/v1/orgs/{org_id}/roles/{role_id}", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), ("role_id" = String, Path)), request_body = UpdateRoleRequest, responses((status = 200, body = RoleResponse), (status = 404, body = crate::http::error::Problem), (status = 409, body = crate::http::error::Problem)))]
pub async fn update_role(
    state: Data<AppState>,
    scope: InOrg<RolesManage>,
    path: web::Path<(String, RoleId)>,
    body: ApiJson<UpdateRoleRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let role = state
        .tenancy
        .update_role(&scope.access, path.into_inner().1, body.name.as_deref(), body.permissions.as_deref())
        .await
        .map_err(tenancy_error)?;
    Ok(HttpResponse::Ok().json(RoleResponse::from(role)))
}

/// Deletes a custom role no member holds (`roles:manage`).
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/roles/{role_id}", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), ("role_id" = String, Path)), responses((status = 204), (status = 409, description = "Members still hold it.", body = crate::http::error::Problem)))]
pub async fn delete_role(
    state: Data<AppState>,
    scope: InOrg<RolesManage>,
    path: web::Path<(String, RoleId)>,
) -> Result<HttpResponse, ApiError> {
    state.tenancy.delete_role(&scope.access, path.into_inner().1).await.map_err(tenancy_error)?;
    Ok(HttpResponse::NoContent().finish())
}
