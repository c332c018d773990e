//! The caller's own profile, and the public keys that verify access tokens.

use tenantry_domain::identity::DisplayName;

use super::*;

impl AuthService {
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

    /// The JWKS keys: what other services fetch to verify access tokens themselves, including
    /// keys rotated out recently enough that tokens they signed are still live.
    pub fn public_keys(&self) -> Vec<tenantry_ports::PublicJwk> {
        self.ports.access.public_keys()
    }
}
