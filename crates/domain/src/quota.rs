//! Plans, quotas and their periods: the rules that decide how much an organization may use.
//!
//! A quota is either a *gauge* (how many exist now: members, stored bytes, webhook endpoints)
//! or a *period counter* (how many happened this period: API calls, uploads). A period counter
//! belongs to the key of its period, so a new month starts from zero without a cron job.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, Months, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// What a plan limits: each quota is a resource whose use costs the operator something or
/// must be bounded per tenant, so one organization cannot crowd out the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quota {
    /// Members of the organization (plus pending invitations when inviting).
    Members,
    /// Bytes of stored files.
    StorageBytes,
    /// Authenticated API requests per period.
    ApiCalls,
    /// File uploads per period.
    FileUploads,
    /// Webhook endpoints.
    WebhookEndpoints,
}

impl Quota {
    /// Every quota, in the order the usage report lists them.
    pub const ALL: [Self; 5] =
        [Self::Members, Self::StorageBytes, Self::ApiCalls, Self::FileUploads, Self::WebhookEndpoints];

    /// The name used in configuration, JSON bodies and counter keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Members => "members",
            Self::StorageBytes => "storage_bytes",
            Self::ApiCalls => "api_calls",
            Self::FileUploads => "file_uploads",
            Self::WebhookEndpoints => "webhook_endpoints",
        }
    }

    /// The quota named `raw` (in configuration or an admin's plan change); `None` for a name
    /// that is not one of [`Self::ALL`].
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|quota| quota.as_str() == raw)
    }

    /// Whether the quota counts what happened in a period (and starts again each period)
    /// rather than what exists now.
    pub const fn is_periodic(self) -> bool {
        matches!(self, Self::ApiCalls | Self::FileUploads)
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A limit per quota; a quota that is absent is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Limits(BTreeMap<Quota, u64>);

impl Limits {
    /// The limit of `quota`, `None` meaning unlimited.
    pub fn get(&self, quota: Quota) -> Option<u64> {
        self.0.get(&quota).copied()
    }

    /// Sets (`Some`) or lifts (`None`) the limit of `quota`.
    pub fn set(&mut self, quota: Quota, limit: Option<u64>) {
        match limit {
            Some(limit) => self.0.insert(quota, limit),
            None => self.0.remove(&quota),
        };
    }

    /// `(quota, limit)` for every limited quota; a quota absent here is unlimited.
    pub fn iter(&self) -> impl Iterator<Item = (Quota, u64)> + '_ {
        self.0.iter().map(|(quota, limit)| (*quota, *limit))
    }
}

/// A named set of limits that organizations are put on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// `free`, `pro`, `enterprise`, or an operator's own name.
    pub name: String,
    /// Its limits.
    pub limits: Limits,
}

/// Why a plan catalog is refused: checked when configuration loads, so a bad catalog stops
/// start-up instead of surfacing as a wrong limit later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The catalog defines no plan.
    #[error("at least one plan must be defined")]
    Empty,
    /// A plan name is not lowercase letters, digits, `-` or `_` (1–32 characters).
    #[error("plan name `{0}` must be 1-32 lowercase letters, digits, '-' or '_'")]
    BadName(String),
    /// The default plan is not in the catalog.
    #[error("the default plan `{0}` is not defined")]
    UnknownDefault(String),
}

/// The plans an operator offers, and the one new organizations start on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanCatalog {
    plans: Vec<Plan>,
    default_plan: String,
}

const GIB: u64 = 1024 * 1024 * 1024;

impl PlanCatalog {
    /// A catalog of `plans` where organizations start on `default_plan`.
    ///
    /// # Errors
    /// [`PlanError`] naming what is wrong.
    pub fn new(plans: Vec<Plan>, default_plan: &str) -> Result<Self, PlanError> {
        if plans.is_empty() {
            return Err(PlanError::Empty);
        }
        for plan in &plans {
            let valid = (1..=32).contains(&plan.name.len())
                && plan.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
            if !valid {
                return Err(PlanError::BadName(plan.name.clone()));
            }
        }
        if !plans.iter().any(|plan| plan.name == default_plan) {
            return Err(PlanError::UnknownDefault(default_plan.to_owned()));
        }
        Ok(Self { plans, default_plan: default_plan.to_owned() })
    }

