//! Structured logs and traces through `tracing`.
//!
//! Logs: pretty on a terminal, one JSON object per line otherwise (or when
//! `TENANTRY_LOG_FORMAT=json`), filtered by `TENANTRY_LOG` (`RUST_LOG` as the fallback).
//! Every JSON line written inside a span carries the W3C `trace_id` and `span_id` of that
//! span, so a log line can be found from a trace, a webhook's `traceparent` or a caller's own
//! trace, and the other way round.
//!
//! Traces: every `tracing` span is also an OpenTelemetry span (`tracing-opentelemetry`). Ids
//! are generated whether or not anything is exported, so logs always correlate; with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, finished spans go to an OTLP collector over gRPC or
//! HTTP/protobuf from a batch processor on the tokio runtime, and [`Telemetry::shutdown`]
//! flushes what is still queued when the process stops (ADR 0019).

use std::fmt;
use std::io::IsTerminal;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::{Map, Value};
use tracing::Level;
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, filter_fn};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt as subscriber_fmt};

use crate::config::{LogFormat, OtlpExport, OtlpProtocol};

/// Why telemetry could not start (an exporter that cannot be built from its settings).
#[derive(Debug, thiserror::Error)]
#[error("OTLP trace export: {0}")]
pub struct TelemetryError(String);

/// The tracer provider of the process; keep it until the end and call [`Self::shutdown`].
#[must_use = "dropping it without shutdown loses the spans still queued"]
pub struct Telemetry {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl Telemetry {
    /// Whether spans leave the process.
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    /// Exports what is still queued and stops the exporter. It blocks until the batch
    /// processor (a task on the tokio runtime) answers, so call it from a thread that is not
    /// one of the runtime's workers, or with other workers free (the `tenantry` binary calls
    /// it after the server and the worker stopped, on a blocking thread).
    pub fn shutdown(&self) {
        if !self.exporting {
            return;
        }
        if let Err(err) = self.provider.shutdown() {
            tracing::warn!(error = %err, "flushing the last spans failed");
        }
    }
}

/// Installs the global subscriber (logs and traces); a second call (tests starting several
/// apps in one process) keeps the first subscriber and returns a provider that exports
/// nothing.
///
/// With `export`, it must run inside a tokio runtime: the batch span processor is a task on
/// it, and the gRPC channel is created there.
///
/// # Errors
/// [`TelemetryError`] when the exporter cannot be built from `export` (a malformed endpoint).
pub fn init(filter: &str, format: LogFormat, export: Option<&OtlpExport>) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stdout().is_terminal(),
    };
    let provider = match export {
        Some(export) => exporting_provider(export)?,
        // No processor: spans get real W3C ids (for logs and `traceparent`) but are never
        // recorded, which is the cheapest the SDK offers.
        None => SdkTracerProvider::builder().build(),
    };
    let tracer = provider.tracer("tenantry");
    // Spans (INFO and above) exist for the OpenTelemetry layer whatever the log filter says,
    // so a log line at `warn` still carries its request's trace id and `TENANTRY_LOG=warn`
    // does not switch traces off. Events reach the OpenTelemetry layer from WARN up (they
    // become span events). The log layer sees only what the filter lets through: it does not
    // format the fields of spans it would never print.
    let otel = tracing_opentelemetry::layer().with_tracer(tracer).with_location(false).with_threads(false).with_filter(
        filter_fn(|metadata| {
            let level = *metadata.level();
            if metadata.is_span() { level <= Level::INFO } else { level <= Level::WARN }
        })
        .with_max_level_hint(LevelFilter::INFO),
    );
    let registry = tracing_subscriber::registry().with(otel);
    let result = if json {
        registry
            .with(subscriber_fmt::layer().fmt_fields(JsonFields::new()).event_format(JsonLines).with_filter(filter))
            .try_init()
    } else {
        registry.with(subscriber_fmt::layer().with_target(false).with_filter(filter)).try_init()
    };
    // Already installed (several apps in one test process): keep the first.
    let installed = result.is_ok();
    Ok(Telemetry { provider, exporting: export.is_some() && installed })
}

