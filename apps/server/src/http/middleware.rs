//! Request-scoped middleware, outermost first: request context (id, span, access log,
//! problem+json for every error), metrics, then a per-request timeout, inside which writes run
//! to completion.

use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::web::Data;
use actix_web::{HttpMessage, HttpResponse};
use tracing::Instrument;

use super::error::PROBLEM_JSON;
use super::metrics::Metrics;
use super::metrics::UNMATCHED;
use super::{ApiError, RequestId, request_id};

/// How long a request may run before it is answered 503, as app data.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeout(pub std::time::Duration);

/// Gives the request its id and span, logs it once, and turns every error response that is not
/// already problem+json (actix's own 404, 405, 413, CORS and extractor errors…) into one.
///
/// # Errors
/// An inner error comes back as an error whose response is already rendered (problem+json with
/// the request id), so actix sends exactly that.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let id = RequestId::for_request(&req);
    id.attach(&req);
    let span = request_span(&req, &id);
    req.extensions_mut().insert(RequestSpan(span.clone()));
    let started = Instant::now();
    // No clone of the request may be held across this call: actix mutates it during routing.
    let result = request_id::scope(id.0.clone(), next.call(req).instrument(span.clone())).await;
    let (response, error) = match result {
        Ok(response) => {
            let (request, response) = response.into_parts();
            // The span closes (and is exported) once every handle is gone: not with the
            // request object, which actix pools.
            request.extensions_mut().remove::<RequestSpan>();
            let route = request.match_pattern().unwrap_or_else(|| UNMATCHED.to_owned());
            span.record("http.route", route.as_str());
            let response = finish(response.map_into_boxed_body(), &id, &span).await;
            (Ok(ServiceResponse::new(request, response)), None)
        }
        Err(err) => {
            span.record("http.route", UNMATCHED);
            let rendered = request_id::scope(id.0.clone(), async { err.error_response() }).await;
            let response = finish(rendered, &id, &span).await;
            (Err(response), Some(err))
        }
    };
    let status = match &response {
        Ok(response) => response.status(),
        Err(response) => response.status(),
    };
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::warn!(parent: &span, latency_ms, "request served with a server error");
    } else {
        tracing::info!(parent: &span, latency_ms, "request served");
    }
    match (response, error) {
        (Ok(response), _) => Ok(response),
        (Err(response), Some(err)) => Err(InternalError::from_response(err.to_string(), response).into()),
        (Err(response), None) => Err(InternalError::from_response(String::new(), response).into()),
    }
}

/// The request's span, kept in the request's extensions so extractors can record who the
/// caller turned out to be ([`record_principal`]).
#[derive(Clone)]
pub struct RequestSpan(pub tracing::Span);

/// The span of one request: named `METHOD route-template` (OpenTelemetry's HTTP server
/// convention; never the raw path, so names stay few), a child of the caller's trace when the
/// request carries a W3C `traceparent`. The route is matched from the path before routing
/// (actix's resource map), recorded again after it. `org_id` is taken from the `{org_id}`
/// segment when it is a UUID; `principal` starts `anonymous` and the authentication
/// extractors turn it into `user` or `api_key`. Nothing here comes from credentials or
/// bodies.
fn request_span(req: &ServiceRequest, id: &RequestId) -> tracing::Span {
    let template = req.match_pattern();
    let route = template.as_deref().unwrap_or(UNMATCHED);
    let method = known_method(req.method().as_str());
    let org_id = template.as_deref().and_then(|template| org_id_of(template, req.path()));
    let span = tracing::info_span!(
        "http.request",
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
        url.path = %req.path(),
        request_id = %id.0,
        org_id = tracing::field::Empty,
        principal = "anonymous",
    );
    if let Some(org_id) = org_id {
        span.record("org_id", tracing::field::display(org_id));
    }
    crate::telemetry::continue_remote_trace(&span, req.headers());
    span
}

/// The method as a span attribute: the standard ones, else `_OTHER` (OpenTelemetry's
/// convention), so a client cannot invent names.
fn known_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        _ => "_OTHER",
    }
}

/// The organization a request addresses: the path segment where the template has
/// `{org_id}`, when it is a UUID.
fn org_id_of(template: &str, path: &str) -> Option<uuid::Uuid> {
    let position = template.split('/').position(|segment| segment == "{org_id}")?;
    path.split('/').nth(position)?.parse().ok()
}

