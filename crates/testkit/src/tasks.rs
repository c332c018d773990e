//! The [`BackgroundTasks`] contract.

use std::sync::Arc;
use std::time::Duration;

use tenantry_ports::BackgroundTasks;
use tokio::sync::{mpsc, oneshot};

/// How long a case waits for tasks that must run; a guard against hanging, not a speed check.
const PATIENCE: Duration = Duration::from_secs(10);

/// Runs every case against `tasks`. Call it from a multi-threaded tokio runtime
/// (`#[tokio::test(flavor = "multi_thread")]`).
///
/// # Panics
/// Naming the broken rule.
pub async fn run_contract(tasks: Arc<dyn BackgroundTasks>) {
    spawn_returns_before_the_task_finishes(tasks.clone()).await;
    every_spawned_task_runs(tasks.as_ref()).await;
    a_panicking_task_does_not_stop_later_ones(tasks.as_ref()).await;
}

async fn spawn_returns_before_the_task_finishes(tasks: Arc<dyn BackgroundTasks>) {
    let (release, released) = oneshot::channel::<()>();
    let (finished, mut done) = oneshot::channel::<()>();
    // The task waits for a signal sent only after `spawn` returned: running it inline would
    // block `spawn` forever, which the timeout below reports.
    let spawning = tokio::task::spawn_blocking(move || {
        tasks.spawn(
            "contract.blocked",
            Box::pin(async move {
                let _ = released.await;
                let _ = finished.send(());
            }),
        );
    });
    tokio::time::timeout(PATIENCE, spawning)
        .await
        .expect("spawn must return without waiting for the task (work happens after the response)")
        .expect("spawn does not panic");
    assert!(done.try_recv().is_err(), "the task cannot have finished: it waits for a signal not yet sent");
    let _ = release.send(());
    tokio::time::timeout(PATIENCE, done).await.expect("the task runs once released").expect("the task completes");
}

async fn every_spawned_task_runs(tasks: &dyn BackgroundTasks) {
    let (sender, mut receiver) = mpsc::unbounded_channel();
    for i in 0..100_u32 {
        let sender = sender.clone();
        tasks.spawn(
            "contract.each",
            Box::pin(async move {
                let _ = sender.send(i);
            }),
        );
    }
    drop(sender);
    let mut seen = Vec::new();
    while seen.len() < 100 {
        match tokio::time::timeout(PATIENCE, receiver.recv()).await {
            Ok(Some(i)) => seen.push(i),
            Ok(None) | Err(_) => break,
        }
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..100).collect::<Vec<_>>(), "every spawned task runs exactly once");
}

async fn a_panicking_task_does_not_stop_later_ones(tasks: &dyn BackgroundTasks) {
    tasks.spawn("contract.panics", Box::pin(async { panic!("a task that fails (deliberately, by the contract)") }));
    let (sender, receiver) = oneshot::channel();
    tasks.spawn(
        "contract.after-panic",
        Box::pin(async move {
            let _ = sender.send(());
        }),
    );
    tokio::time::timeout(PATIENCE, receiver)
        .await
        .expect("a task spawned after one that panicked still runs")
        .expect("it completes");
}
