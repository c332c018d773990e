//! The `tenantry` binary as an operator meets it: exit codes, messages, signals.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_tenantry");

/// A command with a clean environment: only PATH and the given TENANTRY_* variables, so the
/// developer's own settings cannot leak into the test.
fn tenantry(dir: &std::path::Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command.env_clear().current_dir(dir).env("PATH", std::env::var("PATH").unwrap_or_default());
    for (name, value) in vars {
        command.env(name, value);
    }
    command
}

#[test]
fn help_lists_every_subcommand() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = tenantry(dir.path(), &[]).arg("--help").output().expect("runs");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for command in ["serve", "worker", "migrate"] {
        assert!(text.contains(command), "--help does not mention {command}:\n{text}");
    }
}

#[test]
fn bad_values_exit_78_naming_every_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = tenantry(
        dir.path(),
        &[("TENANTRY_BIND", "nowhere"), ("TENANTRY_LOGIN_MAX_FAILURES", "many"), ("TENANTRY_LOG_FORMAT", "xml")],
    )
    .arg("migrate")
    .output()
    .expect("runs");
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for variable in ["TENANTRY_BIND", "TENANTRY_LOGIN_MAX_FAILURES", "TENANTRY_LOG_FORMAT"] {
        assert!(stderr.contains(variable), "{variable} not named:\n{stderr}");
    }
    assert!(!dir.path().join("data").exists(), "nothing is created when the configuration is refused");
}

#[test]
fn production_refuses_to_start_listing_each_insecure_setting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = tenantry(
        dir.path(),
        &[
            ("TENANTRY_ENV", "production"),
            ("TENANTRY_DATABASE_URL", "postgres://u:do-not-print@db/tenantry"),
            ("TENANTRY_CORS_ORIGINS", "*"),
            ("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true"),
        ],
    )
    .output()
    .expect("runs");
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for variable in [
        "TENANTRY_REDIS_URL",
        "TENANTRY_JWT_PRIVATE_KEY",
        "TENANTRY_SMTP_URL",
        "TENANTRY_STORAGE_URL",
        "TENANTRY_PUBLIC_URL",
        "TENANTRY_CORS_ORIGINS",
        "TENANTRY_WEBHOOK_ALLOW_PRIVATE",
    ] {
        assert!(stderr.contains(variable), "{variable} not named:\n{stderr}");
    }
    assert!(!stderr.contains("TENANTRY_DATABASE_URL"), "postgres is fine in production:\n{stderr}");
    assert!(!stderr.contains("do-not-print"), "secrets must never be printed:\n{stderr}");
}

#[test]
fn migrate_creates_the_embedded_database_and_status_reports_nothing_pending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = tenantry(dir.path(), &[("TENANTRY_LOG_FORMAT", "json")]).arg("migrate").output().expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(dir.path().join("data/tenantry.db").exists());
    let output =
        tenantry(dir.path(), &[("TENANTRY_LOG_FORMAT", "json")]).args(["migrate", "--status"]).output().expect("runs");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("0 migration(s) pending"), "{stdout}");
}

/// Starts `tenantry serve` on a free port and returns the child and the port it printed.
fn serve(dir: &std::path::Path) -> (Child, u16, mpsc::Receiver<String>) {
    let mut child = tenantry(dir, &[("TENANTRY_BIND", "127.0.0.1:0"), ("TENANTRY_LOG_FORMAT", "json")])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starts");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let port = loop {
        let line = receiver.recv_timeout(Duration::from_secs(60)).expect("the server logs that it listens");
        if line.contains("tenantry is listening") {
            let json: serde_json::Value = serde_json::from_str(&line).expect("json log line");
            let address = json["address"].as_str().expect("address field").to_owned();
            break address.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
        }
    };
    (child, port, receiver)
}

#[test]
fn serve_answers_then_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut child, port, logs) = serve(dir.path());
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connects");
    use std::io::{Read, Write};
    stream.write_all(b"GET /health/ready HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").expect("writes");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("reads");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill runs");
    assert!(status.success());
    let exit = child.wait().expect("exits");
    assert_eq!(exit.code(), Some(0), "SIGTERM is a clean shutdown");
    let rest: Vec<String> = logs.try_iter().collect();
    assert!(rest.iter().any(|line| line.contains("tenantry stopped")), "{rest:?}");
}

#[test]
fn create_admin_makes_a_verified_administrator_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = ["admin", "create-admin", "--email", "Root@Example.com", "--password", "an admin pass phrase 123"];
    let output = tenantry(dir.path(), &[("TENANTRY_LOG", "warn")]).args(args).output().expect("runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("created platform administrator root@example.com"), "{stdout}");
    let again = tenantry(dir.path(), &[("TENANTRY_LOG", "warn")]).args(args).output().expect("runs");
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    let weak = tenantry(dir.path(), &[("TENANTRY_LOG", "warn")])
        .args(["admin", "create-admin", "--email", "b@example.com", "--password", "password1234"])
        .output()
        .expect("runs");
    assert_eq!(weak.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("password refused"));
}

#[test]
fn create_admin_reads_the_password_from_stdin() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = tenantry(dir.path(), &[("TENANTRY_LOG", "warn")])
        .args(["admin", "create-admin", "--email", "ops@example.com", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    child.stdin.take().expect("stdin").write_all(b"another admin pass phrase 9\n").expect("writes");
    let output = child.wait_with_output().expect("exits");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}
