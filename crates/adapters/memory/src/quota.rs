//! In-process usage counters and rate-limit buckets: exact for one replica (one mutex, one
//! step per call), and the reference the shared Redis and SQL stores are tested against.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use tenantry_domain::rate::{RateGrant, RatePolicy, give_back, take};
use tenantry_ports::{Clock, Consumed, CounterError, RateLimitStore, Take, UsageKey, UsageStore};

/// How many writes between sweeps of dead entries, so memory stays bounded by live keys.
const SWEEP_EVERY: u64 = 1024;

/// A panic while holding one of these locks cannot leave an entry half-written (every mutation
/// is a single insert or remove), so a poisoned map is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone, Copy)]
struct Counter {
    used: u64,
    expires_at: Option<DateTime<Utc>>,
}

impl Counter {
    fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// A [`UsageStore`] in this process's memory, for the single-replica embedded default and for
/// tests: every consume checks and adds under one lock, so it never passes a limit.
///
/// A counter past its `expires_at` (read from the injected [`Clock`]) counts as absent, as it
/// does in Redis, and is swept away now and then.
pub struct InMemoryUsageStore {
    clock: Arc<dyn Clock>,
    counters: Mutex<HashMap<UsageKey, Counter>>,
    writes: AtomicU64,
}

impl InMemoryUsageStore {
    /// No counters yet; expiry is judged by `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, counters: Mutex::new(HashMap::new()), writes: AtomicU64::new(0) }
    }

    fn after_write(&self, counters: &mut HashMap<UsageKey, Counter>, now: DateTime<Utc>) {
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            counters.retain(|_, counter| counter.is_live(now));
        }
    }
}

#[async_trait::async_trait]
impl UsageStore for InMemoryUsageStore {
    async fn consume(
        &self,
        key: &UsageKey,
        take: Take,
        limit: Option<u64>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Consumed, CounterError> {
        let now = self.clock.now();
        let mut counters = lock(&self.counters);
        let live = counters.get(key).copied().filter(|counter| counter.is_live(now));
        let used = live.map_or(0, |counter| counter.used);
        let room = limit.map_or(u64::MAX, |limit| limit.saturating_sub(used));
        let granted = match take {
            Take::Exactly(units) if units <= room => units,
            Take::Exactly(_) => 0,
            Take::UpTo(units) => units.min(room),
        };
        if granted == 0 {
            return Ok(Consumed { granted, used });
        }
        let counter = Counter {
            used: used.saturating_add(granted),
            expires_at: expires_at.or(live.and_then(|counter| counter.expires_at)),
        };
        counters.insert(key.clone(), counter);
        self.after_write(&mut counters, now);
        Ok(Consumed { granted, used: counter.used })
    }

    async fn release(&self, key: &UsageKey, units: u64) -> Result<(), CounterError> {
        let now = self.clock.now();
        let mut counters = lock(&self.counters);
        if let Some(counter) = counters.get_mut(key).filter(|counter| counter.is_live(now)) {
            counter.used = counter.used.saturating_sub(units);
        }
        Ok(())
    }

    async fn used(&self, keys: &[UsageKey]) -> Result<Vec<u64>, CounterError> {
        let now = self.clock.now();
        let counters = lock(&self.counters);
        Ok(keys
            .iter()
            .map(|key| counters.get(key).filter(|counter| counter.is_live(now)).map_or(0, |counter| counter.used))
            .collect())
    }
}

/// A [`RateLimitStore`] in this process's memory: the domain's GCRA ([`give_back`] then
/// [`take`]) under one lock, for the single-replica embedded default and for tests.
///
/// Only buckets that are not full are kept (a TAT in the past is a full bucket), so memory is
/// bounded by the clients active in the last period.
#[derive(Default)]
pub struct InMemoryRateLimitStore {
    buckets: Mutex<HashMap<String, i64>>,
    calls: AtomicU64,
}

impl InMemoryRateLimitStore {
    /// No buckets yet (every key starts full).
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl RateLimitStore for InMemoryRateLimitStore {
    async fn acquire(
        &self,
        key: &str,
        policy: RatePolicy,
        want: u32,
        tokens_back: u32,
        now_us: i64,
    ) -> Result<RateGrant, CounterError> {
        let mut buckets = lock(&self.buckets);
        let stored = buckets.get(key).copied();
        let grant = take(policy, give_back(policy, stored, now_us, tokens_back), now_us, want);
        if grant.tat_us > now_us {
            buckets.insert(key.to_owned(), grant.tat_us);
        } else {
            buckets.remove(key);
        }
        if self.calls.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            buckets.retain(|_, tat| *tat > now_us);
        }
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tenantry_domain::OrgId;
    use tenantry_domain::quota::Quota;
    use tenantry_testkit::usage::{OrgSource, UsageStores};

    use super::*;
    use crate::{ManualClock, SystemClock};

    #[tokio::test]
    async fn passes_the_usage_contract() {
        tenantry_testkit::usage::run_contract(|| async {
            UsageStores { usage: Arc::new(InMemoryUsageStore::new(Arc::new(SystemClock))), orgs: OrgSource::Any }
        })
        .await;
    }

    #[tokio::test]
    async fn passes_the_rate_limit_contract() {
        tenantry_testkit::rate_limit::run_contract(|| async {
            Arc::new(InMemoryRateLimitStore::new()) as Arc<dyn RateLimitStore>
        })
        .await;
    }

    fn key() -> UsageKey {
        UsageKey { org_id: OrgId::from_uuid(uuid::Uuid::now_v7()), quota: Quota::ApiCalls, period: "0".to_owned() }
    }

    #[tokio::test]
    async fn a_counter_past_its_expiry_starts_again_from_zero() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let store = InMemoryUsageStore::new(clock.clone());
        let k = key();
        let end = clock.now() + chrono::Duration::hours(1);
        store.consume(&k, Take::Exactly(5), Some(5), Some(end)).await.expect("consume");
        clock.advance(chrono::Duration::minutes(59));
        assert_eq!(store.used(std::slice::from_ref(&k)).await.expect("used"), vec![5]);
        clock.advance(chrono::Duration::minutes(1));
        assert_eq!(store.used(std::slice::from_ref(&k)).await.expect("used"), vec![0], "expired");
        assert_eq!(
            store.consume(&k, Take::Exactly(5), Some(5), None).await.expect("consume"),
            Consumed { granted: 5, used: 5 }
        );
    }

    #[tokio::test]
    async fn full_buckets_are_not_kept() {
        let store = InMemoryRateLimitStore::new();
        let policy = RatePolicy { limit: 2, period: Duration::from_secs(1) };
        let now = 1_000_000;
        store.acquire("k", policy, 1, 0, now).await.expect("acquire");
        assert_eq!(lock(&store.buckets).len(), 1);
        let back = store.acquire("k", policy, 0, 1, now).await.expect("acquire");
        assert_eq!(back.remaining, 2, "the token came back");
        assert!(lock(&store.buckets).is_empty(), "a full bucket is the same as no bucket");
    }
}
