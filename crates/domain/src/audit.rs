//! The audit trail: what an audit entry says, and the per-org hash chain that makes an edit
//! behind the API's back detectable.
//!
//! Each entry's hash covers its canonical content and the previous entry's hash, so changing,
//! removing or re-ordering any stored entry breaks every hash after it. The chain is computed
//! here, purely, so the storage adapter that appends and the service that verifies agree by
//! construction.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{ApiKeyId, OrgId};

/// The `prev_hash` of an org's first entry: a fixed anchor, so the first entry is verified like
/// every other and a log cut from its start is detected too.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who performed an audited action: kept with the actor's id, because a key's actions must not
/// be mistaken for its creator's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActorKind {
    /// A signed-in user.
    User,
    /// An organization's API key.
    ApiKey,
}

impl ActorKind {
    /// The wire and storage name: stable, since stored entries and their hashes contain it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::ApiKey => "api_key",
        }
    }

    /// The kind stored as `raw`; `None` for any other value, which a reader must treat as
    /// tampered or unknown (the SQL adapter makes such an entry fail verification).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "user" => Some(Self::User),
            "api_key" => Some(Self::ApiKey),
            _ => None,
        }
    }
}

/// Where a request came from, recorded with every change it makes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// Client address (after trusted-proxy resolution).
    pub ip: Option<String>,
    /// `user-agent`, bounded.
    pub user_agent: Option<String>,
    /// The request id that also appears in logs and error bodies.
    pub request_id: Option<String>,
}

/// One audited change, as the application describes it; storage adds its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// Entry id (time-ordered).
    pub id: Uuid,
    /// The organization whose log it joins.
    pub org_id: OrgId,
    /// Dotted action name, such as `member.role_changed`.
    pub action: String,
    /// User or key.
    pub actor_type: ActorKind,
    /// The user's or the key's id.
    pub actor_id: Uuid,
    /// What kind of thing changed (`org`, `member`, `team`, …).
    pub target_type: String,
    /// Which one.
    pub target_id: Option<String>,
    /// Where the request came from.
    pub origin: Origin,
    /// When, truncated to microseconds so every database stores it exactly.
    pub created_at: DateTime<Utc>,
    /// A small JSON object with the change (for example `{"from":"member","to":"admin"}`),
    /// kept as the exact text that is hashed.
    pub data: String,
}

impl AuditEvent {
    /// An event at `at` (truncated to microseconds), with `data` serialised once for good.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: Uuid,
        org_id: OrgId,
        action: &str,
        actor: (ActorKind, Uuid),
        target: (&str, Option<String>),
        origin: Origin,
        at: DateTime<Utc>,
        data: &serde_json::Value,
    ) -> Self {
        Self {
            id,
            org_id,
            action: action.to_owned(),
            actor_type: actor.0,
            actor_id: actor.1,
            target_type: target.0.to_owned(),
            target_id: target.1,
            origin,
            created_at: at.trunc_subsecs(6),
            data: data.to_string(),
        }
    }
}

/// The audit trail of an account deletion. The application knows who deletes and from where;
/// only the store knows, inside its transaction, which orgs the account leaves and which API keys
/// die with it. So the application hands this over, and the store asks it for one entry per
/// change, all in the same transaction as the deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDeletion {
    user: Uuid,
    origin: Origin,
    /// The deletion's own id; each entry's id is derived from it.
    id: Uuid,
    at: DateTime<Utc>,
}

impl AccountDeletion {
    /// The deletion of `user`'s account, requested from `origin` at `at`; `id` is a fresh
    /// time-ordered id.
    pub fn new(user: Uuid, origin: Origin, id: Uuid, at: DateTime<Utc>) -> Self {
        Self { user, origin, id, at }
    }

    /// The account that is deleted: the actor of every entry the deletion writes (a user
    /// deletes their own account).
    pub const fn user(&self) -> Uuid {
        self.user
    }

