//! The personal-data export holds every row that names the person: the test makes one of each
//! kind and finds it (GDPR art. 15/20).

use serde_json::{Value, json};
use tenantry_tests::{PASSWORD, spawn_app};

#[tokio::test]
async fn the_export_contains_every_row_that_names_the_user() {
    let app = spawn_app().await;
    let (ann_id, ann) = app.user().await;
    let (_, owner) = app.user().await;
    // Ann owns one org and is a member of another.
    let own = app.create_org(&ann).await;
    let other = app.create_org(&owner).await;
    app.add_member(&other, &ann_id, "admin").await;
    let team: Value = app
        .post_json(&format!("/api/v1/orgs/{own}/teams"), &json!({"name": "core"}), Some(&ann))
        .await
        .json()
        .await
        .expect("json");
    let put = app
        .client
        .put(app.url(&format!("/api/v1/orgs/{own}/teams/{}/members/{ann_id}", team["id"].as_str().expect("id"))))
        .bearer_auth(&ann)
        .send()
        .await
        .expect("sent");
    assert_eq!(put.status(), 204);
    let sent: Value = app
        .post_json(
            &format!("/api/v1/orgs/{own}/invitations"),
            &json!({"email": "bob@example.com", "role": "viewer"}),
            Some(&ann),
        )
        .await
        .json()
        .await
        .expect("json");
    let key: Value = app
        .post_json(
            &format!("/api/v1/orgs/{own}/api-keys"),
            &json!({"name": "ci", "permissions": ["org:read"]}),
            Some(&ann),
        )
        .await
        .json()
        .await
        .expect("json");
    // An invitation to Ann's address, from someone else.
    let me: Value = app.get_auth("/api/v1/users/me", &ann).await.json().await.expect("json");
    let third = app.create_org(&owner).await;
    let received: Value = app
        .post_json(
            &format!("/api/v1/orgs/{third}/invitations"),
            &json!({"email": me["email"], "role": "viewer"}),
            Some(&owner),
        )
        .await
        .json()
        .await
        .expect("json");

    let response = app.get_auth("/api/v1/users/me/export", &ann).await;
    assert_eq!(response.status(), 200);
    let export: Value = response.json().await.expect("json");
    let ids = |field: &str, key: &str| -> Vec<String> {
        export[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field} in {export}"))
            .iter()
            .filter_map(|v| v[key].as_str().map(str::to_owned))
            .collect()
    };
    let orgs = ids("memberships", "org_id");
    assert!(orgs.contains(&own) && orgs.contains(&other), "{orgs:?}");
    assert!(
        export["memberships"]
            .as_array()
            .expect("m")
            .iter()
            .any(|m| m["org_id"] == other.as_str() && m["role"] == "admin")
    );
    assert_eq!(ids("team_memberships", "team_id"), vec![team["id"].as_str().expect("id").to_owned()]);
    assert_eq!(ids("invitations_sent", "id"), vec![sent["id"].as_str().expect("id").to_owned()]);
    assert_eq!(ids("invitations_received", "id"), vec![received["id"].as_str().expect("id").to_owned()]);
    assert_eq!(ids("api_keys_created", "id"), vec![key["id"].as_str().expect("id").to_owned()]);
    let actions: Vec<String> = ids("audit_entries", "action");
    for action in ["org.created", "team.created", "invitation.created", "api_key.created", "member.added"] {
        assert!(actions.iter().any(|a| a == action), "{action} missing from {actions:?}");
    }
    // Entries about Ann made by others (the seed added her to `other`) are hers too.
    assert!(export["audit_entries"].as_array().expect("a").iter().any(|e| e["org_id"] == other.as_str()));
    let text = export.to_string();
    assert!(!text.contains(key["key"].as_str().expect("key")), "never a key's secret");
    assert!(!text.contains(PASSWORD));
    app.stop().await;
}
