//! Sandboxes in a cluster (`server.cluster`): nodes share one snapshot store, where each
//! holds a lease and each sandbox names its node ([`crate::sandbox::snapstore::leases`]).
//!
//! A sandbox lives on exactly one node at a time. A node asked for a sandbox it does not
//! hold locates it: the door forwards the request to the owner while the owner's lease
//! holds; once it ran out (the node died) or the owner released it (the node drained), the
//! node takes the sandbox over (one node wins the fence) and brings it back from the store:
//! its record, its files' last copy and its contexts' last checkpoints or pause records.
//!
//! A node that cannot renew its lease for a whole lease's length (the store fails, or the
//! process stalled past it) stops at once: the others may have taken its sandboxes, and two
//! nodes must never both run one. A draining node releases its sandboxes only once their
//! contexts' sessions are kept, so a node taking one over finds its latest state.

use super::{Sandboxes, Sbx};
pub use crate::sandbox::Located;
use crate::sandbox::snapstore::{Lease, Owned, Owner};
use std::sync::Arc;
use std::time::Duration;

/// A token's SHA-256, in hex: the name of its record in the store.
pub(super) fn token_hash(token: &str) -> String {
    super::token_key(token).iter().map(|b| format!("{b:02x}")).collect()
}

impl Sandboxes {
    /// Whether this server is a node of a cluster.
    pub fn clustered(&self) -> bool {
        self.sandbox.config().server.cluster.enabled
    }

    fn me(&self) -> Option<String> {
        self.sandbox.node().map(str::to_string)
    }

    /// Records this node as the owner of a new sandbox (a cluster's node only).
    pub(super) async fn own(&self, sbx: &Sbx) {
        let Some(me) = self.me().filter(|_| self.clustered()) else { return };
        let store = self.sandbox.snapshot_store();
        if let Err(e) = store.own(Owned::Sandbox(&sbx.id), &sbx.tenant, &me).await {
            tracing::warn!(sandbox_id = %sbx.id, error = %e, "cannot record this node as the sandbox's owner");
        }
        if let Err(e) = store.put_token(&token_hash(&sbx.token), &sbx.id).await {
            tracing::warn!(sandbox_id = %sbx.id, error = %e, "cannot record the sandbox's token");
        }
    }

    /// The sandbox a token opens, wherever it runs (a cluster's node only): for Scalebox's
    /// in-sandbox routes, which carry the token alone.
    pub async fn sandbox_of_token(&self, token: &str) -> Option<String> {
        if let Some(id) = self.by_token().get(&super::token_key(token)) {
            return Some(id.clone());
        }
        if !self.clustered() {
            return None;
        }
        self.sandbox.snapshot_store().token_sandbox(&token_hash(token)).await.ok().flatten()
    }

