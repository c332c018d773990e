//! SQL adapters on sea-orm: the same repository code on PostgreSQL (production) and SQLite (the
//! embedded default). Driver errors (`DbErr`) are mapped to port errors at this seam.

mod api_keys;
mod audit;
#[cfg(test)]
mod contract_tests;
mod database;
mod entities;
mod identity;
mod invitations;
mod personal;
mod probe;
mod roles;
mod teams;
mod tenancy;
mod two_factor;

pub use api_keys::SqlApiKeyRepository;
pub use audit::SqlAuditLog;
pub use database::{Backend, SqlConfig, SqlDatabase, SqlError};
pub use identity::{SqlOneTimeTokenRepository, SqlSessionRepository, SqlUserRepository};
pub use invitations::SqlInvitationRepository;
pub use personal::SqlPersonalDataReader;
pub use probe::SqlHealthProbe;
pub use roles::SqlRoleRepository;
pub use teams::SqlTeamRepository;
pub use tenancy::SqlOrgRepository;
pub use two_factor::SqlTwoFactorRepository;
