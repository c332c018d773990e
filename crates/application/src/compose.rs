//! The composition root: every use case assembled from one implementation of each port.
//!
//! The HTTP server, the worker, the test kit and any service that embeds Tenantry build their
//! use cases here, so they all get the same wiring: the tenancy read cache and its
//! invalidating decorators around the repositories that feed it, one session-revocation list
//! and one quota service per process (they hold this process's leases and local copies), and
//! cross-replica invalidation when a broadcast bus is given. A caller chooses adapters (SQL or
//! in-memory, Redis or not) and policies; it never re-implements the wiring. [`Tenantry`]
//! shows it in a runnable example.

use std::sync::Arc;

use tenantry_ports::{
    AccessTokenIssuer, ApiKeyRepository, AuditLog, BackgroundTasks, Broadcast, Cache, Clock, DeliveryQueue,
    FileRepository, IdGenerator, InvitationRepository, MailOutbox, Mailer, ObjectStorage, OneTimeTokenRepository,
    OrgRepository, PasswordHasher, PersonalDataReader, PlanRepository, RateLimitStore, RoleRepository, SecretCipher,
    SecretGenerator, SessionRepository, TeamRepository, TotpAlgorithm, TwoFactorRepository, UsageStore, UserRepository,
    WebhookRepository, WebhookSender,
};

use crate::invalidating::{
    InvalidatingApiKeyRepository, InvalidatingInvitationRepository, InvalidatingOrgRepository,
    InvalidatingRoleRepository, InvalidatingUserRepository,
};
use crate::mail::{MailComposer, MailObserver, MailSender, MailSettings, MailSweeper, MailTemplates};
use crate::org_cache::OrgCache;
use crate::quotas::QuotaObserver;
use crate::webhooks::DeliveryObserver;
use crate::{
    AccountPorts, AccountService, AdminPorts, AdminService, ApiKeyPorts, ApiKeyService, AuditService, AuthPorts,
    AuthService, AuthSettings, Dispatcher, FilePorts, FileService, FileSettings, FileSweeper, InvalidationListener,
    Invalidations, InvitationPorts, InvitationService, LastOwnerGuard, LeasePolicy, PasswordConfirmer, PayloadSweeper,
    QuotaPorts, QuotaService, QuotaSettings, RateLimiter, SessionRevocations, TeamService, TenancyService,
    TwoFactorPorts, TwoFactorService, WebhookPorts, WebhookService, WebhookSettings,
};

