//! Org-scoped authorization as an extractor: the permission a handler needs is in its
//! signature (`InOrg<MembersManage>`), and no handler contains an authorization rule.

use std::marker::PhantomData;

use actix_web::HttpMessage;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::web::Data;
use actix_web::{FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use tenantry_application::{Actor, FileError, OrgAccess, QuotaError, TenancyError, looks_like_api_key};
use tenantry_domain::OrgId;
use tenantry_domain::audit::Origin;
use tenantry_domain::tenancy::{MembershipChangeError, Permission};

use super::auth::{Authenticated, auth_error};
use super::error::ConflictReason;
use super::gates::{Gate, record_gate};
use super::limits::{Group, quota_exceeded};
use super::{ApiError, FieldError};
use crate::state::AppState;

/// A permission an org route requires, as a type.
pub trait Need {
    /// The permission, or `None` for "any member".
    const PERMISSION: Option<Permission>;
}

/// Any member of the organization.
#[derive(Debug)]
pub struct AnyMember;

impl Need for AnyMember {
    const PERMISSION: Option<Permission> = None;
}

macro_rules! needs {
    ($($name:ident => $permission:ident),* $(,)?) => {
        $(
            #[doc = concat!("Requires `", stringify!($permission), "`.")]
            #[derive(Debug)]
            pub struct $name;

            impl Need for $name {
                const PERMISSION: Option<Permission> = Some(Permission::$permission);
            }
        )*
    };
}

needs! {
    OrgRead => OrgRead,
    OrgUpdate => OrgUpdate,
    OrgDelete => OrgDelete,
    MembersRead => MembersRead,
    MembersInvite => MembersInvite,
    RolesRead => RolesRead,
    RolesManage => RolesManage,
    TeamsRead => TeamsRead,
    TeamsManage => TeamsManage,
    ApiKeysManage => ApiKeysManage,
    MembersManage => MembersManage,
    AuditRead => AuditRead,
    WebhooksManage => WebhooksManage,
    FilesRead => FilesRead,
    FilesWrite => FilesWrite,
}

/// The caller's access to the `{org_id}` of the path, with permission `P` checked: 401 without
/// a valid token, 404 for an organization the caller is not a member of (existing or not),
/// 403 `forbidden` for a member without `P`.
#[derive(Debug)]
pub struct InOrg<P: Need = AnyMember> {
    /// What the caller may do there.
    pub access: OrgAccess,
    _need: PhantomData<P>,
}

impl<P: Need> FromRequest for InOrg<P> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let org_id = req.match_info().get("org_id").and_then(|raw| raw.parse::<OrgId>().ok());
        let access = authorize(req, payload, org_id, P::PERMISSION);
        let req = req.clone();
        Box::pin(async move {
            let access = access.await?;
            if let Some(org_id) = org_id {
                record_gate(&req, Gate::Org { org_id, permission: P::PERMISSION });
            }
            Ok(Self { access, _need: PhantomData })
        })
    }
}

