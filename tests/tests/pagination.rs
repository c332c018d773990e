//! Every list pages the same way, driven by the OpenAPI document so a new list cannot be left
//! out: `limit` 1–100 (default 20; anything else is a 422 naming `limit`), an opaque `cursor`
//! (one the list did not issue is a 422 naming `cursor`), and 45+ items read page by page with
//! no duplicate and no gap. Runs on SQLite, and on PostgreSQL + Redis with
//! `TENANTRY_TEST_STACK=services`.

use std::collections::HashSet;

use serde_json::{Value, json};
use tenantry_tests::{PASSWORD, TestApp, assert_problem, spawn_app};

const SEEDED: usize = 45;

/// The list routes of the document: GET operations whose 200 body is `{items, next_cursor}`.
fn list_routes(doc: &Value) -> Vec<String> {
    let schemas = &doc["components"]["schemas"];
    let mut routes = Vec::new();
    for (template, operations) in doc["paths"].as_object().expect("paths") {
        let Some(get) = operations.get("get") else { continue };
        let schema = &get["responses"]["200"]["content"]["application/json"]["schema"];
        let schema = match schema["$ref"].as_str() {
            Some(reference) => &schemas[reference.trim_start_matches("#/components/schemas/")],
            None => schema,
        };
        if schema["properties"].get("items").is_some() && schema["properties"].get("next_cursor").is_some() {
            let params = get["parameters"].as_array().cloned().unwrap_or_default();
            for name in ["limit", "cursor"] {
                assert!(
                    params.iter().any(|p| p["name"] == name && p["in"] == "query"),
                    "{template} does not document `{name}` as a query parameter"
                );
            }
            routes.push(template.clone());
        }
    }
    routes
}

async fn created(app: &TestApp, path: &str, access: &str, body: Value) -> Value {
    let response = app.post_json(path, &body, Some(access)).await;
    assert_eq!(response.status(), 201, "{path}: {}", response.text().await.unwrap_or_default());
    response.json().await.expect("json")
}

async fn get_json(app: &TestApp, path: &str, access: &str) -> (u16, Value) {
    let response = app.get_auth(path, access).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn item_id(item: &Value) -> String {
    item.get("id").or_else(|| item.get("user_id")).and_then(Value::as_str).expect("an id").to_owned()
}

/// Every item of `path`, page by page with `limit`.
async fn read_all(app: &TestApp, path: &str, access: &str, limit: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let separator = if path.contains('?') { '&' } else { '?' };
        let mut url = format!("{path}{separator}limit={limit}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = get_json(app, &url, access).await;
        assert_eq!(status, 200, "{url}: {page}");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= limit as usize, "{url}: {} items", items.len());
        ids.extend(items.iter().map(item_id));
        match page["next_cursor"].as_str() {
            Some(next) => {
                assert!(!items.is_empty(), "{url}: an empty page with a next cursor");
                cursor = Some(next.to_owned());
            }
            None => return ids,
        }
    }
    panic!("{path}: more than 100 pages");
}

