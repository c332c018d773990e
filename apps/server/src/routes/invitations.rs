//! Invitations: `/api/v1/orgs/{org_id}/invitations` and `/api/v1/invitations/accept`.

use actix_web::web::{self, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_domain::InvitationId;
use validator::Validate;

use crate::http::rules;
use utoipa::ToSchema;

use crate::http::org::{InOrg, MembersInvite, origin, tenancy_error};
use crate::http::page::{ApiQuery, PageQuery};
use crate::http::{ApiError, ApiJson, Authenticated};
use crate::state::AppState;

/// Registers the invitation routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(web::resource("/api/v1/invitations/accept").route(web::post().to(accept_invitation)))
        .service(
            web::resource("/api/v1/orgs/{org_id}/invitations")
                .route(web::post().to(invite))
                .route(web::get().to(invitations)),
        )
        .service(
            web::resource("/api/v1/orgs/{org_id}/invitations/{invitation_id}")
                .route(web::delete().to(revoke_invitation)),
        );
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
    let page = query.page::<InvitationId>(&state.cursors, "invitations")?;
    let found = state.invitations.pending(&scope.access, page.after, page.fetch()).await.map_err(tenancy_error)?;
    let page = state.cursors.finish("invitations", found, &page, |invitation| invitation.id)?;
    Ok(HttpResponse::Ok().json(page.map(InvitationResponse::from)))
}

/// Revokes a pending invitation (`members:invite`).
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/invitations/{invitation_id}", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), ("invitation_id" = String, Path)), responses((status = 204), (status = 404, body = crate::http::error::Problem)))]
pub async fn revoke_invitation(
    state: Data<AppState>,
    scope: InOrg<MembersInvite>,
    path: web::Path<(String, InvitationId)>,
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
