//! The cross-tenant matrix, driven by the OpenAPI document so a new org route cannot be left
//! out: a member of org B (with a session) and an API key of org B (with every permission) get
//! 404 from every method of every `/api/v1/orgs/{org_id}…` route of org A, with real ids of
//! org A's sub-resources, and org A's audit log proves nothing changed.

use serde_json::{Value, json};
use tenantry_tests::{TestApp, assert_problem, spawn_app};

async fn created(app: &TestApp, path: &str, access: &str, body: Value) -> Value {
    let response = app.post_json(path, &body, Some(access)).await;
    assert_eq!(response.status(), 201, "{path}: {}", response.text().await.unwrap_or_default());
    response.json().await.expect("json")
}

/// A body that would be valid for the route, so a 404 cannot come from validation.
fn body_for(method: &str, template: &str) -> Option<Value> {
    let body = match (method, template) {
        ("PATCH", "/api/v1/orgs/{org_id}") => json!({"name": "pwned"}),
        ("POST", "/api/v1/orgs/{org_id}/api-keys") => json!({"name": "k", "permissions": ["org:read"]}),
        ("POST", "/api/v1/orgs/{org_id}/api-keys/{key_id}/rotate") => json!({}),
        ("POST", "/api/v1/orgs/{org_id}/invitations") => json!({"email": "x@example.com", "role": "member"}),
        ("PATCH", "/api/v1/orgs/{org_id}/members/{user_id}") => json!({"role": "viewer"}),
        ("POST", "/api/v1/orgs/{org_id}/roles") => json!({"name": "r2-x", "permissions": ["org:read"]}),
        ("PATCH", "/api/v1/orgs/{org_id}/roles/{role_id}") => json!({"name": "r3-x"}),
        ("POST", "/api/v1/orgs/{org_id}/teams") => json!({"name": "t2"}),
        ("PATCH", "/api/v1/orgs/{org_id}/teams/{team_id}") => json!({"name": "t3"}),
        ("POST", "/api/v1/orgs/{org_id}/webhooks") => json!({"url": "https://x.example.com/in", "events": []}),
        ("POST", "/api/v1/orgs/{org_id}/files/presign-upload") => {
            json!({"name": "a.txt", "size": 1, "content_type": "text/plain"})
        }
        ("GET" | "DELETE" | "PUT", _) => return None,
        _ => json!({}),
    };
    Some(body)
}

#[tokio::test]
async fn another_tenants_member_and_key_get_404_from_every_org_route() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (member_id, _) = app.user().await;
    app.add_member(&org, &member_id, "member").await;
    let base = format!("/api/v1/orgs/{org}");
    let team = created(&app, &format!("{base}/teams"), &owner, json!({"name": "t"})).await;
    let role =
        created(&app, &format!("{base}/roles"), &owner, json!({"name": "auditors", "permissions": ["org:read"]})).await;
    let invitation =
        created(&app, &format!("{base}/invitations"), &owner, json!({"email": "i@example.com", "role": "viewer"}))
            .await;
    let key =
        created(&app, &format!("{base}/api-keys"), &owner, json!({"name": "a", "permissions": ["org:read"]})).await;
    let hook =
        created(&app, &format!("{base}/webhooks"), &owner, json!({"url": "https://hooks.invalid/in", "events": []}))
            .await;
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    let queued = app
        .post_json(&format!("{base}/webhooks/{hook_id}/test"), &json!({}), Some(&owner))
        .await
        .json::<Value>()
        .await
        .expect("json");
    let delivery_id = queued["delivery_id"].as_str().expect("id").to_owned();
    let file_id = app.uploaded_file(&org, &owner, "a.txt").await;
    let ids = [
        ("{org_id}", org.clone()),
        ("{team_id}", team["id"].as_str().expect("id").to_owned()),
        ("{role_id}", role["id"].as_str().expect("id").to_owned()),
        ("{invitation_id}", invitation["id"].as_str().expect("id").to_owned()),
        ("{key_id}", key["id"].as_str().expect("id").to_owned()),
        ("{webhook_id}", hook_id),
        ("{delivery_id}", delivery_id),
        ("{file_id}", file_id.clone()),
        ("{user_id}", member_id.clone()),
    ];
    let before: Value = app.get_auth(&format!("{base}/audit-log/verify"), &owner).await.json().await.expect("json");

    // Org B: its owner, and a key of B holding every permission of the catalog.
    let (_, outsider) = app.user().await;
    let other = app.create_org(&outsider).await;
    let catalog: Value = app.get("/api/v1/permissions").await.json().await.expect("json");
    let everything: Vec<Value> =
        catalog["permissions"].as_array().expect("permissions").iter().map(|p| p["name"].clone()).collect();
    let other_key = created(
        &app,
        &format!("/api/v1/orgs/{other}/api-keys"),
        &outsider,
        json!({"name": "all", "permissions": everything}),
    )
    .await;
    let other_key = other_key["key"].as_str().expect("key").to_owned();
    let credentials = [("authorization", format!("Bearer {outsider}")), ("x-api-key", other_key)];

    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.expect("json");
    let mut checked = 0;
    for (template, operations) in doc["paths"].as_object().expect("paths") {
        if !template.starts_with("/api/v1/orgs/{org_id}") {
            continue;
        }
        let mut path = template.clone();
        for (param, value) in &ids {
            path = path.replace(param, value);
        }
        assert!(!path.contains('{'), "the matrix has no id of org A for a parameter of {template}");
        for method in operations.as_object().expect("operations").keys() {
            let method = method.to_ascii_uppercase();
            for credential in &credentials {
                let response =
                    app.send(&method, &path, (credential.0, &credential.1), body_for(&method, template)).await;
                assert_eq!(response.status(), 404, "{method} {template} with {}", credential.0);
                assert_problem(response, 404, "not_found").await;
                checked += 1;
            }
        }
    }
    assert!(checked >= 2 * 26, "only {checked} calls: the document lost org routes");

    // Nothing of org A changed: its audit log has exactly the entries it had.
    let after: Value = app.get_auth(&format!("{base}/audit-log/verify"), &owner).await.json().await.expect("json");
    assert_eq!(after, before);
    assert_eq!(after["valid"], true);
    let team_still: Value = app
        .get_auth(&format!("{base}/teams/{}", team["id"].as_str().expect("id")), &owner)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(team_still["name"], "t");
    let file_still = app.get_auth(&format!("{base}/files/{file_id}/download"), &owner).await;
    assert_eq!(file_still.text().await.expect("body"), "contents of a.txt\n", "the file is untouched");
    app.stop().await;
}
