//! The composition root: builds adapters from [`Settings`], wires them into services, and runs
//! the HTTP server (and the background worker) until told to stop.

use std::net::TcpListener;
use std::sync::Arc;

use actix_cors::Cors;
use actix_web::dev::Server;
pub use actix_web::dev::ServerHandle;
use actix_web::middleware::{Condition, from_fn};
use actix_web::web::{self, Data};
use actix_web::{App, HttpServer};
use secrecy::ExposeSecret;
use tenantry_adapter_crypto::{
    Argon2Hasher, Argon2Settings, Ed25519AccessTokens, RandomSecrets, Rfc6238Totp, XChaChaCipher,
};
use tenantry_adapter_http::{ReqwestWebhookSender, SenderSettings};
use tenantry_adapter_mail::{FileMailProbe, FileMailer, SmtpMailer, SmtpProbe};
use tenantry_adapter_memory::{
    CachedUserRepository, InMemoryCache, InMemoryRateLimitStore, SystemClock, UserCacheAwareTwoFactor, UuidV7Generator,
};
use tenantry_adapter_redis::{
    RedisBroadcast, RedisCache, RedisConfig, RedisPool, RedisRateLimitStore, RedisUsageStore,
};
use tenantry_adapter_sql::{
    SqlConfig, SqlDatabase, SqlDeliveryQueue, SqlHealthProbe, SqlInvitationRepository, SqlOneTimeTokenRepository,
    SqlOrgRepository, SqlPlanRepository, SqlRoleRepository, SqlSessionRepository, SqlTwoFactorRepository,
    SqlUsageStore, SqlUserRepository, SqlWebhookRepository,
};
use tenantry_application::{
    AccountPorts, AccountService, AdminPorts, AdminService, ApiKeyPorts, ApiKeyService, AuditService, AuthPorts,
    AuthService, AuthSettings, CacheProbe, Dispatcher, HealthService, InvalidatingApiKeyRepository,
    InvalidatingInvitationRepository, InvalidatingOrgRepository, InvalidatingRoleRepository,
    InvalidatingUserRepository, InvalidationListener, Invalidations, InvitationPorts, InvitationService,
    LastOwnerGuard, LeasePolicy, PasswordConfirmer, PayloadSweeper, QuotaPorts, QuotaService, QuotaSettings,
    RateLimiter, SessionRevocations, TeamService, TenancyService, TwoFactorPorts, TwoFactorService, WebhookPorts,
    WebhookService, WebhookSettings,
};
use tenantry_ports::{
    AccessTokenIssuer, ApiKeyRepository, Broadcast, Cache, Clock, HealthProbe, IdGenerator, InvitationRepository,
    Mailer, OrgRepository, PasswordHasher, RateLimitStore, RoleRepository, SecretCipher, TwoFactorRepository,
    UsageStore, UserRepository, WebhookSender,
};

use crate::config::{CorsOrigins, Settings};
use crate::http::json::JsonLimit;
use crate::http::metrics::Metrics;
use crate::http::{ApiError, FieldError, middleware};
use crate::state::AppState;
use crate::worker::{RunningWorker, Worker};

/// What the Redis choice decides: the cache, the invalidation bus, where API calls are
/// counted, the rate-limit store and how its tokens are leased.
type RedisParts = (Arc<dyn Cache>, Option<Invalidations>, Arc<dyn UsageStore>, Arc<dyn RateLimitStore>, LeasePolicy);

/// Dispatcher loops (claiming and fanning out) per worker process.
pub const DISPATCH_LOOPS: usize = 2;

