//! PostgreSQL Row-Level Security on every tenant table (a no-op on SQLite).
//!
//! A row is visible, and may be written, only when the transaction's `tenantry.org_id` names
//! its organization, or when the transaction declared itself cross-tenant with
//! `tenantry.scope = 'platform'` (the few operations that are cross-tenant by nature). With
//! neither set, no tenant row matches. `FORCE` makes the policies bind the tables' owner too,
//! so the server may own its schema (and migrate it) and still be fenced; only a superuser or
//! a `BYPASSRLS` role escapes, and production mode refuses to run as one.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tenant-owned tables that existed when this migration was written, and the column naming
/// their organization. Later migrations fence their own tables; `crate::TENANT_TABLES` lists
/// them all.
pub(crate) const TABLES: [(&str, &str); 9] = [
    ("orgs", "id"),
    ("memberships", "org_id"),
    ("invitations", "org_id"),
    ("roles", "org_id"),
    ("teams", "org_id"),
    ("team_members", "org_id"),
    ("api_keys", "org_id"),
    ("audit_log", "org_id"),
    ("audit_heads", "org_id"),
];

/// The policy expression: a row is visible when `column` names the transaction's tenant, or in
/// a declared cross-tenant transaction. Shared by every migration that fences a tenant table.
pub(crate) fn visible(column: &str) -> String {
    format!(
        "{column} = NULLIF(current_setting('tenantry.org_id', true), '')::uuid \
         OR current_setting('tenantry.scope', true) = 'platform'"
    )
}

/// Fences `tables` (`(table, org column)`) with the tenant policy, forced on their owner too:
/// what every migration that adds a tenant table calls (a no-op on SQLite).
pub(crate) async fn fence(manager: &SchemaManager<'_>, tables: &[(&str, &str)]) -> Result<(), DbErr> {
    if manager.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let db = manager.get_connection();
    for (table, column) in tables {
        let rule = visible(column);
        db.execute_unprepared(&format!(
            "ALTER TABLE {table} ENABLE ROW LEVEL SECURITY; \
             ALTER TABLE {table} FORCE ROW LEVEL SECURITY; \
             CREATE POLICY tenant_isolation ON {table} USING ({rule}) WITH CHECK ({rule});"
        ))
        .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        fence(manager, &TABLES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        for (table, _) in TABLES {
            db.execute_unprepared(&format!(
                "DROP POLICY IF EXISTS tenant_isolation ON {table}; \
                 ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY; \
                 ALTER TABLE {table} DISABLE ROW LEVEL SECURITY;"
            ))
            .await?;
        }
        Ok(())
    }
}