    /// Where sandbox `id` is: here (taken over from a dead or drained node if need be), on
    /// another live node, or nowhere. Outside a cluster: here or nowhere, as held.
    pub async fn locate(&self, id: &str) -> Located {
        if self.boxes().contains_key(id) {
            return Located::Here;
        }
        let Some(me) = self.me().filter(|_| self.clustered()) else { return Located::Nowhere };
        let store = self.sandbox.snapshot_store().clone();
        // Twice at most: a lost race for the fence is followed by a read of the winner.
        for _ in 0..3 {
            let owner = match store.owner_of(Owned::Sandbox(id)).await {
                Ok(Some(owner)) => owner,
                Ok(None) => return Located::Nowhere,
                Err(e) => {
                    tracing::warn!(sandbox_id = %id, error = %e, "cannot read the sandbox's owner");
                    return Located::Nowhere;
                }
            };
            if owner.node != me && !owner.node.is_empty() {
                match store.live_address(&owner.node).await {
                    Ok(Some(address)) => return Located::There(address),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(sandbox_id = %id, node = %owner.node, error = %e, "cannot read the owner's lease");
                        return Located::Nowhere;
                    }
                }
            }
            match self.take_over(id, &owner, &me).await {
                Ok(true) => return Located::Here,
                Ok(false) => continue,
                Err(why) => {
                    tracing::warn!(sandbox_id = %id, from = %owner.node, reason = %why, "cannot take the sandbox over");
                    return Located::Nowhere;
                }
            }
        }
        Located::Nowhere
    }

    /// Takes sandbox `id` from `owner` (dead, released, or this node before a restart) and
    /// brings it back here; false when another node won it.
    async fn take_over(&self, id: &str, owner: &Owner, me: &str) -> Result<bool, String> {
        let _one = self.inner.taking.lock().await;
        if self.boxes().contains_key(id) {
            return Ok(true);
        }
        let store = self.sandbox.snapshot_store().clone();
        if owner.node != me && !store.take(Owned::Sandbox(id), owner, me).await.map_err(|e| e.to_string())? {
            return Ok(false);
        }
        let kept = store.kept_one(&owner.tenant, id).await.map_err(|e| e.to_string())?;
        let Some(kept) = kept else { return Err("its record is not in the store".into()) };
        let sessions = self.sandbox.kept_records(&owner.tenant).await;
        // The fence is ours: the dead node's claims of the contexts' sessions go.
        for record in sessions.iter().filter(|r| r.mounted && r.info.worker_id.starts_with(&format!("sbx-{id}-"))) {
            let _ = store.drop_claim(&owner.tenant, &record.info.session_id).await;
        }
        self.bring_back_one(kept, &sessions).await?;
        tracing::info!(sandbox_id = %id, from = %owner.node, "sandbox taken over");
        Ok(true)
    }

    /// Joins the cluster: writes this node's lease (reached at `address`) and renews it
    /// every third of its length until the server stops; exits the process when it cannot
    /// renew it for a whole lease.
    pub async fn join(&self, address: String) {
        let Some(me) = self.me().filter(|_| self.clustered()) else { return };
        let c = &self.sandbox.config().server.cluster;
        let address = c.advertise.clone().unwrap_or(address);
        let lease_s = c.lease_s;
        let store = self.sandbox.snapshot_store().clone();
        let lease = move || Lease {
            node: me.clone(),
            address: address.clone(),
            renewed_at: chrono::Utc::now().to_rfc3339(),
            lease_s,
        };
        if let Err(e) = store.put_lease(&lease()).await {
            tracing::error!(error = %e, "cannot write this node's lease; the others will not reach it");
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let every = Duration::from_secs_f64(lease_s / 3.0);
            let mut renewed = std::time::Instant::now();
            loop {
                tokio::time::sleep(every).await;
                if weak.upgrade().is_none() {
                    return;
                }
                // Late (a stalled process, a slow store) counts as lost: the others may have
                // taken its sandboxes meanwhile.
                let started = std::time::Instant::now();
                let put = store.put_lease(&lease()).await;
                if started.duration_since(renewed).as_secs_f64() >= lease_s
                    || (put.is_err() && renewed.elapsed().as_secs_f64() >= lease_s)
                {
                    tracing::error!(error = ?put.err(), "this node's lease ran out unrenewed: the others may run its sandboxes now; stopping");
                    std::process::exit(75);
                }
                match put {
                    Ok(()) => renewed = started,
                    Err(e) => tracing::warn!(error = %e, "cannot renew this node's lease (trying again)"),
                }
            }
        });
    }

    /// Leaves the cluster at a graceful stop, once every session is kept: every sandbox this
    /// node kept is released (the next node asked takes it at once) and the lease goes.
    pub async fn leave(&self, kept: &[String]) {
        let Some(me) = self.me().filter(|_| self.clustered()) else { return };
        let store = self.sandbox.snapshot_store().clone();
        for id in kept {
            if let Err(e) = store.release_owned(Owned::Sandbox(id), &me).await {
                tracing::warn!(sandbox_id = %id, error = %e, "cannot release the sandbox");
            }
        }
        if let Err(e) = store.drop_lease(&me).await {
            tracing::warn!(error = %e, "cannot remove this node's lease");
        }
        tracing::info!(sandboxes = kept.len(), node = %me, "left the cluster: its sandboxes are released to the others");
    }
}
