//! `/api/v1/auth/*` and `/.well-known/jwks.json`.

use actix_web::web::{self, Data, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_application::{AuthError, SessionView, TokenPair};
use tenantry_domain::SessionId;
use validator::Validate;

use crate::http::rules;
use utoipa::ToSchema;

use crate::http::auth::{auth_error, auth_error_on, client_info, unauthorized};
use crate::http::page::{ApiQuery, PageQuery};
use crate::http::{ApiError, ApiJson, Authenticated};
use crate::routes::users::UserResponse;
use crate::state::AppState;

/// Registers the sign-in routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(web::resource("/.well-known/jwks.json").route(web::get().to(jwks))).service(
        web::scope("/api/v1/auth")
            .service(web::resource("/register").route(web::post().to(register)))
            .service(web::resource("/verify-email").route(web::post().to(verify_email)))
            .service(web::resource("/resend-verification").route(web::post().to(resend_verification)))
            .service(web::resource("/login").route(web::post().to(login)))
            .service(web::resource("/refresh").route(web::post().to(refresh)))
            .service(web::resource("/logout").route(web::post().to(logout)))
            .service(web::resource("/request-password-reset").route(web::post().to(request_password_reset)))
            .service(web::resource("/reset-password").route(web::post().to(reset_password)))
            .service(web::resource("/sessions").route(web::get().to(sessions)))
            .service(web::resource("/sessions/{session_id}").route(web::delete().to(revoke_session)))
            .service(web::resource("/2fa/setup").route(web::post().to(two_factor_setup)))
            .service(web::resource("/2fa/enable").route(web::post().to(two_factor_enable)))
            .service(web::resource("/2fa/disable").route(web::post().to(two_factor_disable))),
    );
}

/// `POST /auth/register`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Sign-in address.
    #[schema(example = "ann@example.com")]
    #[validate(custom(function = "rules::email"))]
    pub email: String,
    /// At least 12 characters and hard to guess (zxcvbn score ≥ 3).
    #[schema(example = "correct horse battery staple")]
    #[validate(custom(function = "rules::new_password"))]
    pub password: String,
    /// Name shown to others.
    #[schema(example = "Ann Lee")]
    #[validate(custom(function = "rules::display_name"))]
    pub display_name: Option<String>,
}

/// A body holding one token.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// The token from the e-mailed link.
    pub token: String,
}

/// A body holding one e-mail address.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct EmailRequest {
    /// The address.
    #[schema(example = "ann@example.com")]
    pub email: String,
}

/// `POST /auth/login`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Sign-in address.
    #[schema(example = "ann@example.com")]
    pub email: String,
    /// Password.
    pub password: String,
    /// Current TOTP code or an unused backup code, when two-factor sign-in is on.
    pub totp_code: Option<String>,
}

/// `POST /auth/refresh`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token from the last login or refresh.
    pub refresh_token: String,
}

/// `POST /auth/reset-password`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The token from the e-mailed link.
    pub token: String,
    /// The new password.
    #[validate(custom(function = "rules::new_password"))]
    pub new_password: String,
}

/// A new access/refresh pair.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// Short-lived EdDSA JWT for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque, single-use; trade it at `/auth/refresh` for a new pair.
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(example = "Bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
}

impl From<TokenPair> for TokenResponse {
    fn from(pair: TokenPair) -> Self {
        Self {
            access_token: pair.access_token,
            refresh_token: pair.refresh_token,
            token_type: "Bearer",
            expires_in: pair.expires_in,
        }
    }
}

/// One signed-in device.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// Session id.
    pub id: String,
    /// `user-agent` at sign-in.
    pub user_agent: Option<String>,
    /// Client address at sign-in.
    pub ip: Option<String>,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// Last authenticated request (updated at most once a minute).
    pub last_seen_at: DateTime<Utc>,
    /// Whether this request was made with it.
    pub current: bool,
}

impl From<SessionView> for SessionResponse {
    fn from(view: SessionView) -> Self {
        Self {
            id: view.session.id.to_string(),
            user_agent: view.session.user_agent,
            ip: view.session.ip,
            created_at: view.session.created_at,
            last_seen_at: view.session.last_seen_at,
            current: view.current,
        }
    }
}

/// The caller's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    /// Active sessions, newest first.
    pub items: Vec<SessionResponse>,
    /// Always null: a user's sessions fit in one page.
    pub next_cursor: Option<String>,
}

/// One public key of the JWKS.
#[derive(Debug, Serialize, ToSchema)]
pub struct Jwk {
    /// Key type (`OKP`).
    pub kty: String,
    /// Curve (`Ed25519`).
    pub crv: String,
    /// Public key, base64url.
    pub x: String,
    /// Key id, matching tokens' `kid` header.
    pub kid: String,
    /// `EdDSA`.
    pub alg: String,
    /// `sig`.
    #[serde(rename = "use")]
    pub use_: &'static str,
}

/// The keys that verify access tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct JwkSet {
    /// Current key first, then keys rotated out recently.
    pub keys: Vec<Jwk>,
}

