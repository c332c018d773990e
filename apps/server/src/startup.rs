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
use tenantry_adapter_crypto::{Argon2Hasher, Ed25519AccessTokens, RandomSecrets, Rfc6238Totp, XChaChaCipher};
use tenantry_adapter_http::ReqwestWebhookSender;
use tenantry_adapter_mail::{FileMailProbe, FileMailer, SmtpMailer, SmtpProbe};
use tenantry_adapter_memory::{
    CachedUserRepository, InMemoryCache, InMemoryRateLimitStore, SystemClock, UserCacheAwareTwoFactor, UuidV7Generator,
};
use tenantry_adapter_redis::{RedisBroadcast, RedisCache, RedisPool, RedisRateLimitStore, RedisUsageStore};
use tenantry_adapter_sql::SqlFileRepository;
use tenantry_adapter_sql::{
    SqlApiKeyRepository, SqlAuditLog, SqlDatabase, SqlDeliveryQueue, SqlHealthProbe, SqlInvitationRepository,
    SqlMailOutbox, SqlOneTimeTokenRepository, SqlOrgRepository, SqlPersonalDataReader, SqlPlanRepository,
    SqlRoleRepository, SqlSessionRepository, SqlTeamRepository, SqlTwoFactorRepository, SqlUsageStore,
    SqlUserRepository, SqlWebhookRepository,
};
use tenantry_adapter_storage::ObjectStoreStorage;
use tenantry_application::{
    AccountService, AdminService, ApiKeyService, AuditService, AuthService, CacheProbe, FileService, HealthService,
    InvalidationListener, InvitationService, Observers, Ports, QuotaService, RateLimiter, StorageProbe, TeamService,
    TenancyService, Tenantry, TwoFactorService, WebhookService,
};
use tenantry_ports::{
    AccessTokenIssuer, Broadcast, Cache, Clock, HealthProbe, IdGenerator, Mailer, ObjectStorage, OrgRepository,
    PasswordHasher, RateLimitStore, SecretCipher, TwoFactorRepository, UsageStore, UserRepository, WebhookSender,
};

use crate::config::{CorsOrigins, Settings};
use crate::http::json::JsonLimit;
use crate::http::metrics::Metrics;
use crate::http::{ApiError, FieldError, middleware};
use crate::state::AppState;
use crate::worker::{RunningWorker, Worker};

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

