//! [`SessionRepository`] on sea-orm: sessions and their rotating refresh tokens.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use tenantry_domain::identity::Session;
use tenantry_domain::{SessionId, UserId};
use tenantry_ports::{QueuedMail, RefreshOutcome, SessionRepository, StoreError};

use crate::SqlDatabase;
use crate::entities::{refresh_tokens, sessions};
use crate::errors::store_error;

fn session_from(model: sessions::Model) -> Session {
    Session {
        id: SessionId::from_uuid(model.id),
        user_id: UserId::from_uuid(model.user_id),
        user_agent: model.user_agent,
        ip: model.ip,
        created_at: model.created_at,
        last_seen_at: model.last_seen_at,
        expires_at: model.expires_at,
        revoked_at: model.revoked_at,
    }
}

/// [`SessionRepository`] on SQL.
#[derive(Clone)]
pub struct SqlSessionRepository {
    db: SqlDatabase,
}

impl SqlSessionRepository {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }
}

async fn insert_refresh<C: ConnectionTrait>(
    db: &C,
    hash: &str,
    session: SessionId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let model = refresh_tokens::ActiveModel {
        token_hash: Set(hash.to_owned()),
        session_id: Set(session.as_uuid()),
        created_at: Set(now),
        used_at: Set(None),
    };
    refresh_tokens::Entity::insert(model).exec_without_returning(db).await.map_err(store_error)?;
    Ok(())
}