/// One implementation of every port the use cases need, chosen by the caller: the struct is
/// the whole list of what Tenantry needs from outside, so a missing adapter is a compile
/// error, not a failure at run time. Repositories are given plain: the build wraps the ones
/// the tenancy cache reads in its decorators.
#[derive(Clone)]
pub struct Ports {
    /// Accounts: wrapped by the build so disabling or deleting one drops the tenancy cache's
    /// copies of it.
    pub users: Arc<dyn UserRepository>,
    /// Sign-in sessions: refresh tokens and the activity that revocation lists check.
    pub sessions: Arc<dyn SessionRepository>,
    /// Single-use e-mail verification and password-reset tokens (stored as digests).
    pub tokens: Arc<dyn OneTimeTokenRepository>,
    /// Second-factor state: the sealed TOTP secret and the last step used (no code is
    /// accepted twice).
    pub two_factor: Arc<dyn TwoFactorRepository>,
    /// Everything that names a user across organizations, for the personal-data export
    /// (cross-tenant by nature, so a port of its own rather than a repository method).
    pub footprint: Arc<dyn PersonalDataReader>,
    /// Organizations and memberships: read through the tenancy cache, so this adapter sees
    /// only misses and writes.
    pub orgs: Arc<dyn OrgRepository>,
    /// Custom roles, also behind the tenancy cache (every permission check resolves one).
    pub roles: Arc<dyn RoleRepository>,
    /// Invitations; an acceptance changes membership, so the build invalidates the cache on it.
    pub invitations: Arc<dyn InvitationRepository>,
    /// Teams and their members, used as given (the tenancy cache does not hold teams).
    pub teams: Arc<dyn TeamRepository>,
    /// API keys, looked up on every key-authenticated request (hence behind the cache).
    pub api_keys: Arc<dyn ApiKeyRepository>,
    /// The hash-chained audit log's read side and stand-alone appends.
    pub audit: Arc<dyn AuditLog>,
    /// Plans and their assignments, whose limits every quota check reads.
    pub plans: Arc<dyn PlanRepository>,
    /// Counters that must survive restarts (storage bytes, uploads): a database, not a cache.
    pub durable_usage: Arc<dyn UsageStore>,
    /// The API-call counter: hit on every request, so a fast store shared by replicas
    /// (Redis), read through local leases.
    pub metered_usage: Arc<dyn UsageStore>,
    /// Rate-limit buckets, shared by replicas so a limit holds across the fleet.
    pub rate_limits: Arc<dyn RateLimitStore>,
    /// Webhook endpoints and their sealed signing secrets.
    pub webhooks: Arc<dyn WebhookRepository>,
    /// The webhook delivery queue the dispatcher claims from (outbox fan-out, attempts).
    pub deliveries: Arc<dyn DeliveryQueue>,
    /// Sends webhook requests; tenants choose the URLs, so it must refuse private addresses.
    pub webhook_sender: Arc<dyn WebhookSender>,
    /// Files' metadata rows (tenant data, under the same isolation as the rest).
    pub files: Arc<dyn FileRepository>,
    /// Files' bytes (S3, a local folder, memory), kept apart from the rows so the database
    /// never holds blobs.
    pub storage: Arc<dyn ObjectStorage>,
    /// The shared cache: lockout counters, revocations, the tenancy cache's entries,
    /// idempotency markers. Shared by replicas in production.
    pub cache: Arc<dyn Cache>,
    /// Tells other replicas about invalidations so their in-process copies do not wait out
    /// their bound; `None` for a single process.
    pub broadcast: Option<Arc<dyn Broadcast>>,
    /// Where mail leaves (SMTP, `.eml` files): only the mail sender step uses it; use cases
    /// queue mail in the outbox instead (ADR 0018).
    pub mailer: Arc<dyn Mailer>,
    /// Where mail waits until it is sent: written by the causing changes' transactions.
    pub outbox: Arc<dyn MailOutbox>,
    /// Password hashing: slow on purpose, so kept behind a port that can bound its concurrency.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Access-token signing and verification; the keys never leave the adapter.
    pub access_tokens: Arc<dyn AccessTokenIssuer>,
    /// TOTP codes for second factors.
    pub totp: Arc<dyn TotpAlgorithm>,
    /// Encryption of secrets at rest (TOTP secrets, webhook signing secrets), so a database
    /// dump alone reveals none.
    pub cipher: Arc<dyn SecretCipher>,
    /// Random tokens and their digests (refresh tokens, API keys, invitation tokens).
    pub secrets: Arc<dyn SecretGenerator>,
    /// Time, injected so tests can expire tokens and move quota periods without waiting.
    pub clock: Arc<dyn Clock>,
    /// Ids (UUIDv7), injected so tests can predict them.
    pub ids: Arc<dyn IdGenerator>,
    /// Work done after a response (so its duration is not observable by the client) and
    /// webhook attempts; shutdown waits for them.
    pub tasks: Arc<dyn BackgroundTasks>,
}

/// The policies of every use case; each section has the documented defaults, so a caller
/// replaces only what differs (`Policies { quotas: …, ..Policies::default() }`).
#[derive(Clone)]
pub struct Policies {
    /// Identity: token lifetimes, lockouts, the public URL of links in mail.
    pub auth: AuthSettings,
    /// Plans and quotas.
    pub quotas: QuotaSettings,
    /// Webhook delivery.
    pub webhooks: WebhookSettings,
    /// Uploads: the size limit, the allowed types, presigned URLs' lifetimes.
    pub files: FileSettings,
    /// How rate-limit tokens are leased locally: [`LeasePolicy::REMOTE`] when the store is
    /// shared over the network, [`LeasePolicy::NONE`] in process.
    pub rate_lease: LeasePolicy,
    /// Mail delivery: retries, batch, lease, retention.
    pub mail: MailSettings,
    /// The mail templates (the embedded defaults, or with a deployment's overrides).
    pub mail_templates: Arc<MailTemplates>,
}

