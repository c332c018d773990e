//! Sign-in with lockout and second factor, and refresh-token rotation.

use serde_json::json;
use tenantry_domain::identity::is_new_sign_in;
use tenantry_ports::{AccessClaims, QueuedMail, RefreshOutcome};

use super::*;
use crate::mail::MailKind;

impl AuthService {
    /// Signs in: checks lockout, credentials (in constant-ish time), account state and the
    /// second factor, then opens a session.
    ///
    /// # Errors
    /// `InvalidCredentials`, `Locked`, `AccountDisabled`, `EmailNotVerified`, `MfaRequired`,
    /// `Dependency`.
    #[tracing::instrument(name = "application.auth.login", skip_all)]
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        totp_code: Option<&str>,
        client: &ClientInfo,
    ) -> Result<TokenPair, AuthError> {
        let email = Email::parse(email).ok();
        let account_key = email.as_ref().map(|e| format!("{FAIL_ACCOUNT}{}", e.as_str()));
        let ip_key = client.ip.as_deref().map(|ip| format!("{FAIL_IP}{}", address_bucket(ip)));
        // The attempt is counted before any password is checked, so parallel guesses cannot
        // all pass on a stale "no failures yet" read; a success gives the count back.
        if let Some(retry_after) = self.reserve_attempt(account_key.as_deref(), ip_key.as_deref()).await? {
            tracing::info!(target: "audit", action = "login.locked");
            return Err(AuthError::Locked { retry_after });
        }
        let user = match &email {
            Some(email) => self.ports.users.by_email(email).await?,
            None => None,
        };
        let Some(user) = user else {
            // Same work as a wrong password, so timing does not reveal unknown addresses.
            self.ports.hasher.verify_dummy(password).await?;
            tracing::info!(target: "audit", action = "login.failed", reason = "unknown_account");
            return Err(AuthError::InvalidCredentials);
        };
        let mut expected_hash = user.password_hash.clone();
        match self.ports.hasher.verify(password, &user.password_hash).await? {
            PasswordCheck::Invalid => {
                tracing::info!(target: "audit", action = "login.failed", reason = "wrong_password", user_id = %user.id);
                return Err(AuthError::InvalidCredentials);
            }
            PasswordCheck::Valid { needs_rehash: true } => {
                let hash = self.ports.hasher.hash(password).await?;
                self.ports.users.set_password_hash(user.id, &hash, self.now()).await?;
                expected_hash = hash;
            }
            PasswordCheck::Valid { needs_rehash: false } => {}
        }
        if user.disabled_at.is_some() {
            tracing::info!(target: "audit", action = "login.refused", reason = "disabled", user_id = %user.id);
            return Err(AuthError::AccountDisabled);
        }
        if self.settings.require_verified_email && user.email_verified_at.is_none() {
            tracing::info!(target: "audit", action = "login.refused", reason = "email_not_verified", user_id = %user.id);
            return Err(AuthError::EmailNotVerified);
        }
        if user.totp_enabled && !self.second_factor_ok(&user, totp_code).await? {
            tracing::info!(target: "audit", action = "login.refused", reason = "mfa_required", user_id = %user.id);
            return Err(AuthError::MfaRequired);
        }
        if let Some(key) = &account_key {
            self.ports.cache.delete(key).await?;
        }
        if let Some(key) = &ip_key {
            self.ports.cache.increment(key, -1, Some(self.settings.ip_lockout.window)).await?;
        }
        let (session_id, pair) = self.open_session(&user, client).await?;
        // A password reset or change that landed while this sign-in was checking the old
        // password must not be outlived by it: if the hash moved, this session is void. (If the
        // change lands after this read, its own revocation of every session covers this one.)
        let current = self.ports.users.by_id(user.id).await?;
        if current.is_none_or(|now| now.password_hash != expected_hash) {
            self.ports.sessions.revoke(user.id, session_id, self.now()).await?;
            self.mark_revoked(&[session_id]).await?;
            tracing::info!(target: "audit", action = "login.refused", reason = "password_changed_meanwhile", user_id = %user.id);
            return Err(AuthError::InvalidCredentials);
        }
        tracing::info!(target: "audit", action = "login.succeeded", user_id = %user.id);
        Ok(pair)
    }

    /// Whether `code` is a valid, unreplayed second factor for `user`.
    pub(super) async fn second_factor_ok(&self, user: &User, code: Option<&str>) -> Result<bool, AuthError> {
        let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
            return Ok(false);
        };
        self.ports.mfa.verify_login_code(user.id, code).await
    }

    /// Counts this attempt against the client address, then the account; `Some(retry_after)`
    /// when either is over its limit (the attempt is then refused without a password check).
    /// The address goes first: an attempt its address lock refuses never reaches the
    /// account's count, so a locked-out address cannot keep a victim's account locked
    /// (ADR 0012).
    pub(super) async fn reserve_attempt(
        &self,
        account_key: Option<&str>,
        ip_key: Option<&str>,
    ) -> Result<Option<Duration>, AuthError> {
        for (key, policy) in [(ip_key, self.settings.ip_lockout), (account_key, self.settings.account_lockout)] {
            let Some(key) = key else { continue };
            let attempts = self.ports.cache.increment(key, 1, Some(policy.window)).await?;
            let earlier = u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
            if earlier >= policy.max_failures {
                let left = self.ports.cache.ttl(key).await?;
                if let LockoutDecision::Locked { retry_after } = policy.decide(earlier, left) {
                    return Ok(Some(retry_after));
                }
            }
        }
        Ok(None)
    }

    pub(super) async fn open_session(
        &self,
        user: &User,
        client: &ClientInfo,
    ) -> Result<(SessionId, TokenPair), AuthError> {
        let user_id = user.id;
        let now = self.now();
        let session = Session {
            id: SessionId::from_uuid(self.ports.ids.new_id()),
            user_id,
            user_agent: client.user_agent.as_ref().map(|ua| ua.chars().take(512).collect()),
            ip: client.ip.clone(),
            created_at: now,
            last_seen_at: now,
            expires_at: self.after(self.settings.lifetimes.refresh),
            revoked_at: None,
        };
        let alert = self.sign_in_alert(user, &session).await?;
        let refresh_token = self.ports.secrets.token(TOKEN_BYTES);
        self.ports.sessions.create(&session, &self.ports.secrets.digest(&refresh_token), &alert).await?;
        // A bounded number of devices: the oldest sessions give way (a script signing in in a
        // loop must not grow the table and every "your sessions" page without limit).
        // One page past the bound holds the surplus: every sign-in trims, so it stays small.
        let bound = u32::try_from(MAX_SESSIONS).unwrap_or(u32::MAX);
        let active = self.ports.sessions.list_active(user_id, now, None, bound.saturating_add(64)).await?;
        let surplus: Vec<SessionId> = active.iter().skip(MAX_SESSIONS).map(|s| s.id).collect();
        for id in &surplus {
            self.ports.sessions.revoke(user_id, *id, now).await?;
        }
        self.mark_revoked(&surplus).await?;
        Ok((session.id, self.pair(user_id, session.id, refresh_token)?))
    }

    /// The "new sign-in" mail for `session`, when its device and network are new to the
    /// account (never for the account's first session): queued with the session itself.
    async fn sign_in_alert(&self, user: &User, session: &Session) -> Result<Vec<QueuedMail>, AuthError> {
        let earlier = self.ports.sessions.list_all(user.id).await?;
        if !is_new_sign_in(&earlier, session.user_agent.as_deref(), session.ip.as_deref()) {
            return Ok(Vec::new());
        }
        let context = json!({
            "at": session.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "user_agent": session.user_agent.as_deref().unwrap_or("unknown"),
            "ip": session.ip.as_deref().unwrap_or("unknown"),
            "sessions_url": format!("{}/api/v1/auth/sessions", self.ports.mail.public_url()),
        });
        Ok(vec![self.ports.mail.compose(MailKind::NewSignIn, &user.email, &context)?])
    }

    pub(super) fn pair(
        &self,
        user_id: UserId,
        session_id: SessionId,
        refresh_token: String,
    ) -> Result<TokenPair, AuthError> {
        let now = self.now();
        let claims = AccessClaims {
            user_id,
            session_id,
            issued_at: now,
            expires_at: self.after(self.settings.lifetimes.access),
        };
        Ok(TokenPair {
            access_token: self.ports.access.issue(&claims)?,
            refresh_token,
            expires_in: self.settings.lifetimes.access.as_secs(),
        })
    }

    /// Trades a live refresh token for a new pair; the presented token dies. Presenting a dead
    /// one again revokes its whole session (someone else holds a copy).
    ///
    /// # Errors
    /// `InvalidToken` (unknown, used, expired, revoked), `Dependency`.
    #[tracing::instrument(name = "application.auth.refresh", skip_all)]
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, AuthError> {
        let next = self.ports.secrets.token(TOKEN_BYTES);
        let outcome = self
            .ports
            .sessions
            .rotate_refresh(
                &self.ports.secrets.digest(refresh_token),
                &self.ports.secrets.digest(&next),
                self.now(),
                self.after(self.settings.lifetimes.refresh),
            )
            .await?;
        match outcome {
            RefreshOutcome::Rotated(session) => self.pair(session.user_id, session.id, next),
            RefreshOutcome::Reused(session_id) => {
                if let Some(session) = self.ports.sessions.get(session_id).await? {
                    self.ports.sessions.revoke(session.user_id, session_id, self.now()).await?;
                    tracing::warn!(target: "audit", action = "session.refresh_reuse_detected", user_id = %session.user_id, session_id = %session_id);
                }
                self.mark_revoked(&[session_id]).await?;
                Err(AuthError::InvalidToken)
            }
            RefreshOutcome::Invalid => Err(AuthError::InvalidToken),
        }
    }
}
