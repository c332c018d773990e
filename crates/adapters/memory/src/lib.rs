//! In-process adapters: what the embedded default runs on, what tests use when they want real
//! behaviour without a server, and what a service embeds to run Tenantry's use cases with no
//! database, no web framework and no network.
//!
//! Every repository port has an `InMemory…` adapter here, each a cheap view over one
//! [`MemoryDatabase`]: a change, its audit entry (hash-chained exactly as the SQL adapter
//! chains it) and the webhook event it emits are written in one critical section, as one SQL
//! transaction writes them, and the rules SQL checks inside a transaction (the last owner, the
//! seat and endpoint limits, single-use tokens) hold against concurrent callers. They pass
//! the same contract suites as the SQL adapter (`tenantry-testkit`).
//!
//! ```
//! use tenantry_adapter_memory::{InMemoryOrgRepository, InMemoryUserRepository, MemoryDatabase};
//!
//! let db = MemoryDatabase::new();
//! let users = InMemoryUserRepository::new(db.clone());
//! let orgs = InMemoryOrgRepository::new(db); // sees the same users
//! # let _ = (users, orgs);
//! ```
//!
//! Nothing here is shared between processes: the in-memory cache is right for one replica and
//! for tests, and `TENANTRY_ENV=production` refuses to run with it.

mod audit;
mod broadcast;
mod cache;
mod clock;
mod database;
mod files;
mod identity;
mod ids;
mod mail_outbox;
mod mailer;
mod plans;
mod quota;
mod storage;
mod tasks;
mod tenancy;
mod user_cache;
mod webhooks;

#[cfg(test)]
mod contract_tests;

pub use audit::{InMemoryAuditLog, InMemoryPersonalDataReader};
pub use broadcast::InMemoryBroadcast;
pub use cache::InMemoryCache;
pub use clock::{ManualClock, SystemClock};
pub use database::MemoryDatabase;
pub use files::InMemoryFileRepository;
pub use identity::{
    InMemoryOneTimeTokenRepository, InMemorySessionRepository, InMemoryTwoFactorRepository, InMemoryUserRepository,
};
pub use ids::UuidV7Generator;
pub use mail_outbox::{InMemoryMailOutbox, MailRow};
pub use mailer::RecordingMailer;
pub use plans::InMemoryPlanRepository;
pub use quota::{InMemoryRateLimitStore, InMemoryUsageStore};
pub use storage::InMemoryObjectStorage;
pub use tasks::TokioTasks;
pub use tenancy::{
    InMemoryApiKeyRepository, InMemoryInvitationRepository, InMemoryOrgRepository, InMemoryRoleRepository,
    InMemoryTeamRepository,
};
pub use user_cache::{CachedUserRepository, UserCacheAwareTwoFactor};
pub use webhooks::{InMemoryDeliveryQueue, InMemoryWebhookRepository};
