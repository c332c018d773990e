//! Everything the tenant side holds that names one person, for the personal-data export.

use chrono::{DateTime, Utc};
use tenantry_domain::audit::AuditEntry;
use tenantry_domain::{Email, OrgId, TeamId, UserId};

use crate::{ApiKey, Invitation, StoreError};

/// A membership, with the organization's name so the export reads on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipRecord {
    /// The organization.
    pub org_id: OrgId,
    /// Its name.
    pub org_name: String,
    /// The role held there.
    pub role: String,
    /// When the person joined.
    pub joined_at: DateTime<Utc>,
}

/// A team membership, with the team's name so the export reads on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamMembershipRecord {
    /// The organization.
    pub org_id: OrgId,
    /// The team.
    pub team_id: TeamId,
    /// Its name.
    pub team_name: String,
    /// When the person was added.
    pub added_at: DateTime<Utc>,
}

/// Every tenant-side row that names one person, across organizations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantFootprint {
    /// Organizations the person belongs to.
    pub memberships: Vec<MembershipRecord>,
    /// Teams the person is in.
    pub team_memberships: Vec<TeamMembershipRecord>,
    /// Invitations the person sent (any state).
    pub invitations_sent: Vec<Invitation>,
    /// Invitations addressed to the person's e-mail address (any state).
    pub invitations_received: Vec<Invitation>,
    /// API keys the person created (revoked ones included; never the secret).
    pub api_keys_created: Vec<ApiKey>,
    /// Audit entries the person made or that are about them, oldest first.
    pub audit_entries: Vec<AuditEntry>,
}

/// Reads a person's tenant-side rows across every organization: cross-tenant by nature, and
/// only for the person themself (the export of their own data).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait PersonalDataReader: Send + Sync {
    /// Every row naming `user_id`, or addressed to `email`.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn footprint(&self, user_id: UserId, email: &Email) -> Result<TenantFootprint, StoreError>;
}
