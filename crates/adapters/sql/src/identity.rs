//! The identity repositories on sea-orm.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, SqlErr, Statement, TransactionTrait,
};
use tenantry_domain::audit::AccountDeletion;
use tenantry_domain::identity::DisplayName;
use tenantry_domain::identity::{Session, TokenPurpose, User, UserSettings};
use tenantry_domain::{Email, OrgId, SessionId, UserId};
use tenantry_ports::{
    AccountDeleted, IssuedToken, NewUser, OneTimeTokenRepository, RefreshOutcome, SessionRepository, StoreError,
    UserRepository,
};

use crate::SqlDatabase;
use crate::entities::{api_keys, one_time_tokens, refresh_tokens, sessions, users};

/// Maps a driver error at the seam: uniqueness → `Conflict`, connectivity → `Unavailable`.
pub(crate) fn store_error(err: DbErr) -> StoreError {
    if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        return StoreError::Conflict;
    }
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => StoreError::Unavailable(anyhow::Error::new(err)),
        other => StoreError::Unexpected(anyhow::Error::new(other)),
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Unexpected(anyhow::anyhow!("stored {what} is invalid"))
}

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

/// [`UserRepository`] on SQL.
#[derive(Clone)]
pub struct SqlUserRepository {
    db: SqlDatabase,
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
        users::Entity::insert(model).exec_without_returning(self.db.connection()).await.map_err(store_error)?;
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

impl SqlUserRepository {
    /// One attempt at deleting an account; `None` when it raced a new membership or key in an
    /// org whose log head it had not locked (rolled back; try again).
    async fn try_delete(&self, id: UserId, audit: &AccountDeletion) -> Result<Option<AccountDeleted>, StoreError> {
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
            return Err(StoreError::Conflict);
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
        events.extend(keys.iter().map(|key| audit.key_revoked(OrgId::from_uuid(key.org_id), key.id)));
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
    async fn create(&self, session: &Session, refresh_hash: &str) -> Result<(), StoreError> {
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
    async fn list_active(&self, user_id: UserId, now: DateTime<Utc>) -> Result<Vec<Session>, StoreError> {
        Ok(sessions::Entity::find()
            .filter(sessions::Column::UserId.eq(user_id.as_uuid()))
            .filter(sessions::Column::RevokedAt.is_null())
            .filter(sessions::Column::ExpiresAt.gt(now))
            .order_by_desc(sessions::Column::CreatedAt)
            .order_by_desc(sessions::Column::Id)
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
    ) -> Result<(), StoreError> {
        let model = one_time_tokens::ActiveModel {
            token_hash: Set(token_hash.to_owned()),
            user_id: Set(user_id.as_uuid()),
            purpose: Set(purpose.as_str().to_owned()),
            created_at: Set(now),
            expires_at: Set(expires_at),
            used_at: Set(None),
        };
        one_time_tokens::Entity::insert(model)
            .exec_without_returning(self.db.connection())
            .await
            .map_err(store_error)?;
        Ok(())
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
