//! `/metrics` after a scripted run: register, a sign-in that works and one that fails, an
//! organization, a rate-limited request, a quota refusal and a webhook delivery. Every family
//! issue 14 names is there with plausible values, and every metric the alert rules and the
//! Grafana dashboard use is in that scrape, so a renamed family breaks this test before it
//! silently breaks an alert.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenantry_testkit::receiver::Reply;
use tenantry_tests::spawn_app_with;

const PASSWORD: &str = "a long enough pass phrase 42";

/// The value of the first sample whose series starts with `series` (name and the labels
/// written so far), summed over every series matching it when `sum`.
fn sample(text: &str, series: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(series).is_some_and(|rest| rest.starts_with([' ', '{', ',']) || series.ends_with('}'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// Every `tenantry_*` metric name in `text` (a rule file or a dashboard), histogram series
/// folded to their family.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("tenantry_") {
        let tail = &rest[start..];
        let end =
            tail.find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

fn deploy_file(relative: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[tokio::test]
async fn a_scripted_run_shows_every_metric_with_plausible_values_and_every_one_the_alerts_use() {
    let plans = r#"[{"name":"tiny","limits":{"webhook_endpoints":1}}]"#;
    let app = spawn_app_with(&[
        ("TENANTRY_PLANS", plans),
        ("TENANTRY_DEFAULT_PLAN", "tiny"),
        ("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("TENANTRY_RATE_LIMIT_ANONYMOUS", "30/hour"),
    ])
    .await;
    let receiver = tenantry_testkit::receiver::Receiver::start([Reply::status(204)]).await;
    let hook_url = receiver.url("/hook");

    let email = tenantry_tests::address("scrape");
    let registered = app.post_json("/api/v1/auth/register", &json!({"email": email, "password": PASSWORD}), None).await;
    assert_eq!(registered.status(), 201);
    let wrong =
        app.post_json("/api/v1/auth/login", &json!({"email": email, "password": "not the password"}), None).await;
    assert_eq!(wrong.status(), 401);
    let access = app.login(&email, PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    let org = app.create_org(&access).await;
    // Reads of the org go through the tenancy cache: a miss, then hits.
    for _ in 0..3 {
        assert_eq!(app.get_auth(&format!("/api/v1/orgs/{org}"), &access).await.status(), 200);
    }
    let hook = app
        .post_json(&format!("/api/v1/orgs/{org}/webhooks"), &json!({"url": hook_url, "events": []}), Some(&access))
        .await;
    assert_eq!(hook.status(), 201);
    let hook: Value = hook.json().await.expect("json");
    let refused = app
        .post_json(&format!("/api/v1/orgs/{org}/webhooks"), &json!({"url": hook_url, "events": []}), Some(&access))
        .await;
    assert_eq!(refused.status(), 403, "the plan allows one endpoint");
    let hook_id = hook["id"].as_str().expect("id");
    let test = app.post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/test"), &json!({}), Some(&access)).await;
    assert_eq!(test.status(), 202);
    let mut limited = false;
    for _ in 0..40 {
        if app.get("/api/v1/plans").await.status() == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the anonymous limit refuses a request");
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = app.get("/metrics").await.text().await.expect("text");
        let recorded = sample(&text, r#"tenantry_webhook_attempts_total{outcome="succeeded"}"#).unwrap_or(0.0);
        if !receiver.received().is_empty() && recorded >= 1.0 {
            break text;
        }
        assert!(Instant::now() < deadline, "the webhook was not delivered: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let value = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));

    // HTTP: by route template and status, latency, in flight (the scrape itself is).
    assert_eq!(value(r#"tenantry_http_requests_total{method="POST",route="/api/v1/auth/register",status="201"}"#), 1.0);
    assert_eq!(value(r#"tenantry_http_requests_total{method="GET",route="/api/v1/orgs/{org_id}",status="200"}"#), 3.0);
    assert!(
        value(r#"tenantry_http_request_duration_seconds_count{method="GET",route="/api/v1/orgs/{org_id}"}"#) >= 3.0
    );
    assert!(value("tenantry_http_requests_in_flight") >= 1.0, "the scrape is in flight");
    assert!(!text.contains(&org), "no org id ever becomes a label");
    // Sign-ins by outcome.
    assert_eq!(value(r#"tenantry_logins_total{outcome="success"}"#), 1.0);
    assert_eq!(value(r#"tenantry_logins_total{outcome="invalid_credentials"}"#), 1.0);
    assert_eq!(value(r#"tenantry_logins_total{outcome="locked"}"#), 0.0, "present before the first lockout");
    // Refusals.
    assert!(value(r#"tenantry_rate_limited_total{group="anonymous"}"#) >= 1.0);
    assert_eq!(value(r#"tenantry_quota_refusals_total{quota="webhook_endpoints"}"#), 1.0);
    // The database pool: gauges, and the time spent waiting for connections.
    let (open, in_use, max) = (
        value("tenantry_db_pool_connections_open"),
        value("tenantry_db_pool_connections_in_use"),
        value("tenantry_db_pool_connections_max"),
    );
    assert!(max >= 1.0 && open >= 1.0 && open <= max && in_use <= open, "open {open}, in use {in_use}, max {max}");
    let acquires = value("tenantry_db_pool_acquires_total");
    let waited = value("tenantry_db_pool_acquire_wait_seconds_total");
    assert!(acquires >= 10.0, "every use case opened transactions: {acquires}");
    assert!(waited > 0.0 && waited / acquires < 1.0, "a plausible mean wait: {waited} s over {acquires}");
    // The tenancy cache.
    assert!(value(r#"tenantry_cache_misses_total{cache="tenancy"}"#) >= 1.0);
    assert!(value(r#"tenantry_cache_hits_total{cache="tenancy""#) >= 1.0, "repeated reads hit");
    // Webhooks.
    assert!(value("tenantry_webhook_queue_depth") >= 0.0);
    assert!(value("tenantry_webhook_attempt_duration_seconds_count") >= 1.0);
    assert!(value("tenantry_webhook_commit_to_delivery_seconds_count") >= 1.0);
    // The build.
    assert_eq!(value("tenantry_build_info"), 1.0);

    // Every metric the alert rules and the dashboard use is in this scrape.
    let mut used = metric_names(&deploy_file("deploy/prometheus/alerts.yml"));
    used.extend(metric_names(&deploy_file("deploy/grafana/tenantry.json")));
    assert!(used.len() >= 10, "the files name the metrics they use: {used:?}");
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|family| text.contains(&format!("# TYPE {family} histogram")))
                .unwrap_or(name);
            !text.contains(&format!("# TYPE {family} "))
        })
        .collect();
    assert!(missing.is_empty(), "used by the alerts or the dashboard but not exported: {missing:?}");
    app.stop().await;
}

#[test]
fn metric_names_are_read_whole_from_rules_and_dashboards() {
    let names = metric_names(r#"expr: sum(rate(tenantry_http_requests_total{status=~"5.."}[5m])) / tenantry_x_bucket"#);
    assert_eq!(names.into_iter().collect::<Vec<_>>(), vec!["tenantry_http_requests_total", "tenantry_x_bucket"]);
}
