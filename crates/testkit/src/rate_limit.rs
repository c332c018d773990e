//! The [`RateLimitStore`] contract: GCRA buckets that answer exactly as the domain's reference
//! ([`tenantry_domain::rate::take`] after [`tenantry_domain::rate::give_back`]) on every
//! store, and stay exact when many replicas take from one bucket at once. Time is passed in
//! (`now_us`), so no case sleeps.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tenantry_domain::rate::{RatePolicy, give_back, take};
use tenantry_ports::RateLimitStore;
use uuid::Uuid;

/// Runs every case against stores built by `make`. Each case uses its own random keys, so
/// suites may run in parallel against one shared server.
pub async fn run_contract<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn RateLimitStore>>,
{
    a_burst_of_the_limit_passes_then_one_interval_must_pass(make().await).await;
    giving_back_restores_tokens(make().await).await;
    a_batch_gets_what_is_available(make().await).await;
    tokens_come_back_as_time_passes(make().await).await;
    buckets_are_isolated_by_key(make().await).await;
    answers_match_the_reference_algorithm(make().await).await;
    concurrent_takes_grant_exactly_the_burst(make().await).await;
}

const SECOND_US: i64 = 1_000_000;
const FIVE_PER_MINUTE: RatePolicy = RatePolicy { limit: 5, period: Duration::from_secs(60) };

fn key(case: &str) -> String {
    format!("contract:{}:{case}", Uuid::now_v7())
}

/// A realistic clock reading (microseconds since the epoch, ~1.8e15), so stores that keep
/// numbers as doubles are exercised at the magnitudes production uses.
fn start() -> i64 {
    1_800_000_000 * SECOND_US + 123_456
}

async fn a_burst_of_the_limit_passes_then_one_interval_must_pass(store: Arc<dyn RateLimitStore>) {
    let k = key("burst");
    let now = start();
    for n in 0..5 {
        let grant = store.acquire(&k, FIVE_PER_MINUTE, 1, 0, now).await.expect("acquire");
        assert_eq!((grant.granted, grant.remaining), (1, 4 - n), "request {n}");
        assert_eq!(grant.retry_after, Duration::ZERO);
    }
    let refused = store.acquire(&k, FIVE_PER_MINUTE, 1, 0, now).await.expect("acquire");
    assert_eq!((refused.granted, refused.remaining), (0, 0), "the burst is the limit");
    assert_eq!(refused.retry_after, Duration::from_secs(12), "one token every 60s / 5");
    assert_eq!(refused.reset_after, Duration::from_secs(60), "full again after the whole period");
    assert_eq!(refused.tat_us, now + 60 * SECOND_US);
}

async fn giving_back_restores_tokens(store: Arc<dyn RateLimitStore>) {
    let k = key("give-back");
    let now = start();
    let lease = store.acquire(&k, FIVE_PER_MINUTE, 4, 0, now).await.expect("acquire");
    assert_eq!((lease.granted, lease.remaining), (4, 1));
    let again = store.acquire(&k, FIVE_PER_MINUTE, 5, 3, now).await.expect("acquire");
    assert_eq!((again.granted, again.remaining), (4, 0), "1 left plus 3 given back");
    let too_much = store.acquire(&k, FIVE_PER_MINUTE, 10, 50, now).await.expect("acquire");
    assert_eq!((too_much.granted, too_much.remaining), (5, 0), "giving back never makes more than a full bucket");
}

async fn a_batch_gets_what_is_available(store: Arc<dyn RateLimitStore>) {
    let k = key("batch");
    let now = start();
    let first = store.acquire(&k, FIVE_PER_MINUTE, 3, 0, now).await.expect("acquire");
    assert_eq!((first.granted, first.remaining), (3, 2));
    let second = store.acquire(&k, FIVE_PER_MINUTE, 3, 0, now).await.expect("acquire");
    assert_eq!((second.granted, second.remaining), (2, 0), "the part available");
    assert_eq!(second.retry_after, Duration::ZERO, "a partial grant is a grant");
    let third = store.acquire(&k, FIVE_PER_MINUTE, 3, 0, now).await.expect("acquire");
    assert_eq!(third.granted, 0);
}