/// The caller's access to `org_id` with `permission` checked, exactly as [`InOrg`] decides it:
/// shared with the idempotency replay, which must refuse whoever the route would refuse now.
pub fn authorize(
    req: &HttpRequest,
    payload: &mut Payload,
    org_id: Option<OrgId>,
    permission: Option<Permission>,
) -> LocalBoxFuture<'static, Result<OrgAccess, ApiError>> {
    let state = req.app_data::<Data<AppState>>().cloned();
    let api_key = api_key(req);
    let origin = origin(req);
    // Only a user credential goes through the JWT path; an API key never does.
    let caller = api_key.is_none().then(|| Authenticated::from_request(req, payload));
    let req = req.clone();
    Box::pin(async move {
        let state = state.ok_or_else(|| ApiError::internal(anyhow::anyhow!("AppState is not registered")))?;
        let mut access = match (api_key, caller) {
            (Some(key), _) => {
                let org_id = org_id.ok_or_else(ApiError::not_found)?;
                let access = state.api_keys.access(&key, org_id).await.map_err(tenancy_error)?;
                super::middleware::record_principal(&req, "api_key");
                if let Actor::ApiKey { key_id, .. } = access.actor {
                    state.limits.charge(&req, Group::Principal, &format!("key:{key_id}")).await?;
                }
                access
            }
            (None, Some(caller)) => {
                let caller = caller.await?;
                let org_id = org_id.ok_or_else(ApiError::not_found)?;
                state.tenancy.access(caller.0, org_id).await.map_err(tenancy_error)?
            }
            (None, None) => return Err(ApiError::internal(anyhow::anyhow!("no credential path"))),
        };
        // Charged only once membership is known: an outsider's requests cannot drain an
        // organization's bucket or its API calls.
        state.limits.charge(&req, Group::Org, &format!("org:{}", access.org_id)).await?;
        if let Some(permission) = permission {
            access.require(permission).map_err(tenancy_error)?;
        }
        access.origin = origin;
        match state.quotas.meter_api_call(&access).await {
            Ok(()) => {}
            Err(QuotaError::Exceeded(refusal)) => return Err(quota_exceeded(&refusal)),
            Err(err) => {
                // Fail open: a lost count costs less than refusing every request.
                tracing::warn!(error = %err, org_id = %access.org_id, "counting an API call failed; allowing it");
            }
        }
        Ok(access)
    })
}

/// Where the request comes from, as the audit log records it.
pub fn origin(req: &HttpRequest) -> Origin {
    let client = super::auth::client_info(req);
    Origin {
        ip: client.ip,
        user_agent: client.user_agent,
        request_id: req.extensions().get::<super::RequestId>().map(|id| id.0.clone()),
    }
}

/// An API key from `x-api-key` or `Authorization: Bearer tk_…`.
fn api_key(req: &HttpRequest) -> Option<String> {
    if let Some(key) = req.headers().get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(key.trim().to_owned());
    }
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && looks_like_api_key(token.trim()))
        .map(|(_, token)| token.trim().to_owned())
}

/// The HTTP answer for each tenancy failure.
pub fn tenancy_error(err: TenancyError) -> ApiError {
    match err {
        TenancyError::Invalid { field, message } => {
            ApiError::validation(vec![FieldError { field: field.to_owned(), message }])
        }
        TenancyError::NotFound => ApiError::not_found(),
        TenancyError::InvalidApiKey => super::auth::unauthorized("The API key is invalid, revoked or expired."),
        TenancyError::Forbidden(permission) => {
            ApiError::new(StatusCode::FORBIDDEN, "forbidden", format!("This needs the `{permission}` permission."))
                .with_extra("required_permission", permission.as_str())
        }
        TenancyError::Refused(MembershipChangeError::OwnersOnly) => {
            ApiError::new(StatusCode::FORBIDDEN, "forbidden", "Only owners can create, change or remove owners.")
        }
        TenancyError::Refused(MembershipChangeError::Escalation) => {
            ApiError::new(StatusCode::FORBIDDEN, "forbidden", "You cannot grant permissions you do not hold.")
        }
        TenancyError::Refused(MembershipChangeError::MissingPermission(permission)) => {
            tenancy_error(TenancyError::Forbidden(permission))
        }
        TenancyError::Refused(MembershipChangeError::LastOwner) | TenancyError::LastOwner => {
            ApiError::conflict(ConflictReason::LastOwner, "An organization must keep at least one owner.")
        }
        TenancyError::SlugTaken => ApiError::conflict(ConflictReason::SlugTaken, "This slug is taken."),
        TenancyError::RoleNameTaken => {
            ApiError::conflict(ConflictReason::RoleNameTaken, "The organization has a role with this name.")
        }
        TenancyError::TeamNameTaken => {
            ApiError::conflict(ConflictReason::TeamNameTaken, "The organization has a team with this name.")
        }
        TenancyError::RoleInUse => {
            ApiError::conflict(ConflictReason::RoleInUse, "Members still hold this role; give them another role first.")
        }
        TenancyError::InvalidToken => ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "The invitation is unknown, already used, revoked or expired.",
        ),
        TenancyError::AlreadyMember => {
            ApiError::conflict(ConflictReason::AlreadyMember, "This person is already a member of the organization.")
        }
        TenancyError::EndpointDisabled => ApiError::conflict(
            ConflictReason::EndpointDisabled,
            "The webhook endpoint is disabled; enable it first (PATCH with {\"enabled\": true}).",
        ),
        TenancyError::EmailMismatch => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "This invitation is for another e-mail address; sign in with the invited address.",
        ),
        TenancyError::EmailNotVerified => ApiError::new(
            StatusCode::FORBIDDEN,
            "email_not_verified",
            "Verify your e-mail address before accepting an invitation.",
        ),
        TenancyError::QuotaExceeded(refusal) => quota_exceeded(&refusal),
        TenancyError::Dependency(cause) => auth_error(tenantry_application::AuthError::Dependency(cause)),
    }
}

