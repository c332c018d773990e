//! Token mails (verification, reset): the token and its mail are written in one transaction
//! (the outbox, ADR 0018); the mail worker sends it.

use serde_json::json;
use tenantry_domain::identity::TokenPurpose;

use super::*;
use crate::mail::{MailKind, human};

impl AuthService {
    /// As [`Self::queue_token_mail`], after the response: the answer to "send me a link" takes
    /// the same time whether or not the address has an account.
    pub(super) fn queue_token_mail_later(&self, user_id: UserId, email: &Email, purpose: TokenPurpose) {
        let service = Self { ports: self.ports.clone(), settings: self.settings.clone() };
        let email = email.clone();
        self.ports.tasks.spawn(
            "auth.token_mail",
            Box::pin(async move { service.queue_token_mail(user_id, &email, purpose).await }),
        );
    }

    /// Issues a token for `purpose` and queues its mail with it; failures are logged, not
    /// returned, so the answer does not depend on the database's mood. At most one mail per
    /// account and purpose per minute.
    pub(super) async fn queue_token_mail(&self, user_id: UserId, email: &Email, purpose: TokenPurpose) {
        if let Err(err) = self.try_queue_token_mail(user_id, email, purpose).await {
            tracing::warn!(error = %err, purpose = purpose.as_str(), user_id = %user_id, "issuing a token e-mail failed");
        }
    }

    pub(super) async fn try_queue_token_mail(
        &self,
        user_id: UserId,
        email: &Email,
        purpose: TokenPurpose,
    ) -> Result<(), anyhow::Error> {
        // One mail per account and purpose per clock minute: the key names the minute (from the
        // injected clock), the TTL only cleans it up.
        let minute = self.now().timestamp().div_euclid(MAIL_EVERY.as_secs().cast_signed());
        let throttle = format!("{MAIL_THROTTLE}{}:{user_id}:{minute}", purpose.as_str());
        if !self.ports.cache.set_if_absent(&throttle, b"1", Some(MAIL_EVERY)).await? {
            return Ok(());
        }
        let token = self.ports.secrets.token(TOKEN_BYTES);
        let (lifetime, kind, path) = match purpose {
            TokenPurpose::EmailVerification => {
                (self.settings.lifetimes.email_verification, MailKind::EmailVerification, "verify-email")
            }
            TokenPurpose::PasswordReset => {
                (self.settings.lifetimes.password_reset, MailKind::PasswordReset, "reset-password")
            }
        };
        let context = json!({"link": self.ports.mail.link(path, &token), "validity": human(lifetime)});
        let mail = self.ports.mail.compose(kind, email, &context)?;
        self.ports
            .tokens
            .create(user_id, purpose, &self.ports.secrets.digest(&token), self.now(), self.after(lifetime), &[mail])
            .await?;
        Ok(())
    }
}
