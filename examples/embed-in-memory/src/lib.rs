//! Tenantry embedded in another Rust service, with no database, no web framework and no
//! network: the auth, organization, quota and webhook use cases built by the composition root
//! ([`Tenantry`]) over the in-memory adapters and the crypto adapter, driven by a realistic
//! flow.
//!
//! [`build`] is what a service copies: one [`MemoryDatabase`] shared by every repository (so
//! a change, its audit entry and its webhook event commit together), in-process cache,
//! counters, object storage and tasks, a [`RecordingMailer`] standing in for mail, and an
//! in-process [`WebhookSender`] standing in for the endpoints. [`run`] drives the flow and
//! reports each step; `main` prints it, and the tests run it.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context, anyhow, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use rand::rngs::OsRng;
use tenantry_adapter_crypto::{
    Argon2Hasher, Argon2Settings, Ed25519AccessTokens, RandomSecrets, Rfc6238Totp, XChaChaCipher,
};
use tenantry_adapter_memory::{
    InMemoryApiKeyRepository, InMemoryAuditLog, InMemoryCache, InMemoryDeliveryQueue, InMemoryFileRepository,
    InMemoryInvitationRepository, InMemoryMailOutbox, InMemoryObjectStorage, InMemoryOneTimeTokenRepository,
    InMemoryOrgRepository, InMemoryPersonalDataReader, InMemoryPlanRepository, InMemoryRateLimitStore,
    InMemoryRoleRepository, InMemorySessionRepository, InMemoryTeamRepository, InMemoryTwoFactorRepository,
    InMemoryUsageStore, InMemoryUserRepository, InMemoryWebhookRepository, MemoryDatabase, RecordingMailer,
    SystemClock, TokioTasks, UuidV7Generator,
};
use tenantry_application::{
    AuthError, AuthSettings, ClientInfo, FileSettings, Job, LeasePolicy, MailSettings, MailTemplates, Policies, Ports,
    Principal, QuotaSettings, TenancyError, Tenantry, WebhookSettings, run_until_idle,
};
use tenantry_domain::audit::Origin;
use tenantry_domain::quota::{Limits, Plan, PlanCatalog, Quota};
use tenantry_domain::webhooks::{DeliveryStatus, secret_key, sign};
use tenantry_ports::{Clock, OutgoingWebhook, SendError, WebhookAnswer, WebhookSender};

/// Where links in mail point (the embedding service's own front end).
const PUBLIC_URL: &str = "https://app.example.com";

/// A password the strength policy accepts.
const PASSWORD: &str = "correct-horse-battery-staple-42";

/// Where the CRM sync endpoint listens (never contacted: the sender is in process).
const ENDPOINT_URL: &str = "https://hooks.example.com/tenantry";

/// The one plan of this service: two seats and one webhook endpoint, so the flow meets both
/// limits quickly.
fn starter_catalog() -> anyhow::Result<PlanCatalog> {
    let mut limits = Limits::default();
    limits.set(Quota::Members, Some(2));
    limits.set(Quota::WebhookEndpoints, Some(1));
    Ok(PlanCatalog::new(vec![Plan { name: "starter".to_owned(), limits }], "starter")?)
}

/// A [`WebhookSender`] that delivers in process: it records every request and answers
/// `204 No Content`, as a healthy endpoint would. A service could route to its own handler
/// here instead of the network.
#[derive(Debug, Default)]
pub struct InProcessReceiver {
    received: Mutex<Vec<OutgoingWebhook>>,
}

impl InProcessReceiver {
    /// Every request received, oldest first.
    pub fn received(&self) -> Vec<OutgoingWebhook> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[async_trait::async_trait]
impl WebhookSender for InProcessReceiver {
    async fn send(&self, request: &OutgoingWebhook) -> Result<WebhookAnswer, SendError> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner).push(request.clone());
        Ok(WebhookAnswer { status: 204, retry_after: None, body: String::new() })
    }

    fn refuses_literal(&self, _url: &str) -> Option<String> {
        None
    }
}

