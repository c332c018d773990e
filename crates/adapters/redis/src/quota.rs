//! Usage counters and rate-limit buckets on Redis: exact across every replica because each
//! decision is one Lua script (one round trip, atomic on the server), never a read followed by
//! a write from here.
//!
//! Lua numbers are doubles: counters and microsecond timestamps are exact below 2^53 (about
//! 9 × 10^15, far above a byte count of petabytes or a clock reading in microseconds), and the
//! scripts hand integers back to Redis as formatted text, never as floats.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_redis::PoolError;
use deadpool_redis::redis::aio::MultiplexedConnection;
use redis::{RedisError, Script};
use tenantry_domain::rate::{RateGrant, RatePolicy};
use tenantry_ports::{Consumed, CounterError, RateLimitStore, Take, UsageKey, UsageStore};

use crate::RedisPool;

/// Adds what fits: `ARGV` is `1` for all-or-nothing (`0` for as much as fits), the units, the
/// limit (`-1`: none) and the expiry in milliseconds since the epoch (`0`: none). Returns
/// `{granted, used}`.
const CONSUME: &str = r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local units = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local granted = units
if limit >= 0 then
  local room = limit - used
  if room < 0 then room = 0 end
  if units > room then
    if ARGV[1] == '1' then granted = 0 else granted = room end
  end
end
if granted > 0 then
  used = redis.call('INCRBY', KEYS[1], string.format('%.0f', granted))
  if ARGV[4] ~= '0' then redis.call('PEXPIREAT', KEYS[1], ARGV[4]) end
end
return {granted, used}
";

/// Takes back `ARGV[1]` units, stopping at 0; a missing counter stays missing. The expiry is
/// kept (DECRBY does not touch it).
const RELEASE: &str = r"
local raw = redis.call('GET', KEYS[1])
if not raw then return 0 end
local used = tonumber(raw)
local units = tonumber(ARGV[1])
if used <= 0 or units <= 0 then return used end
if units >= used then return redis.call('DECRBY', KEYS[1], raw) end
return redis.call('DECRBY', KEYS[1], string.format('%.0f', units))
";

/// `tenantry_domain::rate::give_back` then `take`, line for line, on the TAT stored at
/// `KEYS[1]`. `ARGV`: interval, tolerance (µs), limit, want, tokens given back, now (µs).
/// Stores the new TAT until the bucket is full again (plus a second of slack for clock skew
/// between replicas and Redis), or deletes it when the bucket is full already. Returns
/// `{granted, tat, remaining, reset_after_us, retry_after_us}`.
const ACQUIRE: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local back = tonumber(ARGV[5])
local now = tonumber(ARGV[6])
local stored = redis.call('GET', KEYS[1])
local tat = nil
if stored then tat = tonumber(stored) end
if tat then
  local earlier = tat - back * interval
  if earlier > now then tat = earlier else tat = nil end
end
if (not tat) or tat < now then tat = now end
local available = math.floor((now + tolerance - tat) / interval)
if available < 0 then available = 0 end
if available > limit then available = limit end
local granted = math.min(want, available)
local new_tat = tat + granted * interval
local retry = 0
if granted == 0 then retry = math.max(tat + interval - tolerance - now, 1000) end
local reset = new_tat - now
if new_tat > now then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', string.format('%.0f', math.ceil(reset / 1000) + 1000))
else
  redis.call('DEL', KEYS[1])
end
return {granted, new_tat, available - granted, reset, retry}
";

/// The connection handling both stores share: a command's failure is mapped to
/// [`CounterError`], and a broken shared connection is released so the next call gets a
/// fresh one (as [`crate::RedisCache`] does).
#[derive(Clone)]
struct Counters {
    redis: RedisPool,
}

impl Counters {
    async fn connection(&self) -> Result<MultiplexedConnection, CounterError> {
        self.redis.connection().await.map_err(pool_error)
    }

    fn failed(&self, err: RedisError) -> CounterError {
        let mapped = redis_error(err);
        if matches!(mapped, CounterError::Unavailable(_)) {
            self.redis.release();
        }
        mapped
    }
}

fn pool_error(err: PoolError) -> CounterError {
    CounterError::Unavailable(anyhow::Error::new(err))
}

fn redis_error(err: RedisError) -> CounterError {
    if err.is_connection_dropped() || err.is_connection_refusal() || err.is_io_error() || err.is_timeout() {
        CounterError::Unavailable(anyhow::Error::new(err))
    } else {
        CounterError::Unexpected(anyhow::Error::new(err))
    }
}

fn unexpected(what: &str) -> CounterError {
    CounterError::Unexpected(anyhow::anyhow!("the counter script returned {what}"))
}

/// Lua and Redis integers are signed 64-bit: larger requests are capped (no real quota comes
/// near).
fn signed(units: u64) -> i64 {
    i64::try_from(units).unwrap_or(i64::MAX)
}

/// A [`UsageStore`] on Redis: the quota counters every replica shares, each consume one
/// atomic script, so concurrent requests on many replicas never pass a limit.
#[derive(Clone)]
pub struct RedisUsageStore {
    counters: Counters,
    consume: Script,
    release: Script,
}

