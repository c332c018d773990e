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

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tenantry_domain::{OrgId, UserId};
use tenantry_ports::{Cache, IdGenerator};

/// The longest a role or API key entry lives, bounding staleness if a bump was lost.
pub const ACCESS_TTL: Duration = Duration::from_secs(60);
/// The longest a member page lives. Pages hold members' names and addresses, which change
/// without bumping the org (a profile edit), so they are kept briefly.
pub const PAGE_TTL: Duration = Duration::from_secs(10);

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

/// The tenancy read cache.
#[derive(Clone)]
pub struct OrgCache {
    cache: Arc<dyn Cache>,
    ids: Arc<dyn IdGenerator>,
}

impl OrgCache {
    /// Over `cache`; `ids` mints the generation tokens.
    pub fn new(cache: Arc<dyn Cache>, ids: Arc<dyn IdGenerator>) -> Self {
        Self { cache, ids }
    }

    fn token(&self) -> String {
        self.ids.new_id().simple().to_string()
    }

    /// Reads `key` with the org's (and, when given, the user's) token in one round trip.
    pub async fn lookup<T: for<'de> Deserialize<'de>>(&self, key: &str, org: OrgId, user: Option<UserId>) -> Lookup<T> {
        let mut keys = vec![org_token_key(org), key.to_owned()];
        if let Some(user) = user {
            keys.push(user_token_key(user));
        }
        let values = match self.cache.get_many(&keys).await {
            Ok(values) if values.len() == keys.len() => values,
            Ok(_) => return Lookup { hit: None, fill: None },
            Err(err) => {
                tracing::warn!(error = %err, "tenancy cache read failed; reading the database");
                return Lookup { hit: None, fill: None };
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
            return Lookup { hit: None, fill: None };
        };
        let current = Stamp { org: org_token, user: user_token };
        let hit = values[1]
            .as_deref()
            .and_then(|bytes| serde_json::from_slice::<Stamped<T>>(bytes).ok())
            .filter(|entry| entry.stamp == current)
            .map(|entry| entry.value);
        Lookup { hit, fill: Some(current) }
    }

    /// Stores `value` under the stamp of `lookup` (a no-op when there is none).
    pub async fn fill<T: Serialize, U>(&self, key: &str, lookup: &Lookup<U>, value: &T, ttl: Duration) {
        let Some(stamp) = lookup.fill.clone() else { return };
        let Ok(bytes) = serde_json::to_vec(&Stamped { stamp, value }) else { return };
        if let Err(err) = self.cache.set(key, &bytes, Some(ttl)).await {
            tracing::warn!(error = %err, "tenancy cache write failed");
        }
    }

    /// A token for a generation key that has none (first use, eviction, restart). If another
    /// request set one first, its token is not known here: skip this fill.
    async fn establish(&self, key: &str) -> Option<String> {
        let token = self.token();
        match self.cache.set_if_absent(key, token.as_bytes(), None).await {
            Ok(true) => Some(token),
            _ => None,
        }
    }

    /// Invalidates everything cached about `org` (memberships, roles, keys, member pages).
    /// Call after the change committed.
    pub async fn bump_org(&self, org: OrgId) {
        if let Err(err) = self.cache.set(&org_token_key(org), self.token().as_bytes(), None).await {
            tracing::error!(error = %err, org_id = %org, "invalidating the tenancy cache failed; entries expire within {ACCESS_TTL:?}");
        }
    }

    /// Invalidates everything cached about `user` in every org (deletion, disabling).
    pub async fn bump_user(&self, user: UserId) {
        if let Err(err) = self.cache.set(&user_token_key(user), self.token().as_bytes(), None).await {
            tracing::error!(error = %err, user_id = %user, "invalidating the tenancy cache failed; entries expire within {ACCESS_TTL:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tenantry_adapter_memory::{InMemoryCache, SystemClock, UuidV7Generator};
    use tenantry_ports::{CacheError, MockCache};

    use super::*;

    fn cache() -> OrgCache {
        OrgCache::new(Arc::new(InMemoryCache::new(Arc::new(SystemClock))), Arc::new(UuidV7Generator))
    }

    fn ids() -> (OrgId, UserId) {
        (OrgId::from_uuid(uuid::Uuid::now_v7()), UserId::from_uuid(uuid::Uuid::now_v7()))
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
    async fn an_unavailable_cache_is_a_miss_and_fills_nothing() {
        let mut mock = MockCache::new();
        mock.expect_get_many().returning(|_| Err(CacheError::Unavailable(anyhow::anyhow!("down"))));
        mock.expect_set().times(0);
        let cache = OrgCache::new(Arc::new(mock), Arc::new(UuidV7Generator));
        let (org, user) = ids();
        let lookup = cache.lookup::<String>("k", org, Some(user)).await;
        assert_eq!(lookup.hit, None);
        cache.fill("k", &lookup, &"x".to_owned(), ACCESS_TTL).await;
    }

    #[tokio::test]
    async fn an_entry_from_before_a_lost_token_never_validates_again() {
        let shared = Arc::new(InMemoryCache::new(Arc::new(SystemClock)));
        let cache = OrgCache::new(shared.clone(), Arc::new(UuidV7Generator));
        let (org, _) = ids();
        let first = cache.lookup::<String>("k", org, None).await;
        cache.fill("k", &first, &"old".to_owned(), ACCESS_TTL).await;
        // The token is evicted (or the cache restarted without the entry's key being lost).
        shared.delete(&org_token_key(org)).await.expect("delete");
        assert_eq!(cache.lookup::<String>("k", org, None).await.hit, None);
    }
}
