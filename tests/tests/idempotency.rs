//! `idempotency-key` on creating POSTs, over real HTTP.

use futures_util::future::join_all;
use serde_json::{Value, json};
use tenantry_tests::{PASSWORD, TestApp, assert_problem, spawn_app};

async fn post(app: &TestApp, path: &str, body: &Value, access: Option<&str>, key: &str) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).json(body).header("idempotency-key", key);
    if let Some(access) = access {
        request = request.bearer_auth(access);
    }
    request.send().await.expect("sent")
}

async fn org_count(app: &TestApp, access: &str) -> usize {
    let mine: Value = app.get_auth("/api/v1/orgs", access).await.json().await.expect("json");
    mine["items"].as_array().expect("items").len()
}

#[tokio::test]
async fn a_repeated_request_returns_the_first_response_without_doing_the_work_again() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in_user().await;
    let body = json!({"name": "Acme", "slug": "acme-idem"});
    let first = post(&app, "/api/v1/orgs", &body, Some(&access), "key-1").await;
    assert_eq!(first.status(), 201);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.expect("json");
    let second = post(&app, "/api/v1/orgs", &body, Some(&access), "key-1").await;
    assert_eq!(second.status(), 201, "same status");
    assert_eq!(second.headers()["idempotent-replayed"], "true");
    assert_eq!(second.json::<Value>().await.expect("json"), first, "same body");
    assert_eq!(org_count(&app, &access).await, 1, "created once");

    // The key belongs to the caller, not to whoever guesses it.
    let (_, other, _) = app.signed_in_user().await;
    let theirs =
        post(&app, "/api/v1/orgs", &json!({"name": "Other", "slug": "other-idem"}), Some(&other), "key-1").await;
    assert_eq!(theirs.status(), 201);
    assert!(theirs.headers().get("idempotent-replayed").is_none());
    app.stop().await;
}

#[tokio::test]
async fn ten_parallel_requests_with_one_key_create_one_thing() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in_user().await;
    let body = json!({"name": "Parallel", "slug": "parallel-idem"});
    let responses = join_all((0..10).map(|_| post(&app, "/api/v1/orgs", &body, Some(&access), "key-parallel"))).await;
    let mut bodies = Vec::new();
    for response in responses {
        match response.status().as_u16() {
            201 => bodies.push(response.json::<Value>().await.expect("json")),
            409 => {
                let problem = assert_problem(response, 409, "idempotency_in_progress").await;
                assert!(problem["detail"].is_string());
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(!bodies.is_empty());
    assert!(bodies.iter().all(|b| b == &bodies[0]), "every 201 carries the same body");
    // Once the first has finished, a retry replays it.
    let again = post(&app, "/api/v1/orgs", &body, Some(&access), "key-parallel").await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.json::<Value>().await.expect("json"), bodies[0]);
    assert_eq!(org_count(&app, &access).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_key_reused_with_another_body_or_malformed_is_refused() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in_user().await;
    assert_eq!(
        post(&app, "/api/v1/orgs", &json!({"name": "A", "slug": "aaa-idem"}), Some(&access), "k").await.status(),
        201
    );
    let other = post(&app, "/api/v1/orgs", &json!({"name": "B", "slug": "bbb-idem"}), Some(&access), "k").await;
    assert_problem(other, 422, "idempotency_mismatch").await;
    let long = "x".repeat(256);
    let body = assert_problem(
        post(&app, "/api/v1/orgs", &json!({"name": "C", "slug": "ccc-idem"}), Some(&access), &long).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "idempotency-key");
    assert_eq!(org_count(&app, &access).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn failures_are_not_kept_so_a_retry_runs_again() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in_user().await;
    let bad = json!({"name": "", "slug": "retry-idem"});
    assert_problem(post(&app, "/api/v1/orgs", &bad, Some(&access), "retry").await, 422, "validation_failed").await;
    assert_problem(post(&app, "/api/v1/orgs", &bad, Some(&access), "retry").await, 422, "validation_failed").await;
    // Registration is a creating POST of the identity issue: anonymous callers are keyed by address.
    let email = format!("idem-{}@example.com", uuid::Uuid::now_v7().simple());
    let register = json!({"email": email, "password": PASSWORD});
    let first = post(&app, "/api/v1/auth/register", &register, None, "reg-1").await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.expect("json");
    let second = post(&app, "/api/v1/auth/register", &register, None, "reg-1").await;
    assert_eq!(second.status(), 201, "not 409: the retry is recognised");
    assert_eq!(second.json::<Value>().await.expect("json"), first);
    app.stop().await;
}

#[tokio::test]
async fn two_api_keys_never_share_an_idempotency_record() {
    let app = spawn_app().await;
    let (_, owner, _) = app.signed_in_user().await;
    let org = app.create_org(&owner).await;
    let mut keys = Vec::new();
    for _ in 0..2 {
        let created = app
            .post_json(
                &format!("/api/v1/orgs/{org}/api-keys"),
                &json!({"name": "k", "permissions": ["api_keys:manage"]}),
                Some(&owner),
            )
            .await;
        keys.push(created.json::<Value>().await.expect("json")["key"].as_str().expect("key").to_owned());
    }
    let body = json!({"name": "minted", "permissions": []});
    let mut minted = Vec::new();
    for key in &keys {
        let response = app
            .client
            .post(app.url(&format!("/api/v1/orgs/{org}/api-keys")))
            .header("x-api-key", key)
            .header("idempotency-key", "same-key")
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 201);
        assert!(response.headers().get("idempotent-replayed").is_none(), "another key's response must not be replayed");
        minted.push(response.json::<Value>().await.expect("json")["key"].as_str().expect("key").to_owned());
    }
    assert_ne!(minted[0], minted[1]);
    app.stop().await;
}
