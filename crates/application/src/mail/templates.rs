//! The mail templates: subject, text and HTML of each mail Tenantry sends, rendered with
//! minijinja. The defaults are compiled into the binary; a deployment overrides any of them
//! with a file of the same name in a folder it names (`TENANTRY_MAIL_TEMPLATES_DIR`).
//!
//! minijinja lives here, in the application crate, because it is a pure library (no I/O, no
//! build script) and the templates are part of the use cases' output; reading the override
//! folder is I/O, so the app crate reads it and hands the sources in ([`MailTemplates::new`]).
//! `.html` templates are auto-escaped (an organization's name is user input); `.txt` ones are
//! not. Undefined variables are errors, so a typo in an override fails at start-up, not in a
//! mail.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde_json::{Value, json};

/// Each mail Tenantry sends: one template set (`<name>.subject.txt`, `<name>.txt`,
/// `<name>.html`) and one outbox `kind` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MailKind {
    /// The link that proves an address (`link`, `validity`).
    EmailVerification,
    /// The link that sets a new password (`link`, `validity`).
    PasswordReset,
    /// The link that joins an organization (`org_name`, `role`, `link`, `validity`).
    Invitation,
    /// A sign-in from a device or network the account has not used (`at`, `user_agent`,
    /// `ip`, `sessions_url`).
    NewSignIn,
    /// Two-factor sign-in turned on or off (`enabled`, `at`).
    TwoFactorChanged,
    /// A failing webhook endpoint was disabled (`url`, `endpoint_id`, `org_id`,
    /// `failing_since`, `path`).
    WebhookEndpointDisabled,
    /// An organization crossed 80 % or 100 % of a quota (`org_name`, `quota`, `percent`,
    /// `used`, `limit`, `period_end`, `usage_path`).
    QuotaThreshold,
}

impl MailKind {
    /// Every kind, so loading can check that each has its templates and that every override
    /// file names a kind that exists.
    pub const ALL: [Self; 7] = [
        Self::EmailVerification,
        Self::PasswordReset,
        Self::Invitation,
        Self::NewSignIn,
        Self::TwoFactorChanged,
        Self::WebhookEndpointDisabled,
        Self::QuotaThreshold,
    ];

    /// The template base name and the outbox `kind`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EmailVerification => "email_verification",
            Self::PasswordReset => "password_reset",
            Self::Invitation => "invitation",
            Self::NewSignIn => "new_sign_in",
            Self::TwoFactorChanged => "two_factor_changed",
            Self::WebhookEndpointDisabled => "webhook_endpoint_disabled",
            Self::QuotaThreshold => "quota_threshold",
        }
    }

    /// The embedded defaults: subject, text, HTML.
    const fn defaults(self) -> [&'static str; 3] {
        macro_rules! set {
            ($name:literal) => {
                [
                    include_str!(concat!("templates/", $name, ".subject.txt")),
                    include_str!(concat!("templates/", $name, ".txt")),
                    include_str!(concat!("templates/", $name, ".html")),
                ]
            };
        }
        match self {
            Self::EmailVerification => set!("email_verification"),
            Self::PasswordReset => set!("password_reset"),
            Self::Invitation => set!("invitation"),
            Self::NewSignIn => set!("new_sign_in"),
            Self::TwoFactorChanged => set!("two_factor_changed"),
            Self::WebhookEndpointDisabled => set!("webhook_endpoint_disabled"),
            Self::QuotaThreshold => set!("quota_threshold"),
        }
    }

    /// A context with every variable the kind's templates get, for checking overrides at
    /// start-up (an override that uses a variable the mail does not have fails then).
    fn sample(self) -> Value {
        let link = "https://app.example.com/x?token=sample";
        match self {
            Self::EmailVerification | Self::PasswordReset => json!({"link": link, "validity": "1 hour"}),
            Self::Invitation => json!({"org_name": "Acme", "role": "member", "link": link, "validity": "7 days"}),
            Self::NewSignIn => json!({
                "at": "2026-01-01T00:00:00Z", "user_agent": "Firefox", "ip": "192.0.2.1",
                "sessions_url": "https://app.example.com/api/v1/auth/sessions",
            }),
            Self::TwoFactorChanged => json!({"enabled": true, "at": "2026-01-01T00:00:00Z"}),
            Self::WebhookEndpointDisabled => json!({
                "url": "https://hooks.example.com", "endpoint_id": "0", "org_id": "0",
                "failing_since": "2026-01-01T00:00:00Z", "path": "/api/v1/orgs/0/webhooks/0",
            }),
            Self::QuotaThreshold => json!({
                "org_name": "Acme", "quota": "api_calls", "percent": 80, "used": 80, "limit": 100,
                "period_end": "2026-02-01T00:00:00Z", "usage_path": "/api/v1/orgs/0/usage",
            }),
        }
    }
}

