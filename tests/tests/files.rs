//! Files from outside: uploads, downloads, ranges, limits, types, quotas, deletion, events,
//! presigned uploads, on the real server. Runs on SQLite with a local folder, and on
//! PostgreSQL + Redis with `TENANTRY_TEST_STACK=services`; the presigned flow runs against an
//! S3-compatible server when `TENANTRY_TEST_S3_URL` is set (always in CI: moto).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tenantry_tests::{TestApp, assert_problem, multipart_file, spawn_app, spawn_app_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Text of `size` bytes, different on every line, so a wrong range or a reordered chunk shows.
fn text_of(size: usize) -> Vec<u8> {
    let mut text = Vec::with_capacity(size + 32);
    let mut line = 0;
    while text.len() < size {
        text.extend_from_slice(format!("line {line:08} of the test file\n").as_bytes());
        line += 1;
    }
    text.truncate(size);
    text
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.expect("entry").path();
            if path.is_dir() { stack.push(path) } else { found.push(path) }
        }
    }
    found
}

/// A server whose files go to a folder the test can look into.
async fn app_with_folder(extra: &[(&str, &str)]) -> (TestApp, tempfile::TempDir) {
    let folder = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}", folder.path().display());
    let mut settings = vec![("TENANTRY_STORAGE_URL", url.as_str())];
    settings.extend_from_slice(extra);
    (spawn_app_with(&settings).await, folder)
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("json")
}

async fn storage_used(app: &TestApp, org: &str, owner: &str) -> u64 {
    let usage = json_of(app.get_auth(&format!("/api/v1/orgs/{org}/usage"), owner).await).await;
    usage["quotas"]["storage_bytes"]["used"].as_u64().expect("used")
}

async fn listed(app: &TestApp, org: &str, owner: &str) -> Vec<Value> {
    let page = json_of(app.get_auth(&format!("/api/v1/orgs/{org}/files"), owner).await).await;
    page["items"].as_array().expect("items").clone()
}

#[tokio::test]
async fn an_upload_round_trips_through_list_get_and_download_with_its_sha256() {
    let (app, folder) = app_with_folder(&[]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let bytes = text_of(300 * 1024);
    let response = app.upload(&org, &owner, "../reports/Q3 report.txt", &bytes).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap_or_default());
    let file = json_of(response).await;
    assert_eq!(file["name"], "Q3 report.txt", "only the last segment of the name is kept");
    assert_eq!(file["size"], bytes.len());
    assert_eq!(file["content_type"], "text/plain", "sniffed, not the part's declared octet-stream");
    assert_eq!(file["sha256"], sha256_hex(&bytes), "the hash of exactly the bytes sent");
    let id = file["id"].as_str().expect("id");

    assert_eq!(listed(&app, &org, &owner).await, std::slice::from_ref(&file));
    let got = json_of(app.get_auth(&format!("/api/v1/orgs/{org}/files/{id}"), &owner).await).await;
    assert_eq!(got, file);

    let download = app.get_auth(&format!("/api/v1/orgs/{org}/files/{id}/download"), &owner).await;
    assert_eq!(download.status(), 200);
    let header = |name: &str| download.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(header("content-length"), Some(bytes.len().to_string()));
    assert_eq!(
        header("content-disposition").as_deref(),
        Some("attachment; filename=\"Q3 report.txt\"; filename*=UTF-8''Q3%20report.txt")
    );
    assert_eq!(header("accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    let body = download.bytes().await.expect("body");
    assert_eq!(sha256_hex(&body), sha256_hex(&bytes), "the same bytes come back");

    let stored = files_under(folder.path());
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].ends_with(format!("orgs/{org}/files/{id}")), "stored under ids only: {stored:?}");
    assert_eq!(storage_used(&app, &org, &owner).await, bytes.len() as u64, "exactly the file's bytes are counted");
    app.stop().await;
}

