//! The dispatcher: a worker step that fans outbox events out to endpoints and makes one
//! attempt of each claimed delivery — signed, recorded, retried on the schedule — and the
//! retention sweeper. Any number of workers can run it (ADR 0015).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use tenantry_domain::DeliveryId;
use tenantry_domain::audit::{ActorKind, AuditEvent, Origin};
use tenantry_domain::webhooks::{AttemptVerdict, DeliveryStatus, judge, next_attempt, secret_key, signature_header};
use tenantry_ports::{
    Attempt, AttemptOutcome, BackgroundTasks, ClaimedDelivery, Delivery, Disabling, OutgoingWebhook, SendError,
};

use super::{WebhookPorts, WebhookSettings};
use crate::jobs::{Job, JobError, StepOutcome};
use crate::mail::MailKind;

/// Told about attempts and the queue, for metrics.
pub trait DeliveryObserver: Send + Sync {
    /// An attempt ended with the delivery in `status`, after `latency`.
    fn attempted(&self, status: DeliveryStatus, latency: Duration);
    /// A delivery succeeded `since_commit` after its event was committed.
    fn delivered(&self, since_commit: Duration);
    /// Deliveries waiting now (pending or failed; counted at most every five seconds), for the
    /// queue-depth gauge.
    fn queue_depth(&self, depth: u64);
}

/// The dispatcher: a worker step that fans new events out to endpoints and makes one attempt
/// of each claimed delivery, concurrently. Any number of workers can run it.
pub struct Dispatcher {
    core: Arc<DispatcherCore>,
    /// Where attempts run when they must not hold up the next step (the server's task
    /// tracker); without one, a step waits for its attempts (tests, embedders' own loops).
    spawner: Option<Arc<dyn BackgroundTasks>>,
    /// Attempts running in the background now.
    in_flight: Arc<AtomicUsize>,
}

/// What an attempt needs, shared with the background tasks that run attempts.
struct DispatcherCore {
    ports: WebhookPorts,
    settings: WebhookSettings,
    observer: Option<Arc<dyn DeliveryObserver>>,
    depth_read_at: std::sync::Mutex<Option<DateTime<Utc>>>,
}

/// The most attempts one dispatcher runs at once; past it, steps claim nothing new.
const MAX_IN_FLIGHT: usize = 512;

/// How often the queue depth is counted (a query over the queue).
const DEPTH_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// The largest response body kept per attempt.
const KEPT_BODY: usize = 4096;

/// A spread in `[0, 1)` for `id`'s retries, from its random bits (UUIDv7 ends with 62 random
/// bits), so deliveries that fail together retry apart, and a test can predict it.
fn jitter(id: DeliveryId, attempt: u32) -> f64 {
    let bits = (id.as_uuid().as_u128() as u64).rotate_left(attempt.wrapping_mul(7));
    (bits % 10_000) as f64 / 10_000.0
}

impl Dispatcher {
    /// Wires the dispatcher; without [`Self::with_spawner`], a step waits for its own attempts,
    /// which suits tests and embedders' own loops.
    pub fn new(ports: WebhookPorts, settings: WebhookSettings) -> Self {
        let core = DispatcherCore { ports, settings, observer: None, depth_read_at: std::sync::Mutex::new(None) };
        Self { core: Arc::new(core), spawner: None, in_flight: Arc::default() }
    }

    /// Reports attempts and the queue depth to `observer`.
    #[must_use]
    pub fn with_observer(mut self, observer: Arc<dyn DeliveryObserver>) -> Self {
        if let Some(core) = Arc::get_mut(&mut self.core) {
            core.observer = Some(observer);
        }
        self
    }

    /// Runs each attempt as a task of `spawner`, so a step never waits for an endpoint that
    /// hangs until the timeout: the next step claims other endpoints' deliveries at once.
    #[must_use]
    pub fn with_spawner(mut self, spawner: Arc<dyn BackgroundTasks>) -> Self {
        self.spawner = Some(spawner);
        self
    }

