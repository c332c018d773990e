//! Organizations and memberships. Tenant-owned indexes lead with `org_id`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Orgs {
    Table,
    Id,
    Name,
    Slug,
    Plan,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    OrgId,
    UserId,
    Role,
    CreatedAt,
    UpdatedAt,
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
                    .table(Orgs::Table)
                    .col(ColumnDef::new(Orgs::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Orgs::Name).string_len(100).not_null())
                    .col(ColumnDef::new(Orgs::Slug).string_len(63).not_null().unique_key())
                    .col(ColumnDef::new(Orgs::Plan).string_len(32).not_null().default("free"))
                    .col(ColumnDef::new(Orgs::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Orgs::UpdatedAt).timestamp_with_time_zone().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Memberships::Table)
                    .col(ColumnDef::new(Memberships::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Memberships::UserId).uuid().not_null())
                    .col(ColumnDef::new(Memberships::Role).string_len(50).not_null())
                    .col(ColumnDef::new(Memberships::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Memberships::UpdatedAt).timestamp_with_time_zone().not_null())
                    .primary_key(Index::create().col(Memberships::OrgId).col(Memberships::UserId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Memberships::Table, Memberships::OrgId)
                            .to(Orgs::Table, Orgs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Memberships::Table, Memberships::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_memberships_org_role")
                    .table(Memberships::Table)
                    .col(Memberships::OrgId)
                    .col(Memberships::Role)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_memberships_user")
                    .table(Memberships::Table)
                    .col(Memberships::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Memberships::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(Orgs::Table).to_owned()).await
    }
}
