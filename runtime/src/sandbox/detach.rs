//! Work that outlives its caller.
//!
//! A front door's handler future is dropped when its client disconnects. A guest call
//! abandoned that way stops inside the component, whose instance can then never be entered
//! again, and the bookkeeping around it (busy marks, temporary sessions, scratch folders)
//! never runs. So every verb of the facade that enters a guest runs its work in a task of its
//! own: the handler only awaits the result, and a call that has started runs to its end or
//! its deadline whatever happens to the connection.

use std::future::Future;
use tracing::Instrument;

/// Runs `work` in its own task (in the current span) and awaits its result. A panic in the
/// task is logged and answered by `on_panic` with its message; the server goes on.
pub async fn detached<T, F>(work: F, on_panic: impl FnOnce(String) -> T) -> T
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    match tokio::spawn(work.in_current_span()).await {
        Ok(value) => value,
        Err(e) => {
            let message = match e.try_into_panic() {
                Ok(payload) => payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_string()),
                Err(e) => e.to_string(),
            };
            tracing::error!(error = %message, "internal error in a detached task");
            on_panic(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn work_finishes_when_its_caller_is_dropped() {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let caller = tokio::spawn(detached(
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                flag.store(true, Ordering::SeqCst);
            },
            |_| (),
        ));
        tokio::time::sleep(Duration::from_millis(20)).await;
        caller.abort();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(done.load(Ordering::SeqCst), "the detached work was cancelled with its caller");
    }

    #[tokio::test]
    async fn a_panic_becomes_a_value() {
        let work = async {
            if true {
                panic!("boom");
            }
            String::new()
        };
        let got = detached(work, |m| m).await;
        assert_eq!(got, "boom");
    }
}
