//! The forms in which the tenancy read cache holds what it caches: plain serde shapes, so an
//! entry written by one replica is read by another, and a stored value that no longer parses
//! is a miss, never a wrong answer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_domain::tenancy::{PermissionSet, RoleName};
use tenantry_domain::{ApiKeyId, Email, OrgId, RoleId, UserId};
use tenantry_ports::{ApiKey, CustomRole, Member};

/// A key as cached for authentication (its secret's digest included: the cache is as trusted
/// as the database, and the digest of a 256-bit secret reveals nothing usable).
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct CachedKey {
    id: ApiKeyId,
    org_id: OrgId,
    name: String,
    public_id: String,
    permissions: Vec<String>,
    created_by: UserId,
    created_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    secret_hash: String,
}

impl CachedKey {
    pub(crate) fn of(key: &ApiKey, secret_hash: &str) -> Self {
        Self {
            id: key.id,
            org_id: key.org_id,
            name: key.name.clone(),
            public_id: key.public_id.clone(),
            permissions: key.permissions.names().into_iter().map(str::to_owned).collect(),
            created_by: key.created_by,
            created_at: key.created_at,
            expires_at: key.expires_at,
            revoked_at: key.revoked_at,
            secret_hash: secret_hash.to_owned(),
        }
    }

    pub(crate) fn into_key(self) -> Option<(ApiKey, String)> {
        let key = ApiKey {
            id: self.id,
            org_id: self.org_id,
            name: self.name,
            public_id: self.public_id,
            permissions: PermissionSet::parse(&self.permissions).ok()?,
            created_by: self.created_by,
            created_at: self.created_at,
            expires_at: self.expires_at,
            last_used_at: None,
            revoked_at: self.revoked_at,
        };
        Some((key, self.secret_hash))
    }
}

/// A member as cached in a member page.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct CachedMember {
    user_id: UserId,
    email: String,
    display_name: Option<String>,
    role: String,
    joined_at: DateTime<Utc>,
}

impl From<&Member> for CachedMember {
    fn from(member: &Member) -> Self {
        Self {
            user_id: member.user_id,
            email: member.email.as_str().to_owned(),
            display_name: member.display_name.clone(),
            role: member.role.clone(),
            joined_at: member.joined_at,
        }
    }
}

impl CachedMember {
    pub(crate) fn into_member(self) -> Option<Member> {
        Some(Member {
            user_id: self.user_id,
            email: Email::parse(&self.email).ok()?,
            display_name: self.display_name,
            role: self.role,
            joined_at: self.joined_at,
        })
    }
}

/// A custom role as cached for authorization.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct CachedRole {
    id: RoleId,
    org_id: OrgId,
    name: String,
    permissions: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<&CustomRole> for CachedRole {
    fn from(role: &CustomRole) -> Self {
        Self {
            id: role.id,
            org_id: role.org_id,
            name: role.name.as_str().to_owned(),
            permissions: role.permissions.names().into_iter().map(str::to_owned).collect(),
            created_at: role.created_at,
            updated_at: role.updated_at,
        }
    }
}

impl CachedRole {
    pub(crate) fn into_role(self) -> Option<CustomRole> {
        Some(CustomRole {
            id: self.id,
            org_id: self.org_id,
            name: RoleName::parse(&self.name).ok()?,
            permissions: PermissionSet::parse(&self.permissions).ok()?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}
