//! The user's own data: export (every row about them) and deletion.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tenantry_domain::audit::{AccountDeletion, Origin};
use tenantry_domain::identity::{Session, User};
use tenantry_ports::{
    Clock, IdGenerator, IssuedToken, OneTimeTokenRepository, PersonalDataReader, SessionRepository, TenantFootprint,
    TwoFactorRepository, UserRepository,
};

use crate::auth::{AuthError, PasswordConfirmer, Principal};
use crate::revocations::SessionRevocations;

/// Everything [`AccountService`] needs, as one struct so the composition root builds it once
/// and a test swaps single collaborators.
#[derive(Clone)]
pub struct AccountPorts {
    /// Accounts.
    pub users: Arc<dyn UserRepository>,
    /// Sessions.
    pub sessions: Arc<dyn SessionRepository>,
    /// E-mailed tokens.
    pub tokens: Arc<dyn OneTimeTokenRepository>,
    /// Two-factor state.
    pub two_factor: Arc<dyn TwoFactorRepository>,
    /// The tenant-side rows that name the person (memberships, keys, invitations, audit).
    pub footprint: Arc<dyn PersonalDataReader>,
    /// Password confirmation (deletion asks for it), under the sign-in lockout.
    pub confirmer: PasswordConfirmer,
    /// Session revocation (a deleted account's tokens stop at once).
    pub revocations: SessionRevocations,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids (the deletion's audit entries).
    pub ids: Arc<dyn IdGenerator>,
}

/// Every row Tenantry holds about one user, secrets left out (hashes, sealed keys).
#[derive(Debug, Clone)]
pub struct PersonalData {
    /// When the export was made.
    pub exported_at: DateTime<Utc>,
    /// The account.
    pub user: User,
    /// Every session, revoked ones included.
    pub sessions: Vec<Session>,
    /// Verification and reset e-mails sent.
    pub tokens: Vec<IssuedToken>,
    /// Unused two-factor backup codes.
    pub backup_codes_left: u32,
    /// Memberships, team memberships, invitations sent and received, API keys created and
    /// audit entries made by or about the person, across every organization.
    pub tenancy: TenantFootprint,
}

/// Checks that deleting a user leaves no organization without an owner; the tenancy module
/// provides it (an account in no organization may always be deleted).
#[async_trait::async_trait]
pub trait DeletionGuard: Send + Sync {
    /// `Err` when the user must not be deleted yet; an early, explainable refusal, the
    /// repository's atomic last-owner check at deletion being the guarantee.
    ///
    /// # Errors
    /// [`AuthError::LastOwner`], `Dependency`.
    async fn check(&self, user: &User) -> Result<(), AuthError>;
}

/// Export and deletion of the caller's own account: a person's access to and erasure of what
/// Tenantry holds about them, acting only ever on the signed-in caller.
pub struct AccountService {
    ports: AccountPorts,
    guards: Vec<Arc<dyn DeletionGuard>>,
}

impl AccountService {
    /// Wires the service; `guards` may veto a deletion (e.g. last owner of an organization).
    pub fn new(ports: AccountPorts, guards: Vec<Arc<dyn DeletionGuard>>) -> Self {
        Self { ports, guards }
    }

    /// Every row about the caller (the right of access to one's personal data), read from each
    /// store that holds some; the export itself is logged under the `audit` target.
    ///
    /// # Errors
    /// `Unauthenticated`, `Dependency`.
    #[tracing::instrument(name = "application.account.export", skip_all)]
    pub async fn export(&self, principal: Principal) -> Result<PersonalData, AuthError> {
        let user = self.ports.users.by_id(principal.user_id).await?.ok_or(AuthError::Unauthenticated)?;
        let sessions = self.ports.sessions.list_all(user.id).await?;
        let tokens = self.ports.tokens.list_for_user(user.id).await?;
        let backup_codes_left = self.ports.two_factor.backup_codes_left(user.id).await?;
        let tenancy = self.ports.footprint.footprint(user.id, &user.email).await?;
        tracing::info!(target: "audit", action = "user.data_exported", user_id = %user.id);
        Ok(PersonalData { exported_at: self.ports.clock.now(), user, sessions, tokens, backup_codes_left, tenancy })
    }

    /// Deletes the caller's account and everything personal with it; every session ends at once.
    /// Asks for the password again (under the sign-in lockout), so a stolen access token alone
    /// cannot erase an account; refused while the caller is an organization's last owner.
    ///
    /// # Errors
    /// `Invalid` (password incorrect), `LastOwner`, `Unauthenticated`, `Dependency`.
    #[tracing::instrument(name = "application.account.delete", skip_all)]
    pub async fn delete(&self, principal: Principal, password: &str, origin: Origin) -> Result<(), AuthError> {
        let user = self.ports.users.by_id(principal.user_id).await?.ok_or(AuthError::Unauthenticated)?;
        self.ports.confirmer.confirm(&user, password, "password").await?;
        for guard in &self.guards {
            guard.check(&user).await?;
        }
        let audit = AccountDeletion::new(user.id.as_uuid(), origin, self.ports.ids.new_id(), self.ports.clock.now());
        let deleted = match self.ports.users.delete(user.id, &audit).await {
            Ok(deleted) => deleted,
            // A concurrent change made the user a last owner after the guards ran.
            Err(tenantry_ports::StoreError::Conflict(tenantry_ports::Conflict::LastOwner)) => {
                return Err(AuthError::LastOwner);
            }
            Err(err) => return Err(err.into()),
        };
        // The repository has dropped what the cache held about the account and its orgs
        // (`InvalidatingUserRepository`); the access tokens stop now.
        self.ports.revocations.revoke(&deleted.sessions).await?;
        tracing::info!(target: "audit", action = "user.deleted", user_id = %user.id);
        Ok(())
    }
}
