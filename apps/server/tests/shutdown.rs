//! Graceful shutdown under load, proven on the real `tenantry serve` process: SIGTERM arrives
//! while clients create API keys and queue webhook deliveries as fast as they can.
//!
//! What must hold:
//! - every request gets either a complete response or no byte at all (refused, or reset before
//!   the server accepted it) — never a cut-off answer;
//! - no answered write is lost and no unanswered write was committed: after a restart on the
//!   same database, the API keys that exist are exactly the ones whose creation was answered 201;
//! - no worker step is half-recorded: every webhook request the receiver saw is an attempt the
//!   server recorded, so after the restart drains the queue, each delivery shows as many attempts
//!   as the receiver counted for it.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenantry_testkit::receiver::{Received, Receiver, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;
use support::call;

const CLIENTS: usize = 12;

/// `tenantry serve` in `dir`: no rate limits or metering in the way of the load, 20 s to drain.
fn serve(dir: &std::path::Path) -> (Child, u16) {
    support::serve(
        dir,
        &[
            ("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true"),
            ("TENANTRY_WEBHOOK_RETRY_SCHEDULE", "1s,1s,1s"),
            ("TENANTRY_RATE_LIMIT_ANONYMOUS", "off"),
            ("TENANTRY_RATE_LIMIT_PRINCIPAL", "off"),
            ("TENANTRY_RATE_LIMIT_ORG", "off"),
            ("TENANTRY_METER_API_CALLS", "false"),
            ("TENANTRY_SHUTDOWN_TIMEOUT_SECS", "20"),
        ],
    )
}

/// Requests per `webhook-id` among `requests`.
fn per_delivery(requests: &[Received]) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for id in requests.iter().filter_map(|r| r.header("webhook-id")) {
        *seen.entry(id.to_owned()).or_default() += 1;
    }
    seen
}

/// What became of one request.
#[derive(Debug)]
enum Outcome {
    /// A complete response with this status.
    Answered(u16),
    /// The connection was refused: the server no longer listens.
    Refused,
    /// Connected at this instant, then reset without a byte. Fine if the connection was still
    /// waiting in the listen backlog when the server stopped accepting (it never accepted it);
    /// a dropped request if it connected well before the signal (the server accepts at once).
    Unanswered(Instant),
    /// Closed in order without one byte: the server accepted the request and dropped it.
    Dropped,
    /// Some bytes, then the connection ended: what must never happen.
    CutOff(String),
}

/// One request on its own connection (`connection: close`), read to the end and classified.
/// A `slow` request sends its body 30 ms after its head, so it is often mid-read at the signal.
async fn request(port: u16, method: &str, path: &str, token: &str, body: &Value, slow: bool) -> Outcome {
    let mut stream = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(stream) => stream,
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => return Outcome::Refused,
        Err(err) => return Outcome::CutOff(format!("connect: {err}")),
    };
    let connected_at = Instant::now();
    let body = body.to_string();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let sent = if slow {
        let sent = stream.write_all(head.as_bytes()).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        match sent {
            Ok(()) => stream.write_all(body.as_bytes()).await,
            Err(err) => Err(err),
        }
    } else {
        stream.write_all(format!("{head}{body}").as_bytes()).await
    };
    let mut answer = Vec::new();
    let read = match sent {
        Ok(()) => stream.read_to_end(&mut answer).await.map(|_| ()),
        Err(err) => Err(err),
    };
    if answer.is_empty() {
        return match read {
            Err(err) if matches!(err.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe) => {
                Outcome::Unanswered(connected_at)
            }
            Err(err) => Outcome::CutOff(format!("no answer: {err}")),
            Ok(()) => Outcome::Dropped,
        };
    }
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Outcome::CutOff(format!("no end of head after {} bytes ({read:?})", answer.len()));
    };
    let head = String::from_utf8_lossy(&answer[..end]).to_lowercase();
    let body = &answer[end + 4..];
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let length =
        head.lines().find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()));
    let complete = match length {
        Some(length) => body.len() == length,
        None if head.contains("transfer-encoding: chunked") => body.ends_with(b"0\r\n\r\n"),
        None => true,
    };
    if !complete || read.is_err() {
        return Outcome::CutOff(format!("status {status}, {} body bytes of {length:?} ({read:?})", body.len()));
    }
    Outcome::Answered(status)
}

