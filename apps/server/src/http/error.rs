//! The one mapping from failures to RFC 9457 `application/problem+json` responses.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::request_id;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Path of the field in the request, e.g. `email` or `items[2].name`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 9457 problem document, as serialised.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the problem type (`about:blank` or a Tenantry docs URI).
    #[serde(rename = "type")]
    pub type_: String,
    /// Short, human-readable summary of the status.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Human-readable explanation of this occurrence.
    pub detail: String,
    /// Stable, machine-readable snake_case code that clients branch on.
    pub code: String,
    /// The request's `x-request-id`, to quote in support requests.
    pub request_id: String,
    /// Per-field problems, for `validation_failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// Which conflict a 409 `conflict` is: a stable snake_case name clients branch on.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<ConflictReason>)]
    pub reason: Option<&'static str>,
}

/// The conflicts a 409 `conflict` names in `reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConflictReason {
    /// The organization slug is taken.
    SlugTaken,
    /// An account with the e-mail address exists.
    EmailTaken,
    /// The change would leave an organization without an owner.
    LastOwner,
    /// Members still hold the custom role.
    RoleInUse,
    /// The organization has a custom role with this name.
    RoleNameTaken,
    /// The organization has a team with this name.
    TeamNameTaken,
    /// The person is already a member of the organization.
    AlreadyMember,
    /// The webhook endpoint is disabled (a test or a retry would never be attempted).
    EndpointDisabled,
    /// The file store cannot presign URLs (a local folder, memory): upload through the API.
    PresignUnsupported,
    /// A presigned upload is completed before anything was uploaded.
    UploadMissing,
    /// A presigned upload stored another size than it announced (it was discarded).
    UploadMismatch,
}

impl ConflictReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SlugTaken => "slug_taken",
            Self::EmailTaken => "email_taken",
            Self::LastOwner => "last_owner",
            Self::RoleInUse => "role_in_use",
            Self::RoleNameTaken => "role_name_taken",
            Self::TeamNameTaken => "team_name_taken",
            Self::AlreadyMember => "already_member",
            Self::EndpointDisabled => "endpoint_disabled",
            Self::PresignUnsupported => "presign_unsupported",
            Self::UploadMissing => "upload_missing",
            Self::UploadMismatch => "upload_mismatch",
        }
    }
}

/// A failure on its way to the client.
///
/// Client errors carry a safe `detail`; server errors carry a cause that is logged once at
/// error level and never serialised.
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

/// Boxed so `Result<T, ApiError>` stays one pointer wide on the happy path.
#[derive(Debug)]
struct Inner {
    status: StatusCode,
    code: &'static str,
    detail: String,
    errors: Vec<FieldError>,
    extra: Map<String, Value>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    cause: Option<anyhow::Error>,
    reason: Option<ConflictReason>,
}