fn exporting_provider(export: &OtlpExport) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;

    let fail = |err: opentelemetry_otlp::ExporterBuildError| TelemetryError(err.to_string());
    // `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT` and `_COMPRESSION` (and
    // their `_TRACES_` forms) are read by the exporter builders themselves.
    let exporter = match export.protocol {
        OtlpProtocol::Grpc => {
            let mut builder = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_protocol(opentelemetry_otlp::Protocol::Grpc)
                .with_endpoint(export.endpoint.clone());
            if export.endpoint.starts_with("https://") {
                // The Mozilla roots compiled in: no system trust store needed (distroless).
                builder = builder.with_tls_config(
                    opentelemetry_otlp::tonic_types::transport::ClientTlsConfig::new().with_webpki_roots(),
                );
            }
            builder.build().map_err(fail)?
        }
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_http_client(http_client()?)
            .with_endpoint(export.endpoint.clone())
            .build()
            .map_err(fail)?,
    };
    // The async-runtime processor: export runs on tokio (reqwest and tonic need its reactor),
    // not on a thread of its own blocking on futures. `OTEL_BSP_*` tune it.
    let processor = BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    let resource = Resource::builder()
        .with_service_name(export.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    // The sampler comes from `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (the SDK's
    // default configuration reads them); unset, it is parent-based always-on.
    let sampler = QuietPolling(opentelemetry_sdk::trace::Config::default().sampler);
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(resource)
        .with_sampler(sampler)
        .build())
}

/// The name of the span around one step of a background job (see `worker`).
pub const WORKER_STEP: &str = "worker.step";

/// Drops the traces rooted in a background job's step (an idle dispatcher polls five times a
/// second: exporting those would cost more than every request) and asks the configured sampler
/// about everything else. Dropped spans keep valid ids, so the step's log lines still carry
/// them. Webhook attempts are roots of their own (they run as tasks of their own), so they
/// are exported.
#[derive(Debug, Clone)]
struct QuietPolling(Box<dyn opentelemetry_sdk::trace::ShouldSample>);

impl opentelemetry_sdk::trace::ShouldSample for QuietPolling {
    fn should_sample(
        &self,
        parent_context: Option<&opentelemetry::Context>,
        trace_id: opentelemetry::trace::TraceId,
        name: &str,
        span_kind: &opentelemetry::trace::SpanKind,
        attributes: &[opentelemetry::KeyValue],
        links: &[opentelemetry::trace::Link],
    ) -> opentelemetry_sdk::trace::SamplingResult {
        let root = parent_context.is_none_or(|parent| !parent.span().span_context().is_valid());
        if root && name == WORKER_STEP {
            return opentelemetry_sdk::trace::SamplingResult {
                decision: opentelemetry_sdk::trace::SamplingDecision::Drop,
                attributes: Vec::new(),
                trace_state: opentelemetry::trace::TraceState::default(),
            };
        }
        self.0.should_sample(parent_context, trace_id, name, span_kind, attributes, links)
    }
}

