//! Invitations: an e-mailed, single-use, expiring link that makes its (verified) addressee a
//! member with the role the inviter chose — a role the inviter may grant.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tenantry_domain::audit::{ActorKind, AuditEvent, Origin};
use tenantry_domain::quota::Quota;
use tenantry_domain::tenancy::{Permission, authorize_invitation};
use tenantry_domain::{Email, InvitationId, OrgId};
use tenantry_ports::{
    Clock, Conflict, IdGenerator, Invitation, InvitationRepository, OrgRepository, RoleRepository, SecretGenerator,
    StoreError, UserRepository,
};

use crate::auth::Principal;
use crate::mail::{MailComposer, MailKind, human};
use crate::quotas::{Caller, QuotaService};
use crate::tenancy::{OrgAccess, TenancyError, resolve_role};

/// Everything [`InvitationService`] needs, as one struct so the composition root builds it
/// once and a test swaps single collaborators.
#[derive(Clone)]
pub struct InvitationPorts {
    /// Invitations.
    pub invitations: Arc<dyn InvitationRepository>,
    /// Organizations (names for the mail, membership checks).
    pub orgs: Arc<dyn OrgRepository>,
    /// Custom roles (an invitation may grant one).
    pub roles: Arc<dyn RoleRepository>,
    /// Accounts (the acceptor's address and verification).
    pub users: Arc<dyn UserRepository>,
    /// Renders and seals the invitation's mail, queued with the invitation.
    pub mail: MailComposer,
    /// Tokens and their digests.
    pub secrets: Arc<dyn SecretGenerator>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids.
    pub ids: Arc<dyn IdGenerator>,
    /// The members quota; `None` leaves membership unlimited.
    pub quotas: Option<Arc<QuotaService>>,
}

/// How long an invitation link works: a week, long enough for the addressee to act on the
/// mail, short enough that a forgotten link in a mailbox soon stops being a way in.
pub const INVITATION_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// The invitation use cases: sending (under the members quota, with the mail queued in the
/// same transaction), listing, revoking and accepting, each audited in the organization's log.
pub struct InvitationService {
    ports: InvitationPorts,
}

impl InvitationService {
    /// Wires the service; links in mail start with the composer's public URL.
    pub fn new(ports: InvitationPorts) -> Self {
        Self { ports }
    }

    /// Invites `email` as `role` (`members:invite`, and only a role the inviter could grant);
    /// a pending invitation of the same address is replaced.
    ///
    /// # Errors
    /// `Forbidden`, `Refused`, `Invalid` (email, role), `AlreadyMember`, `Dependency`.
    #[tracing::instrument(name = "application.invitations.invite", skip_all, fields(org_id = %access.org_id))]
    pub async fn invite(&self, access: &OrgAccess, email: &str, role: &str) -> Result<Invitation, TenancyError> {
        access.require(Permission::MembersInvite)?;
        let email =
            Email::parse(email).map_err(|err| TenancyError::Invalid { field: "email", message: err.to_string() })?;
        let role = resolve_role(self.ports.roles.as_ref(), access.org_id, role).await?;
        authorize_invitation(&access.role, &role).map_err(|err| match err {
            tenantry_domain::tenancy::MembershipChangeError::MissingPermission(p) => TenancyError::Forbidden(p),
            other => TenancyError::Refused(other),
        })?;
        if let Some(user) = self.ports.users.by_email(&email).await?
            && self.ports.orgs.role_of(access.org_id, user.id).await?.is_some()
        {
            return Err(TenancyError::AlreadyMember);
        }
        let org = self.ports.orgs.get(access.org_id).await?.ok_or(TenancyError::NotFound)?;
        let now = self.ports.clock.now();
        let invitation = Invitation {
            id: InvitationId::from_uuid(self.ports.ids.new_id()),
            org_id: access.org_id,
            email: email.clone(),
            role: role.name().to_owned(),
            invited_by: access.actor.user_id(),
            created_at: now,
            expires_at: now + chrono::Duration::from_std(INVITATION_LIFETIME).unwrap_or(chrono::Duration::MAX),
            accepted_at: None,
            revoked_at: None,
        };
        let token = self.ports.secrets.token(32);
        let event = access.event(
            (self.ports.ids.as_ref(), self.ports.clock.as_ref()),
            "invitation.created",
            ("invitation", Some(invitation.id.to_string())),
            &json!({"email": invitation.email.as_str(), "role": invitation.role}),
        );
        let context = json!({
            "org_name": org.name,
            "role": role.name(),
            "link": self.ports.mail.link("accept-invitation", &token),
            "validity": human(INVITATION_LIFETIME),
        });
        let mail = self
            .ports
            .mail
            .compose(MailKind::Invitation, &email, &context)
            .map_err(|err| TenancyError::Dependency(err.into()))?;
        let seat_limit = self.seat_limit(access.org_id).await?;
        // The mail is queued by the invitation's own transaction: a refused invitation mails
        // nothing, and an accepted one cannot lose its mail (ADR 0018).
        let digest = self.ports.secrets.digest(&token);
        match self.ports.invitations.create(&invitation, &digest, seat_limit, &event, &[mail]).await {
            Ok(()) => {}
            Err(StoreError::LimitReached { used }) => {
                return Err(self.seats_refused(&Caller::of(access), used, seat_limit).await);
            }
            Err(err) => return Err(err.into()),
        }
        self.seat_taken(&Caller::of(access), seat_limit, true).await;
        Ok(invitation)
    }