/// Records on the request's span who the caller is (`user` or `api_key`); called by the
/// authentication extractors once the credential checked out.
pub fn record_principal(req: &actix_web::HttpRequest, kind: &'static str) {
    if let Some(span) = req.extensions().get::<RequestSpan>() {
        span.0.record("principal", kind);
    }
}

/// Makes an error response problem+json (keeping its status and headers) and tags the
/// response with the request id.
async fn finish(response: HttpResponse<BoxBody>, id: &RequestId, span: &tracing::Span) -> HttpResponse<BoxBody> {
    let status = response.status();
    let mut response = if (status.is_client_error() || status.is_server_error()) && !is_json(response.headers()) {
        if status.is_server_error()
            && let Some(err) = response.error()
        {
            tracing::error!(parent: span, error = %err, "request failed");
        }
        let problem = match response.error().and_then(|err| err.as_error::<actix_cors::CorsError>()) {
            Some(cors) => ApiError::new(status, "cors_rejected", cors.to_string()),
            None => ApiError::from_status(status),
        };
        let body = request_id::scope(id.0.clone(), async { problem.body() }).await;
        let mut response = response.set_body(BoxBody::new(body.to_string()));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        response
    } else {
        response
    };
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(header::HeaderName::from_static(request_id::HEADER), value);
    }
    response
}

/// Our handlers answer errors in JSON on purpose (problem+json, or the readiness report);
/// anything else with an error status is actix's plain text and gets replaced.
fn is_json(headers: &header::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with(PROBLEM_JSON) || value.starts_with("application/json"))
}

/// Counts the request under its route template, with its latency.
///
/// # Errors
/// Passes inner errors through.
pub async fn track_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<Data<Metrics>>().cloned();
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    if let Some(metrics) = &metrics {
        metrics.in_flight().inc();
    }
    let result = next.call(req).await;
    if let Some(metrics) = &metrics {
        metrics.in_flight().dec();
        match &result {
            Ok(response) => {
                let route = response.request().match_pattern();
                metrics.observe(
                    &method,
                    route.as_deref().unwrap_or(UNMATCHED),
                    response.status().as_u16(),
                    started.elapsed(),
                );
            }
            Err(err) => {
                let status = err.as_response_error().status_code().as_u16();
                metrics.observe(&method, UNMATCHED, status, started.elapsed());
            }
        }
    }
    result
}

/// Answers 503 `service_unavailable` when the handler runs longer than the configured request
/// timeout, so a stuck dependency cannot pile up requests without bound.
///
/// # Errors
/// Passes inner errors through; a timeout is an [`ApiError`].
pub async fn timeout(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let limit = req.app_data::<RequestTimeout>().map(|timeout| timeout.0);
    let Some(limit) = limit else {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    };
    match tokio::time::timeout(limit, next.call(req)).await {
        Ok(result) => result.map(ServiceResponse::map_into_boxed_body),
        Err(_) => {
            Err(ApiError::unavailable(format!("The request did not complete within {} seconds.", limit.as_secs()))
                .into())
        }
    }
}

/// How long a write may go on after [`timeout`] answered it.
const WRITE_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

/// The most a write runs in all with a request timeout of `request_timeout`: past it, it is
/// cut off (its transaction rolls back if it had not committed), so a stuck dependency cannot
/// pile up writes without bound.
pub fn write_limit(request_timeout: std::time::Duration) -> std::time::Duration {
    request_timeout + WRITE_GRACE
}

/// Runs a state-changing request (any method but GET, HEAD and OPTIONS) in a task of its own,
/// so it runs to completion even when the client disconnects or [`timeout`] answers first.
/// Dropping a handler half-way is safe for the database (an open transaction rolls back), but
/// not for what follows a commit: the cache invalidation, the revocation markers and the
/// idempotency record. Without them other requests would act on stale permissions for up to a
/// minute. The task is bounded by [`write_limit`]. A server that stops cuts off what is still
/// running; the open transaction then rolls back, as on any crash.
///
/// # Errors
/// Passes inner errors through; a task that died (a panic) is a 500.
pub async fn complete_writes(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    use actix_web::http::Method;
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    }
    let limit = req.app_data::<RequestTimeout>().map(|timeout| write_limit(timeout.0));
    let id = request_id::current();
    let work = next.call(req);
    // The task keeps the request's id and span, so its logs and errors still carry them.
    let work = async move {
        match id {
            Some(id) => request_id::scope(id, work).await,
            None => work.await,
        }
    }
    .instrument(tracing::Span::current());
    let bounded = async move {
        match limit {
            Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
                tracing::error!(limit_secs = limit.as_secs(), "a write outran its limit and was cut off");
                Err(ApiError::unavailable("The request did not complete in time.").into())
            }),
            None => work.await,
        }
    };
    match actix_web::rt::spawn(bounded).await {
        Ok(result) => result.map(ServiceResponse::map_into_boxed_body),
        Err(err) => Err(ApiError::internal(anyhow::anyhow!("request task failed: {err}")).into()),
    }
}

