//! Access-token authentication, sessions and their revocation.

use crate::revocations::{SEEN, SessionCheck};

use super::*;

impl AuthService {
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

    pub(super) async fn mark_revoked(&self, sessions: &[SessionId]) -> Result<(), AuthError> {
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

    /// A page of the caller's active sessions, newest first: at most `limit`, older than
    /// `before`.
    ///
    /// # Errors
    /// `Dependency`.
    pub async fn sessions(
        &self,
        principal: Principal,
        before: Option<SessionId>,
        limit: u32,
    ) -> Result<Vec<SessionView>, AuthError> {
        let sessions = self.ports.sessions.list_active(principal.user_id, self.now(), before, limit).await?;
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
}
