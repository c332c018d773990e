//! Mail through the durable outbox (ADR 0018), black-box: the real server on a random port
//! sends over SMTP to a loopback relay that the test stops and starts.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use tenantry_testkit::smtp::SmtpSink;
use tenantry_tests::{TestApp, spawn_app_with};

/// One retry a second: the outage test waits for the relay's return, not for a schedule.
const FAST_RETRIES: &str = "1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Five actions that each queue one mail: two registrations (verification), a password reset
/// and two invitations. The owner who invites is created from the CLI (verified, no mail) and
/// signs in for the first time (no alert). Returns the five recipients.
async fn five_mailing_actions(app: &TestApp) -> Vec<String> {
    let first = app.register().await;
    let second = app.register().await;
    let reset = app.post_json("/api/v1/auth/request-password-reset", &json!({"email": first}), None).await;
    assert_eq!(reset.status(), 202);
    let owner = app.admin().await;
    let org = app.create_org(&owner).await;
    let mut invited = Vec::new();
    for label in ["invitee-a", "invitee-b"] {
        let email = tenantry_tests::address(label);
        let response = app
            .post_json(
                &format!("/api/v1/orgs/{org}/invitations"),
                &json!({"email": email, "role": "member"}),
                Some(&owner),
            )
            .await;
        assert_eq!(response.status(), 201);
        invited.push(email);
    }
    vec![first.clone(), second, first, invited[0].clone(), invited[1].clone()]
}

fn recipient(message: &str) -> Option<String> {
    message.lines().find_map(|line| line.strip_prefix("To: ")).map(|to| to.trim().to_owned())
}

#[tokio::test]
async fn an_smtp_outage_delays_mail_and_loses_none_and_each_arrives_once() {
    let port = free_port();
    let smtp = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(&[("TENANTRY_SMTP_URL", &smtp), ("TENANTRY_MAIL_RETRY_SCHEDULE", FAST_RETRIES)]).await;

    // The relay is down: the actions succeed, their mails wait.
    let recipients = five_mailing_actions(&app).await;
    let waiting = app.deliver_mail().await;
    assert_eq!(waiting, 5, "every mail waits for the relay (each tried and scheduled again)");
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 503, "readiness names the relay that is down");
    let ready: serde_json::Value = ready.json().await.expect("json");
    assert_ne!(ready["checks"]["mail"], "ok", "{ready}");

    // The relay comes back on the same port: the server's own worker sends everything.
    let sink = SmtpSink::start_on(port).await;
    let back = Instant::now();
    let messages = sink.wait_for(5, Duration::from_secs(30)).await;
    let drained = back.elapsed();
    eprintln!("mail outage: five mails arrived {drained:?} after the relay came back");
    assert_eq!(app.deliver_mail().await, 0, "nothing is left waiting");
    // Past the retry delay once more: nothing goes out twice.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(app.deliver_mail().await, 0);
    let messages = if sink.messages().len() > messages.len() { sink.messages() } else { messages };
    assert_eq!(
        messages.len(),
        5,
        "five mails, each once: {:#?}",
        messages.iter().map(|m| recipient(m)).collect::<Vec<_>>()
    );

    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for to in &recipients {
        *expected.entry(to.clone()).or_default() += 1;
    }
    let mut arrived: BTreeMap<String, usize> = BTreeMap::new();
    for message in &messages {
        *arrived.entry(recipient(message).expect("addressed")).or_default() += 1;
    }
    assert_eq!(arrived, expected, "each mail reached its recipient once");
    let subjects: Vec<&str> =
        messages.iter().filter_map(|m| m.lines().find_map(|line| line.strip_prefix("Subject: "))).collect();
    assert_eq!(subjects.iter().filter(|s| s.contains("Confirm your e-mail address")).count(), 2, "{subjects:?}");
    assert_eq!(subjects.iter().filter(|s| s.contains("Reset your password")).count(), 1, "{subjects:?}");
    assert_eq!(subjects.iter().filter(|s| s.starts_with("Join ")).count(), 2, "{subjects:?}");
    let ids: std::collections::BTreeSet<&str> =
        messages.iter().filter_map(|m| m.lines().find_map(|line| line.strip_prefix("Message-ID: "))).collect();
    assert_eq!(ids.len(), 5, "each mail has its own Message-ID");
    app.stop().await;
}

#[tokio::test]
async fn mail_waits_sealed_and_its_body_is_erased_once_sent() {
    let port = free_port();
    let smtp = format!("smtp://127.0.0.1:{port}");
    let app = spawn_app_with(&[("TENANTRY_SMTP_URL", &smtp), ("TENANTRY_MAIL_RETRY_SCHEDULE", FAST_RETRIES)]).await;
    let email = app.register().await;
    assert_eq!(app.deliver_mail().await, 1, "the relay is down: the verification mail waits");
    let stored = app.raw_query_strings("SELECT COALESCE(sealed, '') FROM mail_outbox").await;
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].is_empty(), "the waiting mail keeps its envelope");
    assert!(
        !stored[0].contains(&email) && !stored[0].contains("token="),
        "neither the address nor the link is readable at rest"
    );
    let sink = SmtpSink::start_on(port).await;
    let messages = sink.wait_for(1, Duration::from_secs(30)).await;
    assert!(messages[0].contains("/verify-email?token="), "the link arrives intact");
    assert_eq!(app.deliver_mail().await, 0);
    let kept = app.raw_query_strings("SELECT status || ':' || COALESCE(sealed, 'erased') FROM mail_outbox").await;
    assert_eq!(kept, ["sent:erased"], "a sent mail keeps no body");
    app.stop().await;
}

