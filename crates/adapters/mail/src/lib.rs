//! Mail adapters on lettre. Messages are multipart/alternative (text and HTML).

use std::path::{Path, PathBuf};

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tenantry_ports::{HealthProbe, MailError, Mailer, OutgoingEmail, ProbeError};

/// Builds the RFC 5322 message for `email` from `from`.
///
/// # Errors
/// [`MailError::Rejected`] for an address lettre cannot encode.
pub fn build_message(from: &Mailbox, email: &OutgoingEmail) -> Result<Message, MailError> {
    let to: Mailbox = email.to.as_str().parse().map_err(|err| MailError::Rejected(anyhow::Error::new(err)))?;
    Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject.clone())
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

/// Delivers over SMTP: `smtp://host:port` (plain, for a local relay), `smtp://…?tls=required`
/// (STARTTLS) or `smtps://` (TLS from the first byte), with `user:password@` when the relay
/// wants them. Connections are pooled by lettre.
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
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|err| MailError::Rejected(anyhow::anyhow!("TENANTRY_SMTP_URL: {err}")))?
            .timeout(Some(timeout))
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

    #[test]
    fn an_smtp_url_lettre_cannot_use_is_refused_at_construction() {
        for url in ["smtp://", "ftp://mail.example.com", "smtp://mail.example.com?tls=sometimes"] {
            let made = SmtpMailer::new(url, "Tenantry <no-reply@tenantry.test>", Duration::from_secs(1));
            assert!(matches!(made, Err(MailError::Rejected(_))), "{url}");
        }
    }
}
