//! The audit log: written with every org change, read with filters and cursors, and
//! tamper-evident through its per-org hash chain.

use futures_util::future::join_all;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use tenantry_tests::{TestApp, assert_problem, spawn_app, spawn_app_on_postgres};

async fn send(app: &TestApp, method: &str, path: &str, access: &str, body: Option<Value>) -> reqwest::Response {
    app.send(method, path, ("authorization", &format!("Bearer {access}")), body).await
}

async fn create_teams(app: &TestApp, org: &str, owner: &str, count: usize) {
    for n in 0..count {
        let body = json!({"name": format!("t{n}")});
        let created = send(app, "POST", &format!("/api/v1/orgs/{org}/teams"), owner, Some(body)).await;
        assert_eq!(created.status(), 201);
    }
}

async fn entries(app: &TestApp, org: &str, access: &str, query: &str) -> Value {
    let response = app.get_auth(&format!("/api/v1/orgs/{org}/audit-log{query}"), access).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    response.json().await.expect("json")
}

async fn verify(app: &TestApp, org: &str, access: &str) -> Value {
    let response = app.get_auth(&format!("/api/v1/orgs/{org}/audit-log/verify"), access).await;
    assert_eq!(response.status(), 200);
    response.json().await.expect("json")
}

fn actions(page: &Value) -> Vec<String> {
    page["items"].as_array().expect("items").iter().map(|e| e["action"].as_str().expect("action").to_owned()).collect()
}

async fn tamper(app: &TestApp, sql: &str) {
    let db = app.behind_the_back().await;
    let changed = db.execute_unprepared(sql).await.expect("tampering statement runs");
    assert_eq!(changed.rows_affected(), 1, "{sql}");
}

