//! [`OneTimeTokenRepository`] on sea-orm: e-mailed verification and reset tokens.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, TransactionTrait};
use tenantry_domain::UserId;
use tenantry_domain::identity::TokenPurpose;
use tenantry_ports::{IssuedToken, OneTimeTokenRepository, QueuedMail, StoreError};

use crate::SqlDatabase;
use crate::entities::one_time_tokens;
use crate::errors::{corrupt, store_error};

/// [`OneTimeTokenRepository`] on SQL.
#[derive(Clone)]
pub struct SqlOneTimeTokenRepository {
    db: SqlDatabase,
}

impl SqlOneTimeTokenRepository {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl OneTimeTokenRepository for SqlOneTimeTokenRepository {
    #[tracing::instrument(name = "adapter.sql.one_time_tokens.create", skip_all)]
    async fn create(
        &self,
        user_id: UserId,
        purpose: TokenPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        mails: &[QueuedMail],
    ) -> Result<(), StoreError> {
        let model = one_time_tokens::ActiveModel {
            token_hash: Set(token_hash.to_owned()),
            user_id: Set(user_id.as_uuid()),
            purpose: Set(purpose.as_str().to_owned()),
            created_at: Set(now),
            expires_at: Set(expires_at),
            used_at: Set(None),
        };
        let txn = self.db.connection().begin().await.map_err(store_error)?;
        one_time_tokens::Entity::insert(model).exec_without_returning(&txn).await.map_err(store_error)?;
        crate::mail::queue(&txn, mails).await?;
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.one_time_tokens.consume", skip_all)]
    async fn consume(
        &self,
        purpose: TokenPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError> {
        let db = self.db.connection();
        let claimed = one_time_tokens::Entity::update_many()
            .col_expr(one_time_tokens::Column::UsedAt, Expr::value(now))
            .filter(one_time_tokens::Column::TokenHash.eq(token_hash))
            .filter(one_time_tokens::Column::Purpose.eq(purpose.as_str()))
            .filter(one_time_tokens::Column::UsedAt.is_null())
            .filter(one_time_tokens::Column::ExpiresAt.gt(now))
            .exec(db)
            .await
            .map_err(store_error)?
            .rows_affected
            == 1;
        if !claimed {
            return Ok(None);
        }
        Ok(one_time_tokens::Entity::find_by_id(token_hash.to_owned())
            .one(db)
            .await
            .map_err(store_error)?
            .map(|token| UserId::from_uuid(token.user_id)))
    }

    #[tracing::instrument(name = "adapter.sql.one_time_tokens.peek", skip_all)]
    async fn peek(
        &self,
        purpose: TokenPurpose,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, StoreError> {
        Ok(one_time_tokens::Entity::find()
            .filter(one_time_tokens::Column::TokenHash.eq(token_hash))
            .filter(one_time_tokens::Column::Purpose.eq(purpose.as_str()))
            .filter(one_time_tokens::Column::UsedAt.is_null())
            .filter(one_time_tokens::Column::ExpiresAt.gt(now))
            .one(self.db.connection())
            .await
            .map_err(store_error)?
            .map(|token| UserId::from_uuid(token.user_id)))
    }

    #[tracing::instrument(name = "adapter.sql.one_time_tokens.invalidate", skip_all)]
    async fn invalidate(&self, user_id: UserId, purpose: TokenPurpose, now: DateTime<Utc>) -> Result<(), StoreError> {
        one_time_tokens::Entity::update_many()
            .col_expr(one_time_tokens::Column::UsedAt, Expr::value(now))
            .filter(one_time_tokens::Column::UserId.eq(user_id.as_uuid()))
            .filter(one_time_tokens::Column::Purpose.eq(purpose.as_str()))
            .filter(one_time_tokens::Column::UsedAt.is_null())
            .exec(self.db.connection())
            .await
            .map_err(store_error)?;
        Ok(())
    }

    #[tracing::instrument(name = "adapter.sql.one_time_tokens.list_for_user", skip_all)]
    async fn list_for_user(&self, user_id: UserId) -> Result<Vec<IssuedToken>, StoreError> {
        let rows = one_time_tokens::Entity::find()
            .filter(one_time_tokens::Column::UserId.eq(user_id.as_uuid()))
            .order_by_asc(one_time_tokens::Column::CreatedAt)
            .all(self.db.connection())
            .await
            .map_err(store_error)?;
        rows.into_iter()
            .map(|row| {
                let purpose = match row.purpose.as_str() {
                    "email_verification" => TokenPurpose::EmailVerification,
                    "password_reset" => TokenPurpose::PasswordReset,
                    _ => return Err(corrupt("token purpose")),
                };
                Ok(IssuedToken {
                    purpose,
                    created_at: row.created_at,
                    expires_at: row.expires_at,
                    used_at: row.used_at,
                })
            })
            .collect()
    }
}
