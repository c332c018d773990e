//! The permission catalog.

use std::fmt;

/// One thing a member or API key may do in an organization. The catalog is closed: a
/// permission nobody checks cannot be granted by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// See the organization.
    OrgRead,
    /// Rename it, change its settings.
    OrgUpdate,
    /// Delete it (owners only).
    OrgDelete,
    /// See its members.
    MembersRead,
    /// Invite people.
    MembersInvite,
    /// Change members' roles, remove members.
    MembersManage,
    /// See teams.
    TeamsRead,
    /// Create, change, delete teams and their membership.
    TeamsManage,
    /// See custom roles.
    RolesRead,
    /// Create, change, delete custom roles.
    RolesManage,
    /// Create, list, rotate and revoke API keys.
    ApiKeysManage,
    /// Manage webhook endpoints and deliveries.
    WebhooksManage,
    /// Read files.
    FilesRead,
    /// Upload and delete files.
    FilesWrite,
    /// Read the audit log.
    AuditRead,
    /// Read usage and quotas.
    UsageRead,
}

const ALL: [Permission; 16] = [
    Permission::OrgRead,
    Permission::OrgUpdate,
    Permission::OrgDelete,
    Permission::MembersRead,
    Permission::MembersInvite,
    Permission::MembersManage,
    Permission::TeamsRead,
    Permission::TeamsManage,
    Permission::RolesRead,
    Permission::RolesManage,
    Permission::ApiKeysManage,
    Permission::WebhooksManage,
    Permission::FilesRead,
    Permission::FilesWrite,
    Permission::AuditRead,
    Permission::UsageRead,
];

/// A string that names no permission; carries it so the error can say which one a custom role
/// or an API key asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission `{0}`")]
pub struct UnknownPermission(pub String);

impl Permission {
    /// Every permission, in catalog order: the source the built-in roles and the published
    /// catalog derive from, so a new permission needs adding in one place only.
    pub fn all() -> &'static [Permission] {
        &ALL
    }

    /// The wire name, `resource:action`: stable, since custom roles and API keys store it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrgRead => "org:read",
            Self::OrgUpdate => "org:update",
            Self::OrgDelete => "org:delete",
            Self::MembersRead => "members:read",
            Self::MembersInvite => "members:invite",
            Self::MembersManage => "members:manage",
            Self::TeamsRead => "teams:read",
            Self::TeamsManage => "teams:manage",
            Self::RolesRead => "roles:read",
            Self::RolesManage => "roles:manage",
            Self::ApiKeysManage => "api_keys:manage",
            Self::WebhooksManage => "webhooks:manage",
            Self::FilesRead => "files:read",
            Self::FilesWrite => "files:write",
            Self::AuditRead => "audit:read",
            Self::UsageRead => "usage:read",
        }
    }

    /// What it allows, for the published catalog.
    pub fn description(self) -> &'static str {
        match self {
            Self::OrgRead => "See the organization.",
            Self::OrgUpdate => "Rename the organization and change its settings.",
            Self::OrgDelete => "Delete the organization.",
            Self::MembersRead => "See members and their roles.",
            Self::MembersInvite => "Invite people and manage pending invitations.",
            Self::MembersManage => "Change members' roles and remove members.",
            Self::TeamsRead => "See teams.",
            Self::TeamsManage => "Create, change and delete teams and their members.",
            Self::RolesRead => "See custom roles.",
            Self::RolesManage => "Create, change and delete custom roles.",
            Self::ApiKeysManage => "Create, list, rotate and revoke API keys.",
            Self::WebhooksManage => "Manage webhook endpoints and their deliveries.",
            Self::FilesRead => "List and download files.",
            Self::FilesWrite => "Upload and delete files.",
            Self::AuditRead => "Read the audit log.",
            Self::UsageRead => "Read usage and quotas.",
        }
    }

    /// Parses a wire name.
    ///
    /// # Errors
    /// [`UnknownPermission`].
    pub fn parse(raw: &str) -> Result<Self, UnknownPermission> {
        ALL.iter().copied().find(|p| p.as_str() == raw).ok_or_else(|| UnknownPermission(raw.to_owned()))
    }

    /// `…:read` permissions: the built-in `member` and `viewer` roles get them by kind, so a new
    /// read permission reaches them without editing the roles.
    pub fn is_read(self) -> bool {
        self.as_str().ends_with(":read")
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of permissions (a bit set: checks are one instruction, the hot path of every request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PermissionSet(u32);

impl PermissionSet {
    /// No permission.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Every permission.
    pub fn all() -> Self {
        Self::from_iter(ALL)
    }

    /// Whether `permission` is in the set: the check behind every authorized request.
    pub fn contains(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    /// Whether every permission of `self` is in `other`: the no-escalation check, since a role,
    /// a custom role or an API key may only be given what the actor holds.
    pub fn is_subset_of(self, other: Self) -> bool {
        self.0 & !other.0 == 0
    }

    /// The permissions both sets hold: what a delegated credential may still do once its
    /// grantor's own rights shrink.
    pub fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The permissions of `self` that `other` lacks.
    pub fn minus(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// With `permission` added.
    pub fn with(self, permission: Permission) -> Self {
        Self(self.0 | permission.bit())
    }

    /// With `permission` removed.
    pub fn without(self, permission: Permission) -> Self {
        Self(self.0 & !permission.bit())
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions, in catalog order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        ALL.into_iter().filter(move |p| self.contains(*p))
    }

    /// The wire names, in catalog order, so serialised sets compare and diff stably.
    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Permission::as_str).collect()
    }

    /// Parses wire names (duplicates allowed, order irrelevant).
    ///
    /// # Errors
    /// [`UnknownPermission`] naming the first unknown one.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<Self, UnknownPermission> {
        names.iter().map(|name| Permission::parse(name.as_ref())).collect()
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        iter.into_iter().fold(Self::empty(), Self::with)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_permission_round_trips_through_its_name() {
        for permission in Permission::all() {
            assert_eq!(Permission::parse(permission.as_str()), Ok(*permission));
            assert!(!permission.description().is_empty());
        }
        assert_eq!(Permission::parse("org:destroy"), Err(UnknownPermission("org:destroy".into())));
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<&str> = Permission::all().iter().map(|p| p.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Permission::all().len());
    }

    #[test]
    fn set_algebra_holds() {
        let read = PermissionSet::from_iter([Permission::OrgRead, Permission::FilesRead]);
        let more = read.with(Permission::FilesWrite);
        assert!(read.is_subset_of(more));
        assert!(!more.is_subset_of(read));
        assert_eq!(more.minus(read).names(), vec!["files:write"]);
        assert!(PermissionSet::empty().is_subset_of(read));
        assert_eq!(PermissionSet::all().iter().count(), 16);
        assert_eq!(PermissionSet::parse(&["files:read", "org:read", "files:read"]), Ok(read));
        assert!(PermissionSet::parse(&["files:read", "nope"]).is_err());
    }
}