    /// The built-in catalog: `free`, `pro` and `enterprise` (unlimited). The free plan is
    /// generous on purpose: an evaluation or a test suite must not trip over it; operators set
    /// their own numbers in configuration.
    pub fn builtin() -> Self {
        let plan = |name: &str, limits: [(Quota, u64); 5]| {
            let mut set = Limits::default();
            for (quota, limit) in limits {
                set.set(quota, Some(limit));
            }
            Plan { name: name.to_owned(), limits: set }
        };
        let plans = vec![
            plan(
                "free",
                [
                    (Quota::Members, 100),
                    (Quota::StorageBytes, GIB),
                    (Quota::ApiCalls, 100_000),
                    (Quota::FileUploads, 1_000),
                    (Quota::WebhookEndpoints, 50),
                ],
            ),
            plan(
                "pro",
                [
                    (Quota::Members, 1_000),
                    (Quota::StorageBytes, 100 * GIB),
                    (Quota::ApiCalls, 10_000_000),
                    (Quota::FileUploads, 100_000),
                    (Quota::WebhookEndpoints, 200),
                ],
            ),
            Plan { name: "enterprise".to_owned(), limits: Limits::default() },
        ];
        Self { plans, default_plan: "free".to_owned() }
    }

    /// Every plan, in the operator's order (the order an API listing shows them in).
    pub fn plans(&self) -> &[Plan] {
        &self.plans
    }

    /// The plan named `name`; `None` for a plan removed from the catalog since it was assigned.
    pub fn get(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|plan| plan.name == name)
    }

    /// The plan organizations start on, and the one a removed plan falls back to.
    pub fn default_plan(&self) -> &str {
        &self.default_plan
    }
}

/// Which plan an organization is on, its own overrides, and when the plan started (the anchor
/// of its monthly periods).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanAssignment {
    /// The plan's name.
    pub plan: String,
    /// Limits that replace the plan's for this organization.
    pub overrides: Limits,
    /// When the plan started: periods begin on this day of every month.
    pub started_at: DateTime<Utc>,
}

impl PlanAssignment {
    /// The limit of `quota` for this organization: its override, else its plan's. A plan the
    /// operator has since removed from the catalog counts as the default plan, never as
    /// unlimited.
    pub fn limit(&self, catalog: &PlanCatalog, quota: Quota) -> Option<u64> {
        if let Some(limit) = self.overrides.get(quota) {
            return Some(limit);
        }
        catalog.get(&self.plan).or_else(|| catalog.get(catalog.default_plan())).and_then(|plan| plan.limits.get(quota))
    }
}

/// One billing period: `[start, end)`, half-open so consecutive periods neither overlap nor
/// leave a gap, and every instant belongs to exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First instant of the period.
    pub start: DateTime<Utc>,
    /// First instant of the next period.
    pub end: DateTime<Utc>,
}

impl Period {
    /// The monthly period anchored at `anchor` that contains `now`. A period starts on the
    /// anchor's day and time of every month, on the month's last day when it is shorter (an
    /// anchor on the 31st gives the 30th of April, then the 31st of May again).
    pub fn monthly(anchor: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        let month_index = |at: DateTime<Utc>| i64::from(at.year()) * 12 + i64::from(at.month0());
        let mut months = month_index(now) - month_index(anchor);
        if months < 0 {
            // A clock before the anchor: the first period.
            months = 0;
        }
        let nth = |n: i64| -> DateTime<Utc> {
            let n = u32::try_from(n).unwrap_or(0);
            anchor.checked_add_months(Months::new(n)).unwrap_or(anchor)
        };
        let mut start = nth(months);
        if start > now && months > 0 {
            months -= 1;
            start = nth(months);
        }
        Self { start, end: nth(months + 1) }
    }

    /// The key of the period's counters: its start in seconds since the epoch.
    pub fn key(&self) -> String {
        self.start.timestamp().to_string()
    }

    /// The period that never ends, for gauges (members, bytes, endpoints), which count what
    /// exists now and never start again.
    pub fn forever() -> Self {
        let start = Utc.timestamp_opt(0, 0).single().unwrap_or_default();
        Self { start, end: DateTime::<Utc>::MAX_UTC }
    }
}

/// A refusal: the quota, its limit, what was used and when the period ends (`None` for a
/// gauge, which has no period), as the 403 `quota_exceeded` body names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaExceeded {
    /// Which quota.
    pub quota: Quota,
    /// Its limit for the organization.
    pub limit: u64,
    /// What was used when the request came.
    pub used: u64,
    /// End of the current period.
    pub period_end: Option<DateTime<Utc>>,
}

/// Percentages of a limit whose first crossing in a period is announced.
pub const THRESHOLDS: [u8; 2] = [80, 100];

