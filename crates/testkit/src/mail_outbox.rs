//! The [`MailOutbox`] contract: each waiting mail is claimed by one sender at a time, a lapsed
//! claim is taken over and its old holder can no longer end the mail, retries wait until they
//! are due, ended mail keeps no envelope and is pruned after the retention period. The
//! in-memory adapter, SQLite and PostgreSQL run it.
//!
//! The outbox is one table across the process (mail belongs to no tenant), so each case first
//! ends and prunes whatever earlier cases left: the cases may share one database.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use tenantry_domain::MailId;
use tenantry_ports::{ClaimedMail, Conflict, MailOutbox, QueuedMail, StoreError};
use uuid::Uuid;

/// Runs every case against `outbox`.
pub async fn run_contract(outbox: Arc<dyn MailOutbox>) {
    queued_mail_is_claimed_once_and_sending_erases_it(outbox.as_ref()).await;
    claims_take_the_oldest_due_first_up_to_the_limit(outbox.as_ref()).await;
    a_lapsed_claim_is_taken_over_and_its_old_holder_cannot_end_the_mail(outbox.as_ref()).await;
    a_retry_waits_until_it_is_due_and_counts_the_attempt(outbox.as_ref()).await;
    a_dead_mail_is_never_claimed_again(outbox.as_ref()).await;
    pruning_removes_only_mail_that_ended_before_the_cutoff(outbox.as_ref()).await;
    a_reused_id_is_a_conflict_and_queues_nothing(outbox.as_ref()).await;
    concurrent_claimers_never_share_a_mail(outbox).await;
}

/// A fixed start, far from the clean-up's far future.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 3, 1, 12, 0, 0).single().unwrap_or_default()
}

fn secs(n: i64) -> Duration {
    Duration::seconds(n)
}

/// A mail queued at `at`, with an envelope that names it.
pub fn queued(kind: &str, at: DateTime<Utc>) -> QueuedMail {
    let id = Uuid::now_v7();
    QueuedMail { id: MailId::from_uuid(id), kind: kind.to_owned(), sealed: format!("sealed-{id}"), created_at: at }
}

/// Ends and prunes every mail an earlier case left, so a case sees only its own.
async fn clean(outbox: &dyn MailOutbox) {
    let end = Utc.with_ymd_and_hms(2099, 1, 1, 0, 0, 0).single().unwrap_or_default();
    loop {
        let left = outbox.claim(end, 1000, end + secs(1), Uuid::now_v7()).await.expect("claim leftovers");
        if left.is_empty() {
            break;
        }
        for mail in &left {
            outbox.sent(mail, t0() - secs(3600)).await.expect("end leftovers");
        }
    }
    while outbox.prune(end, 1000).await.expect("prune leftovers") > 0 {}
    assert_eq!(outbox.depth().await.expect("depth"), 0, "a clean outbox has no backlog");
}

async fn claim_at(outbox: &dyn MailOutbox, at: DateTime<Utc>, limit: u32) -> Vec<ClaimedMail> {
    outbox.claim(at, limit, at + secs(60), Uuid::now_v7()).await.expect("claim")
}

async fn queued_mail_is_claimed_once_and_sending_erases_it(outbox: &dyn MailOutbox) {
    clean(outbox).await;
    let (first, second) = (queued("email_verification", t0()), queued("password_reset", t0() + secs(1)));
    outbox.enqueue(&[first.clone(), second.clone()]).await.expect("enqueue");
    assert_eq!(outbox.depth().await.expect("depth"), 2, "both wait");
    let claimed = claim_at(outbox, t0() + secs(1), 10).await;
    let ids: Vec<MailId> = claimed.iter().map(|mail| mail.id).collect();
    assert_eq!(ids, vec![first.id, second.id], "both are claimed, oldest first");
    assert_eq!(claimed[0].sealed, first.sealed, "the envelope comes back as it was sealed");
    assert_eq!(claimed[0].kind, "email_verification");
    assert_eq!(claimed[0].attempts, 0, "no attempt was made yet");
    assert!(claim_at(outbox, t0() + secs(2), 10).await.is_empty(), "a claimed mail is not claimed again");
    assert_eq!(outbox.depth().await.expect("depth"), 2, "claimed mail still waits until it is sent");
    assert!(outbox.sent(&claimed[0], t0() + secs(3)).await.expect("sent"), "its claimer ends it");
    assert!(!outbox.sent(&claimed[0], t0() + secs(3)).await.expect("sent"), "a mail is sent once");
    assert_eq!(outbox.depth().await.expect("depth"), 1);
    assert!(outbox.sent(&claimed[1], t0() + secs(3)).await.expect("sent"));
    assert_eq!(outbox.depth().await.expect("depth"), 0);
    assert!(
        claim_at(outbox, t0() + secs(3600), 10).await.is_empty(),
        "a sent mail is never claimed again, even after the lease"
    );
}

