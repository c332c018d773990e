//! Two-factor sign-in: storage of TOTP secrets and backup codes, the TOTP algorithm, and the
//! cipher that keeps secrets encrypted at rest.

use chrono::{DateTime, Utc};
use tenantry_domain::UserId;

use crate::{CryptoError, QueuedMail, StoreError};

/// A user's two-factor state; secrets are sealed by a [`SecretCipher`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TwoFactorRecord {
    /// Secret from `setup`, waiting for a first valid code.
    pub pending_secret: Option<String>,
    /// The active secret, once enabled.
    pub secret: Option<String>,
    /// The last accepted time step: codes of this step or earlier are refused (no replay).
    pub last_step: Option<i64>,
}

/// Storage of two-factor state, with the atomic steps (step advance, backup-code use) that keep
/// a code from being accepted twice even when two sign-ins race.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait TwoFactorRepository: Send + Sync {
    /// The user's state (`None` when the user does not exist).
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn get(&self, user_id: UserId) -> Result<Option<TwoFactorRecord>, StoreError>;

    /// Stores a new pending secret (replacing any earlier one).
    ///
    /// # Errors
    /// `NotFound`, `Unavailable`, `Unexpected`.
    async fn set_pending(&self, user_id: UserId, sealed: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Activates `sealed` (the pending secret) with its first accepted step, and replaces the
    /// backup codes, and queues `mails` (the "two-factor enabled" notice), in one transaction.
    ///
    /// # Errors
    /// `NotFound`, `Unavailable`, `Unexpected`.
    async fn enable(
        &self,
        user_id: UserId,
        sealed: &str,
        first_step: i64,
        backup_code_hashes: &[String],
        now: DateTime<Utc>,
        mails: &[QueuedMail],
    ) -> Result<(), StoreError>;

    /// Turns two-factor sign-in off and forgets secrets and backup codes, and queues `mails`
    /// (the "two-factor disabled" notice), in one transaction.
    ///
    /// # Errors
    /// `NotFound`, `Unavailable`, `Unexpected`.
    async fn disable(&self, user_id: UserId, now: DateTime<Utc>, mails: &[QueuedMail]) -> Result<(), StoreError>;

    /// Records `step` as used if it is later than the last one; `false` means replay. Atomic.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn advance_step(&self, user_id: UserId, step: i64) -> Result<bool, StoreError>;

    /// Marks an unused backup code used; `false` when unknown or used. Atomic.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn consume_backup_code(
        &self,
        user_id: UserId,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// How many backup codes are still unused: what a user may see of their codes (the
    /// personal-data export shows it), the codes themselves being stored only as hashes.
    ///
    /// # Errors
    /// `Unavailable`, `Unexpected`.
    async fn backup_codes_left(&self, user_id: UserId) -> Result<u32, StoreError>;
}

/// What an authenticator app needs to add an account: the QR code for scanning, the secret
/// for typing in when the camera is not an option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpProvisioning {
    /// The secret in base32, for manual entry.
    pub secret_base32: String,
    /// `otpauth://totp/…` URL.
    pub otpauth_url: String,
    /// QR code of the URL, PNG, base64.
    pub qr_png_base64: String,
}

/// RFC 6238 TOTP (30-second steps, 6 digits, ±1 step of clock drift).
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait TotpAlgorithm: Send + Sync {
    /// A fresh random secret (160 bits, the length RFC 4226 recommends).
    fn new_secret(&self) -> Vec<u8>;

    /// The provisioning data for `secret` and the account label.
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] for a secret of the wrong size.
    fn provisioning(&self, secret: &[u8], account: &str) -> Result<TotpProvisioning, CryptoError>;

    /// The time step whose code is `code` at `unix_time` (±1 step), if any.
    fn matching_step(&self, secret: &[u8], code: &str, unix_time: i64) -> Option<i64>;

    /// The code for `unix_time` (for tests and tooling).
    fn code_at(&self, secret: &[u8], unix_time: i64) -> String;
}

/// Authenticated encryption of secrets at rest, with a key from configuration: a database
/// dump alone yields neither TOTP secrets nor queued mail.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait SecretCipher: Send + Sync {
    /// Encrypts `plaintext` with a fresh nonce.
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] if encryption fails.
    fn seal(&self, plaintext: &[u8]) -> Result<String, CryptoError>;

    /// Decrypts what [`Self::seal`] produced.
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] for tampered data or another key.
    fn open(&self, sealed: &str) -> Result<Vec<u8>, CryptoError>;
}