/// The thresholds of [`THRESHOLDS`] that usage crossed going from `before` to `after` units
/// of `limit`: each is announced once, by the change that reaches it.
pub fn thresholds_crossed(before: u64, after: u64, limit: u64) -> Vec<u8> {
    if limit == 0 {
        return Vec::new();
    }
    THRESHOLDS
        .into_iter()
        .filter(|percent| {
            // The smallest usage at or above `percent` of the limit.
            let mark = (u128::from(limit) * u128::from(*percent)).div_ceil(100);
            u128::from(before) < mark && u128::from(after) >= mark
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0).single().expect("valid date")
    }

    #[test]
    fn quotas_round_trip_through_their_names() {
        for quota in Quota::ALL {
            assert_eq!(Quota::parse(quota.as_str()), Some(quota));
        }
        assert_eq!(Quota::parse("seats"), None);
        assert!(Quota::ApiCalls.is_periodic() && Quota::FileUploads.is_periodic());
        assert!(!Quota::Members.is_periodic() && !Quota::StorageBytes.is_periodic());
    }

    #[test]
    fn an_override_replaces_the_plan_limit_and_absence_is_unlimited() {
        let catalog = PlanCatalog::builtin();
        let mut assignment =
            PlanAssignment { plan: "free".into(), overrides: Limits::default(), started_at: at(2026, 1, 1, 0) };
        assert_eq!(assignment.limit(&catalog, Quota::Members), Some(100));
        assignment.overrides.set(Quota::Members, Some(3));
        assert_eq!(assignment.limit(&catalog, Quota::Members), Some(3));
        assignment.plan = "enterprise".into();
        assert_eq!(assignment.limit(&catalog, Quota::ApiCalls), None);
        assignment.plan = "gone".into();
        assert_eq!(assignment.limit(&catalog, Quota::ApiCalls), Some(100_000), "a removed plan counts as the default");
    }

    #[test]
    fn catalogs_are_validated() {
        let plan = |name: &str| Plan { name: name.into(), limits: Limits::default() };
        assert_eq!(PlanCatalog::new(vec![], "free"), Err(PlanError::Empty));
        assert_eq!(PlanCatalog::new(vec![plan("Free")], "Free"), Err(PlanError::BadName("Free".into())));
        assert_eq!(PlanCatalog::new(vec![plan("a")], "b"), Err(PlanError::UnknownDefault("b".into())));
        assert!(PlanCatalog::new(vec![plan("team-2")], "team-2").is_ok());
    }

    #[test]
    fn periods_are_months_anchored_on_the_plan_start() {
        let anchor = at(2026, 1, 15, 10);
        assert_eq!(
            Period::monthly(anchor, at(2026, 3, 20, 0)),
            Period { start: at(2026, 3, 15, 10), end: at(2026, 4, 15, 10) }
        );
        assert_eq!(
            Period::monthly(anchor, at(2026, 3, 15, 9)),
            Period { start: at(2026, 2, 15, 10), end: at(2026, 3, 15, 10) },
            "an hour before the anchor time is still the previous period"
        );
        assert_eq!(Period::monthly(anchor, anchor).start, anchor);
        assert_eq!(Period::monthly(anchor, at(2025, 1, 1, 0)).start, anchor, "before the anchor: the first period");
    }

    #[test]
    fn an_anchor_on_the_31st_clamps_to_short_months() {
        let anchor = at(2026, 1, 31, 0);
        let april = Period::monthly(anchor, at(2026, 5, 10, 0));
        assert_eq!(april, Period { start: at(2026, 4, 30, 0), end: at(2026, 5, 31, 0) });
        assert_ne!(april.key(), Period::monthly(anchor, at(2026, 6, 1, 0)).key());
    }

    #[test]
    fn thresholds_are_crossed_once_by_the_change_that_reaches_them() {
        assert_eq!(thresholds_crossed(0, 7, 10), Vec::<u8>::new());
        assert_eq!(thresholds_crossed(7, 8, 10), vec![80]);
        assert_eq!(thresholds_crossed(8, 9, 10), Vec::<u8>::new());
        assert_eq!(thresholds_crossed(9, 10, 10), vec![100]);
        assert_eq!(thresholds_crossed(0, 10, 10), vec![80, 100]);
        assert_eq!(thresholds_crossed(10, 11, 10), Vec::<u8>::new());
        // 80 % of 3 is 2.4: the third unit crosses it, together with 100 %.
        assert_eq!(thresholds_crossed(2, 3, 3), vec![80, 100]);
        assert_eq!(thresholds_crossed(0, 5, 0), Vec::<u8>::new());
    }
}
