//! Accounts and sign-in over real HTTP: every flow of API.md's "Accounts and sign-in", with
//! its failure paths.

use futures_util::future::join_all;
use serde_json::{Value, json};
use tenantry_tests::{PASSWORD, TestApp, assert_problem, spawn_app, spawn_app_with, spawn_app_with_manual_clock};

async fn status_of(app: &TestApp, path: &str, bearer: &str) -> u16 {
    app.get_auth(path, bearer).await.status().as_u16()
}

#[tokio::test]
async fn registration_creates_an_account_and_mails_a_verification_link() {
    let app = spawn_app().await;
    let response = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "  Ann.Lee@Example.COM ", "password": PASSWORD, "display_name": "Ann Lee"}),
            None,
        )
        .await;
    assert_eq!(response.status(), 201);
    let user: Value = response.json().await.expect("json");
    assert_eq!(user["email"], "ann.lee@example.com", "addresses are normalised");
    assert_eq!(user["display_name"], "Ann Lee");
    assert_eq!(user["email_verified"], false);
    assert!(user.get("password_hash").is_none() && !user.to_string().contains("argon2"), "{user}");
    let token = app.token_from_mail("ann.lee@example.com", "verify-email").await;
    assert!(token.len() >= 43, "at least 256 bits: {token}");
    app.stop().await;
}

#[tokio::test]
async fn registration_refuses_taken_addresses_weak_passwords_and_bad_input() {
    let app = spawn_app().await;
    let email = app.register().await;
    let taken = app
        .post_json("/api/v1/auth/register", &json!({"email": email.to_uppercase(), "password": PASSWORD}), None)
        .await;
    assert_problem(taken, 409, "conflict").await;

    for (password, why) in [("short pw 1", "too short"), ("password1234", "common"), ("aaaaaaaaaaaaaaaa", "repetitive")]
    {
        let response = app
            .post_json("/api/v1/auth/register", &json!({"email": "new@example.com", "password": password}), None)
            .await;
        let body = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(body["errors"][0]["field"], "password", "{why}: {body}");
    }
    let bad_email = app.post_json("/api/v1/auth/register", &json!({"email": "nope", "password": PASSWORD}), None).await;
    let body = assert_problem(bad_email, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "email");
    let unknown_field = app
        .post_json(
            "/api/v1/auth/register",
            &json!({"email": "x@example.com", "password": PASSWORD, "admin": true}),
            None,
        )
        .await;
    let body = assert_problem(unknown_field, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "admin");
    app.stop().await;
}

#[tokio::test]
async fn email_verification_tokens_work_once() {
    let app = spawn_app().await;
    let (email, access, _) = app.signed_in_user().await;
    let token = app.token_from_mail(&email, "verify-email").await;
    let first = app.post_json("/api/v1/auth/verify-email", &json!({"token": token}), None).await;
    assert_eq!(first.status(), 204);
    let me: Value = app.get_auth("/api/v1/users/me", &access).await.json().await.expect("json");
    assert_eq!(me["email_verified"], true);
    let again = app.post_json("/api/v1/auth/verify-email", &json!({"token": token}), None).await;
    assert_problem(again, 400, "invalid_token").await;
    let forged = app.post_json("/api/v1/auth/verify-email", &json!({"token": "forged"}), None).await;
    assert_problem(forged, 400, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn expired_verification_and_reset_tokens_are_refused() {
    let (app, clock) = spawn_app_with_manual_clock(&[]).await;
    let email = app.register().await;
    let verify = app.token_from_mail(&email, "verify-email").await;
    let reset_request = app.post_json("/api/v1/auth/request-password-reset", &json!({"email": email}), None).await;
    assert_eq!(reset_request.status(), 202);
    let reset = app.token_from_mail(&email, "reset-password").await;

    clock.advance(chrono::Duration::minutes(61));
    let response = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"token": reset, "new_password": "another strong pass phrase 7"}),
            None,
        )
        .await;
    assert_problem(response, 400, "invalid_token").await;

    clock.advance(chrono::Duration::hours(24));
    let response = app.post_json("/api/v1/auth/verify-email", &json!({"token": verify}), None).await;
    assert_problem(response, 400, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn resend_and_reset_requests_answer_202_whatever_the_address() {
    let app = spawn_app().await;
    let email = app.register().await;
    let before = app.mails().await.len();
    for path in ["/api/v1/auth/resend-verification", "/api/v1/auth/request-password-reset"] {
        let unknown = app.post_json(path, &json!({"email": "nobody-here@example.com"}), None).await;
        assert_eq!(unknown.status(), 202);
        assert!(unknown.text().await.expect("body").is_empty());
    }
    assert_eq!(app.mails().await.len(), before, "unknown addresses get no mail");
    let known = app.post_json("/api/v1/auth/request-password-reset", &json!({"email": email}), None).await;
    assert_eq!(known.status(), 202);
    assert!(app.try_token_from_mail(&email, "reset-password").await.is_some());
    app.stop().await;
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    let email = app.register().await;
    let wrong =
        app.post_json("/api/v1/auth/login", &json!({"email": email, "password": "wrong password here"}), None).await;
    let unknown = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": "ghost@example.com", "password": "wrong password here"}),
            None,
        )
        .await;
    assert_eq!(wrong.headers().get("www-authenticate"), unknown.headers().get("www-authenticate"));
    let mut wrong = assert_problem(wrong, 401, "unauthorized").await;
    let mut unknown = assert_problem(unknown, 401, "unauthorized").await;
    wrong["request_id"] = Value::Null;
    unknown["request_id"] = Value::Null;
    assert_eq!(wrong, unknown, "bodies must not tell the cases apart");
    app.stop().await;
}

