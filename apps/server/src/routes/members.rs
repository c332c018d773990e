//! `/api/v1/orgs/{org_id}/members`: who belongs to an organization, with which role.

use actix_web::HttpResponse;
use actix_web::web::{self, Data, ServiceConfig};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_domain::UserId;
use tenantry_ports::Member;
use validator::Validate;

use utoipa::ToSchema;

use crate::http::org::{AnyMember, InOrg, MembersManage, MembersRead, tenancy_error};
use crate::http::page::{ApiQuery, PageQuery};
use crate::http::{ApiError, ApiJson};
use crate::state::AppState;

use super::orgs::OrgMeResponse;

/// Registers the member routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(web::resource("/api/v1/orgs/{org_id}/members").route(web::get().to(members))).service(
        web::resource("/api/v1/orgs/{org_id}/members/{user_id}")
            .route(web::patch().to(change_role))
            .route(web::delete().to(remove_member)),
    );
}

/// A member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberResponse {
    /// User id.
    pub user_id: String,
    /// Address.
    pub email: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Role name.
    pub role: String,
    /// Join time.
    pub joined_at: DateTime<Utc>,
}

impl From<Member> for MemberResponse {
    fn from(member: Member) -> Self {
        Self {
            user_id: member.user_id.to_string(),
            email: member.email.to_string(),
            display_name: member.display_name,
            role: member.role,
            joined_at: member.joined_at,
        }
    }
}

/// A page of members.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberList {
    /// Members in join order.
    pub items: Vec<MemberResponse>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// `PATCH /orgs/{org_id}/members/{user_id}`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ChangeRoleRequest {
    /// The new role's name.
    #[schema(example = "admin")]
    pub role: String,
}

/// Members with their roles (`members:read`), cursor-paginated.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/members", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), PageQuery), responses((status = 200, body = MemberList), (status = 422, body = crate::http::error::Problem)))]
pub async fn members(
    state: Data<AppState>,
    scope: InOrg<MembersRead>,
    query: ApiQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<UserId>(&state.cursors, "members")?;
    let found = state.tenancy.members(&scope.access, page.after, page.fetch()).await.map_err(tenancy_error)?;
    let page = state.cursors.finish("members", found, &page, |member| member.user_id)?;
    Ok(HttpResponse::Ok().json(page.map(MemberResponse::from)))
}

/// Changes a member's role (`members:manage`; owners only for owner changes; never above the caller's own permissions).
#[utoipa::path(patch, path = "/api/v1/orgs/{org_id}/members/{user_id}", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), ("user_id" = String, Path)), request_body = ChangeRoleRequest, responses((status = 200, body = OrgMeResponse), (status = 403, body = crate::http::error::Problem), (status = 409, description = "Would leave no owner.", body = crate::http::error::Problem)))]
pub async fn change_role(
    state: Data<AppState>,
    scope: InOrg<MembersManage>,
    path: web::Path<(String, UserId)>,
    body: ApiJson<ChangeRoleRequest>,
) -> Result<HttpResponse, ApiError> {
    let user_id = path.into_inner().1;
    let role = state.tenancy.change_role(&scope.access, user_id, &body.role).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Ok().json(OrgMeResponse {
        org_id: scope.access.org_id.to_string(),
        role: role.name().to_owned(),
        permissions: role.permissions().names(),
    }))
}

/// Removes a member (`members:manage`), or leaves when `user_id` is the caller.
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/members/{user_id}", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), ("user_id" = String, Path)), responses((status = 204), (status = 403, body = crate::http::error::Problem), (status = 409, description = "Would leave no owner.", body = crate::http::error::Problem)))]
pub async fn remove_member(
    state: Data<AppState>,
    scope: InOrg<AnyMember>,
    path: web::Path<(String, UserId)>,
) -> Result<HttpResponse, ApiError> {
    state.tenancy.remove_member(&scope.access, path.into_inner().1).await.map_err(tenancy_error)?;
    Ok(HttpResponse::NoContent().finish())
}
