//! Rate limits with GCRA (the generic cell rate algorithm): one timestamp per key, exact,
//! smooth (no burst at a window edge), and simple enough to run as one Redis script.
//!
//! A policy of `limit` per `period` emits one token every `period / limit`; a client may hold
//! up to `limit` unused tokens. The state is the *theoretical arrival time* (TAT): when the
//! bucket will be full again. Times are microseconds since the epoch, so the in-process and
//! Redis implementations compute exactly the same answers.

use std::fmt;
use std::time::Duration;

/// `limit` requests per `period`, with bursts of up to `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RatePolicy {
    /// Requests allowed per period (and the largest burst).
    pub limit: u32,
    /// The period.
    pub period: Duration,
}

/// Why a policy text is refused; its message spells out the accepted forms, so a bad setting
/// is fixed from the start-up error alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected `<count>/<s|sec|second|min|minute|h|hour|day>` with a count from 1 to 1000000000, or `off`")]
pub struct RatePolicyError;

impl RatePolicy {
    /// Parses `120/min`, `10/s`, `5000/hour`, `100000/day`; `off` is `None` (no limit).
    ///
    /// # Errors
    /// [`RatePolicyError`] for anything else.
    pub fn parse(raw: &str) -> Result<Option<Self>, RatePolicyError> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") {
            return Ok(None);
        }
        let (count, unit) = raw.split_once('/').ok_or(RatePolicyError)?;
        let limit: u32 = count.trim().parse().map_err(|_| RatePolicyError)?;
        if !(1..=1_000_000_000).contains(&limit) {
            return Err(RatePolicyError);
        }
        let seconds = match unit.trim() {
            "s" | "sec" | "second" => 1,
            "min" | "minute" => 60,
            "h" | "hour" => 3600,
            "day" => 86_400,
            _ => return Err(RatePolicyError),
        };
        Ok(Some(Self { limit, period: Duration::from_secs(seconds) }))
    }

    /// Time between two tokens, in microseconds (at least one).
    pub fn interval_us(&self) -> i64 {
        let period = i64::try_from(self.period.as_micros()).unwrap_or(i64::MAX);
        (period / i64::from(self.limit.max(1))).max(1)
    }

    /// How far ahead of now the TAT may run: the whole burst.
    pub fn tolerance_us(&self) -> i64 {
        self.interval_us().saturating_mul(i64::from(self.limit))
    }
}

impl fmt::Display for RatePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.limit, self.period.as_secs())
    }
}

/// What one take from a bucket decided: the grant and the figures the `ratelimit-*` and
/// `retry-after` headers report, so a client can pace itself instead of retrying blindly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateGrant {
    /// Tokens granted: from 0 (refused) up to what was asked.
    pub granted: u32,
    /// The new TAT to store (unchanged when nothing was granted).
    pub tat_us: i64,
    /// Tokens left in the bucket after this take.
    pub remaining: u32,
    /// Time until the bucket is full again (`ratelimit-reset`).
    pub reset_after: Duration,
    /// When nothing was granted: time until one token is available (`retry-after`).
    pub retry_after: Duration,
}

fn duration_us(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

/// Takes up to `want` tokens (at least one is needed to pass) from a bucket whose stored TAT
/// is `tat_us` (`None` for a fresh key), at `now_us`.
pub fn take(policy: RatePolicy, tat_us: Option<i64>, now_us: i64, want: u32) -> RateGrant {
    let interval = policy.interval_us();
    let tolerance = policy.tolerance_us();
    let tat = tat_us.unwrap_or(now_us).max(now_us);
    let available = ((now_us + tolerance - tat) / interval).clamp(0, i64::from(policy.limit));
    let granted = i64::from(want).min(available);
    let new_tat = tat + granted * interval;
    let remaining = u32::try_from(available - granted).unwrap_or(0);
    let retry_after = if granted == 0 {
        duration_us(tat + interval - tolerance - now_us).max(Duration::from_millis(1))
    } else {
        Duration::ZERO
    };
    RateGrant {
        granted: u32::try_from(granted).unwrap_or(0),
        tat_us: new_tat,
        remaining,
        reset_after: duration_us(new_tat - now_us),
        retry_after,
    }
}

/// The TAT after `tokens` taken earlier are given back unused (a lease that expired): never
/// earlier than now, so giving back cannot create tokens out of nothing.
pub fn give_back(policy: RatePolicy, tat_us: Option<i64>, now_us: i64, tokens: u32) -> Option<i64> {
    let tat = tat_us?;
    let back = tat - i64::from(tokens) * policy.interval_us();
    (back > now_us).then_some(back)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: RatePolicy = RatePolicy { limit: 60, period: Duration::from_secs(60) };
    const SECOND_US: i64 = 1_000_000;

    #[test]
    fn policies_parse_and_off_means_none() {
        assert_eq!(RatePolicy::parse("120/min"), Ok(Some(RatePolicy { limit: 120, period: Duration::from_secs(60) })));
        assert_eq!(RatePolicy::parse(" 10/s "), Ok(Some(RatePolicy { limit: 10, period: Duration::from_secs(1) })));
        assert_eq!(RatePolicy::parse("OFF"), Ok(None));
        for bad in ["", "0/min", "10", "10/week", "-1/s", "abc/min", "2000000000/s"] {
            assert_eq!(RatePolicy::parse(bad), Err(RatePolicyError), "{bad}");
        }
    }

    #[test]
    fn a_fresh_bucket_allows_exactly_the_burst_then_refuses() {
        let mut tat = None;
        let now = 1_000 * SECOND_US;
        for n in 0..60 {
            let grant = take(MINUTE, tat, now, 1);
            assert_eq!(grant.granted, 1, "request {n}");
            assert_eq!(grant.remaining, 59 - n);
            tat = Some(grant.tat_us);
        }
        let refused = take(MINUTE, tat, now, 1);
        assert_eq!((refused.granted, refused.remaining), (0, 0));
        assert_eq!(refused.retry_after, Duration::from_secs(1), "one token per second");
        assert_eq!(refused.reset_after, Duration::from_secs(60));
        assert_eq!(refused.tat_us, tat.expect("tat"), "a refusal changes nothing");
        let later = take(MINUTE, tat, now + SECOND_US, 1);
        assert_eq!(later.granted, 1, "a token is back after one interval");
    }

    #[test]
    fn a_batch_takes_what_is_available_and_no_more() {
        let now = 50 * SECOND_US;
        let first = take(MINUTE, None, now, 50);
        assert_eq!((first.granted, first.remaining), (50, 10));
        let second = take(MINUTE, Some(first.tat_us), now, 50);
        assert_eq!((second.granted, second.remaining), (10, 0));
    }

    #[test]
    fn giving_back_restores_tokens_but_never_more_than_a_full_bucket() {
        let now = 10 * SECOND_US;
        let grant = take(MINUTE, None, now, 30);
        let back = give_back(MINUTE, Some(grant.tat_us), now, 10);
        assert_eq!(take(MINUTE, back, now, 100).granted, 40);
        assert_eq!(give_back(MINUTE, Some(grant.tat_us), now, 500), None, "a full bucket at most");
        assert_eq!(give_back(MINUTE, None, now, 1), None);
    }

    #[test]
    fn an_old_tat_counts_as_a_full_bucket() {
        let grant = take(MINUTE, Some(0), 3_600 * SECOND_US, 1);
        assert_eq!((grant.granted, grant.remaining), (1, 59));
    }
}