    /// When: the time of every entry, and of the revocation of the account's keys.
    pub const fn at(&self) -> DateTime<Utc> {
        self.at
    }

    /// `member.removed` in `org`'s log: the account left with `role` because it was deleted.
    pub fn membership_ended(&self, org_id: OrgId, role: &str) -> AuditEvent {
        self.event(
            org_id,
            "member.removed",
            ("user", Some(self.user.to_string())),
            &serde_json::json!({"role": role, "left": true, "reason": "account_deleted"}),
        )
    }

    /// `api_key.revoked` in `org`'s log: a key the account created dies with it.
    pub fn key_revoked(&self, org_id: OrgId, key_id: ApiKeyId) -> AuditEvent {
        self.event(
            org_id,
            "api_key.revoked",
            ("api_key", Some(key_id.to_string())),
            &serde_json::json!({"reason": "creator_deleted"}),
        )
    }

    /// An entry whose id keeps the deletion id's timestamp (so entries sort with their time)
    /// and takes its remaining bits from a digest of the deletion id, the org and the target:
    /// distinct for every entry of one deletion, and the same if the store retries.
    fn event(
        &self,
        org_id: OrgId,
        action: &str,
        target: (&str, Option<String>),
        data: &serde_json::Value,
    ) -> AuditEvent {
        let digest = Sha256::new()
            .chain_update(self.id.as_bytes())
            .chain_update(org_id.as_uuid().as_bytes())
            .chain_update(action.as_bytes())
            .chain_update(target.1.as_deref().unwrap_or_default().as_bytes())
            .finalize();
        let mut bytes = *self.id.as_bytes();
        bytes[8..].copy_from_slice(&digest[..8]);
        // RFC 9562 variant bits, so the result is still a well-formed (version 7) UUID.
        bytes[8] = (bytes[8] & 0x3F) | 0x80;
        AuditEvent::new(
            Uuid::from_bytes(bytes),
            org_id,
            action,
            (ActorKind::User, self.user),
            target,
            self.origin.clone(),
            self.at,
            data,
        )
    }
}

/// A stored entry: the event, its position in the org's log and its link in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// What happened.
    pub event: AuditEvent,
    /// 1 for the org's first entry, then +1 per entry.
    pub seq: i64,
    /// The previous entry's `hash` ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// SHA-256 (hex) of the canonical content and `prev_hash`.
    pub hash: String,
}

impl AuditEntry {
    /// Links `event` after an entry with `prev_seq` and `prev_hash` (0 and [`GENESIS_HASH`] for
    /// an empty log).
    pub fn link(event: AuditEvent, prev_seq: i64, prev_hash: &str) -> Self {
        let mut entry = Self { event, seq: prev_seq + 1, prev_hash: prev_hash.to_owned(), hash: String::new() };
        entry.hash = entry.computed_hash();
        entry
    }

    /// The hash this entry's content calls for, whatever `hash` says.
    pub fn computed_hash(&self) -> String {
        let e = &self.event;
        // A JSON array is an unambiguous, stable encoding: every field is delimited and
        // escaped, so no two different entries produce the same bytes.
        let canonical = serde_json::json!([
            1,
            self.seq,
            e.id.to_string(),
            e.org_id.to_string(),
            e.action,
            e.actor_type.as_str(),
            e.actor_id.to_string(),
            e.target_type,
            e.target_id,
            e.origin.ip,
            e.origin.user_agent,
            e.origin.request_id,
            e.created_at.to_rfc3339_opts(SecondsFormat::Micros, true),
            e.data,
            self.prev_hash,
        ]);
        hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
    }
}

/// The outcome of checking an org's chain: enough for a tenant to see whether its history is
/// intact and, if not, where to start looking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Whether every entry is intact and linked.
    pub valid: bool,
    /// How many entries were read.
    pub entries_checked: u64,
    /// The first entry that does not hash or link as it should (or, when entries were cut
    /// from the end, the id the log's head says came last).
    pub first_broken_id: Option<Uuid>,
}

