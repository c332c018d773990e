//! Plans, quotas and rate limits, from outside: the `ratelimit-*` headers on every response of
//! every route, 429s with `retry-after`, 403 `quota_exceeded` with what was hit, the plan
//! catalog, the usage report, the admin plan route, exact counts under concurrency, two
//! replicas sharing one limit, and Redis going away and coming back.

use std::collections::HashSet;

use reqwest::Response;
use serde_json::{Value, json};
use tenantry_tests::{TestApp, address, assert_problem, spawn_app, spawn_app_on_services_with, spawn_app_with};

fn headers_of(response: &Response) -> Option<(u64, u64, u64)> {
    let number = |name: &str| response.headers().get(name)?.to_str().ok()?.parse::<u64>().ok();
    Some((number("ratelimit-limit")?, number("ratelimit-remaining")?, number("ratelimit-reset")?))
}

async fn set_plan(app: &TestApp, admin: &str, org_id: &str, body: Value) -> Response {
    app.send(
        "PUT",
        &format!("/api/v1/admin/orgs/{org_id}/plan"),
        ("authorization", &format!("Bearer {admin}")),
        Some(body),
    )
    .await
}

async fn audit_actions(app: &TestApp, org_id: &str, access: &str) -> Vec<Value> {
    let page: Value =
        app.get_auth(&format!("/api/v1/orgs/{org_id}/audit-log?limit=100"), access).await.json().await.expect("json");
    page["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn every_response_of_every_api_route_carries_the_rate_limit_headers() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org_id = app.create_org(&owner).await;
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.expect("document");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for (method, operation) in item.as_object().expect("operations") {
            let concrete = path
                .replace("{org_id}", &org_id)
                .replace("{user_id}", &uuid::Uuid::now_v7().to_string())
                .split('/')
                .map(
                    |segment| {
                        if segment.starts_with('{') { uuid::Uuid::now_v7().to_string() } else { segment.to_owned() }
                    },
                )
                .collect::<Vec<_>>()
                .join("/");
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.as_object().is_some_and(|r| !r.is_empty())));
            let mut credentials = vec![None];
            // Signed in, everything but what would end the session or remove the org.
            let destructive = matches!(
                (method.as_str(), path.as_str()),
                ("delete", "/api/v1/orgs/{org_id}") | ("delete", "/api/v1/users/me") | ("post", "/api/v1/auth/logout")
            );
            if secured && !destructive {
                credentials.push(Some(owner.clone()));
            }
            for credential in credentials {
                let mut request =
                    app.client.request(method.to_uppercase().parse().expect("method"), app.url(&concrete));
                if let Some(token) = &credential {
                    request = request.bearer_auth(token);
                }
                if method != "get" && method != "delete" {
                    request = request.json(&json!({}));
                }
                let response = request.send().await.expect("sent");
                let status = response.status().as_u16();
                let (limit, remaining, _) = headers_of(&response).unwrap_or_else(|| {
                    panic!("{method} {path} ({status}, signed in: {}) lacks ratelimit-*", credential.is_some())
                });
                assert!(remaining <= limit, "{method} {path}");
                if status == 429 {
                    assert!(
                        response.headers().get("retry-after").is_some(),
                        "{method} {path}: 429 without retry-after"
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 60, "only {checked} responses checked");
    app.stop().await;
}

#[test]
fn the_document_names_the_headers_on_every_response_and_429_on_every_operation() {
    let doc: Value = serde_json::from_str(&tenantry_server::openapi::render()).expect("json");
    let shared = &doc["components"]["responses"];
    for (path, item) in doc["paths"].as_object().expect("paths") {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        for (method, operation) in item.as_object().expect("operations") {
            let responses = operation["responses"].as_object().expect("responses");
            assert!(responses.contains_key("429"), "{method} {path} does not document 429");
            for (status, response) in responses {
                let response = match response["$ref"].as_str() {
                    Some(reference) => &shared[reference.trim_start_matches("#/components/responses/")],
                    None => response,
                };
                for header in ["ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"] {
                    assert!(response["headers"].get(header).is_some(), "{method} {path} {status} lacks {header}");
                }
            }
        }
    }
}

#[tokio::test]
async fn three_hundred_anonymous_requests_from_one_address_are_limited() {
    // The empty value restores the default policy (the test kit raises it for other suites).
    let app = spawn_app_with(&[("TENANTRY_RATE_LIMIT_ANONYMOUS", "")]).await;
    let mut passed = 0;
    let mut refused = 0;
    for _ in 0..300 {
        let response = app.get("/api/v1/plans").await;
        let (limit, remaining, _) = headers_of(&response).expect("headers on every response");
        assert_eq!(limit, 120, "the default: 120 a minute");
        assert!(remaining < limit);
        if response.status() == 429 {
            let seconds: u64 =
                response.headers()["retry-after"].to_str().expect("ascii").parse().expect("retry-after seconds");
            assert!((1..=60).contains(&seconds), "{seconds}");
            assert_problem(response, 429, "rate_limited").await;
            refused += 1;
        } else {
            assert_eq!(response.status(), 200);
            passed += 1;
        }
    }
    // The burst, plus the few tokens that came back while the loop ran (two a second).
    assert!((120..160).contains(&passed), "{passed} passed");
    assert_eq!(passed + refused, 300);
    app.stop().await;

    // The sign-in lockout's 429 carries the headers too.
    let app = spawn_app_with(&[("TENANTRY_LOGIN_MAX_FAILURES", "2")]).await;
    let email = app.register().await;
    let mut last = None;
    for _ in 0..4 {
        let response =
            app.post_json("/api/v1/auth/login", &json!({"email": email, "password": "wrong password 1"}), None).await;
        assert!(headers_of(&response).is_some(), "login answers carry the headers");
        last = Some(response);
    }
    let locked = last.expect("a response");
    assert!(locked.headers().get("retry-after").is_some());
    assert!(headers_of(&locked).is_some());
    assert_problem(locked, 429, "rate_limited").await;
    app.stop().await;
}

#[tokio::test]
async fn exactly_the_anonymous_burst_passes() {
    let app = spawn_app_with(&[("TENANTRY_RATE_LIMIT_ANONYMOUS", "50/hour")]).await;
    let mut passed = 0;
    for _ in 0..80 {
        if app.get("/api/v1/permissions").await.status() == 200 {
            passed += 1;
        }
    }
    assert_eq!(passed, 50);
    app.stop().await;
}

#[tokio::test]
async fn a_user_is_limited_on_their_own_and_an_org_over_all_its_callers() {
    let app =
        spawn_app_with(&[("TENANTRY_RATE_LIMIT_PRINCIPAL", "5/hour"), ("TENANTRY_RATE_LIMIT_ORG", "1000/hour")]).await;
    let (_, access, _) = app.signed_in_user().await;
    for n in 0..5 {
        let response = app.get_auth("/api/v1/users/me", &access).await;
        assert_eq!(response.status(), 200, "request {n}");
        assert_eq!(headers_of(&response).map(|h| (h.0, h.1)), Some((5, 4 - n)));
    }
    let refused = app.get_auth("/api/v1/users/me", &access).await;
    let wait: u64 = refused.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!(wait >= 600, "one request every 12 minutes: {wait}");
    assert_problem(refused, 429, "rate_limited").await;
    let (_, other, _) = app.signed_in_user().await;
    assert_eq!(app.get_auth("/api/v1/users/me", &other).await.status(), 200, "another user has their own bucket");
    app.stop().await;

    let app = spawn_app_with(&[("TENANTRY_RATE_LIMIT_ORG", "4/hour")]).await;
    let (_, owner) = app.user().await;
    let (member_id, member) = app.user().await;
    let org_id = app.create_org(&owner).await;
    app.add_member(&org_id, &member_id, "viewer").await;
    let path = format!("/api/v1/orgs/{org_id}");
    let mut passed = 0;
    for caller in [&owner, &member, &owner, &member, &owner, &member] {
        let response = app.get_auth(&path, caller).await;
        if response.status() == 200 {
            passed += 1;
        } else {
            assert_problem(response, 429, "rate_limited").await;
        }
    }
    assert_eq!(passed, 4, "the org's bucket is shared by its callers");
    // An outsider's 404s do not drain the organization's bucket.
    let (_, outsider) = app.user().await;
    let refused = app.get_auth(&path, &outsider).await;
    assert_problem(refused, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn the_plan_catalog_lists_every_plan_with_its_limits() {
    let app = spawn_app().await;
    let response = app.get("/api/v1/plans").await;
    assert_eq!(response.status(), 200);
    let catalog: Value = response.json().await.expect("json");
    let names: Vec<&str> =
        catalog["plans"].as_array().expect("plans").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["free", "pro", "enterprise"]);
    assert_eq!(catalog["default_plan"], "free");
    let free = &catalog["plans"][0]["limits"];
    for quota in ["members", "storage_bytes", "api_calls", "file_uploads", "webhook_endpoints"] {
        assert!(free[quota].is_u64(), "free limits {quota}: {free}");
        assert!(catalog["plans"][2]["limits"][quota].is_null(), "enterprise is unlimited");
    }
    app.stop().await;
}

#[tokio::test]
async fn plans_come_from_configuration() {
    let plans = r#"[{"name":"starter","limits":{"members":3,"api_calls":100}},{"name":"scale","limits":{}}]"#;
    let app = spawn_app_with(&[("TENANTRY_PLANS", plans), ("TENANTRY_DEFAULT_PLAN", "starter")]).await;
    let catalog: Value = app.get("/api/v1/plans").await.json().await.expect("json");
    assert_eq!(catalog["default_plan"], "starter");
    assert_eq!(catalog["plans"][0]["limits"]["members"], 3);
    assert!(catalog["plans"][0]["limits"]["storage_bytes"].is_null());
    let (_, owner) = app.user().await;
    let org_id = app.create_org(&owner).await;
    let usage: Value = app.get_auth(&format!("/api/v1/orgs/{org_id}/usage"), &owner).await.json().await.expect("json");
    assert_eq!(usage["plan"], "starter");
    assert_eq!(usage["quotas"]["members"], json!({"used": 1, "limit": 3}));
    app.stop().await;
}

#[tokio::test]
async fn usage_reports_the_plan_period_and_every_quota() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org_id = app.create_org(&owner).await;
    let path = format!("/api/v1/orgs/{org_id}/usage");
    let response = app.get_auth(&path, &owner).await;
    assert_eq!(response.status(), 200);
    let usage: Value = response.json().await.expect("json");
    assert_eq!(usage["plan"], "free");
    let start = chrono::DateTime::parse_from_rfc3339(usage["period_start"].as_str().expect("start")).expect("date");
    let end = chrono::DateTime::parse_from_rfc3339(usage["period_end"].as_str().expect("end")).expect("date");
    assert!(end > start && (end - start).num_days() >= 28 && (end - start).num_days() <= 31);
    let quotas = usage["quotas"].as_object().expect("quotas");
    let names: HashSet<&str> = quotas.keys().map(String::as_str).collect();
    assert_eq!(names, HashSet::from(["members", "storage_bytes", "api_calls", "file_uploads", "webhook_endpoints"]));
    for (name, quota) in quotas {
        assert!(quota["used"].is_u64() && (quota["limit"].is_u64() || quota["limit"].is_null()), "{name}: {quota}");
    }
    assert_eq!(usage["quotas"]["members"]["used"], 1);
    // This very request was an API call of the org.
    assert!(usage["quotas"]["api_calls"]["used"].as_u64().expect("used") >= 1);
    let (_, outsider) = app.user().await;
    assert_problem(app.get_auth(&path, &outsider).await, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn a_platform_admin_sets_plans_and_overrides_and_it_is_audited() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, owner) = app.user().await;
    let org_id = app.create_org(&owner).await;
    assert_problem(set_plan(&app, &owner, &org_id, json!({"plan": "pro"})).await, 403, "forbidden").await;
    let unknown = set_plan(&app, &admin, &org_id, json!({"plan": "platinum"})).await;
    let body = assert_problem(unknown, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "plan");
    let bad = set_plan(
        &app,
        &admin,
        &org_id,
        json!({"plan": "pro", "overrides": {"members": -1, "api_calls": "x", "seats": 3}}),
    )
    .await;
    let body = assert_problem(bad, 422, "validation_failed").await;
    let fields: HashSet<&str> =
        body["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, HashSet::from(["overrides.members", "overrides.api_calls", "overrides.seats"]));
    let missing = set_plan(&app, &admin, &uuid::Uuid::now_v7().to_string(), json!({"plan": "pro"})).await;
    assert_problem(missing, 404, "not_found").await;

    let changed = set_plan(&app, &admin, &org_id, json!({"plan": "pro", "overrides": {"members": 7}})).await;
    assert_eq!(changed.status(), 200);
    let body: Value = changed.json().await.expect("json");
    assert_eq!((body["plan"].as_str(), body["limits"]["members"].as_u64()), (Some("pro"), Some(7)));
    assert_eq!(body["overrides"], json!({"members": 7}));
    let usage: Value = app.get_auth(&format!("/api/v1/orgs/{org_id}/usage"), &owner).await.json().await.expect("json");
    assert_eq!((usage["plan"].as_str(), usage["quotas"]["members"]["limit"].as_u64()), (Some("pro"), Some(7)));
    // `null` removes the override: the plan's limit applies again; unnamed overrides stay.
    let body: Value =
        set_plan(&app, &admin, &org_id, json!({"plan": "pro", "overrides": {"members": null, "api_calls": 50}}))
            .await
            .json()
            .await
            .expect("json");
    assert_eq!(body["overrides"], json!({"api_calls": 50}));
    assert_eq!(body["limits"]["members"], 1000);
    let entries = audit_actions(&app, &org_id, &owner).await;
    let changes: Vec<&Value> = entries.iter().filter(|e| e["action"] == "plan.changed").collect();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0]["actor_type"], "user");
    app.stop().await;
}

#[tokio::test]
async fn the_members_quota_counts_pending_invitations_and_refuses_with_what_was_hit() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, owner) = app.user().await;
    let org_id = app.create_org(&owner).await;
    assert_eq!(
        set_plan(&app, &admin, &org_id, json!({"plan": "free", "overrides": {"members": 3}})).await.status(),
        200
    );
    let invite = |email: String| {
        let (app, owner, org_id) = (&app, owner.clone(), org_id.clone());
        async move {
            app.post_json(
                &format!("/api/v1/orgs/{org_id}/invitations"),
                &json!({"email": email, "role": "viewer"}),
                Some(&owner),
            )
            .await
        }
    };
    let first = address("first");
    assert_eq!(invite(first.clone()).await.status(), 201);
    assert_eq!(invite(address("second")).await.status(), 201);
    // Owner + two pending = 3 seats: the next invitation is refused, and nothing is kept.
    let refused = invite(address("third")).await;
    let body = assert_problem(refused, 403, "quota_exceeded").await;
    assert_eq!(
        (body["quota"].as_str(), body["limit"].as_u64(), body["used"].as_u64()),
        (Some("members"), Some(3), Some(3))
    );
    assert!(body.get("period_end").is_some(), "{body}");
    let pending: Value =
        app.get_auth(&format!("/api/v1/orgs/{org_id}/invitations"), &owner).await.json().await.expect("json");
    assert_eq!(pending["items"].as_array().map(Vec::len), Some(2));
    // Re-inviting a pending address replaces its invitation: no new seat.
    assert_eq!(invite(first).await.status(), 201);
    let entries = audit_actions(&app, &org_id, &owner).await;
    let count = |action: &str| entries.iter().filter(|e| e["action"] == action).count();
    assert_eq!(count("quota.exceeded"), 1);
    let reached: Vec<u64> = entries
        .iter()
        .filter(|e| e["action"] == "quota.threshold_reached")
        .filter_map(|e| e["data"]["percent"].as_u64())
        .collect();
    assert!(reached.contains(&80) && reached.contains(&100), "{reached:?}");
    app.stop().await;
}

