//! The webhook sender against a real HTTP/1.1 receiver on loopback: what arrives, what is
//! answered, and what the SSRF guard refuses before any connection is made.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tenantry_adapter_http::{ReqwestWebhookSender, SenderSettings};
use tenantry_ports::{OutgoingWebhook, SendError, WebhookSender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// How the receiver answers.
#[derive(Clone)]
enum Reply {
    /// These bytes, then close.
    Canned(Vec<u8>),
    /// Nothing, ever (the connection stays open).
    Silent,
    /// A 200 with a chunked body that never ends.
    Endless,
}

/// A minimal HTTP/1.1 receiver on 127.0.0.1 that records every request.
struct Receiver {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl Receiver {
    async fn start(reply: Reply) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, reply.clone(), r.clone()));
            }
        });
        Self { addr, connections, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().expect("lock").clone()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

async fn serve(mut stream: TcpStream, reply: Reply, requests: Arc<Mutex<Vec<Recorded>>>) {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().expect("request line").split(' ');
    let method = request_line.next().expect("method").to_owned();
    let path = request_line.next().expect("path").to_owned();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header");
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map_or(0, |(_, v)| v.parse().expect("content length"));
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    requests.lock().expect("lock").push(Recorded { method, path, headers, body });
    match reply {
        Reply::Canned(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Reply::Silent => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Reply::Endless => {
            if stream.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").await.is_err() {
                return;
            }
            let mut chunk = b"1000\r\n".to_vec();
            chunk.extend_from_slice(&[b'x'; 4096]);
            chunk.extend_from_slice(b"\r\n");
            while stream.write_all(&chunk).await.is_ok() {}
        }
    }
}

fn response(status_line: &str, extra_headers: &str, body: &[u8]) -> Reply {
    let mut bytes =
        format!("HTTP/1.1 {status_line}\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len())
            .into_bytes();
    bytes.extend_from_slice(body);
    Reply::Canned(bytes)
}

fn sender(allow_private: bool, timeout: Duration) -> ReqwestWebhookSender {
    ReqwestWebhookSender::new(SenderSettings { timeout, ..SenderSettings::new(allow_private) }).expect("sender")
}

fn webhook(url: &str) -> OutgoingWebhook {
    OutgoingWebhook {
        url: url.to_owned(),
        headers: vec![
            ("webhook-id".to_owned(), "msg_0193".to_owned()),
            ("webhook-timestamp".to_owned(), "1700000000".to_owned()),
            ("webhook-signature".to_owned(), "v1,c2lnbmF0dXJl".to_owned()),
            ("content-type".to_owned(), "application/json".to_owned()),
        ],
        body: br#"{"type":"member.added","data":{"id":1}}"#.to_vec(),
    }
}

#[tokio::test]
async fn headers_and_body_arrive() {
    let receiver = Receiver::start(response("200 OK", "", b"thanks")).await;
    let answer =
        sender(true, Duration::from_secs(5)).send(&webhook(&receiver.url("/hooks/in?x=1"))).await.expect("answer");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.retry_after, None);
    assert_eq!(answer.body, "thanks");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/hooks/in?x=1");
    assert_eq!(request.header("webhook-id"), Some("msg_0193"));
    assert_eq!(request.header("webhook-timestamp"), Some("1700000000"));
    assert_eq!(request.header("webhook-signature"), Some("v1,c2lnbmF0dXJl"));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("user-agent"), Some(SenderSettings::default().user_agent.as_str()));
    assert_eq!(request.body, br#"{"type":"member.added","data":{"id":1}}"#);
}

#[tokio::test]
async fn a_redirect_is_an_answer_not_followed() {
    let receiver = Receiver::start(Reply::Canned(Vec::new())).await;
    // The redirect points back at the receiver, so following it would show as a second request.
    let location = receiver.url("/elsewhere");
    let redirecting = Receiver::start(response("302 Found", &format!("Location: {location}\r\n"), b"")).await;
    let answer = sender(true, Duration::from_secs(5)).send(&webhook(&redirecting.url("/"))).await.expect("answer");
    assert_eq!(answer.status, 302);
    assert_eq!(redirecting.requests().len(), 1);
    assert_eq!(receiver.connections(), 0);
}

#[tokio::test]
async fn retry_after_is_passed_through_verbatim() {
    let receiver =
        Receiver::start(response("503 Service Unavailable", "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n", b"busy"))
            .await;
    let answer = sender(true, Duration::from_secs(5)).send(&webhook(&receiver.url("/"))).await.expect("answer");
    assert_eq!(answer.status, 503);
    assert_eq!(answer.retry_after.as_deref(), Some("Wed, 21 Oct 2015 07:28:00 GMT"));
    assert_eq!(answer.body, "busy");
}

#[tokio::test]
async fn a_long_body_is_cut_to_4_kib() {
    let body: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let receiver = Receiver::start(response("400 Bad Request", "", &body)).await;
    let answer = sender(true, Duration::from_secs(5)).send(&webhook(&receiver.url("/"))).await.expect("answer");
    assert_eq!(answer.status, 400);
    assert_eq!(answer.body.len(), 4096);
    assert_eq!(answer.body.as_bytes(), &body[..4096]);
}

#[tokio::test]
async fn an_endless_body_is_not_read_to_the_end() {
    let receiver = Receiver::start(Reply::Endless).await;
    let started = Instant::now();
    let answer = sender(true, Duration::from_secs(20)).send(&webhook(&receiver.url("/"))).await.expect("answer");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "x".repeat(4096));
}

