use chrono::{DateTime, Utc};

/// The current time, injected wherever time matters (token expiry, quota periods, retry
/// schedules), so tests can hold time still or move it forward without sleeping.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait Clock: Send + Sync {
    /// Now, in UTC: the only source of "now" in the application, so every rule that depends on
    /// time is testable. Never fails.
    fn now(&self) -> DateTime<Utc>;
}
