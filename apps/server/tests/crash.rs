//! At-least-once delivery across a crash: events committed, the real `tenantry serve` process
//! killed with SIGKILL in the middle of delivering them, started again on the same database —
//! every delivery arrives, none is lost.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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

/// A receiver that takes 150 ms per request and records each `webhook-id`.
async fn receiver(seen: Arc<Mutex<Vec<String>>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0_u8; 4096];
                while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buffer).to_string();
                let id = head.lines().find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("webhook-id").then(|| value.trim().to_owned())
                });
                tokio::time::sleep(Duration::from_millis(150)).await;
                if let Some(id) = id {
                    seen.lock().expect("seen").push(id);
                }
                let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await;
            });
        }
    });
    url
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
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let url = receiver(seen.clone()).await;
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
    for _ in 0..200 {
        if seen.lock().expect("seen").len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().expect("SIGKILL");
    let _ = first.wait();
    let before = seen.lock().expect("seen").iter().cloned().collect::<HashSet<_>>().len();
    assert!(before < EVENTS, "the kill came too late to test anything ({before} delivered)");

    let (mut second, _) = serve(dir.path());
    let mut delivered = HashSet::new();
    for _ in 0..300 {
        delivered = seen.lock().expect("seen").iter().cloned().collect::<HashSet<_>>();
        if delivered.len() >= EVENTS {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = second.kill();
    let _ = second.wait();
    let missing: Vec<_> = queued.difference(&delivered).collect();
    assert!(
        missing.is_empty(),
        "lost {} of {EVENTS} deliveries ({before} before the kill): {missing:?}",
        missing.len()
    );
}