/// The public keys that verify access tokens (EdDSA/Ed25519).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth", responses((status = 200, body = JwkSet)))]
pub async fn jwks(state: Data<AppState>) -> HttpResponse {
    let keys = state
        .auth
        .public_keys()
        .into_iter()
        .map(|k| Jwk { kty: k.kty, crv: k.crv, x: k.x, kid: k.kid, alg: k.alg, use_: "sig" })
        .collect();
    HttpResponse::Ok().insert_header(("cache-control", "public, max-age=300")).json(JwkSet { keys })
}

/// Creates an account and e-mails a verification link.
#[utoipa::path(
    post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = UserResponse),
        (status = 409, description = "E-mail taken (`conflict`).", body = crate::http::error::Problem),
        (status = 422, description = "Invalid e-mail or weak password.", body = crate::http::error::Problem),
    )
)]
pub async fn register(state: Data<AppState>, body: ApiJson<RegisterRequest>) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let user =
        state.auth.register(&body.email, &body.password, body.display_name.as_deref()).await.map_err(auth_error)?;
    Ok(HttpResponse::Created().json(UserResponse::from(user)))
}

/// Proves the address with the e-mailed token (single use, 24 h).
#[utoipa::path(
    post, path = "/api/v1/auth/verify-email", tag = "auth", request_body = TokenRequest,
    responses((status = 204), (status = 400, description = "`invalid_token`.", body = crate::http::error::Problem))
)]
pub async fn verify_email(state: Data<AppState>, body: ApiJson<TokenRequest>) -> Result<HttpResponse, ApiError> {
    state.auth.verify_email(&body.token).await.map_err(auth_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Sends a new verification link; 202 whatever the address.
#[utoipa::path(post, path = "/api/v1/auth/resend-verification", tag = "auth", request_body = EmailRequest, responses((status = 202)))]
pub async fn resend_verification(state: Data<AppState>, body: ApiJson<EmailRequest>) -> Result<HttpResponse, ApiError> {
    state.auth.resend_verification(&body.email).await.map_err(auth_error)?;
    Ok(HttpResponse::Accepted().finish())
}

/// Signs in.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "`unauthorized` (same for unknown e-mail and wrong password) or `mfa_required`.", body = crate::http::error::Problem),
        (status = 403, description = "`email_not_verified` or `account_disabled`.", body = crate::http::error::Problem),
        (status = 429, description = "`rate_limited` after repeated failures; see `retry-after`.", body = crate::http::error::Problem),
    )
)]
pub async fn login(
    state: Data<AppState>,
    req: HttpRequest,
    body: ApiJson<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let result = state.auth.login(&body.email, &body.password, body.totp_code.as_deref(), &client_info(&req)).await;
    state.metrics.login(login_outcome(&result));
    let pair = result.map_err(auth_error)?;
    Ok(HttpResponse::Ok().json(TokenResponse::from(pair)))
}

/// The `outcome` label of a sign-in: a fixed set, never the address or anything the caller
/// sent.
fn login_outcome<T>(result: &Result<T, AuthError>) -> &'static str {
    match result {
        Ok(_) => "success",
        Err(AuthError::InvalidCredentials) => "invalid_credentials",
        Err(AuthError::MfaRequired) => "mfa_required",
        Err(AuthError::Locked { .. }) => "locked",
        Err(AuthError::AccountDisabled) => "disabled",
        Err(AuthError::EmailNotVerified) => "email_not_verified",
        Err(AuthError::Invalid { .. }) => "invalid_request",
        Err(AuthError::Dependency(_)) => "error",
        Err(_) => "other",
    }
}

/// Trades a refresh token for a new pair; the old one dies, and presenting it again revokes
/// the whole session.
#[utoipa::path(
    post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = crate::http::error::Problem))
)]
pub async fn refresh(state: Data<AppState>, body: ApiJson<RefreshRequest>) -> Result<HttpResponse, ApiError> {
    match state.auth.refresh(&body.refresh_token).await {
        Ok(pair) => Ok(HttpResponse::Ok().json(TokenResponse::from(pair))),
        Err(AuthError::InvalidToken) => Err(unauthorized("The refresh token is invalid, used or expired.")),
        Err(err) => Err(auth_error(err)),
    }
}

/// Ends the current session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])), responses((status = 204), (status = 401, body = crate::http::error::Problem)))]
pub async fn logout(state: Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    state.auth.logout(caller.0).await.map_err(auth_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// E-mails a reset link; 202 whatever the address.
#[utoipa::path(post, path = "/api/v1/auth/request-password-reset", tag = "auth", request_body = EmailRequest, responses((status = 202)))]
pub async fn request_password_reset(
    state: Data<AppState>,
    body: ApiJson<EmailRequest>,
) -> Result<HttpResponse, ApiError> {
    state.auth.request_password_reset(&body.email).await.map_err(auth_error)?;
    Ok(HttpResponse::Accepted().finish())
}

/// Sets a new password with the e-mailed token (single use, 1 h); revokes every session.
#[utoipa::path(
    post, path = "/api/v1/auth/reset-password", tag = "auth", request_body = ResetPasswordRequest,
    responses((status = 204), (status = 400, description = "`invalid_token`.", body = crate::http::error::Problem), (status = 422, body = crate::http::error::Problem))
)]
pub async fn reset_password(
    state: Data<AppState>,
    body: ApiJson<ResetPasswordRequest>,
) -> Result<HttpResponse, ApiError> {
    state
        .auth
        .reset_password(&body.token, &body.new_password)
        .await
        .map_err(|err| auth_error_on(err, "new_password"))?;
    Ok(HttpResponse::NoContent().finish())
}

