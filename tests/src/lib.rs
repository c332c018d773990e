//! The black-box test harness: starts the real server (the same [`Application`] the binary
//! runs) on a random port with its own data folder and database, waits until it is ready, and
//! hands back a typed HTTP client.
//!
//! Which stack a test runs on is chosen by `TENANTRY_TEST_STACK`:
//! - `embedded` (the default): SQLite in a temporary folder and the in-process cache, exactly
//!   what `cargo run` uses;
//! - `services`: a fresh PostgreSQL database on `TENANTRY_TEST_DATABASE_URL` and a unique key
//!   prefix on `TENANTRY_TEST_REDIS_URL` (both required).

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::Value;
use std::sync::Arc;
use tempfile::TempDir;
use tenantry_server::config::{Settings, Sources};

pub use tenantry_adapter_memory::ManualClock;
pub use tenantry_ports::Clock;
use tenantry_server::startup::{Application, ServeOptions, ServerHandle, Services};
use tenantry_testkit::postgres::ScratchPostgres;

/// Which backends the app under test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// SQLite + in-process cache.
    Embedded,
    /// PostgreSQL + Redis.
    Services,
}

impl Stack {
    /// The stack named by `TENANTRY_TEST_STACK`.
    ///
    /// # Panics
    /// On an unknown name: a typo must not silently test the wrong stack.
    pub fn from_env() -> Self {
        match std::env::var("TENANTRY_TEST_STACK").as_deref() {
            Err(_) | Ok("" | "embedded") => Self::Embedded,
            Ok("services") => Self::Services,
            Ok(other) => {
                panic!("TENANTRY_TEST_STACK must be `embedded` or `services`, not `{other}`")
            }
        }
    }
}

/// A running server under test. Dropping it stops the server and removes its data.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// The bound port.
    pub port: u16,
    /// A client that does not follow redirects (tests assert them).
    pub client: reqwest::Client,
    /// The stack in use.
    pub stack: Stack,
    handle: ServerHandle,
    database: tenantry_adapter_sql::SqlDatabase,
    tasks: Arc<tenantry_server::tasks::TrackedTasks>,
    services: Services,
    data: Option<TempDir>,
    postgres: Option<ScratchPostgres>,
    /// What it was started with, so [`TestApp::replica`] can start another one like it.
    pairs: Vec<(String, String)>,
    clock: Option<Arc<ManualClock>>,
}

/// Starts the server on the stack chosen by `TENANTRY_TEST_STACK`, with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the server with extra `TENANTRY_*` settings layered over the test defaults.
///
/// # Panics
/// When the server cannot start or does not become live: the test cannot proceed.
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_with_clock(overrides, None).await
}

/// Starts the server with a manual clock that the test moves (token expiry without waiting).
pub async fn spawn_app_with_manual_clock(overrides: &[(&str, &str)]) -> (TestApp, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let app = spawn_app_with_clock(overrides, Some(clock.clone())).await;
    (app, clock)
}

/// Starts the server on PostgreSQL (as the non-bypass application role, so Row-Level Security
/// binds it) with the in-process cache, whatever `TENANTRY_TEST_STACK` says: for tests that are
/// about PostgreSQL itself. `None` outside CI when no PostgreSQL is configured.
///
/// # Panics
/// Under `CI=true` without `TENANTRY_TEST_DATABASE_URL`, or when the server cannot start.
pub async fn spawn_app_on_postgres() -> Option<TestApp> {
    let server = tenantry_testkit::env::postgres_url()?;
    Some(launch(Stack::Services, &[], None, Some(server), None).await)
}

/// A server on PostgreSQL and Redis (`TENANTRY_TEST_DATABASE_URL`, `TENANTRY_TEST_REDIS_URL`)
/// with `overrides`, whatever `TENANTRY_TEST_STACK` says: for tests of the production shape.
/// `None` when the services are not configured outside CI.
pub async fn spawn_app_on_services_with(overrides: &[(&str, &str)]) -> Option<TestApp> {
    let server = tenantry_testkit::env::postgres_url()?;
    let redis = tenantry_testkit::env::redis_url()?;
    Some(launch(Stack::Services, overrides, None, Some(server), Some(redis)).await)
}

async fn spawn_app_with_clock(overrides: &[(&str, &str)], clock: Option<Arc<ManualClock>>) -> TestApp {
    let stack = Stack::from_env();
    let (server, redis) = if stack == Stack::Services {
        let server = std::env::var("TENANTRY_TEST_DATABASE_URL")
            .expect("TENANTRY_TEST_STACK=services needs TENANTRY_TEST_DATABASE_URL");
        let redis = std::env::var("TENANTRY_TEST_REDIS_URL")
            .expect("TENANTRY_TEST_STACK=services needs TENANTRY_TEST_REDIS_URL");
        (Some(server), Some(redis))
    } else {
        (None, None)
    };
    launch(stack, overrides, clock, server, redis).await
}

