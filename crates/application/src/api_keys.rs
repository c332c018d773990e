//! API keys: org-scoped machine credentials. `tk_<public id>_<secret>`; only a hash of the
//! whole key is stored, the key is shown once. A key acts only inside its organization and only
//! with its own permissions: a subset of its creator's at creation, and cut down to the creator's
//! current role at every use, so a demoted or departed creator's keys shrink or stop.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::json;
use tenantry_domain::tenancy::{MembershipChangeError, Permission, PermissionSet, Role, RoleName};
use tenantry_domain::{ApiKeyId, OrgId};
use tenantry_ports::{
    ApiKey, ApiKeyRepository, Cache, Clock, IdGenerator, OrgRepository, RoleRepository, SecretGenerator, StoreError,
};

use crate::tenancy::{Actor, OrgAccess, TenancyError, member_role};

/// Everything [`ApiKeyService`] needs, as one struct so the composition root builds it once
/// and a test swaps single collaborators.
#[derive(Clone)]
pub struct ApiKeyPorts {
    /// Keys.
    pub keys: Arc<dyn ApiKeyRepository>,
    /// Secrets and digests.
    pub secrets: Arc<dyn SecretGenerator>,
    /// `last_used_at` throttling.
    pub cache: Arc<dyn Cache>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: Arc<dyn IdGenerator>,
    /// Memberships: a key never outlives or outranks its creator's membership.
    pub orgs: Arc<dyn OrgRepository>,
    /// Custom roles, to resolve the creator's current permissions.
    pub roles: Arc<dyn RoleRepository>,
}

/// A key just created: the only time its secret exists outside the client.
#[derive(Debug, Clone)]
pub struct IssuedApiKey {
    /// The stored key.
    pub key: ApiKey,
    /// The full key to give the client, once.
    pub token: String,
}

/// Longest rotation grace period: long enough to roll a key out across a fleet, short enough
/// that a rotation (often prompted by a leak) really retires the old key.
pub const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);
/// How often `last_used_at` is written at most.
const USED_EVERY: Duration = Duration::from_secs(60);

/// The API-key use cases: creation, rotation and revocation (each audited in the organization's
/// log), and [`Self::access`], which turns a presented key into an [`OrgAccess`] bounded by the
/// creator's current role.
pub struct ApiKeyService {
    ports: ApiKeyPorts,
    /// When this process last asked the shared cache whether a key's use is due to be
    /// recorded: at most once per key per [`USED_EVERY`], instead of a round trip per request.
    use_checked: std::sync::Mutex<std::collections::HashMap<ApiKeyId, DateTime<Utc>>>,
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether `token` has the shape of an API key (so callers can route it here, not to JWTs).
pub fn looks_like_api_key(token: &str) -> bool {
    token.starts_with("tk_")
}

impl ApiKeyService {
    /// Wires the service; no I/O happens until a method is called.
    pub fn new(ports: ApiKeyPorts) -> Self {
        Self { ports, use_checked: std::sync::Mutex::new(std::collections::HashMap::new()) }
    }

    /// Whether to ask the shared cache if `key`'s use should be recorded now.
    fn due_for_use_record(&self, key: ApiKeyId, now: DateTime<Utc>) -> bool {
        let every = chrono::Duration::from_std(USED_EVERY).unwrap_or(chrono::Duration::zero());
        let mut checked = self.use_checked.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if checked.get(&key).is_some_and(|at| *at + every > now) {
            return false;
        }
        if checked.len() > 100_000 {
            checked.retain(|_, at| *at + every > now);
        }
        checked.insert(key, now);
        true
    }

    /// The key with `public_id` and its digest, looked up in the requested org first (the
    /// repository the server wires reads that through the tenancy cache).
    async fn key_by_public_id(&self, public_id: &str, org_id: OrgId) -> Result<Option<(ApiKey, String)>, TenancyError> {
        if let Some(found) = self.ports.keys.by_public_id_in(org_id, public_id).await? {
            return Ok(Some(found));
        }
        // Not in this org (rare: a mistake or a probe): read it uncached, to tell a key of
        // another org (404, as for any of its resources) from no key at all (401).
        Ok(self.ports.keys.by_public_id(public_id).await?)
    }

