//! What every route does with what a client sends, driven by the OpenAPI document so a new
//! route cannot be left out: a body that is not JSON is 400 `malformed_request` before any
//! field is looked at; one 422 names every bad field; no 422 carries parser text.

use serde_json::{Value, json};
use tenantry_tests::{TestApp, assert_problem, spawn_app};

async fn created(app: &TestApp, path: &str, access: &str, body: Value) -> Value {
    let response = app.post_json(path, &body, Some(access)).await;
    assert_eq!(response.status(), 201, "{path}: {}", response.text().await.unwrap_or_default());
    response.json().await.expect("json")
}

/// A signed-in owner of an org with one of each sub-resource, an admin, and the ids to fill
/// every path template with.
struct World {
    owner: String,
    admin: String,
    ids: Vec<(&'static str, String)>,
}

async fn world(app: &TestApp) -> World {
    let (owner_id, owner) = app.user().await;
    let admin = app.admin().await;
    let org = app.create_org(&owner).await;
    let base = format!("/api/v1/orgs/{org}");
    let (member_id, _) = app.user().await;
    app.add_member(&org, &member_id, "member").await;
    let team = created(app, &format!("{base}/teams"), &owner, json!({"name": "t"})).await;
    let role =
        created(app, &format!("{base}/roles"), &owner, json!({"name": "auditors", "permissions": ["org:read"]})).await;
    let invitation =
        created(app, &format!("{base}/invitations"), &owner, json!({"email": "i@example.com", "role": "viewer"})).await;
    let key =
        created(app, &format!("{base}/api-keys"), &owner, json!({"name": "a", "permissions": ["org:read"]})).await;
    let hook =
        created(app, &format!("{base}/webhooks"), &owner, json!({"url": "https://hooks.invalid/in", "events": []}))
            .await;
    let hook_id = hook["id"].as_str().expect("id").to_owned();
    let queued = app
        .post_json(&format!("{base}/webhooks/{hook_id}/test"), &json!({}), Some(&owner))
        .await
        .json::<Value>()
        .await
        .expect("json");
    let delivery_id = queued["delivery_id"].as_str().expect("id").to_owned();
    let sessions: Value = app.get_auth("/api/v1/auth/sessions", &owner).await.json().await.expect("json");
    let file_id = app.uploaded_file(&org, &owner, "a.txt").await;
    let ids = vec![
        ("{org_id}", org),
        ("{team_id}", team["id"].as_str().expect("id").to_owned()),
        ("{role_id}", role["id"].as_str().expect("id").to_owned()),
        ("{invitation_id}", invitation["id"].as_str().expect("id").to_owned()),
        ("{key_id}", key["id"].as_str().expect("id").to_owned()),
        ("{webhook_id}", hook_id),
        ("{delivery_id}", delivery_id),
        ("{file_id}", file_id),
        ("{user_id}", member_id),
        ("{session_id}", sessions["items"][0]["id"].as_str().expect("id").to_owned()),
    ];
    let _ = owner_id;
    World { owner, admin, ids }
}

impl World {
    fn fill(&self, template: &str) -> String {
        self.ids.iter().fold(template.to_owned(), |path, (name, id)| path.replace(name, id))
    }