/// The three parts of a template set, by file suffix.
const PARTS: [&str; 3] = ["subject.txt", "txt", "html"];

/// A template override that cannot be used; names the file, so start-up says which one.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A file of the folder that names no template Tenantry sends (a typo would otherwise be
    /// ignored silently).
    #[error(
        "{file}: not a mail template (expected <kind>.subject.txt, <kind>.txt or <kind>.html, kind one of {kinds})"
    )]
    Unknown {
        /// The file name.
        file: String,
        /// The kinds.
        kinds: String,
    },
    /// The file does not parse, or does not render with the mail's variables.
    #[error("{file}: {message}")]
    Invalid {
        /// The file name.
        file: String,
        /// minijinja's explanation (line and what is wrong).
        message: String,
    },
}

/// A rendered mail, before it is addressed and sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedMail {
    /// Subject line (one line: line breaks are replaced by spaces).
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
}

/// The mail templates, defaults and overrides, parsed once at start-up, so a broken override
/// fails start-up instead of a mail at send time.
#[derive(Debug)]
pub struct MailTemplates {
    env: Environment<'static>,
}

impl MailTemplates {
    /// The embedded defaults only.
    ///
    /// # Panics
    /// Never: the defaults are checked by this module's tests.
    #[must_use]
    pub fn embedded() -> Self {
        Self::new(BTreeMap::new()).expect("the embedded templates are valid")
    }

    /// The defaults with `overrides` (file name → source, e.g. `invitation.html`) in their
    /// place. Each override must name a template, parse, and render with its mail's variables.
    ///
    /// # Errors
    /// [`TemplateError`] naming the first file at fault.
    pub fn new(overrides: BTreeMap<String, String>) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        // `.html` escapes, everything else (subjects, text) does not.
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") { minijinja::AutoEscape::Html } else { minijinja::AutoEscape::None }
        });
        env.set_formatter(html_formatter);
        for kind in MailKind::ALL {
            for (part, source) in PARTS.iter().zip(kind.defaults()) {
                let name = format!("{}.{part}", kind.as_str());
                env.add_template_owned(name.clone(), source)
                    .map_err(|err| TemplateError::Invalid { file: name, message: err.to_string() })?;
            }
        }
        let known: Vec<String> =
            MailKind::ALL.iter().flat_map(|kind| PARTS.map(|part| format!("{}.{part}", kind.as_str()))).collect();
        for (file, source) in overrides {
            if !known.contains(&file) {
                let kinds = MailKind::ALL.map(MailKind::as_str).join(", ");
                return Err(TemplateError::Unknown { file, kinds });
            }
            env.add_template_owned(file.clone(), source)
                .map_err(|err| TemplateError::Invalid { file: file.clone(), message: detail(&err) })?;
        }
        let templates = Self { env };
        for kind in MailKind::ALL {
            for part in PARTS {
                let file = format!("{}.{part}", kind.as_str());
                templates
                    .render_one(&file, &kind.sample())
                    .map_err(|message| TemplateError::Invalid { file, message })?;
            }
        }
        Ok(templates)
    }

    /// Renders `kind` with `context` (the variables its documentation lists).
    ///
    /// # Errors
    /// minijinja's explanation, when the context lacks a variable the template uses.
    pub fn render(&self, kind: MailKind, context: &Value) -> Result<RenderedMail, String> {
        let name = kind.as_str();
        let subject = self.render_one(&format!("{name}.subject.txt"), context)?;
        Ok(RenderedMail {
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: self.render_one(&format!("{name}.txt"), context)?,
            html: self.render_one(&format!("{name}.html"), context)?,
        })
    }

    fn render_one(&self, name: &str, context: &Value) -> Result<String, String> {
        let template = self.env.get_template(name).map_err(|err| detail(&err))?;
        template.render(context).map_err(|err| detail(&err))
    }
}

