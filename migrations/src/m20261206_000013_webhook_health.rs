//! An endpoint's failing mark: since when every attempt to it has failed. The dispatcher
//! disables an endpoint whose mark is older than the configured period
//! (`TENANTRY_WEBHOOK_DISABLE_AFTER`) and records a recovery when a success clears it.
//! Nullable, so existing endpoints start healthy; no new table, so no new fence.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    FailingSince,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(WebhookEndpoints::Table)
                    .add_column(ColumnDef::new(WebhookEndpoints::FailingSince).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(WebhookEndpoints::Table).drop_column(WebhookEndpoints::FailingSince).to_owned(),
            )
            .await
    }
}
