//! Mail adapters on lettre. Messages are multipart/alternative (text and HTML).

use std::path::{Path, PathBuf};

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};
use tenantry_ports::{MailError, Mailer, OutgoingEmail};

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
}
