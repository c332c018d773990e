//! PostgreSQL Row-Level Security: the second wall. Even a query with no `org_id` filter at all
//! sees no tenant row unless its transaction names the tenant, and then only that tenant's.

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};
use serde_json::{Value, json};
use tenantry_migration::TENANT_TABLES;
use tenantry_tests::{TestApp, spawn_app_on_postgres};

/// An org with a row in every tenant table.
async fn populated_org(app: &TestApp) -> String {
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (member_id, _) = app.user().await;
    app.add_member(&org, &member_id, "member").await;
    let base = format!("/api/v1/orgs/{org}");
    let team: Value =
        app.post_json(&format!("{base}/teams"), &json!({"name": "t"}), Some(&owner)).await.json().await.expect("json");
    let team_id = team["id"].as_str().expect("id");
    let added = app
        .send(
            "PUT",
            &format!("{base}/teams/{team_id}/members/{member_id}"),
            ("authorization", &format!("Bearer {owner}")),
            None,
        )
        .await;
    assert_eq!(added.status(), 204);
    // Three seats: the invitation below takes the last one, crossing 80 % and 100 % of the
    // members quota (rows in `quota_marks`); org-scoped calls fill `usage_counters`.
    let admin = app.admin().await;
    let plan = app
        .send(
            "PUT",
            &format!("/api/v1/admin/orgs/{org}/plan"),
            ("authorization", &format!("Bearer {admin}")),
            Some(json!({"plan": "free", "overrides": {"members": 3}})),
        )
        .await;
    assert_eq!(plan.status(), 200);
    for (path, body) in [
        ("roles", json!({"name": "auditors", "permissions": ["audit:read"]})),
        ("invitations", json!({"email": "someone@example.com", "role": "viewer"})),
        ("api-keys", json!({"name": "ci", "permissions": ["org:read"]})),
    ] {
        let response = app.post_json(&format!("{base}/{path}"), &body, Some(&owner)).await;
        assert_eq!(response.status(), 201, "{path}");
    }
    // A stored file (a row in `files`).
    app.uploaded_file(&org, &owner, "a.txt").await;
    // A webhook endpoint with a delivery that the dispatcher attempted (the host does not
    // resolve here: the attempt records its error).
    let hook: Value = app
        .post_json(&format!("{base}/webhooks"), &json!({"url": "https://hooks.invalid/in", "events": []}), Some(&owner))
        .await
        .json()
        .await
        .expect("json");
    let hook_id = hook["id"].as_str().expect("id");
    let queued: Value = app
        .post_json(&format!("{base}/webhooks/{hook_id}/test"), &json!({}), Some(&owner))
        .await
        .json()
        .await
        .expect("json");
    let delivery = format!("{base}/webhooks/{hook_id}/deliveries/{}", queued["delivery_id"].as_str().expect("id"));
    for _ in 0..100 {
        let detail: Value = app.get_auth(&delivery, &owner).await.json().await.expect("json");
        if detail["attempts"].as_array().is_some_and(|a| !a.is_empty()) {
            return org;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the dispatcher never attempted {delivery}");
}

async fn count<C: ConnectionTrait>(db: &C, sql: &str) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await
        .expect("query runs")
        .expect("one row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

#[tokio::test]
async fn a_query_without_the_tenant_setting_sees_no_tenant_rows() {
    let Some(app) = spawn_app_on_postgres().await else { return };
    let org_a = populated_org(&app).await;
    let org_b = populated_org(&app).await;
    let superuser = app.behind_the_back().await;
    // The server's own pool: the application role, as in production.
    let server: &DatabaseConnection = app.database().connection();
    assert_eq!(
        count(server, "SELECT COUNT(*) FROM pg_roles WHERE rolname = current_user AND (rolsuper OR rolbypassrls)")
            .await,
        0,
        "the server must not run as a role that bypasses RLS"
    );

    for (table, column) in TENANT_TABLES {
        let everything = count(&superuser, &format!("SELECT COUNT(*) FROM {table}")).await;
        assert!(everything >= 2, "{table} should hold rows of both orgs, has {everything}");
        // No filter, no setting: nothing.
        assert_eq!(count(server, &format!("SELECT COUNT(*) FROM {table}")).await, 0, "{table} leaked without a tenant");

        // No filter, tenant A set for the transaction: A's rows only, all of them.
        let txn = server.begin().await.expect("begin");
        txn.execute_unprepared(&format!("SELECT set_config('tenantry.org_id', '{org_a}', true)")).await.expect("set");
        let seen = count(&txn, &format!("SELECT COUNT(*) FROM {table}")).await;
        let foreign = count(&txn, &format!("SELECT COUNT(*) FROM {table} WHERE {column} <> '{org_a}'")).await;
        txn.commit().await.expect("commit");
        let own = count(&superuser, &format!("SELECT COUNT(*) FROM {table} WHERE {column} = '{org_a}'")).await;
        assert_eq!(foreign, 0, "{table} showed another tenant's rows");
        assert_eq!(seen, own, "{table} hid some of the tenant's own rows");

        // The setting does not outlive its transaction on a pooled connection.
        assert_eq!(count(server, &format!("SELECT COUNT(*) FROM {table}")).await, 0, "{table} after commit");
    }

    // Writes are fenced too: nothing to update without the setting, and a row cannot be written
    // into another tenant from inside one.
    let updated = server.execute_unprepared("UPDATE teams SET name = 'pwned'").await.expect("runs");
    assert_eq!(updated.rows_affected(), 0);
    let txn = server.begin().await.expect("begin");
    txn.execute_unprepared(&format!("SELECT set_config('tenantry.org_id', '{org_a}', true)")).await.expect("set");
    let smuggled = txn
        .execute_unprepared(&format!(
            "INSERT INTO teams (id, org_id, name, created_at, updated_at) VALUES (gen_random_uuid(), '{org_b}', 'x', now(), now())"
        ))
        .await;
    assert!(smuggled.is_err(), "WITH CHECK must refuse a row of another tenant");
    drop(txn);
    let names = app.raw_query_strings("SELECT name FROM teams ORDER BY name").await;
    assert_eq!(names, ["t", "t"], "nothing was renamed or smuggled in");
    app.stop().await;
}
