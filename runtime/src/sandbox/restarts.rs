//! What survives a restart: on a graceful stop every live session is snapshotted (no
//! `cleanup`), and at the next start every session a previous run kept, paused or
//! checkpointed comes back paused under its own id, restored on its first use.
//!
//! In a store several servers share, each such session is claimed by the node that stored
//! it ([`snapstore::claims`]): a server brings back only unclaimed sessions and its own, so
//! no session comes back twice and no running server's checkpoints are taken for a crash's.

use super::snapshots::Reason;
use super::snapstore::Claim;
use super::*;
use crate::engine::snapshot::Keep;

impl Sandbox {
    /// This server's node id among those sharing the snapshot store: `server.snapshots.node`,
    /// else the state directory's `node-id` (made the first time a session is claimed, so
    /// that `cella compile` and friends leave none). `None` when it cannot be kept there
    /// (logged): sessions are then not claimed, and come back on every server, as before
    /// claims.
    pub fn node(&self) -> Option<&str> {
        let made = self.inner.node.get_or_init(|| match &self.inner.config.server.snapshots.node {
            Some(node) => Some(node.clone()),
            None => snapstore::claims::node_id(self.inner.shared.cache.dir())
                .inspect_err(|e| tracing::warn!(error = %e, "cannot keep this server's node id: its kept sessions are not claimed"))
                .ok(),
        });
        made.as_deref()
    }

    /// Claims `session` for this node before its first record a restart would bring back
    /// is stored. A session another node claims is logged and stored all the same (it comes
    /// back on that node); a store that fails fails the snapshot, as its write would.
    pub(super) async fn claim(&self, session: &Session) -> std::result::Result<(), Refusal> {
        let Some(node) = self.node() else { return Ok(()) };
        if session.claimed.load(Ordering::Acquire) {
            return Ok(());
        }
        let tenant = &session.caller.tenant;
        match self.store().claim(tenant, &session.id, node).await {
            Ok(Claim::Ours | Claim::Unsupported) => session.claimed.store(true, Ordering::Release),
            Ok(Claim::Theirs(node)) => {
                tracing::warn!(session_id = %session.id, owner = %node, "the session is claimed by another node of the snapshot store")
            }
            Err(e) => return Err(super::snapshots::stored(e)),
        }
        Ok(())
    }

    /// Gives up this node's claim of a session that ended.
    pub(super) async fn unclaim(&self, session: &Session) {
        if session.claimed.swap(false, Ordering::AcqRel)
            && let Some(node) = self.node()
        {
            let tenant = &session.caller.tenant;
            if let Err(e) = self.store().unclaim(tenant, &session.id, node).await {
                tracing::warn!(session_id = %session.id, error = %e, "cannot remove the session's claim");
            }
        }
    }

    /// On graceful shutdown: snapshots every live session (no `cleanup`), so that each comes
    /// back on its first use after the restart. Returns how many were kept.
    pub(super) async fn keep_sessions(&self) -> usize {
        let mut kept = 0;
        for session in self.inner.sessions.drain() {
            let mut slot = session.instance.lock().await;
            if session.parked().is_some() {
                kept += 1;
                continue;
            }
            if slot.is_none() {
                continue;
            }
            let result = async {
                let (captured, files) = self.capture_locked(&session, &mut slot, Keep::Store).await?;
                self.put(&session, captured, files, Reason::Shutdown).await
            }
            .await;
            match result {
                Ok(_) => {
                    self.forget_checkpoint(&session).await;
                    kept += 1
                }
                Err(r) => {
                    tracing::warn!(session_id = %session.id, reason = %r.message, "session not kept over the restart")
                }
            }
            *slot = None;
            session.drop_scratch();
        }
        kept
    }

    /// At start: registers, paused, every session a previous run kept (paused, or live at its
    /// shutdown), under its own id. Each is restored on its first use.
    pub(super) async fn bring_back_sessions(&self) -> usize {
        // Sessions left to other nodes (a session may have two records).
        let (mut count, mut others) = (0, std::collections::HashSet::new());
        for tenant in self.store().tenants().await {
            // Newest first: a session with two records (a checkpoint and a later shutdown
            // snapshot, when a stop was cut short) comes back from the newer.
            for record in self.store().list(&tenant).await.into_iter().rev() {
                let reason = record.info.reason.as_str();
                if ![Reason::Pause, Reason::Shutdown, Reason::Checkpoint].iter().any(|r| r.as_str() == reason) {
                    continue;
                }
                let caller =
                    Caller { tenant: Arc::from(record.tenant.as_str()), worker_id: record.info.worker_id.clone() };
                let extras = Extras {
                    identity: Some((record.info.session_name.clone(), record.info.session_id.clone())),
                    pause_on_timeout: record.pause_on_timeout,
                    ..Extras::default()
                };
                let rt = &record.info.resource_type;
                if !self.inner.backends.contains_key(rt) {
                    continue;
                }
                // Without a node id, brought back unclaimed, as before claims.
                let claim = match self.node() {
                    Some(node) => self.store().claim(&tenant, &record.info.session_id, node).await,
                    None => Ok(Claim::Unsupported),
                };
                let claimed = match claim {
                    Ok(Claim::Ours) => true,
                    Ok(Claim::Unsupported) => false,
                    Ok(Claim::Theirs(node)) => {
                        others.insert(record.info.session_id.clone());
                        tracing::debug!(session_id = %record.info.session_id, owner = %node, "left to its node");
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(session_id = %record.info.session_id, error = %e, "cannot claim a kept session; not brought back");
                        continue;
                    }
                };
                let lookup =
                    self.inner.sessions.get_or_create(&caller, rt, record.info.config.clone(), None, None, &extras);
                if let Lookup::Existing(_) = lookup {
                    // An older record of a session already back.
                    let _ = self.store().delete(&record.tenant, &record.info.snapshot_id).await;
                } else if let Lookup::Created(fresh) = lookup {
                    let keep = if reason == "pause" {
                        self.retention()
                    } else {
                        Duration::from_secs_f64(record.info.ttl_remaining_s.max(1.0))
                    };
                    fresh.session.claimed.store(claimed, Ordering::Release);
                    fresh.session.activate(record.info.data.clone());
                    fresh.session.park(record.info.snapshot_id.clone(), keep);
                    count += 1;
                }
            }
        }
        if count > 0 {
            tracing::info!(sessions = count, "sessions kept by the previous run are back (restored on first use)");
        }
        if !others.is_empty() {
            tracing::info!(
                sessions = others.len(),
                node = self.node().unwrap_or_default(),
                "kept sessions claimed by other nodes of the snapshot store are left to them"
            );
        }
        count
    }
}
