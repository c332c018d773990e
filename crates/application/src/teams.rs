//! Teams: named groups of an organization's members.

use std::sync::Arc;

use serde_json::json;
use tenantry_domain::tenancy::Permission;
use tenantry_domain::{TeamId, UserId};
use tenantry_ports::{Clock, Conflict, IdGenerator, OrgRepository, StoreError, Team, TeamRepository};

use crate::tenancy::{OrgAccess, TenancyError};

/// The team use cases: reads behind `teams:read`, changes behind `teams:manage`, each change
/// audited in the organization's log; only members of the organization can join its teams.
pub struct TeamService {
    teams: Arc<dyn TeamRepository>,
    orgs: Arc<dyn OrgRepository>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

fn valid_name(name: &str) -> Result<String, TenancyError> {
    tenantry_domain::TeamName::parse(name)
        .map(String::from)
        .map_err(|err| TenancyError::Invalid { field: "name", message: err.to_string() })
}

fn valid_description(description: Option<&str>) -> Result<Option<String>, TenancyError> {
    match description.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) if text.chars().count() <= 500 => Ok(Some(text.to_owned())),
        Some(_) => {
            Err(TenancyError::Invalid { field: "description", message: "must be at most 500 characters".to_owned() })
        }
    }
}

fn conflict_or(err: StoreError) -> TenancyError {
    match err {
        StoreError::Conflict(Conflict::TeamNameTaken) => TenancyError::TeamNameTaken,
        StoreError::NotFound => TenancyError::NotFound,
        other => other.into(),
    }
}

impl TeamService {
    /// Wires the service; `orgs` is there to check that a user joining a team is a member.
    pub fn new(
        teams: Arc<dyn TeamRepository>,
        orgs: Arc<dyn OrgRepository>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self { teams, orgs, clock, ids }
    }

    fn ports(&self) -> (&dyn IdGenerator, &dyn Clock) {
        (self.ids.as_ref(), self.clock.as_ref())
    }

    /// The organization's teams (`teams:read`).
    ///
    /// # Errors
    /// `Forbidden`, `Dependency`.
    pub async fn list(&self, access: &OrgAccess, after: Option<String>, limit: u32) -> Result<Vec<Team>, TenancyError> {
        access.require(Permission::TeamsRead)?;
        Ok(self.teams.list(access.org_id, after, limit).await?)
    }

    /// One team (`teams:read`).
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Dependency`.
    pub async fn get(&self, access: &OrgAccess, id: TeamId) -> Result<Team, TenancyError> {
        access.require(Permission::TeamsRead)?;
        self.teams.get(access.org_id, id).await?.ok_or(TenancyError::NotFound)
    }

    /// Creates a team (`teams:manage`).
    ///
    /// # Errors
    /// `Forbidden`, `Invalid`, `TeamNameTaken`, `Dependency`.
    pub async fn create(
        &self,
        access: &OrgAccess,
        name: &str,
        description: Option<&str>,
    ) -> Result<Team, TenancyError> {
        access.require(Permission::TeamsManage)?;
        let now = self.clock.now();
        let team = Team {
            id: TeamId::from_uuid(self.ids.new_id()),
            org_id: access.org_id,
            name: valid_name(name)?,
            description: valid_description(description)?,
            members: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        let event = access.event(
            self.ports(),
            "team.created",
            ("team", Some(team.id.to_string())),
            &json!({"name": team.name, "description": team.description}),
        );
        self.teams.create(&team, &event).await.map_err(conflict_or)?;
        Ok(team)
    }

    /// Renames a team or changes its description (`teams:manage`); absent fields stay.
    ///
    /// # Errors
    /// `Forbidden`, `Invalid`, `NotFound`, `TeamNameTaken`, `Dependency`.
    pub async fn update(
        &self,
        access: &OrgAccess,
        id: TeamId,
        name: Option<&str>,
        description: Option<Option<&str>>,
    ) -> Result<Team, TenancyError> {
        access.require(Permission::TeamsManage)?;
        let team = self.teams.get(access.org_id, id).await?.ok_or(TenancyError::NotFound)?;
        let name = name.map(valid_name).transpose()?.unwrap_or_else(|| team.name.clone());
        let description = match description {
            None => team.description.clone(),
            Some(text) => valid_description(text)?,
        };
        let event = access.event(
            self.ports(),
            "team.updated",
            ("team", Some(id.to_string())),
            &json!({"name": [team.name, name], "description": [team.description, description]}),
        );
        self.teams
            .update(access.org_id, id, &name, description, self.clock.now(), &event)
            .await
            .map_err(conflict_or)?;
        self.get(access, id).await
    }

    /// Deletes a team (`teams:manage`).
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Dependency`.
    pub async fn delete(&self, access: &OrgAccess, id: TeamId) -> Result<(), TenancyError> {
        access.require(Permission::TeamsManage)?;
        let event = access.event(self.ports(), "team.deleted", ("team", Some(id.to_string())), &json!({}));
        self.teams.delete(access.org_id, id, &event).await.map_err(conflict_or)?;
        Ok(())
    }

    /// Adds an organization member to a team (`teams:manage`).
    ///
    /// # Errors
    /// `Forbidden`, `NotFound` (team), `Invalid` (not an org member), `Dependency`.
    pub async fn add_member(&self, access: &OrgAccess, id: TeamId, user_id: UserId) -> Result<(), TenancyError> {
        access.require(Permission::TeamsManage)?;
        if self.orgs.role_of(access.org_id, user_id).await?.is_none() {
            return Err(TenancyError::Invalid {
                field: "user_id",
                message: "is not a member of the organization".to_owned(),
            });
        }
        let event = access.event(
            self.ports(),
            "team.member_added",
            ("team", Some(id.to_string())),
            &json!({"user_id": user_id.to_string()}),
        );
        self.teams.add_member(access.org_id, id, user_id, self.clock.now(), &event).await.map_err(conflict_or)?;
        Ok(())
    }

    /// Removes a user from a team (`teams:manage`).
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Dependency`.
    pub async fn remove_member(&self, access: &OrgAccess, id: TeamId, user_id: UserId) -> Result<(), TenancyError> {
        access.require(Permission::TeamsManage)?;
        let event = access.event(
            self.ports(),
            "team.member_removed",
            ("team", Some(id.to_string())),
            &json!({"user_id": user_id.to_string()}),
        );
        if !self.teams.remove_member(access.org_id, id, user_id, &event).await? {
            return Err(TenancyError::NotFound);
        }
        Ok(())
    }
}
