//! `idempotency-key` on POST: a repeat with the same key, caller and body within 24 h gets the
//! first response again (same status and body) without the work being done twice; the same key
//! with another body is 422 `idempotency_mismatch`; a repeat while the first is still running is
//! 409 `idempotency_in_progress`. One middleware, so no handler has to think about it.
//!
//! Records live in the cache port (Redis across replicas), bodies sealed with the secret cipher
//! — a stored response may carry a secret (a new API key). Only 2xx answers are kept: after an
//! error the client may simply try again with the same key.
//!
//! A replay is never answered before the caller passes, *now*, every check the first request
//! passed: the authorization extractors record what they checked as [`Gate`]s, the record keeps
//! them, and a repeat runs the same checks again first (a signed-out, removed, disabled or
//! revoked caller gets the route's 401/404/403, never the stored body).

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tenantry_ports::{AccessTokenIssuer, Cache, Clock, SecretCipher};

use super::client_ip::TrustedProxies;
use super::gates::{Gate, Gates};
use super::json::JsonLimit;
use super::{ApiError, FieldError};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Routes that trade a credential for a new one. They create nothing to deduplicate, and a
/// stored answer would hand the new tokens to whoever repeats the request, so they ignore the
/// header: a repeated refresh must meet reuse detection, never a replay.
const CREDENTIAL_EXCHANGES: [&str; 2] = ["/api/v1/auth/login", "/api/v1/auth/refresh"];
/// How long a completed response is replayed.
const KEEP: Duration = Duration::from_secs(24 * 3600);
/// How long a request may hold its key while running, unless the server sets it from its
/// request timeout ([`IdempotencyStore::with_in_flight`]).
const IN_FLIGHT: Duration = Duration::from_secs(120);

/// What the middleware needs, as app data.
pub struct IdempotencyStore {
    cache: Arc<dyn Cache>,
    cipher: Arc<dyn SecretCipher>,
    access: Arc<dyn AccessTokenIssuer>,
    clock: Arc<dyn Clock>,
    in_flight: Duration,
}

/// Runs `gates` again for `req`: `Err` is what the route would answer the caller now.
async fn admit(req: &HttpRequest, gates: &[Gate]) -> Result<(), ApiError> {
    for gate in gates {
        match gate {
            Gate::Signed { user_id } => {
                let now = super::Authenticated::from_request(req, &mut Payload::None).await?;
                if now.0.user_id != *user_id {
                    return Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "idempotency_mismatch",
                        "This idempotency-key was used by another caller.",
                    ));
                }
            }
            Gate::Org { org_id, permission } => {
                super::org::authorize(req, &mut Payload::None, Some(*org_id), *permission).await?;
            }
            Gate::Admin => {
                super::auth::PlatformAdmin::from_request(req, &mut Payload::None).await?;
            }
        }
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct Stored {
    fingerprint: String,
    /// What the first request was checked for; a replay is checked again.
    gates: Vec<Gate>,
    status: u16,
    content_type: Option<String>,
    location: Option<String>,
    body: String,
}

enum Begin {
    Proceed,
    Replay(Stored),
    InProgress,
    /// Another body used this key; the gates of the finished first request, if known.
    Mismatch(Vec<Gate>),
}

impl IdempotencyStore {
    /// A store over the cache, sealing bodies with `cipher`; `access` identifies signed-in
    /// callers (so a key is per user, whichever of their tokens they use).
    pub fn new(
        cache: Arc<dyn Cache>,
        cipher: Arc<dyn SecretCipher>,
        access: Arc<dyn AccessTokenIssuer>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { cache, cipher, access, clock, in_flight: IN_FLIGHT }
    }

    /// Holds a key for `in_flight` while its request runs: longer than any write may run
    /// ([`super::middleware::write_limit`]), so a retry never runs a write twice.
    #[must_use]
    pub fn with_in_flight(mut self, in_flight: Duration) -> Self {
        self.in_flight = in_flight;
        self
    }

