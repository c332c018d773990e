//! [`MailOutbox`] on SQL, and the insert that repositories run inside the transactions whose
//! changes cause mail (ADR 0018).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Statement,
};
use tenantry_domain::MailId;
use tenantry_ports::{ClaimedMail, MailOutbox, QueuedMail, StoreError};

use crate::SqlDatabase;
use crate::database::Scope;
use crate::entities::mail_outbox;
use crate::errors::{corrupt, store_error};

/// The longest error text kept per mail (the relay's answer, or the transport's failure).
const KEPT_ERROR: usize = 1000;

/// Inserts `mails`, due at once, on `conn`: called by every repository method that takes
/// `&[QueuedMail]`, inside its own transaction, so the mail commits or rolls back with the
/// change that causes it.
pub(crate) async fn queue<C: ConnectionTrait>(conn: &C, mails: &[QueuedMail]) -> Result<(), StoreError> {
    if mails.is_empty() {
        return Ok(());
    }
    let rows = mails.iter().map(|mail| mail_outbox::ActiveModel {
        id: Set(mail.id.as_uuid()),
        kind: Set(mail.kind.clone()),
        sealed: Set(Some(mail.sealed.clone())),
        status: Set("pending".to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(Some(mail.created_at)),
        claimed_until: Set(None),
        claim: Set(None),
        last_error: Set(None),
        created_at: Set(mail.created_at),
        finished_at: Set(None),
    });
    mail_outbox::Entity::insert_many(rows).exec_without_returning(conn).await.map_err(store_error)?;
    Ok(())
}

/// [`MailOutbox`] on SQL (PostgreSQL or SQLite).
///
/// On PostgreSQL any number of workers claim at once: the claim locks what it takes with
/// `FOR UPDATE SKIP LOCKED`, so each mail goes to one worker and no worker waits for another.
/// On SQLite the claim is one write statement, which holds the database's write lock.
#[derive(Clone)]
pub struct SqlMailOutbox {
    db: SqlDatabase,
}

impl SqlMailOutbox {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }

    /// The update that ends or reschedules `mail`, only while the claim is still its.
    async fn settle(
        &self,
        mail: &ClaimedMail,
        change: sea_orm::UpdateMany<mail_outbox::Entity>,
    ) -> Result<bool, StoreError> {
        let settled = change
            .col_expr(mail_outbox::Column::Attempts, Expr::col(mail_outbox::Column::Attempts).add(1))
            .col_expr(mail_outbox::Column::ClaimedUntil, Expr::value(None::<DateTime<Utc>>))
            .col_expr(mail_outbox::Column::Claim, Expr::value(None::<uuid::Uuid>))
            .filter(mail_outbox::Column::Id.eq(mail.id.as_uuid()))
            .filter(mail_outbox::Column::Claim.eq(mail.claim))
            .filter(mail_outbox::Column::Status.eq("pending"))
            .exec(self.db.connection())
            .await
            .map_err(store_error)?
            .rows_affected;
        Ok(settled == 1)
    }
}

/// The row-locking clause of a claim: PostgreSQL skips what another worker holds; SQLite has
/// one writer at a time and no such clause.
fn skip_locked(backend: DbBackend) -> &'static str {
    if backend == DbBackend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" }
}

/// At most [`KEPT_ERROR`] bytes, without control characters (PostgreSQL refuses NUL in text).
fn kept(error: &str) -> String {
    let mut end = error.len().min(KEPT_ERROR);
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    error[..end].chars().filter(|c| !c.is_control()).collect()
}

#[async_trait::async_trait]
impl MailOutbox for SqlMailOutbox {
    #[tracing::instrument(name = "adapter.sql.mail.enqueue", skip_all, fields(count = mails.len()))]
    async fn enqueue(&self, mails: &[QueuedMail]) -> Result<(), StoreError> {
        queue(self.db.connection(), mails).await
    }

