//! The crypto adapters against the test kit's contract suites for their ports.

use std::sync::Arc;

use tenantry_adapter_crypto::{
    Argon2Hasher, Argon2Settings, Ed25519AccessTokens, RandomSecrets, Rfc6238Totp, XChaChaCipher,
    load_or_generate_signing_key,
};

#[tokio::test]
async fn argon2_keeps_the_password_hasher_contract() {
    // The cheapest parameters argon2 accepts: the rules do not depend on the cost.
    let settings = Argon2Settings { memory_kib: 64, iterations: 1, parallelism: 1, max_concurrent: 2 };
    let hasher = Argon2Hasher::new(settings).expect("hasher");
    tenantry_testkit::password::run_contract(Arc::new(hasher)).await;
}

#[test]
fn ed25519_tokens_keep_the_access_token_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ours = load_or_generate_signing_key(&dir.path().join("ours.pem")).expect("key");
    let theirs = load_or_generate_signing_key(&dir.path().join("theirs.pem")).expect("key");
    let issuer = Ed25519AccessTokens::new("https://id.example.com".to_owned(), &ours, &[]).expect("issuer");
    // Another key under the same issuer name: only the signature tells them apart.
    let stranger = Ed25519AccessTokens::new("https://id.example.com".to_owned(), &theirs, &[]).expect("issuer");
    tenantry_testkit::access_tokens::run_contract(&issuer, &stranger);
    // With a retired key still verifying, the contract holds too.
    let rotated = Ed25519AccessTokens::new("https://id.example.com".to_owned(), &ours, &[theirs.verifying_key()])
        .expect("issuer");
    let unrelated = load_or_generate_signing_key(&dir.path().join("unrelated.pem")).expect("key");
    let stranger = Ed25519AccessTokens::new("https://id.example.com".to_owned(), &unrelated, &[]).expect("issuer");
    tenantry_testkit::access_tokens::run_contract(&rotated, &stranger);
}

#[test]
fn os_random_secrets_keep_the_secret_generator_contract() {
    tenantry_testkit::secrets::run_contract(&RandomSecrets);
}

#[test]
fn rfc6238_keeps_the_totp_contract() {
    tenantry_testkit::totp::run_contract(&Rfc6238Totp::new("Tenantry"));
}

#[test]
fn xchacha_keeps_the_secret_cipher_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cipher = XChaChaCipher::load_or_generate(&dir.path().join("ours.key")).expect("cipher");
    let stranger = XChaChaCipher::load_or_generate(&dir.path().join("theirs.key")).expect("cipher");
    tenantry_testkit::cipher::run_contract(&cipher, &stranger);
}
