//! The [`UsageStore`] contract: counters that never pass their limit, however many callers
//! consume at once. Every adapter runs it (in memory, Redis, SQLite, PostgreSQL), because the
//! quota rules are only as exact as the least exact store behind them.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::join_all;
use tenantry_domain::OrgId;
use tenantry_domain::quota::Quota;
use tenantry_ports::{Consumed, OrgRepository, Take, UsageKey, UsageStore, UserRepository};
use uuid::Uuid;

use crate::support;

/// Where a case gets the organizations its counters belong to.
#[derive(Clone)]
pub enum OrgSource {
    /// Any id will do (stores without a foreign key to organizations).
    Any,
    /// Real organizations, created through these repositories (stores whose counters reference
    /// the organization's row).
    Stored {
        /// Accounts, for the owners.
        users: Arc<dyn UserRepository>,
        /// Organizations.
        orgs: Arc<dyn OrgRepository>,
    },
}

impl OrgSource {
    async fn org(&self) -> OrgId {
        match self {
            Self::Any => OrgId::from_uuid(Uuid::now_v7()),
            Self::Stored { users, orgs } => {
                support::stored_org(users.as_ref(), orgs.as_ref(), support::now()).await.0.id
            }
        }
    }
}

/// The store under test and where its organizations come from.
#[derive(Clone)]
pub struct UsageStores {
    /// The counters.
    pub usage: Arc<dyn UsageStore>,
    /// Organizations for the counters.
    pub orgs: OrgSource,
}

/// Runs every case against stores built by `make`. Each case uses its own organizations and
/// periods, so cases may share one database or one Redis.
pub async fn run_contract<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = UsageStores>,
{
    exactly_grants_up_to_the_limit_and_refuses_past_it(make().await).await;
    exactly_more_than_the_limit_on_a_fresh_counter_is_refused(make().await).await;
    up_to_grants_the_part_that_fits_and_nothing_when_full(make().await).await;
    no_limit_means_unlimited(make().await).await;
    release_gives_back_but_never_below_zero(make().await).await;
    unknown_counters_read_as_zero_in_order(make().await).await;
    counters_are_isolated_by_org_quota_and_period(make().await).await;
    an_expiry_in_the_future_keeps_the_counter(make().await).await;
    concurrent_single_units_stop_exactly_at_the_limit(make().await).await;
    concurrent_mixed_sizes_never_pass_the_limit(make().await).await;
    concurrent_up_to_fills_the_limit_exactly(make().await).await;
}

async fn key(stores: &UsageStores, quota: Quota) -> UsageKey {
    UsageKey { org_id: stores.orgs.org().await, quota, period: period() }
}

fn period() -> String {
    Uuid::now_v7().simple().to_string()
}

async fn used(stores: &UsageStores, key: &UsageKey) -> u64 {
    let all = stores.usage.used(std::slice::from_ref(key)).await.expect("used");
    assert_eq!(all.len(), 1, "one answer per key");
    all[0]
}

async fn exactly_grants_up_to_the_limit_and_refuses_past_it(stores: UsageStores) {
    let k = key(&stores, Quota::FileUploads).await;
    let u = &stores.usage;
    assert_eq!(
        u.consume(&k, Take::Exactly(6), Some(10), None).await.expect("consume"),
        Consumed { granted: 6, used: 6 }
    );
    assert_eq!(
        u.consume(&k, Take::Exactly(4), Some(10), None).await.expect("consume"),
        Consumed { granted: 4, used: 10 }
    );
    assert_eq!(
        u.consume(&k, Take::Exactly(1), Some(10), None).await.expect("consume"),
        Consumed { granted: 0, used: 10 },
        "a refusal reports the counter as it is"
    );
    assert_eq!(used(&stores, &k).await, 10, "a refusal adds nothing");
    u.release(&k, 3).await.expect("release");
    assert_eq!(
        u.consume(&k, Take::Exactly(4), Some(10), None).await.expect("consume"),
        Consumed { granted: 0, used: 7 },
        "all or nothing"
    );
    assert_eq!(
        u.consume(&k, Take::Exactly(3), Some(10), None).await.expect("consume"),
        Consumed { granted: 3, used: 10 }
    );
    assert_eq!(
        u.consume(&k, Take::Exactly(1), Some(12), None).await.expect("consume"),
        Consumed { granted: 1, used: 11 },
        "the limit is the caller's, per call (a plan change)"
    );
    assert_eq!(
        u.consume(&k, Take::Exactly(1), Some(5), None).await.expect("consume"),
        Consumed { granted: 0, used: 11 },
        "a lowered limit refuses without touching the counter"
    );
}