impl ApiError {
    /// A client error with a stable `code` and a safe explanation.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            status,
            code,
            detail: detail.into(),
            errors: Vec::new(),
            extra: Map::new(),
            headers: Vec::new(),
            cause: None,
            reason: None,
        }))
    }

    /// 409 `conflict` naming which conflict it is.
    pub fn conflict(reason: ConflictReason, detail: impl Into<String>) -> Self {
        let mut error = Self::new(StatusCode::CONFLICT, "conflict", detail);
        error.0.reason = Some(reason);
        error
    }

    /// 400 `malformed_request`: the body is not parseable.
    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_request", detail)
    }

    /// 422 `validation_failed`, naming each invalid field.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "The request is well-formed but some fields are invalid.",
        );
        error.0.errors = errors;
        error
    }

    /// 404 `not_found`.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "No such resource.")
    }

    /// 503 `service_unavailable`.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", detail)
    }

    /// 500 `internal`: `cause` goes to the log, never to the client.
    pub fn internal(cause: impl Into<anyhow::Error>) -> Self {
        let mut error = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "An internal error occurred; quote the request_id when reporting it.",
        );
        error.0.cause = Some(cause.into());
        error
    }

    /// The problem for a bare status (actix's own 404/405/413 and the like).
    pub fn from_status(status: StatusCode) -> Self {
        let (code, detail) = match status.as_u16() {
            400 => ("malformed_request", "The request could not be parsed."),
            401 => ("unauthorized", "Authentication is required."),
            403 => ("forbidden", "You do not have permission to do this."),
            404 => ("not_found", "No such resource."),
            405 => ("method_not_allowed", "This method is not allowed on this resource."),
            406 => ("not_acceptable", "No acceptable representation is available."),
            408 => ("request_timeout", "The request took too long to arrive."),
            409 => ("conflict", "The request conflicts with the current state."),
            411 => ("length_required", "A Content-Length is required."),
            413 => ("payload_too_large", "The request body is too large."),
            414 => ("uri_too_long", "The request URI is too long."),
            415 => ("unsupported_media_type", "This content type is not supported."),
            416 => ("range_not_satisfiable", "The requested range is outside the resource."),
            422 => ("validation_failed", "The request is well-formed but invalid."),
            429 => ("rate_limited", "Too many requests; retry later."),
            431 => ("headers_too_large", "The request headers are too large."),
            503 => ("service_unavailable", "The service is temporarily unavailable."),
            504 => ("timeout", "The request timed out."),
            s if s >= 500 => ("internal", "An internal error occurred; quote the request_id when reporting it."),
            _ => ("bad_request", "The request was not accepted."),
        };
        Self::new(status, code, detail)
    }

    /// Adds an extension member to the body (e.g. `quota`, `limit` for `quota_exceeded`).
    pub fn with_extra(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.0.extra.insert(key.to_owned(), value.into());
        self
    }

    /// Adds a response header (e.g. `retry-after`, `allow`).
    pub fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.0.headers.push((name, value));
        self
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.0.code
    }

    /// The body as a JSON value, with the current request id.
    pub fn body(&self) -> Value {
        let problem = Problem {
            type_: "about:blank".to_owned(),
            title: self.0.status.canonical_reason().unwrap_or("Error").to_owned(),
            status: self.0.status.as_u16(),
            detail: self.0.detail.clone(),
            code: self.0.code.to_owned(),
            request_id: request_id::current().unwrap_or_default(),
            errors: (!self.0.errors.is_empty()).then(|| self.0.errors.clone()),
            reason: self.0.reason.map(ConflictReason::as_str),
        };
        let mut body = serde_json::to_value(problem).unwrap_or_default();
        if let Value::Object(map) = &mut body {
            for (key, value) in &self.0.extra {
                map.entry(key.clone()).or_insert_with(|| value.clone());
            }
        }
        body
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.0.status.as_u16(), self.0.code, self.0.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.status
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(cause) = &self.0.cause {
            // Logged once here, with the whole chain; the client gets only the request id.
            tracing::error!(code = self.0.code, error = format!("{cause:#}"), "request failed");
        }
        let mut response = HttpResponse::build(self.0.status);
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        for (name, value) in &self.0.headers {
            response.insert_header((name.clone(), value.clone()));
        }
        response.body(self.body().to_string())
    }
}

/// Whether `err` comes from a dependency that is down (503) rather than a bug (500).
pub(crate) fn is_unavailable(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(cause.downcast_ref::<tenantry_ports::StoreError>(), Some(tenantry_ports::StoreError::Unavailable(_)))
            || matches!(
                cause.downcast_ref::<tenantry_ports::CacheError>(),
                Some(tenantry_ports::CacheError::Unavailable(_))
            )
            || matches!(
                cause.downcast_ref::<tenantry_ports::CounterError>(),
                Some(tenantry_ports::CounterError::Unavailable(_))
            )
    })
}

#[cfg(test)]
mod tests {
    use actix_web::body::to_bytes;

    use super::*;

    async fn render(error: ApiError) -> (StatusCode, String, Value) {
        let response = error.error_response();
        let status = response.status();
        let content_type =
            response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let bytes = to_bytes(response.into_body()).await.expect("body");
        (status, content_type, serde_json::from_slice(&bytes).expect("json"))
    }

    #[tokio::test]
    async fn internal_errors_never_reveal_their_cause() {
        let error = ApiError::internal(anyhow::anyhow!("password authentication failed for user tenantry"));
        let (status, content_type, body) = request_id::scope("rid-7".to_owned(), async { render(error).await }).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(content_type, PROBLEM_JSON);
        assert_eq!(body["code"], "internal");
        assert_eq!(body["request_id"], "rid-7");
        assert!(!body.to_string().contains("password"), "{body}");
    }

    #[tokio::test]
    async fn validation_errors_name_each_field_and_extras_are_merged() {
        let error = ApiError::validation(vec![FieldError { field: "email".into(), message: "invalid".into() }])
            .with_extra("hint", "see docs");
        let (status, _, body) = render(error).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(body["errors"][0]["field"], "email");
        assert_eq!(body["hint"], "see docs");
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Unprocessable Entity");
    }

    #[test]
    fn bare_statuses_get_stable_codes() {
        for (status, code) in [
            (405, "method_not_allowed"),
            (413, "payload_too_large"),
            (415, "unsupported_media_type"),
            (404, "not_found"),
            (502, "internal"),
        ] {
            let status = StatusCode::from_u16(status).expect("status");
            assert_eq!(ApiError::from_status(status).code(), code);
        }
    }
}
