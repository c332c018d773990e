//! Rate limits and quota answers at the edge: which bucket a request is charged to, the
//! `ratelimit-*` headers on every response of `/api/v1`, and the 429 and 403
//! `quota_exceeded` bodies.
//!
//! Routes without credentials (the public operations of the OpenAPI document: sign-in,
//! registration, recovery, the catalogs) are charged per client address *before* the handler
//! runs. Signed-in requests are charged per user or API key by the authentication extractors,
//! and per organization once membership is known (so an outsider's 404s never drain an
//! organization's bucket). A request whose credentials fail is charged to its address.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web::Data;
use actix_web::{HttpMessage, HttpRequest, ResponseError};
use tenantry_application::{QuotaError, QuotaExceeded, RateDecision, RateLimiter};
use tenantry_domain::rate::RatePolicy;

use super::ApiError;
use super::metrics::Metrics;
use crate::config::LimitSettings;

/// The buckets a request can be charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Per client address, on routes without credentials. Fails closed: these routes guard
    /// passwords and sign-ups.
    Anonymous,
    /// Per user or API key. Fails open.
    Principal,
    /// Per organization. Fails open.
    Org,
}

impl Group {
    /// The label in metrics and bucket keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::Principal => "principal",
            Self::Org => "org",
        }
    }
}

/// What one request has been charged so far: shared between the middleware and the
/// extractors through the request's extensions.
#[derive(Debug, Default)]
struct Charges {
    keys: Vec<String>,
    decision: Option<RateDecision>,
}

type Ledger = Rc<RefCell<Charges>>;

/// The rate limits of this process, registered in `AppState`.
pub struct RateLimits {
    limiter: Arc<RateLimiter>,
    /// The anonymous group's, without leases: its keys are client addresses, which a client
    /// chooses, so nothing may be held per key beyond one request.
    anonymous_limiter: Arc<RateLimiter>,
    anonymous: Option<RatePolicy>,
    principal: Option<RatePolicy>,
    org: Option<RatePolicy>,
    public: HashSet<(String, String)>,
    metrics: Arc<Metrics>,
}

impl RateLimits {
    /// Limits from `settings`, through `limiter`; `public` lists the `(METHOD, path)` of the
    /// operations that need no credentials.
    pub fn new(
        (limiter, anonymous_limiter): (Arc<RateLimiter>, Arc<RateLimiter>),
        settings: &LimitSettings,
        public: HashSet<(String, String)>,
        metrics: Arc<Metrics>,
    ) -> Self {
        // Every group's series exist from the start, at 0.
        for group in [Group::Anonymous, Group::Principal, Group::Org] {
            metrics.prepare_group(group.as_str());
        }
        Self {
            limiter,
            anonymous_limiter,
            anonymous: settings.anonymous,
            principal: settings.principal,
            org: settings.org,
            public,
            metrics,
        }
    }

    fn policy(&self, group: Group) -> Option<RatePolicy> {
        match group {
            Group::Anonymous => self.anonymous,
            Group::Principal => self.principal,
            Group::Org => self.org,
        }
    }

    /// Charges one request of `subject` (`user:<id>`, `key:<id>`, `org:<id>`, an address) to
    /// `group`'s bucket, once per request.
    ///
    /// # Errors
    /// 429 `rate_limited` with `retry-after`; 503 when the anonymous group cannot decide.
    pub async fn charge(&self, req: &HttpRequest, group: Group, subject: &str) -> Result<(), ApiError> {
        let ledger = req.extensions().get::<Ledger>().cloned();
        match ledger {
            Some(ledger) => self.charge_to(&ledger, group, subject).await,
            // Outside `/api/v1` nothing is limited.
            None => Ok(()),
        }
    }

    async fn charge_to(&self, ledger: &Ledger, group: Group, subject: &str) -> Result<(), ApiError> {
        let Some(policy) = self.policy(group) else { return Ok(()) };
        let key = format!("{}:{subject}", group.as_str());
        if ledger.borrow().keys.contains(&key) {
            return Ok(());
        }
        ledger.borrow_mut().keys.push(key.clone());
        let limiter = if group == Group::Anonymous { &self.anonymous_limiter } else { &self.limiter };
        match limiter.check(&key, policy).await {
            Ok(decision) => {
                {
                    let mut charges = ledger.borrow_mut();
                    charges.decision = Some(charges.decision.map_or(decision, |earlier| earlier.tighter(decision)));
                }
                if decision.allowed {
                    return Ok(());
                }
                self.metrics.rate_limited(group.as_str());
                Err(rate_limited(decision))
            }
            Err(err) => {
                self.metrics.limit_store_failure(group.as_str());
                if group == Group::Anonymous {
                    tracing::error!(error = %err, group = group.as_str(), "rate limits unavailable: refusing (fail closed)");
                    Err(ApiError::unavailable("Rate limiting is temporarily unavailable; retry shortly."))
                } else {
                    tracing::warn!(error = %err, group = group.as_str(), "rate limits unavailable: allowing (fail open)");
                    Ok(())
                }
            }
        }
    }

    fn is_public(&self, method: &str, path: &str) -> bool {
        self.public.contains(&(method.to_owned(), path.to_owned()))
    }

    /// Gives back leased tokens (the expired ones, or all at shutdown).
    pub async fn flush(&self, everything: bool) {
        match self.limiter.flush(everything).await {
            Err(err) if everything => tracing::warn!(error = %err, "giving back leased rate-limit tokens failed"),
            // Every 250 ms while the store is down: the refusals already say so.
            Err(err) => tracing::debug!(error = %err, "giving back leased rate-limit tokens failed"),
            Ok(_) => {}
        }
    }
}