/// reqwest with rustls (ring) and the Mozilla roots, like the webhook sender: reqwest is
/// built without a default TLS provider in this workspace.
fn http_client() -> Result<reqwest::Client, TelemetryError> {
    let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let tls =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|err| TelemetryError(format!("TLS: {err}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .no_proxy()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|err| TelemetryError(format!("HTTP client: {err}")))
}

/// The W3C trace-context propagator (`traceparent`, `tracestate`).
fn propagator() -> TraceContextPropagator {
    TraceContextPropagator::new()
}

/// Makes `span` continue the caller's trace when `headers` carry a valid `traceparent`
/// (and its `tracestate`); a missing or malformed one leaves `span` a new root. Call it
/// before the span is first entered.
pub fn continue_remote_trace(span: &tracing::Span, headers: &actix_web::http::header::HeaderMap) {
    let parent = propagator().extract(&HeaderExtractor(headers));
    if parent.span().span_context().is_valid() {
        // Fails only without the OpenTelemetry layer (a subscriber installed by an embedder).
        let _ = span.set_parent(parent);
    }
}

/// The `traceparent` (and `tracestate`, when there is one) naming `span`, for an outgoing
/// request; empty when the span has no valid context (no OpenTelemetry layer installed).
pub fn trace_headers(span: &tracing::Span) -> Vec<(String, String)> {
    let mut headers = HeaderInjector(Vec::new());
    propagator().inject_context(&span.context(), &mut headers);
    headers.0
}

/// The W3C ids of `span`: 32 and 16 lowercase hex digits, `None` without a valid context.
pub fn ids(span: &tracing::Span) -> Option<(String, String)> {
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    span_context.is_valid().then(|| (span_context.trace_id().to_string(), span_context.span_id().to_string()))
}

struct HeaderExtractor<'a>(&'a actix_web::http::header::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(actix_web::http::header::HeaderName::as_str).collect()
    }
}

struct HeaderInjector(Vec<(String, String)>);

impl Injector for HeaderInjector {
    fn set(&mut self, key: &str, value: String) {
        if !value.is_empty() {
            self.0.push((key.to_owned(), value));
        }
    }
}

/// One JSON object per line: `timestamp`, `level`, the event's fields (`message` first among
/// them), `target`, the innermost span as `span` (its fields and `name`), and its W3C
/// `trace_id` and `span_id`. The same shape as `tracing-subscriber`'s flattened JSON, plus the
/// ids, which that formatter cannot reach.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".to_owned(),
            Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        line.insert("level".to_owned(), Value::String(metadata.level().as_str().to_owned()));
        event.record(&mut JsonVisitor(&mut line));
        line.insert("target".to_owned(), Value::String(metadata.target().to_owned()));
        if let Some(leaf) = ctx.event_scope().and_then(|mut scope| scope.next()) {
            let mut span = {
                let extensions = leaf.extensions();
                extensions
                    .get::<FormattedFields<N>>()
                    .and_then(|fields| serde_json::from_str::<Map<String, Value>>(fields.as_str()).ok())
                    .unwrap_or_default()
            };
            span.insert("name".to_owned(), Value::String(leaf.name().to_owned()));
            line.insert("span".to_owned(), Value::Object(span));
        }
        // The ids come from the innermost span of the whole subscriber, not of this layer: the
        // log filter may hide INFO spans (`TENANTRY_LOG=warn`) that the trace still has. The
        // global dispatcher (the binary and the test harness install one) holds the
        // OpenTelemetry layer and its per-span ids; no extension lock is held here, as
        // `get_otel_context` requires.
        let context = tracing::dispatcher::get_default(|dispatch| {
            let id = match event.parent() {
                Some(parent) => Some(parent.clone()),
                None if event.is_contextual() => dispatch.current_span().id().cloned(),
                None => None,
            };
            id.and_then(|id| tracing_opentelemetry::get_otel_context(&id, dispatch))
        });
        if let Some(context) = context {
            let span_ref = context.span();
            let span_context = span_ref.span_context();
            if span_context.is_valid() {
                line.insert("trace_id".to_owned(), Value::String(span_context.trace_id().to_string()));
                line.insert("span_id".to_owned(), Value::String(span_context.span_id().to_string()));
            }
        }
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Collects an event's fields into a JSON object (numbers and booleans stay typed).
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let value = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.0.insert(field.name().to_owned(), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::String(value.to_owned()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().to_owned(), Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `log` crate records arrive with `log.*` metadata fields; they add nothing here.
        if field.name().starts_with("log.") {
            return;
        }
        self.0.insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
}
