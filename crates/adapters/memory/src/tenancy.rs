//! Organizations, memberships, invitations, custom roles, teams and API keys over a
//! [`MemoryDatabase`]. Every audited change appends its entry in the same critical section as
//! the change, after checking everything that can refuse it.

use chrono::{DateTime, Utc};
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::{ApiKeyId, InvitationId, OrgId, RoleId, Slug, TeamId, UserId};
use tenantry_ports::{
    ApiKey, ApiKeyRepository, Conflict, CustomRole, Invitation, InvitationRepository, Member, Org, OrgRepository,
    QueuedMail, RoleRepository, StoreError, Team, TeamRepository,
};
use uuid::Uuid;

use crate::database::{MembershipRow, MemoryDatabase, OWNER, OrgRow, Tables, TeamMemberRow, TeamRow, count, missing};

fn page(limit: u32) -> usize {
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// [`OrgRepository`] in memory. Role changes and removals keep the last-owner rule inside the
/// database's critical section, so concurrent demotions cannot leave an organization without
/// an owner.
#[derive(Clone, Debug)]
pub struct InMemoryOrgRepository {
    db: MemoryDatabase,
}

impl InMemoryOrgRepository {
    /// A view over `db`.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }
}

fn slug_taken(tables: &Tables, slug: &Slug, except: Option<Uuid>) -> bool {
    tables.orgs.iter().any(|(id, row)| row.org.slug == *slug && Some(*id) != except)
}

/// The member's row, or why a guarded change cannot apply: `NotFound` when not a member,
/// `LastOwner` when the change would leave no owner (`keeps_owner`: the new role is `owner`).
fn guard_last_owner(tables: &Tables, org: Uuid, user: Uuid, keeps_owner: bool) -> Result<(), StoreError> {
    let row = tables.memberships.get(&(org, user)).ok_or(StoreError::NotFound)?;
    if !keeps_owner && row.role == OWNER && tables.owners(org) <= 1 {
        return Err(StoreError::Conflict(Conflict::LastOwner));
    }
    Ok(())
}

#[async_trait::async_trait]
impl OrgRepository for InMemoryOrgRepository {
    async fn create_with_owner(&self, org: &Org, owner: UserId, audit: &AuditEvent) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if slug_taken(tables, &org.slug, None) {
                return Err(StoreError::Conflict(Conflict::SlugTaken));
            }
            if tables.org_exists(org.id) {
                return Err(StoreError::Conflict(Conflict::Duplicate));
            }
            if !tables.user_exists(owner) {
                return Err(missing("user"));
            }
            // Appended before the organization exists, as in SQL: its creation is not a
            // webhook event (it has no endpoint yet).
            tables.append(audit);
            tables.orgs.insert(org.id.as_uuid(), OrgRow { org: org.clone(), overrides: None, plan_started_at: None });
            tables.memberships.insert(
                (org.id.as_uuid(), owner.as_uuid()),
                MembershipRow { role: OWNER.to_owned(), created_at: org.created_at },
            );
            Ok(())
        })
    }

    async fn get(&self, org_id: OrgId) -> Result<Option<Org>, StoreError> {
        self.db.read(|tables| Ok(tables.orgs.get(&org_id.as_uuid()).map(|row| row.org.clone())))
    }

    async fn list_all(&self, after: Option<OrgId>, limit: u32) -> Result<Vec<Org>, StoreError> {
        self.db.read(|tables| {
            Ok(tables
                .orgs
                .values()
                .filter(|row| after.is_none_or(|after| row.org.id > after))
                .take(page(limit))
                .map(|row| row.org.clone())
                .collect())
        })
    }

    async fn list_for_user(
        &self,
        user_id: UserId,
        after: Option<OrgId>,
        limit: u32,
    ) -> Result<Vec<(Org, String)>, StoreError> {
        self.db.read(|tables| {
            Ok(tables
                .memberships
                .iter()
                .filter(|((org, user), _)| {
                    *user == user_id.as_uuid() && after.is_none_or(|after| *org > after.as_uuid())
                })
                .filter_map(|((org, _), row)| tables.orgs.get(org).map(|found| (found.org.clone(), row.role.clone())))
                .take(page(limit))
                .collect())
        })
    }

    async fn update(
        &self,
        org_id: OrgId,
        name: &str,
        slug: &Slug,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if !tables.org_exists(org_id) {
                return Err(StoreError::NotFound);
            }
            if slug_taken(tables, slug, Some(org_id.as_uuid())) {
                return Err(StoreError::Conflict(Conflict::SlugTaken));
            }
            tables.append(audit);
            let row = tables.orgs.get_mut(&org_id.as_uuid()).ok_or(StoreError::NotFound)?;
            name.clone_into(&mut row.org.name);
            row.org.slug = slug.clone();
            row.org.updated_at = now;
            Ok(())
        })
    }

    async fn delete(&self, org_id: OrgId, audit: &AuditEvent) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if !tables.org_exists(org_id) {
                return Err(StoreError::NotFound);
            }
            tables.append(audit);
            tables.drop_org(org_id.as_uuid());
            Ok(())
        })
    }

    async fn add_member(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: &str,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if tables.memberships.contains_key(&(org_id.as_uuid(), user_id.as_uuid())) {
                return Err(StoreError::Conflict(Conflict::AlreadyMember));
            }
            if !tables.org_exists(org_id) || !tables.user_exists(user_id) {
                return Err(StoreError::NotFound);
            }
            tables.append(audit);
            tables.memberships.insert(
                (org_id.as_uuid(), user_id.as_uuid()),
                MembershipRow { role: role.to_owned(), created_at: now },
            );
            Ok(())
        })
    }

    async fn role_of(&self, org_id: OrgId, user_id: UserId) -> Result<Option<String>, StoreError> {
        self.db.read(|tables| {
            Ok(tables.memberships.get(&(org_id.as_uuid(), user_id.as_uuid())).map(|row| row.role.clone()))
        })
    }

    async fn list_members(&self, org_id: OrgId, after: Option<UserId>, limit: u32) -> Result<Vec<Member>, StoreError> {
        self.db.read(|tables| {
            let org = org_id.as_uuid();
            let mut members: Vec<(DateTime<Utc>, Uuid, &MembershipRow)> =
                tables.memberships_of(org).map(|(user, row)| (row.created_at, user, row)).collect();
            members.sort_by_key(|(joined, user, _)| (*joined, *user));
            let cursor = after.and_then(|after| {
                tables.memberships.get(&(org, after.as_uuid())).map(|row| (row.created_at, after.as_uuid()))
            });
            // A cursor that is no longer a member matches nothing, as the SQL subquery does.
            if after.is_some() && cursor.is_none() {
                return Ok(Vec::new());
            }
            Ok(members
                .into_iter()
                .filter(|(joined, user, _)| cursor.is_none_or(|cursor| (*joined, *user) > cursor))
                .filter_map(|(joined, user, row)| {
                    tables.users.get(&user).map(|account| Member {
                        user_id: account.user.id,
                        email: account.user.email.clone(),
                        display_name: account.user.display_name.as_ref().map(|name| name.as_str().to_owned()),
                        role: row.role.clone(),
                        joined_at: joined,
                    })
                })
                .take(page(limit))
                .collect())
        })
    }

    async fn count_owners(&self, org_id: OrgId) -> Result<u32, StoreError> {
        self.db.read(|tables| Ok(u32::try_from(tables.owners(org_id.as_uuid())).unwrap_or(u32::MAX)))
    }

    async fn set_role(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: &str,
        // Memberships keep no update time here: nothing reads it back.
        _now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.db.write(|tables| {
            let key = (org_id.as_uuid(), user_id.as_uuid());
            guard_last_owner(tables, key.0, key.1, role == OWNER)?;
            tables.append(audit);
            let row = tables.memberships.get_mut(&key).ok_or(StoreError::NotFound)?;
            role.clone_into(&mut row.role);
            Ok(())
        })
    }

    async fn remove_member(&self, org_id: OrgId, user_id: UserId, audit: &AuditEvent) -> Result<(), StoreError> {
        self.db.write(|tables| {
            let key = (org_id.as_uuid(), user_id.as_uuid());
            guard_last_owner(tables, key.0, key.1, false)?;
            tables.append(audit);
            tables.memberships.remove(&key);
            tables.team_members.retain(|(_, user), member| !(member.org_id == key.0 && *user == key.1));
            Ok(())
        })
    }

    async fn orgs_solely_owned_by(&self, user_id: UserId) -> Result<Vec<OrgId>, StoreError> {
        self.db.read(|tables| {
            Ok(tables
                .memberships
                .iter()
                .filter(|((org, user), row)| {
                    *user == user_id.as_uuid() && row.role == OWNER && tables.owners(*org) == 1
                })
                .map(|((org, _), _)| OrgId::from_uuid(*org))
                .collect())
        })
    }
}

