//! [`TwoFactorRepository`] on sea-orm.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Value};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, TransactionTrait};
use tenantry_domain::UserId;
use tenantry_ports::{QueuedMail, StoreError, TwoFactorRecord, TwoFactorRepository};

use crate::SqlDatabase;
use crate::entities::{backup_codes, users};
use crate::errors::store_error;

/// [`TwoFactorRepository`] on SQL.
#[derive(Clone)]
pub struct SqlTwoFactorRepository {
    db: SqlDatabase,
}

impl SqlTwoFactorRepository {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }
}

fn not_found_if_zero(rows: u64) -> Result<(), StoreError> {
    if rows == 0 { Err(StoreError::NotFound) } else { Ok(()) }
}

#[async_trait::async_trait]
impl TwoFactorRepository for SqlTwoFactorRepository {
    #[tracing::instrument(name = "adapter.sql.two_factor.get", skip_all)]
    async fn get(&self, user_id: UserId) -> Result<Option<TwoFactorRecord>, StoreError> {
        Ok(users::Entity::find_by_id(user_id.as_uuid()).one(self.db.connection()).await.map_err(store_error)?.map(
            |user| TwoFactorRecord {
                pending_secret: user.totp_pending_secret,
                secret: user.totp_enabled_at.and(user.totp_secret),
                last_step: user.totp_last_step,
            },
        ))
    }

    #[tracing::instrument(name = "adapter.sql.two_factor.set_pending", skip_all)]
    async fn set_pending(&self, user_id: UserId, sealed: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let result = users::Entity::update_many()
            .col_expr(users::Column::TotpPendingSecret, Expr::value(sealed))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(user_id.as_uuid()))
            .exec(self.db.connection())
            .await
            .map_err(store_error)?;
        not_found_if_zero(result.rows_affected)
    }

    #[tracing::instrument(name = "adapter.sql.two_factor.enable", skip_all)]
    async fn enable(
        &self,
        user_id: UserId,
        sealed: &str,
        first_step: i64,
        backup_code_hashes: &[String],
        now: DateTime<Utc>,
        mails: &[QueuedMail],
    ) -> Result<(), StoreError> {
        let txn = self.db.connection().begin().await.map_err(store_error)?;
        let result = users::Entity::update_many()
            .col_expr(users::Column::TotpSecret, Expr::value(sealed))
            .col_expr(users::Column::TotpPendingSecret, Expr::value(Value::String(None)))
            .col_expr(users::Column::TotpEnabledAt, Expr::value(now))
            .col_expr(users::Column::TotpLastStep, Expr::value(first_step))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(user_id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        not_found_if_zero(result.rows_affected)?;
        backup_codes::Entity::delete_many()
            .filter(backup_codes::Column::UserId.eq(user_id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        let rows = backup_code_hashes.iter().map(|hash| backup_codes::ActiveModel {
            user_id: Set(user_id.as_uuid()),
            code_hash: Set(hash.clone()),
            created_at: Set(now),
            used_at: Set(None),
        });
        backup_codes::Entity::insert_many(rows).exec_without_returning(&txn).await.map_err(store_error)?;
        crate::mail::queue(&txn, mails).await?;
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.two_factor.disable", skip_all)]
    async fn disable(&self, user_id: UserId, now: DateTime<Utc>, mails: &[QueuedMail]) -> Result<(), StoreError> {
        let txn = self.db.connection().begin().await.map_err(store_error)?;
        let result = users::Entity::update_many()
            .col_expr(users::Column::TotpSecret, Expr::value(Value::String(None)))
            .col_expr(users::Column::TotpPendingSecret, Expr::value(Value::String(None)))
            .col_expr(users::Column::TotpEnabledAt, Expr::value(Value::ChronoDateTimeUtc(None)))
            .col_expr(users::Column::TotpLastStep, Expr::value(Value::BigInt(None)))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(user_id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        not_found_if_zero(result.rows_affected)?;
        backup_codes::Entity::delete_many()
            .filter(backup_codes::Column::UserId.eq(user_id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        crate::mail::queue(&txn, mails).await?;
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.two_factor.advance_step", skip_all)]
    async fn advance_step(&self, user_id: UserId, step: i64) -> Result<bool, StoreError> {
        let result = users::Entity::update_many()
            .col_expr(users::Column::TotpLastStep, Expr::value(step))
            .filter(users::Column::Id.eq(user_id.as_uuid()))
            .filter(
                Condition::any().add(users::Column::TotpLastStep.is_null()).add(users::Column::TotpLastStep.lt(step)),
            )
            .exec(self.db.connection())
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected == 1)
    }

    #[tracing::instrument(name = "adapter.sql.two_factor.consume_backup_code", skip_all)]
    async fn consume_backup_code(
        &self,
        user_id: UserId,
        code_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let result = backup_codes::Entity::update_many()
            .col_expr(backup_codes::Column::UsedAt, Expr::value(now))
            .filter(backup_codes::Column::UserId.eq(user_id.as_uuid()))
            .filter(backup_codes::Column::CodeHash.eq(code_hash))
            .filter(backup_codes::Column::UsedAt.is_null())
            .exec(self.db.connection())
            .await
            .map_err(store_error)?;
        Ok(result.rows_affected == 1)
    }

    #[tracing::instrument(name = "adapter.sql.two_factor.backup_codes_left", skip_all)]
    async fn backup_codes_left(&self, user_id: UserId) -> Result<u32, StoreError> {
        use sea_orm::PaginatorTrait;
        let count = backup_codes::Entity::find()
            .filter(backup_codes::Column::UserId.eq(user_id.as_uuid()))
            .filter(backup_codes::Column::UsedAt.is_null())
            .count(self.db.connection())
            .await
            .map_err(store_error)?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }
}