    /// Pending invitations (`members:invite`).
    ///
    /// # Errors
    /// `Forbidden`, `Dependency`.
    pub async fn pending(
        &self,
        access: &OrgAccess,
        before: Option<InvitationId>,
        limit: u32,
    ) -> Result<Vec<Invitation>, TenancyError> {
        access.require(Permission::MembersInvite)?;
        Ok(self.ports.invitations.list_pending(access.org_id, self.ports.clock.now(), before, limit).await?)
    }

    /// Revokes a pending invitation (`members:invite`); its link stops working.
    ///
    /// # Errors
    /// `Forbidden`, `NotFound`, `Dependency`.
    pub async fn revoke(&self, access: &OrgAccess, id: InvitationId) -> Result<(), TenancyError> {
        access.require(Permission::MembersInvite)?;
        let event = access.event(
            (self.ports.ids.as_ref(), self.ports.clock.as_ref()),
            "invitation.revoked",
            ("invitation", Some(id.to_string())),
            &json!({}),
        );
        if !self.ports.invitations.revoke(access.org_id, id, self.ports.clock.now(), &event).await? {
            return Err(TenancyError::NotFound);
        }
        Ok(())
    }

    /// Accepts with the e-mailed token: only the signed-in owner of the invited, verified
    /// address can, once, before it expires.
    ///
    /// # Errors
    /// `InvalidToken`, `EmailMismatch`, `EmailNotVerified`, `AlreadyMember`, `Dependency`.
    #[tracing::instrument(name = "application.invitations.accept", skip_all)]
    pub async fn accept(
        &self,
        principal: Principal,
        origin: Origin,
        token: &str,
    ) -> Result<(OrgId, String), TenancyError> {
        let now = self.ports.clock.now();
        let invitation = self
            .ports
            .invitations
            .by_token(&self.ports.secrets.digest(token))
            .await?
            .filter(|invitation| invitation.is_pending(now))
            .ok_or(TenancyError::InvalidToken)?;
        let user = self.ports.users.by_id(principal.user_id).await?.ok_or(TenancyError::NotFound)?;
        if user.email != invitation.email {
            return Err(TenancyError::EmailMismatch);
        }
        if user.email_verified_at.is_none() {
            return Err(TenancyError::EmailNotVerified);
        }
        // An invitation carries only the authority its inviter still has: one who left, or can
        // no longer grant the role, leaves a link that no longer works.
        let inviter_role = self.inviter_role(&invitation).await?.ok_or(TenancyError::InvalidToken)?;
        let accepted = AuditEvent::new(
            self.ports.ids.new_id(),
            invitation.org_id,
            "invitation.accepted",
            (ActorKind::User, user.id.as_uuid()),
            ("invitation", Some(invitation.id.to_string())),
            origin.clone(),
            now,
            &json!({"user_id": user.id.to_string(), "role": invitation.role}),
        );
        let added = AuditEvent::new(
            self.ports.ids.new_id(),
            invitation.org_id,
            "member.added",
            (ActorKind::User, user.id.as_uuid()),
            ("user", Some(user.id.to_string())),
            origin.clone(),
            now,
            &json!({"role": invitation.role, "invitation_id": invitation.id.to_string(),
                    "invited_by": invitation.invited_by.to_string()}),
        );
        let seat_limit = self.seat_limit(invitation.org_id).await?;
        let caller = Caller { org_id: invitation.org_id, actor: (ActorKind::User, user.id.as_uuid()), origin };
        match self
            .ports
            .invitations
            .accept(
                invitation.org_id,
                invitation.id,
                &invitation.role,
                user.id,
                &inviter_role,
                seat_limit,
                now,
                &[accepted, added],
            )
            .await
        {
            Ok(()) => {}
            Err(StoreError::LimitReached { used }) => {
                return Err(self.seats_refused(&caller, used, seat_limit).await);
            }
            Err(StoreError::NotFound) => return Err(TenancyError::InvalidToken),
            Err(StoreError::Conflict(Conflict::AlreadyMember)) => return Err(TenancyError::AlreadyMember),
            // The account was deleted while it accepted (its membership row could not refer to
            // it): the caller is gone, not the server broken. Told by the store, not by reading
            // the account again: a cached copy could still show it.
            Err(StoreError::Conflict(Conflict::AccountGone)) => {
                tracing::info!(user_id = %user.id, "an account was deleted while accepting an invitation");
                return Err(TenancyError::NotFound);
            }
            Err(err) => return Err(err.into()),
        }
        self.seat_taken(&caller, seat_limit, false).await;
        Ok((invitation.org_id, invitation.role))
    }

