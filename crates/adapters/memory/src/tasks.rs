//! Background work on the caller's tokio runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tenantry_ports::{BackgroundTasks, Task};
use tokio::sync::Notify;

/// [`BackgroundTasks`] that spawn onto the current tokio runtime and count what is still
/// running, so an embedding service (or a test) can wait for the mail and webhook attempts
/// its calls started, with [`TokioTasks::wait_idle`], instead of sleeping.
///
/// `spawn` must be called from inside a tokio runtime, as every use case that spawns runs in
/// one.
#[derive(Debug, Default)]
pub struct TokioTasks {
    running: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl TokioTasks {
    /// No task running yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until no task is running.
    pub async fn wait_idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            // Registered before the check, so a task finishing in between still wakes us.
            idle.as_mut().enable();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl BackgroundTasks for TokioTasks {
    fn spawn(&self, name: &'static str, task: Task) {
        let running = Arc::clone(&self.running);
        let idle = Arc::clone(&self.idle);
        running.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            task.await;
            tracing::debug!(task = name, "background task done");
            if running.fetch_sub(1, Ordering::SeqCst) == 1 {
                idle.notify_waiters();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[tokio::test]
    async fn wait_idle_returns_once_every_task_has_run() {
        let tasks = TokioTasks::new();
        tasks.wait_idle().await;
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        tasks.spawn(
            "test",
            Box::pin(async move {
                tokio::task::yield_now().await;
                flag.store(true, Ordering::SeqCst);
            }),
        );
        tasks.wait_idle().await;
        assert!(done.load(Ordering::SeqCst), "the task ran before wait_idle returned");
    }
}