#[tokio::test]
async fn accepting_an_invitation_needs_a_free_seat() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, owner) = app.user().await;
    let org_id = app.create_org(&owner).await;
    let email = address("joiner");
    let joiner = app.verified_user(&email).await;
    let sent = app
        .post_json(
            &format!("/api/v1/orgs/{org_id}/invitations"),
            &json!({"email": email, "role": "viewer"}),
            Some(&owner),
        )
        .await;
    assert_eq!(sent.status(), 201);
    let token = app.token_from_mail(&email, "accept-invitation").await;
    // The org is full of members now (the pending invitation does not count at acceptance).
    assert_eq!(
        set_plan(&app, &admin, &org_id, json!({"plan": "free", "overrides": {"members": 1}})).await.status(),
        200
    );
    let refused = app.post_json("/api/v1/invitations/accept", &json!({"token": token}), Some(&joiner)).await;
    let body = assert_problem(refused, 403, "quota_exceeded").await;
    assert_eq!((body["quota"].as_str(), body["used"].as_u64()), (Some("members"), Some(1)));
    assert_eq!(
        set_plan(&app, &admin, &org_id, json!({"plan": "free", "overrides": {"members": 2}})).await.status(),
        200
    );
    let accepted = app.post_json("/api/v1/invitations/accept", &json!({"token": token}), Some(&joiner)).await;
    assert_eq!(accepted.status(), 200, "{}", accepted.text().await.unwrap_or_default());
    app.stop().await;
}