/// The caller's active sessions, newest first.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth", security(("bearer" = [])), params(PageQuery), responses((status = 200, body = SessionList), (status = 401, body = crate::http::error::Problem)))]
pub async fn sessions(
    state: Data<AppState>,
    caller: Authenticated,
    query: ApiQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<SessionId>(&state.cursors, "sessions")?;
    let found = state.auth.sessions(caller.0, page.after, page.fetch()).await.map_err(auth_error)?;
    let page = state.cursors.finish("sessions", found, &page, |view| view.session.id)?;
    Ok(HttpResponse::Ok().json(page.map(SessionResponse::from)))
}

/// Revokes one of the caller's sessions; its tokens stop working at once (on other replicas when they hear of it, 500 ms at most).
#[utoipa::path(
    delete, path = "/api/v1/auth/sessions/{session_id}", tag = "auth", security(("bearer" = [])),
    params(("session_id" = String, Path, description = "Session id")),
    responses((status = 204), (status = 404, body = crate::http::error::Problem))
)]
pub async fn revoke_session(
    state: Data<AppState>,
    caller: Authenticated,
    path: web::Path<SessionId>,
) -> Result<HttpResponse, ApiError> {
    state.auth.revoke_session(caller.0, path.into_inner()).await.map_err(auth_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Provisioning data for an authenticator app.
#[derive(Debug, Serialize, ToSchema)]
pub struct TwoFactorSetupResponse {
    /// The secret in base32, for manual entry.
    pub secret: String,
    /// `otpauth://totp/…` URL.
    pub otpauth_url: String,
    /// QR code of the URL, PNG, base64.
    pub qr_png_base64: String,
}

/// `POST /auth/2fa/enable`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct EnableTwoFactorRequest {
    /// The code the authenticator app shows now.
    #[schema(example = "123456")]
    pub code: String,
}

/// The backup codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupCodesResponse {
    /// Ten single-use codes that replace a TOTP code once each.
    pub backup_codes: Vec<String>,
}

/// `POST /auth/2fa/disable`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct DisableTwoFactorRequest {
    /// The account password.
    pub password: String,
    /// A current TOTP code or an unused backup code.
    pub code: String,
}

/// Starts two-factor setup: a new secret for the authenticator app (not active until enabled).
#[utoipa::path(post, path = "/api/v1/auth/2fa/setup", tag = "auth", security(("bearer" = [])), responses((status = 200, body = TwoFactorSetupResponse), (status = 422, description = "Already enabled.", body = crate::http::error::Problem)))]
pub async fn two_factor_setup(state: Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let provisioning = state.two_factor.setup(caller.0).await.map_err(auth_error)?;
    Ok(HttpResponse::Ok().json(TwoFactorSetupResponse {
        secret: provisioning.secret_base32,
        otpauth_url: provisioning.otpauth_url,
        qr_png_base64: provisioning.qr_png_base64,
    }))
}

/// Turns two-factor sign-in on with a first valid code; returns ten backup codes, once.
#[utoipa::path(post, path = "/api/v1/auth/2fa/enable", tag = "auth", security(("bearer" = [])), request_body = EnableTwoFactorRequest, responses((status = 200, body = BackupCodesResponse), (status = 422, body = crate::http::error::Problem)))]
pub async fn two_factor_enable(
    state: Data<AppState>,
    caller: Authenticated,
    body: ApiJson<EnableTwoFactorRequest>,
) -> Result<HttpResponse, ApiError> {
    let backup_codes = state.two_factor.enable(caller.0, &body.code).await.map_err(auth_error)?;
    Ok(HttpResponse::Ok().json(BackupCodesResponse { backup_codes }))
}

/// Turns two-factor sign-in off (password and a code required).
#[utoipa::path(post, path = "/api/v1/auth/2fa/disable", tag = "auth", security(("bearer" = [])), request_body = DisableTwoFactorRequest, responses((status = 204), (status = 422, body = crate::http::error::Problem)))]
pub async fn two_factor_disable(
    state: Data<AppState>,
    caller: Authenticated,
    body: ApiJson<DisableTwoFactorRequest>,
) -> Result<HttpResponse, ApiError> {
    state.two_factor.disable(caller.0, &body.password, &body.code).await.map_err(auth_error)?;
    Ok(HttpResponse::NoContent().finish())
}
