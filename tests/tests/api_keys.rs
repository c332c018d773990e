//! Org-scoped API keys over real HTTP (the API-key half of the cross-tenant matrix is in
//! `isolation.rs`).

use serde_json::{Value, json};
use tenantry_ports::Clock;
use tenantry_tests::{TestApp, assert_problem, spawn_app, spawn_app_with_manual_clock};

async fn create_key(app: &TestApp, org: &str, access: &str, permissions: Value) -> Value {
    let response = app
        .post_json(
            &format!("/api/v1/orgs/{org}/api-keys"),
            &json!({"name": "ci", "permissions": permissions}),
            Some(access),
        )
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap_or_default());
    response.json().await.expect("json")
}

async fn with_key(app: &TestApp, method: &str, path: &str, key: &str, body: Option<Value>) -> reqwest::Response {
    app.send(method, path, ("x-api-key", key), body).await
}

#[tokio::test]
async fn a_key_acts_only_in_its_org_and_only_with_its_permissions() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let other_org = app.create_org(&owner).await;
    let created = create_key(&app, &org, &owner, json!(["org:read", "members:read"])).await;
    let key = created["key"].as_str().expect("key").to_owned();
    assert!(key.starts_with("tk_") && key.len() > 60, "{key}");
    assert!(key.starts_with(created["prefix"].as_str().expect("prefix")));

    let listed: Value = app.get_auth(&format!("/api/v1/orgs/{org}/api-keys"), &owner).await.json().await.expect("json");
    assert_eq!(listed["items"][0]["id"], created["id"]);
    assert!(!listed.to_string().contains(&key[20..]), "the secret is never listed");

    assert_eq!(with_key(&app, "GET", &format!("/api/v1/orgs/{org}"), &key, None).await.status(), 200);
    assert_eq!(app.get_auth(&format!("/api/v1/orgs/{org}/members"), &key).await.status(), 200, "bearer works too");
    let rename = with_key(&app, "PATCH", &format!("/api/v1/orgs/{org}"), &key, Some(json!({"name": "x"}))).await;
    let body = assert_problem(rename, 403, "forbidden").await;
    assert_eq!(body["required_permission"], "org:update");
    let me: Value =
        with_key(&app, "GET", &format!("/api/v1/orgs/{org}/me"), &key, None).await.json().await.expect("json");
    assert_eq!(me["permissions"], json!(["org:read", "members:read"]));
    assert_problem(with_key(&app, "GET", &format!("/api/v1/orgs/{other_org}"), &key, None).await, 404, "not_found")
        .await;
    assert_problem(app.get_auth("/api/v1/users/me", &key).await, 401, "unauthorized").await;
    assert_problem(
        app.post_json("/api/v1/orgs", &json!({"name": "n", "slug": "via-key"}), Some(&key)).await,
        401,
        "unauthorized",
    )
    .await;
    let mut forged = key.clone();
    forged.pop();
    forged.push(if key.ends_with('A') { 'B' } else { 'A' });
    assert_problem(with_key(&app, "GET", &format!("/api/v1/orgs/{org}"), &forged, None).await, 401, "unauthorized")
        .await;
    app.stop().await;
}

#[tokio::test]
async fn keys_never_exceed_their_creators_permissions() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let path = format!("/api/v1/orgs/{org}/api-keys");
    let admin_key = create_key(&app, &org, &owner, json!(["api_keys:manage", "org:read"])).await["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let escalate =
        with_key(&app, "POST", &path, &admin_key, Some(json!({"name": "x", "permissions": ["org:delete"]}))).await;
    assert_problem(escalate, 403, "forbidden").await;
    let ok = with_key(&app, "POST", &path, &admin_key, Some(json!({"name": "y", "permissions": ["org:read"]}))).await;
    assert_eq!(ok.status(), 201, "a key may mint narrower keys");
    let unknown = app.post_json(&path, &json!({"name": "z", "permissions": ["org:fly"]}), Some(&owner)).await;
    assert_problem(unknown, 422, "validation_failed").await;
    let past = app
        .post_json(&path, &json!({"name": "z", "permissions": [], "expires_at": "2000-01-01T00:00:00Z"}), Some(&owner))
        .await;
    assert_problem(past, 422, "validation_failed").await;
    app.stop().await;
}

