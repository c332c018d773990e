//! The contract suites against this adapter, on SQLite and on PostgreSQL.

use std::sync::Arc;

use secrecy::SecretString;
use tenantry_testkit::identity::{IdentityStores, run_contract};
use tenantry_testkit::postgres::ScratchPostgres;

use tenantry_testkit::files::FileStores;
use tenantry_testkit::plans::PlanStores;
use tenantry_testkit::tenancy::TenancyStores;
use tenantry_testkit::usage::{OrgSource, UsageStores};
use tenantry_testkit::webhooks::WebhookStores;

use crate::{
    SqlApiKeyRepository, SqlAuditLog, SqlConfig, SqlDatabase, SqlDeliveryQueue, SqlFileRepository,
    SqlInvitationRepository, SqlMailOutbox, SqlOneTimeTokenRepository, SqlOrgRepository, SqlPersonalDataReader,
    SqlPlanRepository, SqlRoleRepository, SqlSessionRepository, SqlTeamRepository, SqlTwoFactorRepository,
    SqlUsageStore, SqlUserRepository, SqlWebhookRepository,
};

async fn migrated(url: String) -> SqlDatabase {
    let db = SqlDatabase::connect(&SqlConfig::new(SecretString::from(url))).await.expect("connects");
    db.migrate().await.expect("migrates");
    db
}

fn stores(db: &SqlDatabase) -> IdentityStores {
    IdentityStores {
        users: Arc::new(SqlUserRepository::new(db.clone())),
        sessions: Arc::new(SqlSessionRepository::new(db.clone())),
        tokens: Arc::new(SqlOneTimeTokenRepository::new(db.clone())),
        two_factor: Arc::new(SqlTwoFactorRepository::new(db.clone())),
    }
}

#[tokio::test]
async fn identity_contract_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("identity.db").display());
    let db = migrated(url).await;
    run_contract(|| {
        let stores = stores(&db);
        async move { stores }
    })
    .await;
    db.close().await;
}

#[tokio::test]
async fn identity_contract_on_postgres() {
    let Some(server) = tenantry_testkit::env::postgres_url() else {
        return;
    };
    let scratch = ScratchPostgres::create(&server).await;
    let db = migrated(scratch.url.clone()).await;
    run_contract(|| {
        let stores = stores(&db);
        async move { stores }
    })
    .await;
    db.close().await;
    scratch.drop_database().await;
}

fn tenancy_stores(db: &SqlDatabase) -> TenancyStores {
    TenancyStores {
        users: Arc::new(SqlUserRepository::new(db.clone())),
        orgs: Arc::new(SqlOrgRepository::new(db.clone())),
        invitations: Arc::new(SqlInvitationRepository::new(db.clone())),
        roles: Arc::new(SqlRoleRepository::new(db.clone())),
        teams: Arc::new(SqlTeamRepository::new(db.clone())),
        api_keys: Arc::new(SqlApiKeyRepository::new(db.clone())),
        audit: Arc::new(SqlAuditLog::new(db.clone())),
    }
}

#[tokio::test]
async fn tenancy_contract_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("tenancy.db").display());
    let db = migrated(url).await;
    tenantry_testkit::tenancy::run_contract(|| {
        let stores = tenancy_stores(&db);
        async move { stores }
    })
    .await;
    db.close().await;
}

#[tokio::test]
async fn tenancy_contract_on_postgres() {
    let Some(server) = tenantry_testkit::env::postgres_url() else {
        return;
    };
    let scratch = ScratchPostgres::create(&server).await;
    let db = migrated(scratch.url.clone()).await;
    tenantry_testkit::tenancy::run_contract(|| {
        let stores = tenancy_stores(&db);
        async move { stores }
    })
    .await;
    db.close().await;
    scratch.drop_database().await;
}

fn usage_stores(db: &SqlDatabase) -> UsageStores {
    UsageStores {
        usage: Arc::new(SqlUsageStore::new(db.clone())),
        orgs: OrgSource::Stored {
            users: Arc::new(SqlUserRepository::new(db.clone())),
            orgs: Arc::new(SqlOrgRepository::new(db.clone())),
        },
    }
}

#[tokio::test]
async fn usage_contract_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("usage.db").display());
    let db = migrated(url).await;
    tenantry_testkit::usage::run_contract(|| {
        let stores = usage_stores(&db);
        async move { stores }
    })
    .await;
    db.close().await;
}

#[tokio::test]
async fn usage_contract_on_postgres() {
    let Some(server) = tenantry_testkit::env::postgres_url() else {
        return;
    };
    let scratch = ScratchPostgres::create(&server).await;
    let db = migrated(scratch.url.clone()).await;
    tenantry_testkit::usage::run_contract(|| {
        let stores = usage_stores(&db);
        async move { stores }
    })
    .await;
    db.close().await;
    scratch.drop_database().await;
}

fn plan_stores(db: &SqlDatabase) -> PlanStores {
    PlanStores {
        plans: Arc::new(SqlPlanRepository::new(db.clone())),
        users: Arc::new(SqlUserRepository::new(db.clone())),
        orgs: Arc::new(SqlOrgRepository::new(db.clone())),
        invitations: Arc::new(SqlInvitationRepository::new(db.clone())),
        audit: Arc::new(SqlAuditLog::new(db.clone())),
    }
}

#[tokio::test]
async fn plans_contract_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("plans.db").display());
    let db = migrated(url).await;
    tenantry_testkit::plans::run_contract(|| {
        let stores = plan_stores(&db);
        async move { stores }
    })
    .await;
    db.close().await;
}

