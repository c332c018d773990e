//! [`PersonalDataReader`] on sea-orm: one platform-scoped transaction (the export spans every
//! organization of one person, and only ever runs for that person).

use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder};
use tenantry_domain::audit::ActorKind;
use tenantry_domain::{Email, OrgId, TeamId, UserId};
use tenantry_ports::{MembershipRecord, PersonalDataReader, StoreError, TeamMembershipRecord, TenantFootprint};

use crate::SqlDatabase;
use crate::entities::{api_keys, audit_log, invitations, memberships, orgs, team_members, teams};
use crate::errors::store_error;

/// [`PersonalDataReader`] on SQL.
#[derive(Clone)]
pub struct SqlPersonalDataReader {
    db: SqlDatabase,
}

impl SqlPersonalDataReader {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl PersonalDataReader for SqlPersonalDataReader {
    #[tracing::instrument(name = "adapter.sql.personal.footprint", skip_all)]
    async fn footprint(&self, user_id: UserId, email: &Email) -> Result<TenantFootprint, StoreError> {
        let user = user_id.as_uuid();
        let txn = self.db.platform().await?;
        let joined = memberships::Entity::find()
            .filter(memberships::Column::UserId.eq(user))
            .order_by_asc(memberships::Column::OrgId)
            .all(&txn)
            .await
            .map_err(store_error)?;
        let org_ids: Vec<uuid::Uuid> = joined.iter().map(|m| m.org_id).collect();
        let org_rows =
            orgs::Entity::find().filter(orgs::Column::Id.is_in(org_ids)).all(&txn).await.map_err(store_error)?;
        let memberships = joined
            .into_iter()
            .map(|membership| MembershipRecord {
                org_id: OrgId::from_uuid(membership.org_id),
                org_name: org_rows
                    .iter()
                    .find(|o| o.id == membership.org_id)
                    .map(|o| o.name.clone())
                    .unwrap_or_default(),
                role: membership.role,
                joined_at: membership.created_at,
            })
            .collect();
        let in_teams = team_members::Entity::find()
            .filter(team_members::Column::UserId.eq(user))
            .order_by_asc(team_members::Column::TeamId)
            .all(&txn)
            .await
            .map_err(store_error)?;
        let team_ids: Vec<uuid::Uuid> = in_teams.iter().map(|m| m.team_id).collect();
        let team_rows =
            teams::Entity::find().filter(teams::Column::Id.is_in(team_ids)).all(&txn).await.map_err(store_error)?;
        let team_memberships = in_teams
            .into_iter()
            .map(|member| TeamMembershipRecord {
                org_id: OrgId::from_uuid(member.org_id),
                team_id: TeamId::from_uuid(member.team_id),
                team_name: team_rows
                    .iter()
                    .find(|t| t.id == member.team_id)
                    .map(|t| t.name.clone())
                    .unwrap_or_default(),
                added_at: member.created_at,
            })
            .collect();
        let sent = invitations::Entity::find()
            .filter(invitations::Column::InvitedBy.eq(user))
            .order_by_asc(invitations::Column::Id)
            .all(&txn)
            .await
            .map_err(store_error)?;
        let received = invitations::Entity::find()
            .filter(invitations::Column::Email.eq(email.as_str()))
            .order_by_asc(invitations::Column::Id)
            .all(&txn)
            .await
            .map_err(store_error)?;
        let keys = api_keys::Entity::find()
            .filter(api_keys::Column::CreatedBy.eq(user))
            .order_by_asc(api_keys::Column::Id)
            .all(&txn)
            .await
            .map_err(store_error)?;
        let entries = audit_log::Entity::find()
            .filter(
                Condition::any()
                    .add(
                        Condition::all()
                            .add(audit_log::Column::ActorType.eq(ActorKind::User.as_str()))
                            .add(audit_log::Column::ActorId.eq(user)),
                    )
                    .add(
                        Condition::all()
                            .add(audit_log::Column::TargetType.eq("user"))
                            .add(audit_log::Column::TargetId.eq(user_id.to_string())),
                    ),
            )
            .order_by_asc(audit_log::Column::CreatedAt)
            .order_by_asc(audit_log::Column::Id)
            .all(&txn)
            .await
            .map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        Ok(TenantFootprint {
            memberships,
            team_memberships,
            invitations_sent: sent.into_iter().map(crate::invitations::invitation_from).collect::<Result<_, _>>()?,
            invitations_received: received
                .into_iter()
                .map(crate::invitations::invitation_from)
                .collect::<Result<_, _>>()?,
            api_keys_created: keys
                .into_iter()
                .map(|model| crate::api_keys::key_from(model).map(|(key, _)| key))
                .collect::<Result<_, _>>()?,
            audit_entries: entries.into_iter().map(crate::audit::entry_from).collect(),
        })
    }
}
