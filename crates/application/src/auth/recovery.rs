//! Password reset and change.

use tenantry_domain::identity::{DisplayName, TokenPurpose};

use super::*;

impl AuthService {
    /// E-mails a reset link if the address has an active account; answers the same otherwise.
    ///
    /// # Errors
    /// `Invalid` (email syntax only), `Dependency`.
    pub async fn request_password_reset(&self, email: &str) -> Result<(), AuthError> {
        let email = parse_email(email)?;
        if let Some(user) = self.ports.users.by_email(&email).await?
            && user.disabled_at.is_none()
        {
            self.queue_token_mail_later(user.id, &user.email, TokenPurpose::PasswordReset);
        }
        Ok(())
    }

    /// Sets a new password with a reset token and revokes every session of the user.
    ///
    /// # Errors
    /// `WeakPassword` (checked first, so a weak choice does not burn the token),
    /// `InvalidToken`, `Dependency`.
    #[tracing::instrument(name = "application.auth.reset_password", skip_all)]
    pub async fn reset_password(&self, token: &str, new_password: &str) -> Result<(), AuthError> {
        self.settings.password_policy.check(new_password, &[]).map_err(AuthError::WeakPassword)?;
        let digest = self.ports.secrets.digest(token);
        // Check the password against the user's own details before using the token up.
        let owner = self
            .ports
            .tokens
            .peek(TokenPurpose::PasswordReset, &digest, self.now())
            .await?
            .ok_or(AuthError::InvalidToken)?;
        if let Some(user) = self.ports.users.by_id(owner).await? {
            let name = user.display_name.as_ref().map(DisplayName::as_str);
            let inputs: Vec<&str> = [Some(user.email.as_str()), name].into_iter().flatten().collect();
            self.settings.password_policy.check(new_password, &inputs).map_err(AuthError::WeakPassword)?;
        }
        let user_id = self
            .ports
            .tokens
            .consume(TokenPurpose::PasswordReset, &digest, self.now())
            .await?
            .ok_or(AuthError::InvalidToken)?;
        let hash = self.ports.hasher.hash(new_password).await?;
        self.ports.users.set_password_hash(user_id, &hash, self.now()).await?;
        let revoked = self.ports.sessions.revoke_all(user_id, None, self.now()).await?;
        self.mark_revoked(&revoked).await?;
        // Every other reset link sent earlier dies with this one.
        self.ports.tokens.invalidate(user_id, TokenPurpose::PasswordReset, self.now()).await?;
        if let Some(user) = self.ports.users.by_id(user_id).await? {
            self.ports.cache.delete(&format!("{FAIL_ACCOUNT}{}", user.email.as_str())).await?;
        }
        tracing::info!(target: "audit", action = "user.password_reset", user_id = %user_id, sessions_revoked = revoked.len());
        Ok(())
    }

    /// Changes the caller's password and revokes their other sessions.
    ///
    /// # Errors
    /// `Invalid` (current_password incorrect), `WeakPassword`, `Unauthenticated`, `Dependency`.
    pub async fn change_password(
        &self,
        principal: Principal,
        current: &str,
        new_password: &str,
    ) -> Result<(), AuthError> {
        let user = self.ports.users.by_id(principal.user_id).await?.ok_or(AuthError::Unauthenticated)?;
        PasswordConfirmer::new(self.ports.hasher.clone(), self.ports.cache.clone(), self.settings.account_lockout)
            .confirm(&user, current, "current_password")
            .await?;
        self.settings.password_policy.check(new_password, &[user.email.as_str()]).map_err(AuthError::WeakPassword)?;
        let hash = self.ports.hasher.hash(new_password).await?;
        self.ports.users.set_password_hash(user.id, &hash, self.now()).await?;
        let revoked = self.ports.sessions.revoke_all(user.id, Some(principal.session_id), self.now()).await?;
        self.mark_revoked(&revoked).await?;
        self.ports.tokens.invalidate(user.id, TokenPurpose::PasswordReset, self.now()).await?;
        tracing::info!(target: "audit", action = "user.password_changed", user_id = %user.id, sessions_revoked = revoked.len());
        Ok(())
    }
}