    /// Fans out and starts an attempt of each delivery due now; `Worked` when it did anything.
    ///
    /// # Errors
    /// Store failures (the worker backs off and tries again).
    pub async fn run_once(&self) -> Result<StepOutcome, JobError> {
        let core = &self.core;
        let now = core.ports.clock.now();
        core.observe_depth(now).await;
        let fanned = core.ports.queue.fan_out(now, 500).await.map_err(|err| JobError(err.into()))?;
        let lease = now + chrono::Duration::from_std(core.settings.claim_lease).unwrap_or(chrono::Duration::MAX);
        let room = MAX_IN_FLIGHT.saturating_sub(self.in_flight.load(Ordering::SeqCst));
        let limit = u32::try_from(room).unwrap_or(u32::MAX).min(core.settings.batch);
        let claimed = if limit == 0 {
            Vec::new()
        } else {
            core.ports
                .queue
                .claim(now, limit, core.settings.per_endpoint, lease)
                .await
                .map_err(|err| JobError(err.into()))?
        };
        if fanned == 0 && claimed.is_empty() {
            return Ok(StepOutcome::Idle { next_in: Duration::from_millis(200) });
        }
        tracing::debug!(fanned, claimed = claimed.len(), "webhook dispatch step");
        match &self.spawner {
            Some(spawner) => {
                for claimed in claimed {
                    let (core, in_flight) = (Arc::clone(&self.core), Arc::clone(&self.in_flight));
                    in_flight.fetch_add(1, Ordering::SeqCst);
                    spawner.spawn(
                        "webhooks.attempt",
                        Box::pin(async move {
                            if let Err(err) = core.attempt(claimed).await {
                                tracing::warn!(error = %err, "recording a webhook attempt failed; the claim will lapse and it is retried");
                            }
                            in_flight.fetch_sub(1, Ordering::SeqCst);
                        }),
                    );
                }
            }
            None => {
                let attempts = claimed.into_iter().map(|claimed| core.attempt(claimed));
                for result in futures_util::future::join_all(attempts).await {
                    if let Err(err) = result {
                        tracing::warn!(error = %err, "recording a webhook attempt failed; the claim will lapse and it is retried");
                    }
                }
            }
        }
        Ok(StepOutcome::Worked)
    }

    /// Erases payloads of deliveries that ended more than the retention period ago, and
    /// outbox events fanned out that long ago; returns how many of both.
    ///
    /// # Errors
    /// Store failures.
    pub async fn purge(&self) -> Result<u64, JobError> {
        let core = &self.core;
        let before = core.ports.clock.now()
            - chrono::Duration::from_std(core.settings.retention).unwrap_or(chrono::Duration::MAX);
        let erased = core.ports.queue.purge(before, 1000).await.map_err(|err| JobError(err.into()))?;
        let pruned = core.ports.queue.prune_events(before, 1000).await.map_err(|err| JobError(err.into()))?;
        Ok(erased + pruned)
    }
}

impl DispatcherCore {
    /// Counts the queue for the observer, at most every five seconds.
    async fn observe_depth(&self, now: DateTime<Utc>) {
        let Some(observer) = &self.observer else { return };
        {
            let mut read_at = self.depth_read_at.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if read_at.is_some_and(|at| now - at < DEPTH_EVERY) {
                return;
            }
            *read_at = Some(now);
        }
        match self.ports.queue.depth().await {
            Ok(depth) => observer.queue_depth(depth),
            Err(err) => tracing::debug!(error = %err, "counting the webhook queue failed"),
        }
    }

    /// The signing keys of the claimed endpoint's sealed secrets.
    fn keys(&self, sealed: &[String]) -> Result<Vec<Vec<u8>>, anyhow::Error> {
        if sealed.is_empty() {
            anyhow::bail!("the endpoint has no secret");
        }
        let mut keys = Vec::new();
        for sealed in sealed {
            let secret = self.ports.cipher.open(sealed)?;
            let secret = String::from_utf8(secret)?;
            keys.push(secret_key(&secret).ok_or_else(|| anyhow::anyhow!("a stored webhook secret is malformed"))?);
        }
        Ok(keys)
    }

    /// An entry the system itself writes about an endpoint (no user or key acted).
    fn system_event(&self, delivery: &Delivery, action: &str, data: &serde_json::Value) -> AuditEvent {
        AuditEvent::new(
            self.ports.ids.new_id(),
            delivery.org_id,
            action,
            (ActorKind::User, uuid::Uuid::nil()),
            ("webhook", Some(delivery.endpoint_id.to_string())),
            Origin::default(),
            self.ports.clock.now(),
            data,
        )
    }

