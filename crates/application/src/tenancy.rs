//! Organizations and membership: creation, access resolution (the one place that decides what
//! a caller may do in an org), member management under the domain's rules.

use std::sync::Arc;

use serde_json::json;
use tenantry_domain::audit::{ActorKind, AuditEvent, Origin};
use tenantry_domain::identity::User;
use tenantry_domain::tenancy::{
    BuiltinRole, MembershipChangeError, Permission, PermissionSet, Role, RoleName, authorize_invitation,
    authorize_removal, authorize_role_change,
};
use tenantry_domain::{ApiKeyId, OrgId, RoleId, Slug, UserId};
use tenantry_ports::{
    Clock, Conflict, CustomRole, IdGenerator, InvitationRepository, Member, Org, OrgRepository, RoleRepository,
    StoreError,
};

use crate::account::DeletionGuard;
use crate::auth::{AuthError, Principal};

/// Why a tenancy operation failed: one variant per answer a client can act on (the HTTP layer
/// maps each to a stable error code), with every store or cache failure folded into
/// `Dependency`, whose cause is logged and never shown.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// A field is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The request field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// No such organization or member, or the caller is not a member (never revealed).
    #[error("not found")]
    NotFound,
    /// The caller is a member but lacks `0`.
    #[error("missing permission {0}")]
    Forbidden(Permission),
    /// A membership rule refused the change.
    #[error("refused: {0}")]
    Refused(MembershipChangeError),
    /// The slug is taken.
    #[error("slug taken")]
    SlugTaken,
    /// The organization would be left without an owner.
    #[error("last owner")]
    LastOwner,
    /// An API key that is malformed, unknown, revoked or expired.
    #[error("invalid API key")]
    InvalidApiKey,
    /// A custom role of that name exists.
    #[error("role name taken")]
    RoleNameTaken,
    /// A team of that name exists.
    #[error("team name taken")]
    TeamNameTaken,
    /// Members still hold the role.
    #[error("role in use")]
    RoleInUse,
    /// An invitation token that is unknown, used, revoked or expired.
    #[error("invalid or expired invitation")]
    InvalidToken,
    /// The person is a member already.
    #[error("already a member")]
    AlreadyMember,
    /// The invitation is for another address than the signed-in user's.
    #[error("invitation is for another address")]
    EmailMismatch,
    /// The signed-in user's address is not verified yet.
    #[error("email not verified")]
    EmailNotVerified,
    /// The webhook endpoint is disabled: a test or a retry would never be attempted.
    #[error("endpoint disabled")]
    EndpointDisabled,
    /// A quota of the organization is used up (the members quota for invitations).
    #[error("quota exceeded")]
    QuotaExceeded(tenantry_domain::quota::QuotaExceeded),
    /// A dependency failed.
    #[error("dependency failure")]
    Dependency(#[source] anyhow::Error),
}

impl From<StoreError> for TenancyError {
    fn from(err: StoreError) -> Self {
        Self::Dependency(anyhow::Error::new(err))
    }
}

/// What the caller may do in one organization: resolved once per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgAccess {
    /// The organization.
    pub org_id: OrgId,
    /// Who is acting.
    pub actor: Actor,
    /// The caller's role there (for an API key: its own permissions).
    pub role: Role,
    /// Where the request came from, for the audit log.
    pub origin: Origin,
}

/// Who performs an org-scoped request: kept apart from the role because the audit log records
/// the actor (a user or a key), and a key must never count as "the user themself".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// A signed-in user.
    User(Principal),
    /// An API key of the organization.
    ApiKey {
        /// The key.
        key_id: ApiKeyId,
        /// Its creator (recorded as the inviter of invitations it sends).
        created_by: UserId,
    },
}

impl Actor {
    /// The user acting, or on whose behalf a key acts.
    pub fn user_id(&self) -> UserId {
        match self {
            Self::User(principal) => principal.user_id,
            Self::ApiKey { created_by, .. } => *created_by,
        }
    }

    /// Whether `user_id` is the signed-in caller (a key is never "themself").
    pub fn is_user(&self, user_id: UserId) -> bool {
        matches!(self, Self::User(principal) if principal.user_id == user_id)
    }
}

