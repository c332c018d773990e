//! A read-through cache of user rows in front of any [`UserRepository`].
//!
//! Every authenticated request that needs the caller's account (`/users/me` first of all)
//! would otherwise cost a database round trip. Entries live in the [`Cache`] port — in-process
//! on one replica, Redis across many — and every write through these decorators deletes the
//! entry, so all replicas see the change at their next read. A short TTL bounds the damage of a
//! write that bypasses them (a manual SQL edit).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tenantry_domain::audit::AccountDeletion;
use tenantry_domain::identity::{DisplayName, User, UserSettings};
use tenantry_domain::{Email, UserId};
use tenantry_ports::{
    AccountDeleted, Cache, NewUser, QueuedMail, StoreError, TwoFactorRecord, TwoFactorRepository, UserRepository,
};

/// How long a cached user row may be served.
const TTL: Duration = Duration::from_secs(60);

fn key(id: UserId) -> String {
    format!("users:by-id:{id}")
}

async fn forget(cache: &dyn Cache, id: UserId) {
    if let Err(err) = cache.delete(&key(id)).await {
        // The entry expires on its own within the TTL; a cache outage must not fail the write.
        tracing::warn!(error = %err, "forgetting a cached user row failed");
    }
}

/// [`UserRepository`] with `by_id` served from the cache.
pub struct CachedUserRepository {
    inner: Arc<dyn UserRepository>,
    cache: Arc<dyn Cache>,
}

impl CachedUserRepository {
    /// Caches `inner`'s rows in `cache`.
    pub fn new(inner: Arc<dyn UserRepository>, cache: Arc<dyn Cache>) -> Self {
        Self { inner, cache }
    }
}

#[async_trait::async_trait]
impl UserRepository for CachedUserRepository {
    async fn create(&self, user: &NewUser) -> Result<(), StoreError> {
        self.inner.create(user).await
    }

    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        if let Ok(Some(bytes)) = self.cache.get(&key(id)).await
            && let Ok(user) = serde_json::from_slice::<User>(&bytes)
        {
            return Ok(Some(user));
        }
        let user = self.inner.by_id(id).await?;
        if let Some(user) = &user
            && let Ok(bytes) = serde_json::to_vec(user)
        {
            // Best effort: a cache that cannot store just means the next read asks again.
            let _ = self.cache.set(&key(id), &bytes, Some(TTL)).await;
        }
        Ok(user)
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
        let result = self.inner.update_profile(id, display_name, settings, now).await;
        forget(self.cache.as_ref(), id).await;
        result
    }

    async fn set_password_hash(&self, id: UserId, hash: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let result = self.inner.set_password_hash(id, hash, now).await;
        forget(self.cache.as_ref(), id).await;
        result
    }

    async fn mark_email_verified(&self, id: UserId, now: DateTime<Utc>) -> Result<(), StoreError> {
        let result = self.inner.mark_email_verified(id, now).await;
        forget(self.cache.as_ref(), id).await;
        result
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
        let result = self.inner.set_disabled(id, disabled_at, now).await;
        forget(self.cache.as_ref(), id).await;
        result
    }

    async fn delete(&self, id: UserId, audit: &AccountDeletion) -> Result<AccountDeleted, StoreError> {
        let result = self.inner.delete(id, audit).await;
        forget(self.cache.as_ref(), id).await;
        result
    }
}

/// [`TwoFactorRepository`] that forgets the cached user row when two-factor sign-in is turned
/// on or off (the row carries `totp_enabled`).
pub struct UserCacheAwareTwoFactor {
    inner: Arc<dyn TwoFactorRepository>,
    cache: Arc<dyn Cache>,
}

impl UserCacheAwareTwoFactor {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn TwoFactorRepository>, cache: Arc<dyn Cache>) -> Self {
        Self { inner, cache }
    }
}

#[async_trait::async_trait]
impl TwoFactorRepository for UserCacheAwareTwoFactor {
    async fn get(&self, user_id: UserId) -> Result<Option<TwoFactorRecord>, StoreError> {
        self.inner.get(user_id).await
    }

    async fn set_pending(&self, user_id: UserId, sealed: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.set_pending(user_id, sealed, now).await
    }

    async fn enable(
        &self,
        user_id: UserId,
        sealed: &str,
        first_step: i64,
        backup_code_hashes: &[String],
        now: DateTime<Utc>,
        mails: &[QueuedMail],
    ) -> Result<(), StoreError> {
        let result = self.inner.enable(user_id, sealed, first_step, backup_code_hashes, now, mails).await;
        forget(self.cache.as_ref(), user_id).await;
        result
    }

    async fn disable(&self, user_id: UserId, now: DateTime<Utc>, mails: &[QueuedMail]) -> Result<(), StoreError> {
        let result = self.inner.disable(user_id, now, mails).await;
        forget(self.cache.as_ref(), user_id).await;
        result
    }

    async fn advance_step(&self, user_id: UserId, step: i64) -> Result<bool, StoreError> {
        self.inner.advance_step(user_id, step).await
    }

    async fn consume_backup_code(
        &self,
        user_id: UserId,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.inner.consume_backup_code(user_id, code_hash, now).await
    }

    async fn backup_codes_left(&self, user_id: UserId) -> Result<u32, StoreError> {
        self.inner.backup_codes_left(user_id).await
    }
}
