//! What survives a restart: on a graceful stop every live session is snapshotted (no
//! `cleanup`), and at the next start every session a previous run kept, paused or
//! checkpointed comes back paused under its own id, restored on its first use.
//!
//! In a store several servers share, each such session is claimed by the node that stored
//! it ([`snapstore::claims`]): a server brings back only unclaimed sessions and its own, so
//! no session comes back twice and no running server's checkpoints are taken for a crash's.

use super::snapshots::Reason;
use super::snapstore::{Claim, Record};
use super::*;
use crate::engine::snapshot::Keep;

/// How many more times a graceful stop tries to keep a session whose capture failed.
const KEEP_RETRIES: usize = 2;

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
    ///
    /// A full server can fail a capture for want of memory, map entries or a pool slot: such
    /// a session keeps its instance and is tried again once every other session's instance is
    /// gone (their slots and maps are free then), so a retry makes no new slot. What still
    /// cannot be kept is logged with its ids and counted (`cella_sessions_not_kept`).
    pub(super) async fn keep_sessions(&self) -> usize {
        let mut kept = 0;
        let mut failed: Vec<(Arc<Session>, String)> =
            self.inner.sessions.drain().into_iter().map(|s| (s, String::new())).collect();
        for round in 0..=KEEP_RETRIES {
            if failed.is_empty() {
                break;
            }
            if round > 0 {
                tracing::info!(
                    sessions = failed.len(),
                    round,
                    "trying again to keep the sessions a capture failed for"
                );
            }
            for (session, _) in std::mem::take(&mut failed) {
                match self.keep_one(&session).await {
                    Ok(true) => kept += 1,
                    Ok(false) => {}
                    Err(why) => failed.push((session, why)),
                }
            }
        }
        for (session, why) in &failed {
            tracing::warn!(
                tenant = %session.caller.tenant,
                worker_id = %session.caller.worker_id,
                session_id = %session.id,
                backend = %session.resource_type,
                reason = %why,
                "session not kept over the restart"
            );
            let labels = crate::metrics::BackendLabels { backend: session.resource_type.clone() };
            self.inner.shared.metrics.sessions_not_kept.get_or_create(&labels).inc();
            *session.instance.lock().await = None;
            session.drop_scratch();
        }
        if !failed.is_empty() {
            tracing::warn!(sessions = failed.len(), "sessions lost at this stop (see each one's line above)");
        }
        kept
    }

    /// Snapshots one session for the next start and frees its instance: `Ok(true)` when it
    /// is kept (or was already paused), `Ok(false)` when it had no instance to keep, `Err`
    /// (its instance left in place, for a retry) when the capture or the store failed.
    async fn keep_one(&self, session: &Arc<Session>) -> std::result::Result<bool, String> {
        let mut slot = session.instance.lock().await;
        if session.parked().is_some() {
            return Ok(true);
        }
        if slot.is_none() {
            return Ok(false);
        }
        let result = async {
            let (captured, files) = self.capture_locked(session, &mut slot, Keep::Store).await?;
            self.put(session, captured, files, Reason::Shutdown).await
        }
        .await;
        match result {
            Ok(_) => {
                self.forget_checkpoint(session).await;
                *slot = None;
                session.drop_scratch();
                Ok(true)
            }
            Err(r) => Err(r.message),
        }
    }

    /// At start: registers, paused, every session a previous run kept (paused, or live at its
    /// shutdown), under its own id. Each is restored on its first use. A session that
    /// mounted a door's directory (a sandbox's context) is left to that door, which brings it
    /// back with the directory ([`Sandbox::bring_back`]).
    pub(super) async fn bring_back_sessions(&self) -> usize {
        // Sessions left to other nodes (a session may have two records).
        let (mut count, mut others) = (0, std::collections::HashSet::new());
        for tenant in self.store().tenants().await {
            // In a cluster, a worker another node took (or this one released) is not ours.
            let mut ours = std::collections::HashMap::new();
            for record in self.kept_records(&tenant).await {
                if record.mounted {
                    continue;
                }
                let worker = record.info.worker_id.clone();
                let mine = match ours.get(&worker) {
                    Some(mine) => *mine,
                    None => *ours.entry(worker).or_insert(self.still_ours(&tenant, &record.info.worker_id).await),
                };
                if !mine {
                    others.insert(record.info.session_id.clone());
                    continue;
                }
                match self.bring_back(&record, Extras::default()).await {
                    BroughtBack::Back => count += 1,
                    BroughtBack::Theirs => {
                        others.insert(record.info.session_id.clone());
                    }
                    BroughtBack::Not => {}
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

    /// The records of `tenant` a start brings back (pause, shutdown and checkpoint ones),
    /// newest first: a session with two records (a checkpoint and a later shutdown snapshot,
    /// when a stop was cut short) comes back from the newer.
    pub async fn kept_records(&self, tenant: &str) -> Vec<Record> {
        let kinds = [Reason::Pause, Reason::Shutdown, Reason::Checkpoint];
        let mut records = self.store().list(tenant).await;
        records.retain(|r| kinds.iter().any(|k| k.as_str() == r.info.reason));
        records.reverse();
        records
    }

    /// Registers, paused under its own id, the session a kept record holds, made with
    /// `extras` (a door's TTL and mount; its identity and `on_timeout` are the record's).
    /// It is restored on its first use. A record another node claims is left to it; an older
    /// record of a session already back is deleted.
    pub async fn bring_back(&self, record: &Record, mut extras: Extras) -> BroughtBack {
        let tenant = record.tenant.as_str();
        let caller = Caller { tenant: Arc::from(tenant), worker_id: record.info.worker_id.clone() };
        extras.identity = Some((record.info.session_name.clone(), record.info.session_id.clone()));
        extras.pause_on_timeout = record.pause_on_timeout;
        let rt = &record.info.resource_type;
        if !self.inner.backends.contains_key(rt) {
            return BroughtBack::Not;
        }
        // Without a node id, brought back unclaimed, as before claims.
        let claim = match self.node() {
            Some(node) => self.store().claim(tenant, &record.info.session_id, node).await,
            None => Ok(Claim::Unsupported),
        };
        let claimed = match claim {
            Ok(Claim::Ours) => true,
            Ok(Claim::Unsupported) => false,
            Ok(Claim::Theirs(node)) => {
                tracing::debug!(session_id = %record.info.session_id, owner = %node, "left to its node");
                return BroughtBack::Theirs;
            }
            Err(e) => {
                tracing::warn!(session_id = %record.info.session_id, error = %e, "cannot claim a kept session; not brought back");
                return BroughtBack::Not;
            }
        };
        match self.inner.sessions.get_or_create(&caller, rt, record.info.config.clone(), None, None, &extras) {
            Lookup::Existing(_) => {
                // An older record of a session already back.
                let _ = self.store().delete(tenant, &record.info.snapshot_id).await;
                BroughtBack::Not
            }
            Lookup::Created(fresh) => {
                let keep = if record.info.reason == Reason::Pause.as_str() {
                    self.retention()
                } else {
                    Duration::from_secs_f64(record.info.ttl_remaining_s.max(1.0))
                };
                fresh.session.claimed.store(claimed, Ordering::Release);
                fresh.session.activate(record.info.data.clone());
                fresh.session.park(record.info.snapshot_id.clone(), keep);
                BroughtBack::Back
            }
            _ => BroughtBack::Not,
        }
    }
}

/// What [`Sandbox::bring_back`] did with a kept record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroughtBack {
    /// Its session is registered, paused.
    Back,
    /// Another node claims it.
    Theirs,
    /// Not brought back (an older record, a backend this server lacks, a store error).
    Not,
}
