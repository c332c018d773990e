//! The mail worker step: claims due mail from the outbox, opens each envelope and sends it,
//! then marks it sent, schedules a retry (the relay is unavailable) or ends it dead (the relay
//! refused it, or it ran out of attempts). Any number of workers can run it: a claim gives a
//! mail to one of them until its lease ends (ADR 0018).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tenantry_ports::{ClaimedMail, Clock, IdGenerator, MailError, MailOutbox, Mailer};

use super::MailComposer;
use crate::jobs::{Job, JobError, StepOutcome};

/// Told about sends and the backlog, for metrics.
pub trait MailObserver: Send + Sync {
    /// A mail of `kind` was accepted by the relay `since_queued` after it was queued.
    fn sent(&self, kind: &str, since_queued: Duration);
    /// An attempt of a `kind` mail failed; `dead` when the mail will not be tried again.
    fn failed(&self, kind: &str, dead: bool);
    /// Mails waiting now (counted at most every five seconds), for the backlog gauge.
    fn backlog(&self, depth: u64);
}

/// Mail delivery policy: how long an outage the outbox rides out before a mail is dead, how
/// much one step sends, and how long ended mail is kept.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// Delays between attempts while the relay is unavailable; after the last one the mail
    /// is dead (`TENANTRY_MAIL_RETRY_SCHEDULE`).
    pub schedule: Vec<Duration>,
    /// Mails claimed (and sent concurrently) per step.
    pub batch: u32,
    /// How long a claim lasts: longer than a send can take (the SMTP timeout), so a mail is
    /// taken over only from a sender that died.
    pub lease: Duration,
    /// How long ended mail (sent or dead, its body erased) is kept before it is pruned.
    pub retention: Duration,
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            // About 28 hours in all: a relay outage of a day delays mail and loses none.
            schedule: [10, 60, 300, 900, 1800, 3600, 7200, 14_400, 28_800, 43_200]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            batch: 16,
            lease: Duration::from_secs(120),
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// How often the backlog is counted (a query over the outbox).
const DEPTH_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// How long an idle step waits before looking again (nothing wakes the loop when a
/// transaction queues mail, so this bounds the delay of a fresh mail).
const IDLE_POLL: Duration = Duration::from_millis(250);

/// The worker step that sends queued mail: claims due mail, opens and sends each, and retries
/// on schedule while the relay is unavailable, so an outage delays mail and loses none.
pub struct MailSender {
    outbox: Arc<dyn MailOutbox>,
    mailer: Arc<dyn Mailer>,
    composer: MailComposer,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    settings: MailSettings,
    observer: Option<Arc<dyn MailObserver>>,
    depth_read_at: std::sync::Mutex<Option<DateTime<Utc>>>,
}

impl MailSender {
    /// Wires the sender: mail waits in `outbox`, leaves through `mailer`, is opened by
    /// `composer`.
    pub fn new(
        outbox: Arc<dyn MailOutbox>,
        mailer: Arc<dyn Mailer>,
        composer: MailComposer,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        settings: MailSettings,
    ) -> Self {
        Self {
            outbox,
            mailer,
            composer,
            clock,
            ids,
            settings,
            observer: None,
            depth_read_at: std::sync::Mutex::new(None),
        }
    }

    /// Reports sends, failures and the backlog to `observer`, for the mail metrics.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn MailObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Claims due mail and makes one attempt of each; `Worked` when it claimed any.
    ///
    /// # Errors
    /// Store failures (the worker backs off; claimed mail is taken over when its lease ends).
    pub async fn run_once(&self) -> Result<StepOutcome, JobError> {
        let now = self.clock.now();
        self.observe_backlog(now).await;
        let lease = now + chrono::Duration::from_std(self.settings.lease).unwrap_or(chrono::Duration::MAX);
        let claimed = self
            .outbox
            .claim(now, self.settings.batch, lease, self.ids.new_id())
            .await
            .map_err(|err| JobError(err.into()))?;
        if claimed.is_empty() {
            return Ok(StepOutcome::Idle { next_in: IDLE_POLL });
        }
        let attempts = claimed.into_iter().map(|mail| self.attempt(mail));
        let results = futures_util::future::join_all(attempts).await;
        // A failed store write leaves the claim to lapse: the mail is retried then.
        if let Some(err) = results.into_iter().find_map(Result::err) {
            return Err(JobError(err));
        }
        Ok(StepOutcome::Worked)
    }

