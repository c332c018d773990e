//! The one piece of shared state every handler receives.

use std::time::Duration;

use tenantry_application::HealthService;

use crate::http::metrics::Metrics;

/// Services and process-wide settings, registered once as `web::Data<AppState>`: a single
/// state struct means a handler can never ask for data that was not registered (a run-time 500
/// in actix).
pub struct AppState {
    /// Readiness of every dependency.
    pub health: HealthService,
    /// Prometheus families.
    pub metrics: Metrics,
    /// How long a request may run before it is answered 503.
    pub request_timeout: Duration,
    /// The OpenAPI document, rendered once.
    pub openapi_json: String,
}
