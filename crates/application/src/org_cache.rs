//! A read-through cache, over the [`Cache`] port, of what org-scoped requests read on every
//! call: a member's role, an API key, and pages of the member list.
//!
//! Invalidation is by generation tokens, not by deleting entries: every org has a token (and
//! every user has one), each entry is stamped with the tokens it was read under, and an entry
//! whose stamp differs from the current tokens is a miss. A change bumps the token *after* it
//! commits, and a fill is stamped with the tokens read *before* the database read, so a fill
//! that raced a change can only be stamped with the old token and is never served after the
//! bump. Tokens are random, not counters, so a token lost to eviction or a cache restart can
//! never come back and validate an old entry.
//!
//! A failed cache read falls back to the database; a failed bump is logged, and entries then
//! expire on their own (at most [`ACCESS_TTL`]).
//!
//! In front of the shared cache sits a small in-process copy: tokens read from the shared cache
//! are trusted locally for [`LOCAL_TOKEN_TTL`], and entries stamped with them are served
//! without a round trip. A bump made by this process replaces its local token at once, so on a
//! single replica every change is seen by the next request; another replica sees it within
//! [`LOCAL_TOKEN_TTL`] (the bounded staleness ADR 0010 accepts).

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_domain::{OrgId, UserId};
use tenantry_ports::{Cache, Clock, IdGenerator};

use crate::invalidations::Invalidations;

/// The longest a role or API key entry lives, bounding staleness if a bump was lost.
pub const ACCESS_TTL: Duration = Duration::from_secs(60);
/// The longest a member page lives. Pages hold members' names and addresses, which change
/// without bumping the org (a profile edit), so they are kept briefly.
pub const PAGE_TTL: Duration = Duration::from_secs(10);
/// How long this process trusts a generation token it read from the shared cache: the most a
/// change made on another replica can take to be seen here.
pub const LOCAL_TOKEN_TTL: Duration = Duration::from_millis(500);
/// Most entries kept in process; past it the local copy starts afresh (it is only a copy).
const LOCAL_CAPACITY: usize = 20_000;
/// Generation tokens expire eventually, so the shared cache does not keep one per org and user
/// forever; an expired token only invalidates entries, which is always safe.
const TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

fn org_token_key(org: OrgId) -> String {
    format!("tenancy:gen:org:{org}")
}

fn user_token_key(user: UserId) -> String {
    format!("tenancy:gen:user:{user}")
}

/// The tokens an entry was read under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    org: String,
    user: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Stamped<T> {
    stamp: Stamp,
    value: T,
}

/// What a cached read found: the entry if its stamp is current, and the stamp to fill with
/// otherwise (`None` when a token could not be established: then do not fill).
pub struct Lookup<T> {
    /// The cached value, when fresh.
    pub hit: Option<T>,
    fill: Option<Stamp>,
}

/// The in-process copy: tokens with the time they were read, entries with their expiry.
#[derive(Default)]
struct Local {
    tokens: HashMap<String, (String, DateTime<Utc>)>,
    /// Entries kept decoded, so a local hit costs a clone rather than a JSON parse.
    entries: HashMap<String, LocalEntry>,
    /// Per token key, this process's latest bump: a read that began before it must not store
    /// the token it saw, and after a failed bump the key is not trusted at all for a while.
    bumps: HashMap<String, Bump>,
    /// Orders bumps and reads within this process.
    seq: u64,
    /// Reads that began at or before this sequence number store no token (the bump records
    /// they would be checked against were dropped at capacity).
    floor: u64,
}

/// A decoded entry with the stamp it was read under and when it expires.
struct LocalEntry {
    stamp: Stamp,
    value: Arc<dyn Any + Send + Sync>,
    expires: DateTime<Utc>,
}

/// One bump of one token key by this process.
struct Bump {
    seq: u64,
    /// Until when the key bypasses the cache because the bump did not reach the shared cache.
    distrusted_until: Option<DateTime<Utc>>,
}

/// How a tenancy-cache read was answered: what the hit ratio metrics count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheRead {
    /// From this process's copy, without a round trip.
    LocalHit,
    /// From the shared cache (Redis, or the in-process one without Redis).
    SharedHit,
    /// Not cached, stale, or the cache could not be read: the database answers.
    Miss,
}

