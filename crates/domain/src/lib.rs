//! Tenantry's domain: the vocabulary every other layer speaks.
//!
//! Everything here is pure and synchronous. Values that can only exist valid (an [`Email`], a
//! [`Slug`]) are parsed once at the edge, so code further in never re-checks them; ids are one
//! newtype per entity so a user id can never be passed where an org id is expected.
//!
//! # Where this crate sits
//!
//! ```text
//! your service / apps/server      HTTP, configuration, wiring
//!         │
//! tenantry-application            use cases and the composition root (`Tenantry`)
//!         │
//! tenantry-ports                  traits for what the use cases need from outside
//!         │
//! tenantry-domain  ◀── here       values and rules: no async, no I/O, no framework
//! ```
//!
//! Adapters (SQL, Redis, crypto, …) depend on this crate and on `tenantry-ports`, never on
//! each other or on the application. Depending on `tenantry-domain` alone gives a service
//! Tenantry's rules — the role hierarchy, quota arithmetic, webhook signatures — without any
//! runtime.
//!
//! ```
//! use tenantry_domain::{Email, OrgId, Slug};
//!
//! // Parsed once at the edge, valid for good: code that takes a `Slug` never re-checks it.
//! let slug = Slug::parse("acme-corp").expect("a valid slug");
//! assert_eq!(slug.as_str(), "acme-corp");
//! assert!(Slug::parse("Not A Slug!").is_err());
//! assert!(Email::parse("not an address").is_err());
//!
//! // One id type per entity over a UUIDv7: an `OrgId` is not a `UserId`.
//! let org = OrgId::from_uuid(uuid::Uuid::now_v7());
//! assert_eq!(org.as_uuid().get_version_num(), 7);
//! ```

pub mod audit;
mod email;
pub mod events;
pub mod files;
mod id;
pub mod identity;
mod name;
pub mod quota;
pub mod rate;
mod slug;
pub mod tenancy;
pub mod webhooks;

pub use email::{Email, EmailError};
pub use id::{ApiKeyId, DeliveryId, FileId, InvitationId, MailId, OrgId, RoleId, SessionId, TeamId, UserId, WebhookId};
pub use name::{ApiKeyName, NameError, OrgName, TeamName};
pub use slug::{Slug, SlugError};
