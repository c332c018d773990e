//! Prometheus metrics: per-route request counts and latency, labelled by the route template
//! (never the raw path, which would let clients create unbounded series).

use std::time::Duration;

use prometheus::{
    Counter, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Reads the database pool's figures now.
pub type PoolSource = Box<dyn Fn() -> tenantry_adapter_sql::PoolStats + Send + Sync>;

/// The process's metric families, in their own registry.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    in_flight: IntGauge,
    rate_limited: IntCounterVec,
    limit_store_failures: IntCounterVec,
    quota_refusals: IntCounterVec,
    quota_thresholds: IntCounterVec,
    webhook_attempts: IntCounterVec,
    webhook_attempt_seconds: HistogramVec,
    webhook_commit_to_delivery: HistogramVec,
    webhook_queue_depth: IntGauge,
    mail_outbox_depth: IntGauge,
    mail_sent: IntCounterVec,
    mail_failed: IntCounterVec,
    mail_queued_to_sent: HistogramVec,
    logins: IntCounterVec,
    pool_open: IntGauge,
    pool_in_use: IntGauge,
    pool_max: IntGauge,
    pool_acquires: IntCounter,
    pool_acquire_wait: Counter,
    /// The pool's cumulative figures at the last scrape; the counters grow by the difference.
    pool_seen: std::sync::Mutex<(u64, Duration)>,
    cache_hits: IntCounterVec,
    cache_misses: IntCounterVec,
    /// Reads the database pool's figures at each scrape (set once the database is open).
    pool_source: std::sync::OnceLock<PoolSource>,
}

/// Sign-in outcomes whose series exist from the start (at 0), so alert expressions over
/// them have data before the first failure.
const LOGIN_OUTCOMES: [&str; 4] = ["success", "invalid_credentials", "mfa_required", "locked"];

/// The route label of requests that matched no route.
pub const UNMATCHED: &str = "unmatched";

