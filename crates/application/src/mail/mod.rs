//! Mail: templates ([`MailTemplates`]), the composer that renders and seals a mail for the
//! outbox ([`MailComposer`]), and the worker step that sends what waits there ([`MailSender`]).
//! ADR 0018.
//!
//! A use case never sends mail itself: it composes [`QueuedMail`]s and hands them to the
//! repository call that makes its change, which writes them in the same transaction. The
//! sender then delivers each one, retrying while the relay is unavailable.

mod sender;
mod templates;

pub use sender::{MailObserver, MailSender, MailSettings, MailSweeper};
pub use templates::{MailKind, MailTemplates, RenderedMail, TemplateError};

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenantry_domain::{Email, MailId, OrgId};
use tenantry_ports::{Clock, IdGenerator, OrgRepository, OutgoingEmail, QueuedMail, SecretCipher};

/// Why a mail could not be composed or opened: both are server faults (a template or key
/// problem), never the user's, so callers answer them as internal errors.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// A template did not render with the variables given (a bug, or an override that
    /// start-up did not catch).
    #[error("rendering the {kind} mail failed: {message}")]
    Render {
        /// The mail.
        kind: &'static str,
        /// minijinja's explanation.
        message: String,
    },
    /// The envelope could not be sealed or opened (a corrupt row, another key).
    #[error("the mail envelope cannot be sealed or opened")]
    Envelope(#[source] anyhow::Error),
}

/// What the outbox keeps sealed: everything personal or secret about a mail.
#[derive(Serialize, Deserialize)]
struct Envelope {
    to: String,
    subject: String,
    text: String,
    html: String,
}

/// Renders mails from their templates and seals them for the outbox. Cheap to clone.
#[derive(Clone)]
pub struct MailComposer {
    templates: Arc<MailTemplates>,
    cipher: Arc<dyn SecretCipher>,
    ids: Arc<dyn IdGenerator>,
    clock: Arc<dyn Clock>,
    public_url: String,
}

impl MailComposer {
    /// A composer with `templates`, sealing with `cipher`; links start with `public_url`.
    pub fn new(
        templates: Arc<MailTemplates>,
        cipher: Arc<dyn SecretCipher>,
        ids: Arc<dyn IdGenerator>,
        clock: Arc<dyn Clock>,
        public_url: &str,
    ) -> Self {
        Self { templates, cipher, ids, clock, public_url: public_url.trim_end_matches('/').to_owned() }
    }

    /// The public base URL (no trailing slash), for links.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// `public_url` + `path` + `?token=` + `token`: the link form API.md fixes.
    pub fn link(&self, path: &str, token: &str) -> String {
        format!("{}/{path}?token={token}", self.public_url)
    }

