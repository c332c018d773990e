//! The [`Cache`] contract.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tenantry_ports::{Cache, CacheError};
use uuid::Uuid;

/// Runs every case against caches built by `make`. Each case uses its own random key prefix,
/// so suites may run in parallel against one shared server.
pub async fn run_contract<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Cache>>,
{
    get_of_a_missing_key_is_none(make().await).await;
    set_then_get_returns_the_bytes(make().await).await;
    get_many_answers_each_key_in_order(make().await).await;
    set_replaces_the_previous_value(make().await).await;
    set_if_absent_only_stores_once(make().await).await;
    delete_reports_whether_something_was_removed(make().await).await;
    increment_counts_from_zero_and_keeps_the_first_ttl(make().await).await;
    increment_of_a_non_integer_is_refused(make().await).await;
    ttl_reports_time_left(make().await).await;
    concurrent_increments_are_not_lost(make().await).await;
    binary_values_survive(make().await).await;
    ping_answers(make().await).await;
}

fn key(case: &str) -> String {
    format!("contract:{}:{case}", Uuid::now_v7())
}

async fn get_of_a_missing_key_is_none(cache: Arc<dyn Cache>) {
    assert_eq!(cache.get(&key("missing")).await.expect("get"), None, "a missing key reads as None");
}

async fn set_then_get_returns_the_bytes(cache: Arc<dyn Cache>) {
    let k = key("set-get");
    cache.set(&k, b"hello", None).await.expect("set");
    assert_eq!(cache.get(&k).await.expect("get"), Some(b"hello".to_vec()));
}

async fn get_many_answers_each_key_in_order(cache: Arc<dyn Cache>) {
    let (a, b, missing) = (key("many-a"), key("many-b"), key("many-missing"));
    cache.set(&a, b"1", None).await.expect("set");
    cache.set(&b, b"2", Some(Duration::from_secs(60))).await.expect("set");
    let got = cache.get_many(&[b.clone(), missing, a.clone(), b.clone()]).await.expect("get_many");
    assert_eq!(got, vec![Some(b"2".to_vec()), None, Some(b"1".to_vec()), Some(b"2".to_vec())]);
    assert!(cache.get_many(&[]).await.expect("get_many").is_empty(), "no keys, no values");
}

async fn set_replaces_the_previous_value(cache: Arc<dyn Cache>) {
    let k = key("replace");
    cache.set(&k, b"one", None).await.expect("set");
    cache.set(&k, b"two", Some(Duration::from_secs(60))).await.expect("set");
    assert_eq!(cache.get(&k).await.expect("get"), Some(b"two".to_vec()));
}

async fn set_if_absent_only_stores_once(cache: Arc<dyn Cache>) {
    let k = key("nx");
    assert!(cache.set_if_absent(&k, b"first", Some(Duration::from_secs(60))).await.expect("nx"));
    assert!(!cache.set_if_absent(&k, b"second", None).await.expect("nx"), "second writer must lose");
    assert_eq!(cache.get(&k).await.expect("get"), Some(b"first".to_vec()), "the first value stays");
}

async fn delete_reports_whether_something_was_removed(cache: Arc<dyn Cache>) {
    let k = key("delete");
    assert!(!cache.delete(&k).await.expect("delete"), "deleting nothing reports false");
    cache.set(&k, b"v", None).await.expect("set");
    assert!(cache.delete(&k).await.expect("delete"), "deleting a key reports true");
    assert_eq!(cache.get(&k).await.expect("get"), None);
}

async fn increment_counts_from_zero_and_keeps_the_first_ttl(cache: Arc<dyn Cache>) {
    let k = key("incr");
    assert_eq!(cache.increment(&k, 1, Some(Duration::from_secs(100))).await.expect("incr"), 1);
    assert_eq!(cache.increment(&k, 5, Some(Duration::from_secs(10_000))).await.expect("incr"), 6);
    assert_eq!(cache.increment(&k, -2, None).await.expect("incr"), 4);
    let ttl = cache.ttl(&k).await.expect("ttl").expect("the counter has an expiry");
    assert!(ttl <= Duration::from_secs(100), "a later increment must not extend the window: {ttl:?}");
    assert!(ttl > Duration::from_secs(90), "the first ttl is kept: {ttl:?}");
    assert_eq!(cache.get(&k).await.expect("get"), Some(b"4".to_vec()), "counters read as decimal text");
}

async fn increment_of_a_non_integer_is_refused(cache: Arc<dyn Cache>) {
    let k = key("incr-text");
    cache.set(&k, b"not a number", None).await.expect("set");
    let result = cache.increment(&k, 1, None).await;
    assert!(matches!(result, Err(CacheError::NotAnInteger)), "got {result:?}");
}

async fn ttl_reports_time_left(cache: Arc<dyn Cache>) {
    let k = key("ttl");
    assert_eq!(cache.ttl(&k).await.expect("ttl"), None, "absent key has no ttl");
    cache.set(&k, b"v", None).await.expect("set");
    assert_eq!(cache.ttl(&k).await.expect("ttl"), None, "a key without expiry has no ttl");
    cache.set(&k, b"v", Some(Duration::from_secs(30))).await.expect("set");
    let ttl = cache.ttl(&k).await.expect("ttl").expect("a key set with a ttl reports the time it has left");
    assert!(ttl > Duration::from_secs(25) && ttl <= Duration::from_secs(30), "{ttl:?}");
}

async fn concurrent_increments_are_not_lost(cache: Arc<dyn Cache>) {
    let k = Arc::new(key("concurrent"));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            let k = k.clone();
            async move { cache.increment(&k, 1, Some(Duration::from_secs(60))).await.expect("incr") }
        })
        .collect();
    let mut seen: Vec<i64> = join_all(tasks).await;
    seen.sort_unstable();
    assert_eq!(seen, (1..=50).collect::<Vec<i64>>(), "every increment returns a distinct count");
}

async fn binary_values_survive(cache: Arc<dyn Cache>) {
    let k = key("binary");
    let value: Vec<u8> = (0..=255).collect();
    cache.set(&k, &value, None).await.expect("set");
    assert_eq!(cache.get(&k).await.expect("get"), Some(value));
}

async fn ping_answers(cache: Arc<dyn Cache>) {
    cache.ping().await.expect("a working cache answers ping");
}
