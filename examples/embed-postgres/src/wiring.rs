//! Building Tenantry inside the caller's service: the caller's pool handed to the SQL
//! adapters, Redis for what replicas share, and the composition root ([`Tenantry`]) for the
//! use cases.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sea_orm::SqlxPostgresConnector;
use sea_orm::sqlx::PgPool;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use secrecy::SecretString;
use tenantry_adapter_crypto::{
    Argon2Hasher, Ed25519AccessTokens, RandomSecrets, Rfc6238Totp, XChaChaCipher, load_or_generate_signing_key,
};
use tenantry_adapter_http::{ReqwestWebhookSender, SenderSettings};
use tenantry_adapter_memory::{SystemClock, UuidV7Generator};
use tenantry_adapter_redis::{RedisCache, RedisConfig, RedisPool, RedisRateLimitStore, RedisUsageStore};
use tenantry_adapter_sql::{
    SqlApiKeyRepository, SqlAuditLog, SqlDatabase, SqlDeliveryQueue, SqlFileRepository, SqlInvitationRepository,
    SqlMailOutbox, SqlOneTimeTokenRepository, SqlOrgRepository, SqlPersonalDataReader, SqlPlanRepository,
    SqlRoleRepository, SqlSessionRepository, SqlTeamRepository, SqlTwoFactorRepository, SqlUsageStore,
    SqlUserRepository, SqlWebhookRepository,
};
use tenantry_adapter_storage::ObjectStoreStorage;
use tenantry_application::{
    AuthService, LeasePolicy, Policies, Ports, QuotaService, QuotaSettings, TenancyService, Tenantry, WebhookService,
};
use tenantry_domain::quota::{Limits, Plan, PlanCatalog, Quota};
use tenantry_ports::{BackgroundTasks, MailError, Mailer, OutgoingEmail, Task};

use crate::Settings;

/// The plan every organization of this service starts on: two webhook endpoints, so the
/// self-test can show a quota refusal without creating fifty.
pub const ENDPOINTS_PER_ORG: u64 = 2;

/// What the routes share: the caller's own pool and the Tenantry use cases it calls.
pub struct State {
    /// The caller's pool; Tenantry's SQL adapters run on the same one.
    pub pool: PgPool,
    /// Registration, sign-in, access-token checks.
    pub auth: AuthService,
    /// Organizations and memberships.
    pub tenancy: TenancyService,
    /// Plans, quotas and usage.
    pub quotas: Arc<QuotaService>,
    /// Webhook endpoints.
    pub webhooks: WebhookService,
}