#[async_trait::async_trait]
impl SessionRepository for SqlSessionRepository {
    #[tracing::instrument(name = "adapter.sql.sessions.create", skip_all)]
    async fn create(&self, session: &Session, refresh_hash: &str, mails: &[QueuedMail]) -> Result<(), StoreError> {
        let txn = self.db.connection().begin().await.map_err(store_error)?;
        let model = sessions::ActiveModel {
            id: Set(session.id.as_uuid()),
            user_id: Set(session.user_id.as_uuid()),
            user_agent: Set(session.user_agent.clone()),
            ip: Set(session.ip.clone()),
            created_at: Set(session.created_at),
            last_seen_at: Set(session.last_seen_at),
            expires_at: Set(session.expires_at),
            revoked_at: Set(session.revoked_at),
        };
        sessions::Entity::insert(model).exec_without_returning(&txn).await.map_err(store_error)?;
        insert_refresh(&txn, refresh_hash, session.id, session.created_at).await?;
        crate::mail::queue(&txn, mails).await?;
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.sessions.rotate_refresh", skip_all)]
    async fn rotate_refresh(
        &self,
        presented_hash: &str,
        next_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<RefreshOutcome, StoreError> {
        let txn = self.db.connection().begin().await.map_err(store_error)?;
        // The conditional update is the race arbiter: of two concurrent presentations of one
        // token, exactly one sees a row affected.
        let claimed = refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::UsedAt, Expr::value(now))
            .filter(refresh_tokens::Column::TokenHash.eq(presented_hash))
            .filter(refresh_tokens::Column::UsedAt.is_null())
            .exec(&txn)
            .await
            .map_err(store_error)?
            .rows_affected
            == 1;
        let Some(token) =
            refresh_tokens::Entity::find_by_id(presented_hash.to_owned()).one(&txn).await.map_err(store_error)?
        else {
            return Ok(RefreshOutcome::Invalid);
        };
        let session_id = SessionId::from_uuid(token.session_id);
        if !claimed {
            txn.commit().await.map_err(store_error)?;
            return Ok(RefreshOutcome::Reused(session_id));
        }
        let Some(session) = sessions::Entity::find_by_id(token.session_id).one(&txn).await.map_err(store_error)? else {
            return Ok(RefreshOutcome::Invalid);
        };
        let mut session = session_from(session);
        if !session.is_active(now) {
            // Rolled back on drop: a dead session's token stays as it was.
            return Ok(RefreshOutcome::Invalid);
        }
        insert_refresh(&txn, next_hash, session_id, now).await?;
        sessions::Entity::update_many()
            .col_expr(sessions::Column::ExpiresAt, Expr::value(expires_at))
            .col_expr(sessions::Column::LastSeenAt, Expr::value(now))
            .filter(sessions::Column::Id.eq(token.session_id))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        session.expires_at = expires_at;
        session.last_seen_at = now;
        Ok(RefreshOutcome::Rotated(session))
    }

    #[tracing::instrument(name = "adapter.sql.sessions.get", skip_all)]
    async fn get(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        Ok(sessions::Entity::find_by_id(id.as_uuid())
            .one(self.db.connection())
            .await
            .map_err(store_error)?
            .map(session_from))
    }

    #[tracing::instrument(name = "adapter.sql.sessions.list_active", skip_all)]
    async fn list_active(
        &self,
        user_id: UserId,
        now: DateTime<Utc>,
        before: Option<SessionId>,
        limit: u32,
    ) -> Result<Vec<Session>, StoreError> {
        let mut query = sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user_id.as_uuid()))
            .filter(sessions::Column::RevokedAt.is_null())
            .filter(sessions::Column::ExpiresAt.gt(now));
        if let Some(before) = before {
            query = query.filter(sessions::Column::Id.lt(before.as_uuid()));
        }
        Ok(query
            .order_by_desc(sessions::Column::Id)
            .limit(u64::from(limit))
            .all(self.db.connection())
            .await
            .map_err(store_error)?
            .into_iter()
            .map(session_from)
            .collect())
    }

    #[tracing::instrument(name = "adapter.sql.sessions.list_all", skip_all)]
    async fn list_all(&self, user_id: UserId) -> Result<Vec<Session>, StoreError> {
        Ok(sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user_id.as_uuid()))
            .order_by_desc(sessions::Column::CreatedAt)
            .order_by_desc(sessions::Column::Id)
            .all(self.db.connection())
            .await
            .map_err(store_error)?
            .into_iter()
            .map(session_from)
            .collect())
    }

    #[tracing::instrument(name = "adapter.sql.sessions.revoke", skip_all)]
    async fn revoke(&self, user_id: UserId, id: SessionId, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let result = sessions::Entity::update_many()
            .col_expr(sessions::Column::RevokedAt, Expr::value(now))
            .filter(sessions::Column::Id.eq(id.as_uuid()))
            .filter(sessions::Column::UserId.eq(user_id.as_uuid()))
            .filter(sessions::Column::RevokedAt.is_null())
            .exec(self.db.connection())
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected == 1)
    }

    #[tracing::instrument(name = "adapter.sql.sessions.revoke_all", skip_all)]
    async fn revoke_all(
        &self,
        user_id: UserId,
        except: Option<SessionId>,
        now: DateTime<Utc>,
    ) -> Result<Vec<SessionId>, StoreError> {
        // One statement (UPDATE … RETURNING): no read-then-write window, so no snapshot
        // conflict on SQLite and nothing created in between is missed on PostgreSQL.
        // Only active sessions: expired ones are dead already and stay as they were.
        let mut update = sessions::Entity::update_many()
            .col_expr(sessions::Column::RevokedAt, Expr::value(now))
            .filter(sessions::Column::UserId.eq(user_id.as_uuid()))
            .filter(sessions::Column::RevokedAt.is_null())
            .filter(sessions::Column::ExpiresAt.gt(now));
        if let Some(except) = except {
            update = update.filter(sessions::Column::Id.ne(except.as_uuid()));
        }
        let revoked = update.exec_with_returning(self.db.connection()).await.map_err(store_error)?;
        Ok(revoked.into_iter().map(|s| SessionId::from_uuid(s.id)).collect())
    }

    #[tracing::instrument(name = "adapter.sql.sessions.touch", skip_all)]
    async fn touch(&self, id: SessionId, now: DateTime<Utc>) -> Result<(), StoreError> {
        sessions::Entity::update_many()
            .col_expr(sessions::Column::LastSeenAt, Expr::value(now))
            .filter(sessions::Column::Id.eq(id.as_uuid()))
            .exec(self.db.connection())
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
