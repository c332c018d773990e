//! Sign-in and account security: registration, e-mail verification, login with lockout,
//! rotating refresh tokens with reuse detection, sessions, password reset and change.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tenantry_domain::identity::DisplayName;
use tenantry_domain::identity::{
    LockoutDecision, LockoutPolicy, PasswordPolicy, Session, TokenLifetimes, TokenPurpose, User, UserSettings,
    WeakPassword,
};
use tenantry_domain::{Email, SessionId, UserId};
use tenantry_ports::{
    AccessClaims, AccessTokenIssuer, BackgroundTasks, Cache, Clock, CryptoError, IdGenerator, Mailer, NewUser,
    OneTimeTokenRepository, PasswordCheck, PasswordHasher, RefreshOutcome, SecretGenerator, SessionRepository,
    StoreError, UserRepository,
};

use crate::emails;
use crate::revocations::{SEEN, SessionCheck, SessionRevocations};

/// Everything [`AuthService`] needs from the outside world.
#[derive(Clone)]
pub struct AuthPorts {
    /// Accounts.
    pub users: Arc<dyn UserRepository>,
    /// Sessions and refresh tokens.
    pub sessions: Arc<dyn SessionRepository>,
    /// Verification and reset tokens.
    pub tokens: Arc<dyn OneTimeTokenRepository>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Access-token signing.
    pub access: Arc<dyn AccessTokenIssuer>,
    /// Random tokens and their digests.
    pub secrets: Arc<dyn SecretGenerator>,
    /// Outgoing mail.
    pub mailer: Arc<dyn Mailer>,
    /// Shared fast-path state (lockout counters, mail throttles).
    pub cache: Arc<dyn Cache>,
    /// Session revocation, checked on every authenticated request.
    pub revocations: SessionRevocations,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: Arc<dyn IdGenerator>,
    /// Second-factor checks for accounts with two-factor sign-in on.
    pub mfa: Arc<dyn SecondFactor>,
    /// Work done after the response (mail of the "202 whatever the address" flows).
    pub tasks: Arc<dyn BackgroundTasks>,
}

/// Checks a sign-in's second factor (TOTP or backup code); implemented by the two-factor
/// service, so sign-in does not depend on how codes are stored.
#[async_trait::async_trait]
pub trait SecondFactor: Send + Sync {
    /// Whether `code` is valid for `user_id` now; a valid code is consumed (never accepted twice).
    ///
    /// # Errors
    /// `Dependency`.
    async fn verify_login_code(&self, user_id: UserId, code: &str) -> Result<bool, AuthError>;
}

/// Policy knobs, from configuration.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Token lifetimes.
    pub lifetimes: TokenLifetimes,
    /// Failed sign-ins allowed per account per window.
    pub account_lockout: LockoutPolicy,
    /// Failed sign-ins allowed per client address per window (credential stuffing).
    pub ip_lockout: LockoutPolicy,
    /// Refuse sign-in until the address is verified.
    pub require_verified_email: bool,
    /// Base of links in e-mails.
    pub public_url: String,
    /// Password rules.
    pub password_policy: PasswordPolicy,
}

impl AuthSettings {
    /// The defaults of API.md with `max_failures` failed sign-ins per account per 15 minutes.
    pub fn new(public_url: String, max_failures: u32, require_verified_email: bool) -> Self {
        let window = Duration::from_secs(15 * 60);
        Self {
            lifetimes: TokenLifetimes::default(),
            account_lockout: LockoutPolicy { max_failures, window },
            ip_lockout: LockoutPolicy { max_failures: max_failures.saturating_mul(10), window },
            require_verified_email,
            public_url,
            password_policy: PasswordPolicy::default(),
        }
    }
}

