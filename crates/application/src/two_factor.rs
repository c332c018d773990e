//! TOTP two-factor sign-in: setup, enable with backup codes, disable, and the check sign-in
//! uses (a code is accepted once; a backup code once).

use std::sync::Arc;

use tenantry_domain::UserId;
use tenantry_domain::identity::{LockoutDecision, LockoutPolicy};
use tenantry_ports::{
    Cache, Clock, SecretCipher, SecretGenerator, TotpAlgorithm, TotpProvisioning, TwoFactorRepository, UserRepository,
};

use crate::auth::{AuthError, PasswordConfirmer, Principal, SecondFactor};
use crate::mail::{MailComposer, MailKind};

/// Everything [`TwoFactorService`] needs, as one struct so the composition root builds it once
/// and a test swaps single collaborators.
#[derive(Clone)]
pub struct TwoFactorPorts {
    /// Two-factor state.
    pub store: Arc<dyn TwoFactorRepository>,
    /// Accounts (for the password check on disable and the account label).
    pub users: Arc<dyn UserRepository>,
    /// Password confirmation (disable asks for it), under the sign-in lockout.
    pub confirmer: PasswordConfirmer,
    /// TOTP.
    pub totp: Arc<dyn TotpAlgorithm>,
    /// Encryption at rest of TOTP secrets.
    pub cipher: Arc<dyn SecretCipher>,
    /// Backup codes and their digests.
    pub secrets: Arc<dyn SecretGenerator>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Counters of wrong codes per account.
    pub cache: Arc<dyn Cache>,
    /// How many wrong codes an account may see before code checks are refused for a while:
    /// the sign-in lockout's policy, so a code is as hard to guess as a password.
    pub lockout: LockoutPolicy,
    /// The "two-factor changed" notice, queued with the change.
    pub mail: MailComposer,
}

/// Wrong second-factor codes per account, counted wherever a code is checked (sign-in and
/// turning two-factor off); the key names the account id, never the code.
const FAIL_CODE: &str = "auth:code-failures:account:";

/// How many backup codes `enable` returns: enough to get through a lost phone and its
/// replacement, each usable once.
pub const BACKUP_CODES: usize = 10;

/// The two-factor use cases: a second factor a stolen password alone cannot pass, with each
/// code accepted once, wrong codes limited per account, and a mail on every switch on or off.
pub struct TwoFactorService {
    ports: TwoFactorPorts,
}

fn is_backup_code_shape(code: &str) -> bool {
    code.len() == 19 && code.split('-').count() == 4
}

/// 16 characters of base32 (80 bits), grouped `xxxx-xxxx-xxxx-xxxx` so it can be read aloud.
fn backup_code(secrets: &dyn SecretGenerator) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    let digest = secrets.digest(&secrets.token(16));
    let chars: Vec<char> = digest
        .as_bytes()
        .chunks(2)
        .take(16)
        .map(|pair| {
            let value = pair.iter().fold(0_usize, |acc, b| acc * 16 + usize::from(hex_value(*b)));
            char::from(ALPHABET[value % 32])
        })
        .collect();
    chars.chunks(4).map(|group| group.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}

fn hex_value(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        b'A'..=b'F' => byte - b'A' + 10,
        _ => 0,
    }
}

fn normalise_backup_code(code: &str) -> String {
    code.trim().to_ascii_lowercase()
}

impl TwoFactorService {
    /// Wires the service; no I/O happens until a method is called.
    pub fn new(ports: TwoFactorPorts) -> Self {
        Self { ports }
    }

    /// Starts setup: a fresh secret (encrypted at rest), returned once for the authenticator app.
    ///
    /// # Errors
    /// `Invalid` (already enabled: disable first), `Unauthenticated`, `Dependency`.
    pub async fn setup(&self, principal: Principal) -> Result<TotpProvisioning, AuthError> {
        let user = self.ports.users.by_id(principal.user_id).await?.ok_or(AuthError::Unauthenticated)?;
        if user.totp_enabled {
            return Err(AuthError::Invalid {
                field: "two_factor",
                message: "two-factor sign-in is already on; disable it before setting it up again".to_owned(),
            });
        }
        let secret = self.ports.totp.new_secret();
        let provisioning = self.ports.totp.provisioning(&secret, user.email.as_str())?;
        self.ports.store.set_pending(user.id, &self.ports.cipher.seal(&secret)?, self.ports.clock.now()).await?;
        tracing::info!(target: "audit", action = "user.two_factor_setup_started", user_id = %user.id);
        Ok(provisioning)
    }

    /// Turns two-factor sign-in on with a first valid code; returns the backup codes (shown
    /// once, stored hashed).
    ///
    /// # Errors
    /// `Invalid` (no setup in progress, or wrong code), `Unauthenticated`, `Dependency`.
    pub async fn enable(&self, principal: Principal, code: &str) -> Result<Vec<String>, AuthError> {
        let record = self.ports.store.get(principal.user_id).await?.ok_or(AuthError::Unauthenticated)?;
        if record.secret.is_some() {
            return Err(AuthError::Invalid { field: "code", message: "two-factor sign-in is already on".to_owned() });
        }
        let sealed = record
            .pending_secret
            .ok_or_else(|| AuthError::Invalid { field: "code", message: "call /auth/2fa/setup first".to_owned() })?;
        let secret = self.ports.cipher.open(&sealed)?;
        let step = self
            .ports
            .totp
            .matching_step(&secret, code, self.ports.clock.now().timestamp())
            .ok_or_else(|| AuthError::Invalid { field: "code", message: "is not the current code".to_owned() })?;
        let codes: Vec<String> = (0..BACKUP_CODES).map(|_| backup_code(self.ports.secrets.as_ref())).collect();
        let hashes: Vec<String> = codes.iter().map(|code| self.ports.secrets.digest(code)).collect();
        let user = self.ports.users.by_id(principal.user_id).await?.ok_or(AuthError::Unauthenticated)?;
        let now = self.ports.clock.now();
        let notice = self.notice(&user.email, true, now)?;
        self.ports.store.enable(principal.user_id, &sealed, step, &hashes, now, &[notice]).await?;
        tracing::info!(target: "audit", action = "user.two_factor_enabled", user_id = %principal.user_id);
        Ok(codes)
    }

