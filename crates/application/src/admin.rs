//! Platform administration: every organization and user, and disabling accounts.

use std::sync::Arc;

use tenantry_domain::audit::{ActorKind, AuditEvent, Origin};
use tenantry_domain::identity::User;
use tenantry_domain::{OrgId, UserId};
use tenantry_ports::{
    ApiKeyRepository, Clock, IdGenerator, Org, OrgRepository, SessionRepository, StoreError, UserRepository,
};

use crate::auth::{AuthError, Principal};
use crate::revocations::SessionRevocations;

/// Everything [`AdminService`] needs, as one struct so the composition root builds it once
/// and a test swaps single collaborators.
#[derive(Clone)]
pub struct AdminPorts {
    /// Accounts.
    pub users: Arc<dyn UserRepository>,
    /// Organizations.
    pub orgs: Arc<dyn OrgRepository>,
    /// Sessions (revoked when an account is disabled).
    pub sessions: Arc<dyn SessionRepository>,
    /// API keys (a disabled user's keys are revoked).
    pub api_keys: Arc<dyn ApiKeyRepository>,
    /// Session revocation (a disabled account's tokens stop at once).
    pub revocations: SessionRevocations,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids (audit entries).
    pub ids: Arc<dyn IdGenerator>,
}

/// The platform-admin use cases; every method checks that the caller is a platform admin.
pub struct AdminService {
    ports: AdminPorts,
}

impl AdminService {
    /// Wires the service; no I/O happens until a method is called.
    pub fn new(ports: AdminPorts) -> Self {
        Self { ports }
    }

    /// The caller, if a platform administrator whose account is active.
    ///
    /// # Errors
    /// `Unauthenticated` (account gone), `NotAdmin`, `Dependency`.
    pub async fn require_admin(&self, principal: Principal) -> Result<User, AuthError> {
        let user = self.ports.users.by_id(principal.user_id).await?.ok_or(AuthError::Unauthenticated)?;
        if user.is_admin && user.disabled_at.is_none() { Ok(user) } else { Err(AuthError::NotAdmin) }
    }

    /// A page of every organization (cross-tenant, hence admin only), in id order.
    ///
    /// # Errors
    /// `NotAdmin`, `Dependency`.
    pub async fn orgs(&self, principal: Principal, after: Option<OrgId>, limit: u32) -> Result<Vec<Org>, AuthError> {
        self.require_admin(principal).await?;
        Ok(self.ports.orgs.list_all(after, limit).await?)
    }

    /// A page of every user (admin only), in id order, which is creation order.
    ///
    /// # Errors
    /// `NotAdmin`, `Dependency`.
    pub async fn users(&self, principal: Principal, after: Option<UserId>, limit: u32) -> Result<Vec<User>, AuthError> {
        self.require_admin(principal).await?;
        Ok(self.ports.users.list(after, limit).await?)
    }

    /// Disables an account: it can no longer sign in, and every session (so every token) ends now.
    ///
    /// # Errors
    /// `NotAdmin`, `NotFound`, `Invalid` (an admin cannot disable themself), `Dependency`.
    #[tracing::instrument(name = "application.admin.disable_user", skip_all, fields(user_id = %user_id))]
    pub async fn disable_user(&self, principal: Principal, user_id: UserId) -> Result<(), AuthError> {
        let admin = self.require_admin(principal).await?;
        if admin.id == user_id {
            return Err(AuthError::Invalid {
                field: "user_id",
                message: "you cannot disable your own account".to_owned(),
            });
        }
        let now = self.ports.clock.now();
        match self.ports.users.set_disabled(user_id, Some(now), now).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(AuthError::NotFound),
            Err(err) => return Err(err.into()),
        }
        // Keys first and their caches at once, so a failure further on cannot leave them working.
        // Each revocation is recorded in its organization's audit log; the sweep after it
        // catches a key created while this ran.
        let mut orgs = Vec::new();
        for key in self.ports.api_keys.active_created_by(user_id, now).await? {
            let event = AuditEvent::new(
                self.ports.ids.new_id(),
                key.org_id,
                "api_key.revoked",
                (ActorKind::User, admin.id.as_uuid()),
                ("api_key", Some(key.id.to_string())),
                Origin::default(),
                now,
                &serde_json::json!({"reason": "creator_disabled", "user_id": user_id.to_string()}),
            );
            if self.ports.api_keys.revoke(key.org_id, key.id, now, &event).await? {
                orgs.push(key.org_id);
            }
        }
        orgs.extend(self.ports.api_keys.revoke_created_by(user_id, now).await?);
        orgs.sort();
        orgs.dedup();
        let revoked = self.ports.sessions.revoke_all(user_id, None, now).await?;
        self.ports.revocations.revoke(&revoked).await?;
        tracing::info!(target: "audit", action = "user.disabled", user_id = %user_id, by = %admin.id, sessions_revoked = revoked.len(), orgs_with_keys_revoked = orgs.len());
        Ok(())
    }

    /// Re-enables an account (it signs in again; old sessions stay ended and its revoked API
    /// keys stay revoked, so re-enabling never revives a credential).
    ///
    /// # Errors
    /// `NotAdmin`, `NotFound`, `Dependency`.
    pub async fn enable_user(&self, principal: Principal, user_id: UserId) -> Result<(), AuthError> {
        let admin = self.require_admin(principal).await?;
        let now = self.ports.clock.now();
        match self.ports.users.set_disabled(user_id, None, now).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(AuthError::NotFound),
            Err(err) => return Err(err.into()),
        }
        tracing::info!(target: "audit", action = "user.enabled", user_id = %user_id, by = %admin.id);
        Ok(())
    }
}
