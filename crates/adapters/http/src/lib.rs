//! Outgoing HTTP adapters: [`ReqwestWebhookSender`], the [`WebhookSender`] that POSTs signed
//! webhook requests to tenants' endpoints.
//!
//! Tenants choose the URLs, so the sender is hardened for hostile endpoints: an SSRF guard on
//! the address actually connected to (literal IP hosts are checked before sending, host names
//! are resolved by the sender itself and only allowed addresses are handed to reqwest), no
//! redirects, no proxies, a total time bound per request, and at most 4 KiB of the answer's
//! body read.

mod guard;

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use reqwest::redirect;
use tenantry_ports::{OutgoingWebhook, SendError, WebhookAnswer, WebhookSender};
use url::{Host, Url};

/// How much of an answer's body is kept (and read): the port records the first 4 KiB.
const MAX_ANSWER_BODY: usize = 4096;

/// How long an error text handed back in [`SendError::Failed`] may be: it is stored with the
/// attempt and shown to the tenant, so it stays short.
const MAX_ERROR_TEXT: usize = 200;

/// How the webhook sender behaves; [`SenderSettings::default`] is the production setting
/// (15 s, private addresses refused), [`SenderSettings::new`] the same with `allow_private`
/// chosen (development and tests deliver to local receivers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderSettings {
    /// The total time bound of one request (resolving, connecting, sending and reading the
    /// answer), so a slow endpoint cannot hold a dispatcher worker.
    pub timeout: Duration,
    /// Whether loopback, private, link-local… addresses may be delivered to. Only for
    /// development and tests: in production it would let tenants reach internal services.
    pub allow_private: bool,
    /// The `User-Agent` header, so receivers can tell webhook deliveries apart.
    pub user_agent: String,
}

impl SenderSettings {
    /// The default settings (15 s timeout, Tenantry user agent) with `allow_private` chosen.
    #[must_use]
    pub fn new(allow_private: bool) -> Self {
        Self { allow_private, ..Self::default() }
    }
}

impl Default for SenderSettings {
    /// 15 s, private addresses refused, `User-Agent: Tenantry-Webhooks/<version>`.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            allow_private: false,
            user_agent: concat!("Tenantry-Webhooks/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// Why the sender could not be built (a bad setting or the TLS setup), reported at start-up.
#[derive(Debug, thiserror::Error)]
#[error("webhook sender: {0}")]
pub struct BuildError(String);

/// Headers that name the current trace for an outgoing request (W3C `traceparent`,
/// `tracestate`), computed inside the send span. The process's telemetry supplies it, so this
/// adapter needs no OpenTelemetry dependency and a build without tracing passes none.
#[derive(Clone)]
pub struct TraceHeaders(pub Arc<dyn Fn() -> Vec<(String, String)> + Send + Sync>);

impl std::fmt::Debug for TraceHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TraceHeaders(..)")
    }
}

/// The [`WebhookSender`] on reqwest (HTTP/1.1, rustls with the Mozilla roots compiled in).
///
/// Cheap to clone: clones share the connection pool.
#[derive(Debug, Clone)]
pub struct ReqwestWebhookSender {
    client: reqwest::Client,
    allow_private: bool,
    trace_headers: Option<TraceHeaders>,
}

impl ReqwestWebhookSender {
    /// Builds the client for `settings`: no redirects, no proxies (a proxy would connect
    /// where the guard cannot see), the guarded resolver, the total timeout.
    ///
    /// # Errors
    /// [`BuildError`] when the user agent is not a valid header value or the TLS or HTTP
    /// client cannot be set up.
    pub fn new(settings: SenderSettings) -> Result<Self, BuildError> {
        let user_agent = HeaderValue::from_str(&settings.user_agent)
            .map_err(|_| BuildError("the user agent is not a valid header value".to_owned()))?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config()?)
            .redirect(redirect::Policy::none())
            .no_proxy()
            .timeout(settings.timeout)
            .user_agent(user_agent)
            .dns_resolver(GuardedResolver { allow_private: settings.allow_private })
            .build()
            .map_err(|e| BuildError(format!("HTTP client: {}", short_error_text(&e))))?;
        Ok(Self { client, allow_private: settings.allow_private, trace_headers: None })
    }

    /// Adds the headers `trace_headers` computes to every request, so the receiver can continue
    /// the attempt's trace. They are not part of the Standard Webhooks signature (which covers
    /// the id, timestamp and body only).
    #[must_use]
    pub fn with_trace_headers(mut self, trace_headers: TraceHeaders) -> Self {
        self.trace_headers = Some(trace_headers);
        self
    }

    /// The guard's verdict on a literal IP host (reqwest connects to those directly, without
    /// the resolver); `None` for host names and allowed addresses.
    fn literal_refusal(&self, url: &Url) -> Option<String> {
        if self.allow_private {
            return None;
        }
        let ip = match url.host()? {
            Host::Ipv4(v4) => IpAddr::V4(v4),
            Host::Ipv6(v6) => IpAddr::V6(v6),
            Host::Domain(_) => return None,
        };
        guard::refusal(ip).map(|why| format!("{ip} is a {why} address"))
    }
}

