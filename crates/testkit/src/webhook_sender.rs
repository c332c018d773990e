//! The [`WebhookSender`] contract, against the loopback [`Receiver`]: what arrives, what is
//! answered, no redirects, a time bound, and the SSRF guard.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tenantry_ports::{OutgoingWebhook, SendError, WebhookSender};

use crate::receiver::{Receiver, Reply};

/// How to build a sender for one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderOptions {
    /// Whether loopback and private addresses may be delivered to (the loopback receiver
    /// needs it; the guard cases need it off).
    pub allow_private: bool,
    /// The total time bound of one request.
    pub timeout: Duration,
}

/// Runs every case against senders built by `make`.
///
/// # Panics
/// Naming the broken rule.
pub async fn run_contract<F>(make: F)
where
    F: Fn(SenderOptions) -> Arc<dyn WebhookSender>,
{
    let open = SenderOptions { allow_private: true, timeout: Duration::from_secs(5) };
    headers_and_body_arrive_verbatim(make(open).as_ref()).await;
    the_answer_is_reported_with_retry_after_and_a_4_kib_body(make(open).as_ref()).await;
    a_redirect_is_an_answer_not_followed(make(open).as_ref()).await;
    a_silent_endpoint_times_out(make(SenderOptions { timeout: Duration::from_millis(300), ..open }).as_ref()).await;
    an_endless_body_is_not_read_to_the_end(make(SenderOptions { timeout: Duration::from_secs(20), ..open }).as_ref())
        .await;
    a_refused_connection_fails_without_echoing_the_url(make(open).as_ref()).await;
    invalid_urls_fail(make(open).as_ref()).await;
    let guarded = SenderOptions { allow_private: false, timeout: Duration::from_secs(2) };
    the_guard_refuses_non_public_addresses_before_connecting(make(guarded).as_ref()).await;
}

/// A request like the dispatcher's: Standard Webhooks headers and a JSON body.
fn webhook(url: &str) -> OutgoingWebhook {
    OutgoingWebhook {
        url: url.to_owned(),
        headers: vec![
            ("webhook-id".to_owned(), "msg_contract".to_owned()),
            ("webhook-timestamp".to_owned(), "1700000000".to_owned()),
            ("webhook-signature".to_owned(), "v1,c2lnbmF0dXJl".to_owned()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ],
        body: br#"{"type":"member.added","data":{"id":1}}"#.to_vec(),
    }
}

async fn headers_and_body_arrive_verbatim(sender: &dyn WebhookSender) {
    let receiver = Receiver::start([Reply::status(200).body("thanks")]).await;
    let answer = sender.send(&webhook(&receiver.url("/hooks/in?x=1"))).await.expect("answered");
    assert_eq!((answer.status, answer.body.as_str(), answer.retry_after.as_deref()), (200, "thanks", None));
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "one request per send");
    let request = &got[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/hooks/in?x=1"), "a POST to the URL");
    for (name, value) in &webhook("").headers {
        assert_eq!(request.header(name), Some(value.as_str()), "the {name} header arrives verbatim");
    }
    assert_eq!(request.body, webhook("").body, "the body arrives verbatim");
}

async fn the_answer_is_reported_with_retry_after_and_a_4_kib_body(sender: &dyn WebhookSender) {
    let long: Vec<u8> = (0..100_000_u32).map(|i| b'a' + u8::try_from(i % 26).unwrap_or(0)).collect();
    let receiver = Receiver::start([Reply::status(503).header("Retry-After", "120").body(long.clone())]).await;
    let answer = sender.send(&webhook(&receiver.url("/"))).await.expect("answered");
    assert_eq!(answer.status, 503, "a 5xx is an answer, not an error");
    assert_eq!(answer.retry_after.as_deref(), Some("120"), "Retry-After is passed through verbatim");
    assert_eq!(answer.body.as_bytes(), &long[..4096], "the body is cut to its first 4 KiB");
}

async fn a_redirect_is_an_answer_not_followed(sender: &dyn WebhookSender) {
    let target = Receiver::start([]).await;
    let redirecting = Receiver::start([Reply::status(302).header("Location", &target.url("/elsewhere"))]).await;
    let answer = sender.send(&webhook(&redirecting.url("/"))).await.expect("answered");
    assert_eq!(answer.status, 302, "a redirect is reported as the answer");
    assert_eq!(target.connections(), 0, "the redirect must not be followed");
}

async fn a_silent_endpoint_times_out(sender: &dyn WebhookSender) {
    let receiver = Receiver::start([Reply::silent()]).await;
    let started = Instant::now();
    let result = sender.send(&webhook(&receiver.url("/"))).await;
    assert_eq!(result, Err(SendError::Timeout), "an endpoint that never answers is a timeout");
    assert!(started.elapsed() < Duration::from_secs(5), "within the time bound: took {:?}", started.elapsed());
}

async fn an_endless_body_is_not_read_to_the_end(sender: &dyn WebhookSender) {
    let receiver = Receiver::start([Reply::endless()]).await;
    let started = Instant::now();
    let answer = sender.send(&webhook(&receiver.url("/"))).await.expect("answered");
    assert_eq!(answer.status, 200);
    assert!(started.elapsed() < Duration::from_secs(10), "an endless body held the sender {:?}", started.elapsed());
    assert_eq!(answer.body.len(), 4096, "only the first 4 KiB are kept");
}

async fn a_refused_connection_fails_without_echoing_the_url(sender: &dyn WebhookSender) {
    let closed = {
        let receiver = Receiver::start([]).await;
        receiver.addr()
    };
    // Let the dropped listener close before connecting to its port.
    tokio::task::yield_now().await;
    let result = sender.send(&webhook(&format!("http://user:pa55word@{closed}/in?token=s3cret"))).await;
    let Err(SendError::Failed(text)) = result else { panic!("a refused connection fails: got {result:?}") };
    assert!(!text.contains("s3cret") && !text.contains("pa55word"), "the error echoes the URL's secrets: {text}");
    assert!(text.len() <= 200, "the error text is short (it is stored with the attempt): {text}");
}

async fn invalid_urls_fail(sender: &dyn WebhookSender) {
    for url in ["not a url", "ftp://example.com/", "file:///etc/passwd"] {
        let result = sender.send(&webhook(url)).await;
        assert!(matches!(result, Err(SendError::Failed(_))), "{url}: only http(s) URLs are sent to: {result:?}");
    }
}

async fn the_guard_refuses_non_public_addresses_before_connecting(sender: &dyn WebhookSender) {
    let receiver = Receiver::start([]).await;
    let port = receiver.addr().port();
    for url in [
        format!("http://127.0.0.1:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        "http://10.0.0.1/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://192.168.1.1/".to_owned(),
        "http://[fd00::1]/".to_owned(),
    ] {
        let result = sender.send(&webhook(&url)).await;
        assert!(matches!(result, Err(SendError::Refused(_))), "{url}: a non-public address is refused: {result:?}");
    }
    assert!(sender.refuses_literal(&format!("http://127.0.0.1:{port}/")).is_some(), "a literal loopback is refused");
    assert_eq!(sender.refuses_literal("https://example.com/"), None, "host names are judged when sending");
    assert_eq!(receiver.connections(), 0, "the guard refuses before connecting");
}
