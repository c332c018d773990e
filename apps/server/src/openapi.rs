//! The OpenAPI 3.1 document, generated from the handlers' annotations.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::error::{FieldError, Problem};
use crate::routes;

/// Every documented route and schema. A snapshot of the rendered document is committed at
/// `docs/openapi.json`; a test fails when they differ, so a contract change is always deliberate.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tenantry API",
        description = "Multi-tenant SaaS backend: accounts, organizations, roles, API keys, quotas, webhooks, files and audit log. Errors are RFC 9457 application/problem+json with a stable `code`.",
        license(name = "Apache-2.0")
    ),
    paths(
        routes::health::live,
        routes::health::ready,
        routes::metrics::render,
        routes::docs::openapi,
        routes::docs::page,
        routes::auth::jwks,
        routes::auth::register,
        routes::auth::verify_email,
        routes::auth::resend_verification,
        routes::auth::login,
        routes::auth::refresh,
        routes::auth::logout,
        routes::auth::request_password_reset,
        routes::auth::reset_password,
        routes::auth::sessions,
        routes::auth::revoke_session,
        routes::auth::two_factor_setup,
        routes::auth::two_factor_enable,
        routes::auth::two_factor_disable,
        routes::users::me,
        routes::users::update_me,
        routes::users::change_password,
        routes::users::export,
        routes::users::delete_me,
        routes::orgs::permissions,
        routes::orgs::create,
        routes::orgs::list_mine,
        routes::orgs::get,
        routes::orgs::update,
        routes::orgs::delete,
        routes::orgs::me,
        routes::members::members,
        routes::members::change_role,
        routes::members::remove_member,
        routes::invitations::invite,
        routes::invitations::invitations,
        routes::invitations::revoke_invitation,
        routes::invitations::accept_invitation,
        routes::roles::roles,
        routes::roles::create_role,
        routes::roles::update_role,
        routes::roles::delete_role,
        routes::admin::orgs,
        routes::admin::users,
        routes::admin::disable,
        routes::admin::enable,
        routes::api_keys::create,
        routes::api_keys::list,
        routes::api_keys::revoke,
        routes::api_keys::rotate,
        routes::teams::list,
        routes::teams::create,
        routes::teams::get,
        routes::teams::update,
        routes::teams::delete,
        routes::teams::add_member,
        routes::teams::remove_member,
        routes::audit::list,
        routes::audit::verify,
        routes::plans::plans,
        routes::plans::usage,
        routes::plans::set_plan,
        routes::webhooks::event_types,
        routes::webhooks::create,
        routes::webhooks::list,
        routes::webhooks::get,
        routes::webhooks::update,
        routes::webhooks::delete,
        routes::webhooks::rotate_secret,
        routes::webhooks::test,
        routes::webhooks::deliveries,
        routes::webhooks::delivery,
        routes::webhooks::retry,
        routes::files::upload,
        routes::files::list,
        routes::files::get,
        routes::files::download,
        routes::files::delete,
        routes::files::presign_upload,
        routes::files::complete,
    ),
    components(schemas(Problem, FieldError, routes::health::LiveResponse, routes::health::ReadyResponse)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "health", description = "Liveness and readiness for load balancers."),
        (name = "meta", description = "Metrics and API documentation."),
        (name = "auth", description = "Registration, sign-in, tokens, sessions, e-mail verification and password reset."),
        (name = "users", description = "The signed-in user's own account."),
        (name = "orgs", description = "Organizations, members and roles."),
        (name = "audit", description = "The tamper-evident audit log of each organization."),
        (name = "files", description = "Files: streamed uploads, downloads, presigned uploads."),
        (name = "admin", description = "Platform administration (platform admins only)."),
    )
)]
pub struct ApiDoc;

/// Declares how clients authenticate: a bearer access token (JWT) or an org API key.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT or tk_ API key").build(),
            ),
        );
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))));
    }
}

/// The document as pretty JSON, with the crate version and every error response documented.
pub fn render() -> String {
    let mut doc = ApiDoc::openapi();
    env!("CARGO_PKG_VERSION").clone_into(&mut doc.info.version);
    let rendered = serde_json::to_value(&doc).map(|mut value| {
        document_errors(&mut value);
        value
    });
    let rendered = rendered.map(|mut value| {
        unique_operation_ids(&mut value);
        value
    });
    rendered.and_then(|value| serde_json::to_string_pretty(&value)).unwrap_or_else(|err| {
        tracing::error!(error = %err, "rendering the OpenAPI document failed");
        "{}".to_owned()
    })
}

