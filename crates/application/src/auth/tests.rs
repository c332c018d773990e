//! Interaction rules of sign-in and the token lifecycle, with mocks for storage and
//! crypto and the in-memory cache with a manual clock for counters and markers.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use tenantry_domain::identity::{Session, TokenLifetimes, TokenPurpose, User, UserSettings};
use tenantry_domain::{Email, SessionId, UserId};
use tenantry_ports::{AccessClaims, BackgroundTasks, Cache, PasswordCheck, RefreshOutcome};

use tenantry_adapter_memory::{InMemoryCache, ManualClock, UuidV7Generator};
use tenantry_ports::{
    AccessTokenError, MockAccessTokenIssuer, MockOneTimeTokenRepository, MockPasswordHasher, MockSecretGenerator,
    MockSessionRepository, MockUserRepository,
};

use super::*;

struct NoSecondFactor;

/// Drops background work: these tests do not look at mail.
struct InlineTasks;

impl BackgroundTasks for InlineTasks {
    fn spawn(&self, _: &'static str, _: tenantry_ports::Task) {}
}

#[async_trait::async_trait]
impl SecondFactor for NoSecondFactor {
    async fn verify_login_code(&self, _: UserId, _: &str) -> Result<bool, AuthError> {
        Ok(false)
    }
}

struct Mocks {
    users: MockUserRepository,
    sessions: MockSessionRepository,
    tokens: MockOneTimeTokenRepository,
    hasher: MockPasswordHasher,
    access: MockAccessTokenIssuer,
}

impl Mocks {
    fn new() -> Self {
        Self {
            users: MockUserRepository::new(),
            sessions: MockSessionRepository::new(),
            tokens: MockOneTimeTokenRepository::new(),
            hasher: MockPasswordHasher::new(),
            access: MockAccessTokenIssuer::new(),
        }
    }

    fn service(mut self, cache: Arc<InMemoryCache>, clock: Arc<ManualClock>) -> AuthService {
        // No earlier sessions unless a test says otherwise: a first sign-in, no alert.
        self.sessions.expect_list_all().returning(|_| Ok(Vec::new()));
        let counter = Arc::new(AtomicUsize::new(0));
        let mut secrets = MockSecretGenerator::new();
        secrets.expect_token().returning(move |_| format!("token-{}", counter.fetch_add(1, Ordering::SeqCst)));
        secrets.expect_digest().returning(|token| format!("digest:{token}"));
        let ports = AuthPorts {
            users: Arc::new(self.users),
            sessions: Arc::new(self.sessions),
            tokens: Arc::new(self.tokens),
            hasher: Arc::new(self.hasher),
            access: Arc::new(self.access),
            secrets: Arc::new(secrets),
            mail: crate::mail::tests::composer(),
            revocations: SessionRevocations::new(cache.clone(), clock.clone(), TokenLifetimes::default()),
            cache,
            clock,
            ids: Arc::new(UuidV7Generator),
            mfa: Arc::new(NoSecondFactor),
            tasks: Arc::new(InlineTasks),
        };
        AuthService::new(ports, AuthSettings::new("https://app.example".into(), 3, false))
    }
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc::now()))
}

fn user(email: &str) -> User {
    let now = Utc::now();
    User {
        id: UserId::from_uuid(uuid::Uuid::now_v7()),
        email: Email::parse(email).expect("valid"),
        display_name: None,
        password_hash: "$argon2id$stored".into(),
        email_verified_at: None,
        is_admin: false,
        disabled_at: None,
        settings: UserSettings::default(),
        totp_enabled: false,
        created_at: now,
        updated_at: now,
    }
}

fn session_of(user_id: UserId) -> Session {
    let now = Utc::now();
    Session {
        id: SessionId::from_uuid(uuid::Uuid::now_v7()),
        user_id,
        user_agent: None,
        ip: None,
        created_at: now,
        last_seen_at: now,
        expires_at: now + chrono::Duration::days(30),
        revoked_at: None,
    }
}

fn client() -> ClientInfo {
    ClientInfo { user_agent: Some("test".into()), ip: Some("192.0.2.7".into()) }
}

