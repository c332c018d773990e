//! Tenantry's domain: the vocabulary every other layer speaks.
//!
//! Everything here is pure and synchronous. Values that can only exist valid (an [`Email`], a
//! [`Slug`]) are parsed once at the edge, so code further in never re-checks them; ids are one
//! newtype per entity so a user id can never be passed where an org id is expected.

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
pub use id::{ApiKeyId, DeliveryId, FileId, InvitationId, OrgId, RoleId, SessionId, TeamId, UserId, WebhookId};
pub use name::{ApiKeyName, NameError, OrgName, TeamName};
pub use slug::{Slug, SlugError};