/// The embedded stack: every use case, and the in-process stand-ins the flow looks at.
pub struct Stack {
    /// Every use case, wired once by the composition root.
    pub app: Tenantry,
    /// The mail the use cases sent (verification links, invitations).
    pub mailer: Arc<RecordingMailer>,
    /// Work started after a call returned (mail, webhook attempts), to wait for.
    pub tasks: Arc<TokioTasks>,
    /// The webhook requests that were sent.
    pub receiver: Arc<InProcessReceiver>,
}

impl Stack {
    /// The token of the last mail to `to` whose link goes to `path` (`verify-email`,
    /// `accept-invitation`), once the background mail has gone.
    async fn mailed_token(&self, to: &str, path: &str) -> anyhow::Result<String> {
        self.tasks.wait_idle().await;
        // Mail waits in the outbox until the mail job sends it: step it here, as a worker would.
        let sender: Arc<dyn Job> = self.app.mail_sender();
        run_until_idle(&[sender], 1000).await.context("send the queued mail")?;
        let marker = format!("/{path}?token=");
        let mail = self
            .mailer
            .sent()
            .into_iter()
            .rev()
            .find(|mail| mail.to.as_str() == to && mail.text.contains(&marker))
            .ok_or_else(|| anyhow!("no {path} mail to {to}"))?;
        let start = mail.text.find(&marker).map(|at| at + marker.len()).unwrap_or_default();
        let token: String =
            mail.text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
        ensure!(!token.is_empty(), "the {path} mail to {to} carries no token");
        Ok(token)
    }
}

/// Wires the use cases over in-memory adapters and the crypto adapter. Must run inside a
/// tokio runtime (background tasks are spawned on it).
///
/// # Errors
/// When a key cannot be made or the plan catalog is refused.
pub fn build() -> anyhow::Result<Stack> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let db = MemoryDatabase::new();
    let mailer = Arc::new(RecordingMailer::default());
    let tasks = Arc::new(TokioTasks::new());
    let receiver = Arc::new(InProcessReceiver::default());
    let signing_key = ed25519_dalek::SigningKey::generate(&mut OsRng);
    let mut cipher_key = [0_u8; 32];
    OsRng.fill_bytes(&mut cipher_key);
    let ports = Ports {
        users: Arc::new(InMemoryUserRepository::new(db.clone())),
        sessions: Arc::new(InMemorySessionRepository::new(db.clone())),
        tokens: Arc::new(InMemoryOneTimeTokenRepository::new(db.clone())),
        two_factor: Arc::new(InMemoryTwoFactorRepository::new(db.clone())),
        footprint: Arc::new(InMemoryPersonalDataReader::new(db.clone())),
        orgs: Arc::new(InMemoryOrgRepository::new(db.clone())),
        roles: Arc::new(InMemoryRoleRepository::new(db.clone())),
        invitations: Arc::new(InMemoryInvitationRepository::new(db.clone())),
        teams: Arc::new(InMemoryTeamRepository::new(db.clone())),
        api_keys: Arc::new(InMemoryApiKeyRepository::new(db.clone())),
        audit: Arc::new(InMemoryAuditLog::new(db.clone())),
        plans: Arc::new(InMemoryPlanRepository::new(db.clone())),
        durable_usage: Arc::new(InMemoryUsageStore::new(clock.clone())),
        metered_usage: Arc::new(InMemoryUsageStore::new(clock.clone())),
        rate_limits: Arc::new(InMemoryRateLimitStore::new()),
        webhooks: Arc::new(InMemoryWebhookRepository::new(db.clone())),
        deliveries: Arc::new(InMemoryDeliveryQueue::new(db.clone())),
        webhook_sender: receiver.clone(),
        files: Arc::new(InMemoryFileRepository::new(db.clone())),
        outbox: Arc::new(InMemoryMailOutbox::new(db)),
        storage: Arc::new(InMemoryObjectStorage::new(clock.clone())),
        cache: Arc::new(InMemoryCache::new(clock.clone())),
        broadcast: None,
        mailer: mailer.clone(),
        hasher: Arc::new(Argon2Hasher::new(Argon2Settings::default()).context("password hasher")?),
        access_tokens: Arc::new(
            Ed25519AccessTokens::new("embed-in-memory".to_owned(), &signing_key, &[]).context("token signer")?,
        ),
        totp: Arc::new(Rfc6238Totp::new("embed-in-memory")),
        cipher: Arc::new(XChaChaCipher::from_base64(&STANDARD.encode(cipher_key)).context("secret cipher")?),
        secrets: Arc::new(RandomSecrets),
        clock,
        ids: Arc::new(UuidV7Generator),
        tasks: tasks.clone(),
    };
    let policies = Policies {
        // Sign-in needs a verified address, so the flow proves the mailbox first.
        auth: AuthSettings::new(PUBLIC_URL.to_owned(), 5, true),
        // Counters are in this process: no leases to amortise a network round trip.
        quotas: QuotaSettings { catalog: starter_catalog()?, lease: LeasePolicy::NONE, ..QuotaSettings::default() },
        webhooks: WebhookSettings { https_only: true, ..WebhookSettings::default() },
        files: FileSettings::default(),
        rate_lease: LeasePolicy::NONE,
        mail: MailSettings::default(),
        mail_templates: Arc::new(MailTemplates::embedded()),
    };
    Ok(Stack { app: Tenantry::build(ports, policies), mailer, tasks, receiver })
}

