//! Repositories that read through the tenancy cache and invalidate it on their own writes.
//!
//! The reads every org-scoped request makes (a member's role, a custom role, an API key, a
//! page of members) go through the [`OrgCache`] here, stamped with the generation tokens that
//! the writes below bump: no use case builds a cache key, and a new read or write path gets
//! the right behaviour by using the repository.
//!
//! Every write that changes who may do what in an organization (a membership, a role, a custom
//! role's permissions, an API key, an account) bumps the [`OrgCache`] generation of what it
//! touched, right after the store committed it. The bump lives here, wrapped around the
//! repository, not in the use cases: a new write path gets it by using the repository, and
//! cannot forget it. Other reads pass through unchanged. Writes that change nothing the cache holds
//! (a new team, an org's name, a key's `last_used_at`) pass through without a bump.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tenantry_domain::audit::{AccountDeletion, AuditEvent};
use tenantry_domain::identity::{DisplayName, User, UserSettings};
use tenantry_domain::{ApiKeyId, Email, InvitationId, OrgId, RoleId, Slug, UserId};
use tenantry_ports::{
    AccountDeleted, ApiKey, ApiKeyRepository, CustomRole, Invitation, InvitationRepository, Member, NewUser, Org,
    OrgRepository, RoleRepository, StoreError, UserRepository,
};

use crate::cached_entries::{CachedKey, CachedMember, CachedRole};
use crate::org_cache::{ACCESS_TTL, OrgCache, PAGE_TTL};

/// [`OrgRepository`] that bumps an organization after a change of its membership or its
/// deletion.
pub struct InvalidatingOrgRepository {
    inner: Arc<dyn OrgRepository>,
    cache: OrgCache,
}

impl InvalidatingOrgRepository {
    /// Wraps `inner`, invalidating `cache` after each committed change; give it the process's
    /// one cache, the one the readers use, or they keep serving the old answer.
    pub fn new(inner: Arc<dyn OrgRepository>, cache: OrgCache) -> Self {
        Self { inner, cache }
    }
}

#[async_trait::async_trait]
impl OrgRepository for InvalidatingOrgRepository {
    async fn create_with_owner(&self, org: &Org, owner: UserId, audit: &AuditEvent) -> Result<(), StoreError> {
        self.inner.create_with_owner(org, owner, audit).await?;
        self.cache.bump_org(org.id).await;
        Ok(())
    }

    async fn get(&self, org_id: OrgId) -> Result<Option<Org>, StoreError> {
        self.inner.get(org_id).await
    }

    async fn list_all(&self, after: Option<OrgId>, limit: u32) -> Result<Vec<Org>, StoreError> {
        self.inner.list_all(after, limit).await
    }

    async fn list_for_user(
        &self,
        user_id: UserId,
        after: Option<OrgId>,
        limit: u32,
    ) -> Result<Vec<(Org, String)>, StoreError> {
        self.inner.list_for_user(user_id, after, limit).await
    }

    async fn update(
        &self,
        org_id: OrgId,
        name: &str,
        slug: &Slug,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.inner.update(org_id, name, slug, now, audit).await
    }

    async fn delete(&self, org_id: OrgId, audit: &AuditEvent) -> Result<(), StoreError> {
        self.inner.delete(org_id, audit).await?;
        self.cache.bump_org(org_id).await;
        Ok(())
    }

    async fn add_member(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: &str,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.inner.add_member(org_id, user_id, role, now, audit).await?;
        self.cache.bump_org(org_id).await;
        Ok(())
    }

    async fn role_of(&self, org_id: OrgId, user_id: UserId) -> Result<Option<String>, StoreError> {
        // Stamped with the user too: disabling or deleting an account bumps the user.
        let key = format!("tenancy:access:{org_id}:{user_id}");
        let mut lookup = self.cache.lookup::<Option<String>>(&key, org_id, Some(user_id)).await;
        if let Some(cached) = lookup.hit.take() {
            return Ok(cached);
        }
        let role = self.inner.role_of(org_id, user_id).await?;
        self.cache.fill(&key, &lookup, &role, ACCESS_TTL).await;
        Ok(role)
    }