impl Default for Policies {
    fn default() -> Self {
        Self {
            auth: AuthSettings::new("http://localhost:8080".to_owned(), 5, false),
            quotas: QuotaSettings::default(),
            webhooks: WebhookSettings::default(),
            files: FileSettings::default(),
            rate_lease: LeasePolicy::NONE,
            mail: MailSettings::default(),
            mail_templates: Arc::new(MailTemplates::embedded()),
        }
    }
}

/// Who is told about quota decisions and webhook attempts: the server's metrics. Optional, so
/// an embedding service without metrics passes `Observers::default()` (or uses
/// [`Tenantry::build`]).
#[derive(Clone, Default)]
pub struct Observers {
    /// Quota refusals and thresholds.
    pub quotas: Option<Arc<dyn QuotaObserver>>,
    /// Webhook attempts and the queue depth.
    pub deliveries: Option<Arc<dyn DeliveryObserver>>,
    /// Mail sends and the outbox backlog.
    pub mail: Option<Arc<dyn MailObserver>>,
    /// Hits and misses of the tenancy read cache.
    pub cache: Option<Arc<dyn crate::org_cache::CacheObserver>>,
}

/// Every use case of one process, wired once. Cloning shares the process-wide parts (the
/// tenancy cache, revocations, quota and rate-limit leases).
///
/// Build it once at start-up from one adapter per port ([`Ports`]) and the [`Policies`], then
/// take the use cases from it where they are needed; each accessor is a cheap handle on the
/// shared wiring, so a request handler may call `app.tenancy()` per request.
///
/// ```
/// use tenantry_application::{Policies, Principal, Tenantry};
/// use tenantry_domain::audit::Origin;
/// use tenantry_domain::rate::RatePolicy;
/// use tenantry_domain::{Email, SessionId, UserId};
/// use tenantry_ports::NewUser;
/// use uuid::Uuid;
///
/// # fn ports() -> tenantry_application::Ports {
/// #     use std::sync::Arc;
/// #     use tenantry_adapter_memory::*;
/// #     use tenantry_ports::*;
/// #     // Every repository in process (one `MemoryDatabase`); the crypto ports and the
/// #     // webhook sender are mocks that fail the example if it calls them.
/// #     let clock: Arc<dyn Clock> = Arc::new(SystemClock);
/// #     let db = MemoryDatabase::new();
/// #     tenantry_application::Ports {
/// #         users: Arc::new(InMemoryUserRepository::new(db.clone())),
/// #         sessions: Arc::new(InMemorySessionRepository::new(db.clone())),
/// #         tokens: Arc::new(InMemoryOneTimeTokenRepository::new(db.clone())),
/// #         two_factor: Arc::new(InMemoryTwoFactorRepository::new(db.clone())),
/// #         footprint: Arc::new(InMemoryPersonalDataReader::new(db.clone())),
/// #         orgs: Arc::new(InMemoryOrgRepository::new(db.clone())),
/// #         roles: Arc::new(InMemoryRoleRepository::new(db.clone())),
/// #         invitations: Arc::new(InMemoryInvitationRepository::new(db.clone())),
/// #         teams: Arc::new(InMemoryTeamRepository::new(db.clone())),
/// #         api_keys: Arc::new(InMemoryApiKeyRepository::new(db.clone())),
/// #         audit: Arc::new(InMemoryAuditLog::new(db.clone())),
/// #         plans: Arc::new(InMemoryPlanRepository::new(db.clone())),
/// #         durable_usage: Arc::new(InMemoryUsageStore::new(clock.clone())),
/// #         metered_usage: Arc::new(InMemoryUsageStore::new(clock.clone())),
/// #         rate_limits: Arc::new(InMemoryRateLimitStore::new()),
/// #         webhooks: Arc::new(InMemoryWebhookRepository::new(db.clone())),
/// #         deliveries: Arc::new(InMemoryDeliveryQueue::new(db.clone())),
/// #         webhook_sender: Arc::new(MockWebhookSender::new()),
/// #         outbox: Arc::new(InMemoryMailOutbox::new(db.clone())),
/// #         files: Arc::new(InMemoryFileRepository::new(db)),
/// #         storage: Arc::new(InMemoryObjectStorage::new(clock.clone())),
/// #         cache: Arc::new(InMemoryCache::new(clock.clone())),
/// #         broadcast: None,
/// #         mailer: Arc::new(RecordingMailer::default()),
/// #         hasher: Arc::new(MockPasswordHasher::new()),
/// #         access_tokens: Arc::new(MockAccessTokenIssuer::new()),
/// #         totp: Arc::new(MockTotpAlgorithm::new()),
/// #         cipher: Arc::new(MockSecretCipher::new()),
/// #         secrets: Arc::new(MockSecretGenerator::new()),
/// #         clock,
/// #         ids: Arc::new(UuidV7Generator),
/// #         tasks: Arc::new(TokioTasks::new()),
/// #     }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // One adapter per port: SQL and Redis in production (examples/embed-postgres), in-process
/// // ones here (examples/embed-in-memory). `ports()` is yours.
/// let app = Tenantry::build(ports(), Policies::default());
///
/// // An account, and a principal for it (`app.auth().authenticate(token)` gives you one from
/// // an access token).
/// let user_id = UserId::from_uuid(Uuid::now_v7());
/// app.users()
///     .create(&NewUser {
///         id: user_id,
///         email: Email::parse("ann@example.com")?,
///         display_name: None,
///         password_hash: "stored by the PasswordHasher".to_owned(),
///         is_admin: false,
///         email_verified_at: None,
///         created_at: chrono::Utc::now(),
///     })
///     .await?;
/// let ann = Principal { user_id, session_id: SessionId::from_uuid(Uuid::now_v7()) };
///
/// // Take a use case where it is needed: each accessor is a cheap handle on shared wiring.
/// let org = app.tenancy().create_org(ann, Origin::default(), "Acme", "acme").await?;
/// let mine = app.tenancy().my_orgs(ann, None, 10).await?;
/// assert_eq!((mine[0].0.id, mine[0].1.as_str()), (org.id, "owner"));
/// assert_eq!(app.quotas().usage(org.id).await?.plan, "free", "new orgs start on the default plan");
///
/// // Process-wide parts are shared by every handle: two handles, one bucket.
/// let policy = RatePolicy::parse("2/min")?.ok_or("a limit, not `off`")?;
/// assert!(app.rate_limiter().check("signup:203.0.113.7", policy).await?.allowed);
/// assert!(app.rate_limiter().check("signup:203.0.113.7", policy).await?.allowed);
/// let third = app.rate_limiter().check("signup:203.0.113.7", policy).await?;
/// assert!(!third.allowed, "a third sign-up from one address in a minute is refused");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Tenantry {
    ports: Ports,
    policies: Policies,
    observers: Observers,
    org_cache: OrgCache,
    revocations: SessionRevocations,
    invalidations: Option<Invalidations>,
    quotas: Arc<QuotaService>,
    composer: MailComposer,
    rate_limiter: Arc<RateLimiter>,
    anonymous_rate_limiter: Arc<RateLimiter>,
}

