use tenantry_ports::{CryptoError, TotpAlgorithm, TotpProvisioning};
use totp_rs::{Algorithm, Secret, TOTP};

/// RFC 6238 TOTP with totp-rs: SHA-1, 6 digits, 30-second steps, ±1 step of drift — what
/// every authenticator app implements.
#[derive(Debug, Clone)]
pub struct Rfc6238Totp {
    issuer: String,
}

const STEP: i64 = 30;

impl Rfc6238Totp {
    /// Labels accounts in authenticator apps with `issuer`.
    pub fn new(issuer: impl Into<String>) -> Self {
        Self { issuer: issuer.into() }
    }

    fn totp(&self, secret: &[u8], account: &str) -> Result<TOTP, CryptoError> {
        TOTP::new(Algorithm::SHA1, 6, 1, 30, secret.to_vec(), Some(self.issuer.clone()), account.to_owned())
            .map_err(|_| CryptoError::Malformed)
    }
}

impl TotpAlgorithm for Rfc6238Totp {
    fn new_secret(&self) -> Vec<u8> {
        Secret::generate_secret().to_bytes().unwrap_or_default()
    }

    fn provisioning(&self, secret: &[u8], account: &str) -> Result<TotpProvisioning, CryptoError> {
        let totp = self.totp(secret, account)?;
        Ok(TotpProvisioning {
            secret_base32: totp.get_secret_base32(),
            otpauth_url: totp.get_url(),
            qr_png_base64: totp.get_qr_base64().map_err(|_| CryptoError::Malformed)?,
        })
    }

    fn matching_step(&self, secret: &[u8], code: &str, unix_time: i64) -> Option<i64> {
        let code = code.trim();
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let totp = self.totp(secret, "check").ok()?;
        let step = unix_time.div_euclid(STEP);
        [step - 1, step, step + 1].into_iter().find(|candidate| {
            u64::try_from(candidate * STEP)
                .is_ok_and(|time| constant_time_eq(totp.generate(time).as_bytes(), code.as_bytes()))
        })
    }

    fn code_at(&self, secret: &[u8], unix_time: i64) -> String {
        match (self.totp(secret, "code"), u64::try_from(unix_time)) {
            (Ok(totp), Ok(time)) => totp.generate(time),
            _ => String::new(),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_step_with_one_step_of_drift() {
        let totp = Rfc6238Totp::new("Tenantry");
        let secret = totp.new_secret();
        assert_eq!(secret.len(), 20);
        let now = 1_800_000_015;
        let code = totp.code_at(&secret, now);
        assert_eq!(totp.matching_step(&secret, &code, now), Some(now / 30));
        assert_eq!(totp.matching_step(&secret, &code, now + 30), Some(now / 30), "one step late is fine");
        assert_eq!(totp.matching_step(&secret, &code, now + 90), None, "three steps late is not");
        assert_eq!(totp.matching_step(&secret, "12345", now), None);
        assert_eq!(totp.matching_step(&secret, "abcdef", now), None);
    }

    #[test]
    fn the_rfc_6238_test_vector_holds() {
        // RFC 6238 appendix B, SHA-1, T = 59 s → 94287082 (8 digits); the 6-digit code is its tail.
        let totp = Rfc6238Totp::new("Tenantry");
        assert_eq!(totp.code_at(b"12345678901234567890", 59), "287082");
    }

    #[test]
    fn provisioning_gives_an_otpauth_url_and_a_png() {
        let totp = Rfc6238Totp::new("Tenantry");
        let secret = totp.new_secret();
        let p = totp.provisioning(&secret, "ann@example.com").expect("provisioning");
        assert!(p.otpauth_url.starts_with("otpauth://totp/Tenantry:ann%40example.com?secret="), "{}", p.otpauth_url);
        assert!(p.otpauth_url.contains(&p.secret_base32));
        assert!(p.qr_png_base64.starts_with("iVBORw0KGgo"), "base64 of a PNG signature");
    }
}
