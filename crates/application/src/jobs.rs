//! Background jobs as steps.
//!
//! A job (the webhook dispatcher, the mail outbox, a sweeper) is one [`Job::step`]: do a bounded
//! piece of work and say whether more is waiting. The server's worker loop calls steps, sleeping
//! between idle ones; a test calls them directly ([`run_until_idle`]) with a manual clock, so no
//! test waits on a timer for a job to happen. A step holds no state between calls that matters
//! for correctness: every step reads what is due from its store, so a crash between steps loses
//! nothing and any number of workers may run the same job.

use std::sync::Arc;
use std::time::Duration;

/// What one step did, so the loop knows whether to step again at once or sleep, and for how
/// long, without polling a store that has nothing due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// It did some work and more may be waiting: step again at once.
    Worked,
    /// Nothing was due. Step again after `next_in` at the latest (earlier when the loop is
    /// woken: a new item, a shutdown).
    Idle {
        /// When the next item falls due, as far as the job knows; the loop caps it.
        next_in: Duration,
    },
}

/// Why a step failed. The worker loop logs it and backs off; the next step starts over from
/// the store.
#[derive(Debug, thiserror::Error)]
#[error("job step failed: {0:#}")]
pub struct JobError(#[from] pub anyhow::Error);

/// A background job, stepped by the worker loop or by a test.
#[async_trait::async_trait]
pub trait Job: Send + Sync {
    /// A stable name for logs and metrics (`webhooks.dispatch`).
    fn name(&self) -> &'static str;

    /// Does one bounded piece of work.
    ///
    /// # Errors
    /// [`JobError`] when a dependency failed; nothing half-done may be left that the next step
    /// would not finish or redo.
    async fn step(&self) -> Result<StepOutcome, JobError>;
}

/// How the worker loop paces a job: the longest idle wait (so a job notices work that nobody
/// announced) and the waits after failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// The longest wait between idle steps.
    pub max_idle: Duration,
    /// The first wait after a failed step; doubled per further failure.
    pub first_backoff: Duration,
    /// The longest wait after failures.
    pub max_backoff: Duration,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            max_idle: Duration::from_secs(5),
            first_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(60),
        }
    }
}

impl Pacing {
    /// How long to wait before the next step after `outcome`, given `failures` in a row before
    /// it (0 after a success): the one pacing rule, shared by the worker loop and its tests.
    pub fn wait_after(&self, outcome: Result<StepOutcome, ()>, failures: u32) -> Duration {
        match outcome {
            Ok(StepOutcome::Worked) => Duration::ZERO,
            Ok(StepOutcome::Idle { next_in }) => next_in.min(self.max_idle),
            Err(()) => {
                let factor = 2_u32.saturating_pow(failures.min(16));
                self.first_backoff.saturating_mul(factor).min(self.max_backoff)
            }
        }
    }
}

/// Steps every job until each reports [`StepOutcome::Idle`] in the same round, at most
/// `max_steps` steps in all: what a test calls instead of sleeping, after it has made work
/// due (and moved its manual clock). Returns the number of steps that worked.
///
/// # Errors
/// The first [`JobError`]; `Err` as well when the jobs were still busy after `max_steps`
/// (a job that never goes idle is a bug the test should see).
pub async fn run_until_idle(jobs: &[Arc<dyn Job>], max_steps: usize) -> Result<usize, JobError> {
    let mut steps = 0;
    let mut worked = 0;
    loop {
        let mut busy = false;
        for job in jobs {
            if steps >= max_steps {
                return Err(JobError(anyhow::anyhow!("jobs still busy after {max_steps} steps")));
            }
            steps += 1;
            if job.step().await? == StepOutcome::Worked {
                busy = true;
                worked += 1;
            }
        }
        if !busy {
            return Ok(worked);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::{DateTime, Utc};
    use tenantry_adapter_memory::ManualClock;
    use tenantry_ports::Clock;

    use super::*;

    /// A queue of items due at given times, drained one per step: the shape of the outbox jobs.
    struct DueItems {
        clock: Arc<dyn Clock>,
        due: Mutex<Vec<DateTime<Utc>>>,
        done: Mutex<usize>,
    }

    #[async_trait::async_trait]
    impl Job for DueItems {
        fn name(&self) -> &'static str {
            "test.due_items"
        }

        async fn step(&self) -> Result<StepOutcome, JobError> {
            let now = self.clock.now();
            let mut due = self.due.lock().map_err(|_| JobError(anyhow::anyhow!("poisoned")))?;
            due.sort();
            match due.first().copied() {
                Some(at) if at <= now => {
                    due.remove(0);
                    *self.done.lock().map_err(|_| JobError(anyhow::anyhow!("poisoned")))? += 1;
                    Ok(StepOutcome::Worked)
                }
                Some(at) => Ok(StepOutcome::Idle { next_in: (at - now).to_std().unwrap_or_default() }),
                None => Ok(StepOutcome::Idle { next_in: Duration::from_secs(3600) }),
            }
        }
    }

    #[tokio::test]
    async fn a_test_drives_due_work_with_a_manual_clock_and_no_sleep() {
        let clock = Arc::new(ManualClock::new(Utc::now()));
        let start = clock.now();
        let job = Arc::new(DueItems {
            clock: clock.clone(),
            due: Mutex::new(vec![start, start + chrono::Duration::seconds(30), start + chrono::Duration::hours(1)]),
            done: Mutex::new(0),
        });
        let jobs: Vec<Arc<dyn Job>> = vec![job.clone()];
        assert_eq!(run_until_idle(&jobs, 10).await.expect("idle"), 1, "only the item due now");
        assert_eq!(job.step().await.expect("step"), StepOutcome::Idle { next_in: Duration::from_secs(30) });
        clock.advance(chrono::Duration::seconds(30));
        assert_eq!(run_until_idle(&jobs, 10).await.expect("idle"), 1);
        clock.advance(chrono::Duration::hours(2));
        assert_eq!(run_until_idle(&jobs, 10).await.expect("idle"), 1);
        assert_eq!(*job.done.lock().expect("lock"), 3);
    }

    struct Busy;

    #[async_trait::async_trait]
    impl Job for Busy {
        fn name(&self) -> &'static str {
            "test.busy"
        }

        async fn step(&self) -> Result<StepOutcome, JobError> {
            Ok(StepOutcome::Worked)
        }
    }

    #[tokio::test]
    async fn a_job_that_never_idles_is_reported_not_looped_forever() {
        let jobs: Vec<Arc<dyn Job>> = vec![Arc::new(Busy)];
        assert!(run_until_idle(&jobs, 50).await.is_err());
    }

    #[test]
    fn pacing_steps_again_at_once_after_work_caps_idle_waits_and_backs_off_on_failure() {
        let pacing = Pacing::default();
        assert_eq!(pacing.wait_after(Ok(StepOutcome::Worked), 0), Duration::ZERO);
        assert_eq!(
            pacing.wait_after(Ok(StepOutcome::Idle { next_in: Duration::from_secs(1) }), 0),
            Duration::from_secs(1)
        );
        assert_eq!(pacing.wait_after(Ok(StepOutcome::Idle { next_in: Duration::from_secs(3600) }), 0), pacing.max_idle);
        assert_eq!(pacing.wait_after(Err(()), 0), Duration::from_millis(500));
        assert_eq!(pacing.wait_after(Err(()), 2), Duration::from_secs(2));
        assert_eq!(pacing.wait_after(Err(()), 30), pacing.max_backoff);
    }
}
