//! The e-mails the identity flows send, in text and HTML.

use std::time::Duration;

use tenantry_domain::Email;
use tenantry_domain::identity::TokenPurpose;
use tenantry_ports::OutgoingEmail;

/// The message carrying a verification or reset link `…?token=<token>`.
pub fn token_mail(
    purpose: TokenPurpose,
    to: &Email,
    public_url: &str,
    token: &str,
    lifetime: Duration,
) -> OutgoingEmail {
    let (subject, path, action, intro) = match purpose {
        TokenPurpose::EmailVerification => (
            "Confirm your e-mail address",
            "verify-email",
            "Confirm my address",
            "Please confirm that this is your e-mail address.",
        ),
        TokenPurpose::PasswordReset => (
            "Reset your password",
            "reset-password",
            "Choose a new password",
            "Somebody (hopefully you) asked to reset the password of your account.",
        ),
    };
    let link = format!("{}/{path}?token={token}", public_url.trim_end_matches('/'));
    let validity = human(lifetime);
    let text = format!(
        "{intro}\n\n{action}:\n{link}\n\nThe link works once and expires in {validity}. If you did not ask for this, ignore this e-mail.\n"
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><p>{intro}</p>\
         <p><a href=\"{link}\">{action}</a></p>\
         <p style=\"color:#555\">The link works once and expires in {validity}. If you did not ask for this, ignore this e-mail.</p>\
         </body></html>"
    );
    OutgoingEmail { to: to.clone(), subject: subject.to_owned(), text, html }
}

/// The invitation to join `org_name` as `role`, with its `…/accept-invitation?token=` link.
pub fn invitation_mail(
    to: &Email,
    org_name: &str,
    role: &str,
    public_url: &str,
    token: &str,
    lifetime: Duration,
) -> OutgoingEmail {
    let link = format!("{}/accept-invitation?token={token}", public_url.trim_end_matches('/'));
    let validity = human(lifetime);
    let org = escape(org_name);
    let text = format!(
        "You are invited to join {org_name} as {role}.\n\nAccept the invitation:\n{link}\n\nSign in (or create an account) with this address first. The link works once and expires in {validity}.\n"
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><p>You are invited to join <strong>{org}</strong> as {role}.</p>\
         <p><a href=\"{link}\">Accept the invitation</a></p>\
         <p style=\"color:#555\">Sign in (or create an account) with this address first. The link works once and expires in {validity}.</p></body></html>"
    );
    OutgoingEmail { to: to.clone(), subject: format!("Join {org_name} on Tenantry"), text, html }
}

/// The message telling an owner or admin that the endpoint at `url` was disabled after
/// failing since `failing_since`, and how to bring it back.
pub fn endpoint_disabled_mail(
    to: &Email,
    org_id: tenantry_domain::OrgId,
    endpoint_id: tenantry_domain::WebhookId,
    url: &str,
    failing_since: chrono::DateTime<chrono::Utc>,
) -> OutgoingEmail {
    let since = failing_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let path = format!("/api/v1/orgs/{org_id}/webhooks/{endpoint_id}");
    let text = format!(
        "Every delivery to the webhook endpoint {url} (id {endpoint_id}) has failed since {since}, so it was \
         disabled: it receives no new events, and its waiting deliveries ended dead.\n\nLook at its \
         deliveries (GET {path}/deliveries) for the answers it gave, fix the receiver, enable it again \
         (PATCH {path} with {{\"enabled\": true}}) and retry the deliveries you need.\n"
    );
    let html = format!(
        "<!doctype html><html><body style=\"font-family:sans-serif\"><p>Every delivery to the webhook endpoint \
         <code>{url}</code> (id <code>{endpoint_id}</code>) has failed since {since}, so it was disabled: it \
         receives no new events, and its waiting deliveries ended dead.</p><p>Look at its deliveries \
         (<code>GET {path}/deliveries</code>) for the answers it gave, fix the receiver, enable it again \
         (<code>PATCH {path}</code> with <code>{{\"enabled\": true}}</code>) and retry the deliveries you \
         need.</p></body></html>",
        url = escape(url),
    );
    OutgoingEmail { to: to.clone(), subject: "A webhook endpoint was disabled".to_owned(), text, html }
}

/// Escapes text for HTML (organization names are user input).
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn human(duration: Duration) -> String {
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
mod tests {
    use super::*;

    #[test]
    fn links_carry_the_token_in_the_query() {
        let to = Email::parse("a@b.io").expect("valid");
        let mail =
            token_mail(TokenPurpose::PasswordReset, &to, "https://app.example/", "tok_123", Duration::from_secs(3600));
        assert!(mail.text.contains("https://app.example/reset-password?token=tok_123"));
        assert!(mail.html.contains("href=\"https://app.example/reset-password?token=tok_123\""));
        assert!(mail.text.contains("1 hour"));
        let verify = token_mail(TokenPurpose::EmailVerification, &to, "http://x", "t", Duration::from_secs(86_400));
        assert!(verify.text.contains("http://x/verify-email?token=t"));
        assert!(verify.text.contains("24 hours"));
    }
}
