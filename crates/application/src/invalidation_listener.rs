//! Applying other replicas' invalidations to this process's copies: the receiving side of
//! [`Invalidations`], kept apart so the caches depend on the sender only.

use tenantry_ports::Subscription;

use crate::invalidations::{Invalidations, Message};
use crate::org_cache::OrgCache;
use crate::revocations::SessionRevocations;

/// The receiving side: applies other replicas' messages to this process's copies.
#[derive(Clone)]
pub struct InvalidationListener {
    invalidations: Invalidations,
    revocations: SessionRevocations,
    org_cache: OrgCache,
}

impl InvalidationListener {
    /// For the copies of this process, which must be the ones that publish through
    /// `invalidations`.
    pub fn new(invalidations: Invalidations, revocations: SessionRevocations, org_cache: OrgCache) -> Self {
        Self { invalidations, revocations, org_cache }
    }

    /// Starts listening. The caller runs [`Self::run`] on it and subscribes again when it ends.
    ///
    /// # Errors
    /// The broadcast's, when it cannot subscribe.
    pub async fn subscribe(&self) -> Result<Box<dyn Subscription>, tenantry_ports::CacheError> {
        self.invalidations.bus.subscribe().await
    }

    /// Applies one message; `false` when it was ignored (this process's own, or malformed).
    pub fn apply(&self, bytes: &[u8]) -> bool {
        match self.invalidations.decode(bytes) {
            Some(Message::Sessions(ids)) => {
                self.revocations.forget(&ids);
                true
            }
            Some(Message::Token(key)) => {
                self.org_cache.forget_token(&key);
                true
            }
            None => false,
        }
    }

    /// Applies messages until the subscription is lost.
    pub async fn run(&self, mut subscription: Box<dyn Subscription>) {
        while let Some(message) = subscription.next().await {
            self.apply(&message);
        }
    }
}

#[cfg(test)]
mod tests {
    use tenantry_adapter_memory::{InMemoryBroadcast, InMemoryCache, ManualClock, UuidV7Generator};
    use tenantry_domain::identity::TokenLifetimes;
    use tenantry_domain::{OrgId, UserId};
    use tenantry_ports::{Cache, Clock};

    use super::*;
    use std::sync::Arc;

    use crate::org_cache::{ACCESS_TTL, Lookup};
    use crate::revocations::SessionCheck;
    use tenantry_domain::SessionId;
    use tenantry_ports::Broadcast;

    /// One process: its caches, publishing on `bus`, and its listener.
    struct Replica {
        revocations: SessionRevocations,
        org_cache: OrgCache,
        listener: InvalidationListener,
    }

    fn replica(cache: &Arc<dyn Cache>, bus: &InMemoryBroadcast, clock: &Arc<ManualClock>) -> Replica {
        let invalidations = Invalidations::new(Arc::new(bus.clone()), &UuidV7Generator);
        let clock: Arc<dyn Clock> = clock.clone();
        let revocations = SessionRevocations::new(cache.clone(), clock.clone(), TokenLifetimes::default())
            .with_invalidations(invalidations.clone());
        let org_cache =
            OrgCache::new(cache.clone(), Arc::new(UuidV7Generator), clock).with_invalidations(invalidations.clone());
        let listener = InvalidationListener::new(invalidations, revocations.clone(), org_cache.clone());
        Replica { revocations, org_cache, listener }
    }

    /// Two replicas on one shared cache and broadcast, with time stopped: the half-second
    /// bound never passes, so only a message can make a replica see another's change.
    fn two_replicas() -> (Replica, Replica, InMemoryBroadcast) {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let cache: Arc<dyn Cache> = Arc::new(InMemoryCache::new(clock.clone()));
        let bus = InMemoryBroadcast::default();
        (replica(&cache, &bus, &clock), replica(&cache, &bus, &clock), bus)
    }

    /// Delivers the next message to `to`; whether it acted on it.
    async fn deliver(subscription: &mut Box<dyn Subscription>, to: &Replica) -> bool {
        let message = subscription.next().await.expect("a message");
        to.listener.apply(&message)
    }

    #[tokio::test]
    async fn a_session_revoked_on_one_replica_stops_on_another_when_the_message_arrives() {
        let (here, there, bus) = two_replicas();
        let mut heard_there = bus.subscribe().await.expect("subscribe");
        let mut heard_here = bus.subscribe().await.expect("subscribe");
        let session = SessionId::from_uuid(uuid::Uuid::now_v7());
        there.revocations.check(session).await.expect("check");
        assert_eq!(there.revocations.check(session).await.expect("check"), SessionCheck::TrustedLocally);
        here.revocations.revoke(&[session]).await.expect("revoke");
        assert!(!deliver(&mut heard_here, &here).await, "a replica ignores its own message");
        assert!(deliver(&mut heard_there, &there).await);
        assert_eq!(there.revocations.check(session).await.expect("check"), SessionCheck::Revoked);
    }

    #[tokio::test]
    async fn a_role_change_on_one_replica_misses_on_another_when_the_message_arrives() {
        let (here, there, bus) = two_replicas();
        let mut heard_there = bus.subscribe().await.expect("subscribe");
        let (org, user) = (OrgId::from_uuid(uuid::Uuid::now_v7()), UserId::from_uuid(uuid::Uuid::now_v7()));
        let first: Lookup<String> = there.org_cache.lookup("role", org, Some(user)).await;
        there.org_cache.fill("role", &first, &"admin".to_owned(), ACCESS_TTL).await;
        assert_eq!(there.org_cache.lookup::<String>("role", org, Some(user)).await.hit.as_deref(), Some("admin"));
        here.org_cache.bump_org(org).await;
        assert!(deliver(&mut heard_there, &there).await);
        assert_eq!(there.org_cache.lookup::<String>("role", org, Some(user)).await.hit, None, "the old role is gone");
    }

    #[tokio::test]
    async fn without_the_message_the_other_replica_keeps_its_copy_within_the_bound() {
        // The control for the two tests above: the same change, no delivery.
        let (here, there, _bus) = two_replicas();
        let session = SessionId::from_uuid(uuid::Uuid::now_v7());
        there.revocations.check(session).await.expect("check");
        here.revocations.revoke(&[session]).await.expect("revoke");
        assert_eq!(there.revocations.check(session).await.expect("check"), SessionCheck::TrustedLocally);
    }

    #[test]
    fn malformed_and_foreign_messages_are_ignored() {
        let (here, _, _) = two_replicas();
        for junk in [
            &b""[..],
            b"x",
            b"other\nsessions\nnot-a-uuid",
            b"other\ntoken\nauth:anything",
            b"\xff\xfe",
            b"other\nnope\nx",
        ] {
            assert!(!here.listener.apply(junk), "{junk:?}");
        }
        assert!(here.listener.apply(format!("other\nsessions\n{}", uuid::Uuid::now_v7()).as_bytes()));
        assert!(here.listener.apply(b"other\ntoken\ntenancy:gen:org:x"));
    }
}
