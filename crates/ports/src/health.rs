/// Why a dependency failed its readiness probe; the readiness report shows the distinction so
/// an operator knows whether to look at the network or at the dependency's state.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The dependency did not answer in time or refused the connection.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// It answered, but not in a state Tenantry can serve with (e.g. migrations pending).
    #[error("not ready: {0}")]
    NotReady(String),
}

/// A dependency (database, cache, object store, mailer) that readiness depends on.
///
/// Each adapter that talks to something remote provides one, so `/health/ready` can name the
/// dependency that is down instead of answering a bare 503.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait::async_trait]
pub trait HealthProbe: Send + Sync {
    /// The name shown in the readiness report: `database`, `cache`, `storage`, `mail`.
    fn name(&self) -> &'static str;

    /// Checks the dependency once, cheaply.
    ///
    /// # Errors
    /// [`ProbeError::Unreachable`] when it cannot be reached; [`ProbeError::NotReady`] when it
    /// answers but cannot serve yet.
    async fn check(&self) -> Result<(), ProbeError>;
}
