use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeZone, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::rngs::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tenantry_domain::{SessionId, UserId};
use tenantry_ports::{AccessClaims, AccessTokenError, AccessTokenIssuer, CryptoError, PublicJwk};

/// Why a signing key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum JwtKeyError {
    /// Not a PKCS#8 PEM Ed25519 private key.
    #[error("not a PKCS#8 PEM Ed25519 private key (generate one with `openssl genpkey -algorithm ed25519`)")]
    Format,
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Parses a PKCS#8 PEM Ed25519 private key.
///
/// # Errors
/// [`JwtKeyError::Format`].
pub fn parse_signing_key(pem: &str) -> Result<SigningKey, JwtKeyError> {
    SigningKey::from_pkcs8_pem(pem.trim()).map_err(|_| JwtKeyError::Format)
}

/// The key in `path`, or a new one written there (mode 0600) for the embedded default: the
/// key survives restarts, so sessions do too.
///
/// # Errors
/// [`JwtKeyError`].
pub fn load_or_generate_signing_key(path: &Path) -> Result<SigningKey, JwtKeyError> {
    let io = |source| JwtKeyError::Io { path: path.display().to_string(), source };
    match std::fs::read_to_string(path) {
        Ok(pem) => parse_signing_key(&pem),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(&mut OsRng);
            let pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|_| JwtKeyError::Format)?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            write_private(path, pem.as_bytes()).map_err(io)?;
            tracing::info!(path = %path.display(), "generated a new access-token signing key");
            Ok(key)
        }
        Err(err) => Err(io(err)),
    }
}

#[cfg(unix)]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    sid: String,
    iat: i64,
    exp: i64,
    typ: String,
}

struct VerificationKey {
    kid: String,
    x: String,
    key: DecodingKey,
}

/// [`AccessTokenIssuer`] signing EdDSA (Ed25519) JWTs with a `kid`; previous keys keep
/// verifying (and stay in the JWKS) so a key rotation does not sign everybody out.
pub struct Ed25519AccessTokens {
    issuer: String,
    kid: String,
    encoding: EncodingKey,
    keys: Vec<VerificationKey>,
    /// Tokens whose signature already verified, with their claims: a client presents the same
    /// access token for up to 15 minutes, and a signature check costs more than the rest of an
    /// authenticated request. Expiry is still checked on every hit; the map is bounded.
    verified: Mutex<HashMap<String, AccessClaims>>,
}

/// Most verified tokens remembered at once (about 5 MiB at the worst).
const VERIFIED_CACHE: usize = 10_000;

fn kid_of(public: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public.as_bytes())[..8])
}

fn verification_key(public: &VerifyingKey) -> Result<VerificationKey, CryptoError> {
    let x = URL_SAFE_NO_PAD.encode(public.as_bytes());
    let key = DecodingKey::from_ed_components(&x).map_err(|_| CryptoError::Malformed)?;
    Ok(VerificationKey { kid: kid_of(public), x, key })
}

impl Ed25519AccessTokens {
    /// Signs with `current`; also verifies tokens of `previous` keys. `issuer` is the public
    /// URL, checked on every token.
    ///
    /// # Errors
    /// [`CryptoError::Malformed`] if a key cannot be encoded.
    pub fn new(issuer: String, current: &SigningKey, previous: &[VerifyingKey]) -> Result<Self, CryptoError> {
        let der = current.to_pkcs8_der().map_err(|_| CryptoError::Malformed)?;
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        let mut keys = vec![verification_key(&current.verifying_key())?];
        for key in previous {
            keys.push(verification_key(key)?);
        }
        Ok(Self { issuer, kid: kid_of(&current.verifying_key()), encoding, keys, verified: Mutex::new(HashMap::new()) })
    }
}

fn at(seconds: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(seconds, 0).single()
}

impl AccessTokenIssuer for Ed25519AccessTokens {
    fn issue(&self, claims: &AccessClaims) -> Result<String, CryptoError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let body = Claims {
            iss: self.issuer.clone(),
            sub: claims.user_id.to_string(),
            sid: claims.session_id.to_string(),
            iat: claims.issued_at.timestamp(),
            exp: claims.expires_at.timestamp(),
            typ: "access".to_owned(),
        };
        jsonwebtoken::encode(&header, &body, &self.encoding).map_err(|_| CryptoError::Malformed)
    }

    fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<AccessClaims, AccessTokenError> {
        let known = self.verified.lock().unwrap_or_else(PoisonError::into_inner).get(token).cloned();
        let claims = match known {
            Some(claims) => claims,
            None => {
                let claims = self.verify_signature(token)?;
                let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
                if verified.len() >= VERIFIED_CACHE {
                    verified.retain(|_, claims| claims.expires_at > now);
                    if verified.len() >= VERIFIED_CACHE {
                        verified.clear();
                    }
                }
                verified.insert(token.to_owned(), claims.clone());
                claims
            }
        };
        if claims.expires_at <= now {
            return Err(AccessTokenError::Expired);
        }
        Ok(claims)
    }

    fn public_keys(&self) -> Vec<PublicJwk> {
        self.keys
            .iter()
            .map(|key| PublicJwk {
                kid: key.kid.clone(),
                kty: "OKP".to_owned(),
                crv: "Ed25519".to_owned(),
                x: key.x.clone(),
                alg: "EdDSA".to_owned(),
            })
            .collect()
    }
}