#[tokio::test]
async fn wrong_passwords_count_and_the_limit_locks_without_checking_the_password_again() {
    let clock = clock();
    let cache = Arc::new(InMemoryCache::new(clock.clone()));
    let mut mocks = Mocks::new();
    let ann = user("ann@example.com");
    mocks.users.expect_by_email().times(3).returning(move |_| Ok(Some(ann.clone())));
    mocks.hasher.expect_verify().times(3).returning(|_, _| Ok(PasswordCheck::Invalid));
    mocks.sessions.expect_create().times(0);
    let service = mocks.service(cache, clock.clone());
    for _ in 0..3 {
        let result = service.login("ann@example.com", "wrong", None, &client()).await;
        assert!(matches!(result, Err(AuthError::InvalidCredentials)), "{result:?}");
    }
    let locked = service.login("ann@example.com", "right", None, &client()).await;
    let Err(AuthError::Locked { retry_after }) = locked else { panic!("expected a lockout, got {locked:?}") };
    assert!(retry_after <= Duration::from_secs(900) && retry_after > Duration::from_secs(890), "{retry_after:?}");
}

#[tokio::test]
async fn the_lockout_ends_when_its_window_has_passed() {
    let clock = clock();
    let cache = Arc::new(InMemoryCache::new(clock.clone()));
    let mut mocks = Mocks::new();
    let ann = user("ann@example.com");
    mocks.users.expect_by_email().returning(move |_| Ok(Some(ann.clone())));
    mocks.hasher.expect_verify().times(3).returning(|_, _| Ok(PasswordCheck::Invalid));
    mocks.hasher.expect_verify().times(1).returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: false }));
    mocks.sessions.expect_create().times(1).returning(|_, _, _| Ok(()));
    mocks.sessions.expect_list_active().returning(|_, _, _, _| Ok(Vec::new()));
    mocks.access.expect_issue().times(1).returning(|_| Ok("jwt".into()));
    let stored = user("ann@example.com");
    mocks.users.expect_by_id().returning(move |_| Ok(Some(stored.clone())));
    let service = mocks.service(cache, clock.clone());
    for _ in 0..3 {
        let _ = service.login("ann@example.com", "wrong", None, &client()).await;
    }
    clock.advance(chrono::Duration::minutes(15));
    let pair = service.login("ann@example.com", "right", None, &client()).await.expect("the window has passed");
    assert_eq!(pair.access_token, "jwt");
}

#[tokio::test]
async fn an_unknown_address_burns_a_dummy_hash_and_answers_like_a_wrong_password() {
    let clock = clock();
    let mut mocks = Mocks::new();
    mocks.users.expect_by_email().times(1).returning(|_| Ok(None));
    mocks.hasher.expect_verify_dummy().times(1).returning(|_| Ok(()));
    mocks.hasher.expect_verify().times(0);
    let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock);
    let result = service.login("ghost@example.com", "whatever", None, &client()).await;
    assert!(matches!(result, Err(AuthError::InvalidCredentials)), "{result:?}");
}

#[tokio::test]
async fn a_successful_login_opens_one_session_storing_only_the_refresh_digest() {
    let clock = clock();
    let mut mocks = Mocks::new();
    let ann = user("ann@example.com");
    let ann_id = ann.id;
    let stored = ann.clone();
    mocks.users.expect_by_email().returning(move |_| Ok(Some(ann.clone())));
    mocks.users.expect_by_id().returning(move |_| Ok(Some(stored.clone())));
    mocks.hasher.expect_verify().returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: false }));
    mocks
        .sessions
        .expect_create()
        .times(1)
        .withf(move |session, hash, mails| {
            session.user_id == ann_id && hash.starts_with("digest:token-") && mails.is_empty()
        })
        .returning(|_, _, _| Ok(()));
    mocks.sessions.expect_list_active().returning(|_, _, _, _| Ok(Vec::new()));
    mocks.access.expect_issue().times(1).withf(move |claims| claims.user_id == ann_id).returning(|_| Ok("jwt".into()));
    let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock);
    let pair = service.login("ann@example.com", "right", None, &client()).await.expect("signed in");
    assert!(pair.refresh_token.starts_with("token-"), "the client gets the token, storage its digest");
    assert_eq!(pair.expires_in, 900);
}

#[tokio::test]
async fn an_outdated_hash_is_replaced_after_a_successful_check() {
    let clock = clock();
    let mut mocks = Mocks::new();
    let ann = user("ann@example.com");
    let mut rehashed = ann.clone();
    rehashed.password_hash = "$argon2id$new".into();
    mocks.users.expect_by_email().returning(move |_| Ok(Some(ann.clone())));
    mocks.users.expect_by_id().returning(move |_| Ok(Some(rehashed.clone())));
    mocks.hasher.expect_verify().returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: true }));
    mocks.hasher.expect_hash().times(1).returning(|_| Ok("$argon2id$new".into()));
    mocks
        .users
        .expect_set_password_hash()
        .times(1)
        .withf(|_, hash, _| hash == "$argon2id$new")
        .returning(|_, _, _| Ok(()));
    mocks.sessions.expect_create().returning(|_, _, _| Ok(()));
    mocks.sessions.expect_list_active().returning(|_, _, _, _| Ok(Vec::new()));
    mocks.access.expect_issue().returning(|_| Ok("jwt".into()));
    let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock);
    service.login("ann@example.com", "right", None, &client()).await.expect("signed in");
}

