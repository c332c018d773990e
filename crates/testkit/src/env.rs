//! Which real backends the tests may use.
//!
//! Service-backed tests read `TENANTRY_TEST_DATABASE_URL` (a PostgreSQL server URL) and
//! `TENANTRY_TEST_REDIS_URL`. Without them a developer's `cargo test` runs the embedded
//! adapters only; under CI (`CI=true`) a missing URL is a failure, never a silent skip.

/// The URL in `var`, or `None` when the backend is not configured outside CI.
///
/// # Panics
/// When `CI` is `true` and `var` is unset: CI must exercise every backend.
pub fn backend_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("{var} must be set when CI=true: service-backed tests may not be skipped in CI")
        }
        _ => {
            eprintln!("{var} is not set: skipping the tests that need that backend");
            None
        }
    }
}

/// `TENANTRY_TEST_DATABASE_URL`: a PostgreSQL server the tests may create databases on.
pub fn postgres_url() -> Option<String> {
    backend_url("TENANTRY_TEST_DATABASE_URL")
}

/// `TENANTRY_TEST_REDIS_URL`: a Redis server the tests may write prefixed keys to.
pub fn redis_url() -> Option<String> {
    backend_url("TENANTRY_TEST_REDIS_URL")
}
