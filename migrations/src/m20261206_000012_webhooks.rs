//! Outgoing webhooks: endpoints, the transactional outbox of events, deliveries and their
//! attempts.
//!
//! `webhook_events` is the outbox: the audit append writes a row in the transaction of every
//! change whose action is in the event catalog, so an event exists exactly when its change
//! committed; the dispatcher fans unfanned rows out into `webhook_deliveries`, one per
//! subscribed endpoint. Payloads and events are text, not `jsonb`: they are sent as stored.
//! Deliveries and attempts go with their endpoint, and endpoints and events with their
//! organization. All four are tenant tables under the same Row-Level Security policy as the
//! others (PostgreSQL only, as in `m20261122_000010_row_level_security`); the dispatcher's
//! cross-tenant steps run in declared platform transactions.

use sea_orm_migration::prelude::*;

use crate::m20261122_000010_row_level_security::fence;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tenant tables this migration creates and the column naming their organization.
pub(crate) const TABLES: [(&str, &str); 4] = [
    ("webhook_endpoints", "org_id"),
    ("webhook_events", "org_id"),
    ("webhook_deliveries", "org_id"),
    ("webhook_attempts", "org_id"),
];

#[derive(DeriveIden)]
enum Orgs {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum WebhookEndpoints {
    Table,
    Id,
    OrgId,
    Url,
    Events,
    Description,
    Enabled,
    DisabledReason,
    Secret,
    PreviousSecret,
    PreviousUntil,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookEvents {
    Table,
    Id,
    OrgId,
    EventType,
    Data,
    CreatedAt,
    FannedOut,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    OrgId,
    EndpointId,
    EventId,
    EventType,
    Payload,
    Status,
    Attempts,
    LastResponseStatus,
    LastLatencyMs,
    NextAttemptAt,
    ClaimedUntil,
    CreatedAt,
    EventCreatedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum WebhookAttempts {
    Table,
    DeliveryId,
    OrgId,
    Attempt,
    StartedAt,
    ResponseStatus,
    LatencyMs,
    ResponseBody,
    Error,
}

fn tz<T: IntoIden>(column: T, null: bool) -> ColumnDef {
    let mut def = ColumnDef::new(column);
    def.timestamp_with_time_zone();
    if null {
        def.null()
    } else {
        def.not_null()
    };
    def.to_owned()
}

async fn endpoints(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(WebhookEndpoints::Table)
                .col(ColumnDef::new(WebhookEndpoints::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(WebhookEndpoints::OrgId).uuid().not_null())
                .col(ColumnDef::new(WebhookEndpoints::Url).text().not_null())
                .col(ColumnDef::new(WebhookEndpoints::Events).text().not_null())
                .col(ColumnDef::new(WebhookEndpoints::Description).text().null())
                .col(ColumnDef::new(WebhookEndpoints::Enabled).boolean().not_null())
                .col(ColumnDef::new(WebhookEndpoints::DisabledReason).text().null())
                .col(ColumnDef::new(WebhookEndpoints::Secret).text().not_null())
                .col(ColumnDef::new(WebhookEndpoints::PreviousSecret).text().null())
                .col(tz(WebhookEndpoints::PreviousUntil, true))
                .col(tz(WebhookEndpoints::CreatedAt, false))
                .col(tz(WebhookEndpoints::UpdatedAt, false))
                .foreign_key(
                    ForeignKey::create()
                        .from(WebhookEndpoints::Table, WebhookEndpoints::OrgId)
                        .to(Orgs::Table, Orgs::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    // An organization's endpoints, page by page (and fan-out's lookup by organization).
    manager
        .create_index(
            Index::create()
                .name("idx_webhook_endpoints_org")
                .table(WebhookEndpoints::Table)
                .col(WebhookEndpoints::OrgId)
                .col(WebhookEndpoints::Id)
                .to_owned(),
        )
        .await
}

async fn events(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(WebhookEvents::Table)
                .col(ColumnDef::new(WebhookEvents::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(WebhookEvents::OrgId).uuid().not_null())
                .col(ColumnDef::new(WebhookEvents::EventType).text().not_null())
                .col(ColumnDef::new(WebhookEvents::Data).text().not_null())
                .col(tz(WebhookEvents::CreatedAt, false))
                .col(ColumnDef::new(WebhookEvents::FannedOut).boolean().not_null().default(false))
                .foreign_key(
                    ForeignKey::create()
                        .from(WebhookEvents::Table, WebhookEvents::OrgId)
                        .to(Orgs::Table, Orgs::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    // Only the events still waiting for fan-out, in id (commit-ish) order: the index stays as
    // small as the backlog however long the table grows.
    manager
        .create_index(
            Index::create()
                .name("idx_webhook_events_unfanned")
                .table(WebhookEvents::Table)
                .col(WebhookEvents::Id)
                .and_where(Expr::col(WebhookEvents::FannedOut).eq(false))
                .to_owned(),
        )
        .await?;
    // Organization deletion cascades here.
    manager
        .create_index(
            Index::create()
                .name("idx_webhook_events_org")
                .table(WebhookEvents::Table)
                .col(WebhookEvents::OrgId)
                .to_owned(),
        )
        .await
}

async fn deliveries(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(WebhookDeliveries::Table)
                .col(ColumnDef::new(WebhookDeliveries::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(WebhookDeliveries::OrgId).uuid().not_null())
                .col(ColumnDef::new(WebhookDeliveries::EndpointId).uuid().not_null())
                .col(ColumnDef::new(WebhookDeliveries::EventId).uuid().not_null())
                .col(ColumnDef::new(WebhookDeliveries::EventType).text().not_null())
                .col(ColumnDef::new(WebhookDeliveries::Payload).text().null())
                .col(ColumnDef::new(WebhookDeliveries::Status).string_len(16).not_null())
                .col(ColumnDef::new(WebhookDeliveries::Attempts).integer().not_null())
                .col(ColumnDef::new(WebhookDeliveries::LastResponseStatus).integer().null())
                .col(ColumnDef::new(WebhookDeliveries::LastLatencyMs).integer().null())
                .col(tz(WebhookDeliveries::NextAttemptAt, true))
                .col(tz(WebhookDeliveries::ClaimedUntil, true))
                .col(tz(WebhookDeliveries::CreatedAt, false))
                .col(tz(WebhookDeliveries::EventCreatedAt, false))
                .col(tz(WebhookDeliveries::FinishedAt, true))
                .foreign_key(
                    ForeignKey::create()
                        .from(WebhookDeliveries::Table, WebhookDeliveries::EndpointId)
                        .to(WebhookEndpoints::Table, WebhookEndpoints::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    // Due work: pending or failed, by when it is due.
    manager
        .create_index(
            Index::create()
                .name("idx_webhook_deliveries_due")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::Status)
                .col(WebhookDeliveries::NextAttemptAt)
                .to_owned(),
        )
        .await?;
    // An endpoint's deliveries, newest first (and the cascade of its deletion).
    manager
        .create_index(
            Index::create()
                .name("idx_webhook_deliveries_endpoint")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::EndpointId)
                .col(WebhookDeliveries::Id)
                .to_owned(),
        )
        .await?;
    // Claims in force, counted per endpoint by every claim.
    manager
        .create_index(
            Index::create()
                .name("idx_webhook_deliveries_claimed")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::ClaimedUntil)
                .and_where(Expr::col(WebhookDeliveries::ClaimedUntil).is_not_null())
                .to_owned(),
        )
        .await?;
    // Finished deliveries whose payload the retention purge has not erased yet.
    manager
        .create_index(
            Index::create()
                .name("idx_webhook_deliveries_purgeable")
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::FinishedAt)
                .and_where(Expr::col(WebhookDeliveries::Payload).is_not_null())
                .and_where(Expr::col(WebhookDeliveries::FinishedAt).is_not_null())
                .to_owned(),
        )
        .await
}

async fn attempts(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(WebhookAttempts::Table)
                .col(ColumnDef::new(WebhookAttempts::DeliveryId).uuid().not_null())
                .col(ColumnDef::new(WebhookAttempts::OrgId).uuid().not_null())
                .col(ColumnDef::new(WebhookAttempts::Attempt).integer().not_null())
                .col(tz(WebhookAttempts::StartedAt, false))
                .col(ColumnDef::new(WebhookAttempts::ResponseStatus).integer().null())
                .col(ColumnDef::new(WebhookAttempts::LatencyMs).integer().not_null())
                .col(ColumnDef::new(WebhookAttempts::ResponseBody).text().null())
                .col(ColumnDef::new(WebhookAttempts::Error).text().null())
                .primary_key(Index::create().col(WebhookAttempts::DeliveryId).col(WebhookAttempts::Attempt))
                .foreign_key(
                    ForeignKey::create()
                        .from(WebhookAttempts::Table, WebhookAttempts::DeliveryId)
                        .to(WebhookDeliveries::Table, WebhookDeliveries::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        endpoints(manager).await?;
        events(manager).await?;
        deliveries(manager).await?;
        attempts(manager).await?;
        fence(manager, &TABLES).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The policies and indexes go with their tables; children first.
        manager.drop_table(Table::drop().table(WebhookAttempts::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(WebhookDeliveries::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(WebhookEvents::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(WebhookEndpoints::Table).to_owned()).await
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
        Migrator::down(&db, Some(1)).await.expect("down drops the webhook tables");
        Migrator::up(&db, None).await.expect("up again");
        assert!(Migrator::get_pending_migrations(&db).await.expect("reads").is_empty());
    }
}