/// [`InvitationRepository`] in memory. The seat limit is counted in the same critical section
/// as the write, so concurrent invitations or acceptances cannot pass it together.
#[derive(Clone, Debug)]
pub struct InMemoryInvitationRepository {
    db: MemoryDatabase,
}

impl InMemoryInvitationRepository {
    /// A view over `db`.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl InvitationRepository for InMemoryInvitationRepository {
    async fn create(
        &self,
        invitation: &Invitation,
        token_hash: &str,
        seat_limit: Option<u64>,
        audit: &AuditEvent,
        mails: &[QueuedMail],
    ) -> Result<(), StoreError> {
        self.db.write(|tables| {
            let org = invitation.org_id.as_uuid();
            if !tables.org_exists(invitation.org_id) {
                return Err(missing("organization"));
            }
            if tables.invitations.contains_key(&invitation.id.as_uuid())
                || tables.invitations.values().any(|(_, hash)| hash == token_hash)
            {
                return Err(StoreError::Conflict(Conflict::Duplicate));
            }
            // The re-invite replaces the pending one of the same address: it does not take a
            // second seat.
            let replaced = |candidate: &Invitation| {
                candidate.org_id == invitation.org_id
                    && candidate.email == invitation.email
                    && candidate.accepted_at.is_none()
                    && candidate.revoked_at.is_none()
            };
            if let Some(limit) = seat_limit {
                let now = invitation.created_at;
                let (members, _) = tables.seats(org, now);
                let pending = tables
                    .invitations
                    .values()
                    .filter(|(other, _)| other.org_id == invitation.org_id && other.is_pending(now) && !replaced(other))
                    .count();
                let total = members + count(pending) + u64::from(invitation.is_pending(now));
                if total > limit {
                    return Err(StoreError::LimitReached { used: total.saturating_sub(1) });
                }
            }
            tables.queue_mail(mails)?;
            tables.append(audit);
            for (other, _) in tables.invitations.values_mut() {
                if replaced(other) {
                    other.revoked_at = Some(invitation.created_at);
                }
            }
            let mut stored = invitation.clone();
            stored.accepted_at = None;
            stored.revoked_at = None;
            tables.invitations.insert(invitation.id.as_uuid(), (stored, token_hash.to_owned()));
            Ok(())
        })
    }