    /// Deletes ended mail older than the retention period, a batch at a time.
    ///
    /// # Errors
    /// Store failures.
    pub async fn prune(&self) -> Result<u64, JobError> {
        let before =
            self.clock.now() - chrono::Duration::from_std(self.settings.retention).unwrap_or(chrono::Duration::MAX);
        self.outbox.prune(before, 1000).await.map_err(|err| JobError(err.into()))
    }

    /// Counts the backlog for the observer, at most every five seconds.
    async fn observe_backlog(&self, now: DateTime<Utc>) {
        let Some(observer) = &self.observer else { return };
        {
            let mut read_at = self.depth_read_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if read_at.is_some_and(|at| now - at < DEPTH_EVERY) {
                return;
            }
            *read_at = Some(now);
        }
        match self.outbox.depth().await {
            Ok(depth) => observer.backlog(depth),
            Err(err) => tracing::debug!(error = %err, "counting the mail outbox failed"),
        }
    }

    /// One attempt of one claimed mail, recorded.
    #[tracing::instrument(name = "application.mail.attempt", skip_all, fields(mail_id = %mail.id, kind = %mail.kind, attempt = mail.attempts + 1))]
    async fn attempt(&self, mail: ClaimedMail) -> Result<(), anyhow::Error> {
        let email = match self.composer.open(mail.id, &mail.sealed) {
            Ok(email) => email,
            // Sealed under another key, or corrupt: no retry can open it.
            Err(err) => {
                tracing::error!(error = %err, "a queued mail cannot be opened; it ends dead");
                self.outbox
                    .dead(&mail, self.clock.now(), "the envelope cannot be opened (another encryption key?)")
                    .await?;
                self.observe_failure(&mail, true);
                return Ok(());
            }
        };
        match self.mailer.send(&email).await {
            Ok(()) => {
                let now = self.clock.now();
                if !self.outbox.sent(&mail, now).await? {
                    // The lease ran out during the send and another sender took the mail over:
                    // it may go out twice (the Message-ID is the same, so clients can tell).
                    tracing::warn!("a mail was sent after its claim lapsed; another sender may send it again");
                }
                if let Some(observer) = &self.observer {
                    observer.sent(&mail.kind, (now - mail.created_at).to_std().unwrap_or(Duration::ZERO));
                }
            }
            Err(MailError::Rejected(err)) => {
                tracing::warn!(error = %format!("{err:#}"), "the relay refused a mail; it ends dead");
                self.outbox.dead(&mail, self.clock.now(), &format!("rejected: {err:#}")).await?;
                self.observe_failure(&mail, true);
            }
            Err(MailError::Unavailable(err)) => {
                let now = self.clock.now();
                match self.settings.schedule.get(usize::try_from(mail.attempts).unwrap_or(usize::MAX)) {
                    Some(delay) => {
                        let next = now + chrono::Duration::from_std(*delay).unwrap_or(chrono::Duration::MAX);
                        tracing::info!(error = %format!("{err:#}"), retry_at = %next, "mail relay unavailable; the mail waits");
                        self.outbox.retry(&mail, next, &format!("unavailable: {err:#}")).await?;
                        self.observe_failure(&mail, false);
                    }
                    None => {
                        tracing::warn!(error = %format!("{err:#}"), "a mail ran out of attempts; it ends dead");
                        let why = format!("unavailable after {} attempts: {err:#}", mail.attempts + 1);
                        self.outbox.dead(&mail, now, &why).await?;
                        self.observe_failure(&mail, true);
                    }
                }
            }
        }
        Ok(())
    }

    fn observe_failure(&self, mail: &ClaimedMail, dead: bool) {
        if let Some(observer) = &self.observer {
            observer.failed(&mail.kind, dead);
        }
    }
}