impl RedisUsageStore {
    /// Counters over `redis`'s pool, under its key prefix.
    pub fn new(redis: RedisPool) -> Self {
        Self { counters: Counters { redis }, consume: Script::new(CONSUME), release: Script::new(RELEASE) }
    }

    fn key(&self, key: &UsageKey) -> String {
        self.counters.redis.key(&key.flat())
    }
}

#[async_trait::async_trait]
impl UsageStore for RedisUsageStore {
    #[tracing::instrument(name = "adapter.redis.usage.consume", skip_all)]
    async fn consume(
        &self,
        key: &UsageKey,
        take: Take,
        limit: Option<u64>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Consumed, CounterError> {
        let (exactly, units) = match take {
            Take::Exactly(units) => (1, units),
            Take::UpTo(units) => (0, units),
        };
        let mut conn = self.counters.connection().await?;
        let answer: Vec<i64> = self
            .consume
            .key(self.key(key))
            .arg(exactly)
            .arg(signed(units))
            .arg(limit.map_or(-1, signed))
            // A period already over (or the epoch) still expires, just at once.
            .arg(expires_at.map_or(0, |at| at.timestamp_millis().max(1)))
            .invoke_async(&mut conn)
            .await
            .map_err(|err| self.counters.failed(err))?;
        match answer[..] {
            [granted, used] => Ok(Consumed {
                granted: u64::try_from(granted).map_err(|_| unexpected("a negative grant"))?,
                used: u64::try_from(used).map_err(|_| unexpected("a negative counter"))?,
            }),
            _ => Err(unexpected("an unexpected shape")),
        }
    }

    #[tracing::instrument(name = "adapter.redis.usage.release", skip_all)]
    async fn release(&self, key: &UsageKey, units: u64) -> Result<(), CounterError> {
        let mut conn = self.counters.connection().await?;
        self.release
            .key(self.key(key))
            .arg(signed(units))
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
            .map_err(|err| self.counters.failed(err))
    }

    #[tracing::instrument(name = "adapter.redis.usage.used", skip_all)]
    async fn used(&self, keys: &[UsageKey]) -> Result<Vec<u64>, CounterError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.counters.connection().await?;
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.key(key));
        }
        let found: Vec<Option<i64>> = cmd.query_async(&mut conn).await.map_err(|err| self.counters.failed(err))?;
        if found.len() != keys.len() {
            return Err(unexpected("a wrong number of counters"));
        }
        Ok(found.into_iter().map(|used| used.map_or(0, |used| u64::try_from(used).unwrap_or(0))).collect())
    }
}

/// A [`RateLimitStore`] on Redis: the GCRA buckets every replica shares, each decision one
/// atomic script that mirrors `tenantry_domain::rate` exactly (the contract suite checks it
/// against the domain's own answers).
#[derive(Clone)]
pub struct RedisRateLimitStore {
    counters: Counters,
    acquire: Script,
}

impl RedisRateLimitStore {
    /// Buckets over `redis`'s pool, under its key prefix.
    pub fn new(redis: RedisPool) -> Self {
        Self { counters: Counters { redis }, acquire: Script::new(ACQUIRE) }
    }
}

fn micros(us: i64) -> Result<Duration, CounterError> {
    u64::try_from(us).map(Duration::from_micros).map_err(|_| unexpected("a negative duration"))
}

