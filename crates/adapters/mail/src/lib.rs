//! Mail adapters on lettre. Messages are multipart/alternative (text and HTML).

use std::path::{Path, PathBuf};

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tenantry_ports::{HealthProbe, MailError, Mailer, OutgoingEmail, ProbeError};

/// Builds the RFC 5322 message for `email` from `from`.
///
/// # Errors
/// [`MailError::Rejected`] for an address lettre cannot encode.
pub fn build_message(from: &Mailbox, email: &OutgoingEmail) -> Result<Message, MailError> {
    let to: Mailbox = email.to.as_str().parse().map_err(|err| MailError::Rejected(anyhow::Error::new(err)))?;
    // lettre adds `Date` and, when no id is given, a random `Message-ID`; an outbox mail
    // brings its own, the same on every attempt.
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
        .message_id(email.message_id.clone())
        .multipart(MultiPart::alternative_plain_html(email.text.clone(), email.html.clone()))
        .map_err(|err| MailError::Rejected(anyhow::Error::new(err)))
}

/// Writes every message as an `.eml` file into a folder: the embedded default's mail, readable
/// by any mail client and by tests.
pub struct FileMailer {
    dir: PathBuf,
    from: Mailbox,
    transport: AsyncFileTransport<Tokio1Executor>,
}

impl FileMailer {
    /// A mailer writing into `dir` (created if missing) with sender `from`.
    ///
    /// # Errors
    /// [`MailError::Unavailable`] when the folder cannot be created; [`MailError::Rejected`]
    /// when `from` is not a mailbox such as `Tenantry <no-reply@example.com>`.
    pub fn new(dir: &Path, from: &str) -> Result<Self, MailError> {
        std::fs::create_dir_all(dir).map_err(|err| MailError::Unavailable(anyhow::Error::new(err)))?;
        let from: Mailbox = from.parse().map_err(|err| MailError::Rejected(anyhow::Error::new(err)))?;
        Ok(Self { dir: dir.to_path_buf(), from, transport: AsyncFileTransport::new(dir) })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

#[async_trait::async_trait]
impl Mailer for FileMailer {
    #[tracing::instrument(name = "adapter.mail.file.send", skip_all)]
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        let message = build_message(&self.from, email)?;
        self.transport.send(message).await.map_err(|err| MailError::Unavailable(anyhow::Error::new(err)))?;
        Ok(())
    }
}

/// Delivers over SMTP, with lettre's URL conventions:
///
/// | URL | transport |
/// | --- | --- |
/// | `smtps://user:pass@host:465` | TLS from the first byte (implicit TLS), recommended |
/// | `smtp://user:pass@host:587?tls=required` (or `?tls=starttls`) | STARTTLS, refused if the relay does not offer it |
/// | `smtp://host:port?tls=opportunistic` | STARTTLS when offered (a man in the middle can strip it) |
/// | `smtp://host:port` | plain, for a local catcher or a relay on the same host |
///
/// `user:pass@` (URL-encoded) are sent with AUTH PLAIN or LOGIN, only over TLS unless the URL
/// is plain. TLS is rustls with the compiled-in Mozilla roots. Connections are pooled
/// ([`POOL_SIZE`] at most, closed after [`POOL_IDLE`] unused) and every SMTP exchange gives up
/// after the timeout, so a relay that hangs delays a send attempt, never the worker.
pub struct SmtpMailer {
    from: Mailbox,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl SmtpMailer {
    /// A mailer for the relay at `url`, sending as `from`; each SMTP exchange gives up after
    /// `timeout`. Nothing is connected until the first send or check.
    ///
    /// # Errors
    /// [`MailError::Rejected`] for a URL lettre cannot use or a `from` that is not a mailbox.
    pub fn new(url: &str, from: &str, timeout: Duration) -> Result<Self, MailError> {
        let from: Mailbox = from.parse().map_err(|err| MailError::Rejected(anyhow::Error::new(err)))?;
        let url = normalise_tls(url)?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)
            .map_err(|err| MailError::Rejected(anyhow::anyhow!("TENANTRY_SMTP_URL: {err}")))?
            .timeout(Some(timeout))
            .pool_config(PoolConfig::new().max_size(POOL_SIZE).idle_timeout(POOL_IDLE))
            .build();
        Ok(Self { from, transport })
    }

