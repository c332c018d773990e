//! Sign-in and account security: registration, e-mail verification, login with lockout,
//! rotating refresh tokens with reuse detection, sessions, password reset and change.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tenantry_domain::identity::{
    LockoutDecision, LockoutPolicy, PasswordPolicy, Session, TokenLifetimes, User, UserSettings, WeakPassword,
};
use tenantry_domain::{Email, SessionId, UserId};
use tenantry_ports::{
    AccessTokenIssuer, BackgroundTasks, Cache, Clock, CryptoError, IdGenerator, OneTimeTokenRepository, PasswordCheck,
    PasswordHasher, SecretGenerator, SessionRepository, StoreError, UserRepository,
};

use crate::revocations::SessionRevocations;

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
    /// Renders and seals mail for the outbox (token links, sign-in alerts).
    pub mail: crate::mail::MailComposer,
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

/// Policy knobs, from configuration: the security trade-offs (lifetimes, lockouts, password
/// rules) an operator tunes per deployment, kept out of the code paths that apply them.
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

impl From<crate::mail::ComposeError> for AuthError {
    fn from(err: crate::mail::ComposeError) -> Self {
        Self::Dependency(anyhow::Error::new(err))
    }
}

impl From<tenantry_ports::CacheError> for AuthError {
    fn from(err: tenantry_ports::CacheError) -> Self {
        Self::Dependency(anyhow::Error::new(err))
    }
}

/// The caller of an authenticated request, as a verified, unrevoked access token names it: the
/// session id is carried so the caller's own session can be told apart (and spared or revoked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The user.
    pub user_id: UserId,
    /// The session the access token belongs to.
    pub session_id: SessionId,
}

/// A fresh access/refresh pair: a short-lived, stateless access token for requests, and a
/// single-use refresh token whose rotation lets a stolen one be detected.
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

/// A session as the user sees it: `current` lets a client mark "this device" and warn before
/// the user revokes the session they are using.
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

/// The unit a per-address limit counts: an IPv4 address, or an IPv6 /64 (one subscriber's
/// allocation, so rotating addresses inside it does not reset the count).
pub fn address_bucket(ip: &str) -> String {
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

/// The identity use cases, over ports only: registration, sign-in with lockout and an optional
/// second factor, sessions with rotating refresh tokens, recovery and profile.
pub struct AuthService {
    ports: AuthPorts,
    settings: AuthSettings,
}

impl AuthService {
    /// Wires the service; no I/O happens until a method is called.
    pub fn new(ports: AuthPorts, settings: AuthSettings) -> Self {
        Self { ports, settings }
    }

    fn now(&self) -> DateTime<Utc> {
        self.ports.clock.now()
    }

    fn after(&self, duration: Duration) -> DateTime<Utc> {
        self.now() + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
    }
}

mod mail;
mod profile;
mod recovery;
mod registration;
mod sessions;
mod sign_in;
#[cfg(test)]
mod tests;