/// Every adapter the process uses, built once from the settings' sections, and the use cases
/// wired over them by the application's composition root ([`Tenantry`]); shared by the HTTP
/// server, the worker and the CLI commands.
#[derive(Clone)]
pub struct Services {
    /// The SQL database (PostgreSQL or SQLite).
    pub database: SqlDatabase,
    /// The shared cache (Redis or in-process).
    pub cache: Arc<dyn Cache>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Access-token signing.
    pub access_tokens: Arc<dyn AccessTokenIssuer>,
    /// Readiness of the mail transport (the SMTP relay, or the mail folder).
    pub mail_probe: Arc<dyn HealthProbe>,
    /// The files' bytes (S3, a local folder, memory).
    pub storage: Arc<dyn ObjectStorage>,
    /// Encryption of secrets at rest.
    pub cipher: Arc<dyn SecretCipher>,
    /// Work done after responses, and webhook attempts.
    pub tasks: Arc<crate::tasks::TrackedTasks>,
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
    /// Every use case, wired once.
    pub app: Tenantry,
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
        let database = SqlDatabase::connect(&settings.sql()).await?;
        refuse_bypassing_role(settings.environment, database.role_bypassing_row_security().await?)?;
        let sql_usage: Arc<dyn UsageStore> = Arc::new(SqlUsageStore::new(database.clone()));
        // With Redis, replicas share the cache, the API-call counter and the rate limits, and
        // tell each other about changes (pub/sub), so their in-process copies do not wait out
        // their half-second bound.
        let (cache, broadcast, metered, rate_store): RedisParts = match settings.redis() {
            Some(config) => {
                let pool = RedisPool::connect(&config)?;
                (
                    Arc::new(RedisCache::new(pool.clone())),
                    Some(Arc::new(RedisBroadcast::new(pool.clone()))),
                    Arc::new(RedisUsageStore::new(pool.clone())),
                    Arc::new(RedisRateLimitStore::new(pool)),
                )
            }
            // One process: the limiter is in memory; API calls are counted in the database,
            // so they survive a restart.
            None => (
                Arc::new(InMemoryCache::new(clock.clone())),
                None,
                sql_usage.clone(),
                Arc::new(InMemoryRateLimitStore::new()),
            ),
        };
        let metrics = Arc::new(Metrics::new().map_err(|err| StartupError::Other(format!("metrics: {err}")))?);
        let watched = database.clone();
        metrics.watch_pool(Box::new(move || watched.pool_stats()));
        // Each request carries the `traceparent` of its send span (a child of the attempt's).
        let trace_headers =
            tenantry_adapter_http::TraceHeaders(Arc::new(
                || crate::telemetry::trace_headers(&tracing::Span::current()),
            ));
        let webhook_sender: Arc<dyn WebhookSender> = Arc::new(
            ReqwestWebhookSender::new(settings.webhook_sender())
                .map_err(|err| StartupError::Other(format!("webhook sender: {err}")))?
                .with_trace_headers(trace_headers),
        );
        let hasher: Arc<dyn PasswordHasher> = Arc::new(
            Argon2Hasher::new(settings.password_hashing())
                .map_err(|err| StartupError::Other(format!("password hasher: {err}")))?,
        );
        let access_tokens: Arc<dyn AccessTokenIssuer> = Arc::new(access_tokens(settings)?);
        let (mailer, mail_probe) = mail(settings)?;
        let storage = storage(settings)?;
        let cipher: Arc<dyn SecretCipher> = Arc::new(
            match &settings.encryption_key {
                Some(key) => XChaChaCipher::from_base64(key.expose_secret()),
                None => XChaChaCipher::load_or_generate(&settings.data_dir.join("encryption.key")),
            }
            .map_err(|err| StartupError::Setting { variable: "TENANTRY_ENCRYPTION_KEY", message: err.to_string() })?,
        );
        let tasks = Arc::new(crate::tasks::TrackedTasks::default());
        // The user rows every request reads sit behind a read-through cache; two-factor
        // changes drop those copies.
        let users: Arc<dyn UserRepository> =
            Arc::new(CachedUserRepository::new(Arc::new(SqlUserRepository::new(database.clone())), cache.clone()));
        let two_factor: Arc<dyn TwoFactorRepository> = Arc::new(UserCacheAwareTwoFactor::new(
            Arc::new(SqlTwoFactorRepository::new(database.clone())),
            cache.clone(),
        ));
        let ports = Ports {
            users,
            sessions: Arc::new(SqlSessionRepository::new(database.clone())),
            tokens: Arc::new(SqlOneTimeTokenRepository::new(database.clone())),
            two_factor,
            footprint: Arc::new(SqlPersonalDataReader::new(database.clone())),
            orgs: Arc::new(SqlOrgRepository::new(database.clone())),
            roles: Arc::new(SqlRoleRepository::new(database.clone())),
            invitations: Arc::new(SqlInvitationRepository::new(database.clone())),
            teams: Arc::new(SqlTeamRepository::new(database.clone())),
            api_keys: Arc::new(SqlApiKeyRepository::new(database.clone())),
            audit: Arc::new(SqlAuditLog::new(database.clone())),
            plans: Arc::new(SqlPlanRepository::new(database.clone())),
            durable_usage: sql_usage,
            metered_usage: metered,
            rate_limits: rate_store,
            webhooks: Arc::new(SqlWebhookRepository::new(database.clone())),
            deliveries: Arc::new(SqlDeliveryQueue::new(database.clone())),
            webhook_sender,
            files: Arc::new(SqlFileRepository::new(database.clone())),
            storage: storage.clone(),
            cache: cache.clone(),
            broadcast,
            mailer,
            outbox: Arc::new(SqlMailOutbox::new(database.clone())),
            hasher,
            access_tokens: access_tokens.clone(),
            totp: Arc::new(Rfc6238Totp::new("Tenantry")),
            cipher: cipher.clone(),
            secrets: Arc::new(RandomSecrets),
            clock: clock.clone(),
            ids,
            tasks: tasks.clone(),
        };
        let observers = Observers {
            quotas: Some(metrics.clone()),
            deliveries: Some(metrics.clone()),
            mail: Some(metrics.clone()),
            cache: Some(metrics.clone()),
        };
        let app = Tenantry::build_observed(ports, settings.policies(), observers);
        Ok(Self {
            database,
            cache,
            clock,
            access_tokens,
            mail_probe,
            storage,
            cipher,
            tasks,
            invalidation_listener: app.invalidation_listener(),
            metrics,
            quotas: app.quotas(),
            rate_limiter: app.rate_limiter(),
            anonymous_rate_limiter: app.anonymous_rate_limiter(),
            limits: settings.limits.clone(),
            app,
        })
    }

    /// Accounts (read through the user cache, invalidating the tenancy cache).
    pub fn users(&self) -> Arc<dyn UserRepository> {
        self.app.users()
    }

    /// Organizations and memberships, read through the tenancy cache.
    pub fn orgs(&self) -> Arc<dyn OrgRepository> {
        self.app.orgs()
    }

    /// Export and deletion of the caller's own account.
    pub fn account(&self) -> AccountService {
        self.app.account()
    }

    /// Invitations.
    pub fn invitations(&self) -> InvitationService {
        self.app.invitations()
    }

    /// Organizations and membership.
    pub fn tenancy(&self) -> TenancyService {
        self.app.tenancy()
    }

    /// API keys.
    pub fn api_keys(&self) -> ApiKeyService {
        self.app.api_keys()
    }

    /// Platform administration.
    pub fn admin(&self) -> AdminService {
        self.app.admin()
    }

    /// Teams.
    pub fn teams(&self) -> TeamService {
        self.app.teams()
    }

    /// The audit log.
    pub fn audit(&self) -> AuditService {
        self.app.audit()
    }

    /// The two-factor service.
    pub fn two_factor(&self) -> TwoFactorService {
        self.app.two_factor()
    }

    /// The identity service, checking second factors with `two_factor`.
    pub fn auth(&self, two_factor: Arc<TwoFactorService>) -> AuthService {
        self.app.auth_with(two_factor)
    }

    /// Readiness over every dependency this process uses.
    pub fn health(&self) -> HealthService {
        let probes: Vec<Arc<dyn HealthProbe>> = vec![
            Arc::new(SqlHealthProbe::new(self.database.clone())),
            Arc::new(CacheProbe::new(self.cache.clone())),
            Arc::new(StorageProbe::new(self.storage.clone())),
            self.mail_probe.clone(),
        ];
        HealthService::new(probes)
    }

    /// Webhook endpoints and deliveries.
    pub fn webhooks(&self) -> WebhookService {
        self.app.webhooks()
    }

    /// Files.
    pub fn files(&self) -> FileService {
        self.app.files()
    }

    /// The background jobs of this build: webhook delivery, the payload sweeper, the file
    /// sweeper, the mail sender and the mail outbox's sweeper.
    ///
    /// The dispatcher runs each attempt as a tracked task (so shutdown waits for them), and a
    /// step never waits for an endpoint that hangs: the per-endpoint cap keeps one endpoint
    /// from taking every slot. [`DISPATCH_LOOPS`] loops claim and fan out.
    pub fn worker(&self) -> Worker {
        let mut worker = Worker::default();
        let dispatcher = self.app.dispatcher();
        for _ in 0..DISPATCH_LOOPS {
            worker.register(dispatcher.clone());
        }
        worker.register(Arc::new(Tenantry::payload_sweeper(dispatcher)));
        worker.register(self.app.file_sweeper());
        let mail = self.app.mail_sender();
        worker.register(mail.clone());
        worker.register(Arc::new(Tenantry::mail_sweeper(mail)));
        worker
    }
}

