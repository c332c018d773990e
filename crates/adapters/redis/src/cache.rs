use std::time::Duration;

use deadpool_redis::PoolError;
use deadpool_redis::redis::aio::MultiplexedConnection;
use redis::{RedisError, Script};
use tenantry_ports::{Cache, CacheError};

use crate::RedisPool;

/// A [`Cache`] on Redis: every replica sees the same keys.
#[derive(Clone)]
pub struct RedisCache {
    redis: RedisPool,
    increment: Script,
}

/// INCRBY, setting the expiry only when this call created the key (atomic, as a script).
const INCREMENT: &str = r"
local existed = redis.call('EXISTS', KEYS[1])
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 and tonumber(ARGV[2]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
";

impl RedisCache {
    /// A cache over `redis`'s pool and key prefix.
    pub fn new(redis: RedisPool) -> Self {
        Self { redis, increment: Script::new(INCREMENT) }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, CacheError> {
        self.redis.connection().await.map_err(pool_error)
    }

    /// Maps a command's failure, releasing the shared connection when the failure says the
    /// connection itself is broken.
    fn failed(&self, err: RedisError) -> CacheError {
        let mapped = redis_error(err);
        if matches!(mapped, CacheError::Unavailable(_)) {
            self.redis.release();
        }
        mapped
    }
}

pub(crate) fn pool_error(err: PoolError) -> CacheError {
    CacheError::Unavailable(anyhow::Error::new(err))
}

pub(crate) fn redis_error(err: RedisError) -> CacheError {
    if err.is_connection_dropped() || err.is_connection_refusal() || err.is_io_error() || err.is_timeout() {
        CacheError::Unavailable(anyhow::Error::new(err))
    } else if err.to_string().contains("not an integer") {
        CacheError::NotAnInteger
    } else {
        CacheError::Unexpected(anyhow::Error::new(err))
    }
}

fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait::async_trait]
impl Cache for RedisCache {
    #[tracing::instrument(name = "adapter.redis.cache.get", skip_all)]
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let mut conn = self.connection().await?;
        redis::cmd("GET").arg(self.redis.key(key)).query_async(&mut conn).await.map_err(|err| self.failed(err))
    }

    #[tracing::instrument(name = "adapter.redis.cache.get_many", skip_all)]
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.connection().await?;
        let mut cmd = redis::cmd("MGET");
        for key in keys {
            cmd.arg(self.redis.key(key));
        }
        cmd.query_async(&mut conn).await.map_err(|err| self.failed(err))
    }

    #[tracing::instrument(name = "adapter.redis.cache.set", skip_all)]
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
        let mut conn = self.connection().await?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.redis.key(key)).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(millis(ttl));
        }
        cmd.query_async::<()>(&mut conn).await.map_err(|err| self.failed(err))
    }

    #[tracing::instrument(name = "adapter.redis.cache.set_if_absent", skip_all)]
    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, CacheError> {
        let mut conn = self.connection().await?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.redis.key(key)).arg(value).arg("NX");
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(millis(ttl));
        }
        let stored: Option<String> = cmd.query_async(&mut conn).await.map_err(|err| self.failed(err))?;
        Ok(stored.is_some())
    }

    #[tracing::instrument(name = "adapter.redis.cache.delete", skip_all)]
    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let mut conn = self.connection().await?;
        let removed: i64 =
            redis::cmd("DEL").arg(self.redis.key(key)).query_async(&mut conn).await.map_err(|err| self.failed(err))?;
        Ok(removed > 0)
    }

    #[tracing::instrument(name = "adapter.redis.cache.increment", skip_all)]
    async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, CacheError> {
        let mut conn = self.connection().await?;
        self.increment
            .key(self.redis.key(key))
            .arg(by)
            .arg(ttl.map_or(0, millis))
            .invoke_async(&mut conn)
            .await
            .map_err(|err| self.failed(err))
    }

    #[tracing::instrument(name = "adapter.redis.cache.ttl", skip_all)]
    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        let mut conn = self.connection().await?;
        let ms: i64 =
            redis::cmd("PTTL").arg(self.redis.key(key)).query_async(&mut conn).await.map_err(|err| self.failed(err))?;
        // -2: no such key; -1: no expiry.
        Ok(u64::try_from(ms).ok().map(Duration::from_millis))
    }

    #[tracing::instrument(name = "adapter.redis.cache.ping", skip_all)]
    async fn ping(&self) -> Result<(), CacheError> {
        let mut conn = self.connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()).map_err(|err| {
            self.redis.release();
            CacheError::Unavailable(anyhow::Error::new(err))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use secrecy::SecretString;

    use super::*;
    use crate::RedisConfig;

    fn cache_on(url: &str, prefix: String) -> Arc<dyn Cache> {
        let mut config = RedisConfig::new(SecretString::from(url.to_owned()));
        config.key_prefix = prefix;
        Arc::new(RedisCache::new(RedisPool::connect(&config).expect("valid url")))
    }

    #[tokio::test]
    async fn passes_the_cache_contract() {
        let Some(url) = tenantry_testkit::env::redis_url() else {
            return;
        };
        let prefix = format!("tenantry-test:{}:", uuid::Uuid::now_v7());
        tenantry_testkit::cache::run_contract(|| {
            let cache = cache_on(&url, prefix.clone());
            async move { cache }
        })
        .await;
    }

    #[tokio::test]
    async fn keys_are_namespaced_by_the_prefix() {
        let Some(url) = tenantry_testkit::env::redis_url() else {
            return;
        };
        let run = uuid::Uuid::now_v7();
        let a = cache_on(&url, format!("tenantry-test:{run}:a:"));
        let b = cache_on(&url, format!("tenantry-test:{run}:b:"));
        a.set("shared", b"from a", None).await.expect("set");
        assert_eq!(b.get("shared").await.expect("get"), None, "prefixes must isolate");
        assert!(a.delete("shared").await.expect("delete"));
    }

    #[tokio::test]
    async fn a_killed_connection_is_replaced_and_commands_go_on() {
        let Some(url) = tenantry_testkit::env::redis_url() else {
            return;
        };
        let mut config = RedisConfig::new(SecretString::from(url.clone()));
        config.key_prefix = format!("tenantry-test:{}:", uuid::Uuid::now_v7());
        let pool = RedisPool::connect(&config).expect("valid url");
        let cache = RedisCache::new(pool.clone());
        cache.set("k", b"v", None).await.expect("set");
        let mut shared = pool.connection().await.expect("connection");
        let id: i64 = redis::cmd("CLIENT").arg("ID").query_async(&mut shared).await.expect("client id");
        let mut admin = redis::Client::open(url.as_str())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("admin connection");
        let killed: i64 =
            redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query_async(&mut admin).await.expect("kill");
        assert_eq!(killed, 1);
        // The first command may see the dead connection; it is released, and the next works.
        let mut answer = cache.get("k").await;
        if answer.is_err() {
            answer = cache.get("k").await;
        }
        assert_eq!(answer.expect("a fresh connection answers"), Some(b"v".to_vec()));
        let mut fresh = pool.connection().await.expect("connection");
        let new_id: i64 = redis::cmd("CLIENT").arg("ID").query_async(&mut fresh).await.expect("client id");
        assert_ne!(new_id, id, "the killed connection was not reused");
    }

    #[test]
    fn more_threads_than_pooled_connections_share_them_instead_of_waiting() {
        let Some(url) = tenantry_testkit::env::redis_url() else {
            return;
        };
        let mut config = RedisConfig::new(SecretString::from(url));
        config.key_prefix = format!("tenantry-test:{}:", uuid::Uuid::now_v7());
        config.max_connections = 2;
        let cache = RedisCache::new(RedisPool::connect(&config).expect("valid url"));
        let threads: Vec<_> = (0..6)
            .map(|n| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
                    runtime.block_on(async move {
                        cache.set(&format!("t{n}"), b"v", None).await.expect("set on a shared connection");
                        // Keep this thread's runtime alive while the others start.
                        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    });
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_reported_unavailable() {
        // Port 1 on loopback: nothing listens there, the connection is refused at once.
        let cache = cache_on("redis://127.0.0.1:1", "x:".to_owned());
        assert!(matches!(cache.ping().await, Err(CacheError::Unavailable(_))));
        assert!(matches!(cache.get("k").await, Err(CacheError::Unavailable(_))));
    }

    #[test]
    fn a_malformed_url_is_a_configuration_error_without_the_secret() {
        let config = RedisConfig::new(SecretString::from("http://user:hunter2@host".to_owned()));
        let err = RedisPool::connect(&config).err().expect("refused");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
