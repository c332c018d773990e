//! `/api/v1/users/me*`.

use actix_web::web::{self, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use tenantry_application::ProfileChange;
use tenantry_domain::identity::{User, UserSettings};
use utoipa::ToSchema;

use crate::http::auth::{auth_error, auth_error_on};
use crate::http::{ApiError, ApiJson, Authenticated};
use crate::state::AppState;

/// Registers the account routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/users/me")
            .service(web::resource("").route(web::get().to(me)).route(web::patch().to(update_me)))
            .service(web::resource("/password").route(web::post().to(change_password))),
    );
}

/// Notification preferences.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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
#[derive(Debug, Serialize, Deserialize, ToSchema)]
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

/// Absent stays `None`; `null` becomes `Some(None)`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

/// `PATCH /users/me`: fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// New display name; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    /// New preferences (replace the old ones).
    pub settings: Option<SettingsDto>,
}

/// `POST /users/me/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// The password in use.
    pub current_password: String,
    /// The new password.
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
