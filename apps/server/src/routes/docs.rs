//! The OpenAPI document and an interactive docs page that needs nothing from the network: the
//! page and its script are compiled into the binary (no CDN, no build-time download).

use actix_web::HttpResponse;
use actix_web::web::{self, Data, ServiceConfig};

use crate::state::AppState;

const PAGE: &str = include_str!("../../assets/docs.html");
const SCRIPT: &str = include_str!("../../assets/docs.js");

/// Registers `/api/v1/openapi.json`, `/docs` and the page's script.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(web::resource("/api/v1/openapi.json").route(web::get().to(openapi)))
        .service(web::resource("/docs").route(web::get().to(page)))
        .service(web::resource("/docs/app.js").route(web::get().to(script)));
}

/// The OpenAPI 3.1 document of every route.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "OpenAPI 3.1 document.", content_type = "application/json", body = Object))
)]
pub async fn openapi(state: Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("cache-control", "no-cache"))
        .body(state.openapi_json.clone())
}

/// The interactive API docs page.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "meta",
    responses((status = 200, description = "HTML page that renders the OpenAPI document and sends requests.", content_type = "text/html", body = String))
)]
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        // The page runs only its own script, calls only this origin, and cannot be framed.
        .insert_header((
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ))
        .insert_header(("cache-control", "no-cache"))
        .body(PAGE)
}

async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header(("cache-control", "no-cache"))
        .body(SCRIPT)
}
