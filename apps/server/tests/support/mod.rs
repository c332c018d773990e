//! What the process-level tests share: starting the real `tenantry` binary and waiting until it
//! listens, and one JSON call to it. Each test file includes it with `mod support;` and uses
//! what it needs.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_tenantry");

/// `tenantry serve` in `dir` with only `PATH` and `env` set (bind `127.0.0.1:0` and JSON logs at
/// `info` unless `env` says otherwise), once it logged that it listens: the process and its port.
/// The rest of its log is drained so it never blocks on a full pipe. The caller stops and waits.
#[allow(clippy::zombie_processes)]
pub fn serve(dir: &std::path::Path, env: &[(&str, &str)]) -> (Child, u16) {
    let mut child = Command::new(BIN)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs([("TENANTRY_BIND", "127.0.0.1:0"), ("TENANTRY_LOG_FORMAT", "json"), ("TENANTRY_LOG", "info")])
        .envs(env.iter().copied())
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
            std::thread::spawn(move || while receiver.recv().is_ok() {});
            return (child, port.expect("a port"));
        }
    }
}

/// `POST path` with a JSON `body` (and a bearer `token`), which must succeed: its JSON answer.
pub async fn call(client: &reqwest::Client, port: u16, path: &str, token: Option<&str>, body: Value) -> Value {
    let mut request = client.post(format!("http://127.0.0.1:{port}{path}")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("sent");
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap_or(Value::Null)
}
