//! The cross-cutting HTTP behaviour every route shares, spoken to over real HTTP.

use serde_json::Value;
use tenantry_tests::{assert_any_problem, assert_problem, spawn_app, spawn_app_with};

#[tokio::test]
async fn liveness_answers_without_touching_dependencies() {
    let app = spawn_app().await;
    let response = app.get("/health/live").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "live");
    app.stop().await;
}

#[tokio::test]
async fn readiness_checks_the_database_and_the_cache() {
    let app = spawn_app().await;
    let response = app.get("/health/ready").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["cache"], "ok");
    app.stop().await;
}

#[tokio::test]
async fn readiness_is_503_and_names_the_cache_when_redis_is_down() {
    // Port 1 on loopback: nothing listens, so every connection is refused at once.
    let app = spawn_app_with(&[("TENANTRY_REDIS_URL", "redis://127.0.0.1:1")]).await;
    let response = app.get("/health/ready").await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["cache"], "unreachable");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["failing"], serde_json::json!(["cache"]));
    assert_eq!(app.get("/health/live").await.status(), 200, "liveness does not depend on Redis");
    app.stop().await;
}

#[tokio::test]
async fn unknown_routes_are_problem_json_404s() {
    let app = spawn_app().await;
    for path in ["/nope", "/api/v1/nope", "/api/v1/orgs/abc/nothing", "/health"] {
        assert_problem(app.get(path).await, 404, "not_found").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn wrong_methods_are_problem_json_405s() {
    let app = spawn_app().await;
    for path in ["/health/live", "/health/ready", "/metrics", "/api/v1/openapi.json", "/docs"] {
        let response = app.client.delete(app.url(path)).send().await.expect("sent");
        assert_eq!(response.headers().get("allow").and_then(|v| v.to_str().ok()), Some("GET"), "{path}");
        assert_problem(response, 405, "method_not_allowed").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn malformed_requests_anywhere_get_a_4xx_problem_never_a_5xx() {
    let app = spawn_app().await;
    let garbage: Vec<(&str, &str, Option<&str>, &[u8])> = vec![
        ("POST", "/health/live", Some("application/json"), b"{not json"),
        ("POST", "/api/v1/anything", Some("application/json"), b"{\"a\":"),
        ("PUT", "/api/v1/orgs/not-a-uuid", Some("text/plain"), b"hello"),
        ("PATCH", "/metrics", Some("application/json"), b"[]"),
        ("POST", "/docs", Some("application/x-www-form-urlencoded"), b"a=%%%"),
        ("GET", "/health/ready/%00", None, b""),
        ("DELETE", "/api/v1/orgs/00000000-0000-0000-0000-000000000000", None, b""),
        ("POST", "/api/v1/auth/login", Some("application/json"), &[0xff, 0xfe, 0x00]),
    ];
    for (method, path, content_type, body) in garbage {
        let mut request = app.client.request(method.parse().expect("method"), app.url(path)).body(body.to_vec());
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let response = request.send().await.expect("sent");
        let status = response.status().as_u16();
        assert!((400..500).contains(&status), "{method} {path} answered {status}");
        let body = assert_any_problem(response).await;
        assert!(body["code"].as_str().is_some_and(|code| !code.is_empty()), "{method} {path}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_sane_request_id_is_echoed_and_anything_else_replaced() {
    let app = spawn_app().await;
    let response =
        app.client.get(app.url("/health/live")).header("x-request-id", "client-id_1.2").send().await.expect("sent");
    assert_eq!(response.headers()["x-request-id"], "client-id_1.2");

    for bad in ["has space", &"x".repeat(129), "semi;colon"] {
        let response = app.client.get(app.url("/nope")).header("x-request-id", bad).send().await.expect("sent");
        let id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
        assert_ne!(id, bad);
        assert_eq!(uuid::Uuid::parse_str(&id).expect("generated ids are UUIDs").get_version_num(), 7);
        let body = assert_problem(response, 404, "not_found").await;
        assert_eq!(body["request_id"], id.as_str());
    }
    app.stop().await;
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/health/live", "/nope", "/api/v1/openapi.json"] {
        let response = app.get(path).await;
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
        assert!(headers.contains_key("content-security-policy"), "{path}");
        assert!(!headers.contains_key("strict-transport-security"), "no HSTS over plain http: {path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_never_by_raw_path() {
    let app = spawn_app().await;
    let live_count = |text: &str| -> u64 {
        let prefix = r#"tenantry_http_requests_total{method="GET",route="/health/live",status="200"} "#;
        text.lines().find_map(|line| line.strip_prefix(prefix)).map_or(0, |n| n.parse().expect("a count"))
    };
    let before = live_count(&app.get("/metrics").await.text().await.expect("text"));
    for _ in 0..3 {
        assert_eq!(app.get("/health/live").await.status(), 200);
    }
    assert_eq!(app.get("/api/v1/orgs/secret-tenant-name/no-such-thing").await.status(), 404);
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().expect("ascii").starts_with("text/plain"));
    let text = response.text().await.expect("text");
    assert_eq!(live_count(&text), before + 3, "{text}");
    assert!(text.contains(r#"route="unmatched",status="404""#), "{text}");
    assert!(
        text.contains(r#"tenantry_http_request_duration_seconds_bucket{method="GET",route="/health/live""#),
        "{text}"
    );
    assert!(!text.contains("secret-tenant-name"), "raw paths must never become labels");
    app.stop().await;
}

#[tokio::test]
async fn metrics_count_sign_ins_by_outcome_and_show_the_database_pool_and_build() {
    let app = spawn_app().await;
    let email = tenantry_tests::address("metrics");
    let password = "a long enough pass phrase 42";
    let registered =
        app.post_json("/api/v1/auth/register", &serde_json::json!({"email": email, "password": password}), None).await;
    assert_eq!(registered.status(), 201);
    let ok =
        app.post_json("/api/v1/auth/login", &serde_json::json!({"email": email, "password": password}), None).await;
    assert_eq!(ok.status(), 200);
    for _ in 0..2 {
        let wrong = app
            .post_json("/api/v1/auth/login", &serde_json::json!({"email": email, "password": "not it at all"}), None)
            .await;
        assert_eq!(wrong.status(), 401);
    }
    let text = app.get("/metrics").await.text().await.expect("text");
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
            .unwrap_or_else(|| panic!("no {series} in {text}"))
            .parse()
            .expect("a number")
    };
    assert_eq!(value(r#"tenantry_logins_total{outcome="success"}"#), 1.0);
    assert_eq!(value(r#"tenantry_logins_total{outcome="invalid_credentials"}"#), 2.0);
    let (open, in_use, max) = (
        value("tenantry_db_pool_connections_open"),
        value("tenantry_db_pool_connections_in_use"),
        value("tenantry_db_pool_connections_max"),
    );
    assert!(max >= 1.0 && open >= 1.0 && open <= max && in_use <= open, "open {open}, in use {in_use}, max {max}");
    let build = text.lines().find(|line| line.starts_with("tenantry_build_info{")).expect("build info");
    assert!(build.contains(&format!("version=\"{}\"", env!("CARGO_PKG_VERSION"))) && build.ends_with(" 1"), "{build}");
    assert!(!text.contains(&email), "no address ever becomes a label");
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_and_the_docs_page_are_served() {
    let app = spawn_app().await;
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.expect("json");
    assert!(doc["openapi"].as_str().expect("version").starts_with("3.1"));
    for path in ["/health/live", "/health/ready", "/metrics", "/api/v1/openapi.json", "/docs"] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());

    let page = app.get("/docs").await;
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.expect("html");
    assert!(html.contains(r#"<script src="/docs/app.js">"#));
    assert!(!html.contains("https://"), "the docs page must not load anything from the network");
    let script = app.get("/docs/app.js").await;
    assert_eq!(script.status(), 200);
    let script = script.text().await.expect("js");
    assert!(script.contains("/api/v1/openapi.json"));
    assert!(!script.contains("https://"), "the docs script must not load anything from the network");
    app.stop().await;
}

#[tokio::test]
async fn cors_is_off_by_default() {
    let app = spawn_app().await;
    let response =
        app.client.get(app.url("/health/live")).header("origin", "https://evil.example").send().await.expect("sent");
    assert!(!response.headers().contains_key("access-control-allow-origin"));
    app.stop().await;
}

#[tokio::test]
async fn cors_allows_exactly_the_configured_origins() {
    let app = spawn_app_with(&[("TENANTRY_CORS_ORIGINS", "https://app.example")]).await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/health/ready"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("sent");
    assert_eq!(preflight.status(), 200);
    assert_eq!(preflight.headers()["access-control-allow-origin"], "https://app.example");

    let foreign = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/health/ready"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("sent");
    assert!(!foreign.headers().contains_key("access-control-allow-origin"));
    let status = foreign.status().as_u16();
    assert!((400..500).contains(&status), "{status}");
    assert_problem(foreign, status, "cors_rejected").await;
    app.stop().await;
}
