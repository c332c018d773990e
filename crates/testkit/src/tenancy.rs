//! The contract of the tenancy ports: organizations and memberships, invitations, custom roles,
//! teams, API keys and the audit log. Every adapter of these ports runs it (SQLite and
//! PostgreSQL today): the rules their docs promise (keyset pages without gap or repeat, the
//! last-owner refusal, single-use invitations bound to their inviter's role, an audit entry
//! per change in one hash chain) hold on every backend alike.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use tenantry_domain::audit::{ActorKind, AuditEvent, Origin};
use tenantry_domain::tenancy::{PermissionSet, RoleName};
use tenantry_domain::{ApiKeyId, Email, InvitationId, OrgId, RoleId, Slug, TeamId, UserId};
use tenantry_ports::{
    ApiKey, ApiKeyRepository, AuditLog, Conflict, CustomRole, Invitation, InvitationRepository, NewUser, Org,
    OrgRepository, RoleRepository, StoreError, Team, TeamRepository, UserRepository,
};
use uuid::Uuid;

/// The stores under test, all over one database.
#[derive(Clone)]
pub struct TenancyStores {
    /// Accounts (members must exist).
    pub users: Arc<dyn UserRepository>,
    /// Organizations and memberships.
    pub orgs: Arc<dyn OrgRepository>,
    /// Invitations.
    pub invitations: Arc<dyn InvitationRepository>,
    /// Custom roles.
    pub roles: Arc<dyn RoleRepository>,
    /// Teams.
    pub teams: Arc<dyn TeamRepository>,
    /// API keys.
    pub api_keys: Arc<dyn ApiKeyRepository>,
    /// The audit log.
    pub audit: Arc<dyn AuditLog>,
}

/// Runs every case against stores built by `make`. Each case makes its own organizations and
/// users (random ids, slugs and addresses), so cases may share one database.
pub async fn run_contract<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = TenancyStores>,
{
    an_org_is_created_with_its_owner_and_a_taken_slug_is_a_conflict(make().await).await;
    memberships_page_by_key_and_the_last_owner_is_kept(make().await).await;
    a_users_orgs_page_by_org_id(make().await).await;
    invitations_are_single_use_and_bound_to_their_inviters_role(make().await).await;
    pending_invitations_page_newest_first(make().await).await;
    an_invitation_past_the_seat_limit_is_refused_and_a_reinvite_is_not(make().await).await;
    accepting_needs_a_free_seat(make().await).await;
    concurrent_invitations_take_exactly_the_seats_left(make().await).await;
    custom_roles_page_by_name_and_a_held_role_cannot_go(make().await).await;
    teams_page_by_name_and_names_are_unique(make().await).await;
    api_keys_page_newest_first_and_revoked_keys_leave_the_list(make().await).await;
    every_change_appends_one_entry_to_one_chain(make().await).await;
}

fn now() -> DateTime<Utc> {
    // Whole microseconds: what every backend stores.
    let at = Utc::now();
    at - chrono::Duration::nanoseconds(i64::from(at.timestamp_subsec_nanos() % 1000))
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::now_v7().simple().to_string()[18..])
}

fn event(org: OrgId, action: &str) -> AuditEvent {
    AuditEvent::new(
        Uuid::now_v7(),
        org,
        action,
        (ActorKind::User, Uuid::now_v7()),
        ("test", None),
        Origin::default(),
        now(),
        &serde_json::json!({}),
    )
}

async fn user(stores: &TenancyStores) -> UserId {
    let id = UserId::from_uuid(Uuid::now_v7());
    let new = NewUser {
        id,
        email: Email::parse(&format!("{}@example.com", unique("member"))).expect("a valid address"),
        display_name: None,
        password_hash: unique("hash"),
        is_admin: false,
        email_verified_at: None,
        created_at: now(),
    };
    stores.users.create(&new).await.expect("create user");
    id
}

