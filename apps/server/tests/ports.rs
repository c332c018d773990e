//! The adapters the server wires for readiness and background work, against the test kit's
//! `HealthProbe` and `BackgroundTasks` suites: every probe the server can put in
//! `/health/ready`, up and (where a dependency can be down) unreachable.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use tenantry_adapter_mail::{FileMailProbe, SmtpMailer, SmtpProbe};
use tenantry_adapter_memory::{InMemoryCache, SystemClock};
use tenantry_adapter_redis::{RedisCache, RedisConfig, RedisPool};
use tenantry_adapter_sql::{SqlConfig, SqlDatabase, SqlHealthProbe};
use tenantry_adapter_storage::ObjectStoreStorage;
use tenantry_application::{CacheProbe, StorageProbe};
use tenantry_ports::{BackgroundTasks, Cache, HealthProbe, ObjectStorage};
use tenantry_server::tasks::TrackedTasks;
use tenantry_testkit::health::{run_contract, run_unreachable_contract};
use tenantry_testkit::smtp::SmtpSink;

/// A readiness probe must answer well inside the orchestrator's probe timeout.
const BOUND: Duration = Duration::from_secs(5);

/// A loopback port nothing listens on.
async fn closed_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("address").port()
}

#[tokio::test]
async fn the_sql_probe_keeps_the_probe_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("probe.db").display());
    let database = SqlDatabase::connect(&SqlConfig::new(SecretString::from(url))).await.expect("connects");
    database.migrate().await.expect("migrates");
    run_contract(Arc::new(SqlHealthProbe::new(database))).await;
}

#[tokio::test]
async fn the_cache_probe_keeps_the_probe_contract_in_memory_and_on_redis() {
    let memory: Arc<dyn Cache> = Arc::new(InMemoryCache::new(Arc::new(SystemClock)));
    run_contract(Arc::new(CacheProbe::new(memory))).await;

    let config =
        |url: String| RedisConfig { timeout: Duration::from_millis(500), ..RedisConfig::new(SecretString::from(url)) };
    let down = RedisPool::connect(&config(format!("redis://127.0.0.1:{}", closed_port().await))).expect("pool");
    run_unreachable_contract(Arc::new(CacheProbe::new(Arc::new(RedisCache::new(down)))), BOUND).await;
    if let Some(url) = tenantry_testkit::env::redis_url() {
        let pool = RedisPool::connect(&config(url)).expect("pool");
        run_contract(Arc::new(CacheProbe::new(Arc::new(RedisCache::new(pool))))).await;
    }
}

#[tokio::test]
async fn the_storage_probe_keeps_the_probe_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let local: Arc<dyn ObjectStorage> = Arc::new(ObjectStoreStorage::local(dir.path()).expect("local store"));
    run_contract(Arc::new(StorageProbe::new(local))).await;
    run_contract(Arc::new(StorageProbe::new(Arc::new(ObjectStoreStorage::in_memory())))).await;
}

#[tokio::test]
async fn the_mail_probes_keep_the_probe_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    run_contract(Arc::new(FileMailProbe(dir.path().to_path_buf()))).await;
    run_unreachable_contract(Arc::new(FileMailProbe(dir.path().join("missing"))), BOUND).await;

    let sink = SmtpSink::start().await;
    let smtp = SmtpMailer::new(&sink.url(), "Tenantry <noreply@example.com>", BOUND).expect("mailer");
    run_contract(Arc::new(SmtpProbe(Arc::new(smtp)))).await;
    let down = format!("smtp://127.0.0.1:{}", closed_port().await);
    let smtp = SmtpMailer::new(&down, "Tenantry <noreply@example.com>", Duration::from_secs(1)).expect("mailer");
    run_unreachable_contract(Arc::new(SmtpProbe(Arc::new(smtp))) as Arc<dyn HealthProbe>, BOUND).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tracked_tasks_keep_the_background_tasks_contract() {
    let tasks = Arc::new(TrackedTasks::default());
    tenantry_testkit::tasks::run_contract(tasks.clone() as Arc<dyn BackgroundTasks>).await;
}
