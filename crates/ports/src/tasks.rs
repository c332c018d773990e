use std::future::Future;
use std::pin::Pin;

/// A unit of background work: owned, `Send` and `'static`, because it outlives the request
/// that spawned it.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs work after the response has gone, so its duration cannot be observed by the client
/// (e.g. "did this address get a reset mail?" must not show in response times).
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait BackgroundTasks: Send + Sync {
    /// Starts `task`; `name` is for logs. Never fails: a task that fails logs its own error.
    fn spawn(&self, name: &'static str, task: Task);
}
