//! Sign-in sessions and token lifetimes.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{SessionId, UserId};

/// One signed-in device: what the user sees in "your sessions" and can revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its id, carried in every access token it issues.
    pub id: SessionId,
    /// Whose.
    pub user_id: UserId,
    /// The client's `user-agent` at sign-in (truncated).
    pub user_agent: Option<String>,
    /// The client's address at sign-in.
    pub ip: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Last authenticated request (written at most once a minute).
    pub last_seen_at: DateTime<Utc>,
    /// When its refresh token stops working unless refreshed before.
    pub expires_at: DateTime<Utc>,
    /// When it was revoked (logout, revoke, password change, refresh-token reuse).
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Session {
    /// Whether it may still refresh and authenticate.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// What a single-use e-mailed token is for; a token for one purpose never works for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Proves the user reads the mailbox.
    EmailVerification,
    /// Lets the user set a new password.
    PasswordReset,
}

impl TokenPurpose {
    /// The stored name: stable, since issued tokens are stored and looked up under it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EmailVerification => "email_verification",
            Self::PasswordReset => "password_reset",
        }
    }
}

/// How long each credential lives: each lifetime bounds how long a leaked credential of that
/// kind stays useful.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetimes {
    /// Access tokens (JWT): short, because they are checked without a database round trip.
    pub access: Duration,
    /// Refresh tokens, extended on every refresh.
    pub refresh: Duration,
    /// E-mail verification links.
    pub email_verification: Duration,
    /// Password reset links.
    pub password_reset: Duration,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            access: Duration::from_secs(15 * 60),
            refresh: Duration::from_secs(30 * 24 * 3600),
            email_verification: Duration::from_secs(24 * 3600),
            password_reset: Duration::from_secs(3600),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_active_until_revoked_or_expired() {
        let now = Utc::now();
        let mut session = Session {
            id: SessionId::from_uuid(uuid::Uuid::now_v7()),
            user_id: UserId::from_uuid(uuid::Uuid::now_v7()),
            user_agent: None,
            ip: None,
            created_at: now,
            last_seen_at: now,
            expires_at: now + chrono::Duration::hours(1),
            revoked_at: None,
        };
        assert!(session.is_active(now));
        assert!(!session.is_active(now + chrono::Duration::hours(2)));
        session.revoked_at = Some(now);
        assert!(!session.is_active(now));
    }

    #[test]
    fn access_tokens_live_at_most_fifteen_minutes() {
        assert!(TokenLifetimes::default().access <= Duration::from_secs(900));
    }
}
