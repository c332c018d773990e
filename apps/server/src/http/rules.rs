//! Field rules for request bodies, as `validator` custom functions over the domain's own
//! parsers: the edge names every bad field at once, in the words the domain would use, and the
//! use cases still parse into newtypes (so nothing depends on the edge having checked).

use std::borrow::Cow;

use tenantry_domain::identity::{DisplayName, PasswordPolicy};
use tenantry_domain::tenancy::{PermissionSet, RoleName};
use tenantry_domain::{ApiKeyName, Email, OrgName, Slug, TeamName};
use validator::ValidationError;

/// For PATCH-style fields: absent stays `None`, `null` becomes `Some(None)`, a value
/// `Some(Some(v))` (serde alone cannot tell absent from `null`).
///
/// # Errors
/// The inner type's own deserialization errors.
pub fn present<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<Option<T>>, D::Error> {
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

fn refused(code: &'static str, message: impl ToString) -> ValidationError {
    ValidationError::new(code).with_message(Cow::Owned(message.to_string()))
}

/// An e-mail address.
pub fn email(raw: &str) -> Result<(), ValidationError> {
    Email::parse(raw).map(drop).map_err(|err| refused("email", err))
}

/// An organization handle.
pub fn slug(raw: &str) -> Result<(), ValidationError> {
    Slug::parse(raw).map(drop).map_err(|err| refused("slug", err))
}

/// An organization name.
pub fn org_name(raw: &str) -> Result<(), ValidationError> {
    OrgName::parse(raw).map(drop).map_err(|err| refused("name", err))
}

/// A team name.
pub fn team_name(raw: &str) -> Result<(), ValidationError> {
    TeamName::parse(raw).map(drop).map_err(|err| refused("name", err))
}

/// An API key label.
pub fn api_key_name(raw: &str) -> Result<(), ValidationError> {
    ApiKeyName::parse(raw).map(drop).map_err(|err| refused("name", err))
}

/// A custom role's name.
pub fn role_name(raw: &str) -> Result<(), ValidationError> {
    RoleName::parse(raw).map(drop).map_err(|err| refused("role_name", err))
}

/// A display name.
pub fn display_name(raw: &str) -> Result<(), ValidationError> {
    DisplayName::parse(raw).map(drop).map_err(|err| refused("display_name", err))
}

/// Permission names from the catalog.
pub fn permissions(names: &[String]) -> Result<(), ValidationError> {
    PermissionSet::parse(names).map(drop).map_err(|err| refused("permission", err))
}

/// A new password under the default policy (length and zxcvbn score); the use case checks
/// again with the account's own words (its address) as inputs the password may not lean on.
pub fn new_password(raw: &str) -> Result<(), ValidationError> {
    PasswordPolicy::default().check(raw, &[]).map_err(|err| refused("weak_password", err))
}

/// A webhook endpoint URL's shape (production's https-only rule and the SSRF guard are the
/// use case's).
pub fn webhook_url(raw: &str) -> Result<(), ValidationError> {
    tenantry_domain::webhooks::check_endpoint_url(raw, false).map_err(|err| refused("url", err))
}

/// Event types from the catalog (`GET /api/v1/webhook-event-types`).
pub fn event_types(names: &[String]) -> Result<(), ValidationError> {
    match names.iter().find(|name| tenantry_domain::events::event_type(name).is_none()) {
        Some(unknown) => Err(refused(
            "event_type",
            format!("`{unknown}` is not an event type (see GET /api/v1/webhook-event-types)"),
        )),
        None => Ok(()),
    }
}
