//! The reaper: ends expired sessions promptly; and [`repeat`], the loop every background
//! task of the sandbox runs in.

use super::*;

/// The reaper: ends expired sessions promptly. It checks a few times per TTL (at least
/// every second) and stops when the sandbox is gone.
pub(super) fn spawn_reaper(inner: Weak<Inner>) {
    let ttl = match inner.upgrade() {
        Some(i) => i.sessions.ttl(),
        None => return,
    };
    let period = (ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    repeat(inner, Duration::ZERO, period, |inner| async move {
        let (expired, to_pause) = inner.sessions.take_expired(inner.config.server.snapshots.enabled);
        if expired.is_empty() && to_pause.is_empty() {
            return;
        }
        let sandbox = Sandbox { inner };
        for session in to_pause {
            let sandbox = sandbox.clone();
            tracing::info!(tenant = %session.caller.tenant, worker_id = %session.caller.worker_id, session_id = %session.id, "session expired: pausing it (on_timeout: pause)");
            tokio::spawn(async move {
                if let Err(r) = sandbox.pause(&session).await {
                    tracing::warn!(session_id = %session.id, reason = %r.message, "cannot pause an expired session; ending it");
                    sandbox.inner.sessions.remove_exact(&session);
                    sandbox.end_session(&session).await;
                }
            });
        }
        for session in expired {
            let sandbox = sandbox.clone();
            tracing::info!(tenant = %session.caller.tenant, worker_id = %session.caller.worker_id, session_id = %session.id, "session expired");
            tokio::spawn(async move { sandbox.end_session(&session).await });
        }
    });
}

/// Runs `tick` after `first`, then every `period` (a late tick waits, never bursts), with the
/// sandbox, until the sandbox is gone or closing. `tick` gets the sandbox's state for the
/// round and should drop it before long waits, so that the sandbox can go meanwhile.
pub(super) fn repeat<F, Fut>(inner: Weak<Inner>, first: Duration, period: Duration, mut tick: F)
where
    F: FnMut(Arc<Inner>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + first, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(inner) = inner.upgrade() else { break };
            if inner.closing.load(Ordering::Acquire) {
                break;
            }
            tick(inner).await;
        }
    });
}
