//! Custom roles: an organization's own named sets of permissions.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Roles {
    Table,
    Id,
    OrgId,
    Name,
    Permissions,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Orgs {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Roles::Table)
                    .col(ColumnDef::new(Roles::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Roles::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Roles::Name).string_len(50).not_null())
                    .col(ColumnDef::new(Roles::Permissions).text().not_null())
                    .col(ColumnDef::new(Roles::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Roles::UpdatedAt).timestamp_with_time_zone().not_null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Roles::Table, Roles::OrgId)
                            .to(Orgs::Table, Orgs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_roles_org_name")
                    .table(Roles::Table)
                    .col(Roles::OrgId)
                    .col(Roles::Name)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Roles::Table).to_owned()).await
    }
}
