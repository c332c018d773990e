//! `/api/v1/users/me*`.

use actix_web::web::{self, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_application::ProfileChange;
use tenantry_domain::identity::{User, UserSettings};
use validator::Validate;

use crate::http::rules;
use utoipa::ToSchema;

use crate::http::auth::{auth_error, auth_error_on};
use crate::http::{ApiError, ApiJson, Authenticated};
use crate::state::AppState;

/// Registers the account routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/users/me")
            .service(
                web::resource("")
                    .route(web::get().to(me))
                    .route(web::patch().to(update_me))
                    .route(web::delete().to(delete_me)),
            )
            .service(web::resource("/password").route(web::post().to(change_password)))
            .service(web::resource("/export").route(web::get().to(export))),
    );
}

/// Notification preferences.
#[derive(Debug, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct NotificationsDto {
    /// Product news.
    #[serde(default)]
    pub product_updates: bool,
    /// Activity in the user's organizations.
    #[serde(default = "yes")]
    pub org_activity: bool,
}

fn yes() -> bool {
    true
}

/// User preferences.
#[derive(Debug, Serialize, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct SettingsDto {
    /// IANA time zone, e.g. `Europe/Paris`.
    #[schema(example = "Europe/Paris")]
    pub time_zone: Option<String>,
    /// Language tag, e.g. `en` or `pt-BR`.
    #[schema(example = "en")]
    pub locale: Option<String>,
    /// E-mail preferences.
    pub notifications: Option<NotificationsDto>,
}

impl From<SettingsDto> for UserSettings {
    fn from(dto: SettingsDto) -> Self {
        let defaults = UserSettings::default();
        Self {
            time_zone: dto.time_zone,
            locale: dto.locale,
            notifications: dto.notifications.map_or(defaults.notifications, |n| {
                tenantry_domain::identity::NotificationPreferences {
                    product_updates: n.product_updates,
                    org_activity: n.org_activity,
                }
            }),
        }
    }
}

impl From<&UserSettings> for SettingsDto {
    fn from(settings: &UserSettings) -> Self {
        Self {
            time_zone: settings.time_zone.clone(),
            locale: settings.locale.clone(),
            notifications: Some(NotificationsDto {
                product_updates: settings.notifications.product_updates,
                org_activity: settings.notifications.org_activity,
            }),
        }
    }
}

/// A user account as its owner sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    /// User id.
    pub id: String,
    /// Sign-in address.
    pub email: String,
    /// Name shown to others.
    pub display_name: Option<String>,
    /// Whether the address is proven.
    pub email_verified: bool,
    /// Two-factor sign-in is on.
    pub two_factor_enabled: bool,
    /// Platform administrator.
    pub is_admin: bool,
    /// Preferences.
    pub settings: SettingsDto,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            id: user.id.to_string(),
            email: user.email.as_str().to_owned(),
            display_name: user.display_name.map(String::from),
            email_verified: user.email_verified_at.is_some(),
            two_factor_enabled: user.totp_enabled,
            is_admin: user.is_admin,
            settings: SettingsDto::from(&user.settings),
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

/// `PATCH /users/me`: fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// New display name; `null` clears it.
    #[serde(default, deserialize_with = "crate::http::rules::present")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    /// New preferences (replace the old ones).
    pub settings: Option<SettingsDto>,
}

/// `POST /users/me/password`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The password in use.
    pub current_password: String,
    /// The new password.
    #[validate(custom(function = "rules::new_password"))]
    pub new_password: String,
}

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])), responses((status = 200, body = UserResponse), (status = 401, body = crate::http::error::Problem)))]
pub async fn me(state: Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let user = state.auth.me(caller.0).await.map_err(auth_error)?;
    Ok(HttpResponse::Ok().json(UserResponse::from(user)))
}

/// Updates the caller's display name and settings.
#[utoipa::path(patch, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])), request_body = UpdateMeRequest, responses((status = 200, body = UserResponse), (status = 422, body = crate::http::error::Problem)))]
pub async fn update_me(
    state: Data<AppState>,
    caller: Authenticated,
    body: ApiJson<UpdateMeRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let change = ProfileChange { display_name: body.display_name, settings: body.settings.map(UserSettings::from) };
    let user = state.auth.update_me(caller.0, change).await.map_err(auth_error)?;
    Ok(HttpResponse::Ok().json(UserResponse::from(user)))
}

/// Changes the caller's password; every other session is revoked.
#[utoipa::path(post, path = "/api/v1/users/me/password", tag = "users", security(("bearer" = [])), request_body = ChangePasswordRequest, responses((status = 204), (status = 422, body = crate::http::error::Problem)))]
pub async fn change_password(
    state: Data<AppState>,
    caller: Authenticated,
    _req: HttpRequest,
    body: ApiJson<ChangePasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .change_password(caller.0, &body.current_password, &body.new_password)
        .await
        .map_err(|err| auth_error_on(err, "new_password"))?;
    Ok(HttpResponse::NoContent().finish())
}

/// `DELETE /users/me`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct DeleteMeRequest {
    /// The account password, to confirm.
    pub password: String,
}