/// minijinja's escaping, but leaving `/` alone: links stay readable in `href`s (`&`, `<`, `>`,
/// `"` and `'` are what HTML needs escaped in text and quoted attributes).
fn html_formatter(
    out: &mut minijinja::Output<'_>,
    state: &minijinja::State<'_, '_>,
    value: &minijinja::Value,
) -> Result<(), minijinja::Error> {
    if !matches!(state.auto_escape(), minijinja::AutoEscape::Html) || value.is_safe() || value.is_undefined() {
        return minijinja::escape_formatter(out, state, value);
    }
    let text = value.to_string();
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#x27;"),
            other => escaped.push(other),
        }
    }
    out.write_str(&escaped)
        .map_err(|_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "writing the rendered mail failed"))
}

/// minijinja's error with its line, without the source dump of its alternate form.
fn detail(err: &minijinja::Error) -> String {
    match err.line() {
        Some(line) => format!("line {line}: {err}"),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_template_renders_with_its_variables() {
        let templates = MailTemplates::embedded();
        for kind in MailKind::ALL {
            let mail = templates.render(kind, &kind.sample()).expect("renders");
            assert!(!mail.subject.is_empty() && !mail.subject.contains('\n'), "{kind:?}: one subject line");
            assert!(!mail.text.is_empty() && mail.html.contains("<html>"), "{kind:?}: both parts");
        }
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let templates = MailTemplates::embedded();
        let context =
            json!({"org_name": "<b>A&B</b>", "role": "member", "link": "https://x/?token=t", "validity": "7 days"});
        let mail = templates.render(MailKind::Invitation, &context).expect("renders");
        assert!(mail.html.contains("&lt;b&gt;A&amp;B&lt;/b&gt;"), "{}", mail.html);
        assert!(!mail.html.contains("<b>A&B</b>"), "user input never becomes markup");
        assert!(mail.text.contains("<b>A&B</b>") && mail.subject.contains("<b>A&B</b>"), "plain parts stay plain");
    }

    #[test]
    fn an_override_replaces_its_default_only() {
        let overrides =
            BTreeMap::from([("invitation.subject.txt".to_owned(), "Welcome to {{ org_name }}!".to_owned())]);
        let templates = MailTemplates::new(overrides).expect("valid override");
        let context = json!({"org_name": "Acme", "role": "member", "link": "l", "validity": "v"});
        let mail = templates.render(MailKind::Invitation, &context).expect("renders");
        assert_eq!(mail.subject, "Welcome to Acme!");
        assert!(mail.text.contains("You are invited to join Acme"), "the text keeps its default");
    }

    #[test]
    fn an_override_that_does_not_parse_is_refused_naming_its_file() {
        let overrides = BTreeMap::from([("password_reset.html".to_owned(), "<p>{{ link </p>".to_owned())]);
        let err = MailTemplates::new(overrides).expect_err("refused");
        assert!(err.to_string().starts_with("password_reset.html: "), "{err}");
    }

    #[test]
    fn an_override_using_a_variable_the_mail_lacks_is_refused() {
        let overrides = BTreeMap::from([("new_sign_in.txt".to_owned(), "Hi {{ first_name }}".to_owned())]);
        let err = MailTemplates::new(overrides).expect_err("refused");
        assert!(err.to_string().starts_with("new_sign_in.txt: "), "{err}");
    }

    #[test]
    fn a_file_that_names_no_template_is_refused() {
        let overrides = BTreeMap::from([("invitaton.html".to_owned(), "typo".to_owned())]);
        let err = MailTemplates::new(overrides).expect_err("refused");
        assert!(matches!(err, TemplateError::Unknown { ref file, .. } if file == "invitaton.html"), "{err}");
    }
}