/// Operation ids must be unique (client generators name methods after them), but handlers of
/// different resources share names (`create`, `delete`, `list`): a shared one becomes
/// `<name>_<static path segments>`, e.g. `delete_orgs_teams`.
fn unique_operation_ids(doc: &mut serde_json::Value) {
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for operations in doc["paths"].as_object().into_iter().flat_map(|paths| paths.values()) {
        for operation in operations.as_object().into_iter().flat_map(|ops| ops.values()) {
            if let Some(id) = operation["operationId"].as_str() {
                *seen.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    for (path, operations) in paths.iter_mut() {
        let nouns: Vec<String> = path
            .trim_start_matches("/api/v1")
            .split('/')
            .filter(|segment| !segment.is_empty() && !segment.starts_with('{'))
            .map(|segment| segment.replace(['-', '.'], "_"))
            .collect();
        for operation in operations.as_object_mut().into_iter().flat_map(|ops| ops.values_mut()) {
            let Some(id) = operation["operationId"].as_str().map(str::to_owned) else { continue };
            if seen.get(&id).copied().unwrap_or(0) > 1 {
                operation["operationId"] = serde_json::Value::String(format!("{id}_{}", nouns.join("_")));
            }
        }
    }
}

/// The error answers every route shares, defined once in `components/responses` and referenced
/// by each operation that can give them: `(status, component name, description)`.
const SHARED_ERRORS: [(u16, &str, &str); 11] = [
    (400, "MalformedRequest", "`malformed_request`: the body is not JSON (syntax, truncated, empty)."),
    (401, "Unauthorized", "`unauthorized`: no valid access token or API key."),
    (
        403,
        "Forbidden",
        "`forbidden`: the caller lacks the permission (named in `required_permission`); `quota_exceeded`: the organization's quota is used up (`quota`, `limit`, `used`, `period_end`).",
    ),
    (404, "NotFound", "`not_found`: no such resource, or one the caller may not see."),
    (
        409,
        "Conflict",
        "`conflict` (with `reason`), or `idempotency_in_progress` while a request with the same `idempotency-key` runs.",
    ),
    (413, "PayloadTooLarge", "`payload_too_large`: the body is over the limit (`limit_bytes`)."),
    (
        415,
        "UnsupportedMediaType",
        "`unsupported_media_type`: the body is not `application/json` (nor `multipart/form-data` for an upload), or an uploaded file's sniffed type is not allowed (`content_type`).",
    ),
    (
        422,
        "ValidationFailed",
        "`validation_failed`: `errors` names every bad field or query parameter; `idempotency_mismatch` for a reused `idempotency-key`.",
    ),
    (
        429,
        "RateLimited",
        "`rate_limited`: over a rate limit or the sign-in lockout; retry after `retry-after` seconds.",
    ),
    (500, "Internal", "`internal`: an unexpected failure; quote `request_id`."),
    (503, "Unavailable", "`service_unavailable`: a dependency is down or the request timed out; retry shortly."),
];

fn problem_content() -> serde_json::Value {
    serde_json::json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}})
}

/// The statuses `method path` can answer with a problem, from what the operation declares:
/// credentials, path ids, an org or admin scope, a body, a query, a POST's idempotency key.
fn error_statuses(method: &str, path: &str, operation: &serde_json::Value) -> Vec<u16> {
    let mut statuses = vec![500, 503];
    let secured = operation["security"].as_array().is_some_and(|schemes| !schemes.is_empty());
    if secured {
        statuses.push(401);
    }
    if path.contains('{') {
        statuses.push(404);
    }
    if path.starts_with("/api/v1/orgs/{org_id}") || path.starts_with("/api/v1/admin/") {
        statuses.extend([403, 404]);
    }
    let has_body = operation.get("requestBody").is_some();
    if has_body {
        statuses.extend([400, 413, 415, 422]);
    }
    let has_query = operation["parameters"].as_array().is_some_and(|params| params.iter().any(|p| p["in"] == "query"));
    if has_query {
        statuses.push(422);
    }
    if method == "post" {
        // The idempotency middleware reads any POST's body (413), and refuses a bad, reused
        // or busy key (422, 409).
        statuses.extend([409, 413, 422]);
    }
    if ["post", "put", "patch", "delete"].contains(&method) && path != "/api/v1/auth/logout" {
        // A change can meet the current state: a taken name or slug, the last owner, a role
        // still held.
        statuses.push(409);
    }
    // Every route under /api/v1 is rate limited (the lockout routes also lock out).
    statuses.push(429);
    if path.starts_with("/api/v1/orgs/{org_id}") || path == "/api/v1/invitations/accept" {
        // `quota_exceeded`: the org's API calls, or its seats when inviting and accepting.
        statuses.push(403);
    }
    statuses.sort_unstable();
    statuses.dedup();
    statuses
}

