//! [`Broadcast`] on Redis pub/sub: one channel per key prefix, so replicas of one deployment
//! hear each other. Channels are server-wide (the `/db` number of the URL does not separate
//! them), so deployments sharing a Redis server need distinct key prefixes; otherwise they only
//! cost each other extra invalidations.

use std::time::Duration;

use futures_util::StreamExt;
use tenantry_ports::{Broadcast, CacheError, Subscription};

use crate::RedisPool;
use crate::cache::{pool_error, redis_error};

/// A broadcast to every process sharing this Redis and key prefix.
#[derive(Clone)]
pub struct RedisBroadcast {
    redis: RedisPool,
    channel: String,
}

impl RedisBroadcast {
    /// Over `redis`'s pool (for publishing) and its client (each subscription opens a
    /// connection of its own, as Redis requires).
    pub fn new(redis: RedisPool) -> Self {
        let channel = redis.key("invalidations");
        Self { redis, channel }
    }

    /// How many connections listen on this deployment's channel: lets a caller wait until a
    /// replica's listener is up.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`], [`CacheError::Unexpected`].
    pub async fn subscribers(&self) -> Result<i64, CacheError> {
        let mut connection = self.redis.connection().await.map_err(pool_error)?;
        let counts: Vec<(String, i64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&self.channel)
            .query_async(&mut connection)
            .await
            .map_err(redis_error)?;
        Ok(counts.first().map_or(0, |(_, count)| *count))
    }
}

/// How often a quiet subscription checks its connection: a connection dropped without a reset
/// (an idle timeout in a NAT or load balancer, a failover) would otherwise never end the stream.
const KEEPALIVE: Duration = Duration::from_secs(30);

#[async_trait::async_trait]
impl Broadcast for RedisBroadcast {
    async fn publish(&self, message: &[u8]) -> Result<(), CacheError> {
        let mut connection = self.redis.connection().await.map_err(pool_error)?;
        let published: Result<i64, _> =
            redis::cmd("PUBLISH").arg(&self.channel).arg(message).query_async(&mut connection).await;
        match published {
            Ok(_) => Ok(()),
            Err(err) => {
                let mapped = redis_error(err);
                if matches!(mapped, CacheError::Unavailable(_)) {
                    self.redis.release();
                }
                Err(mapped)
            }
        }
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>, CacheError> {
        let opened = tokio::time::timeout(self.redis.timeout, async {
            let mut pubsub = self.redis.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        })
        .await
        .map_err(|_| CacheError::Unavailable(anyhow::anyhow!("subscribing to Redis timed out")))?
        .map_err(redis_error)?;
        let (sink, messages) = opened.split();
        Ok(Box::new(RedisSubscription { sink, messages, timeout: self.redis.timeout }))
    }
}

struct RedisSubscription {
    sink: redis::aio::PubSubSink,
    messages: redis::aio::PubSubStream,
    timeout: Duration,
}

#[async_trait::async_trait]
impl Subscription for RedisSubscription {
    async fn next(&mut self) -> Option<Vec<u8>> {
        loop {
            tokio::select! {
                // The stream ends when the connection does.
                message = self.messages.next() => {
                    return message.map(|message| message.get_payload_bytes().to_vec());
                }
                () = tokio::time::sleep(KEEPALIVE) => {
                    let pong = tokio::time::timeout(self.timeout, self.sink.ping::<redis::Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        tracing::warn!("the invalidation subscription stopped answering; ending it");
                        return None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;
    use tenantry_ports::Cache;

    use super::*;
    use crate::{RedisCache, RedisConfig};

    const PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

    /// The ids of the server's pub/sub connections.
    async fn pubsub_clients(admin: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
        let list: String =
            redis::cmd("CLIENT").arg("LIST").arg("TYPE").arg("pubsub").query_async(admin).await.expect("list");
        list.lines()
            .filter_map(|line| line.split(' ').find_map(|field| field.strip_prefix("id=")).map(str::to_owned))
            .collect()
    }

    fn pool(url: &str, prefix: &str) -> RedisPool {
        let mut config = RedisConfig::new(SecretString::from(url.to_owned()));
        config.key_prefix = prefix.to_owned();
        RedisPool::connect(&config).expect("valid url")
    }

    /// One test, run in order: the connection counts it reads must not move under it.
    #[tokio::test]
    async fn passes_the_contract_is_namespaced_and_ends_a_subscription_whose_connection_died() {
        let Some(url) = tenantry_testkit::env::redis_url() else {
            return;
        };
        let run = uuid::Uuid::now_v7();
        let prefix = format!("tenantry-test:{run}:");
        // A pool per handle: each stands for a replica.
        tenantry_testkit::broadcast::run_contract(|| {
            let broadcast = RedisBroadcast::new(pool(&url, &prefix));
            async move { broadcast }
        })
        .await;

        let a = RedisBroadcast::new(pool(&url, &format!("tenantry-test:{run}:a:")));
        let redis = pool(&url, &format!("tenantry-test:{run}:b:"));
        let b = RedisBroadcast::new(redis.clone());
        let mut on_b = b.subscribe().await.expect("subscribe");
        a.publish(b"for a only").await.expect("publish");
        b.publish(b"for b").await.expect("publish");
        let first = tokio::time::timeout(PATIENCE, on_b.next()).await.expect("in time");
        assert_eq!(first.as_deref(), Some(&b"for b"[..]), "another prefix's message never arrives");

        // Kill exactly this subscription's connection: the one pub/sub client that appeared
        // when it subscribed (other processes' listeners are left alone).
        let mut admin = redis.client.get_multiplexed_async_connection().await.expect("admin connection");
        let before = pubsub_clients(&mut admin).await;
        let mut doomed = b.subscribe().await.expect("subscribe");
        let new: Vec<String> = pubsub_clients(&mut admin).await.into_iter().filter(|id| !before.contains(id)).collect();
        assert_eq!(new.len(), 1, "one new pub/sub connection: {new:?}");
        let killed: i64 =
            redis::cmd("CLIENT").arg("KILL").arg("ID").arg(&new[0]).query_async(&mut admin).await.expect("kill");
        assert_eq!(killed, 1);
        let ended = tokio::time::timeout(PATIENCE, doomed.next()).await.expect("in time");
        assert_eq!(ended, None, "a lost connection ends the subscription, so the subscriber starts afresh");
        assert!(b.subscribers().await.expect("count") >= 1, "the earlier subscription is untouched");
        // Publishing goes on (it uses the pooled connection), and so does a new subscription.
        let mut again = b.subscribe().await.expect("subscribe again");
        b.publish(b"after").await.expect("publish");
        let after = tokio::time::timeout(PATIENCE, again.next()).await.expect("in time");
        assert_eq!(after.as_deref(), Some(&b"after"[..]));
        RedisCache::new(redis).ping().await.expect("the pool is unaffected");
    }
}