    /// Turns two-factor sign-in off; needs the password and a current code (or backup code).
    ///
    /// # Errors
    /// `Invalid` (password or code wrong, or not enabled), `Locked` (too many wrong passwords
    /// or codes), `Unauthenticated`, `Dependency`.
    pub async fn disable(&self, principal: Principal, password: &str, code: &str) -> Result<(), AuthError> {
        let user = self.ports.users.by_id(principal.user_id).await?.ok_or(AuthError::Unauthenticated)?;
        if !user.totp_enabled {
            return Err(AuthError::Invalid { field: "code", message: "two-factor sign-in is not on".to_owned() });
        }
        self.ports.confirmer.confirm(&user, password, "password").await?;
        if !self.check_code(user.id, code).await? {
            return Err(AuthError::Invalid { field: "code", message: "is not a valid code".to_owned() });
        }
        let now = self.ports.clock.now();
        let notice = self.notice(&user.email, false, now)?;
        self.ports.store.disable(user.id, now, &[notice]).await?;
        tracing::info!(target: "audit", action = "user.two_factor_disabled", user_id = %user.id);
        Ok(())
    }

    /// The mail telling the account's owner that two-factor sign-in went on or off: whoever
    /// holds a stolen session could otherwise switch it off unnoticed.
    fn notice(
        &self,
        to: &tenantry_domain::Email,
        enabled: bool,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<tenantry_ports::QueuedMail, AuthError> {
        let context = serde_json::json!({
            "enabled": enabled,
            "at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        });
        Ok(self.ports.mail.compose(MailKind::TwoFactorChanged, to, &context)?)
    }

    /// As [`Self::code_matches`], under the per-account limit on wrong codes: the attempt is
    /// counted before the code is checked (parallel guesses cannot share one "no failures
    /// yet" read), a right code clears the count, and past the limit every attempt is
    /// `Locked` until the window ends — right code or not.
    ///
    /// # Errors
    /// `Locked`, `Dependency`.
    async fn check_code(&self, user_id: UserId, code: &str) -> Result<bool, AuthError> {
        let key = format!("{FAIL_CODE}{user_id}");
        let policy = self.ports.lockout;
        let attempts = self.ports.cache.increment(&key, 1, Some(policy.window)).await?;
        let earlier = u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
        if earlier >= policy.max_failures
            && let LockoutDecision::Locked { retry_after } = policy.decide(earlier, self.ports.cache.ttl(&key).await?)
        {
            tracing::info!(target: "audit", action = "user.second_factor_locked", user_id = %user_id);
            return Err(AuthError::Locked { retry_after });
        }
        let matches = self.code_matches(user_id, code).await?;
        if matches {
            self.ports.cache.delete(&key).await?;
        } else {
            tracing::info!(target: "audit", action = "user.second_factor_failed", user_id = %user_id);
        }
        Ok(matches)
    }

    /// A TOTP code of a step later than the last accepted one, or an unused backup code.
    async fn code_matches(&self, user_id: UserId, code: &str) -> Result<bool, AuthError> {
        let Some(record) = self.ports.store.get(user_id).await? else { return Ok(false) };
        let Some(sealed) = record.secret else { return Ok(false) };
        if is_backup_code_shape(code.trim()) {
            let hash = self.ports.secrets.digest(&normalise_backup_code(code));
            let used = self.ports.store.consume_backup_code(user_id, &hash, self.ports.clock.now()).await?;
            if used {
                tracing::info!(target: "audit", action = "user.backup_code_used", user_id = %user_id);
            }
            return Ok(used);
        }
        let secret = self.ports.cipher.open(&sealed)?;
        match self.ports.totp.matching_step(&secret, code, self.ports.clock.now().timestamp()) {
            // The conditional write refuses a step already used, even by a concurrent request.
            Some(step) => Ok(self.ports.store.advance_step(user_id, step).await?),
            None => Ok(false),
        }
    }
}

#[async_trait::async_trait]
impl SecondFactor for TwoFactorService {
    async fn verify_login_code(&self, user_id: UserId, code: &str) -> Result<bool, AuthError> {
        self.check_code(user_id, code).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;

    impl SecretGenerator for Fixed {
        fn token(&self, bytes: usize) -> String {
            "t".repeat(bytes)
        }

        fn digest(&self, token: &str) -> String {
            format!("{:064x}", token.len() * 7919)
        }
    }

    #[test]
    fn backup_codes_are_four_groups_of_four_base32_characters() {
        let code = backup_code(&Fixed);
        assert!(is_backup_code_shape(&code), "{code}");
        assert!(code.chars().all(|c| c == '-' || c.is_ascii_lowercase() || ('2'..='7').contains(&c)), "{code}");
        assert!(!is_backup_code_shape("123456"));
        assert_eq!(normalise_backup_code(" ABCD-efgh-2345-6777 "), "abcd-efgh-2345-6777");
    }
}