/// What the flow did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Steps that passed (all of them: a failing step ends the flow with an error).
    pub steps: usize,
    /// The event types the webhook endpoint received, each signed with its secret.
    pub delivered: Vec<String>,
    /// Entries of the organization's audit chain, verified intact.
    pub audit_entries: u64,
}

/// Prints numbered steps.
struct Steps<'a> {
    out: &'a mut dyn Write,
    done: usize,
}

impl Steps<'_> {
    fn pass(&mut self, what: &str) -> anyhow::Result<()> {
        self.done += 1;
        writeln!(self.out, "[{:>2}] ok  {what}", self.done).context("write the report")
    }
}

/// Registers `email`, proves the mailbox with the mailed link, and signs in.
async fn onboard(stack: &Stack, steps: &mut Steps<'_>, email: &str, name: &str) -> anyhow::Result<Principal> {
    let auth = stack.app.auth();
    let client = ClientInfo { user_agent: Some("embed-in-memory".to_owned()), ip: None };
    let user = auth.register(email, PASSWORD, Some(name)).await.with_context(|| format!("register {email}"))?;
    steps.pass(&format!("registered {} ({})", user.email, user.id))?;
    match auth.login(email, PASSWORD, None, &client).await {
        Err(AuthError::EmailNotVerified) => {}
        other => bail!("signing in before verifying should be refused, got {other:?}"),
    }
    let token = stack.mailed_token(email, "verify-email").await?;
    auth.verify_email(&token).await.context("verify the address")?;
    steps.pass(&format!("{email} verified with the mailed link (refused to sign in before)"))?;
    let tokens = auth.login(email, PASSWORD, None, &client).await.with_context(|| format!("sign in {email}"))?;
    let principal = auth.authenticate(&tokens.access_token).await.context("authenticate the access token")?;
    ensure!(principal.user_id == user.id, "the access token names another user");
    steps.pass(&format!("{email} signed in; the access token authenticates"))?;
    Ok(principal)
}

/// Checks a delivered request's Standard Webhooks signature with the endpoint's secret.
fn signed_with(request: &OutgoingWebhook, secret: &str) -> anyhow::Result<String> {
    let header = |name: &str| {
        request.headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str()).context(name.to_owned())
    };
    let id = header("webhook-id")?;
    let timestamp: i64 = header("webhook-timestamp")?.parse().context("a numeric webhook-timestamp")?;
    let key = secret_key(secret).context("a whsec_ secret")?;
    let expected = sign(&key, id, timestamp, &request.body);
    ensure!(
        header("webhook-signature")?.split(' ').any(|signature| signature == expected),
        "the delivery is not signed with the endpoint's secret"
    );
    let body: serde_json::Value = serde_json::from_slice(&request.body).context("a JSON body")?;
    body["type"].as_str().map(str::to_owned).context("an event type in the body")
}

