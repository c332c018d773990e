//! The background-job runner: `tenantry worker` runs it alone, `tenantry serve` runs it beside
//! the HTTP server unless `--no-worker`.
//!
//! Jobs are [`Job`]s (application crate): one bounded `step` at a time. This loop is the only
//! place that waits: it steps a job again at once while it works, waits until the job's next
//! item is due (capped by [`Pacing::max_idle`]) when it is idle, and backs off after failures.
//! Shutdown lets every job finish its current step, so SIGTERM never cuts a delivery in half.
//! Tests do not run this loop to see a job's effect: they call `run_until_idle`.

use std::sync::Arc;

use tenantry_application::{Job, Pacing};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

/// Jobs to run, started together, stopped together.
#[derive(Default)]
pub struct Worker {
    jobs: Vec<Arc<dyn Job>>,
    pacing: Pacing,
}

/// A running worker.
pub struct RunningWorker {
    stop: watch::Sender<bool>,
    tasks: JoinSet<&'static str>,
}

impl Worker {
    /// Adds a job.
    pub fn register(&mut self, job: Arc<dyn Job>) {
        self.jobs.push(job);
    }

    /// Paces every job with `pacing`.
    #[must_use]
    pub fn with_pacing(mut self, pacing: Pacing) -> Self {
        self.pacing = pacing;
        self
    }

    /// The registered jobs' names.
    pub fn job_names(&self) -> Vec<&'static str> {
        self.jobs.iter().map(|job| job.name()).collect()
    }

    /// Starts every job's loop on the current runtime.
    pub fn start(self) -> RunningWorker {
        let (stop, signal) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for job in self.jobs {
            tasks.spawn(run(job, self.pacing, signal.clone()));
        }
        tracing::info!(jobs = tasks.len(), "background worker started");
        RunningWorker { stop, tasks }
    }
}

/// Steps `job` until `shutdown` turns true; a step in progress always completes.
async fn run(job: Arc<dyn Job>, pacing: Pacing, mut shutdown: watch::Receiver<bool>) -> &'static str {
    let name = job.name();
    let mut failures = 0_u32;
    while !*shutdown.borrow() {
        // A span per step, so the step's log lines carry a trace id; the exporter's sampler
        // drops these roots (polling is not worth exporting), not what they spawn.
        let span = tracing::info_span!("worker.step", job = name); // telemetry::WORKER_STEP
        let outcome = job.step().instrument(span).await;
        let wait = match &outcome {
            Ok(done) => {
                failures = 0;
                pacing.wait_after(Ok(*done), 0)
            }
            Err(err) => {
                tracing::error!(job = name, error = %err, "a job step failed; backing off");
                failures = failures.saturating_add(1);
                pacing.wait_after(Err(()), failures - 1)
            }
        };
        if wait.is_zero() {
            tokio::task::yield_now().await;
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => {}
        }
    }
    name
}

impl RunningWorker {
    /// Asks every job to stop and waits until all have finished their current step.
    pub async fn shutdown(mut self) {
        // Receivers may all be gone already (every job returned): nothing to tell.
        let _ = self.stop.send(true);
        while let Some(result) = self.tasks.join_next().await {
            match result {
                Ok(name) => tracing::debug!(job = name, "job stopped"),
                Err(err) => tracing::error!(error = %err, "a background job panicked"),
            }
        }
        tracing::info!("background worker stopped");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tenantry_application::{JobError, StepOutcome};
    use tokio::sync::Notify;

    use super::*;

    /// Works `work` times, then idles; tells the test when it has done so, and counts steps
    /// that finished.
    struct Counting {
        work: usize,
        steps: AtomicUsize,
        finished: AtomicUsize,
        done: Notify,
        fail_first: bool,
    }

    #[async_trait::async_trait]
    impl Job for Counting {
        fn name(&self) -> &'static str {
            "test.counting"
        }

        async fn step(&self) -> Result<StepOutcome, JobError> {
            let step = self.steps.fetch_add(1, Ordering::SeqCst);
            if self.fail_first && step == 0 {
                return Err(JobError(anyhow::anyhow!("first step fails")));
            }
            tokio::task::yield_now().await;
            self.finished.fetch_add(1, Ordering::SeqCst);
            if self.finished.load(Ordering::SeqCst) >= self.work {
                self.done.notify_one();
                return Ok(StepOutcome::Idle { next_in: Duration::from_secs(3600) });
            }
            Ok(StepOutcome::Worked)
        }
    }

    fn counting(work: usize, fail_first: bool) -> Arc<Counting> {
        Arc::new(Counting {
            work,
            steps: AtomicUsize::new(0),
            finished: AtomicUsize::new(0),
            done: Notify::new(),
            fail_first,
        })
    }

    #[tokio::test]
    async fn the_loop_steps_a_working_job_at_once_and_shutdown_ends_an_idle_wait() {
        let job = counting(3, false);
        let mut worker = Worker::default();
        worker.register(job.clone());
        assert_eq!(worker.job_names(), vec!["test.counting"]);
        let running = worker.start();
        tokio::time::timeout(Duration::from_secs(10), job.done.notified()).await.expect("three steps ran");
        // The job now idles for an hour; shutdown must not wait for that.
        tokio::time::timeout(Duration::from_secs(10), running.shutdown()).await.expect("shutdown is prompt");
        assert_eq!(job.finished.load(Ordering::SeqCst), job.steps.load(Ordering::SeqCst), "no step was cut off");
    }

    #[tokio::test]
    async fn a_failed_step_is_retried_after_a_backoff() {
        let job = counting(1, true);
        let mut worker = Worker::default().with_pacing(Pacing {
            max_idle: Duration::from_secs(3600),
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        });
        worker.register(job.clone());
        let running = worker.start();
        tokio::time::timeout(Duration::from_secs(10), job.done.notified()).await.expect("retried");
        running.shutdown().await;
        assert_eq!(job.steps.load(Ordering::SeqCst), 2);
    }
}
