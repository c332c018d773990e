//! Rate limits shared by every replica, nearly free per request: GCRA buckets in a
//! [`RateLimitStore`], taken from through local leases (see [`LeasePolicy`]).

use std::sync::Arc;
use std::time::Duration;

use tenantry_domain::rate::RatePolicy;
use tenantry_ports::{Clock, CounterError, RateLimitStore};

use crate::leases::{LeasePolicy, Leases};

/// What a rate-limited request learns, whether it passes or not: the three `ratelimit-*`
/// headers and, for a refusal, `retry-after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The policy's limit (`ratelimit-limit`).
    pub limit: u32,
    /// Requests left now (`ratelimit-remaining`).
    pub remaining: u32,
    /// Time until the bucket is full again (`ratelimit-reset`).
    pub reset_after: Duration,
    /// For a refusal: when to try again (`retry-after`).
    pub retry_after: Option<Duration>,
}

impl RateDecision {
    /// The decision a client should see when several limits apply: a refusal first, else
    /// the one with the fewest requests left.
    #[must_use]
    pub fn tighter(self, other: Self) -> Self {
        match (self.allowed, other.allowed) {
            (true, false) => other,
            (false, true) => self,
            _ if other.remaining < self.remaining => other,
            _ => self,
        }
    }
}

#[derive(Debug, Default)]
struct BucketState {
    /// Time until full at the last grant, as an absolute time (microseconds).
    reset_at_us: i64,
    /// The policy the lease was taken under, to give its units back under it.
    policy: Option<RatePolicy>,
}

/// Decides rate limits per key. One per process: its leases are this process's share.
pub struct RateLimiter {
    store: Arc<dyn RateLimitStore>,
    clock: Arc<dyn Clock>,
    lease: LeasePolicy,
    leases: Leases<String, BucketState>,
}

fn micros(clock: &dyn Clock) -> i64 {
    clock.now().timestamp_micros()
}