    async fn list_pending(
        &self,
        org_id: OrgId,
        now: DateTime<Utc>,
        before: Option<InvitationId>,
        limit: u32,
    ) -> Result<Vec<Invitation>, StoreError> {
        self.db.read(|tables| {
            Ok(tables
                .invitations
                .values()
                .rev()
                .map(|(invitation, _)| invitation)
                .filter(|invitation| invitation.org_id == org_id && invitation.is_pending(now))
                .filter(|invitation| before.is_none_or(|before| invitation.id < before))
                .take(page(limit))
                .cloned()
                .collect())
        })
    }

    async fn revoke(
        &self,
        org_id: OrgId,
        id: InvitationId,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.db.write(|tables| {
            let open = |invitation: &Invitation| {
                invitation.org_id == org_id && invitation.accepted_at.is_none() && invitation.revoked_at.is_none()
            };
            if !tables.invitations.get(&id.as_uuid()).is_some_and(|(invitation, _)| open(invitation)) {
                return Ok(false);
            }
            tables.append(audit);
            if let Some((invitation, _)) = tables.invitations.get_mut(&id.as_uuid()) {
                invitation.revoked_at = Some(now);
            }
            Ok(true)
        })
    }

    async fn by_token(&self, token_hash: &str) -> Result<Option<Invitation>, StoreError> {
        self.db.read(|tables| {
            Ok(tables
                .invitations
                .values()
                .find(|(_, hash)| hash == token_hash)
                .map(|(invitation, _)| invitation.clone()))
        })
    }

