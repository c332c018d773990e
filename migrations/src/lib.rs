//! Tenantry's schema as one ordered set of sea-orm migrations that runs unchanged on PostgreSQL
//! and SQLite. PostgreSQL-only parts (Row-Level Security, partial indexes) run behind a backend
//! check inside the migration that needs them, so both databases always share one history.

pub use sea_orm_migration::MigratorTrait;
use sea_orm_migration::prelude::*;

mod m20261122_000001_instance_settings;
mod m20261122_000002_identity;
mod m20261122_000003_backup_codes;
mod m20261122_000004_orgs;
mod m20261122_000005_invitations;
mod m20261122_000006_roles;
mod m20261122_000007_teams;
mod m20261122_000008_api_keys;
mod m20261122_000009_audit_log;
mod m20261122_000010_row_level_security;
mod m20261206_000011_quotas;
mod m20261206_000012_webhooks;
mod m20261206_000013_webhook_health;
mod m20261206_000014_files;
mod m20261206_000015_mail_outbox;

/// Every tenant-owned table and the column naming its organization: each is under the same
/// Row-Level Security policy on PostgreSQL, and the isolation tests walk this list, so a new
/// tenant table is fenced and checked by being added to its migration's list.
pub const TENANT_TABLES: [(&str, &str); 16] = concat(BEFORE_FILES, m20261206_000014_files::TABLES);

/// The tenant tables of the migrations before files (a step of [`TENANT_TABLES`]).
const BEFORE_FILES: [(&str, &str); 15] = concat(BEFORE_WEBHOOKS, m20261206_000012_webhooks::TABLES);

/// The tenant tables of the migrations before webhooks (a step of [`TENANT_TABLES`]).
const BEFORE_WEBHOOKS: [(&str, &str); 11] =
    concat(m20261122_000010_row_level_security::TABLES, m20261206_000011_quotas::TABLES);

/// `a` then `b`, at compile time (a wrong length `N` fails the build).
const fn concat<const A: usize, const B: usize, const N: usize>(
    a: [(&'static str, &'static str); A],
    b: [(&'static str, &'static str); B],
) -> [(&'static str, &'static str); N] {
    assert!(A + B == N, "TENANT_TABLES must have room for exactly every table");
    let mut out = [("", ""); N];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - A];
        i += 1;
    }
    out
}

/// Lists every migration in order; `tenantry migrate` and `tenantry serve` apply the pending ones.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_instance_settings::Migration),
            Box::new(m20261122_000002_identity::Migration),
            Box::new(m20261122_000003_backup_codes::Migration),
            Box::new(m20261122_000004_orgs::Migration),
            Box::new(m20261122_000005_invitations::Migration),
            Box::new(m20261122_000006_roles::Migration),
            Box::new(m20261122_000007_teams::Migration),
            Box::new(m20261122_000008_api_keys::Migration),
            Box::new(m20261122_000009_audit_log::Migration),
            Box::new(m20261122_000010_row_level_security::Migration),
            Box::new(m20261206_000011_quotas::Migration),
            Box::new(m20261206_000012_webhooks::Migration),
            Box::new(m20261206_000013_webhook_health::Migration),
            Box::new(m20261206_000014_files::Migration),
            Box::new(m20261206_000015_mail_outbox::Migration),
        ]
    }
}