#[tokio::test]
async fn the_oldest_sessions_give_way_beyond_the_cap() {
    let clock = clock();
    let cache = Arc::new(InMemoryCache::new(clock.clone()));
    let mut mocks = Mocks::new();
    let ann = user("ann@example.com");
    let ann_id = ann.id;
    let stored = ann.clone();
    mocks.users.expect_by_email().returning(move |_| Ok(Some(ann.clone())));
    mocks.users.expect_by_id().returning(move |_| Ok(Some(stored.clone())));
    mocks.hasher.expect_verify().returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: false }));
    mocks.sessions.expect_create().returning(|_, _, _| Ok(()));
    let sessions: Vec<Session> = (0..MAX_SESSIONS + 2).map(|_| session_of(ann_id)).collect();
    let oldest: Vec<SessionId> = sessions.iter().skip(MAX_SESSIONS).map(|s| s.id).collect();
    mocks.sessions.expect_list_active().returning(move |_, _, _, _| Ok(sessions.clone()));
    let expected = oldest.clone();
    mocks.sessions.expect_revoke().times(2).withf(move |_, id, _| expected.contains(id)).returning(|_, _, _| Ok(true));
    mocks.access.expect_issue().returning(|_| Ok("jwt".into()));
    let service = mocks.service(cache.clone(), clock);
    service.login("ann@example.com", "right", None, &client()).await.expect("signed in");
    for id in oldest {
        assert!(cache.get(&format!("auth:session-revoked:{id}")).await.expect("get").is_some());
    }
}

#[tokio::test]
async fn a_sign_in_that_raced_a_password_change_is_voided() {
    let clock = clock();
    let cache = Arc::new(InMemoryCache::new(clock.clone()));
    let mut mocks = Mocks::new();
    let ann = user("ann@example.com");
    let mut changed = ann.clone();
    changed.password_hash = "$argon2id$after-reset".into();
    mocks.users.expect_by_email().returning(move |_| Ok(Some(ann.clone())));
    mocks.users.expect_by_id().returning(move |_| Ok(Some(changed.clone())));
    mocks.hasher.expect_verify().returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: false }));
    mocks.sessions.expect_create().times(1).returning(|_, _, _| Ok(()));
    mocks.sessions.expect_list_active().returning(|_, _, _, _| Ok(Vec::new()));
    mocks.sessions.expect_revoke().times(1).returning(|_, _, _| Ok(true));
    mocks.access.expect_issue().returning(|_| Ok("jwt".into()));
    let service = mocks.service(cache, clock);
    let result = service.login("ann@example.com", "old password", None, &client()).await;
    assert!(matches!(result, Err(AuthError::InvalidCredentials)), "{result:?}");
}

#[tokio::test]
async fn two_factor_accounts_need_a_code_and_a_missing_one_counts_as_a_failure() {
    let clock = clock();
    let cache = Arc::new(InMemoryCache::new(clock.clone()));
    let mut mocks = Mocks::new();
    let mut ann = user("ann@example.com");
    ann.totp_enabled = true;
    mocks.users.expect_by_email().returning(move |_| Ok(Some(ann.clone())));
    mocks.hasher.expect_verify().returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: false }));
    mocks.sessions.expect_create().times(0);
    let service = mocks.service(cache.clone(), clock);
    let result = service.login("ann@example.com", "right", None, &client()).await;
    assert!(matches!(result, Err(AuthError::MfaRequired)), "{result:?}");
    let count = cache.get("auth:login-failures:account:ann@example.com").await.expect("get");
    assert_eq!(count, Some(b"1".to_vec()));
}