#[tokio::test]
async fn plans_contract_on_postgres() {
    let Some(server) = tenantry_testkit::env::postgres_url() else {
        return;
    };
    let scratch = ScratchPostgres::create(&server).await;
    let db = migrated(scratch.url.clone()).await;
    tenantry_testkit::plans::run_contract(|| {
        let stores = plan_stores(&db);
        async move { stores }
    })
    .await;
    db.close().await;
    scratch.drop_database().await;
}

fn webhook_stores(db: &SqlDatabase) -> WebhookStores {
    WebhookStores {
        webhooks: Arc::new(SqlWebhookRepository::new(db.clone())),
        deliveries: Arc::new(SqlDeliveryQueue::new(db.clone())),
        users: Arc::new(SqlUserRepository::new(db.clone())),
        orgs: Arc::new(SqlOrgRepository::new(db.clone())),
        invitations: Arc::new(SqlInvitationRepository::new(db.clone())),
        audit: Arc::new(SqlAuditLog::new(db.clone())),
    }
}

#[tokio::test]
async fn webhooks_contract_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("webhooks.db").display());
    let db = migrated(url).await;
    tenantry_testkit::webhooks::run_contract(|| {
        let stores = webhook_stores(&db);
        async move { stores }
    })
    .await;
    db.close().await;
}

#[tokio::test]
async fn webhooks_contract_on_postgres() {
    let Some(server) = tenantry_testkit::env::postgres_url() else {
        return;
    };
    let scratch = ScratchPostgres::create(&server).await;
    let db = migrated(scratch.url.clone()).await;
    tenantry_testkit::webhooks::run_contract(|| {
        let stores = webhook_stores(&db);
        async move { stores }
    })
    .await;
    db.close().await;
    scratch.drop_database().await;
}

fn file_stores(db: &SqlDatabase) -> FileStores {
    FileStores {
        files: Arc::new(SqlFileRepository::new(db.clone())),
        users: Arc::new(SqlUserRepository::new(db.clone())),
        orgs: Arc::new(SqlOrgRepository::new(db.clone())),
        audit: Arc::new(SqlAuditLog::new(db.clone())),
    }
}

#[tokio::test]
async fn files_contract_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("files.db").display());
    let db = migrated(url).await;
    tenantry_testkit::files::run_contract(|| {
        let stores = file_stores(&db);
        async move { stores }
    })
    .await;
    db.close().await;
}

#[tokio::test]
async fn files_contract_on_postgres() {
    let Some(server) = tenantry_testkit::env::postgres_url() else {
        return;
    };
    let scratch = ScratchPostgres::create(&server).await;
    let db = migrated(scratch.url.clone()).await;
    tenantry_testkit::files::run_contract(|| {
        let stores = file_stores(&db);
        async move { stores }
    })
    .await;
    db.close().await;
    scratch.drop_database().await;
}

fn personal_stores(db: &SqlDatabase) -> tenantry_testkit::personal::PersonalStores {
    tenantry_testkit::personal::PersonalStores {
        users: Arc::new(SqlUserRepository::new(db.clone())),
        orgs: Arc::new(SqlOrgRepository::new(db.clone())),
        footprint: Arc::new(SqlPersonalDataReader::new(db.clone())),
    }
}

#[tokio::test]
async fn personal_data_contract_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("personal.db").display());
    let db = migrated(url).await;
    tenantry_testkit::personal::run_contract(|| {
        let stores = personal_stores(&db);
        async move { stores }
    })
    .await;
    db.close().await;
}

#[tokio::test]
async fn personal_data_contract_on_postgres() {
    let Some(server) = tenantry_testkit::env::postgres_url() else {
        return;
    };
    let scratch = ScratchPostgres::create(&server).await;
    let db = migrated(scratch.url.clone()).await;
    tenantry_testkit::personal::run_contract(|| {
        let stores = personal_stores(&db);
        async move { stores }
    })
    .await;
    db.close().await;
    scratch.drop_database().await;
}

fn mail_cause_stores(db: &SqlDatabase) -> tenantry_testkit::mail_outbox::MailCauseStores {
    tenantry_testkit::mail_outbox::MailCauseStores {
        outbox: Arc::new(SqlMailOutbox::new(db.clone())),
        users: Arc::new(SqlUserRepository::new(db.clone())),
        orgs: Arc::new(SqlOrgRepository::new(db.clone())),
        tokens: Arc::new(SqlOneTimeTokenRepository::new(db.clone())),
        invitations: Arc::new(SqlInvitationRepository::new(db.clone())),
        sessions: Arc::new(SqlSessionRepository::new(db.clone())),
        two_factor: Arc::new(SqlTwoFactorRepository::new(db.clone())),
    }
}

async fn mail_outbox_cases(db: &SqlDatabase) {
    tenantry_testkit::mail_outbox::run_contract(Arc::new(SqlMailOutbox::new(db.clone()))).await;
    tenantry_testkit::mail_outbox::mail_commits_and_rolls_back_with_its_change(mail_cause_stores(db)).await;
}

#[tokio::test]
async fn mail_outbox_contract_on_sqlite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = migrated(format!("sqlite://{}?mode=rwc", dir.path().join("mail.db").display())).await;
    mail_outbox_cases(&db).await;
    db.close().await;
}

#[tokio::test]
async fn mail_outbox_contract_on_postgres() {
    let Some(server) = tenantry_testkit::env::postgres_url() else {
        return;
    };
    let scratch = ScratchPostgres::create(&server).await;
    let db = migrated(scratch.url.clone()).await;
    mail_outbox_cases(&db).await;
    db.close().await;
    scratch.drop_database().await;
}
