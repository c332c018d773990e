//! The [`HealthProbe`] contract: what `/health/ready` relies on from each dependency's probe.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tenantry_ports::{HealthProbe, ProbeError};

/// Rules for a probe of a dependency that is up: a stable, short, lowercase name (it is a key
/// in the readiness report and a metric label), and checks that pass, also several at once.
///
/// # Panics
/// Naming the broken rule.
pub async fn run_contract(probe: Arc<dyn HealthProbe>) {
    let name = probe.name();
    assert!(!name.is_empty() && name.len() <= 32, "a short name: {name:?}");
    assert!(
        name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'),
        "a lowercase ASCII name (a report key and a metric label): {name:?}"
    );
    assert_eq!(probe.name(), name, "the name is stable");
    probe.check().await.unwrap_or_else(|err| panic!("{name}: a probe of a working dependency passes: {err}"));
    let checks = join_all((0..8).map(|_| probe.check())).await;
    assert!(checks.iter().all(Result::is_ok), "{name}: concurrent checks pass: {checks:?}");
}

/// The rule for a probe of a dependency that cannot be reached: the check answers
/// [`ProbeError::Unreachable`] within `bound` (a readiness probe must not hang on a dead
/// dependency — the orchestrator's own timeout would hide which one it was).
///
/// # Panics
/// Naming the broken rule.
pub async fn run_unreachable_contract(probe: Arc<dyn HealthProbe>, bound: Duration) {
    let name = probe.name();
    let result = tokio::time::timeout(bound, probe.check())
        .await
        .unwrap_or_else(|_| panic!("{name}: the check of an unreachable dependency hung past {bound:?}"));
    assert!(matches!(result, Err(ProbeError::Unreachable(_))), "{name}: expected Unreachable, got {result:?}");
}
