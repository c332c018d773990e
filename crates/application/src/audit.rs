//! Reading and verifying an organization's audit log (`audit:read`). Entries are written by the
//! repositories, in the transaction of the change they record; nothing here edits or deletes.

use std::sync::Arc;

use tenantry_domain::audit::{AuditEntry, ChainReport, ChainVerifier};
use tenantry_domain::tenancy::Permission;
use tenantry_ports::{AuditFilter, AuditLog};

use crate::tenancy::{OrgAccess, TenancyError};

/// Entries read per round trip while verifying.
const VERIFY_PAGE: u32 = 500;

/// The audit-log use cases: reading (filtered, paged) and verifying the hash chain, both behind
/// `audit:read`, so a tenant can check for itself that its history was not altered.
pub struct AuditService {
    log: Arc<dyn AuditLog>,
}

impl AuditService {
    /// Over `log`; the service only reads, so it needs nothing else.
    pub fn new(log: Arc<dyn AuditLog>) -> Self {
        Self { log }
    }

    /// Matching entries, newest first (`audit:read`).
    ///
    /// # Errors
    /// `Forbidden`, `Invalid` (an action filter that is neither `a.b` nor `a.*`), `Dependency`.
    pub async fn list(
        &self,
        access: &OrgAccess,
        filter: &AuditFilter,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, TenancyError> {
        access.require(Permission::AuditRead)?;
        if let Some(action) = &filter.action
            && !valid_action_filter(action)
        {
            return Err(TenancyError::Invalid {
                field: "action",
                message: "must be an action such as `member.removed` or a family such as `member.*`".to_owned(),
            });
        }
        Ok(self.log.list(access.org_id, filter, limit).await?)
    }

    /// Re-computes the organization's whole chain (`audit:read`), up to the head read at the
    /// start, so entries appended meanwhile neither break nor lengthen the check.
    ///
    /// # Errors
    /// `Forbidden`, `Dependency`.
    #[tracing::instrument(name = "application.audit.verify", skip_all, fields(org_id = %access.org_id))]
    pub async fn verify(&self, access: &OrgAccess) -> Result<ChainReport, TenancyError> {
        access.require(Permission::AuditRead)?;
        let head = self.log.head(access.org_id).await?;
        let last = head.as_ref().map_or(i64::MAX, |head| head.seq);
        let mut verifier = ChainVerifier::default();
        let mut after = 0;
        'pages: loop {
            let page = self.log.chain(access.org_id, after, VERIFY_PAGE).await?;
            let full = page.len() == VERIFY_PAGE as usize;
            for entry in &page {
                if entry.seq > last {
                    break 'pages;
                }
                if !verifier.feed(entry) {
                    break 'pages;
                }
                after = entry.seq;
            }
            if !full {
                break;
            }
        }
        let report = verifier.finish(head.as_ref().map(|h| (h.seq, h.last_id, h.hash.as_str())));
        if !report.valid {
            tracing::warn!(target: "audit", org_id = %access.org_id, first_broken_id = ?report.first_broken_id, "audit chain verification failed");
        }
        Ok(report)
    }
}

fn valid_action_filter(action: &str) -> bool {
    let name = action.strip_suffix(".*").unwrap_or(action);
    (1..=64).contains(&name.len())
        && name.split('.').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
}

#[cfg(test)]
mod tests {
    use tenantry_adapter_memory::{SystemClock, UuidV7Generator};
    use tenantry_domain::audit::{AuditEvent, GENESIS_HASH, Origin};
    use tenantry_domain::tenancy::{BuiltinRole, Role};
    use tenantry_domain::{OrgId, SessionId, UserId};
    use tenantry_ports::{AuditHead, MockAuditLog};

    use super::*;
    use crate::auth::Principal;
    use crate::tenancy::Actor;