#[tokio::test]
async fn api_calls_stop_at_the_limit_and_announce_80_and_100_percent_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, owner) = app.user().await;
    let org_id = app.create_org(&owner).await; // creating is not an org-scoped call
    assert_eq!(
        set_plan(&app, &admin, &org_id, json!({"plan": "free", "overrides": {"api_calls": 10}})).await.status(),
        200
    );
    let path = format!("/api/v1/orgs/{org_id}");
    let mut passed = 0;
    let mut refusal = None;
    for _ in 0..15 {
        let response = app.get_auth(&path, &owner).await;
        if response.status() == 200 {
            passed += 1;
        } else {
            refusal = Some(response);
        }
    }
    assert_eq!(passed, 10);
    let body = assert_problem(refusal.expect("refused"), 403, "quota_exceeded").await;
    assert_eq!(
        (body["quota"].as_str(), body["limit"].as_u64(), body["used"].as_u64()),
        (Some("api_calls"), Some(10), Some(10))
    );
    assert!(body["period_end"].as_str().is_some_and(|end| chrono::DateTime::parse_from_rfc3339(end).is_ok()), "{body}");
    // Lift the limit (admin routes are not org calls) to read the log.
    assert_eq!(
        set_plan(&app, &admin, &org_id, json!({"plan": "free", "overrides": {"api_calls": null}})).await.status(),
        200
    );
    let entries = audit_actions(&app, &org_id, &owner).await;
    let percents: Vec<u64> = entries
        .iter()
        .filter(|e| e["action"] == "quota.threshold_reached")
        .filter_map(|e| e["data"]["percent"].as_u64())
        .collect();
    assert_eq!(percents.len(), 2, "{entries:?}");
    assert!(percents.contains(&80) && percents.contains(&100));
    assert_eq!(entries.iter().filter(|e| e["action"] == "quota.exceeded").count(), 1, "announced once a period");
    app.stop().await;
}