/// The mails the embedded server wrote to `email` whose subject contains `subject`.
async fn mails_to(app: &TestApp, email: &str, subject: &str) -> Vec<String> {
    app.mails()
        .await
        .into_iter()
        .filter(|mail| mail.contains(&format!("To: {email}")) && mail.contains(subject))
        .collect()
}

async fn login_as(app: &TestApp, email: &str, user_agent: &str) -> u16 {
    app.client
        .post(app.url("/api/v1/auth/login"))
        .header("user-agent", user_agent)
        .json(&json!({"email": email, "password": tenantry_tests::PASSWORD}))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_sign_in_from_a_new_device_is_mailed_but_never_the_first_or_a_known_one() {
    let app = tenantry_tests::spawn_app().await;
    let email = app.register().await;
    assert_eq!(login_as(&app, &email, "Firefox/140").await, 200, "the first sign-in");
    assert_eq!(login_as(&app, &email, "Firefox/140").await, 200, "the same device again");
    assert!(mails_to(&app, &email, "New sign-in").await.is_empty(), "the first and a known device are not news");
    assert_eq!(login_as(&app, &email, "curl/8.9").await, 200, "another device");
    let alerts = mails_to(&app, &email, "New sign-in").await;
    assert_eq!(alerts.len(), 1, "one alert for the new device");
    assert!(alerts[0].contains("curl/8.9") && alerts[0].contains("/api/v1/auth/sessions"), "{}", alerts[0]);
    app.stop().await;
}

#[tokio::test]
async fn turning_two_factor_on_and_off_is_mailed_each_time() {
    let (app, clock) = tenantry_tests::spawn_app_with_manual_clock(&[]).await;
    let (email, access, _) = app.signed_in_user().await;
    let setup: serde_json::Value =
        app.post_json("/api/v1/auth/2fa/setup", &json!({}), Some(&access)).await.json().await.expect("json");
    let secret = setup["secret"].as_str().expect("secret").to_owned();
    let code = |at: i64| {
        let secret = totp_rs::Secret::Encoded(secret.clone()).to_bytes().expect("base32 secret");
        let totp =
            totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret, None, "test".to_owned()).expect("totp");
        totp.generate(u64::try_from(at).expect("positive"))
    };
    let now = || {
        use tenantry_tests::Clock as _;
        clock.now().timestamp()
    };
    let enabled = app.post_json("/api/v1/auth/2fa/enable", &json!({"code": code(now())}), Some(&access)).await;
    assert_eq!(enabled.status(), 200);
    let on = mails_to(&app, &email, "Two-factor sign-in is on").await;
    assert_eq!(on.len(), 1, "enabling is mailed once");
    clock.advance(chrono::Duration::seconds(30));
    let disabled = app
        .post_json(
            "/api/v1/auth/2fa/disable",
            &json!({"password": tenantry_tests::PASSWORD, "code": code(now())}),
            Some(&access),
        )
        .await;
    assert_eq!(disabled.status(), 204);
    let off = mails_to(&app, &email, "Two-factor sign-in was turned off").await;
    assert_eq!(off.len(), 1, "disabling is mailed once");
    app.stop().await;
}

#[tokio::test]
async fn a_quota_crossing_mails_the_org_owners_once_per_threshold() {
    let app = tenantry_tests::spawn_app().await;
    let admin = app.admin().await;
    let (owner_email, owner, _) = app.signed_in_user().await;
    let org = app.create_org(&owner).await;
    let plan = app
        .send(
            "PUT",
            &format!("/api/v1/admin/orgs/{org}/plan"),
            ("authorization", &format!("Bearer {admin}")),
            Some(json!({"plan": "free", "overrides": {"members": 3}})),
        )
        .await;
    assert_eq!(plan.status(), 200);
    // One member of three seats: the first invitation takes the second seat (67 %), the second
    // takes the third and crosses 80 % and 100 % at once; each threshold is mailed once.
    for label in ["quota-a", "quota-b"] {
        let email = tenantry_tests::address(label);
        let response = app
            .post_json(
                &format!("/api/v1/orgs/{org}/invitations"),
                &json!({"email": email, "role": "member"}),
                Some(&owner),
            )
            .await;
        assert_eq!(response.status(), 201);
    }
    let told = mails_to(&app, &owner_email, "of its members quota").await;
    let subjects: Vec<&str> =
        told.iter().filter_map(|m| m.lines().find_map(|line| line.strip_prefix("Subject: "))).collect();
    assert_eq!(subjects.len(), 2, "one mail per threshold: {subjects:?}");
    assert!(subjects.iter().any(|s| s.contains("80%")) && subjects.iter().any(|s| s.contains("100%")), "{subjects:?}");
    app.stop().await;
}
