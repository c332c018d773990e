//! Accounts, sessions with rotating refresh tokens, and single-use e-mailed tokens.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    DisplayName,
    PasswordHash,
    EmailVerifiedAt,
    IsAdmin,
    DisabledAt,
    Settings,
    TotpSecret,
    TotpPendingSecret,
    TotpEnabledAt,
    TotpLastStep,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    UserAgent,
    Ip,
    CreatedAt,
    LastSeenAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    TokenHash,
    SessionId,
    CreatedAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum OneTimeTokens {
    Table,
    TokenHash,
    UserId,
    Purpose,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

fn tz(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).timestamp_with_time_zone().not_null().to_owned()
}

fn tz_null(column: impl IntoIden) -> ColumnDef {
    ColumnDef::new(column).timestamp_with_time_zone().null().to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(ColumnDef::new(Users::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Users::Email).string_len(254).not_null().unique_key())
                    .col(ColumnDef::new(Users::DisplayName).string_len(100).null())
                    .col(ColumnDef::new(Users::PasswordHash).text().not_null())
                    .col(tz_null(Users::EmailVerifiedAt))
                    .col(ColumnDef::new(Users::IsAdmin).boolean().not_null().default(false))
                    .col(tz_null(Users::DisabledAt))
                    .col(ColumnDef::new(Users::Settings).text().not_null())
                    .col(ColumnDef::new(Users::TotpSecret).text().null())
                    .col(ColumnDef::new(Users::TotpPendingSecret).text().null())
                    .col(tz_null(Users::TotpEnabledAt))
                    .col(ColumnDef::new(Users::TotpLastStep).big_integer().null())
                    .col(tz(Users::CreatedAt))
                    .col(tz(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(ColumnDef::new(Sessions::Id).uuid().not_null().primary_key())
                    .col(ColumnDef::new(Sessions::UserId).uuid().not_null())
                    .col(ColumnDef::new(Sessions::UserAgent).string_len(512).null())
                    .col(ColumnDef::new(Sessions::Ip).string_len(64).null())
                    .col(tz(Sessions::CreatedAt))
                    .col(tz(Sessions::LastSeenAt))
                    .col(tz(Sessions::ExpiresAt))
                    .col(tz_null(Sessions::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_sessions_user_created")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .col(Sessions::CreatedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(ColumnDef::new(RefreshTokens::TokenHash).string_len(64).not_null().primary_key())
                    .col(ColumnDef::new(RefreshTokens::SessionId).uuid().not_null())
                    .col(tz(RefreshTokens::CreatedAt))
                    .col(tz_null(RefreshTokens::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(RefreshTokens::Table, RefreshTokens::SessionId)
                            .to(Sessions::Table, Sessions::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_refresh_tokens_session")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::SessionId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(OneTimeTokens::Table)
                    .col(ColumnDef::new(OneTimeTokens::TokenHash).string_len(64).not_null().primary_key())
                    .col(ColumnDef::new(OneTimeTokens::UserId).uuid().not_null())
                    .col(ColumnDef::new(OneTimeTokens::Purpose).string_len(32).not_null())
                    .col(tz(OneTimeTokens::CreatedAt))
                    .col(tz(OneTimeTokens::ExpiresAt))
                    .col(tz_null(OneTimeTokens::UsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(OneTimeTokens::Table, OneTimeTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_one_time_tokens_user")
                    .table(OneTimeTokens::Table)
                    .col(OneTimeTokens::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            OneTimeTokens::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
