//! Background tasks on the tokio runtime, tracked so shutdown (and tests) can wait for them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tenantry_ports::{BackgroundTasks, Task};
use tokio::sync::Notify;

/// [`BackgroundTasks`] that counts what is still running.
#[derive(Debug, Default)]
pub struct TrackedTasks {
    running: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl TrackedTasks {
    /// Waits until no task is running (graceful shutdown; tests that read the mail).
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

impl BackgroundTasks for TrackedTasks {
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
        let tasks = TrackedTasks::default();
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
        assert!(done.load(Ordering::SeqCst));
    }
}
