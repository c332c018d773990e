//! `x-request-id`: echoed when the client sent a sane one, generated otherwise, and visible to
//! every error body and log line of the request.

use std::future::Future;

use actix_web::HttpMessage;
use actix_web::dev::ServiceRequest;

tokio::task_local! {
    static CURRENT: String;
}

/// The id of the request being served, stored in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// The header name.
pub const HEADER: &str = "x-request-id";

impl RequestId {
    /// The client's id when it is 1–128 characters of `[A-Za-z0-9._-]`, else a new UUIDv7.
    pub fn for_request(req: &ServiceRequest) -> Self {
        let sent = req.headers().get(HEADER).and_then(|value| value.to_str().ok()).filter(|value| is_acceptable(value));
        Self(sent.map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned))
    }

    /// Stores the id on the request so extractors and handlers can read it.
    pub fn attach(&self, req: &ServiceRequest) {
        req.extensions_mut().insert(self.clone());
    }
}

/// Whether a client-sent id may be echoed (bounded, no header or log injection).
pub fn is_acceptable(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Runs `future` with `id` as the current request id (read by [`current`]).
pub async fn scope<F: Future>(id: String, future: F) -> F::Output {
    CURRENT.scope(id, future).await
}

/// The request id of the request this task is serving, if any.
pub fn current() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bounded_safe_ids_are_echoed() {
        assert!(is_acceptable("abc-123_X.y"));
        assert!(is_acceptable(&"a".repeat(128)));
        assert!(!is_acceptable(""));
        assert!(!is_acceptable(&"a".repeat(129)));
        assert!(!is_acceptable("has space"));
        assert!(!is_acceptable("semi;colon"));
        assert!(!is_acceptable("new\nline"));
    }

    #[tokio::test]
    async fn the_current_id_is_visible_inside_the_scope_only() {
        assert_eq!(current(), None);
        let seen = scope("req-1".to_owned(), async { current() }).await;
        assert_eq!(seen.as_deref(), Some("req-1"));
    }
}
