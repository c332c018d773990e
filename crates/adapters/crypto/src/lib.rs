//! Crypto adapters. Keys and algorithms stay here: the application asks for "a hash", "a
//! token", "a secret", never for argon2 or Ed25519.

mod cipher;
mod jwt;
mod password;
mod secrets;
mod totp;

pub use cipher::{CipherKeyError, XChaChaCipher};
pub use jwt::{Ed25519AccessTokens, JwtKeyError, load_or_generate_signing_key, parse_signing_key};
pub use password::{Argon2Hasher, Argon2Settings};
pub use secrets::RandomSecrets;
pub use totp::Rfc6238Totp;