impl Tenantry {
    /// Wires every use case over `ports` under `policies`: call it once per process, since the
    /// result holds the process-wide caches, revocations and leases the use cases share.
    #[must_use]
    pub fn build(ports: Ports, policies: Policies) -> Self {
        Self::build_observed(ports, policies, Observers::default())
    }

    /// As [`Self::build`], reporting to `observers`.
    #[must_use]
    pub fn build_observed(ports: Ports, policies: Policies, observers: Observers) -> Self {
        let mut org_cache = OrgCache::new(ports.cache.clone(), ports.ids.clone(), ports.clock.clone());
        let mut revocations =
            SessionRevocations::new(ports.cache.clone(), ports.clock.clone(), policies.auth.lifetimes);
        let invalidations = ports.broadcast.as_ref().map(|bus| Invalidations::new(bus.clone(), ports.ids.as_ref()));
        if let Some(invalidations) = &invalidations {
            org_cache = org_cache.with_invalidations(invalidations.clone());
            revocations = revocations.with_invalidations(invalidations.clone());
        }
        if let Some(observer) = &observers.cache {
            org_cache = org_cache.with_observer(observer.clone());
        }
        let mut quotas = QuotaService::new(
            QuotaPorts {
                plans: ports.plans.clone(),
                durable: ports.durable_usage.clone(),
                metered: ports.metered_usage.clone(),
                clock: ports.clock.clone(),
                ids: ports.ids.clone(),
            },
            policies.quotas.clone(),
        );
        if let Some(observer) = &observers.quotas {
            quotas = quotas.with_observer(observer.clone());
        }
        let composer = MailComposer::new(
            policies.mail_templates.clone(),
            ports.cipher.clone(),
            ports.ids.clone(),
            ports.clock.clone(),
            &policies.auth.public_url,
        );
        let quotas = quotas.with_mail(composer.clone(), ports.orgs.clone());
        let rate_limiter =
            Arc::new(RateLimiter::new(ports.rate_limits.clone(), ports.clock.clone(), policies.rate_lease));
        // Buckets keyed by client addresses hold no leases: there are too many of them.
        let anonymous_rate_limiter =
            Arc::new(RateLimiter::new(ports.rate_limits.clone(), ports.clock.clone(), LeasePolicy::NONE));
        Self {
            ports,
            policies,
            observers,
            org_cache,
            revocations,
            invalidations,
            quotas: Arc::new(quotas),
            composer,
            rate_limiter,
            anonymous_rate_limiter,
        }
    }