async fn claims_take_the_oldest_due_first_up_to_the_limit(outbox: &dyn MailOutbox) {
    clean(outbox).await;
    let later = queued("invitation", t0() + secs(30));
    let old = queued("invitation", t0());
    let future = queued("invitation", t0() + secs(600));
    outbox.enqueue(&[later.clone(), old.clone(), future.clone()]).await.expect("enqueue");
    assert_eq!(outbox.next_due().await.expect("next due"), Some(t0()), "the oldest is due first");
    let one = claim_at(outbox, t0() + secs(60), 1).await;
    assert_eq!(one.iter().map(|mail| mail.id).collect::<Vec<_>>(), vec![old.id], "the limit holds, oldest first");
    assert_eq!(outbox.next_due().await.expect("next due"), Some(t0() + secs(30)), "claimed mail is not counted as due");
    let rest = claim_at(outbox, t0() + secs(60), 10).await;
    assert_eq!(rest.iter().map(|mail| mail.id).collect::<Vec<_>>(), vec![later.id], "mail due later stays");
    for mail in one.iter().chain(&rest) {
        assert!(outbox.sent(mail, t0() + secs(61)).await.expect("sent"));
    }
    let due = claim_at(outbox, t0() + secs(600), 10).await;
    assert_eq!(due.iter().map(|mail| mail.id).collect::<Vec<_>>(), vec![future.id], "it is claimed once due");
}

async fn a_lapsed_claim_is_taken_over_and_its_old_holder_cannot_end_the_mail(outbox: &dyn MailOutbox) {
    clean(outbox).await;
    outbox.enqueue(&[queued("new_sign_in", t0())]).await.expect("enqueue");
    let first = claim_at(outbox, t0(), 10).await;
    assert_eq!(first.len(), 1);
    assert!(claim_at(outbox, t0() + secs(59), 10).await.is_empty(), "the lease holds until it ends");
    let second = claim_at(outbox, t0() + secs(61), 10).await;
    assert_eq!(second.len(), 1, "a lapsed lease is taken over (its sender died)");
    assert_eq!(second[0].id, first[0].id);
    assert!(!outbox.sent(&first[0], t0() + secs(62)).await.expect("sent"), "the old claim cannot end it");
    assert!(!outbox.retry(&first[0], t0() + secs(70), "late").await.expect("retry"), "nor reschedule it");
    assert!(!outbox.dead(&first[0], t0() + secs(62), "late").await.expect("dead"), "nor kill it");
    assert!(outbox.sent(&second[0], t0() + secs(62)).await.expect("sent"), "the new claim ends it");
}

async fn a_retry_waits_until_it_is_due_and_counts_the_attempt(outbox: &dyn MailOutbox) {
    clean(outbox).await;
    outbox.enqueue(&[queued("two_factor_changed", t0())]).await.expect("enqueue");
    let claimed = claim_at(outbox, t0(), 10).await;
    assert!(outbox.retry(&claimed[0], t0() + secs(30), "connection refused").await.expect("retry"));
    assert_eq!(outbox.depth().await.expect("depth"), 1, "a mail to retry still waits");
    assert_eq!(outbox.next_due().await.expect("next due"), Some(t0() + secs(30)));
    assert!(claim_at(outbox, t0() + secs(29), 10).await.is_empty(), "not before it is due");
    let again = claim_at(outbox, t0() + secs(30), 10).await;
    assert_eq!(again.len(), 1, "due again after the delay (the retry released the claim)");
    assert_eq!(again[0].attempts, 1, "the failed attempt was counted");
    assert_eq!(again[0].sealed, claimed[0].sealed, "a retried mail keeps its envelope");
    assert!(outbox.sent(&again[0], t0() + secs(31)).await.expect("sent"));
}

