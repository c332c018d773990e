//! Outgoing e-mail.

use tenantry_domain::Email;

/// One message, in both text and HTML.
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
}

/// Failures of a [`Mailer`].
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
    /// Sends `email`.
    ///
    /// # Errors
    /// [`MailError`].
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError>;
}