    /// The ports as given (undecorated), for callers that need an adapter the use cases do
    /// not expose, such as a health probe or a worker step of their own.
    #[must_use]
    pub fn ports(&self) -> &Ports {
        &self.ports
    }

    /// The policies as given, so an embedding service reads the same settings the use cases
    /// were built with.
    #[must_use]
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The tenancy read cache of this process: one per process, shared by every use case built
    /// here, so an invalidation made by one is seen by all.
    #[must_use]
    pub fn org_cache(&self) -> &OrgCache {
        &self.org_cache
    }

    /// Session revocations of this process: one list, shared by every use case built here, so
    /// a session revoked by one path is refused on every other.
    #[must_use]
    pub fn revocations(&self) -> &SessionRevocations {
        &self.revocations
    }

    /// Applies other replicas' invalidations to this process's copies (with a broadcast bus).
    #[must_use]
    pub fn invalidation_listener(&self) -> Option<InvalidationListener> {
        self.invalidations.clone().map(|invalidations| {
            InvalidationListener::new(invalidations, self.revocations.clone(), self.org_cache.clone())
        })
    }

    /// Plans, quotas and usage (one per process: it holds the API-call leases).
    #[must_use]
    pub fn quotas(&self) -> Arc<QuotaService> {
        self.quotas.clone()
    }

    /// Rate-limit decisions for signed-in callers and orgs (with local leases).
    #[must_use]
    pub fn rate_limiter(&self) -> Arc<RateLimiter> {
        self.rate_limiter.clone()
    }

    /// Rate-limit decisions for buckets keyed by client addresses (no leases).
    #[must_use]
    pub fn anonymous_rate_limiter(&self) -> Arc<RateLimiter> {
        self.anonymous_rate_limiter.clone()
    }

    /// Accounts, dropping the tenancy cache's copies of an account disabled or deleted.
    #[must_use]
    pub fn users(&self) -> Arc<dyn UserRepository> {
        Arc::new(InvalidatingUserRepository::new(self.ports.users.clone(), self.org_cache.clone()))
    }

    /// Organizations and memberships, read through the tenancy cache.
    #[must_use]
    pub fn orgs(&self) -> Arc<dyn OrgRepository> {
        Arc::new(InvalidatingOrgRepository::new(self.ports.orgs.clone(), self.org_cache.clone()))
    }

    /// Custom roles, read through the tenancy cache.
    #[must_use]
    pub fn roles(&self) -> Arc<dyn RoleRepository> {
        Arc::new(InvalidatingRoleRepository::new(self.ports.roles.clone(), self.org_cache.clone()))
    }

    /// API keys, read through the tenancy cache (every key-authenticated request looks one up)
    /// and dropping its copy when a key changes.
    #[must_use]
    pub fn api_key_store(&self) -> Arc<dyn ApiKeyRepository> {
        Arc::new(InvalidatingApiKeyRepository::new(self.ports.api_keys.clone(), self.org_cache.clone()))
    }

    /// Invitations; an acceptance invalidates the tenancy cache.
    #[must_use]
    pub fn invitation_store(&self) -> Arc<dyn InvitationRepository> {
        Arc::new(InvalidatingInvitationRepository::new(self.ports.invitations.clone(), self.org_cache.clone()))
    }