    /// After an attempt that did not deliver: disables the endpoint when it has failed for
    /// the whole configured period, and queues a mail to the organization's owners and admins
    /// in the same transaction.
    async fn after_failure(
        &self,
        claimed: &Delivery,
        url: &str,
        failing_since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), anyhow::Error> {
        let period = chrono::Duration::from_std(self.settings.disable_after).unwrap_or(chrono::Duration::MAX);
        if now - failing_since < period {
            return Ok(());
        }
        let event = self.system_event(
            claimed,
            "webhook.disabled",
            &json!({"reason": "failing", "failing_since": failing_since, "delivery_id": claimed.id}),
        );
        let cutoff = now - period;
        // The owners and admins are told by mail queued in the disabling transaction: only
        // the call that disables the endpoint mails, and an SMTP outage delays the mail
        // instead of losing it (ADR 0018).
        let context = json!({
            "url": url,
            "endpoint_id": claimed.endpoint_id.to_string(),
            "org_id": claimed.org_id.to_string(),
            "failing_since": failing_since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "path": format!("/api/v1/orgs/{}/webhooks/{}", claimed.org_id, claimed.endpoint_id),
        });
        let mails = self
            .ports
            .mail
            .to_admins(self.ports.orgs.as_ref(), claimed.org_id, MailKind::WebhookEndpointDisabled, &context)
            .await?;
        if self
            .ports
            .queue
            // The attempt is recorded already: this delivery ends dead with the others.
            .disable(claimed.org_id, claimed.endpoint_id, Disabling::FailingSince(cutoff), None, &event, &mails)
            .await?
        {
            tracing::warn!(org_id = %claimed.org_id, endpoint_id = %claimed.endpoint_id, admins_mailed = mails.len(), "a webhook endpoint failing since {failing_since} was disabled");
        }
        Ok(())
    }

    /// Records an attempt that could not be made, ending the delivery.
    async fn end_dead(
        &self,
        delivery: &Delivery,
        attempt: u32,
        started_at: DateTime<Utc>,
        why: &str,
    ) -> Result<(), anyhow::Error> {
        let attempt = Attempt {
            attempt,
            started_at,
            response_status: None,
            latency_ms: 0,
            response_body: None,
            error: Some(why.to_owned()),
        };
        let outcome = AttemptOutcome { status: DeliveryStatus::Dead, next_attempt_at: None };
        Ok(self.ports.queue.record(delivery, &attempt, &outcome).await?)
    }