#[tokio::test]
async fn repeated_failures_lock_the_account_with_retry_after() {
    let app = spawn_app_with(&[("TENANTRY_LOGIN_MAX_FAILURES", "3")]).await;
    let email = app.register().await;
    for _ in 0..3 {
        let response =
            app.post_json("/api/v1/auth/login", &json!({"email": email, "password": "not the password"}), None).await;
        assert_eq!(response.status(), 401);
    }
    let locked = app.post_json("/api/v1/auth/login", &json!({"email": email, "password": PASSWORD}), None).await;
    let retry_after: u64 = locked.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds");
    assert!(retry_after > 0 && retry_after <= 900, "{retry_after}");
    assert_problem(locked, 429, "rate_limited").await;
    let other = app.register().await;
    app.login(&other, PASSWORD).await;
    app.stop().await;
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_session() {
    let app = spawn_app().await;
    let (_, access, refresh) = app.signed_in_user().await;
    let rotated = app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": refresh}), None).await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.expect("json");
    assert_eq!(rotated["token_type"], "Bearer");
    assert_eq!(rotated["expires_in"], 900);
    let new_refresh = rotated["refresh_token"].as_str().expect("token").to_owned();
    let new_access = rotated["access_token"].as_str().expect("token").to_owned();
    assert_ne!(new_refresh, refresh);
    assert_eq!(status_of(&app, "/api/v1/users/me", &new_access).await, 200);

    // The old refresh token is dead; presenting it again is reuse: the session dies.
    let reuse = app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": refresh}), None).await;
    assert_problem(reuse, 401, "unauthorized").await;
    let after = app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": new_refresh}), None).await;
    assert_problem(after, 401, "unauthorized").await;
    assert_eq!(status_of(&app, "/api/v1/users/me", &new_access).await, 401, "revocation is immediate");
    assert_eq!(status_of(&app, "/api/v1/users/me", &access).await, 401);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_let_exactly_one_through() {
    let app = spawn_app().await;
    let (_, _, refresh) = app.signed_in_user().await;
    let body = json!({"refresh_token": refresh});
    let attempts = (0..8).map(|_| app.post_json("/api/v1/auth/refresh", &body, None));
    let statuses: Vec<u16> = join_all(attempts).await.into_iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 200 || *s == 401), "{statuses:?}");
    app.stop().await;
}

#[tokio::test]
async fn access_tokens_expire_and_forged_ones_are_refused() {
    let (app, clock) = spawn_app_with_manual_clock(&[]).await;
    let (_, access, _) = app.signed_in_user().await;
    assert_eq!(status_of(&app, "/api/v1/users/me", &access).await, 200);
    let mut forged = access.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    assert_problem(app.get_auth("/api/v1/users/me", &forged).await, 401, "unauthorized").await;
    assert_problem(app.get("/api/v1/users/me").await, 401, "unauthorized").await;
    clock.advance(chrono::Duration::minutes(16));
    let expired = app.get_auth("/api/v1/users/me", &access).await;
    assert_eq!(expired.headers()["www-authenticate"], "Bearer");
    assert_problem(expired, 401, "unauthorized").await;
    app.stop().await;
}

