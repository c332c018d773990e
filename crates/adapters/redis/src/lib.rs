//! Redis adapters: shared state that must hold across every replica (cache, rate-limit
//! buckets, quota counters) on one Redis, reached through a deadpool connection pool.
//!
//! Driver errors never cross the port: each method maps `RedisError` and pool errors to the
//! port's variants at this seam.

mod broadcast;
mod cache;
mod pool;
mod quota;

pub use broadcast::RedisBroadcast;
pub use cache::RedisCache;
pub use pool::{RedisConfig, RedisPool, RedisPoolError};
pub use quota::{RedisRateLimitStore, RedisUsageStore};