/// Opens the caller's pool, runs Tenantry's migrations and the caller's own, and wires the
/// use cases.
///
/// # Errors
/// When PostgreSQL cannot be reached, a migration fails, or a key file cannot be read or
/// written.
pub async fn build(settings: &Settings) -> anyhow::Result<State> {
    // The caller's pool, with its own limits; Tenantry's adapters borrow it rather than
    // opening a second one. `statement_timeout` is what `SqlDatabase::connect` would set.
    let options = PgConnectOptions::from_str(&settings.database_url)
        .context("DATABASE_URL is not a PostgreSQL URL")?
        .options([("statement_timeout", "15s")]);
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL (DATABASE_URL)")?;
    let database = SqlDatabase::from_connection(SqlxPostgresConnector::from_sqlx_postgres_pool(pool.clone()))?;
    database.migrate().await.context("Tenantry's migrations")?;
    // The caller's own table, next to Tenantry's, on the same pool.
    sea_orm::sqlx::query(
        "CREATE TABLE IF NOT EXISTS embed_signups (user_id uuid PRIMARY KEY, signed_up_at timestamptz NOT NULL DEFAULT now())",
    )
    .execute(&pool)
    .await
    .context("the service's own migration")?;

    let redis = RedisPool::connect(&RedisConfig {
        // A namespace of this service's own, so it can share a Redis with a Tenantry server.
        key_prefix: "embed-postgres:".to_owned(),
        ..RedisConfig::new(SecretString::from(settings.redis_url.clone()))
    })
    .context("REDIS_URL")?;

    let signing_key = load_or_generate_signing_key(&settings.data_dir.join("jwt.pem")).context("signing key")?;
    let access_tokens = Ed25519AccessTokens::new("http://localhost:8090".to_owned(), &signing_key, &[])?;
    let cipher = XChaChaCipher::load_or_generate(&settings.data_dir.join("encryption.key")).context("sealing key")?;
    let ports = Ports {
        users: Arc::new(SqlUserRepository::new(database.clone())),
        sessions: Arc::new(SqlSessionRepository::new(database.clone())),
        tokens: Arc::new(SqlOneTimeTokenRepository::new(database.clone())),
        two_factor: Arc::new(SqlTwoFactorRepository::new(database.clone())),
        footprint: Arc::new(SqlPersonalDataReader::new(database.clone())),
        orgs: Arc::new(SqlOrgRepository::new(database.clone())),
        roles: Arc::new(SqlRoleRepository::new(database.clone())),
        invitations: Arc::new(SqlInvitationRepository::new(database.clone())),
        teams: Arc::new(SqlTeamRepository::new(database.clone())),
        api_keys: Arc::new(SqlApiKeyRepository::new(database.clone())),
        audit: Arc::new(SqlAuditLog::new(database.clone())),
        plans: Arc::new(SqlPlanRepository::new(database.clone())),
        durable_usage: Arc::new(SqlUsageStore::new(database.clone())),
        metered_usage: Arc::new(RedisUsageStore::new(redis.clone())),
        rate_limits: Arc::new(RedisRateLimitStore::new(redis.clone())),
        webhooks: Arc::new(SqlWebhookRepository::new(database.clone())),
        deliveries: Arc::new(SqlDeliveryQueue::new(database.clone())),
        webhook_sender: Arc::new(ReqwestWebhookSender::new(SenderSettings::default())?),
        files: Arc::new(SqlFileRepository::new(database.clone())),
        storage: Arc::new(ObjectStoreStorage::in_memory()),
        cache: Arc::new(RedisCache::new(redis)),
        // One process: no invalidation bus. Several replicas would pass a `RedisBroadcast`
        // and run `Tenantry::invalidation_listener`.
        broadcast: None,
        mailer: Arc::new(LogMailer),
        // Mail waits here, written with the change that causes it; this example runs no worker,
        // so it stays queued (a service would step `Tenantry::mail_sender` as a job, ADR 0018).
        outbox: Arc::new(SqlMailOutbox::new(database.clone())),
        hasher: Arc::new(Argon2Hasher::new(Default::default())?),
        access_tokens: Arc::new(access_tokens),
        totp: Arc::new(Rfc6238Totp::new("embed-postgres")),
        cipher: Arc::new(cipher),
        secrets: Arc::new(RandomSecrets),
        clock: Arc::new(SystemClock),
        ids: Arc::new(UuidV7Generator),
        tasks: Arc::new(TokioTasks),
    };
    let app = Tenantry::build(ports, policies()?);
    Ok(State { pool, auth: app.auth(), tenancy: app.tenancy(), quotas: app.quotas(), webhooks: app.webhooks() })
}

/// Tenantry's documented defaults, with this service's own plan and the lease policy for a
/// rate-limit store reached over the network.
fn policies() -> anyhow::Result<Policies> {
    let mut limits = Limits::default();
    for (quota, limit) in [
        (Quota::Members, 25),
        (Quota::ApiCalls, 10_000),
        (Quota::StorageBytes, 0),
        (Quota::FileUploads, 0),
        (Quota::WebhookEndpoints, ENDPOINTS_PER_ORG),
    ] {
        limits.set(quota, Some(limit));
    }
    let catalog = PlanCatalog::new(vec![Plan { name: "free".to_owned(), limits }], "free")?;
    Ok(Policies {
        quotas: QuotaSettings { catalog, ..QuotaSettings::default() },
        rate_lease: LeasePolicy::REMOTE,
        ..Policies::default()
    })
}

/// The caller's own [`BackgroundTasks`]: tasks on the caller's tokio runtime.
/// `tests::tokio_tasks_keep_the_background_tasks_contract` runs the port's suite on it.
pub struct TokioTasks;

impl BackgroundTasks for TokioTasks {
    fn spawn(&self, _name: &'static str, task: Task) {
        tokio::spawn(task);
    }
}

/// The caller's own [`Mailer`]: logs what would be sent (swap in the mail adapter's
/// `SmtpMailer` to send for real).
pub struct LogMailer;

#[async_trait::async_trait]
impl Mailer for LogMailer {
    async fn send(&self, email: &OutgoingEmail) -> Result<(), MailError> {
        eprintln!("embed-postgres: mail to {}: {}", email.to.as_str(), email.subject);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn tokio_tasks_keep_the_background_tasks_contract() {
        tenantry_testkit::tasks::run_contract(Arc::new(TokioTasks)).await;
    }

    #[test]
    fn the_plan_caps_webhook_endpoints() {
        let policies = policies().expect("policies");
        let free = policies.quotas.catalog.get("free").expect("the free plan");
        assert_eq!(free.limits.get(Quota::WebhookEndpoints), Some(ENDPOINTS_PER_ORG));
    }
}
