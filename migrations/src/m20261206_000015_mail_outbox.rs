//! The mail outbox (ADR 0018): one row per message, written by the transaction of the action
//! that causes it and sent by a worker step with retries. The envelope (recipient, subject,
//! both parts) is sealed by the application's cipher and erased once the mail ends (`sent` or
//! `dead`); ended rows are pruned after the retention period.
//!
//! Not a tenant table: most mail belongs to no organization (verification, reset, sign-in
//! alerts), the worker reads across organizations by nature, and the sealed envelope is the
//! only part that says anything about anyone.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum MailOutbox {
    Table,
    Id,
    Kind,
    Sealed,
    Status,
    Attempts,
    NextAttemptAt,
    ClaimedUntil,
    Claim,
    LastError,
    CreatedAt,
    FinishedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(MailOutbox::Table)
                    .col(ColumnDef::new(MailOutbox::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(MailOutbox::Kind).string_len(64).not_null())
                    // NULL once the mail ended: the body (and its token) is gone.
                    .col(ColumnDef::new(MailOutbox::Sealed).text().null())
                    .col(ColumnDef::new(MailOutbox::Status).string_len(16).not_null())
                    .col(ColumnDef::new(MailOutbox::Attempts).integer().not_null().default(0))
                    .col(ColumnDef::new(MailOutbox::NextAttemptAt).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(MailOutbox::ClaimedUntil).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(MailOutbox::Claim).uuid().null())
                    .col(ColumnDef::new(MailOutbox::LastError).text().null())
                    .col(ColumnDef::new(MailOutbox::CreatedAt).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(MailOutbox::FinishedAt).timestamp_with_time_zone().null())
                    .to_owned(),
            )
            .await?;
        // The worker's claim: pending mail by due time, the index as small as the backlog.
        manager
            .create_index(
                Index::create()
                    .name("idx_mail_outbox_due")
                    .table(MailOutbox::Table)
                    .col(MailOutbox::NextAttemptAt)
                    .and_where(Expr::col(MailOutbox::Status).eq("pending"))
                    .to_owned(),
            )
            .await?;
        // The pruning of ended mail by end time.
        manager
            .create_index(
                Index::create()
                    .name("idx_mail_outbox_finished")
                    .table(MailOutbox::Table)
                    .col(MailOutbox::FinishedAt)
                    .and_where(Expr::col(MailOutbox::FinishedAt).is_not_null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(MailOutbox::Table).to_owned()).await
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
        Migrator::down(&db, Some(1)).await.expect("down drops the mail outbox");
        Migrator::up(&db, None).await.expect("up again");
        assert!(Migrator::get_pending_migrations(&db).await.expect("reads").is_empty());
    }
}
