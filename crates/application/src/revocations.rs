//! Session revocation: the marker every access token is checked against, with a short-lived
//! in-process copy of "checked, not revoked".
//!
//! Access tokens are stateless, so a revoked session's token keeps a valid signature until it
//! expires; a marker in the shared cache makes it fail instead. Reading that marker on every
//! request is one cache round trip per request, the only one a warm org-scoped request still
//! made. So a session found *not* revoked is trusted by this process for [`LOCAL_TRUST`]:
//!
//! - a revocation made by this process removes its local entry after the marker is written, and
//!   a check that began before the revocation does not store its (stale) answer, so on one
//!   replica a revoked token fails on the very next request;
//! - another replica sees the marker within [`LOCAL_TRUST`]: the bound API.md allows is the
//!   access-token lifetime; this one is half a second (ADR 0011).
//!
//! A revoked answer is never cached locally: a revoked session's token is rare and cheap to
//! refuse, and refusing it again costs one round trip.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tenantry_domain::SessionId;
use tenantry_domain::identity::TokenLifetimes;
use tenantry_ports::{Cache, CacheError, Clock};

use crate::invalidations::Invalidations;

/// How long this process trusts a "not revoked" answer: the most a revocation made on another
/// replica can take to be seen here.
pub const LOCAL_TRUST: Duration = Duration::from_millis(500);
/// Most sessions kept in process; past it expired entries are dropped, and if that is not
/// enough the copy starts afresh (it is only a copy).
const LOCAL_CAPACITY: usize = 50_000;
const REVOKED: &str = "auth:session-revoked:";
/// The activity marker: present while the session's `last_seen_at` is fresh enough.
pub(crate) const SEEN: &str = "auth:session-seen:";

/// What a check against the shared cache found; `TrustedLocally` is told apart from `Active`
/// because only a round trip can say whether the activity marker is present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCheck {
    /// The session was revoked.
    Revoked,
    /// Not revoked; `seen` is whether the activity marker was present (when it is absent, the
    /// caller records activity).
    Active {
        /// The activity marker was present.
        seen: bool,
    },
    /// Not revoked, answered from this process's copy without a round trip.
    TrustedLocally,
}

#[derive(Default)]
struct Local {
    /// Session → until when it is trusted.
    trusted: HashMap<SessionId, DateTime<Utc>>,
    /// Counts revocations made by this process: a check that saw a different count when it
    /// began raced one, and does not store its answer.
    revocations: u64,
}

/// The revocation markers. Clones share one in-process copy: build one per process.
#[derive(Clone)]
pub struct SessionRevocations {
    cache: Arc<dyn Cache>,
    clock: Arc<dyn Clock>,
    marker_ttl: Duration,
    local: Arc<Mutex<Local>>,
    /// Tells other replicas to forget a revoked session at once, when there is a broadcast.
    invalidations: Option<Invalidations>,
}

fn later(at: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    at + chrono::Duration::from_std(by).unwrap_or(chrono::Duration::zero())
}

impl SessionRevocations {
    /// Over `cache`; markers outlive the longest access token of `lifetimes`.
    pub fn new(cache: Arc<dyn Cache>, clock: Arc<dyn Clock>, lifetimes: TokenLifetimes) -> Self {
        Self {
            cache,
            clock,
            marker_ttl: lifetimes.access + Duration::from_secs(60),
            local: Arc::new(Mutex::new(Local::default())),
            invalidations: None,
        }
    }

    /// Announces revocations to the other replicas through `invalidations`, so they need not
    /// wait out [`LOCAL_TRUST`].
    #[must_use]
    pub fn with_invalidations(mut self, invalidations: Invalidations) -> Self {
        self.invalidations = Some(invalidations);
        self
    }

    fn local(&self) -> std::sync::MutexGuard<'_, Local> {
        self.local.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `session` was revoked: from the local copy when it vouches for the session,
    /// otherwise from the shared cache, reading the activity marker in the same round trip.
    ///
    /// # Errors
    /// The cache's, when it had to be asked (callers fail closed).
    pub async fn check(&self, session: SessionId) -> Result<SessionCheck, CacheError> {
        let now = self.clock.now();
        let began = {
            let local = self.local();
            // An entry further ahead than the bound means the clock stepped back: not trusted.
            let horizon = later(now, LOCAL_TRUST);
            if local.trusted.get(&session).is_some_and(|until| *until > now && *until <= horizon) {
                return Ok(SessionCheck::TrustedLocally);
            }
            local.revocations
        };
        let markers = self.cache.get_many(&[format!("{REVOKED}{session}"), format!("{SEEN}{session}")]).await?;
        if markers.first().is_none_or(Option::is_some) {
            return Ok(SessionCheck::Revoked);
        }
        let seen = markers.get(1).is_some_and(Option::is_some);
        let mut local = self.local();
        if local.revocations == began {
            if local.trusted.len() >= LOCAL_CAPACITY {
                local.trusted.retain(|_, until| *until > now);
                if local.trusted.len() >= LOCAL_CAPACITY {
                    local.trusted.clear();
                }
            }
            local.trusted.insert(session, later(now, LOCAL_TRUST));
        }
        Ok(SessionCheck::Active { seen })
    }