/// Every response of a rate-limited route carries the three `ratelimit-*` headers.
fn rate_limit_headers(response: &mut serde_json::Value) {
    let header = |description: &str| serde_json::json!({"description": description, "schema": {"type": "integer", "minimum": 0}});
    let headers = &mut response["headers"];
    if !headers.is_object() {
        *headers = serde_json::json!({});
    }
    headers["ratelimit-limit"] = header("Requests the tightest applicable bucket allows per period (its burst).");
    headers["ratelimit-remaining"] = header("Requests left in that bucket now.");
    headers["ratelimit-reset"] = header("Seconds until that bucket is full again.");
}

/// Documents every error answer of every `/api/v1` operation as `application/problem+json`
/// from the shared responses, keeping a route's own description where it gave one.
fn document_errors(doc: &mut serde_json::Value) {
    let mut shared = serde_json::Map::new();
    for (status, name, description) in SHARED_ERRORS {
        let mut response = serde_json::json!({"description": description, "content": problem_content()});
        if status == 429 {
            response["headers"] = serde_json::json!({"retry-after": {
                "description": "Seconds until the next attempt may succeed.",
                "schema": {"type": "integer", "minimum": 1}
            }});
        }
        shared.insert(name.to_owned(), response);
    }
    for response in shared.values_mut() {
        rate_limit_headers(response);
    }
    doc["components"]["responses"] = serde_json::Value::Object(shared);
    let Some(paths) = doc["paths"].as_object_mut() else { return };
    for (path, operations) in paths.iter_mut() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        let Some(operations) = operations.as_object_mut() else { continue };
        for (method, operation) in operations.iter_mut() {
            let statuses =
                if path == "/api/v1/openapi.json" { vec![429] } else { error_statuses(method, path, operation) };
            let responses = operation["responses"].as_object_mut();
            let Some(responses) = responses else { continue };
            // A route's own error answers keep their description and get the problem media type.
            for (status, response) in responses.iter_mut() {
                if status.starts_with('4') || status.starts_with('5') {
                    response["content"] = problem_content();
                }
                if response.get("$ref").is_none() {
                    rate_limit_headers(response);
                }
            }
            for status in statuses {
                let key = status.to_string();
                if responses.contains_key(&key) {
                    continue;
                }
                if let Some((_, name, _)) = SHARED_ERRORS.iter().find(|(shared, _, _)| *shared == status) {
                    responses.insert(key, serde_json::json!({"$ref": format!("#/components/responses/{name}")}));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_api_error_response_is_problem_json_and_shared_ones_are_referenced() {
        let doc: serde_json::Value = serde_json::from_str(&render()).expect("json");
        let login = &doc["paths"]["/api/v1/auth/login"]["post"]["responses"];
        for status in ["400", "413", "415", "422", "429", "500", "503"] {
            assert!(login.get(status).is_some(), "login documents {status}: {login}");
        }
        let members = &doc["paths"]["/api/v1/orgs/{org_id}/members"]["get"]["responses"];
        for status in ["401", "403", "404", "422"] {
            assert!(members.get(status).is_some(), "members documents {status}");
        }
        for (path, operations) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in operations.as_object().expect("operations") {
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    if !path.starts_with("/api/v1/") || !(status.starts_with('4') || status.starts_with('5')) {
                        continue;
                    }
                    let media =
                        response.get("content").map(|content| content.get("application/problem+json").is_some());
                    let shared = response.get("$ref").is_some();
                    assert!(shared || media == Some(true), "{method} {path} {status}: {response}");
                }
            }
        }
        assert!(doc["components"]["responses"]["RateLimited"]["headers"].get("retry-after").is_some());
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc: serde_json::Value = serde_json::from_str(&render()).expect("json");
        let mut ids = std::collections::HashSet::new();
        for operations in doc["paths"].as_object().expect("paths").values() {
            for operation in operations.as_object().expect("operations").values() {
                let id = operation["operationId"].as_str().expect("an operation id");
                assert!(ids.insert(id.to_owned()), "{id} is used twice");
            }
        }
        assert!(ids.contains("delete_orgs_teams") && ids.contains("delete_orgs"), "{ids:?}");
    }
}
