//! OTLP trace export from the real `tenantry serve` process to a collector on loopback inside
//! the test, over both protocols the server speaks: HTTP/protobuf (an actix route decoding
//! `ExportTraceServiceRequest` with opentelemetry-proto's prost types) and gRPC (opentelemetry-
//! proto's tonic `TraceService`).
//!
//! One request carries a known W3C `traceparent`; the collector must receive that request's
//! spans, the database span included, all in the caller's trace, the HTTP span a child of the
//! caller's span with the route template and status. The JSON log line of that request carries
//! the same trace id. A webhook's request carries a `traceparent` naming an exported span of
//! the attempt. The gRPC run exports only at shutdown (a schedule delay of a minute), so it
//! also proves that SIGTERM flushes what is queued.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;
use support::call;

use support::BIN;

/// The caller's trace and span, as sent in `traceparent`.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

/// One exported span, flattened with its resource's attributes.
#[derive(Debug, Clone)]
struct Received {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    kind: i32,
    attributes: HashMap<String, String>,
    resource: HashMap<String, String>,
}

type Collected = Arc<Mutex<Vec<Received>>>;

fn text(values: &[KeyValue]) -> HashMap<String, String> {
    values
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.clone()) {
                Some(AnyValue::StringValue(s)) => s,
                Some(AnyValue::IntValue(i)) => i.to_string(),
                Some(AnyValue::BoolValue(b)) => b.to_string(),
                Some(AnyValue::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn collect(request: ExportTraceServiceRequest, into: &Collected) {
    let mut collected = into.lock().expect("collected");
    for resource_spans in request.resource_spans {
        let resource = text(&resource_spans.resource.map(|r| r.attributes).unwrap_or_default());
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                collected.push(Received {
                    name: span.name,
                    trace_id: hex::encode(&span.trace_id),
                    span_id: hex::encode(&span.span_id),
                    parent_span_id: hex::encode(&span.parent_span_id),
                    kind: span.kind,
                    attributes: text(&span.attributes),
                    resource: resource.clone(),
                });
            }
        }
    }
}

/// An OTLP/HTTP collector: `POST /v1/traces` with a protobuf body. Returns its base URL.
async fn http_collector(into: Collected) -> String {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let server = HttpServer::new(move || {
        let into = into.clone();
        App::new().route(
            "/v1/traces",
            web::post().to(move |body: web::Bytes| {
                let into = into.clone();
                async move {
                    match ExportTraceServiceRequest::decode(body) {
                        Ok(request) => {
                            collect(request, &into);
                            HttpResponse::Ok()
                                .content_type("application/x-protobuf")
                                .body(ExportTraceServiceResponse::default().encode_to_vec())
                        }
                        Err(_) => HttpResponse::BadRequest().finish(),
                    }
                }
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

struct GrpcCollector(Collected);

#[tonic::async_trait]
impl TraceService for GrpcCollector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        collect(request.into_inner(), &self.0);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// An OTLP/gRPC collector. Returns its URL.
async fn grpc_collector(into: Collected) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(GrpcCollector(into)))
            .serve_with_incoming(incoming),
    );
    format!("http://127.0.0.1:{port}")
}

/// A webhook receiver answering 204; records each request's `traceparent`.
async fn webhook_receiver(seen: Arc<Mutex<Vec<Option<String>>>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0_u8; 4096];
                while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buffer).to_string();
                let traceparent = head.lines().find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("traceparent").then(|| value.trim().to_owned())
                });
                seen.lock().expect("seen").push(traceparent);
                let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n").await;
            });
        }
    });
    url
}

/// `tenantry serve` exporting to `endpoint` over `protocol`; its log lines are collected.
struct Server {
    child: Child,
    port: u16,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(dir: &std::path::Path, endpoint: &str, protocol: &str, schedule_delay_ms: &str) -> Self {
        Self::start_with(
            dir,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
                ("OTEL_BSP_SCHEDULE_DELAY", schedule_delay_ms),
            ],
        )
    }

    fn start_with(dir: &std::path::Path, otel: &[(&str, &str)]) -> Self {
        let mut child = Command::new(BIN)
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs([
                ("TENANTRY_BIND", "127.0.0.1:0"),
                ("TENANTRY_LOG_FORMAT", "json"),
                ("TENANTRY_LOG", "info"),
                ("TENANTRY_WEBHOOK_ALLOW_PRIVATE", "true"),
                ("TENANTRY_RATE_LIMIT_ANONYMOUS", "off"),
            ])
            .envs(otel.iter().copied())
            .arg("serve")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts");
        let stdout = child.stdout.take().expect("stdout");
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            let listening = lines.lock().expect("lines").iter().find(|l| l.contains("tenantry is listening")).cloned();
            if let Some(line) = listening {
                let json: Value = serde_json::from_str(&line).expect("json log line");
                let port = json["address"].as_str().and_then(|a| a.rsplit(':').next()).and_then(|p| p.parse().ok());
                break port.expect("a port");
            }
            assert!(Instant::now() < deadline, "not listening: {:?}", lines.lock().expect("lines"));
            std::thread::sleep(Duration::from_millis(20));
        };
        Self { child, port, lines }
    }

    /// SIGTERM, then the exit status: 0 after a graceful stop. It blocks: the tests run on a
    /// multi-threaded runtime so the collector keeps serving the shutdown's flush meanwhile.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success());
        self.child.wait().expect("exits")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `done` holds for what the collector received.
