//! The repository contract suites the SQL adapter runs, against the in-memory repositories:
//! one fresh [`MemoryDatabase`] per case, so cases never see each other's rows.

use std::sync::Arc;

use tenantry_testkit::files::FileStores;
use tenantry_testkit::identity::IdentityStores;
use tenantry_testkit::plans::PlanStores;
use tenantry_testkit::tenancy::TenancyStores;
use tenantry_testkit::usage::{OrgSource, UsageStores};
use tenantry_testkit::webhooks::WebhookStores;

use crate::{
    InMemoryApiKeyRepository, InMemoryAuditLog, InMemoryDeliveryQueue, InMemoryFileRepository,
    InMemoryInvitationRepository, InMemoryObjectStorage, InMemoryOneTimeTokenRepository, InMemoryOrgRepository,
    InMemoryPlanRepository, InMemoryRoleRepository, InMemorySessionRepository, InMemoryTeamRepository,
    InMemoryTwoFactorRepository, InMemoryUsageStore, InMemoryUserRepository, InMemoryWebhookRepository, MemoryDatabase,
    SystemClock,
};

#[tokio::test]
async fn identity_contract_in_memory() {
    tenantry_testkit::identity::run_contract(|| async {
        let db = MemoryDatabase::new();
        IdentityStores {
            users: Arc::new(InMemoryUserRepository::new(db.clone())),
            sessions: Arc::new(InMemorySessionRepository::new(db.clone())),
            tokens: Arc::new(InMemoryOneTimeTokenRepository::new(db.clone())),
            two_factor: Arc::new(InMemoryTwoFactorRepository::new(db)),
        }
    })
    .await;
}

#[tokio::test]
async fn tenancy_contract_in_memory() {
    tenantry_testkit::tenancy::run_contract(|| async {
        let db = MemoryDatabase::new();
        TenancyStores {
            users: Arc::new(InMemoryUserRepository::new(db.clone())),
            orgs: Arc::new(InMemoryOrgRepository::new(db.clone())),
            invitations: Arc::new(InMemoryInvitationRepository::new(db.clone())),
            roles: Arc::new(InMemoryRoleRepository::new(db.clone())),
            teams: Arc::new(InMemoryTeamRepository::new(db.clone())),
            api_keys: Arc::new(InMemoryApiKeyRepository::new(db.clone())),
            audit: Arc::new(InMemoryAuditLog::new(db)),
        }
    })
    .await;
}

#[tokio::test]
async fn plans_contract_in_memory() {
    tenantry_testkit::plans::run_contract(|| async {
        let db = MemoryDatabase::new();
        PlanStores {
            plans: Arc::new(InMemoryPlanRepository::new(db.clone())),
            users: Arc::new(InMemoryUserRepository::new(db.clone())),
            orgs: Arc::new(InMemoryOrgRepository::new(db.clone())),
            invitations: Arc::new(InMemoryInvitationRepository::new(db.clone())),
            audit: Arc::new(InMemoryAuditLog::new(db)),
        }
    })
    .await;
}

#[tokio::test]
async fn usage_contract_with_stored_orgs_in_memory() {
    tenantry_testkit::usage::run_contract(|| async {
        let db = MemoryDatabase::new();
        UsageStores {
            usage: Arc::new(InMemoryUsageStore::new(Arc::new(SystemClock))),
            orgs: OrgSource::Stored {
                users: Arc::new(InMemoryUserRepository::new(db.clone())),
                orgs: Arc::new(InMemoryOrgRepository::new(db)),
            },
        }
    })
    .await;
}

#[tokio::test]
async fn webhooks_contract_in_memory() {
    tenantry_testkit::webhooks::run_contract(|| async {
        let db = MemoryDatabase::new();
        WebhookStores {
            webhooks: Arc::new(InMemoryWebhookRepository::new(db.clone())),
            deliveries: Arc::new(InMemoryDeliveryQueue::new(db.clone())),
            users: Arc::new(InMemoryUserRepository::new(db.clone())),
            orgs: Arc::new(InMemoryOrgRepository::new(db.clone())),
            invitations: Arc::new(InMemoryInvitationRepository::new(db.clone())),
            audit: Arc::new(InMemoryAuditLog::new(db)),
        }
    })
    .await;
}

#[tokio::test]
async fn files_contract_in_memory() {
    tenantry_testkit::files::run_contract(|| async {
        let db = MemoryDatabase::new();
        FileStores {
            files: Arc::new(InMemoryFileRepository::new(db.clone())),
            users: Arc::new(InMemoryUserRepository::new(db.clone())),
            orgs: Arc::new(InMemoryOrgRepository::new(db.clone())),
            audit: Arc::new(InMemoryAuditLog::new(db)),
        }
    })
    .await;
}

#[tokio::test]
async fn storage_contract_in_memory() {
    tenantry_testkit::storage::run_contract(
        Arc::new(InMemoryObjectStorage::new(Arc::new(SystemClock))),
        tenantry_testkit::storage::Signing::Unsupported,
    )
    .await;
}

#[tokio::test]
async fn mail_commits_and_rolls_back_with_its_change_in_memory() {
    let db = MemoryDatabase::new();
    tenantry_testkit::mail_outbox::mail_commits_and_rolls_back_with_its_change(
        tenantry_testkit::mail_outbox::MailCauseStores {
            outbox: Arc::new(crate::InMemoryMailOutbox::new(db.clone())),
            users: Arc::new(InMemoryUserRepository::new(db.clone())),
            orgs: Arc::new(InMemoryOrgRepository::new(db.clone())),
            tokens: Arc::new(InMemoryOneTimeTokenRepository::new(db.clone())),
            invitations: Arc::new(InMemoryInvitationRepository::new(db.clone())),
            sessions: Arc::new(InMemorySessionRepository::new(db.clone())),
            two_factor: Arc::new(InMemoryTwoFactorRepository::new(db)),
        },
    )
    .await;
}
