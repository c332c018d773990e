//! Background tasks on the tokio runtime, tracked so shutdown (and tests) can wait for them.
//!
//! The server uses the memory adapter's [`TokioTasks`] (one implementation, one contract suite):
//! it counts what is still running, a panicking task included, so graceful shutdown waits for
//! every mail and webhook attempt a request started and never for a task that died.

pub use tenantry_adapter_memory::TokioTasks as TrackedTasks;
