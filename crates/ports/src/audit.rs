//! The audit log's read side and stand-alone appends. Changes made through the tenant
//! repositories take their [`AuditEvent`] as an argument and append it in the same
//! transaction as the change, so a change is never without its entry and vice versa.

use chrono::{DateTime, Utc};
use tenantry_domain::OrgId;
use tenantry_domain::audit::{AuditEntry, AuditEvent};

use crate::StoreError;

/// Which entries to list: every field narrows the result, and `before_seq` pages through it
/// with a stable keyset cursor (entries are never updated, so `seq` never moves).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// An exact action (`member.removed`) or a family (`member.*`).
    pub action: Option<String>,
    /// Only entries by this user or key.
    pub actor_id: Option<uuid::Uuid>,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
    /// Only entries older than this `seq` (the cursor of the previous page).
    pub before_seq: Option<i64>,
}

/// What the log's head says the last entry is; kept apart from the entries so cutting entries
/// off the end is detected too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditHead {
    /// The last entry's `seq`: a verifier that reads fewer entries knows some were cut off.
    pub seq: i64,
    /// Its id, reported as the first broken entry when the chain stops short of it.
    pub last_id: uuid::Uuid,
    /// Its hash, which the last entry read must carry.
    pub hash: String,
}

/// An organization's audit log: append-only and hash-chained, so a tenant can see who changed
/// what and verify that no entry was altered or removed.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait AuditLog: Send + Sync {
    /// Appends one event on its own (for changes that write nothing else through SQL).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Matching entries, newest first, at most `limit`.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn list(&self, org_id: OrgId, filter: &AuditFilter, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;

    /// Entries with `seq > after_seq`, oldest first, at most `limit`: the order the hash chain
    /// is built in, so a verifier can recompute it page by page.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn chain(&self, org_id: OrgId, after_seq: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;

    /// The log's head, `None` before the first entry.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn head(&self, org_id: OrgId) -> Result<Option<AuditHead>, StoreError>;
}