/// A session in the export.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedSession {
    /// Session id.
    pub id: String,
    /// `user-agent` at sign-in.
    pub user_agent: Option<String>,
    /// Client address at sign-in.
    pub ip: Option<String>,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last activity.
    pub last_seen_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// An e-mailed token in the export (never the token itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedToken {
    /// `email_verification` or `password_reset`.
    pub purpose: &'static str,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// When it was used.
    pub used_at: Option<DateTime<Utc>>,
}

/// Everything Tenantry holds about the caller. Secrets (password hash, TOTP secret, token and
/// backup-code hashes) are left out: they are not information about the person.
#[derive(Debug, Serialize, ToSchema)]
pub struct PersonalDataExport {
    /// When the export was made.
    pub exported_at: DateTime<Utc>,
    /// The account.
    pub user: UserResponse,
    /// E-mail verification time.
    pub email_verified_at: Option<DateTime<Utc>>,
    /// Every session, revoked ones included.
    pub sessions: Vec<ExportedSession>,
    /// Verification and reset e-mails sent.
    pub emailed_tokens: Vec<ExportedToken>,
    /// Unused two-factor backup codes.
    pub backup_codes_left: u32,
    /// Organizations the caller belongs to.
    pub memberships: Vec<ExportedMembership>,
    /// Teams the caller is in.
    pub team_memberships: Vec<ExportedTeamMembership>,
    /// Invitations the caller sent, in any state.
    pub invitations_sent: Vec<crate::routes::invitations::InvitationResponse>,
    /// Invitations to the caller's address, in any state.
    pub invitations_received: Vec<crate::routes::invitations::InvitationResponse>,
    /// API keys the caller created, revoked ones included (never a secret).
    pub api_keys_created: Vec<crate::routes::api_keys::ApiKeyResponse>,
    /// Audit entries the caller made or that are about the caller, oldest first.
    pub audit_entries: Vec<crate::routes::audit::AuditEntryResponse>,
}

/// A membership in the export.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedMembership {
    /// The organization.
    pub org_id: String,
    /// Its name.
    pub org_name: String,
    /// The caller's role there.
    pub role: String,
    /// When the caller joined.
    pub joined_at: DateTime<Utc>,
}

/// A team membership in the export.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportedTeamMembership {
    /// The organization.
    pub org_id: String,
    /// The team.
    pub team_id: String,
    /// Its name.
    pub team_name: String,
    /// When the caller was added.
    pub added_at: DateTime<Utc>,
}

/// All the caller's personal data, as JSON (GDPR art. 15/20).
#[utoipa::path(get, path = "/api/v1/users/me/export", tag = "users", security(("bearer" = [])), responses((status = 200, body = PersonalDataExport), (status = 401, body = crate::http::error::Problem)))]
pub async fn export(state: Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let data = state.account.export(caller.0).await.map_err(auth_error)?;
    let body = PersonalDataExport {
        exported_at: data.exported_at,
        email_verified_at: data.user.email_verified_at,
        user: UserResponse::from(data.user),
        sessions: data
            .sessions
            .into_iter()
            .map(|s| ExportedSession {
                id: s.id.to_string(),
                user_agent: s.user_agent,
                ip: s.ip,
                created_at: s.created_at,
                last_seen_at: s.last_seen_at,
                expires_at: s.expires_at,
                revoked_at: s.revoked_at,
            })
            .collect(),
        emailed_tokens: data
            .tokens
            .into_iter()
            .map(|t| ExportedToken {
                purpose: t.purpose.as_str(),
                created_at: t.created_at,
                expires_at: t.expires_at,
                used_at: t.used_at,
            })
            .collect(),
        backup_codes_left: data.backup_codes_left,
        memberships: data
            .tenancy
            .memberships
            .into_iter()
            .map(|m| ExportedMembership {
                org_id: m.org_id.to_string(),
                org_name: m.org_name,
                role: m.role,
                joined_at: m.joined_at,
            })
            .collect(),
        team_memberships: data
            .tenancy
            .team_memberships
            .into_iter()
            .map(|t| ExportedTeamMembership {
                org_id: t.org_id.to_string(),
                team_id: t.team_id.to_string(),
                team_name: t.team_name,
                added_at: t.added_at,
            })
            .collect(),
        invitations_sent: data.tenancy.invitations_sent.into_iter().map(Into::into).collect(),
        invitations_received: data.tenancy.invitations_received.into_iter().map(Into::into).collect(),
        api_keys_created: data.tenancy.api_keys_created.into_iter().map(Into::into).collect(),
        audit_entries: data.tenancy.audit_entries.into_iter().map(Into::into).collect(),
    };
    Ok(HttpResponse::Ok()
        .insert_header(("content-disposition", "attachment; filename=\"tenantry-personal-data.json\""))
        .json(body))
}

/// Deletes the caller's account and everything personal with it; refused (409) while the
/// caller is the last owner of an organization.
#[utoipa::path(delete, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])), request_body = DeleteMeRequest, responses((status = 204), (status = 409, body = crate::http::error::Problem), (status = 422, body = crate::http::error::Problem)))]
pub async fn delete_me(
    req: HttpRequest,
    state: Data<AppState>,
    caller: Authenticated,
    body: ApiJson<DeleteMeRequest>,
) -> Result<HttpResponse, ApiError> {
    state.account.delete(caller.0, &body.password, crate::http::org::origin(&req)).await.map_err(auth_error)?;
    Ok(HttpResponse::NoContent().finish())
}
