//! The outbound ports of Tenantry: what the application layer needs from the world.
//!
//! Each port is an object-safe `async_trait` with `Send + Sync` bounds so services can hold it as
//! `Arc<dyn Port>` and the composition root can pick the adapter at start-up. Every method
//! documents the error variants it returns, so callers branch on them instead of on driver
//! errors. With the `mock` feature, mockall generates a `Mock<Port>` for each trait, usable from
//! any crate's tests.

mod cache;
mod clock;
mod health;
mod ids;

pub use cache::{Cache, CacheError};
pub use clock::Clock;
pub use health::{HealthProbe, ProbeError};
pub use ids::IdGenerator;

#[cfg(feature = "mock")]
pub use cache::MockCache;
#[cfg(feature = "mock")]
pub use clock::MockClock;
#[cfg(feature = "mock")]
pub use health::MockHealthProbe;
#[cfg(feature = "mock")]
pub use ids::MockIdGenerator;