impl OrgAccess {
    /// The audit entry for a change this caller makes, written by the repository in the same
    /// transaction as the change.
    pub fn event(
        &self,
        ports: (&dyn IdGenerator, &dyn Clock),
        action: &str,
        target: (&str, Option<String>),
        data: &serde_json::Value,
    ) -> AuditEvent {
        let actor = match self.actor {
            Actor::User(principal) => (ActorKind::User, principal.user_id.as_uuid()),
            Actor::ApiKey { key_id, .. } => (ActorKind::ApiKey, key_id.as_uuid()),
        };
        AuditEvent::new(ports.0.new_id(), self.org_id, action, actor, target, self.origin.clone(), ports.1.now(), data)
    }

    /// The caller's effective permissions there: the role's, which for an API key are already
    /// cut down to its creator's current role.
    pub fn permissions(&self) -> PermissionSet {
        self.role.permissions()
    }

    /// `Ok` when the caller holds `permission`.
    ///
    /// # Errors
    /// [`TenancyError::Forbidden`].
    pub fn require(&self, permission: Permission) -> Result<(), TenancyError> {
        if self.permissions().contains(permission) { Ok(()) } else { Err(TenancyError::Forbidden(permission)) }
    }
}

/// The role called `name` in `org_id`: built-in, or one of the organization's custom roles.
///
/// # Errors
/// [`TenancyError::Invalid`] (field `role`) for a name that is neither; `Dependency`.
pub async fn resolve_role(roles: &dyn RoleRepository, org_id: OrgId, name: &str) -> Result<Role, TenancyError> {
    if let Some(builtin) = BuiltinRole::parse(name) {
        return Ok(Role::Builtin(builtin));
    }
    match roles.by_name(org_id, name).await? {
        Some(custom) => Ok(Role::Custom { name: custom.name, permissions: custom.permissions }),
        None => Err(TenancyError::Invalid { field: "role", message: format!("unknown role `{name}`") }),
    }
}

/// Organization use cases: creating, renaming and deleting organizations, resolving a caller's
/// [`OrgAccess`], and managing members and custom roles under the domain's membership rules,
/// every change audited in the organization's log.
pub struct TenancyService {
    orgs: Arc<dyn OrgRepository>,
    roles: Arc<dyn RoleRepository>,
    invitations: Arc<dyn InvitationRepository>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    default_plan: String,
    after_deletion: Vec<Arc<dyn OrgDeletionFollowUp>>,
}

/// Cleans up what an organization leaves outside the database (its stored files' bytes) once
/// its deletion committed. Best effort: the organization is gone whatever happens here.
#[async_trait::async_trait]
pub trait OrgDeletionFollowUp: Send + Sync {
    /// `org_id` was deleted (its rows went with it).
    async fn org_deleted(&self, org_id: OrgId);
}

impl TenancyService {
    /// Wires the service. Give it the read-through, invalidating repositories of
    /// [`crate::invalidating`] to have roles and member pages served from the tenancy cache.
    pub fn new(
        orgs: Arc<dyn OrgRepository>,
        roles: Arc<dyn RoleRepository>,
        invitations: Arc<dyn InvitationRepository>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self { orgs, roles, invitations, clock, ids, default_plan: "free".to_owned(), after_deletion: Vec::new() }
    }

    /// New organizations start on `plan` (the configured default) instead of `free`.
    #[must_use]
    pub fn with_default_plan(mut self, plan: &str) -> Self {
        plan.clone_into(&mut self.default_plan);
        self
    }

    /// Runs `follow_up` after every organization deletion (the file service removes the
    /// organization's objects).
    #[must_use]
    pub fn with_deletion_follow_up(mut self, follow_up: Arc<dyn OrgDeletionFollowUp>) -> Self {
        self.after_deletion.push(follow_up);
        self
    }

