//! The Tenantry server: configuration, HTTP plumbing, routes, and the composition root that
//! wires adapters into application services.
//!
//! The [`startup::Application`] builder is shared by the `tenantry` binary, the black-box tests
//! (which bind port 0 and read back the port) and services that embed Tenantry.

pub mod cli;
pub mod config;
pub mod healthcheck;
pub mod http;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;
pub mod tasks;
pub mod telemetry;
pub mod worker;
