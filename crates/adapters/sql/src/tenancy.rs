//! [`OrgRepository`] on sea-orm.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement, Value,
};
use tenantry_domain::audit::AuditEvent;
use tenantry_domain::{Email, OrgId, Slug, UserId};
use tenantry_ports::{Conflict, Member, Org, OrgRepository, StoreError};

use crate::SqlDatabase;
use crate::database::Scope;
use crate::entities::{memberships, orgs};
use crate::errors::{meaning, store_error, taken};

const OWNER: &str = "owner";

/// [`OrgRepository`] on SQL.
#[derive(Clone)]
pub struct SqlOrgRepository {
    db: SqlDatabase,
}

impl SqlOrgRepository {
    /// Over `db`.
    pub fn new(db: SqlDatabase) -> Self {
        Self { db }
    }
}

fn org_from(model: orgs::Model) -> Result<Org, StoreError> {
    Ok(Org {
        id: OrgId::from_uuid(model.id),
        name: model.name,
        slug: Slug::parse(&model.slug)
            .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("stored slug is invalid")))?,
        plan: model.plan,
        created_at: model.created_at,
        updated_at: model.updated_at,
    })
}

/// `UPDATE`/`DELETE` of one membership that refuses, in the same statement, to remove the
/// organization's last owner. On PostgreSQL the caller first locks the org row, because under
/// READ COMMITTED two such statements on different rows could each still see two owners.
fn guarded(backend: DbBackend, head: &str, values: Vec<Value>, org: OrgId, user: UserId) -> Statement {
    let (p, q) = match backend {
        DbBackend::Postgres => {
            let n = values.len();
            (format!("${}", n + 1), format!("${}", n + 2))
        }
        _ => ("?".to_owned(), "?".to_owned()),
    };
    let org_again = match backend {
        DbBackend::Postgres => p.clone(),
        _ => "?".to_owned(),
    };
    let sql = format!(
        "{head} WHERE org_id = {p} AND user_id = {q} AND (role <> '{OWNER}' OR \
         (SELECT COUNT(*) FROM memberships m WHERE m.org_id = {org_again} AND m.role = '{OWNER}') > 1)"
    );
    let mut all = values;
    all.push(org.as_uuid().into());
    all.push(user.as_uuid().into());
    if backend != DbBackend::Postgres {
        all.push(org.as_uuid().into());
    }
    Statement::from_sql_and_values(backend, sql, all)
}

impl SqlOrgRepository {
    async fn guarded_change<C: ConnectionTrait>(
        &self,
        txn: &C,
        statement: Statement,
        org_id: OrgId,
        user_id: UserId,
    ) -> Result<(), StoreError> {
        let rows = txn.execute_raw(statement).await.map_err(store_error)?.rows_affected();
        if rows == 1 {
            return Ok(());
        }
        let exists = memberships::Entity::find_by_id((org_id.as_uuid(), user_id.as_uuid()))
            .one(txn)
            .await
            .map_err(store_error)?
            .is_some();
        Err(if exists { StoreError::Conflict(Conflict::LastOwner) } else { StoreError::NotFound })
    }

