//! Organizations and memberships. Every method of a tenant-owned aggregate takes the org id
//! first: there is no way to reach a membership without naming its organization.

use chrono::{DateTime, Utc};
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::{ApiKeyId, Email, InvitationId, OrgId, RoleId, Slug, TeamId, UserId};

use crate::{QueuedMail, StoreError};

/// An organization: the tenant. Every tenant-owned row hangs off its id, and deleting it
/// removes them all but the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    /// Id: the scope every tenant-owned repository method takes first.
    pub id: OrgId,
    /// Display name.
    pub name: String,
    /// Unique, URL-safe handle, so an organization can be named in URLs and on the CLI.
    pub slug: Slug,
    /// Billing plan name.
    pub plan: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A member as listed: the membership and who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The user.
    pub user_id: UserId,
    /// Their address.
    pub email: Email,
    /// Their display name.
    pub display_name: Option<String>,
    /// Their role's name (built-in or custom).
    pub role: String,
    /// When they joined.
    pub joined_at: DateTime<Utc>,
}

/// Organizations and their memberships: the rows that decide who may act in which tenant, so
/// the rules that must hold under concurrency (one owner at least, no double membership) are
/// enforced here, atomically, not by the caller's earlier read.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait OrgRepository: Send + Sync {
    /// Stores `org` with `owner` as its first member (role `owner`) and its audit entry, in
    /// one transaction, so no organization ever exists without an owner.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the slug is taken; `Unavailable`, `Unexpected`.
    async fn create_with_owner(&self, org: &Org, owner: UserId, audit: &AuditEvent) -> Result<(), StoreError>;

    /// The organization, or `None` when it does not exist (never created, or deleted).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn get(&self, org_id: OrgId) -> Result<Option<Org>, StoreError>;

    /// Every organization, in id order after `after`, at most `limit` (platform administration).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn list_all(&self, after: Option<OrgId>, limit: u32) -> Result<Vec<Org>, StoreError>;

    /// A page of the organizations `user_id` belongs to, with their role's name, by
    /// organization id (creation order): at most `limit`, after `after`.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn list_for_user(
        &self,
        user_id: UserId,
        after: Option<OrgId>,
        limit: u32,
    ) -> Result<Vec<(Org, String)>, StoreError>;

    /// Renames or re-slugs the organization, with its audit entry in the same transaction.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Conflict`] (slug taken); `Unavailable`, `Unexpected`.
    async fn update(
        &self,
        org_id: OrgId,
        name: &str,
        slug: &Slug,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Deletes the organization and everything it owns but its audit log, which is kept (with
    /// `audit` as its last entry) for investigations after the fact.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; `Unavailable`, `Unexpected`.
    async fn delete(&self, org_id: OrgId, audit: &AuditEvent) -> Result<(), StoreError>;

    /// Adds `user_id` to the organization with `role`, with its audit entry in the same
    /// transaction; the store's uniqueness, not a prior read, refuses a second membership.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when already a member; [`StoreError::NotFound`] when the
    /// organization or the user does not exist; `Unavailable`, `Unexpected`.
    async fn add_member(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: &str,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// The role name of `user_id` in `org_id`, if a member: the fact every authorization
    /// decision in the organization starts from (`None` is answered as not found, never as
    /// forbidden, so non-members learn nothing).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn role_of(&self, org_id: OrgId, user_id: UserId) -> Result<Option<String>, StoreError>;

    /// Members, ordered by join time then user id, after `after` (a user id cursor), at most
    /// `limit`.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn list_members(&self, org_id: OrgId, after: Option<UserId>, limit: u32) -> Result<Vec<Member>, StoreError>;

    /// How many owners the organization has now: for an early, friendly refusal only; the
    /// guarantee is the atomic check in [`Self::set_role`] and [`Self::remove_member`].
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn count_owners(&self, org_id: OrgId) -> Result<u32, StoreError>;

    /// Sets a member's role. Atomically refuses to leave the organization without an owner,
    /// even against concurrent changes: [`StoreError::Conflict`] then.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] (not a member), [`StoreError::Conflict`] (last owner);
    /// `Unavailable`, `Unexpected`.
    async fn set_role(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: &str,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Removes a member, with the same last-owner guarantee as [`Self::set_role`].
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Conflict`] (last owner); `Unavailable`, `Unexpected`.
    async fn remove_member(&self, org_id: OrgId, user_id: UserId, audit: &AuditEvent) -> Result<(), StoreError>;

    /// The organizations in which `user_id` is the only owner (they block account deletion).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn orgs_solely_owned_by(&self, user_id: UserId) -> Result<Vec<OrgId>, StoreError>;
}

/// A pending (or settled) invitation to join an organization, kept after it is settled so the
/// personal-data export and the audit trail can show who invited whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// Id.
    pub id: InvitationId,
    /// The organization.
    pub org_id: OrgId,
    /// Who is invited.
    pub email: Email,
    /// The role they get on acceptance.
    pub role: String,
    /// Who invited them: acceptance checks that this member still holds the role that could
    /// grant the invitation's, so an invitation carries no more authority than its inviter.
    pub invited_by: UserId,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When it was accepted.
    pub accepted_at: Option<DateTime<Utc>>,
    /// When it was revoked (or replaced by a re-invite).
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Invitation {
    /// Whether it can still be accepted at `now`: not accepted, not revoked, not expired. The
    /// repository re-checks this when accepting; this is for reads.
    pub fn is_pending(&self, now: DateTime<Utc>) -> bool {
        self.accepted_at.is_none() && self.revoked_at.is_none() && self.expires_at > now
    }
}

/// Invitations, stored with the hash of their token so a database leak yields no working link.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait InvitationRepository: Send + Sync {
    /// Stores `invitation` with its token hash, revoking any pending invitation of the same
    /// address to the same organization (a re-invite replaces the old link). With a
    /// `seat_limit`, refuses when members plus pending invitations (the new one included)
    /// would pass it, counted inside the transaction so concurrent invitations cannot both pass.
    /// `mails` (the invitation's link) are queued in the same transaction, so a refused
    /// invitation mails nothing (ADR 0018).
    ///
    /// # Errors
    /// [`StoreError::LimitReached`] with the seats already taken; `Unavailable`, `Unexpected`.
    async fn create(
        &self,
        invitation: &Invitation,
        token_hash: &str,
        seat_limit: Option<u64>,
        audit: &AuditEvent,
        mails: &[QueuedMail],
    ) -> Result<(), StoreError>;

    /// A page of the organization's pending invitations at `now`, newest first: at most
    /// `limit`, older than `before`.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn list_pending(
        &self,
        org_id: OrgId,
        now: DateTime<Utc>,
        before: Option<InvitationId>,
        limit: u32,
    ) -> Result<Vec<Invitation>, StoreError>;

    /// Revokes a pending invitation of the organization; `false` when there is none.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn revoke(
        &self,
        org_id: OrgId,
        id: InvitationId,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// The invitation with this token hash (any state): the token is the capability, so this
    /// is a lookup without an org id; the caller checks the state to tell expired from used.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn by_token(&self, token_hash: &str) -> Result<Option<Invitation>, StoreError>;

    /// The pending invitations that `inviter` sent in the organization, at `now`: the ones to
    /// revoke when the inviter leaves or loses the power to grant their role.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn pending_from(
        &self,
        org_id: OrgId,
        inviter: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invitation>, StoreError>;

    /// Accepts the invitation and adds `user_id` with its role, in one transaction, appending
    /// every entry of `audit` in order; refuses if it was accepted, revoked or expired
    /// meanwhile, if its role is no longer `role` (the one the caller read and recorded in
    /// `audit`: a custom role renamed meanwhile), or if the inviter no longer holds
    /// `inviter_role` (the role the caller checked could grant it: removed or demoted meanwhile).
    /// With a `seat_limit`, refuses when the organization already has that many members.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] (no longer pending as read, or the inviter's role changed),
    /// [`StoreError::Conflict`] (already a member), [`StoreError::LimitReached`] (no seat
    /// left); `Unavailable`, `Unexpected`.
    #[allow(clippy::too_many_arguments)]
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
    ) -> Result<(), StoreError>;
}

/// An organization's custom role: a named permission set for when the built-in roles do not
/// fit, visible and usable only inside its organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomRole {
    /// Id.
    pub id: RoleId,
    /// The organization.
    pub org_id: OrgId,
    /// Unique within the organization, never a built-in name.
    pub name: tenantry_domain::tenancy::RoleName,
    /// What it allows.
    pub permissions: tenantry_domain::tenancy::PermissionSet,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Custom roles. Memberships refer to roles by name, so a rename is carried to them.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait RoleRepository: Send + Sync {
    /// A page of the organization's custom roles by name: at most `limit`, after `after`.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn list(&self, org_id: OrgId, after: Option<String>, limit: u32) -> Result<Vec<CustomRole>, StoreError>;

    /// The custom role called `name`: memberships hold role names, so this resolves a
    /// member's permissions when the name is not a built-in one.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn by_name(&self, org_id: OrgId, name: &str) -> Result<Option<CustomRole>, StoreError>;

    /// The custom role with `id`.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn get(&self, org_id: OrgId, id: RoleId) -> Result<Option<CustomRole>, StoreError>;

    /// Stores a new role with its audit entry in the same transaction.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the name is taken; `Unavailable`, `Unexpected`.
    async fn create(&self, role: &CustomRole, audit: &AuditEvent) -> Result<(), StoreError>;

    /// Replaces name and permissions; members and open invitations holding the old name follow
    /// the rename.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Conflict`] (name taken); `Unavailable`, `Unexpected`.
    async fn update(&self, role: &CustomRole, audit: &AuditEvent) -> Result<(), StoreError>;

    /// Deletes the role, refusing while anyone holds it, so no member is left with a role
    /// that grants nothing.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Conflict`] (members or open invitations still hold it);
    /// `Unavailable`, `Unexpected`.
    async fn delete(&self, org_id: OrgId, id: RoleId, audit: &AuditEvent) -> Result<(), StoreError>;
}

/// A team inside an organization: a named group of its members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    /// Id.
    pub id: TeamId,
    /// The organization.
    pub org_id: OrgId,
    /// Unique within the organization.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Its members, in join order.
    pub members: Vec<UserId>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Teams and their members, scoped by org id like every tenant-owned aggregate; membership
/// changes report whether they changed anything, so a repeat writes no audit entry.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait TeamRepository: Send + Sync {
    /// A page of the organization's teams by name (members included): at most `limit`,
    /// after `after`.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn list(&self, org_id: OrgId, after: Option<String>, limit: u32) -> Result<Vec<Team>, StoreError>;

    /// One team of the organization; `None` for a team of another organization, as for a
    /// missing one.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn get(&self, org_id: OrgId, id: TeamId) -> Result<Option<Team>, StoreError>;

    /// Stores a new team with its audit entry (its `members` are ignored: add them one by one,
    /// each with its own entry).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when the name is taken; `Unavailable`, `Unexpected`.
    async fn create(&self, team: &Team, audit: &AuditEvent) -> Result<(), StoreError>;

    /// Replaces name and description, with the audit entry in the same transaction.
    ///
    /// # Errors
    /// [`StoreError::NotFound`], [`StoreError::Conflict`]; `Unavailable`, `Unexpected`.
    async fn update(
        &self,
        org_id: OrgId,
        id: TeamId,
        name: &str,
        description: Option<String>,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Deletes the team and its memberships, with the audit entry in the same transaction.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; `Unavailable`, `Unexpected`.
    async fn delete(&self, org_id: OrgId, id: TeamId, audit: &AuditEvent) -> Result<(), StoreError>;

    /// Adds a user to the team; `false` (and no audit entry) when they were in it already.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] (no such team); `Unavailable`, `Unexpected`.
    async fn add_member(
        &self,
        org_id: OrgId,
        id: TeamId,
        user_id: UserId,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Removes a user from the team; `false` (and no audit entry) when they were not in it.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn remove_member(
        &self,
        org_id: OrgId,
        id: TeamId,
        user_id: UserId,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;
}

/// An org-scoped machine credential (never its secret: only a hash is stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Id.
    pub id: ApiKeyId,
    /// The organization it acts in, and only there.
    pub org_id: OrgId,
    /// Label.
    pub name: String,
    /// The public part of the key (`tk_<public_id>_…`), for lookup and display.
    pub public_id: String,
    /// What it may do (a subset of its creator's permissions at creation).
    pub permissions: tenantry_domain::tenancy::PermissionSet,
    /// Who created it.
    pub created_by: UserId,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// When it stops working (also the end of a rotation's grace period).
    pub expires_at: Option<DateTime<Utc>>,
    /// Last authenticated use (written at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether it authenticates at `now`: not revoked and not past its expiry (a rotated key
    /// keeps working until its grace period ends).
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// API keys: org-scoped machine credentials, stored by the hash of their secret; every change
/// carries its audit entry, so a tenant can see who created or revoked each key.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait ApiKeyRepository: Send + Sync {
    /// Stores a new key with the hash of its secret (the secret is shown once, at creation,
    /// and never stored), with its audit entry in the same transaction.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn create(&self, key: &ApiKey, secret_hash: &str, audit: &AuditEvent) -> Result<(), StoreError>;

    /// A page of the organization's keys that are not revoked, newest first: at most
    /// `limit`, older than `before`.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn list(&self, org_id: OrgId, before: Option<ApiKeyId>, limit: u32) -> Result<Vec<ApiKey>, StoreError>;

    /// One key of the organization, revoked or not; `None` for another organization's key.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn get(&self, org_id: OrgId, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError>;

    /// The key with `public_id` and its secret hash (the key itself is the capability, so this
    /// is the one lookup without an org id).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn by_public_id(&self, public_id: &str) -> Result<Option<(ApiKey, String)>, StoreError>;

    /// As [`Self::by_public_id`], only when the key belongs to `org_id`: the lookup behind
    /// every request authenticated by a key, which a cache can stamp with that org (a key of
    /// another org is `None` here; the caller asks [`Self::by_public_id`] to tell why).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn by_public_id_in(&self, org_id: OrgId, public_id: &str) -> Result<Option<(ApiKey, String)>, StoreError>;

    /// Revokes a key of the organization; `false` (and no audit entry) when there is none or
    /// it is revoked already.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn revoke(
        &self,
        org_id: OrgId,
        id: ApiKeyId,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError>;

    /// Stores `replacement` and makes key `old` expire at `until` at the latest (the grace
    /// period), in one transaction: a rotation never leaves two unbounded keys or none.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when `old` is no longer active; `Unavailable`, `Unexpected`.
    async fn rotate(
        &self,
        old: ApiKeyId,
        until: DateTime<Utc>,
        replacement: &ApiKey,
        secret_hash: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError>;

    /// Records use (`last_used_at`), so a tenant can spot keys nobody uses any more. Callers
    /// throttle it and treat its failure as a warning, not as a failed request.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn touch(&self, org_id: OrgId, id: ApiKeyId, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// The keys `user_id` created that are active at `now`, in every organization (when the
    /// account is disabled, each is revoked with its own audit entry).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn active_created_by(&self, user_id: UserId, now: DateTime<Utc>) -> Result<Vec<ApiKey>, StoreError>;

    /// Revokes every key a user created (when the account is disabled); returns the
    /// organizations that had one, each once, so their caches can be invalidated.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn revoke_created_by(&self, user_id: UserId, now: DateTime<Utc>) -> Result<Vec<OrgId>, StoreError>;
}
