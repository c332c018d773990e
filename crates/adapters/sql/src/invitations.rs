//! [`InvitationRepository`] on sea-orm.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::{Email, InvitationId, OrgId, UserId};
use tenantry_ports::{Conflict, Invitation, InvitationRepository, QueuedMail, StoreError};

use crate::SqlDatabase;
use crate::database::Scope;
use crate::entities::{invitations, memberships};
use crate::errors::{account_gone, store_error};

/// [`InvitationRepository`] on SQL.
#[derive(Clone)]
pub struct SqlInvitationRepository {
    db: SqlDatabase,
}

impl SqlInvitationRepository {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }
}

pub(crate) fn invitation_from(model: invitations::Model) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        id: InvitationId::from_uuid(model.id),
        org_id: OrgId::from_uuid(model.org_id),
        email: Email::parse(&model.email)
            .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("stored email is invalid")))?,
        role: model.role,
        invited_by: UserId::from_uuid(model.invited_by),
        created_at: model.created_at,
        expires_at: model.expires_at,
        accepted_at: model.accepted_at,
        revoked_at: model.revoked_at,
    })
}

#[async_trait::async_trait]
impl InvitationRepository for SqlInvitationRepository {
    #[tracing::instrument(name = "adapter.sql.invitations.create", skip_all, fields(org_id = %invitation.org_id))]
    async fn create(
        &self,
        invitation: &Invitation,
        token_hash: &str,
        seat_limit: Option<u64>,
        audit: &AuditEvent,
        mails: &[QueuedMail],
    ) -> Result<(), StoreError> {
        let txn = self.db.tenant(invitation.org_id).await?;
        // The audit head is the org's write lock: seats counted after it cannot change
        // before this transaction commits.
        crate::audit::append(&txn, audit).await?;
        invitations::Entity::update_many()
            .col_expr(invitations::Column::RevokedAt, Expr::value(invitation.created_at))
            .filter(invitations::Column::OrgId.eq(invitation.org_id.as_uuid()))
            .filter(invitations::Column::Email.eq(invitation.email.as_str()))
            .filter(invitations::Column::AcceptedAt.is_null())
            .filter(invitations::Column::RevokedAt.is_null())
            .exec(&txn)
            .await
            .map_err(store_error)?;
        invitations::Entity::insert(invitations::ActiveModel {
            id: Set(invitation.id.as_uuid()),
            org_id: Set(invitation.org_id.as_uuid()),
            email: Set(invitation.email.as_str().to_owned()),
            role: Set(invitation.role.clone()),
            token_hash: Set(token_hash.to_owned()),
            invited_by: Set(invitation.invited_by.as_uuid()),
            created_at: Set(invitation.created_at),
            expires_at: Set(invitation.expires_at),
            accepted_at: Set(None),
            revoked_at: Set(None),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(store_error)?;
        if let Some(limit) = seat_limit {
            let (members, pending) = seats(&txn, invitation.org_id, invitation.created_at).await?;
            // The new invitation is among the pending ones now.
            if members + pending > limit {
                return Err(StoreError::LimitReached { used: members + pending - 1 });
            }
        }
        crate::mail::queue(&txn, mails).await?;
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.invitations.list_pending", skip_all, fields(org_id = %org_id))]
    async fn list_pending(
        &self,
        org_id: OrgId,
        now: DateTime<Utc>,
        before: Option<InvitationId>,
        limit: u32,
    ) -> Result<Vec<Invitation>, StoreError> {
        let mut query = invitations::Entity::find()
            .filter(invitations::Column::OrgId.eq(org_id.as_uuid()))
            .filter(invitations::Column::AcceptedAt.is_null())
            .filter(invitations::Column::RevokedAt.is_null())
            .filter(invitations::Column::ExpiresAt.gt(now));
        if let Some(before) = before {
            query = query.filter(invitations::Column::Id.lt(before.as_uuid()));
        }
        // Ids are UUIDv7: id order is creation order, and a total one for the cursor.
        let query = query.order_by_desc(invitations::Column::Id).limit(u64::from(limit));
        let models = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.all(txn).await })).await?;
        models.into_iter().map(invitation_from).collect()
    }

    #[tracing::instrument(name = "adapter.sql.invitations.revoke", skip_all, fields(org_id = %org_id))]
    async fn revoke(
        &self,
        org_id: OrgId,
        id: InvitationId,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let revoke = invitations::Entity::update_many()
            .col_expr(invitations::Column::RevokedAt, Expr::value(now))
            .filter(invitations::Column::OrgId.eq(org_id.as_uuid()))
            .filter(invitations::Column::Id.eq(id.as_uuid()))
            .filter(invitations::Column::AcceptedAt.is_null())
            .filter(invitations::Column::RevokedAt.is_null());
        crate::audit::audited_single_row(&self.db, org_id, audit, |txn| {
            Box::pin(async move { Ok(revoke.exec(txn).await?.rows_affected) })
        })
        .await
    }