/// The object store `TENANTRY_STORAGE_URL` names (built without contacting it: readiness
/// reports a store that is down).
fn storage(settings: &Settings) -> Result<Arc<dyn ObjectStorage>, StartupError> {
    let built = match settings.storage() {
        crate::config::StorageSection::Local(folder) => ObjectStoreStorage::local(folder),
        crate::config::StorageSection::S3(config) => ObjectStoreStorage::s3(&config),
        crate::config::StorageSection::Memory => Ok(ObjectStoreStorage::in_memory()),
    };
    let store =
        built.map_err(|err| StartupError::Setting { variable: "TENANTRY_STORAGE_URL", message: err.to_string() })?;
    Ok(Arc::new(store))
}

/// A mailer and the probe that tells whether it can send.
type MailParts = (Arc<dyn Mailer>, Arc<dyn HealthProbe>);

/// The mailer the settings name (SMTP, or `.eml` files in the mail folder) and its probe.
fn mail(settings: &Settings) -> Result<MailParts, StartupError> {
    Ok(match &settings.smtp_url {
        Some(url) => {
            let smtp =
                Arc::new(SmtpMailer::new(url.expose_secret(), &settings.mail_from, SMTP_TIMEOUT).map_err(|err| {
                    // lettre's message names the scheme or part at fault, never the password.
                    StartupError::Setting { variable: "TENANTRY_SMTP_URL", message: format!("{err:#}") }
                })?);
            (smtp.clone(), Arc::new(SmtpProbe(smtp)))
        }
        None => {
            (
                Arc::new(FileMailer::new(&settings.mail_dir, &settings.mail_from).map_err(|err| {
                    StartupError::Setting { variable: "TENANTRY_MAIL_DIR", message: format!("{err:#}") }
                })?),
                Arc::new(FileMailProbe(settings.mail_dir.clone())),
            )
        }
    })
}

