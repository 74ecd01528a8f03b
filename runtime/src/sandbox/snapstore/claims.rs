//! Claims: which server owns a session whose state is in a store several servers share.
//!
//! A session paused, checkpointed or kept over a graceful stop has a record any server of
//! the store can read, and every server brings such sessions back at its start. Without an
//! owner, two servers sharing a store would both bring back the same session (and then both
//! run it, each writing its own state), and a server starting beside a running one would take
//! the running one's checkpointed sessions for sessions of a crashed server.
//!
//! So a server claims a session before it stores the first such record of it, or before it
//! brings it back: `tenants/<tenant>/claims/<session id>`, created only if absent
//! (`PutMode::Create`: a hard link on a local store, `If-None-Match: *` on S3), holding the
//! server's node id. A session claimed by another node is left to it; a node restarted
//! (after a crash too) takes its own claims back, since its node id is kept
//! (`server.snapshots.node`, else the state directory's `node-id`). The claim goes when the
//! session ends. `cella snapshots release --node N` hands the sessions of a node that will
//! not come back to whichever server starts next.

use super::*;
use crate::config::valid_node;
use object_store::{PutMode, PutOptions};

/// What claiming a session found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This node owns it (claimed now, or before, e.g. by this node's previous run).
    Ours,
    /// Another node does: leave the session to it.
    Theirs(String),
    /// The store cannot create an object only if it is absent (an S3-compatible service
    /// without conditional writes): nothing is owned, every server brings sessions back.
    Unsupported,
}

/// What a claim holds.
#[derive(Debug, Serialize, Deserialize)]
struct Owner {
    node: String,
    claimed_at: String,
}

/// A claim in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The session's tenant (as its folder is named).
    pub tenant: String,
    /// The session.
    pub session_id: String,
    /// The node that owns it.
    pub node: String,
}

/// This machine's node id, kept in `dir/node-id` (made on first use: `node_<16 hex>`), so that
/// a server restarted on it takes its own claims back.
pub fn node_id(dir: &Path) -> std::io::Result<String> {
    let at = dir.join("node-id");
    match std::fs::read_to_string(&at) {
        Ok(text) if valid_node(text.trim()) => return Ok(text.trim().to_string()),
        Ok(text) => {
            return Err(std::io::Error::other(format!(
                "{} holds '{}', not a node id ([A-Za-z0-9_-], at most 64)",
                at.display(),
                text.trim()
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(dir)?;
    // Written whole under a name of its own, then linked into place: a process starting at
    // the same moment reads either no file or the whole id, and one id wins.
    let node = format!("node_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let staged = dir.join(format!("node-id.{node}"));
    std::fs::write(&staged, &node)?;
    let linked = std::fs::hard_link(&staged, &at);
    let _ = std::fs::remove_file(&staged);
    match linked {
        Ok(()) => Ok(node),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => node_id(dir),
        Err(e) => Err(e),
    }
}

impl SnapshotStore {
    fn claim_key(tenant: &str, session_id: &str) -> Key {
        key(["tenants", &tenant_part(tenant), "claims", &tenant_part(session_id)])
    }

    async fn owner(&self, at: &Key) -> Result<Option<String>, StoreError> {
        let Some(bytes) = self.read(at).await? else { return Ok(None) };
        let owner: Owner = serde_json::from_slice(&bytes).map_err(|e| io(format!("claim {at}: {e}")))?;
        Ok(Some(owner.node))
    }

    /// Claims `tenant`'s session `session_id` for `node`, unless another node has.
    pub async fn claim(&self, tenant: &str, session_id: &str, node: &str) -> Result<Claim, StoreError> {
        let at = Self::claim_key(tenant, session_id);
        let owner = Owner { node: node.to_string(), claimed_at: chrono::Utc::now().to_rfc3339() };
        let body = serde_json::to_vec(&owner).map_err(io)?;
        let create = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.objects.put_opts(&at, body.into(), create).await {
            Ok(_) => Ok(Claim::Ours),
            Err(object_store::Error::AlreadyExists { .. }) | Err(object_store::Error::Precondition { .. }) => {
                match self.owner(&at).await? {
                    Some(owner) if owner == node => Ok(Claim::Ours),
                    Some(owner) => Ok(Claim::Theirs(owner)),
                    // Released meanwhile: try again.
                    None => Box::pin(self.claim(tenant, session_id, node)).await,
                }
            }
            Err(object_store::Error::NotImplemented { .. }) | Err(object_store::Error::NotSupported { .. }) => {
                Ok(Claim::Unsupported)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Gives up `node`'s claim of a session (it ended); another node's is left.
    pub async fn unclaim(&self, tenant: &str, session_id: &str, node: &str) -> Result<(), StoreError> {
        let at = Self::claim_key(tenant, session_id);
        match self.owner(&at).await? {
            Some(owner) if owner == node => self.remove(&at).await,
            _ => Ok(()),
        }
    }

    /// Removes the claim of `tenant`'s session `session_id`, whoever holds it: its last
    /// record was deleted, so no server can bring it back.
    pub async fn drop_claim(&self, tenant: &str, session_id: &str) -> Result<(), StoreError> {
        self.remove(&Self::claim_key(tenant, session_id)).await
    }

    /// Every claim in the store.
    pub async fn claims(&self) -> Result<Vec<Claimed>, StoreError> {
        let mut out = Vec::new();
        for tenant in self.tenants().await {
            let prefix = key(["tenants", &tenant, "claims"]);
            let listed: Vec<_> = self.objects.list(Some(&prefix)).try_collect().await.map_err(io)?;
            // Read side by side: one GET each, which on a bucket is a round trip.
            let owners: Vec<_> = futures::stream::iter(listed)
                .filter_map(|meta| async move { meta.location.filename().map(str::to_string).map(|id| (id, meta)) })
                .map(|(session_id, meta)| async move { (session_id, self.owner(&meta.location).await) })
                .buffer_unordered(READ_AHEAD)
                .collect()
                .await;
            for (session_id, owner) in owners {
                if let Some(node) = owner? {
                    out.push(Claimed { tenant: tenant.clone(), session_id, node });
                }
            }
        }
        // Read in any order; listed in the store's.
        out.sort_by(|a, b| (&a.tenant, &a.session_id).cmp(&(&b.tenant, &b.session_id)));
        Ok(out)
    }

    /// Removes every claim of `node` (a node that will not come back), so that the next
    /// server to start brings its sessions back; returns how many.
    pub async fn release(&self, node: &str) -> Result<usize, StoreError> {
        let mut released = 0;
        for claim in self.claims().await?.into_iter().filter(|c| c.node == node) {
            self.remove(&Self::claim_key(&claim.tenant, &claim.session_id)).await?;
            released += 1;
        }
        Ok(released)
    }
}