    /// Who is calling: the API key, else the signed-in user, else the client address.
    fn caller(&self, req: &ServiceRequest) -> String {
        let bearer = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim().to_owned());
        let api_key = req
            .headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
            .or_else(|| bearer.clone().filter(|token| token.starts_with("tk_")));
        if let Some(key) = api_key {
            // Keyed by a digest of the whole key: two keys never share records, and the key
            // itself never becomes part of a cache key.
            return format!("key:{}", hex::encode(Sha256::digest(key.as_bytes())));
        }
        if let Some(token) = bearer
            && let Ok(claims) = self.access.verify(&token, self.clock.now())
        {
            return format!("user:{}", claims.user_id);
        }
        let proxies = req.app_data::<TrustedProxies>().cloned().unwrap_or_default();
        let ip = proxies.client_ip(req.request()).map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        format!("anon:{ip}")
    }

    fn key(caller: &str, key: &str) -> String {
        let digest = hex::encode(Sha256::digest(format!("{caller}\n{key}").as_bytes()));
        // v2: records carry the gates to check again; v1 records (without) are never replayed.
        format!("idempotency:v2:{digest}")
    }

    async fn begin(&self, record: &str, fingerprint: &str) -> Result<Begin, ApiError> {
        let marker = format!("P:{fingerprint}");
        for _ in 0..2 {
            if self
                .cache
                .set_if_absent(record, marker.as_bytes(), Some(self.in_flight))
                .await
                .map_err(ApiError::internal)?
            {
                return Ok(Begin::Proceed);
            }
            let Some(existing) = self.cache.get(record).await.map_err(ApiError::internal)? else {
                continue; // expired in between: try to claim it again
            };
            let existing = String::from_utf8_lossy(&existing).into_owned();
            if let Some(running) = existing.strip_prefix("P:") {
                return Ok(if running == fingerprint { Begin::InProgress } else { Begin::Mismatch(Vec::new()) });
            }
            let sealed = existing.strip_prefix("D:").unwrap_or_default();
            let stored: Option<Stored> =
                self.cipher.open(sealed).ok().and_then(|plain| serde_json::from_slice(&plain).ok());
            let Some(stored) = stored else {
                // Sealed under another key, or damaged: it can never be replayed, so it must not
                // block the key for a day. Drop it and claim the key afresh.
                tracing::warn!("dropping an unreadable idempotency record");
                self.abandon(record).await;
                continue;
            };
            return Ok(if stored.fingerprint == fingerprint {
                Begin::Replay(stored)
            } else {
                Begin::Mismatch(stored.gates)
            });
        }
        Ok(Begin::InProgress)
    }

    async fn finish(&self, record: &str, stored: &Stored) {
        let sealed = serde_json::to_vec(stored)
            .map_err(anyhow::Error::new)
            .and_then(|plain| self.cipher.seal(&plain).map_err(anyhow::Error::new));
        let result = match sealed {
            Ok(sealed) => {
                self.cache.set(record, format!("D:{sealed}").as_bytes(), Some(KEEP)).await.map_err(anyhow::Error::new)
            }
            Err(err) => Err(err),
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, "storing an idempotent response failed; a retry will run again");
            self.abandon(record).await;
        }
    }

    async fn abandon(&self, record: &str) {
        if let Err(err) = self.cache.delete(record).await {
            tracing::warn!(error = %err, "releasing an idempotency key failed");
        }
    }
}

fn invalid_key() -> ApiError {
    ApiError::validation(vec![FieldError {
        field: HEADER.to_owned(),
        message: "must be 1 to 255 visible ASCII characters".to_owned(),
    }])
}