/// How long one SMTP exchange may take before the relay counts as unavailable.
const SMTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Why the server could not start; each names the dependency at fault.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Database(#[from] tenantry_adapter_sql::SqlError),
    /// The Redis configuration is unusable.
    #[error("redis: {0}")]
    Redis(#[from] tenantry_adapter_redis::RedisPoolError),
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address from `TENANTRY_BIND`.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// A setting that parsed but cannot be used (e.g. a key in the wrong format).
    #[error("{variable}: {message}")]
    Setting {
        /// The variable at fault.
        variable: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Anything else while wiring.
    #[error("{0}")]
    Other(String),
}

/// Production refuses a database role that Row-Level Security would not bind; elsewhere it is
/// a warning (a developer's local superuser is common).
fn refuse_bypassing_role(environment: crate::config::Environment, role: Option<String>) -> Result<(), StartupError> {
    let Some(role) = role else { return Ok(()) };
    let message = format!(
        "the database role `{role}` is a superuser or has BYPASSRLS, so PostgreSQL Row-Level Security \
         would not isolate tenants; connect as a role without them (docs/configuration.md)"
    );
    if environment == crate::config::Environment::Production {
        return Err(StartupError::Setting { variable: "TENANTRY_DATABASE_URL", message });
    }
    tracing::warn!("{message}");
    Ok(())
}

/// Every adapter and service the process uses, built once from settings and shared by the HTTP
/// server, the worker and the CLI commands.
#[derive(Clone)]
pub struct Services {
    /// The SQL database (PostgreSQL or SQLite).
    pub database: SqlDatabase,
    /// The shared cache (Redis or in-process).
    pub cache: Arc<dyn Cache>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: Arc<dyn IdGenerator>,
    /// Password hashing (argon2id, bounded concurrency).
    pub hasher: Arc<dyn PasswordHasher>,
    /// Access-token signing.
    pub access_tokens: Arc<dyn AccessTokenIssuer>,
    /// Outgoing mail.
    pub mailer: Arc<dyn Mailer>,
    /// Readiness of the mail transport (the SMTP relay, or the mail folder).
    pub mail_probe: Arc<dyn HealthProbe>,
    /// Encryption of secrets at rest.
    pub cipher: Arc<dyn SecretCipher>,
    /// Identity policy from configuration.
    pub auth_settings: AuthSettings,
    /// Work done after responses.
    pub tasks: Arc<crate::tasks::TrackedTasks>,
    /// The tenancy read cache, one per process so every service sees its own invalidations.
    pub org_cache: tenantry_application::org_cache::OrgCache,
    /// Session revocation, one per process so a revocation made here holds here at once.
    pub revocations: SessionRevocations,
    /// Applies other replicas' invalidations to this process's copies (with Redis only).
    pub invalidation_listener: Option<InvalidationListener>,
    /// Prometheus families of this process.
    pub metrics: Arc<Metrics>,
    /// Plans, quotas and usage, one per process (it holds this process's API-call leases).
    pub quotas: Arc<QuotaService>,
    /// Rate-limit decisions, one per process (it holds this process's token leases).
    pub rate_limiter: Arc<RateLimiter>,
    /// The same store without leases, for buckets keyed by client addresses.
    pub anonymous_rate_limiter: Arc<RateLimiter>,
    /// Plans and route-group limits from configuration.
    pub limits: crate::config::LimitSettings,
    /// Sends webhook requests through the SSRF guard.
    pub webhook_sender: Arc<dyn WebhookSender>,
    /// Webhook policy from configuration.
    pub webhook_settings: WebhookSettings,
}

impl Services {
    /// Connects every adapter `settings` names. Remote dependencies that are down do not stop
    /// the process from starting (readiness reports them), except the database, without which
    /// migrations cannot run.
    ///
    /// # Errors
    /// [`StartupError::Database`], [`StartupError::Redis`].
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// As [`Self::build`] with an injected clock, so tests can expire tokens without waiting.
    ///
    /// # Errors
    /// As [`Self::build`].
    pub async fn build_with_clock(settings: &Settings, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        let ids: Arc<dyn IdGenerator> = Arc::new(UuidV7Generator);
        let mut sql = SqlConfig::new(settings.database_url.clone());
        sql.max_connections = settings.database_max_connections;
        let database = SqlDatabase::connect(&sql).await?;
        refuse_bypassing_role(settings.environment, database.role_bypassing_row_security().await?)?;
        // With Redis, replicas also tell each other about changes (pub/sub), so their
        // in-process copies do not wait out their half-second bound.
        let sql_usage: Arc<dyn UsageStore> = Arc::new(SqlUsageStore::new(database.clone()));
        let (cache, invalidations, metered, rate_store, rate_lease): RedisParts = match &settings.redis_url {
            Some(url) => {
                let mut config = RedisConfig::new(url.clone());
                config.key_prefix.clone_from(&settings.redis_key_prefix);
                let pool = RedisPool::connect(&config)?;
                let bus: Arc<dyn Broadcast> = Arc::new(RedisBroadcast::new(pool.clone()));
                (
                    Arc::new(RedisCache::new(pool.clone())),
                    Some(Invalidations::new(bus, ids.as_ref())),
                    Arc::new(RedisUsageStore::new(pool.clone())),
                    Arc::new(RedisRateLimitStore::new(pool)),
                    LeasePolicy::REMOTE,
                )
            }
            // One process: the limiter is in memory and needs no leases; API calls are
            // counted in the database, so they survive a restart.
            None => (
                Arc::new(InMemoryCache::new(clock.clone())),
                None,
                sql_usage.clone(),
                Arc::new(InMemoryRateLimitStore::new()),
                LeasePolicy::NONE,
            ),
        };
        let metrics = Arc::new(Metrics::new().map_err(|err| StartupError::Other(format!("metrics: {err}")))?);
        let quotas = Arc::new(
            QuotaService::new(
                QuotaPorts {
                    plans: Arc::new(SqlPlanRepository::new(database.clone())),
                    durable: sql_usage,
                    metered,
                    clock: clock.clone(),
                    ids: ids.clone(),
                },
                QuotaSettings {
                    catalog: settings.limits.catalog.clone(),
                    meter_api_calls: settings.limits.meter_api_calls,
                    ..QuotaSettings::default()
                },
            )
            .with_observer(metrics.clone()),
        );
        let anonymous_rate_limiter = Arc::new(RateLimiter::new(rate_store.clone(), clock.clone(), LeasePolicy::NONE));
        let rate_limiter = Arc::new(RateLimiter::new(rate_store, clock.clone(), rate_lease));
        let webhook_sender: Arc<dyn WebhookSender> = Arc::new(
            ReqwestWebhookSender::new(SenderSettings {
                timeout: settings.webhook_timeout,
                ..SenderSettings::new(settings.webhook_allow_private)
            })
            .map_err(|err| StartupError::Other(format!("webhook sender: {err}")))?,
        );
        let webhook_settings = WebhookSettings {
            https_only: settings.environment == crate::config::Environment::Production,
            schedule: settings.webhook_retry_schedule.clone(),
            // Past it another worker may take a delivery over: twice the attempt's limit, so a
            // live worker's attempt has always ended first.
            claim_lease: settings.webhook_timeout * 2 + std::time::Duration::from_secs(1),
            disable_after: settings.webhook_disable_after,
            ..WebhookSettings::default()
        };
        let hasher: Arc<dyn PasswordHasher> = Arc::new(
            Argon2Hasher::new(Argon2Settings {
                max_concurrent: settings.password_hash_concurrency,
                ..Argon2Settings::default()
            })
            .map_err(|err| StartupError::Other(format!("password hasher: {err}")))?,
        );
        let access_tokens: Arc<dyn AccessTokenIssuer> = Arc::new(access_tokens(settings)?);
        let (mailer, mail_probe): (Arc<dyn Mailer>, Arc<dyn HealthProbe>) = match &settings.smtp_url {
            Some(url) => {
                let smtp = Arc::new(SmtpMailer::new(url.expose_secret(), &settings.mail_from, SMTP_TIMEOUT).map_err(
                    |err| {
                        // lettre's message names the scheme or part at fault, never the password.
                        StartupError::Setting { variable: "TENANTRY_SMTP_URL", message: format!("{err:#}") }
                    },
                )?);
                (smtp.clone(), Arc::new(SmtpProbe(smtp)))
            }
            None => (
                Arc::new(FileMailer::new(&settings.mail_dir, &settings.mail_from).map_err(|err| {
                    StartupError::Setting { variable: "TENANTRY_MAIL_DIR", message: format!("{err:#}") }
                })?),
                Arc::new(FileMailProbe(settings.mail_dir.clone())),
            ),
        };
        let auth_settings = AuthSettings::new(
            settings.public_url.clone(),
            settings.login_max_failures,
            settings.require_verified_email,
        );
        let cipher: Arc<dyn SecretCipher> = Arc::new(
            match &settings.encryption_key {
                Some(key) => XChaChaCipher::from_base64(key.expose_secret()),
                None => XChaChaCipher::load_or_generate(&settings.data_dir.join("encryption.key")),
            }
            .map_err(|err| StartupError::Setting { variable: "TENANTRY_ENCRYPTION_KEY", message: err.to_string() })?,
        );
        let tasks = Arc::new(crate::tasks::TrackedTasks::default());
        let mut org_cache = tenantry_application::org_cache::OrgCache::new(cache.clone(), ids.clone(), clock.clone());
        let mut revocations = SessionRevocations::new(cache.clone(), clock.clone(), auth_settings.lifetimes);
        if let Some(invalidations) = &invalidations {
            org_cache = org_cache.with_invalidations(invalidations.clone());
            revocations = revocations.with_invalidations(invalidations.clone());
        }
        let invalidation_listener = invalidations
            .map(|invalidations| InvalidationListener::new(invalidations, revocations.clone(), org_cache.clone()));
        Ok(Self {
            database,
            cache,
            clock,
            ids,
            hasher,
            access_tokens,
            mailer,
            mail_probe,
            cipher,
            auth_settings,
            tasks,
            org_cache,
            revocations,
            invalidation_listener,
            metrics,
            quotas,
            rate_limiter,
            anonymous_rate_limiter,
            limits: settings.limits.clone(),
            webhook_sender,
            webhook_settings,
        })
    }

    /// Accounts: SQL behind the read-through user cache, dropping the tenancy cache's copies
    /// of an account that is disabled or deleted.
    pub fn users(&self) -> Arc<dyn UserRepository> {
        let sql = Arc::new(SqlUserRepository::new(self.database.clone()));
        let cached = Arc::new(CachedUserRepository::new(sql, self.cache.clone()));
        Arc::new(InvalidatingUserRepository::new(cached, self.org_cache.clone()))
    }

    /// Organizations and memberships; membership changes invalidate the tenancy cache.
    pub fn orgs(&self) -> Arc<dyn OrgRepository> {
        Arc::new(InvalidatingOrgRepository::new(
            Arc::new(SqlOrgRepository::new(self.database.clone())),
            self.org_cache.clone(),
        ))
    }

    /// Custom roles; changes invalidate the tenancy cache.
    pub fn roles(&self) -> Arc<dyn RoleRepository> {
        Arc::new(InvalidatingRoleRepository::new(
            Arc::new(SqlRoleRepository::new(self.database.clone())),
            self.org_cache.clone(),
        ))
    }

    /// API keys; revocations and rotations invalidate the tenancy cache.
    pub fn api_key_store(&self) -> Arc<dyn ApiKeyRepository> {
        Arc::new(InvalidatingApiKeyRepository::new(
            Arc::new(tenantry_adapter_sql::SqlApiKeyRepository::new(self.database.clone())),
            self.org_cache.clone(),
        ))
    }

    /// Invitations; an acceptance invalidates the tenancy cache.
    pub fn invitation_store(&self) -> Arc<dyn InvitationRepository> {
        Arc::new(InvalidatingInvitationRepository::new(
            Arc::new(SqlInvitationRepository::new(self.database.clone())),
            self.org_cache.clone(),
        ))
    }

    /// Two-factor state, forgetting cached user rows when it changes.
    pub fn two_factor_store(&self) -> Arc<dyn TwoFactorRepository> {
        Arc::new(UserCacheAwareTwoFactor::new(
            Arc::new(SqlTwoFactorRepository::new(self.database.clone())),
            self.cache.clone(),
        ))
    }

    /// Export and deletion of the caller's own account.
    pub fn account(&self) -> AccountService {
        AccountService::new(
            AccountPorts {
                users: self.users(),
                sessions: Arc::new(SqlSessionRepository::new(self.database.clone())),
                tokens: Arc::new(SqlOneTimeTokenRepository::new(self.database.clone())),
                two_factor: self.two_factor_store(),
                footprint: Arc::new(tenantry_adapter_sql::SqlPersonalDataReader::new(self.database.clone())),
                confirmer: self.password_confirmer(),
                revocations: self.revocations.clone(),
                clock: self.clock.clone(),
                ids: self.ids.clone(),
            },
            vec![Arc::new(LastOwnerGuard::new(self.orgs()))],
        )
    }

    /// Password re-confirmation under the sign-in lockout.
    pub fn password_confirmer(&self) -> PasswordConfirmer {
        PasswordConfirmer::new(self.hasher.clone(), self.cache.clone(), self.auth_settings.account_lockout)
    }

    /// Invitations.
    pub fn invitations(&self) -> InvitationService {
        InvitationService::new(
            InvitationPorts {
                invitations: self.invitation_store(),
                orgs: self.orgs(),
                roles: self.roles(),
                users: self.users(),
                mailer: self.mailer.clone(),
                secrets: Arc::new(RandomSecrets),
                clock: self.clock.clone(),
                ids: self.ids.clone(),
                quotas: Some(self.quotas.clone()),
            },
            self.auth_settings.public_url.clone(),
        )
    }

    /// Organizations and membership.
    pub fn tenancy(&self) -> TenancyService {
        TenancyService::new(self.orgs(), self.roles(), self.invitation_store(), self.clock.clone(), self.ids.clone())
            .with_default_plan(self.limits.catalog.default_plan())
    }

    /// API keys.
    pub fn api_keys(&self) -> ApiKeyService {
        ApiKeyService::new(ApiKeyPorts {
            keys: self.api_key_store(),
            secrets: Arc::new(RandomSecrets),
            cache: self.cache.clone(),
            clock: self.clock.clone(),
            ids: self.ids.clone(),
            orgs: self.orgs(),
            roles: self.roles(),
        })
    }

    /// Platform administration.
    pub fn admin(&self) -> AdminService {
        AdminService::new(AdminPorts {
            users: self.users(),
            orgs: self.orgs(),
            sessions: Arc::new(SqlSessionRepository::new(self.database.clone())),
            api_keys: self.api_key_store(),
            revocations: self.revocations.clone(),
            clock: self.clock.clone(),
            ids: self.ids.clone(),
        })
    }

    /// Teams.
    pub fn teams(&self) -> TeamService {
        TeamService::new(
            Arc::new(tenantry_adapter_sql::SqlTeamRepository::new(self.database.clone())),
            self.orgs(),
            self.clock.clone(),
            self.ids.clone(),
        )
    }

    /// The audit log.
    pub fn audit(&self) -> AuditService {
        AuditService::new(Arc::new(tenantry_adapter_sql::SqlAuditLog::new(self.database.clone())))
    }

    /// The two-factor service.
    pub fn two_factor(&self) -> TwoFactorService {
        TwoFactorService::new(TwoFactorPorts {
            store: self.two_factor_store(),
            users: self.users(),
            confirmer: self.password_confirmer(),
            totp: Arc::new(Rfc6238Totp::new("Tenantry")),
            cipher: self.cipher.clone(),
            secrets: Arc::new(RandomSecrets),
            clock: self.clock.clone(),
            cache: self.cache.clone(),
            lockout: self.auth_settings.account_lockout,
        })
    }

    /// The identity service, checking second factors with `two_factor`.
    pub fn auth(&self, two_factor: Arc<TwoFactorService>) -> AuthService {
        let ports = AuthPorts {
            users: self.users(),
            sessions: Arc::new(SqlSessionRepository::new(self.database.clone())),
            tokens: Arc::new(SqlOneTimeTokenRepository::new(self.database.clone())),
            hasher: self.hasher.clone(),
            access: self.access_tokens.clone(),
            secrets: Arc::new(RandomSecrets),
            mailer: self.mailer.clone(),
            cache: self.cache.clone(),
            revocations: self.revocations.clone(),
            clock: self.clock.clone(),
            ids: self.ids.clone(),
            mfa: two_factor,
            tasks: self.tasks.clone(),
        };
        AuthService::new(ports, self.auth_settings.clone())
    }

    /// Readiness over every dependency this process uses.
    pub fn health(&self) -> HealthService {
        let probes: Vec<Arc<dyn HealthProbe>> = vec![
            Arc::new(SqlHealthProbe::new(self.database.clone())),
            Arc::new(CacheProbe::new(self.cache.clone())),
            self.mail_probe.clone(),
        ];
        HealthService::new(probes)
    }

    /// Webhook endpoints, the delivery queue and the sender.
    pub fn webhook_ports(&self) -> WebhookPorts {
        WebhookPorts {
            endpoints: Arc::new(SqlWebhookRepository::new(self.database.clone())),
            queue: Arc::new(SqlDeliveryQueue::new(self.database.clone())),
            sender: self.webhook_sender.clone(),
            cipher: self.cipher.clone(),
            secrets: Arc::new(RandomSecrets),
            clock: self.clock.clone(),
            ids: self.ids.clone(),
            quotas: Some(self.quotas.clone()),
            orgs: self.orgs(),
            mailer: self.mailer.clone(),
        }
    }

    /// Webhook endpoints and deliveries.
    pub fn webhooks(&self) -> WebhookService {
        WebhookService::new(self.webhook_ports(), self.webhook_settings.clone())
    }

    /// The webhook dispatcher step.
    pub fn dispatcher(&self) -> Arc<Dispatcher> {
        Arc::new(
            Dispatcher::new(self.webhook_ports(), self.webhook_settings.clone())
                .with_observer(self.metrics.clone())
                .with_spawner(self.tasks.clone()),
        )
    }

    /// The background jobs of this build: webhook delivery and the payload sweeper.
    ///
    /// The dispatcher runs each attempt as a tracked task (so shutdown waits for them), and a
    /// step never waits for an endpoint that hangs: the per-endpoint cap keeps one endpoint
    /// from taking every slot. [`DISPATCH_LOOPS`] loops claim and fan out.
    pub fn worker(&self) -> Worker {
        let mut worker = Worker::default();
        let dispatcher = self.dispatcher();
        for _ in 0..DISPATCH_LOOPS {
            worker.register(dispatcher.clone());
        }
        worker.register(Arc::new(PayloadSweeper(dispatcher)));
        worker
    }
}

/// The signing key from `TENANTRY_JWT_PRIVATE_KEY(_FILE)`, or one generated once into the data
/// folder for the embedded default; plus retired keys that must keep verifying.
fn access_tokens(settings: &Settings) -> Result<Ed25519AccessTokens, StartupError> {
    let current = match &settings.jwt_private_key {
        Some(pem) => tenantry_adapter_crypto::parse_signing_key(pem.expose_secret())
            .map_err(|err| StartupError::Setting { variable: "TENANTRY_JWT_PRIVATE_KEY", message: err.to_string() })?,
        None => tenantry_adapter_crypto::load_or_generate_signing_key(&settings.data_dir.join("jwt-ed25519.pem"))
            .map_err(|err| StartupError::Setting { variable: "TENANTRY_JWT_PRIVATE_KEY", message: err.to_string() })?,
    };
    let mut previous = Vec::new();
    if let Some(pems) = &settings.jwt_previous_keys {
        for block in pems.expose_secret().split_inclusive("-----END PRIVATE KEY-----") {
            if block.trim().is_empty() {
                continue;
            }
            let key = tenantry_adapter_crypto::parse_signing_key(block).map_err(|err| StartupError::Setting {
                variable: "TENANTRY_JWT_PREVIOUS_KEYS_FILE",
                message: err.to_string(),
            })?;
            previous.push(key.verifying_key());
        }
    }
    Ed25519AccessTokens::new(settings.public_url.clone(), &current, &previous)
        .map_err(|err| StartupError::Other(format!("access tokens: {err}")))
}

/// How `serve` runs.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Apply pending migrations before serving.
    pub migrate: bool,
    /// Run the background worker in this process.
    pub worker: bool,
    /// Stop gracefully on SIGTERM/SIGINT (off in tests, which stop through the handle).
    pub handle_signals: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self { migrate: true, worker: true, handle_signals: true }
    }
}