#[tokio::test]
async fn every_list_route_pages_the_same_way() {
    let app = spawn_app().await;
    let owner_email = app.register().await;
    let owner = app.login(&owner_email, PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    let admin = app.admin().await;
    let org = app.create_org(&owner).await;
    let base = format!("/api/v1/orgs/{org}");
    // Webhook endpoints, and deliveries (test events) of the first one.
    let hook =
        created(&app, &format!("{base}/webhooks"), &owner, json!({"url": "https://h0.example.com/", "events": []}))
            .await;
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    for n in 0..SEEDED {
        let sent = app.post_json(&format!("{base}/webhooks/{hook_id}/test"), &json!({}), Some(&owner)).await;
        assert_eq!(sent.status(), 202);
        if n > 0 {
            created(
                &app,
                &format!("{base}/webhooks"),
                &owner,
                json!({"url": format!("https://h{n}.example.com/"), "events": []}),
            )
            .await;
        }
    }
    for n in 1..SEEDED {
        app.create_org(&owner).await;
        created(&app, &format!("{base}/teams"), &owner, json!({"name": format!("team {n:02}")})).await;
        created(
            &app,
            &format!("{base}/roles"),
            &owner,
            json!({"name": format!("role-{n:02}"), "permissions": ["org:read"]}),
        )
        .await;
        created(
            &app,
            &format!("{base}/invitations"),
            &owner,
            json!({"email": format!("i{n}@example.com"), "role": "viewer"}),
        )
        .await;
        created(
            &app,
            &format!("{base}/api-keys"),
            &owner,
            json!({"name": format!("k{n}"), "permissions": ["org:read"]}),
        )
        .await;
        let (member, _) = app.user().await;
        app.add_member(&org, &member, "viewer").await;
        app.uploaded_file(&org, &owner, &format!("file-{n:02}.txt")).await;
    }
    app.uploaded_file(&org, &owner, "file-45.txt").await;
    created(&app, &format!("{base}/teams"), &owner, json!({"name": "team 45"})).await;
    created(&app, &format!("{base}/roles"), &owner, json!({"name": "role-45", "permissions": ["org:read"]})).await;
    created(&app, &format!("{base}/invitations"), &owner, json!({"email": "i45@example.com", "role": "viewer"})).await;
    created(&app, &format!("{base}/api-keys"), &owner, json!({"name": "k45", "permissions": ["org:read"]})).await;
    for _ in 1..SEEDED {
        app.login(&owner_email, PASSWORD).await;
    }

    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.expect("json");
    let routes = list_routes(&doc);
    assert!(routes.len() >= 10, "{routes:?}");
    for template in &routes {
        let path = template.replace("{org_id}", &org).replace("{webhook_id}", &hook_id);
        assert!(!path.contains('{'), "no id for {template}: add it here");
        let caller = if path.starts_with("/api/v1/admin/") { &admin } else { &owner };

        for bad in ["0", "101", "abc", "-1", "1.5", "99999999999999999999999"] {
            let separator = if path.contains('?') { '&' } else { '?' };
            let response = app.get_auth(&format!("{path}{separator}limit={bad}"), caller).await;
            let problem = assert_problem(response, 422, "validation_failed").await;
            assert_eq!(problem["errors"][0]["field"], "limit", "{path} limit={bad}: {problem}");
            let text = problem.to_string().to_lowercase();
            assert!(!text.contains("deserialize") && !text.contains("target type"), "{path}: parser text: {problem}");
        }
        for garbage in ["garbage", "v1.AAAA", "0193c1d2-7e2a-7cc0-8f0a-1b2c3d4e5f60", "20"] {
            let response = app.get_auth(&format!("{path}?cursor={garbage}"), caller).await;
            let problem = assert_problem(response, 422, "validation_failed").await;
            assert_eq!(problem["errors"][0]["field"], "cursor", "{path} cursor={garbage}: {problem}");
        }
        let both = app.get_auth(&format!("{path}?limit=0&cursor=nope"), caller).await;
        let problem = assert_problem(both, 422, "validation_failed").await;
        let named: Vec<&str> =
            problem["errors"].as_array().expect("errors").iter().filter_map(|e| e["field"].as_str()).collect();
        assert_eq!(named, ["limit", "cursor"], "{path}: both named");

        let (status, first) = get_json(&app, &path, caller).await;
        assert_eq!(status, 200, "{path}: {first}");
        assert_eq!(first["items"].as_array().expect("items").len(), 20, "{path}: the default page is 20");
        assert!(first["next_cursor"].is_string(), "{path}: more follow");

        let small = read_all(&app, &path, caller, 7).await;
        let large = read_all(&app, &path, caller, 100).await;
        assert!(small.len() >= SEEDED, "{path}: {} items", small.len());
        assert_eq!(small.iter().collect::<HashSet<_>>().len(), small.len(), "{path}: a duplicate");
        assert_eq!(small, large, "{path}: pages of 7 and of 100 disagree (a gap or a reorder)");

        // A cursor of one list is not a cursor of another.
        let (_, page) = get_json(&app, &format!("{path}?limit=1"), caller).await;
        let cursor = page["next_cursor"].as_str().expect("cursor").to_owned();
        let elsewhere = if path == "/api/v1/orgs" { format!("{base}/teams") } else { "/api/v1/orgs".to_owned() };
        let response = app.get_auth(&format!("{elsewhere}?cursor={cursor}"), &owner).await;
        assert_problem(response, 422, "validation_failed").await;
    }
    app.stop().await;
}