impl Metrics {
    /// Registers the HTTP families.
    ///
    /// # Errors
    /// Only if two families share a name, which is a programming error caught by tests.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("tenantry".to_owned()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests served, by method, route template and status."),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time to produce the response, by method and route template.",
            )
            .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
            &["method", "route"],
        )?;
        let in_flight = IntGauge::new("http_requests_in_flight", "Requests being served now.")?;
        let rate_limited = IntCounterVec::new(
            Opts::new("rate_limited_total", "Requests refused by a rate limit, by route group."),
            &["group"],
        )?;
        let limit_store_failures = IntCounterVec::new(
            Opts::new(
                "rate_limit_store_failures_total",
                "Rate-limit decisions the shared store could not make, by route group (the group failed open or closed).",
            ),
            &["group"],
        )?;
        let quota_refusals = IntCounterVec::new(
            Opts::new("quota_refusals_total", "Requests refused by a quota, by quota."),
            &["quota"],
        )?;
        let quota_thresholds = IntCounterVec::new(
            Opts::new("quota_thresholds_crossed_total", "First crossings of 80 % and 100 % of a quota in a period."),
            &["quota", "percent"],
        )?;
        let webhook_attempts = IntCounterVec::new(
            Opts::new("webhook_attempts_total", "Webhook delivery attempts, by the delivery's status after them."),
            &["outcome"],
        )?;
        let webhook_attempt_seconds = HistogramVec::new(
            HistogramOpts::new("webhook_attempt_duration_seconds", "Time from sending a webhook to its answer.")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0]),
            &[],
        )?;
        let webhook_commit_to_delivery = HistogramVec::new(
            HistogramOpts::new(
                "webhook_commit_to_delivery_seconds",
                "Time from an event's commit to its successful delivery.",
            )
            .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0]),
            &[],
        )?;
        let webhook_queue_depth =
            IntGauge::new("webhook_queue_depth", "Webhook deliveries waiting (pending or failed).")?;
        let mail_outbox_depth = IntGauge::new(
            "mail_outbox_depth",
            "Mails waiting in the outbox (queued, or retrying while the relay is unavailable).",
        )?;
        let mail_sent =
            IntCounterVec::new(Opts::new("mail_sent_total", "Mails the relay accepted, by kind."), &["kind"])?;
        let mail_failed = IntCounterVec::new(
            Opts::new(
                "mail_failed_total",
                "Failed mail attempts, by kind and outcome (`retry`: it waits for another attempt; `dead`: given up).",
            ),
            &["kind", "outcome"],
        )?;
        let mail_queued_to_sent = HistogramVec::new(
            HistogramOpts::new("mail_queued_to_sent_seconds", "Time from a mail's commit to the relay accepting it.")
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0, 14_400.0]),
            &[],
        )?;
        let logins = IntCounterVec::new(
            Opts::new("logins_total", "Sign-in attempts, by outcome (success or the reason for a refusal)."),
            &["outcome"],
        )?;
        let pool_open = IntGauge::new("db_pool_connections_open", "Database connections open now.")?;
        let pool_in_use =
            IntGauge::new("db_pool_connections_in_use", "Database connections checked out by requests or jobs now.")?;
        let pool_max = IntGauge::new("db_pool_connections_max", "The most database connections the pool opens.")?;
        let pool_acquires = IntCounter::new(
            "db_pool_acquires_total",
            "Database transactions opened (each checks a connection out of the pool).",
        )?;
        let pool_acquire_wait = Counter::new(
            "db_pool_acquire_wait_seconds_total",
            "Time spent opening those transactions: waiting for a pooled connection, plus BEGIN. \
             Divided by db_pool_acquires_total over an interval it is the mean wait.",
        )?;
        let cache_hits = IntCounterVec::new(
            Opts::new(
                "cache_hits_total",
                "Reads of a read-through cache answered from it, by cache and tier (local copy or shared cache).",
            ),
            &["cache", "tier"],
        )?;
        let cache_misses = IntCounterVec::new(
            Opts::new("cache_misses_total", "Reads of a read-through cache that went to the database, by cache."),
            &["cache"],
        )?;
        for tier in ["local", "shared"] {
            cache_hits.with_label_values(&["tenancy", tier]);
        }
        cache_misses.with_label_values(&["tenancy"]);
        for outcome in LOGIN_OUTCOMES {
            logins.with_label_values(&[outcome]);
        }
        // Every bounded label value exists from the start at 0: an alert over a family whose
        // series are all absent has nothing to evaluate, and a dashboard shows "no data".
        for quota in tenantry_domain::quota::Quota::ALL {
            quota_refusals.with_label_values(&[quota.as_str()]);
        }
        for kind in tenantry_application::MailKind::ALL {
            mail_sent.with_label_values(&[kind.as_str()]);
            for outcome in ["retry", "dead"] {
                mail_failed.with_label_values(&[kind.as_str(), outcome]);
            }
        }
        let build_info = IntGaugeVec::new(
            Opts::new("build_info", "Always 1; the labels name the running build."),
            &["version", "rustc"],
        )?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), option_env!("CARGO_PKG_RUST_VERSION").unwrap_or("")])
            .set(1);
        for family in [&pool_open, &pool_in_use, &pool_max] {
            registry.register(Box::new(family.clone()))?;
        }
        registry.register(Box::new(logins.clone()))?;
        registry.register(Box::new(pool_acquires.clone()))?;
        registry.register(Box::new(pool_acquire_wait.clone()))?;
        registry.register(Box::new(cache_hits.clone()))?;
        registry.register(Box::new(cache_misses.clone()))?;
        registry.register(Box::new(build_info.clone()))?;
        registry.register(Box::new(webhook_attempts.clone()))?;
        registry.register(Box::new(webhook_attempt_seconds.clone()))?;
        registry.register(Box::new(webhook_commit_to_delivery.clone()))?;
        registry.register(Box::new(webhook_queue_depth.clone()))?;
        registry.register(Box::new(mail_outbox_depth.clone()))?;
        registry.register(Box::new(mail_sent.clone()))?;
        registry.register(Box::new(mail_failed.clone()))?;
        registry.register(Box::new(mail_queued_to_sent.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(rate_limited.clone()))?;
        registry.register(Box::new(limit_store_failures.clone()))?;
        registry.register(Box::new(quota_refusals.clone()))?;
        registry.register(Box::new(quota_thresholds.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            in_flight,
            rate_limited,
            limit_store_failures,
            quota_refusals,
            quota_thresholds,
            webhook_attempts,
            webhook_attempt_seconds,
            webhook_commit_to_delivery,
            webhook_queue_depth,
            mail_outbox_depth,
            mail_sent,
            mail_failed,
            mail_queued_to_sent,
            logins,
            pool_open,
            pool_in_use,
            pool_max,
            pool_acquires,
            pool_acquire_wait,
            pool_seen: std::sync::Mutex::new((0, Duration::ZERO)),
            cache_hits,
            cache_misses,
            pool_source: std::sync::OnceLock::new(),
        })
    }

    /// Reads the database pool's figures from `source` at every scrape.
    pub fn watch_pool(&self, source: PoolSource) {
        // Set once per process; a second database would be a wiring mistake, and keeping the
        // first is harmless.
        let _ = self.pool_source.set(source);
    }

    /// Counts a sign-in attempt by `outcome` (a fixed label set: `success`, or why it was
    /// refused).
    pub fn login(&self, outcome: &'static str) {
        self.logins.with_label_values(&[outcome]).inc();
    }

    /// Counts one served request.
    pub fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "OTHER",
        };
        self.requests.with_label_values(&[method, route, &status.to_string()]).inc();
        self.latency.with_label_values(&[method, route]).observe(elapsed.as_secs_f64());
    }

    /// Creates the rate-limit series of `group` at 0 (the limits know their groups).
    pub fn prepare_group(&self, group: &'static str) {
        self.rate_limited.with_label_values(&[group]);
        self.limit_store_failures.with_label_values(&[group]);
    }

    /// Counts a rate-limit refusal of `group` (a fixed label set).
    pub fn rate_limited(&self, group: &'static str) {
        self.rate_limited.with_label_values(&[group]).inc();
    }

    /// Counts a decision the shared rate-limit store could not make.
    pub fn limit_store_failure(&self, group: &'static str) {
        self.limit_store_failures.with_label_values(&[group]).inc();
    }

    /// The in-flight gauge, raised for the duration of each request.
    pub fn in_flight(&self) -> &IntGauge {
        &self.in_flight
    }

    /// The registry, for adapters and services that add their own families.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Everything, in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        if let Some(source) = self.pool_source.get() {
            let pool = source();
            self.pool_open.set(i64::from(pool.open));
            self.pool_in_use.set(i64::from(pool.open.saturating_sub(pool.idle)));
            self.pool_max.set(i64::from(pool.max));
            let mut seen = self.pool_seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.pool_acquires.inc_by(pool.acquires.saturating_sub(seen.0));
            self.pool_acquire_wait.inc_by(pool.acquire_wait.saturating_sub(seen.1).as_secs_f64());
            *seen = (pool.acquires.max(seen.0), pool.acquire_wait.max(seen.1));
        }
        let mut buffer = Vec::new();
        // Encoding into a Vec only fails on invalid metric families, which `new` rules out.
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %err, "encoding metrics failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl tenantry_application::QuotaObserver for Metrics {
    fn refused(&self, quota: tenantry_domain::quota::Quota) {
        self.quota_refusals.with_label_values(&[quota.as_str()]).inc();
    }

    fn crossed(&self, quota: tenantry_domain::quota::Quota, percent: u8) {
        self.quota_thresholds.with_label_values(&[quota.as_str(), &percent.to_string()]).inc();
    }
}

