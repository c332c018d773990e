//! Files: one metadata row per stored object (the bytes live in object storage under
//! `orgs/{org_id}/files/{id}`). A presigned upload is a `pending` row with an `expires_at`
//! until its completion step checks the stored bytes; the sweeper removes expired ones. A
//! tenant table under the same Row-Level Security policy as the others (PostgreSQL only);
//! rows go with their organization.

use sea_orm_migration::prelude::*;

use crate::m20261122_000010_row_level_security::fence;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tenant tables this migration creates and the column naming their organization.
pub(crate) const TABLES: [(&str, &str); 1] = [("files", "org_id")];

#[derive(DeriveIden)]
enum Orgs {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Files {
    Table,
    Id,
    OrgId,
    Name,
    Size,
    ContentType,
    Sha256,
    Status,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Files::Table)
                    .col(ColumnDef::new(Files::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Files::OrgId).uuid().not_null())
                    .col(ColumnDef::new(Files::Name).text().not_null())
                    .col(ColumnDef::new(Files::Size).big_integer().not_null())
                    .col(ColumnDef::new(Files::ContentType).text().not_null())
                    .col(ColumnDef::new(Files::Sha256).string_len(64).null())
                    .col(ColumnDef::new(Files::Status).string_len(16).not_null())
                    .col(ColumnDef::new(Files::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(Files::ExpiresAt).timestamp_with_time_zone().null())
                    .foreign_key(
                        ForeignKey::create()
                            .from(Files::Table, Files::OrgId)
                            .to(Orgs::Table, Orgs::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // An organization's files, page by page (and the cascade of its deletion).
        manager
            .create_index(
                Index::create().name("idx_files_org").table(Files::Table).col(Files::OrgId).col(Files::Id).to_owned(),
            )
            .await?;
        // Pending uploads by expiry: the sweeper's scan stays as small as the pending set.
        manager
            .create_index(
                Index::create()
                    .name("idx_files_pending_expiry")
                    .table(Files::Table)
                    .col(Files::ExpiresAt)
                    .and_where(Expr::col(Files::Status).eq("pending"))
                    .to_owned(),
            )
            .await?;
        fence(manager, &TABLES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The policy and the indexes go with the table.
        manager.drop_table(Table::drop().table(Files::Table).to_owned()).await
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
        Migrator::down(&db, Some(1)).await.expect("down drops the files table");
        Migrator::up(&db, None).await.expect("up again");
        assert!(Migrator::get_pending_migrations(&db).await.expect("reads").is_empty());
    }
}
