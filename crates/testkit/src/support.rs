//! Fixtures shared by the suites that need real organizations (foreign keys) and audit events.

use chrono::{DateTime, Utc};
use tenantry_domain::audit::{ActorKind, AuditEvent, Origin};
use tenantry_domain::{Email, OrgId, Slug, UserId};
use tenantry_ports::{NewUser, Org, OrgRepository, UserRepository};
use uuid::Uuid;

/// Now, in whole microseconds: what every backend stores.
pub(crate) fn now() -> DateTime<Utc> {
    let at = Utc::now();
    at - chrono::Duration::nanoseconds(i64::from(at.timestamp_subsec_nanos() % 1000))
}

/// `prefix` with a random tail, for slugs, addresses and digests that must not collide.
pub(crate) fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", &Uuid::now_v7().simple().to_string()[18..])
}

/// An audit event of `action` in `org`.
pub(crate) fn event(org: OrgId, action: &str) -> AuditEvent {
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

/// A new account.
pub(crate) async fn stored_user(users: &dyn UserRepository) -> UserId {
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
    users.create(&new).await.expect("create user");
    id
}

/// A new organization owned by a new account, created at `created_at`.
pub(crate) async fn stored_org(
    users: &dyn UserRepository,
    orgs: &dyn OrgRepository,
    created_at: DateTime<Utc>,
) -> (Org, UserId) {
    let owner = stored_user(users).await;
    let org = Org {
        id: OrgId::from_uuid(Uuid::now_v7()),
        name: "Contract".to_owned(),
        slug: Slug::parse(&unique("org")).expect("a valid slug"),
        plan: "free".to_owned(),
        created_at,
        updated_at: created_at,
    };
    orgs.create_with_owner(&org, owner, &event(org.id, "org.created")).await.expect("create org");
    (org, owner)
}