#[tokio::test]
async fn the_body_is_lossy_utf8() {
    let receiver = Receiver::start(response("200 OK", "", b"\xffok")).await;
    let answer = sender(true, Duration::from_secs(5)).send(&webhook(&receiver.url("/"))).await.expect("answer");
    assert_eq!(answer.body, "\u{fffd}ok");
}

#[tokio::test]
async fn a_silent_receiver_times_out() {
    let receiver = Receiver::start(Reply::Silent).await;
    let started = Instant::now();
    let error =
        sender(true, Duration::from_millis(300)).send(&webhook(&receiver.url("/"))).await.expect_err("no answer");
    assert_eq!(error, SendError::Timeout);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(receiver.requests().len(), 1);
}

#[tokio::test]
async fn a_refused_connection_fails_without_echoing_the_url() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let error = sender(true, Duration::from_secs(5))
        .send(&webhook(&format!("http://user:pa55word@{addr}/in?token=s3cret")))
        .await
        .expect_err("no answer");
    let SendError::Failed(text) = error else {
        panic!("expected Failed, got {error:?}");
    };
    assert!(!text.contains("s3cret") && !text.contains("pa55word"), "{text}");
    assert!(text.len() <= 200, "{text}");
}

#[tokio::test]
async fn invalid_urls_and_headers_fail() {
    let sender = sender(true, Duration::from_secs(5));
    for url in ["not a url", "ftp://example.com/", "file:///etc/passwd"] {
        assert!(matches!(sender.send(&webhook(url)).await, Err(SendError::Failed(_))), "{url}");
    }
    let mut request = webhook("http://127.0.0.1:9/");
    request.headers.push(("bad header".to_owned(), "x".to_owned()));
    assert!(matches!(sender.send(&request).await, Err(SendError::Failed(_))));
}

#[tokio::test]
async fn the_guard_refuses_non_public_addresses_before_connecting() {
    let receiver = Receiver::start(response("200 OK", "", b"")).await;
    let port = receiver.addr.port();
    let sender = sender(false, Duration::from_secs(2));
    let literal = [
        "http://10.0.0.1/".to_owned(),
        format!("http://127.0.0.1:{port}/"),
        "http://[::1]/".to_owned(),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::ffff:127.0.0.1]/".to_owned(),
        "http://0.0.0.0/".to_owned(),
        "http://100.64.0.1/".to_owned(),
        "https://192.168.1.1/".to_owned(),
        "http://[fe80::1]/".to_owned(),
        "http://[fd00::1]/".to_owned(),
        // Other spellings of loopback that the URL parser normalises.
        format!("http://2130706433:{port}/"),
        format!("http://0x7f.1:{port}/"),
    ];
    for url in &literal {
        let error = sender.send(&webhook(url)).await.expect_err("refused");
        let SendError::Refused(reason) = error else {
            panic!("{url}: expected Refused, got {error:?}");
        };
        assert!(!reason.is_empty());
        assert!(sender.refuses_literal(url).is_some(), "{url}");
    }

    // A host name resolving to loopback: refused by the resolver at send time.
    let localhost = format!("http://localhost:{port}/");
    assert_eq!(sender.refuses_literal(&localhost), None);
    let error = sender.send(&webhook(&localhost)).await.expect_err("refused");
    let SendError::Refused(reason) = error else {
        panic!("expected Refused, got {error:?}");
    };
    assert!(reason.contains("localhost") && reason.contains("non-public"), "{reason}");
    assert!(!reason.contains("127.0.0.1") && !reason.contains("::1"), "the address is not told: {reason}");

    assert_eq!(receiver.connections(), 0);
    assert!(receiver.requests().is_empty());
}

#[tokio::test]
async fn refuses_literal_ignores_host_names_and_public_addresses() {
    let sender = sender(false, Duration::from_secs(2));
    for url in [
        "http://localhost/",
        "https://example.com/",
        "https://93.184.216.34/",
        "https://[2606:4700:4700::1111]/",
        "not a url",
    ] {
        assert_eq!(sender.refuses_literal(url), None, "{url}");
    }
    assert!(sender.refuses_literal("http://127.0.0.1/").expect("refused").contains("loopback"));
    assert!(sender.refuses_literal("http://[::ffff:10.0.0.1]/").expect("refused").contains("private"));
}

#[tokio::test]
async fn allow_private_reaches_loopback() {
    let receiver = Receiver::start(response("204 No Content", "", b"")).await;
    let sender = sender(true, Duration::from_secs(5));
    assert_eq!(sender.refuses_literal(&receiver.url("/")), None);
    let answer = sender.send(&webhook(&receiver.url("/"))).await.expect("answer");
    assert_eq!(answer.status, 204);

    let by_name = format!("http://localhost:{}/", receiver.addr.port());
    let answer = sender.send(&webhook(&by_name)).await.expect("answer");
    assert_eq!(answer.status, 204);
    assert_eq!(receiver.requests().len(), 2);
}

#[tokio::test]
async fn https_goes_through_rustls() {
    // A plain-HTTP server answers the TLS ClientHello with HTTP: the handshake fails (not a
    // timeout, not a refusal), which shows the TLS stack is wired in.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
            let _ = stream.shutdown().await;
        }
    });
    let error =
        sender(true, Duration::from_secs(5)).send(&webhook(&format!("https://{addr}/"))).await.expect_err("no TLS");
    let SendError::Failed(text) = error else {
        panic!("expected Failed, got {error:?}");
    };
    assert!(text.starts_with("connection failed"), "{text}");
}
