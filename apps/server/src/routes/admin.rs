//! `/api/v1/admin/*`: platform administration (platform admins only; others get 403).

use actix_web::HttpResponse;
use actix_web::web::{self, Data, ServiceConfig};
use chrono::{DateTime, Utc};
use serde::Serialize;
use tenantry_domain::{OrgId, UserId};
use utoipa::ToSchema;

use crate::http::ApiError;
use crate::http::auth::{PlatformAdmin, auth_error};
use crate::http::page::{ApiQuery, PageQuery};
use crate::routes::orgs::OrgResponse;
use crate::state::AppState;

/// Registers the admin routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/admin")
            .service(web::resource("/orgs").route(web::get().to(orgs)))
            .service(web::resource("/orgs/{org_id}/plan").route(web::put().to(super::plans::set_plan)))
            .service(web::resource("/users").route(web::get().to(users)))
            .service(web::resource("/users/{user_id}/disable").route(web::post().to(disable)))
            .service(web::resource("/users/{user_id}/enable").route(web::post().to(enable))),
    );
}

/// Every organization, a page.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminOrgList {
    /// In creation order.
    pub items: Vec<OrgResponse>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// A user as administrators see it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUser {
    /// Id.
    pub id: String,
    /// Address.
    pub email: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Address proven.
    pub email_verified: bool,
    /// Platform administrator.
    pub is_admin: bool,
    /// When the account was disabled.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Every user, a page.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserList {
    /// In creation order.
    pub items: Vec<AdminUser>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// Every organization (platform admins).
#[utoipa::path(get, path = "/api/v1/admin/orgs", tag = "admin", security(("bearer" = [])), params(PageQuery), responses((status = 200, body = AdminOrgList), (status = 403, body = crate::http::error::Problem)))]
pub async fn orgs(
    state: Data<AppState>,
    caller: PlatformAdmin,
    query: ApiQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<OrgId>(&state.cursors, "admin_orgs")?;
    let found = state.admin.orgs(caller.0, page.after, page.fetch()).await.map_err(auth_error)?;
    let page = state.cursors.finish("admin_orgs", found, &page, |org| org.id)?;
    Ok(HttpResponse::Ok().json(page.map(OrgResponse::from)))
}

/// Every user (platform admins).
#[utoipa::path(get, path = "/api/v1/admin/users", tag = "admin", security(("bearer" = [])), params(PageQuery), responses((status = 200, body = AdminUserList), (status = 403, body = crate::http::error::Problem)))]
pub async fn users(
    state: Data<AppState>,
    caller: PlatformAdmin,
    query: ApiQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<UserId>(&state.cursors, "admin_users")?;
    let found = state.admin.users(caller.0, page.after, page.fetch()).await.map_err(auth_error)?;
    let page = state.cursors.finish("admin_users", found, &page, |user| user.id)?;
    Ok(HttpResponse::Ok().json(page.map(|user| AdminUser {
        id: user.id.to_string(),
        email: user.email.to_string(),
        display_name: user.display_name.map(String::from),
        email_verified: user.email_verified_at.is_some(),
        is_admin: user.is_admin,
        disabled_at: user.disabled_at,
        created_at: user.created_at,
    })))
}

/// Disables an account: no more sign-ins, and every session ends now (platform admins).
#[utoipa::path(post, path = "/api/v1/admin/users/{user_id}/disable", tag = "admin", security(("bearer" = [])), params(("user_id" = String, Path)), responses((status = 204), (status = 403, body = crate::http::error::Problem), (status = 404, body = crate::http::error::Problem)))]
pub async fn disable(
    state: Data<AppState>,
    caller: PlatformAdmin,
    path: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    state.admin.disable_user(caller.0, path.into_inner()).await.map_err(auth_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Re-enables an account (platform admins).
#[utoipa::path(post, path = "/api/v1/admin/users/{user_id}/enable", tag = "admin", security(("bearer" = [])), params(("user_id" = String, Path)), responses((status = 204), (status = 403, body = crate::http::error::Problem)))]
pub async fn enable(
    state: Data<AppState>,
    caller: PlatformAdmin,
    path: web::Path<UserId>,
) -> Result<HttpResponse, ApiError> {
    state.admin.enable_user(caller.0, path.into_inner()).await.map_err(auth_error)?;
    Ok(HttpResponse::NoContent().finish())
}