/// Why an auth operation failed; the app maps each variant to one HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A field is invalid (`field`, message).
    #[error("{field}: {message}")]
    Invalid {
        /// The request field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The password breaks the policy.
    #[error("weak password: {0}")]
    WeakPassword(WeakPassword),
    /// The e-mail address already has an account.
    #[error("email already registered")]
    EmailTaken,
    /// Unknown e-mail or wrong password (deliberately indistinguishable).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Two-factor sign-in is on and no valid code was given.
    #[error("two-factor code required")]
    MfaRequired,
    /// The account's address is not verified and the deployment requires it.
    #[error("email not verified")]
    EmailNotVerified,
    /// The account was disabled by an administrator.
    #[error("account disabled")]
    AccountDisabled,
    /// Too many failed attempts.
    #[error("locked out")]
    Locked {
        /// When to try again.
        retry_after: Duration,
    },
    /// A verification, reset or refresh token that is unknown, used or expired.
    #[error("invalid or expired token")]
    InvalidToken,
    /// No valid access token (missing, expired, or its session revoked).
    #[error("not authenticated")]
    Unauthenticated,
    /// The session to act on is not the caller's.
    #[error("not found")]
    NotFound,
    /// The caller is not a platform administrator.
    #[error("not a platform administrator")]
    NotAdmin,
    /// The account is the last owner of an organization and cannot be deleted yet.
    #[error("last owner of an organization")]
    LastOwner,
    /// A dependency failed; the cause is for the logs.
    #[error("dependency failure")]
    Dependency(#[source] anyhow::Error),
}

impl From<StoreError> for AuthError {
    fn from(err: StoreError) -> Self {
        Self::Dependency(anyhow::Error::new(err))
    }
}

impl From<CryptoError> for AuthError {
    fn from(err: CryptoError) -> Self {
        Self::Dependency(anyhow::Error::new(err))
    }
}

impl From<tenantry_ports::CacheError> for AuthError {
    fn from(err: tenantry_ports::CacheError) -> Self {
        Self::Dependency(anyhow::Error::new(err))
    }
}

/// The caller of an authenticated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// The session the access token belongs to.
    pub session_id: SessionId,
}

/// A fresh access/refresh pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenPair {
    /// The JWT.
    pub access_token: String,
    /// The opaque, single-use refresh token.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

/// Where a sign-in comes from, recorded on the session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// `user-agent`, truncated to 512 characters.
    pub user_agent: Option<String>,
    /// Client address.
    pub ip: Option<String>,
}

/// A session as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// The session.
    pub session: Session,
    /// Whether the request was made with it.
    pub current: bool,
}

/// A change to the caller's profile; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    /// `Some(None)` clears the display name.
    pub display_name: Option<Option<String>>,
    /// New settings, replacing the old ones.
    pub settings: Option<UserSettings>,
}

const FAIL_ACCOUNT: &str = "auth:login-failures:account:";
const FAIL_IP: &str = "auth:login-failures:ip:";
const MAIL_THROTTLE: &str = "auth:mail-throttle:";
/// How often `last_seen_at` is written at most.
const SEEN_EVERY: Duration = Duration::from_secs(60);
/// How often one account may be sent a verification or reset e-mail.
const MAIL_EVERY: Duration = Duration::from_secs(60);
/// Most active sessions per user; signing in on one more ends the oldest.
pub const MAX_SESSIONS: usize = 50;
/// Refresh tokens and e-mailed tokens carry 256 bits.
const TOKEN_BYTES: usize = 32;

/// A client-sent address, or `Invalid` on `email`.
fn parse_email(raw: &str) -> Result<Email, AuthError> {
    Email::parse(raw).map_err(|err| AuthError::Invalid { field: "email", message: err.to_string() })
}

/// The unit the per-address limit counts: an IPv4 address, or an IPv6 /64 (one subscriber's
/// allocation, so rotating addresses inside it does not reset the count).
fn address_bucket(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        _ => ip.to_owned(),
    }
}

/// Re-checks a signed-in user's password before a sensitive change (password change, turning
/// two-factor off, account deletion). Failures count against the same per-account lockout as
/// sign-in, so a stolen access token does not give unlimited password guesses.
#[derive(Clone)]
pub struct PasswordConfirmer {
    hasher: Arc<dyn PasswordHasher>,
    cache: Arc<dyn Cache>,
    policy: LockoutPolicy,
}

impl PasswordConfirmer {
    /// Confirms with `hasher`, counting failures in `cache` under `policy`.
    pub fn new(hasher: Arc<dyn PasswordHasher>, cache: Arc<dyn Cache>, policy: LockoutPolicy) -> Self {
        Self { hasher, cache, policy }
    }

    /// `Ok` when `password` is the user's; a wrong one is `Invalid` on `field`.
    ///
    /// # Errors
    /// `Invalid { field }`, `Locked`, `Dependency`.
    pub async fn confirm(&self, user: &User, password: &str, field: &'static str) -> Result<(), AuthError> {
        let key = format!("{FAIL_ACCOUNT}{}", user.email.as_str());
        let attempts = self.cache.increment(&key, 1, Some(self.policy.window)).await?;
        let earlier = u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
        if let LockoutDecision::Locked { retry_after } = self.policy.decide(earlier, self.cache.ttl(&key).await?) {
            return Err(AuthError::Locked { retry_after });
        }
        match self.hasher.verify(password, &user.password_hash).await? {
            PasswordCheck::Invalid => {
                tracing::info!(target: "audit", action = "user.password_confirmation_failed", user_id = %user.id);
                Err(AuthError::Invalid { field, message: "is incorrect".to_owned() })
            }
            PasswordCheck::Valid { .. } => {
                self.cache.delete(&key).await?;
                Ok(())
            }
        }
    }
}

