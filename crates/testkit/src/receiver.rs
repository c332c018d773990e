//! A loopback HTTP/1.1 receiver for tests of outgoing requests (webhook deliveries).
//!
//! It records every request (method, path, headers, body, when it arrived and when it was
//! answered), answers from a script — a status, headers, a body, after a delay, or never —
//! and wakes waiters as requests arrive and are answered, so a test waits for "three
//! deliveries" or "sixteen requests open at once" without polling or sleeping.
//!
//! ```
//! use std::time::Duration;
//! use tenantry_testkit::receiver::{Receiver, Reply};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // A 500, then a 503 with Retry-After, then 200 for every later request.
//! let receiver = Receiver::start([
//!     Reply::status(500),
//!     Reply::status(503).header("retry-after", "3"),
//!     Reply::status(200),
//! ])
//! .await;
//! let url = receiver.url("/hook");
//! // … hand `url` to the code under test; here a raw request stands in for it.
//! # use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! # let mut stream = tokio::net::TcpStream::connect(receiver.addr()).await.unwrap();
//! # stream.write_all(b"POST /hook HTTP/1.1\r\nhost: x\r\nwebhook-id: msg_1\r\ncontent-length: 2\r\n\r\n{}").await.unwrap();
//! # let mut answer = Vec::new();
//! # stream.read_to_end(&mut answer).await.unwrap();
//! # assert!(answer.starts_with(b"HTTP/1.1 500"));
//! let got = receiver.wait_for(1, Duration::from_secs(5)).await;
//! assert_eq!(got[0].header("webhook-id"), Some("msg_1"));
//! assert_eq!(got[0].body, b"{}");
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    /// `POST`, `GET`, …
    pub method: String,
    /// The request target: path and query (`/hook?x=1`).
    pub path: String,
    /// Headers in arrival order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body (by `content-length`).
    pub body: Vec<u8>,
    /// When the request was read in full.
    pub arrived: Instant,
    /// When its answer was written (or the connection given up); `None` while it is open.
    pub answered: Option<Instant>,
}

impl Received {
    /// The first header named `name` (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) UTF-8.
    #[must_use]
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the request has not been answered yet.
    #[must_use]
    pub fn is_open(&self) -> bool {
        self.answered.is_none()
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    kind: ReplyKind,
    delay: Duration,
}

#[derive(Debug, Clone)]
enum ReplyKind {
    /// A response with a `content-length`, then the connection is closed.
    Response { status: u16, headers: Vec<(String, String)>, body: Vec<u8> },
    /// These bytes verbatim, then close.
    Raw(Vec<u8>),
    /// No answer ever; the connection stays open (a hanging endpoint).
    Silent,
    /// A 200 whose chunked body never ends.
    Endless,
}

impl Reply {
    /// A response with `status`, no extra headers and an empty body.
    #[must_use]
    pub fn status(status: u16) -> Self {
        Self { kind: ReplyKind::Response { status, headers: Vec::new(), body: Vec::new() }, delay: Duration::ZERO }
    }

    /// Adds a header to a response (ignored by the other kinds).
    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let ReplyKind::Response { headers, .. } = &mut self.kind {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// Sets a response's body (ignored by the other kinds).
    #[must_use]
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        if let ReplyKind::Response { body, .. } = &mut self.kind {
            *body = bytes.into();
        }
        self
    }

    /// Waits `delay` after reading the request before answering (a slow endpoint). A delay
    /// longer than the client's timeout makes the request time out on the client's side.
    #[must_use]
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Writes exactly `bytes` (a malformed or unusual answer), then closes.
    #[must_use]
    pub fn raw(bytes: impl Into<Vec<u8>>) -> Self {
        Self { kind: ReplyKind::Raw(bytes.into()), delay: Duration::ZERO }
    }

    /// Never answers: the request stays open until the client gives up.
    #[must_use]
    pub fn silent() -> Self {
        Self { kind: ReplyKind::Silent, delay: Duration::ZERO }
    }

