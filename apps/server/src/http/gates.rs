//! What the authorization extractors checked, recorded on the request so that an idempotent
//! replay can check the same again (see `idempotency`). A leaf: the extractors record here,
//! the idempotency middleware reads here.

use actix_web::{HttpMessage, HttpRequest};
use serde::{Deserialize, Serialize};
use tenantry_domain::OrgId;
use tenantry_domain::tenancy::Permission;

/// One check an authorization extractor made, recorded so that a replay makes it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Gate {
    /// A valid access token whose session is live ([`super::Authenticated`]).
    Signed {
        /// Whose session: a repeat must come from the same account, not merely from someone
        /// signed in who shares the other credential (an API key) the record is filed under.
        user_id: tenantry_domain::UserId,
    },
    /// Access to an organization, with a permission if the route needs one ([`super::org::InOrg`]).
    Org {
        /// The organization of the path.
        org_id: OrgId,
        /// The permission the route needs; `None` for "any member".
        #[serde(with = "permission_name")]
        permission: Option<Permission>,
    },
    /// An active platform administrator ([`super::auth::PlatformAdmin`]).
    Admin,
}

mod permission_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use tenantry_domain::tenancy::Permission;

    pub fn serialize<S: Serializer>(value: &Option<Permission>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_some(&value.map(Permission::as_str))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Permission>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|name| Permission::parse(&name).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The gates a request passed so far, in request extensions.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gates(pub(crate) Vec<Gate>);

/// Notes that the current request passed `gate`; called by the authorization extractors.
pub fn record_gate(req: &HttpRequest, gate: Gate) {
    let mut extensions = req.extensions_mut();
    match extensions.get_mut::<Gates>() {
        Some(gates) if !gates.0.contains(&gate) => gates.0.push(gate),
        Some(_) => {}
        None => {
            extensions.insert(Gates(vec![gate]));
        }
    }
}