/// A bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    services: Services,
    worker: Option<RunningWorker>,
    listening: Option<tokio::task::JoinHandle<()>>,
    flushing: tokio::task::JoinHandle<()>,
    limits: Arc<crate::http::limits::RateLimits>,
}

impl Application {
    /// Builds services, migrates if asked, binds `settings.bind` (port 0 picks a free port) and
    /// prepares the server.
    ///
    /// # Errors
    /// [`StartupError`] naming what failed.
    pub async fn build(settings: Settings, options: ServeOptions) -> Result<Self, StartupError> {
        let services = Services::build(&settings).await?;
        Self::build_with_services(settings, options, services).await
    }

    /// As [`Self::build`] over services built by the caller (tests inject a manual clock).
    ///
    /// # Errors
    /// [`StartupError`] naming what failed.
    pub async fn build_with_services(
        settings: Settings,
        options: ServeOptions,
        services: Services,
    ) -> Result<Self, StartupError> {
        if options.migrate {
            services.database.migrate().await?;
        }
        let listener = TcpListener::bind(settings.bind)
            .map_err(|source| StartupError::Bind { address: settings.bind.to_string(), source })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind { address: settings.bind.to_string(), source })?
            .port();
        let metrics = Data::from(services.metrics.clone());
        let openapi_json = crate::openapi::render();
        let public = serde_json::from_str(&openapi_json)
            .map(|document| crate::http::limits::public_operations(&document))
            .map_err(|err| StartupError::Other(format!("openapi document: {err}")))?;
        let limits = Arc::new(crate::http::limits::RateLimits::new(
            (services.rate_limiter.clone(), services.anonymous_rate_limiter.clone()),
            &services.limits,
            public,
            services.metrics.clone(),
        ));
        let request_timeout = middleware::RequestTimeout(settings.request_timeout);
        let two_factor = Arc::new(services.two_factor());
        let state = Data::new(AppState {
            health: services.health(),
            auth: services.auth(two_factor.clone()),
            account: services.account(),
            tenancy: services.tenancy(),
            invitations: services.invitations(),
            api_keys: services.api_keys(),
            admin: services.admin(),
            teams: services.teams(),
            audit: services.audit(),
            two_factor,
            metrics: metrics.clone(),
            cursors: crate::http::page::Cursors::new(services.cipher.clone()),
            openapi_json,
            quotas: services.quotas.clone(),
            limits: limits.clone(),
            webhooks: services.webhooks(),
        });
        let http = HttpSettings::from(&settings);
        let idempotency = Data::new(
            crate::http::idempotency::IdempotencyStore::new(
                services.cache.clone(),
                services.cipher.clone(),
                services.access_tokens.clone(),
                services.clock.clone(),
            )
            .with_in_flight(middleware::write_limit(settings.request_timeout) + std::time::Duration::from_secs(60)),
        );
        let app_limits = limits.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(metrics.clone())
                .app_data(Data::from(app_limits.clone()))
                .app_data(idempotency.clone())
                .app_data(request_timeout)
                .app_data(JsonLimit(http.json_limit))
                .app_data(http.trusted_proxies.clone())
                .app_data(web::PayloadConfig::new(http.json_limit))
                .app_data(web::JsonConfig::default().limit(http.json_limit).error_handler(json_error))
                .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::not_found().into()))
                .app_data(web::QueryConfig::default().error_handler(query_error))
                .configure(crate::routes::configure)
                .wrap(from_fn(crate::http::idempotency::idempotency))
                .wrap(from_fn(middleware::complete_writes))
                .wrap(from_fn(crate::http::limits::rate_limit))
                .wrap(from_fn(middleware::timeout))
                .wrap(Condition::new(http.cors.is_some(), cors(http.cors.clone())))
                .wrap(middleware::security_headers(http.hsts))
                .wrap(from_fn(middleware::track_metrics))
                .wrap(from_fn(middleware::request_context))
        })
        .workers(settings.http_workers)
        .shutdown_timeout(settings.shutdown_timeout.as_secs())
        .listen(listener)
        .map_err(|source| StartupError::Bind { address: settings.bind.to_string(), source })?;
        if !options.handle_signals {
            server = server.disable_signals();
        }
        let worker = options.worker.then(|| services.worker().start());
        let listening = services.invalidation_listener.clone().map(|listener| tokio::spawn(listen(listener)));
        let flushing = tokio::spawn(flush_leases(services.quotas.clone(), limits.clone()));
        let public = settings.public_url.clone();
        tracing::info!(
            address = %format!("http://{}:{port}", settings.bind.ip()),
            docs = %format!("{public}/docs"),
            database = if settings.uses_sqlite() { "sqlite" } else { "postgres" },
            cache = if settings.redis_url.is_some() { "redis" } else { "in-process" },
            "tenantry is listening"
        );
        Ok(Self { port, server: server.run(), services, worker, listening, flushing, limits })
    }

    /// The bound port (useful when `TENANTRY_BIND` asked for port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The services, for tests and embedders that drive them directly.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serves until stopped (SIGTERM/SIGINT or the handle): in-flight requests are drained
    /// (up to the shutdown timeout), then the worker finishes its current steps, then the
    /// database pool closes.
    ///
    /// # Errors
    /// I/O errors of the server itself.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        if let Some(listening) = self.listening {
            listening.abort();
        }
        // Leased units go back, so other replicas may use them.
        self.flushing.abort();
        self.limits.flush(true).await;
        if let Err(err) = self.services.quotas.flush(true).await {
            tracing::warn!(error = %err, "giving back leased API calls failed");
        }
        if let Some(worker) = self.worker {
            worker.shutdown().await;
        }
        self.services.tasks.wait_idle().await;
        self.services.database.close().await;
        tracing::info!("tenantry stopped");
        result
    }
}

