//! sea-orm entities: table shapes only, no rules. Mapping to domain types lives in the
//! repositories.

pub mod api_keys;
pub mod audit_heads;
pub mod audit_log;
pub mod backup_codes;
pub mod files;
pub mod invitations;
pub mod mail_outbox;
pub mod memberships;
pub mod one_time_tokens;
pub mod orgs;
pub mod refresh_tokens;
pub mod roles;
pub mod sessions;
pub mod team_members;
pub mod teams;
pub mod users;
pub mod webhook_attempts;
pub mod webhook_deliveries;
pub mod webhook_endpoints;
pub mod webhook_events;
