//! The contract of the webhook ports: endpoints with their filters and rotating secrets, and
//! the delivery queue fed by the transactional outbox. SQLite and PostgreSQL run it: an event
//! exists exactly when the change that causes it committed, fan-out honours each endpoint's
//! switch and filter and handles every event once, claims are fair and exclusive (even between
//! concurrent claimers) and run out, and attempts, retries, a `410 Gone`, tests, retention and
//! the queue depth behave as the ports document.
//!
//! Fan-out, claims, purge and depth are cross-tenant, so every case deletes its organizations
//! when it ends: the next one starts from an empty queue.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tenantry_domain::audit::{ActorKind, AuditEvent, Origin};
use tenantry_domain::webhooks::DeliveryStatus;
use tenantry_domain::{DeliveryId, Email, InvitationId, OrgId, Slug, UserId, WebhookId};
use tenantry_ports::{
    Attempt, AttemptOutcome, AuditLog, ClaimedDelivery, Delivery, DeliveryQueue, Disabling, Invitation,
    InvitationRepository, OrgRepository, StoreError, UserRepository, WebhookEndpoint, WebhookRepository,
};
use uuid::Uuid;

use crate::support::{event, now, stored_org, stored_user, unique};

/// The stores under test, all over one database.
#[derive(Clone)]
pub struct WebhookStores {
    /// Endpoints.
    pub webhooks: Arc<dyn WebhookRepository>,
    /// The delivery queue.
    pub deliveries: Arc<dyn DeliveryQueue>,
    /// Accounts (owners and members must exist).
    pub users: Arc<dyn UserRepository>,
    /// Organizations and memberships: their audited changes are events.
    pub orgs: Arc<dyn OrgRepository>,
    /// Invitations: their creation is an event, and a seat limit refuses some.
    pub invitations: Arc<dyn InvitationRepository>,
    /// The audit log, to see what was written with each change.
    pub audit: Arc<dyn AuditLog>,
}

/// Runs every case against stores built by `make`. Each case makes its own organizations and
/// deletes them at its end, so cases may share one database (but not run at once: the queue is
/// shared by every organization).
pub async fn run_contract<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = WebhookStores>,
{
    endpoints_round_trip_with_their_filter_and_audit_entries(make().await).await;
    a_rotated_secret_signs_beside_the_new_one_until_its_grace_ends(make().await).await;
    a_committed_change_queues_one_event_and_a_rolled_back_one_none(make().await).await;
    fan_out_follows_enabled_endpoints_and_their_filters_once(make().await).await;
    claims_are_capped_per_endpoint_and_run_out(make().await).await;
    concurrent_claimers_never_share_a_delivery(make().await).await;
    attempts_are_recorded_and_deliveries_listed_and_retried(make().await).await;
    a_gone_endpoint_is_disabled_and_its_waiting_deliveries_end_dead(make().await).await;
    a_test_goes_to_its_endpoint_only(make().await).await;
    purge_erases_finished_payloads_and_bodies_only(make().await).await;
    fanned_out_events_are_pruned_and_waiting_ones_kept(make().await).await;
    the_endpoint_limit_is_counted_inside_the_creating_transaction(make().await).await;
    a_failing_endpoint_is_marked_disabled_once_and_recovers(make().await).await;
    depth_counts_waiting_deliveries_and_deletions_take_theirs(make().await).await;
}

/// An event of `action` in `org` carrying `data`.
fn event_with(org: OrgId, action: &str, data: &serde_json::Value) -> AuditEvent {
    AuditEvent::new(
        Uuid::now_v7(),
        org,
        action,
        (ActorKind::User, Uuid::now_v7()),
        ("webhook", None),
        Origin::default(),
        now(),
        data,
    )
}

async fn new_org(stores: &WebhookStores) -> (OrgId, UserId) {
    let (org, owner) = stored_org(stores.users.as_ref(), stores.orgs.as_ref(), now()).await;
    (org.id, owner)
}

/// Deletes the case's organizations: with them go their endpoints, events and deliveries.
async fn done(stores: &WebhookStores, orgs: &[OrgId]) {
    for org in orgs {
        stores.orgs.delete(*org, &event(*org, "org.deleted")).await.expect("delete org");
    }
}

fn endpoint(org: OrgId, events: &[&str]) -> WebhookEndpoint {
    let at = now();
    WebhookEndpoint {
        id: WebhookId::from_uuid(Uuid::now_v7()),
        org_id: org,
        url: format!("https://hooks.example.com/{}", unique("in")),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        description: None,
        enabled: true,
        disabled_reason: None,
        failing_since: None,
        created_at: at,
        updated_at: at,
    }
}

async fn stored_endpoint(stores: &WebhookStores, org: OrgId, events: &[&str]) -> WebhookEndpoint {
    let created = endpoint(org, events);
    stores
        .webhooks
        .create(&created, &unique("sealed"), None, &event(org, "webhook.created"))
        .await
        .expect("create endpoint");
    created
}

fn invitation(org: OrgId, inviter: UserId) -> Invitation {
    let at = now();
    Invitation {
        id: InvitationId::from_uuid(Uuid::now_v7()),
        org_id: org,
        email: Email::parse(&format!("{}@example.com", unique("invitee"))).expect("valid"),
        role: "viewer".to_owned(),
        invited_by: inviter,
        created_at: at,
        expires_at: at + Duration::days(7),
        accepted_at: None,
        revoked_at: None,
    }
}

/// Invites someone (an `invitation.created` event); returns the invitation and its entry.
async fn invite(stores: &WebhookStores, org: OrgId, owner: UserId) -> (Invitation, AuditEvent) {
    let sent = invitation(org, owner);
    let audit =
        event_with(org, "invitation.created", &serde_json::json!({"email": sent.email.as_str(), "role": "viewer"}));
    stores.invitations.create(&sent, &unique("digest"), None, &audit, &[]).await.expect("invite");
    (sent, audit)
}

/// Fans out everything waiting, as due at `at`; how many events that took.
async fn drain(stores: &WebhookStores, at: DateTime<Utc>) -> u32 {
    let mut handled = 0;
    loop {
        let batch = stores.deliveries.fan_out(at, 3).await.expect("fan out");
        assert!(batch <= 3, "at most the limit: {batch}");
        if batch == 0 {
            return handled;
        }
        handled += batch;
    }
}