/// 429 `rate_limited` for `decision`, with `retry-after` in whole seconds.
pub fn rate_limited(decision: RateDecision) -> ApiError {
    let seconds = decision.retry_after.map_or(1, |wait| wait.as_secs_f64().ceil() as u64).max(1);
    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "Too many requests; retry later.")
        .with_extra("retry_after_seconds", seconds)
        .with_header(header::RETRY_AFTER, HeaderValue::from(seconds))
}

/// 403 `quota_exceeded` naming the quota, its limit, what is used and when the period ends.
pub fn quota_exceeded(refusal: &QuotaExceeded) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "quota_exceeded",
        format!("The organization has used its `{}` quota for this period.", refusal.quota),
    )
    .with_extra("quota", refusal.quota.as_str())
    .with_extra("limit", refusal.limit)
    .with_extra("used", refusal.used)
    .with_extra("period_end", refusal.period_end.map(|end| end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
}

/// The HTTP answer for each quota failure.
pub fn quota_error(err: QuotaError) -> ApiError {
    match err {
        QuotaError::Exceeded(refusal) => quota_exceeded(&refusal),
        QuotaError::NotFound => ApiError::not_found(),
        QuotaError::UnknownPlan => ApiError::validation(vec![super::FieldError {
            field: "plan".to_owned(),
            message: "is not a plan of this deployment (see GET /api/v1/plans)".to_owned(),
        }]),
        QuotaError::CountersUnavailable(cause) => {
            tracing::error!(error = %cause, "usage counters unavailable");
            ApiError::unavailable("Usage counters are temporarily unavailable; retry shortly.")
        }
        QuotaError::Dependency(cause) if super::error::is_unavailable(&cause) => {
            tracing::error!(error = format!("{cause:#}"), "a dependency is unavailable");
            ApiError::unavailable("A dependency is temporarily unavailable; retry shortly.")
        }
        QuotaError::Dependency(cause) => ApiError::internal(cause),
    }
}

const LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

fn put_headers(headers: &mut HeaderMap, decision: &RateDecision) {
    headers.insert(LIMIT, HeaderValue::from(decision.limit));
    headers.insert(REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(RESET, HeaderValue::from(decision.reset_after.as_secs_f64().ceil() as u64));
}

/// Charges anonymous requests before they run, and puts the `ratelimit-*` headers on every
/// response of `/api/v1` (errors included).
///
/// # Errors
/// Inner errors pass through, with the headers added to their response.
pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let limits = req.app_data::<Data<RateLimits>>().cloned();
    // The path the router matches (percent-decoded), never the raw one: `/%61pi/v1/…` reaches
    // the same handler and must meet the same limits.
    let path = req.match_info().as_str().to_owned();
    let Some(limits) = limits.filter(|_| path.starts_with("/api/v1/")) else {
        return next.call(req).await.map(ServiceResponse::map_into_boxed_body);
    };
    let ledger: Ledger = Rc::default();
    req.extensions_mut().insert(ledger.clone());
    let public = limits.is_public(req.method().as_str(), &path);
    let address = super::client_ip::client_info(req.request())
        .ip
        .map_or_else(|| "unknown".to_owned(), |ip| tenantry_application::address_bucket(&ip));
    if public && let Err(refused) = limits.charge_to(&ledger, Group::Anonymous, &address).await {
        let mut response = req.into_response(refused.error_response());
        if let Some(decision) = ledger.borrow().decision {
            put_headers(response.headers_mut(), &decision);
        }
        return Ok(response);
    }
    let result = next.call(req).await;
    let status = match &result {
        Ok(response) => response.status(),
        Err(err) => err.as_response_error().status_code(),
    };
    let mut refused = None;
    if ledger.borrow().decision.is_none() && !public {
        // No bucket was charged: the credentials did not check out, or the request failed
        // before they were read (a malformed body). The address pays, so the answer carries
        // the headers; for credentials that failed (no handler ran), an empty bucket turns
        // the answer into a 429, so guessing tokens or keys is throttled too.
        let charged = limits.charge_to(&ledger, Group::Anonymous, &address).await;
        if let Err(limited) = charged
            && status == StatusCode::UNAUTHORIZED
        {
            refused = Some(limited);
        }
    }
    let decision = ledger.borrow().decision;
    if let Some(limited) = refused {
        let mut response = limited.error_response();
        if let Some(decision) = decision {
            put_headers(response.headers_mut(), &decision);
        }
        return match result {
            Ok(answered) => Ok(ServiceResponse::new(answered.request().clone(), response)),
            Err(err) => Err(InternalError::from_response(err.to_string(), response).into()),
        };
    }
    match result {
        Ok(response) => {
            let mut response = response.map_into_boxed_body();
            if let Some(decision) = decision {
                put_headers(response.headers_mut(), &decision);
            }
            Ok(response)
        }
        Err(err) => {
            let mut response = err.error_response();
            if let Some(decision) = decision {
                put_headers(response.headers_mut(), &decision);
            }
            Err(InternalError::from_response(err.to_string(), response).into())
        }
    }
}

/// The `(METHOD, path)` of every operation of the OpenAPI document that declares no security
/// requirement: the routes charged per address.
pub fn public_operations(document: &serde_json::Value) -> HashSet<(String, String)> {
    let mut public = HashSet::new();
    let Some(paths) = document.get("paths").and_then(serde_json::Value::as_object) else {
        return public;
    };
    for (path, operations) in paths {
        let Some(operations) = operations.as_object() else { continue };
        for (method, operation) in operations {
            let secured = operation
                .get("security")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|requirements| requirements.iter().any(|r| r.as_object().is_some_and(|r| !r.is_empty())));
            if !secured {
                public.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
    }
    public
}
