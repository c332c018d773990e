//! The audit log's read side, its stand-alone appends, and the personal-data export over a
//! [`MemoryDatabase`].

use tenantry_domain::audit::{ActorKind, AuditEntry, AuditEvent};
use tenantry_domain::{Email, OrgId, TeamId, UserId};
use tenantry_ports::{
    AuditFilter, AuditHead, AuditLog, MembershipRecord, PersonalDataReader, StoreError, TeamMembershipRecord,
    TenantFootprint,
};

use crate::database::MemoryDatabase;

fn page(limit: u32) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// [`AuditLog`] in memory. Entries are linked with the same hash chain the SQL adapter writes
/// (`AuditEntry::link`), so `AuditService::verify` checks an in-memory log exactly as it
/// checks a database's.
#[derive(Clone, Debug)]
pub struct InMemoryAuditLog {
    db: MemoryDatabase,
}

impl InMemoryAuditLog {
    /// A view over `db`.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }
}

fn matches(entry: &AuditEntry, filter: &AuditFilter) -> bool {
    let event = &entry.event;
    let action = filter.action.as_deref().is_none_or(|action| match action.strip_suffix(".*") {
        Some(family) => event.action.starts_with(&format!("{family}.")),
        None => event.action == action,
    });
    action
        && filter.actor_id.is_none_or(|actor| event.actor_id == actor)
        && filter.since.is_none_or(|since| event.created_at >= since)
        && filter.until.is_none_or(|until| event.created_at < until)
        && filter.before_seq.is_none_or(|before| entry.seq < before)
}

#[async_trait::async_trait]
impl AuditLog for InMemoryAuditLog {
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.db.write(|tables| {
            tables.append(event);
            Ok(())
        })
    }

    async fn list(&self, org_id: OrgId, filter: &AuditFilter, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.db.read(|tables| {
            Ok(tables.audit.get(&org_id.as_uuid()).map_or_else(Vec::new, |log| {
                log.entries.iter().rev().filter(|entry| matches(entry, filter)).take(page(limit)).cloned().collect()
            }))
        })
    }

    async fn chain(&self, org_id: OrgId, after_seq: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        self.db.read(|tables| {
            Ok(tables.audit.get(&org_id.as_uuid()).map_or_else(Vec::new, |log| {
                log.entries.iter().filter(|entry| entry.seq > after_seq).take(page(limit)).cloned().collect()
            }))
        })
    }

    async fn head(&self, org_id: OrgId) -> Result<Option<AuditHead>, StoreError> {
        self.db.read(|tables| {
            Ok(tables.audit.get(&org_id.as_uuid()).and_then(|log| log.entries.last()).map(|last| AuditHead {
                seq: last.seq,
                last_id: last.event.id,
                hash: last.hash.clone(),
            }))
        })
    }
}

/// [`PersonalDataReader`] in memory: every row naming one person, across organizations, read
/// in one consistent view.
#[derive(Clone, Debug)]
pub struct InMemoryPersonalDataReader {
    db: MemoryDatabase,
}

impl InMemoryPersonalDataReader {
    /// A view over `db`.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl PersonalDataReader for InMemoryPersonalDataReader {
    async fn footprint(&self, user_id: UserId, email: &Email) -> Result<TenantFootprint, StoreError> {
        let user = user_id.as_uuid();
        self.db.read(|tables| {
            let memberships = tables
                .memberships
                .iter()
                .filter(|((_, member), _)| *member == user)
                .map(|((org, _), row)| MembershipRecord {
                    org_id: OrgId::from_uuid(*org),
                    org_name: tables.orgs.get(org).map(|found| found.org.name.clone()).unwrap_or_default(),
                    role: row.role.clone(),
                    joined_at: row.created_at,
                })
                .collect();
            let team_memberships = tables
                .team_members
                .iter()
                .filter(|((_, member), _)| *member == user)
                .map(|((team, _), row)| TeamMembershipRecord {
                    org_id: OrgId::from_uuid(row.org_id),
                    team_id: TeamId::from_uuid(*team),
                    team_name: tables.teams.get(team).map(|found| found.name.clone()).unwrap_or_default(),
                    added_at: row.created_at,
                })
                .collect();
            let invitations_sent = tables
                .invitations
                .values()
                .filter(|(invitation, _)| invitation.invited_by == user_id)
                .map(|(invitation, _)| invitation.clone())
                .collect();
            let invitations_received = tables
                .invitations
                .values()
                .filter(|(invitation, _)| invitation.email == *email)
                .map(|(invitation, _)| invitation.clone())
                .collect();
            let api_keys_created = tables
                .api_keys
                .values()
                .filter(|(key, _)| key.created_by == user_id)
                .map(|(key, _)| key.clone())
                .collect();
            let target = user_id.to_string();
            let mut audit_entries: Vec<AuditEntry> = tables
                .audit
                .values()
                .flat_map(|log| log.entries.iter())
                .filter(|entry| {
                    let event = &entry.event;
                    (event.actor_type == ActorKind::User && event.actor_id == user)
                        || (event.target_type == "user" && event.target_id.as_deref() == Some(target.as_str()))
                })
                .cloned()
                .collect();
            audit_entries.sort_by_key(|entry| (entry.event.created_at, entry.event.id));
            Ok(TenantFootprint {
                memberships,
                team_memberships,
                invitations_sent,
                invitations_received,
                api_keys_created,
                audit_entries,
            })
        })
    }
}