    #[tracing::instrument(name = "adapter.sql.invitations.by_token", skip_all)]
    async fn by_token(&self, token_hash: &str) -> Result<Option<Invitation>, StoreError> {
        // The token is the capability and names no tenant until it is found.
        let query = invitations::Entity::find().filter(invitations::Column::TokenHash.eq(token_hash));
        let model = self.db.read(Scope::Platform, |txn| Box::pin(async move { query.one(txn).await })).await?;
        model.map(invitation_from).transpose()
    }

    #[tracing::instrument(name = "adapter.sql.invitations.pending_from", skip_all, fields(org_id = %org_id))]
    async fn pending_from(
        &self,
        org_id: OrgId,
        inviter: UserId,
        now: DateTime<Utc>,
    ) -> Result<Vec<Invitation>, StoreError> {
        let query = invitations::Entity::find()
            .filter(invitations::Column::OrgId.eq(org_id.as_uuid()))
            .filter(invitations::Column::InvitedBy.eq(inviter.as_uuid()))
            .filter(invitations::Column::AcceptedAt.is_null())
            .filter(invitations::Column::RevokedAt.is_null())
            .filter(invitations::Column::ExpiresAt.gt(now))
            .order_by_asc(invitations::Column::Id);
        let models = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.all(txn).await })).await?;
        models.into_iter().map(invitation_from).collect()
    }

    #[tracing::instrument(name = "adapter.sql.invitations.accept", skip_all, fields(org_id = %org_id))]
    async fn accept(
        &self,
        org_id: OrgId,
        id: InvitationId,
        role: &str,
        user_id: UserId,
        inviter_role: &str,
        seat_limit: Option<u64>,
        now: DateTime<Utc>,
        audit: &[AuditEvent],
    ) -> Result<(), StoreError> {
        let txn = self.db.tenant(org_id).await?;
        for entry in audit {
            crate::audit::append(&txn, entry).await?;
        }
        if let Some(limit) = seat_limit {
            // A member already has their seat: that answer (a conflict) comes before a full org.
            let already = memberships::Entity::find()
                .filter(memberships::Column::OrgId.eq(org_id.as_uuid()))
                .filter(memberships::Column::UserId.eq(user_id.as_uuid()))
                .one(&txn)
                .await
                .map_err(store_error)?;
            if already.is_some() {
                return Err(StoreError::Conflict(Conflict::AlreadyMember));
            }
            let (members, _) = seats(&txn, org_id, now).await?;
            if members >= limit {
                return Err(StoreError::LimitReached { used: members });
            }
        }
        let invitation = invitations::Entity::find()
            .filter(invitations::Column::OrgId.eq(org_id.as_uuid()))
            .filter(invitations::Column::Id.eq(id.as_uuid()))
            .one(&txn)
            .await
            .map_err(store_error)?
            .ok_or(StoreError::NotFound)?;
        // The inviter's membership, locked so a removal or demotion cannot commit in between:
        // an invitation carries only the authority its inviter still has.
        let inviter = memberships::Entity::find()
            .filter(memberships::Column::OrgId.eq(org_id.as_uuid()))
            .filter(memberships::Column::UserId.eq(invitation.invited_by))
            .lock_exclusive()
            .one(&txn)
            .await
            .map_err(store_error)?;
        if inviter.is_none_or(|membership| membership.role != inviter_role) {
            return Err(StoreError::NotFound);
        }
        let claimed = invitations::Entity::update_many()
            .col_expr(invitations::Column::AcceptedAt, Expr::value(now))
            .filter(invitations::Column::OrgId.eq(org_id.as_uuid()))
            .filter(invitations::Column::Id.eq(id.as_uuid()))
            .filter(invitations::Column::Role.eq(role))
            .filter(invitations::Column::AcceptedAt.is_null())
            .filter(invitations::Column::RevokedAt.is_null())
            .filter(invitations::Column::ExpiresAt.gt(now))
            .exec_with_returning(&txn)
            .await
            .map_err(store_error)?;
        let Some(invitation) = claimed.into_iter().next() else {
            return Err(StoreError::NotFound);
        };
        memberships::Entity::insert(memberships::ActiveModel {
            org_id: Set(org_id.as_uuid()),
            user_id: Set(user_id.as_uuid()),
            role: Set(invitation.role),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await
        // The org exists (its audit head is held): a failing foreign key is the account.
        .map_err(account_gone)?;
        txn.commit().await.map_err(store_error)
    }
}

/// Members of `org_id` and its pending invitations at `now`, inside `txn`.
pub(crate) async fn seats<C: sea_orm::ConnectionTrait>(
    txn: &C,
    org_id: OrgId,
    now: DateTime<Utc>,
) -> Result<(u64, u64), StoreError> {
    use sea_orm::PaginatorTrait;
    let members = memberships::Entity::find()
        .filter(memberships::Column::OrgId.eq(org_id.as_uuid()))
        .count(txn)
        .await
        .map_err(store_error)?;
    let pending = invitations::Entity::find()
        .filter(invitations::Column::OrgId.eq(org_id.as_uuid()))
        .filter(invitations::Column::AcceptedAt.is_null())
        .filter(invitations::Column::RevokedAt.is_null())
        .filter(invitations::Column::ExpiresAt.gt(now))
        .count(txn)
        .await
        .map_err(store_error)?;
    Ok((members, pending))
}
