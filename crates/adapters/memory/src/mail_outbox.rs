//! [`MailOutbox`] in process: a view over the [`MemoryDatabase`]'s mail table, which the
//! in-memory repositories write in the same critical section as the change that causes the
//! mail (as the SQL adapter does in one transaction). Nothing is durable here: it is for tests
//! and for embedders without a database.

use chrono::{DateTime, Utc};
use tenantry_domain::MailId;
use tenantry_ports::{ClaimedMail, MailOutbox, QueuedMail, StoreError};

use crate::MemoryDatabase;

/// One mail and its state.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    kind: String,
    sealed: Option<String>,
    status: Status,
    attempts: u32,
    next_attempt_at: Option<DateTime<Utc>>,
    claimed_until: Option<DateTime<Utc>>,
    claim: Option<uuid::Uuid>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl Row {
    /// A mail just queued: pending, due at once.
    pub(crate) fn queued(mail: &QueuedMail) -> Self {
        Self {
            kind: mail.kind.clone(),
            sealed: Some(mail.sealed.clone()),
            status: Status::Pending,
            attempts: 0,
            next_attempt_at: Some(mail.created_at),
            claimed_until: None,
            claim: None,
            last_error: None,
            created_at: mail.created_at,
            finished_at: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Pending,
    Sent,
    Dead,
}

/// What an in-memory outbox holds about one mail, for tests that look inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailRow {
    /// `pending`, `sent` or `dead`.
    pub status: &'static str,
    /// Attempts made.
    pub attempts: u32,
    /// The envelope, while the mail waits.
    pub sealed: Option<String>,
    /// The last failure.
    pub last_error: Option<String>,
}

/// [`MailOutbox`] over a [`MemoryDatabase`]: every operation is one critical section, as the
/// contract asks.
#[derive(Debug, Clone, Default)]
pub struct InMemoryMailOutbox {
    db: MemoryDatabase,
}

impl InMemoryMailOutbox {
    /// The outbox of `db`, where its repositories queue mail.
    #[must_use]
    pub fn new(db: MemoryDatabase) -> Self {
        Self { db }
    }

    /// The state of mail `id`, if it is held.
    pub fn row(&self, id: MailId) -> Option<MailRow> {
        let row = self.db.read(|tables| Ok(tables.mail.get(&id).cloned())).ok()??;
        Some(MailRow {
            status: match row.status {
                Status::Pending => "pending",
                Status::Sent => "sent",
                Status::Dead => "dead",
            },
            attempts: row.attempts,
            sealed: row.sealed,
            last_error: row.last_error,
        })
    }

    /// Applies `change` to the claimed mail while the claim is still its; counts the attempt.
    fn settle(&self, mail: &ClaimedMail, change: impl FnOnce(&mut Row)) -> Result<bool, StoreError> {
        self.db.write(|tables| {
            Ok(match tables.mail.get_mut(&mail.id) {
                Some(row) if row.status == Status::Pending && row.claim == Some(mail.claim) => {
                    row.attempts += 1;
                    row.claimed_until = None;
                    row.claim = None;
                    change(row);
                    true
                }
                _ => false,
            })
        })
    }
}

#[async_trait::async_trait]
impl MailOutbox for InMemoryMailOutbox {
    async fn enqueue(&self, mails: &[QueuedMail]) -> Result<(), StoreError> {
        self.db.write(|tables| tables.queue_mail(mails))
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        claim: uuid::Uuid,
    ) -> Result<Vec<ClaimedMail>, StoreError> {
        self.db.write(|tables| {
            let rows = &mut tables.mail;
            let mut due: Vec<(DateTime<Utc>, MailId)> = rows
                .iter()
                .filter(|(_, row)| {
                    row.status == Status::Pending
                        && row.next_attempt_at.is_some_and(|at| at <= now)
                        && row.claimed_until.is_none_or(|until| until < now)
                })
                .filter_map(|(id, row)| Some((row.next_attempt_at?, *id)))
                .collect();
            due.sort();
            due.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            let mut claimed = Vec::with_capacity(due.len());
            for (_, id) in due {
                let Some(row) = rows.get_mut(&id) else { continue };
                let Some(sealed) = row.sealed.clone() else {
                    return Err(StoreError::Unexpected(anyhow::anyhow!("pending mail without its envelope")));
                };
                row.claimed_until = Some(lease_until);
                row.claim = Some(claim);
                claimed.push(ClaimedMail {
                    id,
                    kind: row.kind.clone(),
                    sealed,
                    attempts: row.attempts,
                    created_at: row.created_at,
                    claim,
                });
            }
            Ok(claimed)
        })
    }

    async fn sent(&self, mail: &ClaimedMail, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.settle(mail, |row| {
            row.status = Status::Sent;
            row.sealed = None;
            row.next_attempt_at = None;
            row.last_error = None;
            row.finished_at = Some(now);
        })
    }

    async fn retry(&self, mail: &ClaimedMail, next_attempt_at: DateTime<Utc>, error: &str) -> Result<bool, StoreError> {
        self.settle(mail, |row| {
            row.next_attempt_at = Some(next_attempt_at);
            row.last_error = Some(error.to_owned());
        })
    }

    async fn dead(&self, mail: &ClaimedMail, now: DateTime<Utc>, error: &str) -> Result<bool, StoreError> {
        self.settle(mail, |row| {
            row.status = Status::Dead;
            row.sealed = None;
            row.next_attempt_at = None;
            row.last_error = Some(error.to_owned());
            row.finished_at = Some(now);
        })
    }

    async fn depth(&self) -> Result<u64, StoreError> {
        self.db.read(|tables| Ok(tables.mail.values().filter(|row| row.status == Status::Pending).count() as u64))
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        self.db.read(|tables| {
            Ok(tables
                .mail
                .values()
                .filter(|row| row.status == Status::Pending && row.claimed_until.is_none())
                .filter_map(|row| row.next_attempt_at)
                .min())
        })
    }

    async fn prune(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        self.db.write(|tables| {
            let old: Vec<MailId> = tables
                .mail
                .iter()
                .filter(|(_, row)| row.finished_at.is_some_and(|at| at < before))
                .map(|(id, _)| *id)
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .collect();
            for id in &old {
                tables.mail.remove(id);
            }
            Ok(old.len() as u64)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn passes_the_mail_outbox_contract() {
        tenantry_testkit::mail_outbox::run_contract(Arc::new(InMemoryMailOutbox::new(MemoryDatabase::new()))).await;
    }
}
