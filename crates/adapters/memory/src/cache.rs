use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tenantry_ports::{Cache, CacheError, Clock};

/// How many writes between sweeps of expired entries, so memory stays bounded by live keys.
const SWEEP_EVERY: u64 = 1024;

#[derive(Debug, Clone)]
struct Entry {
    value: Vec<u8>,
    expires_at: Option<DateTime<Utc>>,
}

impl Entry {
    fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// A [`Cache`] in this process's memory, for one replica and for tests.
///
/// Time comes from the injected [`Clock`], so expiry can be tested with a manual clock. One
/// mutex guards the map: every operation is a handful of hash-map steps, far shorter than the
/// await points around it.
pub struct InMemoryCache {
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<String, Entry>>,
    writes: AtomicU64,
}

impl InMemoryCache {
    /// An empty cache reading time from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock, entries: Mutex::new(HashMap::new()), writes: AtomicU64::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave an entry half-written (every mutation is
        // a single insert or remove), so the poisoned map is still consistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn expiry(&self, now: DateTime<Utc>, ttl: Option<Duration>) -> Option<DateTime<Utc>> {
        ttl.map(|ttl| now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX))
    }

    fn after_write(&self, entries: &mut HashMap<String, Entry>, now: DateTime<Utc>) {
        if self.writes.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            entries.retain(|_, entry| entry.is_live(now));
        }
    }

    /// How many keys are held, expired ones included until the next sweep.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait::async_trait]
impl Cache for InMemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let now = self.clock.now();
        let entries = self.lock();
        Ok(entries.get(key).filter(|entry| entry.is_live(now)).map(|entry| entry.value.clone()))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        let now = self.clock.now();
        let entries = self.lock();
        Ok(keys
            .iter()
            .map(|key| entries.get(key).filter(|entry| entry.is_live(now)).map(|entry| entry.value.clone()))
            .collect())
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
        let now = self.clock.now();
        let mut entries = self.lock();
        entries.insert(key.to_owned(), Entry { value: value.to_vec(), expires_at: self.expiry(now, ttl) });
        self.after_write(&mut entries, now);
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, CacheError> {
        let now = self.clock.now();
        let mut entries = self.lock();
        if entries.get(key).is_some_and(|entry| entry.is_live(now)) {
            return Ok(false);
        }
        entries.insert(key.to_owned(), Entry { value: value.to_vec(), expires_at: self.expiry(now, ttl) });
        self.after_write(&mut entries, now);
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let now = self.clock.now();
        let removed = self.lock().remove(key);
        Ok(removed.is_some_and(|entry| entry.is_live(now)))
    }

    async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, CacheError> {
        let now = self.clock.now();
        let mut entries = self.lock();
        let live = entries.get(key).filter(|entry| entry.is_live(now)).cloned();
        let (current, expires_at) = match live {
            Some(entry) => {
                let text = std::str::from_utf8(&entry.value).map_err(|_| CacheError::NotAnInteger)?;
                let current: i64 = text.parse().map_err(|_| CacheError::NotAnInteger)?;
                (current, entry.expires_at)
            }
            None => (0, self.expiry(now, ttl)),
        };
        let next = current.checked_add(by).ok_or(CacheError::NotAnInteger)?;
        entries.insert(key.to_owned(), Entry { value: next.to_string().into_bytes(), expires_at });
        self.after_write(&mut entries, now);
        Ok(next)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
        let now = self.clock.now();
        let entries = self.lock();
        Ok(entries
            .get(key)
            .filter(|entry| entry.is_live(now))
            .and_then(|entry| entry.expires_at)
            .and_then(|at| (at - now).to_std().ok()))
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ManualClock, SystemClock};

    #[tokio::test]
    async fn passes_the_cache_contract() {
        tenantry_testkit::cache::run_contract(|| async {
            Arc::new(InMemoryCache::new(Arc::new(SystemClock))) as Arc<dyn Cache>
        })
        .await;
    }

    #[tokio::test]
    async fn entries_expire_when_their_time_is_up() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let cache = InMemoryCache::new(clock.clone());
        cache.set("k", b"v", Some(Duration::from_secs(10))).await.expect("set");
        cache.increment("n", 1, Some(Duration::from_secs(10))).await.expect("incr");
        clock.advance(chrono::Duration::seconds(9));
        assert_eq!(cache.get("k").await.expect("get"), Some(b"v".to_vec()));
        assert_eq!(cache.ttl("k").await.expect("ttl"), Some(Duration::from_secs(1)));
        clock.advance(chrono::Duration::seconds(1));
        assert_eq!(cache.get("k").await.expect("get"), None);
        assert_eq!(cache.increment("n", 1, None).await.expect("incr"), 1, "expired counter restarts");
        assert!(cache.set_if_absent("k", b"w", None).await.expect("setnx"), "expired key is absent");
    }

    #[tokio::test]
    async fn expired_entries_are_swept_so_memory_stays_bounded() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let cache = InMemoryCache::new(clock.clone());
        for i in 0..SWEEP_EVERY {
            cache.set(&format!("k{i}"), b"v", Some(Duration::from_secs(1))).await.expect("set");
        }
        clock.advance(chrono::Duration::seconds(2));
        for i in 0..SWEEP_EVERY {
            cache.set(&format!("fresh{i}"), b"v", None).await.expect("set");
        }
        assert_eq!(cache.len(), usize::try_from(SWEEP_EVERY).expect("fits"));
    }
}