#[tokio::test]
async fn every_change_is_recorded_with_who_what_and_where() {
    let app = spawn_app().await;
    let (owner_id, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (member_id, _) = app.user().await;
    app.add_member(&org, &member_id, "member").await;
    let team: Value = app
        .client
        .post(app.url(&format!("/api/v1/orgs/{org}/teams")))
        .bearer_auth(&owner)
        .header("user-agent", "audit-test/1.0")
        .header("x-request-id", "req-audit-1")
        .json(&json!({"name": "Core"}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("json");
    let role =
        send(&app, "PATCH", &format!("/api/v1/orgs/{org}/members/{member_id}"), &owner, Some(json!({"role": "admin"})))
            .await;
    assert_eq!(role.status(), 200);
    // A refused change leaves no entry: the entry is written in the change's transaction.
    let refused = send(&app, "POST", "/api/v1/orgs", &owner, Some(json!({"name": "x", "slug": "taken-slug"}))).await;
    assert_eq!(refused.status(), 201);
    let conflict =
        send(&app, "PATCH", &format!("/api/v1/orgs/{org}"), &owner, Some(json!({"slug": "taken-slug"}))).await;
    assert_eq!(conflict.status(), 409);

    let page = entries(&app, &org, &owner, "").await;
    assert_eq!(actions(&page), ["member.role_changed", "team.created", "member.added", "org.created"]);
    let items = page["items"].as_array().expect("items");
    let team_entry = &items[1];
    assert_eq!(team_entry["actor_type"], "user");
    assert_eq!(team_entry["actor_id"], owner_id.as_str());
    assert_eq!(team_entry["org_id"], org.as_str());
    assert_eq!(team_entry["target_type"], "team");
    assert_eq!(team_entry["target_id"], team["id"]);
    assert_eq!(team_entry["user_agent"], "audit-test/1.0");
    assert_eq!(team_entry["request_id"], "req-audit-1");
    assert_eq!(team_entry["ip"], "127.0.0.1");
    assert_eq!(team_entry["data"]["name"], "Core");
    assert_eq!(items[0]["data"], json!({"from": "member", "to": "admin"}));
    assert_eq!(items[0]["target_id"], member_id.as_str());
    assert_eq!(items[0]["prev_hash"], items[1]["hash"], "each entry links to the one before");
    assert_eq!(page["next_cursor"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn filters_and_cursor_pages() {
    let app = spawn_app().await;
    let (owner_id, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    create_teams(&app, &org, &owner, 5).await;
    let key: Value = send(
        &app,
        "POST",
        &format!("/api/v1/orgs/{org}/api-keys"),
        &owner,
        Some(json!({"name": "ci", "permissions": ["teams:manage", "teams:read", "audit:read"]})),
    )
    .await
    .json()
    .await
    .expect("json");
    let by_key = app
        .send(
            "POST",
            &format!("/api/v1/orgs/{org}/teams"),
            ("x-api-key", key["key"].as_str().expect("key")),
            Some(json!({"name": "bot"})),
        )
        .await;
    assert_eq!(by_key.status(), 201);

    let teams = entries(&app, &org, &owner, "?action=team.created").await;
    assert_eq!(teams["items"].as_array().expect("items").len(), 6);
    let family = entries(&app, &org, &owner, "?action=api_key.*").await;
    assert_eq!(actions(&family), ["api_key.created"]);
    let by_key_entries = entries(&app, &org, &owner, &format!("?actor_id={}", key["id"].as_str().expect("id"))).await;
    assert_eq!(actions(&by_key_entries), ["team.created"]);
    assert_eq!(by_key_entries["items"][0]["actor_type"], "api_key");
    let by_owner = entries(&app, &org, &owner, &format!("?actor_id={owner_id}")).await;
    assert_eq!(by_owner["items"].as_array().expect("items").len(), 7, "org, 5 teams, the key");
    let future = entries(&app, &org, &owner, "?since=2999-01-01T00:00:00Z").await;
    assert!(future["items"].as_array().expect("items").is_empty());
    let past = entries(&app, &org, &owner, "?until=2000-01-01T00:00:00Z").await;
    assert!(past["items"].as_array().expect("items").is_empty());

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = cursor.as_ref().map_or("?limit=3".to_owned(), |c| format!("?limit=3&cursor={c}"));
        let page = entries(&app, &org, &owner, &query).await;
        for item in page["items"].as_array().expect("items") {
            seen.push(item["seq"].as_i64().expect("seq"));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, (1..=8).rev().collect::<Vec<i64>>(), "every entry once, newest first");

    for (query, field) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?cursor=abc", "cursor"),
        ("?since=yesterday", "since"),
        ("?actor_id=nope", "actor_id"),
        ("?action=Team", "action"),
    ] {
        let response = app.get_auth(&format!("/api/v1/orgs/{org}/audit-log{query}"), &owner).await;
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(problem["errors"][0]["field"], field, "{query}");
    }
    app.stop().await;
}

#[tokio::test]
async fn only_audit_readers_see_it_and_nothing_edits_it() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (member_id, member) = app.user().await;
    app.add_member(&org, &member_id, "member").await;
    for path in ["audit-log", "audit-log/verify"] {
        let response = app.get_auth(&format!("/api/v1/orgs/{org}/{path}"), &member).await;
        assert_problem(response, 403, "forbidden").await;
    }
    let (_, stranger) = app.user().await;
    assert_problem(app.get_auth(&format!("/api/v1/orgs/{org}/audit-log"), &stranger).await, 404, "not_found").await;
    let first: Value = entries(&app, &org, &owner, "").await;
    let id = first["items"][0]["id"].as_str().expect("id").to_owned();
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let response = send(&app, method, &format!("/api/v1/orgs/{org}/audit-log"), &owner, Some(json!({}))).await;
        assert_problem(response, 405, "method_not_allowed").await;
        let response = send(&app, method, &format!("/api/v1/orgs/{org}/audit-log/{id}"), &owner, Some(json!({}))).await;
        assert_eq!(response.status(), 404, "{method} on an entry");
    }
    app.stop().await;
}

#[tokio::test]
async fn an_entry_edited_in_the_database_is_named_by_verify() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    create_teams(&app, &org, &owner, 4).await;
    assert_eq!(verify(&app, &org, &owner).await, json!({"valid": true, "entries_checked": 5}));
    let page = entries(&app, &org, &owner, "").await;
    let third = page["items"].as_array().expect("items").iter().find(|e| e["seq"] == 3).expect("seq 3").clone();

    tamper(&app, r#"UPDATE audit_log SET data = '{"name":"innocent"}' WHERE seq = 3"#).await;
    let report = verify(&app, &org, &owner).await;
    assert_eq!(report["valid"], false);
    assert_eq!(report["first_broken_id"], third["id"]);
    assert_eq!(report["entries_checked"], 3);

    // Re-hashing the forged row does not help: the next entry's link no longer matches.
    let forged: Vec<String> = app.raw_query_strings("SELECT data FROM audit_log WHERE seq = 3").await;
    assert_eq!(forged, [r#"{"name":"innocent"}"#]);
    tamper(&app, &format!("UPDATE audit_log SET data = '{}' WHERE seq = 3", third["data"])).await;
    assert_eq!(verify(&app, &org, &owner).await["valid"], true, "restoring the row restores the chain");

    tamper(&app, "DELETE FROM audit_log WHERE seq = 2").await;
    let report = verify(&app, &org, &owner).await;
    assert_eq!(report["valid"], false);
    assert_eq!(report["first_broken_id"], third["id"], "the entry after the removed one");

    app.stop().await;
}

#[tokio::test]
async fn entries_cut_off_the_end_are_detected() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    create_teams(&app, &org, &owner, 2).await;
    let last = entries(&app, &org, &owner, "?limit=1").await["items"][0]["id"].clone();
    tamper(&app, "DELETE FROM audit_log WHERE seq = 3").await;
    let report = verify(&app, &org, &owner).await;
    assert_eq!(report["valid"], false);
    assert_eq!(report["first_broken_id"], last);
    app.stop().await;
}

#[tokio::test]
async fn a_hundred_concurrent_changes_leave_one_unbroken_chain() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let path = format!("/api/v1/orgs/{org}/teams");
    let results =
        join_all((0..100).map(|n| send(&app, "POST", &path, &owner, Some(json!({"name": format!("team {n}")}))))).await;
    for result in results {
        assert_eq!(result.status(), 201, "{}", result.text().await.unwrap_or_default());
    }
    assert_eq!(verify(&app, &org, &owner).await, json!({"valid": true, "entries_checked": 101}));
    let seqs = app.raw_query_strings("SELECT CAST(seq AS TEXT) FROM audit_log ORDER BY audit_log.seq").await;
    assert_eq!(seqs, (1..=101).map(|n| n.to_string()).collect::<Vec<_>>(), "no gaps, no forks");
    app.stop().await;
}

#[tokio::test]
async fn an_organizations_log_outlives_it_and_records_its_deletion() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    assert_eq!(send(&app, "DELETE", &format!("/api/v1/orgs/{org}"), &owner, None).await.status(), 204);
    let actions = app.raw_query_strings("SELECT action FROM audit_log ORDER BY seq").await;
    assert_eq!(actions, ["org.created", "org.deleted"]);
    app.stop().await;
}

async fn create_key(app: &TestApp, org: &str, access: &str) -> Value {
    let created = app
        .post_json(
            &format!("/api/v1/orgs/{org}/api-keys"),
            &json!({"name": "ci", "permissions": ["org:read"]}),
            Some(access),
        )
        .await;
    assert_eq!(created.status(), 201);
    created.json().await.expect("json")
}

#[tokio::test]
async fn deleting_an_account_is_recorded_in_each_org_it_leaves_with_its_keys_revoked() {
    let app = spawn_app().await;
    let (_, owner_a) = app.user().await;
    let (_, owner_b) = app.user().await;
    let (_, owner_c) = app.user().await;
    let (leaver_id, leaver) = app.user().await;
    let (org_a, org_b, org_c) =
        (app.create_org(&owner_a).await, app.create_org(&owner_b).await, app.create_org(&owner_c).await);
    app.add_member(&org_a, &leaver_id, "member").await;
    app.add_member(&org_b, &leaver_id, "admin").await;
    app.add_member(&org_c, &leaver_id, "admin").await;
    let key_b = create_key(&app, &org_b, &leaver).await;
    // A key left behind in an org the account already left: dead, but still to be revoked.
    let key_c = create_key(&app, &org_c, &leaver).await;
    let removed = send(&app, "DELETE", &format!("/api/v1/orgs/{org_c}/members/{leaver_id}"), &owner_c, None).await;
    assert_eq!(removed.status(), 204);
    for (org, owner) in [(&org_a, &owner_a), (&org_b, &owner_b)] {
        // Warm the member pages, so a stale cached page would show.
        let members: Value =
            app.get_auth(&format!("/api/v1/orgs/{org}/members"), owner).await.json().await.expect("json");
        assert_eq!(members["items"].as_array().expect("items").len(), 2);
    }

    let deleted = app
        .client
        .delete(app.url("/api/v1/users/me"))
        .bearer_auth(&leaver)
        .header("x-request-id", "req-delete-account")
        .json(&json!({"password": tenantry_tests::PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(deleted.status(), 204);

    for (org, owner, role) in [(&org_a, &owner_a, "member"), (&org_b, &owner_b, "admin")] {
        let page = entries(&app, org, owner, &format!("?actor_id={leaver_id}")).await;
        let items = page["items"].as_array().expect("items");
        let removed = items.iter().find(|e| e["action"] == "member.removed").expect("a member.removed entry");
        assert_eq!(removed["target_id"], leaver_id.as_str());
        assert_eq!(removed["actor_type"], "user");
        assert_eq!(removed["request_id"], "req-delete-account");
        assert_eq!(removed["data"], json!({"role": role, "left": true, "reason": "account_deleted"}));
        let members: Value =
            app.get_auth(&format!("/api/v1/orgs/{org}/members"), owner).await.json().await.expect("json");
        assert_eq!(members["items"].as_array().expect("items").len(), 1, "the member list no longer shows the account");
        assert_eq!(verify(&app, org, owner).await["valid"], true);
    }
    for (org, owner, key) in [(&org_b, &owner_b, &key_b), (&org_c, &owner_c, &key_c)] {
        let page = entries(&app, org, owner, "?action=api_key.revoked").await;
        let revoked = page["items"].as_array().expect("items");
        assert_eq!(revoked.len(), 1, "{page}");
        assert_eq!(revoked[0]["target_id"], key["id"]);
        assert_eq!(revoked[0]["actor_id"], leaver_id.as_str());
        assert_eq!(revoked[0]["data"]["reason"], "creator_deleted");
        let keys: Value =
            app.get_auth(&format!("/api/v1/orgs/{org}/api-keys"), owner).await.json().await.expect("json");
        assert_eq!(keys["items"], json!([]), "the key is revoked, so no longer listed: {keys}");
        assert_eq!(verify(&app, org, owner).await["valid"], true);
    }
    assert_eq!(entries(&app, &org_a, &owner_a, "?action=api_key.revoked").await["items"], json!([]));
    assert_eq!(
        entries(&app, &org_c, &owner_c, "?action=member.removed").await["items"].as_array().expect("items").len(),
        1,
        "only the earlier removal: the account was no longer a member of org C"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_account_deletion_refused_by_the_store_writes_nothing() {
    use tenantry_ports::UserRepository;
    let app = spawn_app().await;
    let (_, owner_a) = app.user().await;
    let (leaver_id, leaver) = app.user().await;
    let org_a = app.create_org(&owner_a).await;
    app.add_member(&org_a, &leaver_id, "member").await;
    let org_b = app.create_org(&leaver).await;
    let key = create_key(&app, &org_b, &leaver).await;
    let (before_a, before_b) = (verify(&app, &org_a, &owner_a).await, verify(&app, &org_b, &leaver).await);
    // Straight to the store, past the application's last-owner check: the leaver could leave
    // org A but is org B's only owner, so nothing may change in either.
    let users = tenantry_adapter_sql::SqlUserRepository::new(app.database().clone());
    let user = leaver_id.parse().expect("user id");
    let deletion = tenantry_domain::audit::AccountDeletion::new(
        user,
        tenantry_domain::audit::Origin::default(),
        uuid::Uuid::now_v7(),
        chrono::Utc::now(),
    );
    let refused = users.delete(tenantry_domain::UserId::from_uuid(user), &deletion).await;
    assert!(
        matches!(refused, Err(tenantry_ports::StoreError::Conflict(tenantry_ports::Conflict::LastOwner))),
        "{refused:?}"
    );
    assert_eq!(verify(&app, &org_a, &owner_a).await, before_a, "org A's log is unchanged");
    assert_eq!(verify(&app, &org_b, &leaver).await, before_b, "org B's log is unchanged");
    let members: Value =
        app.get_auth(&format!("/api/v1/orgs/{org_a}/members"), &owner_a).await.json().await.expect("json");
    assert_eq!(members["items"].as_array().expect("items").len(), 2, "the membership in org A survived");
    assert_eq!(app.get_auth(&format!("/api/v1/orgs/{org_b}"), &leaver).await.status(), 200, "the account still works");
    let secret = key["key"].as_str().expect("key");
    let with_key = app.send("GET", &format!("/api/v1/orgs/{org_b}"), ("x-api-key", secret), None).await;
    assert_eq!(with_key.status(), 200, "its key was not revoked");
    app.stop().await;
}

#[tokio::test]
async fn an_account_deletion_that_meets_a_membership_newer_than_its_locks_starts_over_and_records_it() {
    use sea_orm::TransactionTrait;
    use tenantry_ports::UserRepository;
    let Some(app) = spawn_app_on_postgres().await else { return };
    let (co_owner_id, co_owner) = app.user().await;
    let (leaver_id, leaver) = app.user().await;
    let owned = app.create_org(&leaver).await;
    app.add_member(&owned, &co_owner_id, "owner").await;
    drop(leaver);
    let (_, owner_c) = app.user().await;
    let org_c = app.create_org(&owner_c).await;

    // Hold the owned org's row: the deletion takes its log heads (the owned org's only), then
    // waits here for the org row.
    let holder = app.behind_the_back().await;
    let held = holder.begin().await.expect("begin");
    held.execute_unprepared(&format!("SELECT id FROM orgs WHERE id = '{owned}' FOR UPDATE")).await.expect("lock");
    let users = tenantry_adapter_sql::SqlUserRepository::new(app.database().clone());
    let user: uuid::Uuid = leaver_id.parse().expect("user id");
    let deletion = tenantry_domain::audit::AccountDeletion::new(
        user,
        tenantry_domain::audit::Origin::default(),
        uuid::Uuid::now_v7(),
        chrono::Utc::now(),
    );
    let deleting = tokio::spawn(async move { users.delete(tenantry_domain::UserId::from_uuid(user), &deletion).await });
    let watcher = app.behind_the_back().await;
    let waiting =
        "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()";
    let mut blocked = false;
    for _ in 0..200 {
        let row = watcher
            .query_one_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, waiting.to_owned()))
            .await
            .expect("query")
            .expect("row");
        if row.try_get_by_index::<i64>(0).expect("count") > 0 {
            blocked = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(blocked, "the deletion should be waiting for the owned org's row");
    // Meanwhile the account joins org C: a membership whose log head the deletion does not hold.
    watcher
        .execute_unprepared(&format!(
            "INSERT INTO memberships (org_id, user_id, role, created_at, updated_at) \
             VALUES ('{org_c}', '{leaver_id}', 'member', now(), now())"
        ))
        .await
        .expect("join behind the back");
    held.commit().await.expect("release");

    let deleted = deleting.await.expect("task").expect("the deletion starts over and succeeds");
    let org_c_id: tenantry_domain::OrgId = org_c.parse().expect("org id");
    assert!(deleted.orgs.contains(&org_c_id), "org C's log was written: {:?}", deleted.orgs);
    let page = entries(&app, &org_c, &owner_c, "?action=member.removed").await;
    assert_eq!(page["items"][0]["target_id"], leaver_id.as_str(), "{page}");
    assert_eq!(page["items"][0]["data"]["reason"], "account_deleted");
    for (org, owner) in [(&owned, &co_owner), (&org_c, &owner_c)] {
        assert_eq!(verify(&app, org, owner).await["valid"], true);
    }
    app.stop().await;
}