async fn wait_for(collected: &Collected, what: &str, done: impl Fn(&[Received]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&collected.lock().expect("collected")) {
        assert!(
            Instant::now() < deadline,
            "the collector never received {what}: {:#?}",
            collected.lock().expect("collected").iter().map(|s| (&s.name, &s.trace_id)).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Drives one server: a signed-in user's org, a webhook, then `GET /api/v1/orgs/{org_id}`
/// with the known `traceparent`, and a test delivery. Returns the org id and the
/// `traceparent` the webhook arrived with.
async fn scripted_run(server: &Server, hook_url: &str, hooks: &Arc<Mutex<Vec<Option<String>>>>) -> (String, String) {
    let client = reqwest::Client::new();
    let port = server.port;
    let credentials = json!({"email": "otel@example.com", "password": "a long enough pass phrase 42"});
    call(&client, port, "/api/v1/auth/register", None, credentials.clone()).await;
    let token = call(&client, port, "/api/v1/auth/login", None, credentials).await["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let org = call(&client, port, "/api/v1/orgs", Some(&token), json!({"name": "Traced", "slug": "traced"})).await;
    let org = org["id"].as_str().expect("org id").to_owned();
    let hook = call(
        &client,
        port,
        &format!("/api/v1/orgs/{org}/webhooks"),
        Some(&token),
        json!({"url": hook_url, "events": []}),
    )
    .await;
    let hook = hook["id"].as_str().expect("hook id").to_owned();

    let traced = client
        .get(format!("http://127.0.0.1:{port}/api/v1/orgs/{org}"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01"))
        .header("tracestate", "vendor=opaque")
        .send()
        .await
        .expect("sent");
    assert_eq!(traced.status(), 200);

    call(&client, port, &format!("/api/v1/orgs/{org}/webhooks/{hook}/test"), Some(&token), json!({})).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let traceparent = loop {
        if let Some(first) = hooks.lock().expect("hooks").first().cloned() {
            break first.expect("the webhook request carries a traceparent");
        }
        assert!(Instant::now() < deadline, "the webhook never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (org, traceparent)
}

/// The request's spans and the webhook attempt's, as the collector received them.
fn check(collected: &[Received], org: &str, traceparent: &str) {
    let in_trace: Vec<&Received> = collected.iter().filter(|s| s.trace_id == TRACE_ID).collect();
    let http = in_trace
        .iter()
        .find(|s| s.name == "GET /api/v1/orgs/{org_id}")
        .unwrap_or_else(|| panic!("no HTTP span in the caller's trace: {in_trace:#?}"));
    assert_eq!(http.parent_span_id, PARENT_SPAN_ID, "the request span continues the caller's span");
    assert_eq!(http.kind, opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32);
    assert_eq!(http.attributes["http.route"], "/api/v1/orgs/{org_id}");
    assert_eq!(http.attributes["http.response.status_code"], "200");
    assert_eq!(http.attributes["http.request.method"], "GET");
    assert_eq!(http.attributes["org_id"], org);
    assert_eq!(http.attributes["principal"], "user");
    assert!(!http.attributes["request_id"].is_empty());
    assert_eq!(http.resource["service.name"], "tenantry");
    assert_eq!(http.resource["service.version"], env!("CARGO_PKG_VERSION"));
    let database: Vec<&&Received> = in_trace.iter().filter(|s| s.name.starts_with("adapter.sql.")).collect();
    assert!(!database.is_empty(), "no database span in the request's trace: {in_trace:#?}");
    for span in collected.iter().filter(|s| s.trace_id == TRACE_ID) {
        for value in span.attributes.values() {
            assert!(!value.to_ascii_lowercase().contains("bearer"), "a credential in {span:?}");
        }
    }

    // The webhook's traceparent names an exported span of the attempt's trace.
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!((parts[0], parts[1].len(), parts[2].len(), parts[3].len()), ("00", 32, 16, 2), "{traceparent}");
    assert!(parts[1].chars().all(|c| c.is_ascii_hexdigit()) && parts[1] != "0".repeat(32), "{traceparent}");
    let send = collected
        .iter()
        .find(|s| s.span_id == parts[2])
        .unwrap_or_else(|| panic!("no exported span {} of {traceparent}", parts[2]));
    assert_eq!(send.trace_id, parts[1]);
    assert_eq!(send.name, "adapter.http.webhooks.send");
    let attempt = collected
        .iter()
        .find(|s| s.span_id == send.parent_span_id)
        .unwrap_or_else(|| panic!("the send span's parent was not exported: {send:?}"));
    assert_eq!(attempt.name, "app.webhooks.attempt");
    assert_eq!(attempt.attributes["org_id"], org);
    assert!(attempt.parent_span_id.is_empty(), "an attempt is the root of its trace: {attempt:?}");

    // The verification e-mail is queued in the registration's trace, with its token in one
    // transaction (ADR 0018); the mail worker step sends it later, outside any request.
    let register = collected
        .iter()
        .find(|s| s.name == "POST /api/v1/auth/register")
        .unwrap_or_else(|| panic!("no registration span: {collected:#?}"));
    assert!(
        collected.iter().any(|s| s.trace_id == register.trace_id && s.name == "adapter.sql.one_time_tokens.create"),
        "the verification e-mail's token and outbox row are not in the registration's trace"
    );
}

/// The JSON line logging the traced request carries the caller's trace id.
fn check_logs(server: &Server) {
    let lines = server.lines.lock().expect("lines");
    let served = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "request served" && l["span"]["http.route"] == "/api/v1/orgs/{org_id}")
        .unwrap_or_else(|| panic!("no log line of the traced request: {lines:?}"));
    assert_eq!(served["trace_id"], TRACE_ID, "{served}");
    assert_eq!(served["span_id"].as_str().map(str::len), Some(16), "{served}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_a_request_reach_an_otlp_http_collector_in_the_callers_trace() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let collected: Collected = Arc::default();
    let endpoint = http_collector(collected.clone()).await;
    let hooks: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let hook_url = webhook_receiver(hooks.clone()).await;

    let mut server = Server::start(dir.path(), &endpoint, "http/protobuf", "100");
    let (org, traceparent) = scripted_run(&server, &hook_url, &hooks).await;
    let span_id = traceparent.split('-').nth(2).unwrap_or_default().to_owned();
    wait_for(&collected, "the request's and the attempt's spans", |spans| {
        spans.iter().any(|s| s.name == "GET /api/v1/orgs/{org_id}" && s.trace_id == TRACE_ID)
            && spans.iter().any(|s| s.trace_id == TRACE_ID && s.name.starts_with("adapter.sql."))
            && spans.iter().any(|s| s.span_id == span_id)
            && spans.iter().any(|s| s.name == "app.webhooks.attempt")
            && spans.iter().any(|s| s.name == "adapter.sql.one_time_tokens.create")
    })
    .await;
    check(&collected.lock().expect("collected"), &org, &traceparent);
    check_logs(&server);
    assert!(server.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_grpc_collector_and_sigterm_flushes_them() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let collected: Collected = Arc::default();
    let endpoint = grpc_collector(collected.clone()).await;
    let hooks: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let hook_url = webhook_receiver(hooks.clone()).await;

    // A minute between exports: nothing leaves before the shutdown's flush.
    let mut server = Server::start(dir.path(), &endpoint, "grpc", "60000");
    let (org, traceparent) = scripted_run(&server, &hook_url, &hooks).await;
    check_logs(&server);
    assert!(
        !collected.lock().expect("collected").iter().any(|s| s.trace_id == TRACE_ID),
        "exported before the flush; the test would prove nothing about shutdown"
    );
    assert!(server.terminate().success(), "a graceful stop exits 0");
    wait_for(&collected, "the flushed spans", |spans| spans.iter().any(|s| s.trace_id == TRACE_ID)).await;
    check(&collected.lock().expect("collected"), &org, &traceparent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_export_log_lines_still_carry_the_callers_trace_id() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let hooks: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let hook_url = webhook_receiver(hooks.clone()).await;
    let mut server = Server::start_with(dir.path(), &[]);
    let (_, traceparent) = scripted_run(&server, &hook_url, &hooks).await;
    check_logs(&server);
    // The webhook's trace id is in the worker's log lines too, so a receiver's report can be
    // found without a trace backend.
    let trace_id = traceparent.split('-').nth(1).unwrap_or_default().to_owned();
    assert_eq!(trace_id.len(), 32, "{traceparent}");
    assert!(server.terminate().success());
    let lines = server.lines.lock().expect("lines");
    let in_trace: Vec<&String> = lines.iter().filter(|l| l.contains(&trace_id)).collect();
    let no_line = format!("no log line in the webhook's trace {trace_id}: {lines:?}");
    assert!(!in_trace.is_empty(), "{no_line}");
}
