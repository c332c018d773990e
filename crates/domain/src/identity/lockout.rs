//! Throttling repeated failed sign-ins.

use std::time::Duration;

/// After `max_failures` failures within `window`, further attempts are refused until the window
/// that started with the first failure has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failures allowed inside one window.
    pub max_failures: u32,
    /// How long failures are remembered (and how long a lockout lasts at most).
    pub window: Duration,
}

/// What to do with the next attempt, decided before the credentials are checked, so a locked
/// account costs no password hash and a guess made while locked cannot succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockoutDecision {
    /// Check the credentials.
    Allow,
    /// Refuse without checking, and tell the client when to retry.
    Locked {
        /// Time until the window ends.
        retry_after: Duration,
    },
}

impl LockoutPolicy {
    /// Decides from the failures recorded so far in the current window and the time left in it.
    pub fn decide(&self, failures: u32, window_left: Option<Duration>) -> LockoutDecision {
        if failures < self.max_failures {
            return LockoutDecision::Allow;
        }
        // A counter without a known expiry still locks, for at most one window.
        let retry_after = window_left.unwrap_or(self.window).max(Duration::from_secs(1));
        LockoutDecision::Locked { retry_after }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: LockoutPolicy = LockoutPolicy { max_failures: 5, window: Duration::from_secs(900) };

    #[test]
    fn attempts_are_allowed_below_the_limit() {
        for failures in 0..5 {
            assert_eq!(POLICY.decide(failures, Some(Duration::from_secs(100))), LockoutDecision::Allow);
        }
    }

    #[test]
    fn the_limit_locks_until_the_window_ends() {
        assert_eq!(
            POLICY.decide(5, Some(Duration::from_secs(120))),
            LockoutDecision::Locked { retry_after: Duration::from_secs(120) }
        );
        assert_eq!(POLICY.decide(9, None), LockoutDecision::Locked { retry_after: Duration::from_secs(900) });
        assert_eq!(
            POLICY.decide(5, Some(Duration::from_millis(10))),
            LockoutDecision::Locked { retry_after: Duration::from_secs(1) },
            "retry-after is never zero"
        );
    }
}