    fn caller(&self, path: &str) -> &str {
        if path.starts_with("/api/v1/admin/") { &self.admin } else { &self.owner }
    }
}

fn takes_json(operation: &Value) -> bool {
    operation["requestBody"]["content"].get("application/json").is_some()
}

#[tokio::test]
async fn a_truncated_body_is_400_malformed_request_on_every_json_route() {
    let app = spawn_app().await;
    let world = world(&app).await;
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.expect("json");
    let mut checked = 0;
    for (template, operations) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            if !takes_json(operation) {
                continue;
            }
            let path = world.fill(template);
            // An unknown field first, then the text stops: syntax is judged before any field.
            for truncated in [r#"{"email":"a@b.c","pass"#, r#"{"unknown_field":1,"#, "{", r#"{"a":"#] {
                let response = app
                    .client
                    .request(method.to_uppercase().parse().expect("method"), app.url(&path))
                    .bearer_auth(world.caller(&path))
                    .header("content-type", "application/json")
                    .body(truncated)
                    .send()
                    .await
                    .expect("sent");
                let problem = assert_problem(response, 400, "malformed_request").await;
                assert!(problem["detail"].is_string(), "{method} {path}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} JSON routes");
    app.stop().await;
}

/// The path parameters that parse into an entity's id type (`TeamId`, `RoleId`, …).
const TYPED_IDS: [&str; 6] = ["{team_id}", "{role_id}", "{invitation_id}", "{key_id}", "{webhook_id}", "{delivery_id}"];

#[tokio::test]
async fn a_malformed_entity_id_in_a_path_is_404_not_found_on_every_route() {
    let app = spawn_app().await;
    let world = world(&app).await;
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.expect("json");
    let mut checked = 0;
    for (template, operations) in doc["paths"].as_object().expect("paths") {
        for param in TYPED_IDS.iter().filter(|param| template.contains(*param)) {
            for (method, operation) in operations.as_object().expect("operations") {
                for bad in ["not-an-id", "42", "0193c1d2-7e2a-7cc0-8f0a"] {
                    let path = world.fill(&template.replace(param, bad));
                    let mut request = app
                        .client
                        .request(method.to_uppercase().parse().expect("method"), app.url(&path))
                        .bearer_auth(world.caller(&path));
                    if takes_json(operation) {
                        request = request.json(&json!({}));
                    }
                    let response = request.send().await.expect("sent");
                    assert_problem(response, 404, "not_found").await;
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 15, "only {checked} operations with a typed id in their path");
    app.stop().await;
}

fn fields(problem: &Value) -> Vec<String> {
    let mut named: Vec<String> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_owned())
        .collect();
    named.sort();
    named
}

#[tokio::test]
async fn one_422_names_every_bad_field() {
    let app = spawn_app().await;
    let (_, access) = app.user().await;
    let cases = [
        ("POST", "/api/v1/auth/login", json!({"email": 1, "password": 2}), vec!["email", "password"]),
        (
            "POST",
            "/api/v1/orgs",
            json!({"name": "", "slug": "Not A Slug", "id": "x", "owner_id": "y", "plan": "enterprise"}),
            vec!["id", "name", "owner_id", "plan", "slug"],
        ),
        (
            "PATCH",
            "/api/v1/users/me",
            json!({"email": "x@example.com", "id": 1, "is_admin": true, "password_hash": "h", "created_at": "now"}),
            vec!["created_at", "email", "id", "is_admin", "password_hash"],
        ),
        (
            "POST",
            "/api/v1/auth/register",
            json!({"email": "not-an-address", "password": "short", "display_name": 7}),
            vec!["display_name", "email", "password"],
        ),
        ("POST", "/api/v1/orgs", json!({}), vec!["name", "slug"]),
    ];
    for (method, path, body, expected) in cases {
        let response = app
            .client
            .request(method.parse().expect("method"), app.url(path))
            .bearer_auth(&access)
            .json(&body)
            .send()
            .await
            .expect("sent");
        let problem = assert_problem(response, 422, "validation_failed").await;
        assert_eq!(fields(&problem), expected, "{method} {path}: {problem}");
        let text = problem.to_string();
        for internal in ["invalid type", "u32", "struct ", "deserialize", "line 1"] {
            assert!(!text.contains(internal), "{method} {path}: parser text `{internal}` in {problem}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn no_422_on_a_query_carries_parser_text() {
    let app = spawn_app().await;
    let world = world(&app).await;
    let doc: Value = app.get("/api/v1/openapi.json").await.json().await.expect("json");
    let mut checked = 0;
    for (template, operations) in doc["paths"].as_object().expect("paths") {
        let Some(get) = operations.get("get") else { continue };
        let params: Vec<String> = get["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        if params.is_empty() {
            continue;
        }
        let path = world.fill(template);
        let mut queries: Vec<String> = params.iter().map(|name| format!("{name}=99999999999999999999999")).collect();
        queries.extend(params.iter().map(|name| format!("{name}=%FF%FE")));
        queries.push(params.iter().map(|name| format!("{name}=-1.5e999")).collect::<Vec<_>>().join("&"));
        queries.push("bogus_parameter=1".to_owned());
        queries.push(format!("{0}=1&{0}=2", params[0]));
        for query in queries {
            let response = app.get_auth(&format!("{path}?{query}"), world.caller(&path)).await;
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert!(status == 200 || status == 422, "{path}?{query}: {status} {body}");
            if status == 422 {
                assert!(!body["errors"].as_array().expect("errors").is_empty(), "{path}?{query}");
                let text = body.to_string().to_lowercase();
                for internal in ["deserialize", "target type", "invalid digit", "invalid type", "u32"] {
                    assert!(!text.contains(internal), "{path}?{query}: `{internal}` in {body}");
                }
                let named = body["errors"].as_array().expect("errors").iter().all(|e| e["field"] != "query");
                assert!(named, "{path}?{query}: a parameter must be named, not `query`: {body}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} query-taking routes");
    app.stop().await;
}

#[tokio::test]
async fn accepting_an_invitation_records_member_added() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let email = format!("joiner-{}@example.com", uuid::Uuid::now_v7().simple());
    created(&app, &format!("/api/v1/orgs/{org}/invitations"), &owner, json!({"email": email, "role": "member"})).await;
    let token = app.token_from_mail(&email, "accept-invitation").await;
    let registered = app
        .post_json("/api/v1/auth/register", &json!({"email": email, "password": tenantry_tests::PASSWORD}), None)
        .await;
    assert_eq!(registered.status(), 201);
    let verify = app.token_from_mail(&email, "verify-email").await;
    assert_eq!(app.post_json("/api/v1/auth/verify-email", &json!({"token": verify}), None).await.status(), 204);
    let joiner = app.login(&email, tenantry_tests::PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    let me: Value = app.get_auth("/api/v1/users/me", &joiner).await.json().await.expect("json");
    let accepted = app.post_json("/api/v1/invitations/accept", &json!({"token": token}), Some(&joiner)).await;
    assert_eq!(accepted.status(), 200);
    let log: Value = app
        .get_auth(&format!("/api/v1/orgs/{org}/audit-log?action=member.added"), &owner)
        .await
        .json()
        .await
        .expect("json");
    let added = log["items"].as_array().expect("items");
    assert_eq!(added.len(), 1, "{log}");
    assert_eq!(added[0]["target_id"], me["id"]);
    assert_eq!(added[0]["actor_id"], me["id"]);
    assert_eq!(added[0]["data"]["role"], "member");
    let accepted_entries: Value = app
        .get_auth(&format!("/api/v1/orgs/{org}/audit-log?action=invitation.accepted"), &owner)
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(accepted_entries["items"].as_array().expect("items").len(), 1);
    let verify: Value =
        app.get_auth(&format!("/api/v1/orgs/{org}/audit-log/verify"), &owner).await.json().await.expect("json");
    assert_eq!(verify["valid"], true);
    app.stop().await;
}