async fn org_owned_by(stores: &TenancyStores, owner: UserId) -> Org {
    let at = now();
    let org = Org {
        id: OrgId::from_uuid(Uuid::now_v7()),
        name: "Contract".to_owned(),
        slug: Slug::parse(&unique("org")).expect("a valid slug"),
        plan: "free".to_owned(),
        created_at: at,
        updated_at: at,
    };
    stores.orgs.create_with_owner(&org, owner, &event(org.id, "org.created")).await.expect("create org");
    org
}

async fn an_org_is_created_with_its_owner_and_a_taken_slug_is_a_conflict(stores: TenancyStores) {
    let owner = user(&stores).await;
    let org = org_owned_by(&stores, owner).await;
    assert_eq!(stores.orgs.get(org.id).await.expect("get"), Some(org.clone()), "read back as written");
    assert_eq!(stores.orgs.role_of(org.id, owner).await.expect("role"), Some("owner".to_owned()));
    let twin = Org { id: OrgId::from_uuid(Uuid::now_v7()), ..org.clone() };
    let taken = stores.orgs.create_with_owner(&twin, owner, &event(twin.id, "org.created")).await;
    assert!(matches!(taken, Err(StoreError::Conflict(Conflict::SlugTaken))), "a taken slug: {taken:?}");
    assert_eq!(stores.orgs.get(twin.id).await.expect("get"), None, "nothing partial is kept");
    stores.orgs.delete(org.id, &event(org.id, "org.deleted")).await.expect("delete");
    assert_eq!(stores.orgs.get(org.id).await.expect("get"), None);
    assert_eq!(stores.orgs.role_of(org.id, owner).await.expect("role"), None, "memberships go with it");
}

async fn memberships_page_by_key_and_the_last_owner_is_kept(stores: TenancyStores) {
    let owner = user(&stores).await;
    let org = org_owned_by(&stores, owner).await;
    let mut members = vec![owner];
    for _ in 0..6 {
        let member = user(&stores).await;
        stores.orgs.add_member(org.id, member, "viewer", now(), &event(org.id, "member.added")).await.expect("add");
        members.push(member);
    }
    let duplicate = stores.orgs.add_member(org.id, members[1], "viewer", now(), &event(org.id, "member.added")).await;
    assert!(matches!(duplicate, Err(StoreError::Conflict(Conflict::AlreadyMember))), "already a member: {duplicate:?}");
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = stores.orgs.list_members(org.id, after, 3).await.expect("page");
        assert!(page.len() <= 3);
        if page.is_empty() {
            break;
        }
        after = page.last().map(|m| m.user_id);
        seen.extend(page.into_iter().map(|m| m.user_id));
    }
    let mut expected = members.clone();
    expected.sort();
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, expected, "every member once, none twice");
    assert_eq!(stores.orgs.count_owners(org.id).await.expect("count"), 1);
    let demote = stores.orgs.set_role(org.id, owner, "admin", now(), &event(org.id, "member.role_changed")).await;
    assert!(matches!(demote, Err(StoreError::Conflict(Conflict::LastOwner))), "the last owner stays: {demote:?}");
    let remove = stores.orgs.remove_member(org.id, owner, &event(org.id, "member.removed")).await;
    assert!(matches!(remove, Err(StoreError::Conflict(Conflict::LastOwner))), "the last owner stays: {remove:?}");
    stores
        .orgs
        .set_role(org.id, members[1], "owner", now(), &event(org.id, "member.role_changed"))
        .await
        .expect("promote");
    stores
        .orgs
        .remove_member(org.id, owner, &event(org.id, "member.removed"))
        .await
        .expect("a second owner lets one go");
    assert_eq!(stores.orgs.role_of(org.id, owner).await.expect("role"), None);
    let gone = stores.orgs.remove_member(org.id, owner, &event(org.id, "member.removed")).await;
    assert!(matches!(gone, Err(StoreError::NotFound)), "{gone:?}");
}

