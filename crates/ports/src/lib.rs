//! The outbound ports of Tenantry: what the application layer needs from the world.
//!
//! Each port is an object-safe `async_trait` with `Send + Sync` bounds so services can hold it as
//! `Arc<dyn Port>` and the composition root can pick the adapter at start-up. Every method
//! documents the error variants it returns, so callers branch on them instead of on driver
//! errors. With the `mock` feature, mockall generates a `Mock<Port>` for each trait, usable from
//! any crate's tests.
//!
//! # Where this crate sits
//!
//! ```text
//! tenantry-application      use cases: hold `Arc<dyn Port>`, never an adapter type
//!         │
//! tenantry-ports  ◀── here  the traits, their data types and error enums
//!         │
//! tenantry-domain           the values the traits take and return
//!
//! adapters (sql, redis, memory, crypto, http, mail, storage, or yours) implement the traits
//! ```
//!
//! # Writing an adapter
//!
//! Implement the trait, translate your store's errors into the port's variants at the seam,
//! and run the port's contract suite from `tenantry-testkit` against it (its crate docs list
//! one suite per port; `examples/custom-adapter` walks through a `Cache` on files). Then hand
//! it to the composition root, `tenantry_application::Ports`.
//!
//! ```
//! use chrono::{DateTime, TimeZone, Utc};
//! use tenantry_ports::Clock;
//!
//! /// A clock stopped at one instant: a complete adapter of the `Clock` port.
//! struct Frozen(DateTime<Utc>);
//!
//! impl Clock for Frozen {
//!     fn now(&self) -> DateTime<Utc> {
//!         self.0
//!     }
//! }
//!
//! let at = Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, 0).unwrap();
//! let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(Frozen(at));
//! assert_eq!(clock.now(), at);
//! ```

mod audit;
mod broadcast;
mod cache;
mod clock;
mod crypto;
mod files;
mod health;
mod identity;
mod ids;
mod mail;
mod personal;
mod quota;
mod storage;
mod tasks;
mod tenancy;
mod two_factor;
mod webhooks;

pub use audit::{AuditFilter, AuditHead, AuditLog};
pub use broadcast::{Broadcast, Subscription};
pub use cache::{Cache, CacheError};
pub use clock::Clock;
pub use crypto::{
    AccessClaims, AccessTokenError, AccessTokenIssuer, CryptoError, PasswordCheck, PasswordHasher, PublicJwk,
    SecretGenerator,
};
pub use files::{Completion, FileRecord, FileRepository};
pub use health::{HealthProbe, ProbeError};
pub use identity::{
    AccountDeleted, Conflict, IssuedToken, NewUser, OneTimeTokenRepository, RefreshOutcome, SessionRepository,
    StoreError, UserRepository,
};
pub use ids::IdGenerator;
pub use mail::{ClaimedMail, MailError, MailOutbox, Mailer, OutgoingEmail, QueuedMail};
pub use personal::{MembershipRecord, PersonalDataReader, TeamMembershipRecord, TenantFootprint};
pub use quota::{Consumed, CounterError, PlanRepository, RateLimitStore, Take, UsageKey, UsageStore};
pub use storage::{
    ByteRange, ChunkSource, Download, DownloadHeaders, InvalidObjectKey, ObjectInfo, ObjectKey, ObjectStorage,
    StorageError, StoredBlob,
};
pub use tasks::{BackgroundTasks, Task};
pub use tenancy::{
    ApiKey, ApiKeyRepository, CustomRole, Invitation, InvitationRepository, Member, Org, OrgRepository, RoleRepository,
    Team, TeamRepository,
};
pub use two_factor::{SecretCipher, TotpAlgorithm, TotpProvisioning, TwoFactorRecord, TwoFactorRepository};
pub use webhooks::{
    Attempt, AttemptOutcome, ClaimedDelivery, Delivery, DeliveryQueue, Disabling, OutgoingWebhook, SendError,
    WebhookAnswer, WebhookEndpoint, WebhookRepository, WebhookSender,
};

#[cfg(feature = "mock")]
pub use audit::MockAuditLog;
#[cfg(feature = "mock")]
pub use broadcast::MockBroadcast;
#[cfg(feature = "mock")]
pub use cache::MockCache;
#[cfg(feature = "mock")]
pub use clock::MockClock;
#[cfg(feature = "mock")]
pub use crypto::{MockAccessTokenIssuer, MockPasswordHasher, MockSecretGenerator};
#[cfg(feature = "mock")]
pub use files::MockFileRepository;
#[cfg(feature = "mock")]
pub use health::MockHealthProbe;
#[cfg(feature = "mock")]
pub use identity::{MockOneTimeTokenRepository, MockSessionRepository, MockUserRepository};
#[cfg(feature = "mock")]
pub use ids::MockIdGenerator;
#[cfg(feature = "mock")]
pub use mail::{MockMailOutbox, MockMailer};
#[cfg(feature = "mock")]
pub use personal::MockPersonalDataReader;
#[cfg(feature = "mock")]
pub use quota::{MockPlanRepository, MockRateLimitStore, MockUsageStore};
#[cfg(feature = "mock")]
pub use storage::{MockChunkSource, MockObjectStorage};
#[cfg(feature = "mock")]
pub use tasks::MockBackgroundTasks;
#[cfg(feature = "mock")]
pub use tenancy::{
    MockApiKeyRepository, MockInvitationRepository, MockOrgRepository, MockRoleRepository, MockTeamRepository,
};
#[cfg(feature = "mock")]
pub use two_factor::{MockSecretCipher, MockTotpAlgorithm, MockTwoFactorRepository};
#[cfg(feature = "mock")]
pub use webhooks::{MockDeliveryQueue, MockWebhookRepository, MockWebhookSender};
