//! Storage of accounts, sessions and single-use tokens.

use chrono::{DateTime, Utc};
use tenantry_domain::audit::AccountDeletion;
use tenantry_domain::identity::DisplayName;
use tenantry_domain::identity::{Session, TokenPurpose, User, UserSettings};
use tenantry_domain::{Email, OrgId, SessionId, UserId};

use crate::QueuedMail;

/// Which rule a change met: each is its own variant, so a caller maps exactly the ones its
/// port documents and a store cannot make one mean another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Conflict {
    /// An account has the e-mail address.
    #[error("e-mail address taken")]
    EmailTaken,
    /// An organization has the slug.
    #[error("slug taken")]
    SlugTaken,
    /// The organization has a custom role of that name.
    #[error("role name taken")]
    RoleNameTaken,
    /// The organization has a team of that name.
    #[error("team name taken")]
    TeamNameTaken,
    /// The person is a member (of the organization, or of the team) already.
    #[error("already a member")]
    AlreadyMember,
    /// The change would leave an organization without an owner.
    #[error("last owner")]
    LastOwner,
    /// Members or open invitations still hold the role.
    #[error("role in use")]
    RoleInUse,
    /// The account the change names was deleted while the change ran (an acceptance racing
    /// the account's deletion).
    #[error("account gone")]
    AccountGone,
    /// Any other uniqueness rule (an id reused, an attempt recorded twice): no caller branches
    /// on it.
    #[error("duplicate")]
    Duplicate,
}

/// Failures of the repositories; callers branch on these, never on driver errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The change met a rule of the current state; which one is in the [`Conflict`].
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// The row to change does not exist.
    #[error("not found")]
    NotFound,
    /// The change would pass a limit checked inside its transaction (the members quota);
    /// `used` is the count it met.
    #[error("limit reached")]
    LimitReached {
        /// What was already used when the change was refused.
        used: u64,
    },
    /// The database could not be reached.
    #[error("store unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// Anything else; carries the cause for the logs.
    #[error("unexpected store failure")]
    Unexpected(#[source] anyhow::Error),
}