    async fn lock_org<C: ConnectionTrait>(&self, txn: &C, org_id: OrgId) -> Result<(), StoreError> {
        if txn.get_database_backend() == DbBackend::Postgres {
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT id FROM orgs WHERE id = $1 FOR UPDATE",
                [org_id.as_uuid().into()],
            ))
            .await
            .map_err(store_error)?;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl OrgRepository for SqlOrgRepository {
    #[tracing::instrument(name = "adapter.sql.orgs.create_with_owner", skip_all, fields(org_id = %org.id))]
    async fn create_with_owner(&self, org: &Org, owner: UserId, audit: &AuditEvent) -> Result<(), StoreError> {
        let txn = self.db.tenant(org.id).await?;
        crate::audit::append(&txn, audit).await?;
        orgs::Entity::insert(orgs::ActiveModel {
            id: Set(org.id.as_uuid()),
            name: Set(org.name.clone()),
            slug: Set(org.slug.as_str().to_owned()),
            plan: Set(org.plan.clone()),
            created_at: Set(org.created_at),
            updated_at: Set(org.updated_at),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(taken(Conflict::SlugTaken))?;
        memberships::Entity::insert(memberships::ActiveModel {
            org_id: Set(org.id.as_uuid()),
            user_id: Set(owner.as_uuid()),
            role: Set(OWNER.to_owned()),
            created_at: Set(org.created_at),
            updated_at: Set(org.created_at),
        })
        .exec_without_returning(&txn)
        .await
        .map_err(store_error)?;
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.orgs.get", skip_all, fields(org_id = %org_id))]
    async fn get(&self, org_id: OrgId) -> Result<Option<Org>, StoreError> {
        let txn = self.db.tenant(org_id).await?;
        let model = orgs::Entity::find_by_id(org_id.as_uuid()).one(&txn).await.map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        model.map(org_from).transpose()
    }

    #[tracing::instrument(name = "adapter.sql.orgs.list_all", skip_all)]
    async fn list_all(&self, after: Option<OrgId>, limit: u32) -> Result<Vec<Org>, StoreError> {
        let mut query = orgs::Entity::find();
        if let Some(after) = after {
            query = query.filter(orgs::Column::Id.gt(after.as_uuid()));
        }
        let txn = self.db.platform().await?;
        let models =
            query.order_by_asc(orgs::Column::Id).limit(u64::from(limit)).all(&txn).await.map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        models.into_iter().map(org_from).collect()
    }

    #[tracing::instrument(name = "adapter.sql.orgs.list_for_user", skip_all)]
    async fn list_for_user(
        &self,
        user_id: UserId,
        after: Option<OrgId>,
        limit: u32,
    ) -> Result<Vec<(Org, String)>, StoreError> {
        // A user's own memberships span tenants by nature.
        let db = self.db.platform().await?;
        let mut query = memberships::Entity::find().filter(memberships::Column::UserId.eq(user_id.as_uuid()));
        if let Some(after) = after {
            query = query.filter(memberships::Column::OrgId.gt(after.as_uuid()));
        }
        let memberships = query
            .order_by_asc(memberships::Column::OrgId)
            .limit(u64::from(limit))
            .all(&db)
            .await
            .map_err(store_error)?;
        let ids: Vec<uuid::Uuid> = memberships.iter().map(|m| m.org_id).collect();
        let orgs = orgs::Entity::find().filter(orgs::Column::Id.is_in(ids)).all(&db).await.map_err(store_error)?;
        db.commit().await.map_err(store_error)?;
        let mut out = Vec::with_capacity(memberships.len());
        for membership in memberships {
            if let Some(org) = orgs.iter().find(|o| o.id == membership.org_id) {
                out.push((org_from(org.clone())?, membership.role));
            }
        }
        Ok(out)
    }

    #[tracing::instrument(name = "adapter.sql.orgs.update", skip_all, fields(org_id = %org_id))]
    async fn update(
        &self,
        org_id: OrgId,
        name: &str,
        slug: &Slug,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let update = orgs::Entity::update_many()
            .col_expr(orgs::Column::Name, Expr::value(name))
            .col_expr(orgs::Column::Slug, Expr::value(slug.as_str()))
            .col_expr(orgs::Column::UpdatedAt, Expr::value(now))
            .filter(orgs::Column::Id.eq(org_id.as_uuid()));
        let updated = crate::audit::audited_single_row(&self.db, org_id, audit, |txn| {
            Box::pin(async move { Ok(update.exec(txn).await?.rows_affected) })
        })
        .await
        .map_err(meaning(Conflict::SlugTaken))?;
        if updated { Ok(()) } else { Err(StoreError::NotFound) }
    }

    #[tracing::instrument(name = "adapter.sql.orgs.delete", skip_all, fields(org_id = %org_id))]
    async fn delete(&self, org_id: OrgId, audit: &AuditEvent) -> Result<(), StoreError> {
        let txn = self.db.tenant(org_id).await?;
        crate::audit::append(&txn, audit).await?;
        // The org row before its memberships, as account deletion and role changes take them,
        // so the two can never wait on each other in a cycle.
        self.lock_org(&txn, org_id).await?;
        memberships::Entity::delete_many()
            .filter(memberships::Column::OrgId.eq(org_id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        let result = orgs::Entity::delete_by_id(org_id.as_uuid()).exec(&txn).await.map_err(store_error)?;
        if result.rows_affected == 0 {
            return Err(StoreError::NotFound);
        }
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.orgs.add_member", skip_all, fields(org_id = %org_id))]
    async fn add_member(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: &str,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let txn = self.db.tenant(org_id).await?;
        crate::audit::append(&txn, audit).await?;
        let result = memberships::Entity::insert(memberships::ActiveModel {
            org_id: Set(org_id.as_uuid()),
            user_id: Set(user_id.as_uuid()),
            role: Set(role.to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await;
        match result {
            Ok(_) => txn.commit().await.map_err(store_error),
            Err(err) => match store_error(err) {
                StoreError::Conflict(_) => Err(StoreError::Conflict(Conflict::AlreadyMember)),
                StoreError::Unexpected(cause) if cause.to_string().to_ascii_lowercase().contains("foreign key") => {
                    Err(StoreError::NotFound)
                }
                other => Err(other),
            },
        }
    }

    #[tracing::instrument(name = "adapter.sql.orgs.role_of", skip_all, fields(org_id = %org_id))]
    async fn role_of(&self, org_id: OrgId, user_id: UserId) -> Result<Option<String>, StoreError> {
        let query = memberships::Entity::find_by_id((org_id.as_uuid(), user_id.as_uuid()));
        let membership =
            self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.one(txn).await })).await?;
        Ok(membership.map(|m| m.role))
    }

    #[tracing::instrument(name = "adapter.sql.orgs.list_members", skip_all, fields(org_id = %org_id))]
    async fn list_members(&self, org_id: OrgId, after: Option<UserId>, limit: u32) -> Result<Vec<Member>, StoreError> {
        let txn = self.db.tenant(org_id).await?;
        let backend = txn.get_database_backend();
        let p = |n: usize| if backend == DbBackend::Postgres { format!("${n}") } else { "?".to_owned() };
        let mut values: Vec<Value> = vec![org_id.as_uuid().into()];
        // One round trip: the page of memberships joined with who they are. The cursor is the
        // last user id of the previous page; its join time comes from a subquery, and a
        // cursor whose member has left yields an empty page.
        let cursor = match after {
            None => String::new(),
            Some(after) => {
                let cursor_row = format!(
                    "(SELECT c.created_at FROM memberships c WHERE c.org_id = {} AND c.user_id = {})",
                    p(2),
                    p(3)
                );
                values.extend([org_id.as_uuid().into(), after.as_uuid().into()]);
                let again = format!(
                    "(SELECT c.created_at FROM memberships c WHERE c.org_id = {} AND c.user_id = {})",
                    p(4),
                    p(5)
                );
                values.extend([org_id.as_uuid().into(), after.as_uuid().into(), after.as_uuid().into()]);
                format!(" AND (m.created_at > {cursor_row} OR (m.created_at = {again} AND m.user_id > {}))", p(6))
            }
        };
        let sql = format!(
            "SELECT m.user_id, u.email, u.display_name, m.role, m.created_at FROM memberships m \
             JOIN users u ON u.id = m.user_id WHERE m.org_id = {}{cursor} \
             ORDER BY m.created_at, m.user_id LIMIT {limit}",
            p(1)
        );
        let rows =
            txn.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await.map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let email: String = row.try_get("", "email").map_err(store_error)?;
                Ok(Member {
                    user_id: UserId::from_uuid(row.try_get("", "user_id").map_err(store_error)?),
                    email: Email::parse(&email)
                        .map_err(|_| StoreError::Unexpected(anyhow::anyhow!("stored email is invalid")))?,
                    display_name: row.try_get("", "display_name").map_err(store_error)?,
                    role: row.try_get("", "role").map_err(store_error)?,
                    joined_at: row.try_get("", "created_at").map_err(store_error)?,
                })
            })
            .collect()
    }

    #[tracing::instrument(name = "adapter.sql.orgs.count_owners", skip_all, fields(org_id = %org_id))]
    async fn count_owners(&self, org_id: OrgId) -> Result<u32, StoreError> {
        let query = memberships::Entity::find()
            .filter(memberships::Column::OrgId.eq(org_id.as_uuid()))
            .filter(memberships::Column::Role.eq(OWNER));
        let count = self.db.read(Scope::Tenant(org_id), |txn| Box::pin(async move { query.count(txn).await })).await?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    #[tracing::instrument(name = "adapter.sql.orgs.set_role", skip_all, fields(org_id = %org_id))]
    async fn set_role(
        &self,
        org_id: OrgId,
        user_id: UserId,
        role: &str,
        now: DateTime<Utc>,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let txn = self.db.tenant(org_id).await?;
        crate::audit::append(&txn, audit).await?;
        self.lock_org(&txn, org_id).await?;
        let backend = txn.get_database_backend();
        let head = match backend {
            DbBackend::Postgres => "UPDATE memberships SET role = $1, updated_at = $2",
            _ => "UPDATE memberships SET role = ?, updated_at = ?",
        };
        // Promoting to owner never removes one: no guard needed, but the same statement shape
        // keeps one code path (the guard is then trivially true for non-owners).
        let statement = if role == OWNER {
            let sql = match backend {
                DbBackend::Postgres => {
                    "UPDATE memberships SET role = $1, updated_at = $2 WHERE org_id = $3 AND user_id = $4"
                }
                _ => "UPDATE memberships SET role = ?, updated_at = ? WHERE org_id = ? AND user_id = ?",
            };
            Statement::from_sql_and_values(
                backend,
                sql,
                [role.into(), now.into(), org_id.as_uuid().into(), user_id.as_uuid().into()],
            )
        } else {
            guarded(backend, head, vec![role.into(), now.into()], org_id, user_id)
        };
        self.guarded_change(&txn, statement, org_id, user_id).await?;
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.orgs.remove_member", skip_all, fields(org_id = %org_id))]
    async fn remove_member(&self, org_id: OrgId, user_id: UserId, audit: &AuditEvent) -> Result<(), StoreError> {
        let txn = self.db.tenant(org_id).await?;
        crate::audit::append(&txn, audit).await?;
        self.lock_org(&txn, org_id).await?;
        let statement = guarded(txn.get_database_backend(), "DELETE FROM memberships", Vec::new(), org_id, user_id);
        self.guarded_change(&txn, statement, org_id, user_id).await?;
        // Leaving the organization means leaving its teams.
        crate::entities::team_members::Entity::delete_many()
            .filter(crate::entities::team_members::Column::OrgId.eq(org_id.as_uuid()))
            .filter(crate::entities::team_members::Column::UserId.eq(user_id.as_uuid()))
            .exec(&txn)
            .await
            .map_err(store_error)?;
        txn.commit().await.map_err(store_error)
    }

    #[tracing::instrument(name = "adapter.sql.orgs.orgs_solely_owned_by", skip_all)]
    async fn orgs_solely_owned_by(&self, user_id: UserId) -> Result<Vec<OrgId>, StoreError> {
        // Spans the user's organizations by nature.
        let txn = self.db.platform().await?;
        let backend = txn.get_database_backend();
        let placeholder = if backend == DbBackend::Postgres { "$1" } else { "?" };
        let rows = txn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                format!(
                    "SELECT m.org_id FROM memberships m WHERE m.user_id = {placeholder} AND m.role = '{OWNER}' AND \
                     (SELECT COUNT(*) FROM memberships o WHERE o.org_id = m.org_id AND o.role = '{OWNER}') = 1"
                ),
                [user_id.as_uuid().into()],
            ))
            .await
            .map_err(store_error)?;
        txn.commit().await.map_err(store_error)?;
        rows.iter()
            .map(|row| row.try_get::<uuid::Uuid>("", "org_id").map(OrgId::from_uuid).map_err(store_error))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guard_uses_each_backends_placeholders() {
        let org = OrgId::from_uuid(uuid::Uuid::now_v7());
        let user = UserId::from_uuid(uuid::Uuid::now_v7());
        let pg = guarded(DbBackend::Postgres, "UPDATE memberships SET role = $1", vec!["admin".into()], org, user);
        assert!(pg.sql.contains("org_id = $2 AND user_id = $3"), "{}", pg.sql);
        assert!(pg.sql.contains("m.org_id = $2"), "{}", pg.sql);
        assert_eq!(pg.values.map(|v| v.0.len()), Some(3));
        let sqlite = guarded(DbBackend::Sqlite, "DELETE FROM memberships", Vec::new(), org, user);
        assert!(sqlite.sql.contains("org_id = ? AND user_id = ?"), "{}", sqlite.sql);
        assert_eq!(sqlite.values.map(|v| v.0.len()), Some(3));
    }
}
