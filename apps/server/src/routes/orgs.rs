//! `/api/v1/orgs*` and `/api/v1/permissions`.

use actix_web::web::{self, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_domain::tenancy::{BuiltinRole, Permission};
use tenantry_domain::{OrgId, UserId};
use tenantry_ports::{Member, Org};
use validator::Validate;

use crate::http::rules;
use utoipa::ToSchema;

use crate::http::org::{
    AnyMember, InOrg, MembersInvite, MembersManage, MembersRead, OrgDelete, OrgRead, OrgUpdate, RolesManage, RolesRead,
    origin, tenancy_error,
};
use crate::http::page::{ApiQuery, PageQuery};
use crate::http::{ApiError, ApiJson, Authenticated};
use crate::state::AppState;

/// Registers the organization routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(web::resource("/api/v1/permissions").route(web::get().to(permissions)))
        .service(web::resource("/api/v1/invitations/accept").route(web::post().to(accept_invitation)))
        .service(
            web::scope("/api/v1/orgs")
                .service(web::resource("").route(web::post().to(create)).route(web::get().to(list_mine)))
                .service(
                    web::resource("/{org_id}")
                        .route(web::get().to(get))
                        .route(web::patch().to(update))
                        .route(web::delete().to(delete)),
                )
                .service(web::resource("/{org_id}/me").route(web::get().to(me)))
                .service(web::resource("/{org_id}/members").route(web::get().to(members)))
                .service(
                    web::resource("/{org_id}/invitations")
                        .route(web::post().to(invite))
                        .route(web::get().to(invitations)),
                )
                .service(
                    web::resource("/{org_id}/invitations/{invitation_id}").route(web::delete().to(revoke_invitation)),
                )
                .service(
                    web::resource("/{org_id}/roles").route(web::get().to(roles)).route(web::post().to(create_role)),
                )
                .service(
                    web::resource("/{org_id}/roles/{role_id}")
                        .route(web::patch().to(update_role))
                        .route(web::delete().to(delete_role)),
                )
                .service(
                    web::resource("/{org_id}/members/{user_id}")
                        .route(web::patch().to(change_role))
                        .route(web::delete().to(remove_member)),
                ),
        );
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
    let page = state.cursors.finish("my_orgs", found, &page, |(org, _)| org.id);
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

/// Members with their roles (`members:read`), cursor-paginated.
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/members", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), PageQuery), responses((status = 200, body = MemberList), (status = 422, body = crate::http::error::Problem)))]
pub async fn members(
    state: Data<AppState>,
    scope: InOrg<MembersRead>,
    query: ApiQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<UserId>(&state.cursors, "members")?;
    let found = state.tenancy.members(&scope.access, page.after, page.fetch()).await.map_err(tenancy_error)?;
    let page = state.cursors.finish("members", found, &page, |member| member.user_id);
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

/// `POST /orgs/{org_id}/invitations`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// Who to invite.
    #[schema(example = "bob@example.com")]
    #[validate(custom(function = "rules::email"))]
    pub email: String,
    /// The role they get.
    #[schema(example = "member")]
    pub role: String,
}

/// An invitation (never its token: that only travels by e-mail).
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationResponse {
    /// Id.
    pub id: String,
    /// The organization.
    pub org_id: String,
    /// Invited address.
    pub email: String,
    /// Role on acceptance.
    pub role: String,
    /// Inviter's user id.
    pub invited_by: String,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was accepted (null while pending).
    pub accepted_at: Option<DateTime<Utc>>,
    /// When it was revoked or replaced (null while pending).
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<tenantry_ports::Invitation> for InvitationResponse {
    fn from(invitation: tenantry_ports::Invitation) -> Self {
        Self {
            id: invitation.id.to_string(),
            org_id: invitation.org_id.to_string(),
            accepted_at: invitation.accepted_at,
            revoked_at: invitation.revoked_at,
            email: invitation.email.to_string(),
            role: invitation.role,
            invited_by: invitation.invited_by.to_string(),
            created_at: invitation.created_at,
            expires_at: invitation.expires_at,
        }
    }
}

/// Pending invitations.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationList {
    /// Newest first.
    pub items: Vec<InvitationResponse>,
    /// Always null: one page.
    pub next_cursor: Option<String>,
}

/// `POST /invitations/accept`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitationRequest {
    /// The token from the e-mailed link.
    pub token: String,
}

/// The membership an accepted invitation created.
#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipResponse {
    /// The organization joined.
    pub org_id: String,
    /// The role there.
    pub role: String,
}

/// Invites someone by e-mail (`members:invite`; only roles the inviter could grant).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/invitations", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path)), request_body = InviteRequest, responses((status = 201, body = InvitationResponse), (status = 403, body = crate::http::error::Problem), (status = 409, description = "Already a member.", body = crate::http::error::Problem)))]
pub async fn invite(
    state: Data<AppState>,
    scope: InOrg<MembersInvite>,
    body: ApiJson<InviteRequest>,
) -> Result<HttpResponse, ApiError> {
    let invitation = state.invitations.invite(&scope.access, &body.email, &body.role).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Created().json(InvitationResponse::from(invitation)))
}

/// Pending invitations (`members:invite`).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/invitations", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), PageQuery), responses((status = 200, body = InvitationList)))]
pub async fn invitations(
    state: Data<AppState>,
    scope: InOrg<MembersInvite>,
    query: ApiQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<uuid::Uuid>(&state.cursors, "invitations")?;
    let found = state.invitations.pending(&scope.access, page.after, page.fetch()).await.map_err(tenancy_error)?;
    let page = state.cursors.finish("invitations", found, &page, |invitation| invitation.id);
    Ok(HttpResponse::Ok().json(page.map(InvitationResponse::from)))
}

/// Revokes a pending invitation (`members:invite`).
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/invitations/{invitation_id}", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), ("invitation_id" = String, Path)), responses((status = 204), (status = 404, body = crate::http::error::Problem)))]
pub async fn revoke_invitation(
    state: Data<AppState>,
    scope: InOrg<MembersInvite>,
    path: web::Path<(String, uuid::Uuid)>,
) -> Result<HttpResponse, ApiError> {
    state.invitations.revoke(&scope.access, path.into_inner().1).await.map_err(tenancy_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Accepts an invitation: the signed-in user must own the invited, verified address.
#[utoipa::path(post, path = "/api/v1/invitations/accept", tag = "orgs", security(("bearer" = [])), request_body = AcceptInvitationRequest, responses((status = 200, body = MembershipResponse), (status = 400, description = "`invalid_token`.", body = crate::http::error::Problem), (status = 403, description = "`forbidden` (another address) or `email_not_verified`.", body = crate::http::error::Problem), (status = 409, body = crate::http::error::Problem)))]
pub async fn accept_invitation(
    state: Data<AppState>,
    req: HttpRequest,
    caller: Authenticated,
    body: ApiJson<AcceptInvitationRequest>,
) -> Result<HttpResponse, ApiError> {
    let (org_id, role) = state.invitations.accept(caller.0, origin(&req), &body.token).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Ok().json(MembershipResponse { org_id: org_id.to_string(), role }))
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
    let page = state.cursors.finish("roles", found, &page, |role| role.name.as_str().to_owned());
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
    path: web::Path<(String, uuid::Uuid)>,
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
    path: web::Path<(String, uuid::Uuid)>,
) -> Result<HttpResponse, ApiError> {
    state.tenancy.delete_role(&scope.access, path.into_inner().1).await.map_err(tenancy_error)?;
    Ok(HttpResponse::NoContent().finish())
}