#[tokio::test]
async fn an_upload_over_the_limit_is_413_and_leaves_no_row_no_object_and_no_usage() {
    let (app, folder) = app_with_folder(&[("TENANTRY_MAX_UPLOAD_BYTES", "65536")]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    // Announced over the limit: refused before the body is read.
    let response = app.upload(&org, &owner, "big.txt", &text_of(256 * 1024)).await;
    let problem = assert_problem(response, 413, "payload_too_large").await;
    assert_eq!(problem["limit_bytes"], 65536);
    // Announced within the framing allowance, but the file passes the limit while streaming.
    let response = app.upload(&org, &owner, "big.txt", &text_of(65536 + 4096)).await;
    assert_problem(response, 413, "payload_too_large").await;
    // Exactly the limit is fine.
    let response = app.upload(&org, &owner, "fits.txt", &text_of(65536)).await;
    assert_eq!(response.status(), 201);
    let fits = json_of(response).await;
    let items = listed(&app, &org, &owner).await;
    assert_eq!(items, [fits], "no row for the refused uploads");
    assert_eq!(files_under(folder.path()).len(), 1, "no object for the refused uploads");
    assert_eq!(storage_used(&app, &org, &owner).await, 65536, "the refused uploads gave their reservation back");
    app.stop().await;
}

#[tokio::test]
async fn a_disallowed_type_is_415_and_nothing_is_stored() {
    let (app, folder) = app_with_folder(&[]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let response =
        app.upload(&org, &owner, "innocent.png", b"<!DOCTYPE html><html><script>alert(1)</script></html>").await;
    let problem = assert_problem(response, 415, "unsupported_media_type").await;
    assert_eq!(problem["content_type"], "text/html", "the sniffed type is named: {problem}");
    let mut executable = b"\x7fELF\x02\x01\x01".to_vec();
    executable.resize(4096, 0);
    assert_problem(app.upload(&org, &owner, "run.txt", &executable).await, 415, "unsupported_media_type").await;
    // A JSON body is not an upload.
    let response = app.post_json(&format!("/api/v1/orgs/{org}/files"), &json!({"file": "x"}), Some(&owner)).await;
    assert_problem(response, 415, "unsupported_media_type").await;
    assert!(listed(&app, &org, &owner).await.is_empty());
    assert!(files_under(folder.path()).is_empty());
    assert_eq!(storage_used(&app, &org, &owner).await, 0);
    // An allowlist of the operator's choosing.
    let (strict, _) = app_with_folder(&[("TENANTRY_UPLOAD_ALLOWED_TYPES", "image/*")]).await;
    let (_, owner) = strict.user().await;
    let org = strict.create_org(&owner).await;
    assert_problem(strict.upload(&org, &owner, "a.txt", b"plain text").await, 415, "unsupported_media_type").await;
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";
    assert_eq!(strict.upload(&org, &owner, "a.png", png).await.status(), 201);
    strict.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn ranges_are_206_with_content_range_and_416_outside_the_file() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let bytes = text_of(10_000);
    let id = json_of(app.upload(&org, &owner, "r.txt", &bytes).await).await["id"].as_str().expect("id").to_owned();
    let path = format!("/api/v1/orgs/{org}/files/{id}/download");
    let ranged = |range: &'static str| app.client.get(app.url(&path)).bearer_auth(&owner).header("range", range).send();
    for (range, start, end) in [
        ("bytes=100-199", 100, 200),
        ("bytes=9990-", 9990, 10_000),
        ("bytes=-10", 9990, 10_000),
        ("bytes=9000-20000", 9000, 10_000),
    ] {
        let response = ranged(range).await.expect("sent");
        assert_eq!(response.status(), 206, "{range}");
        let content_range = response.headers()["content-range"].to_str().expect("text").to_owned();
        assert_eq!(content_range, format!("bytes {start}-{}/10000", end - 1), "{range}");
        assert_eq!(response.headers()["content-length"].to_str().expect("text"), (end - start).to_string());
        assert_eq!(response.bytes().await.expect("body").as_ref(), &bytes[start..end], "{range}");
    }
    for range in ["bytes=10000-", "bytes=20000-20010"] {
        let response = ranged(range).await.expect("sent");
        assert_eq!(response.headers()["content-range"].to_str().expect("text"), "bytes */10000");
        assert_problem(response, 416, "range_not_satisfiable").await;
    }
    // Several ranges, or a malformed one: the whole file, as RFC 9110 allows.
    for range in ["bytes=0-1,5-6", "bytes=5-2", "lines=1-2"] {
        let response = ranged(range).await.expect("sent");
        assert_eq!(response.status(), 200, "{range}");
        assert_eq!(response.bytes().await.expect("body").len(), 10_000);
    }
    app.stop().await;
}

#[tokio::test]
async fn a_deleted_file_is_gone_with_its_object_and_its_bytes_leave_the_quota() {
    let (app, folder) = app_with_folder(&[]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let id = app.uploaded_file(&org, &owner, "gone.txt").await;
    assert!(storage_used(&app, &org, &owner).await > 0);
    let deleted = app
        .send("DELETE", &format!("/api/v1/orgs/{org}/files/{id}"), ("authorization", &format!("Bearer {owner}")), None)
        .await;
    assert_eq!(deleted.status(), 204);
    for path in [format!("/api/v1/orgs/{org}/files/{id}"), format!("/api/v1/orgs/{org}/files/{id}/download")] {
        assert_problem(app.get_auth(&path, &owner).await, 404, "not_found").await;
    }
    let again = app
        .send("DELETE", &format!("/api/v1/orgs/{org}/files/{id}"), ("authorization", &format!("Bearer {owner}")), None)
        .await;
    assert_problem(again, 404, "not_found").await;
    assert!(files_under(folder.path()).is_empty(), "the object is gone");
    assert_eq!(storage_used(&app, &org, &owner).await, 0);
    let log = json_of(app.get_auth(&format!("/api/v1/orgs/{org}/audit-log?action=file.deleted"), &owner).await).await;
    let entries = log["items"].as_array().expect("items");
    assert_eq!(entries.len(), 1, "{log}");
    assert_eq!(entries[0]["target_id"], id.as_str());
    app.stop().await;
}

#[tokio::test]
async fn the_storage_quota_refuses_an_upload_with_403_and_keeps_nothing() {
    let (app, folder) = app_with_folder(&[]).await;
    let admin = app.admin().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let plan = app
        .client
        .put(app.url(&format!("/api/v1/admin/orgs/{org}/plan")))
        .bearer_auth(&admin)
        .json(&json!({"plan": "free", "overrides": {"storage_bytes": 5000}}))
        .send()
        .await
        .expect("sent");
    assert_eq!(plan.status(), 200, "{}", plan.text().await.unwrap_or_default());
    let first = app.upload(&org, &owner, "a.txt", &text_of(3000)).await;
    assert_eq!(first.status(), 201);
    let refused = app.upload(&org, &owner, "b.txt", &text_of(3000)).await;
    let problem = assert_problem(refused, 403, "quota_exceeded").await;
    assert_eq!(problem["quota"], "storage_bytes", "{problem}");
    assert_eq!(problem["limit"], 5000);
    assert_eq!(listed(&app, &org, &owner).await.len(), 1, "no row for the refused upload");
    assert_eq!(files_under(folder.path()).len(), 1, "no partial object");
    assert_eq!(storage_used(&app, &org, &owner).await, 3000, "usage is the stored file's bytes only");
    app.stop().await;
}

#[tokio::test]
async fn reading_needs_files_read_and_writing_files_write() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let id = app.uploaded_file(&org, &owner, "a.txt").await;
    let (viewer_id, viewer) = app.user().await;
    app.add_member(&org, &viewer_id, "viewer").await;
    assert_eq!(app.get_auth(&format!("/api/v1/orgs/{org}/files/{id}/download"), &viewer).await.status(), 200);
    let problem = assert_problem(app.upload(&org, &viewer, "b.txt", b"text").await, 403, "forbidden").await;
    assert_eq!(problem["required_permission"], "files:write");
    let (_, outsider) = app.user().await;
    assert_problem(app.get_auth(&format!("/api/v1/orgs/{org}/files/{id}"), &outsider).await, 404, "not_found").await;
    assert_problem(app.upload(&org, &outsider, "c.txt", b"text").await, 404, "not_found").await;
    app.stop().await;
}

/// Accepts webhook POSTs on loopback, answers 204, and keeps their bodies.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
    let log = bodies.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0_u8; 8192];
                loop {
                    let Ok(read) = stream.read(&mut chunk).await else { return };
                    if read == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..read]);
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:").and_then(|v| v.trim().parse::<usize>().ok()))
                        .unwrap_or(0);
                    if buffer.len() < end + 4 + length {
                        continue;
                    }
                    if let Ok(body) = serde_json::from_slice(&buffer[end + 4..end + 4 + length]) {
                        log.lock().expect("log").push(body);
                    }
                    let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await;
                    return;
                }
            });
        }
    });
    (url, bodies)
}