    async fn list_members(&self, org_id: OrgId, after: Option<UserId>, limit: u32) -> Result<Vec<Member>, StoreError> {
        let after_text = after.map_or_else(|| "-".to_owned(), |user| user.to_string());
        let key = format!("tenancy:members:{org_id}:{after_text}:{limit}");
        let mut lookup = self.cache.lookup::<Vec<CachedMember>>(&key, org_id, None).await;
        if let Some(page) = lookup.hit.take()
            && let Some(members) = page.into_iter().map(CachedMember::into_member).collect::<Option<Vec<_>>>()
        {
            return Ok(members);
        }
        let members = self.inner.list_members(org_id, after, limit).await?;
        let page: Vec<CachedMember> = members.iter().map(CachedMember::from).collect();
        self.cache.fill(&key, &lookup, &page, PAGE_TTL).await;
        Ok(members)
    }

    async fn count_owners(&self, org_id: OrgId) -> Result<u32, StoreError> {
        self.inner.count_owners(org_id).await
    }

    async fn set_role(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: &str,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.inner.set_role(org_id, user_id, role, now, audit).await?;
        self.cache.bump_org(org_id).await;
        Ok(())
    }

    async fn remove_member(&self, org_id: OrgId, user_id: UserId, audit: &AuditEvent) -> Result<(), StoreError> {
        self.inner.remove_member(org_id, user_id, audit).await?;
        self.cache.bump_org(org_id).await;
        Ok(())
    }

    async fn orgs_solely_owned_by(&self, user_id: UserId) -> Result<Vec<OrgId>, StoreError> {
        self.inner.orgs_solely_owned_by(user_id).await
    }
}

/// [`RoleRepository`] that bumps an organization after one of its custom roles changed or went
/// (members holding it get other permissions).
pub struct InvalidatingRoleRepository {
    inner: Arc<dyn RoleRepository>,
    cache: OrgCache,
}

impl InvalidatingRoleRepository {
    /// Wraps `inner`, invalidating `cache` after each committed change; give it the process's
    /// one cache, the one the readers use, or they keep serving the old answer.
    pub fn new(inner: Arc<dyn RoleRepository>, cache: OrgCache) -> Self {
        Self { inner, cache }
    }
}

#[async_trait::async_trait]
impl RoleRepository for InvalidatingRoleRepository {
    async fn list(&self, org_id: OrgId, after: Option<String>, limit: u32) -> Result<Vec<CustomRole>, StoreError> {
        self.inner.list(org_id, after, limit).await
    }

    async fn by_name(&self, org_id: OrgId, name: &str) -> Result<Option<CustomRole>, StoreError> {
        let key = format!("tenancy:role:{org_id}:{name}");
        let mut lookup = self.cache.lookup::<Option<CachedRole>>(&key, org_id, None).await;
        if let Some(cached) = lookup.hit.take() {
            match cached {
                None => return Ok(None),
                Some(role) => {
                    if let Some(role) = role.into_role() {
                        return Ok(Some(role));
                    }
                }
            }
        }
        let role = self.inner.by_name(org_id, name).await?;
        self.cache.fill(&key, &lookup, &role.as_ref().map(CachedRole::from), ACCESS_TTL).await;
        Ok(role)
    }

    async fn get(&self, org_id: OrgId, id: RoleId) -> Result<Option<CustomRole>, StoreError> {
        self.inner.get(org_id, id).await
    }

    async fn create(&self, role: &CustomRole, audit: &AuditEvent) -> Result<(), StoreError> {
        self.inner.create(role, audit).await
    }

    async fn update(&self, role: &CustomRole, audit: &AuditEvent) -> Result<(), StoreError> {
        self.inner.update(role, audit).await?;
        self.cache.bump_org(role.org_id).await;
        Ok(())
    }

    async fn delete(&self, org_id: OrgId, id: RoleId, audit: &AuditEvent) -> Result<(), StoreError> {
        self.inner.delete(org_id, id, audit).await?;
        self.cache.bump_org(org_id).await;
        Ok(())
    }
}

