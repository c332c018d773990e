//! One module per resource; each registers its routes through [`configure`].

pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod docs;
pub mod files;
pub mod health;
pub mod invitations;
pub mod members;
pub mod metrics;
pub mod orgs;
pub mod plans;
pub mod roles;
pub mod teams;
pub mod users;
pub mod webhooks;

use actix_web::web::{self, ServiceConfig};

use crate::http::ApiError;

/// Registers every route of the server.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.configure(health::configure)
        .configure(auth::configure)
        .configure(users::configure)
        .configure(admin::configure)
        // The longer prefix first: the orgs scope would otherwise swallow `/orgs/{id}/teams`.
        .configure(teams::configure)
        .configure(audit::configure)
        .configure(api_keys::configure)
        .configure(members::configure)
        .configure(invitations::configure)
        .configure(roles::configure)
        .configure(plans::configure)
        .configure(webhooks::configure)
        .configure(files::configure)
        .configure(orgs::configure)
        .configure(metrics::configure)
        .configure(docs::configure)
        .default_service(web::to(not_found));
}

/// Anything unrouted: a problem+json 404.
async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found())
}
