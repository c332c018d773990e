//! The service's own routes: thin handlers that parse, call one Tenantry use case, and map
//! the result — the service chooses its own paths, bodies and error shape.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::web::{self, Data, Json, Path};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, ResponseError};
use serde::Deserialize;
use serde_json::json;
use tenantry_application::{AuthError, ClientInfo, Principal, QuotaError, TenancyError};
use tenantry_domain::OrgId;
use tenantry_domain::audit::Origin;
use uuid::Uuid;

use crate::wiring::State;

/// Starts the routes on `listener` (already bound, so a test can take port 0).
///
/// # Errors
/// When actix-web cannot take over the listener.
pub fn serve(listener: TcpListener, state: State) -> std::io::Result<Server> {
    let state = Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/signup", web::post().to(signup))
            .route("/login", web::post().to(login))
            .route("/orgs", web::post().to(create_org))
            .route("/me/orgs", web::get().to(my_orgs))
            .route("/orgs/{org_id}/usage", web::get().to(usage))
            .route("/orgs/{org_id}/webhooks", web::post().to(create_webhook))
            .route("/stats", web::get().to(stats))
    })
    .workers(2)
    .listen(listener)?
    .run();
    Ok(server)
}

/// The service's error answer: `{"code": …}` with a status. Internal causes are logged,
/// never sent.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    code: &'static str,
}

impl Failure {
    fn new(status: StatusCode, code: &'static str) -> Self {
        Self { status, code }
    }

    fn internal(cause: &dyn std::fmt::Display) -> Self {
        eprintln!("embed-postgres: internal error: {cause}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal")
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code)
    }
}

impl ResponseError for Failure {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({ "code": self.code }))
    }
}

impl From<AuthError> for Failure {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Invalid { .. } | AuthError::WeakPassword(_) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid")
            }
            AuthError::EmailTaken => Self::new(StatusCode::CONFLICT, "email_taken"),
            AuthError::InvalidCredentials | AuthError::Unauthenticated | AuthError::InvalidToken => {
                Self::new(StatusCode::UNAUTHORIZED, "unauthenticated")
            }
            AuthError::Locked { .. } => Self::new(StatusCode::TOO_MANY_REQUESTS, "locked"),
            other => Self::internal(&other),
        }
    }
}

impl From<TenancyError> for Failure {
    fn from(err: TenancyError) -> Self {
        match err {
            TenancyError::Invalid { .. } => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            TenancyError::NotFound => Self::new(StatusCode::NOT_FOUND, "not_found"),
            TenancyError::Forbidden(_) => Self::new(StatusCode::FORBIDDEN, "forbidden"),
            TenancyError::SlugTaken => Self::new(StatusCode::CONFLICT, "slug_taken"),
            TenancyError::QuotaExceeded(_) => Self::new(StatusCode::FORBIDDEN, "quota_exceeded"),
            other => Self::internal(&other),
        }
    }
}

impl From<QuotaError> for Failure {
    fn from(err: QuotaError) -> Self {
        match err {
            QuotaError::NotFound => Self::new(StatusCode::NOT_FOUND, "not_found"),
            QuotaError::Exceeded(_) => Self::new(StatusCode::FORBIDDEN, "quota_exceeded"),
            other => Self::internal(&other),
        }
    }
}

/// The signed-in caller, from `Authorization: Bearer <access token>`.
async fn principal(state: &State, request: &HttpRequest) -> Result<Principal, Failure> {
    let token = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| Failure::new(StatusCode::UNAUTHORIZED, "unauthenticated"))?;
    Ok(state.auth.authenticate(token).await?)
}

/// An org id from the path; a malformed one is as unknown as a missing one.
fn org_id(raw: &str) -> Result<OrgId, Failure> {
    Uuid::parse_str(raw).map(OrgId::from_uuid).map_err(|_| Failure::new(StatusCode::NOT_FOUND, "not_found"))
}

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: String,
}