#[tokio::test]
async fn logout_and_session_revocation_take_effect_at_once() {
    let app = spawn_app().await;
    let (email, first, _) = app.signed_in_user().await;
    let second = app.login(&email, PASSWORD).await["access_token"].as_str().expect("token").to_owned();

    let list: Value = app.get_auth("/api/v1/auth/sessions", &first).await.json().await.expect("json");
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2);
    assert_eq!(list["next_cursor"], Value::Null);
    let current: Vec<&Value> = items.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert!(current[0]["user_agent"].is_string());
    let other_id =
        items.iter().find(|s| s["current"] == false).expect("the other session")["id"].as_str().expect("id").to_owned();

    let revoke = app
        .client
        .delete(app.url(&format!("/api/v1/auth/sessions/{other_id}")))
        .bearer_auth(&first)
        .send()
        .await
        .expect("sent");
    assert_eq!(revoke.status(), 204);
    assert_eq!(status_of(&app, "/api/v1/users/me", &second).await, 401);
    let again = app
        .client
        .delete(app.url(&format!("/api/v1/auth/sessions/{other_id}")))
        .bearer_auth(&first)
        .send()
        .await
        .expect("sent");
    assert_problem(again, 404, "not_found").await;
    let garbage =
        app.client.delete(app.url("/api/v1/auth/sessions/not-a-uuid")).bearer_auth(&first).send().await.expect("sent");
    assert_problem(garbage, 404, "not_found").await;

    let logout = app.post_json("/api/v1/auth/logout", &json!({}), Some(&first)).await;
    assert_eq!(logout.status(), 204);
    assert_eq!(status_of(&app, "/api/v1/users/me", &first).await, 401);
    app.stop().await;
}

#[tokio::test]
async fn another_users_session_cannot_be_revoked() {
    let app = spawn_app().await;
    let (_, mallory, _) = app.signed_in_user().await;
    let (_, victim, _) = app.signed_in_user().await;
    let list: Value = app.get_auth("/api/v1/auth/sessions", &victim).await.json().await.expect("json");
    let victim_session = list["items"][0]["id"].as_str().expect("id").to_owned();
    let response = app
        .client
        .delete(app.url(&format!("/api/v1/auth/sessions/{victim_session}")))
        .bearer_auth(&mallory)
        .send()
        .await
        .expect("sent");
    assert_problem(response, 404, "not_found").await;
    assert_eq!(status_of(&app, "/api/v1/users/me", &victim).await, 200);
    app.stop().await;
}

#[tokio::test]
async fn password_reset_sets_the_password_and_revokes_every_session() {
    let app = spawn_app().await;
    let (email, access, refresh) = app.signed_in_user().await;
    app.post_json("/api/v1/auth/request-password-reset", &json!({"email": email}), None).await;
    let token = app.token_from_mail(&email, "reset-password").await;

    let weak = app
        .post_json("/api/v1/auth/reset-password", &json!({"token": token, "new_password": "password1234"}), None)
        .await;
    let body = assert_problem(weak, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "new_password");

    let new_password = "a brand new strong pass phrase 9";
    let reset = app
        .post_json("/api/v1/auth/reset-password", &json!({"token": token, "new_password": new_password}), None)
        .await;
    assert_eq!(reset.status(), 204, "a weak attempt does not burn the token");
    assert_eq!(status_of(&app, "/api/v1/users/me", &access).await, 401, "sessions are revoked");
    let refresh = app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": refresh}), None).await;
    assert_eq!(refresh.status(), 401);
    let old = app.post_json("/api/v1/auth/login", &json!({"email": email, "password": PASSWORD}), None).await;
    assert_eq!(old.status(), 401);
    app.login(&email, new_password).await;
    let reuse = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"token": token, "new_password": "yet another strong phrase 3"}),
            None,
        )
        .await;
    assert_problem(reuse, 400, "invalid_token").await;
    app.stop().await;
}