    async fn pending_from(
        &self,
        org_id: OrgId,
        inviter: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invitation>, StoreError> {
        self.db.read(|tables| {
            Ok(tables
                .invitations
                .values()
                .map(|(invitation, _)| invitation)
                .filter(|invitation| {
                    invitation.org_id == org_id && invitation.invited_by == inviter && invitation.is_pending(now)
                })
                .cloned()
                .collect())
        })
    }

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
    ) -> Result<(), StoreError> {
        self.db.write(|tables| {
            let org = org_id.as_uuid();
            let already = tables.memberships.contains_key(&(org, user_id.as_uuid()));
            if let Some(limit) = seat_limit {
                if already {
                    return Err(StoreError::Conflict(Conflict::AlreadyMember));
                }
                let (members, _) = tables.seats(org, now);
                if members >= limit {
                    return Err(StoreError::LimitReached { used: members });
                }
            }
            let (invitation, _) = tables
                .invitations
                .get(&id.as_uuid())
                .filter(|(invitation, _)| invitation.org_id == org_id)
                .ok_or(StoreError::NotFound)?;
            let inviter = tables.memberships.get(&(org, invitation.invited_by.as_uuid()));
            if inviter.is_none_or(|membership| membership.role != inviter_role) {
                return Err(StoreError::NotFound);
            }
            if invitation.role != role || !invitation.is_pending(now) {
                return Err(StoreError::NotFound);
            }
            if already {
                return Err(StoreError::Conflict(Conflict::AlreadyMember));
            }
            if !tables.user_exists(user_id) {
                return Err(StoreError::Conflict(Conflict::AccountGone));
            }
            let granted = invitation.role.clone();
            for entry in audit {
                tables.append(entry);
            }
            if let Some((invitation, _)) = tables.invitations.get_mut(&id.as_uuid()) {
                invitation.accepted_at = Some(now);
            }
            tables.memberships.insert((org, user_id.as_uuid()), MembershipRow { role: granted, created_at: now });
            Ok(())
        })
    }
}

/// [`RoleRepository`] in memory: a rename follows to the memberships and open invitations
/// that hold the role, in the same critical section.
#[derive(Clone, Debug)]
pub struct InMemoryRoleRepository {
    db: MemoryDatabase,
}

impl InMemoryRoleRepository {
    /// A view over `db`.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }
}

fn role_name_taken(tables: &Tables, org_id: OrgId, name: &str, except: Option<RoleId>) -> bool {
    tables.roles.values().any(|role| role.org_id == org_id && role.name.as_str() == name && Some(role.id) != except)
}

#[async_trait::async_trait]
impl RoleRepository for InMemoryRoleRepository {
    async fn list(&self, org_id: OrgId, after: Option<String>, limit: u32) -> Result<Vec<CustomRole>, StoreError> {
        self.db.read(|tables| {
            let mut roles: Vec<&CustomRole> = tables
                .roles
                .values()
                .filter(|role| role.org_id == org_id)
                .filter(|role| after.as_deref().is_none_or(|after| role.name.as_str() > after))
                .collect();
            roles.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
            Ok(roles.into_iter().take(page(limit)).cloned().collect())
        })
    }

    async fn by_name(&self, org_id: OrgId, name: &str) -> Result<Option<CustomRole>, StoreError> {
        self.db.read(|tables| {
            Ok(tables.roles.values().find(|role| role.org_id == org_id && role.name.as_str() == name).cloned())
        })
    }

    async fn get(&self, org_id: OrgId, id: RoleId) -> Result<Option<CustomRole>, StoreError> {
        self.db.read(|tables| Ok(tables.roles.get(&id.as_uuid()).filter(|role| role.org_id == org_id).cloned()))
    }

