//! The signed-in principal as an extractor, and the one mapping from identity errors to HTTP.

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use tenantry_application::{AuthError, Principal};

use super::error::ConflictReason;
use super::gates::{Gate, record_gate};
use super::limits::Group;
use super::{ApiError, FieldError};
use crate::state::AppState;

/// The caller of a request that requires sign-in: a valid access token whose session is not
/// revoked. Missing or bad credentials are a 401 with `www-authenticate: Bearer`.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated(pub Principal);

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned()).filter(|t| !t.is_empty())
}

/// 401 `unauthorized` with the bearer challenge.
pub fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
        .with_header(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<Data<AppState>>().cloned();
        let token = bearer(req);
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))?;
            let token = token.ok_or_else(|| unauthorized("A bearer access token is required."))?;
            match state.auth.authenticate(&token).await {
                Ok(principal) => {
                    record_gate(&req, Gate::Signed { user_id: principal.user_id });
                    super::middleware::record_principal(&req, "user");
                    state.limits.charge(&req, Group::Principal, &format!("user:{}", principal.user_id)).await?;
                    Ok(Self(principal))
                }
                Err(AuthError::Unauthenticated) => {
                    Err(unauthorized("The access token is invalid, expired or revoked."))
                }
                Err(other) => Err(auth_error(other)),
            }
        })
    }
}

/// A signed-in platform administrator whose account is active: 401 without a valid token,
/// 403 `forbidden` for anyone else. An extractor, so an idempotent replay is refused to a
/// caller who has lost the role since.
#[derive(Debug, Clone, Copy)]
pub struct PlatformAdmin(pub Principal);

impl FromRequest for PlatformAdmin {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let state = req.app_data::<Data<AppState>>().cloned();
        let caller = Authenticated::from_request(req, payload);
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))?;
            let caller = caller.await?;
            state.admin.require_admin(caller.0).await.map_err(auth_error)?;
            record_gate(&req, Gate::Admin);
            Ok(Self(caller.0))
        })
    }
}

pub use super::client_ip::client_info;

/// The HTTP answer for each identity failure; a weak password is reported on `password`.
pub fn auth_error(err: AuthError) -> ApiError {
    auth_error_on(err, "password")
}

/// As [`auth_error`], naming `password_field` for password-policy failures.
pub fn auth_error_on(err: AuthError, password_field: &str) -> ApiError {
    match err {
        AuthError::Invalid { field, message } => {
            ApiError::validation(vec![FieldError { field: field.to_owned(), message }])
        }
        AuthError::WeakPassword(weak) => {
            ApiError::validation(vec![FieldError { field: password_field.to_owned(), message: weak.to_string() }])
        }
        AuthError::EmailTaken => {
            ApiError::conflict(ConflictReason::EmailTaken, "An account with this e-mail address exists.")
        }
        AuthError::InvalidCredentials => unauthorized("Invalid e-mail or password."),
        AuthError::MfaRequired => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "mfa_required",
            "Two-factor authentication is on: send a valid totp_code (or a backup code).",
        ),
        AuthError::EmailNotVerified => {
            ApiError::new(StatusCode::FORBIDDEN, "email_not_verified", "Verify your e-mail address before signing in.")
        }
        AuthError::AccountDisabled => {
            ApiError::new(StatusCode::FORBIDDEN, "account_disabled", "This account has been disabled.")
        }
        AuthError::Locked { retry_after } => {
            let seconds = retry_after.as_secs().max(1);
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too many failed attempts; retry later.")
                .with_extra("retry_after_seconds", seconds)
                .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
        }
        AuthError::InvalidToken => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_token", "The token is unknown, already used or expired.")
        }
        AuthError::Unauthenticated => unauthorized("The access token is invalid, expired or revoked."),
        AuthError::NotFound => ApiError::not_found(),
        AuthError::NotAdmin => {
            ApiError::new(StatusCode::FORBIDDEN, "forbidden", "This needs a platform administrator.")
        }
        AuthError::LastOwner => ApiError::conflict(
            ConflictReason::LastOwner,
            "You are the last owner of an organization: transfer ownership or delete it first.",
        ),
        AuthError::Dependency(cause) if super::error::is_unavailable(&cause) => {
            tracing::error!(error = format!("{cause:#}"), "a dependency is unavailable");
            ApiError::unavailable("A dependency is temporarily unavailable; retry shortly.")
        }
        AuthError::Dependency(cause) => ApiError::internal(cause),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tenantry_ports::StoreError;

    use super::*;

    #[test]
    fn each_failure_has_its_status_and_code() {
        let cases: Vec<(AuthError, u16, &str)> = vec![
            (AuthError::EmailTaken, 409, "conflict"),
            (AuthError::InvalidCredentials, 401, "unauthorized"),
            (AuthError::MfaRequired, 401, "mfa_required"),
            (AuthError::EmailNotVerified, 403, "email_not_verified"),
            (AuthError::AccountDisabled, 403, "account_disabled"),
            (AuthError::Locked { retry_after: Duration::from_secs(30) }, 429, "rate_limited"),
            (AuthError::InvalidToken, 400, "invalid_token"),
            (AuthError::NotFound, 404, "not_found"),
            (
                AuthError::Dependency(anyhow::Error::new(StoreError::Unavailable(anyhow::anyhow!("down")))),
                503,
                "service_unavailable",
            ),
            (AuthError::Dependency(anyhow::anyhow!("bug")), 500, "internal"),
        ];
        assert_eq!(auth_error(AuthError::EmailTaken).body()["reason"], "email_taken");
        assert_eq!(auth_error(AuthError::LastOwner).body()["reason"], "last_owner");
        for (err, status, code) in cases {
            let api = auth_error(err);
            assert_eq!((actix_web::ResponseError::status_code(&api).as_u16(), api.code()), (status, code));
        }
    }
}