async fn tokens_come_back_as_time_passes(store: Arc<dyn RateLimitStore>) {
    let k = key("refill");
    let now = start();
    assert_eq!(store.acquire(&k, FIVE_PER_MINUTE, 5, 0, now).await.expect("acquire").granted, 5);
    let early = store.acquire(&k, FIVE_PER_MINUTE, 1, 0, now + 12 * SECOND_US - 1).await.expect("acquire");
    assert_eq!(early.granted, 0, "a microsecond early");
    assert_eq!(early.retry_after, Duration::from_millis(1), "at least a millisecond to wait");
    let one = store.acquire(&k, FIVE_PER_MINUTE, 5, 0, now + 12 * SECOND_US).await.expect("acquire");
    assert_eq!((one.granted, one.remaining), (1, 0), "one token per interval");
    let later = now + 12 * SECOND_US + 120 * SECOND_US;
    let full = store.acquire(&k, FIVE_PER_MINUTE, 9, 0, later).await.expect("acquire");
    assert_eq!((full.granted, full.remaining), (5, 0), "a long pause refills the bucket, no more");
}

async fn buckets_are_isolated_by_key(store: Arc<dyn RateLimitStore>) {
    let (a, b) = (key("a"), key("b"));
    let now = start();
    assert_eq!(store.acquire(&a, FIVE_PER_MINUTE, 5, 0, now).await.expect("acquire").granted, 5);
    let other = store.acquire(&b, FIVE_PER_MINUTE, 1, 0, now).await.expect("acquire");
    assert_eq!((other.granted, other.remaining), (1, 4), "another key has its own bucket");
}

async fn answers_match_the_reference_algorithm(store: Arc<dyn RateLimitStore>) {
    let policies = [
        FIVE_PER_MINUTE,
        RatePolicy { limit: 120, period: Duration::from_secs(60) },
        RatePolicy { limit: 7, period: Duration::from_secs(1) },
        RatePolicy { limit: 100_000, period: Duration::from_secs(86_400) },
    ];
    for policy in policies {
        let k = key("reference");
        let mut tat: Option<i64> = None;
        let mut now = start();
        // A fixed pseudo-random walk: the same steps on every run and every store.
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for step in 0..120 {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let want = u32::try_from((seed >> 33) % 4).expect("small");
            let back = u32::try_from((seed >> 40) % 3).expect("small") * u32::from(step % 5 == 0);
            let advance = i64::try_from((seed >> 20) % 4_000_000).expect("small");
            now += advance;
            let expected = take(policy, give_back(policy, tat, now, back), now, want);
            let got = store.acquire(&k, policy, want, back, now).await.expect("acquire");
            assert_eq!(got, expected, "{policy} step {step}: want {want}, give back {back}");
            tat = Some(expected.tat_us);
        }
    }
}

async fn concurrent_takes_grant_exactly_the_burst(store: Arc<dyn RateLimitStore>) {
    let k = Arc::new(key("concurrent"));
    let now = start();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let store = store.clone();
            let k = k.clone();
            async move { store.acquire(&k, FIVE_PER_MINUTE, 1, 0, now).await.expect("acquire") }
        })
        .collect();
    let grants = join_all(calls).await;
    let granted: u32 = grants.iter().map(|g| g.granted).sum();
    assert_eq!(granted, 5, "exactly the burst, however the calls interleave");
    let mut remaining: Vec<u32> = grants.iter().filter(|g| g.granted == 1).map(|g| g.remaining).collect();
    remaining.sort_unstable();
    assert_eq!(remaining, vec![0, 1, 2, 3, 4], "each grant saw its own bucket");
}
