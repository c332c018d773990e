//! Contract suites that every adapter of a port must pass, and fixtures shared by tests.
//!
//! One suite per port, written once against the trait: the in-memory adapter, SQLite, and the
//! real PostgreSQL/Redis/S3/SMTP adapters all run the same cases, so "works in tests" and "works
//! in production" mean the same thing. Suites panic with a message naming the broken rule.

pub mod broadcast;
pub mod cache;
pub mod env;
pub mod files;
pub mod identity;
pub mod mail;
pub mod plans;
pub mod postgres;
pub mod rate_limit;
pub mod smtp;
pub mod storage;
mod support;
pub mod tenancy;
pub mod usage;
pub mod webhooks;