async fn a_dead_mail_is_never_claimed_again(outbox: &dyn MailOutbox) {
    clean(outbox).await;
    outbox.enqueue(&[queued("quota_threshold", t0())]).await.expect("enqueue");
    let claimed = claim_at(outbox, t0(), 10).await;
    assert!(outbox.dead(&claimed[0], t0() + secs(1), "550 no such user").await.expect("dead"));
    assert_eq!(outbox.depth().await.expect("depth"), 0, "dead mail is not backlog");
    assert_eq!(outbox.next_due().await.expect("next due"), None);
    assert!(claim_at(outbox, t0() + secs(3600), 10).await.is_empty(), "dead mail is never sent");
}

async fn pruning_removes_only_mail_that_ended_before_the_cutoff(outbox: &dyn MailOutbox) {
    clean(outbox).await;
    let (a, b, waiting) = (queued("invitation", t0()), queued("invitation", t0()), queued("invitation", t0()));
    outbox.enqueue(&[a.clone(), b.clone()]).await.expect("enqueue");
    let claimed = claim_at(outbox, t0(), 10).await;
    assert!(outbox.sent(&claimed[0], t0()).await.expect("sent"));
    assert!(outbox.dead(&claimed[1], t0() + secs(10), "refused").await.expect("dead"));
    outbox.enqueue(&[waiting]).await.expect("enqueue");
    assert_eq!(outbox.prune(t0() + secs(5), 100).await.expect("prune"), 1, "only the mail that ended before");
    assert_eq!(outbox.prune(t0() + secs(3600), 100).await.expect("prune"), 1, "then the dead one");
    assert_eq!(outbox.prune(t0() + secs(7200), 100).await.expect("prune"), 0, "waiting mail is never pruned");
    assert_eq!(outbox.depth().await.expect("depth"), 1, "the waiting mail is still there");
}

async fn a_reused_id_is_a_conflict_and_queues_nothing(outbox: &dyn MailOutbox) {
    clean(outbox).await;
    let first = queued("invitation", t0());
    outbox.enqueue(std::slice::from_ref(&first)).await.expect("enqueue");
    let mut again = queued("invitation", t0());
    again.id = first.id;
    let fresh = queued("invitation", t0());
    let refused = outbox.enqueue(&[fresh, again]).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(Conflict::Duplicate))),
        "a reused id is a duplicate: {refused:?}"
    );
    assert_eq!(outbox.depth().await.expect("depth"), 1, "a refused batch queues none of its mails");
}

async fn concurrent_claimers_never_share_a_mail(outbox: Arc<dyn MailOutbox>) {
    clean(outbox.as_ref()).await;
    let mails: Vec<QueuedMail> = (0..60).map(|i| queued("email_verification", t0() + secs(i))).collect();
    outbox.enqueue(&mails).await.expect("enqueue");
    let at = t0() + secs(120);
    let claimers = (0..8).map(|_| {
        let outbox = outbox.clone();
        tokio::spawn(async move { outbox.claim(at, 10, at + secs(60), Uuid::now_v7()).await.expect("claim") })
    });
    let mut seen = HashSet::new();
    let mut total = 0;
    for claimer in claimers {
        for mail in claimer.await.expect("claimer") {
            total += 1;
            assert!(seen.insert(mail.id), "mail {} was given to two claimers", mail.id);
        }
    }
    assert!((10..=60).contains(&total), "the claimers took {total} of 60");
    assert_eq!(outbox.depth().await.expect("depth"), 60, "claiming sends nothing");
}

