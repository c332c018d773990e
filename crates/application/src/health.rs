//! Readiness: is every dependency this process needs able to serve?

use std::sync::Arc;

use futures_util::future::join_all;
use serde::Serialize;
use tenantry_ports::{Cache, HealthProbe, ObjectStorage, ProbeError, StorageError};

/// The outcome of one dependency's probe, as shown in the readiness report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Reached and usable.
    Ok,
    /// Could not be reached.
    Unreachable,
    /// Reached, but not able to serve yet.
    NotReady,
}

/// Every dependency's outcome, in the order the probes were registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadinessReport {
    /// `(probe name, outcome)` pairs.
    pub checks: Vec<(&'static str, CheckOutcome)>,
}

impl ReadinessReport {
    /// Ready only when every check passed: a replica that cannot reach its database must leave
    /// the load balancer's rotation rather than answer 500s.
    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|(_, outcome)| *outcome == CheckOutcome::Ok)
    }

    /// The names of the checks that failed, for logs and operators.
    pub fn failing(&self) -> Vec<&'static str> {
        self.checks.iter().filter(|(_, outcome)| *outcome != CheckOutcome::Ok).map(|(name, _)| *name).collect()
    }
}

/// Runs every registered probe concurrently and reports each by name.
pub struct HealthService {
    probes: Vec<Arc<dyn HealthProbe>>,
}

impl HealthService {
    /// `probes` are the dependencies readiness requires; each adapter bounds its own check in
    /// time (pool and connect timeouts), so one slow dependency cannot hang the report.
    pub fn new(probes: Vec<Arc<dyn HealthProbe>>) -> Self {
        Self { probes }
    }

    /// Probes every dependency once. Never fails: a failing dependency is an outcome, logged
    /// here with its cause (which the HTTP answer does not reveal).
    #[tracing::instrument(name = "application.health.readiness", skip_all)]
    pub async fn readiness(&self) -> ReadinessReport {
        let results = join_all(self.probes.iter().map(|probe| probe.check())).await;
        let checks = self
            .probes
            .iter()
            .zip(results)
            .map(|(probe, result)| {
                let outcome = match result {
                    Ok(()) => CheckOutcome::Ok,
                    Err(ProbeError::Unreachable(cause)) => {
                        tracing::warn!(check = probe.name(), %cause, "dependency unreachable");
                        CheckOutcome::Unreachable
                    }
                    Err(ProbeError::NotReady(cause)) => {
                        tracing::warn!(check = probe.name(), %cause, "dependency not ready");
                        CheckOutcome::NotReady
                    }
                };
                (probe.name(), outcome)
            })
            .collect();
        ReadinessReport { checks }
    }
}

/// Readiness of whatever [`Cache`] adapter is wired in, through its `ping`.
pub struct CacheProbe {
    cache: Arc<dyn Cache>,
}

impl CacheProbe {
    /// Probes `cache`, so any [`Cache`] adapter gets a readiness check without writing one.
    pub fn new(cache: Arc<dyn Cache>) -> Self {
        Self { cache }
    }
}

#[async_trait::async_trait]
impl HealthProbe for CacheProbe {
    fn name(&self) -> &'static str {
        "cache"
    }

    async fn check(&self) -> Result<(), ProbeError> {
        self.cache.ping().await.map_err(|err| ProbeError::Unreachable(error_chain(&err)))
    }
}

/// Readiness of the object store (the bucket or folder is reachable and writable), through
/// [`ObjectStorage::probe`]: named `storage` in the report.
pub struct StorageProbe {
    storage: Arc<dyn ObjectStorage>,
}

impl StorageProbe {
    /// Probes `storage`, so any [`ObjectStorage`] adapter gets a readiness check without
    /// writing one.
    pub fn new(storage: Arc<dyn ObjectStorage>) -> Self {
        Self { storage }
    }
}

#[async_trait::async_trait]
impl HealthProbe for StorageProbe {
    fn name(&self) -> &'static str {
        "storage"
    }

    async fn check(&self) -> Result<(), ProbeError> {
        self.storage.probe().await.map_err(|err| match err {
            StorageError::Unavailable(_) => ProbeError::Unreachable(error_chain(&err)),
            other => ProbeError::NotReady(error_chain(&other)),
        })
    }
}

/// `error: cause: root cause`, for logs.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenantry_ports::{CacheError, MockCache, MockHealthProbe};

    fn probe(name: &'static str, result: fn() -> Result<(), ProbeError>) -> Arc<dyn HealthProbe> {
        let mut mock = MockHealthProbe::new();
        mock.expect_name().return_const(name);
        mock.expect_check().times(1).returning(result);
        Arc::new(mock)
    }

    #[tokio::test]
    async fn ready_when_every_probe_passes() {
        let service = HealthService::new(vec![probe("database", || Ok(())), probe("cache", || Ok(()))]);
        let report = service.readiness().await;
        assert!(report.is_ready());
        assert_eq!(report.checks, vec![("database", CheckOutcome::Ok), ("cache", CheckOutcome::Ok)]);
    }

    #[tokio::test]
    async fn a_failing_probe_is_named_and_the_others_still_run() {
        let service = HealthService::new(vec![
            probe("database", || Err(ProbeError::NotReady("migrations pending".into()))),
            probe("cache", || Err(ProbeError::Unreachable("refused".into()))),
            probe("storage", || Ok(())),
        ]);
        let report = service.readiness().await;
        assert!(!report.is_ready());
        assert_eq!(report.failing(), vec!["database", "cache"]);
        assert_eq!(report.checks[0].1, CheckOutcome::NotReady);
        assert_eq!(report.checks[1].1, CheckOutcome::Unreachable);
    }

    #[tokio::test]
    async fn no_probes_means_ready() {
        assert!(HealthService::new(Vec::new()).readiness().await.is_ready());
    }

    #[tokio::test]
    async fn the_cache_probe_reports_an_unreachable_cache() {
        let mut cache = MockCache::new();
        cache.expect_ping().times(1).returning(|| Err(CacheError::Unavailable(anyhow::anyhow!("connection refused"))));
        let result = CacheProbe::new(Arc::new(cache)).check().await;
        assert!(matches!(result, Err(ProbeError::Unreachable(_))));
    }

    #[tokio::test]
    async fn the_cache_probe_passes_when_ping_answers() {
        let mut cache = MockCache::new();
        cache.expect_ping().times(1).returning(|| Ok(()));
        assert!(CacheProbe::new(Arc::new(cache)).check().await.is_ok());
    }
}