async fn a_users_orgs_page_by_org_id(stores: TenancyStores) {
    let owner = user(&stores).await;
    let mut created = Vec::new();
    for _ in 0..5 {
        created.push(org_owned_by(&stores, owner).await.id);
    }
    let first = stores.orgs.list_for_user(owner, None, 2).await.expect("page");
    let rest = stores.orgs.list_for_user(owner, first.last().map(|(org, _)| org.id), 10).await.expect("page");
    let ids: Vec<OrgId> = first.iter().chain(rest.iter()).map(|(org, _)| org.id).collect();
    created.sort();
    assert_eq!(ids, created, "by id, without gap or repeat");
    assert!(first.iter().chain(rest.iter()).all(|(_, role)| role == "owner"));
}

fn invitation(org: OrgId, inviter: UserId, role: &str) -> Invitation {
    let at = now();
    Invitation {
        id: InvitationId::from_uuid(Uuid::now_v7()),
        org_id: org,
        email: Email::parse(&format!("{}@example.com", unique("invitee"))).expect("valid"),
        role: role.to_owned(),
        invited_by: inviter,
        created_at: at,
        expires_at: at + chrono::Duration::days(7),
        accepted_at: None,
        revoked_at: None,
    }
}

async fn invitations_are_single_use_and_bound_to_their_inviters_role(stores: TenancyStores) {
    let owner = user(&stores).await;
    let org = org_owned_by(&stores, owner).await;
    let sent = invitation(org.id, owner, "viewer");
    let digest = unique("digest");
    stores.invitations.create(&sent, &digest, None, &event(org.id, "invitation.created"), &[]).await.expect("create");
    assert_eq!(stores.invitations.by_token(&digest).await.expect("by token"), Some(sent.clone()));
    assert_eq!(stores.invitations.pending_from(org.id, owner, now()).await.expect("pending").len(), 1);
    let accepted = [event(org.id, "invitation.accepted"), event(org.id, "member.added")];
    let vanished = UserId::from_uuid(Uuid::now_v7());
    let gone = stores.invitations.accept(org.id, sent.id, "viewer", vanished, "owner", None, now(), &accepted).await;
    assert!(
        matches!(gone, Err(StoreError::Conflict(Conflict::AccountGone))),
        "an account deleted meanwhile is told apart from a broken store: {gone:?}"
    );
    let joiner = user(&stores).await;
    let wrong_inviter_role =
        stores.invitations.accept(org.id, sent.id, "viewer", joiner, "admin", None, now(), &accepted).await;
    assert!(matches!(wrong_inviter_role, Err(StoreError::NotFound)), "{wrong_inviter_role:?}");
    assert_eq!(stores.orgs.role_of(org.id, joiner).await.expect("role"), None, "nothing partial is kept");
    stores
        .invitations
        .accept(org.id, sent.id, "viewer", joiner, "owner", None, now(), &accepted)
        .await
        .expect("accept");
    assert_eq!(stores.orgs.role_of(org.id, joiner).await.expect("role"), Some("viewer".to_owned()));
    let retry = [event(org.id, "invitation.accepted"), event(org.id, "member.added")];
    let again = stores.invitations.accept(org.id, sent.id, "viewer", joiner, "owner", None, now(), &retry).await;
    assert!(matches!(again, Err(StoreError::NotFound)), "single use: {again:?}");
    let entries = stores.audit.chain(org.id, 0, 100).await.expect("chain");
    let actions: Vec<&str> = entries.iter().map(|e| e.event.action.as_str()).collect();
    assert_eq!(actions, ["org.created", "invitation.created", "invitation.accepted", "member.added"]);
}