async fn exactly_more_than_the_limit_on_a_fresh_counter_is_refused(stores: UsageStores) {
    let k = key(&stores, Quota::StorageBytes).await;
    assert_eq!(
        stores.usage.consume(&k, Take::Exactly(11), Some(10), None).await.expect("consume"),
        Consumed { granted: 0, used: 0 }
    );
    assert_eq!(used(&stores, &k).await, 0);
    let zero = key(&stores, Quota::StorageBytes).await;
    assert_eq!(
        stores.usage.consume(&zero, Take::Exactly(1), Some(0), None).await.expect("consume"),
        Consumed { granted: 0, used: 0 },
        "a limit of zero allows nothing"
    );
}

async fn up_to_grants_the_part_that_fits_and_nothing_when_full(stores: UsageStores) {
    let k = key(&stores, Quota::ApiCalls).await;
    let u = &stores.usage;
    assert_eq!(
        u.consume(&k, Take::UpTo(30), Some(100), None).await.expect("consume"),
        Consumed { granted: 30, used: 30 }
    );
    assert_eq!(
        u.consume(&k, Take::UpTo(50), Some(100), None).await.expect("consume"),
        Consumed { granted: 50, used: 80 }
    );
    assert_eq!(
        u.consume(&k, Take::UpTo(50), Some(100), None).await.expect("consume"),
        Consumed { granted: 20, used: 100 },
        "the part that fits"
    );
    assert_eq!(
        u.consume(&k, Take::UpTo(50), Some(100), None).await.expect("consume"),
        Consumed { granted: 0, used: 100 },
        "nothing when full"
    );
    let fresh = key(&stores, Quota::ApiCalls).await;
    assert_eq!(
        u.consume(&fresh, Take::UpTo(500), Some(100), None).await.expect("consume"),
        Consumed { granted: 100, used: 100 },
        "a fresh counter grants up to the limit"
    );
    let none = key(&stores, Quota::ApiCalls).await;
    assert_eq!(
        u.consume(&none, Take::UpTo(5), Some(0), None).await.expect("consume"),
        Consumed { granted: 0, used: 0 },
        "a limit of zero grants nothing"
    );
    assert_eq!(used(&stores, &none).await, 0);
}

async fn no_limit_means_unlimited(stores: UsageStores) {
    let k = key(&stores, Quota::ApiCalls).await;
    let u = &stores.usage;
    assert_eq!(
        u.consume(&k, Take::Exactly(1_000_000), None, None).await.expect("consume"),
        Consumed { granted: 1_000_000, used: 1_000_000 }
    );
    assert_eq!(
        u.consume(&k, Take::UpTo(7), None, None).await.expect("consume"),
        Consumed { granted: 7, used: 1_000_007 }
    );
    let big = key(&stores, Quota::StorageBytes).await;
    let tib = 1u64 << 40;
    assert_eq!(
        u.consume(&big, Take::Exactly(tib), None, None).await.expect("consume"),
        Consumed { granted: tib, used: tib }
    );
    assert_eq!(
        u.consume(&big, Take::Exactly(1), Some(tib), None).await.expect("consume"),
        Consumed { granted: 0, used: tib },
        "byte-sized counters are exact"
    );
}

async fn release_gives_back_but_never_below_zero(stores: UsageStores) {
    let k = key(&stores, Quota::StorageBytes).await;
    let u = &stores.usage;
    u.consume(&k, Take::Exactly(10), Some(100), None).await.expect("consume");
    u.release(&k, 4).await.expect("release");
    assert_eq!(used(&stores, &k).await, 6);
    u.release(&k, 50).await.expect("release");
    assert_eq!(used(&stores, &k).await, 0, "never below zero");
    assert_eq!(
        u.consume(&k, Take::Exactly(100), Some(100), None).await.expect("consume"),
        Consumed { granted: 100, used: 100 },
        "an over-release leaves no credit beyond the limit"
    );
    let unknown = key(&stores, Quota::StorageBytes).await;
    u.release(&unknown, 3).await.expect("releasing an unknown counter is a no-op");
    assert_eq!(used(&stores, &unknown).await, 0);
}

async fn unknown_counters_read_as_zero_in_order(stores: UsageStores) {
    let a = key(&stores, Quota::FileUploads).await;
    let b = key(&stores, Quota::FileUploads).await;
    let missing = key(&stores, Quota::FileUploads).await;
    stores.usage.consume(&a, Take::Exactly(2), None, None).await.expect("consume");
    stores.usage.consume(&b, Take::Exactly(5), None, None).await.expect("consume");
    let got = stores.usage.used(&[b.clone(), missing, a.clone(), b.clone()]).await.expect("used");
    assert_eq!(got, vec![5, 0, 2, 5], "in order, 0 for a counter never written");
    assert!(stores.usage.used(&[]).await.expect("used").is_empty(), "no keys, no counters");
}

