//! `/metrics` in the Prometheus text format (no auth: expose it only on the internal network).

use actix_web::HttpResponse;
use actix_web::web::{self, Data, ServiceConfig};

use crate::http::metrics::Metrics;

/// Registers `/metrics`.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(web::resource("/metrics").route(web::get().to(render)));
}

/// Every metric family of the process.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    responses((status = 200, description = "Prometheus text exposition format.", content_type = "text/plain; version=0.0.4", body = String))
)]
pub async fn render(metrics: Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(metrics.render())
}
