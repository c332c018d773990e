//! The audit log: append-only entries in a per-org hash chain, and each org's chain head.
//!
//! Entries carry no foreign key to `orgs`: an organization's log outlives the organization, so
//! its deletion can still be investigated. `data` is text, not `jsonb`, because the chain hashes
//! the exact bytes that were stored.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    OrgId,
    Seq,
    Action,
    ActorType,
    ActorId,
    TargetType,
    TargetId,
    Ip,
    UserAgent,
    RequestId,
    CreatedAt,
    Data,
    PrevHash,
    Hash,
}

#[derive(DeriveIden)]
enum AuditHeads {
    Table,
    OrgId,
    Seq,
    LastId,
    Hash,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(ColumnDef::new(AuditLog::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(AuditLog::OrgId).uuid().not_null())
                    .col(ColumnDef::new(AuditLog::Seq).big_integer().not_null())
                    .col(ColumnDef::new(AuditLog::Action).string_len(64).not_null())
                    .col(ColumnDef::new(AuditLog::ActorType).string_len(16).not_null())
                    .col(ColumnDef::new(AuditLog::ActorId).uuid().not_null())
                    .col(ColumnDef::new(AuditLog::TargetType).string_len(32).not_null())
                    .col(ColumnDef::new(AuditLog::TargetId).string_len(64).null())
                    .col(ColumnDef::new(AuditLog::Ip).string_len(64).null())
                    .col(ColumnDef::new(AuditLog::UserAgent).text().null())
                    .col(ColumnDef::new(AuditLog::RequestId).string_len(128).null())
                    .col(ColumnDef::new(AuditLog::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(AuditLog::Data).text().not_null())
                    .col(ColumnDef::new(AuditLog::PrevHash).string_len(64).not_null())
                    .col(ColumnDef::new(AuditLog::Hash).string_len(64).not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_log_org_seq")
                    .table(AuditLog::Table)
                    .col(AuditLog::OrgId)
                    .col(AuditLog::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_log_org_actor")
                    .table(AuditLog::Table)
                    .col(AuditLog::OrgId)
                    .col(AuditLog::ActorId)
                    .col(AuditLog::Seq)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(AuditHeads::Table)
                    .col(ColumnDef::new(AuditHeads::OrgId).uuid().not_null().primary_key())
                    .col(ColumnDef::new(AuditHeads::Seq).big_integer().not_null())
                    .col(ColumnDef::new(AuditHeads::LastId).uuid().not_null())
                    .col(ColumnDef::new(AuditHeads::Hash).string_len(64).not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(AuditHeads::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(AuditLog::Table).to_owned()).await
    }
}
