//! SQL adapters on sea-orm: the same repository code on PostgreSQL (production) and SQLite (the
//! embedded default). Driver errors (`DbErr`) are mapped to port errors at this seam.

mod account_deletion;
mod api_keys;
mod audit;
#[cfg(test)]
mod contract_tests;
mod database;
mod entities;
mod errors;
#[cfg(test)]
mod fenced_orgs;
mod files;
mod invitations;
mod mail;
mod personal;
mod plans;
mod probe;
mod roles;
mod sessions;
mod teams;
mod tenancy;
mod tokens;
mod two_factor;
mod usage;
mod users;
mod webhooks;

pub use api_keys::SqlApiKeyRepository;
pub use audit::SqlAuditLog;
pub use database::{Backend, PoolStats, SqlConfig, SqlDatabase, SqlError};
pub use files::SqlFileRepository;
pub use invitations::SqlInvitationRepository;
pub use mail::SqlMailOutbox;
pub use personal::SqlPersonalDataReader;
pub use plans::SqlPlanRepository;
pub use probe::SqlHealthProbe;
pub use roles::SqlRoleRepository;
pub use sessions::SqlSessionRepository;
pub use teams::SqlTeamRepository;
pub use tenancy::SqlOrgRepository;
pub use tokens::SqlOneTimeTokenRepository;
pub use two_factor::SqlTwoFactorRepository;
pub use usage::SqlUsageStore;
pub use users::SqlUserRepository;
pub use webhooks::{SqlDeliveryQueue, SqlWebhookRepository};