    /// One attempt of one claimed delivery, recorded. Its span is the root of the attempt's
    /// trace (attempts run as tasks of their own); the sender's request carries it onward.
    #[tracing::instrument(
        name = "app.webhooks.attempt",
        skip_all,
        fields(
            org_id = %claimed.delivery.org_id,
            delivery_id = %claimed.delivery.id,
            event_type = %claimed.delivery.event_type,
            attempt = claimed.delivery.attempts + 1,
        )
    )]
    async fn attempt(&self, claimed: ClaimedDelivery) -> Result<(), anyhow::Error> {
        let ClaimedDelivery { delivery, url, secrets, failing_since } = claimed;
        let started_at = self.ports.clock.now();
        let attempt_number = delivery.attempts + 1;
        let keys = match self.keys(&secrets) {
            Ok(keys) => keys,
            // Nothing to sign with: retrying cannot help, so the delivery ends dead instead of
            // being claimed again forever.
            Err(err) => {
                tracing::error!(error = %err, endpoint_id = %delivery.endpoint_id, "a webhook secret cannot be read");
                return self
                    .end_dead(&delivery, attempt_number, started_at, "the endpoint's secret cannot be read")
                    .await;
            }
        };
        let data: serde_json::Value = delivery
            .payload
            .as_deref()
            .and_then(|payload| serde_json::from_str(payload).ok())
            .unwrap_or_else(|| json!({}));
        let body = json!({
            "type": delivery.event_type,
            "timestamp": started_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "data": data,
        })
        .to_string()
        .into_bytes();
        let id = delivery.id.to_string();
        let timestamp = started_at.timestamp();
        let request = OutgoingWebhook {
            url: url.clone(),
            headers: vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("webhook-id".to_owned(), id.clone()),
                ("webhook-timestamp".to_owned(), timestamp.to_string()),
                ("webhook-signature".to_owned(), signature_header(&keys, &id, timestamp, &body)),
            ],
            body,
        };
        let clock = Instant::now();
        let answer = self.ports.sender.send(&request).await;
        let latency_ms = u32::try_from(clock.elapsed().as_millis()).unwrap_or(u32::MAX);
        let now = self.ports.clock.now();
        let (status, retry_after, response_body, error) = match &answer {
            Ok(answer) => (Some(answer.status), answer.retry_after.clone(), Some(cut(&answer.body)), None),
            Err(SendError::Refused(reason)) => (None, None, None, Some(format!("refused: {reason}"))),
            Err(err) => (None, None, None, Some(err.to_string())),
        };
        let attempt =
            Attempt { attempt: attempt_number, started_at, response_status: status, latency_ms, response_body, error };
        let outcome = match judge(status, retry_after.as_deref(), now) {
            AttemptVerdict::Delivered => AttemptOutcome { status: DeliveryStatus::Succeeded, next_attempt_at: None },
            AttemptVerdict::Gone => {
                let event = self.system_event(
                    &delivery,
                    "webhook.disabled",
                    &json!({"reason": "gone", "delivery_id": delivery.id}),
                );
                // This delivery is spared: its record below ends it dead with its attempt, so it
                // never shows dead with the attempt missing.
                self.ports
                    .queue
                    .disable(delivery.org_id, delivery.endpoint_id, Disabling::Gone, Some(delivery.id), &event, &[])
                    .await?;
                AttemptOutcome { status: DeliveryStatus::Dead, next_attempt_at: None }
            }
            AttemptVerdict::Retry { not_before } => {
                match next_attempt(
                    &self.settings.schedule,
                    attempt_number,
                    now,
                    jitter(delivery.id, attempt_number),
                    not_before,
                ) {
                    Some(at) => AttemptOutcome { status: DeliveryStatus::Failed, next_attempt_at: Some(at) },
                    None => AttemptOutcome { status: DeliveryStatus::Dead, next_attempt_at: None },
                }
            }
        };
        self.ports.queue.record(&delivery, &attempt, &outcome).await?;
        // One line per attempt, inside the attempt's span: its trace id is the one the
        // receiver saw in `traceparent`, so a receiver's report leads here.
        tracing::info!(
            response_status = status,
            latency_ms,
            outcome = outcome.status.as_str(),
            "webhook attempt recorded"
        );
        match (outcome.status, failing_since) {
            (DeliveryStatus::Succeeded, Some(since)) => {
                let event = self.system_event(
                    &delivery,
                    "webhook.recovered",
                    &json!({"failing_since": since, "delivery_id": delivery.id}),
                );
                if self.ports.queue.recovered(delivery.org_id, delivery.endpoint_id, &event).await? {
                    tracing::info!(org_id = %delivery.org_id, endpoint_id = %delivery.endpoint_id, "a failing webhook endpoint recovered");
                }
            }
            (DeliveryStatus::Succeeded, None) => {}
            // A 410 already disabled it.
            (_, _) if status == Some(410) => {}
            (_, since) => self.after_failure(&delivery, &url, since.unwrap_or(started_at), now).await?,
        }
        if let Some(observer) = &self.observer {
            observer.attempted(outcome.status, Duration::from_millis(u64::from(latency_ms)));
            if outcome.status == DeliveryStatus::Succeeded {
                observer.delivered((now - delivery.event_created_at).to_std().unwrap_or(Duration::ZERO));
            }
        }
        Ok(())
    }
}

/// The kept part of an answer: at most 4 KiB, without control characters other than line
/// breaks and tabs (PostgreSQL refuses NUL in text, and a receiver must not be able to make its
/// attempts unrecordable).
fn cut(body: &str) -> String {
    let mut end = body.len().min(KEPT_BODY);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body[..end].chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t')).collect()
}

#[async_trait::async_trait]
impl Job for Dispatcher {
    fn name(&self) -> &'static str {
        "webhooks.dispatch"
    }

    async fn step(&self) -> Result<StepOutcome, JobError> {
        self.run_once().await
    }
}

/// The retention sweeper: erases old payloads, a batch per step.
pub struct PayloadSweeper(pub Arc<Dispatcher>);

