//! Webhook rules: endpoint URLs, secrets and the Standard Webhooks signature, the retry
//! schedule, `Retry-After`, and the delivery state machine. Pure: the sender, the queue and
//! the clock live behind ports.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What a delivery is doing: the state that decides whether the dispatcher claims it again
/// (`Pending`, `Failed`) or leaves it alone (`Succeeded`, `Dead`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its first attempt (or a manual retry).
    Pending,
    /// Delivered: the endpoint answered 2xx.
    Succeeded,
    /// An attempt failed; another is scheduled.
    Failed,
    /// No attempt is left (or the endpoint is gone); retryable by hand.
    Dead,
}

impl DeliveryStatus {
    /// The name in the API and the database: stable, since stored rows and clients use it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }

    /// The status named `raw`; `None` for anything else, so a stored value this version does
    /// not know is noticed rather than guessed.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed, Self::Dead].into_iter().find(|s| s.as_str() == raw)
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an endpoint URL is refused at creation or change, before any delivery is attempted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointUrlError {
    /// Not an absolute http(s) URL with a host.
    #[error("must be an absolute http:// or https:// URL with a host")]
    Malformed,
    /// `http://` where only `https://` is allowed (production).
    #[error("must use https://")]
    NotHttps,
    /// Credentials in the URL would be sent to and logged by every proxy on the way.
    #[error("must not contain a user name or password")]
    Credentials,
    /// Longer than 2000 characters.
    #[error("must be at most 2000 characters")]
    TooLong,
}

/// Checks an endpoint URL's shape (scheme, host, no credentials); whether its address may be
/// reached is the sender's SSRF guard's call.
///
/// # Errors
/// [`EndpointUrlError`].
pub fn check_endpoint_url(raw: &str, https_only: bool) -> Result<(), EndpointUrlError> {
    if raw.len() > 2000 {
        return Err(EndpointUrlError::TooLong);
    }
    let (scheme, rest) = raw.split_once("://").ok_or(EndpointUrlError::Malformed)?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(EndpointUrlError::Malformed);
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(EndpointUrlError::Credentials);
    }
    let host = authority.rsplit_once(':').filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()));
    let host = host.map_or(authority, |(host, _)| host);
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EndpointUrlError::Malformed);
    }
    if https_only && scheme != "https" {
        return Err(EndpointUrlError::NotHttps);
    }
    Ok(())
}

/// The prefix of every endpoint secret: it makes a leaked secret recognisable (to a person or
/// a secret scanner) and follows the Standard Webhooks convention.
pub const SECRET_PREFIX: &str = "whsec_";

/// An endpoint secret as shown once to its owner: `whsec_` and the base64 of its key bytes.
pub fn format_secret(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", BASE64.encode(key))
}

/// The key bytes of a `whsec_…` secret (24 to 64 bytes), or `None`.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let key = BASE64.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()?;
    (24..=64).contains(&key.len()).then_some(key)
}