/// A user as created at registration (or by the admin CLI): the fields a new account starts
/// with, the rest of [`User`] taking its defaults in the store.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Id.
    pub id: UserId,
    /// Normalised address.
    pub email: Email,
    /// Optional display name.
    pub display_name: Option<DisplayName>,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Platform administrator.
    pub is_admin: bool,
    /// Verified already (admins created from the CLI).
    pub email_verified_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Accounts: the platform-wide identity store. Not tenant-scoped (a user exists before and
/// apart from any organization), so methods take a user id or address, never an org id.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait UserRepository: Send + Sync {
    /// Stores a new user; the store's unique index on the address, not a prior lookup, is what
    /// keeps two registrations racing for one address from both succeeding.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the address is taken; `Unavailable`, `Unexpected`.
    async fn create(&self, user: &NewUser) -> Result<(), StoreError>;

    /// The user with `id`, or `None` when there is none (deleted, or never existed).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;

    /// The user with `email` (normalised), for sign-in and recovery; `None` is not an error,
    /// and callers must not let it show in their answer or its timing.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError>;

    /// Replaces the display name and settings.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; `Unavailable`, `Unexpected`.
    async fn update_profile(
        &self,
        id: UserId,
        display_name: Option<DisplayName>,
        settings: &UserSettings,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Replaces the password hash (new password, or a transparent re-hash).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; `Unavailable`, `Unexpected`.
    async fn set_password_hash(&self, id: UserId, hash: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Records that the address was proven (idempotent: the first time is kept).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; `Unavailable`, `Unexpected`.
    async fn mark_email_verified(&self, id: UserId, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Users in id order (creation order, ids being UUIDv7) after `after`, at most `limit`.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn list(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>, StoreError>;

    /// Disables (`Some(time)`) or re-enables (`None`) the account: an administrator's way to
    /// stop an account signing in without deleting its data.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; `Unavailable`, `Unexpected`.
    async fn set_disabled(
        &self,
        id: UserId,
        disabled_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Deletes the account and, with it, every row that belongs to it (sessions, tokens,
    /// two-factor state). An adapter that also stores memberships refuses, atomically, while
    /// the user is the last owner of an organization, whatever raced the caller's own check;
    /// it revokes the API keys the user created, and records each membership ended and each key
    /// revoked in that org's audit log through `audit`, in the same transaction.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Conflict`] (last owner); `Unavailable`, `Unexpected`.
    async fn delete(&self, id: UserId, audit: &AccountDeletion) -> Result<AccountDeleted, StoreError>;
}

/// What an account deletion removed that lives on outside the database: the caller revokes the
/// sessions' access tokens (stateless until they expire) and invalidates what it cached about
/// the orgs. Both come from the deletion's own transaction, so a session created while the
/// deletion was under way is not missed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountDeleted {
    /// The orgs whose audit log got an entry (memberships ended, keys revoked), in order.
    pub orgs: Vec<OrgId>,
    /// The sessions that were deleted.
    pub sessions: Vec<SessionId>,
}

/// Sessions and their rotating refresh tokens: the stateful half of authentication, which
/// lets a user see and revoke their devices and lets a replayed refresh token be detected.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait SessionRepository: Send + Sync {
    /// Stores a new session with its first refresh token (by hash), and queues `mails` (a
    /// new-sign-in alert) in the same transaction.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn create(&self, session: &Session, refresh_hash: &str, mails: &[QueuedMail]) -> Result<(), StoreError>;

    /// Atomically retires the refresh token with `presented_hash` and installs `next_hash` for
    /// the same session, extending it to `expires_at`. Exactly one of several concurrent calls
    /// with the same token can succeed.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn rotate_refresh(
        &self,
        presented_hash: &str,
        next_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<RefreshOutcome, StoreError>;

    /// The session with `id`, revoked or not.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn get(&self, id: SessionId) -> Result<Option<Session>, StoreError>;

    /// A page of the user's sessions still active at `now`, newest first: at most `limit`,
    /// older than `before` (ids are UUIDv7, so id order is creation order and a keyset).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn list_active(
        &self,
        user_id: UserId,
        now: DateTime<Utc>,
        before: Option<SessionId>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError>;

    /// Every session of the user, revoked and expired ones included, newest first (for the
    /// personal-data export).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn list_all(&self, user_id: UserId) -> Result<Vec<Session>, StoreError>;

    /// Revokes one of the user's sessions; `false` when it is not theirs or already revoked.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn revoke(&self, user_id: UserId, id: SessionId, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Revokes every active session of the user but `except`; returns the revoked ids.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn revoke_all(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>, StoreError>;

    /// Records activity (`last_seen_at`), so the session list can show when a device was last
    /// used. Best effort for callers, which throttle it and log rather than fail on its error.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn touch(&self, id: SessionId, now: DateTime<Utc>) -> Result<(), StoreError>;
}

/// What presenting a refresh token did; `Reused` is kept apart from `Invalid` because a replay
/// is evidence of theft and must end the whole session, not just refuse the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was live; it is now dead and the next one is installed.
    Rotated(Session),
    /// The token was already used: somebody replayed it. The caller must revoke the session.
    Reused(SessionId),
    /// No such token, or its session is revoked or expired.
    Invalid,
}

/// Single-use e-mailed tokens (verification, password reset), stored by hash.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait OneTimeTokenRepository: Send + Sync {
    /// Stores a token hash for `user_id`, and queues `mails` (the one carrying the token's
    /// link) in the same transaction: a token is never issued without its mail, nor a mail
    /// queued for a token that was not stored (ADR 0018).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn create(
        &self,
        user_id: UserId,
        purpose: TokenPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        mails: &[QueuedMail],
    ) -> Result<(), StoreError>;

    /// Marks the token used and returns its user, if it exists for `purpose`, is unused and
    /// unexpired. Atomic: two concurrent calls cannot both succeed.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn consume(
        &self,
        purpose: TokenPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError>;

    /// The user of an unused, unexpired token for `purpose`, without using it (to check a
    /// request before committing to it).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn peek(
        &self,
        purpose: TokenPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError>;

    /// Marks every unused token of `purpose` for the user used (a password reset or change
    /// voids the other reset links already sent).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn invalidate(&self, user_id: UserId, purpose: TokenPurpose, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// What was issued to the user (never the hashes), oldest first.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn list_for_user(&self, user_id: UserId) -> Result<Vec<IssuedToken>, StoreError>;
}

/// A single-use token as the personal-data export shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// What it was for.
    pub purpose: TokenPurpose,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
    /// When it was used.
    pub used_at: Option<DateTime<Utc>>,
}
