//! The [`PasswordHasher`] contract.

use std::sync::Arc;

use futures_util::future::join_all;
use tenantry_ports::{CryptoError, PasswordCheck, PasswordHasher};

/// Runs every case against `hasher`. Use the adapter's cheapest parameters: the rules do not
/// depend on the cost, and each case hashes a few times.
///
/// # Panics
/// Naming the broken rule.
pub async fn run_contract(hasher: Arc<dyn PasswordHasher>) {
    a_hash_is_a_salted_phc_string_without_the_password(hasher.as_ref()).await;
    the_right_password_verifies_and_needs_no_rehash(hasher.as_ref()).await;
    a_wrong_password_is_invalid_not_an_error(hasher.as_ref()).await;
    a_malformed_hash_is_an_error(hasher.as_ref()).await;
    unicode_passwords_round_trip(hasher.as_ref()).await;
    the_dummy_verification_succeeds(hasher.as_ref()).await;
    concurrent_hashes_all_verify(hasher).await;
}

async fn a_hash_is_a_salted_phc_string_without_the_password(hasher: &dyn PasswordHasher) {
    let password = "correct horse battery staple";
    let first = hasher.hash(password).await.expect("hash");
    let second = hasher.hash(password).await.expect("hash");
    assert!(first.starts_with('$'), "a hash is a PHC string ($alg$…): {first}");
    assert_ne!(first, second, "two hashes of one password differ (a fresh salt each time)");
    assert!(!first.contains(password), "the hash must not contain the password");
}

async fn the_right_password_verifies_and_needs_no_rehash(hasher: &dyn PasswordHasher) {
    let hash = hasher.hash("s3cret pass phrase").await.expect("hash");
    let check = hasher.verify("s3cret pass phrase", &hash).await.expect("verify");
    assert_eq!(check, PasswordCheck::Valid { needs_rehash: false }, "a fresh hash uses today's parameters");
}

async fn a_wrong_password_is_invalid_not_an_error(hasher: &dyn PasswordHasher) {
    let hash = hasher.hash("s3cret pass phrase").await.expect("hash");
    for wrong in ["s3cret pass phrasE", "", "s3cret pass phrase "] {
        let check = hasher.verify(wrong, &hash).await.expect("a wrong password is an answer, not an error");
        assert_eq!(check, PasswordCheck::Invalid, "{wrong:?} must not verify");
    }
}

async fn a_malformed_hash_is_an_error(hasher: &dyn PasswordHasher) {
    for stored in ["", "not a hash", "plain-text-password"] {
        let result = hasher.verify("anything", stored).await;
        assert!(matches!(result, Err(CryptoError::Malformed)), "{stored:?}: expected Malformed, got {result:?}");
    }
}

async fn unicode_passwords_round_trip(hasher: &dyn PasswordHasher) {
    let password = "pässwörd 🔑 密码";
    let hash = hasher.hash(password).await.expect("hash");
    assert!(matches!(hasher.verify(password, &hash).await, Ok(PasswordCheck::Valid { .. })), "unicode verifies");
    assert_eq!(hasher.verify("passwort 🔑 密码", &hash).await.expect("verify"), PasswordCheck::Invalid);
}

async fn the_dummy_verification_succeeds(hasher: &dyn PasswordHasher) {
    hasher.verify_dummy("whatever an attacker typed").await.expect("the dummy verification burns time, never fails");
}

async fn concurrent_hashes_all_verify(hasher: Arc<dyn PasswordHasher>) {
    let hashes = join_all((0..4).map(|i| {
        let hasher = hasher.clone();
        async move { (i, hasher.hash(&format!("password number {i}")).await.expect("hash")) }
    }))
    .await;
    for (i, hash) in hashes {
        let check = hasher.verify(&format!("password number {i}"), &hash).await.expect("verify");
        assert!(matches!(check, PasswordCheck::Valid { .. }), "hash {i} of a concurrent batch does not verify");
    }
}