/// The repositories whose changes cause mail, over the same database as `outbox`.
#[derive(Clone)]
pub struct MailCauseStores {
    /// The outbox the causes write to.
    pub outbox: Arc<dyn MailOutbox>,
    /// Accounts.
    pub users: Arc<dyn tenantry_ports::UserRepository>,
    /// Organizations.
    pub orgs: Arc<dyn tenantry_ports::OrgRepository>,
    /// Verification and reset tokens.
    pub tokens: Arc<dyn tenantry_ports::OneTimeTokenRepository>,
    /// Invitations.
    pub invitations: Arc<dyn tenantry_ports::InvitationRepository>,
    /// Sessions.
    pub sessions: Arc<dyn tenantry_ports::SessionRepository>,
    /// Two-factor state.
    pub two_factor: Arc<dyn tenantry_ports::TwoFactorRepository>,
}

/// Mail is written by the transaction of its cause: a change that commits queues its mails, a
/// change that is refused (a seat limit, an unknown account) queues none.
pub async fn mail_commits_and_rolls_back_with_its_change(stores: MailCauseStores) {
    use tenantry_domain::identity::{Session, TokenPurpose};
    use tenantry_domain::{Email, InvitationId, SessionId};
    use tenantry_ports::Invitation;

    use crate::support::{event, now, stored_org, stored_user, unique};

    let outbox = stores.outbox.as_ref();
    clean(outbox).await;
    let at = now();
    let far = at + secs(3600);
    let user = stored_user(stores.users.as_ref()).await;

    let token_mail = queued("email_verification", at);
    stores
        .tokens
        .create(user, TokenPurpose::EmailVerification, &unique("digest"), at, far, std::slice::from_ref(&token_mail))
        .await
        .expect("token with its mail");
    let session_mail = queued("new_sign_in", at);
    let session = Session {
        id: SessionId::from_uuid(Uuid::now_v7()),
        user_id: user,
        user_agent: Some("contract".to_owned()),
        ip: Some("192.0.2.1".to_owned()),
        created_at: at,
        last_seen_at: at,
        expires_at: far,
        revoked_at: None,
    };
    stores.sessions.create(&session, &unique("refresh"), std::slice::from_ref(&session_mail)).await.expect("session");
    let lost = queued("two_factor_changed", at);
    let unknown = tenantry_domain::UserId::from_uuid(Uuid::now_v7());
    assert!(
        stores.two_factor.disable(unknown, at, std::slice::from_ref(&lost)).await.is_err(),
        "an unknown account has no two-factor state"
    );

    let (org, owner) = stored_org(stores.users.as_ref(), stores.orgs.as_ref(), at).await;
    let invitation = |address: &str| Invitation {
        id: InvitationId::from_uuid(Uuid::now_v7()),
        org_id: org.id,
        email: Email::parse(&format!("{address}@example.com")).expect("valid"),
        role: "viewer".to_owned(),
        invited_by: owner,
        created_at: at,
        expires_at: far,
        accepted_at: None,
        revoked_at: None,
    };
    let invited = queued("invitation", at);
    stores
        .invitations
        .create(
            &invitation(&unique("one")),
            &unique("digest"),
            Some(2),
            &event(org.id, "invitation.created"),
            std::slice::from_ref(&invited),
        )
        .await
        .expect("the first invitation fits the seats");
    let refused = queued("invitation", at);
    let over = stores
        .invitations
        .create(
            &invitation(&unique("two")),
            &unique("digest"),
            Some(2),
            &event(org.id, "invitation.created"),
            std::slice::from_ref(&refused),
        )
        .await;
    assert!(matches!(over, Err(StoreError::LimitReached { .. })), "the second passes the seats: {over:?}");

    let claimed: HashSet<MailId> = claim_at(outbox, far, 100).await.into_iter().map(|mail| mail.id).collect();
    let expected: HashSet<MailId> = [token_mail.id, session_mail.id, invited.id].into_iter().collect();
    assert_eq!(claimed, expected, "the committed changes queued their mails; the refused ones queued none");
}
