//! Two `tenantry worker` processes against one PostgreSQL database, beside an API process that
//! runs no jobs: every delivery is made by one worker at a time (never two attempts of one
//! delivery at once, and here exactly one attempt each), both workers take part, and an
//! endpoint that hangs for the whole 15 s timeout does not delay another organization's
//! deliveries beyond the stated bound.
//!
//! The bound: a delivery of another organization arrives within 2 s of its commit while 40
//! deliveries hang. The hanging endpoint holds at most 16 attempts in flight (the per-endpoint
//! cap, shared by the workers through the database), far from each worker's 512 slots, and a
//! step never waits for an attempt; so another endpoint waits at most one idle step (200 ms)
//! plus a claim and its own send.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenantry_testkit::postgres::ScratchPostgres;
use tenantry_testkit::receiver::{Received, Receiver, Reply, most_open_at_once};

mod support;
use support::call;

use support::BIN;
/// Deliveries to the endpoint that hangs.
const HANGING: usize = 40;
/// Deliveries to the healthy endpoint of another organization.
const HEALTHY: usize = 60;
/// How late a healthy delivery may arrive after its commit.
const BOUND: Duration = Duration::from_secs(2);

/// A `tenantry` process; its log lines are collected for the test to read.
struct Process {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Process {
    fn start(dir: &std::path::Path, database_url: &str, args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs([
                ("TENANTRY_BIND", "127.0.0.1:0"),
                ("TENANTRY_DATABASE_URL", database_url),
                ("TENANTRY_LOG_FORMAT", "json"),
                ("TENANTRY_LOG", "info,tenantry_application::webhooks=debug"),
                ("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true"),
                ("TENANTRY_WEBHOOK_TIMEOUT_SECS", "15"),
                ("TENANTRY_WEBHOOK_RETRY_SCHEDULE", "1s,1s,1s"),
                ("TENANTRY_RATE_LIMIT_ANONYMOUS", "off"),
                ("TENANTRY_RATE_LIMIT_PRINCIPAL", "off"),
                ("TENANTRY_RATE_LIMIT_ORG", "off"),
            ])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts");
        let stdout = child.stdout.take().expect("stdout");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        Self { child, lines }
    }

    /// Waits for a log line containing `marker`; returns it.
    fn wait_for(&self, marker: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(line) = self.lines.lock().expect("lines").iter().find(|l| l.contains(marker)) {
                return line.clone();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no `{marker}` in the log: {:?}", self.lines.lock().expect("lines"));
    }

    /// Deliveries this process claimed, from its dispatcher's debug lines.
    fn claimed(&self) -> u64 {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|l| l.contains("webhook dispatch step"))
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|l| l["claimed"].as_u64())
            .sum()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The receiver: `/hang` reads each request and never answers (past the 15 s timeout);
/// `/ok` answers 204 after 100 ms.
async fn receiver() -> Receiver {
    Receiver::routed([
        ("/hang", vec![Reply::silent()]),
        ("/ok", vec![Reply::status(204).after(Duration::from_millis(100))]),
    ])
    .await
}

/// `webhook-id`s that arrived while a request with the same id was still open (two attempts
/// of one delivery at once).
fn overlapping(requests: &[Received]) -> Vec<String> {
    let now = Instant::now();
    let mut by_id: HashMap<&str, Vec<(Instant, Instant)>> = HashMap::new();
    for request in requests {
        if let Some(id) = request.header("webhook-id") {
            by_id.entry(id).or_default().push((request.arrived, request.answered.unwrap_or(now)));
        }
    }
    let mut found = Vec::new();
    for (id, mut spans) in by_id {
        spans.sort();
        if spans.windows(2).any(|pair| pair[1].0 < pair[0].1) {
            found.push(id.to_owned());
        }
    }
    found
}

/// The requests to `prefix`.
fn under(requests: &[Received], prefix: &str) -> Vec<Received> {
    requests.iter().filter(|r| r.path.starts_with(prefix)).cloned().collect::<Vec<_>>()
}

/// An account, its org and one endpoint at `url`: `(token, org, endpoint)`.
async fn org_with_endpoint(client: &reqwest::Client, port: u16, name: &str, url: &str) -> (String, String, String) {
    let credentials = json!({"email": format!("{name}@example.com"), "password": "a long enough pass phrase 42"});
    call(client, port, "/api/v1/auth/register", None, credentials.clone()).await;
    let token = call(client, port, "/api/v1/auth/login", None, credentials).await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let org = call(client, port, "/api/v1/orgs", Some(&token), json!({"name": name, "slug": name})).await;
    let org = org["id"].as_str().expect("org id").to_owned();
    let hook =
        call(client, port, &format!("/api/v1/orgs/{org}/webhooks"), Some(&token), json!({"url": url, "events": []}))
            .await;
    (token, org, hook["id"].as_str().expect("hook id").to_owned())
}

#[tokio::test]
async fn two_workers_share_the_queue_and_a_hanging_endpoint_delays_no_other_org() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(server) = tenantry_testkit::env::postgres_url() else { return };
    let scratch = ScratchPostgres::create(&server).await;
    // One working directory: the processes share the generated signing and sealing keys.
    let dir = tempfile::tempdir().expect("tempdir");
    let api = Process::start(dir.path(), &scratch.url, &["serve", "--no-worker"]);
    let listening: Value = serde_json::from_str(&api.wait_for("tenantry is listening")).expect("json");
    let port: u16 =
        listening["address"].as_str().and_then(|a| a.rsplit(':').next()).and_then(|p| p.parse().ok()).expect("port");
    let workers =
        [Process::start(dir.path(), &scratch.url, &["worker"]), Process::start(dir.path(), &scratch.url, &["worker"])];
    for worker in &workers {
        worker.wait_for("worker starting");
    }

