//! [`UserRepository`] on sea-orm: accounts.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tenantry_domain::audit::AccountDeletion;
use tenantry_domain::identity::DisplayName;
use tenantry_domain::identity::{User, UserSettings};
use tenantry_domain::{Email, UserId};
use tenantry_ports::{AccountDeleted, Conflict, NewUser, StoreError, UserRepository};

use crate::SqlDatabase;
use crate::entities::users;
use crate::errors::{corrupt, store_error, taken};

fn user_from(model: users::Model) -> Result<User, StoreError> {
    Ok(User {
        id: UserId::from_uuid(model.id),
        email: Email::parse(&model.email).map_err(|_| corrupt("email"))?,
        display_name: model
            .display_name
            .as_deref()
            .map(DisplayName::parse)
            .transpose()
            .map_err(|_| corrupt("display name"))?,
        password_hash: model.password_hash,
        email_verified_at: model.email_verified_at,
        is_admin: model.is_admin,
        disabled_at: model.disabled_at,
        settings: serde_json::from_str(&model.settings).map_err(|_| corrupt("settings"))?,
        totp_enabled: model.totp_enabled_at.is_some(),
        created_at: model.created_at,
        updated_at: model.updated_at,
    })
}

/// [`UserRepository`] on SQL.
#[derive(Clone)]
pub struct SqlUserRepository {
    pub(crate) db: SqlDatabase,
}

impl SqlUserRepository {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl UserRepository for SqlUserRepository {
    #[tracing::instrument(name = "adapter.sql.users.create", skip_all)]
    async fn create(&self, user: &NewUser) -> Result<(), StoreError> {
        let settings =
            serde_json::to_string(&UserSettings::default()).map_err(|err| StoreError::Unexpected(err.into()))?;
        let model = users::ActiveModel {
            id: Set(user.id.as_uuid()),
            email: Set(user.email.as_str().to_owned()),
            display_name: Set(user.display_name.as_ref().map(|n| n.as_str().to_owned())),
            password_hash: Set(user.password_hash.clone()),
            email_verified_at: Set(user.email_verified_at),
            is_admin: Set(user.is_admin),
            disabled_at: Set(None),
            settings: Set(settings),
            totp_secret: Set(None),
            totp_pending_secret: Set(None),
            totp_enabled_at: Set(None),
            totp_last_step: Set(None),
            created_at: Set(user.created_at),
            updated_at: Set(user.created_at),
        };
        users::Entity::insert(model)
            .exec_without_returning(self.db.connection())
            .await
            .map_err(taken(Conflict::EmailTaken))?;
        Ok(())
    }

    #[tracing::instrument(name = "adapter.sql.users.by_id", skip_all)]
    async fn by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        users::Entity::find_by_id(id.as_uuid())
            .one(self.db.connection())
            .await
            .map_err(store_error)?
            .map(user_from)
            .transpose()
    }

    #[tracing::instrument(name = "adapter.sql.users.by_email", skip_all)]
    async fn by_email(&self, email: &Email) -> Result<Option<User>, StoreError> {
        users::Entity::find()
            .filter(users::Column::Email.eq(email.as_str()))
            .one(self.db.connection())
            .await
            .map_err(store_error)?
            .map(user_from)
            .transpose()
    }

    #[tracing::instrument(name = "adapter.sql.users.update_profile", skip_all)]
    async fn update_profile(
        &self,
        id: UserId,
        display_name: Option<DisplayName>,
        settings: &UserSettings,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let settings = serde_json::to_string(settings).map_err(|err| StoreError::Unexpected(err.into()))?;
        let result = users::Entity::update_many()
            .col_expr(users::Column::DisplayName, Expr::value(display_name.map(String::from)))
            .col_expr(users::Column::Settings, Expr::value(settings))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(id.as_uuid()))
            .exec(self.db.connection())
            .await
            .map_err(store_error)?;
        if result.rows_affected == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    #[tracing::instrument(name = "adapter.sql.users.set_password_hash", skip_all)]
    async fn set_password_hash(&self, id: UserId, hash: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
        let result = users::Entity::update_many()
            .col_expr(users::Column::PasswordHash, Expr::value(hash))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(id.as_uuid()))
            .exec(self.db.connection())
            .await
            .map_err(store_error)?;
        if result.rows_affected == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    #[tracing::instrument(name = "adapter.sql.users.mark_email_verified", skip_all)]
    async fn mark_email_verified(&self, id: UserId, now: DateTime<Utc>) -> Result<(), StoreError> {
        let db = self.db.connection();
        users::Entity::update_many()
            .col_expr(users::Column::EmailVerifiedAt, Expr::value(now))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(id.as_uuid()))
            .filter(users::Column::EmailVerifiedAt.is_null())
            .exec(db)
            .await
            .map_err(store_error)?;
        let exists = users::Entity::find_by_id(id.as_uuid()).one(db).await.map_err(store_error)?.is_some();
        if exists { Ok(()) } else { Err(StoreError::NotFound) }
    }

    #[tracing::instrument(name = "adapter.sql.users.list", skip_all)]
    async fn list(&self, after: Option<UserId>, limit: u32) -> Result<Vec<User>, StoreError> {
        let mut query = users::Entity::find();
        if let Some(after) = after {
            query = query.filter(users::Column::Id.gt(after.as_uuid()));
        }
        query
            .order_by_asc(users::Column::Id)
            .limit(u64::from(limit))
            .all(self.db.connection())
            .await
            .map_err(store_error)?
            .into_iter()
            .map(user_from)
            .collect()
    }

    #[tracing::instrument(name = "adapter.sql.users.set_disabled", skip_all)]
    async fn set_disabled(
        &self,
        id: UserId,
        disabled_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let result = users::Entity::update_many()
            .col_expr(users::Column::DisabledAt, Expr::value(disabled_at))
            .col_expr(users::Column::UpdatedAt, Expr::value(now))
            .filter(users::Column::Id.eq(id.as_uuid()))
            .exec(self.db.connection())
            .await
            .map_err(store_error)?;
        if result.rows_affected == 0 { Err(StoreError::NotFound) } else { Ok(()) }
    }

    #[tracing::instrument(name = "adapter.sql.users.delete", skip_all)]
    async fn delete(&self, id: UserId, audit: &AccountDeletion) -> Result<AccountDeleted, StoreError> {
        // On PostgreSQL a membership that appears after the log heads were locked (an invitation
        // accepted meanwhile) makes the attempt start over, with that org's head locked too.
        for _ in 0..DELETE_ATTEMPTS {
            if let Some(deleted) = self.try_delete(id, audit).await? {
                return Ok(deleted);
            }
        }
        Err(StoreError::Unexpected(anyhow::anyhow!(
            "account deletion kept racing new memberships; gave up after {DELETE_ATTEMPTS} attempts"
        )))
    }
}

/// How often an account deletion starts over after racing a new membership.
const DELETE_ATTEMPTS: usize = 3;