    /// A `200` whose chunked body never ends, to check that a client stops reading.
    #[must_use]
    pub fn endless() -> Self {
        Self { kind: ReplyKind::Endless, delay: Duration::ZERO }
    }
}

/// A script of replies: each request takes the next one; the last one repeats.
#[derive(Debug, Clone)]
struct Script(Vec<Reply>);

impl Script {
    fn next(&mut self) -> Reply {
        if self.0.len() > 1 { self.0.remove(0) } else { self.0.first().cloned().unwrap_or_else(|| Reply::status(200)) }
    }
}

#[derive(Debug, Default)]
struct State {
    requests: Vec<Received>,
    connections: usize,
    /// Scripts by path prefix, longest first; the empty prefix matches every path.
    routes: Vec<(String, Script)>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking connection task must not hide what was recorded from the test.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running receiver on `127.0.0.1` and a random port; it stops accepting when dropped.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver answering every path from `replies` in order (the last one repeats;
    /// no replies means `200` with an empty body).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(replies: impl IntoIterator<Item = Reply>) -> Self {
        Self::routed([("", replies.into_iter().collect::<Vec<_>>())]).await
    }

    /// Starts a receiver with one script per path prefix (the longest matching prefix wins;
    /// a path no prefix matches gets `404`).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn routed<'a>(routes: impl IntoIterator<Item = (&'a str, Vec<Reply>)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let mut routes: Vec<(String, Script)> =
            routes.into_iter().map(|(prefix, replies)| (prefix.to_owned(), Script(replies))).collect();
        routes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        let shared =
            Arc::new(Shared { state: Mutex::new(State { routes, ..State::default() }), changed: Notify::new() });
        let accepting = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepting.lock().connections += 1;
                tokio::spawn(serve(stream, accepting.clone()));
            }
        });
        Self { addr, shared, task }
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request so far, in arrival order.
    #[must_use]
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().requests.clone()
    }

    /// How many connections were accepted (a refused or guarded client makes none).
    #[must_use]
    pub fn connections(&self) -> usize {
        self.shared.lock().connections
    }

    /// From now on, requests to paths under `prefix` (`""` for all) are answered with
    /// `replies` (the last one repeats).
    pub fn answer_from_now_on(&self, prefix: &str, replies: Vec<Reply>) {
        let mut state = self.shared.lock();
        match state.routes.iter_mut().find(|(p, _)| p == prefix) {
            Some((_, script)) => *script = Script(replies),
            None => {
                state.routes.push((prefix.to_owned(), Script(replies)));
                state.routes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
            }
        }
    }

    /// Waits until at least `count` requests have arrived, for at most `patience`.
    ///
    /// # Panics
    /// When they have not arrived in time, saying how many did.
    pub async fn wait_for(&self, count: usize, patience: Duration) -> Vec<Received> {
        self.wait_until(patience, &format!("{count} request(s)"), |requests| requests.len() >= count).await
    }

    /// Waits until `done` holds for the requests so far (re-checked on every arrival and
    /// every answer), for at most `patience`; answers the requests it held for.
    ///
    /// # Panics
    /// When it does not hold in time; the message names `what` and the requests seen.
    pub async fn wait_until<F>(&self, patience: Duration, what: &str, done: F) -> Vec<Received>
    where
        F: Fn(&[Received]) -> bool,
    {
        let waiting = async {
            loop {
                let changed = self.shared.changed.notified();
                tokio::pin!(changed);
                // Registered before the check, so a change in between still wakes us.
                changed.as_mut().enable();
                let requests = self.received();
                if done(&requests) {
                    return requests;
                }
                changed.await;
            }
        };
        match tokio::time::timeout(patience, waiting).await {
            Ok(requests) => requests,
            Err(_) => panic!(
                "the receiver did not see {what} within {patience:?} ({} request(s) arrived)",
                self.shared.lock().requests.len()
            ),
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The most requests open at the same time among `requests` (an open one counts as open
/// until now), e.g. to check a per-endpoint concurrency cap.
#[must_use]
pub fn most_open_at_once(requests: &[Received]) -> usize {
    let mut edges: Vec<(Instant, i32)> = Vec::with_capacity(requests.len() * 2);
    for request in requests {
        edges.push((request.arrived, 1));
        if let Some(answered) = request.answered {
            edges.push((answered, -1));
        }
    }
    // Closing before opening at the same instant: touching intervals do not overlap.
    edges.sort_by_key(|&(at, delta)| (at, delta));
    let (mut open, mut most) = (0_i32, 0_i32);
    for (_, delta) in edges {
        open += delta;
        most = most.max(open);
    }
    usize::try_from(most).unwrap_or_default()
}

/// Reads one request; `None` when the client went away first.
async fn read_request(stream: &mut TcpStream) -> Option<(String, String, Vec<(String, String)>, Vec<u8>)> {
    let mut buffer = Vec::new();
    let mut chunk = [0_u8; 8192];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':').map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned())))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(length);
    Some((method, path, headers, body))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    let Some((method, path, headers, body)) = read_request(&mut stream).await else { return };
    let (index, reply) = {
        let mut state = shared.lock();
        let reply = state
            .routes
            .iter_mut()
            .find(|(prefix, _)| path.starts_with(prefix.as_str()))
            .map_or_else(|| Reply::status(404), |(_, script)| script.next());
        state.requests.push(Received { method, path, headers, body, arrived: Instant::now(), answered: None });
        (state.requests.len() - 1, reply)
    };
    shared.changed.notify_waiters();
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    match reply.kind {
        ReplyKind::Response { status, headers, body } => {
            let mut bytes = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
            for (name, value) in headers {
                bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            bytes.extend_from_slice(format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()).as_bytes());
            bytes.extend_from_slice(&body);
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        ReplyKind::Raw(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        ReplyKind::Silent => {
            // Hold the connection until the client closes it.
            let mut sink = [0_u8; 1024];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
        }
        ReplyKind::Endless => {
            if stream.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n").await.is_ok() {
                let mut chunk = b"1000\r\n".to_vec();
                chunk.extend_from_slice(&[b'x'; 4096]);
                chunk.extend_from_slice(b"\r\n");
                while stream.write_all(&chunk).await.is_ok() {}
            }
        }
    }
    if let Some(request) = shared.lock().requests.get_mut(index) {
        request.answered = Some(Instant::now());
    }
    shared.changed.notify_waiters();
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn post(addr: SocketAddr, path: &str, body: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn answers_the_script_in_order_and_repeats_the_last() {
        let receiver = Receiver::start([Reply::status(500), Reply::status(204).header("x-a", "1")]).await;
        assert!(post(receiver.addr(), "/a", "1").await.starts_with("HTTP/1.1 500"));
        let second = post(receiver.addr(), "/a", "2").await;
        assert!(second.starts_with("HTTP/1.1 204") && second.contains("x-a: 1"), "{second}");
        assert!(post(receiver.addr(), "/a", "3").await.starts_with("HTTP/1.1 204"));
        let got = receiver.wait_for(3, Duration::from_secs(5)).await;
        assert_eq!(got.iter().map(Received::body_text).collect::<Vec<_>>(), ["1", "2", "3"]);
        assert!(got.iter().all(|r| r.method == "POST" && r.path == "/a" && !r.is_open()));
        assert_eq!(receiver.connections(), 3);
    }

    #[tokio::test]
    async fn routes_by_longest_prefix_and_answers_404_elsewhere() {
        let receiver =
            Receiver::routed([("/ok", vec![Reply::status(204)]), ("/ok/deep", vec![Reply::status(202)])]).await;
        assert!(post(receiver.addr(), "/ok/deep/x", "").await.starts_with("HTTP/1.1 202"));
        assert!(post(receiver.addr(), "/ok", "").await.starts_with("HTTP/1.1 204"));
        assert!(post(receiver.addr(), "/other", "").await.starts_with("HTTP/1.1 404"));
        receiver.answer_from_now_on("/ok", vec![Reply::status(410)]);
        assert!(post(receiver.addr(), "/ok", "").await.starts_with("HTTP/1.1 410"));
    }

    #[tokio::test]
    async fn waiting_for_requests_that_never_come_fails() {
        let receiver = Receiver::start([]).await;
        let waited = tokio::spawn(async move { receiver.wait_for(1, Duration::from_millis(50)).await });
        assert!(waited.await.expect_err("it panics").is_panic());
    }

    #[tokio::test]
    async fn open_requests_are_counted_until_answered() {
        let receiver = Receiver::start([Reply::status(204).after(Duration::from_millis(200))]).await;
        let addr = receiver.addr();
        let clients: Vec<_> =
            (0..3).map(|i| tokio::spawn(async move { post(addr, "/", &i.to_string()).await })).collect();
        let open = receiver
            .wait_until(Duration::from_secs(5), "3 open", |r| r.iter().filter(|r| r.is_open()).count() == 3)
            .await;
        assert_eq!(most_open_at_once(&open), 3);
        for client in clients {
            assert!(client.await.expect("client").starts_with("HTTP/1.1 204"));
        }
        let done =
            receiver.wait_until(Duration::from_secs(5), "all answered", |r| r.iter().all(|r| !r.is_open())).await;
        assert_eq!(most_open_at_once(&done), 3);
    }
}
