//! Platform administration over real HTTP.

use serde_json::{Value, json};
use tenantry_tests::{PASSWORD, assert_problem, spawn_app};

#[tokio::test]
async fn only_platform_admins_reach_the_admin_routes() {
    let app = spawn_app().await;
    let (_, user, _) = app.signed_in_user().await;
    for path in ["/api/v1/admin/orgs", "/api/v1/admin/users"] {
        assert_problem(app.get_auth(path, &user).await, 403, "forbidden").await;
        assert_problem(app.get(path).await, 401, "unauthorized").await;
    }
    let me: Value = app.get_auth("/api/v1/users/me", &user).await.json().await.expect("json");
    let id = me["id"].as_str().expect("id");
    let disable = app.post_json(&format!("/api/v1/admin/users/{id}/disable"), &json!({}), Some(&user)).await;
    assert_problem(disable, 403, "forbidden").await;
    app.stop().await;
}

#[tokio::test]
async fn admins_list_everything_with_cursors() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for _ in 0..3 {
        let (_, access, _) = app.signed_in_user().await;
        app.create_org(&access).await;
    }
    let mut seen = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/admin/orgs?limit=2&cursor={c}"),
            None => "/api/v1/admin/orgs?limit=2".to_owned(),
        };
        let page: Value = app.get_auth(&path, &admin).await.json().await.expect("json");
        seen += page["items"].as_array().expect("items").len();
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, 3);
    let users: Value = app.get_auth("/api/v1/admin/users?limit=100", &admin).await.json().await.expect("json");
    let items = users["items"].as_array().expect("items");
    assert_eq!(items.len(), 4, "the admin and three users");
    assert!(items.iter().any(|u| u["is_admin"] == true));
    assert!(items.iter().all(|u| u.get("password_hash").is_none()));
    app.stop().await;
}

#[tokio::test]
async fn a_disabled_account_loses_every_session_and_cannot_sign_in_until_enabled() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (email, access, refresh) = app.signed_in_user().await;
    let me: Value = app.get_auth("/api/v1/users/me", &access).await.json().await.expect("json");
    let id = me["id"].as_str().expect("id").to_owned();

    assert_eq!(
        app.post_json(&format!("/api/v1/admin/users/{id}/disable"), &json!({}), Some(&admin)).await.status(),
        204
    );
    assert_problem(app.get_auth("/api/v1/users/me", &access).await, 401, "unauthorized").await;
    assert_eq!(app.post_json("/api/v1/auth/refresh", &json!({"refresh_token": refresh}), None).await.status(), 401);
    let login = app.post_json("/api/v1/auth/login", &json!({"email": email, "password": PASSWORD}), None).await;
    assert_problem(login, 403, "account_disabled").await;

    assert_eq!(
        app.post_json(&format!("/api/v1/admin/users/{id}/enable"), &json!({}), Some(&admin)).await.status(),
        204
    );
    app.login(&email, PASSWORD).await;

    let missing = uuid::Uuid::now_v7();
    assert_problem(
        app.post_json(&format!("/api/v1/admin/users/{missing}/disable"), &json!({}), Some(&admin)).await,
        404,
        "not_found",
    )
    .await;
    let admin_me: Value = app.get_auth("/api/v1/users/me", &admin).await.json().await.expect("json");
    let own = admin_me["id"].as_str().expect("id");
    assert_problem(
        app.post_json(&format!("/api/v1/admin/users/{own}/disable"), &json!({}), Some(&admin)).await,
        422,
        "validation_failed",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn disabling_a_user_revokes_their_keys_and_records_it_in_each_orgs_audit_log() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let admin_id: Value = app.get_auth("/api/v1/users/me", &admin).await.json().await.expect("json");
    let (creator_id, creator) = app.user().await;
    let orgs = [app.create_org(&creator).await, app.create_org(&creator).await];
    let mut keys = Vec::new();
    for org in &orgs {
        let key: Value = app
            .post_json(
                &format!("/api/v1/orgs/{org}/api-keys"),
                &json!({"name": "ci", "permissions": ["org:read"]}),
                Some(&creator),
            )
            .await
            .json()
            .await
            .expect("json");
        keys.push(key);
    }
    let disabled = app.post_json(&format!("/api/v1/admin/users/{creator_id}/disable"), &json!({}), Some(&admin)).await;
    assert_eq!(disabled.status(), 204);
    for (org, key) in orgs.iter().zip(&keys) {
        let secret = key["key"].as_str().expect("key");
        let refused = app.send("GET", &format!("/api/v1/orgs/{org}"), ("x-api-key", secret), None).await;
        assert_problem(refused, 401, "unauthorized").await;
        // The admin joins to read the log (the creator is disabled).
        let admin_id = admin_id["id"].as_str().expect("id");
        app.add_member(org, admin_id, "admin").await;
        let log: Value = app
            .get_auth(&format!("/api/v1/orgs/{org}/audit-log?action=api_key.revoked"), &admin)
            .await
            .json()
            .await
            .expect("json");
        let items = log["items"].as_array().expect("items");
        assert_eq!(items.len(), 1, "one entry per revoked key: {log}");
        assert_eq!(items[0]["target_id"], key["id"]);
        assert_eq!(items[0]["actor_id"], admin_id, "the admin acted");
        assert_eq!(items[0]["data"]["reason"], "creator_disabled");
        let verified: Value =
            app.get_auth(&format!("/api/v1/orgs/{org}/audit-log/verify"), &admin).await.json().await.expect("json");
        assert_eq!(verified["valid"], true);
    }
    app.stop().await;
}
