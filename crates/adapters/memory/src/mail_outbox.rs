//! [`MailOutbox`] in process: for tests of the mail worker and for embedders without a
//! database. It keeps what it is given until the process ends: nothing is durable here.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use tenantry_domain::MailId;
use tenantry_ports::{ClaimedMail, Conflict, MailOutbox, QueuedMail, StoreError};

/// One mail and its state.
#[derive(Debug, Clone)]
struct Row {
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
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

/// [`MailOutbox`] over a map behind a mutex: every operation is atomic, as the contract asks.
#[derive(Debug, Default)]
pub struct InMemoryMailOutbox {
    rows: Mutex<BTreeMap<MailId, Row>>,
}

impl InMemoryMailOutbox {
    /// An empty outbox.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of mail `id`, if it is held.
    pub fn row(&self, id: MailId) -> Option<MailRow> {
        self.lock().get(&id).map(|row| MailRow {
            status: match row.status {
                Status::Pending => "pending",
                Status::Sent => "sent",
                Status::Dead => "dead",
            },
            attempts: row.attempts,
            sealed: row.sealed.clone(),
            last_error: row.last_error.clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<MailId, Row>> {
        self.rows.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Applies `change` to the claimed mail while the claim is still its; counts the attempt.
    fn settle(&self, mail: &ClaimedMail, change: impl FnOnce(&mut Row)) -> bool {
        let mut rows = self.lock();
        match rows.get_mut(&mail.id) {
            Some(row) if row.status == Status::Pending && row.claim == Some(mail.claim) => {
                row.attempts += 1;
                row.claimed_until = None;
                row.claim = None;
                change(row);
                true
            }
            _ => false,
        }
    }
}

#[async_trait::async_trait]
impl MailOutbox for InMemoryMailOutbox {
    async fn enqueue(&self, mails: &[QueuedMail]) -> Result<(), StoreError> {
        let mut rows = self.lock();
        if mails.iter().any(|mail| rows.contains_key(&mail.id)) {
            return Err(StoreError::Conflict(Conflict::Duplicate));
        }
        for mail in mails {
            rows.insert(
                mail.id,
                Row {
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
                },
            );
        }
        Ok(())
    }

    async fn claim(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        claim: uuid::Uuid,
    ) -> Result<Vec<ClaimedMail>, StoreError> {
        let mut rows = self.lock();
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
    }

    async fn sent(&self, mail: &ClaimedMail, now: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(self.settle(mail, |row| {
            row.status = Status::Sent;
            row.sealed = None;
            row.next_attempt_at = None;
            row.last_error = None;
            row.finished_at = Some(now);
        }))
    }

    async fn retry(&self, mail: &ClaimedMail, next_attempt_at: DateTime<Utc>, error: &str) -> Result<bool, StoreError> {
        Ok(self.settle(mail, |row| {
            row.next_attempt_at = Some(next_attempt_at);
            row.last_error = Some(error.to_owned());
        }))
    }

    async fn dead(&self, mail: &ClaimedMail, now: DateTime<Utc>, error: &str) -> Result<bool, StoreError> {
        Ok(self.settle(mail, |row| {
            row.status = Status::Dead;
            row.sealed = None;
            row.next_attempt_at = None;
            row.last_error = Some(error.to_owned());
            row.finished_at = Some(now);
        }))
    }

    async fn depth(&self) -> Result<u64, StoreError> {
        Ok(self.lock().values().filter(|row| row.status == Status::Pending).count() as u64)
    }

    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(self
            .lock()
            .values()
            .filter(|row| row.status == Status::Pending && row.claimed_until.is_none())
            .filter_map(|row| row.next_attempt_at)
            .min())
    }

    async fn prune(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let mut rows = self.lock();
        let old: Vec<MailId> = rows
            .iter()
            .filter(|(_, row)| row.finished_at.is_some_and(|at| at < before))
            .map(|(id, _)| *id)
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect();
        for id in &old {
            rows.remove(id);
        }
        Ok(old.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn passes_the_mail_outbox_contract() {
        tenantry_testkit::mail_outbox::run_contract(Arc::new(InMemoryMailOutbox::new())).await;
    }
}