async fn pending_invitations_page_newest_first(stores: TenancyStores) {
    let owner = user(&stores).await;
    let org = org_owned_by(&stores, owner).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let sent = invitation(org.id, owner, "viewer");
        stores
            .invitations
            .create(&sent, &unique("digest"), None, &event(org.id, "invitation.created"), &[])
            .await
            .expect("create");
        ids.push(sent.id);
    }
    let revoked = ids[2];
    assert!(
        stores.invitations.revoke(org.id, revoked, now(), &event(org.id, "invitation.revoked")).await.expect("revoke")
    );
    let first = stores.invitations.list_pending(org.id, now(), None, 2).await.expect("page");
    let rest = stores.invitations.list_pending(org.id, now(), first.last().map(|i| i.id), 10).await.expect("page");
    let listed: Vec<InvitationId> = first.iter().chain(rest.iter()).map(|i| i.id).collect();
    let expected: Vec<InvitationId> = ids.iter().rev().copied().filter(|id| *id != revoked).collect();
    assert_eq!(listed, expected, "newest first, the revoked one left out, no gap or repeat");
}

async fn an_invitation_past_the_seat_limit_is_refused_and_a_reinvite_is_not(stores: TenancyStores) {
    let owner = user(&stores).await;
    let org = org_owned_by(&stores, owner).await;
    let limit = Some(3);
    let first = invitation(org.id, owner, "viewer");
    let second = invitation(org.id, owner, "viewer");
    for sent in [&first, &second] {
        stores
            .invitations
            .create(sent, &unique("digest"), limit, &event(org.id, "invitation.created"), &[])
            .await
            .expect("the owner and two invitations fit three seats");
    }
    let third = invitation(org.id, owner, "viewer");
    let third_digest = unique("digest");
    let refused =
        stores.invitations.create(&third, &third_digest, limit, &event(org.id, "invitation.refused"), &[]).await;
    assert!(matches!(refused, Err(StoreError::LimitReached { used: 3 })), "one member and two pending: {refused:?}");
    assert_eq!(stores.invitations.by_token(&third_digest).await.expect("by token"), None, "nothing is kept");
    let actions: Vec<String> =
        stores.audit.chain(org.id, 0, 100).await.expect("chain").into_iter().map(|e| e.event.action).collect();
    assert_eq!(actions, ["org.created", "invitation.created", "invitation.created"], "no entry for the refusal");
    let again = Invitation { id: InvitationId::from_uuid(Uuid::now_v7()), ..first.clone() };
    let again_digest = unique("digest");
    stores
        .invitations
        .create(&again, &again_digest, limit, &event(org.id, "invitation.created"), &[])
        .await
        .expect("a re-invite replaces the old invitation, so it takes no new seat");
    let pending: Vec<InvitationId> =
        stores.invitations.list_pending(org.id, now(), None, 10).await.expect("pending").iter().map(|i| i.id).collect();
    assert_eq!(pending, vec![again.id, second.id], "the re-invite replaced the first one");
    stores
        .invitations
        .create(&third, &third_digest, Some(4), &event(org.id, "invitation.created"), &[])
        .await
        .expect("a raised limit lets it in");
}

async fn accepting_needs_a_free_seat(stores: TenancyStores) {
    let owner = user(&stores).await;
    let org = org_owned_by(&stores, owner).await;
    let sent = invitation(org.id, owner, "viewer");
    stores
        .invitations
        .create(&sent, &unique("digest"), None, &event(org.id, "invitation.created"), &[])
        .await
        .expect("create");
    let joiner = user(&stores).await;
    let accepted = [event(org.id, "invitation.accepted"), event(org.id, "member.added")];
    let full = stores.invitations.accept(org.id, sent.id, "viewer", joiner, "owner", Some(1), now(), &accepted).await;
    assert!(matches!(full, Err(StoreError::LimitReached { used: 1 })), "the owner takes the only seat: {full:?}");
    assert_eq!(stores.orgs.role_of(org.id, joiner).await.expect("role"), None, "nothing partial is kept");
    assert_eq!(
        stores.invitations.list_pending(org.id, now(), None, 10).await.expect("pending").len(),
        1,
        "still pending"
    );
    let retry = [event(org.id, "invitation.accepted"), event(org.id, "member.added")];
    stores
        .invitations
        .accept(org.id, sent.id, "viewer", joiner, "owner", Some(2), now(), &retry)
        .await
        .expect("the invitation's own seat is free");
    assert_eq!(stores.orgs.role_of(org.id, joiner).await.expect("role"), Some("viewer".to_owned()));
    let actions: Vec<String> =
        stores.audit.chain(org.id, 0, 100).await.expect("chain").into_iter().map(|e| e.event.action).collect();
    assert_eq!(actions, ["org.created", "invitation.created", "invitation.accepted", "member.added"]);
}

