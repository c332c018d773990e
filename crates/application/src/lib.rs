//! Tenantry's use cases, written against the traits in `tenantry-ports` only.
//!
//! Services take their collaborators as `Arc<dyn Port>` in `new`, so the same code runs with
//! PostgreSQL and Redis in production, SQLite and in-process adapters in the embedded default,
//! and mockall mocks in unit tests. Nothing here knows about HTTP or a particular database.
//!
//! # The layers
//!
//! ```text
//! apps/server or your service     HTTP routes, configuration, choosing adapters
//!         │ calls
//! tenantry-application  ◀── here  use cases (AuthService, TenancyService, QuotaService,
//!         │ holds Arc<dyn Port>     WebhookService, …), worker jobs, the composition root
//! tenantry-ports                  traits: repositories, Cache, Mailer, WebhookSender, Clock, …
//!         │
//! tenantry-domain                 values and rules, no I/O
//!
//! adapters (sql, redis, memory, crypto, http, mail, storage) implement tenantry-ports
//! ```
//!
//! This crate, the ports and the domain never depend on a web framework, a database driver,
//! Redis, an HTTP client, a mailer or an object store (`tests/tests/layering.rs` checks it),
//! so embedding them pulls in none of those: the service that embeds chooses.
//!
//! # Embedding Tenantry in your own service
//!
//! 1. **Pick an adapter for every port** and put them in [`Ports`]: the `sql` adapter's
//!    repositories (on your own pool: `SqlDatabase::from_connection`), `redis` for state
//!    replicas share, `crypto` for hashing, tokens and secrets, `http` for webhook delivery —
//!    or your own implementation of any port, checked with its suite in `tenantry-testkit`.
//! 2. **Choose [`Policies`]**: [`Policies::default`] documents every default; replace a
//!    section (your plan catalog, token lifetimes, the public URL used in mail links).
//! 3. **Build once** with [`Tenantry::build`] at start-up and keep the [`Tenantry`] value:
//!    it owns the process-wide parts (the tenancy cache, session revocations, quota and
//!    rate-limit leases). Take use cases from it ([`Tenantry::auth`], [`Tenantry::tenancy`],
//!    [`Tenantry::quotas`], [`Tenantry::webhooks`], …) and call them from your handlers.
//! 4. **Run the jobs** you need ([`Tenantry::dispatcher`] delivers webhooks) with
//!    [`run_until_idle`] or a loop of your own; each step is bounded and never sleeps.
//!
//! The [`Tenantry`] type has a runnable example; `examples/embed-postgres` is a complete
//! service (its own actix-web routes, tokio runtime and sqlx pool) and
//! `examples/custom-adapter` a port implemented outside the workspace.

pub mod account;
pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod auth;
mod cached_entries;
pub mod compose;
pub mod files;
mod health;
pub mod invalidating;
pub mod invalidation_listener;
pub mod invalidations;
pub mod invitations;
pub mod jobs;
mod leases;
pub mod mail;
pub mod org_cache;
pub mod quotas;
pub mod rate_limits;
pub mod revocations;
pub mod teams;
pub mod tenancy;
pub mod two_factor;
pub mod webhooks;

pub use account::{AccountPorts, AccountService, DeletionGuard, PersonalData};
pub use admin::{AdminPorts, AdminService};
pub use api_keys::{ApiKeyPorts, ApiKeyService, IssuedApiKey, looks_like_api_key};
pub use audit::AuditService;
pub use auth::{
    AuthError, AuthPorts, AuthService, AuthSettings, ClientInfo, PasswordConfirmer, Principal, ProfileChange,
    SecondFactor, SessionView, TokenPair, address_bucket,
};
pub use compose::{Observers, Policies, Ports, Tenantry};
pub use files::{FileBody, FileError, FilePorts, FileService, FileSettings, FileSweeper, NewUpload, PresignedUpload};
pub use health::{CacheProbe, CheckOutcome, HealthService, ReadinessReport, StorageProbe};
pub use invalidating::{
    InvalidatingApiKeyRepository, InvalidatingInvitationRepository, InvalidatingOrgRepository,
    InvalidatingRoleRepository, InvalidatingUserRepository,
};
pub use invalidation_listener::InvalidationListener;
pub use invalidations::Invalidations;
pub use invitations::{INVITATION_LIFETIME, InvitationPorts, InvitationService};
pub use jobs::{Job, JobError, Pacing, StepOutcome, run_until_idle};
pub use leases::LeasePolicy;
pub use mail::{
    ComposeError, MailComposer, MailKind, MailObserver, MailSender, MailSettings, MailSweeper, MailTemplates,
    TemplateError,
};
pub use org_cache::{CacheObserver, CacheRead};
pub use quotas::{
    Caller, PlanChange, QuotaError, QuotaExceeded, QuotaObserver, QuotaPorts, QuotaService, QuotaSettings, QuotaUsage,
    Reservation, UsageReport,
};
pub use rate_limits::{RateDecision, RateLimiter};
pub use revocations::SessionRevocations;
pub use teams::TeamService;
pub use tenancy::{Actor, LastOwnerGuard, OrgAccess, OrgDeletionFollowUp, TenancyError, TenancyService, resolve_role};
pub use two_factor::{TwoFactorPorts, TwoFactorService};
pub use webhooks::{
    DeliveryObserver, Dispatcher, EndpointChange, EndpointWithSecret, PayloadSweeper, WebhookPorts, WebhookService,
    WebhookSettings,
};
