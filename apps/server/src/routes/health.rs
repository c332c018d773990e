//! Liveness and readiness, for load balancers and orchestrators (no auth).

use std::collections::BTreeMap;

use actix_web::web::{self, Data, ServiceConfig};
use actix_web::{HttpResponse, http::StatusCode};
use serde::Serialize;
use tenantry_application::CheckOutcome;
use utoipa::ToSchema;

use crate::state::AppState;

/// Registers `/health/live` and `/health/ready`.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(web::resource("/health/live").route(web::get().to(live)))
        .service(web::resource("/health/ready").route(web::get().to(ready)));
}

/// Liveness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveResponse {
    /// Always `live`.
    #[schema(example = "live")]
    pub status: &'static str,
}

/// Readiness answer: the overall status and each dependency's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    /// `ready`, or `unavailable` when any check failed.
    #[schema(example = "ready")]
    pub status: &'static str,
    /// Each dependency's outcome: `ok`, `unreachable` or `not_ready`.
    #[schema(example = json!({"database": "ok", "cache": "ok"}))]
    pub checks: BTreeMap<&'static str, &'static str>,
    /// The failing checks, when any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failing: Vec<&'static str>,
}

/// 200 while the process can serve HTTP at all; checks no dependency, so a database outage
/// never gets healthy replicas restarted.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    responses((status = 200, description = "The process serves.", body = LiveResponse))
)]
pub async fn live() -> web::Json<LiveResponse> {
    web::Json(LiveResponse { status: "live" })
}

/// 200 when every dependency is usable; 503 naming the failing ones otherwise, so the load
/// balancer takes this replica out of rotation.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "Every dependency is usable.", body = ReadyResponse),
        (status = 503, description = "At least one dependency is down; `failing` names it.", body = ReadyResponse),
    )
)]
pub async fn ready(state: Data<AppState>) -> HttpResponse {
    let report = state.health.readiness().await;
    let checks = report
        .checks
        .iter()
        .map(|(name, outcome)| {
            let text = match outcome {
                CheckOutcome::Ok => "ok",
                CheckOutcome::Unreachable => "unreachable",
                CheckOutcome::NotReady => "not_ready",
            };
            (*name, text)
        })
        .collect();
    let ready = report.is_ready();
    let body = ReadyResponse { status: if ready { "ready" } else { "unavailable" }, checks, failing: report.failing() };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    HttpResponse::build(status).json(body)
}