/// The middleware.
///
/// # Errors
/// 422 for a malformed key or a mismatched body, 409 while the first request runs, 413 for a
/// body over the JSON limit; inner errors pass through.
pub async fn idempotency(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let key = req.headers().get(HEADER).map(|value| value.to_str().map(str::to_owned));
    let store = req.app_data::<actix_web::web::Data<IdempotencyStore>>().cloned();
    // The routed (percent-decoded) path, as the router sees it: an encoded spelling of a
    // credential exchange is still one.
    let exchange = CREDENTIAL_EXCHANGES.contains(&req.match_info().as_str());
    let (Some(key), Some(store), true, false) = (key, store, req.method() == Method::POST, exchange) else {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    };
    let key = key
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(invalid_key)?;

    // A streamed upload (multipart) is never read here: buffering it would hold the whole
    // file, and its random boundary makes every retry's bytes differ anyway. Its fingerprint
    // is the route, so a repeat with the key replays the first upload's answer.
    let streamed = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("multipart/"));
    let mut hasher = Sha256::new();
    hasher.update(req.path().as_bytes());
    hasher.update(b"?");
    hasher.update(req.query_string().as_bytes());
    hasher.update(b"\n");
    if streamed {
        hasher.update(b"multipart");
    } else {
        // Read the body once, for the fingerprint, and hand it back to the handler.
        let limit = req.app_data::<JsonLimit>().map_or(1_048_576, |limit| limit.0);
        let mut payload = req.take_payload();
        let mut body = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk =
                chunk.map_err(|err| ApiError::malformed(format!("the request body could not be read: {err}")))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::from_status(StatusCode::PAYLOAD_TOO_LARGE).into());
            }
            body.extend_from_slice(&chunk);
        }
        let body = body.freeze();
        hasher.update(&body);
        req.set_payload(Payload::from(body));
    }
    let fingerprint = hex::encode(hasher.finalize());
    let record = IdempotencyStore::key(&store.caller(&req), &key);

    match store.begin(&record, &fingerprint).await? {
        Begin::InProgress => Err(ApiError::new(
            StatusCode::CONFLICT,
            "idempotency_in_progress",
            "A request with this idempotency-key is still being processed.",
        )
        .into()),
        Begin::Mismatch(gates) => {
            admit(req.request(), &gates).await?;
            Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_mismatch",
                "This idempotency-key was used with a different request.",
            )
            .into())
        }
        Begin::Replay(stored) => {
            // The caller must pass today what the first request passed, or get the route's
            // own refusal: a stored body (perhaps a new key's secret) is never the answer.
            admit(req.request(), &stored.gates).await?;
            let mut response = HttpResponse::build(StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK));
            if let Some(content_type) = &stored.content_type {
                response.insert_header((header::CONTENT_TYPE, content_type.as_str()));
            }
            if let Some(location) = &stored.location {
                response.insert_header((header::LOCATION, location.as_str()));
            }
            response.insert_header(("idempotent-replayed", "true"));
            let bytes = STANDARD.decode(&stored.body).unwrap_or_default();
            Ok(req.into_response(response.body(bytes)))
        }
        Begin::Proceed => {
            let response = match next.call(req).await {
                Ok(response) => response.map_into_boxed_body(),
                Err(err) => {
                    store.abandon(&record).await;
                    return Err(err);
                }
            };
            if !response.status().is_success() {
                store.abandon(&record).await;
                return Ok(response);
            }
            let (request, response) = response.into_parts();
            let gates = request.extensions().get::<Gates>().cloned().unwrap_or_default().0;
            let status = response.status();
            let content_type = header_text(response.headers().get(header::CONTENT_TYPE));
            let location = header_text(response.headers().get(header::LOCATION));
            let (head, body) = response.into_parts();
            let bytes: Bytes = match actix_web::body::to_bytes(body).await {
                Ok(bytes) => bytes,
                Err(_) => {
                    store.abandon(&record).await;
                    return Err(ApiError::internal(anyhow::anyhow!("reading a response body failed")).into());
                }
            };
            let stored = Stored {
                fingerprint,
                gates,
                status: status.as_u16(),
                content_type,
                location,
                body: STANDARD.encode(&bytes),
            };
            store.finish(&record, &stored).await;
            Ok(ServiceResponse::new(request, head.set_body(BoxBody::new(bytes))))
        }
    }
}

fn header_text(value: Option<&HeaderValue>) -> Option<String> {
    value.and_then(|v| v.to_str().ok()).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use tenantry_adapter_crypto::{Ed25519AccessTokens, XChaChaCipher, load_or_generate_signing_key};
    use tenantry_adapter_memory::{InMemoryCache, SystemClock};

    use super::*;

    fn user() -> tenantry_domain::UserId {
        tenantry_domain::UserId::from_uuid(uuid::Uuid::from_u128(7))
    }

    #[tokio::test]
    async fn stored_responses_are_sealed_at_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = Arc::new(InMemoryCache::new(Arc::new(SystemClock)));
        let cipher = Arc::new(XChaChaCipher::load_or_generate(&dir.path().join("key")).expect("key"));
        let signing = load_or_generate_signing_key(&dir.path().join("jwt.pem")).expect("jwt key");
        let access = Arc::new(Ed25519AccessTokens::new("http://x".into(), &signing, &[]).expect("issuer"));
        let store = IdempotencyStore::new(cache.clone(), cipher, access, Arc::new(SystemClock));
        let record = IdempotencyStore::key("user:1", "k");
        assert!(matches!(store.begin(&record, "fp").await.expect("begin"), Begin::Proceed));
        let secret = r#"{"key":"tk_live_secret_material"}"#;
        let stored = Stored {
            fingerprint: "fp".into(),
            gates: vec![Gate::Signed { user_id: user() }],
            status: 201,
            content_type: Some("application/json".into()),
            location: None,
            body: STANDARD.encode(secret),
        };
        store.finish(&record, &stored).await;
        let raw = cache.get(&record).await.expect("get").expect("stored");
        let raw = String::from_utf8_lossy(&raw);
        assert!(raw.starts_with("D:v1."), "{raw}");
        assert!(!raw.contains("tk_live") && !raw.contains(&STANDARD.encode(secret)), "plaintext at rest: {raw}");
        match store.begin(&record, "fp").await.expect("begin") {
            Begin::Replay(replayed) => {
                assert_eq!(
                    replayed.gates,
                    vec![Gate::Signed { user_id: user() }],
                    "the gates come back with the record"
                );
                assert_eq!(STANDARD.decode(replayed.body).expect("b64"), secret.as_bytes());
            }
            _ => panic!("expected a replay"),
        }
        assert!(
            matches!(store.begin(&record, "other").await.expect("begin"), Begin::Mismatch(gates) if gates == vec![Gate::Signed { user_id: user() }])
        );
    }
}
