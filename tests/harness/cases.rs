//! Many cases of one table run side by side: each a task, a few at a time,
//! and one failure listing every case that failed (not just the first).
//! Tables running at once (the test binary runs tests in parallel) share
//! one limit, so that together they never load the shared moto past what
//! the cases' one-second AWS timeouts allow.

use std::future::Future;
use std::sync::Arc;

/// Keyhooks in fault cases at once, across every table of the binary.
static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(8);

/// Runs `cases`, at most `parallel` at a time (and [`SLOTS`] in all), and fails with every case
/// whose `Err` says why, sorted; `what` names them in the message.
pub async fn all_pass<F>(what: &str, parallel: usize, cases: Vec<F>)
where
    F: Future<Output = Result<(), String>> + Send + 'static,
{
    let limit = Arc::new(tokio::sync::Semaphore::new(parallel));
    let tasks: Vec<_> = cases
        .into_iter()
        .map(|case| {
            let limit = Arc::clone(&limit);
            tokio::spawn(async move {
                let _permit = limit.acquire_owned().await.unwrap();
                let _slot = SLOTS.acquire().await.unwrap();
                case.await
            })
        })
        .collect();
    let total = tasks.len();
    let mut failures = Vec::new();
    for task in tasks {
        if let Err(e) = task.await.unwrap() {
            failures.push(e);
        }
    }
    failures.sort();
    assert!(
        failures.is_empty(),
        "{} of {total} {what} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