    /// After `user_id` left or changed role: their pending invitations that `now_role` could
    /// not make are revoked. The change stands whatever happens here (acceptance checks the
    /// inviter again), so a failure is logged, not returned.
    async fn revoke_invitations_beyond(&self, access: &OrgAccess, user_id: UserId, now_role: Option<&Role>) {
        let revoked =
            revoke_beyond(self.invitations.as_ref(), self.roles.as_ref(), self.ports(), access, user_id, now_role)
                .await;
        if let Err(err) = revoked {
            tracing::warn!(error = %err, "revoking the invitations of a demoted or removed member failed");
        }
    }

    fn ports(&self) -> (&dyn IdGenerator, &dyn Clock) {
        (self.ids.as_ref(), self.clock.as_ref())
    }

    async fn stored_role(&self, org_id: OrgId, name: &str) -> Result<Role, TenancyError> {
        resolve_role(self.roles.as_ref(), org_id, name)
            .await
            .map_err(|_| TenancyError::Dependency(anyhow::anyhow!("stored role `{name}` is unknown")))
    }

    /// Resolves what `principal` may do in `org_id`; a non-member gets `NotFound`, exactly as
    /// for an organization that does not exist.
    ///
    /// # Errors
    /// `NotFound`, `Dependency`.
    pub async fn access(&self, principal: Principal, org_id: OrgId) -> Result<OrgAccess, TenancyError> {
        let role = member_role(self.orgs.as_ref(), self.roles.as_ref(), org_id, principal.user_id)
            .await?
            .ok_or(TenancyError::NotFound)?;
        Ok(OrgAccess { org_id, actor: Actor::User(principal), role, origin: Origin::default() })
    }

