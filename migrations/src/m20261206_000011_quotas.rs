//! Plans and quotas: each organization's plan assignment (on `orgs`), its usage counters, and
//! the marks that make each threshold announcement happen once per period.
//!
//! `orgs.plan` exists since the first migration (`NOT NULL`, default `free`) and keeps holding
//! the plan's name; `plan_started_at` is `NULL` until a plan is explicitly assigned, which is
//! how an organization never assigned a plan is told apart (it follows the configured default
//! plan). Both new tables are tenant tables under the same Row-Level Security policy as the
//! others (PostgreSQL only, as in `m20261122_000010_row_level_security`).

use sea_orm_migration::prelude::*;

use crate::m20261122_000010_row_level_security::fence;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tenant tables this migration creates and the column naming their organization.
pub(crate) const TABLES: [(&str, &str); 2] = [("usage_counters", "org_id"), ("quota_marks", "org_id")];

#[derive(DeriveIden)]
enum Orgs {
    Table,
    Id,
    PlanOverrides,
    PlanStartedAt,
}

#[derive(DeriveIden)]
enum UsageCounters {
    Table,
    OrgId,
    Quota,
    Period,
    Used,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum QuotaMarks {
    Table,
    OrgId,
    Quota,
    Period,
    Mark,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Orgs::Table)
                    .add_column(ColumnDef::new(Orgs::PlanOverrides).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Orgs::Table)
                    .add_column(ColumnDef::new(Orgs::PlanStartedAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UsageCounters::Table)
                    .col(ColumnDef::new(UsageCounters::OrgId).uuid().not_null())
                    .col(ColumnDef::new(UsageCounters::Quota).text().not_null())
                    .col(ColumnDef::new(UsageCounters::Period).text().not_null())
                    .col(ColumnDef::new(UsageCounters::Used).big_integer().not_null())
                    .col(ColumnDef::new(UsageCounters::ExpiresAt).timestamp_with_time_zone().null())
                    .primary_key(
                        Index::create().col(UsageCounters::OrgId).col(UsageCounters::Quota).col(UsageCounters::Period),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(UsageCounters::Table, UsageCounters::OrgId)
                            .to(Orgs::Table, Orgs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(QuotaMarks::Table)
                    .col(ColumnDef::new(QuotaMarks::OrgId).uuid().not_null())
                    .col(ColumnDef::new(QuotaMarks::Quota).text().not_null())
                    .col(ColumnDef::new(QuotaMarks::Period).text().not_null())
                    .col(ColumnDef::new(QuotaMarks::Mark).text().not_null())
                    .col(ColumnDef::new(QuotaMarks::CreatedAt).timestamp_with_time_zone().not_null())
                    .primary_key(
                        Index::create()
                            .col(QuotaMarks::OrgId)
                            .col(QuotaMarks::Quota)
                            .col(QuotaMarks::Period)
                            .col(QuotaMarks::Mark),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(QuotaMarks::Table, QuotaMarks::OrgId)
                            .to(Orgs::Table, Orgs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        fence(manager, &TABLES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The policies go with their tables.
        manager.drop_table(Table::drop().table(QuotaMarks::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(UsageCounters::Table).to_owned()).await?;
        manager.alter_table(Table::alter().table(Orgs::Table).drop_column(Orgs::PlanStartedAt).to_owned()).await?;
        manager.alter_table(Table::alter().table(Orgs::Table).drop_column(Orgs::PlanOverrides).to_owned()).await
    }
}

#[cfg(test)]
mod tests {
    use sea_orm_migration::MigratorTrait;
    use sea_orm_migration::sea_orm::Database;

    use crate::Migrator;

    #[tokio::test]
    async fn rolls_back_and_applies_again_on_sqlite() {
        let db = Database::connect("sqlite::memory:").await.expect("connects");
        Migrator::up(&db, None).await.expect("up");
        // The later migrations first, then this one.
        Migrator::down(&db, Some(2)).await.expect("down drops the tables and the columns");
        Migrator::up(&db, None).await.expect("up again");
        assert!(Migrator::get_pending_migrations(&db).await.expect("reads").is_empty());
    }
}