    let receiver = receiver().await;
    let base = receiver.url("");
    let client = reqwest::Client::new();
    let (slow_token, slow_org, slow_hook) = org_with_endpoint(&client, port, "slow", &format!("{base}/hang")).await;
    let (token, org, hook) = org_with_endpoint(&client, port, "fast", &format!("{base}/ok")).await;

    for _ in 0..HANGING {
        call(
            &client,
            port,
            &format!("/api/v1/orgs/{slow_org}/webhooks/{slow_hook}/test"),
            Some(&slow_token),
            json!({}),
        )
        .await;
    }
    // The hanging endpoint's cap is in flight before the other organization commits anything.
    receiver
        .wait_until(Duration::from_secs(10), "the hanging endpoint's cap of 16 in flight", |got| {
            under(got, "/hang").iter().filter(|r| r.is_open()).count() >= 16
        })
        .await;

    let mut committed: HashMap<String, Instant> = HashMap::new();
    for _ in 0..HEALTHY {
        let answer =
            call(&client, port, &format!("/api/v1/orgs/{org}/webhooks/{hook}/test"), Some(&token), json!({})).await;
        committed.insert(answer["delivery_id"].as_str().expect("delivery id").to_owned(), Instant::now());
    }
    let got = receiver
        .wait_until(Duration::from_secs(20), "every healthy delivery", |got| {
            under(got, "/ok").iter().filter_map(|r| r.header("webhook-id")).collect::<HashSet<_>>().len() >= HEALTHY
        })
        .await;
    let overlapping = overlapping(&got);
    let mut arrived: HashMap<String, Vec<Instant>> = HashMap::new();
    for request in under(&got, "/ok") {
        if let Some(id) = request.header("webhook-id") {
            arrived.entry(id.to_owned()).or_default().push(request.arrived);
        }
    }
    assert!(overlapping.is_empty(), "attempts made twice at once: {overlapping:?}");
    assert_eq!(arrived.len(), HEALTHY, "every healthy delivery arrived");
    let mut worst = Duration::ZERO;
    for (id, at) in &committed {
        let arrivals = &arrived[id];
        assert_eq!(arrivals.len(), 1, "{id} was delivered {} times", arrivals.len());
        worst = worst.max(arrivals[0].saturating_duration_since(*at));
    }
    eprintln!("worst commit-to-arrival of the other org while {HANGING} hang: {worst:?}");
    assert!(worst < BOUND, "another org's delivery waited {worst:?} behind a hanging endpoint (bound {BOUND:?})");
    let most = most_open_at_once(&under(&receiver.received(), "/hang"));
    assert_eq!(most, 16, "the per-endpoint cap holds across both workers: {most} hanging at once");
    let claimed: Vec<u64> = workers.iter().map(Process::claimed).collect();
    assert!(claimed.iter().all(|n| *n > 0), "both workers took deliveries: {claimed:?}");
    drop(workers);
    drop(api);
    scratch.drop_database().await;
}