    /// Creates an organization with the caller as its owner.
    ///
    /// # Errors
    /// `Invalid` (name, slug), `SlugTaken`, `Dependency`.
    #[tracing::instrument(name = "application.tenancy.create_org", skip_all)]
    pub async fn create_org(
        &self,
        principal: Principal,
        origin: Origin,
        name: &str,
        slug: &str,
    ) -> Result<Org, TenancyError> {
        let name = valid_name(name)?;
        let slug =
            Slug::parse(slug).map_err(|err| TenancyError::Invalid { field: "slug", message: err.to_string() })?;
        let now = self.clock.now();
        let org = Org {
            id: OrgId::from_uuid(self.ids.new_id()),
            name,
            slug,
            plan: self.default_plan.clone(),
            created_at: now,
            updated_at: now,
        };
        let event = AuditEvent::new(
            self.ids.new_id(),
            org.id,
            "org.created",
            (ActorKind::User, principal.user_id.as_uuid()),
            ("org", Some(org.id.to_string())),
            origin,
            now,
            &json!({"name": org.name, "slug": org.slug.as_str()}),
        );
        match self.orgs.create_with_owner(&org, principal.user_id, &event).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::SlugTaken)) => return Err(TenancyError::SlugTaken),
            Err(err) => return Err(err.into()),
        }
        Ok(org)
    }

    /// A page of the caller's organizations with their role in each, by organization id.
    ///
    /// # Errors
    /// `Dependency`.
    pub async fn my_orgs(
        &self,
        principal: Principal,
        after: Option<OrgId>,
        limit: u32,
    ) -> Result<Vec<(Org, String)>, TenancyError> {
        Ok(self.orgs.list_for_user(principal.user_id, after, limit).await?)
    }

    /// The organization (`org:read`).
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Dependency`.
    pub async fn get(&self, access: &OrgAccess) -> Result<Org, TenancyError> {
        access.require(Permission::OrgRead)?;
        self.orgs.get(access.org_id).await?.ok_or(TenancyError::NotFound)
    }

    /// Renames or re-slugs it (`org:update`); absent fields stay.
    ///
    /// # Errors
    /// `Forbidden`, `Invalid`, `SlugTaken`, `NotFound`, `Dependency`.
    pub async fn update(
        &self,
        access: &OrgAccess,
        name: Option<&str>,
        slug: Option<&str>,
    ) -> Result<Org, TenancyError> {
        access.require(Permission::OrgUpdate)?;
        let org = self.orgs.get(access.org_id).await?.ok_or(TenancyError::NotFound)?;
        let name = name.map(valid_name).transpose()?.unwrap_or_else(|| org.name.clone());
        let slug = slug
            .map(Slug::parse)
            .transpose()
            .map_err(|err| TenancyError::Invalid { field: "slug", message: err.to_string() })?
            .unwrap_or(org.slug.clone());
        let event = access.event(
            self.ports(),
            "org.updated",
            ("org", Some(access.org_id.to_string())),
            &json!({"name": [org.name, name], "slug": [org.slug.as_str(), slug.as_str()]}),
        );
        match self.orgs.update(access.org_id, &name, &slug, self.clock.now(), &event).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::SlugTaken)) => return Err(TenancyError::SlugTaken),
            Err(StoreError::NotFound) => return Err(TenancyError::NotFound),
            Err(err) => return Err(err.into()),
        }
        self.orgs.get(access.org_id).await?.ok_or(TenancyError::NotFound)
    }

    /// Deletes it (`org:delete`).
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Dependency`.
    pub async fn delete(&self, access: &OrgAccess) -> Result<(), TenancyError> {
        access.require(Permission::OrgDelete)?;
        let event = access.event(self.ports(), "org.deleted", ("org", Some(access.org_id.to_string())), &json!({}));
        match self.orgs.delete(access.org_id, &event).await {
            Ok(()) => {}
            Err(StoreError::NotFound) => return Err(TenancyError::NotFound),
            Err(err) => return Err(err.into()),
        }
        // Best effort, after the commit: the organization is gone whatever happens to its
        // bytes, and what is left has no row, so the file sweeper removes it later.
        for follow_up in &self.after_deletion {
            follow_up.org_deleted(access.org_id).await;
        }
        Ok(())
    }

    /// A page of members (`members:read`).
    ///
    /// # Errors
    /// `Forbidden`, `Dependency`.
    pub async fn members(
        &self,
        access: &OrgAccess,
        after: Option<UserId>,
        limit: u32,
    ) -> Result<Vec<Member>, TenancyError> {
        access.require(Permission::MembersRead)?;
        Ok(self.orgs.list_members(access.org_id, after, limit).await?)
    }

    /// Changes a member's role (`members:manage`, under the grant and owner rules).
    ///
    /// # Errors
    /// `Forbidden`, `Invalid` (role), `NotFound`, `Refused`, `LastOwner`, `Dependency`.
    #[tracing::instrument(name = "application.tenancy.change_role", skip_all, fields(org_id = %access.org_id))]
    pub async fn change_role(&self, access: &OrgAccess, user_id: UserId, role: &str) -> Result<Role, TenancyError> {
        access.require(Permission::MembersManage)?;
        let new = resolve_role(self.roles.as_ref(), access.org_id, role).await?;
        let current = self.orgs.role_of(access.org_id, user_id).await?.ok_or(TenancyError::NotFound)?;
        let current = self.stored_role(access.org_id, &current).await?;
        let owners = usize::try_from(self.orgs.count_owners(access.org_id).await?).unwrap_or(usize::MAX);
        authorize_role_change(&access.role, &current, &new, owners).map_err(refusal)?;
        let event = access.event(
            self.ports(),
            "member.role_changed",
            ("user", Some(user_id.to_string())),
            &json!({"from": current.name(), "to": new.name()}),
        );
        match self.orgs.set_role(access.org_id, user_id, new.name(), self.clock.now(), &event).await {
            Ok(()) => {}
            // Another change won the race and took the second-to-last owner.
            Err(StoreError::Conflict(Conflict::LastOwner)) => return Err(TenancyError::LastOwner),
            Err(StoreError::NotFound) => return Err(TenancyError::NotFound),
            Err(err) => return Err(err.into()),
        }
        self.revoke_invitations_beyond(access, user_id, Some(&new)).await;
        Ok(new)
    }

    /// Removes a member (`members:manage`), or the caller leaving.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Refused`, `LastOwner`, `Dependency`.
    #[tracing::instrument(name = "application.tenancy.remove_member", skip_all, fields(org_id = %access.org_id))]
    pub async fn remove_member(&self, access: &OrgAccess, user_id: UserId) -> Result<(), TenancyError> {
        let is_self = access.actor.is_user(user_id);
        if !is_self {
            access.require(Permission::MembersManage)?;
        }
        let target = self.orgs.role_of(access.org_id, user_id).await?.ok_or(TenancyError::NotFound)?;
        let target = self.stored_role(access.org_id, &target).await?;
        let owners = usize::try_from(self.orgs.count_owners(access.org_id).await?).unwrap_or(usize::MAX);
        authorize_removal(&access.role, &target, is_self, owners).map_err(refusal)?;
        let event = access.event(
            self.ports(),
            "member.removed",
            ("user", Some(user_id.to_string())),
            &json!({"role": target.name(), "left": is_self}),
        );
        match self.orgs.remove_member(access.org_id, user_id, &event).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::LastOwner)) => return Err(TenancyError::LastOwner),
            Err(StoreError::NotFound) => return Err(TenancyError::NotFound),
            Err(err) => return Err(err.into()),
        }
        self.revoke_invitations_beyond(access, user_id, None).await;
        Ok(())
    }
}