    async fn create(&self, role: &CustomRole, audit: &AuditEvent) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if role_name_taken(tables, role.org_id, role.name.as_str(), None) {
                return Err(StoreError::Conflict(Conflict::RoleNameTaken));
            }
            if tables.roles.contains_key(&role.id.as_uuid()) {
                return Err(StoreError::Conflict(Conflict::Duplicate));
            }
            if !tables.org_exists(role.org_id) {
                return Err(missing("organization"));
            }
            tables.append(audit);
            tables.roles.insert(role.id.as_uuid(), role.clone());
            Ok(())
        })
    }

    async fn update(&self, role: &CustomRole, audit: &AuditEvent) -> Result<(), StoreError> {
        self.db.write(|tables| {
            let Some(old) = tables.roles.get(&role.id.as_uuid()).filter(|old| old.org_id == role.org_id) else {
                return Err(StoreError::NotFound);
            };
            if role_name_taken(tables, role.org_id, role.name.as_str(), Some(role.id)) {
                return Err(StoreError::Conflict(Conflict::RoleNameTaken));
            }
            let old_name = old.name.as_str().to_owned();
            let org = role.org_id.as_uuid();
            tables.append(audit);
            for (invitation, _) in tables.invitations.values_mut() {
                if invitation.org_id == role.org_id
                    && invitation.accepted_at.is_none()
                    && invitation.revoked_at.is_none()
                    && invitation.role == old_name
                {
                    invitation.role = role.name.as_str().to_owned();
                }
            }
            for ((member_org, _), membership) in &mut tables.memberships {
                if *member_org == org && membership.role == old_name {
                    membership.role = role.name.as_str().to_owned();
                }
            }
            if let Some(stored) = tables.roles.get_mut(&role.id.as_uuid()) {
                stored.name = role.name.clone();
                stored.permissions = role.permissions;
                stored.updated_at = role.updated_at;
            }
            Ok(())
        })
    }

    async fn delete(&self, org_id: OrgId, id: RoleId, audit: &AuditEvent) -> Result<(), StoreError> {
        self.db.write(|tables| {
            let Some(role) = tables.roles.get(&id.as_uuid()).filter(|role| role.org_id == org_id) else {
                return Err(StoreError::NotFound);
            };
            let name = role.name.as_str();
            let held = tables.memberships_of(org_id.as_uuid()).any(|(_, row)| row.role == name);
            let invited = tables.invitations.values().any(|(invitation, _)| {
                invitation.org_id == org_id
                    && invitation.role == name
                    && invitation.accepted_at.is_none()
                    && invitation.revoked_at.is_none()
                    && invitation.expires_at > audit.created_at
            });
            if held || invited {
                return Err(StoreError::Conflict(Conflict::RoleInUse));
            }
            tables.append(audit);
            tables.roles.remove(&id.as_uuid());
            Ok(())
        })
    }
}

/// [`TeamRepository`] in memory.
#[derive(Clone, Debug)]
pub struct InMemoryTeamRepository {
    db: MemoryDatabase,
}

impl InMemoryTeamRepository {
    /// A view over `db`.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }
}

