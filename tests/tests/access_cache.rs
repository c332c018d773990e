//! Cached access decisions never outlive the change that voids them: each case first warms the
//! cache with a successful request, then changes something, then expects the very next request
//! to see the change.

use serde_json::{Value, json};
use tenantry_tests::{TestApp, assert_problem, spawn_app};

async fn status(app: &TestApp, method: &str, path: &str, credential: (&str, &str), body: Option<Value>) -> u16 {
    app.send(method, path, credential, body).await.status().as_u16()
}

#[tokio::test]
async fn role_changes_and_removal_apply_to_the_next_request() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (member_id, member) = app.user().await;
    app.add_member(&org, &member_id, "admin").await;
    let bearer = format!("Bearer {member}");
    let owner_bearer = format!("Bearer {owner}");
    let teams = format!("/api/v1/orgs/{org}/teams");
    let member_path = format!("/api/v1/orgs/{org}/members/{member_id}");
    for _ in 0..3 {
        assert_eq!(
            status(&app, "GET", &format!("/api/v1/orgs/{org}/members"), ("authorization", &bearer), None).await,
            200
        );
    }
    assert_eq!(status(&app, "POST", &teams, ("authorization", &bearer), Some(json!({"name": "a"}))).await, 201);

    let demoted =
        status(&app, "PATCH", &member_path, ("authorization", &owner_bearer), Some(json!({"role": "viewer"})));
    assert_eq!(demoted.await, 200);
    let refused = app.send("POST", &teams, ("authorization", &bearer), Some(json!({"name": "b"}))).await;
    assert_problem(refused, 403, "forbidden").await;
    let me: Value = app.get_auth(&format!("/api/v1/orgs/{org}/me"), &member).await.json().await.expect("json");
    assert_eq!(me["role"], "viewer");

    // The member list itself shows the new role at once.
    let members: Value = app.get_auth(&format!("/api/v1/orgs/{org}/members"), &owner).await.json().await.expect("json");
    let listed =
        members["items"].as_array().expect("items").iter().find(|m| m["user_id"] == member_id.as_str()).cloned();
    assert_eq!(listed.expect("listed")["role"], "viewer");

    assert_eq!(status(&app, "DELETE", &member_path, ("authorization", &owner_bearer), None).await, 204);
    assert_problem(app.get_auth(&format!("/api/v1/orgs/{org}/members"), &member).await, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn a_custom_roles_new_permissions_apply_to_its_holders_and_their_keys_at_once() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let role: Value = app
        .post_json(
            &format!("/api/v1/orgs/{org}/roles"),
            &json!({"name": "readers", "permissions": ["members:read", "api_keys:manage"]}),
            Some(&owner),
        )
        .await
        .json()
        .await
        .expect("json");
    let (holder_id, holder) = app.user().await;
    app.add_member(&org, &holder_id, "readers").await;
    let key: Value = app
        .post_json(
            &format!("/api/v1/orgs/{org}/api-keys"),
            &json!({"name": "k", "permissions": ["members:read"]}),
            Some(&holder),
        )
        .await
        .json()
        .await
        .expect("json");
    let key = key["key"].as_str().expect("key").to_owned();
    let members = format!("/api/v1/orgs/{org}/members");
    assert_eq!(status(&app, "GET", &members, ("authorization", &format!("Bearer {holder}")), None).await, 200);
    assert_eq!(status(&app, "GET", &members, ("x-api-key", &key), None).await, 200);

    let role_path = format!("/api/v1/orgs/{org}/roles/{}", role["id"].as_str().expect("id"));
    let owner_bearer = format!("Bearer {owner}");
    let changed =
        status(&app, "PATCH", &role_path, ("authorization", &owner_bearer), Some(json!({"permissions": ["org:read"]})));
    assert_eq!(changed.await, 200);
    assert_problem(app.get_auth(&members, &holder).await, 403, "forbidden").await;
    assert_problem(app.send("GET", &members, ("x-api-key", &key), None).await, 403, "forbidden").await;
    app.stop().await;
}

#[tokio::test]
async fn revoking_rotating_and_disabling_stop_a_warm_key_at_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let (creator_id, creator) = app.user().await;
    let org = app.create_org(&creator).await;
    let members = format!("/api/v1/orgs/{org}/members");
    let mint = |permissions: Value| {
        let app = &app;
        let org = org.clone();
        let creator = creator.clone();
        async move {
            let key: Value = app
                .post_json(
                    &format!("/api/v1/orgs/{org}/api-keys"),
                    &json!({"name": "k", "permissions": permissions}),
                    Some(&creator),
                )
                .await
                .json()
                .await
                .expect("json");
            (key["id"].as_str().expect("id").to_owned(), key["key"].as_str().expect("key").to_owned())
        }
    };

    let (revoked_id, revoked) = mint(json!(["members:read"])).await;
    assert_eq!(status(&app, "GET", &members, ("x-api-key", &revoked), None).await, 200);
    let path = format!("/api/v1/orgs/{org}/api-keys/{revoked_id}");
    assert_eq!(status(&app, "DELETE", &path, ("authorization", &format!("Bearer {creator}")), None).await, 204);
    assert_problem(app.send("GET", &members, ("x-api-key", &revoked), None).await, 401, "unauthorized").await;

    let (rotated_id, rotated) = mint(json!(["members:read"])).await;
    assert_eq!(status(&app, "GET", &members, ("x-api-key", &rotated), None).await, 200);
    let path = format!("/api/v1/orgs/{org}/api-keys/{rotated_id}/rotate");
    let creator_bearer = format!("Bearer {creator}");
    let rotation = status(&app, "POST", &path, ("authorization", &creator_bearer), Some(json!({"grace_seconds": 0})));
    assert_eq!(rotation.await, 201);
    assert_problem(app.send("GET", &members, ("x-api-key", &rotated), None).await, 401, "unauthorized").await;

    let (_, disabled) = mint(json!(["members:read"])).await;
    assert_eq!(status(&app, "GET", &members, ("x-api-key", &disabled), None).await, 200);
    let path = format!("/api/v1/admin/users/{creator_id}/disable");
    assert_eq!(status(&app, "POST", &path, ("authorization", &format!("Bearer {admin}")), None).await, 204);
    assert_problem(app.send("GET", &members, ("x-api-key", &disabled), None).await, 401, "unauthorized").await;
    app.stop().await;
}
