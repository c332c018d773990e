//! Organizations, members and roles over real HTTP (the full cross-tenant matrix is in
//! `isolation.rs`).

use serde_json::{Value, json};
use tenantry_adapter_sql::SqlOrgRepository;
use tenantry_ports::OrgRepository;
use tenantry_tests::{PASSWORD, TestApp, address, assert_problem, spawn_app};

/// A signed-in user: (user id, access token).
async fn send(app: &TestApp, method: &str, path: &str, access: &str, body: Option<Value>) -> reqwest::Response {
    app.send(method, path, ("authorization", &format!("Bearer {access}")), body).await
}

#[tokio::test]
async fn creating_an_org_makes_the_creator_its_owner() {
    let app = spawn_app().await;
    let (_, access) = app.user().await;
    let created =
        app.post_json("/api/v1/orgs", &json!({"name": " Acme Corp ", "slug": "acme-corp"}), Some(&access)).await;
    assert_eq!(created.status(), 201);
    let org: Value = created.json().await.expect("json");
    assert_eq!(org["name"], "Acme Corp");
    assert_eq!(org["slug"], "acme-corp");
    assert_eq!(org["plan"], "free");
    let id = org["id"].as_str().expect("id");

    let mine: Value = app.get_auth("/api/v1/orgs", &access).await.json().await.expect("json");
    assert_eq!(mine["items"][0]["id"], id);
    assert_eq!(mine["items"][0]["role"], "owner");
    let me: Value = app.get_auth(&format!("/api/v1/orgs/{id}/me"), &access).await.json().await.expect("json");
    assert_eq!(me["role"], "owner");
    assert_eq!(me["permissions"].as_array().expect("permissions").len(), 16);

    let taken = app.post_json("/api/v1/orgs", &json!({"name": "Other", "slug": "acme-corp"}), Some(&access)).await;
    assert_problem(taken, 409, "conflict").await;
    let bad = app.post_json("/api/v1/orgs", &json!({"name": "", "slug": "Bad Slug"}), Some(&access)).await;
    assert_problem(bad, 422, "validation_failed").await;
    assert_problem(
        app.post_json("/api/v1/orgs", &json!({"name": "x", "slug": "xyz"}), None).await,
        401,
        "unauthorized",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn the_permission_catalog_is_published() {
    let app = spawn_app().await;
    let catalog: Value = app.get("/api/v1/permissions").await.json().await.expect("json");
    let names: Vec<&str> =
        catalog["permissions"].as_array().expect("list").iter().map(|p| p["name"].as_str().expect("name")).collect();
    for expected in ["org:read", "org:delete", "members:manage", "api_keys:manage", "audit:read", "usage:read"] {
        assert!(names.contains(&expected), "{expected} missing");
    }
    let roles: Vec<&str> =
        catalog["builtin_roles"].as_array().expect("roles").iter().map(|r| r["name"].as_str().expect("name")).collect();
    assert_eq!(roles, vec!["owner", "admin", "member", "viewer"]);
    app.stop().await;
}

#[tokio::test]
async fn another_tenant_gets_404_from_every_org_route() {
    let app = spawn_app().await;
    let (owner_id, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (_, outsider) = app.user().await;
    let outsider_org = app.create_org(&outsider).await;
    let routes: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", format!("/api/v1/orgs/{org}"), None),
        ("PATCH", format!("/api/v1/orgs/{org}"), Some(json!({"name": "pwned"}))),
        ("DELETE", format!("/api/v1/orgs/{org}"), None),
        ("GET", format!("/api/v1/orgs/{org}/me"), None),
        ("GET", format!("/api/v1/orgs/{org}/members"), None),
        ("PATCH", format!("/api/v1/orgs/{org}/members/{owner_id}"), Some(json!({"role": "viewer"}))),
        ("DELETE", format!("/api/v1/orgs/{org}/members/{owner_id}"), None),
    ];
    for (method, path, body) in &routes {
        let response = send(&app, method, path, &outsider, body.clone()).await;
        assert_problem(response, 404, "not_found").await;
    }
    // Same answer as for an org that does not exist, or an id that is not one.
    let missing = uuid::Uuid::now_v7();
    assert_problem(app.get_auth(&format!("/api/v1/orgs/{missing}"), &outsider).await, 404, "not_found").await;
    assert_problem(app.get_auth("/api/v1/orgs/not-a-uuid", &outsider).await, 404, "not_found").await;
    // Nothing changed for the real owner, and the outsider's own org is fine.
    let org_now: Value = app.get_auth(&format!("/api/v1/orgs/{org}"), &owner).await.json().await.expect("json");
    assert_eq!(org_now["name"], "Test Org");
    assert_eq!(app.get_auth(&format!("/api/v1/orgs/{outsider_org}"), &outsider).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_member_without_a_permission_gets_403_naming_it() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (viewer_id, viewer) = app.user().await;
    app.add_member(&org, &viewer_id, "viewer").await;
    assert_eq!(app.get_auth(&format!("/api/v1/orgs/{org}"), &viewer).await.status(), 200);
    assert_eq!(app.get_auth(&format!("/api/v1/orgs/{org}/members"), &viewer).await.status(), 200);
    let rename = send(&app, "PATCH", &format!("/api/v1/orgs/{org}"), &viewer, Some(json!({"name": "mine now"}))).await;
    let body = assert_problem(rename, 403, "forbidden").await;
    assert_eq!(body["required_permission"], "org:update");
    let delete = send(&app, "DELETE", &format!("/api/v1/orgs/{org}"), &viewer, None).await;
    assert_problem(delete, 403, "forbidden").await;
    let me: Value = app.get_auth(&format!("/api/v1/orgs/{org}/me"), &viewer).await.json().await.expect("json");
    assert_eq!(me["role"], "viewer");
    assert!(!me["permissions"].as_array().expect("list").iter().any(|p| p == "audit:read"));
    app.stop().await;
}

#[tokio::test]
async fn roles_change_under_the_rules_and_members_can_leave() {
    let app = spawn_app().await;
    let (owner_id, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (admin_id, admin) = app.user().await;
    let (member_id, member) = app.user().await;
    app.add_member(&org, &admin_id, "member").await;
    app.add_member(&org, &member_id, "member").await;

    let promote =
        send(&app, "PATCH", &format!("/api/v1/orgs/{org}/members/{admin_id}"), &owner, Some(json!({"role": "admin"})))
            .await;
    assert_eq!(promote.status(), 200);
    // Admins cannot touch owners, nor create them.
    let demote_owner =
        send(&app, "PATCH", &format!("/api/v1/orgs/{org}/members/{owner_id}"), &admin, Some(json!({"role": "member"})))
            .await;
    assert_problem(demote_owner, 403, "forbidden").await;
    let make_owner =
        send(&app, "PATCH", &format!("/api/v1/orgs/{org}/members/{member_id}"), &admin, Some(json!({"role": "owner"})))
            .await;
    assert_problem(make_owner, 403, "forbidden").await;
    let unknown = send(
        &app,
        "PATCH",
        &format!("/api/v1/orgs/{org}/members/{member_id}"),
        &admin,
        Some(json!({"role": "emperor"})),
    )
    .await;
    assert_problem(unknown, 422, "validation_failed").await;
    // Members cannot manage others, but can leave.
    let kick = send(&app, "DELETE", &format!("/api/v1/orgs/{org}/members/{admin_id}"), &member, None).await;
    assert_problem(kick, 403, "forbidden").await;
    assert_eq!(
        send(&app, "DELETE", &format!("/api/v1/orgs/{org}/members/{member_id}"), &member, None).await.status(),
        204
    );
    assert_problem(app.get_auth(&format!("/api/v1/orgs/{org}"), &member).await, 404, "not_found").await;

    // The last owner can neither leave nor step down; with a second owner they can.
    assert_problem(
        send(&app, "DELETE", &format!("/api/v1/orgs/{org}/members/{owner_id}"), &owner, None).await,
        409,
        "conflict",
    )
    .await;
    let step_down =
        send(&app, "PATCH", &format!("/api/v1/orgs/{org}/members/{owner_id}"), &owner, Some(json!({"role": "admin"})))
            .await;
    assert_problem(step_down, 409, "conflict").await;
    let second =
        send(&app, "PATCH", &format!("/api/v1/orgs/{org}/members/{admin_id}"), &owner, Some(json!({"role": "owner"})))
            .await;
    assert_eq!(second.status(), 200);
    assert_eq!(
        send(&app, "DELETE", &format!("/api/v1/orgs/{org}/members/{owner_id}"), &owner, None).await.status(),
        204
    );
    app.stop().await;
}

#[tokio::test]
async fn two_owners_demoting_each_other_at_once_leave_one_owner() {
    let app = spawn_app().await;
    for _ in 0..5 {
        let (a_id, a) = app.user().await;
        let org = app.create_org(&a).await;
        let (b_id, b) = app.user().await;
        app.add_member(&org, &b_id, "owner").await;
        let a_path = format!("/api/v1/orgs/{org}/members/{b_id}");
        let b_path = format!("/api/v1/orgs/{org}/members/{a_id}");
        let (ra, rb) = tokio::join!(
            send(&app, "PATCH", &a_path, &a, Some(json!({"role": "admin"}))),
            send(&app, "PATCH", &b_path, &b, Some(json!({"role": "admin"})))
        );
        let statuses = [ra.status().as_u16(), rb.status().as_u16()];
        assert!(
            statuses.contains(&200) && statuses.iter().all(|s| *s == 200 || *s == 409 || *s == 403),
            "{statuses:?}"
        );
        let members: Value = app
            .get_auth(&format!("/api/v1/orgs/{org}/members"), if statuses[0] == 200 { &a } else { &b })
            .await
            .json()
            .await
            .expect("json");
        let owners = members["items"].as_array().expect("items").iter().filter(|m| m["role"] == "owner").count();
        assert_eq!(owners, 1, "{members}");
    }
    app.stop().await;
}

#[tokio::test]
async fn members_are_cursor_paginated() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let mut ids = Vec::new();
    for _ in 0..4 {
        let (id, _) = app.user().await;
        app.add_member(&org, &id, "viewer").await;
        ids.push(id);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/orgs/{org}/members?limit=2&cursor={c}"),
            None => format!("/api/v1/orgs/{org}/members?limit=2"),
        };
        let page: Value = app.get_auth(&path, &owner).await.json().await.expect("json");
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|m| m["user_id"].as_str().expect("id").to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5, "owner plus four, each once: {seen:?}");
    for id in &ids {
        assert!(seen.contains(id));
    }
    for bad in ["limit=0", "limit=101", "cursor=garbage", "sort=name"] {
        let response = app.get_auth(&format!("/api/v1/orgs/{org}/members?{bad}"), &owner).await;
        assert_problem(response, 422, "validation_failed").await;
    }
    app.stop().await;
}

#[tokio::test]
async fn the_last_owner_of_an_org_cannot_delete_their_account() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let delete = |token: &str| {
        app.client
            .delete(app.url("/api/v1/users/me"))
            .bearer_auth(token.to_owned())
            .json(&json!({"password": PASSWORD}))
            .send()
    };
    assert_problem(delete(&owner).await.expect("sent"), 409, "conflict").await;
    assert_eq!(send(&app, "DELETE", &format!("/api/v1/orgs/{org}"), &owner, None).await.status(), 204);
    assert_eq!(delete(&owner).await.expect("sent").status(), 204, "with the org gone, the account can go");
    app.stop().await;
}

#[tokio::test]
async fn an_invitation_makes_its_verified_addressee_a_member_once() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let bob = address("bob");
    let invited = app
        .post_json(&format!("/api/v1/orgs/{org}/invitations"), &json!({"email": bob, "role": "member"}), Some(&owner))
        .await;
    assert_eq!(invited.status(), 201);
    let invitation: Value = invited.json().await.expect("json");
    assert_eq!(invitation["role"], "member");
    assert!(invitation.get("token").is_none(), "the token only travels by e-mail");
    let pending: Value =
        app.get_auth(&format!("/api/v1/orgs/{org}/invitations"), &owner).await.json().await.expect("json");
    assert_eq!(pending["items"][0]["email"], bob.as_str());

    let token = app.token_from_mail(&bob, "accept-invitation").await;
    let bob_access = app.verified_user(&bob).await;
    let accepted = app.post_json("/api/v1/invitations/accept", &json!({"token": token}), Some(&bob_access)).await;
    assert_eq!(accepted.status(), 200);
    let membership: Value = accepted.json().await.expect("json");
    assert_eq!(membership["org_id"], org.as_str());
    assert_eq!(membership["role"], "member");
    let me: Value = app.get_auth(&format!("/api/v1/orgs/{org}/me"), &bob_access).await.json().await.expect("json");
    assert_eq!(me["role"], "member");
    let again = app.post_json("/api/v1/invitations/accept", &json!({"token": token}), Some(&bob_access)).await;
    assert_problem(again, 400, "invalid_token").await;
    let pending: Value =
        app.get_auth(&format!("/api/v1/orgs/{org}/invitations"), &owner).await.json().await.expect("json");
    assert_eq!(pending["items"].as_array().expect("items").len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn only_the_invited_verified_address_can_accept() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let carol = address("carol");
    app.post_json(&format!("/api/v1/orgs/{org}/invitations"), &json!({"email": carol, "role": "viewer"}), Some(&owner))
        .await;
    let token = app.token_from_mail(&carol, "accept-invitation").await;

    let mallory = app.verified_user(&address("mallory")).await;
    let stolen = app.post_json("/api/v1/invitations/accept", &json!({"token": token}), Some(&mallory)).await;
    assert_problem(stolen, 403, "forbidden").await;

    app.post_json("/api/v1/auth/register", &json!({"email": carol, "password": PASSWORD}), None).await;
    let unverified = app.login(&carol, PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    let early = app.post_json("/api/v1/invitations/accept", &json!({"token": token}), Some(&unverified)).await;
    assert_problem(early, 403, "email_not_verified").await;

    let verify = app.token_from_mail(&carol, "verify-email").await;
    app.post_json("/api/v1/auth/verify-email", &json!({"token": verify}), None).await;
    let ok = app.post_json("/api/v1/invitations/accept", &json!({"token": token}), Some(&unverified)).await;
    assert_eq!(ok.status(), 200, "failed attempts did not burn the invitation");
    assert_problem(
        app.post_json("/api/v1/invitations/accept", &json!({"token": "forged"}), Some(&mallory)).await,
        400,
        "invalid_token",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn invitations_respect_the_grant_rules() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (admin_id, admin) = app.user().await;
    let (member_id, member) = app.user().await;
    app.add_member(&org, &admin_id, "admin").await;
    app.add_member(&org, &member_id, "member").await;
    let path = format!("/api/v1/orgs/{org}/invitations");
    assert_problem(
        app.post_json(&path, &json!({"email": address("x"), "role": "owner"}), Some(&admin)).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(
        app.post_json(&path, &json!({"email": address("x"), "role": "admin"}), Some(&admin)).await.status(),
        201
    );
    let body = assert_problem(
        app.post_json(&path, &json!({"email": address("x"), "role": "viewer"}), Some(&member)).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(body["required_permission"], "members:invite");
    let me: Value = app.get_auth("/api/v1/users/me", &member).await.json().await.expect("json");
    let existing = me["email"].as_str().expect("email");
    assert_problem(
        app.post_json(&path, &json!({"email": existing, "role": "viewer"}), Some(&owner)).await,
        409,
        "conflict",
    )
    .await;
    assert_problem(
        app.post_json(&path, &json!({"email": "nope", "role": "viewer"}), Some(&owner)).await,
        422,
        "validation_failed",
    )
    .await;
    assert_problem(
        app.post_json(&path, &json!({"email": address("x"), "role": "czar"}), Some(&owner)).await,
        422,
        "validation_failed",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn revoked_replaced_and_expired_invitations_are_dead() {
    let (app, clock) = tenantry_tests::spawn_app_with_manual_clock(&[]).await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let path = format!("/api/v1/orgs/{org}/invitations");
    let dave = address("dave");
    let dave_access = app.verified_user(&dave).await;

    let first: Value =
        app.post_json(&path, &json!({"email": dave, "role": "viewer"}), Some(&owner)).await.json().await.expect("json");
    let first_token = app.token_from_mail(&dave, "accept-invitation").await;
    let revoke = send(&app, "DELETE", &format!("{path}/{}", first["id"].as_str().expect("id")), &owner, None).await;
    assert_eq!(revoke.status(), 204);
    assert_problem(
        app.post_json("/api/v1/invitations/accept", &json!({"token": first_token}), Some(&dave_access)).await,
        400,
        "invalid_token",
    )
    .await;
    assert_problem(
        send(&app, "DELETE", &format!("{path}/{}", first["id"].as_str().expect("id")), &owner, None).await,
        404,
        "not_found",
    )
    .await;

    clock.advance(chrono::Duration::seconds(1));
    app.post_json(&path, &json!({"email": dave, "role": "viewer"}), Some(&owner)).await;
    let second_token = app.token_from_mail(&dave, "accept-invitation").await;
    clock.advance(chrono::Duration::seconds(1));
    app.post_json(&path, &json!({"email": dave, "role": "member"}), Some(&owner)).await;
    let third_token = app.token_from_mail(&dave, "accept-invitation").await;
    assert_ne!(second_token, third_token);
    assert_problem(
        app.post_json("/api/v1/invitations/accept", &json!({"token": second_token}), Some(&dave_access)).await,
        400,
        "invalid_token",
    )
    .await;

    clock.advance(chrono::Duration::days(8));
    let dave_access = app.login(&dave, PASSWORD).await["access_token"].as_str().expect("token").to_owned();
    assert_problem(
        app.post_json("/api/v1/invitations/accept", &json!({"token": third_token}), Some(&dave_access)).await,
        400,
        "invalid_token",
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn custom_roles_grant_exactly_their_permissions_and_follow_renames() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (billing_id, billing) = app.user().await;
    app.add_member(&org, &billing_id, "viewer").await;
    let roles = format!("/api/v1/orgs/{org}/roles");

    let created = app
        .post_json(
            &roles,
            &json!({"name": "auditor", "permissions": ["org:read", "audit:read", "members:read"]}),
            Some(&owner),
        )
        .await;
    assert_eq!(created.status(), 201);
    let role: Value = created.json().await.expect("json");
    assert_eq!(role["permissions"], json!(["org:read", "members:read", "audit:read"]), "catalog order");
    let role_id = role["id"].as_str().expect("id").to_owned();

    let assign = send(
        &app,
        "PATCH",
        &format!("/api/v1/orgs/{org}/members/{billing_id}"),
        &owner,
        Some(json!({"role": "auditor"})),
    )
    .await;
    assert_eq!(assign.status(), 200);
    let me: Value = app.get_auth(&format!("/api/v1/orgs/{org}/me"), &billing).await.json().await.expect("json");
    assert_eq!(me["role"], "auditor");
    assert_eq!(me["permissions"], json!(["org:read", "members:read", "audit:read"]));
    assert_eq!(app.get_auth(&format!("/api/v1/orgs/{org}/members"), &billing).await.status(), 200);
    let rename_org = send(&app, "PATCH", &format!("/api/v1/orgs/{org}"), &billing, Some(json!({"name": "x"}))).await;
    assert_problem(rename_org, 403, "forbidden").await;

    // A rename carries the members along; a role in use cannot be deleted.
    let renamed = send(&app, "PATCH", &format!("{roles}/{role_id}"), &owner, Some(json!({"name": "compliance"}))).await;
    assert_eq!(renamed.status(), 200);
    let me: Value = app.get_auth(&format!("/api/v1/orgs/{org}/me"), &billing).await.json().await.expect("json");
    assert_eq!(me["role"], "compliance");
    assert_problem(send(&app, "DELETE", &format!("{roles}/{role_id}"), &owner, None).await, 409, "conflict").await;
    send(&app, "PATCH", &format!("/api/v1/orgs/{org}/members/{billing_id}"), &owner, Some(json!({"role": "viewer"})))
        .await;
    assert_eq!(send(&app, "DELETE", &format!("{roles}/{role_id}"), &owner, None).await.status(), 204);
    let list: Value = app.get_auth(&roles, &owner).await.json().await.expect("json");
    assert_eq!(list["items"].as_array().expect("items").len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn custom_roles_cannot_escalate_shadow_builtins_or_repeat_names() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (admin_id, admin) = app.user().await;
    let (viewer_id, viewer) = app.user().await;
    app.add_member(&org, &admin_id, "admin").await;
    app.add_member(&org, &viewer_id, "viewer").await;
    let roles = format!("/api/v1/orgs/{org}/roles");
    let escalate =
        app.post_json(&roles, &json!({"name": "deleter", "permissions": ["org:delete"]}), Some(&admin)).await;
    assert_problem(escalate, 403, "forbidden").await;
    let body = assert_problem(
        app.post_json(&roles, &json!({"name": "x1", "permissions": []}), Some(&viewer)).await,
        403,
        "forbidden",
    )
    .await;
    assert_eq!(body["required_permission"], "roles:manage");
    assert_eq!(app.get_auth(&roles, &viewer).await.status(), 200, "viewers may read roles");
    let shadow = app.post_json(&roles, &json!({"name": "owner", "permissions": []}), Some(&owner)).await;
    let body = assert_problem(shadow, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "name");
    let unknown = app.post_json(&roles, &json!({"name": "weird", "permissions": ["org:explode"]}), Some(&owner)).await;
    let body = assert_problem(unknown, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "permissions");
    assert_eq!(
        app.post_json(&roles, &json!({"name": "support", "permissions": ["org:read"]}), Some(&admin)).await.status(),
        201
    );
    assert_problem(
        app.post_json(&roles, &json!({"name": "support", "permissions": []}), Some(&owner)).await,
        409,
        "conflict",
    )
    .await;
    // A custom role may be given by invitation too, and unknown roles are refused.
    let invite = app
        .post_json(
            &format!("/api/v1/orgs/{org}/invitations"),
            &json!({"email": address("s"), "role": "support"}),
            Some(&admin),
        )
        .await;
    assert_eq!(invite.status(), 201);
    let (outsider_id, outsider) = app.user().await;
    let _ = outsider_id;
    assert_problem(app.get_auth(&roles, &outsider).await, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn teams_hold_only_org_members_and_follow_them_out() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (member_id, member) = app.user().await;
    app.add_member(&org, &member_id, "member").await;
    let (stranger_id, _) = app.user().await;
    let teams = format!("/api/v1/orgs/{org}/teams");

    let created = app.post_json(&teams, &json!({"name": "Platform", "description": "infra"}), Some(&owner)).await;
    assert_eq!(created.status(), 201);
    let team_id = created.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    assert_problem(app.post_json(&teams, &json!({"name": "Platform"}), Some(&owner)).await, 409, "conflict").await;
    assert_problem(app.post_json(&teams, &json!({"name": "Ops"}), Some(&member)).await, 403, "forbidden").await;

    let member_path = format!("{teams}/{team_id}/members/{member_id}");
    let stranger_path = format!("{teams}/{team_id}/members/{stranger_id}");
    assert_eq!(send(&app, "PUT", &member_path, &owner, None).await.status(), 204);
    assert_eq!(send(&app, "PUT", &member_path, &owner, None).await.status(), 204, "adding twice is harmless");
    let body = assert_problem(send(&app, "PUT", &stranger_path, &owner, None).await, 422, "validation_failed").await;
    assert_eq!(body["errors"][0]["field"], "user_id");

    let team: Value = app.get_auth(&format!("{teams}/{team_id}"), &member).await.json().await.expect("json");
    assert_eq!(team["member_ids"], json!([member_id]));
    let renamed =
        send(&app, "PATCH", &format!("{teams}/{team_id}"), &owner, Some(json!({"name": "Core", "description": null})))
            .await;
    let renamed: Value = renamed.json().await.expect("json");
    assert_eq!(renamed["name"], "Core");
    assert_eq!(renamed["description"], Value::Null);

    // Leaving the organization means leaving its teams.
    assert_eq!(
        send(&app, "DELETE", &format!("/api/v1/orgs/{org}/members/{member_id}"), &member, None).await.status(),
        204
    );
    let team: Value = app.get_auth(&format!("{teams}/{team_id}"), &owner).await.json().await.expect("json");
    assert_eq!(team["member_ids"], json!([]));
    assert_problem(
        send(&app, "DELETE", &format!("{teams}/{team_id}/members/{member_id}"), &owner, None).await,
        404,
        "not_found",
    )
    .await;
    assert_eq!(send(&app, "DELETE", &format!("{teams}/{team_id}"), &owner, None).await.status(), 204);
    assert_problem(app.get_auth(&format!("{teams}/{team_id}"), &owner).await, 404, "not_found").await;
    app.stop().await;
}

#[tokio::test]
async fn open_invitations_follow_a_role_rename_and_keep_the_role_from_deletion() {
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let roles = format!("/api/v1/orgs/{org}/roles");
    let created = app.post_json(&roles, &json!({"name": "auditor", "permissions": ["org:read"]}), Some(&owner)).await;
    assert_eq!(created.status(), 201);
    let role_id = created.json::<Value>().await.expect("json")["id"].as_str().expect("id").to_owned();
    let bob = address("bob");
    let invited = app
        .post_json(&format!("/api/v1/orgs/{org}/invitations"), &json!({"email": bob, "role": "auditor"}), Some(&owner))
        .await;
    assert_eq!(invited.status(), 201);

    assert_problem(send(&app, "DELETE", &format!("{roles}/{role_id}"), &owner, None).await, 409, "conflict").await;
    let renamed = send(&app, "PATCH", &format!("{roles}/{role_id}"), &owner, Some(json!({"name": "compliance"}))).await;
    assert_eq!(renamed.status(), 200);
    let pending: Value =
        app.get_auth(&format!("/api/v1/orgs/{org}/invitations"), &owner).await.json().await.expect("json");
    assert_eq!(pending["items"][0]["role"], "compliance");

    let token = app.token_from_mail(&bob, "accept-invitation").await;
    let bob_access = app.verified_user(&bob).await;
    let accepted = app.post_json("/api/v1/invitations/accept", &json!({"token": token}), Some(&bob_access)).await;
    assert_eq!(accepted.status(), 200);
    assert_eq!(accepted.json::<Value>().await.expect("json")["role"], "compliance");
    app.stop().await;
}

#[tokio::test]
async fn the_user_store_itself_refuses_to_delete_a_last_owner() {
    use tenantry_ports::UserRepository;
    let app = spawn_app().await;
    let (owner_id, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let (co_id, _) = app.user().await;
    let users = tenantry_adapter_sql::SqlUserRepository::new(app.database().clone());
    let owner_id = owner_id.parse().expect("user id");
    let deletion = tenantry_domain::audit::AccountDeletion::new(
        owner_id,
        tenantry_domain::audit::Origin::default(),
        uuid::Uuid::now_v7(),
        chrono::Utc::now(),
    );
    let owner_id = tenantry_domain::UserId::from_uuid(owner_id);
    // Straight to the adapter, past the application's own check.
    assert!(matches!(
        users.delete(owner_id, &deletion).await,
        Err(tenantry_ports::StoreError::Conflict(tenantry_ports::Conflict::LastOwner))
    ));
    assert!(users.by_id(owner_id).await.expect("read").is_some(), "nothing was deleted");
    let members: Value = app.get_auth(&format!("/api/v1/orgs/{org}/members"), &owner).await.json().await.expect("json");
    assert_eq!(members["items"].as_array().expect("items").len(), 1, "the membership survived the refusal");
    app.add_member(&org, &co_id, "owner").await;
    users.delete(owner_id, &deletion).await.expect("a co-owned org lets the owner go");
    let orgs = SqlOrgRepository::new(app.database().clone());
    assert_eq!(orgs.count_owners(org.parse().expect("org id")).await.expect("count"), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_owner_deleting_their_account_while_the_other_owner_leaves_leaves_one_owner() {
    let app = spawn_app().await;
    let orgs = SqlOrgRepository::new(app.database().clone());
    for _ in 0..5 {
        let (_, a) = app.user().await;
        let org = app.create_org(&a).await;
        let (b_id, b) = app.user().await;
        app.add_member(&org, &b_id, "owner").await;
        let delete_a =
            app.client.delete(app.url("/api/v1/users/me")).bearer_auth(&a).json(&json!({"password": PASSWORD})).send();
        let member = format!("/api/v1/orgs/{org}/members/{b_id}");
        let leave_b = send(&app, "DELETE", &member, &b, None);
        let (deleted, left) = tokio::join!(delete_a, leave_b);
        let statuses = (deleted.expect("sent").status().as_u16(), left.status().as_u16());
        assert!(statuses == (204, 409) || statuses == (409, 204), "exactly one may go: {statuses:?}");
        assert_eq!(orgs.count_owners(org.parse().expect("org id")).await.expect("count"), 1);
    }
    app.stop().await;
}

#[tokio::test]
async fn an_account_deleted_while_it_accepts_an_invitation_leaves_no_member_and_valid_logs() {
    let app = spawn_app().await;
    let (_, owner_a) = app.user().await;
    let (_, owner_b) = app.user().await;
    for _ in 0..5 {
        let (org_a, org_b) = (app.create_org(&owner_a).await, app.create_org(&owner_b).await);
        let email = address("racer");
        let racer = app.verified_user(&email).await;
        let me: Value = app.get_auth("/api/v1/users/me", &racer).await.json().await.expect("json");
        let racer_id = me["id"].as_str().expect("id").to_owned();
        app.add_member(&org_a, &racer_id, "member").await;
        let invited = app
            .post_json(
                &format!("/api/v1/orgs/{org_b}/invitations"),
                &json!({"email": email, "role": "member"}),
                Some(&owner_b),
            )
            .await;
        assert_eq!(invited.status(), 201);
        let token = app.token_from_mail(&email, "accept-invitation").await;
        let body = json!({"token": token});
        let accept = app.post_json("/api/v1/invitations/accept", &body, Some(&racer));
        let delete = app
            .client
            .delete(app.url("/api/v1/users/me"))
            .bearer_auth(&racer)
            .json(&json!({"password": PASSWORD}))
            .send();
        let (accepted, deleted) = tokio::join!(accept, delete);
        assert_eq!(deleted.expect("sent").status(), 204, "the deletion goes through whatever it raced");
        let accepted = accepted.status().as_u16();
        assert!([200, 401, 404].contains(&accepted), "accepting either won or found the account gone: {accepted}");
        for (org, owner) in [(&org_a, &owner_a), (&org_b, &owner_b)] {
            let members: Value =
                app.get_auth(&format!("/api/v1/orgs/{org}/members"), owner).await.json().await.expect("json");
            let ids: Vec<&str> =
                members["items"].as_array().expect("items").iter().filter_map(|m| m["user_id"].as_str()).collect();
            assert!(!ids.contains(&racer_id.as_str()), "the deleted account is a member nowhere: {members}");
            let verified: Value =
                app.get_auth(&format!("/api/v1/orgs/{org}/audit-log/verify"), owner).await.json().await.expect("json");
            assert_eq!(verified["valid"], true);
        }
        if accepted == 200 {
            // It joined org B first, so the deletion recorded leaving it.
            let log: Value = app
                .get_auth(
                    &format!("/api/v1/orgs/{org_b}/audit-log?action=member.removed&actor_id={racer_id}"),
                    &owner_b,
                )
                .await
                .json()
                .await
                .expect("json");
            assert_eq!(log["items"].as_array().expect("items").len(), 1, "{log}");
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_invitation_store_accepts_only_the_role_its_caller_read_and_recorded() {
    use tenantry_ports::InvitationRepository;
    let app = spawn_app().await;
    let (_, owner) = app.user().await;
    let org = app.create_org(&owner).await;
    let created = app
        .post_json(
            &format!("/api/v1/orgs/{org}/roles"),
            &json!({"name": "auditor", "permissions": ["org:read"]}),
            Some(&owner),
        )
        .await;
    assert_eq!(created.status(), 201);
    let invited: Value = app
        .post_json(
            &format!("/api/v1/orgs/{org}/invitations"),
            &json!({"email": address("ann"), "role": "auditor"}),
            Some(&owner),
        )
        .await
        .json()
        .await
        .expect("json");
    let (joiner_id, _) = app.user().await;
    let store = tenantry_adapter_sql::SqlInvitationRepository::new(app.database().clone());
    let org_id: tenantry_domain::OrgId = org.parse().expect("org id");
    let id: tenantry_domain::InvitationId = invited["id"].as_str().expect("id").parse().expect("invitation id");
    let joiner: tenantry_domain::UserId = joiner_id.parse().expect("user id");
    let event = |role: &str| {
        tenantry_domain::audit::AuditEvent::new(
            uuid::Uuid::now_v7(),
            org_id,
            "invitation.accepted",
            (tenantry_domain::audit::ActorKind::User, joiner.as_uuid()),
            ("invitation", Some(id.to_string())),
            tenantry_domain::audit::Origin::default(),
            chrono::Utc::now(),
            &json!({"user_id": joiner_id, "role": role}),
        )
    };
    let before: Value =
        app.get_auth(&format!("/api/v1/orgs/{org}/audit-log/verify"), &owner).await.json().await.expect("json");
    // Read as "auditor-old" (renamed since): refused, and nothing recorded or joined.
    let stale = store
        .accept(org_id, id, "auditor-old", joiner, "owner", None, chrono::Utc::now(), &[event("auditor-old")])
        .await;
    assert!(matches!(stale, Err(tenantry_ports::StoreError::NotFound)), "{stale:?}");
    // Checked as "admin", but the inviter is an owner now: the authority read has changed.
    let moved =
        store.accept(org_id, id, "auditor", joiner, "admin", None, chrono::Utc::now(), &[event("auditor")]).await;
    assert!(matches!(moved, Err(tenantry_ports::StoreError::NotFound)), "{moved:?}");
    let after: Value =
        app.get_auth(&format!("/api/v1/orgs/{org}/audit-log/verify"), &owner).await.json().await.expect("json");
    assert_eq!(after, before, "a refused acceptance writes no entry");
    store
        .accept(org_id, id, "auditor", joiner, "owner", None, chrono::Utc::now(), &[event("auditor")])
        .await
        .expect("accepted as read");
    let members: Value = app.get_auth(&format!("/api/v1/orgs/{org}/members"), &owner).await.json().await.expect("json");
    let roles: Vec<&str> =
        members["items"].as_array().expect("items").iter().filter_map(|m| m["role"].as_str()).collect();
    assert!(roles.contains(&"auditor"), "{members}");
    app.stop().await;
}
