//! Background tasks on the tokio runtime, tracked so shutdown (and tests) can wait for them.
//!
//! The counting is the memory adapter's [`TokioTasks`] (one implementation, one contract suite):
//! it counts what is still running, a panicking task included, so graceful shutdown waits for
//! every mail and webhook attempt a request started and never for a task that died. The server
//! adds where each task's spans belong in the traces.

use tenantry_adapter_memory::TokioTasks;
use tenantry_ports::{BackgroundTasks, Task};
use tracing::Instrument;

/// [`BackgroundTasks`] that counts what is still running and keeps request work in its trace.
#[derive(Debug, Default)]
pub struct TrackedTasks(TokioTasks);

impl TrackedTasks {
    /// Waits until no task is running (graceful shutdown; tests that read the mail).
    pub async fn wait_idle(&self) {
        self.0.wait_idle().await;
    }
}

impl BackgroundTasks for TrackedTasks {
    fn spawn(&self, name: &'static str, task: Task) {
        // Work a request leaves behind (its e-mail) stays in the request's trace, in a span of
        // its own so the request's duration is not stretched; work a polling job step spawns
        // (a webhook attempt) starts a trace of its own, since those steps are not exported.
        let current = tracing::Span::current();
        let polling = current.metadata().is_some_and(|meta| meta.name() == crate::telemetry::WORKER_STEP);
        let span = if polling || current.is_none() {
            tracing::Span::none()
        } else {
            tracing::info_span!(parent: &current, "task", otel.name = name, task = name)
        };
        self.0.spawn(name, Box::pin(task.instrument(span)));
    }
}
