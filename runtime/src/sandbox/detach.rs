//! Work that outlives its caller.
//!
//! A front door's handler future is dropped when its client disconnects. A guest call
//! abandoned that way stops inside the component, whose instance can then never be entered
//! again, and the bookkeeping around it (busy marks, temporary sessions, scratch folders)
//! never runs. So every verb of the facade that enters a guest runs its work in a task of its
//! own once its caller lets go: the work is polled in place (no task, no hop to another
//! thread, while the caller waits for it), and if the caller's future is dropped before the
//! work ends, what is left of the work is handed to a task of its own. A call that has
//! started runs to its end or its deadline whatever happens to the connection.

use futures::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use tracing::Instrument;

/// Runs `work` (in the current span) and returns its result; if the returned future is
/// dropped first, the work goes on in a task of its own. A panic in the work is logged and
/// answered by `on_panic` with its message; the server goes on.
pub async fn detached<T, F>(work: F, on_panic: impl FnOnce(String) -> T) -> T
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let work: Work<T> = Box::pin(AssertUnwindSafe(work.in_current_span()).catch_unwind());
    match (OwnedWork { work: Some(work) }).await {
        Ok(value) => value,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            tracing::error!(error = %message, "internal error in a detached task");
            on_panic(message)
        }
    }
}

/// A panic's message.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

type Work<T> = Pin<Box<dyn Future<Output = Result<T, Box<dyn Any + Send>>> + Send>>;

/// Work polled by its caller until it ends; dropped unfinished, it moves to a task.
struct OwnedWork<T: Send + 'static> {
    work: Option<Work<T>>,
}

impl<T: Send + 'static> Future for OwnedWork<T> {
    type Output = Result<T, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(work) = self.work.as_mut() else {
            return Poll::Ready(Err(Box::new("detached work polled after it ended")));
        };
        let done = std::task::ready!(work.as_mut().poll(cx));
        self.work = None;
        Poll::Ready(done)
    }
}

impl<T: Send + 'static> Drop for OwnedWork<T> {
    fn drop(&mut self) {
        let Some(work) = self.work.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(payload) = work.await {
                        let message = panic_message(payload.as_ref());
                        tracing::error!(error = %message, "internal error in detached work its caller left");
                    }
                });
            }
            Err(_) => tracing::error!("detached work dropped outside a runtime: it cannot go on"),
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
