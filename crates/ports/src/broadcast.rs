use crate::CacheError;

/// Messages from one process to every other process that shares the cache.
///
/// Replicas keep short-lived copies in process: tenancy generation tokens and "session not
/// revoked" answers. Without a broadcast, a change made on one replica reaches the others only
/// when their copies expire (a 500 ms bound). With one, a replica announces the change after it
/// committed, and the others drop their copies as soon as the message arrives.
///
/// Delivery is best effort and at most once. A message may be lost when a subscriber
/// reconnects, so a broadcast only shortens the time to consistency; the expiry bound remains
/// the guarantee.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait Broadcast: Send + Sync {
    /// Sends `message` to every current subscriber, this process's included.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`], [`CacheError::Unexpected`].
    async fn publish(&self, message: &[u8]) -> Result<(), CacheError>;

    /// Starts receiving: every message published after this returns.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`], [`CacheError::Unexpected`].
    async fn subscribe(&self) -> Result<Box<dyn Subscription>, CacheError>;
}

/// One subscriber's stream of messages. Owned by a single listener task, hence `Send` without
/// `Sync`.
#[async_trait::async_trait]
pub trait Subscription: Send {
    /// The next message, or `None` once the subscription is lost (the connection dropped, or
    /// the subscriber fell behind): messages may have been missed, so subscribe again.
    async fn next(&mut self) -> Option<Vec<u8>>;
}
