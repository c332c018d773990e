//! Cross-cutting HTTP plumbing: problem+json errors, request ids, tracing, metrics, timeouts,
//! security headers and the strict JSON extractor. Handlers never deal with any of it.

pub mod auth;
pub mod client_ip;
pub mod error;
pub mod gates;
pub mod idempotency;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod middleware;
pub mod org;
pub mod page;
pub mod request_id;
pub mod rules;

pub use auth::Authenticated;
pub use error::{ApiError, FieldError};
pub use json::ApiJson;
pub use request_id::RequestId;