async fn signup(state: Data<State>, body: Json<Credentials>) -> Result<HttpResponse, Failure> {
    let user = state.auth.register(&body.email, &body.password, None).await?;
    // The service's own bookkeeping, on the pool Tenantry shares.
    sea_orm::sqlx::query("INSERT INTO embed_signups (user_id) VALUES ($1) ON CONFLICT DO NOTHING")
        .bind(user.id.as_uuid())
        .execute(&state.pool)
        .await
        .map_err(|err| Failure::internal(&err))?;
    Ok(HttpResponse::Created().json(json!({ "id": user.id.to_string(), "email": user.email.as_str() })))
}

async fn login(state: Data<State>, request: HttpRequest, body: Json<Credentials>) -> Result<HttpResponse, Failure> {
    let client = ClientInfo {
        user_agent: request.headers().get("user-agent").and_then(|v| v.to_str().ok()).map(str::to_owned),
        ip: request.peer_addr().map(|addr| addr.ip().to_string()),
    };
    let tokens = state.auth.login(&body.email, &body.password, None, &client).await?;
    Ok(HttpResponse::Ok().json(json!({ "access_token": tokens.access_token, "expires_in": tokens.expires_in })))
}

#[derive(Deserialize)]
struct NewOrg {
    name: String,
    slug: String,
}

async fn create_org(state: Data<State>, request: HttpRequest, body: Json<NewOrg>) -> Result<HttpResponse, Failure> {
    let principal = principal(&state, &request).await?;
    let org = state.tenancy.create_org(principal, Origin::default(), &body.name, &body.slug).await?;
    Ok(HttpResponse::Created().json(json!({ "id": org.id.to_string(), "slug": org.slug.as_str(), "plan": org.plan })))
}

async fn my_orgs(state: Data<State>, request: HttpRequest) -> Result<HttpResponse, Failure> {
    let principal = principal(&state, &request).await?;
    let orgs = state.tenancy.my_orgs(principal, None, 100).await?;
    let orgs: Vec<_> = orgs
        .into_iter()
        .map(|(org, role)| json!({ "id": org.id.to_string(), "name": org.name, "slug": org.slug.as_str(), "role": role }))
        .collect();
    Ok(HttpResponse::Ok().json(orgs))
}

async fn usage(state: Data<State>, request: HttpRequest, path: Path<String>) -> Result<HttpResponse, Failure> {
    let principal = principal(&state, &request).await?;
    let access = state.tenancy.access(principal, org_id(&path)?).await?;
    let report = state.quotas.usage(access.org_id).await?;
    let quotas: serde_json::Map<String, serde_json::Value> = report
        .quotas
        .iter()
        .map(|q| (q.quota.as_str().to_owned(), json!({ "used": q.used, "limit": q.limit })))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "plan": report.plan, "quotas": quotas })))
}

#[derive(Deserialize)]
struct NewWebhook {
    url: String,
}

async fn create_webhook(
    state: Data<State>,
    request: HttpRequest,
    path: Path<String>,
    body: Json<NewWebhook>,
) -> Result<HttpResponse, Failure> {
    let principal = principal(&state, &request).await?;
    let access = state.tenancy.access(principal, org_id(&path)?).await?;
    let created = state.webhooks.create(&access, &body.url, Vec::new(), None).await?;
    Ok(HttpResponse::Created().json(json!({ "id": created.endpoint.id.to_string(), "secret": created.secret })))
}

/// Reads the service's own table through the shared pool.
async fn stats(state: Data<State>) -> Result<HttpResponse, Failure> {
    let (signups,): (i64,) = sea_orm::sqlx::query_as("SELECT count(*) FROM embed_signups")
        .fetch_one(&state.pool)
        .await
        .map_err(|err| Failure::internal(&err))?;
    Ok(HttpResponse::Ok().json(json!({ "signups": signups })))
}