impl TenancyService {
    /// The organization's custom roles (`roles:read`).
    ///
    /// # Errors
    /// `Forbidden`, `Dependency`.
    pub async fn roles(
        &self,
        access: &OrgAccess,
        after: Option<String>,
        limit: u32,
    ) -> Result<Vec<CustomRole>, TenancyError> {
        access.require(Permission::RolesRead)?;
        Ok(self.roles.list(access.org_id, after, limit).await?)
    }

    /// Creates a custom role (`roles:manage`) made of permissions the caller holds.
    ///
    /// # Errors
    /// `Forbidden`, `Invalid` (name, permissions), `Refused(Escalation)`, `RoleNameTaken`, `Dependency`.
    #[tracing::instrument(name = "application.tenancy.create_role", skip_all, fields(org_id = %access.org_id))]
    pub async fn create_role(
        &self,
        access: &OrgAccess,
        name: &str,
        permissions: &[String],
    ) -> Result<CustomRole, TenancyError> {
        access.require(Permission::RolesManage)?;
        let (name, permissions) = role_parts(access, name, permissions)?;
        let now = self.clock.now();
        let role = CustomRole {
            id: RoleId::from_uuid(self.ids.new_id()),
            org_id: access.org_id,
            name,
            permissions,
            created_at: now,
            updated_at: now,
        };
        let event = access.event(
            self.ports(),
            "role.created",
            ("role", Some(role.id.to_string())),
            &json!({"name": role.name.as_str(), "permissions": role.permissions.names()}),
        );
        match self.roles.create(&role, &event).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::RoleNameTaken)) => return Err(TenancyError::RoleNameTaken),
            Err(err) => return Err(err.into()),
        }
        Ok(role)
    }

    /// Renames a custom role or replaces its permissions (`roles:manage`); members holding it
    /// keep it under its new name.
    ///
    /// # Errors
    /// As [`Self::create_role`], plus `NotFound`.
    pub async fn update_role(
        &self,
        access: &OrgAccess,
        id: RoleId,
        name: Option<&str>,
        permissions: Option<&[String]>,
    ) -> Result<CustomRole, TenancyError> {
        access.require(Permission::RolesManage)?;
        let current = self.roles.get(access.org_id, id).await?.ok_or(TenancyError::NotFound)?;
        let current_names: Vec<String> = current.permissions.names().into_iter().map(str::to_owned).collect();
        let (name, permissions) =
            role_parts(access, name.unwrap_or(current.name.as_str()), permissions.unwrap_or(&current_names))?;
        let event = access.event(
            self.ports(),
            "role.updated",
            ("role", Some(id.to_string())),
            &json!({
                "name": [current.name.as_str(), name.as_str()],
                "permissions": [current.permissions.names(), permissions.names()],
            }),
        );
        let role = CustomRole { name, permissions, updated_at: self.clock.now(), ..current };
        match self.roles.update(&role, &event).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::RoleNameTaken)) => return Err(TenancyError::RoleNameTaken),
            Err(StoreError::NotFound) => return Err(TenancyError::NotFound),
            Err(err) => return Err(err.into()),
        }
        Ok(role)
    }

    /// Deletes a custom role no member holds (`roles:manage`).
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `RoleInUse`, `Dependency`.
    pub async fn delete_role(&self, access: &OrgAccess, id: RoleId) -> Result<(), TenancyError> {
        access.require(Permission::RolesManage)?;
        let event = access.event(self.ports(), "role.deleted", ("role", Some(id.to_string())), &json!({}));
        match self.roles.delete(access.org_id, id, &event).await {
            Ok(()) => {}
            Err(StoreError::Conflict(Conflict::RoleInUse)) => return Err(TenancyError::RoleInUse),
            Err(StoreError::NotFound) => return Err(TenancyError::NotFound),
            Err(err) => return Err(err.into()),
        }
        Ok(())
    }
}