async fn launch(
    stack: Stack,
    overrides: &[(&str, &str)],
    clock: Option<Arc<ManualClock>>,
    postgres_server: Option<String>,
    redis: Option<String>,
) -> TestApp {
    let data = tempfile::tempdir().expect("temporary data folder");
    let mut pairs: Vec<(String, String)> = vec![
        ("TENANTRY_BIND".into(), "127.0.0.1:0".into()),
        ("TENANTRY_DATA_DIR".into(), data.path().display().to_string()),
        ("TENANTRY_WORKERS".into(), "2".into()),
        ("TENANTRY_LOG".into(), "warn".into()),
        // Suites register many accounts from one address; the limit itself is tested with
        // its own settings.
        ("TENANTRY_RATE_LIMIT_ANONYMOUS".into(), "1000000/min".into()),
    ];
    let mut postgres = None;
    if let Some(server) = postgres_server {
        let scratch = ScratchPostgres::create(&server).await;
        pairs.push(("TENANTRY_DATABASE_URL".into(), scratch.url.clone()));
        postgres = Some(scratch);
    }
    if let Some(redis) = redis {
        pairs.push(("TENANTRY_REDIS_URL".into(), redis));
        pairs.push(("TENANTRY_REDIS_KEY_PREFIX".into(), format!("tenantry-test:{}:", uuid::Uuid::now_v7())));
    }
    for (name, value) in overrides {
        pairs.retain(|(existing, _)| existing != name);
        pairs.push(((*name).to_owned(), (*value).to_owned()));
    }
    start(stack, pairs, clock, Some(data), postgres).await
}

/// Starts a server with `pairs` as its settings; `data` and `postgres` are what it owns (and
/// removes when dropped).
async fn start(
    stack: Stack,
    pairs: Vec<(String, String)>,
    clock: Option<Arc<ManualClock>>,
    data: Option<TempDir>,
    postgres: Option<ScratchPostgres>,
) -> TestApp {
    let settings =
        Settings::load(&Sources::from_pairs(pairs.clone())).unwrap_or_else(|err| panic!("test settings: {err}"));
    // Logs and trace ids; no export in the in-process harness (the OTLP tests run the binary).
    let _ = tenantry_server::telemetry::init(&settings.log_filter, settings.log_format, None);
    let options = ServeOptions { migrate: true, worker: true, handle_signals: false };
    let services = match clock.clone() {
        Some(clock) => Services::build_with_clock(&settings, clock).await,
        None => Services::build(&settings).await,
    }
    .unwrap_or_else(|err| panic!("services: {err}"));
    let app = Application::build_with_services(settings, options, services)
        .await
        .unwrap_or_else(|err| panic!("server start: {err}"));
    let port = app.port();
    let handle = app.handle();
    let database = app.services().database.clone();
    let tasks = app.services().tasks.clone();
    let services = app.services().clone();
    tokio::spawn(app.run_until_stopped());
    // reqwest's TLS (enabled for the webhook sender) needs a process-wide crypto provider;
    // an error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("tenantry-tests/1.0")
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client");
    let test_app = TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client,
        stack,
        handle,
        database,
        tasks,
        services,
        data,
        postgres,
        pairs,
        clock,
    };
    test_app.wait_until_live().await;
    test_app
}

