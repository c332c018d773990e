//! Webhooks from outside, against a real local receiver: endpoints, the event catalog, signed
//! deliveries (checked by an independent HMAC implementation here), retries, `Retry-After`,
//! the dead state and a manual retry, `410 Gone`, secret rotation, the SSRF guard and the
//! endpoint quota.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use tenantry_testkit::receiver::{Received, Receiver, Reply};
use tenantry_tests::{TestApp, address, assert_problem, spawn_app_with};

/// How long a test waits for deliveries that must come (retries included); a guard against
/// hanging, not a speed check.
const PATIENCE: Duration = Duration::from_secs(15);

/// An independent Standard Webhooks verifier: `true` when one of the header's signatures is
/// the HMAC-SHA256 of `id.timestamp.body` under `secret`.
fn verifies(secret: &str, received: &Received) -> bool {
    let engine = base64::engine::general_purpose::STANDARD;
    let Some(key) = secret.strip_prefix("whsec_").and_then(|k| engine.decode(k).ok()) else { return false };
    let (Some(id), Some(timestamp), Some(signatures)) =
        (received.header("webhook-id"), received.header("webhook-timestamp"), received.header("webhook-signature"))
    else {
        return false;
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
    mac.update(format!("{id}.{timestamp}.{}", received.body_text()).as_bytes());
    let expected = format!("v1,{}", engine.encode(mac.finalize().into_bytes()));
    signatures.split(' ').any(|signature| signature == expected)
}

/// A valid W3C `traceparent`: version 00, a non-zero 32-hex trace id and 16-hex parent id,
/// 2-hex flags.
fn is_traceparent(value: &str) -> bool {
    let hex = |part: &str, len: usize| {
        part.len() == len && part.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    match value.split('-').collect::<Vec<_>>().as_slice() {
        [version, trace, parent, flags] => {
            *version == "00"
                && hex(trace, 32)
                && hex(parent, 16)
                && hex(flags, 2)
                && trace.bytes().any(|b| b != b'0')
                && parent.bytes().any(|b| b != b'0')
        }
        _ => false,
    }
}

#[test]
fn the_traceparent_check_refuses_what_is_not_one() {
    assert!(is_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    assert!(!is_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));
    assert!(!is_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));
    assert!(!is_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-01"));
}

async fn app_with_schedule(schedule: &str) -> TestApp {
    spawn_app_with(&[("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true"), ("TENANTRY_WEBHOOK_RETRY_SCHEDULE", schedule)]).await
}

async fn endpoint(app: &TestApp, org: &str, owner: &str, url: &str, events: Value) -> Value {
    let response = app
        .post_json(&format!("/api/v1/orgs/{org}/webhooks"), &json!({"url": url, "events": events}), Some(owner))
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap_or_default());
    response.json().await.expect("json")
}

async fn deliveries(app: &TestApp, org: &str, owner: &str, hook: &str) -> Vec<Value> {
    let page: Value = app
        .get_auth(&format!("/api/v1/orgs/{org}/webhooks/{hook}/deliveries"), owner)
        .await
        .json()
        .await
        .expect("json");
    page["items"].as_array().expect("items").clone()
}

async fn wait_status(app: &TestApp, org: &str, owner: &str, hook: &str, status: &str) -> Value {
    for _ in 0..150 {
        if let Some(found) = deliveries(app, org, owner, hook).await.into_iter().find(|d| d["status"] == status) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no {status} delivery: {:?}", deliveries(app, org, owner, hook).await);
}

#[tokio::test]
async fn the_event_catalog_lists_every_type_with_an_example() {
    let app = spawn_app_with(&[]).await;
    let catalog: Value = app.get("/api/v1/webhook-event-types").await.json().await.expect("json");
    let names: HashSet<&str> =
        catalog["event_types"].as_array().expect("types").iter().filter_map(|t| t["name"].as_str()).collect();
    for wanted in [
        "org.updated",
        "member.added",
        "member.removed",
        "member.role_changed",
        "invitation.created",
        "invitation.accepted",
        "api_key.created",
        "api_key.revoked",
        "file.uploaded",
        "file.deleted",
        "quota.threshold_reached",
        "quota.exceeded",
        "webhook.test",
    ] {
        assert!(names.contains(wanted), "{wanted} missing");
    }
    assert!(catalog["event_types"].as_array().expect("types").iter().all(|t| t["example"].is_object()));
    app.stop().await;
}

#[tokio::test]
async fn endpoints_are_managed_with_their_secret_shown_only_once() {
    let app = app_with_schedule("1s").await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let created = endpoint(&app, &org, &owner, "https://hooks.example.com/in", json!(["member.added"])).await;
    let secret = created["secret"].as_str().expect("secret");
    let key = secret.strip_prefix("whsec_").expect("whsec_ prefix");
    let bytes = base64::engine::general_purpose::STANDARD.decode(key).expect("base64");
    assert!((24..=64).contains(&bytes.len()));
    assert_eq!((created["enabled"].as_bool(), created["events"].clone()), (Some(true), json!(["member.added"])));
    let id = created["id"].as_str().expect("id");
    let path = format!("/api/v1/orgs/{org}/webhooks/{id}");
    let fetched: Value = app.get_auth(&path, &owner).await.json().await.expect("json");
    assert!(fetched.get("secret").is_none(), "no secret after creation");
    let listed: Value = app.get_auth(&format!("/api/v1/orgs/{org}/webhooks"), &owner).await.json().await.expect("json");
    assert!(listed["items"][0].get("secret").is_none());
    let patched = app
        .send(
            "PATCH",
            &path,
            ("authorization", &format!("Bearer {owner}")),
            Some(json!({"enabled": false, "description": "x"})),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().await.expect("json");
    assert_eq!((patched["enabled"].as_bool(), patched["description"].as_str()), (Some(false), Some("x")));
    let bad = app
        .post_json(
            &format!("/api/v1/orgs/{org}/webhooks"),
            &json!({"url": "ftp://x", "events": ["no.such"]}),
            Some(&owner),
        )
        .await;
    let body = assert_problem(bad, 422, "validation_failed").await;
    let fields: HashSet<&str> =
        body["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    assert_eq!(fields, HashSet::from(["url", "events"]));
    let (member_id, member) = app.user().await;
    app.add_member(&org, &member_id, "member").await;
    assert_problem(app.get_auth(&path, &member).await, 403, "forbidden").await;
    let deleted = app.send("DELETE", &path, ("authorization", &format!("Bearer {owner}")), None).await;
    assert_eq!(deleted.status(), 204);
    assert_problem(app.get_auth(&path, &owner).await, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn events_are_delivered_signed_and_a_test_reaches_only_its_endpoint() {
    let app = app_with_schedule("1s").await;
    let receiver = Receiver::start([Reply::status(204)]).await;
    let other = Receiver::start([Reply::status(204)]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let hook = endpoint(&app, &org, &owner, &receiver.url("/hook"), json!(["invitation.created"])).await;
    let secret = hook["secret"].as_str().expect("secret").to_owned();
    let other_hook = endpoint(&app, &org, &owner, &other.url("/hook"), json!(["member.removed"])).await;
    // A real change: its event was committed with it, and is delivered.
    let email = address("invitee");
    let invited = app
        .post_json(&format!("/api/v1/orgs/{org}/invitations"), &json!({"email": email, "role": "viewer"}), Some(&owner))
        .await;
    assert_eq!(invited.status(), 201);
    let got = receiver.wait_for(1, PATIENCE).await;
    assert!(verifies(&secret, &got[0]), "signature: {got:?}");
    let body: Value = serde_json::from_str(&got[0].body_text()).expect("json body");
    assert_eq!(body["type"], "invitation.created");
    assert_eq!(body["data"]["email"], email.as_str());
    assert!(body["timestamp"].is_string());
    let stamp: i64 = got[0].header("webhook-timestamp").expect("timestamp").parse().expect("unix seconds");
    assert!((chrono::Utc::now().timestamp() - stamp).abs() < 60);
    // The request names the attempt's trace (W3C trace context), even with export off and the
    // log filter at `warn`, so a receiver can quote it and our logs find it.
    let traceparent = got[0].header("traceparent").expect("a traceparent header").to_owned();
    assert!(is_traceparent(&traceparent), "{traceparent}");
    // A test event goes to its endpoint only.
    let hook_id = hook["id"].as_str().expect("id");
    let test = app.post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/test"), &json!({}), Some(&owner)).await;
    assert_eq!(test.status(), 202);
    let got = receiver.wait_for(2, PATIENCE).await;
    let body: Value = serde_json::from_str(&got[1].body_text()).expect("json");
    assert_eq!(body["type"], "webhook.test");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(other.received().is_empty(), "the other endpoint subscribed to nothing that happened");
    let delivered = wait_status(&app, &org, &owner, hook_id, "succeeded").await;
    assert_eq!(delivered["attempts"], 1);
    let _ = other_hook;
    app.stop().await;
}

#[tokio::test]
async fn failures_are_retried_and_retry_after_is_honoured() {
    let app = app_with_schedule("1s,1s,1s").await;
    let receiver =
        Receiver::start([Reply::status(500), Reply::status(503).header("retry-after", "3"), Reply::status(200)]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let hook = endpoint(&app, &org, &owner, &receiver.url("/hook"), json!([])).await;
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    let test = app.post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/test"), &json!({}), Some(&owner)).await;
    let delivery_id = test.json::<Value>().await.expect("json")["delivery_id"].as_str().expect("id").to_owned();
    let got = receiver.wait_for(3, PATIENCE).await;
    let ids: HashSet<&str> = got.iter().filter_map(|r| r.header("webhook-id")).collect();
    assert_eq!(ids.len(), 1, "every attempt carries the same webhook-id");
    wait_status(&app, &org, &owner, &hook_id, "succeeded").await;
    let detail: Value = app
        .get_auth(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/deliveries/{delivery_id}"), &owner)
        .await
        .json()
        .await
        .expect("json");
    let attempts = detail["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3);
    let statuses: Vec<u64> = attempts.iter().filter_map(|a| a["response_status"].as_u64()).collect();
    assert_eq!(statuses, [500, 503, 200]);
    let started =
        |i: usize| chrono::DateTime::parse_from_rfc3339(attempts[i]["started_at"].as_str().expect("t")).expect("date");
    assert!((started(2) - started(1)).num_milliseconds() >= 2900, "Retry-After: 3 was honoured");
    assert!(attempts[0].get("latency_ms").is_some() && attempts[0].get("error").is_some());
    app.stop().await;
}

#[tokio::test]
async fn a_delivery_dies_after_the_schedule_and_can_be_retried_by_hand() {
    let app = app_with_schedule("1s").await;
    let receiver = Receiver::start([Reply::status(500)]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let hook = endpoint(&app, &org, &owner, &receiver.url("/hook"), json!([])).await;
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    app.post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/test"), &json!({}), Some(&owner)).await;
    let dead = wait_status(&app, &org, &owner, &hook_id, "dead").await;
    assert_eq!(dead["attempts"], 2, "the first attempt and one retry");
    receiver.answer_from_now_on("", vec![Reply::status(200)]);
    let id = dead["id"].as_str().expect("id");
    let retry = app
        .post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/deliveries/{id}/retry"), &json!({}), Some(&owner))
        .await;
    assert_eq!(retry.status(), 202);
    let done = wait_status(&app, &org, &owner, &hook_id, "succeeded").await;
    assert_eq!(done["attempts"], 3);
    let again = app
        .post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/deliveries/{id}/retry"), &json!({}), Some(&owner))
        .await;
    assert_problem(again, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn gone_disables_the_endpoint_at_once() {
    let app = app_with_schedule("1s,1s,1s").await;
    let receiver = Receiver::start([Reply::status(410)]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let hook = endpoint(&app, &org, &owner, &receiver.url("/hook"), json!([])).await;
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    app.post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/test"), &json!({}), Some(&owner)).await;
    let dead = wait_status(&app, &org, &owner, &hook_id, "dead").await;
    assert_eq!(dead["attempts"], 1);
    let fetched: Value =
        app.get_auth(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}"), &owner).await.json().await.expect("json");
    assert_eq!((fetched["enabled"].as_bool(), fetched["disabled_reason"].as_str()), (Some(false), Some("gone")));
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_signs_alongside_the_new_one() {
    let app = app_with_schedule("1s").await;
    let receiver = Receiver::start([Reply::status(200)]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let hook = endpoint(&app, &org, &owner, &receiver.url("/hook"), json!([])).await;
    let (hook_id, old) = (hook["id"].as_str().expect("id").to_owned(), hook["secret"].as_str().expect("s").to_owned());
    let rotated =
        app.post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/rotate-secret"), &json!({}), Some(&owner)).await;
    assert_eq!(rotated.status(), 200);
    let new = rotated.json::<Value>().await.expect("json")["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new, old);
    app.post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/test"), &json!({}), Some(&owner)).await;
    let got = receiver.wait_for(1, PATIENCE).await;
    assert_eq!(got[0].header("webhook-signature").expect("signature").split(' ').count(), 2);
    assert!(verifies(&new, &got[0]) && verifies(&old, &got[0]), "both secrets verify during the grace period");
    app.stop().await;
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let app = spawn_app_with(&[("TENANTRY_WEBHOOK_RETRY_SCHEDULE", "1s")]).await;
    let receiver = Receiver::start([Reply::status(200)]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    for url in [
        "http://10.0.0.1/",
        "http://127.0.0.1:9/",
        "http://[::1]/",
        "http://169.254.169.254/latest",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://100.64.0.1/",
    ] {
        let refused = app
            .post_json(&format!("/api/v1/orgs/{org}/webhooks"), &json!({"url": url, "events": []}), Some(&owner))
            .await;
        let body = assert_problem(refused, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "url", "{url}");
    }
    // A name that resolves to loopback passes creation and is refused when sending.
    let port = receiver.addr().port().to_string();
    let hook = endpoint(&app, &org, &owner, &format!("http://localhost:{port}/hook"), json!([])).await;
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    app.post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/test"), &json!({}), Some(&owner)).await;
    let failed = wait_status(&app, &org, &owner, &hook_id, "dead").await;
    let detail: Value = app
        .get_auth(
            &format!("/api/v1/orgs/{org}/webhooks/{hook_id}/deliveries/{}", failed["id"].as_str().expect("id")),
            &owner,
        )
        .await
        .json()
        .await
        .expect("json");
    assert!(detail["attempts"][0]["error"].as_str().is_some_and(|e| e.contains("refused")), "{detail}");
    assert!(receiver.received().is_empty(), "nothing reached the loopback receiver");
    app.stop().await;
}

#[tokio::test]
async fn endpoints_count_against_their_quota() {
    let app = app_with_schedule("1s").await;
    let admin = app.admin().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let plan = app
        .send(
            "PUT",
            &format!("/api/v1/admin/orgs/{org}/plan"),
            ("authorization", &format!("Bearer {admin}")),
            Some(json!({"plan": "free", "overrides": {"webhook_endpoints": 1}})),
        )
        .await;
    assert_eq!(plan.status(), 200);
    let first = endpoint(&app, &org, &owner, "https://a.example.com/", json!([])).await;
    let refused = app
        .post_json(
            &format!("/api/v1/orgs/{org}/webhooks"),
            &json!({"url": "https://b.example.com/", "events": []}),
            Some(&owner),
        )
        .await;
    let body = assert_problem(refused, 403, "quota_exceeded").await;
    assert_eq!((body["quota"].as_str(), body["limit"].as_u64()), (Some("webhook_endpoints"), Some(1)));
    let usage: Value = app.get_auth(&format!("/api/v1/orgs/{org}/usage"), &owner).await.json().await.expect("json");
    assert_eq!(usage["quotas"]["webhook_endpoints"], json!({"used": 1, "limit": 1}));
    let id = first["id"].as_str().expect("id");
    let deleted = app
        .send(
            "DELETE",
            &format!("/api/v1/orgs/{org}/webhooks/{id}"),
            ("authorization", &format!("Bearer {owner}")),
            None,
        )
        .await;
    assert_eq!(deleted.status(), 204);
    endpoint(&app, &org, &owner, "https://b.example.com/", json!([])).await;
    app.stop().await;
}

#[tokio::test]
async fn an_endpoint_that_hangs_does_not_delay_another_orgs_deliveries() {
    let app = spawn_app_with(&[
        ("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("TENANTRY_WEBHOOK_RETRY_SCHEDULE", "1s"),
        ("TENANTRY_WEBHOOK_TIMEOUT_SECS", "5"),
    ])
    .await;
    // Reads each request and never answers.
    let hang = Receiver::start([Reply::silent()]).await;
    let hang_url = hang.url("/slow");
    let fast = Receiver::start([Reply::status(204)]).await;
    let (_, slow_owner) = app.user().await;
    let slow_org = app.create_org(&slow_owner).await;
    let slow = endpoint(&app, &slow_org, &slow_owner, &hang_url, json!([])).await;
    let slow_id = slow["id"].as_str().expect("id").to_owned();
    for _ in 0..30 {
        app.post_json(&format!("/api/v1/orgs/{slow_org}/webhooks/{slow_id}/test"), &json!({}), Some(&slow_owner)).await;
    }
    // The endpoint's whole cap of attempts (16) is in flight before the other org commits.
    hang.wait_until(PATIENCE, "16 open requests", |got| got.iter().filter(|r| r.is_open()).count() >= 16).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let hook = endpoint(&app, &org, &owner, &fast.url("/hook"), json!([])).await;
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    let sent = std::time::Instant::now();
    app.post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/test"), &json!({}), Some(&owner)).await;
    fast.wait_for(1, PATIENCE).await;
    let waited = sent.elapsed();
    assert!(waited < Duration::from_secs(2), "another org waited {waited:?} behind an endpoint that hangs for 5 s");
    app.stop().await;
}

async fn get_endpoint(app: &TestApp, org: &str, owner: &str, hook: &str) -> Value {
    app.get_auth(&format!("/api/v1/orgs/{org}/webhooks/{hook}"), owner).await.json().await.expect("json")
}

async fn actions(app: &TestApp, org: &str, owner: &str, action: &str) -> Vec<Value> {
    let page: Value =
        app.get_auth(&format!("/api/v1/orgs/{org}/audit-log?action={action}"), owner).await.json().await.expect("json");
    page["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn an_endpoint_failing_for_the_whole_period_is_disabled_and_its_owner_mailed() {
    let app = spawn_app_with(&[
        ("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true"),
        ("TENANTRY_WEBHOOK_RETRY_SCHEDULE", "1s,1s,1s,1s,1s,1s,1s,1s"),
        ("TENANTRY_WEBHOOK_DISABLE_AFTER", "2s"),
    ])
    .await;
    let receiver = Receiver::start([Reply::status(500)]).await;
    let (owner_email, owner, _) = app.signed_in_user().await;
    let org = app.create_org(&owner).await;
    let hook = endpoint(&app, &org, &owner, &receiver.url("/hook"), json!([])).await;
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    assert_eq!(hook["failing_since"], Value::Null, "a new endpoint is not failing");
    app.post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/test"), &json!({}), Some(&owner)).await;
    let dead = wait_status(&app, &org, &owner, &hook_id, "dead").await;
    let fetched = get_endpoint(&app, &org, &owner, &hook_id).await;
    assert_eq!(
        (fetched["enabled"].as_bool(), fetched["disabled_reason"].as_str()),
        (Some(false), Some("failing")),
        "{fetched}"
    );
    assert!(fetched["failing_since"].is_string(), "{fetched}");
    let attempts = dead["attempts"].as_u64().expect("attempts");
    assert!((3..=4).contains(&attempts), "disabled at the first failure 2 s after the first: {attempts} attempts");
    let entries = actions(&app, &org, &owner, "webhook.disabled").await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["data"]["reason"], "failing");
    let mails = app.mails().await;
    let told: Vec<&String> = mails.iter().filter(|m| m.contains("A webhook endpoint was disabled")).collect();
    assert_eq!(told.len(), 1, "the owner is told once");
    assert!(told[0].contains(&format!("To: {owner_email}")) && told[0].contains(&receiver.url("/hook")));

    // Nothing reaches a disabled endpoint: a test or a retry is a conflict that says why.
    let test = app.post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/test"), &json!({}), Some(&owner)).await;
    let body = assert_problem(test, 409, "conflict").await;
    assert_eq!(body["reason"], "endpoint_disabled");
    let id = dead["id"].as_str().expect("id");
    let retry = app
        .post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/deliveries/{id}/retry"), &json!({}), Some(&owner))
        .await;
    assert_eq!(assert_problem(retry, 409, "conflict").await["reason"], "endpoint_disabled");

    // Enabled again by its owner: a fresh start, and the retry goes through.
    let enabled = app
        .send(
            "PATCH",
            &format!("/api/v1/orgs/{org}/webhooks/{hook_id}"),
            ("authorization", &format!("Bearer {owner}")),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(enabled.status(), 200);
    let enabled: Value = enabled.json().await.expect("json");
    assert_eq!((&enabled["disabled_reason"], &enabled["failing_since"]), (&Value::Null, &Value::Null), "{enabled}");
    receiver.answer_from_now_on("", vec![Reply::status(200)]);
    let retry = app
        .post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/deliveries/{id}/retry"), &json!({}), Some(&owner))
        .await;
    assert_eq!(retry.status(), 202);
    wait_status(&app, &org, &owner, &hook_id, "succeeded").await;
    app.stop().await;
}

#[tokio::test]
async fn a_success_after_failures_records_a_recovery() {
    let app = app_with_schedule("1s").await;
    let receiver = Receiver::start([Reply::status(500), Reply::status(200)]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let hook = endpoint(&app, &org, &owner, &receiver.url("/hook"), json!([])).await;
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    app.post_json(&format!("/api/v1/orgs/{org}/webhooks/{hook_id}/test"), &json!({}), Some(&owner)).await;
    receiver.wait_for(1, PATIENCE).await;
    let mut failing = Value::Null;
    for _ in 0..50 {
        failing = get_endpoint(&app, &org, &owner, &hook_id).await;
        if failing["failing_since"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(failing["failing_since"].is_string(), "a failed attempt marks the endpoint failing: {failing}");
    wait_status(&app, &org, &owner, &hook_id, "succeeded").await;
    let mut recovered = Vec::new();
    for _ in 0..50 {
        recovered = actions(&app, &org, &owner, "webhook.recovered").await;
        if !recovered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(recovered.len(), 1, "one recovery entry");
    assert_eq!(recovered[0]["data"]["failing_since"], failing["failing_since"]);
    let fetched = get_endpoint(&app, &org, &owner, &hook_id).await;
    assert_eq!((fetched["failing_since"].clone(), fetched["enabled"].as_bool()), (Value::Null, Some(true)));
    app.stop().await;
}