/// Runs the flow, writing one line per step to `out`.
///
/// # Errors
/// The first step that did not go as expected, with its cause.
pub async fn run(out: &mut dyn Write) -> anyhow::Result<Summary> {
    let stack = build()?;
    let mut steps = Steps { out, done: 0 };
    let (tenancy, invitations, webhooks) = (stack.app.tenancy(), stack.app.invitations(), stack.app.webhooks());

    let alice = onboard(&stack, &mut steps, "alice@example.com", "Alice").await?;
    let org = tenancy.create_org(alice, Origin::default(), "Acme", "acme").await.context("create the org")?;
    let owner = tenancy.access(alice, org.id).await.context("the owner's access")?;
    steps.pass(&format!("alice created org `{}` on plan `{}`", org.slug.as_str(), org.plan))?;

    let subscribed = vec!["member.added".to_owned(), "member.role_changed".to_owned()];
    let endpoint = webhooks
        .create(&owner, ENDPOINT_URL, subscribed.clone(), Some("CRM sync".to_owned()))
        .await
        .context("subscribe a webhook endpoint")?;
    steps.pass(&format!("webhook endpoint subscribed to {}", subscribed.join(", ")))?;
    match webhooks.create(&owner, "https://hooks.example.com/second", Vec::new(), None).await {
        Err(TenancyError::QuotaExceeded(refusal)) if refusal.quota == Quota::WebhookEndpoints => {
            steps.pass(&format!(
                "a second endpoint is refused: quota {} ({}/{})",
                refusal.quota, refusal.used, refusal.limit
            ))?;
        }
        other => bail!("a second endpoint on the starter plan should pass the quota, got {other:?}"),
    }

    let bob = onboard(&stack, &mut steps, "bob@example.com", "Bob").await?;
    let invitation = invitations.invite(&owner, "bob@example.com", "member").await.context("invite bob")?;
    steps.pass(&format!("alice invited {} as {}", invitation.email, invitation.role))?;
    let token = stack.mailed_token("bob@example.com", "accept-invitation").await?;
    let (joined, role) = invitations.accept(bob, Origin::default(), &token).await.context("bob accepts")?;
    ensure!(joined == org.id && role == "member", "bob joined {joined} as {role}");
    steps.pass("bob accepted the mailed invitation and is a member")?;

    let changed = tenancy.change_role(&owner, bob.user_id, "admin").await.context("make bob an admin")?;
    let members = tenancy.members(&owner, None, 10).await.context("list the members")?;
    let bob_role = members.iter().find(|m| m.user_id == bob.user_id).map(|m| m.role.clone());
    ensure!(bob_role.as_deref() == Some("admin"), "bob's role reads {bob_role:?}");
    steps.pass(&format!("alice changed bob's role to {}", changed.name()))?;

    match invitations.invite(&owner, "carol@example.com", "member").await {
        Err(TenancyError::QuotaExceeded(refusal)) if refusal.quota == Quota::Members => {
            steps.pass(&format!(
                "inviting carol is refused: quota {} ({}/{})",
                refusal.quota, refusal.used, refusal.limit
            ))?;
        }
        other => bail!("a third seat on the starter plan should pass the quota, got {other:?}"),
    }

    stack.app.dispatcher().run_once().await.context("a dispatcher step")?;
    stack.tasks.wait_idle().await;
    let delivered = stack
        .receiver
        .received()
        .iter()
        .map(|request| signed_with(request, &endpoint.secret))
        .collect::<anyhow::Result<Vec<String>>>()?;
    let kinds: BTreeSet<&str> = delivered.iter().map(String::as_str).collect();
    ensure!(
        delivered.len() == 2 && kinds == BTreeSet::from(["member.added", "member.role_changed"]),
        "expected member.added and member.role_changed once each, got {delivered:?}"
    );
    let deliveries = webhooks.deliveries(&owner, endpoint.endpoint.id, None, 10).await.context("list deliveries")?;
    ensure!(
        deliveries.len() == 2 && deliveries.iter().all(|d| d.status == DeliveryStatus::Succeeded),
        "deliveries read {deliveries:?}"
    );
    steps.pass(&format!(
        "webhooks queued with the changes and delivered in process, signed: {}",
        delivered.join(", ")
    ))?;

    let report = stack.app.audit().verify(&owner).await.context("verify the audit chain")?;
    ensure!(report.valid, "the audit chain is broken at {:?}", report.first_broken_id);
    steps.pass(&format!("the org's audit chain verifies ({} entries)", report.entries_checked))?;

    Ok(Summary { steps: steps.done, delivered, audit_entries: report.entries_checked })
}