/// `user_id`'s role in `org_id` (`None` when not a member): the one lookup behind every
/// org-scoped request, by a user or on behalf of an API key's creator. The repositories the
/// server wires read through the tenancy cache and invalidate it on their own writes
/// ([`crate::invalidating`]), so nothing here knows a cache key.
///
/// # Errors
/// `Dependency`.
pub(crate) async fn member_role(
    orgs: &dyn OrgRepository,
    roles: &dyn RoleRepository,
    org_id: OrgId,
    user_id: UserId,
) -> Result<Option<Role>, TenancyError> {
    let Some(name) = orgs.role_of(org_id, user_id).await? else {
        return Ok(None);
    };
    match resolve_role(roles, org_id, &name).await {
        Ok(role) => Ok(Some(role)),
        // A membership naming a role that does not exist: data damage, not the caller's fault.
        Err(TenancyError::Invalid { .. }) => {
            Err(TenancyError::Dependency(anyhow::anyhow!("stored role `{name}` is unknown")))
        }
        Err(err) => Err(err),
    }
}

/// Validates a custom role's name and permissions; the permissions must be the caller's own
/// (nobody grants what they do not hold, including through a role they define).
fn role_parts(
    access: &OrgAccess,
    name: &str,
    permissions: &[String],
) -> Result<(RoleName, PermissionSet), TenancyError> {
    let name =
        RoleName::parse(name).map_err(|err| TenancyError::Invalid { field: "name", message: err.to_string() })?;
    let permissions = PermissionSet::parse(permissions)
        .map_err(|err| TenancyError::Invalid { field: "permissions", message: err.to_string() })?;
    if !permissions.is_subset_of(access.permissions()) {
        return Err(TenancyError::Refused(MembershipChangeError::Escalation));
    }
    Ok((name, permissions))
}

fn refusal(err: MembershipChangeError) -> TenancyError {
    match err {
        MembershipChangeError::MissingPermission(permission) => TenancyError::Forbidden(permission),
        MembershipChangeError::LastOwner => TenancyError::LastOwner,
        other => TenancyError::Refused(other),
    }
}

fn valid_name(name: &str) -> Result<String, TenancyError> {
    tenantry_domain::OrgName::parse(name)
        .map(String::from)
        .map_err(|err| TenancyError::Invalid { field: "name", message: err.to_string() })
}

/// Revokes the pending invitations `inviter` sent that `now_role` (their role after a change;
/// `None` once they left) could no longer make, each with an `invitation.revoked` entry by
/// whoever made the change. Called after a removal or a demotion; acceptance checks the
/// inviter again in any case, so this keeps the pending list honest rather than being the
/// only guard.
///
/// # Errors
/// `Dependency`.
pub(crate) async fn revoke_beyond(
    invitations: &dyn InvitationRepository,
    roles: &dyn RoleRepository,
    (ids, clock): (&dyn IdGenerator, &dyn Clock),
    access: &OrgAccess,
    inviter: UserId,
    now_role: Option<&Role>,
) -> Result<usize, TenancyError> {
    let now = clock.now();
    let mut revoked = 0;
    for invitation in invitations.pending_from(access.org_id, inviter, now).await? {
        let still_grantable = match now_role {
            None => false,
            Some(role) => match resolve_role(roles, access.org_id, &invitation.role).await {
                Ok(invited) => authorize_invitation(role, &invited).is_ok(),
                Err(TenancyError::Invalid { .. }) => false,
                Err(err) => return Err(err),
            },
        };
        if still_grantable {
            continue;
        }
        let reason = if now_role.is_none() { "inviter_removed" } else { "inviter_lost_permission" };
        let event = access.event(
            (ids, clock),
            "invitation.revoked",
            ("invitation", Some(invitation.id.to_string())),
            &json!({"reason": reason, "invited_by": inviter.to_string(), "role": invitation.role}),
        );
        if invitations.revoke(access.org_id, invitation.id, now, &event).await? {
            revoked += 1;
        }
    }
    Ok(revoked)
}