async fn concurrent_invitations_take_exactly_the_seats_left(stores: TenancyStores) {
    let owner = user(&stores).await;
    let org = org_owned_by(&stores, owner).await;
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let invitations = stores.invitations.clone();
            let sent = invitation(org.id, owner, "viewer");
            async move {
                invitations.create(&sent, &unique("digest"), Some(4), &event(org.id, "invitation.created"), &[]).await
            }
        })
        .collect();
    let results = join_all(calls).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 3, "the owner plus three invitations fill four seats: {results:?}");
    assert!(
        results.iter().filter(|r| r.is_err()).all(|r| matches!(r, Err(StoreError::LimitReached { used: 4 }))),
        "every other one is refused at the limit: {results:?}"
    );
    assert_eq!(stores.invitations.list_pending(org.id, now(), None, 100).await.expect("pending").len(), 3);
    let entries = stores.audit.chain(org.id, 0, 100).await.expect("chain");
    assert_eq!(entries.len(), 4, "one entry per invitation kept, none for the refusals");
}

async fn custom_roles_page_by_name_and_a_held_role_cannot_go(stores: TenancyStores) {
    let owner = user(&stores).await;
    let org = org_owned_by(&stores, owner).await;
    let at = now();
    let mut names = Vec::new();
    for n in [3, 1, 4, 2] {
        let role = CustomRole {
            id: RoleId::from_uuid(Uuid::now_v7()),
            org_id: org.id,
            name: RoleName::parse(&format!("role-{n}")).expect("valid"),
            permissions: PermissionSet::parse(&["org:read"]).expect("valid"),
            created_at: at,
            updated_at: at,
        };
        stores.roles.create(&role, &event(org.id, "role.created")).await.expect("create");
        names.push(role);
    }
    let taken = CustomRole { id: RoleId::from_uuid(Uuid::now_v7()), ..names[0].clone() };
    assert!(matches!(
        stores.roles.create(&taken, &event(org.id, "role.created")).await,
        Err(StoreError::Conflict(Conflict::RoleNameTaken))
    ));
    let first = stores.roles.list(org.id, None, 2).await.expect("page");
    let rest = stores.roles.list(org.id, first.last().map(|r| r.name.as_str().to_owned()), 10).await.expect("page");
    let listed: Vec<String> = first.iter().chain(rest.iter()).map(|r| r.name.as_str().to_owned()).collect();
    assert_eq!(listed, ["role-1", "role-2", "role-3", "role-4"], "by name, no gap or repeat");
    let holder = user(&stores).await;
    stores.orgs.add_member(org.id, holder, "role-1", now(), &event(org.id, "member.added")).await.expect("add");
    let held = listed_role(&first, "role-1");
    let refused = stores.roles.delete(org.id, held, &event(org.id, "role.deleted")).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(Conflict::RoleInUse))),
        "a role members hold stays: {refused:?}"
    );
    let free = listed_role(&first, "role-2");
    stores.roles.delete(org.id, free, &event(org.id, "role.deleted")).await.expect("an unheld role goes");
    assert_eq!(stores.roles.get(org.id, free).await.expect("get"), None);
}

fn listed_role(roles: &[CustomRole], name: &str) -> RoleId {
    roles.iter().find(|r| r.name.as_str() == name).map(|r| r.id).expect("listed")
}