impl TestApp {
    /// A second server on the same database, cache, key prefix, signing key and clock: another
    /// replica of the same deployment. Stop it before this one (which owns the data).
    ///
    /// With Redis it returns once both replicas listen for each other's invalidations, so a
    /// change made right away is heard.
    pub async fn replica(&self) -> TestApp {
        let replica = start(self.stack, self.pairs.clone(), self.clock.clone(), None, None).await;
        let setting = |name: &str| self.pairs.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        if let (Some(url), Some(prefix)) = (setting("TENANTRY_REDIS_URL"), setting("TENANTRY_REDIS_KEY_PREFIX")) {
            let mut config = tenantry_adapter_redis::RedisConfig::new(url.into());
            config.key_prefix = prefix;
            let pool = tenantry_adapter_redis::RedisPool::connect(&config).expect("valid Redis URL");
            let broadcast = tenantry_adapter_redis::RedisBroadcast::new(pool);
            let mut listening = 0;
            for _ in 0..200 {
                listening = broadcast.subscribers().await.expect("PUBSUB NUMSUB");
                if listening >= 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert!(listening >= 2, "both replicas should listen for invalidations, {listening} do");
        }
        replica
    }

    /// `address` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GET `path`.
    ///
    /// # Panics
    /// When the server does not answer.
    pub async fn get(&self, path: &str) -> Response {
        self.client.get(self.url(path)).send().await.expect("request sent")
    }

    async fn wait_until_live(&self) {
        for _ in 0..200 {
            if let Ok(response) = self.client.get(self.url("/health/live")).send().await
                && response.status() == StatusCode::OK
            {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the server did not become live");
    }

    /// Sends every mail waiting in the outbox now (as the worker would), and waits for mail
    /// another worker of this server has claimed: what a test calls instead of sleeping until
    /// the mail worker gets to it. Returns how many mails still wait (0 unless the relay is
    /// down and they wait for a retry).
    ///
    /// # Panics
    /// When the outbox cannot be read.
    pub async fn deliver_mail(&self) -> u64 {
        use tenantry_application::Job;
        let sender: Arc<dyn Job> = self.services.app.mail_sender();
        let outbox = self.services.app.ports().outbox.clone();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            // Work after a response (token mails of the "202 always" flows) queues mail too.
            self.tasks.wait_idle().await;
            // A step that fails (the relay is down) leaves its mail for a retry: not an error.
            let _ = tenantry_application::run_until_idle(std::slice::from_ref(&sender), 10_000).await;
            let waiting = outbox.depth().await.expect("the outbox answers");
            let due = outbox.next_due().await.expect("the outbox answers");
            let now = self.services.clock.now();
            // Done when nothing waits, or what waits is scheduled for a retry later.
            if waiting == 0 || due.is_some_and(|due| due > now) || tokio::time::Instant::now() > deadline {
                return waiting;
            }
            // The server's own worker holds a claim on some mail: give it the moment it needs.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The `.eml` files the server wrote, oldest first, once its background work is done and
    /// the mail outbox is drained.
    pub async fn mails(&self) -> Vec<String> {
        self.deliver_mail().await;
        let Some(data) = &self.data else { return Vec::new() };
        let Ok(entries) = std::fs::read_dir(data.path().join("mail")) else { return Vec::new() };
        let mut files: Vec<(std::time::SystemTime, String)> = entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "eml"))
            .filter_map(|entry| {
                let modified = entry.metadata().ok()?.modified().ok()?;
                Some((modified, std::fs::read_to_string(entry.path()).ok()?))
            })
            .collect();
        files.sort_by_key(|(modified, _)| *modified);
        files.into_iter().map(|(_, text)| decode_quoted_printable(&text)).collect()
    }

    /// The token of the newest e-mailed link to `path` (`verify-email`, `reset-password`) sent
    /// to `email`.
    ///
    /// # Panics
    /// When there is no such mail.
    pub async fn token_from_mail(&self, email: &str, path: &str) -> String {
        self.try_token_from_mail(email, path).await.unwrap_or_else(|| panic!("no {path} mail to {email}"))
    }

    /// As [`Self::token_from_mail`], `None` when there is no such mail.
    pub async fn try_token_from_mail(&self, email: &str, path: &str) -> Option<String> {
        let marker = format!("/{path}?token=");
        self.mails().await.into_iter().rev().filter(|mail| mail.contains(&format!("To: {email}"))).find_map(|mail| {
            let start = mail.find(&marker)? + marker.len();
            let token: String =
                mail[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
            (!token.is_empty()).then_some(token)
        })
    }

    /// Runs `sql` (one text column) directly against the app's database, behind the API's back:
    /// for tests that check what is stored, or tamper with it.
    ///
    /// # Panics
    /// When the query fails.
    pub async fn raw_query_strings(&self, sql: &str) -> Vec<String> {
        use sea_orm::{ConnectionTrait, Statement};
        let db = self.behind_the_back().await;
        let rows = db
            .query_all_raw(Statement::from_string(db.get_database_backend(), sql.to_owned()))
            .await
            .expect("query runs");
        rows.iter().map(|row| row.try_get_by_index::<String>(0).expect("a text column")).collect()
    }

    /// A connection that reaches every row, as someone with direct database access would: on
    /// PostgreSQL the superuser (past Row-Level Security), on SQLite the file itself.
    ///
    /// # Panics
    /// When PostgreSQL cannot be reached.
    pub async fn behind_the_back(&self) -> sea_orm::DatabaseConnection {
        match &self.postgres {
            Some(scratch) => sea_orm::Database::connect(&scratch.admin_url).await.expect("superuser connection"),
            None => self.database.connection().clone(),
        }
    }

    /// The app's database, for tests that seed or inspect rows directly.
    pub fn database(&self) -> &tenantry_adapter_sql::SqlDatabase {
        &self.database
    }

    /// Adds `user_id` to `org_id` with `role` behind the API's back (invitations are the API's
    /// way), so a test can set up a member in one line.
    ///
    /// # Panics
    /// On a malformed id or a failed insert.
    pub async fn add_member(&self, org_id: &str, user_id: &str, role: &str) {
        use tenantry_domain::audit::{ActorKind, AuditEvent, Origin};
        let (org, user): (tenantry_domain::OrgId, tenantry_domain::UserId) =
            (org_id.parse().expect("org id"), user_id.parse().expect("user id"));
        let event = AuditEvent::new(
            uuid::Uuid::now_v7(),
            org,
            "member.added",
            (ActorKind::User, user.as_uuid()),
            ("user", Some(user_id.to_owned())),
            Origin::default(),
            chrono::Utc::now(),
            &serde_json::json!({"role": role, "via": "test seed"}),
        );
        // Through the server's own (cache-invalidating) repository.
        self.services.orgs().add_member(org, user, role, chrono::Utc::now(), &event).await.expect("member added");
    }

    /// Sends `method path` with one credential header (`authorization` or `x-api-key`) and an
    /// optional JSON body: the shape of most org-route calls.
    ///
    /// # Panics
    /// On an unknown method or a failed send.
    pub async fn send(&self, method: &str, path: &str, credential: (&str, &str), body: Option<Value>) -> Response {
        let mut request =
            self.client.request(method.parse().expect("method"), self.url(path)).header(credential.0, credential.1);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("sent")
    }

    /// Uploads `bytes` as a file named `name` to `org` (multipart, one `file` part), as the
    /// bearer `access`.
    ///
    /// # Panics
    /// When the server does not answer.
    pub async fn upload(&self, org: &str, access: &str, name: &str, bytes: &[u8]) -> Response {
        let (content_type, body) = multipart_file(name, bytes);
        self.client
            .post(self.url(&format!("/api/v1/orgs/{org}/files")))
            .bearer_auth(access)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("upload sent")
    }

    /// Uploads a small text file and returns its id.
    ///
    /// # Panics
    /// When the upload does not answer 201.
    pub async fn uploaded_file(&self, org: &str, access: &str, name: &str) -> String {
        let response = self.upload(org, access, name, format!("contents of {name}\n").as_bytes()).await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap_or_default());
        let body: Value = response.json().await.expect("json");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Creates an organization as `owner_access` and returns its id.
    ///
    /// # Panics
    /// When creation does not answer 201.
    pub async fn create_org(&self, owner_access: &str) -> String {
        let slug = format!("org-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        let response = self
            .post_json("/api/v1/orgs", &serde_json::json!({"name": "Test Org", "slug": slug}), Some(owner_access))
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap_or_default());
        let body: Value = response.json().await.expect("json");
        body["id"].as_str().expect("id").to_owned()
    }

    /// Stops the server gracefully and drops the scratch database.
    pub async fn stop(mut self) {
        self.handle.stop(true).await;
        if let Some(postgres) = self.postgres.take() {
            postgres.drop_database().await;
        }
        self.data.take();
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // A test that panicked before `stop`: stop without waiting (the database is dropped by
        // the next CI run's cleanup).
        drop(self.handle.stop(false));
    }
}

/// Undoes quoted-printable soft line breaks and `=XX` escapes, enough to read links in mail.
fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(byte) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A strong password for tests (zxcvbn score 4).
pub const PASSWORD: &str = "correct horse battery staple 42";

impl TestApp {
    /// POSTs `body` as JSON to `path`, with an optional bearer token.
    ///
    /// # Panics
    /// When the server does not answer.
    pub async fn post_json(&self, path: &str, body: &Value, bearer: Option<&str>) -> Response {
        let mut request = self.client.post(self.url(path)).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    /// GET with a bearer token.
    ///
    /// # Panics
    /// When the server does not answer.
    pub async fn get_auth(&self, path: &str, bearer: &str) -> Response {
        self.client.get(self.url(path)).bearer_auth(bearer).send().await.expect("request sent")
    }

    /// Creates a platform administrator (as `tenantry admin create-admin` does) and signs in:
    /// its access token.
    ///
    /// # Panics
    /// When creation or sign-in fails.
    pub async fn admin(&self) -> String {
        let email = format!("admin-{}@example.com", uuid::Uuid::now_v7().simple());
        let auth = self.services.auth(Arc::new(self.services.two_factor()));
        auth.create_admin(&email, PASSWORD).await.expect("admin created");
        self.login(&email, PASSWORD).await["access_token"].as_str().expect("token").to_owned()
    }

    /// Registers a fresh account (unique address) and returns its e-mail.
    ///
    /// # Panics
    /// When registration does not answer 201.
    pub async fn register(&self) -> String {
        let email = format!("user-{}@example.com", uuid::Uuid::now_v7().simple());
        let response = self
            .post_json("/api/v1/auth/register", &serde_json::json!({"email": email, "password": PASSWORD}), None)
            .await;
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap_or_default());
        email
    }

    /// Signs in and returns the token response body.
    ///
    /// # Panics
    /// When sign-in does not answer 200.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let response = self
            .post_json("/api/v1/auth/login", &serde_json::json!({"email": email, "password": password}), None)
            .await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
        response.json().await.expect("json")
    }

    /// Registers a fresh account and signs in: `(user id, access token)`, the shape most org
    /// tests need.
    ///
    /// # Panics
    /// When registration or sign-in fails.
    pub async fn user(&self) -> (String, String) {
        let (_, access, _) = self.signed_in_user().await;
        let me: Value = self.get_auth("/api/v1/users/me", &access).await.json().await.expect("json");
        (me["id"].as_str().expect("id").to_owned(), access)
    }

    /// Registers a fresh account and signs in: `(email, access token, refresh token)`.
    pub async fn signed_in_user(&self) -> (String, String, String) {
        let email = self.register().await;
        let tokens = self.login(&email, PASSWORD).await;
        let access = tokens["access_token"].as_str().expect("access token").to_owned();
        let refresh = tokens["refresh_token"].as_str().expect("refresh token").to_owned();
        (email, access, refresh)
    }
}

impl TestApp {
    /// Registers `email`, verifies it through its mail, signs in: the access token. Accepting
    /// an invitation needs a verified address.
    ///
    /// # Panics
    /// When a step does not answer as it should.
    pub async fn verified_user(&self, email: &str) -> String {
        let response = self
            .post_json("/api/v1/auth/register", &serde_json::json!({"email": email, "password": PASSWORD}), None)
            .await;
        assert_eq!(response.status(), 201);
        let token = self.token_from_mail(email, "verify-email").await;
        let verified = self.post_json("/api/v1/auth/verify-email", &serde_json::json!({"token": token}), None).await;
        assert_eq!(verified.status(), 204);
        self.login(email, PASSWORD).await["access_token"].as_str().expect("token").to_owned()
    }
}

/// A `multipart/form-data` body with one part `file` holding `bytes` under the file name
/// `name`: its content type (with the boundary) and its bytes.
pub fn multipart_file(name: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("tenantry-test-{}", uuid::Uuid::now_v7().simple());
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A fresh address, `label-<unique>@example.com`.
pub fn address(label: &str) -> String {
    format!("{label}-{}@example.com", uuid::Uuid::now_v7().simple())
}

/// Asserts the response is a problem+json with `status` and `code`, and returns its body.
///
/// # Panics
/// When it is not.
pub async fn assert_problem(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status().as_u16(), status, "status of {}", response.url());
    let body = assert_any_problem(response).await;
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], status, "{body}");
    body
}