/// The Standard Webhooks signature of one message: `v1,<base64 HMAC-SHA256 of
/// "{id}.{timestamp}.{body}">` keyed by the secret's bytes.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per live secret, space-separated (the
/// current one first, then a rotated one still in its grace period).
pub fn signature_header(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter().map(|key| sign(key, id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

/// The longest a `Retry-After` may push the next attempt, so an endpoint cannot park its
/// deliveries indefinitely with a far-off date.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// A `Retry-After` value (delta seconds or an HTTP date) as a wait from `now`, capped at 24 h.
pub fn parse_retry_after(raw: &str, now: DateTime<Utc>) -> Option<Duration> {
    let raw = raw.trim();
    let wait = match raw.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(raw).ok()?.with_timezone(&Utc);
            (at - now).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// What the answer to an attempt means for the delivery and its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptVerdict {
    /// 2xx: delivered.
    Delivered,
    /// `410 Gone`: the endpoint is disabled at once and its pending deliveries end dead.
    Gone,
    /// Anything else (or no answer): retry per the schedule, no earlier than `not_before`.
    Retry {
        /// From `Retry-After` on a 429 or 503.
        not_before: Option<Duration>,
    },
}

/// Judges one attempt: `status` (`None` when no answer came) and its `Retry-After`.
pub fn judge(status: Option<u16>, retry_after: Option<&str>, now: DateTime<Utc>) -> AttemptVerdict {
    match status {
        Some(200..=299) => AttemptVerdict::Delivered,
        Some(410) => AttemptVerdict::Gone,
        Some(429 | 503) => {
            AttemptVerdict::Retry { not_before: retry_after.and_then(|raw| parse_retry_after(raw, now)) }
        }
        _ => AttemptVerdict::Retry { not_before: None },
    }
}

/// When the attempt after `attempts_made` failed attempts should run, per `schedule` (the
/// delays between attempts), or `None` when the schedule is used up (the delivery is dead).
/// `jitter` in `[0, 1)` spreads retries by up to a tenth of the delay, so endpoints that fail
/// together do not retry together; a `Retry-After` wait is honoured when it is later.
pub fn next_attempt(
    schedule: &[Duration],
    attempts_made: u32,
    now: DateTime<Utc>,
    jitter: f64,
    not_before: Option<Duration>,
) -> Option<DateTime<Utc>> {
    let delay = *schedule.get(usize::try_from(attempts_made).ok()?.checked_sub(1)?)?;
    let spread = delay.mul_f64(jitter.clamp(0.0, 0.999) / 10.0);
    let wait = (delay + spread).max(not_before.unwrap_or(Duration::ZERO));
    Some(now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX))
}

/// Whether an endpoint subscribed to `filter` (empty: every type) receives `event_type`.
pub fn subscribed(filter: &[String], event_type: &str) -> bool {
    filter.is_empty() || filter.iter().any(|wanted| wanted == event_type)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).single().expect("date")
    }

    #[test]
    fn urls_are_checked_for_shape_and_scheme() {
        assert_eq!(check_endpoint_url("https://hooks.example.com/in?x=1", true), Ok(()));
        assert_eq!(check_endpoint_url("http://127.0.0.1:9000/hook", false), Ok(()));
        assert_eq!(check_endpoint_url("http://hooks.example.com", true), Err(EndpointUrlError::NotHttps));
        assert_eq!(check_endpoint_url("ftp://x", false), Err(EndpointUrlError::Malformed));
        assert_eq!(check_endpoint_url("https://", false), Err(EndpointUrlError::Malformed));
        assert_eq!(check_endpoint_url("not a url", false), Err(EndpointUrlError::Malformed));
        assert_eq!(check_endpoint_url("https://u:p@host/", false), Err(EndpointUrlError::Credentials));
        assert_eq!(
            check_endpoint_url(&format!("https://h/{}", "a".repeat(2000)), false),
            Err(EndpointUrlError::TooLong)
        );
    }

    #[test]
    fn secrets_round_trip_and_are_bounded() {
        let secret = format_secret(&[7_u8; 32]);
        assert!(secret.starts_with("whsec_"));
        assert_eq!(secret_key(&secret), Some(vec![7_u8; 32]));
        assert_eq!(secret_key(&format_secret(&[1_u8; 8])), None, "too short");
        assert_eq!(secret_key("whsec_***"), None);
        assert_eq!(secret_key("sk_abc"), None);
    }

    #[test]
    fn the_signature_matches_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("key");
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let two = signature_header(&[key.clone(), vec![1_u8; 24]], "id", 1, b"{}");
        assert_eq!(two.split(' ').count(), 2);
        assert!(two.starts_with(&sign(&key, "id", 1, b"{}")));
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        assert_eq!(parse_retry_after("120", now()), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("Sun, 06 Dec 2026 12:01:00 GMT", now()), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Sun, 06 Dec 2026 11:00:00 GMT", now()), Some(Duration::ZERO), "in the past");
        assert_eq!(parse_retry_after("999999999", now()), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now()), None);
    }

    #[test]
    fn answers_are_judged() {
        assert_eq!(judge(Some(204), None, now()), AttemptVerdict::Delivered);
        assert_eq!(judge(Some(410), None, now()), AttemptVerdict::Gone);
        assert_eq!(
            judge(Some(429), Some("30"), now()),
            AttemptVerdict::Retry { not_before: Some(Duration::from_secs(30)) }
        );
        assert_eq!(judge(Some(500), Some("30"), now()), AttemptVerdict::Retry { not_before: None }, "only 429/503");
        assert_eq!(judge(None, None, now()), AttemptVerdict::Retry { not_before: None });
    }

    #[test]
    fn the_schedule_spaces_attempts_and_ends() {
        let schedule = [Duration::from_secs(5), Duration::from_secs(300)];
        assert_eq!(next_attempt(&schedule, 1, now(), 0.0, None), Some(now() + chrono::Duration::seconds(5)));
        assert_eq!(next_attempt(&schedule, 2, now(), 0.0, None), Some(now() + chrono::Duration::seconds(300)));
        assert_eq!(next_attempt(&schedule, 3, now(), 0.0, None), None, "used up: dead");
        let jittered = next_attempt(&schedule, 2, now(), 0.5, None).expect("next");
        assert_eq!(jittered, now() + chrono::Duration::seconds(315));
        let later = next_attempt(&schedule, 1, now(), 0.0, Some(Duration::from_secs(60))).expect("next");
        assert_eq!(later, now() + chrono::Duration::seconds(60), "Retry-After wins when later");
        assert_eq!(next_attempt(&schedule, 0, now(), 0.0, None), None);
    }

    #[test]
    fn filters_subscribe() {
        assert!(subscribed(&[], "member.added"));
        assert!(subscribed(&["member.added".into()], "member.added"));
        assert!(!subscribed(&["member.added".into()], "org.updated"));
        assert_eq!(DeliveryStatus::parse("dead"), Some(DeliveryStatus::Dead));
    }
}
