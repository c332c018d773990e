use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use tenantry_ports::SecretGenerator;

/// Tokens from the OS CSPRNG; digests are hex SHA-256 (right for high-entropy tokens, which
/// need no slow hash: there is nothing to brute-force).
#[derive(Debug, Default, Clone, Copy)]
pub struct RandomSecrets;

impl SecretGenerator for RandomSecrets {
    fn token(&self, bytes: usize) -> String {
        let mut buffer = vec![0_u8; bytes];
        OsRng.fill_bytes(&mut buffer);
        URL_SAFE_NO_PAD.encode(buffer)
    }

    fn digest(&self, token: &str) -> String {
        hex::encode(Sha256::digest(token.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_url_safe_unique_and_carry_the_asked_entropy() {
        let secrets = RandomSecrets;
        let a = secrets.token(32);
        let b = secrets.token(32);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43, "32 bytes in unpadded base64url");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
    }

    #[test]
    fn digests_are_stable_hex_sha256() {
        let secrets = RandomSecrets;
        assert_eq!(secrets.digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(secrets.digest("abc").len(), 64);
    }
}
