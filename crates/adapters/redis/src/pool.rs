use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::{Config, Pool, PoolConfig, PoolError, Runtime, Timeouts};
use secrecy::{ExposeSecret, SecretString};

/// What the Redis adapters need to connect. The URL may hold a password, so it stays secret.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` or `rediss://…` for TLS.
    pub url: SecretString,
    /// Namespace put before every key, so several applications (or test runs) share one Redis.
    pub key_prefix: String,
    /// Most connections the pool opens.
    pub max_connections: usize,
    /// Bound on waiting for, opening or checking a connection, so a dead Redis fails requests
    /// fast instead of hanging them.
    pub timeout: Duration,
}

impl RedisConfig {
    /// Defaults suited to one replica on a small machine.
    pub fn new(url: SecretString) -> Self {
        Self { url, key_prefix: "tenantry:".to_owned(), max_connections: 16, timeout: Duration::from_secs(2) }
    }
}

/// Why a pool could not be built (only configuration problems: the pool connects lazily, so a
/// Redis that is down at start-up shows up in readiness, not as a crash).
#[derive(Debug, thiserror::Error)]
#[error("invalid Redis configuration: {0}")]
pub struct RedisPoolError(String);

/// A shared, cloneable handle on the connection pool and the key namespace.
#[derive(Clone)]
pub struct RedisPool {
    pub(crate) pool: Pool,
    pub(crate) prefix: String,
    /// The connection commands run on: one pooled multiplexed connection, checked out once and
    /// shared, because redis-rs pipelines concurrent commands over it and a pool checkout per
    /// command costs a `PING` round trip (deadpool-redis always pings when recycling).
    shared: Arc<Mutex<Option<Arc<deadpool_redis::Connection>>>>,
    /// For subscriptions, which need a dedicated connection of their own.
    pub(crate) client: deadpool_redis::redis::Client,
    /// Bound on opening a dedicated connection.
    pub(crate) timeout: Duration,
}

impl RedisPool {
    /// Builds the pool; connections are opened on first use.
    ///
    /// # Errors
    /// [`RedisPoolError`] when the URL cannot be parsed.
    pub fn connect(config: &RedisConfig) -> Result<Self, RedisPoolError> {
        let mut pool_config = PoolConfig::new(config.max_connections.max(1));
        pool_config.timeouts =
            Timeouts { wait: Some(config.timeout), create: Some(config.timeout), recycle: Some(config.timeout) };
        let mut redis_config = Config::from_url(config.url.expose_secret());
        redis_config.pool = Some(pool_config);
        let pool = redis_config
            .create_pool(Some(Runtime::Tokio1))
            // The error text can echo the URL, password included: keep only its kind.
            .map_err(|err| RedisPoolError(redact(&err.to_string(), config.url.expose_secret())))?;
        let client = deadpool_redis::redis::Client::open(config.url.expose_secret())
            .map_err(|err| RedisPoolError(redact(&err.to_string(), config.url.expose_secret())))?;
        Ok(Self {
            pool,
            prefix: config.key_prefix.clone(),
            shared: Arc::new(Mutex::new(None)),
            client,
            timeout: config.timeout,
        })
    }

    /// A handle on the shared connection, checking one out of the pool (with its health check)
    /// when there is none.
    pub(crate) async fn connection(&self) -> Result<MultiplexedConnection, PoolError> {
        if let Some(held) = self.shared.lock().unwrap_or_else(PoisonError::into_inner).as_ref() {
            return Ok(MultiplexedConnection::clone(held));
        }
        let fresh = Arc::new(self.pool.get().await?);
        let mut slot = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        // Another task may have filled the slot meanwhile: keep one, return the other.
        let held = slot.get_or_insert(fresh);
        Ok(MultiplexedConnection::clone(held))
    }

    /// Gives the shared connection back to the pool after it failed; the pool's recycle check
    /// decides whether it is reused, and the next command checks one out again.
    pub(crate) fn release(&self) {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner).take();
    }

    pub(crate) fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

fn redact(message: &str, secret: &str) -> String {
    if secret.is_empty() { message.to_owned() } else { message.replace(secret, "<redis url>") }
}