#[tokio::test]
async fn revoked_rotated_and_expired_keys_stop_working() {
    let (app, clock) = spawn_app_with_manual_clock(&[]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let read = format!("/api/v1/orgs/{org}");

    let revoked = create_key(&app, &org, &owner, json!(["org:read"])).await;
    let revoked_key = revoked["key"].as_str().expect("key").to_owned();
    let delete = app
        .client
        .delete(app.url(&format!("/api/v1/orgs/{org}/api-keys/{}", revoked["id"].as_str().expect("id"))))
        .bearer_auth(&owner)
        .send()
        .await
        .expect("sent");
    assert_eq!(delete.status(), 204);
    assert_problem(with_key(&app, "GET", &read, &revoked_key, None).await, 401, "unauthorized").await;

    let old = create_key(&app, &org, &owner, json!(["org:read"])).await;
    let old_key = old["key"].as_str().expect("key").to_owned();
    let rotate_path = format!("/api/v1/orgs/{org}/api-keys/{}/rotate", old["id"].as_str().expect("id"));
    let rotated = app.post_json(&rotate_path, &json!({"grace_seconds": 600}), Some(&owner)).await;
    assert_eq!(rotated.status(), 201);
    let new_key = rotated.json::<Value>().await.expect("json")["key"].as_str().expect("key").to_owned();
    assert_ne!(new_key, old_key);
    assert_eq!(with_key(&app, "GET", &read, &old_key, None).await.status(), 200, "the old key works during the grace");
    assert_eq!(with_key(&app, "GET", &read, &new_key, None).await.status(), 200);
    clock.advance(chrono::Duration::seconds(601));
    assert_problem(with_key(&app, "GET", &read, &old_key, None).await, 401, "unauthorized").await;
    assert_eq!(with_key(&app, "GET", &read, &new_key, None).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn rotation_never_lengthens_the_old_keys_life_even_when_repeated() {
    let (app, clock) = spawn_app_with_manual_clock(&[]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let read = format!("/api/v1/orgs/{org}");
    let expires = (clock.now() + chrono::Duration::hours(1)).to_rfc3339();
    let created = app
        .post_json(
            &format!("/api/v1/orgs/{org}/api-keys"),
            &json!({"name": "short", "permissions": ["org:read"], "expires_at": expires}),
            Some(&owner),
        )
        .await;
    assert_eq!(created.status(), 201);
    let old: Value = created.json().await.expect("json");
    let old_key = old["key"].as_str().expect("key").to_owned();
    let rotate = format!("/api/v1/orgs/{org}/api-keys/{}/rotate", old["id"].as_str().expect("id"));
    // A 30-day grace on a key that ends in an hour, twice: it still ends in an hour.
    for _ in 0..2 {
        let rotated = app.post_json(&rotate, &json!({"grace_seconds": 30 * 24 * 3600}), Some(&owner)).await;
        assert_eq!(rotated.status(), 201);
    }
    assert_eq!(with_key(&app, "GET", &read, &old_key, None).await.status(), 200);
    clock.advance(chrono::Duration::minutes(61));
    assert_problem(with_key(&app, "GET", &read, &old_key, None).await, 401, "unauthorized").await;
    app.stop().await;
}

#[tokio::test]
async fn a_key_past_its_expiry_is_refused() {
    let (app, clock) = spawn_app_with_manual_clock(&[]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let expires = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let created = app
        .post_json(
            &format!("/api/v1/orgs/{org}/api-keys"),
            &json!({"name": "temp", "permissions": ["org:read"], "expires_at": expires}),
            Some(&owner),
        )
        .await;
    assert_eq!(created.status(), 201);
    let key = created.json::<Value>().await.expect("json")["key"].as_str().expect("key").to_owned();
    assert_eq!(with_key(&app, "GET", &format!("/api/v1/orgs/{org}"), &key, None).await.status(), 200);
    clock.advance(chrono::Duration::hours(2));
    assert_problem(with_key(&app, "GET", &format!("/api/v1/orgs/{org}"), &key, None).await, 401, "unauthorized").await;
    app.stop().await;
}

#[tokio::test]
async fn disabling_a_user_revokes_the_keys_they_created() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (owner_id, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let key = create_key(&app, &org, &owner, json!(["org:read"])).await["key"].as_str().expect("key").to_owned();
    assert_eq!(
        app.post_json(&format!("/api/v1/admin/users/{owner_id}/disable"), &json!({}), Some(&admin)).await.status(),
        204
    );
    assert_problem(with_key(&app, "GET", &format!("/api/v1/orgs/{org}"), &key, None).await, 401, "unauthorized").await;
    app.stop().await;
}

#[tokio::test]
async fn rotating_a_key_never_grants_what_the_rotator_lacks() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (admin_id, admin) = app.user().await;
    app.add_member(&org, &admin_id, "admin").await;
    let strong = create_key(&app, &org, &owner, json!(["org:read", "org:delete"])).await;
    let rotate = format!("/api/v1/orgs/{org}/api-keys/{}/rotate", strong["id"].as_str().expect("id"));
    assert_problem(app.post_json(&rotate, &json!({}), Some(&admin)).await, 403, "forbidden").await;
    let weak = create_key(&app, &org, &owner, json!(["org:read"])).await;
    let rotate = format!("/api/v1/orgs/{org}/api-keys/{}/rotate", weak["id"].as_str().expect("id"));
    assert_eq!(app.post_json(&rotate, &json!({}), Some(&admin)).await.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn a_key_shrinks_with_its_creators_role_and_stops_when_they_leave() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (admin_id, admin) = app.user().await;
    app.add_member(&org, &admin_id, "admin").await;
    let key = create_key(&app, &org, &admin, json!(["org:read", "org:update"])).await["key"]
        .as_str()
        .expect("key")
        .to_owned();
    let rename = |name: &'static str| {
        let (app, org, key) = (&app, org.clone(), key.clone());
        async move { with_key(app, "PATCH", &format!("/api/v1/orgs/{org}"), &key, Some(json!({"name": name}))).await }
    };
    assert_eq!(rename("by key").await.status(), 200);

    let member = format!("/api/v1/orgs/{org}/members/{admin_id}");
    let demote = app.client.patch(app.url(&member)).bearer_auth(&owner).json(&json!({"role": "viewer"})).send().await;
    assert_eq!(demote.expect("sent").status(), 200);
    assert_problem(rename("after demotion").await, 403, "forbidden").await;
    let me: Value =
        with_key(&app, "GET", &format!("/api/v1/orgs/{org}/me"), &key, None).await.json().await.expect("json");
    assert_eq!(me["permissions"], json!(["org:read"]));

    let remove = app.client.delete(app.url(&member)).bearer_auth(&owner).send().await.expect("sent");
    assert_eq!(remove.status(), 204);
    assert_problem(with_key(&app, "GET", &format!("/api/v1/orgs/{org}"), &key, None).await, 401, "unauthorized").await;
    app.stop().await;
}
