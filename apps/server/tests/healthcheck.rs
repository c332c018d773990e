//! `tenantry healthcheck` against the real server: 0 once it is ready, non-zero when nothing
//! answers — what the container health checks rely on.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tenantry");

fn healthcheck(dir: &std::path::Path, bind: &str) -> std::process::Output {
    Command::new(BIN)
        .current_dir(dir)
        .env_clear()
        .env("TENANTRY_BIND", bind)
        .args(["healthcheck", "--timeout", "2"])
        .output()
        .expect("runs")
}

#[test]
fn healthcheck_passes_on_a_ready_server_and_fails_without_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port();
    // Bound to every address, as in a container: the check goes through loopback.
    let bind = format!("0.0.0.0:{port}");
    let before = healthcheck(dir.path(), &bind);
    assert!(!before.status.success(), "nothing listens yet");
    assert!(String::from_utf8_lossy(&before.stderr).contains("cannot connect"), "{before:?}");

    let mut server = Command::new(BIN)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TENANTRY_BIND", &bind)
        .env("TENANTRY_LOG", "warn")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ready = false;
    while Instant::now() < deadline {
        if healthcheck(dir.path(), &bind).status.success() {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(ready, "the server never became ready for the health check");
    assert!(!healthcheck(dir.path(), &bind).status.success(), "a stopped server fails the check");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}

/// A plain GET over loopback: the status and the body.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let status = answer.split(' ').nth(1)?.parse().ok()?;
    Some((status, answer))
}

fn wait_for(port: u16, path: &str) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(answer) = get(port, path) {
            return answer;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing answered on port {port}");
}

fn start(dir: &std::path::Path, args: &[&str], env: &[(&str, String)]) -> std::process::Child {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TENANTRY_LOG", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    command.args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("starts")
}

#[test]
fn metrics_move_to_their_own_address_for_the_server_and_the_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (api, metrics) = (free_port(), free_port());
    let mut server = start(
        dir.path(),
        &["serve", "--no-worker"],
        &[("TENANTRY_BIND", format!("127.0.0.1:{api}")), ("TENANTRY_METRICS_BIND", format!("127.0.0.1:{metrics}"))],
    );
    let (live, _) = wait_for(api, "/health/live");
    let public = get(api, "/metrics");
    let apart = wait_for(metrics, "/metrics");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(live, 200);
    assert_eq!(public.map(|(status, _)| status), Some(404), "the public address no longer serves /metrics");
    assert_eq!(apart.0, 200);
    assert!(apart.1.contains("tenantry_http_requests_total"), "{}", apart.1);

    // The worker has no other address: with TENANTRY_METRICS_BIND its webhook metrics are
    // scrapeable (the migrations ran with the server above, on the same SQLite file).
    let worker_metrics = free_port();
    let mut worker =
        start(dir.path(), &["worker"], &[("TENANTRY_METRICS_BIND", format!("127.0.0.1:{worker_metrics}"))]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = wait_for(worker_metrics, "/metrics").1;
        if text.contains("tenantry_webhook_queue_depth 0") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(text.contains("tenantry_webhook_queue_depth 0"), "the worker serves its own families: {text}");
}
