//! Roles: the four built-in ones and an organization's custom ones.

use super::{Permission, PermissionSet};

/// The built-in roles, highest first: fixed, so every organization starts with a usable
/// hierarchy, and the owner role can be given rules (at least one, only owners make owners)
/// that custom roles never have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinRole {
    /// Every permission.
    Owner,
    /// Every permission but `org:delete`; cannot create, change or remove owners.
    Admin,
    /// The `:read` permissions but `audit:read`, plus `files:write`.
    Member,
    /// The `:read` permissions but `audit:read`.
    Viewer,
}

impl BuiltinRole {
    /// All four, highest first: the list a name is resolved against.
    pub const ALL: [Self; 4] = [Self::Owner, Self::Admin, Self::Member, Self::Viewer];

    /// The wire name, stored on memberships: custom role names may never take one of these.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::Viewer => "viewer",
        }
    }

    /// The built-in role named `name`; `None` means the name may be a custom role's.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// What the role may do (API.md's definitions, derived from the catalog so a new
    /// permission lands in the right roles by its kind).
    pub fn permissions(self) -> PermissionSet {
        let reads = Permission::all().iter().copied().filter(|p| p.is_read() && *p != Permission::AuditRead);
        match self {
            Self::Owner => PermissionSet::all(),
            Self::Admin => PermissionSet::all().without(Permission::OrgDelete),
            Self::Member => PermissionSet::from_iter(reads).with(Permission::FilesWrite),
            Self::Viewer => PermissionSet::from_iter(reads),
        }
    }
}

/// Why a custom role name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoleNameError {
    /// Not 2–50 characters of lower-case letters, digits, `-` or `_`.
    #[error("role name must be 2 to 50 characters of a-z, 0-9, - and _")]
    Shape,
    /// The name of a built-in role.
    #[error("role name `{0}` is reserved for a built-in role")]
    Reserved(String),
}

/// A custom role's name: machine-friendly, and never one of the built-in names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoleName(String);

impl RoleName {
    /// Validates `raw`.
    ///
    /// # Errors
    /// [`RoleNameError`].
    pub fn parse(raw: &str) -> Result<Self, RoleNameError> {
        let ok = (2..=50).contains(&raw.len())
            && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(RoleNameError::Shape);
        }
        if BuiltinRole::parse(raw).is_some() {
            return Err(RoleNameError::Reserved(raw.to_owned()));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name, as stored on memberships and invitations (never a built-in role's).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A membership's role, built-in or custom: whatever it is, authorization only asks it for its
/// [`PermissionSet`], and membership rules only whether it is the owner role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// One of the four built-in roles.
    Builtin(BuiltinRole),
    /// An organization's own role.
    Custom {
        /// Its name.
        name: RoleName,
        /// What it allows.
        permissions: PermissionSet,
    },
}

impl Role {
    /// What the role allows: the only thing authorization asks of a role.
    pub fn permissions(&self) -> PermissionSet {
        match self {
            Self::Builtin(role) => role.permissions(),
            Self::Custom { permissions, .. } => *permissions,
        }
    }

    /// The wire name, as stored on the membership and shown in member lists.
    pub fn name(&self) -> &str {
        match self {
            Self::Builtin(role) => role.as_str(),
            Self::Custom { name, .. } => name.as_str(),
        }
    }

    /// Whether it is the owner role, which the last-owner and owners-only rules hinge on.
    pub fn is_owner(&self) -> bool {
        matches!(self, Self::Builtin(BuiltinRole::Owner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// API.md's table, spelled out permission by permission: the derivation above must agree.
    #[test]
    fn every_builtin_role_has_exactly_the_documented_permissions() {
        use Permission as P;
        let expected: [(BuiltinRole, &[Permission]); 4] = [
            (BuiltinRole::Owner, Permission::all()),
            (
                BuiltinRole::Admin,
                &[
                    P::OrgRead,
                    P::OrgUpdate,
                    P::MembersRead,
                    P::MembersInvite,
                    P::MembersManage,
                    P::TeamsRead,
                    P::TeamsManage,
                    P::RolesRead,
                    P::RolesManage,
                    P::ApiKeysManage,
                    P::WebhooksManage,
                    P::FilesRead,
                    P::FilesWrite,
                    P::AuditRead,
                    P::UsageRead,
                ],
            ),
            (
                BuiltinRole::Member,
                &[P::OrgRead, P::MembersRead, P::TeamsRead, P::RolesRead, P::FilesRead, P::FilesWrite, P::UsageRead],
            ),
            (
                BuiltinRole::Viewer,
                &[P::OrgRead, P::MembersRead, P::TeamsRead, P::RolesRead, P::FilesRead, P::UsageRead],
            ),
        ];
        for (role, allowed) in expected {
            for permission in Permission::all() {
                assert_eq!(
                    role.permissions().contains(*permission),
                    allowed.contains(permission),
                    "{} × {}",
                    role.as_str(),
                    permission
                );
            }
        }
    }

    #[test]
    fn builtin_roles_are_strictly_nested() {
        for pair in BuiltinRole::ALL.windows(2) {
            assert!(pair[1].permissions().is_subset_of(pair[0].permissions()));
            assert_ne!(pair[1].permissions(), pair[0].permissions());
        }
    }

    #[test]
    fn custom_role_names_cannot_shadow_builtins_or_be_odd() {
        assert!(RoleName::parse("billing-admin").is_ok());
        assert_eq!(RoleName::parse("owner"), Err(RoleNameError::Reserved("owner".into())));
        assert_eq!(RoleName::parse("Admin"), Err(RoleNameError::Shape));
        assert_eq!(RoleName::parse("a"), Err(RoleNameError::Shape));
        assert_eq!(RoleName::parse("has space"), Err(RoleNameError::Shape));
    }
}
