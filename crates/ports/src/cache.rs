use std::time::Duration;

/// Failures of a [`Cache`]; callers branch on them, never on driver errors.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The backing store could not be reached (connection refused, pool timeout).
    #[error("cache unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// A counter operation met a value that is not an integer.
    #[error("value at key is not an integer")]
    NotAnInteger,
    /// Anything else the adapter did not expect; carries the cause for the logs.
    #[error("unexpected cache failure")]
    Unexpected(#[source] anyhow::Error),
}

/// A shared key-value store with expiry: the fast-path state that must be visible to every
/// replica (session revocation, rate-limit buckets, lockout counters, idempotency markers).
///
/// Keys are plain strings; each adapter applies its own namespace prefix, so callers never
/// collide with other applications on a shared Redis. All operations are atomic per key.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait Cache: Send + Sync {
    /// The value at `key`, or `None` if absent or expired.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`], [`CacheError::Unexpected`].
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;

    /// The values at `keys`, in order, in one round trip: a request that needs several
    /// related entries (a generation token and the entry it guards) pays one trip, not one per
    /// key.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`], [`CacheError::Unexpected`].
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError>;

    /// Stores `value` at `key`, replacing any previous value; `ttl` of `None` keeps it until
    /// deleted.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`], [`CacheError::Unexpected`].
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError>;

    /// Stores `value` only if `key` is absent; `true` when it was stored. The building block
    /// for "first one wins" markers (idempotency, replay protection).
    ///
    /// # Errors
    /// [`CacheError::Unavailable`], [`CacheError::Unexpected`].
    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, CacheError>;

    /// Removes `key`; `true` when something was removed.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`], [`CacheError::Unexpected`].
    async fn delete(&self, key: &str) -> Result<bool, CacheError>;

    /// Adds `by` to the integer at `key` (absent counts as 0) and returns the new value. `ttl`
    /// is applied only when this call creates the key, so a fixed window is not extended by
    /// every hit.
    ///
    /// # Errors
    /// [`CacheError::NotAnInteger`] when the key holds something else;
    /// [`CacheError::Unavailable`], [`CacheError::Unexpected`].
    async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, CacheError>;

    /// Time left before `key` expires: `None` when absent or without expiry.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`], [`CacheError::Unexpected`].
    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError>;

    /// A cheap round trip, for readiness.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`].
    async fn ping(&self) -> Result<(), CacheError>;
}