fn team_of(tables: &Tables, id: Uuid, row: &TeamRow) -> Team {
    let mut members: Vec<(DateTime<Utc>, Uuid)> = tables
        .team_members
        .range((id, Uuid::nil())..=(id, Uuid::max()))
        .map(|((_, user), member)| (member.created_at, *user))
        .collect();
    members.sort();
    Team {
        id: TeamId::from_uuid(id),
        org_id: OrgId::from_uuid(row.org_id),
        name: row.name.clone(),
        description: row.description.clone(),
        members: members.into_iter().map(|(_, user)| UserId::from_uuid(user)).collect(),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn team_name_taken(tables: &Tables, org: Uuid, name: &str, except: Option<Uuid>) -> bool {
    tables.teams.iter().any(|(id, team)| team.org_id == org && team.name == name && Some(*id) != except)
}

fn find_team(tables: &Tables, org_id: OrgId, id: TeamId) -> Option<&TeamRow> {
    tables.teams.get(&id.as_uuid()).filter(|team| team.org_id == org_id.as_uuid())
}

#[async_trait::async_trait]
impl TeamRepository for InMemoryTeamRepository {
    async fn list(&self, org_id: OrgId, after: Option<String>, limit: u32) -> Result<Vec<Team>, StoreError> {
        self.db.read(|tables| {
            let mut teams: Vec<(&Uuid, &TeamRow)> = tables
                .teams
                .iter()
                .filter(|(_, team)| team.org_id == org_id.as_uuid())
                .filter(|(_, team)| after.as_deref().is_none_or(|after| team.name.as_str() > after))
                .collect();
            teams.sort_by(|a, b| a.1.name.cmp(&b.1.name));
            Ok(teams.into_iter().take(page(limit)).map(|(id, row)| team_of(tables, *id, row)).collect())
        })
    }

    async fn get(&self, org_id: OrgId, id: TeamId) -> Result<Option<Team>, StoreError> {
        self.db.read(|tables| Ok(find_team(tables, org_id, id).map(|row| team_of(tables, id.as_uuid(), row))))
    }

    async fn create(&self, team: &Team, audit: &AuditEvent) -> Result<(), StoreError> {
        self.db.write(|tables| {
            let org = team.org_id.as_uuid();
            if team_name_taken(tables, org, &team.name, None) {
                return Err(StoreError::Conflict(Conflict::TeamNameTaken));
            }
            if tables.teams.contains_key(&team.id.as_uuid()) {
                return Err(StoreError::Conflict(Conflict::Duplicate));
            }
            if !tables.org_exists(team.org_id) {
                return Err(missing("organization"));
            }
            tables.append(audit);
            tables.teams.insert(
                team.id.as_uuid(),
                TeamRow {
                    org_id: org,
                    name: team.name.clone(),
                    description: team.description.clone(),
                    created_at: team.created_at,
                    updated_at: team.updated_at,
                },
            );
            Ok(())
        })
    }

    async fn update(
        &self,
        org_id: OrgId,
        id: TeamId,
        name: &str,
        description: Option<String>,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if find_team(tables, org_id, id).is_none() {
                return Err(StoreError::NotFound);
            }
            if team_name_taken(tables, org_id.as_uuid(), name, Some(id.as_uuid())) {
                return Err(StoreError::Conflict(Conflict::TeamNameTaken));
            }
            tables.append(audit);
            if let Some(team) = tables.teams.get_mut(&id.as_uuid()) {
                name.clone_into(&mut team.name);
                team.description = description;
                team.updated_at = now;
            }
            Ok(())
        })
    }

    async fn delete(&self, org_id: OrgId, id: TeamId, audit: &AuditEvent) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if find_team(tables, org_id, id).is_none() {
                return Err(StoreError::NotFound);
            }
            tables.append(audit);
            tables.teams.remove(&id.as_uuid());
            tables.team_members.retain(|(team, _), _| *team != id.as_uuid());
            Ok(())
        })
    }

    async fn add_member(
        &self,
        org_id: OrgId,
        id: TeamId,
        user_id: UserId,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.db.write(|tables| {
            if find_team(tables, org_id, id).is_none() {
                return Err(StoreError::NotFound);
            }
            let key = (id.as_uuid(), user_id.as_uuid());
            if tables.team_members.contains_key(&key) {
                return Ok(false);
            }
            if !tables.user_exists(user_id) {
                return Err(missing("user"));
            }
            tables.append(audit);
            tables.team_members.insert(key, TeamMemberRow { org_id: org_id.as_uuid(), created_at: now });
            Ok(true)
        })
    }

    async fn remove_member(
        &self,
        org_id: OrgId,
        id: TeamId,
        user_id: UserId,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.db.write(|tables| {
            let key = (id.as_uuid(), user_id.as_uuid());
            if tables.team_members.get(&key).is_none_or(|member| member.org_id != org_id.as_uuid()) {
                return Ok(false);
            }
            tables.append(audit);
            tables.team_members.remove(&key);
            Ok(true)
        })
    }
}

/// [`ApiKeyRepository`] in memory. A rotation bounds the old key and stores its replacement in
/// one critical section.
#[derive(Clone, Debug)]
pub struct InMemoryApiKeyRepository {
    db: MemoryDatabase,
}

impl InMemoryApiKeyRepository {
    /// A view over `db`.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }
}

fn insert_key(tables: &mut Tables, key: &ApiKey, secret_hash: &str) -> Result<(), StoreError> {
    if tables.api_keys.contains_key(&key.id.as_uuid())
        || tables.api_keys.values().any(|(other, _)| other.public_id == key.public_id)
    {
        return Err(StoreError::Conflict(Conflict::Duplicate));
    }
    if !tables.org_exists(key.org_id) {
        return Err(missing("organization"));
    }
    let mut stored = key.clone();
    stored.last_used_at = None;
    stored.revoked_at = None;
    tables.api_keys.insert(key.id.as_uuid(), (stored, secret_hash.to_owned()));
    Ok(())
}

fn active(key: &ApiKey, now: DateTime<Utc>) -> bool {
    key.revoked_at.is_none() && key.expires_at.is_none_or(|ends| ends > now)
}

