//! A loopback SMTP sink for tests: it speaks just enough SMTP for a real client (lettre) to
//! deliver, keeps each message's raw text, and wakes waiters as messages arrive (no polling).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// A running sink on `127.0.0.1` and a random port; stops when dropped, closing the
/// connections it accepted too (a pooled client sees the relay go away, as in an outage).
pub struct SmtpSink {
    port: u16,
    inbox: Arc<(Mutex<Vec<String>>, Notify)>,
    task: tokio::task::JoinHandle<()>,
    connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl SmtpSink {
    /// Starts accepting connections.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// Starts on `port` (`0`: any free one): a test that stops its relay starts it again on
    /// the same port, where the server under test keeps sending.
    ///
    /// # Panics
    /// When the port cannot be bound.
    pub async fn start_on(port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let inbox = Arc::new((Mutex::new(Vec::new()), Notify::new()));
        let connections: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (shared, tracked) = (inbox.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let connection = tokio::spawn(serve(stream, shared.clone()));
                if let Ok(mut tracked) = tracked.lock() {
                    tracked.push(connection);
                }
            }
        });
        Self { port, inbox, task, connections }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// The messages received so far, raw (headers and body).
    ///
    /// # Panics
    /// When a connection task panicked while holding the inbox.
    pub fn messages(&self) -> Vec<String> {
        self.inbox.0.lock().expect("inbox").clone()
    }

    /// Waits until at least `count` messages have arrived, for at most `limit`.
    ///
    /// # Panics
    /// When they have not arrived in time.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<String> {
        let waiting = async {
            loop {
                let notified = self.inbox.1.notified();
                let messages = self.messages();
                if messages.len() >= count {
                    return messages;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, waiting)
            .await
            .unwrap_or_else(|_| panic!("{count} message(s) did not arrive at the SMTP sink within {limit:?}"))
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
        if let Ok(connections) = self.connections.lock() {
            for connection in connections.iter() {
                connection.abort();
            }
        }
    }
}

async fn serve(stream: TcpStream, inbox: Arc<(Mutex<Vec<String>>, Notify)>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    if write.write_all(b"220 tenantry-test-sink ESMTP\r\n").await.is_err() {
        return;
    }
    while let Ok(Some(line)) = lines.next_line().await {
        let verb = line.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-tenantry-test-sink\r\n250 8BITMIME\r\n",
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
            "DATA" => {
                if write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await.is_err() {
                    return;
                }
                let mut message = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line == "." {
                        break;
                    }
                    message.push_str(line.strip_prefix('.').unwrap_or(&line));
                    message.push_str("\r\n");
                }
                if let Ok(mut messages) = inbox.0.lock() {
                    messages.push(message);
                }
                inbox.1.notify_waiters();
                b"250 queued\r\n"
            }
            "QUIT" => {
                let _ = write.write_all(b"221 bye\r\n").await;
                return;
            }
            _ => b"502 not implemented\r\n",
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}
