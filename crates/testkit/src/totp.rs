//! The [`TotpAlgorithm`] contract: RFC 6238 as authenticator apps implement it (SHA-1,
//! 6 digits, 30-second steps, ±1 step of drift).

use tenantry_ports::{CryptoError, TotpAlgorithm};

/// The RFC 6238 test secret (ASCII `12345678901234567890`).
const RFC_SECRET: &[u8] = b"12345678901234567890";

/// Runs every case against `totp`.
///
/// # Panics
/// Naming the broken rule.
pub fn run_contract(totp: &dyn TotpAlgorithm) {
    codes_match_the_rfc_6238_test_vectors(totp);
    new_secrets_are_160_bits_and_distinct(totp);
    a_code_matches_its_own_step_and_one_step_either_side(totp);
    other_codes_do_not_match(totp);
    provisioning_carries_the_secret_and_the_account(totp);
    a_secret_of_the_wrong_size_is_malformed(totp);
}

fn codes_match_the_rfc_6238_test_vectors(totp: &dyn TotpAlgorithm) {
    // RFC 6238 appendix B, SHA-1, the last six digits.
    for (time, code) in
        [(59, "287082"), (1_111_111_109, "081804"), (1_234_567_890, "005924"), (2_000_000_000, "279037")]
    {
        assert_eq!(totp.code_at(RFC_SECRET, time), code, "RFC 6238 vector at T={time}");
    }
}

fn new_secrets_are_160_bits_and_distinct(totp: &dyn TotpAlgorithm) {
    let first = totp.new_secret();
    assert_eq!(first.len(), 20, "a TOTP secret is 160 bits");
    assert_ne!(first, totp.new_secret(), "secrets are random");
}

fn a_code_matches_its_own_step_and_one_step_either_side(totp: &dyn TotpAlgorithm) {
    let secret = totp.new_secret();
    let now = 1_700_000_015;
    let step = now / 30;
    let code = totp.code_at(&secret, now);
    assert_eq!(code.len(), 6, "six digits: {code}");
    assert!(code.chars().all(|c| c.is_ascii_digit()), "digits only: {code}");
    assert_eq!(totp.matching_step(&secret, &code, now), Some(step), "the code of now matches now's step");
    let previous = totp.code_at(&secret, now - 30);
    assert_eq!(totp.matching_step(&secret, &previous, now), Some(step - 1), "one step of drift back is accepted");
    let next = totp.code_at(&secret, now + 30);
    assert_eq!(totp.matching_step(&secret, &next, now), Some(step + 1), "one step of drift ahead is accepted");
}

fn other_codes_do_not_match(totp: &dyn TotpAlgorithm) {
    let secret = totp.new_secret();
    let now = 1_700_000_015;
    let stale = totp.code_at(&secret, now - 90);
    let current = totp.code_at(&secret, now);
    if stale != current && stale != totp.code_at(&secret, now - 30) && stale != totp.code_at(&secret, now + 30) {
        assert_eq!(totp.matching_step(&secret, &stale, now), None, "a code three steps old must not match");
    }
    for code in ["", "12345", "1234567", "abcdef"] {
        assert_eq!(totp.matching_step(&secret, code, now), None, "{code:?} must not match");
    }
    let other = totp.new_secret();
    let theirs = totp.code_at(&other, now);
    if theirs != current && theirs != totp.code_at(&secret, now - 30) && theirs != totp.code_at(&secret, now + 30) {
        assert_eq!(totp.matching_step(&secret, &theirs, now), None, "another secret's code must not match");
    }
}

fn provisioning_carries_the_secret_and_the_account(totp: &dyn TotpAlgorithm) {
    let secret = totp.new_secret();
    let provisioning = totp.provisioning(&secret, "ann@example.com").expect("provisioning");
    assert_eq!(provisioning.secret_base32.trim_end_matches('=').len(), 32, "160 bits in base32 are 32 characters");
    assert!(provisioning.otpauth_url.starts_with("otpauth://totp/"), "{}", provisioning.otpauth_url);
    assert!(
        provisioning.otpauth_url.contains(provisioning.secret_base32.trim_end_matches('=')),
        "the URL has the secret"
    );
    assert!(provisioning.otpauth_url.contains("ann"), "the URL names the account");
    assert!(!provisioning.qr_png_base64.is_empty(), "a QR code for the URL");
}

fn a_secret_of_the_wrong_size_is_malformed(totp: &dyn TotpAlgorithm) {
    let result = totp.provisioning(&[1, 2, 3], "ann@example.com");
    assert!(matches!(result, Err(CryptoError::Malformed)), "a 3-byte secret: {:?}", result.map(|p| p.otpauth_url));
}