fn duration_us(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

impl RateLimiter {
    /// A limiter over `store`, leasing tokens as `lease` says.
    pub fn new(store: Arc<dyn RateLimitStore>, clock: Arc<dyn Clock>, lease: LeasePolicy) -> Self {
        Self { store, clock, lease, leases: Leases::new() }
    }

    /// Takes one request from the bucket `key` under `policy`.
    ///
    /// # Errors
    /// [`CounterError`] when the store cannot decide; the caller chooses to fail open or
    /// closed for the route group.
    pub async fn check(&self, key: &str, policy: RatePolicy) -> Result<RateDecision, CounterError> {
        let slot = self.leases.slot(&key.to_owned());
        let mut lease = slot.lock().await;
        let now = micros(self.clock.as_ref());
        if lease.take(now) {
            return Ok(RateDecision {
                allowed: true,
                limit: policy.limit,
                remaining: u32::try_from(lease.remaining.unwrap_or(0)).unwrap_or(u32::MAX).saturating_add(lease.units),
                reset_after: duration_us(lease.state.reset_at_us - now),
                retry_after: None,
            });
        }
        let give_back = lease.expired_units(now);
        let want = self.lease.batch(lease.remaining);
        let grant = self.store.acquire(key, policy, want, give_back, now).await?;
        lease.remaining = Some(u64::from(grant.remaining));
        lease.state.policy = Some(policy);
        lease.state.reset_at_us = now + i64::try_from(grant.reset_after.as_micros()).unwrap_or(i64::MAX);
        if grant.granted == 0 {
            return Ok(RateDecision {
                allowed: false,
                limit: policy.limit,
                remaining: 0,
                reset_after: grant.reset_after,
                retry_after: Some(grant.retry_after.max(Duration::from_secs(1))),
            });
        }
        lease.units = grant.granted - 1;
        lease.expires_us = now + i64::try_from(self.lease.ttl.as_micros()).unwrap_or(i64::MAX);
        Ok(RateDecision {
            allowed: true,
            limit: policy.limit,
            remaining: grant.remaining.saturating_add(lease.units),
            reset_after: grant.reset_after,
            retry_after: None,
        })
    }

    /// Gives back the unused tokens of expired leases (all of them with `everything`, at
    /// shutdown), so other replicas can use them. Returns how many were given back.
    ///
    /// # Errors
    /// The last store failure, after every lease was tried; the tokens that could not go back
    /// are dropped.
    pub async fn flush(&self, everything: bool) -> Result<u64, CounterError> {
        let mut returned = 0;
        let mut failure = None;
        for (key, slot) in self.leases.all() {
            let mut lease = slot.lock().await;
            let now = micros(self.clock.as_ref());
            let units = if everything { std::mem::take(&mut lease.units) } else { lease.expired_units(now) };
            if units == 0 {
                continue;
            }
            let Some(policy) = lease.state.policy else { continue };
            // Best effort: tokens that cannot go back (the store is down) are simply spent,
            // which under-admits by at most one lease; retrying them would only repeat the
            // failure every tick.
            match self.store.acquire(&key, policy, 0, units, now).await {
                Ok(_) => returned += u64::from(units),
                Err(err) => failure = Some(err),
            }
        }
        failure.map_or(Ok(returned), Err)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tenantry_adapter_memory::InMemoryRateLimitStore;
    use tenantry_ports::{Clock, MockRateLimitStore};

    use super::*;

    const FIVE: RatePolicy = RatePolicy { limit: 5, period: Duration::from_secs(60) };

    fn clock() -> Arc<tenantry_adapter_memory::ManualClock> {
        Arc::new(tenantry_adapter_memory::ManualClock::new(chrono::Utc::now()))
    }

    #[tokio::test]
    async fn exactly_the_limit_passes_and_the_refusal_says_when_to_retry() {
        let clock = clock();
        let limiter = RateLimiter::new(Arc::new(InMemoryRateLimitStore::new()), clock.clone(), LeasePolicy::REMOTE);
        let mut passed = 0;
        for _ in 0..20 {
            let decision = limiter.check("ip:1", FIVE).await.expect("decides");
            if decision.allowed {
                passed += 1;
                assert_eq!(decision.remaining, 5 - passed);
            } else {
                assert_eq!(decision.retry_after, Some(Duration::from_secs(12)));
            }
        }
        assert_eq!(passed, 5);
        clock.advance(chrono::Duration::seconds(12));
        assert!(limiter.check("ip:1", FIVE).await.expect("decides").allowed, "a token came back");
        assert!(limiter.check("ip:2", FIVE).await.expect("decides").allowed, "keys are independent");
    }

    #[tokio::test]
    async fn leased_tokens_are_served_locally_and_given_back_when_unused() {
        let clock = clock();
        let store = Arc::new(InMemoryRateLimitStore::new());
        let policy = RatePolicy { limit: 1000, period: Duration::from_secs(60) };
        let limiter = RateLimiter::new(store.clone(), clock.clone(), LeasePolicy::REMOTE);
        let other = RateLimiter::new(store.clone(), clock.clone(), LeasePolicy::REMOTE);
        limiter.check("k", policy).await.expect("first");
        let second = limiter.check("k", policy).await.expect("second takes a batch");
        assert_eq!(second.remaining, 998, "the client sees its true remaining");
        // The other replica sees the batch as taken.
        let seen = other.check("k", policy).await.expect("other");
        assert!(seen.remaining < 990, "{seen:?}");
        clock.advance(chrono::Duration::seconds(1));
        let returned = limiter.flush(false).await.expect("flush");
        assert!(returned > 0);
    }

    #[tokio::test]
    async fn a_store_failure_is_reported_for_the_caller_to_decide() {
        let mut store = MockRateLimitStore::new();
        store.expect_acquire().returning(|_, _, _, _, _| Err(CounterError::Unavailable(anyhow::anyhow!("down"))));
        let limiter = RateLimiter::new(Arc::new(store), clock() as Arc<dyn Clock>, LeasePolicy::NONE);
        assert!(matches!(limiter.check("k", FIVE).await, Err(CounterError::Unavailable(_))));
    }

    #[test]
    fn the_tighter_decision_wins() {
        let pass = |remaining| RateDecision {
            allowed: true,
            limit: 10,
            remaining,
            reset_after: Duration::ZERO,
            retry_after: None,
        };
        let refused = RateDecision { allowed: false, ..pass(0) };
        assert_eq!(pass(5).tighter(pass(3)).remaining, 3);
        assert_eq!(pass(2).tighter(pass(3)).remaining, 2);
        assert!(!pass(5).tighter(refused).allowed);
        assert!(!refused.tighter(pass(5)).allowed);
    }
}
