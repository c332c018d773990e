//! Contract suites that every adapter of a port must pass, and fixtures shared by tests.
//!
//! One suite per port, written once against the trait: the in-memory adapters, SQLite, and the
//! real PostgreSQL/Redis/S3/SMTP adapters all run the same cases, so "works in tests" and "works
//! in production" mean the same thing. Suites panic with a message naming the broken rule, so
//! a failing adapter says which promise of the port it breaks.
//!
//! # The suites
//!
//! | port (`tenantry-ports`) | suite | adapters that run it |
//! | --- | --- | --- |
//! | `Cache` | [`cache::run_contract`] | in-memory, Redis, `examples/custom-adapter` |
//! | `Broadcast` | [`broadcast::run_contract`] | in-memory, Redis |
//! | `RateLimitStore` | [`rate_limit::run_contract`] | in-memory, Redis |
//! | `UsageStore` | [`usage::run_contract`] | in-memory, Redis, SQL |
//! | `PlanRepository` | [`plans::run_contract`] | SQL, in-memory |
//! | `UserRepository`, `SessionRepository`, `OneTimeTokenRepository`, `TwoFactorRepository` | [`identity::run_contract`] | SQL, in-memory |
//! | `OrgRepository`, `RoleRepository`, `InvitationRepository`, `TeamRepository`, `ApiKeyRepository`, `AuditLog` | [`tenancy::run_contract`] | SQL, in-memory |
//! | `WebhookRepository`, `DeliveryQueue` | [`webhooks::run_contract`] | SQL, in-memory |
//! | `FileRepository` | [`files::run_contract`] | SQL, in-memory |
//! | `ObjectStorage` | [`storage::run_contract`] | local folder, memory (object_store and in-memory adapter), S3 |
//! | `Mailer` | [`mail::delivers_each_message_once_with_both_parts`] | SMTP, `.eml` folder |
//! | `WebhookSender` | [`webhook_sender::run_contract`] | reqwest (http adapter) |
//! | `Clock` | [`clock::run_contract`], [`clock::run_wall_clock_contract`] | system clock, manual clock |
//! | `IdGenerator` | [`ids::run_contract`] | UUIDv7 generator |
//! | `PasswordHasher` | [`password::run_contract`] | argon2id |
//! | `AccessTokenIssuer` | [`access_tokens::run_contract`] | Ed25519 JWTs |
//! | `SecretGenerator` | [`secrets::run_contract`] | OS CSPRNG |
//! | `TotpAlgorithm` | [`totp::run_contract`] | RFC 6238 (totp-rs) |
//! | `SecretCipher` | [`cipher::run_contract`] | XChaCha20-Poly1305 |
//! | `HealthProbe` | [`health::run_contract`], [`health::run_unreachable_contract`] | SQL, cache, storage, SMTP, mail folder |
//! | `PersonalDataReader` | [`personal::run_contract`] | in-memory, SQL |
//! | `BackgroundTasks` | [`tasks::run_contract`] | the server's tracked tasks, in-memory `TokioTasks`, `examples/embed-postgres` |
//!
//! Fixtures: [`receiver::Receiver`] (a loopback HTTP receiver with scripted answers),
//! [`smtp::SmtpSink`] (a loopback SMTP server), `postgres::ScratchPostgres` (a throw-away
//! database; the default `postgres` feature, which brings sea-orm) and [`env`](mod@env) (which
//! real backends a run may use).
//!
//! # Running a suite against your own adapter
//!
//! Add the test kit as a dev-dependency and call the port's suite from a test, handing it
//! your adapter (or a factory of fresh adapters, for the suites that need one per case):
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use chrono::{DateTime, Utc};
//! use tenantry_ports::Clock;
//!
//! /// The adapter under test: a clock that reads the system time.
//! struct MyClock;
//!
//! impl Clock for MyClock {
//!     fn now(&self) -> DateTime<Utc> {
//!         Utc::now()
//!     }
//! }
//!
//! // In `#[test] fn my_clock_keeps_the_clock_contract()`:
//! tenantry_testkit::clock::run_wall_clock_contract(Arc::new(MyClock), Duration::from_secs(1));
//! ```
//!
//! Async suites take a factory; `examples/custom-adapter` runs the cache suite against a cache
//! on files, and shows that a deliberately broken variant fails it.

pub mod access_tokens;
pub mod broadcast;
pub mod cache;
pub mod cipher;
pub mod clock;
pub mod env;
pub mod files;
pub mod health;
pub mod identity;
pub mod ids;
pub mod mail;
pub mod mail_outbox;
pub mod password;
pub mod personal;
pub mod plans;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod rate_limit;
pub mod receiver;
pub mod secrets;
pub mod smtp;
pub mod storage;
mod support;
pub mod tasks;
pub mod tenancy;
pub mod totp;
pub mod usage;
pub mod webhook_sender;
pub mod webhooks;
