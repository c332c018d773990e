//! The storage contract on every backend: memory, a local folder, and a real S3-compatible
//! server when `TENANTRY_TEST_S3_URL` is set (always in CI, where `.ci/run` starts moto).

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tenantry_adapter_storage::{ObjectStoreStorage, S3Config, S3Credentials};
use tenantry_ports::{ChunkSource, ObjectStorage, StorageError};
use tenantry_testkit::storage::{PatternSource, Signing, fresh_key, run_contract, s3_url};
use uuid::Uuid;

const MIB: u64 = 1024 * 1024;

#[tokio::test]
async fn in_memory_storage_meets_the_contract() {
    run_contract(Arc::new(ObjectStoreStorage::in_memory()), Signing::Unsupported).await;
}

#[tokio::test]
async fn local_storage_meets_the_contract_and_leaves_no_partial_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("data/files");
    run_contract(Arc::new(ObjectStoreStorage::local(&root).expect("local store")), Signing::Unsupported).await;
    for path in files_under(&root) {
        let relative = path.strip_prefix(&root).expect("under the root").to_string_lossy().into_owned();
        assert!(relative.starts_with("orgs/"), "only objects of orgs are left: {relative}");
        assert!(!relative.contains('#'), "no staging file of an unfinished upload is left: {relative}");
    }
}

#[tokio::test]
async fn a_dropped_local_upload_leaves_no_partial_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = ObjectStoreStorage::local(dir.path()).expect("local store");
    drop_upload_midway(&store).await;
    wait_until("the staging file is removed", || files_under(dir.path()).is_empty()).await;
}

#[tokio::test]
async fn s3_storage_meets_the_contract_and_leaves_no_multipart_upload() {
    let Some(s3) = S3::connect().await else { return };
    run_contract(Arc::new(s3.store()), Signing::Signs).await;
    assert_eq!(s3.open_uploads().await, 0, "every aborted multipart upload is gone");
}

#[tokio::test]
async fn a_dropped_s3_upload_is_aborted() {
    let Some(s3) = S3::connect().await else { return };
    drop_upload_midway(&s3.store()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while s3.open_uploads().await > 0 {
        assert!(Instant::now() < deadline, "the dropped multipart upload was not aborted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_unreachable_s3_server_fails_the_probe_quickly() {
    // A loopback port nobody listens on: connection refused, retried a few times, then an error.
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let config = S3::config(&format!("http://127.0.0.1:{port}"), "nowhere", None);
    let store = ObjectStoreStorage::s3(&config).expect("built without contacting the server");
    let started = Instant::now();
    let result = store.probe().await;
    assert!(matches!(result, Err(StorageError::Unavailable(_))), "unreachable is Unavailable: {result:?}");
    assert!(started.elapsed() < Duration::from_secs(10), "answered in {:?}", started.elapsed());
}

#[test]
fn a_bucket_is_required() {
    let config = S3::config("http://127.0.0.1:1", "", None);
    assert!(ObjectStoreStorage::s3(&config).is_err(), "no bucket, no store");
}

/// Starts an upload that turns multipart (7 MiB pulled), then drops it while the source hangs,
/// as when a client goes away in the middle of a large upload.
async fn drop_upload_midway(store: &ObjectStoreStorage) {
    let (reached, mut reached_rx) = tokio::sync::mpsc::channel(1);
    let source = Hanging { inner: PatternSource::new(64 * MIB, MIB), left: 7, reached };
    let key = fresh_key();
    tokio::select! {
        result = store.put(&key, Box::new(source), u64::MAX) => panic!("the upload cannot finish: {result:?}"),
        _ = reached_rx.recv() => {}
    }
    assert!(matches!(store.head(&key).await, Err(StorageError::NotFound)), "nothing is visible");
}

/// Yields `left` chunks of `inner`, says so on `reached`, then never answers again.
struct Hanging {
    inner: PatternSource,
    left: usize,
    reached: tokio::sync::mpsc::Sender<()>,
}

#[async_trait::async_trait]
impl ChunkSource for Hanging {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, StorageError> {
        if self.left == 0 {
            let _ = self.reached.send(()).await;
            std::future::pending::<()>().await;
        }
        self.left -= 1;
        self.inner.next_chunk().await
    }
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() { stack.push(path) } else { found.push(path) }
        }
    }
    found
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The test server: `TENANTRY_TEST_S3_URL` (path-style, e.g. moto or MinIO), the bucket
/// `TENANTRY_TEST_S3_BUCKET` (default `tenantry-test`, created here when the server allows
/// an anonymous create, as moto does), and a fresh prefix per test.
struct S3 {
    url: String,
    bucket: String,
    prefix: String,
}

impl S3 {
    async fn connect() -> Option<Self> {
        // The test's own reqwest clients (bucket creation, presigned URLs) need a process-wide
        // rustls provider; the adapter configures its own.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = s3_url()?.trim_end_matches('/').to_owned();
        let bucket = std::env::var("TENANTRY_TEST_S3_BUCKET").unwrap_or_else(|_| "tenantry-test".to_owned());
        // moto accepts an unsigned CreateBucket; a server that refuses it must have the bucket.
        reqwest::Client::new()
            .put(format!("{url}/{bucket}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("the S3 server at {url} is unreachable: {e}"));
        Some(Self { url, bucket, prefix: format!("test-{}", Uuid::now_v7()) })
    }

    fn config(url: &str, bucket: &str, prefix: Option<String>) -> S3Config {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        S3Config {
            bucket: bucket.to_owned(),
            region: var("AWS_REGION", "us-east-1"),
            endpoint: Some(url.to_owned()),
            credentials: Some(S3Credentials {
                access_key_id: var("AWS_ACCESS_KEY_ID", "tenantry-test"),
                secret_access_key: SecretString::from(var("AWS_SECRET_ACCESS_KEY", "tenantry-test-secret")),
                session_token: None,
            }),
            path_style: true,
            allow_http: true,
            prefix,
        }
    }

    fn store(&self) -> ObjectStoreStorage {
        ObjectStoreStorage::s3(&Self::config(&self.url, &self.bucket, Some(self.prefix.clone()))).expect("S3 store")
    }

    /// Multipart uploads still open under this test's prefix (moto answers ListMultipartUploads
    /// without a signature).
    async fn open_uploads(&self) -> usize {
        let listing = reqwest::Client::new()
            .get(format!("{}/{}?uploads&prefix={}/", self.url, self.bucket, self.prefix))
            .send()
            .await
            .expect("list multipart uploads")
            .text()
            .await
            .expect("listing body");
        listing.matches("<Upload>").count()
    }
}
