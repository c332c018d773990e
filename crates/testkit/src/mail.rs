//! The [`Mailer`] contract: what every mail adapter must do with a message.

use tenantry_domain::Email;
use tenantry_ports::{Mailer, OutgoingEmail};

/// A message with a recognisable subject and both parts.
///
/// # Panics
/// Never for the fixed address it uses.
pub fn sample(subject: &str) -> OutgoingEmail {
    OutgoingEmail {
        to: Email::parse("ann@example.com").expect("valid"),
        subject: subject.to_owned(),
        text: "plain body, a link: https://app.example.com/verify?token=abc".to_owned(),
        html: "<p>html body</p>".to_owned(),
        message_id: None,
    }
}

/// Sends two messages through `mailer` and checks, with `delivered` (the raw messages the
/// adapter's destination holds), that each arrives once, addressed, with its subject and both
/// parts.
///
/// # Panics
/// Naming the broken rule.
pub async fn delivers_each_message_once_with_both_parts<F, Fut>(mailer: &dyn Mailer, delivered: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    mailer.send(&sample("First")).await.expect("the first message is accepted");
    mailer.send(&sample("Second")).await.expect("the second message is accepted");
    let messages = delivered(2).await;
    assert_eq!(messages.len(), 2, "each message is delivered once: {messages:#?}");
    for subject in ["First", "Second"] {
        let message = messages
            .iter()
            .find(|m| m.contains(&format!("Subject: {subject}")))
            .unwrap_or_else(|| panic!("no message with subject {subject}: {messages:#?}"));
        assert!(message.contains("To: ann@example.com"), "addressed: {message}");
        assert!(message.contains("multipart/alternative"), "both parts: {message}");
        assert!(message.contains("text/plain") && message.contains("text/html"), "both parts: {message}");
    }
}
