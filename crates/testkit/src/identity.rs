//! The identity-port contracts: [`UserRepository`], [`SessionRepository`],
//! [`OneTimeTokenRepository`] and [`TwoFactorRepository`], checked together because sessions,
//! tokens and two-factor state all belong to a user.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use futures_util::future::join_all;
use tenantry_domain::audit::{AccountDeletion, Origin};
use tenantry_domain::identity::{DisplayName, NotificationPreferences, Session, TokenPurpose, User, UserSettings};
use tenantry_domain::{Email, SessionId, UserId};
use tenantry_ports::{
    Conflict, IssuedToken, NewUser, OneTimeTokenRepository, RefreshOutcome, SessionRepository, StoreError,
    TwoFactorRecord, TwoFactorRepository, UserRepository,
};
use uuid::Uuid;

/// The four identity repositories of one adapter, over one store.
pub struct IdentityStores {
    /// Accounts.
    pub users: Arc<dyn UserRepository>,
    /// Sessions and refresh tokens.
    pub sessions: Arc<dyn SessionRepository>,
    /// Single-use e-mailed tokens.
    pub tokens: Arc<dyn OneTimeTokenRepository>,
    /// Two-factor secrets and backup codes.
    pub two_factor: Arc<dyn TwoFactorRepository>,
}

