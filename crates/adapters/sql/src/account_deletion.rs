//! Deleting an account: its memberships, sessions and keys, audited in every organization it
//! leaves, in one transaction.

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, Statement};
use tenantry_domain::audit::AccountDeletion;
use tenantry_domain::{ApiKeyId, OrgId, SessionId, UserId};
use tenantry_ports::{AccountDeleted, Conflict, StoreError};

use crate::entities::{api_keys, one_time_tokens, refresh_tokens, sessions, users};
use crate::errors::store_error;
use crate::users::SqlUserRepository;

impl SqlUserRepository {
    /// One attempt at deleting an account; `None` when it raced a new membership or key in an
    /// org whose log head it had not locked (rolled back; try again).
    pub(crate) async fn try_delete(
        &self,
        id: UserId,
        audit: &AccountDeletion,
    ) -> Result<Option<AccountDeleted>, StoreError> {
        // Child rows go with the user (ON DELETE CASCADE); deleting them explicitly too keeps
        // SQLite correct even on a connection where foreign keys were not enabled.
        // Memberships in every organization the user belongs to: cross-tenant by nature.
        let txn = self.db.platform().await?;
        let backend = txn.get_database_backend();
        let user = id.as_uuid();
        let postgres = backend == DbBackend::Postgres;
        // The orgs whose log heads this transaction holds; `None` on SQLite, where the write
        // lock serialises every writer anyway.
        let mut locked: Option<Vec<uuid::Uuid>> = None;
        if postgres {
            // The log heads of every org this deletion will write to, in org order, before any
            // other lock: each audited change takes its org's head first, so this cannot
            // deadlock with one. Then the rows of the orgs the user owns, which serialises with
            // role changes and removals there, so no race can leave an org without an owner.
            let rows = txn
                .query_all_raw(Statement::from_sql_and_values(
                    backend,
                    "SELECT org_id FROM memberships WHERE user_id = $1 \
                     UNION SELECT org_id FROM api_keys WHERE created_by = $1 AND revoked_at IS NULL \
                     AND (expires_at IS NULL OR expires_at > $2) ORDER BY 1",
                    [user.into(), audit.at().into()],
                ))
                .await
                .map_err(store_error)?;
            let mut orgs = Vec::with_capacity(rows.len());
            for row in rows {
                let org: uuid::Uuid = row.try_get("", "org_id").map_err(store_error)?;
                crate::audit::lock_head(&txn, org).await?;
                orgs.push(org);
            }
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                "SELECT id FROM orgs WHERE id IN \
                 (SELECT org_id FROM memberships WHERE user_id = $1 AND role = 'owner') ORDER BY id FOR UPDATE",
                [user.into()],
            ))
            .await
            .map_err(store_error)?;
            // Then the account row itself. A change that added a row referring to the account
            // (an accepted invitation's membership) holds it until it commits; waiting here
            // means the statements below see that row, and the deletion retries with its org's
            // head instead of letting the cascade remove it unaudited. Every such change took
            // its org's head first, so this cannot deadlock with one.
            txn.execute_raw(Statement::from_sql_and_values(
                backend,
                "SELECT id FROM users WHERE id = $1 FOR UPDATE",
                [user.into()],
            ))
            .await
            .map_err(store_error)?;
            locked = Some(orgs);
        }
        // On SQLite a write comes first: a deferred transaction that reads before writing fails
        // outright if another connection commits in between. Memberships go first, each
        // refusing in the same statement to remove an org's last owner; one left over means the
        // user is still someone's last owner, or (PostgreSQL) joined an org after the heads were
        // locked.
        let placeholder = if postgres { "$1" } else { "?" };
        let left = txn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "DELETE FROM memberships WHERE user_id = {placeholder} AND (role <> 'owner' OR \
                     (SELECT COUNT(*) FROM memberships m WHERE m.org_id = memberships.org_id AND m.role = 'owner') > 1) \
                     RETURNING org_id, role"
                ),
                [user.into()],
            ))
            .await
            .map_err(store_error)?;
        let mut removed = Vec::with_capacity(left.len());
        for row in left {
            let org: uuid::Uuid = row.try_get("", "org_id").map_err(store_error)?;
            let role: String = row.try_get("", "role").map_err(store_error)?;
            removed.push((org, role));
        }
        let still_member = crate::entities::memberships::Entity::find()
            .filter(crate::entities::memberships::Column::UserId.eq(user))
            .count(&txn)
            .await
            .map_err(store_error)?;
        if still_member > 0 {
            // Rolled back on drop.
            return Err(StoreError::Conflict(Conflict::LastOwner));
        }
        // The keys the user created die with the account; expired ones are dead already.
        let keys = api_keys::Entity::update_many()
            .col_expr(api_keys::Column::RevokedAt, Expr::value(audit.at()))
            .filter(api_keys::Column::CreatedBy.eq(user))
            .filter(api_keys::Column::RevokedAt.is_null())
            .filter(
                sea_orm::Condition::any()
                    .add(api_keys::Column::ExpiresAt.is_null())
                    .add(api_keys::Column::ExpiresAt.gt(audit.at())),
            )
            .exec_with_returning(&txn)
            .await
            .map_err(store_error)?;
        let mut events = Vec::with_capacity(removed.len() + keys.len());
        for (org, role) in &removed {
            events.push(audit.membership_ended(OrgId::from_uuid(*org), role));
        }
        events.extend(
            keys.iter().map(|key| audit.key_revoked(OrgId::from_uuid(key.org_id), ApiKeyId::from_uuid(key.id))),
        );
        if let Some(locked) = &locked
            && events.iter().any(|event| locked.binary_search(&event.org_id.as_uuid()).is_err())
        {
            // Joined (or given a key in) an org after its head was locked: taking that head now
            // would break the lock order. Roll back and start over.
            return Ok(None);
        }
        // In org order, like the locks above; within an org, memberships before keys.
        events.sort_by_key(|event| event.org_id);
        for event in &events {
            crate::audit::append(&txn, event).await?;
        }
        let mut orgs: Vec<OrgId> = events.iter().map(|event| event.org_id).collect();
        orgs.dedup();
        refresh_tokens::Entity::delete_many()
            .filter(
                refresh_tokens::Column::SessionId.in_subquery(
                    sea_orm::sea_query::Query::select()
                        .column(sessions::Column::Id)
                        .from(sessions::Entity)
                        .and_where(sessions::Column::UserId.eq(user))
                        .to_owned(),
                ),
            )
            .exec(&txn)
            .await
            .map_err(store_error)?;
        let sessions = sessions::Entity::delete_many()
            .filter(sessions::Column::UserId.eq(user))
            .exec_with_returning(&txn)
            .await
            .map_err(store_error)?
            .into_iter()
            .map(|session| SessionId::from_uuid(session.id))
            .collect();
        one_time_tokens::Entity::delete_many()
            .filter(one_time_tokens::Column::UserId.eq(user))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        crate::entities::backup_codes::Entity::delete_many()
            .filter(crate::entities::backup_codes::Column::UserId.eq(user))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        let result = users::Entity::delete_by_id(user).exec(&txn).await.map_err(store_error)?;
        if result.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        txn.commit().await.map_err(store_error)?;
        Ok(Some(AccountDeleted { orgs, sessions }))
    }
}
