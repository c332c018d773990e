//! [`UsageStore`] on sea-orm: quota counters in `usage_counters`, for deployments without
//! Redis. Every increment is one conditional statement (`INSERT … ON CONFLICT DO UPDATE …
//! WHERE it fits`), so the database itself refuses what would pass the limit, whatever runs
//! concurrently.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, Value};
use tenantry_domain::OrgId;
use tenantry_ports::{Consumed, CounterError, StoreError, Take, UsageKey, UsageStore};

use crate::SqlDatabase;
use crate::errors::store_error;

/// [`UsageStore`] on SQL (PostgreSQL or SQLite).
#[derive(Clone)]
pub struct SqlUsageStore {
    db: SqlDatabase,
}

impl SqlUsageStore {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }
}

/// The counter ports have their own error type: callers choose per route whether an
/// unavailable store fails open, so "unreachable" must stay distinguishable.
fn counter_error(err: StoreError) -> CounterError {
    match err {
        StoreError::Unavailable(cause) => CounterError::Unavailable(cause),
        StoreError::Unexpected(cause) => CounterError::Unexpected(cause),
        other => CounterError::Unexpected(anyhow::Error::new(other)),
    }
}

fn db_error(err: sea_orm::DbErr) -> CounterError {
    counter_error(store_error(err))
}

/// Counters are `BIGINT`: larger requests are capped (no real quota comes near).
fn signed(units: u64) -> i64 {
    i64::try_from(units).unwrap_or(i64::MAX)
}

fn unsigned(used: i64) -> u64 {
    u64::try_from(used).unwrap_or(0)
}

fn key_values(key: &UsageKey) -> [Value; 3] {
    [key.org_id.as_uuid().into(), key.quota.as_str().into(), key.period.as_str().into()]
}

/// Adds `$6` to an existing counter only when the sum stays within `$7` (the `WHERE` is left
/// out when there is no limit); a counter seen for the first time starts at `$4`. The row is
/// returned only when something was written. On PostgreSQL a refused update still locks the
/// row until commit, and on SQLite the statement took the database's write lock, so what this
/// transaction reads afterwards cannot change before it ends.
fn upsert(
    backend: DbBackend,
    key: &UsageKey,
    fresh: i64,
    add: i64,
    limit: Option<i64>,
    expires_at: Option<DateTime<Utc>>,
) -> Statement {
    let fits = if limit.is_some() { " WHERE usage_counters.used + $6 <= $7" } else { "" };
    let sql = format!(
        "INSERT INTO usage_counters (org_id, quota, period, used, expires_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (org_id, quota, period) DO UPDATE SET used = usage_counters.used + $6, \
         expires_at = COALESCE(excluded.expires_at, usage_counters.expires_at){fits} RETURNING used"
    );
    let [org, quota, period] = key_values(key);
    let mut values = vec![org, quota, period, fresh.into(), expires_at.into(), add.into()];
    if let Some(limit) = limit {
        values.push(limit.into());
    }
    Statement::from_sql_and_values(backend, sql, values)
}

async fn current(txn: &DatabaseTransaction, key: &UsageKey) -> Result<u64, CounterError> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            txn.get_database_backend(),
            "SELECT used FROM usage_counters WHERE org_id = $1 AND quota = $2 AND period = $3",
            key_values(key),
        ))
        .await
        .map_err(db_error)?;
    match row {
        Some(row) => Ok(unsigned(row.try_get::<i64>("", "used").map_err(db_error)?)),
        None => Ok(0),
    }
}

/// Runs `statement`; the counter after it when it wrote, `None` when it refused.
async fn written(txn: &DatabaseTransaction, statement: Statement) -> Result<Option<u64>, CounterError> {
    let row = txn.query_one_raw(statement).await.map_err(db_error)?;
    row.map(|row| row.try_get::<i64>("", "used").map(unsigned).map_err(db_error)).transpose()
}