#[tokio::test]
async fn changing_the_password_keeps_this_session_and_ends_the_others() {
    let app = spawn_app().await;
    let (email, current, _) = app.signed_in_user().await;
    let other = app.login(&email, PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    let wrong = app
        .post_json(
            "/api/v1/users/me/password",
            &json!({"current_password": "nope nope nope", "new_password": "fresh strong pass phrase 5"}),
            Some(&current),
        )
        .await;
    let body = assert_problem(wrong, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "current_password");
    let ok = app
        .post_json(
            "/api/v1/users/me/password",
            &json!({"current_password": PASSWORD, "new_password": "fresh strong pass phrase 5"}),
            Some(&current),
        )
        .await;
    assert_eq!(ok.status(), 204);
    assert_eq!(status_of(&app, "/api/v1/users/me", &current).await, 200);
    assert_eq!(status_of(&app, "/api/v1/users/me", &other).await, 401);
    app.login(&email, "fresh strong pass phrase 5").await;
    app.stop().await;
}

#[tokio::test]
async fn the_profile_can_be_read_and_updated() {
    let app = spawn_app().await;
    let (email, access, _) = app.signed_in_user().await;
    let me: Value = app.get_auth("/api/v1/users/me", &access).await.json().await.expect("json");
    assert_eq!(me["email"], email.as_str());
    assert_eq!(me["settings"]["notifications"]["org_activity"], true);

    let patch = |body: Value| app.client.patch(app.url("/api/v1/users/me")).bearer_auth(&access).json(&body).send();
    let updated: Value =
        patch(json!({"display_name": "Ann", "settings": {"time_zone": "Europe/Paris", "locale": "fr-FR"}}))
            .await
            .expect("sent")
            .json()
            .await
            .expect("json");
    assert_eq!(updated["display_name"], "Ann");
    assert_eq!(updated["settings"]["time_zone"], "Europe/Paris");
    let kept: Value = patch(json!({})).await.expect("sent").json().await.expect("json");
    assert_eq!(kept["display_name"], "Ann", "absent fields are left alone");
    let cleared: Value = patch(json!({"display_name": null})).await.expect("sent").json().await.expect("json");
    assert_eq!(cleared["display_name"], Value::Null);
    let bad = patch(json!({"settings": {"time_zone": "Mars/Olympus Mons"}})).await.expect("sent");
    let body = assert_problem(bad, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "settings");
    let unknown = patch(json!({"is_admin": true})).await.expect("sent");
    assert_problem(unknown, 422, "validation_failed").await;
    app.stop().await;
}

#[tokio::test]
async fn unverified_accounts_cannot_sign_in_when_the_deployment_requires_it() {
    let app = spawn_app_with(&[("TENANTRY_REQUIRE_VERIFIED_EMAIL", "true")]).await;
    let email = app.register().await;
    let refused = app.post_json("/api/v1/auth/login", &json!({"email": email, "password": PASSWORD}), None).await;
    assert_problem(refused, 403, "email_not_verified").await;
    let token = app.token_from_mail(&email, "verify-email").await;
    assert_eq!(app.post_json("/api/v1/auth/verify-email", &json!({"token": token}), None).await.status(), 204);
    app.login(&email, PASSWORD).await;
    app.stop().await;
}

#[tokio::test]
async fn the_jwks_publishes_the_key_that_signs_access_tokens() {
    let app = spawn_app().await;
    let (_, access, _) = app.signed_in_user().await;
    let jwks: Value = app.get("/.well-known/jwks.json").await.json().await.expect("json");
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    let header = access.split('.').next().expect("header");
    let header = decode_base64url(header);
    let header: Value = serde_json::from_slice(&header).expect("json header");
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], key["kid"]);
    app.stop().await;
}

fn decode_base64url(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0_u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in text.bytes() {
        let value = u32::try_from(ALPHABET.iter().position(|a| *a == c).expect("base64url")).expect("small");
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push(u8::try_from((bits >> count) & 0xff).expect("byte"));
        }
    }
    out
}

/// The TOTP code for `secret_base32` at `unix_time` (RFC 6238, SHA-1, 6 digits, 30 s).
fn totp(secret_base32: &str, unix_time: i64) -> String {
    let secret = totp_rs::Secret::Encoded(secret_base32.to_owned()).to_bytes().expect("base32 secret");
    let totp = totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret, None, "test".to_owned()).expect("totp");
    totp.generate(u64::try_from(unix_time).expect("positive"))
}

async fn login_with_code(app: &TestApp, email: &str, code: &str) -> reqwest::Response {
    app.post_json("/api/v1/auth/login", &json!({"email": email, "password": PASSWORD, "totp_code": code}), None).await
}

