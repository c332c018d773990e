//! Local leases: units taken from a shared counter in small batches and handed out in-process,
//! so a request usually costs no round trip, while the shared counter still never passes its
//! limit (every unit handed out was granted by it first).
//!
//! A batch shrinks with what is left (a sixteenth of it, at most [`LeasePolicy::max_batch`]),
//! so near the limit every unit is asked for on its own and a replica cannot sit on units
//! another needs. Units not used before the lease expires are given back.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::lock::Mutex as AsyncMutex;

/// How big and how long-lived leases are: the trade between round trips saved and units a
/// replica may hold that another could have used (ADR 0014 bounds the under-admission).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeasePolicy {
    /// The most units one batch takes; 1 turns leasing off (every unit is one round trip).
    pub max_batch: u32,
    /// How long unused units stay here before they are given back.
    pub ttl: Duration,
}

impl LeasePolicy {
    /// No leasing: the right choice when the shared counter is in-process anyway.
    pub const NONE: Self = Self { max_batch: 1, ttl: Duration::ZERO };

    /// The default for a remote counter (Redis, PostgreSQL): batches of up to 1024 (a
    /// sixteenth of what is left, so only a bucket far from its limit gets a large one), given
    /// back after 250 ms. ADR 0014 derives the bound this puts on under-admission.
    pub const REMOTE: Self = Self { max_batch: 1024, ttl: Duration::from_millis(250) };

    /// The batch to ask for when `remaining` units were left at the last grant (unknown: 1).
    pub fn batch(&self, remaining: Option<u64>) -> u32 {
        let Some(remaining) = remaining else { return 1 };
        let share = u32::try_from(remaining / 16).unwrap_or(u32::MAX);
        share.clamp(1, self.max_batch.max(1))
    }
}

/// One key's lease.
#[derive(Debug, Default)]
pub(crate) struct Lease<S> {
    /// Units granted and not yet handed out.
    pub units: u32,
    /// When they must be given back (microseconds since the epoch).
    pub expires_us: i64,
    /// What the shared counter had left at the last grant.
    pub remaining: Option<u64>,
    /// What the owner keeps with the lease (the period it belongs to, the reset time…).
    pub state: S,
}

impl<S> Lease<S> {
    /// Takes one unit if the lease still holds one at `now_us`.
    pub fn take(&mut self, now_us: i64) -> bool {
        if self.units > 0 && now_us < self.expires_us {
            self.units -= 1;
            return true;
        }
        false
    }

    /// Units to give back: all of them once expired.
    pub fn expired_units(&mut self, now_us: i64) -> u32 {
        if now_us >= self.expires_us { std::mem::take(&mut self.units) } else { 0 }
    }
}

/// The leases of every key, each behind its own async lock so one key's round trip never
/// waits for another's.
pub(crate) struct Leases<K, S> {
    slots: Mutex<HashMap<K, Arc<AsyncMutex<Lease<S>>>>>,
}

/// Past this many keys, idle ones are dropped when a new key arrives.
const MAX_KEYS: usize = 50_000;

impl<K: Eq + Hash + Clone, S: Default> Leases<K, S> {
    pub fn new() -> Self {
        Self { slots: Mutex::new(HashMap::new()) }
    }

    /// The lease of `key`, created empty on first use.
    pub fn slot(&self, key: &K) -> Arc<AsyncMutex<Lease<S>>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = slots.get(key) {
            return slot.clone();
        }
        if slots.len() >= MAX_KEYS {
            // Drop leases nobody holds a handle to and that hold no units.
            slots.retain(|_, slot| Arc::strong_count(slot) > 1 || slot.try_lock().is_none_or(|lease| lease.units > 0));
        }
        slots.entry(key.clone()).or_insert_with(|| Arc::new(AsyncMutex::new(Lease::default()))).clone()
    }

    /// Every key with its lease, for flushing.
    pub fn all(&self) -> Vec<(K, Arc<AsyncMutex<Lease<S>>>)> {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots.iter().map(|(key, slot)| (key.clone(), slot.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_shrink_to_one_near_the_limit() {
        let policy = LeasePolicy::REMOTE;
        assert_eq!(policy.batch(None), 1, "the first ask is a single unit");
        assert_eq!(policy.batch(Some(10_000)), 625);
        assert_eq!(policy.batch(Some(1_000_000)), 1024);
        assert_eq!(policy.batch(Some(160)), 10);
        assert_eq!(policy.batch(Some(20)), 1);
        assert_eq!(policy.batch(Some(0)), 1);
        assert_eq!(LeasePolicy::NONE.batch(Some(10_000)), 1);
    }

    #[test]
    fn a_lease_hands_out_its_units_until_it_expires() {
        let mut lease = Lease::<()> { units: 2, expires_us: 100, ..Lease::default() };
        assert!(lease.take(10));
        assert_eq!(lease.expired_units(50), 0, "not yet expired");
        assert!(!lease.take(100), "expired");
        assert_eq!(lease.expired_units(100), 1);
        assert_eq!(lease.units, 0);
    }
}
