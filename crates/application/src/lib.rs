//! Tenantry's use cases, written against the traits in `tenantry-ports` only.
//!
//! Services take their collaborators as `Arc<dyn Port>` in `new`, so the same code runs with
//! PostgreSQL and Redis in production, SQLite and in-process adapters in the embedded default,
//! and mockall mocks in unit tests. Nothing here knows about HTTP or a particular database.

pub mod account;
pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod auth;
mod cached_entries;
pub mod compose;
mod emails;
pub mod files;
mod health;
pub mod invalidating;
pub mod invalidation_listener;
pub mod invalidations;
pub mod invitations;
pub mod jobs;
mod leases;
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
