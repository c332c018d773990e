//! Registration, e-mail verification and the token mails they send.

use tenantry_domain::identity::{DisplayName, TokenPurpose};
use tenantry_ports::{Conflict, NewUser};

use super::*;

impl AuthService {
    /// Creates an account and e-mails a verification link.
    ///
    /// # Errors
    /// `Invalid` (email, display_name), `WeakPassword`, `EmailTaken`, `Dependency`.
    #[tracing::instrument(name = "application.auth.register", skip_all)]
    pub async fn register(&self, email: &str, password: &str, display_name: Option<&str>) -> Result<User, AuthError> {
        let email = parse_email(email)?;
        let display_name = display_name
            .map(DisplayName::parse)
            .transpose()
            .map_err(|err| AuthError::Invalid { field: "display_name", message: err.to_string() })?;
        let inputs: Vec<&str> =
            [Some(email.as_str()), display_name.as_ref().map(DisplayName::as_str)].into_iter().flatten().collect();
        self.settings.password_policy.check(password, &inputs).map_err(AuthError::WeakPassword)?;
        if self.ports.users.by_email(&email).await?.is_some() {
            return Err(AuthError::EmailTaken);
        }
        let now = self.now();
        let new_user = NewUser {
            id: UserId::from_uuid(self.ports.ids.new_id()),
            email: email.clone(),
            display_name,
            password_hash: self.ports.hasher.hash(password).await?,
            is_admin: false,
            email_verified_at: None,
            created_at: now,
        };
        self.insert_user(&new_user).await?;
        tracing::info!(target: "audit", action = "user.registered", user_id = %new_user.id);
        self.queue_token_mail(new_user.id, &email, TokenPurpose::EmailVerification).await;
        self.ports.users.by_id(new_user.id).await?.ok_or(AuthError::Dependency(anyhow::anyhow!("new user vanished")))
    }

    /// Stores a new account; a taken address is `EmailTaken`, never a dependency failure.
    pub(super) async fn insert_user(&self, new_user: &NewUser) -> Result<(), AuthError> {
        match self.ports.users.create(new_user).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict(Conflict::EmailTaken)) => Err(AuthError::EmailTaken),
            Err(err) => Err(err.into()),
        }
    }

    /// Creates a verified platform administrator (CLI), or promotes an existing account.
    ///
    /// # Errors
    /// `Invalid`, `WeakPassword`, `EmailTaken` (an existing account is never silently
    /// re-passworded), `Dependency`.
    pub async fn create_admin(&self, email: &str, password: &str) -> Result<User, AuthError> {
        let email = parse_email(email)?;
        self.settings.password_policy.check(password, &[email.as_str()]).map_err(AuthError::WeakPassword)?;
        let now = self.now();
        let new_user = NewUser {
            id: UserId::from_uuid(self.ports.ids.new_id()),
            email,
            display_name: None,
            password_hash: self.ports.hasher.hash(password).await?,
            is_admin: true,
            email_verified_at: Some(now),
            created_at: now,
        };
        self.insert_user(&new_user).await?;
        tracing::info!(target: "audit", action = "user.admin_created", user_id = %new_user.id);
        self.ports.users.by_id(new_user.id).await?.ok_or(AuthError::Dependency(anyhow::anyhow!("new user vanished")))
    }

    /// Consumes a verification token.
    ///
    /// # Errors
    /// `InvalidToken`, `Dependency`.
    #[tracing::instrument(name = "application.auth.verify_email", skip_all)]
    pub async fn verify_email(&self, token: &str) -> Result<(), AuthError> {
        let digest = self.ports.secrets.digest(token);
        let user_id = self
            .ports
            .tokens
            .consume(TokenPurpose::EmailVerification, &digest, self.now())
            .await?
            .ok_or(AuthError::InvalidToken)?;
        self.ports.users.mark_email_verified(user_id, self.now()).await?;
        tracing::info!(target: "audit", action = "user.email_verified", user_id = %user_id);
        Ok(())
    }

    /// Sends a new verification link if the address has an unverified account. Answers the
    /// same whatever the address, so it reveals nothing.
    ///
    /// # Errors
    /// `Invalid` (email syntax only), `Dependency`.
    pub async fn resend_verification(&self, email: &str) -> Result<(), AuthError> {
        let email = parse_email(email)?;
        if let Some(user) = self.ports.users.by_email(&email).await?
            && user.email_verified_at.is_none()
            && user.disabled_at.is_none()
        {
            self.queue_token_mail_later(user.id, &user.email, TokenPurpose::EmailVerification);
        }
        Ok(())
    }
}