    /// Password re-confirmation under the sign-in lockout.
    #[must_use]
    pub fn password_confirmer(&self) -> PasswordConfirmer {
        PasswordConfirmer::new(self.ports.hasher.clone(), self.ports.cache.clone(), self.policies.auth.account_lockout)
    }

    /// Second factors: TOTP setup, enabling with backup codes, disabling, and the check sign-in
    /// delegates to.
    #[must_use]
    pub fn two_factor(&self) -> TwoFactorService {
        TwoFactorService::new(TwoFactorPorts {
            store: self.ports.two_factor.clone(),
            users: self.users(),
            confirmer: self.password_confirmer(),
            totp: self.ports.totp.clone(),
            cipher: self.ports.cipher.clone(),
            secrets: self.ports.secrets.clone(),
            clock: self.ports.clock.clone(),
            cache: self.ports.cache.clone(),
            lockout: self.policies.auth.account_lockout,
            mail: self.composer.clone(),
        })
    }

    /// Registration, sign-in, sessions, recovery and profile, checking second factors with
    /// `two_factor`.
    #[must_use]
    pub fn auth_with(&self, two_factor: Arc<TwoFactorService>) -> AuthService {
        AuthService::new(
            AuthPorts {
                users: self.users(),
                sessions: self.ports.sessions.clone(),
                tokens: self.ports.tokens.clone(),
                hasher: self.ports.hasher.clone(),
                access: self.ports.access_tokens.clone(),
                secrets: self.ports.secrets.clone(),
                mail: self.composer.clone(),
                cache: self.ports.cache.clone(),
                revocations: self.revocations.clone(),
                clock: self.ports.clock.clone(),
                ids: self.ports.ids.clone(),
                mfa: two_factor,
                tasks: self.ports.tasks.clone(),
            },
            self.policies.auth.clone(),
        )
    }

    /// Registration, sign-in, sessions, recovery and profile.
    #[must_use]
    pub fn auth(&self) -> AuthService {
        self.auth_with(Arc::new(self.two_factor()))
    }

    /// Export and deletion of the caller's own account.
    #[must_use]
    pub fn account(&self) -> AccountService {
        AccountService::new(
            AccountPorts {
                users: self.users(),
                sessions: self.ports.sessions.clone(),
                tokens: self.ports.tokens.clone(),
                two_factor: self.ports.two_factor.clone(),
                footprint: self.ports.footprint.clone(),
                confirmer: self.password_confirmer(),
                revocations: self.revocations.clone(),
                clock: self.ports.clock.clone(),
                ids: self.ports.ids.clone(),
            },
            vec![Arc::new(LastOwnerGuard::new(self.orgs()))],
        )
    }

    /// Organizations and membership, over the cached repositories, with new organizations on
    /// the configured default plan and their stored files removed after deletion.
    #[must_use]
    pub fn tenancy(&self) -> TenancyService {
        TenancyService::new(
            self.orgs(),
            self.roles(),
            self.invitation_store(),
            self.ports.clock.clone(),
            self.ports.ids.clone(),
        )
        .with_default_plan(self.policies.quotas.catalog.default_plan())
        .with_deletion_follow_up(Arc::new(self.files()))
    }

    /// Invitations, under the members quota, with their mail queued through the shared composer.
    #[must_use]
    pub fn invitations(&self) -> InvitationService {
        InvitationService::new(InvitationPorts {
            invitations: self.invitation_store(),
            orgs: self.orgs(),
            roles: self.roles(),
            users: self.users(),
            mail: self.composer.clone(),
            secrets: self.ports.secrets.clone(),
            clock: self.ports.clock.clone(),
            ids: self.ports.ids.clone(),
            quotas: Some(self.quotas.clone()),
        })
    }

    /// Teams, checking team members against the cached memberships.
    #[must_use]
    pub fn teams(&self) -> TeamService {
        TeamService::new(self.ports.teams.clone(), self.orgs(), self.ports.clock.clone(), self.ports.ids.clone())
    }

    /// API keys, whose permissions are resolved against the creator's current (cached) role at
    /// every use.
    #[must_use]
    pub fn api_keys(&self) -> ApiKeyService {
        ApiKeyService::new(ApiKeyPorts {
            keys: self.api_key_store(),
            secrets: self.ports.secrets.clone(),
            cache: self.ports.cache.clone(),
            clock: self.ports.clock.clone(),
            ids: self.ports.ids.clone(),
            orgs: self.orgs(),
            roles: self.roles(),
        })
    }

