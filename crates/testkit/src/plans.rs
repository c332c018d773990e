//! The [`PlanRepository`] contract: which plan an organization is on (and since when), its
//! seats, and threshold marks that are written once per period with exactly one audit entry.
//! SQLite and PostgreSQL run it.

use std::future::Future;
use std::sync::Arc;

use futures_util::future::join_all;
use tenantry_domain::quota::{Limits, PlanAssignment, Quota};
use tenantry_domain::{Email, InvitationId, OrgId};
use tenantry_ports::{
    AuditLog, Invitation, InvitationRepository, OrgRepository, PlanRepository, StoreError, UserRepository,
};
use uuid::Uuid;

use crate::support::{event, now, stored_org, stored_user, unique};

/// The stores under test, all over one database.
#[derive(Clone)]
pub struct PlanStores {
    /// Plans, seats and marks.
    pub plans: Arc<dyn PlanRepository>,
    /// Accounts (owners and members must exist).
    pub users: Arc<dyn UserRepository>,
    /// Organizations and memberships.
    pub orgs: Arc<dyn OrgRepository>,
    /// Invitations (pending ones take seats).
    pub invitations: Arc<dyn InvitationRepository>,
    /// The audit log, to see what was written with each change.
    pub audit: Arc<dyn AuditLog>,
}

/// Runs every case against stores built by `make`. Each case makes its own organizations and
/// users, so cases may share one database.
pub async fn run_contract<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = PlanStores>,
{
    an_org_never_assigned_is_on_its_creation_plan_since_its_creation(make().await).await;
    an_assignment_reads_back_as_written_with_its_audit_entry(make().await).await;
    an_unknown_org_has_no_assignment_and_cannot_be_assigned(make().await).await;
    seats_count_members_and_pending_invitations(make().await).await;
    a_mark_is_written_once_with_one_audit_entry(make().await).await;
    concurrent_marks_let_exactly_one_win(make().await).await;
}

async fn actions(stores: &PlanStores, org: OrgId) -> Vec<String> {
    stores.audit.chain(org, 0, 1000).await.expect("chain").into_iter().map(|e| e.event.action).collect()
}

async fn an_org_never_assigned_is_on_its_creation_plan_since_its_creation(stores: PlanStores) {
    let created_at = now() - chrono::Duration::days(45);
    let (org, _) = stored_org(stores.users.as_ref(), stores.orgs.as_ref(), created_at).await;
    let expected = PlanAssignment { plan: org.plan.clone(), overrides: Limits::default(), started_at: created_at };
    assert_eq!(
        stores.plans.assignment(org.id).await.expect("assignment"),
        Some(expected),
        "an org never assigned is on the plan it was created with, since its creation"
    );
}

async fn an_assignment_reads_back_as_written_with_its_audit_entry(stores: PlanStores) {
    let (org, _) = stored_org(stores.users.as_ref(), stores.orgs.as_ref(), now()).await;
    let mut overrides = Limits::default();
    overrides.set(Quota::Members, Some(3));
    overrides.set(Quota::StorageBytes, Some(5 * (1 << 40)));
    overrides.set(Quota::ApiCalls, Some(0));
    let pro = PlanAssignment { plan: "pro".to_owned(), overrides, started_at: now() - chrono::Duration::days(3) };
    stores.plans.assign(org.id, &pro, &event(org.id, "plan.assigned")).await.expect("assign");
    assert_eq!(stores.plans.assignment(org.id).await.expect("assignment"), Some(pro), "read back as written");
    let plain = PlanAssignment { plan: "enterprise".to_owned(), overrides: Limits::default(), started_at: now() };
    stores.plans.assign(org.id, &plain, &event(org.id, "plan.assigned")).await.expect("assign");
    assert_eq!(
        stores.plans.assignment(org.id).await.expect("assignment"),
        Some(plain),
        "a new assignment replaces the plan, the overrides and the start"
    );
    assert_eq!(actions(&stores, org.id).await, ["org.created", "plan.assigned", "plan.assigned"]);
}

async fn an_unknown_org_has_no_assignment_and_cannot_be_assigned(stores: PlanStores) {
    let unknown = OrgId::from_uuid(Uuid::now_v7());
    assert_eq!(stores.plans.assignment(unknown).await.expect("assignment"), None);
    let assignment = PlanAssignment { plan: "pro".to_owned(), overrides: Limits::default(), started_at: now() };
    let refused = stores.plans.assign(unknown, &assignment, &event(unknown, "plan.assigned")).await;
    assert!(matches!(refused, Err(StoreError::NotFound)), "{refused:?}");
    assert!(actions(&stores, unknown).await.is_empty(), "nothing is kept, not even the audit entry");
    assert_eq!(stores.plans.assignment(unknown).await.expect("assignment"), None);
}