impl CacheRead {
    /// The label value: `local`, `shared` or `miss`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LocalHit => "local",
            Self::SharedHit => "shared",
            Self::Miss => "miss",
        }
    }
}

/// Told about every tenancy-cache read, so the process can export hit and miss counts
/// without the application knowing about a metrics library (the server's Prometheus registry
/// implements it).
pub trait CacheObserver: Send + Sync {
    /// One read, answered as `read` says (local hit, shared hit or miss); called synchronously
    /// on the request path, so an implementation only counts.
    fn read(&self, read: CacheRead);
}

/// The tenancy read cache. Clones share one in-process copy: build one per process.
#[derive(Clone)]
pub struct OrgCache {
    cache: Arc<dyn Cache>,
    ids: Arc<dyn IdGenerator>,
    clock: Arc<dyn Clock>,
    local: Arc<Mutex<Local>>,
    /// Tells other replicas a token changed, when there is a broadcast.
    invalidations: Option<Invalidations>,
    /// Counts hits and misses, when the process watches them.
    observer: Option<Arc<dyn CacheObserver>>,
}

fn later(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(by).unwrap_or(chrono::Duration::zero())
}

impl OrgCache {
    /// Over `cache`; `ids` mints the generation tokens, `clock` ages the local copy.
    pub fn new(cache: Arc<dyn Cache>, ids: Arc<dyn IdGenerator>, clock: Arc<dyn Clock>) -> Self {
        Self { cache, ids, clock, local: Arc::new(Mutex::new(Local::default())), invalidations: None, observer: None }
    }

    /// Reports every read to `observer`, so hit and miss rates can be exported as metrics.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn CacheObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Announces every bump to the other replicas through `invalidations`, so they need not
    /// wait out [`LOCAL_TOKEN_TTL`].
    #[must_use]
    pub fn with_invalidations(mut self, invalidations: Invalidations) -> Self {
        self.invalidations = Some(invalidations);
        self
    }

    /// Forgets this process's copy of the token at `key` (another replica bumped it), so the
    /// next lookup reads the shared cache, and a lookup already under way does not keep the
    /// token it read before.
    pub(crate) fn forget_token(&self, key: &str) {
        self.record_bump(key);
    }

    /// Forgets the local token at `key` and records a bump of it; returns the bump's sequence
    /// number.
    fn record_bump(&self, key: &str) -> u64 {
        let now = self.clock.now();
        let mut local = self.local();
        local.seq += 1;
        let seq = local.seq;
        if local.bumps.len() > LOCAL_CAPACITY {
            // Only distrust that still holds is worth keeping; the rest is summed up by the floor.
            local.bumps.retain(|_, bump| bump.distrusted_until.is_some_and(|until| until > now));
            local.floor = seq;
        }
        let distrusted_until = local.bumps.get(key).and_then(|bump| bump.distrusted_until);
        local.bumps.insert(key.to_owned(), Bump { seq, distrusted_until });
        local.tokens.remove(key);
        seq
    }

    fn local(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry at `key` from the local copy, when every token it needs is locally fresh and
    /// its stamp matches them.
    fn local_hit<T: Clone + 'static>(&self, key: &str, token_keys: &[String]) -> Option<(Stamp, T)> {
        let now = self.clock.now();
        let local = self.local();
        let mut tokens = token_keys.iter().map(|k| {
            local.tokens.get(k).filter(|(_, read)| later(*read, LOCAL_TOKEN_TTL) > now).map(|(t, _)| t.clone())
        });
        let stamp = Stamp {
            org: tokens.next()??,
            user: match tokens.next() {
                Some(t) => Some(t?),
                None => None,
            },
        };
        let entry = local.entries.get(key)?;
        if entry.expires <= now || entry.stamp != stamp {
            return None;
        }
        let value = entry.value.downcast_ref::<T>()?.clone();
        Some((stamp, value))
    }