    #[tracing::instrument(name = "adapter.sql.mail.claim", skip_all, fields(limit = limit))]
    async fn claim(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease_until: DateTime<Utc>,
        claim: uuid::Uuid,
    ) -> Result<Vec<ClaimedMail>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let backend = self.db.db_backend();
        // The candidates are locked (skipping rows another claimer holds) and re-checked under
        // the lock by the outer update, so each is given to one claimer. The candidates are a
        // materialised CTE: as a plain `IN (SELECT … LIMIT n)` PostgreSQL may evaluate the
        // subquery more than once and claim more than `n` (the contract suite caught it).
        let statement = Statement::from_sql_and_values(
            backend,
            format!(
                "WITH due AS MATERIALIZED ( \
                   SELECT id FROM mail_outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
                     AND (claimed_until IS NULL OR claimed_until < $1) \
                   ORDER BY next_attempt_at, id LIMIT $4{} \
                 ) \
                 UPDATE mail_outbox SET claimed_until = $2, claim = $3 WHERE id IN (SELECT id FROM due) \
                   AND status = 'pending' AND next_attempt_at <= $1 \
                   AND (claimed_until IS NULL OR claimed_until < $1) \
                 RETURNING *",
                skip_locked(backend)
            ),
            [now.into(), lease_until.into(), claim.into(), i64::from(limit).into()],
        );
        let rows = self.db.connection().query_all_raw(statement).await.map_err(store_error)?;
        let mut claimed = rows
            .iter()
            .map(|row| mail_outbox::Model::from_query_result(row, ""))
            .collect::<Result<Vec<_>, _>>()
            .map_err(store_error)?;
        claimed.sort_by_key(|mail| (mail.next_attempt_at, mail.id));
        claimed
            .into_iter()
            .map(|row| {
                Ok(ClaimedMail {
                    id: MailId::from_uuid(row.id),
                    kind: row.kind,
                    sealed: row.sealed.ok_or_else(|| corrupt("pending mail without its envelope"))?,
                    attempts: u32::try_from(row.attempts).map_err(|_| corrupt("mail attempts"))?,
                    created_at: row.created_at,
                    claim,
                })
            })
            .collect()
    }

    #[tracing::instrument(name = "adapter.sql.mail.sent", skip_all)]
    async fn sent(&self, mail: &ClaimedMail, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let change = mail_outbox::Entity::update_many()
            .col_expr(mail_outbox::Column::Status, Expr::value("sent"))
            .col_expr(mail_outbox::Column::Sealed, Expr::value(None::<String>))
            .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(None::<DateTime<Utc>>))
            .col_expr(mail_outbox::Column::LastError, Expr::value(None::<String>))
            .col_expr(mail_outbox::Column::FinishedAt, Expr::value(Some(now)));
        self.settle(mail, change).await
    }

    #[tracing::instrument(name = "adapter.sql.mail.retry", skip_all)]
    async fn retry(&self, mail: &ClaimedMail, next_attempt_at: DateTime<Utc>, error: &str) -> Result<bool, StoreError> {
        let change = mail_outbox::Entity::update_many()
            .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(Some(next_attempt_at)))
            .col_expr(mail_outbox::Column::LastError, Expr::value(Some(kept(error))));
        self.settle(mail, change).await
    }

    #[tracing::instrument(name = "adapter.sql.mail.dead", skip_all)]
    async fn dead(&self, mail: &ClaimedMail, now: DateTime<Utc>, error: &str) -> Result<bool, StoreError> {
        let change = mail_outbox::Entity::update_many()
            .col_expr(mail_outbox::Column::Status, Expr::value("dead"))
            .col_expr(mail_outbox::Column::Sealed, Expr::value(None::<String>))
            .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(None::<DateTime<Utc>>))
            .col_expr(mail_outbox::Column::LastError, Expr::value(Some(kept(error))))
            .col_expr(mail_outbox::Column::FinishedAt, Expr::value(Some(now)));
        self.settle(mail, change).await
    }

    #[tracing::instrument(name = "adapter.sql.mail.depth", skip_all)]
    async fn depth(&self) -> Result<u64, StoreError> {
        let query = mail_outbox::Entity::find().filter(mail_outbox::Column::Status.eq("pending"));
        self.db.read(Scope::Platform, |txn| Box::pin(async move { query.count(txn).await })).await
    }

    #[tracing::instrument(name = "adapter.sql.mail.next_due", skip_all)]
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next = mail_outbox::Entity::find()
            .filter(mail_outbox::Column::Status.eq("pending"))
            .filter(mail_outbox::Column::ClaimedUntil.is_null())
            .order_by_asc(mail_outbox::Column::NextAttemptAt)
            .limit(1)
            .one(self.db.connection())
            .await
            .map_err(store_error)?;
        Ok(next.and_then(|mail| mail.next_attempt_at))
    }

    #[tracing::instrument(name = "adapter.sql.mail.prune", skip_all)]
    async fn prune(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError> {
        let statement = Statement::from_sql_and_values(
            self.db.db_backend(),
            "DELETE FROM mail_outbox WHERE id IN ( \
               SELECT id FROM mail_outbox WHERE finished_at IS NOT NULL AND finished_at < $1 LIMIT $2)",
            [before.into(), i64::from(limit).into()],
        );
        Ok(self.db.connection().execute_raw(statement).await.map_err(store_error)?.rows_affected())
    }
}
