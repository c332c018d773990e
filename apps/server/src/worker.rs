//! The background-job runner: `tenantry worker` runs it alone, `tenantry serve` runs it beside
//! the HTTP server unless `--no-worker`.
//!
//! Jobs are registered by the modules that need them (webhook delivery, mail outbox, expiry
//! sweeps); each runs in its own task, and shutdown waits for every job to finish its current
//! step, so SIGTERM never cuts a delivery in half.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;
use tokio::task::JoinSet;

/// A signal every job watches; `true` means "finish the current step and return".
pub type Shutdown = watch::Receiver<bool>;

/// A long-running job: loops until `shutdown` turns true.
pub type Job = Box<dyn FnOnce(Shutdown) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// Named jobs, started together, stopped together.
#[derive(Default)]
pub struct Worker {
    jobs: Vec<(&'static str, Job)>,
}

/// A running worker.
pub struct RunningWorker {
    stop: watch::Sender<bool>,
    tasks: JoinSet<&'static str>,
}

impl Worker {
    /// Adds a job.
    pub fn register(&mut self, name: &'static str, job: Job) {
        self.jobs.push((name, job));
    }

    /// The registered jobs' names.
    pub fn job_names(&self) -> Vec<&'static str> {
        self.jobs.iter().map(|(name, _)| *name).collect()
    }

    /// Starts every job on the current runtime.
    pub fn start(self) -> RunningWorker {
        let (stop, signal) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for (name, job) in self.jobs {
            let signal = signal.clone();
            tasks.spawn(async move {
                job(signal).await;
                name
            });
        }
        tracing::info!(jobs = tasks.len(), "background worker started");
        RunningWorker { stop, tasks }
    }
}

impl RunningWorker {
    /// Asks every job to stop and waits until all have.
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
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn shutdown_waits_for_every_job_to_finish_its_step() {
        let finished = Arc::new(AtomicUsize::new(0));
        let mut worker = Worker::default();
        for name in ["a", "b"] {
            let finished = finished.clone();
            worker.register(
                name,
                Box::new(move |mut shutdown: Shutdown| {
                    Box::pin(async move {
                        // A job that runs until told to stop, then records a clean finish.
                        let _ = shutdown.wait_for(|stop| *stop).await;
                        finished.fetch_add(1, Ordering::SeqCst);
                    })
                }),
            );
        }
        assert_eq!(worker.job_names(), vec!["a", "b"]);
        let running = worker.start();
        assert_eq!(finished.load(Ordering::SeqCst), 0);
        running.shutdown().await;
        assert_eq!(finished.load(Ordering::SeqCst), 2);
    }
}
