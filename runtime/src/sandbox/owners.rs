//! A worker's sessions in a cluster (`server.cluster`): AgentFlow's workers and run API
//! sessions live, like sandboxes, on exactly one node at a time.
//!
//! The node that makes a worker's first session records itself as the worker's owner in the
//! shared store ([`Owned::Worker`], created only if absent). A node asked for a worker it
//! holds no session of locates it: while the owner's lease holds, the door forwards the
//! request there; once it ran out (the node died) or the owner released it (it drained), the
//! node takes the worker over through a fence only one node can create, drops the old
//! node's claims of its sessions and brings each back, paused, from its last checkpoint,
//! pause or shutdown record. The owner goes when the worker's last session ends.
//!
//! Sandbox contexts (`sbx-…` workers) are the sandboxes layer's: a sandbox has an owner of
//! its own and brings its contexts with it. An MCP session's worker (`mcp-…`) stays with its
//! MCP session.

use super::*;
use crate::sandbox::snapstore::{Owned, Owner};

/// Where what a request names (a sandbox, a worker) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Located {
    /// On this node (it was, or was taken over just now).
    Here,
    /// On another live node, reached at this address.
    There(String),
    /// Nowhere: it ended, or never was.
    Nowhere,
}

/// Workers with no owner record of their own: a sandbox's contexts (the sandboxes layer owns
/// the sandbox) and an MCP session's worker (it lives and ends with its MCP session, whose
/// node is recorded by the MCP door).
fn owned_elsewhere(caller: &Caller) -> bool {
    caller.worker_id.starts_with("sbx-") || caller.worker_id.starts_with("mcp-")
}

impl Sandbox {
    /// This node's id when it is a node of a cluster.
    fn cluster_node(&self) -> Option<String> {
        self.inner.config.server.cluster.enabled.then(|| self.node().map(str::to_string)).flatten()
    }