#[tokio::test]
async fn refresh_token_reuse_revokes_the_session_and_its_access_tokens_at_once() {
    let clock = clock();
    let cache = Arc::new(InMemoryCache::new(clock.clone()));
    let mut mocks = Mocks::new();
    let session = session_of(UserId::from_uuid(uuid::Uuid::now_v7()));
    let (session_id, user_id) = (session.id, session.user_id);
    mocks.sessions.expect_rotate_refresh().times(1).returning(move |_, _, _, _| Ok(RefreshOutcome::Reused(session_id)));
    let stored = session.clone();
    mocks.sessions.expect_get().returning(move |_| Ok(Some(stored.clone())));
    mocks
        .sessions
        .expect_revoke()
        .times(1)
        .withf(move |user, id, _| *user == user_id && *id == session_id)
        .returning(|_, _, _| Ok(true));
    let now = Utc::now();
    mocks.access.expect_verify().returning(move |_, _| {
        Ok(AccessClaims { user_id, session_id, issued_at: now, expires_at: now + chrono::Duration::minutes(15) })
    });
    let service = mocks.service(cache, clock);
    let result = service.refresh("stolen-and-replayed").await;
    assert!(matches!(result, Err(AuthError::InvalidToken)), "{result:?}");
    let auth = service.authenticate("a-still-unexpired-jwt").await;
    assert!(matches!(auth, Err(AuthError::Unauthenticated)), "{auth:?}");
}

#[tokio::test]
async fn a_live_refresh_token_yields_a_new_pair_for_the_same_session() {
    let clock = clock();
    let mut mocks = Mocks::new();
    let session = session_of(UserId::from_uuid(uuid::Uuid::now_v7()));
    let session_id = session.id;
    mocks
        .sessions
        .expect_rotate_refresh()
        .times(1)
        .withf(|presented, next, _, _| presented == "digest:old" && next.starts_with("digest:token-"))
        .returning(move |_, _, _, _| Ok(RefreshOutcome::Rotated(session.clone())));
    mocks
        .access
        .expect_issue()
        .times(1)
        .withf(move |claims| claims.session_id == session_id)
        .returning(|_| Ok("jwt2".into()));
    let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock);
    let pair = service.refresh("old").await.expect("rotated");
    assert_eq!(pair.access_token, "jwt2");
    assert_ne!(pair.refresh_token, "old");
}

#[tokio::test]
async fn expired_or_forged_access_tokens_never_reach_storage() {
    let clock = clock();
    let mut mocks = Mocks::new();
    mocks.access.expect_verify().returning(|_, _| Err(AccessTokenError::Expired));
    mocks.sessions.expect_touch().times(0);
    let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock);
    assert!(matches!(service.authenticate("expired").await, Err(AuthError::Unauthenticated)));
}

#[tokio::test]
async fn session_activity_is_written_at_most_once_a_minute() {
    let clock = clock();
    let mut mocks = Mocks::new();
    let (user_id, session_id) = (UserId::from_uuid(uuid::Uuid::now_v7()), SessionId::from_uuid(uuid::Uuid::now_v7()));
    let now = Utc::now();
    mocks.access.expect_verify().returning(move |_, _| {
        Ok(AccessClaims { user_id, session_id, issued_at: now, expires_at: now + chrono::Duration::minutes(15) })
    });
    mocks.sessions.expect_touch().times(2).returning(|_, _| Ok(()));
    let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock.clone());
    for _ in 0..5 {
        service.authenticate("jwt").await.expect("valid");
    }
    clock.advance(chrono::Duration::seconds(61));
    service.authenticate("jwt").await.expect("valid");
}

#[tokio::test]
async fn a_weak_new_password_does_not_burn_the_reset_token() {
    let clock = clock();
    let mut mocks = Mocks::new();
    mocks.tokens.expect_consume().times(0);
    let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock);
    let result = service.reset_password("reset-token", "password1234").await;
    assert!(matches!(result, Err(AuthError::WeakPassword(_))), "{result:?}");
}

#[tokio::test]
async fn a_password_reset_revokes_every_session() {
    let clock = clock();
    let cache = Arc::new(InMemoryCache::new(clock.clone()));
    let mut mocks = Mocks::new();
    let ann = user("ann@example.com");
    let ann_id = ann.id;
    let revoked = vec![SessionId::from_uuid(uuid::Uuid::now_v7()), SessionId::from_uuid(uuid::Uuid::now_v7())];
    let revoked_ids = revoked.clone();
    mocks.tokens.expect_peek().times(1).returning(move |_, _, _| Ok(Some(ann_id)));
    mocks.tokens.expect_consume().times(1).returning(move |_, _, _| Ok(Some(ann_id)));
    mocks.hasher.expect_hash().times(1).returning(|_| Ok("$argon2id$new".into()));
    mocks.users.expect_set_password_hash().times(1).returning(|_, _, _| Ok(()));
    mocks
        .sessions
        .expect_revoke_all()
        .times(1)
        .withf(|_, except, _| except.is_none())
        .returning(move |_, _, _| Ok(revoked_ids.clone()));
    mocks.users.expect_by_id().returning(move |_| Ok(Some(ann.clone())));
    mocks
        .tokens
        .expect_invalidate()
        .times(1)
        .withf(|_, purpose, _| *purpose == TokenPurpose::PasswordReset)
        .returning(|_, _, _| Ok(()));
    let service = mocks.service(cache.clone(), clock);
    service.reset_password("reset-token", "a long and strong new pass phrase").await.expect("reset");
    for id in revoked {
        assert!(cache.get(&format!("auth:session-revoked:{id}")).await.expect("get").is_some());
    }
}