/// Security headers every response carries unless the handler set its own (the docs page sets
/// a CSP that allows its script).
pub fn security_headers(hsts: bool) -> DefaultHeaders {
    let headers = DefaultHeaders::new()
        .add(("x-content-type-options", "nosniff"))
        .add(("x-frame-options", "DENY"))
        .add(("referrer-policy", "no-referrer"))
        .add(("cross-origin-opener-policy", "same-origin"))
        .add(("cross-origin-resource-policy", "same-origin"))
        .add(("permissions-policy", "camera=(), microphone=(), geolocation=()"))
        .add(("content-security-policy", "default-src 'none'; frame-ancestors 'none'"))
        .add(("cache-control", "no-store"));
    if hsts { headers.add(("strict-transport-security", "max-age=63072000; includeSubDomains")) } else { headers }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use actix_web::middleware::from_fn;
    use actix_web::{App, HttpResponse, test, web};

    #[actix_web::test]
    async fn a_handler_that_never_finishes_is_answered_503_with_a_request_id() {
        let app = test::init_service(
            App::new()
                .app_data(RequestTimeout(Duration::from_millis(50)))
                .app_data(Data::new(Metrics::new().expect("metrics")))
                .route("/stuck", web::get().to(std::future::pending::<HttpResponse>))
                .route("/quick", web::get().to(HttpResponse::NoContent))
                .wrap(from_fn(timeout))
                .wrap(from_fn(track_metrics))
                .wrap(from_fn(request_context)),
        )
        .await;
        let quick = test::call_service(&app, test::TestRequest::get().uri("/quick").to_request()).await;
        assert_eq!(quick.status(), 204);

        let request = test::TestRequest::get().uri("/stuck").insert_header(("x-request-id", "stuck-1")).to_request();
        let err = test::try_call_service(&app, request).await.expect_err("rendered as an error");
        let response = err.error_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("stuck-1"));
        assert_eq!(response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some(PROBLEM_JSON));
        let body = actix_web::body::to_bytes(response.into_body()).await.expect("body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(body["code"], "service_unavailable");
        assert_eq!(body["request_id"], "stuck-1");
    }

    /// A handler that records, after a pause, that it got to the end.
    fn slow_write(
        done: std::rc::Rc<std::cell::Cell<Option<String>>>,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = HttpResponse>>> + Clone {
        move || {
            let done = done.clone();
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                // The request id still reaches the work that outlived the response.
                done.set(Some(request_id::current().unwrap_or_default()));
                HttpResponse::NoContent().finish()
            })
        }
    }

    #[actix_web::test]
    async fn a_write_answered_by_the_timeout_still_runs_to_its_end() {
        let done = std::rc::Rc::new(std::cell::Cell::new(None));
        let read = std::rc::Rc::new(std::cell::Cell::new(None));
        let app = test::init_service(
            App::new()
                .app_data(RequestTimeout(Duration::from_millis(20)))
                .app_data(Data::new(Metrics::new().expect("metrics")))
                .route("/write", web::post().to(slow_write(done.clone())))
                .route("/read", web::get().to(slow_write(read.clone())))
                .wrap(from_fn(complete_writes))
                .wrap(from_fn(timeout))
                .wrap(from_fn(track_metrics))
                .wrap(from_fn(request_context)),
        )
        .await;
        let write = test::TestRequest::post().uri("/write").insert_header(("x-request-id", "w-1")).to_request();
        let answered = test::try_call_service(&app, write).await.expect_err("answered by the timeout");
        assert_eq!(answered.error_response().status(), 503);
        let read_request = test::TestRequest::get().uri("/read").to_request();
        assert!(test::try_call_service(&app, read_request).await.is_err());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(done.take().as_deref(), Some("w-1"), "the write finished after its 503, with its request id");
        assert_eq!(read.take(), None, "a read is simply dropped");
    }
}
