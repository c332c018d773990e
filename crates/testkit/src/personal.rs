//! The [`PersonalDataReader`] contract: a person's export holds their rows from every
//! organization they are in, and nothing of organizations they are not in.

use std::future::Future;
use std::sync::Arc;

use tenantry_domain::audit::{ActorKind, AuditEvent, Origin};
use tenantry_domain::{Email, OrgId, Slug, UserId};
use tenantry_ports::{NewUser, Org, OrgRepository, PersonalDataReader, UserRepository};
use uuid::Uuid;

use crate::support::{now, unique};

/// The reader under test and the stores its rows are written through.
#[derive(Clone)]
pub struct PersonalStores {
    /// Accounts.
    pub users: Arc<dyn UserRepository>,
    /// Organizations and memberships (their audit entries are written with them).
    pub orgs: Arc<dyn OrgRepository>,
    /// The reader under test, on the same backend.
    pub footprint: Arc<dyn PersonalDataReader>,
}

/// Runs every case against stores built by `make`.
///
/// # Panics
/// Naming the broken rule.
pub async fn run_contract<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = PersonalStores>,
{
    a_person_without_rows_has_an_empty_footprint(make().await).await;
    memberships_and_own_audit_entries_are_exported_from_every_org(make().await).await;
    another_persons_organization_is_not_in_the_export(make().await).await;
}

/// A new account: its id and address.
async fn person(users: &dyn UserRepository) -> (UserId, Email) {
    let id = UserId::from_uuid(Uuid::now_v7());
    let email = Email::parse(&format!("{}@example.com", unique("person"))).expect("a valid address");
    let new = NewUser {
        id,
        email: email.clone(),
        display_name: None,
        password_hash: unique("hash"),
        is_admin: false,
        email_verified_at: None,
        created_at: now(),
    };
    users.create(&new).await.expect("create user");
    (id, email)
}

/// An organization `owner` creates, audited as their own `org.created`.
async fn org_of(orgs: &dyn OrgRepository, owner: UserId, name: &str) -> Org {
    let at = now();
    let org = Org {
        id: OrgId::from_uuid(Uuid::now_v7()),
        name: name.to_owned(),
        slug: Slug::parse(&unique("personal")).expect("a valid slug"),
        plan: "free".to_owned(),
        created_at: at,
        updated_at: at,
    };
    let event = AuditEvent::new(
        Uuid::now_v7(),
        org.id,
        "org.created",
        (ActorKind::User, owner.as_uuid()),
        ("org", Some(org.id.to_string())),
        Origin::default(),
        at,
        &serde_json::json!({}),
    );
    orgs.create_with_owner(&org, owner, &event).await.expect("create org");
    org
}

async fn a_person_without_rows_has_an_empty_footprint(stores: PersonalStores) {
    let (id, email) = person(stores.users.as_ref()).await;
    let footprint = stores.footprint.footprint(id, &email).await.expect("footprint");
    assert!(footprint.memberships.is_empty(), "no memberships: {:?}", footprint.memberships);
    assert!(footprint.audit_entries.is_empty(), "no audit entries: {:?}", footprint.audit_entries);
    assert!(footprint.invitations_sent.is_empty() && footprint.invitations_received.is_empty());
    assert!(footprint.api_keys_created.is_empty() && footprint.team_memberships.is_empty());
}

async fn memberships_and_own_audit_entries_are_exported_from_every_org(stores: PersonalStores) {
    let (id, email) = person(stores.users.as_ref()).await;
    let first = org_of(stores.orgs.as_ref(), id, "First").await;
    let second = org_of(stores.orgs.as_ref(), id, "Second").await;
    let footprint = stores.footprint.footprint(id, &email).await.expect("footprint");
    let mut memberships: Vec<(OrgId, &str, &str)> =
        footprint.memberships.iter().map(|m| (m.org_id, m.org_name.as_str(), m.role.as_str())).collect();
    memberships.sort();
    let mut expected = vec![(first.id, "First", "owner"), (second.id, "Second", "owner")];
    expected.sort();
    assert_eq!(memberships, expected, "every organization, named, with the role held (the export reads on its own)");
    let mut audited: Vec<OrgId> = footprint
        .audit_entries
        .iter()
        .filter(|e| e.event.action == "org.created" && e.event.actor_id == id.as_uuid())
        .map(|e| e.event.org_id)
        .collect();
    audited.sort();
    let mut orgs = vec![first.id, second.id];
    orgs.sort();
    assert_eq!(audited, orgs, "the person's own audit entries from each organization");
}

async fn another_persons_organization_is_not_in_the_export(stores: PersonalStores) {
    let (id, email) = person(stores.users.as_ref()).await;
    let (stranger, _) = person(stores.users.as_ref()).await;
    let own = org_of(stores.orgs.as_ref(), id, "Own").await;
    let theirs = org_of(stores.orgs.as_ref(), stranger, "Theirs").await;
    let footprint = stores.footprint.footprint(id, &email).await.expect("footprint");
    assert!(
        footprint.memberships.iter().all(|m| m.org_id == own.id),
        "only the person's org: {:?}",
        footprint.memberships
    );
    assert!(
        footprint.audit_entries.iter().all(|e| e.event.org_id != theirs.id),
        "nothing of an organization the person is not in"
    );
}