/// The identity use cases, over ports only.
pub struct AuthService {
    ports: AuthPorts,
    settings: AuthSettings,
}

impl AuthService {
    /// Wires the service.
    pub fn new(ports: AuthPorts, settings: AuthSettings) -> Self {
        Self { ports, settings }
    }

    fn now(&self) -> DateTime<Utc> {
        self.ports.clock.now()
    }

    fn after(&self, duration: Duration) -> DateTime<Utc> {
        self.now() + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
    }

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
        self.send_token_mail(new_user.id, &email, TokenPurpose::EmailVerification).await;
        self.ports.users.by_id(new_user.id).await?.ok_or(AuthError::Dependency(anyhow::anyhow!("new user vanished")))
    }

    /// Stores a new account; a taken address is `EmailTaken`, never a dependency failure.
    async fn insert_user(&self, new_user: &NewUser) -> Result<(), AuthError> {
        match self.ports.users.create(new_user).await {
            Ok(()) => Ok(()),
            Err(StoreError::Conflict) => Err(AuthError::EmailTaken),
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
            self.send_token_mail_later(user.id, &user.email, TokenPurpose::EmailVerification);
        }
        Ok(())
    }

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
        let (session_id, pair) = self.open_session(user.id, client).await?;
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
    async fn second_factor_ok(&self, user: &User, code: Option<&str>) -> Result<bool, AuthError> {
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
    async fn reserve_attempt(
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

    async fn open_session(&self, user_id: UserId, client: &ClientInfo) -> Result<(SessionId, TokenPair), AuthError> {
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
        let refresh_token = self.ports.secrets.token(TOKEN_BYTES);
        self.ports.sessions.create(&session, &self.ports.secrets.digest(&refresh_token)).await?;
        // A bounded number of devices: the oldest sessions give way (a script signing in in a
        // loop must not grow the table and every "your sessions" page without limit).
        let active = self.ports.sessions.list_active(user_id, now).await?;
        let surplus: Vec<SessionId> = active.iter().skip(MAX_SESSIONS).map(|s| s.id).collect();
        for id in &surplus {
            self.ports.sessions.revoke(user_id, *id, now).await?;
        }
        self.mark_revoked(&surplus).await?;
        Ok((session.id, self.pair(user_id, session.id, refresh_token)?))
    }

    fn pair(&self, user_id: UserId, session_id: SessionId, refresh_token: String) -> Result<TokenPair, AuthError> {
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

    /// Resolves an access token to its caller: signature and expiry, then the session's
    /// revocation marker (no database round trip; see [`SessionRevocations`] for the in-process
    /// copy); records activity at most once a minute.
    ///
    /// # Errors
    /// `Unauthenticated`, `Dependency` (cache down: failing closed).
    pub async fn authenticate(&self, access_token: &str) -> Result<Principal, AuthError> {
        let claims = self.ports.access.verify(access_token, self.now()).map_err(|_| AuthError::Unauthenticated)?;
        // The activity marker comes back from the same round trip, and is written only when
        // absent; a locally trusted session was checked (and its activity recorded) recently.
        let seen = match self.ports.revocations.check(claims.session_id).await? {
            SessionCheck::Revoked => return Err(AuthError::Unauthenticated),
            SessionCheck::Active { seen } => seen,
            SessionCheck::TrustedLocally => true,
        };
        let seen_key = format!("{SEEN}{}", claims.session_id);
        if !seen
            && self.ports.cache.set_if_absent(&seen_key, b"1", Some(SEEN_EVERY)).await?
            && let Err(err) = self.ports.sessions.touch(claims.session_id, self.now()).await
        {
            tracing::warn!(error = %err, "recording session activity failed");
        }
        Ok(Principal { user_id: claims.user_id, session_id: claims.session_id })
    }

    async fn mark_revoked(&self, sessions: &[SessionId]) -> Result<(), AuthError> {
        Ok(self.ports.revocations.revoke(sessions).await?)
    }

    /// Ends the caller's session.
    ///
    /// # Errors
    /// `Dependency`.
    pub async fn logout(&self, principal: Principal) -> Result<(), AuthError> {
        self.ports.sessions.revoke(principal.user_id, principal.session_id, self.now()).await?;
        self.mark_revoked(&[principal.session_id]).await?;
        tracing::info!(target: "audit", action = "session.logout", user_id = %principal.user_id, session_id = %principal.session_id);
        Ok(())
    }

    /// The caller's active sessions.
    ///
    /// # Errors
    /// `Dependency`.
    pub async fn sessions(&self, principal: Principal) -> Result<Vec<SessionView>, AuthError> {
        let sessions = self.ports.sessions.list_active(principal.user_id, self.now()).await?;
        Ok(sessions
            .into_iter()
            .map(|session| SessionView { current: session.id == principal.session_id, session })
            .collect())
    }

    /// Revokes one of the caller's sessions; its tokens stop working at once.
    ///
    /// # Errors
    /// `NotFound` (not the caller's, or already revoked), `Dependency`.
    pub async fn revoke_session(&self, principal: Principal, session_id: SessionId) -> Result<(), AuthError> {
        if !self.ports.sessions.revoke(principal.user_id, session_id, self.now()).await? {
            return Err(AuthError::NotFound);
        }
        self.mark_revoked(&[session_id]).await?;
        tracing::info!(target: "audit", action = "session.revoked", user_id = %principal.user_id, session_id = %session_id);
        Ok(())
    }

    /// E-mails a reset link if the address has an active account; answers the same otherwise.
    ///
    /// # Errors
    /// `Invalid` (email syntax only), `Dependency`.
    pub async fn request_password_reset(&self, email: &str) -> Result<(), AuthError> {
        let email = parse_email(email)?;
        if let Some(user) = self.ports.users.by_email(&email).await?
            && user.disabled_at.is_none()
        {
            self.send_token_mail_later(user.id, &user.email, TokenPurpose::PasswordReset);
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

    /// The caller's account.
    ///
    /// # Errors
    /// `Unauthenticated` (account gone), `Dependency`.
    pub async fn me(&self, principal: Principal) -> Result<User, AuthError> {
        self.ports.users.by_id(principal.user_id).await?.ok_or(AuthError::Unauthenticated)
    }

    /// Updates the caller's display name and settings.
    ///
    /// # Errors
    /// `Invalid` (display_name, settings), `Unauthenticated`, `Dependency`.
    pub async fn update_me(&self, principal: Principal, change: ProfileChange) -> Result<User, AuthError> {
        let user = self.me(principal).await?;
        let display_name = match change.display_name {
            None => user.display_name.clone(),
            Some(None) => None,
            Some(Some(raw)) => Some(
                DisplayName::parse(&raw)
                    .map_err(|err| AuthError::Invalid { field: "display_name", message: err.to_string() })?,
            ),
        };
        let settings = change.settings.unwrap_or_else(|| user.settings.clone());
        settings.validate().map_err(|err| AuthError::Invalid { field: "settings", message: err.to_string() })?;
        self.ports.users.update_profile(user.id, display_name, &settings, self.now()).await?;
        self.me(principal).await
    }

    /// The JWKS keys.
    pub fn public_keys(&self) -> Vec<tenantry_ports::PublicJwk> {
        self.ports.access.public_keys()
    }

    /// Issues a token for `purpose` and mails its link; failures are logged, not returned, so
    /// the answer (and its timing) does not depend on the mail transport. At most one mail per
    /// account and purpose per minute.
    /// As [`Self::send_token_mail`], after the response: the answer to "send me a link" takes
    /// the same time whether or not the address has an account.
    fn send_token_mail_later(&self, user_id: UserId, email: &Email, purpose: TokenPurpose) {
        let service = Self { ports: self.ports.clone(), settings: self.settings.clone() };
        let email = email.clone();
        self.ports
            .tasks
            .spawn("auth.token_mail", Box::pin(async move { service.send_token_mail(user_id, &email, purpose).await }));
    }

    async fn send_token_mail(&self, user_id: UserId, email: &Email, purpose: TokenPurpose) {
        if let Err(err) = self.try_send_token_mail(user_id, email, purpose).await {
            tracing::warn!(error = %err, purpose = purpose.as_str(), user_id = %user_id, "sending a token e-mail failed");
        }
    }

    async fn try_send_token_mail(
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

#[cfg(test)]
mod tests {
    //! Interaction rules of sign-in and the token lifecycle, with mocks for storage and
    //! crypto and the in-memory cache with a manual clock for counters and markers.

    use std::sync::atomic::{AtomicUsize, Ordering};

    use tenantry_adapter_memory::{InMemoryCache, ManualClock, RecordingMailer, UuidV7Generator};
    use tenantry_ports::{
        AccessTokenError, MockAccessTokenIssuer, MockOneTimeTokenRepository, MockPasswordHasher, MockSecretGenerator,
        MockSessionRepository, MockUserRepository,
    };

    use super::*;

    struct NoSecondFactor;

    /// Drops background work: these tests do not look at mail.
    struct InlineTasks;

    impl BackgroundTasks for InlineTasks {
        fn spawn(&self, _: &'static str, _: tenantry_ports::Task) {}
    }

    #[async_trait::async_trait]
    impl SecondFactor for NoSecondFactor {
        async fn verify_login_code(&self, _: UserId, _: &str) -> Result<bool, AuthError> {
            Ok(false)
        }
    }

    struct Mocks {
        users: MockUserRepository,
        sessions: MockSessionRepository,
        tokens: MockOneTimeTokenRepository,
        hasher: MockPasswordHasher,
        access: MockAccessTokenIssuer,
    }

    impl Mocks {
        fn new() -> Self {
            Self {
                users: MockUserRepository::new(),
                sessions: MockSessionRepository::new(),
                tokens: MockOneTimeTokenRepository::new(),
                hasher: MockPasswordHasher::new(),
                access: MockAccessTokenIssuer::new(),
            }
        }

        fn service(self, cache: Arc<InMemoryCache>, clock: Arc<ManualClock>) -> AuthService {
            let counter = Arc::new(AtomicUsize::new(0));
            let mut secrets = MockSecretGenerator::new();
            secrets.expect_token().returning(move |_| format!("token-{}", counter.fetch_add(1, Ordering::SeqCst)));
            secrets.expect_digest().returning(|token| format!("digest:{token}"));
            let ports = AuthPorts {
                users: Arc::new(self.users),
                sessions: Arc::new(self.sessions),
                tokens: Arc::new(self.tokens),
                hasher: Arc::new(self.hasher),
                access: Arc::new(self.access),
                secrets: Arc::new(secrets),
                mailer: Arc::new(RecordingMailer::default()),
                revocations: SessionRevocations::new(cache.clone(), clock.clone(), TokenLifetimes::default()),
                cache,
                clock,
                ids: Arc::new(UuidV7Generator),
                mfa: Arc::new(NoSecondFactor),
                tasks: Arc::new(InlineTasks),
            };
            AuthService::new(ports, AuthSettings::new("https://app.example".into(), 3, false))
        }
    }

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(Utc::now()))
    }

    fn user(email: &str) -> User {
        let now = Utc::now();
        User {
            id: UserId::from_uuid(uuid::Uuid::now_v7()),
            email: Email::parse(email).expect("valid"),
            display_name: None,
            password_hash: "$argon2id$stored".into(),
            email_verified_at: None,
            is_admin: false,
            disabled_at: None,
            settings: UserSettings::default(),
            totp_enabled: false,
            created_at: now,
            updated_at: now,
        }
    }

    fn session_of(user_id: UserId) -> Session {
        let now = Utc::now();
        Session {
            id: SessionId::from_uuid(uuid::Uuid::now_v7()),
            user_id,
            user_agent: None,
            ip: None,
            created_at: now,
            last_seen_at: now,
            expires_at: now + chrono::Duration::days(30),
            revoked_at: None,
        }
    }

    fn client() -> ClientInfo {
        ClientInfo { user_agent: Some("test".into()), ip: Some("192.0.2.7".into()) }
    }

    #[tokio::test]
    async fn wrong_passwords_count_and_the_limit_locks_without_checking_the_password_again() {
        let clock = clock();
        let cache = Arc::new(InMemoryCache::new(clock.clone()));
        let mut mocks = Mocks::new();
        let ann = user("ann@example.com");
        mocks.users.expect_by_email().times(3).returning(move |_| Ok(Some(ann.clone())));
        mocks.hasher.expect_verify().times(3).returning(|_, _| Ok(PasswordCheck::Invalid));
        mocks.sessions.expect_create().times(0);
        let service = mocks.service(cache, clock.clone());
        for _ in 0..3 {
            let result = service.login("ann@example.com", "wrong", None, &client()).await;
            assert!(matches!(result, Err(AuthError::InvalidCredentials)), "{result:?}");
        }
        let locked = service.login("ann@example.com", "right", None, &client()).await;
        let Err(AuthError::Locked { retry_after }) = locked else { panic!("expected a lockout, got {locked:?}") };
        assert!(retry_after <= Duration::from_secs(900) && retry_after > Duration::from_secs(890), "{retry_after:?}");
    }

    #[tokio::test]
    async fn the_lockout_ends_when_its_window_has_passed() {
        let clock = clock();
        let cache = Arc::new(InMemoryCache::new(clock.clone()));
        let mut mocks = Mocks::new();
        let ann = user("ann@example.com");
        mocks.users.expect_by_email().returning(move |_| Ok(Some(ann.clone())));
        mocks.hasher.expect_verify().times(3).returning(|_, _| Ok(PasswordCheck::Invalid));
        mocks.hasher.expect_verify().times(1).returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: false }));
        mocks.sessions.expect_create().times(1).returning(|_, _| Ok(()));
        mocks.sessions.expect_list_active().returning(|_, _| Ok(Vec::new()));
        mocks.access.expect_issue().times(1).returning(|_| Ok("jwt".into()));
        let stored = user("ann@example.com");
        mocks.users.expect_by_id().returning(move |_| Ok(Some(stored.clone())));
        let service = mocks.service(cache, clock.clone());
        for _ in 0..3 {
            let _ = service.login("ann@example.com", "wrong", None, &client()).await;
        }
        clock.advance(chrono::Duration::minutes(15));
        let pair = service.login("ann@example.com", "right", None, &client()).await.expect("the window has passed");
        assert_eq!(pair.access_token, "jwt");
    }

    #[tokio::test]
    async fn an_unknown_address_burns_a_dummy_hash_and_answers_like_a_wrong_password() {
        let clock = clock();
        let mut mocks = Mocks::new();
        mocks.users.expect_by_email().times(1).returning(|_| Ok(None));
        mocks.hasher.expect_verify_dummy().times(1).returning(|_| Ok(()));
        mocks.hasher.expect_verify().times(0);
        let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock);
        let result = service.login("ghost@example.com", "whatever", None, &client()).await;
        assert!(matches!(result, Err(AuthError::InvalidCredentials)), "{result:?}");
    }

    #[tokio::test]
    async fn a_successful_login_opens_one_session_storing_only_the_refresh_digest() {
        let clock = clock();
        let mut mocks = Mocks::new();
        let ann = user("ann@example.com");
        let ann_id = ann.id;
        let stored = ann.clone();
        mocks.users.expect_by_email().returning(move |_| Ok(Some(ann.clone())));
        mocks.users.expect_by_id().returning(move |_| Ok(Some(stored.clone())));
        mocks.hasher.expect_verify().returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: false }));
        mocks
            .sessions
            .expect_create()
            .times(1)
            .withf(move |session, hash| session.user_id == ann_id && hash.starts_with("digest:token-"))
            .returning(|_, _| Ok(()));
        mocks.sessions.expect_list_active().returning(|_, _| Ok(Vec::new()));
        mocks
            .access
            .expect_issue()
            .times(1)
            .withf(move |claims| claims.user_id == ann_id)
            .returning(|_| Ok("jwt".into()));
        let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock);
        let pair = service.login("ann@example.com", "right", None, &client()).await.expect("signed in");
        assert!(pair.refresh_token.starts_with("token-"), "the client gets the token, storage its digest");
        assert_eq!(pair.expires_in, 900);
    }

    #[tokio::test]
    async fn an_outdated_hash_is_replaced_after_a_successful_check() {
        let clock = clock();
        let mut mocks = Mocks::new();
        let ann = user("ann@example.com");
        let mut rehashed = ann.clone();
        rehashed.password_hash = "$argon2id$new".into();
        mocks.users.expect_by_email().returning(move |_| Ok(Some(ann.clone())));
        mocks.users.expect_by_id().returning(move |_| Ok(Some(rehashed.clone())));
        mocks.hasher.expect_verify().returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: true }));
        mocks.hasher.expect_hash().times(1).returning(|_| Ok("$argon2id$new".into()));
        mocks
            .users
            .expect_set_password_hash()
            .times(1)
            .withf(|_, hash, _| hash == "$argon2id$new")
            .returning(|_, _, _| Ok(()));
        mocks.sessions.expect_create().returning(|_, _| Ok(()));
        mocks.sessions.expect_list_active().returning(|_, _| Ok(Vec::new()));
        mocks.access.expect_issue().returning(|_| Ok("jwt".into()));
        let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock);
        service.login("ann@example.com", "right", None, &client()).await.expect("signed in");
    }

    #[tokio::test]
    async fn the_oldest_sessions_give_way_beyond_the_cap() {
        let clock = clock();
        let cache = Arc::new(InMemoryCache::new(clock.clone()));
        let mut mocks = Mocks::new();
        let ann = user("ann@example.com");
        let ann_id = ann.id;
        let stored = ann.clone();
        mocks.users.expect_by_email().returning(move |_| Ok(Some(ann.clone())));
        mocks.users.expect_by_id().returning(move |_| Ok(Some(stored.clone())));
        mocks.hasher.expect_verify().returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: false }));
        mocks.sessions.expect_create().returning(|_, _| Ok(()));
        let sessions: Vec<Session> = (0..MAX_SESSIONS + 2).map(|_| session_of(ann_id)).collect();
        let oldest: Vec<SessionId> = sessions.iter().skip(MAX_SESSIONS).map(|s| s.id).collect();
        mocks.sessions.expect_list_active().returning(move |_, _| Ok(sessions.clone()));
        let expected = oldest.clone();
        mocks
            .sessions
            .expect_revoke()
            .times(2)
            .withf(move |_, id, _| expected.contains(id))
            .returning(|_, _, _| Ok(true));
        mocks.access.expect_issue().returning(|_| Ok("jwt".into()));
        let service = mocks.service(cache.clone(), clock);
        service.login("ann@example.com", "right", None, &client()).await.expect("signed in");
        for id in oldest {
            assert!(cache.get(&format!("auth:session-revoked:{id}")).await.expect("get").is_some());
        }
    }

    #[tokio::test]
    async fn a_sign_in_that_raced_a_password_change_is_voided() {
        let clock = clock();
        let cache = Arc::new(InMemoryCache::new(clock.clone()));
        let mut mocks = Mocks::new();
        let ann = user("ann@example.com");
        let mut changed = ann.clone();
        changed.password_hash = "$argon2id$after-reset".into();
        mocks.users.expect_by_email().returning(move |_| Ok(Some(ann.clone())));
        mocks.users.expect_by_id().returning(move |_| Ok(Some(changed.clone())));
        mocks.hasher.expect_verify().returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: false }));
        mocks.sessions.expect_create().times(1).returning(|_, _| Ok(()));
        mocks.sessions.expect_list_active().returning(|_, _| Ok(Vec::new()));
        mocks.sessions.expect_revoke().times(1).returning(|_, _, _| Ok(true));
        mocks.access.expect_issue().returning(|_| Ok("jwt".into()));
        let service = mocks.service(cache, clock);
        let result = service.login("ann@example.com", "old password", None, &client()).await;
        assert!(matches!(result, Err(AuthError::InvalidCredentials)), "{result:?}");
    }

    #[tokio::test]
    async fn two_factor_accounts_need_a_code_and_a_missing_one_counts_as_a_failure() {
        let clock = clock();
        let cache = Arc::new(InMemoryCache::new(clock.clone()));
        let mut mocks = Mocks::new();
        let mut ann = user("ann@example.com");
        ann.totp_enabled = true;
        mocks.users.expect_by_email().returning(move |_| Ok(Some(ann.clone())));
        mocks.hasher.expect_verify().returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: false }));
        mocks.sessions.expect_create().times(0);
        let service = mocks.service(cache.clone(), clock);
        let result = service.login("ann@example.com", "right", None, &client()).await;
        assert!(matches!(result, Err(AuthError::MfaRequired)), "{result:?}");
        let count = cache.get("auth:login-failures:account:ann@example.com").await.expect("get");
        assert_eq!(count, Some(b"1".to_vec()));
    }

    #[tokio::test]
    async fn refresh_token_reuse_revokes_the_session_and_its_access_tokens_at_once() {
        let clock = clock();
        let cache = Arc::new(InMemoryCache::new(clock.clone()));
        let mut mocks = Mocks::new();
        let session = session_of(UserId::from_uuid(uuid::Uuid::now_v7()));
        let (session_id, user_id) = (session.id, session.user_id);
        mocks
            .sessions
            .expect_rotate_refresh()
            .times(1)
            .returning(move |_, _, _, _| Ok(RefreshOutcome::Reused(session_id)));
        let stored = session.clone();
        mocks.sessions.expect_get().returning(move |_| Ok(Some(stored.clone())));
        mocks
            .sessions
            .expect_revoke()
            .times(1)
            .withf(move |user, id, _| *user == user_id && *id == session_id)
            .returning(|_, _, _| Ok(true));
        let now = Utc::now();
        mocks.access.expect_verify().returning(move |_, _| {
            Ok(AccessClaims { user_id, session_id, issued_at: now, expires_at: now + chrono::Duration::minutes(15) })
        });
        let service = mocks.service(cache, clock);
        let result = service.refresh("stolen-and-replayed").await;
        assert!(matches!(result, Err(AuthError::InvalidToken)), "{result:?}");
        let auth = service.authenticate("a-still-unexpired-jwt").await;
        assert!(matches!(auth, Err(AuthError::Unauthenticated)), "{auth:?}");
    }

    #[tokio::test]
    async fn a_live_refresh_token_yields_a_new_pair_for_the_same_session() {
        let clock = clock();
        let mut mocks = Mocks::new();
        let session = session_of(UserId::from_uuid(uuid::Uuid::now_v7()));
        let session_id = session.id;
        mocks
            .sessions
            .expect_rotate_refresh()
            .times(1)
            .withf(|presented, next, _, _| presented == "digest:old" && next.starts_with("digest:token-"))
            .returning(move |_, _, _, _| Ok(RefreshOutcome::Rotated(session.clone())));
        mocks
            .access
            .expect_issue()
            .times(1)
            .withf(move |claims| claims.session_id == session_id)
            .returning(|_| Ok("jwt2".into()));
        let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock);
        let pair = service.refresh("old").await.expect("rotated");
        assert_eq!(pair.access_token, "jwt2");
        assert_ne!(pair.refresh_token, "old");
    }

    #[tokio::test]
    async fn expired_or_forged_access_tokens_never_reach_storage() {
        let clock = clock();
        let mut mocks = Mocks::new();
        mocks.access.expect_verify().returning(|_, _| Err(AccessTokenError::Expired));
        mocks.sessions.expect_touch().times(0);
        let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock);
        assert!(matches!(service.authenticate("expired").await, Err(AuthError::Unauthenticated)));
    }

    #[tokio::test]
    async fn session_activity_is_written_at_most_once_a_minute() {
        let clock = clock();
        let mut mocks = Mocks::new();
        let (user_id, session_id) =
            (UserId::from_uuid(uuid::Uuid::now_v7()), SessionId::from_uuid(uuid::Uuid::now_v7()));
        let now = Utc::now();
        mocks.access.expect_verify().returning(move |_, _| {
            Ok(AccessClaims { user_id, session_id, issued_at: now, expires_at: now + chrono::Duration::minutes(15) })
        });
        mocks.sessions.expect_touch().times(2).returning(|_, _| Ok(()));
        let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock.clone());
        for _ in 0..5 {
            service.authenticate("jwt").await.expect("valid");
        }
        clock.advance(chrono::Duration::seconds(61));
        service.authenticate("jwt").await.expect("valid");
    }

    #[tokio::test]
    async fn a_weak_new_password_does_not_burn_the_reset_token() {
        let clock = clock();
        let mut mocks = Mocks::new();
        mocks.tokens.expect_consume().times(0);
        let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock);
        let result = service.reset_password("reset-token", "password1234").await;
        assert!(matches!(result, Err(AuthError::WeakPassword(_))), "{result:?}");
    }

    #[tokio::test]
    async fn a_password_reset_revokes_every_session() {
        let clock = clock();
        let cache = Arc::new(InMemoryCache::new(clock.clone()));
        let mut mocks = Mocks::new();
        let ann = user("ann@example.com");
        let ann_id = ann.id;
        let revoked = vec![SessionId::from_uuid(uuid::Uuid::now_v7()), SessionId::from_uuid(uuid::Uuid::now_v7())];
        let revoked_ids = revoked.clone();
        mocks.tokens.expect_peek().times(1).returning(move |_, _, _| Ok(Some(ann_id)));
        mocks.tokens.expect_consume().times(1).returning(move |_, _, _| Ok(Some(ann_id)));
        mocks.hasher.expect_hash().times(1).returning(|_| Ok("$argon2id$new".into()));
        mocks.users.expect_set_password_hash().times(1).returning(|_, _, _| Ok(()));
        mocks
            .sessions
            .expect_revoke_all()
            .times(1)
            .withf(|_, except, _| except.is_none())
            .returning(move |_, _, _| Ok(revoked_ids.clone()));
        mocks.users.expect_by_id().returning(move |_| Ok(Some(ann.clone())));
        mocks
            .tokens
            .expect_invalidate()
            .times(1)
            .withf(|_, purpose, _| *purpose == TokenPurpose::PasswordReset)
            .returning(|_, _, _| Ok(()));
        let service = mocks.service(cache.clone(), clock);
        service.reset_password("reset-token", "a long and strong new pass phrase").await.expect("reset");
        for id in revoked {
            assert!(cache.get(&format!("auth:session-revoked:{id}")).await.expect("get").is_some());
        }
    }
}