/// Checks a chain entry by entry in `seq` order, so a log of any length is verified in pages
/// with constant memory.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    prev_seq: i64,
    prev_hash: String,
    checked: u64,
    broken: Option<Uuid>,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self { prev_seq: 0, prev_hash: GENESIS_HASH.to_owned(), checked: 0, broken: None }
    }
}

impl ChainVerifier {
    /// Feeds the next entry; returns `false` once the chain is known broken (stop reading).
    pub fn feed(&mut self, entry: &AuditEntry) -> bool {
        if self.broken.is_some() {
            return false;
        }
        self.checked += 1;
        let intact =
            entry.seq == self.prev_seq + 1 && entry.prev_hash == self.prev_hash && entry.hash == entry.computed_hash();
        if !intact {
            self.broken = Some(entry.event.id);
            return false;
        }
        self.prev_seq = entry.seq;
        self.prev_hash.clone_from(&entry.hash);
        true
    }

    /// The verdict, given what the log's head (kept apart from the entries) says the last
    /// entry is: `(seq, id, hash)`, or `None` for an org that never logged anything.
    pub fn finish(self, head: Option<(i64, Uuid, &str)>) -> ChainReport {
        let broken = self.broken.or_else(|| match head {
            None if self.checked == 0 => None,
            // Entries exist without a head: the head row was removed.
            None => Some(Uuid::nil()),
            Some((seq, id, hash)) => (seq != self.prev_seq || hash != self.prev_hash).then_some(id),
        });
        ChainReport { valid: broken.is_none(), entries_checked: self.checked, first_broken_id: broken }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u128) -> AuditEvent {
        AuditEvent::new(
            Uuid::from_u128(n),
            OrgId::from_uuid(Uuid::from_u128(7)),
            "team.created",
            (ActorKind::User, Uuid::from_u128(9)),
            ("team", Some(format!("t{n}"))),
            Origin { ip: Some("192.0.2.1".into()), user_agent: None, request_id: Some("r".into()) },
            DateTime::from_timestamp(1_700_000_000, 123_456_789).expect("valid time"),
            &serde_json::json!({"name": format!("team {n}")}),
        )
    }