async fn counters_are_isolated_by_org_quota_and_period(stores: UsageStores) {
    let base = key(&stores, Quota::ApiCalls).await;
    let other_org = UsageKey { org_id: stores.orgs.org().await, ..base.clone() };
    let other_quota = UsageKey { quota: Quota::FileUploads, ..base.clone() };
    let other_period = UsageKey { period: period(), ..base.clone() };
    for (n, k) in [&base, &other_org, &other_quota, &other_period].into_iter().enumerate() {
        let units = u64::try_from(n).expect("small") + 1;
        stores.usage.consume(k, Take::Exactly(units), Some(10), None).await.expect("consume");
    }
    let got = stores.usage.used(&[base, other_org, other_quota, other_period.clone()]).await.expect("used");
    assert_eq!(got, vec![1, 2, 3, 4], "each counter only sees its own units");
    stores.usage.release(&other_period, 4).await.expect("release");
    assert_eq!(used(&stores, &other_period).await, 0);
}

async fn an_expiry_in_the_future_keeps_the_counter(stores: UsageStores) {
    let k = key(&stores, Quota::ApiCalls).await;
    let later = support::now() + chrono::Duration::days(40);
    stores.usage.consume(&k, Take::Exactly(3), Some(10), Some(later)).await.expect("consume");
    assert_eq!(
        stores.usage.consume(&k, Take::UpTo(20), Some(10), Some(later)).await.expect("consume"),
        Consumed { granted: 7, used: 10 }
    );
    assert_eq!(used(&stores, &k).await, 10);
}

async fn concurrent_single_units_stop_exactly_at_the_limit(stores: UsageStores) {
    let k = Arc::new(key(&stores, Quota::ApiCalls).await);
    stores.usage.consume(&k, Take::Exactly(45), Some(50), None).await.expect("consume");
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let usage = stores.usage.clone();
            let k = k.clone();
            async move { usage.consume(&k, Take::Exactly(1), Some(50), None).await.expect("consume") }
        })
        .collect();
    let results = join_all(calls).await;
    let granted: u64 = results.iter().map(|c| c.granted).sum();
    assert_eq!(granted, 5, "exactly the 5 units left, however the calls interleave");
    let mut counts: Vec<u64> = results.iter().filter(|c| c.granted == 1).map(|c| c.used).collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![46, 47, 48, 49, 50], "each grant saw its own count");
    assert!(results.iter().filter(|c| c.granted == 0).all(|c| c.used == 50), "refusals report the full counter");
    assert_eq!(used(&stores, &k).await, 50);
}

async fn concurrent_mixed_sizes_never_pass_the_limit(stores: UsageStores) {
    let k = Arc::new(key(&stores, Quota::StorageBytes).await);
    let limit = 100;
    let calls: Vec<_> = (1..=20u64)
        .map(|size| {
            let usage = stores.usage.clone();
            let k = k.clone();
            async move { (size, usage.consume(&k, Take::Exactly(size), Some(limit), None).await.expect("consume")) }
        })
        .collect();
    let results = join_all(calls).await;
    assert!(results.iter().all(|(size, c)| c.granted == 0 || c.granted == *size), "all or nothing: {results:?}");
    assert!(results.iter().all(|(_, c)| c.used <= limit), "no answer ever saw the counter past the limit");
    let granted: u64 = results.iter().map(|(_, c)| c.granted).sum();
    assert!(granted <= limit, "granted {granted} of {limit}");
    let smallest_refused = results.iter().filter(|(_, c)| c.granted == 0).map(|(size, _)| *size).min();
    if let Some(size) = smallest_refused {
        assert!(granted + size > limit, "a request that fits the final counter was refused: {results:?}");
    }
    assert_eq!(used(&stores, &k).await, granted, "the counter is the sum of what was granted");
}

async fn concurrent_up_to_fills_the_limit_exactly(stores: UsageStores) {
    let k = Arc::new(key(&stores, Quota::ApiCalls).await);
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let usage = stores.usage.clone();
            let k = k.clone();
            async move { usage.consume(&k, Take::UpTo(7), Some(100), None).await.expect("consume") }
        })
        .collect();
    let results = join_all(calls).await;
    let granted: u64 = results.iter().map(|c| c.granted).sum();
    assert_eq!(granted, 100, "leases fill the limit exactly: {results:?}");
    assert!(results.iter().all(|c| c.granted <= 7 && c.used <= 100));
    assert_eq!(used(&stores, &k).await, 100);
}
