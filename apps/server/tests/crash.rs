//! At-least-once delivery across a crash: events committed, the real `tenantry serve` process
//! killed with SIGKILL in the middle of delivering them, started again on the same database —
//! every delivery arrives, none is lost.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tenantry_testkit::receiver::{Received, Receiver, Reply};

const BIN: &str = env!("CARGO_BIN_EXE_tenantry");
const EVENTS: usize = 40;

/// `tenantry serve` in `dir` on a free port; the port it logged. The caller kills and waits.
#[allow(clippy::zombie_processes)]
fn serve(dir: &std::path::Path) -> (Child, u16) {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs([
            ("TENANTRY_BIND", "127.0.0.1:0"),
            ("TENANTRY_LOG_FORMAT", "json"),
            ("TENANTRY_LOG", "info"),
            ("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true"),
            ("TENANTRY_WEBHOOK_TIMEOUT_SECS", "2"),
            ("TENANTRY_WEBHOOK_RETRY_SCHEDULE", "1s,1s,1s,1s,1s"),
            ("TENANTRY_RATE_LIMIT_ANONYMOUS", "off"),
        ])
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        let line = receiver.recv_timeout(Duration::from_secs(60)).expect("the server logs that it listens");
        if line.contains("tenantry is listening") {
            let json: Value = serde_json::from_str(&line).expect("json log line");
            let port = json["address"].as_str().and_then(|a| a.rsplit(':').next()).and_then(|p| p.parse().ok());
            // Keep draining the log so the child never blocks on a full pipe.
            std::thread::spawn(move || while receiver.recv().is_ok() {});
            return (child, port.expect("a port"));
        }
    }
}

/// The distinct `webhook-id`s among `requests`.
fn ids(requests: &[Received]) -> HashSet<String> {
    requests.iter().filter_map(|r| r.header("webhook-id")).map(str::to_owned).collect()
}

async fn call(client: &reqwest::Client, port: u16, path: &str, token: Option<&str>, body: Value) -> Value {
    let mut request = client.post(format!("http://127.0.0.1:{port}{path}")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("sent");
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap_or(Value::Null)
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