#[tokio::test]
async fn two_factor_sign_in_requires_a_fresh_code_or_a_backup_code() {
    let (app, clock) = spawn_app_with_manual_clock(&[]).await;
    let (email, access, _) = app.signed_in_user().await;

    let setup = app.post_json("/api/v1/auth/2fa/setup", &json!({}), Some(&access)).await;
    assert_eq!(setup.status(), 200);
    let setup: Value = setup.json().await.expect("json");
    let secret = setup["secret"].as_str().expect("secret").to_owned();
    assert!(setup["otpauth_url"].as_str().expect("url").starts_with("otpauth://totp/"));
    assert!(setup["qr_png_base64"].as_str().expect("qr").starts_with("iVBORw0KGgo"));

    let wrong = app.post_json("/api/v1/auth/2fa/enable", &json!({"code": "000000"}), Some(&access)).await;
    let body = assert_problem(wrong, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "code");
    let now = clock_now(&clock);
    let enable = app.post_json("/api/v1/auth/2fa/enable", &json!({"code": totp(&secret, now)}), Some(&access)).await;
    assert_eq!(enable.status(), 200);
    let codes: Vec<String> = enable.json::<Value>().await.expect("json")["backup_codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let me: Value = app.get_auth("/api/v1/users/me", &access).await.json().await.expect("json");
    assert_eq!(me["two_factor_enabled"], true);

    // Password alone is not enough any more.
    let no_code = app.post_json("/api/v1/auth/login", &json!({"email": email, "password": PASSWORD}), None).await;
    assert_problem(no_code, 401, "mfa_required").await;
    // The code used to enable is spent: its step cannot be replayed.
    assert_problem(login_with_code(&app, &email, &totp(&secret, now)).await, 401, "mfa_required").await;

    clock.advance(chrono::Duration::seconds(30));
    let fresh = totp(&secret, clock_now(&clock));
    assert_eq!(login_with_code(&app, &email, &fresh).await.status(), 200);
    assert_problem(login_with_code(&app, &email, &fresh).await, 401, "mfa_required").await;

    // A backup code works once, in any case.
    assert_eq!(login_with_code(&app, &email, &codes[0].to_uppercase()).await.status(), 200);
    assert_problem(login_with_code(&app, &email, &codes[0]).await, 401, "mfa_required").await;

    // A wrong password with a valid code is still a plain credentials failure.
    let wrong_password = app
        .post_json(
            "/api/v1/auth/login",
            &json!({"email": email, "password": "not it at all", "totp_code": codes[1]}),
            None,
        )
        .await;
    assert_problem(wrong_password, 401, "unauthorized").await;
    app.stop().await;
}

#[tokio::test]
async fn two_factor_is_disabled_only_with_password_and_code() {
    let (app, clock) = spawn_app_with_manual_clock(&[]).await;
    let (email, access, _) = app.signed_in_user().await;
    let setup: Value =
        app.post_json("/api/v1/auth/2fa/setup", &json!({}), Some(&access)).await.json().await.expect("json");
    let secret = setup["secret"].as_str().expect("secret").to_owned();
    let enable = app
        .post_json("/api/v1/auth/2fa/enable", &json!({"code": totp(&secret, clock_now(&clock))}), Some(&access))
        .await;
    assert_eq!(enable.status(), 200);
    let again = app.post_json("/api/v1/auth/2fa/setup", &json!({}), Some(&access)).await;
    assert_problem(again, 422, "validation_failed").await;

    clock.advance(chrono::Duration::seconds(30));
    let code = totp(&secret, clock_now(&clock));
    let bad_password = app
        .post_json("/api/v1/auth/2fa/disable", &json!({"password": "nope nope nope", "code": code}), Some(&access))
        .await;
    let body = assert_problem(bad_password, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "password");
    let bad_code = app
        .post_json("/api/v1/auth/2fa/disable", &json!({"password": PASSWORD, "code": "123456"}), Some(&access))
        .await;
    assert_problem(bad_code, 422, "validation_failed").await;
    let ok =
        app.post_json("/api/v1/auth/2fa/disable", &json!({"password": PASSWORD, "code": code}), Some(&access)).await;
    assert_eq!(ok.status(), 204);
    app.login(&email, PASSWORD).await;
    app.stop().await;
}

#[tokio::test]
async fn totp_secrets_are_encrypted_at_rest() {
    let (app, _clock) = spawn_app_with_manual_clock(&[]).await;
    let (_, access, _) = app.signed_in_user().await;
    let setup: Value =
        app.post_json("/api/v1/auth/2fa/setup", &json!({}), Some(&access)).await.json().await.expect("json");
    let secret = setup["secret"].as_str().expect("secret").to_owned();
    let stored =
        app.raw_query_strings("SELECT totp_pending_secret FROM users WHERE totp_pending_secret IS NOT NULL").await;
    assert_eq!(stored.len(), 1);
    assert!(stored[0].starts_with("v1."), "sealed format: {}", stored[0]);
    assert!(!stored[0].contains(&secret), "the base32 secret must not be stored in clear");
    app.stop().await;
}

fn clock_now(clock: &tenantry_tests::ManualClock) -> i64 {
    use tenantry_tests::Clock as _;
    clock.now().timestamp()
}

#[tokio::test]
async fn the_export_holds_every_row_about_the_user_and_no_secret() {
    let app = spawn_app().await;
    let (email, access, _) = app.signed_in_user().await;
    let second = app.login(&email, PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    assert_eq!(app.post_json("/api/v1/auth/logout", &json!({}), Some(&second)).await.status(), 204);
    app.post_json("/api/v1/auth/request-password-reset", &json!({"email": email}), None).await;
    // The reset token is issued (with its mail, in one transaction) after the 202: wait for it.
    app.deliver_mail().await;

    let response = app.get_auth("/api/v1/users/me/export", &access).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-disposition"].to_str().expect("ascii").starts_with("attachment"));
    let text = response.text().await.expect("body");
    let export: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(export["user"]["email"], email.as_str());
    let sessions = export["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["revoked_at"].is_null()).count(), 1);
    let purposes: Vec<&str> = export["emailed_tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .map(|t| t["purpose"].as_str().expect("purpose"))
        .collect();
    assert_eq!(purposes, vec!["email_verification", "password_reset"]);
    for secret_marker in ["argon2", "password_hash", "token_hash", "v1."] {
        assert!(!text.contains(secret_marker), "the export leaks {secret_marker}: {text}");
    }
    app.stop().await;
}

#[tokio::test]
async fn deleting_the_account_needs_the_password_and_removes_everything() {
    let app = spawn_app().await;
    let (email, access, refresh) = app.signed_in_user().await;
    let delete = |body: Value| app.client.delete(app.url("/api/v1/users/me")).bearer_auth(&access).json(&body).send();
    let wrong = delete(json!({"password": "not my password"})).await.expect("sent");
    let body = assert_problem(wrong, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "password");
    assert_eq!(delete(json!({"password": PASSWORD})).await.expect("sent").status(), 204);

    assert_eq!(status_of(&app, "/api/v1/users/me", &access).await, 401, "its sessions end at once");
    assert_eq!(app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": refresh}), None).await.status(), 401);
    let login = app.post_json("/api/v1/auth/login", &json!({"email": email, "password": PASSWORD}), None).await;
    assert_problem(login, 401, "unauthorized").await;
    let left = app.raw_query_strings(&format!("SELECT email FROM users WHERE email = '{email}'")).await;
    assert!(left.is_empty(), "no personal row stays behind");
    let again = app.post_json("/api/v1/auth/register", &json!({"email": email, "password": PASSWORD}), None).await;
    assert_eq!(again.status(), 201, "the address is free again");
    app.stop().await;
}

#[tokio::test]
async fn parallel_guesses_cannot_outrun_the_lockout() {
    let app = spawn_app_with(&[("TENANTRY_LOGIN_MAX_FAILURES", "3")]).await;
    let email = app.register().await;
    let body = json!({"email": email, "password": "a wrong guess entirely"});
    let attempts = (0..20).map(|_| app.post_json("/api/v1/auth/login", &body, None));
    let statuses: Vec<u16> = join_all(attempts).await.into_iter().map(|r| r.status().as_u16()).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(checked <= 3, "only 3 guesses may reach the password check: {statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 20 - checked, "{statuses:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_used_reset_link_voids_the_other_links_sent_before() {
    let (app, clock) = spawn_app_with_manual_clock(&[]).await;
    let email = app.register().await;
    app.post_json("/api/v1/auth/request-password-reset", &json!({"email": email}), None).await;
    let first = app.token_from_mail(&email, "reset-password").await;
    clock.advance(chrono::Duration::seconds(61));
    app.post_json("/api/v1/auth/request-password-reset", &json!({"email": email}), None).await;
    let second = app.token_from_mail(&email, "reset-password").await;
    assert_ne!(first, second);
    let used = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"token": second, "new_password": "the newest strong phrase 1"}),
            None,
        )
        .await;
    assert_eq!(used.status(), 204);
    let stale = app
        .post_json(
            "/api/v1/auth/reset-password",
            &json!({"token": first, "new_password": "an attackers strong phrase 2"}),
            None,
        )
        .await;
    assert_problem(stale, 400, "invalid_token").await;
    app.stop().await;
}
