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
        routes::orgs::members,
        routes::orgs::change_role,
        routes::orgs::remove_member,
        routes::orgs::invite,
        routes::orgs::invitations,
        routes::orgs::revoke_invitation,
        routes::orgs::accept_invitation,
        routes::orgs::roles,
        routes::orgs::create_role,
        routes::orgs::update_role,
        routes::orgs::delete_role,
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

/// The document as pretty JSON, with the crate version.
pub fn render() -> String {
    let mut doc = ApiDoc::openapi();
    env!("CARGO_PKG_VERSION").clone_into(&mut doc.info.version);
    doc.to_pretty_json().unwrap_or_else(|err| {
        tracing::error!(error = %err, "rendering the OpenAPI document failed");
        "{}".to_owned()
    })
}