/// [`ApiKeyRepository`] that bumps the organizations whose keys were revoked or rotated.
pub struct InvalidatingApiKeyRepository {
    inner: Arc<dyn ApiKeyRepository>,
    cache: OrgCache,
}

impl InvalidatingApiKeyRepository {
    /// Wraps `inner`, invalidating `cache` after each committed change; give it the process's
    /// one cache, the one the readers use, or they keep serving the old answer.
    pub fn new(inner: Arc<dyn ApiKeyRepository>, cache: OrgCache) -> Self {
        Self { inner, cache }
    }
}

#[async_trait::async_trait]
impl ApiKeyRepository for InvalidatingApiKeyRepository {
    async fn create(&self, key: &ApiKey, secret_hash: &str, audit: &AuditEvent) -> Result<(), StoreError> {
        self.inner.create(key, secret_hash, audit).await
    }

    async fn list(&self, org_id: OrgId, before: Option<ApiKeyId>, limit: u32) -> Result<Vec<ApiKey>, StoreError> {
        self.inner.list(org_id, before, limit).await
    }

    async fn get(&self, org_id: OrgId, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        self.inner.get(org_id, id).await
    }

    async fn by_public_id(&self, public_id: &str) -> Result<Option<(ApiKey, String)>, StoreError> {
        self.inner.by_public_id(public_id).await
    }

    async fn by_public_id_in(&self, org_id: OrgId, public_id: &str) -> Result<Option<(ApiKey, String)>, StoreError> {
        // Stamped with the key's org: revoking or rotating bumps it, so neither waits for the
        // entry to expire. Unknown keys are not remembered (anyone can send made-up ones).
        let key = format!("tenancy:api-key:{public_id}");
        let mut lookup = self.cache.lookup::<CachedKey>(&key, org_id, None).await;
        if let Some(found) = lookup.hit.take().and_then(CachedKey::into_key)
            && found.0.org_id == org_id
        {
            return Ok(Some(found));
        }
        let found = self.inner.by_public_id_in(org_id, public_id).await?;
        if let Some((api_key, hash)) = &found {
            self.cache.fill(&key, &lookup, &CachedKey::of(api_key, hash), ACCESS_TTL).await;
        }
        Ok(found)
    }

    async fn revoke(
        &self,
        org_id: OrgId,
        id: ApiKeyId,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let revoked = self.inner.revoke(org_id, id, now, audit).await?;
        if revoked {
            self.cache.bump_org(org_id).await;
        }
        Ok(revoked)
    }

    async fn rotate(
        &self,
        old: ApiKeyId,
        until: DateTime<Utc>,
        replacement: &ApiKey,
        secret_hash: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.inner.rotate(old, until, replacement, secret_hash, audit).await?;
        self.cache.bump_org(replacement.org_id).await;
        Ok(())
    }

    async fn touch(&self, org_id: OrgId, id: ApiKeyId, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.touch(org_id, id, now).await
    }

    async fn active_created_by(&self, user_id: UserId, now: DateTime<Utc>) -> Result<Vec<ApiKey>, StoreError> {
        self.inner.active_created_by(user_id, now).await
    }

    async fn revoke_created_by(&self, user_id: UserId, now: DateTime<Utc>) -> Result<Vec<OrgId>, StoreError> {
        let orgs = self.inner.revoke_created_by(user_id, now).await?;
        for org in &orgs {
            self.cache.bump_org(*org).await;
        }
        Ok(orgs)
    }
}

/// [`InvitationRepository`] that bumps the organization an accepted invitation added a member
/// to.
pub struct InvalidatingInvitationRepository {
    inner: Arc<dyn InvitationRepository>,
    cache: OrgCache,
}

impl InvalidatingInvitationRepository {
    /// Wraps `inner`, invalidating `cache` after each committed change; give it the process's
    /// one cache, the one the readers use, or they keep serving the old answer.
    pub fn new(inner: Arc<dyn InvitationRepository>, cache: OrgCache) -> Self {
        Self { inner, cache }
    }
}

#[async_trait::async_trait]
impl InvitationRepository for InvalidatingInvitationRepository {
    async fn create(
        &self,
        invitation: &Invitation,
        token_hash: &str,
        seat_limit: Option<u64>,
        audit: &AuditEvent,
        mails: &[tenantry_ports::QueuedMail],
    ) -> Result<(), StoreError> {
        self.inner.create(invitation, token_hash, seat_limit, audit, mails).await
    }