#[async_trait::async_trait]
impl Job for PayloadSweeper {
    fn name(&self) -> &'static str {
        "webhooks.purge"
    }

    async fn step(&self) -> Result<StepOutcome, JobError> {
        let erased = self.0.purge().await?;
        Ok(if erased > 0 { StepOutcome::Worked } else { StepOutcome::Idle { next_in: Duration::from_secs(3600) } })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::TimeZone;
    use tenantry_adapter_memory::{ManualClock, UuidV7Generator};
    use tenantry_domain::OrgId;
    use tenantry_domain::{Email, UserId};
    use tenantry_ports::{
        Member, MockDeliveryQueue, MockOrgRepository, MockSecretCipher, MockSecretGenerator, MockWebhookRepository,
        MockWebhookSender, OutgoingEmail, WebhookAnswer,
    };

    use super::*;
    use tenantry_domain::WebhookId;

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).single().expect("date")
    }

    fn delivery(attempts: u32) -> Delivery {
        Delivery {
            id: DeliveryId::from_uuid(uuid::Uuid::now_v7()),
            org_id: OrgId::from_uuid(uuid::Uuid::now_v7()),
            endpoint_id: WebhookId::from_uuid(uuid::Uuid::now_v7()),
            event_id: uuid::Uuid::now_v7(),
            event_type: "member.added".into(),
            status: DeliveryStatus::Pending,
            attempts,
            last_response_status: None,
            last_latency_ms: None,
            next_attempt_at: Some(start()),
            created_at: start(),
            event_created_at: start(),
            payload: Some(r#"{"role":"member"}"#.into()),
        }
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// What a dispatcher under test did.
    #[derive(Default, Clone)]
    struct Seen {
        recorded: Arc<Mutex<Vec<(Attempt, AttemptOutcome)>>>,
        sent: Arc<Mutex<Vec<OutgoingWebhook>>>,
        /// `disable` calls: why, and the entry's action.
        disabled: Arc<Mutex<Vec<(Disabling, String)>>>,
        /// `recovered` calls: the entry's action.
        recovered: Arc<Mutex<Vec<String>>>,
        mailed: Arc<Mutex<Vec<OutgoingEmail>>>,
    }

    fn member(email: &str, role: &str) -> Member {
        Member {
            user_id: UserId::from_uuid(uuid::Uuid::now_v7()),
            email: Email::parse(email).expect("email"),
            display_name: None,
            role: role.to_owned(),
            joined_at: start(),
        }
    }

    /// A dispatcher whose queue hands out `claimed` once (from an endpoint failing since
    /// `failing_since`) and records what it is told into `seen`; the sender answers with
    /// `answer`; the organization has an owner, an admin and a viewer.
    fn dispatcher(
        claimed: Delivery,
        failing_since: Option<DateTime<Utc>>,
        answer: Result<WebhookAnswer, SendError>,
        seen: &Seen,
    ) -> Dispatcher {
        let mut queue = MockDeliveryQueue::new();
        queue.expect_fan_out().returning(|_, _| Ok(0));
        let once = Mutex::new(Some(claimed));
        queue.expect_claim().returning(move |_, _, _, _| {
            Ok(once
                .lock()
                .expect("once")
                .take()
                .map(|delivery| ClaimedDelivery {
                    delivery,
                    url: "https://h.example/in".into(),
                    secrets: vec![SECRET.to_owned()],
                    failing_since,
                })
                .into_iter()
                .collect())
        });
        let recorded = Arc::clone(&seen.recorded);
        queue.expect_record().returning(move |_, attempt, outcome| {
            recorded.lock().expect("recorded").push((attempt.clone(), outcome.clone()));
            Ok(())
        });
        let disabled = Arc::clone(&seen.disabled);
        let mailed = Arc::clone(&seen.mailed);
        queue.expect_disable().returning(move |_, _, why, _, event, mails| {
            disabled.lock().expect("disabled").push((why, event.action.clone()));
            // The mails ride the disabling transaction: what it was given is what is sent.
            let composer = crate::mail::tests::composer();
            let mut mailed = mailed.lock().expect("mailed");
            mailed.extend(mails.iter().map(|mail| composer.open(mail.id, &mail.sealed).expect("opens")));
            Ok(true)
        });
        let recovered = Arc::clone(&seen.recovered);
        queue.expect_recovered().returning(move |_, _, event| {
            recovered.lock().expect("recovered").push(event.action.clone());
            Ok(true)
        });
        let mut orgs = MockOrgRepository::new();
        orgs.expect_list_members().returning(|_, _, _| {
            Ok(vec![
                member("owner@example.com", "owner"),
                member("admin@example.com", "admin"),
                member("v@example.com", "viewer"),
            ])
        });
        let endpoints = MockWebhookRepository::new();
        let mut cipher = MockSecretCipher::new();
        cipher.expect_open().returning(|sealed| Ok(sealed.as_bytes().to_vec()));
        let mut sender = MockWebhookSender::new();
        let sent = Arc::clone(&seen.sent);
        sender.expect_send().returning(move |request| {
            sent.lock().expect("sent").push(request.clone());
            answer.clone()
        });
        let ports = WebhookPorts {
            endpoints: Arc::new(endpoints),
            queue: Arc::new(queue),
            sender: Arc::new(sender),
            cipher: Arc::new(cipher),
            secrets: Arc::new(MockSecretGenerator::new()),
            clock: Arc::new(ManualClock::new(start())),
            ids: Arc::new(UuidV7Generator),
            quotas: None,
            orgs: Arc::new(orgs),
            mail: crate::mail::tests::composer(),
        };
        Dispatcher::new(ports, WebhookSettings::default())
    }

    fn answer(status: u16, retry_after: Option<&str>) -> Result<WebhookAnswer, SendError> {
        Ok(WebhookAnswer { status, retry_after: retry_after.map(str::to_owned), body: "ok".into() })
    }

    async fn run_failing(
        claimed: Delivery,
        failing_since: Option<DateTime<Utc>>,
        reply: Result<WebhookAnswer, SendError>,
    ) -> Seen {
        let seen = Seen::default();
        let dispatcher = dispatcher(claimed, failing_since, reply, &seen);
        assert_eq!(dispatcher.run_once().await.expect("step"), StepOutcome::Worked);
        assert!(matches!(dispatcher.run_once().await.expect("step"), StepOutcome::Idle { .. }), "nothing left");
        seen
    }

    async fn run(
        claimed: Delivery,
        reply: Result<WebhookAnswer, SendError>,
    ) -> (Vec<(Attempt, AttemptOutcome)>, Vec<OutgoingWebhook>, u32) {
        let seen = run_failing(claimed, None, reply).await;
        let recorded = seen.recorded.lock().expect("recorded").clone();
        let sent = seen.sent.lock().expect("sent").clone();
        let gone = seen.disabled.lock().expect("disabled").iter().filter(|(why, _)| *why == Disabling::Gone).count();
        (recorded, sent, u32::try_from(gone).expect("small"))
    }

    #[tokio::test]
    async fn an_endpoint_failing_for_the_whole_period_is_disabled_and_its_admins_mailed() {
        let days = |n| chrono::Duration::days(n);
        // Failing for four days: one more failure changes nothing but the delivery.
        let seen = run_failing(delivery(0), Some(start() - days(4)), answer(500, None)).await;
        assert!(seen.disabled.lock().expect("disabled").is_empty());
        assert!(seen.mailed.lock().expect("mailed").is_empty());
        assert!(seen.recovered.lock().expect("recovered").is_empty());
        // Failing for five days: disabled (only if still failing since five days ago), audited,
        // and every owner and admin (not the viewer) is told.
        let claimed = delivery(0);
        let seen = run_failing(claimed.clone(), Some(start() - days(5)), Err(SendError::Timeout)).await;
        assert_eq!(
            *seen.disabled.lock().expect("disabled"),
            [(Disabling::FailingSince(start() - days(5)), "webhook.disabled".to_owned())]
        );
        let mailed = seen.mailed.lock().expect("mailed").clone();
        let to: Vec<&str> = mailed.iter().map(|m| m.to.as_str()).collect();
        assert_eq!(to, ["owner@example.com", "admin@example.com"]);
        assert!(
            mailed[0].text.contains("https://h.example/in")
                && mailed[0].text.contains(&claimed.endpoint_id.to_string())
        );
        assert_eq!(
            seen.recorded.lock().expect("recorded")[0].1.status,
            DeliveryStatus::Failed,
            "the attempt is recorded"
        );
        // A first failure marks it (in the store) and starts the period: nothing is disabled.
        let seen = run_failing(delivery(0), None, answer(503, None)).await;
        assert!(seen.disabled.lock().expect("disabled").is_empty());
    }

    #[tokio::test]
    async fn a_success_after_failures_is_a_recovery_and_a_410_is_not_a_failing_period() {
        let seen = run_failing(delivery(0), Some(start() - chrono::Duration::hours(3)), answer(200, None)).await;
        assert_eq!(*seen.recovered.lock().expect("recovered"), ["webhook.recovered"]);
        let seen = run_failing(delivery(0), None, answer(200, None)).await;
        assert!(seen.recovered.lock().expect("recovered").is_empty(), "a healthy endpoint has nothing to recover");
        let seen = run_failing(delivery(0), Some(start() - chrono::Duration::days(9)), answer(410, None)).await;
        assert_eq!(
            *seen.disabled.lock().expect("disabled"),
            [(Disabling::Gone, "webhook.disabled".to_owned())],
            "disabled once, as gone"
        );
        assert!(seen.mailed.lock().expect("mailed").is_empty());
    }

    #[tokio::test]
    async fn a_2xx_delivers_a_signed_standard_webhook() {
        let claimed = delivery(0);
        let (recorded, sent, _) = run(claimed.clone(), answer(204, None)).await;
        assert_eq!(recorded[0].1, AttemptOutcome { status: DeliveryStatus::Succeeded, next_attempt_at: None });
        assert_eq!((recorded[0].0.attempt, recorded[0].0.response_status), (1, Some(204)));
        let request = &sent[0];
        let header = |name: &str| request.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone()).expect(name);
        assert_eq!(header("webhook-id"), claimed.id.to_string());
        let timestamp: i64 = header("webhook-timestamp").parse().expect("unix seconds");
        let key = secret_key(SECRET).expect("key");
        assert_eq!(
            header("webhook-signature"),
            tenantry_domain::webhooks::sign(&key, &claimed.id.to_string(), timestamp, &request.body)
        );
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json body");
        assert_eq!(body["type"], "member.added");
        assert_eq!(body["data"], json!({"role": "member"}));
        assert!(body["timestamp"].is_string());
    }

    #[tokio::test]
    async fn a_failure_is_retried_on_schedule_and_retry_after_pushes_it_later() {
        let (recorded, _, _) = run(delivery(0), answer(500, Some("9999"))).await;
        let next = recorded[0].1.next_attempt_at.expect("scheduled");
        assert_eq!(recorded[0].1.status, DeliveryStatus::Failed);
        assert!(
            next >= start() + chrono::Duration::seconds(5) && next < start() + chrono::Duration::seconds(6),
            "5 s + jitter, Retry-After ignored on a 500: {next}"
        );
        let (recorded, _, _) = run(delivery(0), answer(503, Some("120"))).await;
        assert_eq!(recorded[0].1.next_attempt_at, Some(start() + chrono::Duration::seconds(120)));
        let (recorded, _, _) = run(delivery(0), Err(SendError::Timeout)).await;
        assert_eq!(recorded[0].0.error.as_deref(), Some("timed out"));
        assert_eq!(recorded[0].1.status, DeliveryStatus::Failed);
    }

    #[tokio::test]
    async fn the_last_attempt_ends_dead_and_410_disables_the_endpoint() {
        // The first attempt and one per delay of the schedule: the eighth is the last.
        let (recorded, _, gone) = run(delivery(7), answer(500, None)).await;
        assert_eq!(recorded[0].1, AttemptOutcome { status: DeliveryStatus::Dead, next_attempt_at: None });
        assert_eq!(gone, 0);
        let (recorded, _, gone) = run(delivery(0), answer(410, None)).await;
        assert_eq!(recorded[0].1.status, DeliveryStatus::Dead);
        assert_eq!(gone, 1);
    }

    #[test]
    fn bodies_are_cut_at_4_kib_on_a_character_boundary() {
        assert_eq!(cut("short"), "short");
        let long = "é".repeat(3000);
        let kept = cut(&long);
        assert!(kept.len() <= 4096 && long.starts_with(&kept));
        assert_eq!(kept.len(), 4096);
        assert_eq!(cut("a\0b\u{1b}c\nd"), "abc\nd", "no NUL or escapes survive");
    }
}