/// Applies other replicas' invalidations for as long as the process runs, subscribing again a
/// second after a subscription is lost or refused. Messages missed meanwhile only mean this
/// process falls back on the half-second bound of its copies.
async fn listen(listener: InvalidationListener) {
    loop {
        match listener.subscribe().await {
            Ok(subscription) => {
                tracing::debug!("listening for other replicas' invalidations");
                listener.run(subscription).await;
                tracing::warn!("lost the invalidation subscription; subscribing again");
            }
            Err(err) => tracing::warn!(error = %err, "subscribing to invalidations failed; retrying"),
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// Gives back the unused units of expired leases every 250 ms, so a replica that went quiet
/// does not sit on units another one needs.
async fn flush_leases(quotas: Arc<QuotaService>, limits: Arc<crate::http::limits::RateLimits>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        limits.flush(false).await;
        if let Err(err) = quotas.flush(false).await {
            tracing::debug!(error = %err, "giving back leased API calls failed");
        }
    }
}

/// The parts of settings the per-worker `App` factory needs (cloned into every worker thread).
#[derive(Clone)]
struct HttpSettings {
    json_limit: usize,
    trusted_proxies: crate::http::client_ip::TrustedProxies,
    cors: Option<CorsOrigins>,
    hsts: bool,
}

impl From<&Settings> for HttpSettings {
    fn from(settings: &Settings) -> Self {
        Self {
            json_limit: settings.json_limit_bytes,
            trusted_proxies: crate::http::client_ip::TrustedProxies(settings.trusted_proxies.clone()),
            cors: (settings.cors_origins != CorsOrigins::None).then(|| settings.cors_origins.clone()),
            hsts: settings.public_url.starts_with("https://"),
        }
    }
}

fn cors(origins: Option<CorsOrigins>) -> Cors {
    let base = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers(["authorization", "content-type", "idempotency-key", "x-api-key", "x-request-id"])
        .expose_headers([
            "x-request-id",
            "retry-after",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "location",
        ])
        .max_age(3600);
    match origins {
        Some(CorsOrigins::Any) => base.allow_any_origin().send_wildcard(),
        Some(CorsOrigins::List(list)) => list.iter().fold(base, |cors, origin| cors.allowed_origin(origin)),
        Some(CorsOrigins::None) | None => base,
    }
}

fn json_error(err: actix_web::error::JsonPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    use actix_web::http::StatusCode;
    match err {
        E::OverflowKnownLength { .. } | E::Overflow { .. } => ApiError::from_status(StatusCode::PAYLOAD_TOO_LARGE),
        E::ContentType => ApiError::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        E::Deserialize(err) if err.is_data() => ApiError::validation(vec![FieldError {
            field: "body".to_owned(),
            message: "does not have the expected shape".to_owned(),
        }]),
        _ => ApiError::malformed("The request body is not valid JSON."),
    }
    .into()
}

/// Routes read their query through `ApiQuery`, which names each parameter; this only keeps
/// actix's own text out of a response should a plain `web::Query` ever be used.
fn query_error(_: actix_web::error::QueryPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::validation(vec![FieldError {
        field: "query".to_owned(),
        message: "is not a valid query string for this route".to_owned(),
    }])
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;

    #[test]
    fn production_refuses_a_role_that_bypasses_row_level_security_and_names_it() {
        let refused = refuse_bypassing_role(Environment::Production, Some("postgres".into()));
        let Err(StartupError::Setting { variable, message }) = refused else {
            panic!("production must refuse: {refused:?}");
        };
        assert_eq!(variable, "TENANTRY_DATABASE_URL");
        assert!(message.contains("`postgres`") && message.contains("BYPASSRLS"), "{message}");
        assert!(refuse_bypassing_role(Environment::Production, None).is_ok());
        assert!(refuse_bypassing_role(Environment::Development, Some("postgres".into())).is_ok(), "only a warning");
    }
}
