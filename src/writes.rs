//! Writes that outlive their request. hyper drops a request's future when
//! its client hangs up; a credential write cut there would be half done (a
//! stored row missing from the index, an API key without its usage plans,
//! no audit event), and the portal's retry would make a second one. So both
//! doors run each write (the backend call and its audit event) as a task of
//! its own, which the handler only waits for, and shutdown waits for the
//! tasks still running ([`Writes::finished`]).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::credentials::{Credential, CredentialError, CredentialProvider, CredentialSpec};
use crate::telemetry::audit;

/// The running writes; clones share them.
#[derive(Clone, Default)]
pub struct Writes {
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    running: AtomicUsize,
    idle: Notify,
}

/// One running write: counted from before it is spawned until it ends.
struct Running(Arc<State>);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Writes {
    /// Runs `write` to its end whatever becomes of the caller, and hands
    /// its outcome back to the caller if it is still there.
    pub async fn run<T, F>(&self, write: F) -> T
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.state.running.fetch_add(1, Ordering::AcqRel);
        let running = Running(Arc::clone(&self.state));
        let task = tokio::spawn(async move {
            let _running = running;
            write.await
        });
        match task.await {
            Ok(outcome) => outcome,
            // The handler answers a panic as any other (a JSON 500).
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // Only a runtime shutting down cancels a spawned task.
            Err(err) => panic!("a write was cancelled: {err}"),
        }
    }

    /// Ensures the credential `spec` describes (`CredentialProvider::create`)
    /// and audits it as made by `spec.origin`: the one create both doors run.
    pub async fn create(
        &self,
        provider: Arc<dyn CredentialProvider>,
        spec: CredentialSpec,
    ) -> Result<Credential, CredentialError> {
        self.run(async move {
            let (credential, created) = provider.create(&spec).await?;
            audit::created(spec.origin, &credential, created);
            Ok(credential)
        })
        .await
    }

    /// How many writes are running.
    pub fn running(&self) -> usize {
        self.state.running.load(Ordering::Acquire)
    }

    /// Completes when no write is running.
    pub async fn finished(&self) {
        loop {
            let idle = self.state.idle.notified();
            tokio::pin!(idle);
            // Registered before the count is read, so a write ending in
            // between still wakes us.
            idle.as_mut().enable();
            if self.running() == 0 {
                return;
            }
            idle.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_write_whose_caller_is_dropped_runs_to_its_end() {
        let writes = Writes::default();
        let (done, mut observed) = tokio::sync::watch::channel(false);
        let caller = {
            let writes = writes.clone();
            tokio::spawn(async move {
                writes
                    .run(async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        done.send(true).unwrap();
                    })
                    .await;
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        caller.abort();
        assert!(caller.await.unwrap_err().is_cancelled());
        assert_eq!(writes.running(), 1);
        writes.finished().await;
        assert!(*observed.borrow_and_update());
        assert_eq!(writes.running(), 0);
    }

    #[tokio::test]
    async fn the_outcome_reaches_a_caller_still_waiting() {
        let writes = Writes::default();
        assert_eq!(writes.run(async { 7 }).await, 7);
        writes.finished().await;
    }
}