#[tokio::test]
async fn an_upload_emits_file_uploaded_to_the_audit_log_and_to_webhooks() {
    let app = spawn_app_with(&[("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true")]).await;
    let (url, received) = receiver().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let hook = app
        .post_json(
            &format!("/api/v1/orgs/{org}/webhooks"),
            &json!({"url": url, "events": ["file.uploaded", "file.deleted"]}),
            Some(&owner),
        )
        .await;
    assert_eq!(hook.status(), 201);
    let bytes = b"hello, webhooks\n";
    let id = json_of(app.upload(&org, &owner, "hello.txt", bytes).await).await["id"].as_str().expect("id").to_owned();
    let log = json_of(app.get_auth(&format!("/api/v1/orgs/{org}/audit-log?action=file.uploaded"), &owner).await).await;
    let entry = &log["items"][0];
    assert_eq!(entry["target_id"], id.as_str(), "{log}");
    assert_eq!(entry["data"]["name"], "hello.txt");
    assert_eq!(entry["data"]["size"], bytes.len());
    assert_eq!(entry["data"]["sha256"], sha256_hex(bytes));
    let mut delivered = Vec::new();
    for _ in 0..150 {
        delivered = received.lock().expect("log").clone();
        if !delivered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(delivered.len(), 1, "one event delivered: {delivered:?}");
    assert_eq!(delivered[0]["type"], "file.uploaded");
    assert_eq!(delivered[0]["data"]["name"], "hello.txt");
    app.stop().await;
}

#[tokio::test]
async fn presigning_on_a_store_that_cannot_sign_is_409_presign_unsupported() {
    let (app, folder) = app_with_folder(&[]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let path = format!("/api/v1/orgs/{org}/files/presign-upload");
    let response = app
        .post_json(&path, &json!({"name": "a.pdf", "size": 1000, "content_type": "application/pdf"}), Some(&owner))
        .await;
    let problem = assert_problem(response, 409, "conflict").await;
    assert_eq!(problem["reason"], "presign_unsupported", "{problem}");
    // What is checked before the store is asked is still checked.
    let response =
        app.post_json(&path, &json!({"name": "a.html", "size": 10, "content_type": "text/html"}), Some(&owner)).await;
    assert_problem(response, 415, "unsupported_media_type").await;
    let response =
        app.post_json(&path, &json!({"name": "", "size": -1, "content_type": 7, "extra": 1}), Some(&owner)).await;
    let problem = assert_problem(response, 422, "validation_failed").await;
    let mut fields: Vec<&str> =
        problem["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["content_type", "extra", "name", "size"], "{problem}");
    assert!(files_under(folder.path()).is_empty());
    assert_eq!(storage_used(&app, &org, &owner).await, 0, "nothing reserved");
    // Downloads on this store stream through the server (no redirect).
    let id = app.uploaded_file(&org, &owner, "a.txt").await;
    assert_eq!(app.get_auth(&format!("/api/v1/orgs/{org}/files/{id}/download"), &owner).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_repeated_upload_with_an_idempotency_key_is_stored_once() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let bytes = text_of(2 * 1024 * 1024);
    let mut answers = Vec::new();
    for _ in 0..2 {
        let (content_type, body) = multipart_file("once.txt", &bytes);
        let response = app
            .client
            .post(app.url(&format!("/api/v1/orgs/{org}/files")))
            .bearer_auth(&owner)
            .header("content-type", content_type)
            .header("idempotency-key", "upload-once")
            .body(body)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), 201, "a 2 MiB upload with a key is not buffered against the JSON limit");
        answers.push(json_of(response).await);
    }
    assert_eq!(answers[0], answers[1], "the repeat replays the first answer");
    assert_eq!(listed(&app, &org, &owner).await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn deleting_the_org_removes_its_objects() {
    let (app, folder) = app_with_folder(&[]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let other = app.create_org(&owner).await;
    app.uploaded_file(&org, &owner, "a.txt").await;
    app.uploaded_file(&org, &owner, "b.txt").await;
    app.uploaded_file(&other, &owner, "c.txt").await;
    let deleted =
        app.send("DELETE", &format!("/api/v1/orgs/{org}"), ("authorization", &format!("Bearer {owner}")), None).await;
    assert_eq!(deleted.status(), 204);
    let left = files_under(folder.path());
    assert_eq!(left.len(), 1, "only the other org's file is left: {left:?}");
    assert!(left[0].to_string_lossy().contains(&other));
    app.stop().await;
}

#[tokio::test]
async fn readiness_reports_storage() {
    let app = spawn_app().await;
    let ready = json_of(app.get("/health/ready").await).await;
    assert_eq!(ready["checks"]["storage"], "ok", "{ready}");
    app.stop().await;
}

/// The S3-compatible server of `TENANTRY_TEST_S3_URL` with a bucket for this run (moto accepts
/// an unsigned create), and the settings that point a server at a fresh prefix of it.
async fn s3_settings() -> Option<Vec<(String, String)>> {
    let url = tenantry_testkit::storage::s3_url()?.trim_end_matches('/').to_owned();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bucket = std::env::var("TENANTRY_TEST_S3_BUCKET").unwrap_or_else(|_| "tenantry-test".to_owned());
    reqwest::Client::new().put(format!("{url}/{bucket}")).send().await.expect("the S3 server answers");
    Some(vec![
        ("TENANTRY_STORAGE_URL".to_owned(), format!("s3://{bucket}/files-{}", uuid::Uuid::now_v7())),
        ("TENANTRY_S3_ENDPOINT".to_owned(), url),
        ("AWS_ACCESS_KEY_ID".to_owned(), "tenantry-test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "tenantry-test-secret".to_owned()),
        ("AWS_REGION".to_owned(), "us-east-1".to_owned()),
    ])
}

#[tokio::test]
async fn on_s3_a_presigned_upload_put_and_completed_becomes_a_file_and_downloads_redirect() {
    let Some(settings) = s3_settings().await else { return };
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app = spawn_app_with(&pairs).await;
    let ready = json_of(app.get("/health/ready").await).await;
    assert_eq!(ready["checks"]["storage"], "ok", "{ready}");
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let bytes = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n".to_vec();
    let presigned = app
        .post_json(
            &format!("/api/v1/orgs/{org}/files/presign-upload"),
            &json!({"name": "contract.pdf", "size": bytes.len(), "content_type": "application/pdf"}),
            Some(&owner),
        )
        .await;
    assert_eq!(presigned.status(), 201, "{}", presigned.text().await.unwrap_or_default());
    let presigned = json_of(presigned).await;
    let id = presigned["file_id"].as_str().expect("file id").to_owned();
    let upload_url = presigned["upload_url"].as_str().expect("url").to_owned();
    assert!(presigned["expires_at"].is_string());
    // Not a file before completion; completing before the PUT is refused.
    assert_problem(app.get_auth(&format!("/api/v1/orgs/{org}/files/{id}"), &owner).await, 404, "not_found").await;
    let complete = format!("/api/v1/orgs/{org}/files/{id}/complete");
    let early = assert_problem(app.post_json(&complete, &json!({}), Some(&owner)).await, 409, "conflict").await;
    assert_eq!(early["reason"], "upload_missing");
    let put = reqwest::Client::new().put(&upload_url).body(bytes.clone()).send().await.expect("PUT");
    assert!(put.status().is_success(), "the presigned PUT is accepted: {}", put.status());
    let done = app.post_json(&complete, &json!({}), Some(&owner)).await;
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap_or_default());
    let file = json_of(done).await;
    assert_eq!(file["sha256"], sha256_hex(&bytes), "hashed from the stored bytes");
    assert_eq!(
        (file["size"].as_u64(), file["content_type"].as_str()),
        (Some(bytes.len() as u64), Some("application/pdf"))
    );
    let log = json_of(app.get_auth(&format!("/api/v1/orgs/{org}/audit-log?action=file.uploaded"), &owner).await).await;
    assert_eq!(log["items"][0]["target_id"], id.as_str());
    // A download is a redirect to a short-lived presigned GET that answers like the server.
    let download = app.get_auth(&format!("/api/v1/orgs/{org}/files/{id}/download"), &owner).await;
    assert_eq!(download.status(), 302);
    let location = download.headers()["location"].to_str().expect("location").to_owned();
    let expires: u64 = location
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("X-Amz-Expires="))
        .and_then(|v| v.parse().ok())
        .expect("a signed expiry");
    assert!(expires <= 300, "valid for at most 5 minutes: {expires}");
    let fetched = reqwest::Client::new().get(&location).send().await.expect("GET");
    assert_eq!(fetched.status(), 200);
    assert!(
        fetched.headers()["content-disposition"]
            .to_str()
            .expect("text")
            .starts_with("attachment; filename=\"contract.pdf\""),
        "{:?}",
        fetched.headers()
    );
    assert_eq!(fetched.bytes().await.expect("body").as_ref(), bytes.as_slice());
    // A size other than announced discards the upload.
    let presigned = json_of(
        app.post_json(
            &format!("/api/v1/orgs/{org}/files/presign-upload"),
            &json!({"name": "short.pdf", "size": 5000, "content_type": "application/pdf"}),
            Some(&owner),
        )
        .await,
    )
    .await;
    let short_id = presigned["file_id"].as_str().expect("id").to_owned();
    let put =
        reqwest::Client::new().put(presigned["upload_url"].as_str().expect("url")).body(bytes.clone()).send().await;
    assert!(put.expect("PUT").status().is_success());
    let mismatch =
        app.post_json(&format!("/api/v1/orgs/{org}/files/{short_id}/complete"), &json!({}), Some(&owner)).await;
    assert_eq!(assert_problem(mismatch, 409, "conflict").await["reason"], "upload_mismatch");
    assert_eq!(
        storage_used(&app, &org, &owner).await,
        bytes.len() as u64,
        "the discarded upload's reservation is back"
    );
    // Uploads through the server work on S3 too.
    let streamed = text_of(6 * 1024 * 1024);
    let response = app.upload(&org, &owner, "big.txt", &streamed).await;
    assert_eq!(response.status(), 201);
    assert_eq!(json_of(response).await["sha256"], sha256_hex(&streamed));
    app.stop().await;
}

#[tokio::test]
async fn the_sweeper_removes_objects_without_a_row_once_they_are_an_hour_old() {
    let folder = tempfile::tempdir().expect("tempdir");
    let url = format!("file://{}", folder.path().display());
    let (app, clock) = tenantry_tests::spawn_app_with_manual_clock(&[("TENANTRY_STORAGE_URL", url.as_str())]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let kept = app.uploaded_file(&org, &owner, "kept.txt").await;
    // What a crash between storing and recording leaves: an object no row names.
    let orphan = folder.path().join(format!("orgs/{org}/files/{}", uuid::Uuid::now_v7()));
    std::fs::write(&orphan, b"left behind").expect("write the orphan");
    // (A young one is left alone: it may be an upload still committing; the unit test of the
    // sweeper checks the age bound.)
    clock.advance(chrono::Duration::minutes(61));
    for _ in 0..100 {
        if !orphan.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!orphan.exists(), "the orphan is swept within the worker's idle wait");
    let left = files_under(folder.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].ends_with(&kept), "the recorded file stays");
    app.stop().await;
}
