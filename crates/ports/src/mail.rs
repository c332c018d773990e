//! Outgoing e-mail, and the durable outbox it waits in.

use chrono::{DateTime, Utc};
use tenantry_domain::{Email, MailId};

use crate::StoreError;

/// One message, in both text and HTML: every mail carries a plain-text part so it reads in any
/// client, including those that do not render HTML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// Recipient.
    pub to: Email,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
    /// `Message-ID` (`<id@host>`), the same on every attempt of one outbox mail, so a
    /// receiver can tell a repeat (SMTP is at-least-once) from a second mail; `None` lets the
    /// adapter make one up.
    pub message_id: Option<String>,
}

/// Failures of a [`Mailer`], split by what the outbox does next: retry later, or give the mail
/// up as dead.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The transport refused or could not be reached; retrying later may work.
    #[error("mail transport unavailable")]
    Unavailable(#[source] anyhow::Error),
    /// The message itself was refused (bad address, too large).
    #[error("message rejected")]
    Rejected(#[source] anyhow::Error),
}

/// Sends e-mail (SMTP in production, `.eml` files in the embedded default, a recorder in tests).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait Mailer: Send + Sync {
    /// Hands `email` to the transport once. Only the outbox's sender calls it, so retries and
    /// the at-least-once guarantee live there, not in each adapter.
    ///
    /// # Errors
    /// [`MailError`].
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError>;
}

/// One message for the outbox, written by the transaction of the action that causes it (the
/// token issue, the invitation, the disabling of an endpoint, …), so a rollback leaves no mail
/// and a crash after the commit loses none (ADR 0018).
///
/// Everything personal or secret — recipient, subject, both parts, with their links and
/// tokens — is in `sealed`, encrypted by the [`crate::SecretCipher`]: a database dump shows
/// which kind of mail waits, never to whom or with which token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    /// Id (UUIDv7); also the message's `Message-ID` local part, the same on every attempt.
    pub id: MailId,
    /// What it is (`email_verification`, `password_reset`, …): for logs, metrics and
    /// operators; never personal data.
    pub kind: String,
    /// The sealed [`OutgoingEmail`] (the application's envelope; opaque to the outbox).
    pub sealed: String,
    /// When it was queued; due at once.
    pub created_at: DateTime<Utc>,
}

/// A waiting mail given to one sender until `lease_until`: the claim that [`MailOutbox::sent`],
/// [`MailOutbox::retry`] and [`MailOutbox::dead`] must present, so a sender whose lease ran
/// out (and whose mail another sender took over) cannot end it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedMail {
    /// Id, as in the [`QueuedMail`].
    pub id: MailId,
    /// What it is, as in the [`QueuedMail`] (for logs and metrics).
    pub kind: String,
    /// The sealed envelope, opened only by the sender that holds the claim.
    pub sealed: String,
    /// Attempts made before this one: set against the retry schedule, it decides whether a
    /// failure is retried or ends the mail dead.
    pub attempts: u32,
    /// When it was queued (for the time-to-send metric).
    pub created_at: DateTime<Utc>,
    /// The claim's token: presented back to end the mail, so only the current holder can.
    pub claim: uuid::Uuid,
}

/// The durable mail outbox: mails wait here until a worker step sends them, with retries, so
/// an SMTP outage delays mail and loses none.
///
/// A mail is `pending` (due at its next attempt time, possibly claimed), then `sent` or `dead`;
/// an ended mail keeps no body (the envelope is erased), and [`Self::prune`] removes it after
/// the retention period. Repositories whose changes cause mail (tokens, invitations, webhook
/// endpoints, two-factor state, sessions, quota marks) take `&[QueuedMail]` and insert them in
/// their own transaction; [`Self::enqueue`] is for mail no other change carries.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait MailOutbox: Send + Sync {
    /// Queues `mails`, due at once, in one transaction.
    ///
    /// # Errors
    /// `Conflict(Duplicate)` for an id queued before; `Unavailable`, `Unexpected`.
    async fn enqueue(&self, mails: &[QueuedMail]) -> Result<(), StoreError>;

    /// Claims at most `limit` pending mails due at `now` and not claimed (or whose claim ran
    /// out), oldest due first, until `lease_until`, under the token `claim`. Each mail is given
    /// to one claimer at a time, however many claim at once.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn claim(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        claim: uuid::Uuid,
    ) -> Result<Vec<ClaimedMail>, StoreError>;

    /// Ends the claimed mail `sent` at `now` and erases its envelope; `false` (nothing
    /// changed) when the claim is no longer this one's.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn sent(&self, mail: &ClaimedMail, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Counts the attempt, keeps `error` and makes the mail due again at `next_attempt_at`,
    /// releasing the claim; `false` when the claim is no longer this one's.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn retry(&self, mail: &ClaimedMail, next_attempt_at: DateTime<Utc>, error: &str) -> Result<bool, StoreError>;

    /// Counts the attempt and ends the mail `dead` at `now` with `error` (the relay refused
    /// it, or it ran out of attempts), erasing its envelope; `false` when the claim is no
    /// longer this one's.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn dead(&self, mail: &ClaimedMail, now: DateTime<Utc>, error: &str) -> Result<bool, StoreError>;

    /// Mails waiting (pending, claimed or not): the backlog gauge.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn depth(&self) -> Result<u64, StoreError>;

    /// When the earliest pending mail that is not claimed falls due (`None`: none waits), so
    /// an idle worker sleeps until then.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Deletes at most `limit` mails that ended (sent or dead) before `before`; returns how
    /// many.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn prune(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
}