    /// The inviter's current role name if they are still a member who may grant the
    /// invitation's role; `None` otherwise.
    /// The members limit, when quotas are on.
    async fn seat_limit(&self, org_id: OrgId) -> Result<Option<u64>, TenancyError> {
        match &self.ports.quotas {
            Some(quotas) => quotas.limit_of(org_id, Quota::Members).await.map_err(TenancyError::from),
            None => Ok(None),
        }
    }

    /// Announces the members thresholds a seat just taken crossed; a failure to count is
    /// logged, never returned (the seat is taken).
    async fn seat_taken(&self, caller: &Caller, limit: Option<u64>, with_pending: bool) {
        let (Some(quotas), Some(_)) = (&self.ports.quotas, limit) else { return };
        match quotas.seats(caller.org_id, with_pending).await {
            Ok(used) => quotas.taken(caller, Quota::Members, used, limit).await,
            Err(err) => tracing::warn!(error = %err, "counting seats for threshold announcements failed"),
        }
    }

    /// The refusal of a full members quota, announced once per period.
    async fn seats_refused(&self, caller: &Caller, used: u64, limit: Option<u64>) -> TenancyError {
        match (&self.ports.quotas, limit) {
            (Some(quotas), Some(limit)) => quotas.refused(caller, Quota::Members, used, limit).await.into(),
            _ => TenancyError::Dependency(anyhow::anyhow!("a seat limit was met without one being set")),
        }
    }

    async fn inviter_role(&self, invitation: &Invitation) -> Result<Option<String>, TenancyError> {
        let Some(name) = self.ports.orgs.role_of(invitation.org_id, invitation.invited_by).await? else {
            return Ok(None);
        };
        let inviter = resolve_role(self.ports.roles.as_ref(), invitation.org_id, &name).await?;
        let invited = match resolve_role(self.ports.roles.as_ref(), invitation.org_id, &invitation.role).await {
            Ok(role) => role,
            // The custom role was deleted: nothing left to grant.
            Err(TenancyError::Invalid { .. }) => return Ok(None),
            Err(err) => return Err(err),
        };
        Ok(authorize_invitation(&inviter, &invited).is_ok().then_some(name))
    }
}