fn invitation(org: OrgId, inviter: tenantry_domain::UserId, created_at: chrono::DateTime<chrono::Utc>) -> Invitation {
    Invitation {
        id: InvitationId::from_uuid(Uuid::now_v7()),
        org_id: org,
        email: Email::parse(&format!("{}@example.com", unique("invitee"))).expect("valid"),
        role: "viewer".to_owned(),
        invited_by: inviter,
        created_at,
        expires_at: created_at + chrono::Duration::days(7),
        accepted_at: None,
        revoked_at: None,
    }
}

async fn seats_count_members_and_pending_invitations(stores: PlanStores) {
    let (org, owner) = stored_org(stores.users.as_ref(), stores.orgs.as_ref(), now()).await;
    assert_eq!(stores.plans.seats(org.id, now()).await.expect("seats"), (1, 0), "the owner");
    for _ in 0..2 {
        let member = stored_user(stores.users.as_ref()).await;
        stores.orgs.add_member(org.id, member, "viewer", now(), &event(org.id, "member.added")).await.expect("add");
    }
    let mut sent = Vec::new();
    for _ in 0..4 {
        let pending = invitation(org.id, owner, now());
        stores
            .invitations
            .create(&pending, &unique("digest"), None, &event(org.id, "invitation.created"), &[])
            .await
            .expect("invite");
        sent.push(pending);
    }
    let expired = invitation(org.id, owner, now() - chrono::Duration::days(8));
    stores
        .invitations
        .create(&expired, &unique("digest"), None, &event(org.id, "invitation.created"), &[])
        .await
        .expect("invite");
    assert!(
        stores
            .invitations
            .revoke(org.id, sent[0].id, now(), &event(org.id, "invitation.revoked"))
            .await
            .expect("revoke")
    );
    let joiner = stored_user(stores.users.as_ref()).await;
    let accepted = [event(org.id, "invitation.accepted"), event(org.id, "member.added")];
    stores
        .invitations
        .accept(org.id, sent[1].id, "viewer", joiner, "owner", None, now(), &accepted)
        .await
        .expect("accept");
    assert_eq!(
        stores.plans.seats(org.id, now()).await.expect("seats"),
        (4, 2),
        "owner, two added, one joined; the revoked, expired and accepted invitations take no seat"
    );
    assert_eq!(
        stores.plans.seats(org.id, now() + chrono::Duration::days(8)).await.expect("seats"),
        (4, 0),
        "invitations stop taking seats when they expire"
    );
    let other = OrgId::from_uuid(Uuid::now_v7());
    assert_eq!(stores.plans.seats(other, now()).await.expect("seats"), (0, 0), "an unknown org has none");
}

async fn a_mark_is_written_once_with_one_audit_entry(stores: PlanStores) {
    let (org, _) = stored_org(stores.users.as_ref(), stores.orgs.as_ref(), now()).await;
    let period = "1767225600";
    let mark = |quota, period, mark| {
        let stores = stores.clone();
        async move { stores.plans.mark_once(org.id, quota, period, mark, &event(org.id, "quota.threshold"), &[]).await }
    };
    assert!(mark(Quota::ApiCalls, period, "80").await.expect("mark"), "the first time");
    assert!(!mark(Quota::ApiCalls, period, "80").await.expect("mark"), "not again in the period");
    assert_eq!(actions(&stores, org.id).await, ["org.created", "quota.threshold"], "one entry, none for the repeat");
    assert!(mark(Quota::ApiCalls, period, "100").await.expect("mark"), "another mark");
    assert!(mark(Quota::ApiCalls, "1769904000", "80").await.expect("mark"), "another period");
    assert!(mark(Quota::FileUploads, period, "80").await.expect("mark"), "another quota");
    let entries = stores.audit.chain(org.id, 0, 100).await.expect("chain");
    assert_eq!(entries.len(), 5, "one entry per first mark");
    for pair in entries.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash, "a refused mark leaves no gap in the chain");
    }
}

async fn concurrent_marks_let_exactly_one_win(stores: PlanStores) {
    let (org, _) = stored_org(stores.users.as_ref(), stores.orgs.as_ref(), now()).await;
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let plans = stores.plans.clone();
            async move {
                plans
                    .mark_once(org.id, Quota::Members, "0", "100", &event(org.id, "quota.threshold"), &[])
                    .await
                    .expect("mark")
            }
        })
        .collect();
    let firsts = join_all(calls).await.into_iter().filter(|first| *first).count();
    assert_eq!(firsts, 1, "exactly one caller announces the threshold");
    assert_eq!(actions(&stores, org.id).await, ["org.created", "quota.threshold"]);
}