#[tokio::test]
async fn fifty_parallel_invitations_against_five_free_seats_let_exactly_five_through() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (_, owner) = app.user().await;
    let org_id = app.create_org(&owner).await;
    assert_eq!(
        set_plan(&app, &admin, &org_id, json!({"plan": "free", "overrides": {"members": 6}})).await.status(),
        200
    );
    let path = format!("/api/v1/orgs/{org_id}/invitations");
    let sends = (0..50).map(|n| {
        let (app, owner, path) = (&app, owner.clone(), path.clone());
        async move {
            app.post_json(&path, &json!({"email": address(&format!("p{n}")), "role": "viewer"}), Some(&owner))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(sends).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 403).count(), 45, "{statuses:?}");
    app.stop().await;
}

#[tokio::test]
async fn two_replicas_share_one_rate_limit_and_one_members_quota() {
    let Some(app) = spawn_app_on_services_with(&[("TENANTRY_RATE_LIMIT_PRINCIPAL", "20/hour")]).await else {
        return;
    };
    let replica = app.replica().await;
    let (_, access, _) = app.signed_in_user().await;
    let mut passed = 0;
    for n in 0..40 {
        let server = if n % 2 == 0 { &app } else { &replica };
        if server.get_auth("/api/v1/users/me", &access).await.status() == 200 {
            passed += 1;
        }
    }
    assert_eq!(passed, 20, "20 in all across both replicas, not 40");

    let admin = app.admin().await;
    let (_, owner) = app.user().await;
    let org_id = app.create_org(&owner).await;
    assert_eq!(
        set_plan(&app, &admin, &org_id, json!({"plan": "free", "overrides": {"members": 4}})).await.status(),
        200
    );
    let path = format!("/api/v1/orgs/{org_id}/invitations");
    let sends = (0..20).map(|n| {
        let (server, owner, path) = (if n % 2 == 0 { &app } else { &replica }, owner.clone(), path.clone());
        async move {
            server
                .post_json(&path, &json!({"email": address(&format!("r{n}")), "role": "viewer"}), Some(&owner))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(sends).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 3, "{statuses:?}");
    replica.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn with_redis_gone_anonymous_routes_fail_closed_and_everything_recovers_without_a_restart() {
    let Some(redis) = std::env::var("TENANTRY_TEST_REDIS_URL").ok() else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI needs TENANTRY_TEST_REDIS_URL");
        return;
    };
    let target = redis.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let relay = tenantry_tests::Relay::start(&target).await;
    let url = format!("redis://{}", relay.address);
    let Some(app) =
        spawn_app_on_services_with(&[("TENANTRY_REDIS_URL", &url), ("TENANTRY_RATE_LIMIT_ANONYMOUS", "1000/min")])
            .await
    else {
        return;
    };
    assert_eq!(app.get("/api/v1/plans").await.status(), 200);
    relay.cut();
    let down = app.get("/api/v1/plans").await;
    assert_problem(down, 503, "service_unavailable").await;
    relay.restore();
    let mut recovered = false;
    for _ in 0..50 {
        let response = app.get("/api/v1/plans").await;
        if response.status() == 200 {
            assert!(headers_of(&response).is_some());
            recovered = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(recovered, "the server should recover once Redis is back");
    app.stop().await;
}

#[tokio::test]
async fn an_encoded_path_meets_the_same_limits_and_bad_credentials_are_throttled() {
    let app = spawn_app_with(&[("TENANTRY_RATE_LIMIT_ANONYMOUS", "3/hour")]).await;
    // `/%61pi/v1/plans` is routed to `/api/v1/plans`: it must be charged like it.
    let mut statuses = Vec::new();
    for path in ["/api/v1/plans", "/%61pi/v1/plans", "/api/v1/%70lans", "/%61pi/v1/plans"] {
        let response = app.get(path).await;
        assert!(headers_of(&response).is_some(), "{path} carries the headers");
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429], "one bucket for every spelling");
    app.stop().await;

    // Guessing tokens: the address pays for each 401, and is refused once its bucket is empty.
    let app = spawn_app_with(&[("TENANTRY_RATE_LIMIT_ANONYMOUS", "3/hour")]).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.get_auth("/api/v1/users/me", "not-a-token").await.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    app.stop().await;
}