async fn teams_page_by_name_and_names_are_unique(stores: TenancyStores) {
    let owner = user(&stores).await;
    let org = org_owned_by(&stores, owner).await;
    let at = now();
    for name in ["beta", "alpha", "gamma"] {
        let team = Team {
            id: TeamId::from_uuid(Uuid::now_v7()),
            org_id: org.id,
            name: name.to_owned(),
            description: None,
            members: Vec::new(),
            created_at: at,
            updated_at: at,
        };
        stores.teams.create(&team, &event(org.id, "team.created")).await.expect("create");
    }
    let twin = Team {
        id: TeamId::from_uuid(Uuid::now_v7()),
        org_id: org.id,
        name: "alpha".to_owned(),
        description: None,
        members: Vec::new(),
        created_at: at,
        updated_at: at,
    };
    assert!(matches!(
        stores.teams.create(&twin, &event(org.id, "team.created")).await,
        Err(StoreError::Conflict(Conflict::TeamNameTaken))
    ));
    let first = stores.teams.list(org.id, None, 2).await.expect("page");
    let rest = stores.teams.list(org.id, first.last().map(|t| t.name.clone()), 10).await.expect("page");
    let names: Vec<&str> = first.iter().chain(rest.iter()).map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
}

async fn api_keys_page_newest_first_and_revoked_keys_leave_the_list(stores: TenancyStores) {
    let owner = user(&stores).await;
    let org = org_owned_by(&stores, owner).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        let key = ApiKey {
            id: ApiKeyId::from_uuid(Uuid::now_v7()),
            org_id: org.id,
            name: format!("key {n}"),
            public_id: unique("pub"),
            permissions: PermissionSet::parse(&["org:read"]).expect("valid"),
            created_by: owner,
            created_at: now(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        };
        stores.api_keys.create(&key, &unique("hash"), &event(org.id, "api_key.created")).await.expect("create");
        let (found, _) = stores.api_keys.by_public_id(&key.public_id).await.expect("by public id").expect("found");
        assert_eq!(found.id, key.id);
        let (within, _) =
            stores.api_keys.by_public_id_in(org.id, &key.public_id).await.expect("in org").expect("found in its org");
        assert_eq!(within.id, key.id);
        let elsewhere = OrgId::from_uuid(Uuid::now_v7());
        assert!(
            stores.api_keys.by_public_id_in(elsewhere, &key.public_id).await.expect("in another org").is_none(),
            "a key is found only in its own organization"
        );
        ids.push(key.id);
    }
    assert!(stores.api_keys.revoke(org.id, ids[1], now(), &event(org.id, "api_key.revoked")).await.expect("revoke"));
    assert!(
        !stores.api_keys.revoke(org.id, ids[1], now(), &event(org.id, "api_key.revoked")).await.expect("again"),
        "revoking twice is a no-op"
    );
    let first = stores.api_keys.list(org.id, None, 2).await.expect("page");
    let rest = stores.api_keys.list(org.id, first.last().map(|k| k.id), 10).await.expect("page");
    let listed: Vec<ApiKeyId> = first.iter().chain(rest.iter()).map(|k| k.id).collect();
    assert_eq!(listed, vec![ids[3], ids[2], ids[0]], "newest first, the revoked one left out");
}

async fn every_change_appends_one_entry_to_one_chain(stores: TenancyStores) {
    let owner = user(&stores).await;
    let org = org_owned_by(&stores, owner).await;
    let member = user(&stores).await;
    stores.orgs.add_member(org.id, member, "viewer", now(), &event(org.id, "member.added")).await.expect("add");
    stores.orgs.set_role(org.id, member, "admin", now(), &event(org.id, "member.role_changed")).await.expect("set");
    stores.orgs.remove_member(org.id, member, &event(org.id, "member.removed")).await.expect("remove");
    let entries = stores.audit.chain(org.id, 0, 100).await.expect("chain");
    let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4], "one entry per change, in order");
    for pair in entries.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash, "each entry links to the one before");
    }
    assert!(entries.iter().all(|e| e.hash == e.computed_hash()), "every hash is the content's");
    let head = stores.audit.head(org.id).await.expect("head").expect("a head");
    assert_eq!(head.seq, 4);
}