/// What the Redis choice decides: the cache, the invalidation bus, where API calls are
/// counted and the rate-limit store.
type RedisParts = (Arc<dyn Cache>, Option<Arc<dyn Broadcast>>, Arc<dyn UsageStore>, Arc<dyn RateLimitStore>);

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
    /// `/metrics` on `TENANTRY_METRICS_BIND`, and its port.
    metrics_server: Option<(ServerHandle, u16)>,
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
            files: services.files(),
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
        let metrics_moved = settings.metrics_bind.is_some();
        let metrics_server = match settings.metrics_bind {
            Some(bind) => Some(metrics_server(bind, services.metrics.clone(), options.handle_signals)?),
            None => None,
        };
        let mut server = HttpServer::new(move || {
            App::new()
                // Registered first, so it wins over the route below: with TENANTRY_METRICS_BIND
                // the public address does not serve `/metrics`.
                .configure(|cfg| {
                    if metrics_moved {
                        cfg.route("/metrics", web::get().to(moved_metrics));
                    }
                })
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
        Ok(Self { port, server: server.run(), services, worker, listening, flushing, limits, metrics_server })
    }

    /// The bound port (useful when `TENANTRY_BIND` asked for port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of `/metrics` when it is served apart (`TENANTRY_METRICS_BIND`).
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_server.as_ref().map(|(_, port)| *port)
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
        if let Some((metrics, _)) = self.metrics_server {
            metrics.stop(true).await;
        }
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

/// `/metrics` on the public address once it moved to `TENANTRY_METRICS_BIND`: not here.
async fn moved_metrics() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found())
}

/// `/metrics` alone on `bind` (for `TENANTRY_METRICS_BIND`), running in the background: the
/// server and the bound port.
///
/// # Errors
/// [`StartupError::Bind`].
pub fn metrics_server(
    bind: std::net::SocketAddr,
    metrics: Arc<Metrics>,
    handle_signals: bool,
) -> Result<(ServerHandle, u16), StartupError> {
    let bind_error = |source| StartupError::Bind { address: bind.to_string(), source };
    let listener = TcpListener::bind(bind).map_err(bind_error)?;
    let port = listener.local_addr().map_err(bind_error)?.port();
    let metrics = Data::from(metrics);
    let mut server =
        HttpServer::new(move || App::new().app_data(metrics.clone()).configure(crate::routes::metrics::configure))
            .workers(1)
            .listen(listener)
            .map_err(bind_error)?;
    if !handle_signals {
        server = server.disable_signals();
    }
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    tracing::info!(address = %format!("http://{}:{port}/metrics", bind.ip()), "metrics are served apart");
    Ok((handle, port))
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
