//! `--self-test`: drives the service's own routes over HTTP, as a client would, and fails
//! with the first thing that is not as expected.

use anyhow::{Context as _, bail, ensure};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::wiring::ENDPOINTS_PER_ORG;

/// One call: the status and the JSON body (`null` when there is none).
async fn call(
    client: &Client,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let mut request = match method {
        "GET" => client.get(url),
        "POST" => client.post(url),
        other => bail!("unsupported method {other}"),
    };
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.with_context(|| format!("{method} {url}"))?;
    let status = response.status();
    let text = response.text().await.with_context(|| format!("{method} {url}: the body"))?;
    let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    Ok((status, value))
}

/// Expects `status` from a call, answering its body.
async fn expect(
    client: &Client,
    status: StatusCode,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let (got, value) = call(client, method, url, token, body).await?;
    ensure!(got == status, "{method} {url}: expected {status}, got {got}: {value}");
    Ok(value)
}

/// Sign-up, sign-in, an organization, its listing, its usage, webhook endpoints up to the
/// plan's quota and one past it, and the service's own table.
///
/// # Errors
/// The first unexpected answer.
pub async fn drive(base: &str) -> anyhow::Result<()> {
    let client = Client::builder().build().context("the HTTP client")?;
    let url = |path: &str| format!("{base}{path}");
    let tag = uuid::Uuid::now_v7().simple().to_string();
    let credentials =
        json!({ "email": format!("embed-{tag}@example.com"), "password": "a long enough pass phrase 42" });

    expect(&client, StatusCode::CREATED, "POST", &url("/signup"), None, Some(credentials.clone())).await?;
    expect(&client, StatusCode::CONFLICT, "POST", &url("/signup"), None, Some(credentials.clone())).await?;
    let wrong = json!({ "email": credentials["email"], "password": "not the password at all 42" });
    expect(&client, StatusCode::UNAUTHORIZED, "POST", &url("/login"), None, Some(wrong)).await?;
    let tokens = expect(&client, StatusCode::OK, "POST", &url("/login"), None, Some(credentials)).await?;
    let token = tokens["access_token"].as_str().context("an access token")?.to_owned();
    let token = Some(token.as_str());

    expect(&client, StatusCode::UNAUTHORIZED, "GET", &url("/me/orgs"), None, None).await?;
    let slug = format!("embed-{}", &tag[tag.len() - 12..]);
    let org = expect(
        &client,
        StatusCode::CREATED,
        "POST",
        &url("/orgs"),
        token,
        Some(json!({ "name": "Embedded", "slug": slug })),
    )
    .await?;
    let org_id = org["id"].as_str().context("an org id")?.to_owned();
    let mine = expect(&client, StatusCode::OK, "GET", &url("/me/orgs"), token, None).await?;
    ensure!(
        mine.as_array().is_some_and(|orgs| orgs.iter().any(|o| o["id"] == org_id.as_str() && o["role"] == "owner")),
        "GET /me/orgs lists the new org with the owner role: {mine}"
    );

    let usage = expect(&client, StatusCode::OK, "GET", &url(&format!("/orgs/{org_id}/usage")), token, None).await?;
    ensure!(usage["quotas"]["webhook_endpoints"]["limit"] == ENDPOINTS_PER_ORG, "the plan's limit: {usage}");
    let hooks = url(&format!("/orgs/{org_id}/webhooks"));
    let endpoint = json!({ "url": "https://hooks.example.com/tenantry" });
    for _ in 0..ENDPOINTS_PER_ORG {
        let created = expect(&client, StatusCode::CREATED, "POST", &hooks, token, Some(endpoint.clone())).await?;
        ensure!(created["secret"].as_str().is_some_and(|s| s.starts_with("whsec_")), "a signing secret: {created}");
    }
    let refused = expect(&client, StatusCode::FORBIDDEN, "POST", &hooks, token, Some(endpoint)).await?;
    ensure!(refused["code"] == "quota_exceeded", "one endpoint past the plan is refused by the quota: {refused}");
    let usage = expect(&client, StatusCode::OK, "GET", &url(&format!("/orgs/{org_id}/usage")), token, None).await?;
    ensure!(usage["quotas"]["webhook_endpoints"]["used"] == ENDPOINTS_PER_ORG, "usage counts the endpoints: {usage}");

    let stranger = uuid::Uuid::now_v7();
    expect(&client, StatusCode::NOT_FOUND, "GET", &url(&format!("/orgs/{stranger}/usage")), token, None).await?;
    let stats = expect(&client, StatusCode::OK, "GET", &url("/stats"), None, None).await?;
    ensure!(stats["signups"].as_i64().is_some_and(|n| n >= 1), "the service's own table, same pool: {stats}");
    Ok(())
}
