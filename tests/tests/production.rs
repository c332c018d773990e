//! The production shape starts: `TENANTRY_ENV=production` on PostgreSQL (a role bound by
//! Row-Level Security), Redis, an SMTP relay (a loopback sink), a managed signing key and
//! encryption key, S3 storage (the S3-compatible test server of `TENANTRY_TEST_S3_URL`, on
//! loopback), an https public URL. The whole service graph is built from that configuration,
//! serves `/health/ready`, and delivers mail over SMTP.

use std::time::Duration;

use serde_json::{Value, json};
use tenantry_testkit::smtp::SmtpSink;
use tenantry_tests::spawn_app_on_services_with;

#[tokio::test]
async fn a_production_configuration_starts_is_ready_and_sends_mail_over_smtp() {
    let sink = SmtpSink::start().await;
    let key_dir = tempfile::tempdir().expect("tempdir");
    let pem = tenantry_adapter_crypto::load_or_generate_signing_key(&key_dir.path().join("jwt.pem"))
        .map(|_| std::fs::read_to_string(key_dir.path().join("jwt.pem")).expect("pem"))
        .expect("signing key");
    let smtp = sink.url();
    // Readiness probes the bucket: it must be reachable (moto in CI, which accepts any key).
    let Some(s3) = tenantry_testkit::storage::s3_url() else { return };
    let s3 = s3.trim_end_matches('/').to_owned();
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new().put(format!("{s3}/tenantry-files")).send().await.expect("the S3 server answers");
    let Some(app) = spawn_app_on_services_with(&[
        ("TENANTRY_ENV", "production"),
        ("TENANTRY_JWT_PRIVATE_KEY", &pem),
        ("TENANTRY_ENCRYPTION_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        ("TENANTRY_SMTP_URL", &smtp),
        ("TENANTRY_STORAGE_URL", "s3://tenantry-files/production-test"),
        ("TENANTRY_S3_ENDPOINT", &s3),
        ("AWS_ACCESS_KEY_ID", "tenantry-test"),
        ("AWS_SECRET_ACCESS_KEY", "tenantry-test-secret"),
        ("TENANTRY_PUBLIC_URL", "https://api.tenantry.test"),
        ("TENANTRY_CORS_ORIGINS", "https://app.tenantry.test"),
        ("TENANTRY_MAIL_FROM", "Tenantry <no-reply@tenantry.test>"),
    ])
    .await
    else {
        return;
    };
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.expect("json");
    assert_eq!(ready["status"], "ready", "{ready}");
    for check in ["database", "cache", "storage", "mail"] {
        assert_eq!(ready["checks"][check], "ok", "{check}: {ready}");
    }
    // A registration's verification mail leaves over SMTP, with an https link.
    let email = format!("prod-{}@example.com", uuid::Uuid::now_v7().simple());
    let registered = app
        .post_json("/api/v1/auth/register", &json!({"email": email, "password": tenantry_tests::PASSWORD}), None)
        .await;
    assert_eq!(registered.status(), 201);
    let messages = sink.wait_for(1, Duration::from_secs(20)).await;
    let message = messages.iter().find(|m| m.contains(&email)).expect("the verification mail");
    assert!(message.contains("https://api.tenantry.test/"), "{message}");
    app.stop().await;
}

#[tokio::test]
async fn readiness_names_the_mail_relay_when_it_is_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let smtp = format!("smtp://127.0.0.1:{port}");
    let Some(app) = spawn_app_on_services_with(&[("TENANTRY_SMTP_URL", &smtp)]).await else { return };
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.expect("json");
    assert_ne!(ready["checks"]["mail"], "ok", "{ready}");
    assert_eq!(ready["checks"]["database"], "ok", "{ready}");
    app.stop().await;
}
