//! The [`SecretCipher`] contract: authenticated encryption of secrets at rest.

use tenantry_ports::{CryptoError, SecretCipher};

/// Runs every case against `cipher`; `stranger` must be the same kind of cipher with another
/// key (what it sealed must not open with `cipher`).
///
/// # Panics
/// Naming the broken rule.
pub fn run_contract(cipher: &dyn SecretCipher, stranger: &dyn SecretCipher) {
    what_is_sealed_opens_to_the_same_bytes(cipher);
    sealing_twice_gives_different_texts(cipher);
    a_sealed_text_does_not_show_the_plaintext(cipher);
    a_tampered_text_does_not_open(cipher);
    another_keys_text_does_not_open(cipher, stranger);
}

fn what_is_sealed_opens_to_the_same_bytes(cipher: &dyn SecretCipher) {
    let binary: Vec<u8> = (0..=255).collect();
    for plaintext in [b"".as_slice(), b"whsec_abc", binary.as_slice()] {
        let sealed = cipher.seal(plaintext).expect("seal");
        assert_eq!(cipher.open(&sealed).expect("open"), plaintext, "round trip of {} bytes", plaintext.len());
    }
}

fn sealing_twice_gives_different_texts(cipher: &dyn SecretCipher) {
    let first = cipher.seal(b"same secret").expect("seal");
    let second = cipher.seal(b"same secret").expect("seal");
    assert_ne!(first, second, "a fresh nonce each time: equal secrets must not look equal at rest");
}

fn a_sealed_text_does_not_show_the_plaintext(cipher: &dyn SecretCipher) {
    let sealed = cipher.seal(b"plain-secret-value").expect("seal");
    assert!(!sealed.contains("plain-secret-value"), "the sealed text shows the secret: {sealed}");
}

fn a_tampered_text_does_not_open(cipher: &dyn SecretCipher) {
    let sealed = cipher.seal(b"a secret worth protecting").expect("seal");
    // Change one character near the end (the ciphertext or tag, whatever the encoding).
    let mut chars: Vec<char> = sealed.chars().collect();
    let at = chars.len().saturating_sub(3);
    if let Some(c) = chars.get_mut(at) {
        *c = if *c == 'A' { 'B' } else { 'A' };
    }
    let tampered: String = chars.into_iter().collect();
    assert_ne!(tampered, sealed);
    assert!(matches!(cipher.open(&tampered), Err(CryptoError::Malformed)), "a tampered text must not open");
    for garbage in ["", "not sealed", "AAAA"] {
        assert!(matches!(cipher.open(garbage), Err(CryptoError::Malformed)), "{garbage:?} must not open");
    }
}

fn another_keys_text_does_not_open(cipher: &dyn SecretCipher, stranger: &dyn SecretCipher) {
    let sealed = stranger.seal(b"someone else's secret").expect("seal");
    assert!(matches!(cipher.open(&sealed), Err(CryptoError::Malformed)), "another key's text must not open");
}