/// Every page of a keyset-paginated list.
async fn list_all(client: &reqwest::Client, port: u16, path: &str, token: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("http://127.0.0.1:{port}{path}?limit=100");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let page: Value = client.get(url).bearer_auth(token).send().await.expect("sent").json().await.expect("a page");
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

#[derive(Default)]
struct Tally {
    answered_before: usize,
    answered_after: usize,
    refused: usize,
    unanswered: usize,
    dropped: usize,
    cut_off: Vec<String>,
    /// Names of the keys whose creation was answered 201.
    created: BTreeSet<String>,
    /// Names of the keys whose creation got no answer.
    unknown: BTreeSet<String>,
    statuses: BTreeMap<u16, usize>,
}

#[tokio::test]
async fn sigterm_under_load_loses_no_request_and_leaves_no_step_half_recorded() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    // A webhook receiver taking 100 ms per request.
    let hooks = Receiver::start([Reply::status(204).after(Duration::from_millis(100))]).await;
    let hook_url = hooks.url("/hook");
    let client = reqwest::Client::new();

    let (mut first, port) = serve(dir.path());
    let credentials = json!({"email": "sigterm@example.com", "password": "a long enough pass phrase 42"});
    call(&client, port, "/api/v1/auth/register", None, credentials.clone()).await;
    let token = call(&client, port, "/api/v1/auth/login", None, credentials.clone()).await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let org = call(&client, port, "/api/v1/orgs", Some(&token), json!({"name": "Term", "slug": "term"})).await;
    let org = org["id"].as_str().expect("org id").to_owned();
    let hook = call(
        &client,
        port,
        &format!("/api/v1/orgs/{org}/webhooks"),
        Some(&token),
        json!({"url": hook_url, "events": []}),
    )
    .await;
    let hook = hook["id"].as_str().expect("hook id").to_owned();

    let tally = Arc::new(Mutex::new(Tally::default()));
    let signalled: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut clients = Vec::new();
    for client_no in 0..CLIENTS {
        let (tally, signalled, token, org, hook) =
            (tally.clone(), signalled.clone(), token.clone(), org.clone(), hook.clone());
        clients.push(tokio::spawn(async move {
            for n in 0.. {
                // Half the clients create API keys (writes checked after the restart), half
                // queue webhook deliveries (worker steps checked after the restart).
                let name = format!("k-{client_no}-{n}");
                let outcome = if client_no % 2 == 0 {
                    let body = json!({"name": name, "permissions": ["org:read"]});
                    request(port, "POST", &format!("/api/v1/orgs/{org}/api-keys"), &token, &body, n % 2 == 1).await
                } else {
                    let path = format!("/api/v1/orgs/{org}/webhooks/{hook}/test");
                    request(port, "POST", &path, &token, &json!({}), n % 2 == 1).await
                };
                let signal = *signalled.lock().expect("signalled");
                let after = signal.is_some();
                let mut tally = tally.lock().expect("tally");
                match outcome {
                    Outcome::Answered(status) => {
                        *tally.statuses.entry(status).or_default() += 1;
                        if after {
                            tally.answered_after += 1;
                        } else {
                            tally.answered_before += 1;
                        }
                        if client_no % 2 == 0 && status == 201 {
                            tally.created.insert(name);
                        }
                    }
                    Outcome::Refused => {
                        tally.refused += 1;
                        return;
                    }
                    Outcome::Unanswered(connected_at)
                        if signal.is_none_or(|signal| connected_at + Duration::from_millis(20) < signal) =>
                    {
                        tally.dropped += 1;
                    }
                    Outcome::Unanswered(_) => {
                        tally.unanswered += 1;
                        if client_no % 2 == 0 {
                            tally.unknown.insert(name);
                        }
                    }
                    Outcome::Dropped => tally.dropped += 1,
                    Outcome::CutOff(what) => tally.cut_off.push(what),
                }
            }
        }));
    }

    // Load for a while (so deliveries are in flight), then SIGTERM.
    for _ in 0..300 {
        if per_delivery(&hooks.received()).len() >= 20 && tally.lock().expect("tally").answered_before >= 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pid = first.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(status.success(), "SIGTERM sent");
    let sent_at = Instant::now();
    *signalled.lock().expect("signalled") = Some(sent_at);
    let exit = tokio::task::spawn_blocking(move || first.wait()).await.expect("joined").expect("waits");
    let drained_in = sent_at.elapsed();
    assert!(exit.success(), "a SIGTERM'd server exits 0, got {exit:?}");
    for client in clients {
        tokio::time::timeout(Duration::from_secs(30), client).await.expect("clients end").expect("client ran");
    }

    let tally = Arc::try_unwrap(tally).ok().expect("one owner").into_inner().expect("tally");
    let received_at_exit = hooks.received().len();
    eprintln!(
        "SIGTERM: {} answered before, {} answered after the signal, {} refused, {} never accepted, \
         {} dropped, {} cut off; statuses {:?}; exit {:?} after {} ms; {} webhook requests received by then",
        tally.answered_before,
        tally.answered_after,
        tally.refused,
        tally.unanswered,
        tally.dropped,
        tally.cut_off.len(),
        tally.statuses,
        exit.code(),
        drained_in.as_millis(),
        received_at_exit,
    );
    assert!(tally.cut_off.is_empty(), "responses cut off by the shutdown: {:?}", tally.cut_off);
    assert_eq!(tally.dropped, 0, "accepted requests closed without an answer");
    assert_eq!(tally.refused, CLIENTS, "every client ended on a refused connection");
    assert!(
        tally.statuses.keys().all(|status| *status == 201 || *status == 202),
        "only successes under load: {:?}",
        tally.statuses
    );

    // Restart on the same database: the writes are exactly the answered ones.
    let (mut second, port) = serve(dir.path());
    let token = call(&client, port, "/api/v1/auth/login", None, credentials).await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let keys = list_all(&client, port, &format!("/api/v1/orgs/{org}/api-keys"), &token).await;
    let stored: BTreeSet<String> = keys.iter().filter_map(|k| k["name"].as_str().map(str::to_owned)).collect();
    let lost: Vec<_> = tally.created.difference(&stored).collect();
    assert!(lost.is_empty(), "answered 201 but not stored: {lost:?}");
    let unacknowledged: Vec<_> = stored.difference(&tally.created).collect();
    assert!(
        unacknowledged.is_empty(),
        "stored without a 201 answer (a write committed but never acknowledged; {} of them got no \
         answer at all): {unacknowledged:?}",
        unacknowledged.iter().filter(|name| tally.unknown.contains(**name)).count()
    );

    // Let the restarted worker drain, then compare what the receiver saw with what was recorded.
    let deadline = Instant::now() + Duration::from_secs(60);
    let deliveries = loop {
        let deliveries =
            list_all(&client, port, &format!("/api/v1/orgs/{org}/webhooks/{hook}/deliveries"), &token).await;
        let settled = deliveries.iter().all(|d| d["status"] == "succeeded");
        if settled || Instant::now() > deadline {
            break deliveries;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = second.kill();
    let _ = second.wait();
    let seen = per_delivery(&hooks.received());
    let mut mismatched = Vec::new();
    for delivery in &deliveries {
        let id = delivery["id"].as_str().expect("delivery id");
        let recorded = delivery["attempts"].as_u64().unwrap_or(0) as usize;
        let received = seen.get(id).copied().unwrap_or(0);
        if delivery["status"] != "succeeded" || recorded != received {
            mismatched.push(format!("{id}: {} with {recorded} recorded, {received} received", delivery["status"]));
        }
    }
    assert!(deliveries.len() >= 20, "deliveries were queued ({})", deliveries.len());
    assert!(mismatched.is_empty(), "attempts sent but not recorded (or recorded twice): {mismatched:?}");
    let unknown: Vec<_> =
        seen.keys().filter(|id| !deliveries.iter().any(|d| d["id"].as_str() == Some(id.as_str()))).collect();
    assert!(unknown.is_empty(), "requests for deliveries the server does not know: {unknown:?}");
}
