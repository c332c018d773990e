//! [`AuditLog`] on sea-orm, and the in-transaction append every audited repository method uses.

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Statement,
};
use tenantry_domain::OrgId;
use tenantry_domain::audit::{ActorKind, AuditEntry, AuditEvent, GENESIS_HASH, Origin};
use tenantry_ports::{AuditFilter, AuditHead, AuditLog, StoreError};

use crate::SqlDatabase;
use crate::database::Scope;
use crate::entities::{audit_heads, audit_log};
use crate::errors::store_error;

/// Takes `org`'s log head for this transaction (creating it for a first entry) and returns its
/// `(seq, hash)`: on PostgreSQL a row lock held to commit, on SQLite the write lock already
/// serialises writers. Every audited change takes its org's head before anything else, so
/// changes in one org queue here and never lock rows in the opposite order.
pub(crate) async fn lock_head<C: ConnectionTrait>(txn: &C, org: uuid::Uuid) -> Result<(i64, String), StoreError> {
    let backend = txn.get_database_backend();
    let (ensure, read) = match backend {
        DbBackend::Postgres => (
            "INSERT INTO audit_heads (org_id, seq, last_id, hash) VALUES ($1, 0, $2, $3) ON CONFLICT (org_id) DO NOTHING",
            "SELECT seq, hash FROM audit_heads WHERE org_id = $1 FOR UPDATE",
        ),
        _ => (
            "INSERT INTO audit_heads (org_id, seq, last_id, hash) VALUES (?, 0, ?, ?) ON CONFLICT (org_id) DO NOTHING",
            "SELECT seq, hash FROM audit_heads WHERE org_id = ?",
        ),
    };
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        ensure,
        [org.into(), uuid::Uuid::nil().into(), GENESIS_HASH.into()],
    ))
    .await
    .map_err(store_error)?;
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(backend, read, [org.into()]))
        .await
        .map_err(store_error)?
        .ok_or_else(|| StoreError::Unexpected(anyhow::anyhow!("audit head vanished inside its transaction")))?;
    let seq: i64 = row.try_get("", "seq").map_err(store_error)?;
    let hash: String = row.try_get("", "hash").map_err(store_error)?;
    Ok((seq, hash))
}

/// Appends `event` to its org's chain inside `txn`, the transaction of the change it records.
///
/// The head row is written first: on SQLite that takes the database's write lock before
/// anything is read, on PostgreSQL the row lock (`FOR UPDATE`) serialises the org's appends.
/// Either way two appends never read the same head, so the chain never forks. Call it before
/// the change's own statements (or [`lock_head`] first), so the lock order is the same in every
/// transaction.
pub(crate) async fn append<C: ConnectionTrait>(txn: &C, event: &AuditEvent) -> Result<(), StoreError> {
    let org = event.org_id.as_uuid();
    let (seq, hash) = lock_head(txn, org).await?;
    let entry = AuditEntry::link(event.clone(), seq, &hash);
    audit_log::Entity::insert(active(&entry)).exec_without_returning(txn).await.map_err(store_error)?;
    audit_heads::Entity::update_many()
        .col_expr(audit_heads::Column::Seq, sea_orm::sea_query::Expr::value(entry.seq))
        .col_expr(audit_heads::Column::LastId, sea_orm::sea_query::Expr::value(entry.event.id))
        .col_expr(audit_heads::Column::Hash, sea_orm::sea_query::Expr::value(entry.hash.clone()))
        .filter(audit_heads::Column::OrgId.eq(org))
        .exec(txn)
        .await
        .map_err(store_error)?;
    outbox(txn, event).await
}

/// The transactional outbox: an entry whose action is in the event catalog is also queued for
/// webhook fan-out, by one insert in the transaction of the change it records, so an event
/// exists exactly when its change committed and a rollback leaves none. `webhook.test` is left
/// out: it is queued for one endpoint only, by `DeliveryQueue::enqueue_test`. An organization
/// that does not exist (yet, or any more) has no endpoint to deliver to, so its events are
/// not kept rather than failing the change on the foreign key.
async fn outbox<C: ConnectionTrait>(txn: &C, event: &AuditEvent) -> Result<(), StoreError> {
    if event.action == TEST_EVENT || tenantry_domain::events::event_type(&event.action).is_none() {
        return Ok(());
    }
    txn.execute_raw(Statement::from_sql_and_values(
        txn.get_database_backend(),
        "INSERT INTO webhook_events (id, org_id, event_type, data, created_at, fanned_out) \
         SELECT $1, $2, $3, $4, $5, FALSE WHERE EXISTS (SELECT 1 FROM orgs WHERE id = $2)",
        [
            event.id.into(),
            event.org_id.as_uuid().into(),
            event.action.as_str().into(),
            event.data.as_str().into(),
            event.created_at.into(),
        ],
    ))
    .await
    .map_err(store_error)?;
    Ok(())
}

/// The action of a test delivery, queued for its endpoint only, never fanned out.
pub(crate) const TEST_EVENT: &str = "webhook.test";

