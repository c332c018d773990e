use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use tenantry_ports::{CryptoError, SecretCipher};

/// [`SecretCipher`] with XChaCha20-Poly1305 (random 192-bit nonces, so no nonce bookkeeping).
/// Sealed values read `v1.<base64url(nonce ‖ ciphertext)>`, so the format can evolve.
pub struct XChaChaCipher {
    cipher: XChaCha20Poly1305,
}

/// Why an encryption key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CipherKeyError {
    /// Not 32 bytes of standard base64.
    #[error("must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)")]
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

impl XChaChaCipher {
    /// A cipher from a base64 32-byte key.
    ///
    /// # Errors
    /// [`CipherKeyError::Format`].
    pub fn from_base64(key: &str) -> Result<Self, CipherKeyError> {
        let bytes = STANDARD.decode(key.trim()).map_err(|_| CipherKeyError::Format)?;
        if bytes.len() != 32 {
            return Err(CipherKeyError::Format);
        }
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| CipherKeyError::Format)?;
        Ok(Self { cipher })
    }

    /// The key in `path`, or a new random one written there (mode 0600), for the embedded
    /// default.
    ///
    /// # Errors
    /// [`CipherKeyError`].
    pub fn load_or_generate(path: &Path) -> Result<Self, CipherKeyError> {
        let io = |source| CipherKeyError::Io { path: path.display().to_string(), source };
        match std::fs::read_to_string(path) {
            Ok(key) => Self::from_base64(&key),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let key = XChaCha20Poly1305::generate_key(&mut OsRng);
                let encoded = STANDARD.encode(key);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                crate::jwt::write_private(path, encoded.as_bytes()).map_err(io)?;
                Self::from_base64(&encoded)
            }
            Err(err) => Err(io(err)),
        }
    }
}

impl SecretCipher for XChaChaCipher {
    fn seal(&self, plaintext: &[u8]) -> Result<String, CryptoError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self.cipher.encrypt(&nonce, plaintext).map_err(|_| CryptoError::Malformed)?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&ciphertext);
        Ok(format!("v1.{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    fn open(&self, sealed: &str) -> Result<Vec<u8>, CryptoError> {
        let encoded = sealed.strip_prefix("v1.").ok_or(CryptoError::Malformed)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| CryptoError::Malformed)?;
        if bytes.len() < 24 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| CryptoError::Malformed)?;
        self.cipher.decrypt(&XNonce::from(nonce), ciphertext).map_err(|_| CryptoError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_with_the_same_key_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cipher = XChaChaCipher::load_or_generate(&dir.path().join("k")).expect("key");
        let sealed = cipher.seal(b"totp secret").expect("seal");
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("totp secret"));
        assert_ne!(sealed, cipher.seal(b"totp secret").expect("seal"), "fresh nonce every time");
        assert_eq!(cipher.open(&sealed).expect("open"), b"totp secret");
        let same = XChaChaCipher::load_or_generate(&dir.path().join("k")).expect("key reread");
        assert_eq!(same.open(&sealed).expect("open"), b"totp secret");
        let other = XChaChaCipher::load_or_generate(&dir.path().join("other")).expect("key");
        assert!(other.open(&sealed).is_err());
        let mut tampered = sealed.clone();
        tampered.push('A');
        assert!(cipher.open(&tampered).is_err());
        assert!(matches!(XChaChaCipher::from_base64("c2hvcnQ="), Err(CipherKeyError::Format)));
    }
}