/// The HTTP answer for each file failure.
pub fn file_error(err: FileError) -> ApiError {
    match err {
        FileError::Tenancy(err) => tenancy_error(err),
        FileError::TooLarge { limit } => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("The file is larger than the upload limit of {limit} bytes; nothing was kept."),
        )
        .with_extra("limit_bytes", limit),
        FileError::UnsupportedType { content_type } => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("Files of type `{content_type}` are not accepted here; nothing was kept."),
        )
        .with_extra("content_type", content_type),
        FileError::Interrupted(cause) => {
            tracing::info!(error = format!("{cause:#}"), "an upload stopped before its end");
            ApiError::malformed("The upload's body ended early or is not well-formed multipart; nothing was kept.")
        }
        FileError::RangeNotSatisfiable { size } => ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            format!("The requested range is outside the file's {size} bytes."),
        )
        .with_header(
            actix_web::http::header::CONTENT_RANGE,
            actix_web::http::header::HeaderValue::from_str(&format!("bytes */{size}"))
                .unwrap_or_else(|_| actix_web::http::header::HeaderValue::from_static("bytes */0")),
        ),
        FileError::PresignUnsupported => ApiError::conflict(
            ConflictReason::PresignUnsupported,
            "This server's file store cannot presign URLs; upload with POST …/files (multipart) instead.",
        ),
        FileError::UploadMissing => ApiError::conflict(
            ConflictReason::UploadMissing,
            "Nothing was uploaded to the presigned URL yet; PUT the bytes there, then complete again.",
        ),
        FileError::UploadMismatch { expected, found } => ApiError::conflict(
            ConflictReason::UploadMismatch,
            format!("{found} bytes were uploaded where {expected} were announced; the upload was discarded."),
        ),
        FileError::StorageUnavailable(cause) => {
            tracing::error!(error = format!("{cause:#}"), "object storage failed");
            ApiError::unavailable("File storage is unavailable; retry shortly.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_conflict_names_its_reason() {
        let cases = [
            (TenancyError::SlugTaken, "slug_taken"),
            (TenancyError::LastOwner, "last_owner"),
            (TenancyError::Refused(MembershipChangeError::LastOwner), "last_owner"),
            (TenancyError::RoleNameTaken, "role_name_taken"),
            (TenancyError::TeamNameTaken, "team_name_taken"),
            (TenancyError::RoleInUse, "role_in_use"),
            (TenancyError::AlreadyMember, "already_member"),
            (TenancyError::EndpointDisabled, "endpoint_disabled"),
        ];
        for (error, reason) in cases {
            let body = tenancy_error(error).body();
            assert_eq!((body["status"].as_u64(), body["code"].as_str()), (Some(409), Some("conflict")));
            assert_eq!(body["reason"], reason, "{body}");
        }
        assert!(tenancy_error(TenancyError::NotFound).body().get("reason").is_none());
    }
}