    #[test]
    fn an_account_deletion_gives_each_entry_its_own_time_ordered_id() {
        let deletion_id = Uuid::now_v7();
        let deletion = AccountDeletion::new(Uuid::from_u128(9), Origin::default(), deletion_id, Utc::now());
        let (a, b) = (OrgId::from_uuid(Uuid::from_u128(1)), OrgId::from_uuid(Uuid::from_u128(2)));
        let key = ApiKeyId::from_uuid(Uuid::from_u128(3));
        let events = [
            deletion.membership_ended(a, "owner"),
            deletion.membership_ended(b, "member"),
            deletion.key_revoked(a, key),
            deletion.key_revoked(b, key),
        ];
        let ids: std::collections::HashSet<Uuid> = events.iter().map(|e| e.id).collect();
        assert_eq!(ids.len(), events.len(), "one id per entry");
        for event in &events {
            assert_eq!(event.id.get_version_num(), 7);
            assert_eq!(event.id.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(event.id.as_bytes()[..8], deletion_id.as_bytes()[..8], "same timestamp as the deletion");
            assert_eq!((event.actor_type, event.actor_id), (ActorKind::User, Uuid::from_u128(9)));
        }
        assert_eq!(events[0], deletion.membership_ended(a, "owner"), "a retry derives the same entry");
        assert_eq!(events[0].action, "member.removed");
        assert_eq!(events[0].data, r#"{"left":true,"reason":"account_deleted","role":"owner"}"#);
        assert_eq!(events[2].action, "api_key.revoked");
        assert_eq!(events[2].target_id, Some(key.to_string()));
    }

    fn chain(n: u128) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for i in 1..=n {
            let (seq, hash) = out.last().map_or((0, GENESIS_HASH.to_owned()), |e| (e.seq, e.hash.clone()));
            out.push(AuditEntry::link(event(i), seq, &hash));
        }
        out
    }

    fn verify(entries: &[AuditEntry]) -> ChainReport {
        let mut verifier = ChainVerifier::default();
        for entry in entries {
            if !verifier.feed(entry) {
                break;
            }
        }
        let head = entries.last().map(|e| (e.seq, e.event.id, e.hash.as_str()));
        verifier.finish(head)
    }

    #[test]
    fn time_is_kept_to_the_microsecond() {
        assert_eq!(event(1).created_at.timestamp_subsec_nanos(), 123_456_000);
    }

    #[test]
    fn an_intact_chain_verifies() {
        let report = verify(&chain(5));
        assert_eq!(report, ChainReport { valid: true, entries_checked: 5, first_broken_id: None });
        assert_eq!(verify(&[]), ChainReport { valid: true, entries_checked: 0, first_broken_id: None });
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        type Edit = fn(&mut AuditEntry);
        let edits: [(&str, Edit); 12] = [
            ("action", |e| e.event.action.push('x')),
            ("actor_type", |e| e.event.actor_type = ActorKind::ApiKey),
            ("actor_id", |e| e.event.actor_id = Uuid::from_u128(10)),
            ("target_type", |e| e.event.target_type.push('x')),
            ("target_id", |e| e.event.target_id = None),
            ("ip", |e| e.event.origin.ip = Some("192.0.2.2".into())),
            ("user_agent", |e| e.event.origin.user_agent = Some("x".into())),
            ("request_id", |e| e.event.origin.request_id = None),
            ("created_at", |e| e.event.created_at += chrono::Duration::microseconds(1)),
            ("data", |e| e.event.data = "{}".into()),
            ("org_id", |e| e.event.org_id = OrgId::from_uuid(Uuid::from_u128(8))),
            ("id", |e| e.event.id = Uuid::from_u128(99)),
        ];
        for (field, edit) in edits {
            let mut entries = chain(4);
            let target = entries[1].event.id;
            edit(&mut entries[1]);
            let report = verify(&entries);
            assert!(!report.valid, "an edit of {field} went unnoticed");
            let expected = if field == "id" { Uuid::from_u128(99) } else { target };
            assert_eq!(report.first_broken_id, Some(expected), "{field}");
            assert_eq!(report.entries_checked, 2, "{field}");
        }
    }

    #[test]
    fn a_removed_or_reordered_entry_is_found() {
        let mut removed = chain(4);
        removed.remove(1);
        assert_eq!(verify(&removed).first_broken_id, Some(Uuid::from_u128(3)));

        let mut swapped = chain(4);
        swapped.swap(1, 2);
        assert_eq!(verify(&swapped).first_broken_id, Some(Uuid::from_u128(3)));
    }

    #[test]
    fn a_rehashed_forgery_still_breaks_the_link_to_the_next_entry() {
        let mut entries = chain(3);
        entries[0].event.data = r#"{"name":"forged"}"#.into();
        entries[0].hash = entries[0].computed_hash();
        assert_eq!(verify(&entries).first_broken_id, Some(Uuid::from_u128(2)));
    }

    #[test]
    fn cutting_entries_off_the_end_is_caught_by_the_head() {
        let entries = chain(4);
        let mut verifier = ChainVerifier::default();
        for entry in &entries[..2] {
            verifier.feed(entry);
        }
        let last = &entries[3];
        let report = verifier.finish(Some((last.seq, last.event.id, &last.hash)));
        assert_eq!(report.first_broken_id, Some(Uuid::from_u128(4)));
        assert!(!report.valid);

        let mut headless = ChainVerifier::default();
        headless.feed(&entries[0]);
        assert!(!headless.finish(None).valid);
    }
}
