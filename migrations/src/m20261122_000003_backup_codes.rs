//! Two-factor backup codes, by hash, single use.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BackupCodes {
    Table,
    UserId,
    CodeHash,
    CreatedAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BackupCodes::Table)
                    .col(ColumnDef::new(BackupCodes::UserId).uuid().not_null())
                    .col(ColumnDef::new(BackupCodes::CodeHash).string_len(64).not_null())
                    .col(ColumnDef::new(BackupCodes::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(BackupCodes::UsedAt).timestamp_with_time_zone().null())
                    .primary_key(Index::create().col(BackupCodes::UserId).col(BackupCodes::CodeHash))
                    .foreign_key(
                        ForeignKey::create()
                            .from(BackupCodes::Table, BackupCodes::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(BackupCodes::Table).to_owned()).await
    }
}