    /// Makes the access tokens of `sessions` fail: at once in this process, within
    /// [`LOCAL_TRUST`] in the others.
    ///
    /// # Errors
    /// The cache's; the local copy forgets the sessions whatever happens.
    pub async fn revoke(&self, sessions: &[SessionId]) -> Result<(), CacheError> {
        let mut outcome = Ok(());
        let mut written = 0;
        for id in sessions {
            if let Err(err) = self.cache.set(&format!("{REVOKED}{id}"), b"1", Some(self.marker_ttl)).await {
                outcome = Err(err);
                break;
            }
            written += 1;
        }
        // After the markers are written: a check that starts from here on reads them, and one
        // that started earlier sees the count change and stores nothing. The same holds on the
        // replicas that hear of it.
        self.forget(sessions);
        if let Some(invalidations) = &self.invalidations {
            // The sessions whose markers are in: the others can read them now.
            invalidations.sessions_revoked(&sessions[..written]).await;
        }
        outcome
    }

    /// Drops `sessions` from this process's copy, and keeps checks already under way from
    /// storing an answer they read before (another replica revoked them).
    pub(crate) fn forget(&self, sessions: &[SessionId]) {
        let mut local = self.local();
        local.revocations = local.revocations.wrapping_add(1);
        for id in sessions {
            local.trusted.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use tenantry_adapter_memory::{InMemoryCache, ManualClock};
    use tenantry_ports::MockCache;

    use super::*;

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(Utc::now()))
    }

    fn over(cache: Arc<dyn Cache>, clock: &Arc<ManualClock>) -> SessionRevocations {
        SessionRevocations::new(cache, clock.clone(), TokenLifetimes::default())
    }

    fn session() -> SessionId {
        SessionId::from_uuid(uuid::Uuid::now_v7())
    }

    /// The markers of a session that is neither revoked nor recently seen.
    fn not_revoked() -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        Ok(vec![None, None])
    }

    #[tokio::test]
    async fn a_checked_session_is_trusted_locally_for_half_a_second_without_a_round_trip() {
        let clock = clock();
        let mut cache = MockCache::new();
        // Two round trips in all: the first check, and the one after the bound has passed.
        cache.expect_get_many().times(2).returning(|_| not_revoked());
        let revocations = over(Arc::new(cache), &clock);
        let id = session();
        assert_eq!(revocations.check(id).await.expect("check"), SessionCheck::Active { seen: false });
        for _ in 0..10 {
            assert_eq!(revocations.check(id).await.expect("check"), SessionCheck::TrustedLocally);
        }
        clock.advance(chrono::Duration::milliseconds(500));
        assert_eq!(revocations.check(id).await.expect("check"), SessionCheck::Active { seen: false });
    }

    #[tokio::test]
    async fn a_revocation_made_here_holds_on_the_next_check() {
        let clock = clock();
        let revocations = over(Arc::new(InMemoryCache::new(clock.clone())), &clock);
        let id = session();
        revocations.check(id).await.expect("check");
        revocations.revoke(&[id]).await.expect("revoke");
        assert_eq!(revocations.check(id).await.expect("check"), SessionCheck::Revoked);
        // A revoked answer is not cached either way: it stays revoked.
        assert_eq!(revocations.check(id).await.expect("check"), SessionCheck::Revoked);
    }

    #[tokio::test]
    async fn another_replica_sees_a_revocation_within_the_local_trust_bound() {
        let clock = clock();
        let shared: Arc<dyn Cache> = Arc::new(InMemoryCache::new(clock.clone()));
        let (here, there) = (over(shared.clone(), &clock), over(shared, &clock));
        let id = session();
        there.check(id).await.expect("check");
        here.revoke(&[id]).await.expect("revoke");
        clock.advance(chrono::Duration::milliseconds(499));
        assert_eq!(there.check(id).await.expect("check"), SessionCheck::TrustedLocally, "inside the documented bound");
        clock.advance(chrono::Duration::milliseconds(1));
        assert_eq!(there.check(id).await.expect("check"), SessionCheck::Revoked);
    }

    #[tokio::test]
    async fn a_check_that_raced_a_revocation_does_not_store_its_answer() {
        let clock = clock();
        let id = session();
        let local = Arc::new(Mutex::new(Local::default()));
        let mut cache = MockCache::new();
        let mut order = mockall::Sequence::new();
        // The check reads "not revoked"; before it stores that, this process revokes the
        // session (its markers written, its local entry dropped, the count moved on).
        let during = local.clone();
        cache.expect_get_many().times(1).in_sequence(&mut order).returning(move |_| {
            let mut local = during.lock().expect("lock");
            local.revocations += 1;
            local.trusted.remove(&id);
            not_revoked()
        });
        cache.expect_get_many().times(1).in_sequence(&mut order).returning(|_| Ok(vec![Some(b"1".to_vec()), None]));
        let revocations = SessionRevocations {
            cache: Arc::new(cache),
            clock: clock.clone(),
            marker_ttl: Duration::from_secs(960),
            local,
            invalidations: None,
        };
        assert_eq!(revocations.check(id).await.expect("check"), SessionCheck::Active { seen: false }, "the stale read");
        assert_eq!(revocations.check(id).await.expect("check"), SessionCheck::Revoked, "it was not stored");
    }

    #[tokio::test]
    async fn the_local_copy_stays_bounded() {
        let clock = clock();
        let revocations = over(Arc::new(InMemoryCache::new(clock.clone())), &clock);
        for _ in 0..LOCAL_CAPACITY + 10 {
            revocations.check(session()).await.expect("check");
        }
        assert!(revocations.local().trusted.len() <= LOCAL_CAPACITY);
    }

    #[tokio::test]
    async fn a_cache_outage_fails_closed_for_a_session_not_trusted_locally() {
        let mut cache = MockCache::new();
        cache.expect_get_many().returning(|_| Err(CacheError::Unavailable(anyhow::anyhow!("down"))));
        let revocations = over(Arc::new(cache), &clock());
        assert!(revocations.check(session()).await.is_err());
    }
}