impl tenantry_application::CacheObserver for Metrics {
    fn read(&self, read: tenantry_application::CacheRead) {
        match read {
            tenantry_application::CacheRead::Miss => self.cache_misses.with_label_values(&["tenancy"]).inc(),
            hit => self.cache_hits.with_label_values(&["tenancy", hit.as_str()]).inc(),
        }
    }
}

impl tenantry_application::DeliveryObserver for Metrics {
    fn attempted(&self, status: tenantry_domain::webhooks::DeliveryStatus, latency: Duration) {
        self.webhook_attempts.with_label_values(&[status.as_str()]).inc();
        self.webhook_attempt_seconds.with_label_values(&[] as &[&str]).observe(latency.as_secs_f64());
    }

    fn delivered(&self, since_commit: Duration) {
        self.webhook_commit_to_delivery.with_label_values(&[] as &[&str]).observe(since_commit.as_secs_f64());
    }

    fn queue_depth(&self, depth: u64) {
        self.webhook_queue_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
}

impl tenantry_application::MailObserver for Metrics {
    fn sent(&self, kind: &str, since_queued: Duration) {
        self.mail_sent.with_label_values(&[kind]).inc();
        self.mail_queued_to_sent.with_label_values(&[] as &[&str]).observe(since_queued.as_secs_f64());
    }

    fn failed(&self, kind: &str, dead: bool) {
        self.mail_failed.with_label_values(&[kind, if dead { "dead" } else { "retry" }]).inc();
    }

    fn backlog(&self, depth: u64) {
        self.mail_outbox_depth.set(i64::try_from(depth).unwrap_or(i64::MAX));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_sends_failures_and_the_backlog_are_exported() {
        use tenantry_application::MailObserver;
        let metrics = Metrics::new().expect("registers");
        metrics.backlog(7);
        metrics.sent("invitation", Duration::from_millis(40));
        metrics.failed("invitation", false);
        metrics.failed("password_reset", true);
        let text = metrics.render();
        assert!(text.contains("tenantry_mail_outbox_depth 7"), "{text}");
        assert!(text.contains(r#"tenantry_mail_sent_total{kind="invitation"} 1"#), "{text}");
        assert!(text.contains(r#"tenantry_mail_failed_total{kind="invitation",outcome="retry"} 1"#), "{text}");
        assert!(text.contains(r#"tenantry_mail_failed_total{kind="password_reset",outcome="dead"} 1"#), "{text}");
        assert!(text.contains("tenantry_mail_queued_to_sent_seconds_bucket"), "{text}");
    }

    #[test]
    fn requests_are_counted_by_route_template_and_odd_methods_are_folded() {
        let metrics = Metrics::new().expect("registers");
        metrics.observe("GET", "/api/v1/orgs/{org_id}", 200, Duration::from_millis(3));
        metrics.observe("GET", "/api/v1/orgs/{org_id}", 200, Duration::from_millis(5));
        metrics.observe("BREW", UNMATCHED, 404, Duration::from_millis(1));
        let text = metrics.render();
        assert!(
            text.contains(r#"tenantry_http_requests_total{method="GET",route="/api/v1/orgs/{org_id}",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"tenantry_http_requests_total{method="OTHER",route="unmatched",status="404"} 1"#),
            "{text}"
        );
        assert!(text.contains("tenantry_http_request_duration_seconds_bucket"), "{text}");
    }
}