#[tokio::test]
async fn a_sign_in_from_a_new_device_queues_an_alert_with_its_session() {
    let clock = clock();
    let mut mocks = Mocks::new();
    let ann = user("ann@example.com");
    let ann_id = ann.id;
    let stored = ann.clone();
    mocks.users.expect_by_email().returning(move |_| Ok(Some(ann.clone())));
    mocks.users.expect_by_id().returning(move |_| Ok(Some(stored.clone())));
    mocks.hasher.expect_verify().returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: false }));
    // An earlier session from another browser on another network.
    let mut earlier = session_of(ann_id);
    earlier.user_agent = Some("Firefox".into());
    earlier.ip = Some("198.51.100.4".into());
    mocks.sessions.expect_list_all().times(1).returning(move |_| Ok(vec![earlier.clone()]));
    mocks
        .sessions
        .expect_create()
        .times(1)
        .withf(|_, _, mails| mails.len() == 1 && mails[0].kind == "new_sign_in")
        .returning(|_, _, _| Ok(()));
    mocks.sessions.expect_list_active().returning(|_, _, _, _| Ok(Vec::new()));
    mocks.access.expect_issue().returning(|_| Ok("jwt".into()));
    let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock);
    service.login("ann@example.com", "right", None, &client()).await.expect("signed in");
}

#[tokio::test]
async fn a_sign_in_from_a_known_device_and_network_queues_no_alert() {
    let clock = clock();
    let mut mocks = Mocks::new();
    let ann = user("ann@example.com");
    let ann_id = ann.id;
    let stored = ann.clone();
    mocks.users.expect_by_email().returning(move |_| Ok(Some(ann.clone())));
    mocks.users.expect_by_id().returning(move |_| Ok(Some(stored.clone())));
    mocks.hasher.expect_verify().returning(|_, _| Ok(PasswordCheck::Valid { needs_rehash: false }));
    let mut earlier = session_of(ann_id);
    earlier.user_agent = Some("test".into());
    earlier.ip = Some("192.0.2.200".into());
    mocks.sessions.expect_list_all().times(1).returning(move |_| Ok(vec![earlier.clone()]));
    mocks.sessions.expect_create().times(1).withf(|_, _, mails| mails.is_empty()).returning(|_, _, _| Ok(()));
    mocks.sessions.expect_list_active().returning(|_, _, _, _| Ok(Vec::new()));
    mocks.access.expect_issue().returning(|_| Ok("jwt".into()));
    let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock);
    service.login("ann@example.com", "right", None, &client()).await.expect("signed in");
}

#[tokio::test]
async fn a_token_is_stored_with_its_mail_and_the_link_carries_the_token_once_a_minute() {
    let clock = clock();
    let mut mocks = Mocks::new();
    let ann = user("ann@example.com");
    let ann_id = ann.id;
    mocks
        .tokens
        .expect_create()
        .times(1)
        .withf(move |user, purpose, hash, _, _, mails| {
            let opened = crate::mail::tests::composer().open(mails[0].id, &mails[0].sealed).expect("opens");
            *user == ann_id
                && *purpose == TokenPurpose::PasswordReset
                && mails.len() == 1
                && mails[0].kind == "password_reset"
                && opened
                    .text
                    .contains(&format!("https://app.example/reset-password?token={}", &hash["digest:".len()..]))
        })
        .returning(|_, _, _, _, _, _| Ok(()));
    let service = mocks.service(Arc::new(InMemoryCache::new(clock.clone())), clock);
    service.try_queue_token_mail(ann.id, &ann.email, TokenPurpose::PasswordReset).await.expect("queued");
    // A second request within the minute is throttled: no second token, no second mail.
    service.try_queue_token_mail(ann.id, &ann.email, TokenPurpose::PasswordReset).await.expect("throttled");
}