    async fn list_pending(
        &self,
        org_id: OrgId,
        now: DateTime<Utc>,
        before: Option<InvitationId>,
        limit: u32,
    ) -> Result<Vec<Invitation>, StoreError> {
        self.inner.list_pending(org_id, now, before, limit).await
    }

    async fn revoke(
        &self,
        org_id: OrgId,
        id: InvitationId,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.inner.revoke(org_id, id, now, audit).await
    }

    async fn by_token(&self, token_hash: &str) -> Result<Option<Invitation>, StoreError> {
        self.inner.by_token(token_hash).await
    }

    async fn pending_from(
        &self,
        org_id: OrgId,
        inviter: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invitation>, StoreError> {
        self.inner.pending_from(org_id, inviter, now).await
    }

    async fn accept(
        &self,
        org_id: OrgId,
        id: InvitationId,
        role: &str,
        user_id: UserId,
        inviter_role: &str,
        seat_limit: Option<u64>,
        now: DateTime<Utc>,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        self.inner.accept(org_id, id, role, user_id, inviter_role, seat_limit, now, audit).await?;
        self.cache.bump_org(org_id).await;
        Ok(())
    }
}

/// [`UserRepository`] that bumps an account (its cached memberships) when it is disabled,
/// re-enabled or deleted, and a deletion's organizations (their member pages).
pub struct InvalidatingUserRepository {
    inner: Arc<dyn UserRepository>,
    cache: OrgCache,
}

impl InvalidatingUserRepository {
    /// Wraps `inner`, invalidating `cache` after each committed change; give it the process's
    /// one cache, the one the readers use, or they keep serving the old answer.
    pub fn new(inner: Arc<dyn UserRepository>, cache: OrgCache) -> Self {
        Self { inner, cache }
    }
}

#[async_trait::async_trait]
impl UserRepository for InvalidatingUserRepository {
    async fn create(&self, user: &NewUser) -> Result<(), StoreError> {
        self.inner.create(user).await
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.inner.by_id(id).await
    }

    async fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        self.inner.by_email(email).await
    }

    async fn update_profile(
        &self,
        id: UserId,
        display_name: Option<DisplayName>,
        settings: &UserSettings,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.update_profile(id, display_name, settings, now).await
    }

    async fn set_password_hash(&self, id: UserId, hash: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.set_password_hash(id, hash, now).await
    }

    async fn mark_email_verified(&self, id: UserId, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.mark_email_verified(id, now).await
    }

