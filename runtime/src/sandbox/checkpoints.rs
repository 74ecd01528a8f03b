//! Checkpoints (`server.snapshots.checkpoint_interval_s`): every interval, each live session
//! that changed since its last checkpoint is snapshotted, so that a crash (no graceful stop)
//! loses at most the interval. A session keeps one checkpoint, replaced by the next and
//! deleted when the session ends, pauses or is kept over a graceful stop; after a crash the
//! next start brings each back from its checkpoint, paused, like a session kept at shutdown.
//!
//! The sweeper: at start and then hourly, the store's orphans older than
//! `server.snapshots.orphan_grace_s` (what a crash between a blob and its record leaves) are
//! removed ([`snapstore::SnapshotStore::sweep`]).

use super::snapshots::Reason;
use super::*;
use crate::engine::snapshot::Keep;

/// Starts the checkpointer when the interval is set; it stops with the sandbox.
pub(super) fn spawn_checkpointer(inner: Weak<Inner>) {
    let Some(period) = inner.upgrade().and_then(|i| {
        let s = &i.config.server.snapshots;
        (s.enabled && s.checkpoint_interval_s > 0.0).then(|| crate::config::seconds(s.checkpoint_interval_s))
    }) else {
        return;
    };
    super::reaper::repeat(inner, period, period, |inner| async move {
        let (taken, failed) = Sandbox { inner }.checkpoint_round().await;
        if taken + failed > 0 {
            tracing::debug!(taken, failed, "checkpoint round");
        }
    });
}

/// Starts the sweeper when snapshots are on; it stops with the sandbox.
pub(super) fn spawn_sweeper(inner: Weak<Inner>) {
    let Some(grace) = inner.upgrade().and_then(|i| {
        let s = &i.config.server.snapshots;
        s.enabled.then(|| Duration::from_secs_f64(s.orphan_grace_s))
    }) else {
        return;
    };
    super::reaper::repeat(inner, Duration::ZERO, snapstore::sweep::PERIOD, move |inner| {
        let store = inner.snapshots.clone();
        drop(inner);
        async move {
            store.sweep(grace).await;
        }
    });
}

impl Sandbox {
    /// Checkpoints every live session that changed since its last checkpoint, one at a time;
    /// returns how many were taken and how many failed.
    pub(super) async fn checkpoint_round(&self) -> (usize, usize) {
        let (mut taken, mut failed) = (0, 0);
        for session in self.inner.sessions.all() {
            if self.inner.closing.load(Ordering::Acquire) {
                break;
            }
            if session.parked().is_some() || !session.take_dirty() {
                continue;
            }
            match self.checkpoint(&session).await {
                Ok(true) => taken += 1,
                Ok(false) => {}
                Err(refusal) => {
                    failed += 1;
                    tracing::warn!(tenant = %session.caller.tenant, worker_id = %session.caller.worker_id, session_id = %session.id, reason = %refusal.message, "cannot checkpoint the session");
                }
            }
        }
        (taken, failed)
    }

    /// Checkpoints one session: under its instance lock, so never mid-call, and so that a
    /// session ending or pausing meanwhile (both take the lock) deletes this checkpoint
    /// rather than leave it to bring the session back after a restart.
    async fn checkpoint(&self, session: &Arc<Session>) -> std::result::Result<bool, Refusal> {
        let mut slot = session.instance.lock().await;
        let registered =
            self.inner.sessions.get(&session.caller, &session.resource_type).is_some_and(|s| Arc::ptr_eq(&s, session));
        if slot.is_none() || session.parked().is_some() || !registered {
            return Ok(false);
        }
        let (captured, files) = self.capture_locked(session, &mut slot, Keep::Store).await?;
        let record = self.put(session, captured, files, Reason::Checkpoint).await?;
        if let Some(old) = session.set_checkpoint(Some(record.info.snapshot_id)) {
            let _ = self.store().delete(&session.caller.tenant, &old).await;
        }
        Ok(true)
    }

    /// Deletes the session's checkpoint: its state is now elsewhere (a pause or shutdown
    /// snapshot) or gone (it ended).
    pub(super) async fn forget_checkpoint(&self, session: &Session) {
        if let Some(id) = session.set_checkpoint(None) {
            let _ = self.store().delete(&session.caller.tenant, &id).await;
        }
    }
}