#[async_trait::async_trait]
impl RateLimitStore for RedisRateLimitStore {
    #[tracing::instrument(name = "adapter.redis.rate_limit.acquire", skip_all)]
    async fn acquire(
        &self,
        key: &str,
        policy: RatePolicy,
        want: u32,
        give_back: u32,
        now_us: i64,
    ) -> Result<RateGrant, CounterError> {
        let mut conn = self.counters.connection().await?;
        let answer: Vec<i64> = self
            .acquire
            .key(self.counters.redis.key(&format!("rate:{key}")))
            .arg(policy.interval_us())
            .arg(policy.tolerance_us())
            .arg(policy.limit)
            .arg(want)
            .arg(give_back)
            .arg(now_us)
            .invoke_async(&mut conn)
            .await
            .map_err(|err| self.counters.failed(err))?;
        let [granted, tat_us, remaining, reset_after, retry_after] = answer[..] else {
            return Err(unexpected("an unexpected shape"));
        };
        Ok(RateGrant {
            granted: u32::try_from(granted).map_err(|_| unexpected("a grant out of range"))?,
            tat_us,
            remaining: u32::try_from(remaining).map_err(|_| unexpected("a remainder out of range"))?,
            reset_after: micros(reset_after)?,
            retry_after: micros(retry_after)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use secrecy::SecretString;
    use tenantry_domain::OrgId;
    use tenantry_domain::quota::Quota;
    use tenantry_testkit::usage::{OrgSource, UsageStores};

    use super::*;
    use crate::RedisConfig;

    fn pool_on(url: &str, prefix: String) -> RedisPool {
        let mut config = RedisConfig::new(SecretString::from(url.to_owned()));
        config.key_prefix = prefix;
        RedisPool::connect(&config).expect("valid url")
    }

    fn prefix() -> String {
        format!("tenantry-test:{}:", uuid::Uuid::now_v7())
    }

    #[tokio::test]
    async fn passes_the_usage_contract() {
        let Some(url) = tenantry_testkit::env::redis_url() else {
            return;
        };
        let prefix = prefix();
        tenantry_testkit::usage::run_contract(|| {
            let stores = UsageStores {
                usage: Arc::new(RedisUsageStore::new(pool_on(&url, prefix.clone()))),
                orgs: OrgSource::Any,
            };
            async move { stores }
        })
        .await;
    }

    #[tokio::test]
    async fn passes_the_rate_limit_contract() {
        let Some(url) = tenantry_testkit::env::redis_url() else {
            return;
        };
        let prefix = prefix();
        tenantry_testkit::rate_limit::run_contract(|| {
            let store: Arc<dyn RateLimitStore> = Arc::new(RedisRateLimitStore::new(pool_on(&url, prefix.clone())));
            async move { store }
        })
        .await;
    }

    fn usage_key() -> UsageKey {
        UsageKey { org_id: OrgId::from_uuid(uuid::Uuid::now_v7()), quota: Quota::ApiCalls, period: "0".to_owned() }
    }

    async fn pttl(pool: &RedisPool, key: &str) -> i64 {
        let mut conn = pool.connection().await.expect("connection");
        redis::cmd("PTTL").arg(pool.key(key)).query_async(&mut conn).await.expect("pttl")
    }

    #[tokio::test]
    async fn a_counter_expires_at_its_period_end_and_keeps_it_on_release() {
        let Some(url) = tenantry_testkit::env::redis_url() else {
            return;
        };
        let pool = pool_on(&url, prefix());
        let store = RedisUsageStore::new(pool.clone());
        let k = usage_key();
        let end = Utc::now() + chrono::Duration::seconds(100);
        store.consume(&k, Take::Exactly(3), Some(10), Some(end)).await.expect("consume");
        let ttl = pttl(&pool, &k.flat()).await;
        assert!((95_000..=100_000).contains(&ttl), "expires at the given instant: {ttl}");
        store.release(&k, 1).await.expect("release");
        assert!(pttl(&pool, &k.flat()).await > 95_000, "a release keeps the expiry");
        let forever = usage_key();
        store.consume(&forever, Take::Exactly(1), None, None).await.expect("consume");
        assert_eq!(pttl(&pool, &forever.flat()).await, -1, "a gauge never expires");
    }

    #[tokio::test]
    async fn a_bucket_lives_until_it_is_full_again_and_not_longer() {
        let Some(url) = tenantry_testkit::env::redis_url() else {
            return;
        };
        let pool = pool_on(&url, prefix());
        let store = RedisRateLimitStore::new(pool.clone());
        let policy = RatePolicy { limit: 10, period: Duration::from_secs(60) };
        let now = Utc::now().timestamp_micros();
        store.acquire("client", policy, 2, 0, now).await.expect("acquire");
        let ttl = pttl(&pool, "rate:client").await;
        assert!((12_000..=13_000).contains(&ttl), "two tokens take 12 s to come back, plus 1 s: {ttl}");
        store.acquire("client", policy, 0, 2, now).await.expect("give back");
        assert_eq!(pttl(&pool, "rate:client").await, -2, "a full bucket is not kept");
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_reported_unavailable() {
        let pool = pool_on("redis://127.0.0.1:1", "x:".to_owned());
        let usage = RedisUsageStore::new(pool.clone());
        let rate = RedisRateLimitStore::new(pool);
        let k = usage_key();
        assert!(matches!(usage.consume(&k, Take::Exactly(1), None, None).await, Err(CounterError::Unavailable(_))));
        assert!(matches!(usage.release(&k, 1).await, Err(CounterError::Unavailable(_))));
        assert!(matches!(usage.used(&[k]).await, Err(CounterError::Unavailable(_))));
        let policy = RatePolicy { limit: 1, period: Duration::from_secs(1) };
        assert!(matches!(rate.acquire("k", policy, 1, 0, 0).await, Err(CounterError::Unavailable(_))));
    }

    #[tokio::test]
    async fn a_corrupt_counter_is_unexpected_not_unavailable() {
        let Some(url) = tenantry_testkit::env::redis_url() else {
            return;
        };
        let pool = pool_on(&url, prefix());
        let store = RedisUsageStore::new(pool.clone());
        let k = usage_key();
        let mut conn = pool.connection().await.expect("connection");
        redis::cmd("SET").arg(pool.key(&k.flat())).arg("lots").query_async::<()>(&mut conn).await.expect("set");
        let result = store.consume(&k, Take::Exactly(1), Some(5), None).await;
        assert!(matches!(result, Err(CounterError::Unexpected(_))), "{result:?}");
    }
}
