//! Which real backends the tests may use.
//!
//! Service-backed tests read `TENANTRY_TEST_DATABASE_URL` (a PostgreSQL server URL) and
//! `TENANTRY_TEST_REDIS_URL`. Without them a developer's `cargo test` runs the embedded
//! adapters only; under CI (`CI=true`) a missing URL is a failure, never a silent skip.

/// The URL in `var`, or `None` when the backend is not configured outside CI.
///
/// # Panics
/// When `CI` is `true` and `var` is unset: CI must exercise every backend.
pub fn backend_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("{var} must be set when CI=true: service-backed tests may not be skipped in CI")
        }
        _ => {
            eprintln!("{var} is not set: skipping the tests that need that backend");
            None
        }
    }
}

/// `TENANTRY_TEST_DATABASE_URL`: a PostgreSQL server the tests may create databases on.
pub fn postgres_url() -> Option<String> {
    backend_url("TENANTRY_TEST_DATABASE_URL")
}

/// `TENANTRY_TEST_REDIS_URL`: a Redis server the tests may write prefixed keys to.
pub fn redis_url() -> Option<String> {
    backend_url("TENANTRY_TEST_REDIS_URL")
}

/// A real SMTP server the mail tests may send to, and the folder where it stores what it
/// received (one `.eml` file per message): `TENANTRY_TEST_SMTP_URL` (`smtp://host:port`, plain,
/// with `AUTH` for the user and password of `TENANTRY_TEST_SMTP_AUTH`, `user:password`) and
/// `TENANTRY_TEST_SMTP_MAILDIR`. `.ci/run` starts aiosmtpd for them.
///
/// # Panics
/// When `CI` is `true` and they are unset.
pub fn smtp_server() -> Option<SmtpServer> {
    let url = backend_url("TENANTRY_TEST_SMTP_URL")?;
    let maildir = backend_url("TENANTRY_TEST_SMTP_MAILDIR")?;
    let auth = backend_url("TENANTRY_TEST_SMTP_AUTH")?;
    Some(SmtpServer { url, maildir: maildir.into(), auth })
}

/// Where the real SMTP server of the tests listens and stores.
#[derive(Debug, Clone)]
pub struct SmtpServer {
    /// `smtp://host:port`.
    pub url: String,
    /// One `.eml` file per received message.
    pub maildir: std::path::PathBuf,
    /// `user:password` it accepts.
    pub auth: String,
}

impl SmtpServer {
    /// The URL with the accepted credentials (`smtp://user:password@host:port`).
    pub fn url_with_credentials(&self) -> String {
        self.url.replacen("smtp://", &format!("smtp://{}@", self.auth), 1)
    }

    /// The received messages that contain `marker`, waiting up to `limit` for at least `count`.
    ///
    /// # Panics
    /// When they have not arrived in time.
    pub async fn received(&self, marker: &str, count: usize, limit: std::time::Duration) -> Vec<String> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let found: Vec<String> = std::fs::read_dir(&self.maildir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "eml"))
                        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
                        .filter(|message| message.contains(marker))
                        .collect()
                })
                .unwrap_or_default();
            if found.len() >= count {
                return found;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{count} message(s) with {marker} did not reach the SMTP server"
            );
            // The server writes files; nothing can wake this reader.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