/// Asserts the response is a well-formed problem+json whose body and header request ids agree,
/// and returns its body.
///
/// # Panics
/// When it is not.
pub async fn assert_any_problem(response: Response) -> Value {
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(content_type.starts_with("application/problem+json"), "content-type {content_type}");
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("every response carries x-request-id");
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["request_id"], request_id.as_str(), "body and header ids agree: {body}");
    for member in ["type", "title", "detail"] {
        assert!(body[member].is_string(), "problem lacks `{member}`: {body}");
    }
    body
}

/// A TCP relay on loopback to a real service (Redis) that a test can cut and restore, to see
/// what the server does while the service is unreachable, and that it recovers without a
/// restart.
pub struct Relay {
    /// `host:port` to connect to instead of the service.
    pub address: String,
    open: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Relay {
    /// A relay to `target` (`host:port`).
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start(target: &str) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let address = listener.local_addr().expect("relay address").to_string();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections: Arc<std::sync::Mutex<Vec<tokio::task::AbortHandle>>> = Arc::default();
        let (target, gate, live) = (target.to_owned(), open.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !gate.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                live.lock().expect("relay connections").push(task.abort_handle());
            }
        });
        Self { address, open, connections }
    }

    /// Drops every open connection and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        for task in self.connections.lock().expect("relay connections").drain(..) {
            task.abort();
        }
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
