//! Per-installation key/value settings (for instance the id of the key that currently signs
//! tokens), so every replica reads the same value from the shared database.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum InstanceSettings {
    Table,
    Key,
    Value,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(InstanceSettings::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(InstanceSettings::Key).string_len(128).not_null().primary_key())
                    .col(ColumnDef::new(InstanceSettings::Value).text().not_null())
                    .col(ColumnDef::new(InstanceSettings::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(InstanceSettings::Table).to_owned()).await
    }
}