#[async_trait::async_trait]
impl Job for MailSender {
    fn name(&self) -> &'static str {
        "mail.send"
    }

    async fn step(&self) -> Result<StepOutcome, JobError> {
        self.run_once().await
    }
}

/// The retention sweeper of the outbox: deletes ended mail, a batch per step.
pub struct MailSweeper(pub Arc<MailSender>);

#[async_trait::async_trait]
impl Job for MailSweeper {
    fn name(&self) -> &'static str {
        "mail.prune"
    }

    async fn step(&self) -> Result<StepOutcome, JobError> {
        let pruned = self.0.prune().await?;
        Ok(if pruned > 0 { StepOutcome::Worked } else { StepOutcome::Idle { next_in: Duration::from_secs(3600) } })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tenantry_adapter_memory::{InMemoryMailOutbox, ManualClock, UuidV7Generator};
    use tenantry_domain::Email;
    use tenantry_ports::{MockMailer, OutgoingEmail};

    use super::*;
    use crate::mail::MailKind;
    use crate::mail::tests::composer;

    #[derive(Default)]
    struct Counts {
        sent: Mutex<Vec<String>>,
        failed: Mutex<Vec<(String, bool)>>,
    }

    impl MailObserver for Counts {
        fn sent(&self, kind: &str, _: Duration) {
            self.sent.lock().expect("sent").push(kind.to_owned());
        }
        fn failed(&self, kind: &str, dead: bool) {
            self.failed.lock().expect("failed").push((kind.to_owned(), dead));
        }
        fn backlog(&self, _: u64) {}
    }

    struct Rig {
        outbox: Arc<InMemoryMailOutbox>,
        clock: Arc<ManualClock>,
        counts: Arc<Counts>,
        sender: MailSender,
    }

    /// A sender over an in-memory outbox holding one verification mail, sending through
    /// `mailer`, retrying after 10 s and then 60 s.
    async fn rig(mailer: MockMailer) -> (Rig, tenantry_domain::MailId) {
        let outbox = Arc::new(InMemoryMailOutbox::default());
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let composer = composer();
        let to = Email::parse("ann@example.com").expect("valid");
        let mail = composer
            .compose(
                MailKind::EmailVerification,
                &to,
                &serde_json::json!({"link": "https://x/?token=t", "validity": "1 hour"}),
            )
            .expect("composed");
        let mut queued = mail.clone();
        queued.created_at = clock.now();
        outbox.enqueue(&[queued]).await.expect("queued");
        let counts = Arc::new(Counts::default());
        let settings = MailSettings {
            schedule: vec![Duration::from_secs(10), Duration::from_secs(60)],
            ..MailSettings::default()
        };
        let sender = MailSender::new(
            outbox.clone(),
            Arc::new(mailer),
            composer,
            clock.clone(),
            Arc::new(UuidV7Generator),
            settings,
        )
        .with_observer(counts.clone());
        (Rig { outbox, clock, counts, sender }, mail.id)
    }

    #[tokio::test]
    async fn a_sent_mail_is_marked_sent_once_and_its_envelope_erased() {
        let mut mailer = MockMailer::new();
        let seen: Arc<Mutex<Vec<OutgoingEmail>>> = Arc::default();
        let record = seen.clone();
        mailer.expect_send().times(1).returning(move |email| {
            record.lock().expect("seen").push(email.clone());
            Ok(())
        });
        let (rig, id) = rig(mailer).await;
        assert_eq!(rig.sender.run_once().await.expect("step"), StepOutcome::Worked);
        assert!(matches!(rig.sender.run_once().await.expect("step"), StepOutcome::Idle { .. }), "nothing left");
        let sent = seen.lock().expect("seen").clone();
        assert_eq!(sent[0].to.as_str(), "ann@example.com");
        assert!(sent[0].text.contains("https://x/?token=t"));
        assert_eq!(sent[0].message_id, Some(format!("<{id}@app.example>")));
        let row = rig.outbox.row(id).expect("kept until pruned");
        assert_eq!((row.status, row.attempts, row.sealed), ("sent", 1, None), "sent once, body erased");
        assert_eq!(*rig.counts.sent.lock().expect("sent"), ["email_verification"]);
    }

    #[tokio::test]
    async fn an_unavailable_relay_delays_the_mail_on_the_schedule_then_it_goes_out() {
        let mut mailer = MockMailer::new();
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = calls.clone();
        mailer.expect_send().returning(move |_| {
            if counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 2 {
                Err(MailError::Unavailable(anyhow::anyhow!("connection refused")))
            } else {
                Ok(())
            }
        });
        let (rig, id) = rig(mailer).await;
        rig.sender.run_once().await.expect("first attempt");
        assert_eq!(rig.outbox.row(id).expect("row").status, "pending", "an outage loses nothing");
        assert!(matches!(rig.sender.run_once().await.expect("step"), StepOutcome::Idle { .. }), "not due yet");
        rig.clock.advance(chrono::Duration::seconds(10));
        rig.sender.run_once().await.expect("second attempt");
        rig.clock.advance(chrono::Duration::seconds(59));
        assert!(
            matches!(rig.sender.run_once().await.expect("step"), StepOutcome::Idle { .. }),
            "the second delay is longer"
        );
        rig.clock.advance(chrono::Duration::seconds(1));
        rig.sender.run_once().await.expect("third attempt");
        let row = rig.outbox.row(id).expect("row");
        assert_eq!((row.status, row.attempts), ("sent", 3));
        assert_eq!(
            *rig.counts.failed.lock().expect("failed"),
            [("email_verification".to_owned(), false), ("email_verification".to_owned(), false)]
        );
    }

    #[tokio::test]
    async fn a_mail_that_runs_out_of_attempts_ends_dead() {
        let mut mailer = MockMailer::new();
        mailer.expect_send().times(3).returning(|_| Err(MailError::Unavailable(anyhow::anyhow!("timeout"))));
        let (rig, id) = rig(mailer).await;
        for _ in 0..3 {
            rig.sender.run_once().await.expect("attempt");
            rig.clock.advance(chrono::Duration::seconds(60));
        }
        let row = rig.outbox.row(id).expect("row");
        assert_eq!((row.status, row.attempts, row.sealed), ("dead", 3, None), "dead after the schedule, body erased");
        assert!(row.last_error.expect("why").contains("after 3 attempts"));
        assert_eq!(rig.counts.failed.lock().expect("failed").last(), Some(&("email_verification".to_owned(), true)));
    }

    #[tokio::test]
    async fn a_rejected_mail_ends_dead_at_once() {
        let mut mailer = MockMailer::new();
        mailer.expect_send().times(1).returning(|_| Err(MailError::Rejected(anyhow::anyhow!("550 no such user"))));
        let (rig, id) = rig(mailer).await;
        rig.sender.run_once().await.expect("attempt");
        let row = rig.outbox.row(id).expect("row");
        assert_eq!((row.status, row.attempts), ("dead", 1));
        assert!(row.last_error.expect("why").contains("550 no such user"));
    }

    #[tokio::test]
    async fn an_envelope_that_does_not_open_ends_dead_without_a_send() {
        let mut mailer = MockMailer::new();
        mailer.expect_send().times(0);
        let (rig, _) = rig(mailer).await;
        let id = tenantry_domain::MailId::from_uuid(uuid::Uuid::now_v7());
        let foreign = tenantry_ports::QueuedMail {
            id,
            kind: "invitation".to_owned(),
            sealed: "sealed under another key".to_owned(),
            created_at: rig.clock.now(),
        };
        // Drain the rig's own mail first with a sender whose mailer is not called: claim it away.
        let lease = rig.clock.now() + chrono::Duration::seconds(600);
        let own = rig.outbox.claim(rig.clock.now(), 10, lease, uuid::Uuid::now_v7()).await.expect("claim");
        assert_eq!(own.len(), 1);
        rig.outbox.enqueue(&[foreign]).await.expect("queued");
        rig.sender.run_once().await.expect("attempt");
        assert_eq!(rig.outbox.row(id).expect("row").status, "dead");
    }
}
