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
