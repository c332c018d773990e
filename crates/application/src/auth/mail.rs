//! Token mails (verification, reset), sent after the response.

use crate::emails;
use tenantry_domain::identity::TokenPurpose;

use super::*;

impl AuthService {
    /// Issues a token for `purpose` and mails its link; failures are logged, not returned, so
    /// the answer (and its timing) does not depend on the mail transport. At most one mail per
    /// account and purpose per minute.
    /// As [`Self::send_token_mail`], after the response: the answer to "send me a link" takes
    /// the same time whether or not the address has an account.
    pub(super) fn send_token_mail_later(&self, user_id: UserId, email: &Email, purpose: TokenPurpose) {
        let service = Self { ports: self.ports.clone(), settings: self.settings.clone() };
        let email = email.clone();
        self.ports
            .tasks
            .spawn("auth.token_mail", Box::pin(async move { service.send_token_mail(user_id, &email, purpose).await }));
    }

    pub(super) async fn send_token_mail(&self, user_id: UserId, email: &Email, purpose: TokenPurpose) {
        if let Err(err) = self.try_send_token_mail(user_id, email, purpose).await {
            tracing::warn!(error = %err, purpose = purpose.as_str(), user_id = %user_id, "sending a token e-mail failed");
        }
    }

    pub(super) async fn try_send_token_mail(
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
        let lifetime = match purpose {
            TokenPurpose::EmailVerification => self.settings.lifetimes.email_verification,
            TokenPurpose::PasswordReset => self.settings.lifetimes.password_reset,
        };
        self.ports
            .tokens
            .create(user_id, purpose, &self.ports.secrets.digest(&token), self.now(), self.after(lifetime))
            .await?;
        let message = emails::token_mail(purpose, email, &self.settings.public_url, &token, lifetime);
        self.ports.mailer.send(&message).await?;
        Ok(())
    }
}