/// Refuses to delete an account that is the last owner of an organization.
pub struct LastOwnerGuard {
    orgs: Arc<dyn OrgRepository>,
}

impl LastOwnerGuard {
    /// Over `orgs`, which answers which organizations the user alone owns.
    pub fn new(orgs: Arc<dyn OrgRepository>) -> Self {
        Self { orgs }
    }
}

#[async_trait::async_trait]
impl DeletionGuard for LastOwnerGuard {
    async fn check(&self, user: &User) -> Result<(), AuthError> {
        if self.orgs.orgs_solely_owned_by(user.id).await?.is_empty() { Ok(()) } else { Err(AuthError::LastOwner) }
    }
}

#[cfg(test)]
mod tests {
    use tenantry_adapter_memory::{SystemClock, UuidV7Generator};
    use tenantry_domain::SessionId;
    use tenantry_ports::MockOrgRepository;

    use super::*;

    fn principal() -> Principal {
        Principal {
            user_id: UserId::from_uuid(uuid::Uuid::now_v7()),
            session_id: SessionId::from_uuid(uuid::Uuid::now_v7()),
        }
    }

    fn service(orgs: MockOrgRepository) -> TenancyService {
        let mut roles = tenantry_ports::MockRoleRepository::new();
        roles.expect_by_name().returning(|_, _| Ok(None));
        let mut invitations = tenantry_ports::MockInvitationRepository::new();
        invitations.expect_pending_from().returning(|_, _, _| Ok(Vec::new()));
        TenancyService::new(
            Arc::new(orgs),
            Arc::new(roles),
            Arc::new(invitations),
            Arc::new(SystemClock),
            Arc::new(UuidV7Generator),
        )
    }

    fn access(role: BuiltinRole) -> OrgAccess {
        OrgAccess {
            org_id: OrgId::from_uuid(uuid::Uuid::now_v7()),
            actor: Actor::User(principal()),
            role: Role::Builtin(role),
            origin: Origin {
                ip: Some("192.0.2.1".into()),
                user_agent: Some("test".into()),
                request_id: Some("req-1".into()),
            },
        }
    }

    #[tokio::test]
    async fn a_non_member_is_not_found_like_a_missing_org() {
        let mut orgs = MockOrgRepository::new();
        orgs.expect_role_of().returning(|_, _| Ok(None));
        let result = service(orgs).access(principal(), OrgId::from_uuid(uuid::Uuid::now_v7())).await;
        assert!(matches!(result, Err(TenancyError::NotFound)), "{result:?}");
    }

    #[tokio::test]
    async fn no_write_happens_when_the_actor_lacks_the_permission() {
        let mut orgs = MockOrgRepository::new();
        orgs.expect_set_role().times(0);
        orgs.expect_remove_member().times(0);
        orgs.expect_update().times(0);
        orgs.expect_delete().times(0);
        let service = service(orgs);
        let viewer = access(BuiltinRole::Viewer);
        let someone = UserId::from_uuid(uuid::Uuid::now_v7());
        assert!(matches!(service.change_role(&viewer, someone, "admin").await, Err(TenancyError::Forbidden(_))));
        assert!(matches!(service.remove_member(&viewer, someone).await, Err(TenancyError::Forbidden(_))));
        assert!(matches!(service.update(&viewer, Some("x"), None).await, Err(TenancyError::Forbidden(_))));
        assert!(matches!(
            service.delete(&access(BuiltinRole::Admin)).await,
            Err(TenancyError::Forbidden(Permission::OrgDelete))
        ));
    }

