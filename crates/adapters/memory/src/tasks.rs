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

/// Counts one running task for as long as it lives: dropped when the task ends, panics or is
/// cancelled with its runtime, so a failed task can never leave `wait_idle` (graceful shutdown)
/// waiting for good.
struct Running {
    name: &'static str,
    running: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl Drop for Running {
    fn drop(&mut self) {
        tracing::debug!(task = self.name, "background task done");
        if self.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }
}

impl BackgroundTasks for TokioTasks {
    fn spawn(&self, name: &'static str, task: Task) {
        self.running.fetch_add(1, Ordering::SeqCst);
        let guard = Running { name, running: Arc::clone(&self.running), idle: Arc::clone(&self.idle) };
        tokio::spawn(async move {
            let _guard = guard;
            task.await;
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[tokio::test]
    async fn a_panicking_task_does_not_keep_wait_idle_waiting() {
        let tasks = TokioTasks::new();
        tasks.spawn("test.panics", Box::pin(async { panic!("a task that fails") }));
        tokio::time::timeout(std::time::Duration::from_secs(5), tasks.wait_idle())
            .await
            .expect("wait_idle returns once the panicked task is gone");
    }

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
