//! The [`AccessTokenIssuer`] contract.

use std::collections::HashSet;

use chrono::{DateTime, Duration, TimeZone, Utc};
use tenantry_domain::{SessionId, UserId};
use tenantry_ports::{AccessClaims, AccessTokenError, AccessTokenIssuer};
use uuid::Uuid;

/// `{"alg":"none","typ":"JWT"}`, base64url: the header of an unsigned token.
const ALG_NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";

/// Runs every case against `issuer`; `stranger` must be an issuer of the same kind with
/// another key (its tokens must not verify with `issuer`).
///
/// # Panics
/// Naming the broken rule.
pub fn run_contract(issuer: &dyn AccessTokenIssuer, stranger: &dyn AccessTokenIssuer) {
    an_issued_token_verifies_to_its_claims(issuer);
    a_token_is_expired_from_its_expiry_on(issuer);
    a_tampered_token_is_invalid(issuer);
    an_unsigned_token_is_invalid(issuer);
    another_keys_token_is_invalid(issuer, stranger);
    garbage_is_invalid(issuer);
    public_keys_are_listed_with_distinct_ids(issuer);
}

/// Claims in whole seconds (what a JWT carries), valid for 15 minutes from `at`.
fn claims(at: DateTime<Utc>) -> AccessClaims {
    AccessClaims {
        user_id: UserId::from_uuid(Uuid::now_v7()),
        session_id: SessionId::from_uuid(Uuid::now_v7()),
        issued_at: at,
        expires_at: at + Duration::minutes(15),
    }
}

fn start() -> DateTime<Utc> {
    Utc.timestamp_opt(Utc::now().timestamp(), 0).single().unwrap_or_else(Utc::now)
}

fn an_issued_token_verifies_to_its_claims(issuer: &dyn AccessTokenIssuer) {
    let at = start();
    let claims = claims(at);
    let token = issuer.issue(&claims).expect("issue");
    assert_eq!(issuer.verify(&token, at + Duration::seconds(1)), Ok(claims.clone()), "the claims come back");
    // Verifying twice (adapters may remember verified tokens) answers the same.
    assert_eq!(issuer.verify(&token, at + Duration::seconds(2)), Ok(claims));
}

fn a_token_is_expired_from_its_expiry_on(issuer: &dyn AccessTokenIssuer) {
    let at = start();
    let claims = claims(at);
    let token = issuer.issue(&claims).expect("issue");
    assert!(issuer.verify(&token, claims.expires_at - Duration::seconds(1)).is_ok(), "valid just before expiry");
    assert_eq!(issuer.verify(&token, claims.expires_at), Err(AccessTokenError::Expired), "expired at its expiry");
    assert_eq!(issuer.verify(&token, claims.expires_at + Duration::days(1)), Err(AccessTokenError::Expired));
}

fn a_tampered_token_is_invalid(issuer: &dyn AccessTokenIssuer) {
    let at = start();
    let token = issuer.issue(&claims(at)).expect("issue");
    let other = issuer.issue(&claims(at)).expect("issue");
    let parts: Vec<&str> = token.split('.').collect();
    let other_parts: Vec<&str> = other.split('.').collect();
    assert_eq!(parts.len(), 3, "a compact JWS has three parts: {token}");
    // Another user's claims under this token's signature.
    let swapped = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
    assert_eq!(issuer.verify(&swapped, at), Err(AccessTokenError::Invalid), "claims swapped under a signature");
    let mut signature = parts[2].to_owned();
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    signature.replace_range(0..1, &flipped.to_string());
    let forged = format!("{}.{}.{signature}", parts[0], parts[1]);
    assert_eq!(issuer.verify(&forged, at), Err(AccessTokenError::Invalid), "a changed signature");
}

fn an_unsigned_token_is_invalid(issuer: &dyn AccessTokenIssuer) {
    let at = start();
    let token = issuer.issue(&claims(at)).expect("issue");
    let payload = token.split('.').nth(1).unwrap_or_default();
    let unsigned = format!("{ALG_NONE_HEADER}.{payload}.");
    assert_eq!(issuer.verify(&unsigned, at), Err(AccessTokenError::Invalid), "alg=none must never verify");
}

fn another_keys_token_is_invalid(issuer: &dyn AccessTokenIssuer, stranger: &dyn AccessTokenIssuer) {
    let at = start();
    let token = stranger.issue(&claims(at)).expect("issue");
    assert_eq!(issuer.verify(&token, at), Err(AccessTokenError::Invalid), "a token signed with another key");
}

fn garbage_is_invalid(issuer: &dyn AccessTokenIssuer) {
    for token in ["", "abc", "a.b.c", "....", "eyJhbGciOiJFZERTQSJ9.e30."] {
        assert_eq!(issuer.verify(token, start()), Err(AccessTokenError::Invalid), "{token:?}");
    }
}

fn public_keys_are_listed_with_distinct_ids(issuer: &dyn AccessTokenIssuer) {
    let keys = issuer.public_keys();
    assert!(!keys.is_empty(), "the JWKS lists at least the current key");
    let kids: HashSet<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids.len(), keys.len(), "key ids are distinct: {keys:?}");
    assert!(keys.iter().all(|k| !k.kid.is_empty() && !k.x.is_empty() && !k.alg.is_empty()), "{keys:?}");
}