    /// Renders `kind` for `to` with `context` and seals it, ready for the outbox.
    ///
    /// # Errors
    /// [`ComposeError`].
    pub fn compose(&self, kind: MailKind, to: &Email, context: &Value) -> Result<QueuedMail, ComposeError> {
        let rendered = self
            .templates
            .render(kind, context)
            .map_err(|message| ComposeError::Render { kind: kind.as_str(), message })?;
        let envelope = Envelope {
            to: to.as_str().to_owned(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
        };
        let plain = serde_json::to_vec(&envelope).map_err(|err| ComposeError::Envelope(err.into()))?;
        let sealed = self.cipher.seal(&plain).map_err(|err| ComposeError::Envelope(err.into()))?;
        Ok(QueuedMail {
            id: MailId::from_uuid(self.ids.new_id()),
            kind: kind.as_str().to_owned(),
            sealed,
            created_at: self.clock.now(),
        })
    }

    /// The message a queued mail carries, with its stable `Message-ID`.
    ///
    /// # Errors
    /// [`ComposeError::Envelope`] for an envelope this key did not seal.
    pub fn open(&self, id: MailId, sealed: &str) -> Result<OutgoingEmail, ComposeError> {
        let plain = self.cipher.open(sealed).map_err(|err| ComposeError::Envelope(err.into()))?;
        let envelope: Envelope = serde_json::from_slice(&plain).map_err(|err| ComposeError::Envelope(err.into()))?;
        let to = Email::parse(&envelope.to).map_err(|err| ComposeError::Envelope(err.into()))?;
        let host = self.public_url.split("://").nth(1).unwrap_or("tenantry.invalid");
        let host = host.split(['/', ':']).next().filter(|host| !host.is_empty()).unwrap_or("tenantry.invalid");
        Ok(OutgoingEmail {
            to,
            subject: envelope.subject,
            text: envelope.text,
            html: envelope.html,
            message_id: Some(format!("<{id}@{host}>")),
        })
    }

    /// One `kind` mail per owner and admin of `org_id`, each with `context`: the people told
    /// about an organization's endpoints and quotas.
    ///
    /// # Errors
    /// [`ComposeError`]; a store failure as [`ComposeError::Envelope`]'s sibling, `Err(anyhow)`.
    pub async fn to_admins(
        &self,
        orgs: &dyn OrgRepository,
        org_id: OrgId,
        kind: MailKind,
        context: &Value,
    ) -> Result<Vec<QueuedMail>, anyhow::Error> {
        let mut mails = Vec::new();
        let mut after = None;
        loop {
            let members = orgs.list_members(org_id, after, 100).await?;
            for member in members.iter().filter(|member| matches!(member.role.as_str(), "owner" | "admin")) {
                mails.push(self.compose(kind, &member.email, context)?);
            }
            if members.len() < 100 {
                return Ok(mails);
            }
            after = members.last().map(|member| member.user_id);
        }
    }
}

/// How long a duration reads in a mail: "45 minutes", "1 hour", "24 hours", "7 days".
pub fn human(duration: std::time::Duration) -> String {
    let hours = duration.as_secs() / 3600;
    if hours >= 48 && hours.is_multiple_of(24) {
        return format!("{} days", hours / 24);
    }
    match hours {
        0 => format!("{} minutes", duration.as_secs() / 60),
        1 => "1 hour".to_owned(),
        n => format!("{n} hours"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Duration;

    use tenantry_adapter_memory::{ManualClock, UuidV7Generator};
    use tenantry_ports::MockSecretCipher;

    use super::*;

    /// A composer whose "cipher" reverses the bytes: sealing is visible and reversible.
    pub(crate) fn composer() -> MailComposer {
        let mut cipher = MockSecretCipher::new();
        cipher.expect_seal().returning(|plain| Ok(format!("sealed:{}", String::from_utf8_lossy(plain))));
        cipher.expect_open().returning(|sealed| {
            sealed
                .strip_prefix("sealed:")
                .map(|plain| plain.as_bytes().to_vec())
                .ok_or(tenantry_ports::CryptoError::Malformed)
        });
        MailComposer::new(
            Arc::new(MailTemplates::embedded()),
            Arc::new(cipher),
            Arc::new(UuidV7Generator),
            Arc::new(ManualClock::new(chrono::Utc::now())),
            "https://app.example/",
        )
    }

    #[test]
    fn a_composed_mail_is_sealed_and_opens_to_the_rendered_message() {
        let composer = composer();
        let to = Email::parse("ann@example.com").expect("valid");
        let link = composer.link("reset-password", "tok_123");
        assert_eq!(link, "https://app.example/reset-password?token=tok_123");
        let context = serde_json::json!({"link": link, "validity": human(Duration::from_secs(3600))});
        let queued = composer.compose(MailKind::PasswordReset, &to, &context).expect("composed");
        assert_eq!(queued.kind, "password_reset");
        assert!(queued.sealed.starts_with("sealed:"), "the envelope is sealed");
        let opened = composer.open(queued.id, &queued.sealed).expect("opens");
        assert_eq!(opened.to, to);
        assert_eq!(opened.subject, "Reset your password");
        assert!(opened.text.contains("https://app.example/reset-password?token=tok_123"));
        assert!(opened.html.contains("href=\"https://app.example/reset-password?token=tok_123\""));
        assert!(opened.text.contains("1 hour"));
        assert_eq!(opened.message_id, Some(format!("<{}@app.example>", queued.id)));
    }

    #[test]
    fn an_envelope_sealed_elsewhere_does_not_open() {
        let composer = composer();
        assert!(matches!(
            composer.open(MailId::from_uuid(uuid::Uuid::now_v7()), "garbage"),
            Err(ComposeError::Envelope(_))
        ));
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(Duration::from_secs(45 * 60)), "45 minutes");
        assert_eq!(human(Duration::from_secs(3600)), "1 hour");
        assert_eq!(human(Duration::from_secs(86_400)), "24 hours");
        assert_eq!(human(Duration::from_secs(7 * 86_400)), "7 days");
    }
}