/// Every delivery of an endpoint, newest first, page by page.
async fn deliveries_of(stores: &WebhookStores, endpoint: &WebhookEndpoint) -> Vec<Delivery> {
    let mut all: Vec<Delivery> = Vec::new();
    loop {
        let before = all.last().map(|d| d.id);
        let page = stores.deliveries.list(endpoint.org_id, endpoint.id, before, 2).await.expect("list deliveries");
        assert!(page.len() <= 2, "at most the limit");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// Claims at `at`, leased for a minute.
async fn claim(stores: &WebhookStores, at: DateTime<Utc>, per_endpoint: u32) -> Vec<ClaimedDelivery> {
    stores.deliveries.claim(at, 100, per_endpoint, at + Duration::seconds(60)).await.expect("claim")
}

/// Claimed delivery ids per endpoint.
fn by_endpoint(claimed: &[ClaimedDelivery]) -> BTreeMap<WebhookId, Vec<DeliveryId>> {
    let mut map: BTreeMap<WebhookId, Vec<DeliveryId>> = BTreeMap::new();
    for c in claimed {
        map.entry(c.delivery.endpoint_id).or_default().push(c.delivery.id);
    }
    map
}

fn attempt(number: u32, started_at: DateTime<Utc>, status: Option<u16>, body: Option<&str>) -> Attempt {
    Attempt {
        attempt: number,
        started_at,
        response_status: status,
        latency_ms: 40 + number,
        response_body: body.map(str::to_owned),
        error: status.is_none().then(|| "timed out".to_owned()),
    }
}

fn outcome(status: DeliveryStatus, next: Option<DateTime<Utc>>) -> AttemptOutcome {
    AttemptOutcome { status, next_attempt_at: next }
}

async fn one(stores: &WebhookStores, endpoint: &WebhookEndpoint, id: DeliveryId) -> (Delivery, Vec<Attempt>) {
    stores.deliveries.get(endpoint.org_id, endpoint.id, id).await.expect("get delivery").expect("the delivery exists")
}

async fn actions(stores: &WebhookStores, org: OrgId) -> Vec<String> {
    stores.audit.chain(org, 0, 1000).await.expect("chain").into_iter().map(|e| e.event.action).collect()
}

async fn endpoints_round_trip_with_their_filter_and_audit_entries(stores: WebhookStores) {
    let (org, _) = new_org(&stores).await;
    let (other, _) = new_org(&stores).await;
    let mut first = endpoint(org, &["member.added", "invitation.created"]);
    first.description = Some("CRM sync".to_owned());
    stores.webhooks.create(&first, "sealed-1", None, &event(org, "webhook.created")).await.expect("create");
    let mut ids = vec![first.id];
    for _ in 0..4 {
        ids.push(stored_endpoint(&stores, org, &[]).await.id);
    }
    assert_eq!(stores.webhooks.get(org, first.id).await.expect("get"), Some(first.clone()), "read back as written");
    assert_eq!(stores.webhooks.get(other, first.id).await.expect("get"), None, "another org sees nothing");
    let page = stores.webhooks.list(org, None, 2).await.expect("list");
    assert_eq!(page.len(), 2);
    let rest = stores.webhooks.list(org, page.last().map(|e| e.id), 10).await.expect("list");
    let listed: Vec<WebhookId> = page.iter().chain(rest.iter()).map(|e| e.id).collect();
    assert_eq!(listed, ids, "oldest first, without gap or repeat");
    assert_eq!(page[0], first, "listed as written, filter included");
    assert!(stores.webhooks.list(other, None, 10).await.expect("list").is_empty());
    assert_eq!(stores.webhooks.count(org).await.expect("count"), 5);
    assert_eq!(stores.webhooks.count(other).await.expect("count"), 0);

    let changed = WebhookEndpoint {
        url: "https://elsewhere.example.com/hook".to_owned(),
        events: Vec::new(),
        description: None,
        enabled: false,
        disabled_reason: Some("failing".to_owned()),
        updated_at: now() + Duration::seconds(1),
        ..first.clone()
    };
    assert!(stores.webhooks.update(&changed, &event(org, "webhook.updated")).await.expect("update"));
    assert_eq!(stores.webhooks.get(org, first.id).await.expect("get"), Some(changed.clone()), "every field written");
    let unknown = WebhookEndpoint { id: WebhookId::from_uuid(Uuid::now_v7()), ..changed.clone() };
    assert!(!stores.webhooks.update(&unknown, &event(org, "webhook.updated")).await.expect("update"));
    let foreign = WebhookEndpoint { org_id: other, ..changed.clone() };
    assert!(!stores.webhooks.update(&foreign, &event(other, "webhook.updated")).await.expect("update"));
    assert!(!stores.webhooks.delete(other, first.id, &event(other, "webhook.deleted")).await.expect("delete"));
    assert!(stores.webhooks.delete(org, first.id, &event(org, "webhook.deleted")).await.expect("delete"));
    assert!(!stores.webhooks.delete(org, first.id, &event(org, "webhook.deleted")).await.expect("delete"));
    assert_eq!(stores.webhooks.get(org, first.id).await.expect("get"), None);
    assert_eq!(stores.webhooks.count(org).await.expect("count"), 4);
    let mut expected = vec!["org.created"];
    expected.extend(["webhook.created"; 5]);
    expected.extend(["webhook.updated", "webhook.deleted"]);
    assert_eq!(actions(&stores, org).await, expected, "one entry per change, none for what changed nothing");
    assert_eq!(actions(&stores, other).await, ["org.created"]);
    done(&stores, &[org, other]).await;
}

async fn a_rotated_secret_signs_beside_the_new_one_until_its_grace_ends(stores: WebhookStores) {
    let (org, _) = new_org(&stores).await;
    let (other, _) = new_org(&stores).await;
    let hook = endpoint(org, &[]);
    stores.webhooks.create(&hook, "sealed-1", None, &event(org, "webhook.created")).await.expect("create");
    let at = now();
    let secrets = |at: DateTime<Utc>| {
        let stores = stores.clone();
        async move { stores.webhooks.secrets(org, hook.id, at).await.expect("secrets") }
    };
    assert_eq!(secrets(at).await, Some(vec!["sealed-1".to_owned()]));
    let until = at + Duration::hours(1);
    let rotation = event(org, "webhook.secret_rotated");
    assert!(stores.webhooks.rotate_secret(org, hook.id, "sealed-2", until, &rotation).await.expect("rotate"));
    assert_eq!(secrets(at).await, Some(vec!["sealed-2".to_owned(), "sealed-1".to_owned()]), "current first");
    assert_eq!(
        secrets(until - Duration::microseconds(1)).await,
        Some(vec!["sealed-2".to_owned(), "sealed-1".to_owned()]),
        "the previous one signs to the end of its grace period"
    );
    assert_eq!(secrets(until).await, Some(vec!["sealed-2".to_owned()]), "and not after");
    let later = at + Duration::hours(2);
    assert!(
        stores
            .webhooks
            .rotate_secret(org, hook.id, "sealed-3", later, &event(org, "webhook.secret_rotated"))
            .await
            .expect("rotate")
    );
    assert_eq!(
        secrets(at).await,
        Some(vec!["sealed-3".to_owned(), "sealed-2".to_owned()]),
        "a second rotation drops the oldest"
    );
    let stray = WebhookId::from_uuid(Uuid::now_v7());
    assert!(
        !stores
            .webhooks
            .rotate_secret(org, stray, "sealed-x", later, &event(org, "webhook.secret_rotated"))
            .await
            .expect("rotate")
    );
    assert!(
        !stores
            .webhooks
            .rotate_secret(other, hook.id, "sealed-x", later, &event(other, "webhook.secret_rotated"))
            .await
            .expect("rotate"),
        "not through another org"
    );
    assert_eq!(stores.webhooks.secrets(org, stray, at).await.expect("secrets"), None);
    assert_eq!(stores.webhooks.secrets(other, hook.id, at).await.expect("secrets"), None);
    assert_eq!(
        actions(&stores, org).await,
        ["org.created", "webhook.created", "webhook.secret_rotated", "webhook.secret_rotated"]
    );
    done(&stores, &[org, other]).await;
}

async fn a_committed_change_queues_one_event_and_a_rolled_back_one_none(stores: WebhookStores) {
    let (org, owner) = new_org(&stores).await;
    let hook = stored_endpoint(&stores, org, &[]).await;
    drain(&stores, now()).await;
    assert!(deliveries_of(&stores, &hook).await.is_empty(), "creating an org or an endpoint is no event");

    // Two seats: the owner and this invitation.
    let sent = invitation(org, owner);
    let created = event_with(org, "invitation.created", &serde_json::json!({"email": sent.email.as_str()}));
    stores.invitations.create(&sent, &unique("digest"), Some(2), &created, &[]).await.expect("invite");
    let refused = stores
        .invitations
        .create(&invitation(org, owner), &unique("digest"), Some(2), &event(org, "invitation.created"), &[])
        .await;
    assert!(matches!(refused, Err(StoreError::LimitReached { .. })), "{refused:?}");
    assert!(
        stores.invitations.revoke(org, sent.id, now(), &event(org, "invitation.revoked")).await.expect("revoke"),
        "a change whose action is not in the catalog"
    );
    let at = now();
    assert_eq!(drain(&stores, at).await, 1, "the committed event only");
    let queued = deliveries_of(&stores, &hook).await;
    assert_eq!(queued.len(), 1, "one event, one delivery: {queued:?}");
    let delivery = &queued[0];
    assert_eq!(delivery.org_id, org);
    assert_eq!(delivery.endpoint_id, hook.id);
    assert_eq!(delivery.event_id, created.id, "the event is the audit entry");
    assert_eq!(delivery.event_type, "invitation.created");
    assert_eq!(delivery.payload.as_deref(), Some(created.data.as_str()), "the entry's data, as stored");
    assert_eq!(delivery.status, DeliveryStatus::Pending);
    assert_eq!((delivery.attempts, delivery.last_response_status, delivery.last_latency_ms), (0, None, None));
    assert_eq!(delivery.next_attempt_at, Some(at), "due at fan-out");
    assert_eq!(delivery.created_at, at);
    assert_eq!(delivery.event_created_at, created.created_at, "the start of commit-to-delivery latency");

    // An audited change through another repository, committed: one more event.
    let slug = Slug::parse(&unique("renamed")).expect("a valid slug");
    let renamed = event_with(org, "org.updated", &serde_json::json!({"name": "Renamed", "slug": slug.as_str()}));
    stores.orgs.update(org, "Renamed", &slug, now(), &renamed).await.expect("rename");
    assert_eq!(drain(&stores, now()).await, 1);
    let queued = deliveries_of(&stores, &hook).await;
    assert_eq!(queued.len(), 2);
    assert_eq!((queued[0].event_id, queued[0].event_type.as_str()), (renamed.id, "org.updated"), "newest first");
    assert_eq!(drain(&stores, now()).await, 0, "nothing is fanned out twice");
    assert_eq!(deliveries_of(&stores, &hook).await.len(), 2);
    done(&stores, &[org]).await;
}

async fn fan_out_follows_enabled_endpoints_and_their_filters_once(stores: WebhookStores) {
    let (org, owner) = new_org(&stores).await;
    let (other, _) = new_org(&stores).await;
    let all = stored_endpoint(&stores, org, &[]).await;
    let members = stored_endpoint(&stores, org, &["member.added"]).await;
    let invites = stored_endpoint(&stores, org, &["invitation.created", "org.updated"]).await;
    let mut off = endpoint(org, &[]);
    off.enabled = false;
    stores.webhooks.create(&off, "sealed", None, &event(org, "webhook.created")).await.expect("create");
    let elsewhere = stored_endpoint(&stores, other, &[]).await;
    let mut invited = Vec::new();
    for _ in 0..3 {
        invited.push(invite(&stores, org, owner).await.1.id);
    }
    let member = stored_user(stores.users.as_ref()).await;
    let added = event_with(org, "member.added", &serde_json::json!({"role": "viewer"}));
    stores.orgs.add_member(org, member, "viewer", now(), &added).await.expect("add member");

    // Two workers at once, in small batches.
    let at = now();
    let mut handled = 0;
    loop {
        let (a, b) =
            futures_util::future::join(stores.deliveries.fan_out(at, 2), stores.deliveries.fan_out(at, 2)).await;
        let batch = a.expect("fan out") + b.expect("fan out");
        if batch == 0 {
            break;
        }
        handled += batch;
    }
    assert_eq!(handled, 4, "each event handled once, by one worker");
    let events = |deliveries: Vec<Delivery>| {
        let mut ids: Vec<Uuid> = deliveries.iter().map(|d| d.event_id).collect();
        ids.sort_unstable();
        ids
    };
    let mut every = invited.clone();
    every.push(added.id);
    every.sort_unstable();
    assert_eq!(events(deliveries_of(&stores, &all).await), every, "no filter: every event once");
    assert_eq!(events(deliveries_of(&stores, &members).await), [added.id], "its type only");
    let mut only_invites = invited.clone();
    only_invites.sort_unstable();
    assert_eq!(events(deliveries_of(&stores, &invites).await), only_invites, "its types only");
    assert!(deliveries_of(&stores, &off).await.is_empty(), "a disabled endpoint receives nothing");
    assert!(deliveries_of(&stores, &elsewhere).await.is_empty(), "another org's endpoint receives nothing");

    let on = WebhookEndpoint { enabled: true, ..off.clone() };
    assert!(stores.webhooks.update(&on, &event(org, "webhook.updated")).await.expect("enable"));
    assert_eq!(drain(&stores, now()).await, 0);
    assert!(deliveries_of(&stores, &off).await.is_empty(), "events fanned out while it was off stay missed");
    let (_, late) = invite(&stores, org, owner).await;
    drain(&stores, now()).await;
    assert_eq!(events(deliveries_of(&stores, &off).await), [late.id], "enabled again: new events reach it");
    assert_eq!(deliveries_of(&stores, &members).await.len(), 1, "still filtered");
    done(&stores, &[org, other]).await;
}

async fn claims_are_capped_per_endpoint_and_run_out(stores: WebhookStores) {
    let (org, owner) = new_org(&stores).await;
    let slow = stored_endpoint(&stores, org, &[]).await;
    let fast = stored_endpoint(&stores, org, &[]).await;
    let mut off = stored_endpoint(&stores, org, &[]).await;
    for _ in 0..5 {
        invite(&stores, org, owner).await;
    }
    let at = now();
    drain(&stores, at).await;
    off.enabled = false;
    assert!(stores.webhooks.update(&off, &event(org, "webhook.updated")).await.expect("disable"));
    let oldest = |endpoint: &WebhookEndpoint, n: usize| {
        let stores = stores.clone();
        let endpoint = endpoint.clone();
        async move {
            let mut ids: Vec<DeliveryId> = deliveries_of(&stores, &endpoint).await.iter().map(|d| d.id).collect();
            ids.sort_unstable();
            ids.truncate(n);
            ids
        }
    };
    assert!(stores.deliveries.claim(at - Duration::seconds(1), 100, 2, at).await.expect("claim").is_empty(), "not due");

    let first = claim(&stores, at, 2).await;
    let claimed = by_endpoint(&first);
    assert_eq!(claimed.len(), 2, "the disabled endpoint's deliveries are not claimed: {claimed:?}");
    assert_eq!(claimed[&slow.id], oldest(&slow, 2).await, "two per endpoint, oldest first");
    assert_eq!(claimed[&fast.id], oldest(&fast, 2).await);
    for c in &first {
        let url = if c.delivery.endpoint_id == slow.id { &slow.url } else { &fast.url };
        assert_eq!(&c.url, url, "with the endpoint's URL");
        assert_eq!(c.delivery.status, DeliveryStatus::Pending);
        assert!(c.delivery.payload.is_some());
    }
    assert!(claim(&stores, at, 2).await.is_empty(), "both endpoints have two in flight already");

    // One of fast's is recorded (failed, due later): fast has one slot again.
    let done_one = first.iter().find(|c| c.delivery.endpoint_id == fast.id).expect("a claim of fast");
    stores
        .deliveries
        .record(
            &done_one.delivery,
            &attempt(1, at, Some(500), Some("oops")),
            &outcome(DeliveryStatus::Failed, Some(at + Duration::hours(1))),
        )
        .await
        .expect("record");
    let second = claim(&stores, at, 2).await;
    assert_eq!(second.len(), 1, "one slot freed, for fast only: {second:?}");
    assert_eq!(second[0].delivery.endpoint_id, fast.id);
    assert_eq!(second[0].delivery.id, oldest(&fast, 3).await[2], "the next oldest");

    let limited = stores.deliveries.claim(at, 1, 5, at + Duration::seconds(60)).await.expect("claim");
    assert_eq!(limited.len(), 1, "at most the limit");

    // The lease runs out: claims never recorded are claimable again.
    let later = at + Duration::seconds(61);
    let third = by_endpoint(&claim(&stores, later, 2).await);
    assert_eq!(third[&slow.id], claimed[&slow.id], "a worker that died loses its claims to the next");
    assert_eq!(third[&fast.id].len(), 2);
    assert!(!third[&fast.id].contains(&done_one.delivery.id), "a recorded failure waits for its next attempt");
    done(&stores, &[org]).await;
}

async fn concurrent_claimers_never_share_a_delivery(stores: WebhookStores) {
    let (org, owner) = new_org(&stores).await;
    let hooks = [stored_endpoint(&stores, org, &[]).await, stored_endpoint(&stores, org, &[]).await];
    for _ in 0..8 {
        invite(&stores, org, owner).await;
    }
    let at = now();
    drain(&stores, at).await;
    let lease = at + Duration::seconds(60);
    let claimers: Vec<_> = (0..4)
        .map(|_| {
            let deliveries = stores.deliveries.clone();
            async move { deliveries.claim(at, 16, 100, lease).await.expect("claim") }
        })
        .collect();
    let results = futures_util::future::join_all(claimers).await;
    let mut seen = HashSet::new();
    for claimed in results.iter().flatten() {
        assert!(seen.insert(claimed.delivery.id), "{} was given to two claimers", claimed.delivery.id);
    }
    let mut all = HashSet::new();
    for hook in &hooks {
        all.extend(deliveries_of(&stores, hook).await.into_iter().map(|d| d.id));
    }
    assert_eq!(all.len(), 16);
    assert_eq!(seen, all, "every due delivery went to exactly one claimer");
    assert!(claim(&stores, at, 100).await.is_empty());
    done(&stores, &[org]).await;

    // The per-endpoint cap binds claimers together, not each alone: eight at once against a
    // cap of 3 hand out 3 of an endpoint's deliveries in all.
    let (org, owner) = new_org(&stores).await;
    let hooks = [stored_endpoint(&stores, org, &[]).await, stored_endpoint(&stores, org, &[]).await];
    for _ in 0..10 {
        invite(&stores, org, owner).await;
    }
    drain(&stores, at).await;
    for round in 0..3 {
        let claimers: Vec<_> = (0..8)
            .map(|_| {
                let deliveries = stores.deliveries.clone();
                async move { deliveries.claim(at, 16, 3, lease).await.expect("claim") }
            })
            .collect();
        let claimed: Vec<ClaimedDelivery> =
            futures_util::future::join_all(claimers).await.into_iter().flatten().collect();
        let per_endpoint = by_endpoint(&claimed);
        let expected = if round == 0 { 3 } else { 0 };
        for hook in &hooks {
            assert_eq!(
                per_endpoint.get(&hook.id).map_or(0, Vec::len),
                expected,
                "round {round}: the cap of 3 counts every claimer's claims in force"
            );
        }
    }
    done(&stores, &[org]).await;
}

async fn attempts_are_recorded_and_deliveries_listed_and_retried(stores: WebhookStores) {
    let (org, owner) = new_org(&stores).await;
    let (other, _) = new_org(&stores).await;
    let hook = stored_endpoint(&stores, org, &[]).await;
    let sibling = stored_endpoint(&stores, org, &["org.updated"]).await;
    for _ in 0..5 {
        invite(&stores, org, owner).await;
    }
    let at = now();
    drain(&stores, at).await;
    let listed = deliveries_of(&stores, &hook).await;
    assert_eq!(listed.len(), 5);
    assert!(listed.windows(2).all(|pair| pair[0].id > pair[1].id), "newest first, no gap or repeat");
    // Leased for a day: only what this case records or retries comes back before that.
    let claimed = stores.deliveries.claim(at, 100, 10, at + Duration::days(1)).await.expect("claim");
    assert_eq!(claimed.len(), 5);
    let d = claimed[0].delivery.clone();
    assert_eq!(d.id, listed[4].id, "the oldest is claimed first");

    let first = attempt(1, at, Some(500), Some("oops"));
    let retry_at = at + Duration::minutes(5);
    stores.deliveries.record(&d, &first, &outcome(DeliveryStatus::Failed, Some(retry_at))).await.expect("record");
    let (stored, attempts) = one(&stores, &hook, d.id).await;
    assert_eq!(stored.status, DeliveryStatus::Failed);
    assert_eq!(stored.attempts, 1);
    assert_eq!((stored.last_response_status, stored.last_latency_ms), (Some(500), Some(41)));
    assert_eq!(stored.next_attempt_at, Some(retry_at));
    assert_eq!(stored.payload, d.payload, "the payload stays for the next attempt");
    assert_eq!(attempts, std::slice::from_ref(&first));
    assert!(claim(&stores, at + Duration::minutes(1), 10).await.is_empty(), "not due yet");
    let again = claim(&stores, retry_at, 10).await;
    assert_eq!(again.len(), 1, "due again at its time (the others are still claimed)");
    assert_eq!(again[0].delivery.attempts, 1);

    let second = attempt(2, retry_at, None, None);
    let then = retry_at + Duration::minutes(30);
    stores
        .deliveries
        .record(&again[0].delivery, &second, &outcome(DeliveryStatus::Failed, Some(then)))
        .await
        .expect("record");
    let by_hand = retry_at + Duration::minutes(1);
    assert!(stores.deliveries.retry(org, hook.id, d.id, by_hand).await.expect("retry"), "a failed one");
    let (stored, attempts) = one(&stores, &hook, d.id).await;
    assert_eq!((stored.status, stored.next_attempt_at, stored.attempts), (DeliveryStatus::Pending, Some(by_hand), 2));
    assert_eq!(stored.last_response_status, None, "the last attempt had no answer");
    assert_eq!(attempts, [first.clone(), second.clone()], "oldest first");
    assert!(!stores.deliveries.retry(org, hook.id, d.id, by_hand).await.expect("retry"), "pending already");
    let third = claim(&stores, by_hand, 10).await;
    assert_eq!(third.len(), 1);
    let delivered = attempt(3, by_hand, Some(204), Some(""));
    stores
        .deliveries
        .record(&third[0].delivery, &delivered, &outcome(DeliveryStatus::Succeeded, None))
        .await
        .expect("record");
    let (stored, attempts) = one(&stores, &hook, d.id).await;
    assert_eq!((stored.status, stored.next_attempt_at, stored.attempts), (DeliveryStatus::Succeeded, None, 3));
    assert_eq!(stored.last_response_status, Some(204));
    assert_eq!(attempts.len(), 3);
    assert!(!stores.deliveries.retry(org, hook.id, d.id, by_hand).await.expect("retry"), "succeeded");

    let dead = claimed[1].delivery.clone();
    stores
        .deliveries
        .record(&dead, &attempt(1, at, Some(400), Some("bad")), &outcome(DeliveryStatus::Dead, None))
        .await
        .expect("record");
    assert_eq!(one(&stores, &hook, dead.id).await.0.status, DeliveryStatus::Dead);
    assert!(!stores.deliveries.retry(other, hook.id, dead.id, by_hand).await.expect("retry"), "not from another org");
    assert!(
        !stores.deliveries.retry(org, sibling.id, dead.id, by_hand).await.expect("retry"),
        "not via another endpoint"
    );
    assert!(
        !stores.deliveries.retry(org, hook.id, DeliveryId::from_uuid(Uuid::now_v7()), by_hand).await.expect("retry"),
        "unknown"
    );
    assert!(stores.deliveries.retry(org, hook.id, dead.id, by_hand).await.expect("retry"), "a dead one");
    let (stored, _) = one(&stores, &hook, dead.id).await;
    assert_eq!((stored.status, stored.next_attempt_at), (DeliveryStatus::Pending, Some(by_hand)));
    let revived = claim(&stores, by_hand, 10).await;
    assert_eq!(revived.iter().map(|c| c.delivery.id).collect::<Vec<_>>(), [dead.id], "claimable at once");

    assert_eq!(stores.deliveries.get(other, hook.id, d.id).await.expect("get"), None, "not from another org");
    assert_eq!(stores.deliveries.get(org, sibling.id, d.id).await.expect("get"), None, "not via another endpoint");
    assert!(stores.deliveries.list(other, hook.id, None, 10).await.expect("list").is_empty());
    let page = stores.deliveries.list(org, hook.id, Some(listed[1].id), 2).await.expect("list");
    assert_eq!(page.iter().map(|d| d.id).collect::<Vec<_>>(), [listed[2].id, listed[3].id], "older than the cursor");
    done(&stores, &[org, other]).await;
}

async fn a_gone_endpoint_is_disabled_and_its_waiting_deliveries_end_dead(stores: WebhookStores) {
    let (org, owner) = new_org(&stores).await;
    let gone = stored_endpoint(&stores, org, &[]).await;
    let kept = stored_endpoint(&stores, org, &[]).await;
    for _ in 0..4 {
        invite(&stores, org, owner).await;
    }
    let at = now();
    drain(&stores, at).await;
    let claimed = by_endpoint(&claim(&stores, at, 2).await);
    let mine = deliveries_of(&stores, &gone).await;
    let delivered = mine.iter().find(|d| d.id == claimed[&gone.id][0]).expect("claimed").clone();
    stores
        .deliveries
        .record(&delivered, &attempt(1, at, Some(200), Some("ok")), &outcome(DeliveryStatus::Succeeded, None))
        .await
        .expect("record");
    let failing = mine.iter().find(|d| d.id == claimed[&gone.id][1]).expect("claimed").clone();
    stores
        .deliveries
        .record(&failing, &attempt(1, at, Some(410), None), &outcome(DeliveryStatus::Failed, Some(at)))
        .await
        .expect("record");
    let entries = actions(&stores, org).await.len();
    assert!(
        stores
            .deliveries
            .disable(org, gone.id, Disabling::Gone, None, &event(org, "webhook.disabled"), &[])
            .await
            .expect("gone")
    );
    let disabled = stores.webhooks.get(org, gone.id).await.expect("get").expect("kept, disabled");
    assert!(!disabled.enabled);
    assert_eq!(disabled.disabled_reason.as_deref(), Some("gone"));
    for d in deliveries_of(&stores, &gone).await {
        if d.id == delivered.id {
            assert_eq!(d.status, DeliveryStatus::Succeeded, "a delivered one stays delivered");
        } else {
            assert_eq!((d.status, d.next_attempt_at), (DeliveryStatus::Dead, None), "waiting ones end dead");
        }
    }
    assert!(
        deliveries_of(&stores, &kept).await.iter().all(|d| d.status == DeliveryStatus::Pending),
        "others untouched"
    );
    let log = actions(&stores, org).await;
    assert_eq!(log.len(), entries + 1);
    assert_eq!(log.last().map(String::as_str), Some("webhook.disabled"));
    let later = at + Duration::hours(1);
    let after = by_endpoint(&claim(&stores, later, 10).await);
    assert!(!after.contains_key(&gone.id), "nothing of a gone endpoint is claimed");
    assert_eq!(after[&kept.id].len(), 4, "the other's expired claims are claimable again");
    let stray = WebhookId::from_uuid(Uuid::now_v7());
    assert!(
        !stores
            .deliveries
            .disable(org, stray, Disabling::Gone, None, &event(org, "webhook.disabled"), &[])
            .await
            .expect("gone")
    );
    assert!(
        !stores
            .deliveries
            .disable(org, gone.id, Disabling::Gone, None, &event(org, "webhook.disabled"), &[])
            .await
            .expect("gone"),
        "disabled once"
    );
    assert_eq!(
        actions(&stores, org).await.len(),
        entries + 1,
        "an unknown or disabled endpoint changes nothing, not even the log"
    );
    done(&stores, &[org]).await;
}

async fn a_test_goes_to_its_endpoint_only(stores: WebhookStores) {
    let (org, _) = new_org(&stores).await;
    let target = stored_endpoint(&stores, org, &["member.added"]).await;
    let bystander = stored_endpoint(&stores, org, &[]).await;
    drain(&stores, now()).await;
    let test = event_with(org, "webhook.test", &serde_json::json!({"test": true}));
    let id = stores.deliveries.enqueue_test(target.id, &test).await.expect("enqueue");
    let (queued, attempts) = one(&stores, &target, id).await;
    assert!(attempts.is_empty());
    assert_eq!((queued.event_id, queued.event_type.as_str()), (test.id, "webhook.test"));
    assert_eq!(queued.payload.as_deref(), Some(test.data.as_str()));
    assert_eq!((queued.status, queued.attempts), (DeliveryStatus::Pending, 0));
    assert_eq!(queued.next_attempt_at, Some(test.created_at), "due at once");
    assert_eq!(queued.event_created_at, test.created_at);
    assert_eq!(drain(&stores, now()).await, 0, "a test is never fanned out");
    assert!(deliveries_of(&stores, &bystander).await.is_empty(), "another endpoint of the org gets nothing");
    assert_eq!(deliveries_of(&stores, &target).await.len(), 1, "whatever the target's filter, once");
    let claimed = claim(&stores, test.created_at, 10).await;
    assert_eq!(
        claimed.iter().map(|c| (c.delivery.id, c.url.as_str())).collect::<Vec<_>>(),
        [(id, target.url.as_str())]
    );
    assert_eq!(actions(&stores, org).await.last().map(String::as_str), Some("webhook.test"), "audited");
    let entries = actions(&stores, org).await.len();
    let stray = stores
        .deliveries
        .enqueue_test(WebhookId::from_uuid(Uuid::now_v7()), &event_with(org, "webhook.test", &serde_json::json!({})))
        .await;
    assert!(matches!(stray, Err(StoreError::NotFound)), "{stray:?}");
    assert_eq!(actions(&stores, org).await.len(), entries, "nothing is kept for an unknown endpoint");
    done(&stores, &[org]).await;
}

async fn purge_erases_finished_payloads_and_bodies_only(stores: WebhookStores) {
    let (org, owner) = new_org(&stores).await;
    let hook = stored_endpoint(&stores, org, &[]).await;
    for _ in 0..4 {
        invite(&stores, org, owner).await;
    }
    let at = now();
    drain(&stores, at).await;
    let claimed: Vec<Delivery> = claim(&stores, at, 10).await.into_iter().map(|c| c.delivery).collect();
    assert_eq!(claimed.len(), 4);
    let q = &stores.deliveries;
    q.record(&claimed[0], &attempt(1, at, Some(200), Some("ok")), &outcome(DeliveryStatus::Succeeded, None))
        .await
        .expect("record");
    q.record(&claimed[1], &attempt(1, at, Some(500), Some("nope")), &outcome(DeliveryStatus::Failed, Some(at)))
        .await
        .expect("record");
    q.record(&claimed[1], &attempt(2, at, None, None), &outcome(DeliveryStatus::Dead, None)).await.expect("record");
    q.record(&claimed[2], &attempt(1, at, Some(503), Some("later")), &outcome(DeliveryStatus::Failed, Some(at)))
        .await
        .expect("record");
    assert_eq!(q.purge(at - Duration::hours(1), 100).await.expect("purge"), 0, "nothing finished that early");
    let before = at + Duration::hours(1);
    assert_eq!(q.purge(before, 1).await.expect("purge"), 1, "at most the limit");
    assert_eq!(q.purge(before, 100).await.expect("purge"), 1, "the rest");
    assert_eq!(q.purge(before, 100).await.expect("purge"), 0, "erased once");
    let (delivered, attempts) = one(&stores, &hook, claimed[0].id).await;
    assert_eq!(delivered.payload, None, "the payload is erased");
    assert_eq!(
        (delivered.status, delivered.last_response_status),
        (DeliveryStatus::Succeeded, Some(200)),
        "the rest stays"
    );
    assert_eq!(attempts, [Attempt { response_body: None, ..attempt(1, at, Some(200), None) }], "the body is erased");
    let (dead, attempts) = one(&stores, &hook, claimed[1].id).await;
    assert_eq!((dead.payload, dead.status, dead.attempts), (None, DeliveryStatus::Dead, 2));
    assert_eq!(attempts, [attempt(1, at, Some(500), None), attempt(2, at, None, None)], "every body, errors stay");
    let (waiting, attempts) = one(&stores, &hook, claimed[2].id).await;
    assert!(waiting.payload.is_some(), "a delivery still waiting keeps its payload");
    assert_eq!(attempts[0].response_body.as_deref(), Some("later"));
    assert!(one(&stores, &hook, claimed[3].id).await.0.payload.is_some());
    done(&stores, &[org]).await;
}

async fn depth_counts_waiting_deliveries_and_deletions_take_theirs(stores: WebhookStores) {
    let base = stores.deliveries.depth().await.expect("depth");
    let (org, owner) = new_org(&stores).await;
    let kept = stored_endpoint(&stores, org, &[]).await;
    let dropped = stored_endpoint(&stores, org, &[]).await;
    for _ in 0..3 {
        invite(&stores, org, owner).await;
    }
    let at = now();
    drain(&stores, at).await;
    let depth = || {
        let deliveries = stores.deliveries.clone();
        async move { deliveries.depth().await.expect("depth") - base }
    };
    assert_eq!(depth().await, 6, "pending ones");
    let claimed = by_endpoint(&claim(&stores, at, 10).await);
    assert_eq!(depth().await, 6, "claimed ones still wait");
    let mine = deliveries_of(&stores, &kept).await;
    let find = |id: DeliveryId| mine.iter().find(|d| d.id == id).expect("claimed").clone();
    let [a, b, c] = [claimed[&kept.id][0], claimed[&kept.id][1], claimed[&kept.id][2]].map(find);
    let q = &stores.deliveries;
    q.record(&a, &attempt(1, at, Some(200), None), &outcome(DeliveryStatus::Succeeded, None)).await.expect("record");
    assert_eq!(depth().await, 5, "delivered");
    q.record(&b, &attempt(1, at, Some(500), None), &outcome(DeliveryStatus::Failed, Some(at))).await.expect("record");
    assert_eq!(depth().await, 5, "failed ones still wait");
    q.record(&c, &attempt(1, at, Some(500), None), &outcome(DeliveryStatus::Dead, None)).await.expect("record");
    assert_eq!(depth().await, 4, "dead");
    assert!(q.retry(org, kept.id, c.id, at).await.expect("retry"));
    assert_eq!(depth().await, 5, "retried");

    let gone = claimed[&dropped.id][0];
    assert!(stores.webhooks.delete(org, dropped.id, &event(org, "webhook.deleted")).await.expect("delete"));
    assert_eq!(depth().await, 2, "deleting an endpoint removes its deliveries");
    assert_eq!(q.get(org, dropped.id, gone).await.expect("get"), None);
    assert!(q.list(org, dropped.id, None, 10).await.expect("list").is_empty());
    let orphan = mine[0].clone();
    let recorded_late = q
        .record(
            &Delivery { id: gone, endpoint_id: dropped.id, ..orphan },
            &attempt(1, at, Some(200), None),
            &outcome(DeliveryStatus::Succeeded, None),
        )
        .await;
    assert!(recorded_late.is_ok(), "an attempt of a deleted delivery records nothing: {recorded_late:?}");

    // An event not fanned out yet goes with its organization too.
    invite(&stores, org, owner).await;
    done(&stores, &[org]).await;
    assert_eq!(stores.deliveries.depth().await.expect("depth"), base, "deleting the org removes everything");
    assert_eq!(stores.webhooks.count(org).await.expect("count"), 0);
    assert_eq!(stores.webhooks.get(org, kept.id).await.expect("get"), None);
    assert!(q.list(org, kept.id, None, 10).await.expect("list").is_empty());
    assert_eq!(q.get(org, kept.id, a.id).await.expect("get"), None);
    assert_eq!(drain(&stores, now()).await, 0, "and its events");
}

async fn fanned_out_events_are_pruned_and_waiting_ones_kept(stores: WebhookStores) {
    let (org, owner) = new_org(&stores).await;
    let hook = stored_endpoint(&stores, org, &[]).await;
    for _ in 0..3 {
        invite(&stores, org, owner).await;
    }
    let at = now();
    assert_eq!(drain(&stores, at).await, 3);
    invite(&stores, org, owner).await;
    let q = &stores.deliveries;
    assert_eq!(q.prune_events(at - Duration::hours(1), 100).await.expect("prune"), 0, "none that old");
    let later = at + Duration::hours(1);
    assert_eq!(q.prune_events(later, 2).await.expect("prune"), 2, "at most the limit");
    assert_eq!(q.prune_events(later, 100).await.expect("prune"), 1, "the rest of the fanned-out ones");
    assert_eq!(q.prune_events(later, 100).await.expect("prune"), 0, "the waiting one is kept");
    assert_eq!(drain(&stores, at).await, 1, "and still fanned out");
    let deliveries = deliveries_of(&stores, &hook).await;
    assert_eq!(deliveries.len(), 4, "deliveries outlive their pruned events");
    assert!(deliveries.iter().all(|d| d.payload.is_some()), "with their own copy of the payload");
    done(&stores, &[org]).await;
}

async fn the_endpoint_limit_is_counted_inside_the_creating_transaction(stores: WebhookStores) {
    let (org, _) = new_org(&stores).await;
    let (other, _) = new_org(&stores).await;
    let first = endpoint(org, &[]);
    assert_eq!(stores.webhooks.create(&first, "sealed", Some(2), &event(org, "webhook.created")).await.expect("1"), 1);
    let entries = actions(&stores, org).await.len();
    let refused = stores.webhooks.create(&endpoint(org, &[]), "sealed", Some(1), &event(org, "webhook.created")).await;
    assert!(matches!(refused, Err(StoreError::LimitReached { used: 1 })), "{refused:?}");
    assert_eq!(actions(&stores, org).await.len(), entries, "a refusal keeps nothing, not the entry");
    assert_eq!(stores.webhooks.count(org).await.expect("count"), 1);
    assert_eq!(
        stores
            .webhooks
            .create(&endpoint(other, &[]), "sealed", Some(1), &event(other, "webhook.created"))
            .await
            .expect("other"),
        1,
        "another organization counts its own"
    );
    // Twelve at once against room for two more: exactly two pass.
    let attempts =
        (0..12).map(|_| {
            let stores = stores.clone();
            async move {
                stores.webhooks.create(&endpoint(org, &[]), "sealed", Some(3), &event(org, "webhook.created")).await
            }
        });
    let results = futures_util::future::join_all(attempts).await;
    let created = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(created, 2, "{results:?}");
    assert!(results.iter().all(|r| matches!(r, Ok(2 | 3) | Err(StoreError::LimitReached { used: 3 }))), "{results:?}");
    assert_eq!(stores.webhooks.count(org).await.expect("count"), 3);
    let unlimited = stores.webhooks.create(&endpoint(org, &[]), "sealed", None, &event(org, "webhook.created")).await;
    assert_eq!(unlimited.expect("no limit"), 4);
    done(&stores, &[org, other]).await;
}

async fn a_failing_endpoint_is_marked_disabled_once_and_recovers(stores: WebhookStores) {
    let (org, owner) = new_org(&stores).await;
    let hook = endpoint(org, &[]);
    stores.webhooks.create(&hook, "sealed-f", None, &event(org, "webhook.created")).await.expect("create");
    let healthy = stored_endpoint(&stores, org, &[]).await;
    for _ in 0..3 {
        invite(&stores, org, owner).await;
    }
    let at = now();
    drain(&stores, at).await;
    let claimed = claim(&stores, at, 10).await;
    let mine: Vec<&ClaimedDelivery> = claimed.iter().filter(|c| c.delivery.endpoint_id == hook.id).collect();
    assert_eq!(mine.len(), 3);
    assert!(mine.iter().all(|c| c.secrets == ["sealed-f"] && c.failing_since.is_none()), "{mine:?}");
    let q = &stores.deliveries;
    let failed_at = at - Duration::days(6);
    q.record(&mine[0].delivery, &attempt(1, failed_at, Some(500), None), &outcome(DeliveryStatus::Failed, Some(at)))
        .await
        .expect("record");
    q.record(&mine[1].delivery, &attempt(1, at, None, None), &outcome(DeliveryStatus::Failed, Some(at)))
        .await
        .expect("record");
    let marked = stores.webhooks.get(org, hook.id).await.expect("get").expect("exists");
    assert_eq!(marked.failing_since, Some(failed_at), "the first failure marks it, later ones keep that time");
    let other = stores.webhooks.get(org, healthy.id).await.expect("get").expect("exists");
    assert_eq!(other.failing_since, None, "only the failing endpoint is marked");
    let later = at + Duration::hours(1);
    let again = claim(&stores, later, 10).await;
    let retried = again.iter().find(|c| c.delivery.id == mine[0].delivery.id).expect("due again");
    assert_eq!(retried.failing_since, Some(failed_at), "claims carry the mark");

    let entries = actions(&stores, org).await.len();
    let too_soon = Disabling::FailingSince(failed_at - Duration::seconds(1));
    assert!(!q.disable(org, hook.id, too_soon, None, &event(org, "webhook.disabled"), &[]).await.expect("disable"));
    assert_eq!(actions(&stores, org).await.len(), entries, "not failing long enough: nothing written");
    assert!(
        !q.disable(org, healthy.id, Disabling::FailingSince(at), None, &event(org, "webhook.disabled"), &[])
            .await
            .expect("disable"),
        "an endpoint that is not failing is never disabled for failing"
    );
    assert!(
        q.disable(
            org,
            hook.id,
            Disabling::FailingSince(at - Duration::days(5)),
            Some(mine[2].delivery.id),
            &event(org, "webhook.disabled"),
            &[],
        )
        .await
        .expect("disable")
    );
    let disabled = stores.webhooks.get(org, hook.id).await.expect("get").expect("exists");
    assert_eq!((disabled.enabled, disabled.disabled_reason.as_deref()), (false, Some("failing")));
    for d in deliveries_of(&stores, &hook).await {
        if d.id == mine[2].delivery.id {
            assert_eq!(d.status, DeliveryStatus::Pending, "the spared delivery is left to its attempt's record");
        } else {
            assert_eq!(d.status, DeliveryStatus::Dead, "its waiting deliveries end dead");
        }
    }
    assert_eq!(actions(&stores, org).await.len(), entries + 1);

    // A success clears the mark once, with its entry.
    assert!(q.recovered(org, hook.id, &event(org, "webhook.recovered")).await.expect("recovered"));
    assert_eq!(stores.webhooks.get(org, hook.id).await.expect("get").expect("exists").failing_since, None);
    assert!(!q.recovered(org, hook.id, &event(org, "webhook.recovered")).await.expect("recovered"), "once");
    assert!(!q.recovered(org, healthy.id, &event(org, "webhook.recovered")).await.expect("recovered"));
    let log = actions(&stores, org).await;
    assert_eq!(log.len(), entries + 2, "one entry for the recovery, none for the refusals");
    assert_eq!(log.last().map(String::as_str), Some("webhook.recovered"));
    done(&stores, &[org]).await;
}