    /// Keeps tokens read by a lookup that began at `(read_at, seq)`, unless this process bumped
    /// one of them since: the read may have returned the token the bump replaced. The age
    /// counts from the start of the read, so a slow reply cannot stretch the trust period.
    fn remember_tokens(&self, pairs: &[(&String, &String)], read_at: DateTime<Utc>, seq: u64) {
        let mut local = self.local();
        if local.floor > 0 && local.floor >= seq {
            return;
        }
        if local.tokens.len() > LOCAL_CAPACITY {
            local.tokens.clear();
        }
        for (key, token) in pairs {
            if local.bumps.get(*key).is_some_and(|bump| bump.seq > seq) {
                continue;
            }
            local.tokens.insert((*key).clone(), ((*token).clone(), read_at));
        }
    }

    /// Whether one of `token_keys` had a bump that failed recently: then the cache is skipped.
    fn distrusted(&self, token_keys: &[String]) -> bool {
        let now = self.clock.now();
        let local = self.local();
        token_keys
            .iter()
            .any(|key| local.bumps.get(key).and_then(|bump| bump.distrusted_until).is_some_and(|until| until > now))
    }

    fn remember_entry<T: Clone + Send + Sync + 'static>(&self, key: &str, stamp: Stamp, value: &T, ttl: Duration) {
        let expires = later(self.clock.now(), ttl);
        let value: Arc<dyn Any + Send + Sync> = Arc::new(value.clone());
        let mut local = self.local();
        if local.entries.len() > LOCAL_CAPACITY {
            local.entries.clear();
        }
        local.entries.insert(key.to_owned(), LocalEntry { stamp, value, expires });
    }

    fn token(&self) -> String {
        self.ids.new_id().simple().to_string()
    }

    /// Reads `key` with the org's (and, when given, the user's) token in one round trip.
    pub async fn lookup<T>(&self, key: &str, org: OrgId, user: Option<UserId>) -> Lookup<T>
    where
        T: for<'de> Deserialize<'de> + Clone + Send + Sync + 'static,
    {
        let (lookup, local) = self.read(key, org, user).await;
        if let Some(observer) = &self.observer {
            observer.read(match (&lookup.hit, local) {
                (Some(_), true) => CacheRead::LocalHit,
                (Some(_), false) => CacheRead::SharedHit,
                (None, _) => CacheRead::Miss,
            });
        }
        lookup
    }

    /// [`Self::lookup`], and whether the answer came from the local copy.
    async fn read<T>(&self, key: &str, org: OrgId, user: Option<UserId>) -> (Lookup<T>, bool)
    where
        T: for<'de> Deserialize<'de> + Clone + Send + Sync + 'static,
    {
        let mut token_keys = vec![org_token_key(org)];
        if let Some(user) = user {
            token_keys.push(user_token_key(user));
        }
        if self.distrusted(&token_keys) {
            return (Lookup { hit: None, fill: None }, false);
        }
        if let Some((stamp, value)) = self.local_hit(key, &token_keys) {
            return (Lookup { hit: Some(value), fill: Some(stamp) }, true);
        }
        let read_at = self.clock.now();
        let read_seq = self.local().seq;
        let mut keys = vec![token_keys[0].clone(), key.to_owned()];
        if let Some(user_key) = token_keys.get(1) {
            keys.push(user_key.clone());
        }
        let values = match self.cache.get_many(&keys).await {
            Ok(values) if values.len() == keys.len() => values,
            Ok(_) => return (Lookup { hit: None, fill: None }, false),
            Err(err) => {
                tracing::warn!(error = %err, "tenancy cache read failed; reading the database");
                return (Lookup { hit: None, fill: None }, false);
            }
        };
        let text = |v: &Option<Vec<u8>>| v.as_ref().and_then(|bytes| String::from_utf8(bytes.clone()).ok());
        let org_token = match text(&values[0]) {
            Some(token) => Some(token),
            None => self.establish(&keys[0]).await,
        };
        let user_token = match (user, values.get(2)) {
            (Some(_), Some(value)) => match text(value) {
                Some(token) => Some(Some(token)),
                None => self.establish(&keys[2]).await.map(Some),
            },
            _ => Some(None),
        };
        let (Some(org_token), Some(user_token)) = (org_token, user_token) else {
            return (Lookup { hit: None, fill: None }, false);
        };
        let current = Stamp { org: org_token, user: user_token };
        let mut fresh = vec![(&keys[0], &current.org)];
        if let (Some(user_key), Some(user_token)) = (keys.get(2), current.user.as_ref()) {
            fresh.push((user_key, user_token));
        }
        self.remember_tokens(&fresh, read_at, read_seq);
        let hit = values[1].as_deref().and_then(|bytes| {
            let entry = serde_json::from_slice::<Stamped<T>>(bytes).ok().filter(|entry| entry.stamp == current)?;
            // Served from the shared cache: keep a copy for the next request here.
            self.remember_entry(key, entry.stamp, &entry.value, PAGE_TTL);
            Some(entry.value)
        });
        (Lookup { hit, fill: Some(current) }, false)
    }

    /// Stores `value` under the stamp of `lookup` (a no-op when there is none).
    pub async fn fill<T: Serialize + Clone + Send + Sync + 'static>(
        &self,
        key: &str,
        lookup: &Lookup<T>,
        value: &T,
        ttl: Duration,
    ) {
        let Some(stamp) = lookup.fill.clone() else { return };
        let Ok(bytes) = serde_json::to_vec(&Stamped { stamp: stamp.clone(), value }) else { return };
        if let Err(err) = self.cache.set(key, &bytes, Some(ttl)).await {
            tracing::warn!(error = %err, "tenancy cache write failed");
        }
        self.remember_entry(key, stamp, value, ttl.min(PAGE_TTL));
    }

    /// A token for a generation key that has none (first use, eviction, restart). If another
    /// request set one first, its token is not known here: skip this fill.
    async fn establish(&self, key: &str) -> Option<String> {
        let token = self.token();
        match self.cache.set_if_absent(key, token.as_bytes(), Some(TOKEN_TTL)).await {
            Ok(true) => Some(token),
            _ => None,
        }
    }

    /// Invalidates everything cached about `org` (memberships, roles, keys, member pages).
    /// Call after the change committed.
    pub async fn bump_org(&self, org: OrgId) {
        self.bump(org_token_key(org)).await;
    }

    /// Invalidates everything cached about `user` in every org (deletion, disabling).
    pub async fn bump_user(&self, user: UserId) {
        self.bump(user_token_key(user)).await;
    }

    async fn bump(&self, key: String) {
        let token = self.token();
        // Forget the local token first and record the bump: until the new token is stored,
        // this process asks the shared cache, and no read that began earlier stores a token.
        let mine = self.record_bump(&key);
        let result = self.cache.set(&key, token.as_bytes(), Some(TOKEN_TTL)).await;
        let now = self.clock.now();
        {
            let mut local = self.local();
            match &result {
                Ok(()) => {
                    // Only the latest of concurrent bumps of one key sets the local token.
                    if local.bumps.get(&key).is_some_and(|bump| bump.seq == mine) {
                        local.tokens.insert(key.clone(), (token, now));
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err, key = %key, "invalidating the tenancy cache failed; this process bypasses it for {ACCESS_TTL:?}, other replicas' entries expire within that");
                    if let Some(bump) = local.bumps.get_mut(&key) {
                        bump.distrusted_until = Some(later(now, ACCESS_TTL));
                    }
                }
            }
        }
        // Once the new token is shared: a replica that hears of it reads the new one.
        if result.is_ok()
            && let Some(invalidations) = &self.invalidations
        {
            invalidations.token_bumped(&key).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tenantry_adapter_memory::{InMemoryCache, ManualClock, SystemClock, UuidV7Generator};
    use tenantry_ports::{CacheError, MockCache};

    use super::*;

    /// The shared cache, counting round trips.
    struct Counting {
        inner: InMemoryCache,
        reads: AtomicUsize,
        failing_sets: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl Cache for Counting {
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
            self.inner.get(key).await
        }
        async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            self.inner.get_many(keys).await
        }
        async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
            if self.failing_sets.load(Ordering::SeqCst) {
                return Err(CacheError::Unavailable(anyhow::anyhow!("down for writes")));
            }
            self.inner.set(key, value, ttl).await
        }
        async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<bool, CacheError> {
            self.inner.set_if_absent(key, value, ttl).await
        }
        async fn delete(&self, key: &str) -> Result<bool, CacheError> {
            self.inner.delete(key).await
        }
        async fn increment(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, CacheError> {
            self.inner.increment(key, by, ttl).await
        }
        async fn ttl(&self, key: &str) -> Result<Option<Duration>, CacheError> {
            self.inner.ttl(key).await
        }
        async fn ping(&self) -> Result<(), CacheError> {
            Ok(())
        }
    }

    fn shared(clock: Arc<ManualClock>) -> Arc<Counting> {
        Arc::new(Counting {
            inner: InMemoryCache::new(clock),
            reads: AtomicUsize::new(0),
            failing_sets: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn replica(shared: &Arc<Counting>, clock: &Arc<ManualClock>) -> OrgCache {
        OrgCache::new(shared.clone(), Arc::new(UuidV7Generator), clock.clone())
    }

    fn cache() -> OrgCache {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        replica(&shared(clock.clone()), &clock)
    }

    fn ids() -> (OrgId, UserId) {
        (OrgId::from_uuid(uuid::Uuid::now_v7()), UserId::from_uuid(uuid::Uuid::now_v7()))
    }

    /// One replica with `"admin"` cached at `"k"` for a fresh org and user.
    async fn warmed() -> (Arc<ManualClock>, Arc<Counting>, OrgCache, OrgId, UserId) {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let remote = shared(clock.clone());
        let cache = replica(&remote, &clock);
        let (org, user) = ids();
        let first = cache.lookup::<String>("k", org, Some(user)).await;
        cache.fill("k", &first, &"admin".to_owned(), ACCESS_TTL).await;
        (clock, remote, cache, org, user)
    }

    /// Counts reads by how they were answered.
    #[derive(Default)]
    struct Reads(Mutex<Vec<CacheRead>>);

    impl CacheObserver for Reads {
        fn read(&self, read: CacheRead) {
            self.0.lock().expect("reads").push(read);
        }
    }

    #[tokio::test]
    async fn the_observer_hears_of_every_read_as_a_local_hit_a_shared_hit_or_a_miss() {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let remote = shared(clock.clone());
        let reads = Arc::new(Reads::default());
        let a = replica(&remote, &clock).with_observer(reads.clone());
        let b = replica(&remote, &clock).with_observer(reads.clone());
        let (org, user) = ids();
        let first = a.lookup::<String>("k", org, Some(user)).await;
        a.fill("k", &first, &"admin".to_owned(), ACCESS_TTL).await;
        assert!(a.lookup::<String>("k", org, Some(user)).await.hit.is_some());
        assert!(b.lookup::<String>("k", org, Some(user)).await.hit.is_some());
        assert_eq!(
            *reads.0.lock().expect("reads"),
            vec![CacheRead::Miss, CacheRead::LocalHit, CacheRead::SharedHit],
            "a's first read misses, its second is its own copy, b's comes from the shared cache"
        );
    }

    #[tokio::test]
    async fn a_fill_is_served_until_its_org_or_user_is_bumped() {
        let cache = cache();
        let (org, user) = ids();
        let first: Lookup<String> = cache.lookup("k", org, Some(user)).await;
        assert_eq!(first.hit, None);
        cache.fill("k", &first, &"admin".to_owned(), ACCESS_TTL).await;
        assert_eq!(cache.lookup::<String>("k", org, Some(user)).await.hit.as_deref(), Some("admin"));

        cache.bump_org(org).await;
        let after_org = cache.lookup::<String>("k", org, Some(user)).await;
        assert_eq!(after_org.hit, None, "an org change invalidates");
        cache.fill("k", &after_org, &"viewer".to_owned(), ACCESS_TTL).await;
        assert_eq!(cache.lookup::<String>("k", org, Some(user)).await.hit.as_deref(), Some("viewer"));

        cache.bump_user(user).await;
        assert_eq!(cache.lookup::<String>("k", org, Some(user)).await.hit, None, "a user change invalidates");
    }

    #[tokio::test]
    async fn a_fill_that_raced_a_change_is_never_served_after_it() {
        let cache = cache();
        let (org, _) = ids();
        let _ = cache.lookup::<String>("k", org, None).await;
        // Read the stamp, then a change commits and bumps, then the stale value is filled.
        let before = cache.lookup::<String>("k", org, None).await;
        cache.bump_org(org).await;
        cache.fill("k", &before, &"stale".to_owned(), ACCESS_TTL).await;
        assert_eq!(cache.lookup::<String>("k", org, None).await.hit, None);
    }

    #[tokio::test]
    async fn warm_entries_are_served_in_process_without_a_round_trip() {
        let (clock, remote, cache, org, user) = warmed().await;
        let trips = remote.reads.load(Ordering::SeqCst);
        for _ in 0..10 {
            assert_eq!(cache.lookup::<String>("k", org, Some(user)).await.hit.as_deref(), Some("admin"));
        }
        assert_eq!(remote.reads.load(Ordering::SeqCst), trips, "no round trip while the tokens are fresh");
        clock.advance(chrono::Duration::milliseconds(501));
        assert_eq!(cache.lookup::<String>("k", org, Some(user)).await.hit.as_deref(), Some("admin"));
        assert_eq!(remote.reads.load(Ordering::SeqCst), trips + 1, "stale tokens are read again");
    }

    #[tokio::test]
    async fn another_replicas_change_is_seen_within_the_local_token_lifetime() {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let remote = shared(clock.clone());
        let (a, b) = (replica(&remote, &clock), replica(&remote, &clock));
        let (org, user) = ids();
        let first = a.lookup::<String>("k", org, Some(user)).await;
        a.fill("k", &first, &"admin".to_owned(), ACCESS_TTL).await;
        assert_eq!(b.lookup::<String>("k", org, Some(user)).await.hit.as_deref(), Some("admin"));

        a.bump_org(org).await;
        assert_eq!(a.lookup::<String>("k", org, Some(user)).await.hit, None, "the bumping replica: at once");
        assert_eq!(
            b.lookup::<String>("k", org, Some(user)).await.hit.as_deref(),
            Some("admin"),
            "another replica may serve its copy while its token is fresh"
        );
        clock.advance(chrono::Duration::milliseconds(500));
        assert_eq!(b.lookup::<String>("k", org, Some(user)).await.hit, None, "and no longer");
    }

    #[tokio::test]
    async fn after_a_failed_bump_this_process_bypasses_the_cache_for_the_access_ttl() {
        let (clock, remote, cache, org, user) = warmed().await;
        remote.failing_sets.store(true, Ordering::SeqCst);
        cache.bump_org(org).await;
        remote.failing_sets.store(false, Ordering::SeqCst);
        let after = cache.lookup::<String>("k", org, Some(user)).await;
        assert_eq!(after.hit, None, "the old token is still in the shared cache, but not trusted here");
        cache.fill("k", &after, &"stale".to_owned(), ACCESS_TTL).await;
        assert_eq!(cache.lookup::<String>("k", org, Some(user)).await.hit, None, "and nothing is filled meanwhile");
        clock.advance(chrono::Duration::seconds(61));
        assert_eq!(
            cache.lookup::<String>("k", org, Some(user)).await.hit,
            None,
            "by then the entry stamped before the change has expired"
        );
    }

    #[tokio::test]
    async fn an_unavailable_cache_is_a_miss_and_fills_nothing() {
        let mut mock = MockCache::new();
        mock.expect_get_many().returning(|_| Err(CacheError::Unavailable(anyhow::anyhow!("down"))));
        mock.expect_set().times(0);
        let cache = OrgCache::new(Arc::new(mock), Arc::new(UuidV7Generator), Arc::new(SystemClock));
        let (org, user) = ids();
        let lookup = cache.lookup::<String>("k", org, Some(user)).await;
        assert_eq!(lookup.hit, None);
        cache.fill("k", &lookup, &"x".to_owned(), ACCESS_TTL).await;
    }

    #[tokio::test]
    async fn an_entry_from_before_a_lost_token_never_validates_again() {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let remote = shared(clock.clone());
        let cache = replica(&remote, &clock);
        let (org, _) = ids();
        let first = cache.lookup::<String>("k", org, None).await;
        cache.fill("k", &first, &"old".to_owned(), ACCESS_TTL).await;
        // The token is evicted from the shared cache (or it restarted and lost it).
        remote.delete(&org_token_key(org)).await.expect("delete");
        clock.advance(chrono::Duration::milliseconds(500));
        assert_eq!(cache.lookup::<String>("k", org, None).await.hit, None);
    }
}