    fn access(role: BuiltinRole) -> OrgAccess {
        OrgAccess {
            org_id: OrgId::from_uuid(uuid::Uuid::now_v7()),
            actor: Actor::User(Principal {
                user_id: UserId::from_uuid(uuid::Uuid::now_v7()),
                session_id: SessionId::from_uuid(uuid::Uuid::now_v7()),
            }),
            role: Role::Builtin(role),
            origin: Origin::default(),
        }
    }

    fn chain(access: &OrgAccess, n: usize) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        for _ in 0..n {
            let event: AuditEvent =
                access.event((&UuidV7Generator, &SystemClock), "team.created", ("team", None), &serde_json::json!({}));
            let (seq, hash) = out.last().map_or((0, GENESIS_HASH.to_owned()), |e| (e.seq, e.hash.clone()));
            out.push(AuditEntry::link(event, seq, &hash));
        }
        out
    }

    fn log_of(entries: Vec<AuditEntry>, head_len: usize) -> MockAuditLog {
        let head =
            entries[..head_len].last().map(|e| AuditHead { seq: e.seq, last_id: e.event.id, hash: e.hash.clone() });
        let mut log = MockAuditLog::new();
        log.expect_head().returning(move |_| Ok(head.clone()));
        log.expect_chain().returning(move |_, after, limit| {
            Ok(entries.iter().filter(|e| e.seq > after).take(limit as usize).cloned().collect())
        });
        log
    }

    #[tokio::test]
    async fn members_and_viewers_cannot_read_the_log() {
        let mut log = MockAuditLog::new();
        log.expect_list().times(0);
        log.expect_head().times(0);
        let service = AuditService::new(Arc::new(log));
        for role in [BuiltinRole::Member, BuiltinRole::Viewer] {
            let result = service.list(&access(role), &AuditFilter::default(), 10).await;
            assert!(matches!(result, Err(TenancyError::Forbidden(Permission::AuditRead))), "{result:?}");
            let result = service.verify(&access(role)).await;
            assert!(matches!(result, Err(TenancyError::Forbidden(Permission::AuditRead))), "{result:?}");
        }
    }

    #[tokio::test]
    async fn verification_reads_a_long_log_in_pages() {
        let admin = access(BuiltinRole::Admin);
        let entries = chain(&admin, 1_234);
        let service = AuditService::new(Arc::new(log_of(entries, 1_234)));
        let report = service.verify(&admin).await.expect("verifies");
        assert!(report.valid);
        assert_eq!(report.entries_checked, 1_234);
    }

    #[tokio::test]
    async fn entries_appended_after_the_head_was_read_are_left_for_the_next_check() {
        let admin = access(BuiltinRole::Admin);
        let entries = chain(&admin, 10);
        let service = AuditService::new(Arc::new(log_of(entries, 7)));
        let report = service.verify(&admin).await.expect("verifies");
        assert!(report.valid, "{report:?}");
        assert_eq!(report.entries_checked, 7);
    }

    #[tokio::test]
    async fn a_tampered_entry_is_named() {
        let admin = access(BuiltinRole::Owner);
        let mut entries = chain(&admin, 600);
        entries[550].event.action = "team.deleted".into();
        let broken = entries[550].event.id;
        let service = AuditService::new(Arc::new(log_of(entries, 600)));
        let report = service.verify(&admin).await.expect("verifies");
        assert!(!report.valid);
        assert_eq!(report.first_broken_id, Some(broken));
        assert_eq!(report.entries_checked, 551);
    }

    #[tokio::test]
    async fn malformed_action_filters_are_refused() {
        let service = AuditService::new(Arc::new(MockAuditLog::new()));
        for bad in ["", "*", "member.", "Member.removed", "member..x", "a.b;drop"] {
            let filter = AuditFilter { action: Some(bad.into()), ..AuditFilter::default() };
            let result = service.list(&access(BuiltinRole::Owner), &filter, 10).await;
            assert!(matches!(result, Err(TenancyError::Invalid { field: "action", .. })), "{bad}: {result:?}");
        }
    }
}