/// rustls with the ring provider and the webpki (Mozilla) roots: no system trust store or
/// network access needed, and no aws-lc-rs (cmake) build.
fn tls_config() -> Result<rustls::ClientConfig, BuildError> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| BuildError(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The client speaks HTTP/1.1 only (reqwest's `http2` feature is off).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[async_trait::async_trait]
impl WebhookSender for ReqwestWebhookSender {
    #[tracing::instrument(name = "adapter.http.webhooks.send", skip_all)]
    async fn send(&self, request: &OutgoingWebhook) -> Result<WebhookAnswer, SendError> {
        // Never log the URL itself: its path or query may carry a tenant's token.
        let url = Url::parse(&request.url).map_err(|_| SendError::Failed("invalid URL".to_owned()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(SendError::Failed("only http and https URLs are supported".to_owned()));
        }
        if let Some(reason) = self.literal_refusal(&url) {
            tracing::debug!(%reason, "webhook refused by the SSRF guard");
            return Err(SendError::Refused(reason));
        }
        let mut headers = header_map(&request.headers)?;
        if let Some(trace_headers) = &self.trace_headers {
            for (name, value) in (trace_headers.0)() {
                if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value))
                    && !headers.contains_key(&name)
                {
                    headers.insert(name, value);
                }
            }
        }

        let started = Instant::now();
        let mut response =
            self.client.post(url).headers(headers).body(request.body.clone()).send().await.map_err(|e| {
                let error = send_error(&e);
                tracing::debug!(error = %error, "webhook not answered");
                error
            })?;

        let status = response.status().as_u16();
        let retry_after =
            response.headers().get(RETRY_AFTER).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let body = read_prefix(&mut response).await;
        // Dropping the response stops reading the rest of the body (and closes the
        // connection if it is not fully read).
        drop(response);
        tracing::debug!(
            status,
            latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            body_bytes = body.len(),
            "webhook answered"
        );
        Ok(WebhookAnswer { status, retry_after, body: String::from_utf8_lossy(&body).into_owned() })
    }

    fn refuses_literal(&self, url: &str) -> Option<String> {
        self.literal_refusal(&Url::parse(url).ok()?)
    }
}

/// The request's headers as a [`HeaderMap`]; a bad name or value fails the attempt (without
/// echoing the value: it may be the signature).
fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, SendError> {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|_| SendError::Failed("invalid header name".to_owned()))?;
        let value =
            HeaderValue::from_str(value).map_err(|_| SendError::Failed(format!("invalid value for header {name}")))?;
        map.append(name, value);
    }
    Ok(map)
}

/// Reads at most [`MAX_ANSWER_BODY`] bytes of the body and stops: a huge or endless body is
/// never buffered. A body that breaks off (or runs out of time) keeps what arrived: the status
/// is the answer, the body only a diagnostic.
async fn read_prefix(response: &mut reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_ANSWER_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ANSWER_BODY - body.len();
                body.extend_from_slice(chunk.get(..room).unwrap_or(&chunk));
            }
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(timeout = e.is_timeout(), "webhook answer body broke off");
                break;
            }
        }
    }
    body
}

/// Maps a reqwest error to the port's: the guard's refusal (from the resolver), a timeout, or a
/// short failure text.
fn send_error(error: &reqwest::Error) -> SendError {
    if let Some(refused) = find_source::<Refused>(error) {
        return SendError::Refused(refused.0.clone());
    }
    if error.is_timeout() {
        return SendError::Timeout;
    }
    SendError::Failed(short_error_text(error))
}

/// The first error of type `E` in `error`'s source chain.
fn find_source<'a, E: StdError + 'static>(error: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// A short description of a reqwest error without its URL (which may carry a token): what
/// failed, and the innermost cause (an I/O or TLS error, which names no secret).
fn short_error_text(error: &reqwest::Error) -> String {
    let what = if error.is_connect() {
        "connection failed"
    } else if error.is_body() {
        "sending the body failed"
    } else if error.is_decode() {
        "reading the answer failed"
    } else if error.is_builder() {
        "invalid request"
    } else {
        "request failed"
    };
    let mut cause: Option<&(dyn StdError + 'static)> = None;
    let mut next = error.source();
    while let Some(e) = next {
        cause = Some(e);
        next = e.source();
    }
    let text = match cause {
        Some(cause) => format!("{what}: {cause}"),
        None => what.to_owned(),
    };
    truncate(text, MAX_ERROR_TEXT)
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The guard's refusal raised by the resolver, found again in reqwest's error chain.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Refused {}

/// Resolves host names itself and hands reqwest only the addresses the guard allows, so the
/// address checked is the address connected to (no DNS rebinding between check and connect).
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|_| Refused(format!("{host} could not be resolved")))?
                .collect();
            if resolved.is_empty() {
                return Err(Refused(format!("{host} could not be resolved")).into());
            }
            if allow_private {
                return Ok(Box::new(resolved.into_iter()) as Addrs);
            }
            let mut first_refusal = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match guard::refusal(addr.ip()) {
                    None => true,
                    Some(why) => {
                        first_refusal.get_or_insert((addr.ip(), why));
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                // The tenant sees this text: never the addresses, or endpoints would map the
                // internal network's names. The details go to the log.
                let reason = match first_refusal {
                    Some((ip, why)) => {
                        tracing::info!(%ip, why, "a webhook host resolves only to refused addresses");
                        format!("{host} resolves only to non-public addresses")
                    }
                    None => format!("{host} could not be resolved"),
                };
                return Err(Refused(reason).into());
            }
            if let Some((ip, why)) = first_refusal {
                tracing::debug!(%ip, why, "resolved address skipped by the SSRF guard");
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("héllo".to_owned(), 2), "h");
        assert_eq!(truncate("hello".to_owned(), 10), "hello");
    }

    #[test]
    fn default_settings() {
        let settings = SenderSettings::default();
        assert_eq!(settings.timeout, Duration::from_secs(15));
        assert!(!settings.allow_private);
        assert!(settings.user_agent.starts_with("Tenantry-Webhooks/"));
        assert!(SenderSettings::new(true).allow_private);
    }

    #[test]
    fn bad_user_agent_is_a_build_error() {
        let settings = SenderSettings { user_agent: "bad\nagent".to_owned(), ..SenderSettings::default() };
        assert!(ReqwestWebhookSender::new(settings).is_err());
    }
}
