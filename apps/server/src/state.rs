//! The one piece of shared state every handler receives.

use actix_web::web::Data;
use std::sync::Arc;

use tenantry_application::{
    AccountService, AuthService, HealthService, InvitationService, TenancyService, TwoFactorService,
};

use crate::http::metrics::Metrics;

/// Services and process-wide settings, registered once as `web::Data<AppState>`: a single
/// state struct means a handler can never ask for data that was not registered (a run-time 500
/// in actix).
pub struct AppState {
    /// Readiness of every dependency.
    pub health: HealthService,
    /// Sign-in and account security.
    pub auth: AuthService,
    /// The caller's own data (export, deletion).
    pub account: AccountService,
    /// Organizations and membership.
    pub tenancy: TenancyService,
    /// Invitations.
    pub invitations: InvitationService,
    /// Platform administration.
    pub admin: tenantry_application::AdminService,
    /// API keys.
    pub api_keys: tenantry_application::ApiKeyService,
    /// The audit log.
    pub audit: tenantry_application::AuditService,
    /// Teams.
    pub teams: tenantry_application::TeamService,
    /// Two-factor sign-in.
    pub two_factor: Arc<TwoFactorService>,
    /// Prometheus families (also registered on their own for the metrics middleware).
    pub metrics: Data<Metrics>,
    /// Makes and reads the opaque cursors of every list.
    pub cursors: crate::http::page::Cursors,
    /// The OpenAPI document, rendered once.
    pub openapi_json: String,
    /// Webhook endpoints and deliveries.
    pub webhooks: tenantry_application::WebhookService,
    /// Files.
    pub files: tenantry_application::FileService,
    /// Plans, quotas and usage.
    pub quotas: Arc<tenantry_application::QuotaService>,
    /// Rate limits per route group.
    pub limits: Arc<crate::http::limits::RateLimits>,
}
