//! In-process adapters: what the embedded default runs on, and what tests use when they want
//! real behaviour without a server.
//!
//! Nothing here is shared between processes: the in-memory cache is right for one replica and
//! for tests, and `TENANTRY_ENV=production` refuses to run with it.

mod broadcast;
mod cache;
mod clock;
mod ids;
mod mailer;
mod quota;
mod user_cache;

pub use broadcast::InMemoryBroadcast;
pub use cache::InMemoryCache;
pub use clock::{ManualClock, SystemClock};
pub use ids::UuidV7Generator;
pub use mailer::RecordingMailer;
pub use quota::{InMemoryRateLimitStore, InMemoryUsageStore};
pub use user_cache::{CachedUserRepository, UserCacheAwareTwoFactor};
