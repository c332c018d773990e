//! The [`SecretGenerator`] contract.

use std::collections::HashSet;

use tenantry_ports::SecretGenerator;

/// Runs every case against `secrets`.
///
/// # Panics
/// Naming the broken rule.
pub fn run_contract(secrets: &dyn SecretGenerator) {
    tokens_are_url_safe_and_long_enough_for_their_entropy(secrets);
    tokens_do_not_repeat(secrets);
    digests_are_stable_distinct_and_not_the_token(secrets);
}

fn tokens_are_url_safe_and_long_enough_for_their_entropy(secrets: &dyn SecretGenerator) {
    for bytes in [16, 32, 48] {
        let token = secrets.token(bytes);
        assert!(
            token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "a token goes in URLs and headers unescaped: {token:?}"
        );
        // 64 symbols carry 6 bits each: fewer characters cannot hold `bytes` bytes of entropy.
        assert!(token.len() * 6 >= bytes * 8, "{bytes} bytes of entropy in {} characters: {token:?}", token.len());
    }
}

fn tokens_do_not_repeat(secrets: &dyn SecretGenerator) {
    let tokens: HashSet<String> = (0..2_000).map(|_| secrets.token(16)).collect();
    assert_eq!(tokens.len(), 2_000, "2000 random 16-byte tokens must not repeat");
}

fn digests_are_stable_distinct_and_not_the_token(secrets: &dyn SecretGenerator) {
    let token = secrets.token(32);
    let digest = secrets.digest(&token);
    assert_eq!(digest, secrets.digest(&token), "a digest is stable (it is looked up by)");
    assert_ne!(digest, token, "the stored digest must not be the token itself");
    assert!(!digest.contains(&token), "the digest must not contain the token");
    assert_ne!(digest, secrets.digest(&secrets.token(32)), "different tokens, different digests");
    assert_ne!(secrets.digest("a"), secrets.digest("b"), "different inputs, different digests");
}