    /// Whether the relay answers (an SMTP `NOOP` on a pooled connection).
    ///
    /// # Errors
    /// [`MailError::Unavailable`] when it cannot be reached or does not answer.
    pub async fn check(&self) -> Result<(), MailError> {
        match self.transport.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(MailError::Unavailable(anyhow::anyhow!("the SMTP relay did not answer NOOP"))),
            Err(err) => Err(MailError::Unavailable(anyhow::Error::new(err))),
        }
    }
}

#[async_trait::async_trait]
impl Mailer for SmtpMailer {
    #[tracing::instrument(name = "adapter.mail.smtp.send", skip_all)]
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        let message = build_message(&self.from, email)?;
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            // A 5xx: the relay refuses this message; sending it again will not help.
            Err(err) if err.is_permanent() => Err(MailError::Rejected(anyhow::Error::new(err))),
            Err(err) => Err(MailError::Unavailable(anyhow::Error::new(err))),
        }
    }
}

/// Most pooled SMTP connections per process: the mail worker sends a batch concurrently.
pub const POOL_SIZE: u32 = 4;

/// How long an unused pooled connection stays open (relays drop idle clients after a minute
/// or so; reconnecting is cheaper than a failed send).
pub const POOL_IDLE: Duration = Duration::from_secs(50);

/// How a `TENANTRY_SMTP_URL` asks for TLS, as far as production checks care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtps://`: TLS from the first byte.
    ImplicitTls,
    /// `smtp://…?tls=required` (or `starttls`): STARTTLS or no mail.
    StartTls,
    /// `smtp://…?tls=opportunistic`: STARTTLS when offered; strippable.
    Opportunistic,
    /// `smtp://` with no `tls`: plain text.
    Plain,
}

/// The security of `url` and its host (no credentials), for the production rules.
///
/// # Errors
/// [`MailError::Rejected`] for a URL that is not `smtp://` or `smtps://` with a host, or an
/// unknown `tls` value.
pub fn smtp_security(url: &str) -> Result<(SmtpSecurity, String), MailError> {
    let parsed = url::Url::parse(&normalise_tls(url)?)
        .map_err(|err| MailError::Rejected(anyhow::anyhow!("TENANTRY_SMTP_URL: {err}")))?;
    let host = parsed
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or_else(|| MailError::Rejected(anyhow::anyhow!("TENANTRY_SMTP_URL names no host")))?
        .to_owned();
    let tls = parsed.query_pairs().find(|(key, _)| key == "tls").map(|(_, value)| value.into_owned());
    let security = match (parsed.scheme(), tls.as_deref()) {
        ("smtps", _) => SmtpSecurity::ImplicitTls,
        ("smtp", Some("required")) => SmtpSecurity::StartTls,
        ("smtp", Some("opportunistic")) => SmtpSecurity::Opportunistic,
        ("smtp", None) => SmtpSecurity::Plain,
        (scheme, tls) => {
            return Err(MailError::Rejected(anyhow::anyhow!(
                "TENANTRY_SMTP_URL: unsupported scheme `{scheme}` or tls={tls:?} (smtps://, or smtp:// with tls=required|starttls|opportunistic)"
            )));
        }
    };
    Ok((security, host))
}

/// `?tls=starttls` is accepted as lettre's `?tls=required` (the name people look for).
fn normalise_tls(url: &str) -> Result<String, MailError> {
    let mut parsed =
        url::Url::parse(url).map_err(|err| MailError::Rejected(anyhow::anyhow!("TENANTRY_SMTP_URL: {err}")))?;
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .map(|(key, value)| {
            let value = if key == "tls" && value.eq_ignore_ascii_case("starttls") { "required".into() } else { value };
            (key.into_owned(), value.into_owned())
        })
        .collect();
    if !pairs.is_empty() {
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    Ok(parsed.to_string())
}

/// Readiness of the SMTP relay, reported as `mail`.
pub struct SmtpProbe(pub std::sync::Arc<SmtpMailer>);

#[async_trait::async_trait]
impl HealthProbe for SmtpProbe {
    fn name(&self) -> &'static str {
        "mail"
    }

    async fn check(&self) -> Result<(), ProbeError> {
        // The cause names the relay's answer; the URL (and its password) is never in it.
        self.0.check().await.map_err(|err| ProbeError::Unreachable(format!("{:#}", anyhow::Error::new(err))))
    }
}

/// Readiness of the mail folder, reported as `mail`: it must exist and take files.
pub struct FileMailProbe(pub PathBuf);