/// Runs `change`, a statement meant to touch exactly one of `org_id`'s rows, together with
/// its audit entry in one tenant transaction. `false`, with nothing written (not even the
/// entry), when no row matched.
pub(crate) async fn audited_single_row<F>(
    db: &SqlDatabase,
    org_id: OrgId,
    audit: &AuditEvent,
    change: F,
) -> Result<bool, StoreError>
where
    F: for<'t> FnOnce(
        &'t sea_orm::DatabaseTransaction,
    )
        -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u64, sea_orm::DbErr>> + Send + 't>>,
{
    let txn = db.tenant(org_id).await?;
    append(&txn, audit).await?;
    if change(&txn).await.map_err(store_error)? != 1 {
        return Ok(false);
    }
    txn.commit().await.map_err(store_error)?;
    Ok(true)
}

fn active(entry: &AuditEntry) -> audit_log::ActiveModel {
    let e = &entry.event;
    audit_log::ActiveModel {
        id: Set(e.id),
        org_id: Set(e.org_id.as_uuid()),
        seq: Set(entry.seq),
        action: Set(e.action.clone()),
        actor_type: Set(e.actor_type.as_str().to_owned()),
        actor_id: Set(e.actor_id),
        target_type: Set(e.target_type.clone()),
        target_id: Set(e.target_id.clone()),
        ip: Set(e.origin.ip.clone()),
        user_agent: Set(e.origin.user_agent.clone()),
        request_id: Set(e.origin.request_id.clone()),
        created_at: Set(e.created_at),
        data: Set(e.data.clone()),
        prev_hash: Set(entry.prev_hash.clone()),
        hash: Set(entry.hash.clone()),
    }
}

/// Reads a row back as stored, whatever it says: verification must see tampered rows as they
/// are, so an unknown actor type is kept distinguishable instead of failing the read.
pub(crate) fn entry_from(model: audit_log::Model) -> AuditEntry {
    let actor_type = ActorKind::parse(&model.actor_type).unwrap_or(ActorKind::User);
    let mut entry = AuditEntry {
        event: AuditEvent {
            id: model.id,
            org_id: OrgId::from_uuid(model.org_id),
            action: model.action,
            actor_type,
            actor_id: model.actor_id,
            target_type: model.target_type,
            target_id: model.target_id,
            origin: Origin { ip: model.ip, user_agent: model.user_agent, request_id: model.request_id },
            created_at: model.created_at,
            data: model.data,
        },
        seq: model.seq,
        prev_hash: model.prev_hash,
        hash: model.hash,
    };
    if ActorKind::parse(&model.actor_type).is_none() {
        // Cannot be represented: make sure it never verifies.
        entry.hash = String::new();
    }
    entry
}

/// [`AuditLog`] on SQL.
#[derive(Clone)]
pub struct SqlAuditLog {
    db: SqlDatabase,
}

impl SqlAuditLog {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }
}

#[async_trait::async_trait]
impl AuditLog for SqlAuditLog {
    #[tracing::instrument(name = "adapter.sql.audit.append", skip_all, fields(org_id = %event.org_id))]
    async fn append(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let txn = self.db.tenant(event.org_id).await?;
        append(&txn, event).await?;
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.audit.list", skip_all, fields(org_id = %org_id))]
    async fn list(&self, org_id: OrgId, filter: &AuditFilter, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let mut query = audit_log::Entity::find().filter(audit_log::Column::OrgId.eq(org_id.as_uuid()));
        if let Some(action) = &filter.action {
            query = match action.strip_suffix(".*") {
                Some(family) => query.filter(audit_log::Column::Action.starts_with(format!("{family}."))),
                None => query.filter(audit_log::Column::Action.eq(action.as_str())),
            };
        }
        if let Some(actor) = filter.actor_id {
            query = query.filter(audit_log::Column::ActorId.eq(actor));
        }
        if let Some(since) = filter.since {
            query = query.filter(audit_log::Column::CreatedAt.gte(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(audit_log::Column::CreatedAt.lt(until));
        }
        if let Some(before) = filter.before_seq {
            query = query.filter(audit_log::Column::Seq.lt(before));
        }
        let txn = self.db.tenant(org_id).await?;
        let found =
            query.order_by_desc(audit_log::Column::Seq).limit(u64::from(limit)).all(&txn).await.map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        Ok(found.into_iter().map(entry_from).collect())
    }

    #[tracing::instrument(name = "adapter.sql.audit.chain", skip_all, fields(org_id = %org_id))]
    async fn chain(&self, org_id: OrgId, after_seq: i64, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let query = audit_log::Entity::find()
            .filter(audit_log::Column::OrgId.eq(org_id.as_uuid()))
            .filter(audit_log::Column::Seq.gt(after_seq))
            .order_by_asc(audit_log::Column::Seq)
            .limit(u64::from(limit));
        let found = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.all(txn).await })).await?;
        Ok(found.into_iter().map(entry_from).collect())
    }

    #[tracing::instrument(name = "adapter.sql.audit.head", skip_all, fields(org_id = %org_id))]
    async fn head(&self, org_id: OrgId) -> Result<Option<AuditHead>, StoreError> {
        let txn = self.db.tenant(org_id).await?;
        let found = audit_heads::Entity::find_by_id(org_id.as_uuid()).one(&txn).await.map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        Ok(found.filter(|head| head.seq > 0).map(|head| AuditHead {
            seq: head.seq,
            last_id: head.last_id,
            hash: head.hash,
        }))
    }
}
