//! `/api/v1/orgs/{org_id}/teams*`.

use actix_web::HttpResponse;
use actix_web::web::{self, Data, ServiceConfig};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tenantry_domain::{TeamId, UserId};
use tenantry_ports::Team;
use validator::Validate;

use crate::http::page::{ApiQuery, PageQuery};
use crate::http::rules;
use utoipa::ToSchema;

use crate::http::org::{InOrg, TeamsManage, TeamsRead, tenancy_error};
use crate::http::{ApiError, ApiJson};
use crate::state::AppState;

/// Registers the team routes.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        web::scope("/api/v1/orgs/{org_id}/teams")
            .service(web::resource("").route(web::get().to(list)).route(web::post().to(create)))
            .service(
                web::resource("/{team_id}")
                    .route(web::get().to(get))
                    .route(web::patch().to(update))
                    .route(web::delete().to(delete)),
            )
            .service(
                web::resource("/{team_id}/members/{user_id}")
                    .route(web::put().to(add_member))
                    .route(web::delete().to(remove_member)),
            ),
    );
}

/// A team.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamResponse {
    /// Id.
    pub id: String,
    /// Name, unique in the organization.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Member user ids, in join order.
    pub member_ids: Vec<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl From<Team> for TeamResponse {
    fn from(team: Team) -> Self {
        Self {
            id: team.id.to_string(),
            name: team.name,
            description: team.description,
            member_ids: team.members.iter().map(ToString::to_string).collect(),
            created_at: team.created_at,
            updated_at: team.updated_at,
        }
    }
}

/// The organization's teams.
#[derive(Debug, Serialize, ToSchema)]
pub struct TeamList {
    /// By name.
    pub items: Vec<TeamResponse>,
    /// Always null: one page.
    pub next_cursor: Option<String>,
}

/// `POST /teams`.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct CreateTeamRequest {
    /// 1–100 characters, unique in the organization.
    #[schema(example = "Platform")]
    #[validate(custom(function = "rules::team_name"))]
    pub name: String,
    /// Up to 500 characters.
    #[validate(length(max = 500, message = "must be at most 500 characters"))]
    pub description: Option<String>,
}

/// `PATCH /teams/{team_id}`: absent fields stay.
#[derive(Debug, Deserialize, ToSchema, Validate)]
#[serde(deny_unknown_fields)]
pub struct UpdateTeamRequest {
    /// New name.
    #[validate(custom(function = "rules::team_name"))]
    pub name: Option<String>,
    /// New description; `null` clears it.
    #[serde(default, deserialize_with = "crate::http::rules::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

/// Teams (`teams:read`).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/teams", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), PageQuery), responses((status = 200, body = TeamList)))]
pub async fn list(
    state: Data<AppState>,
    scope: InOrg<TeamsRead>,
    query: ApiQuery<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page::<String>(&state.cursors, "teams")?;
    let found = state.teams.list(&scope.access, page.after.clone(), page.fetch()).await.map_err(tenancy_error)?;
    let page = state.cursors.finish("teams", found, &page, |team| team.name.clone())?;
    Ok(HttpResponse::Ok().json(page.map(TeamResponse::from)))
}

/// Creates a team (`teams:manage`).
#[utoipa::path(post, path = "/api/v1/orgs/{org_id}/teams", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path)), request_body = CreateTeamRequest, responses((status = 201, body = TeamResponse), (status = 409, body = crate::http::error::Problem)))]
pub async fn create(
    state: Data<AppState>,
    scope: InOrg<TeamsManage>,
    body: ApiJson<CreateTeamRequest>,
) -> Result<HttpResponse, ApiError> {
    let team =
        state.teams.create(&scope.access, &body.name, body.description.as_deref()).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Created().json(TeamResponse::from(team)))
}

/// One team (`teams:read`).
#[utoipa::path(get, path = "/api/v1/orgs/{org_id}/teams/{team_id}", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), ("team_id" = String, Path)), responses((status = 200, body = TeamResponse), (status = 404, body = crate::http::error::Problem)))]
pub async fn get(
    state: Data<AppState>,
    scope: InOrg<TeamsRead>,
    path: web::Path<(String, TeamId)>,
) -> Result<HttpResponse, ApiError> {
    let team = state.teams.get(&scope.access, path.into_inner().1).await.map_err(tenancy_error)?;
    Ok(HttpResponse::Ok().json(TeamResponse::from(team)))
}

/// Renames a team or changes its description (`teams:manage`).
#[utoipa::path(patch, path = "/api/v1/orgs/{org_id}/teams/{team_id}", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), ("team_id" = String, Path)), request_body = UpdateTeamRequest, responses((status = 200, body = TeamResponse)))]
pub async fn update(
    state: Data<AppState>,
    scope: InOrg<TeamsManage>,
    path: web::Path<(String, TeamId)>,
    body: ApiJson<UpdateTeamRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let description = body.description.as_ref().map(|d| d.as_deref());
    let team = state
        .teams
        .update(&scope.access, path.into_inner().1, body.name.as_deref(), description)
        .await
        .map_err(tenancy_error)?;
    Ok(HttpResponse::Ok().json(TeamResponse::from(team)))
}

/// Deletes a team (`teams:manage`).
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/teams/{team_id}", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), ("team_id" = String, Path)), responses((status = 204)))]
pub async fn delete(
    state: Data<AppState>,
    scope: InOrg<TeamsManage>,
    path: web::Path<(String, TeamId)>,
) -> Result<HttpResponse, ApiError> {
    state.teams.delete(&scope.access, path.into_inner().1).await.map_err(tenancy_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Adds an organization member to the team (`teams:manage`).
#[utoipa::path(put, path = "/api/v1/orgs/{org_id}/teams/{team_id}/members/{user_id}", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), ("team_id" = String, Path), ("user_id" = String, Path)), responses((status = 204), (status = 422, description = "Not a member of the organization.", body = crate::http::error::Problem)))]
pub async fn add_member(
    state: Data<AppState>,
    scope: InOrg<TeamsManage>,
    path: web::Path<(String, TeamId, UserId)>,
) -> Result<HttpResponse, ApiError> {
    let (_, team_id, user_id) = path.into_inner();
    state.teams.add_member(&scope.access, team_id, user_id).await.map_err(tenancy_error)?;
    Ok(HttpResponse::NoContent().finish())
}

/// Removes a user from the team (`teams:manage`).
#[utoipa::path(delete, path = "/api/v1/orgs/{org_id}/teams/{team_id}/members/{user_id}", tag = "orgs", security(("bearer" = [])), params(("org_id" = String, Path), ("team_id" = String, Path), ("user_id" = String, Path)), responses((status = 204), (status = 404, body = crate::http::error::Problem)))]
pub async fn remove_member(
    state: Data<AppState>,
    scope: InOrg<TeamsManage>,
    path: web::Path<(String, TeamId, UserId)>,
) -> Result<HttpResponse, ApiError> {
    let (_, team_id, user_id) = path.into_inner();
    state.teams.remove_member(&scope.access, team_id, user_id).await.map_err(tenancy_error)?;
    Ok(HttpResponse::NoContent().finish())
}
