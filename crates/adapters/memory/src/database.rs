//! The in-memory database every in-memory repository is a view over: one set of tables behind
//! one mutex, so a change, its audit entry and the webhook event it emits commit together, as
//! they do in one SQL transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tenantry_domain::audit::{AuditEntry, AuditEvent, GENESIS_HASH};
use tenantry_domain::identity::{Session, TokenPurpose, User};
use tenantry_domain::quota::Limits;
use tenantry_domain::{OrgId, UserId};
use tenantry_ports::{ApiKey, Attempt, CustomRole, Delivery, FileRecord, Invitation, Org, StoreError, WebhookEndpoint};
use uuid::Uuid;

/// The action of a test delivery: queued for one endpoint by `enqueue_test`, never fanned out.
pub(crate) const TEST_EVENT: &str = "webhook.test";

/// The built-in role the last-owner rule protects.
pub(crate) const OWNER: &str = "owner";

/// A user row: the account and its second-factor columns.
#[derive(Debug, Clone)]
pub(crate) struct UserRow {
    pub(crate) user: User,
    pub(crate) totp_secret: Option<String>,
    pub(crate) totp_pending_secret: Option<String>,
    pub(crate) totp_enabled_at: Option<DateTime<Utc>>,
    pub(crate) totp_last_step: Option<i64>,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshRow {
    pub(crate) session_id: Uuid,
    pub(crate) used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub(crate) struct TokenRow {
    pub(crate) user_id: Uuid,
    pub(crate) purpose: TokenPurpose,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) used_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub(crate) struct BackupCodeRow {
    pub(crate) code_hash: String,
    pub(crate) used_at: Option<DateTime<Utc>>,
}

/// An organization and its plan columns.
#[derive(Debug, Clone)]
pub(crate) struct OrgRow {
    pub(crate) org: Org,
    pub(crate) overrides: Option<Limits>,
    pub(crate) plan_started_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub(crate) struct MembershipRow {
    pub(crate) role: String,
    pub(crate) created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct TeamRow {
    pub(crate) org_id: Uuid,
    pub(crate) name: String,
    pub(crate) description: Option<String>,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub(crate) struct TeamMemberRow {
    pub(crate) org_id: Uuid,
    pub(crate) created_at: DateTime<Utc>,
}

/// One organization's audit log and its head.
#[derive(Debug, Clone, Default)]
pub(crate) struct OrgLog {
    pub(crate) entries: Vec<AuditEntry>,
}

impl OrgLog {
    pub(crate) fn head(&self) -> (i64, &str) {
        self.entries.last().map_or((0, GENESIS_HASH), |last| (last.seq, last.hash.as_str()))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct EndpointRow {
    pub(crate) endpoint: WebhookEndpoint,
    pub(crate) secret: String,
    pub(crate) previous_secret: Option<String>,
    pub(crate) previous_until: Option<DateTime<Utc>>,
}

impl EndpointRow {
    /// The sealed secrets that sign at `now`: the current one, then the previous one while its
    /// grace period lasts.
    pub(crate) fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut secrets = vec![self.secret.clone()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_until)
            && now < until
        {
            secrets.push(previous.clone());
        }
        secrets
    }
}

#[derive(Debug, Clone)]
pub(crate) struct EventRow {
    pub(crate) org_id: Uuid,
    pub(crate) event_type: String,
    pub(crate) data: String,
    pub(crate) created_at: DateTime<Utc>,
    pub(crate) fanned_out: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct DeliveryRow {
    pub(crate) delivery: Delivery,
    pub(crate) claimed_until: Option<DateTime<Utc>>,
    pub(crate) finished_at: Option<DateTime<Utc>>,
}

/// Every table. Maps keyed by UUIDv7 iterate in id order, which is creation order: the keyset
/// the SQL adapter pages by.
#[derive(Debug, Default)]
pub(crate) struct Tables {
    pub(crate) users: BTreeMap<Uuid, UserRow>,
    pub(crate) emails: HashMap<String, Uuid>,
    pub(crate) sessions: BTreeMap<Uuid, Session>,
    pub(crate) refresh_tokens: HashMap<String, RefreshRow>,
    pub(crate) one_time_tokens: HashMap<String, TokenRow>,
    pub(crate) backup_codes: HashMap<Uuid, Vec<BackupCodeRow>>,
    pub(crate) orgs: BTreeMap<Uuid, OrgRow>,
    /// Keyed by (org, user).
    pub(crate) memberships: BTreeMap<(Uuid, Uuid), MembershipRow>,
    /// With their token hashes.
    pub(crate) invitations: BTreeMap<Uuid, (Invitation, String)>,
    pub(crate) roles: BTreeMap<Uuid, CustomRole>,
    pub(crate) teams: BTreeMap<Uuid, TeamRow>,
    /// Keyed by (team, user).
    pub(crate) team_members: BTreeMap<(Uuid, Uuid), TeamMemberRow>,
    /// With their secret hashes.
    pub(crate) api_keys: BTreeMap<Uuid, (ApiKey, String)>,
    pub(crate) audit: HashMap<Uuid, OrgLog>,
    /// (org, quota, period, mark).
    pub(crate) quota_marks: BTreeSet<(Uuid, String, String, String)>,
    pub(crate) endpoints: BTreeMap<Uuid, EndpointRow>,
    pub(crate) events: BTreeMap<Uuid, EventRow>,
    pub(crate) deliveries: BTreeMap<Uuid, DeliveryRow>,
    /// Keyed by (delivery, attempt number).
    pub(crate) attempts: BTreeMap<(Uuid, u32), Attempt>,
    pub(crate) files: BTreeMap<Uuid, FileRecord>,
    /// The mail outbox (ADR 0018): written by the changes that cause mail, in their critical
    /// section.
    pub(crate) mail: BTreeMap<tenantry_domain::MailId, crate::mail_outbox::Row>,
}

impl Tables {
    /// Queues `mails` with the change being written; a reused id refuses the whole batch
    /// before anything is written. Call it after the change's own checks, so a refused change
    /// queues nothing.
    pub(crate) fn queue_mail(&mut self, mails: &[tenantry_ports::QueuedMail]) -> Result<(), StoreError> {
        if mails.iter().any(|mail| self.mail.contains_key(&mail.id)) {
            return Err(StoreError::Conflict(tenantry_ports::Conflict::Duplicate));
        }
        for mail in mails {
            self.mail.insert(mail.id, crate::mail_outbox::Row::queued(mail));
        }
        Ok(())
    }

    /// Appends `event` to its organization's chain, exactly as the SQL adapter links it (so
    /// `AuditService::verify` checks an in-memory log the same way), and queues it in the
    /// outbox when it is a catalogued event of an organization that exists.
    pub(crate) fn append(&mut self, event: &AuditEvent) {
        let log = self.audit.entry(event.org_id.as_uuid()).or_default();
        let (seq, hash) = log.head();
        let entry = AuditEntry::link(event.clone(), seq, hash);
        log.entries.push(entry);
        self.outbox(event);
    }

    /// The transactional outbox: an event exists exactly when the change it records does.
    /// `webhook.test` is queued for one endpoint by `enqueue_test` instead; an organization
    /// that does not exist has no endpoint, so its events are not kept.
    fn outbox(&mut self, event: &AuditEvent) {
        if event.action == TEST_EVENT || tenantry_domain::events::event_type(&event.action).is_none() {
            return;
        }
        if !self.orgs.contains_key(&event.org_id.as_uuid()) {
            return;
        }
        self.events.insert(
            event.id,
            EventRow {
                org_id: event.org_id.as_uuid(),
                event_type: event.action.clone(),
                data: event.data.clone(),
                created_at: event.created_at,
                fanned_out: false,
            },
        );
    }

    pub(crate) fn org_exists(&self, org_id: OrgId) -> bool {
        self.orgs.contains_key(&org_id.as_uuid())
    }

    pub(crate) fn user_exists(&self, user_id: UserId) -> bool {
        self.users.contains_key(&user_id.as_uuid())
    }

    /// Owners of `org` now.
    pub(crate) fn owners(&self, org: Uuid) -> usize {
        self.memberships_of(org).filter(|(_, row)| row.role == OWNER).count()
    }

    /// The memberships of `org`, by user id.
    pub(crate) fn memberships_of(&self, org: Uuid) -> impl Iterator<Item = (Uuid, &MembershipRow)> {
        self.memberships.range((org, Uuid::nil())..=(org, Uuid::max())).map(|((_, user), row)| (*user, row))
    }

    /// Members and pending invitations of `org` at `now`: what the seat limit counts.
    pub(crate) fn seats(&self, org: Uuid, now: DateTime<Utc>) -> (u64, u64) {
        let members = self.memberships_of(org).count();
        let pending = self
            .invitations
            .values()
            .filter(|(invitation, _)| invitation.org_id.as_uuid() == org && invitation.is_pending(now))
            .count();
        (count(members), count(pending))
    }

    /// Webhook endpoints of `org`.
    pub(crate) fn endpoint_count(&self, org: Uuid) -> u64 {
        count(self.endpoints.values().filter(|row| row.endpoint.org_id.as_uuid() == org).count())
    }

    /// Removes a delivery with its attempts.
    pub(crate) fn drop_delivery(&mut self, id: Uuid) {
        self.deliveries.remove(&id);
        self.attempts.retain(|(delivery, _), _| *delivery != id);
    }

    /// Removes a user's sessions and their refresh tokens; returns the sessions' ids.
    pub(crate) fn drop_sessions_of(&mut self, user: Uuid) -> Vec<Uuid> {
        let ids: Vec<Uuid> =
            self.sessions.iter().filter(|(_, session)| session.user_id.as_uuid() == user).map(|(id, _)| *id).collect();
        for id in &ids {
            self.sessions.remove(id);
        }
        self.refresh_tokens.retain(|_, row| !ids.contains(&row.session_id));
        ids
    }

    /// Everything `org` owns but its audit log (what the foreign keys cascade in SQL).
    pub(crate) fn drop_org(&mut self, org: Uuid) {
        self.orgs.remove(&org);
        self.memberships.retain(|(owner, _), _| *owner != org);
        self.invitations.retain(|_, (invitation, _)| invitation.org_id.as_uuid() != org);
        self.roles.retain(|_, role| role.org_id.as_uuid() != org);
        self.teams.retain(|_, team| team.org_id != org);
        self.team_members.retain(|_, member| member.org_id != org);
        self.api_keys.retain(|_, (key, _)| key.org_id.as_uuid() != org);
        self.quota_marks.retain(|(owner, ..)| *owner != org);
        self.endpoints.retain(|_, row| row.endpoint.org_id.as_uuid() != org);
        self.events.retain(|_, event| event.org_id != org);
        let gone: Vec<Uuid> =
            self.deliveries.iter().filter(|(_, row)| row.delivery.org_id.as_uuid() == org).map(|(id, _)| *id).collect();
        for id in gone {
            self.drop_delivery(id);
        }
        self.files.retain(|_, file| file.org_id.as_uuid() != org);
    }
}

pub(crate) fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// What a foreign key refuses in SQL: a row naming an organization or user that does not
/// exist. No caller branches on it, as none does on the driver's error.
pub(crate) fn missing(what: &str) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!("no such {what} (a foreign key)"))
}

/// One process's database, in memory: the tables every in-memory repository reads and writes.
///
/// Cloning is cheap and shares the tables, so build one per "database" and hand clones to the
/// repositories (`InMemoryUserRepository::new(db.clone())`, …). Every repository method runs
/// as one critical section over all tables (a `std` mutex, never held across an `.await`), so
/// a change, the audit entry it takes and the webhook event that entry emits are written
/// together or not at all, and the rules SQL checks inside a transaction (the last owner, the
/// seat and endpoint limits) cannot be raced. Nothing survives the process: this is for
/// tests, demos and services that embed Tenantry without a database.
#[derive(Clone, Default)]
pub struct MemoryDatabase {
    tables: Arc<Mutex<Tables>>,
}

impl MemoryDatabase {
    /// An empty database.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `change` as one transaction: it sees every table and nothing else runs meanwhile.
    /// A change checks everything it can refuse before it writes anything, so returning an
    /// error leaves the tables as they were, like a rollback.
    ///
    /// A panic inside a change poisons the mutex; the tables may then be half-written, so every
    /// later call fails with `Unexpected` instead of reading them.
    pub(crate) fn write<T>(&self, change: impl FnOnce(&mut Tables) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut tables = self
            .tables
            .lock()
            .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("the in-memory database was poisoned by a panic")))?;
        change(&mut tables)
    }

    /// Runs `query` over a consistent view of the tables.
    pub(crate) fn read<T>(&self, query: impl FnOnce(&Tables) -> Result<T, StoreError>) -> Result<T, StoreError> {
        self.write(|tables| query(tables))
    }
}

impl std::fmt::Debug for MemoryDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryDatabase").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use tenantry_domain::audit::{ActorKind, Origin};
    use tenantry_domain::{Email, Slug};
    use tenantry_ports::{AuditLog, Conflict, DeliveryQueue, NewUser, OrgRepository, UserRepository};

    use super::*;
    use crate::{InMemoryAuditLog, InMemoryDeliveryQueue, InMemoryOrgRepository, InMemoryUserRepository};

    fn event(org: OrgId, action: &str) -> AuditEvent {
        AuditEvent::new(
            Uuid::now_v7(),
            org,
            action,
            (ActorKind::User, Uuid::now_v7()),
            ("member", None),
            Origin::default(),
            Utc::now(),
            &serde_json::json!({}),
        )
    }

    async fn org_with_owner(db: &MemoryDatabase) -> (OrgId, UserId) {
        let owner = UserId::from_uuid(Uuid::now_v7());
        let new = NewUser {
            id: owner,
            email: Email::parse(&format!("{}@example.com", owner.as_uuid().simple())).expect("an address"),
            display_name: None,
            password_hash: "hash".to_owned(),
            is_admin: false,
            email_verified_at: None,
            created_at: Utc::now(),
        };
        InMemoryUserRepository::new(db.clone()).create(&new).await.expect("create the owner");
        let org = Org {
            id: OrgId::from_uuid(Uuid::now_v7()),
            name: "Acme".to_owned(),
            slug: Slug::parse(&format!("acme-{}", &owner.as_uuid().simple().to_string()[20..])).expect("a slug"),
            plan: "free".to_owned(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        };
        InMemoryOrgRepository::new(db.clone())
            .create_with_owner(&org, owner, &event(org.id, "org.created"))
            .await
            .expect("create the org");
        (org.id, owner)
    }

    fn queued(db: &MemoryDatabase) -> usize {
        db.read(|tables| Ok(tables.events.len())).expect("read the outbox")
    }

    #[tokio::test]
    async fn a_refused_change_writes_neither_its_entry_nor_its_event() {
        let db = MemoryDatabase::new();
        let (org, owner) = org_with_owner(&db).await;
        let audit = InMemoryAuditLog::new(db.clone());
        let before = audit.head(org).await.expect("head");
        let refused =
            InMemoryOrgRepository::new(db.clone()).remove_member(org, owner, &event(org, "member.removed")).await;
        assert!(matches!(refused, Err(StoreError::Conflict(Conflict::LastOwner))), "{refused:?}");
        assert_eq!(audit.head(org).await.expect("head"), before, "no entry for a refused change");
        assert_eq!(queued(&db), 0, "no event for a refused change");
    }

    #[tokio::test]
    async fn creating_an_org_is_no_event_and_deleting_it_keeps_only_its_log() {
        let db = MemoryDatabase::new();
        let (org, _) = org_with_owner(&db).await;
        assert_eq!(queued(&db), 0, "the org had no endpoint when it was created, as in SQL");
        let orgs = InMemoryOrgRepository::new(db.clone());
        orgs.update(org, "Acme 2", &Slug::parse("acme-two").expect("a slug"), Utc::now(), &event(org, "org.updated"))
            .await
            .expect("rename");
        assert_eq!(queued(&db), 1, "a change of an existing org is queued with its entry");
        orgs.delete(org, &event(org, "org.deleted")).await.expect("delete");
        assert_eq!(queued(&db), 0, "the org's events go with it");
        assert_eq!(InMemoryDeliveryQueue::new(db.clone()).fan_out(Utc::now(), 10).await.expect("fan out"), 0);
        let head = InMemoryAuditLog::new(db.clone()).head(org).await.expect("head").expect("the log is kept");
        assert_eq!(head.seq, 3, "created, updated, deleted");
        assert!(db.read(|tables| Ok(tables.memberships_of(org.as_uuid()).count() == 0)).expect("read"));
    }

    #[tokio::test]
    async fn a_panic_inside_a_change_fails_every_later_call_instead_of_reading_half_a_write() {
        let db = MemoryDatabase::new();
        let poisoner = db.clone();
        let panicked = std::thread::spawn(move || {
            let _ = poisoner.write::<()>(|_| panic!("a bug in the middle of a change"));
        })
        .join();
        assert!(panicked.is_err(), "the change panicked");
        let read = InMemoryUserRepository::new(db).by_id(UserId::from_uuid(Uuid::now_v7())).await;
        assert!(matches!(read, Err(StoreError::Unexpected(_))), "{read:?}");
    }
}