    async fn list(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>, StoreError> {
        self.inner.list(after, limit).await
    }

    async fn set_disabled(
        &self,
        id: UserId,
        disabled_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.set_disabled(id, disabled_at, now).await?;
        self.cache.bump_user(id).await;
        Ok(())
    }

    async fn delete(&self, id: UserId, audit: &AccountDeletion) -> Result<AccountDeleted, StoreError> {
        let deleted = self.inner.delete(id, audit).await?;
        // Cached memberships (and so the API keys the user created) stop at once; then member
        // pages stop listing the user.
        self.cache.bump_user(id).await;
        for org in &deleted.orgs {
            self.cache.bump_org(*org).await;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use tenantry_adapter_memory::{InMemoryCache, SystemClock, UuidV7Generator};
    use tenantry_domain::audit::{ActorKind, Origin};
    use tenantry_ports::{MockApiKeyRepository, MockOrgRepository, MockRoleRepository, MockUserRepository};

    use super::*;
    use crate::org_cache::ACCESS_TTL;

    fn cache() -> OrgCache {
        let clock = Arc::new(SystemClock);
        OrgCache::new(Arc::new(InMemoryCache::new(clock.clone())), Arc::new(UuidV7Generator), clock)
    }

    fn ids() -> (OrgId, UserId) {
        (OrgId::from_uuid(uuid::Uuid::now_v7()), UserId::from_uuid(uuid::Uuid::now_v7()))
    }

    /// A cached entry for `org` and `user`, to see whether a write dropped it.
    async fn warm(cache: &OrgCache, org: OrgId, user: UserId) {
        let lookup = cache.lookup::<String>("k", org, Some(user)).await;
        cache.fill("k", &lookup, &"admin".to_owned(), ACCESS_TTL).await;
        assert!(cached(cache, org, user).await, "warmed");
    }

    async fn cached(cache: &OrgCache, org: OrgId, user: UserId) -> bool {
        cache.lookup::<String>("k", org, Some(user)).await.hit.is_some()
    }

    fn event(org: OrgId) -> AuditEvent {
        AuditEvent::new(
            uuid::Uuid::now_v7(),
            org,
            "test",
            (ActorKind::User, uuid::Uuid::now_v7()),
            ("user", None),
            Origin::default(),
            Utc::now(),
            &serde_json::json!({}),
        )
    }

    #[tokio::test]
    async fn membership_changes_drop_the_org_and_a_refused_change_does_not() {
        let (cache, (org, user)) = (cache(), ids());
        let mut inner = MockOrgRepository::new();
        inner.expect_set_role().times(1).returning(|_, _, _, _, _| Ok(()));
        inner
            .expect_remove_member()
            .times(1)
            .returning(|_, _, _| Err(StoreError::Conflict(tenantry_ports::Conflict::LastOwner)));
        let repo = InvalidatingOrgRepository::new(Arc::new(inner), cache.clone());
        warm(&cache, org, user).await;
        assert!(repo.remove_member(org, user, &event(org)).await.is_err());
        assert!(cached(&cache, org, user).await, "a refused change keeps the cache");
        repo.set_role(org, user, "viewer", Utc::now(), &event(org)).await.expect("set");
        assert!(!cached(&cache, org, user).await, "a role change drops it");
    }

    #[tokio::test]
    async fn custom_role_changes_drop_the_org() {
        let (cache, (org, user)) = (cache(), ids());
        let mut inner = MockRoleRepository::new();
        inner.expect_delete().times(1).returning(|_, _, _| Ok(()));
        let repo = InvalidatingRoleRepository::new(Arc::new(inner), cache.clone());
        warm(&cache, org, user).await;
        repo.delete(org, RoleId::from_uuid(uuid::Uuid::now_v7()), &event(org)).await.expect("deleted");
        assert!(!cached(&cache, org, user).await);
    }

    #[tokio::test]
    async fn revoking_a_key_drops_its_org_but_recording_its_use_does_not() {
        let (cache, (org, user)) = (cache(), ids());
        let mut inner = MockApiKeyRepository::new();
        inner.expect_touch().times(1).returning(|_, _, _| Ok(()));
        inner.expect_revoke().times(1).returning(|_, _, _, _| Ok(true));
        let other = OrgId::from_uuid(uuid::Uuid::now_v7());
        inner.expect_revoke_created_by().times(1).returning(move |_, _| Ok(vec![other]));
        let repo = InvalidatingApiKeyRepository::new(Arc::new(inner), cache.clone());
        warm(&cache, org, user).await;
        repo.touch(org, ApiKeyId::from_uuid(uuid::Uuid::now_v7()), Utc::now()).await.expect("touched");
        assert!(cached(&cache, org, user).await, "use is not a change of authority");
        repo.revoke(org, ApiKeyId::from_uuid(uuid::Uuid::now_v7()), Utc::now(), &event(org)).await.expect("revoked");
        assert!(!cached(&cache, org, user).await);
        warm(&cache, other, user).await;
        repo.revoke_created_by(user, Utc::now()).await.expect("swept");
        assert!(!cached(&cache, other, user).await, "every org a sweep touched");
    }

    #[tokio::test]
    async fn deleting_or_disabling_an_account_drops_it_everywhere() {
        let (cache, (org, user)) = (cache(), ids());
        let mut inner = MockUserRepository::new();
        inner.expect_set_disabled().times(1).returning(|_, _, _| Ok(()));
        let other_org = OrgId::from_uuid(uuid::Uuid::now_v7());
        inner
            .expect_delete()
            .times(1)
            .returning(move |_, _| Ok(AccountDeleted { orgs: vec![other_org], sessions: Vec::new() }));
        let repo = InvalidatingUserRepository::new(Arc::new(inner), cache.clone());
        warm(&cache, org, user).await;
        repo.set_disabled(user, Some(Utc::now()), Utc::now()).await.expect("disabled");
        assert!(!cached(&cache, org, user).await, "the user's entries in every org");
        let (bystander, _) = (UserId::from_uuid(uuid::Uuid::now_v7()), ());
        warm(&cache, other_org, bystander).await;
        let audit = AccountDeletion::new(user.as_uuid(), Origin::default(), uuid::Uuid::now_v7(), Utc::now());
        repo.delete(user, &audit).await.expect("deleted");
        assert!(!cached(&cache, other_org, bystander).await, "the orgs it left: their member pages");
    }

    #[tokio::test]
    async fn roles_are_read_through_the_cache_until_a_change_bumps_them() {
        let (cache, (org, user)) = (cache(), ids());
        let mut inner = MockOrgRepository::new();
        let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = reads.clone();
        inner.expect_role_of().returning(move |_, _| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(Some("admin".to_owned()))
        });
        inner.expect_set_role().returning(|_, _, _, _, _| Ok(()));
        let repo = InvalidatingOrgRepository::new(Arc::new(inner), cache.clone());
        for _ in 0..3 {
            assert_eq!(repo.role_of(org, user).await.expect("role").as_deref(), Some("admin"));
        }
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1, "one store read, then the cache");
        repo.set_role(org, user, "viewer", Utc::now(), &event(org)).await.expect("set");
        repo.role_of(org, user).await.expect("role");
        assert_eq!(
            reads.load(std::sync::atomic::Ordering::SeqCst),
            2,
            "the write's bump sends the next read to the store"
        );
    }

    #[tokio::test]
    async fn custom_roles_and_keys_are_read_through_and_unknown_keys_are_not_remembered() {
        let (cache, (org, user)) = (cache(), ids());
        let now = Utc::now();
        let custom = CustomRole {
            id: RoleId::from_uuid(uuid::Uuid::now_v7()),
            org_id: org,
            name: tenantry_domain::tenancy::RoleName::parse("auditor").expect("name"),
            permissions: tenantry_domain::tenancy::PermissionSet::parse(&["audit:read".to_owned()]).expect("set"),
            created_at: now,
            updated_at: now,
        };
        let mut roles = MockRoleRepository::new();
        let stored = custom.clone();
        roles.expect_by_name().times(1).returning(move |_, _| Ok(Some(stored.clone())));
        let roles = InvalidatingRoleRepository::new(Arc::new(roles), cache.clone());
        assert_eq!(roles.by_name(org, "auditor").await.expect("read"), Some(custom.clone()));
        assert_eq!(roles.by_name(org, "auditor").await.expect("cached"), Some(custom), "served from the cache");

        let key = ApiKey {
            id: ApiKeyId::from_uuid(uuid::Uuid::now_v7()),
            org_id: org,
            name: "ci".to_owned(),
            public_id: "abcdefghijklmnop".to_owned(),
            permissions: tenantry_domain::tenancy::PermissionSet::parse(&["audit:read".to_owned()]).expect("set"),
            created_by: user,
            created_at: now,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        };
        let mut keys = MockApiKeyRepository::new();
        let stored = key.clone();
        keys.expect_by_public_id_in()
            .times(1)
            .withf(|_, public| public == "abcdefghijklmnop")
            .returning(move |_, _| Ok(Some((stored.clone(), "hash".to_owned()))));
        keys.expect_by_public_id_in().times(2).returning(|_, _| Ok(None));
        let keys = InvalidatingApiKeyRepository::new(Arc::new(keys), cache.clone());
        for _ in 0..2 {
            let (found, hash) = keys.by_public_id_in(org, "abcdefghijklmnop").await.expect("read").expect("found");
            assert_eq!((found.id, hash.as_str()), (key.id, "hash"));
        }
        for _ in 0..2 {
            assert!(keys.by_public_id_in(org, "zzzzzzzzzzzzzzzz").await.expect("read").is_none(), "asked each time");
        }
    }
}