    /// Platform administration, sharing this process's session revocations, so a disabled
    /// account's tokens stop here at once.
    #[must_use]
    pub fn admin(&self) -> AdminService {
        AdminService::new(AdminPorts {
            users: self.users(),
            orgs: self.orgs(),
            sessions: self.ports.sessions.clone(),
            api_keys: self.api_key_store(),
            revocations: self.revocations.clone(),
            clock: self.ports.clock.clone(),
            ids: self.ports.ids.clone(),
        })
    }

    /// The audit log's read side and chain verification (appends belong to the repositories).
    #[must_use]
    pub fn audit(&self) -> AuditService {
        AuditService::new(self.ports.audit.clone())
    }

    /// What the webhook use cases and the dispatcher share.
    #[must_use]
    pub fn webhook_ports(&self) -> WebhookPorts {
        WebhookPorts {
            endpoints: self.ports.webhooks.clone(),
            queue: self.ports.deliveries.clone(),
            sender: self.ports.webhook_sender.clone(),
            cipher: self.ports.cipher.clone(),
            secrets: self.ports.secrets.clone(),
            clock: self.ports.clock.clone(),
            ids: self.ports.ids.clone(),
            quotas: Some(self.quotas.clone()),
            orgs: self.orgs(),
            mail: self.composer.clone(),
        }
    }

    /// Webhook endpoints and deliveries: the tenant-facing use cases (the dispatcher does the
    /// sending).
    #[must_use]
    pub fn webhooks(&self) -> WebhookService {
        WebhookService::new(self.webhook_ports(), self.policies.webhooks.clone())
    }

    /// The webhook dispatcher step; its attempts run as tasks of [`Ports::tasks`].
    #[must_use]
    pub fn dispatcher(&self) -> Arc<Dispatcher> {
        let mut dispatcher = Dispatcher::new(self.webhook_ports(), self.policies.webhooks.clone())
            .with_spawner(self.ports.tasks.clone());
        if let Some(observer) = &self.observers.deliveries {
            dispatcher = dispatcher.with_observer(observer.clone());
        }
        Arc::new(dispatcher)
    }

    /// Files: uploads, downloads, presigned uploads, deletion.
    #[must_use]
    pub fn files(&self) -> FileService {
        FileService::new(
            FilePorts {
                files: self.ports.files.clone(),
                storage: self.ports.storage.clone(),
                clock: self.ports.clock.clone(),
                ids: self.ports.ids.clone(),
                quotas: Some(self.quotas.clone()),
            },
            self.policies.files.clone(),
        )
    }

    /// The file sweeper step (expired presigned uploads, orphaned objects).
    #[must_use]
    pub fn file_sweeper(&self) -> Arc<FileSweeper> {
        Arc::new(FileSweeper::new(Arc::new(self.files())))
    }

    /// Renders and seals mail for the outbox: the process's one composer, for an embedding
    /// service's own mail through the same templates, cipher and outbox.
    #[must_use]
    pub fn mail_composer(&self) -> MailComposer {
        self.composer.clone()
    }

    /// The mail sender step: sends what waits in the outbox, with retries.
    #[must_use]
    pub fn mail_sender(&self) -> Arc<MailSender> {
        let mut sender = MailSender::new(
            self.ports.outbox.clone(),
            self.ports.mailer.clone(),
            self.composer.clone(),
            self.ports.clock.clone(),
            self.ports.ids.clone(),
            self.policies.mail.clone(),
        );
        if let Some(observer) = &self.observers.mail {
            sender = sender.with_observer(observer.clone());
        }
        Arc::new(sender)
    }

    /// The retention sweeper of the mail outbox: prunes ended mails so the outbox does not grow
    /// for ever; give it the same sender the worker runs.
    #[must_use]
    pub fn mail_sweeper(sender: Arc<MailSender>) -> MailSweeper {
        MailSweeper(sender)
    }

    /// The retention sweeper of `dispatcher`: erases delivery payloads and old outbox events
    /// after the retention period, so event data is kept no longer than the retention period.
    #[must_use]
    pub fn payload_sweeper(dispatcher: Arc<Dispatcher>) -> PayloadSweeper {
        PayloadSweeper(dispatcher)
    }
}
