//! Raw rate-limit decisions per second against a Redis server: 32 tasks, each calling
//! `RateLimitStore::acquire` (one script round trip, no leases) on its own key for three
//! seconds. `bench/limits.sh` prints the figure beside `redis-benchmark`'s PING rate.
//!
//! Usage: `cargo run --release -p tenantry-adapter-redis --example limiter_rate -- redis://127.0.0.1:6379`

#![allow(clippy::print_stdout)] // a benchmark prints its figure

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tenantry_adapter_redis::{RedisConfig, RedisPool, RedisRateLimitStore};
use tenantry_domain::rate::RatePolicy;
use tenantry_ports::RateLimitStore;

const TASKS: usize = 32;
const RUN: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
    let mut config = RedisConfig::new(SecretString::from(url));
    config.key_prefix = format!("limiter-bench-{}:", std::process::id());
    let store: Arc<dyn RateLimitStore> = Arc::new(RedisRateLimitStore::new(RedisPool::connect(&config)?));
    let policy = RatePolicy { limit: 1_000_000_000, period: Duration::from_secs(60) };
    let decisions = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (store, decisions) = (store.clone(), decisions.clone());
        tasks.push(tokio::spawn(async move {
            let key = format!("bench:{task}");
            while started.elapsed() < RUN {
                let now = chrono::Utc::now().timestamp_micros();
                if store.acquire(&key, policy, 1, 0, now).await.is_ok() {
                    decisions.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    let rate = decisions.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    println!("{rate:.0} decisions/s ({TASKS} tasks, one script call each)");
    Ok(())
}