/// How many times a partial grant is retried after its conditional add was refused. Both
/// databases hold the row for this transaction after the first refusal, so the second try
/// succeeds; the bound only guards against looping on a store that behaves otherwise.
const PARTIAL_ATTEMPTS: usize = 3;

/// After the whole request was refused: the counter as it is, or for a partial request
/// ([`Take::UpTo`], `partial_limit` set) the room left, added by the same conditional statement
/// so even a wrong reading could not pass the limit.
async fn refused_or_partial(
    txn: &DatabaseTransaction,
    backend: DbBackend,
    key: &UsageKey,
    units: u64,
    partial_limit: Option<u64>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Consumed, CounterError> {
    let mut used = current(txn, key).await?;
    let Some(limit) = partial_limit else {
        return Ok(Consumed { granted: 0, used });
    };
    for _ in 0..PARTIAL_ATTEMPTS {
        let room = limit.saturating_sub(used).min(units);
        if room == 0 {
            break;
        }
        let statement = upsert(backend, key, signed(room), signed(room), Some(signed(limit)), expires_at);
        if let Some(after) = written(txn, statement).await? {
            return Ok(Consumed { granted: room, used: after });
        }
        used = current(txn, key).await?;
    }
    Ok(Consumed { granted: 0, used })
}

#[async_trait::async_trait]
impl UsageStore for SqlUsageStore {
    #[tracing::instrument(name = "adapter.sql.usage.consume", skip_all, fields(org_id = %key.org_id))]
    async fn consume(
        &self,
        key: &UsageKey,
        take: Take,
        limit: Option<u64>,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<Consumed, CounterError> {
        let (units, partial) = match take {
            Take::Exactly(units) => (units, false),
            Take::UpTo(units) => (units, true),
        };
        // What a fresh counter would be granted; every later add is of the whole `units`,
        // conditional on fitting, and a partial grant is sized below under the row's lock.
        let fresh = match limit {
            None => units,
            Some(limit) if partial => units.min(limit),
            Some(limit) if units <= limit => units,
            Some(_) => 0,
        };
        let backend = self.db.db_backend();
        let txn = self.db.tenant(key.org_id).await.map_err(counter_error)?;
        let mut answer = None;
        if fresh > 0 {
            let statement = upsert(backend, key, signed(fresh), signed(units), limit.map(signed), expires_at);
            // A fresh counter got `fresh`; an existing one the whole request, which is `fresh`
            // too whenever it can fit (`units <= limit`).
            answer = written(&txn, statement).await?.map(|used| Consumed { granted: fresh, used });
        }
        let answer = match answer {
            Some(answer) => answer,
            None => refused_or_partial(&txn, backend, key, units, limit.filter(|_| partial), expires_at).await?,
        };
        txn.commit().await.map_err(db_error)?;
        Ok(answer)
    }

    #[tracing::instrument(name = "adapter.sql.usage.release", skip_all, fields(org_id = %key.org_id))]
    async fn release(&self, key: &UsageKey, units: u64) -> Result<(), CounterError> {
        let backend = self.db.db_backend();
        let greatest = if backend == DbBackend::Postgres { "GREATEST" } else { "MAX" };
        let [org, quota, period] = key_values(key);
        let statement = Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE usage_counters SET used = {greatest}(used - $4, 0) \
                 WHERE org_id = $1 AND quota = $2 AND period = $3"
            ),
            [org, quota, period, signed(units).into()],
        );
        let txn = self.db.tenant(key.org_id).await.map_err(counter_error)?;
        txn.execute_raw(statement).await.map_err(db_error)?;
        txn.commit().await.map_err(db_error)
    }

    #[tracing::instrument(name = "adapter.sql.usage.used", skip_all)]
    async fn used(&self, keys: &[UsageKey]) -> Result<Vec<u64>, CounterError> {
        let mut answers = vec![0; keys.len()];
        // One tenant transaction per organization (a report reads one org's quotas together).
        let mut by_org: Vec<(OrgId, Vec<usize>)> = Vec::new();
        let mut seen: HashMap<OrgId, usize> = HashMap::new();
        for (index, key) in keys.iter().enumerate() {
            let slot = *seen.entry(key.org_id).or_insert_with(|| {
                by_org.push((key.org_id, Vec::new()));
                by_org.len() - 1
            });
            by_org[slot].1.push(index);
        }
        for (org_id, indexes) in by_org {
            let txn = self.db.tenant(org_id).await.map_err(counter_error)?;
            for index in indexes {
                answers[index] = current(&txn, &keys[index]).await?;
            }
            txn.commit().await.map_err(db_error)?;
        }
        Ok(answers)
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::TransactionTrait;
    use tenantry_domain::audit::{ActorKind, AuditEvent, Origin};
    use tenantry_domain::quota::Quota;
    use tenantry_ports::OrgRepository;
    use tenantry_ports::PlanRepository;

    use super::*;
    use crate::{SqlOrgRepository, SqlPlanRepository};

    use crate::fenced_orgs::count;

    fn event(org: OrgId, action: &str) -> AuditEvent {
        AuditEvent::new(
            uuid::Uuid::now_v7(),
            org,
            action,
            (ActorKind::User, uuid::Uuid::now_v7()),
            ("test", None),
            Origin::default(),
            Utc::now(),
            &serde_json::json!({}),
        )
    }

    #[tokio::test]
    async fn counters_and_marks_are_fenced_by_row_level_security_and_go_with_their_org() {
        let Some(crate::fenced_orgs::FencedOrgs { scratch, db, superuser, orgs }) =
            crate::fenced_orgs::fenced_orgs(2).await
        else {
            return;
        };
        let usage = SqlUsageStore::new(db.clone());
        let plans = SqlPlanRepository::new(db.clone());
        for org in &orgs {
            for quota in [Quota::ApiCalls, Quota::FileUploads] {
                let key = UsageKey { org_id: *org, quota, period: "0".to_owned() };
                usage.consume(&key, Take::Exactly(1), Some(10), None).await.expect("consume");
                assert!(
                    plans.mark_once(*org, quota, "0", "80", &event(*org, "quota.threshold"), &[]).await.expect("mark")
                );
            }
        }
        let server = db.connection();
        for table in ["usage_counters", "quota_marks"] {
            assert_eq!(count(&superuser, &format!("SELECT COUNT(*) FROM {table}")).await, 4, "{table}");
            assert_eq!(count(server, &format!("SELECT COUNT(*) FROM {table}")).await, 0, "{table} without a tenant");
            let txn = server.begin().await.expect("begin");
            txn.execute_unprepared(&format!("SELECT set_config('tenantry.org_id', '{}', true)", orgs[0]))
                .await
                .expect("set");
            assert_eq!(count(&txn, &format!("SELECT COUNT(*) FROM {table}")).await, 2, "{table}: the tenant's own");
            let foreign = format!("SELECT COUNT(*) FROM {table} WHERE org_id <> '{}'", orgs[0]);
            assert_eq!(count(&txn, &foreign).await, 0, "{table} showed another tenant's rows");
            let smuggled = txn
                .execute_unprepared(&format!(
                    "INSERT INTO usage_counters (org_id, quota, period, used) VALUES ('{}', 'api_calls', '1', 1)",
                    orgs[1]
                ))
                .await;
            assert!(smuggled.is_err(), "a write into another tenant is refused");
            txn.rollback().await.expect("rollback");
        }
        SqlOrgRepository::new(db.clone()).delete(orgs[1], &event(orgs[1], "org.deleted")).await.expect("delete");
        for table in ["usage_counters", "quota_marks"] {
            let left = count(&superuser, &format!("SELECT COUNT(*) FROM {table} WHERE org_id = '{}'", orgs[1])).await;
            assert_eq!(left, 0, "{table} rows go with their organization");
            assert_eq!(count(&superuser, &format!("SELECT COUNT(*) FROM {table}")).await, 2, "{table}: others stay");
        }
        superuser.close().await.ok();
        db.close().await;
        scratch.drop_database().await;
    }
}
