//! The webhook sender against a real HTTP/1.1 receiver on loopback (the test kit's
//! [`Receiver`]): the port's contract suite, then what is particular to this adapter — every
//! spelling of a non-public address the guard must catch, lossy bodies, and TLS.

use std::sync::Arc;
use std::time::Duration;

use tenantry_adapter_http::{ReqwestWebhookSender, SenderSettings};
use tenantry_ports::{OutgoingWebhook, SendError, WebhookSender};
use tenantry_testkit::receiver::{Receiver, Reply};
use tenantry_testkit::webhook_sender::SenderOptions;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

fn sender(allow_private: bool, timeout: Duration) -> ReqwestWebhookSender {
    ReqwestWebhookSender::new(SenderSettings { timeout, ..SenderSettings::new(allow_private) }).expect("sender")
}

fn webhook(url: &str) -> OutgoingWebhook {
    OutgoingWebhook {
        url: url.to_owned(),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: br#"{"type":"member.added"}"#.to_vec(),
    }
}

#[tokio::test]
async fn reqwest_keeps_the_webhook_sender_contract() {
    tenantry_testkit::webhook_sender::run_contract(|options: SenderOptions| {
        Arc::new(sender(options.allow_private, options.timeout)) as Arc<dyn WebhookSender>
    })
    .await;
}

#[tokio::test]
async fn the_user_agent_names_tenantry() {
    let receiver = Receiver::start([Reply::status(204)]).await;
    sender(true, Duration::from_secs(5)).send(&webhook(&receiver.url("/"))).await.expect("answer");
    let got = receiver.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].header("user-agent"), Some(SenderSettings::default().user_agent.as_str()));
}

#[tokio::test]
async fn an_http_date_retry_after_is_passed_through_verbatim() {
    let receiver =
        Receiver::start([Reply::status(503).header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT").body("busy")]).await;
    let answer = sender(true, Duration::from_secs(5)).send(&webhook(&receiver.url("/"))).await.expect("answer");
    assert_eq!(answer.status, 503);
    assert_eq!(answer.retry_after.as_deref(), Some("Wed, 21 Oct 2015 07:28:00 GMT"));
    assert_eq!(answer.body, "busy");
}

#[tokio::test]
async fn the_body_is_lossy_utf8() {
    let receiver = Receiver::start([Reply::status(200).body(b"\xffok".to_vec())]).await;
    let answer = sender(true, Duration::from_secs(5)).send(&webhook(&receiver.url("/"))).await.expect("answer");
    assert_eq!(answer.body, "\u{fffd}ok");
}

#[tokio::test]
async fn a_bad_header_fails_the_attempt() {
    let mut request = webhook("http://127.0.0.1:9/");
    request.headers.push(("bad header".to_owned(), "x".to_owned()));
    assert!(matches!(sender(true, Duration::from_secs(5)).send(&request).await, Err(SendError::Failed(_))));
}

#[tokio::test]
async fn the_guard_refuses_every_spelling_of_a_non_public_address() {
    let receiver = Receiver::start([]).await;
    let port = receiver.addr().port();
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

    // A host name resolving to loopback: refused by the resolver at send time, without
    // telling the tenant which address it resolved to.
    let localhost = format!("http://localhost:{port}/");
    assert_eq!(sender.refuses_literal(&localhost), None);
    let error = sender.send(&webhook(&localhost)).await.expect_err("refused");
    let SendError::Refused(reason) = error else {
        panic!("expected Refused, got {error:?}");
    };
    assert!(reason.contains("localhost") && reason.contains("non-public"), "{reason}");
    assert!(!reason.contains("127.0.0.1") && !reason.contains("::1"), "the address is not told: {reason}");

    assert_eq!(receiver.connections(), 0);
    assert!(receiver.received().is_empty());
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
async fn allow_private_reaches_loopback_by_address_and_by_name() {
    let receiver = Receiver::start([Reply::status(204)]).await;
    let sender = sender(true, Duration::from_secs(5));
    assert_eq!(sender.refuses_literal(&receiver.url("/")), None);
    assert_eq!(sender.send(&webhook(&receiver.url("/"))).await.expect("answer").status, 204);
    let by_name = format!("http://localhost:{}/", receiver.addr().port());
    assert_eq!(sender.send(&webhook(&by_name)).await.expect("answer").status, 204);
    assert_eq!(receiver.wait_for(2, Duration::from_secs(5)).await.len(), 2);
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