#[async_trait::async_trait]
impl HealthProbe for FileMailProbe {
    fn name(&self) -> &'static str {
        "mail"
    }

    async fn check(&self) -> Result<(), ProbeError> {
        match std::fs::metadata(&self.0) {
            Ok(meta) if meta.is_dir() && !meta.permissions().readonly() => Ok(()),
            Ok(_) => Err(ProbeError::NotReady(format!("{} is not a writable folder", self.0.display()))),
            Err(err) => Err(ProbeError::Unreachable(format!("{}: {err}", self.0.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use tenantry_domain::Email;

    use super::*;

    #[tokio::test]
    async fn each_message_becomes_one_eml_file_with_both_parts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mailer = FileMailer::new(&dir.path().join("mail"), "Tenantry <no-reply@tenantry.test>").expect("mailer");
        let email = OutgoingEmail {
            to: Email::parse("ann@example.com").expect("valid"),
            subject: "Hello".into(),
            text: "plain body".into(),
            html: "<p>html body</p>".into(),
            message_id: Some("<0190-test@tenantry.test>".into()),
        };
        mailer.send(&email).await.expect("sent");
        mailer.send(&email).await.expect("sent");
        let files: Vec<_> = std::fs::read_dir(mailer.dir()).expect("dir").filter_map(Result::ok).collect();
        assert_eq!(files.len(), 2);
        let eml = std::fs::read_to_string(files[0].path()).expect("read");
        assert!(eml.contains("To: ann@example.com"), "{eml}");
        assert!(eml.contains("Subject: Hello"), "{eml}");
        assert!(eml.contains("multipart/alternative"), "{eml}");
        assert!(eml.contains("plain body") && eml.contains("html body"), "{eml}");
        assert!(eml.contains("Message-ID: <0190-test@tenantry.test>"), "the outbox's id is kept: {eml}");
    }

    #[test]
    fn a_bad_sender_is_refused_at_construction() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(FileMailer::new(dir.path(), "not a mailbox"), Err(MailError::Rejected(_))));
    }

    #[tokio::test]
    async fn the_file_mailer_passes_the_mailer_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mailer = FileMailer::new(&dir.path().join("mail"), "Tenantry <no-reply@tenantry.test>").expect("mailer");
        let folder = mailer.dir().to_path_buf();
        tenantry_testkit::mail::delivers_each_message_once_with_both_parts(&mailer, |_| {
            let folder = folder.clone();
            async move {
                std::fs::read_dir(&folder)
                    .expect("dir")
                    .filter_map(Result::ok)
                    .map(|entry| std::fs::read_to_string(entry.path()).expect("read"))
                    .collect()
            }
        })
        .await;
    }

    #[tokio::test]
    async fn the_smtp_mailer_passes_the_mailer_contract_against_a_real_smtp_exchange() {
        let sink = tenantry_testkit::smtp::SmtpSink::start().await;
        let mailer =
            SmtpMailer::new(&sink.url(), "Tenantry <no-reply@tenantry.test>", Duration::from_secs(5)).expect("mailer");
        mailer.check().await.expect("the sink answers NOOP");
        tenantry_testkit::mail::delivers_each_message_once_with_both_parts(&mailer, |count| {
            sink.wait_for(count, Duration::from_secs(10))
        })
        .await;
        let probe = SmtpProbe(std::sync::Arc::new(mailer));
        assert_eq!(probe.name(), "mail");
        probe.check().await.expect("ready");
    }

    /// Against a real SMTP server (aiosmtpd, started by `.ci/run`): what it received has the
    /// headers a mail client needs and both parts; credentials are used; a wrong password is
    /// refused for good.
    #[tokio::test]
    async fn a_real_smtp_server_receives_headers_and_both_parts_with_credentials() {
        let Some(server) = tenantry_testkit::env::smtp_server() else { return };
        let mailer = SmtpMailer::new(
            &server.url_with_credentials(),
            "Tenantry <no-reply@tenantry.test>",
            Duration::from_secs(10),
        )
        .expect("mailer");
        mailer.check().await.expect("the server answers");
        let marker = format!("real-smtp-{}", std::process::id());
        let message_id = format!("<{marker}@tenantry.test>");
        let email = OutgoingEmail {
            to: Email::parse("ann@example.com").expect("valid"),
            subject: format!("Subject {marker}"),
            text: format!("plain part {marker}"),
            html: format!("<p>html part {marker}</p>"),
            message_id: Some(message_id.clone()),
        };
        mailer.send(&email).await.expect("accepted");
        let received = server.received(&marker, 1, Duration::from_secs(10)).await;
        assert_eq!(received.len(), 1, "delivered once");
        let message = &received[0];
        let header = |name: &str| {
            message
                .lines()
                .take_while(|line| !line.is_empty())
                .find_map(|line| line.strip_prefix(&format!("{name}: ")))
                .unwrap_or_else(|| panic!("no {name} header in {message}"))
                .to_owned()
        };
        assert_eq!(header("From"), "Tenantry <no-reply@tenantry.test>");
        assert_eq!(header("To"), "ann@example.com");
        assert_eq!(header("Subject"), format!("Subject {marker}"));
        assert_eq!(header("Message-ID"), message_id, "the outbox's id, the same on every attempt");
        assert!(chrono_like_date(&header("Date")), "an RFC 5322 date: {}", header("Date"));
        assert_eq!(header("MIME-Version"), "1.0");
        assert!(header("Content-Type").starts_with("multipart/alternative"), "{message}");
        let plain = message.find("Content-Type: text/plain").expect("a text part");
        let html = message.find("Content-Type: text/html").expect("an HTML part");
        assert!(plain < html, "text first, HTML last (the preferred part)");
        assert!(message[plain..html].contains(&format!("plain part {marker}")), "{message}");
        assert!(message[html..].contains(&format!("<p>html part {marker}</p>")), "{message}");

        let wrong = server.url.replacen("smtp://", "smtp://tenantry:wrong-password@", 1);
        let refused = SmtpMailer::new(&wrong, "Tenantry <no-reply@tenantry.test>", Duration::from_secs(10))
            .expect("mailer")
            .send(&tenantry_testkit::mail::sample("Refused"))
            .await;
        assert!(matches!(refused, Err(MailError::Rejected(_))), "a wrong password is permanent: {refused:?}");
    }

    /// `Sun, 06 Dec 2026 21:00:00 +0000`.
    fn chrono_like_date(value: &str) -> bool {
        let parts: Vec<&str> = value.split_whitespace().collect();
        parts.len() == 6 && parts[0].ends_with(',') && parts[4].matches(':').count() == 2
    }

    #[tokio::test]
    async fn an_smtp_relay_that_is_down_is_unavailable_not_rejected() {
        // A port nobody listens on: bind one, then let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let url = format!("smtp://127.0.0.1:{port}");
        let mailer =
            SmtpMailer::new(&url, "Tenantry <no-reply@tenantry.test>", Duration::from_secs(2)).expect("mailer");
        let sent = mailer.send(&tenantry_testkit::mail::sample("Lost")).await;
        assert!(matches!(sent, Err(MailError::Unavailable(_))), "{sent:?}");
        assert!(SmtpProbe(std::sync::Arc::new(mailer)).check().await.is_err());
    }

    // A pooled transport starts its pool's janitor on the Tokio runtime: build it in one.
    #[tokio::test]
    async fn smtp_urls_say_how_they_are_secured() {
        let cases = [
            ("smtps://u:p@mail.example.com:465", SmtpSecurity::ImplicitTls),
            ("smtp://u:p@mail.example.com:587?tls=required", SmtpSecurity::StartTls),
            ("smtp://u:p@mail.example.com:587?tls=starttls", SmtpSecurity::StartTls),
            ("smtp://mail.example.com?tls=opportunistic", SmtpSecurity::Opportunistic),
            ("smtp://127.0.0.1:1025", SmtpSecurity::Plain),
        ];
        for (url, expected) in cases {
            let (security, host) = smtp_security(url).expect(url);
            assert_eq!(security, expected, "{url}");
            assert!(!host.contains('@') && !host.contains(':'), "the host alone, never the credentials: {host}");
            SmtpMailer::new(url, "Tenantry <no-reply@tenantry.test>", Duration::from_secs(1)).expect(url);
        }
        assert!(smtp_security("smtp://mail.example.com?tls=sometimes").is_err());
        assert!(smtp_security("http://mail.example.com").is_err());
    }

    #[test]
    fn an_smtp_url_lettre_cannot_use_is_refused_at_construction() {
        for url in ["smtp://", "ftp://mail.example.com", "smtp://mail.example.com?tls=sometimes"] {
            let made = SmtpMailer::new(url, "Tenantry <no-reply@tenantry.test>", Duration::from_secs(1));
            assert!(matches!(made, Err(MailError::Rejected(_))), "{url}");
        }
    }
}