impl Ed25519AccessTokens {
    /// Checks the signature, key, issuer and shape; not the expiry.
    fn verify_signature(&self, token: &str) -> Result<AccessClaims, AccessTokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AccessTokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(AccessTokenError::Invalid);
        }
        let kid = header.kid.ok_or(AccessTokenError::Invalid)?;
        let key = self.keys.iter().find(|key| key.kid == kid).ok_or(AccessTokenError::Invalid)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        // Expiry is checked below against the injected clock, not the system's.
        validation.validate_exp = false;
        let data =
            jsonwebtoken::decode::<Claims>(token, &key.key, &validation).map_err(|_| AccessTokenError::Invalid)?;
        let claims = data.claims;
        if claims.typ != "access" {
            return Err(AccessTokenError::Invalid);
        }
        let expires_at = at(claims.exp).ok_or(AccessTokenError::Invalid)?;
        Ok(AccessClaims {
            user_id: claims.sub.parse::<UserId>().map_err(|_| AccessTokenError::Invalid)?,
            session_id: claims.sid.parse::<SessionId>().map_err(|_| AccessTokenError::Invalid)?,
            issued_at: at(claims.iat).ok_or(AccessTokenError::Invalid)?,
            expires_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: DateTime<Utc>) -> AccessClaims {
        AccessClaims {
            user_id: UserId::from_uuid(uuid::Uuid::now_v7()),
            session_id: SessionId::from_uuid(uuid::Uuid::now_v7()),
            issued_at: now,
            expires_at: now + chrono::Duration::minutes(15),
        }
    }

    fn issuer(key: &SigningKey, previous: &[VerifyingKey]) -> Ed25519AccessTokens {
        Ed25519AccessTokens::new("https://api.example".into(), key, previous).expect("keys")
    }

    #[test]
    fn an_issued_token_verifies_to_its_claims_until_it_expires() {
        let key = SigningKey::generate(&mut OsRng);
        let tokens = issuer(&key, &[]);
        let now = Utc.timestamp_opt(Utc::now().timestamp(), 0).single().expect("now");
        let claims = claims(now);
        let token = tokens.issue(&claims).expect("signs");
        assert_eq!(tokens.verify(&token, now).expect("valid"), claims);
        assert_eq!(tokens.verify(&token, now + chrono::Duration::minutes(15)), Err(AccessTokenError::Expired));
    }

    #[test]
    fn tampered_foreign_and_wrong_issuer_tokens_are_invalid() {
        let key = SigningKey::generate(&mut OsRng);
        let tokens = issuer(&key, &[]);
        let now = Utc::now();
        let token = tokens.issue(&claims(now)).expect("signs");
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(tokens.verify(&tampered, now), Err(AccessTokenError::Invalid));
        let stranger = issuer(&SigningKey::generate(&mut OsRng), &[]);
        assert_eq!(stranger.verify(&token, now), Err(AccessTokenError::Invalid));
        let other_issuer = Ed25519AccessTokens::new("https://evil.example".into(), &key, &[]).expect("keys");
        assert_eq!(other_issuer.verify(&token, now), Err(AccessTokenError::Invalid));
        assert_eq!(tokens.verify("not.a.jwt", now), Err(AccessTokenError::Invalid));
    }

    #[test]
    fn after_rotation_old_tokens_still_verify_and_both_keys_are_published() {
        let old = SigningKey::generate(&mut OsRng);
        let new = SigningKey::generate(&mut OsRng);
        let now = Utc::now();
        let old_token = issuer(&old, &[]).issue(&claims(now)).expect("signs");
        let rotated = issuer(&new, &[old.verifying_key()]);
        rotated.verify(&old_token, now).expect("old tokens keep working until they expire");
        let kids: Vec<String> = rotated.public_keys().into_iter().map(|k| k.kid).collect();
        assert_eq!(kids, vec![kid_of(&new.verifying_key()), kid_of(&old.verifying_key())]);
        let header = jsonwebtoken::decode_header(rotated.issue(&claims(now)).expect("signs")).expect("header");
        assert_eq!(header.kid, Some(kid_of(&new.verifying_key())), "new tokens use the new key");
    }

    #[test]
    fn a_generated_key_is_written_once_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/jwt.pem");
        let first = load_or_generate_signing_key(&path).expect("generates");
        let second = load_or_generate_signing_key(&path).expect("reads");
        assert_eq!(first.to_bytes(), second.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("exists").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(parse_signing_key("garbage"), Err(JwtKeyError::Format)));
    }
}