    fn mint(&self) -> (String, String) {
        let public_id: String = self.ports.secrets.digest(&self.ports.secrets.token(16)).chars().take(16).collect();
        let token = format!("tk_{public_id}_{}", self.ports.secrets.token(32));
        (public_id, token)
    }

    /// Creates a key (`api_keys:manage`) with permissions the caller holds.
    ///
    /// # Errors
    /// `Forbidden`, `Invalid` (name, permissions, expires_at), `Refused(Escalation)`, `Dependency`.
    #[tracing::instrument(name = "application.api_keys.create", skip_all, fields(org_id = %access.org_id))]
    pub async fn create(
        &self,
        access: &OrgAccess,
        name: &str,
        permissions: &[String],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<IssuedApiKey, TenancyError> {
        access.require(Permission::ApiKeysManage)?;
        let name = tenantry_domain::ApiKeyName::parse(name)
            .map_err(|err| TenancyError::Invalid { field: "name", message: err.to_string() })?;
        let name = name.as_str();
        let permissions = PermissionSet::parse(permissions)
            .map_err(|err| TenancyError::Invalid { field: "permissions", message: err.to_string() })?;
        if !permissions.is_subset_of(access.permissions()) {
            return Err(TenancyError::Refused(MembershipChangeError::Escalation));
        }
        let now = self.ports.clock.now();
        if expires_at.is_some_and(|at| at <= now) {
            return Err(TenancyError::Invalid { field: "expires_at", message: "must be in the future".to_owned() });
        }
        let (public_id, token) = self.mint();
        let key = ApiKey {
            id: ApiKeyId::from_uuid(self.ports.ids.new_id()),
            org_id: access.org_id,
            name: name.to_owned(),
            public_id,
            permissions,
            created_by: access.actor.user_id(),
            created_at: now,
            expires_at,
            last_used_at: None,
            revoked_at: None,
        };
        let event = access.event(
            (self.ports.ids.as_ref(), self.ports.clock.as_ref()),
            "api_key.created",
            ("api_key", Some(key.id.to_string())),
            &json!({"name": key.name, "permissions": key.permissions.names(), "expires_at": key.expires_at}),
        );
        self.ports.keys.create(&key, &self.ports.secrets.digest(&token), &event).await?;
        Ok(IssuedApiKey { key, token })
    }

    /// The organization's keys (`api_keys:manage`), never their secrets.
    ///
    /// # Errors
    /// `Forbidden`, `Dependency`.
    pub async fn list(
        &self,
        access: &OrgAccess,
        before: Option<ApiKeyId>,
        limit: u32,
    ) -> Result<Vec<ApiKey>, TenancyError> {
        access.require(Permission::ApiKeysManage)?;
        Ok(self.ports.keys.list(access.org_id, before, limit).await?)
    }

    /// Revokes a key (`api_keys:manage`); it stops working at once.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Dependency`.
    pub async fn revoke(&self, access: &OrgAccess, id: ApiKeyId) -> Result<(), TenancyError> {
        access.require(Permission::ApiKeysManage)?;
        let event = access.event(
            (self.ports.ids.as_ref(), self.ports.clock.as_ref()),
            "api_key.revoked",
            ("api_key", Some(id.to_string())),
            &json!({}),
        );
        if !self.ports.keys.revoke(access.org_id, id, self.ports.clock.now(), &event).await? {
            return Err(TenancyError::NotFound);
        }
        Ok(())
    }

    /// Issues a replacement with the same name, permissions and expiry; the old key keeps
    /// working for `grace`, then stops.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Invalid` (grace), `Refused(Escalation)` for a key with
    /// permissions the caller lacks, `Dependency`.
    pub async fn rotate(
        &self,
        access: &OrgAccess,
        id: ApiKeyId,
        grace: Duration,
    ) -> Result<IssuedApiKey, TenancyError> {
        access.require(Permission::ApiKeysManage)?;
        if grace > MAX_GRACE {
            return Err(TenancyError::Invalid {
                field: "grace_seconds",
                message: "must be at most 30 days".to_owned(),
            });
        }
        let now = self.ports.clock.now();
        let old = self
            .ports
            .keys
            .get(access.org_id, id)
            .await?
            .filter(|key| key.is_active(now))
            .ok_or(TenancyError::NotFound)?;
        // The replacement is created by the rotating caller: it must not carry more than they hold.
        if !old.permissions.is_subset_of(access.permissions()) {
            return Err(TenancyError::Refused(MembershipChangeError::Escalation));
        }
        let (public_id, token) = self.mint();
        let key = ApiKey {
            id: ApiKeyId::from_uuid(self.ports.ids.new_id()),
            public_id,
            created_by: access.actor.user_id(),
            created_at: now,
            last_used_at: None,
            revoked_at: None,
            ..old.clone()
        };
        let until = now + chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::zero());
        let event = access.event(
            (self.ports.ids.as_ref(), self.ports.clock.as_ref()),
            "api_key.rotated",
            ("api_key", Some(old.id.to_string())),
            &json!({"replacement_id": key.id.to_string(), "old_key_expires_at": until}),
        );
        match self.ports.keys.rotate(old.id, until, &key, &self.ports.secrets.digest(&token), &event).await {
            Ok(()) => {}
            // Revoked or rotated meanwhile.
            Err(StoreError::NotFound) => return Err(TenancyError::NotFound),
            Err(err) => return Err(err.into()),
        }
        Ok(IssuedApiKey { key, token })
    }

