//! One id newtype per entity over a UUIDv7 (time-ordered, so indexes stay append-mostly).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID produced by an `IdGenerator` or read back from storage.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The raw UUID, for adapters that store or transmit it.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

define_id!(
    /// Identifies a user account across every organization it belongs to.
    UserId
);
define_id!(
    /// Identifies an organization: the tenant boundary every tenant-owned row carries.
    OrgId
);
define_id!(
    /// Identifies one sign-in session (one device), so it can be listed and revoked on its own.
    SessionId
);
define_id!(
    /// Identifies an organization's custom role, so a role path parameter cannot be taken for
    /// a team's or a key's.
    RoleId
);
define_id!(
    /// Identifies a team inside an organization; its members are referred to by [`UserId`].
    TeamId
);
define_id!(
    /// Identifies an API key (never its secret or its public part), for listing, revoking and
    /// rotating it and for naming it as the actor of what it does.
    ApiKeyId
);
define_id!(
    /// Identifies an invitation (never its token), so it can be listed and revoked.
    InvitationId
);
define_id!(
    /// Identifies a webhook endpoint of an organization: what deliveries are addressed to.
    WebhookId
);
define_id!(
    /// Identifies one delivery of an event to an endpoint; also the `webhook-id` header,
    /// stable across attempts so receivers can deduplicate.
    DeliveryId
);
define_id!(
    /// Identifies one message of the mail outbox: the worker's claims, retries and the
    /// `Message-ID` a relay sees all name it, so a retried mail stays the same mail.
    MailId
);
define_id!(
    /// Identifies a stored file of an organization; also names its object
    /// (`orgs/{org_id}/files/{file_id}`), so a user's file name never reaches a path.
    FileId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_through_their_string_form() {
        let raw = Uuid::now_v7();
        let id = OrgId::from_uuid(raw);
        let parsed: OrgId = id.to_string().parse().expect("a printed id parses");
        assert_eq!(parsed, id);
        assert_eq!(parsed.as_uuid(), raw);
    }

    #[test]
    fn ids_serialise_as_plain_strings() {
        let raw = Uuid::now_v7();
        let json = serde_json::to_string(&UserId::from_uuid(raw)).expect("serialises");
        assert_eq!(json, format!("\"{raw}\""));
    }

    #[test]
    fn garbage_is_not_an_id() {
        assert!("not-a-uuid".parse::<SessionId>().is_err());
    }
}