    #[tokio::test]
    async fn an_admin_cannot_demote_an_owner_and_nothing_is_written() {
        let mut orgs = MockOrgRepository::new();
        orgs.expect_role_of().returning(|_, _| Ok(Some("owner".into())));
        orgs.expect_count_owners().returning(|_| Ok(2));
        orgs.expect_set_role().times(0);
        let result = service(orgs)
            .change_role(&access(BuiltinRole::Admin), UserId::from_uuid(uuid::Uuid::now_v7()), "member")
            .await;
        assert!(matches!(result, Err(TenancyError::Refused(MembershipChangeError::OwnersOnly))), "{result:?}");
    }

    #[tokio::test]
    async fn losing_the_race_for_the_last_owner_is_a_conflict() {
        let mut orgs = MockOrgRepository::new();
        orgs.expect_role_of().returning(|_, _| Ok(Some("owner".into())));
        orgs.expect_count_owners().returning(|_| Ok(2));
        orgs.expect_set_role().times(1).returning(|_, _, _, _, _| Err(StoreError::Conflict(Conflict::LastOwner)));
        let result = service(orgs)
            .change_role(&access(BuiltinRole::Owner), UserId::from_uuid(uuid::Uuid::now_v7()), "admin")
            .await;
        assert!(matches!(result, Err(TenancyError::LastOwner)), "{result:?}");
    }

    #[tokio::test]
    async fn unknown_roles_are_invalid() {
        let result = service(MockOrgRepository::new())
            .change_role(&access(BuiltinRole::Owner), UserId::from_uuid(uuid::Uuid::now_v7()), "emperor")
            .await;
        assert!(matches!(result, Err(TenancyError::Invalid { field: "role", .. })), "{result:?}");
    }

    #[tokio::test]
    async fn a_role_change_hands_its_audit_entry_to_the_same_write() {
        let mut orgs = MockOrgRepository::new();
        orgs.expect_role_of().returning(|_, _| Ok(Some("member".into())));
        orgs.expect_count_owners().returning(|_| Ok(1));
        let admin = access(BuiltinRole::Admin);
        let (org_id, actor) = (admin.org_id, admin.actor.user_id());
        let target = UserId::from_uuid(uuid::Uuid::now_v7());
        orgs.expect_set_role()
            .times(1)
            .withf(move |org, user, role, _, event| {
                *org == org_id
                    && *user == target
                    && role == "viewer"
                    && event.org_id == org_id
                    && event.action == "member.role_changed"
                    && event.actor_type == ActorKind::User
                    && event.actor_id == actor.as_uuid()
                    && event.target_id == Some(target.to_string())
                    && event.origin.request_id.as_deref() == Some("req-1")
                    && event.data == r#"{"from":"member","to":"viewer"}"#
            })
            .returning(|_, _, _, _, _| Ok(()));
        service(orgs).change_role(&admin, target, "viewer").await.expect("changes");
    }

    #[tokio::test]
    async fn an_api_key_is_recorded_as_the_actor_not_its_creator() {
        let mut orgs = MockOrgRepository::new();
        let key_id = ApiKeyId::from_uuid(uuid::Uuid::now_v7());
        orgs.expect_update()
            .times(1)
            .withf(move |_, _, _, _, event| event.actor_type == ActorKind::ApiKey && event.actor_id == key_id.as_uuid())
            .returning(|_, _, _, _, _| Ok(()));
        let org = Org {
            id: OrgId::from_uuid(uuid::Uuid::now_v7()),
            name: "Acme".into(),
            slug: Slug::parse("acme").expect("slug"),
            plan: "free".into(),
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        orgs.expect_get().returning(move |_| Ok(Some(org.clone())));
        let mut by_key = access(BuiltinRole::Admin);
        by_key.actor = Actor::ApiKey { key_id, created_by: UserId::from_uuid(uuid::Uuid::now_v7()) };
        service(orgs).update(&by_key, Some("Acme 2"), None).await.expect("updates");
    }
}
