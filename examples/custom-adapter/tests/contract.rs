//! The file cache against Tenantry's exported cache contract suite, and proof that the suite
//! can fail: the broken variant is caught, with the rule it breaks named.

use std::sync::Arc;
use std::time::Duration;

use custom_adapter::{BrokenFileCache, FileCache};
use tenantry_ports::Cache;

#[tokio::test(flavor = "multi_thread")]
async fn the_file_cache_keeps_the_cache_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = FileCache::open(dir.path()).expect("open");
    tenantry_testkit::cache::run_contract(|| {
        let cache = cache.clone();
        async move { Arc::new(cache) as Arc<dyn Cache> }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_handles_on_one_folder_share_entries_and_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (a, b) = (FileCache::open(dir.path()).expect("open"), FileCache::open(dir.path()).expect("open"));
    a.set("shared", b"from a", Some(Duration::from_secs(60))).await.expect("set");
    assert_eq!(b.get("shared").await.expect("get"), Some(b"from a".to_vec()));
    let counts = futures_join(&a, &b).await;
    assert_eq!(counts, 40, "no increment is lost between handles");
}

async fn futures_join(a: &FileCache, b: &FileCache) -> i64 {
    let mut tasks = Vec::new();
    for cache in [a.clone(), b.clone()] {
        for _ in 0..20 {
            let cache = cache.clone();
            tasks.push(tokio::spawn(async move { cache.increment("counter", 1, None).await.expect("incr") }));
        }
    }
    let mut most = 0;
    for task in tasks {
        most = most.max(task.await.expect("task"));
    }
    most
}

#[tokio::test(flavor = "multi_thread")]
async fn the_suite_fails_a_cache_that_ignores_ttls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = BrokenFileCache(FileCache::open(dir.path()).expect("open"));
    // The suite panics on the first broken rule; run it as a task to catch that.
    let run = tokio::spawn(async move {
        tenantry_testkit::cache::run_contract(|| {
            let cache = broken.clone();
            async move { Arc::new(cache) as Arc<dyn Cache> }
        })
        .await;
    });
    let failure = run.await.expect_err("the suite must fail on a cache that ignores TTLs");
    assert!(failure.is_panic(), "the suite reports by panicking: {failure}");
    let panic = failure.into_panic();
    let message = panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(message.contains("ttl"), "the failure names the TTL rule: {message:?}");
}
