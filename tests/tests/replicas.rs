//! Two replicas of one deployment on PostgreSQL + Redis: a change made through one holds on the
//! other without waiting for the other's in-process copies to expire (Redis pub/sub, ADR 0011).
//!
//! Both replicas share one stopped clock, so their half-second bound never passes: only the
//! broadcast can make the second replica see the change, and without it these tests fail.

use std::time::Duration;

use serde_json::{Value, json};
use tenantry_tests::{Stack, TestApp, spawn_app_with_manual_clock};

/// Polls `request` on `app` until it answers `status` (messages arrive asynchronously; the
/// limit is a guard against hanging, not a speed check).
async fn eventually(app: &TestApp, path: &str, access: &str, check: impl Fn(u16, &Value) -> bool) -> bool {
    for _ in 0..100 {
        let response = app.get_auth(path, access).await;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if check(status, &body) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_demotion_and_a_logout_made_on_one_replica_hold_on_the_other() {
    let (app, _clock) = spawn_app_with_manual_clock(&[]).await;
    if app.stack != Stack::Services {
        // One process with an in-process cache: there is no other replica to tell.
        app.stop().await;
        return;
    }
    let other = app.replica().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (member_id, member) = app.user().await;
    app.add_member(&org, &member_id, "admin").await;
    let me = format!("/api/v1/orgs/{org}/me");
    // The other replica trusts the session and has the admin role in its copies.
    let warm: Value = other.get_auth(&me, &member).await.json().await.expect("json");
    assert_eq!(warm["role"], "admin");
    assert_eq!(other.get_auth(&me, &member).await.status(), 200);

    let demoted = app
        .send(
            "PATCH",
            &format!("/api/v1/orgs/{org}/members/{member_id}"),
            ("authorization", &format!("Bearer {owner}")),
            Some(json!({"role": "viewer"})),
        )
        .await;
    assert_eq!(demoted.status(), 200);
    assert!(
        eventually(&other, &me, &member, |status, body| status == 200 && body["role"] == "viewer").await,
        "the other replica still serves the old role"
    );

    let logout = app.client.post(app.url("/api/v1/auth/logout")).bearer_auth(&member).send().await.expect("sent");
    assert_eq!(logout.status(), 204);
    assert!(
        eventually(&other, "/api/v1/users/me", &member, |status, _| status == 401).await,
        "the other replica still accepts the revoked session"
    );
    other.stop().await;
    app.stop().await;
}