/// Runs every case against stores built by `make`. Each case creates its own users (random ids
/// and addresses), so the cases may share one database and suites may run in parallel.
pub async fn run_contract<F, Fut>(make: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = IdentityStores>,
{
    // Users.
    a_created_user_is_found_by_id_and_by_normalised_email(make().await).await;
    a_user_created_as_verified_admin_keeps_those_flags(make().await).await;
    a_taken_email_is_a_conflict(make().await).await;
    update_profile_replaces_name_settings_and_updated_at(make().await).await;
    set_password_hash_replaces_the_hash(make().await).await;
    mark_email_verified_keeps_the_first_time(make().await).await;
    delete_removes_the_user_and_everything_it_owns(make().await).await;
    // Sessions.
    a_created_session_is_returned_by_get(make().await).await;
    list_active_excludes_revoked_and_expired_sessions_newest_first(make().await).await;
    list_all_includes_revoked_and_expired_sessions_newest_first(make().await).await;
    revoke_succeeds_once_and_only_for_the_owner(make().await).await;
    revoke_all_revokes_every_other_active_session_and_returns_their_ids(make().await).await;
    touch_records_activity(make().await).await;
    rotating_a_live_refresh_token_installs_the_next_one(make().await).await;
    presenting_a_retired_refresh_token_again_is_reuse(make().await).await;
    an_unknown_refresh_token_is_invalid(make().await).await;
    a_refresh_token_of_a_revoked_session_is_invalid(make().await).await;
    a_refresh_token_of_an_expired_session_is_invalid(make().await).await;
    concurrent_rotations_of_one_refresh_token_let_exactly_one_win(make().await).await;
    // One-time tokens.
    a_one_time_token_is_consumed_once(make().await).await;
    a_one_time_token_does_not_work_for_another_purpose(make().await).await;
    an_expired_or_unknown_one_time_token_is_refused(make().await).await;
    concurrent_consumes_of_one_token_let_exactly_one_win(make().await).await;
    issued_tokens_are_listed_oldest_first_without_other_users_tokens(make().await).await;
    invalidate_voids_every_unused_token_of_that_purpose_only(make().await).await;
    peek_shows_the_user_of_a_live_token_without_using_it(make().await).await;
    // Two-factor.
    a_fresh_user_has_empty_two_factor_state(make().await).await;
    set_pending_stores_and_replaces_the_pending_secret(make().await).await;
    enable_activates_the_secret_with_its_first_step_and_backup_codes(make().await).await;
    advance_step_accepts_only_strictly_later_steps(make().await).await;
    a_backup_code_is_consumed_once_and_only_by_its_owner(make().await).await;
    enabling_again_replaces_the_backup_codes(make().await).await;
    disable_forgets_secrets_and_backup_codes(make().await).await;
    two_factor_changes_for_an_unknown_user_are_not_found(make().await).await;
}

// ---------------------------------------------------------------------------------------------
// Fixtures

/// The current time in whole seconds: every database keeps at least that precision.
fn now() -> DateTime<Utc> {
    Utc.timestamp_opt(Utc::now().timestamp(), 0).single().expect("a whole-second timestamp is valid")
}

fn minutes(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

/// A unique value of at most 64 characters (hash columns are that wide).
fn unique(label: &str) -> String {
    format!("{label}-{}", Uuid::now_v7().simple())
}

fn unknown_user() -> UserId {
    UserId::from_uuid(Uuid::now_v7())
}

fn new_user(at: DateTime<Utc>) -> NewUser {
    NewUser {
        id: UserId::from_uuid(Uuid::now_v7()),
        email: Email::parse(&format!("{}@example.com", unique("user"))).expect("a valid address"),
        display_name: None,
        password_hash: unique("hash"),
        is_admin: false,
        email_verified_at: None,
        created_at: at,
    }
}

async fn create_user(stores: &IdentityStores) -> UserId {
    let user = new_user(now());
    stores.users.create(&user).await.expect("create user");
    user.id
}

fn session_for(user_id: UserId, created_at: DateTime<Utc>, expires_at: DateTime<Utc>) -> Session {
    Session {
        id: SessionId::from_uuid(Uuid::now_v7()),
        user_id,
        user_agent: Some("contract-test/1.0".to_owned()),
        ip: Some("192.0.2.10".to_owned()),
        created_at,
        last_seen_at: created_at,
        expires_at,
        revoked_at: None,
    }
}

/// A stored session and its first refresh-token hash.
async fn create_session(
    stores: &IdentityStores,
    user_id: UserId,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> (Session, String) {
    let session = session_for(user_id, created_at, expires_at);
    let hash = unique("refresh");
    stores.sessions.create(&session, &hash, &[]).await.expect("create session");
    (session, hash)
}

fn ids(sessions: &[Session]) -> Vec<SessionId> {
    sessions.iter().map(|s| s.id).collect()
}

fn codes(n: usize) -> Vec<String> {
    (0..n).map(|_| unique("code")).collect()
}

fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    assert!(matches!(result, Err(StoreError::NotFound)), "{what} of an unknown user must be NotFound, got {result:?}");
}

/// The audit context of deleting `user`.
fn deletion(user: UserId) -> AccountDeletion {
    AccountDeletion::new(user.as_uuid(), Origin::default(), Uuid::now_v7(), now())
}

// ---------------------------------------------------------------------------------------------
// Users

async fn a_created_user_is_found_by_id_and_by_normalised_email(stores: IdentityStores) {
    let at = now();
    let local = unique("Ann.Lee");
    let email = Email::parse(&format!("  {local}@Example.COM ")).expect("a valid address");
    let new = NewUser {
        display_name: Some(DisplayName::parse("Ann Lee").expect("valid name")),
        email: email.clone(),
        ..new_user(at)
    };
    stores.users.create(&new).await.expect("create");

    let expected = User {
        id: new.id,
        email: Email::parse(&format!("{}@example.com", local.to_lowercase())).expect("valid"),
        display_name: new.display_name.clone(),
        password_hash: new.password_hash.clone(),
        email_verified_at: None,
        is_admin: false,
        disabled_at: None,
        settings: UserSettings::default(),
        totp_enabled: false,
        created_at: at,
        updated_at: at,
    };
    assert_eq!(expected.email, email, "the address is stored normalised");
    let by_id = stores.users.by_id(new.id).await.expect("by_id");
    assert_eq!(
        by_id.as_ref(),
        Some(&expected),
        "by_id returns the user with defaults: not admin, unverified, totp off"
    );
    let lookup = Email::parse(&format!("{}@EXAMPLE.com", local.to_uppercase())).expect("valid");
    assert_eq!(stores.users.by_email(&lookup).await.expect("by_email"), Some(expected), "by_email finds it");

    assert_eq!(stores.users.by_id(unknown_user()).await.expect("by_id"), None, "an unknown id is None");
    let nobody = Email::parse(&format!("{}@example.com", unique("nobody"))).expect("valid");
    assert_eq!(stores.users.by_email(&nobody).await.expect("by_email"), None, "an unknown address is None");
}

async fn a_user_created_as_verified_admin_keeps_those_flags(stores: IdentityStores) {
    let at = now();
    let verified = at - minutes(5);
    let new = NewUser { is_admin: true, email_verified_at: Some(verified), ..new_user(at) };
    stores.users.create(&new).await.expect("create");
    let user = stores.users.by_id(new.id).await.expect("by_id").expect("exists");
    assert!(user.is_admin, "is_admin from NewUser is kept");
    assert_eq!(user.email_verified_at, Some(verified), "email_verified_at from NewUser is kept");
}

async fn a_taken_email_is_a_conflict(stores: IdentityStores) {
    let first = new_user(now());
    stores.users.create(&first).await.expect("create");
    let second = NewUser { id: UserId::from_uuid(Uuid::now_v7()), email: first.email.clone(), ..new_user(now()) };
    let result = stores.users.create(&second).await;
    assert!(
        matches!(result, Err(StoreError::Conflict(Conflict::EmailTaken))),
        "a taken address must be Conflict, got {result:?}"
    );
    let owner = stores.users.by_email(&first.email).await.expect("by_email").expect("exists");
    assert_eq!(owner.id, first.id, "the first account keeps the address");
    assert_eq!(stores.users.by_id(second.id).await.expect("by_id"), None, "nothing of the refused user is stored");
}

async fn update_profile_replaces_name_settings_and_updated_at(stores: IdentityStores) {
    let at = now();
    let new = NewUser { display_name: Some(DisplayName::parse("Old Name").expect("valid")), ..new_user(at) };
    stores.users.create(&new).await.expect("create");

    let later = at + minutes(1);
    let settings = UserSettings {
        time_zone: Some("Europe/Paris".to_owned()),
        locale: Some("pt-BR".to_owned()),
        notifications: NotificationPreferences { product_updates: true, org_activity: false },
    };
    let name = DisplayName::parse("New Name").expect("valid");
    stores.users.update_profile(new.id, Some(name.clone()), &settings, later).await.expect("update");
    let user = stores.users.by_id(new.id).await.expect("by_id").expect("exists");
    assert_eq!(user.display_name, Some(name), "the display name is replaced");
    assert_eq!(user.settings, settings, "the settings are replaced");
    assert_eq!(user.updated_at, later, "updated_at is the time of the change");
    assert_eq!(user.created_at, at, "created_at does not change");

    let latest = later + minutes(1);
    stores.users.update_profile(new.id, None, &UserSettings::default(), latest).await.expect("update");
    let user = stores.users.by_id(new.id).await.expect("by_id").expect("exists");
    assert_eq!(user.display_name, None, "a display name can be removed");
    assert_eq!(user.settings, UserSettings::default());
    assert_eq!(user.updated_at, latest);

    assert_not_found(stores.users.update_profile(unknown_user(), None, &settings, later).await, "update_profile");
}

async fn set_password_hash_replaces_the_hash(stores: IdentityStores) {
    let at = now();
    let new = new_user(at);
    stores.users.create(&new).await.expect("create");
    let later = at + minutes(1);
    let hash = unique("new-hash");
    stores.users.set_password_hash(new.id, &hash, later).await.expect("set hash");
    let user = stores.users.by_id(new.id).await.expect("by_id").expect("exists");
    assert_eq!(user.password_hash, hash, "the hash is replaced");
    assert_eq!(user.updated_at, later, "updated_at is the time of the change");
    assert_not_found(stores.users.set_password_hash(unknown_user(), &hash, later).await, "set_password_hash");
}

async fn mark_email_verified_keeps_the_first_time(stores: IdentityStores) {
    let at = now();
    let new = new_user(at);
    stores.users.create(&new).await.expect("create");
    let first = at + minutes(1);
    stores.users.mark_email_verified(new.id, first).await.expect("verify");
    let user = stores.users.by_id(new.id).await.expect("by_id").expect("exists");
    assert_eq!(user.email_verified_at, Some(first), "the verification time is recorded");
    stores.users.mark_email_verified(new.id, first + minutes(1)).await.expect("verifying again is not an error");
    let user = stores.users.by_id(new.id).await.expect("by_id").expect("exists");
    assert_eq!(user.email_verified_at, Some(first), "a second verification keeps the first time");
    assert_not_found(stores.users.mark_email_verified(unknown_user(), at).await, "mark_email_verified");
}

async fn delete_removes_the_user_and_everything_it_owns(stores: IdentityStores) {
    let at = now();
    let new = new_user(at);
    stores.users.create(&new).await.expect("create");
    let (session, refresh) = create_session(&stores, new.id, at, at + minutes(60)).await;
    stores
        .tokens
        .create(new.id, TokenPurpose::PasswordReset, &unique("ott"), at, at + minutes(60), &[])
        .await
        .expect("create token");
    stores.two_factor.set_pending(new.id, "sealed-secret", at).await.expect("set pending");
    stores.two_factor.enable(new.id, "sealed-secret", 7, &codes(3), at, &[]).await.expect("enable");

    let bystander = create_user(&stores).await;
    let (kept, _) = create_session(&stores, bystander, at, at + minutes(60)).await;

    let deleted = stores.users.delete(new.id, &deletion(new.id)).await.expect("delete");
    assert!(deleted.orgs.is_empty(), "a user in no organization touches no org's log");
    assert_eq!(deleted.sessions, [session.id], "the deleted sessions are named, for their tokens to be revoked");
    assert_eq!(stores.users.by_id(new.id).await.expect("by_id"), None, "the user is gone");
    assert_eq!(stores.users.by_email(&new.email).await.expect("by_email"), None, "the address no longer resolves");
    assert_eq!(stores.sessions.get(session.id).await.expect("get"), None, "its sessions are gone");
    assert!(stores.sessions.list_all(new.id).await.expect("list_all").is_empty(), "no session is left");
    assert_eq!(
        stores.sessions.rotate_refresh(&refresh, &unique("next"), at, at + minutes(60)).await.expect("rotate"),
        RefreshOutcome::Invalid,
        "its refresh tokens are gone"
    );
    assert!(stores.tokens.list_for_user(new.id).await.expect("list").is_empty(), "its one-time tokens are gone");
    assert_eq!(stores.two_factor.get(new.id).await.expect("get"), None, "its two-factor state is gone");
    assert_eq!(stores.two_factor.backup_codes_left(new.id).await.expect("left"), 0, "its backup codes are gone");
    assert_eq!(stores.sessions.get(kept.id).await.expect("get"), Some(kept), "other users' rows are untouched");

    assert_not_found(stores.users.delete(new.id, &deletion(new.id)).await, "delete (again)");
    assert_not_found(stores.users.delete(unknown_user(), &deletion(unknown_user())).await, "delete");
    stores
        .users
        .create(&NewUser { id: UserId::from_uuid(Uuid::now_v7()), ..new })
        .await
        .expect("the address of a deleted account can be registered again");
}

// ---------------------------------------------------------------------------------------------
// Sessions

async fn a_created_session_is_returned_by_get(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    let (session, _) = create_session(&stores, user, at, at + minutes(60)).await;
    assert_eq!(stores.sessions.get(session.id).await.expect("get"), Some(session), "get returns it as created");
    let unknown = SessionId::from_uuid(Uuid::now_v7());
    assert_eq!(stores.sessions.get(unknown).await.expect("get"), None, "an unknown id is None");
}

/// A user with three active sessions, one revoked and one expired (created in this order of
/// age: expired oldest, then the three active ones, then the revoked one newest). Returns the
/// user, `now`, the active ones newest first, and every one newest first.
async fn user_with_mixed_sessions(stores: &IdentityStores) -> (UserId, DateTime<Utc>, Vec<Session>, Vec<Session>) {
    let user = create_user(stores).await;
    let at = now();
    let far = at + minutes(60 * 24);
    let (expired, _) = create_session(stores, user, at - minutes(240), at - minutes(1)).await;
    let (oldest, _) = create_session(stores, user, at - minutes(180), far).await;
    let (middle, _) = create_session(stores, user, at - minutes(120), far).await;
    let (newest, _) = create_session(stores, user, at - minutes(60), far).await;
    let (mut revoked, _) = create_session(stores, user, at - minutes(30), far).await;
    assert!(stores.sessions.revoke(user, revoked.id, at).await.expect("revoke"));
    revoked.revoked_at = Some(at);
    // Sessions of someone else never show.
    let other = create_user(stores).await;
    create_session(stores, other, at - minutes(10), far).await;
    let active = vec![newest.clone(), middle.clone(), oldest.clone()];
    let all = vec![revoked, newest, middle, oldest, expired];
    (user, at, active, all)
}

async fn list_active_excludes_revoked_and_expired_sessions_newest_first(stores: IdentityStores) {
    let (user, at, active, _) = user_with_mixed_sessions(&stores).await;
    let listed = stores.sessions.list_active(user, at, None, 100).await.expect("list_active");
    assert_eq!(ids(&listed), ids(&active), "only live sessions, newest first");
    assert_eq!(listed, active, "listed sessions are complete");
    let first = stores.sessions.list_active(user, at, None, 2).await.expect("first page");
    assert_eq!(ids(&first), ids(&active[..2]), "at most the limit, newest first");
    let rest = stores.sessions.list_active(user, at, Some(first[1].id), 2).await.expect("next page");
    assert_eq!(ids(&rest), ids(&active[2..]), "older than the cursor, no gap and no repeat");
    assert!(
        stores.sessions.list_active(user, at + minutes(60 * 48), None, 100).await.expect("list_active").is_empty(),
        "nothing is active once every session has expired"
    );
    assert!(stores.sessions.list_active(unknown_user(), at, None, 100).await.expect("list_active").is_empty());
}

async fn list_all_includes_revoked_and_expired_sessions_newest_first(stores: IdentityStores) {
    let (user, _, _, all) = user_with_mixed_sessions(&stores).await;
    let listed = stores.sessions.list_all(user).await.expect("list_all");
    assert_eq!(ids(&listed), ids(&all), "every session of the user, newest first");
    assert_eq!(listed, all, "revocation times are shown");
    assert!(stores.sessions.list_all(unknown_user()).await.expect("list_all").is_empty());
}

async fn revoke_succeeds_once_and_only_for_the_owner(stores: IdentityStores) {
    let owner = create_user(&stores).await;
    let stranger = create_user(&stores).await;
    let at = now();
    let (session, _) = create_session(&stores, owner, at, at + minutes(60)).await;

    assert!(!stores.sessions.revoke(stranger, session.id, at).await.expect("revoke"), "not theirs: false");
    let still = stores.sessions.get(session.id).await.expect("get").expect("exists");
    assert_eq!(still.revoked_at, None, "another user cannot revoke it");

    let later = at + minutes(1);
    assert!(stores.sessions.revoke(owner, session.id, later).await.expect("revoke"), "the owner revokes it: true");
    let revoked = stores.sessions.get(session.id).await.expect("get").expect("a revoked session still exists");
    assert_eq!(revoked.revoked_at, Some(later), "revoked_at is the time of revocation");
    assert!(!stores.sessions.revoke(owner, session.id, later + minutes(1)).await.expect("revoke"), "already: false");
    let revoked = stores.sessions.get(session.id).await.expect("get").expect("exists");
    assert_eq!(revoked.revoked_at, Some(later), "revoking again keeps the first time");

    let unknown = SessionId::from_uuid(Uuid::now_v7());
    assert!(!stores.sessions.revoke(owner, unknown, later).await.expect("revoke"), "an unknown session: false");
}

async fn revoke_all_revokes_every_other_active_session_and_returns_their_ids(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    let far = at + minutes(60);
    let (current, _) = create_session(&stores, user, at - minutes(5), far).await;
    let (second, _) = create_session(&stores, user, at - minutes(4), far).await;
    let (third, _) = create_session(&stores, user, at - minutes(3), far).await;
    let (earlier_revoked, _) = create_session(&stores, user, at - minutes(2), far).await;
    let revoked_time = at - minutes(1);
    assert!(stores.sessions.revoke(user, earlier_revoked.id, revoked_time).await.expect("revoke"));
    create_session(&stores, user, at - minutes(120), at - minutes(60)).await; // expired
    let other = create_user(&stores).await;
    let (bystander, _) = create_session(&stores, other, at, far).await;

    let revoked: BTreeSet<SessionId> =
        stores.sessions.revoke_all(user, Some(current.id), at).await.expect("revoke_all").into_iter().collect();
    assert_eq!(
        revoked,
        BTreeSet::from([second.id, third.id]),
        "exactly the other active sessions are revoked and returned (not the kept, revoked or expired ones)"
    );
    for id in [second.id, third.id] {
        let session = stores.sessions.get(id).await.expect("get").expect("exists");
        assert_eq!(session.revoked_at, Some(at), "revoked at the time given");
    }
    let kept = stores.sessions.get(current.id).await.expect("get").expect("exists");
    assert_eq!(kept.revoked_at, None, "the excepted session stays active");
    let earlier = stores.sessions.get(earlier_revoked.id).await.expect("get").expect("exists");
    assert_eq!(earlier.revoked_at, Some(revoked_time), "an already revoked session keeps its revocation time");
    assert_eq!(
        stores.sessions.get(bystander.id).await.expect("get").expect("exists").revoked_at,
        None,
        "another user's sessions are untouched"
    );

    let later = at + minutes(1);
    assert_eq!(
        stores.sessions.revoke_all(user, None, later).await.expect("revoke_all"),
        vec![current.id],
        "without an exception the remaining active session is revoked too"
    );
    assert!(stores.sessions.revoke_all(user, None, later).await.expect("revoke_all").is_empty(), "nothing left");
    assert!(stores.sessions.list_active(user, later, None, 100).await.expect("list").is_empty());
}

async fn touch_records_activity(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    let (session, _) = create_session(&stores, user, at, at + minutes(60)).await;
    let later = at + minutes(2);
    stores.sessions.touch(session.id, later).await.expect("touch");
    let touched = stores.sessions.get(session.id).await.expect("get").expect("exists");
    assert_eq!(touched, Session { last_seen_at: later, ..session }, "only last_seen_at changes");
}

async fn rotating_a_live_refresh_token_installs_the_next_one(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    let (session, first) = create_session(&stores, user, at, at + minutes(60)).await;

    let later = at + minutes(10);
    let extended = later + minutes(60 * 24);
    let second = unique("refresh");
    let RefreshOutcome::Rotated(rotated) =
        stores.sessions.rotate_refresh(&first, &second, later, extended).await.expect("rotate")
    else {
        panic!("a live refresh token must rotate");
    };
    assert_eq!(rotated.id, session.id, "the same session is extended");
    assert_eq!(rotated.user_id, user);
    assert_eq!(rotated.expires_at, extended, "the session now expires at the new time");
    let stored = stores.sessions.get(session.id).await.expect("get").expect("exists");
    assert_eq!(stored.expires_at, extended, "the new expiry is stored");

    let even_later = later + minutes(10);
    let further = even_later + minutes(60 * 24);
    let RefreshOutcome::Rotated(again) =
        stores.sessions.rotate_refresh(&second, &unique("refresh"), even_later, further).await.expect("rotate")
    else {
        panic!("the installed next token must rotate in turn");
    };
    assert_eq!(again.id, session.id);
    assert_eq!(again.expires_at, further);
}

async fn presenting_a_retired_refresh_token_again_is_reuse(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    let (session, first) = create_session(&stores, user, at, at + minutes(60)).await;
    let next = unique("refresh");
    let outcome = stores.sessions.rotate_refresh(&first, &next, at, at + minutes(60)).await.expect("rotate");
    assert!(matches!(outcome, RefreshOutcome::Rotated(_)), "got {outcome:?}");
    assert_eq!(
        stores.sessions.rotate_refresh(&first, &unique("refresh"), at, at + minutes(60)).await.expect("rotate"),
        RefreshOutcome::Reused(session.id),
        "a retired token presented again is reuse, naming the session"
    );
}

async fn an_unknown_refresh_token_is_invalid(stores: IdentityStores) {
    let at = now();
    assert_eq!(
        stores
            .sessions
            .rotate_refresh(&unique("nope"), &unique("refresh"), at, at + minutes(60))
            .await
            .expect("rotate"),
        RefreshOutcome::Invalid
    );
}

async fn a_refresh_token_of_a_revoked_session_is_invalid(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    let (session, token) = create_session(&stores, user, at, at + minutes(60)).await;
    assert!(stores.sessions.revoke(user, session.id, at).await.expect("revoke"));
    assert_eq!(
        stores.sessions.rotate_refresh(&token, &unique("refresh"), at, at + minutes(120)).await.expect("rotate"),
        RefreshOutcome::Invalid,
        "a revoked session cannot refresh"
    );
    let stored = stores.sessions.get(session.id).await.expect("get").expect("exists");
    assert_eq!(stored.expires_at, at + minutes(60), "a refused refresh does not extend the session");
}

async fn a_refresh_token_of_an_expired_session_is_invalid(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    let (session, token) = create_session(&stores, user, at - minutes(120), at - minutes(60)).await;
    assert_eq!(
        stores.sessions.rotate_refresh(&token, &unique("refresh"), at, at + minutes(60)).await.expect("rotate"),
        RefreshOutcome::Invalid,
        "an expired session cannot refresh"
    );
    let stored = stores.sessions.get(session.id).await.expect("get").expect("exists");
    assert_eq!(stored.expires_at, at - minutes(60), "a refused refresh does not revive the session");
}

async fn concurrent_rotations_of_one_refresh_token_let_exactly_one_win(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    let (session, token) = create_session(&stores, user, at, at + minutes(60)).await;
    let nexts: Vec<String> = (0..8).map(|_| unique("refresh")).collect();
    let attempts = nexts.iter().map(|next| {
        let sessions = stores.sessions.clone();
        let token = token.clone();
        let next = next.clone();
        async move { sessions.rotate_refresh(&token, &next, at, at + minutes(120)).await.expect("rotate") }
    });
    let outcomes = join_all(attempts).await;

    let winners: Vec<usize> =
        outcomes.iter().enumerate().filter(|(_, o)| matches!(o, RefreshOutcome::Rotated(_))).map(|(i, _)| i).collect();
    assert_eq!(winners.len(), 1, "exactly one concurrent rotation succeeds: {outcomes:?}");
    for (i, outcome) in outcomes.iter().enumerate() {
        if i != winners[0] {
            assert_eq!(outcome, &RefreshOutcome::Reused(session.id), "the losers see reuse");
        }
    }
    for (i, next) in nexts.iter().enumerate() {
        let outcome =
            stores.sessions.rotate_refresh(next, &unique("refresh"), at, at + minutes(120)).await.expect("rotate");
        if i == winners[0] {
            assert!(matches!(outcome, RefreshOutcome::Rotated(_)), "the winner's next token works: {outcome:?}");
        } else {
            assert_eq!(outcome, RefreshOutcome::Invalid, "a loser's next token was never installed");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One-time tokens

async fn a_one_time_token_is_consumed_once(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    let hash = unique("ott");
    let purpose = TokenPurpose::EmailVerification;
    stores.tokens.create(user, purpose, &hash, at, at + minutes(60), &[]).await.expect("create");
    assert_eq!(stores.tokens.consume(purpose, &hash, at).await.expect("consume"), Some(user), "first use: the user");
    assert_eq!(stores.tokens.consume(purpose, &hash, at).await.expect("consume"), None, "second use: None");
    let issued = stores.tokens.list_for_user(user).await.expect("list");
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0].used_at, Some(at), "the use is recorded");
}

async fn peek_shows_the_user_of_a_live_token_without_using_it(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    let (live, expired) = (unique("ott"), unique("ott"));
    stores.tokens.create(user, TokenPurpose::PasswordReset, &live, at, at + minutes(60), &[]).await.expect("create");
    stores
        .tokens
        .create(user, TokenPurpose::PasswordReset, &expired, at - minutes(120), at - minutes(60), &[])
        .await
        .expect("create");
    assert_eq!(stores.tokens.peek(TokenPurpose::PasswordReset, &live, at).await.expect("peek"), Some(user));
    assert_eq!(
        stores.tokens.peek(TokenPurpose::PasswordReset, &live, at).await.expect("peek"),
        Some(user),
        "peeking uses nothing"
    );
    assert_eq!(
        stores.tokens.peek(TokenPurpose::EmailVerification, &live, at).await.expect("peek"),
        None,
        "wrong purpose"
    );
    assert_eq!(stores.tokens.peek(TokenPurpose::PasswordReset, &expired, at).await.expect("peek"), None, "expired");
    assert_eq!(stores.tokens.consume(TokenPurpose::PasswordReset, &live, at).await.expect("consume"), Some(user));
    assert_eq!(stores.tokens.peek(TokenPurpose::PasswordReset, &live, at).await.expect("peek"), None, "used");
}

async fn invalidate_voids_every_unused_token_of_that_purpose_only(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let other = create_user(&stores).await;
    let at = now();
    let (first, second, verify, others) = (unique("ott"), unique("ott"), unique("ott"), unique("ott"));
    for (owner, hash, purpose) in [
        (user, &first, TokenPurpose::PasswordReset),
        (user, &second, TokenPurpose::PasswordReset),
        (user, &verify, TokenPurpose::EmailVerification),
        (other, &others, TokenPurpose::PasswordReset),
    ] {
        stores.tokens.create(owner, purpose, hash, at, at + minutes(60), &[]).await.expect("create");
    }
    stores.tokens.invalidate(user, TokenPurpose::PasswordReset, at).await.expect("invalidate");
    for hash in [&first, &second] {
        assert_eq!(stores.tokens.consume(TokenPurpose::PasswordReset, hash, at).await.expect("consume"), None);
    }
    assert_eq!(
        stores.tokens.consume(TokenPurpose::EmailVerification, &verify, at).await.expect("consume"),
        Some(user),
        "other purposes are untouched"
    );
    assert_eq!(
        stores.tokens.consume(TokenPurpose::PasswordReset, &others, at).await.expect("consume"),
        Some(other),
        "other users are untouched"
    );
}

async fn a_one_time_token_does_not_work_for_another_purpose(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    let hash = unique("ott");
    stores.tokens.create(user, TokenPurpose::PasswordReset, &hash, at, at + minutes(60), &[]).await.expect("create");
    assert_eq!(
        stores.tokens.consume(TokenPurpose::EmailVerification, &hash, at).await.expect("consume"),
        None,
        "a password-reset token is no e-mail verification token"
    );
    assert_eq!(
        stores.tokens.consume(TokenPurpose::PasswordReset, &hash, at).await.expect("consume"),
        Some(user),
        "the wrong-purpose attempt did not burn it"
    );
}

async fn an_expired_or_unknown_one_time_token_is_refused(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    let purpose = TokenPurpose::PasswordReset;
    let hash = unique("ott");
    stores.tokens.create(user, purpose, &hash, at - minutes(120), at - minutes(60), &[]).await.expect("create");
    assert_eq!(stores.tokens.consume(purpose, &hash, at).await.expect("consume"), None, "expired before now");

    let live = unique("ott");
    stores.tokens.create(user, purpose, &live, at, at + minutes(60), &[]).await.expect("create");
    assert_eq!(
        stores.tokens.consume(purpose, &live, at + minutes(61)).await.expect("consume"),
        None,
        "expiry is judged against the `now` given"
    );
    assert_eq!(stores.tokens.consume(purpose, &live, at).await.expect("consume"), Some(user), "unexpired at `now`");

    assert_eq!(stores.tokens.consume(purpose, &unique("nope"), at).await.expect("consume"), None, "unknown");
}

async fn concurrent_consumes_of_one_token_let_exactly_one_win(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    let purpose = TokenPurpose::EmailVerification;
    let hash = unique("ott");
    stores.tokens.create(user, purpose, &hash, at, at + minutes(60), &[]).await.expect("create");
    let attempts = (0..8).map(|_| {
        let tokens = stores.tokens.clone();
        let hash = hash.clone();
        async move { tokens.consume(purpose, &hash, at).await.expect("consume") }
    });
    let outcomes = join_all(attempts).await;
    assert_eq!(outcomes.iter().filter(|o| **o == Some(user)).count(), 1, "exactly one succeeds: {outcomes:?}");
    assert_eq!(outcomes.iter().filter(|o| o.is_none()).count(), 7, "the others get None: {outcomes:?}");
}

async fn issued_tokens_are_listed_oldest_first_without_other_users_tokens(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let other = create_user(&stores).await;
    let at = now();
    assert!(stores.tokens.list_for_user(user).await.expect("list").is_empty(), "nothing issued yet");

    let newer = unique("ott");
    stores.tokens.create(user, TokenPurpose::PasswordReset, &newer, at, at + minutes(60), &[]).await.expect("create");
    let older = unique("ott");
    let older_at = at - minutes(90);
    stores
        .tokens
        .create(user, TokenPurpose::EmailVerification, &older, older_at, older_at + minutes(60 * 24), &[])
        .await
        .expect("create");
    stores
        .tokens
        .create(other, TokenPurpose::PasswordReset, &unique("ott"), at, at + minutes(60), &[])
        .await
        .expect("create");
    let used_at = older_at + minutes(5);
    assert_eq!(stores.tokens.consume(TokenPurpose::EmailVerification, &older, used_at).await.expect("use"), Some(user));

    assert_eq!(
        stores.tokens.list_for_user(user).await.expect("list"),
        vec![
            IssuedToken {
                purpose: TokenPurpose::EmailVerification,
                created_at: older_at,
                expires_at: older_at + minutes(60 * 24),
                used_at: Some(used_at),
            },
            IssuedToken {
                purpose: TokenPurpose::PasswordReset,
                created_at: at,
                expires_at: at + minutes(60),
                used_at: None,
            },
        ],
        "purpose and times of the user's own tokens, oldest first"
    );
}

// ---------------------------------------------------------------------------------------------
// Two-factor

async fn a_fresh_user_has_empty_two_factor_state(stores: IdentityStores) {
    let user = create_user(&stores).await;
    assert_eq!(
        stores.two_factor.get(user).await.expect("get"),
        Some(TwoFactorRecord::default()),
        "a user without two-factor has a record with nothing in it"
    );
    assert_eq!(stores.two_factor.backup_codes_left(user).await.expect("left"), 0);
    assert_eq!(stores.two_factor.get(unknown_user()).await.expect("get"), None, "an unknown user has no record");
}

async fn set_pending_stores_and_replaces_the_pending_secret(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    stores.two_factor.set_pending(user, "sealed-one", at).await.expect("set pending");
    assert_eq!(
        stores.two_factor.get(user).await.expect("get"),
        Some(TwoFactorRecord { pending_secret: Some("sealed-one".to_owned()), secret: None, last_step: None }),
        "the secret is pending, not active"
    );
    stores.two_factor.set_pending(user, "sealed-two", at).await.expect("set pending");
    let record = stores.two_factor.get(user).await.expect("get").expect("exists");
    assert_eq!(record.pending_secret.as_deref(), Some("sealed-two"), "a new pending secret replaces the old one");
    let account = stores.users.by_id(user).await.expect("by_id").expect("exists");
    assert!(!account.totp_enabled, "a pending secret does not turn two-factor on");
}

async fn enable_activates_the_secret_with_its_first_step_and_backup_codes(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    stores.two_factor.set_pending(user, "sealed", at).await.expect("set pending");
    stores.two_factor.enable(user, "sealed", 1000, &codes(5), at, &[]).await.expect("enable");
    assert_eq!(
        stores.two_factor.get(user).await.expect("get"),
        Some(TwoFactorRecord { pending_secret: None, secret: Some("sealed".to_owned()), last_step: Some(1000) }),
        "the pending secret becomes the active one, with its first step"
    );
    assert_eq!(stores.two_factor.backup_codes_left(user).await.expect("left"), 5, "every backup code is stored");
    let account = stores.users.by_id(user).await.expect("by_id").expect("exists");
    assert!(account.totp_enabled, "the user shows two-factor as on");
}

async fn advance_step_accepts_only_strictly_later_steps(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    stores.two_factor.enable(user, "sealed", 1000, &codes(1), at, &[]).await.expect("enable");
    assert!(!stores.two_factor.advance_step(user, 1000).await.expect("advance"), "the same step is a replay");
    assert!(!stores.two_factor.advance_step(user, 999).await.expect("advance"), "an earlier step is a replay");
    assert!(stores.two_factor.advance_step(user, 1001).await.expect("advance"), "a later step is accepted");
    assert!(!stores.two_factor.advance_step(user, 1001).await.expect("advance"), "and then is a replay");
    assert!(stores.two_factor.advance_step(user, 1005).await.expect("advance"), "any later step is accepted");
    let record = stores.two_factor.get(user).await.expect("get").expect("exists");
    assert_eq!(record.last_step, Some(1005), "the last accepted step is stored");
}

async fn a_backup_code_is_consumed_once_and_only_by_its_owner(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let other = create_user(&stores).await;
    let at = now();
    let mine = codes(3);
    let theirs = codes(1);
    stores.two_factor.enable(user, "sealed", 1, &mine, at, &[]).await.expect("enable");
    stores.two_factor.enable(other, "sealed", 1, &theirs, at, &[]).await.expect("enable");

    assert!(stores.two_factor.consume_backup_code(user, &mine[0], at).await.expect("consume"), "first use: true");
    assert_eq!(stores.two_factor.backup_codes_left(user).await.expect("left"), 2, "one fewer left");
    assert!(!stores.two_factor.consume_backup_code(user, &mine[0], at).await.expect("consume"), "second use: false");
    assert!(!stores.two_factor.consume_backup_code(user, &unique("code"), at).await.expect("consume"), "unknown");
    assert!(
        !stores.two_factor.consume_backup_code(user, &theirs[0], at).await.expect("consume"),
        "another user's code is not this user's"
    );
    assert_eq!(stores.two_factor.backup_codes_left(user).await.expect("left"), 2, "failed attempts use nothing");
    assert_eq!(stores.two_factor.backup_codes_left(other).await.expect("left"), 1, "the other user keeps theirs");
    assert!(stores.two_factor.consume_backup_code(user, &mine[2], at).await.expect("consume"));
    assert_eq!(stores.two_factor.backup_codes_left(user).await.expect("left"), 1);
}

async fn enabling_again_replaces_the_backup_codes(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    let first = codes(3);
    stores.two_factor.enable(user, "sealed-one", 10, &first, at, &[]).await.expect("enable");
    assert!(stores.two_factor.consume_backup_code(user, &first[0], at).await.expect("consume"));
    let second = codes(2);
    stores.two_factor.enable(user, "sealed-two", 20, &second, at, &[]).await.expect("enable again");
    assert_eq!(stores.two_factor.backup_codes_left(user).await.expect("left"), 2, "only the new codes count");
    assert!(!stores.two_factor.consume_backup_code(user, &first[1], at).await.expect("consume"), "old codes die");
    assert!(stores.two_factor.consume_backup_code(user, &second[0], at).await.expect("consume"), "new codes work");
    let record = stores.two_factor.get(user).await.expect("get").expect("exists");
    assert_eq!(record.secret.as_deref(), Some("sealed-two"), "the new secret is active");
    assert_eq!(record.last_step, Some(20), "with its own first step");
}

async fn disable_forgets_secrets_and_backup_codes(stores: IdentityStores) {
    let user = create_user(&stores).await;
    let at = now();
    stores.two_factor.enable(user, "sealed", 10, &codes(4), at, &[]).await.expect("enable");
    stores.two_factor.set_pending(user, "sealed-next", at).await.expect("set pending");
    stores.two_factor.disable(user, at, &[]).await.expect("disable");
    assert_eq!(
        stores.two_factor.get(user).await.expect("get"),
        Some(TwoFactorRecord::default()),
        "no secret, no pending secret, no step"
    );
    assert_eq!(stores.two_factor.backup_codes_left(user).await.expect("left"), 0, "the backup codes are gone");
    let account = stores.users.by_id(user).await.expect("by_id").expect("exists");
    assert!(!account.totp_enabled, "the user shows two-factor as off");
}

async fn two_factor_changes_for_an_unknown_user_are_not_found(stores: IdentityStores) {
    let at = now();
    assert_not_found(stores.two_factor.set_pending(unknown_user(), "sealed", at).await, "set_pending");
    assert_not_found(stores.two_factor.enable(unknown_user(), "sealed", 1, &codes(2), at, &[]).await, "enable");
    assert_not_found(stores.two_factor.disable(unknown_user(), at, &[]).await, "disable");
}