    /// Where the caller's worker is: here when this node holds a session of it, when no
    /// node owns it, or after taking it over from a dead or drained node; else on the live
    /// node that owns it. Outside a cluster: always here.
    pub async fn locate_worker(&self, caller: &Caller) -> Located {
        let Some(me) = self.cluster_node() else { return Located::Here };
        if owned_elsewhere(caller) || self.inner.sessions.has_any(caller) {
            return Located::Here;
        }
        let store = self.store().clone();
        let what = Owned::Worker { tenant: &caller.tenant, worker: &caller.worker_id };
        // Three times at most: a lost race for the fence is followed by a read of the winner.
        for _ in 0..3 {
            let owner = match store.owner_of(what).await {
                Ok(Some(owner)) => owner,
                Ok(None) => return Located::Here,
                Err(e) => {
                    tracing::warn!(tenant = %caller.tenant, worker_id = %caller.worker_id, error = %e, "cannot read the worker's owner; serving it here");
                    return Located::Here;
                }
            };
            if owner.node == me {
                return Located::Here;
            }
            if !owner.node.is_empty() {
                match store.live_address(&owner.node).await {
                    Ok(Some(address)) => return Located::There(address),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(worker_id = %caller.worker_id, node = %owner.node, error = %e, "cannot read the owner's lease");
                        return Located::Nowhere;
                    }
                }
            }
            match self.take_worker(caller, &owner, &me).await {
                Ok(true) => return Located::Here,
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(tenant = %caller.tenant, worker_id = %caller.worker_id, from = %owner.node, error = %e, "cannot take the worker over");
                    return Located::Nowhere;
                }
            }
        }
        Located::Nowhere
    }

    /// Takes the caller's worker from `owner` (dead or drained) and brings its sessions back
    /// here, paused; false when another node won it.
    async fn take_worker(&self, caller: &Caller, owner: &Owner, me: &str) -> std::result::Result<bool, String> {
        let store = self.store().clone();
        let what = Owned::Worker { tenant: &caller.tenant, worker: &caller.worker_id };
        if !store.take(what, owner, me).await.map_err(|e| e.to_string())? {
            return Ok(false);
        }
        let mut records = self.kept_records(&caller.tenant).await;
        records.retain(|r| !r.mounted && r.info.worker_id == caller.worker_id);
        // The fence is ours: the old node's claims of the worker's sessions go, so that they
        // are claimed here as they come back.
        for record in &records {
            let _ = store.drop_claim(&caller.tenant, &record.info.session_id).await;
        }
        let mut back = 0;
        for record in &records {
            if self.bring_back(record, Extras::default()).await == BroughtBack::Back {
                back += 1;
            }
        }
        tracing::info!(tenant = %caller.tenant, worker_id = %caller.worker_id, from = %owner.node, sessions = back, "worker taken over");
        Ok(true)
    }

    /// Records this node as the owner of the caller's worker as its first session here is
    /// made (a cluster's node only); another live owner (two nodes asked at once) is logged.
    pub(super) async fn own_worker(&self, caller: &Caller) {
        let Some(me) = self.cluster_node() else { return };
        if owned_elsewhere(caller) {
            return;
        }
        let what = Owned::Worker { tenant: &caller.tenant, worker: &caller.worker_id };
        match self.store().own(what, &caller.tenant, &me).await {
            Ok(owner) if owner.node == me => {}
            Ok(owner) => {
                tracing::warn!(tenant = %caller.tenant, worker_id = %caller.worker_id, owner = %owner.node, "the worker is recorded as another node's")
            }
            Err(e) => {
                tracing::warn!(tenant = %caller.tenant, worker_id = %caller.worker_id, error = %e, "cannot record this node as the worker's owner")
            }
        }
    }

    /// Removes this node's ownership of the caller's worker once it holds no session here.
    pub(super) async fn disown_worker(&self, caller: &Caller) {
        let Some(me) = self.cluster_node() else { return };
        if owned_elsewhere(caller) || self.inner.sessions.has_any(caller) {
            return;
        }
        let what = Owned::Worker { tenant: &caller.tenant, worker: &caller.worker_id };
        if let Err(e) = self.store().disown_if(what, &me).await {
            tracing::warn!(tenant = %caller.tenant, worker_id = %caller.worker_id, error = %e, "cannot remove the worker's owner");
        }
    }

    /// At a graceful stop, once their sessions are kept: releases `workers`, so that the
    /// next node asked for one takes it at once.
    pub(super) async fn release_workers(&self, workers: &[Caller]) {
        use futures::StreamExt;
        let Some(me) = self.cluster_node() else { return };
        // Side by side: on a bucket each release is two round trips.
        futures::stream::iter(workers.iter().filter(|c| !owned_elsewhere(c)))
            .for_each_concurrent(16, |caller| {
                let me = me.as_str();
                async move {
                    let what = Owned::Worker { tenant: &caller.tenant, worker: &caller.worker_id };
                    if let Err(e) = self.store().release_owned(what, me).await {
                        tracing::warn!(tenant = %caller.tenant, worker_id = %caller.worker_id, error = %e, "cannot release the worker");
                    }
                }
            })
            .await;
        if !workers.is_empty() {
            tracing::info!(workers = workers.len(), "workers released to the cluster's other nodes");
        }
    }

    /// At start, in a cluster: whether a kept session of `worker` is still this node's to
    /// bring back (the store names this node, or no node, as its owner); a worker another
    /// node took, or that this node released at its last stop, is taken on its first use.
    pub(super) async fn still_ours(&self, tenant: &str, worker: &str) -> bool {
        let Some(me) = self.cluster_node() else { return true };
        let caller = Caller { tenant: Arc::from(tenant), worker_id: worker.to_string() };
        if owned_elsewhere(&caller) {
            return true;
        }
        match self.store().owner_of(Owned::Worker { tenant, worker }).await {
            Ok(Some(owner)) => owner.node == me,
            Ok(None) => true,
            Err(_) => false,
        }
    }
}