#[async_trait::async_trait]
impl ApiKeyRepository for InMemoryApiKeyRepository {
    async fn create(&self, key: &ApiKey, secret_hash: &str, audit: &AuditEvent) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if tables.api_keys.contains_key(&key.id.as_uuid())
                || tables.api_keys.values().any(|(other, _)| other.public_id == key.public_id)
            {
                return Err(StoreError::Conflict(Conflict::Duplicate));
            }
            if !tables.org_exists(key.org_id) {
                return Err(missing("organization"));
            }
            tables.append(audit);
            insert_key(tables, key, secret_hash)
        })
    }

    async fn list(&self, org_id: OrgId, before: Option<ApiKeyId>, limit: u32) -> Result<Vec<ApiKey>, StoreError> {
        self.db.read(|tables| {
            Ok(tables
                .api_keys
                .values()
                .rev()
                .map(|(key, _)| key)
                .filter(|key| key.org_id == org_id && key.revoked_at.is_none())
                .filter(|key| before.is_none_or(|before| key.id < before))
                .take(page(limit))
                .cloned()
                .collect())
        })
    }

    async fn get(&self, org_id: OrgId, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        self.db.read(|tables| {
            Ok(tables.api_keys.get(&id.as_uuid()).filter(|(key, _)| key.org_id == org_id).map(|(key, _)| key.clone()))
        })
    }

    async fn by_public_id(&self, public_id: &str) -> Result<Option<(ApiKey, String)>, StoreError> {
        self.db.read(|tables| Ok(tables.api_keys.values().find(|(key, _)| key.public_id == public_id).cloned()))
    }

    async fn by_public_id_in(&self, org_id: OrgId, public_id: &str) -> Result<Option<(ApiKey, String)>, StoreError> {
        self.db.read(|tables| {
            Ok(tables.api_keys.values().find(|(key, _)| key.org_id == org_id && key.public_id == public_id).cloned())
        })
    }

    async fn revoke(
        &self,
        org_id: OrgId,
        id: ApiKeyId,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        self.db.write(|tables| {
            let revocable = tables
                .api_keys
                .get(&id.as_uuid())
                .is_some_and(|(key, _)| key.org_id == org_id && key.revoked_at.is_none());
            if !revocable {
                return Ok(false);
            }
            tables.append(audit);
            if let Some((key, _)) = tables.api_keys.get_mut(&id.as_uuid()) {
                key.revoked_at = Some(now);
            }
            Ok(true)
        })
    }

    async fn rotate(
        &self,
        old: ApiKeyId,
        until: DateTime<Utc>,
        replacement: &ApiKey,
        secret_hash: &str,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.db.write(|tables| {
            let now = replacement.created_at;
            let current = tables
                .api_keys
                .get(&old.as_uuid())
                .map(|(key, _)| key)
                .filter(|key| key.org_id == replacement.org_id && active(key, now))
                .ok_or(StoreError::NotFound)?;
            let ends = current.expires_at.map_or(until, |at| at.min(until));
            if tables.api_keys.contains_key(&replacement.id.as_uuid())
                || tables.api_keys.values().any(|(other, _)| other.public_id == replacement.public_id)
            {
                return Err(StoreError::Conflict(Conflict::Duplicate));
            }
            tables.append(audit);
            if let Some((key, _)) = tables.api_keys.get_mut(&old.as_uuid()) {
                key.expires_at = Some(ends);
            }
            insert_key(tables, replacement, secret_hash)
        })
    }

    async fn touch(&self, org_id: OrgId, id: ApiKeyId, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.db.write(|tables| {
            if let Some((key, _)) = tables.api_keys.get_mut(&id.as_uuid())
                && key.org_id == org_id
            {
                key.last_used_at = Some(now);
            }
            Ok(())
        })
    }

    async fn active_created_by(&self, user_id: UserId, now: DateTime<Utc>) -> Result<Vec<ApiKey>, StoreError> {
        self.db.read(|tables| {
            let mut keys: Vec<ApiKey> = tables
                .api_keys
                .values()
                .map(|(key, _)| key)
                .filter(|key| key.created_by == user_id && active(key, now))
                .cloned()
                .collect();
            keys.sort_by_key(|key| key.org_id);
            Ok(keys)
        })
    }

    async fn revoke_created_by(&self, user_id: UserId, now: DateTime<Utc>) -> Result<Vec<OrgId>, StoreError> {
        self.db.write(|tables| {
            let mut orgs = Vec::new();
            for (key, _) in tables.api_keys.values_mut() {
                if key.created_by == user_id && key.revoked_at.is_none() {
                    key.revoked_at = Some(now);
                    orgs.push(key.org_id);
                }
            }
            orgs.sort();
            orgs.dedup();
            Ok(orgs)
        })
    }
}