    /// What a presented key may do in `org_id`: `NotFound` for another organization's key (as
    /// for any org it cannot see), `InvalidApiKey` for anything unknown, revoked or expired.
    ///
    /// # Errors
    /// `InvalidApiKey`, `NotFound`, `Dependency`.
    pub async fn access(&self, token: &str, org_id: tenantry_domain::OrgId) -> Result<OrgAccess, TenancyError> {
        let public_id = token
            .strip_prefix("tk_")
            .and_then(|rest| rest.split_once('_'))
            .map(|(public, _)| public)
            .filter(|public| public.len() == 16)
            .ok_or(TenancyError::InvalidApiKey)?;
        let (key, hash) = self.key_by_public_id(public_id, org_id).await?.ok_or(TenancyError::InvalidApiKey)?;
        if !constant_time_eq(hash.as_bytes(), self.ports.secrets.digest(token).as_bytes()) {
            return Err(TenancyError::InvalidApiKey);
        }
        let now = self.ports.clock.now();
        if !key.is_active(now) {
            return Err(TenancyError::InvalidApiKey);
        }
        if key.org_id != org_id {
            return Err(TenancyError::NotFound);
        }
        // A key acts for its creator: once they leave the organization it stops working, and
        // it never does more than their current role allows.
        let creator_role = member_role(self.ports.orgs.as_ref(), self.ports.roles.as_ref(), org_id, key.created_by)
            .await?
            .ok_or(TenancyError::InvalidApiKey)?;
        let permissions = key.permissions.intersection(creator_role.permissions());
        if self.due_for_use_record(key.id, now)
            && self
                .ports
                .cache
                .set_if_absent(&format!("api-keys:used:{}", key.id), b"1", Some(USED_EVERY))
                .await
                .unwrap_or(false)
            && let Err(err) = self.ports.keys.touch(key.org_id, key.id, now).await
        {
            tracing::warn!(error = %err, "recording API key use failed");
        }
        let role = Role::Custom {
            name: RoleName::parse("api-key").map_err(|err| TenancyError::Dependency(anyhow::anyhow!("{err}")))?,
            permissions,
        };
        Ok(OrgAccess {
            org_id,
            actor: Actor::ApiKey { key_id: key.id, created_by: key.created_by },
            role,
            origin: tenantry_domain::audit::Origin::default(),
        })
    }
}
