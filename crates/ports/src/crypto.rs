//! Hashing, token signing and randomness: CPU-bound or key-holding work kept behind ports so
//! the application never sees a key or an algorithm.

use chrono::{DateTime, Utc};
use tenantry_domain::{SessionId, UserId};

/// Failures of the crypto ports: few, because hashing and signing fail only on bad stored
/// material or a missing worker, and callers treat both as a server fault.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The stored hash or key material is not in a format this adapter reads.
    #[error("malformed stored credential")]
    Malformed,
    /// The worker pool is saturated or gone.
    #[error("crypto worker unavailable")]
    Unavailable(#[source] anyhow::Error),
}

/// Whether a password matched its stored hash, and whether the hash should be upgraded while
/// the plain password is at hand (the only moment it can be).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// It matched; `needs_rehash` when the hash uses older parameters than today's.
    Valid {
        /// Re-hash with current parameters and store.
        needs_rehash: bool,
    },
    /// It did not; callers answer exactly as for an unknown account.
    Invalid,
}

/// Password hashing (argon2id in production), behind a port so the CPU-heavy work can run on
/// a worker pool and tests can use a cheap stand-in.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait PasswordHasher: Send + Sync {
    /// A PHC string for `password`, with a fresh salt.
    ///
    /// # Errors
    /// [`CryptoError::Unavailable`].
    async fn hash(&self, password: &str) -> Result<String, CryptoError>;

    /// Checks `password` against `phc`. Takes as long for a wrong password as for a right one.
    ///
    /// # Errors
    /// [`CryptoError::Malformed`], [`CryptoError::Unavailable`].
    async fn verify(&self, password: &str, phc: &str) -> Result<PasswordCheck, CryptoError>;

    /// Burns the same time as a real `verify`, for unknown accounts, so timing does not reveal
    /// which e-mail addresses have accounts.
    ///
    /// # Errors
    /// [`CryptoError::Unavailable`].
    async fn verify_dummy(&self, password: &str) -> Result<(), CryptoError>;
}

/// What an access token says: enough to authenticate a request without a database read, with
/// the session id so a revoked session's tokens can be refused before they expire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// The user.
    pub user_id: UserId,
    /// The session that issued it (revocation is per session).
    pub session_id: SessionId,
    /// Issue time.
    pub issued_at: DateTime<Utc>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// Why an access token was refused; both mean "unauthenticated" to clients, split so a client
/// can tell that refreshing may help (`Expired`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenError {
    /// Bad signature, unknown key, wrong issuer, malformed.
    #[error("invalid access token")]
    Invalid,
    /// Past its expiry.
    #[error("expired access token")]
    Expired,
}

/// One public key that verifies access tokens, as published in the JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    /// Key id (the `kid` header of tokens it verifies).
    pub kid: String,
    /// JWK key type (`OKP`).
    pub kty: String,
    /// Curve (`Ed25519`).
    pub crv: String,
    /// Public key, base64url.
    pub x: String,
    /// Algorithm (`EdDSA`).
    pub alg: String,
}

/// Signs and verifies access tokens (asymmetric JWTs), so other services can verify tokens
/// from the published public keys and the signing key never leaves this adapter.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait AccessTokenIssuer: Send + Sync {
    /// A signed token for `claims`, with the current key's `kid`.
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] if the key cannot sign.
    fn issue(&self, claims: &AccessClaims) -> Result<String, CryptoError>;

    /// The claims of a valid token.
    ///
    /// # Errors
    /// [`AccessTokenError`].
    fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, AccessTokenError>;

    /// Every key that may verify a live token: the current one and those rotated out less
    /// than one access-token lifetime ago.
    fn public_keys(&self) -> Vec<PublicJwk>;
}

/// Unguessable secrets and their digests: every bearer token (refresh, reset, invitation, API
/// key, backup code) is generated here and only its digest is stored, so a database leak does
/// not hand out working credentials.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait SecretGenerator: Send + Sync {
    /// A URL-safe random token carrying `bytes` bytes of entropy.
    fn token(&self, bytes: usize) -> String;

    /// A stable digest for storing a high-entropy token (a fast hash is right here: the
    /// input is random, not a password).
    fn digest(&self, token: &str) -> String;
}
