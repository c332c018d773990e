//! At-least-once delivery across a crash: events committed, the real `tenantry serve` process
//! killed with SIGKILL in the middle of delivering them, started again on the same database —
//! every delivery arrives, none is lost.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::json;
use tenantry_testkit::receiver::{Received, Receiver, Reply};

mod support;
use support::call;

/// `tenantry serve` in `dir`, delivering webhooks to loopback with short timeouts and retries.
fn serve(dir: &std::path::Path) -> (std::process::Child, u16) {
    support::serve(
        dir,
        &[
            ("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true"),
            ("TENANTRY_WEBHOOK_TIMEOUT_SECS", "2"),
            ("TENANTRY_WEBHOOK_RETRY_SCHEDULE", "1s,1s,1s,1s,1s"),
            ("TENANTRY_RATE_LIMIT_ANONYMOUS", "off"),
        ],
    )
}

const EVENTS: usize = 40;

/// The distinct `webhook-id`s among `requests`.
fn ids(requests: &[Received]) -> HashSet<String> {
    requests.iter().filter_map(|r| r.header("webhook-id")).map(str::to_owned).collect()
}

#[tokio::test]
async fn a_killed_server_delivers_every_committed_event_after_a_restart() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    // 150 ms per request, so the kill comes in the middle of delivering.
    let receiver = Receiver::start([Reply::status(204).after(Duration::from_millis(150))]).await;
    let url = receiver.url("/hook");
    let client = reqwest::Client::new();

    let (mut first, port) = serve(dir.path());
    let credentials = json!({"email": "crash@example.com", "password": "a long enough pass phrase 42"});
    call(&client, port, "/api/v1/auth/register", None, credentials.clone()).await;
    let token = call(&client, port, "/api/v1/auth/login", None, credentials).await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let org = call(&client, port, "/api/v1/orgs", Some(&token), json!({"name": "Crash", "slug": "crash"})).await;
    let org = org["id"].as_str().expect("org id").to_owned();
    let hook =
        call(&client, port, &format!("/api/v1/orgs/{org}/webhooks"), Some(&token), json!({"url": url, "events": []}))
            .await;
    let hook = hook["id"].as_str().expect("hook id").to_owned();
    let mut queued = HashSet::new();
    for _ in 0..EVENTS {
        let answer =
            call(&client, port, &format!("/api/v1/orgs/{org}/webhooks/{hook}/test"), Some(&token), json!({})).await;
        queued.insert(answer["delivery_id"].as_str().expect("delivery id").to_owned());
    }
    // Kill it mid-delivery: some arrived, most did not.
    receiver.wait_for(3, Duration::from_secs(30)).await;
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let before = ids(&receiver.received()).len();
    assert!(before < EVENTS, "the kill came too late to test anything ({before} delivered)");

    let (mut second, _) = serve(dir.path());
    let delivered = ids(&receiver
        .wait_until(Duration::from_secs(30), &format!("all {EVENTS} deliveries"), |got| ids(got).len() >= EVENTS)
        .await);
    let _ = second.kill();
    let _ = second.wait();
    let missing: Vec<_> = queued.difference(&delivered).collect();
    assert!(
        missing.is_empty(),
        "lost {} of {EVENTS} deliveries ({before} before the kill): {missing:?}",
        missing.len()
    );
}
