//! A cluster's shared state in the store (`server.cluster`): each node's lease, and which
//! node runs each sandbox.
//!
//! - `cluster/nodes/<node>.json`: a [`Lease`], renewed by its node every third of its
//!   length; a node whose lease ran out is dead to the others;
//! - `cluster/sandboxes/<sandbox id>/owner.json`: the [`Owner`] of a sandbox, created only if
//!   absent (`PutMode::Create`) when the sandbox is made;
//! - `cluster/sandboxes/<sandbox id>/taken-<holder>-<its claim's time>`: the fence of a
//!   takeover: to take a sandbox from a dead holder a node must create this object first,
//!   which only one node can, so two nodes racing for one sandbox never both win it; the
//!   fences go with the owner.

use super::*;
use object_store::{PutMode, PutOptions};

/// A node's lease.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Lease {
    /// The node.
    pub node: String,
    /// Where the other nodes reach it (`http://host:port`).
    pub address: String,
    /// When it was last renewed (RFC 3339).
    pub renewed_at: String,
    /// How long it lasts from then, in seconds.
    pub lease_s: f64,
}

impl Lease {
    /// Whether it still holds at `now`.
    pub fn live(&self, now: chrono::DateTime<chrono::Utc>) -> bool {
        let Ok(at) = chrono::DateTime::parse_from_rfc3339(&self.renewed_at) else { return false };
        let length = chrono::Duration::milliseconds((self.lease_s * 1000.0) as i64);
        at.with_timezone(&chrono::Utc) + length > now
    }
}

/// Which node runs a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The node.
    pub node: String,
    /// The sandbox's tenant.
    pub tenant: String,
    /// When this node took it (RFC 3339): names the fence of its next takeover.
    pub since: String,
}

fn create() -> PutOptions {
    PutOptions { mode: PutMode::Create, ..Default::default() }
}

fn taken(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. })
}

impl SnapshotStore {
    fn lease_key(node: &str) -> Key {
        key(["cluster", "nodes", &format!("{}.json", tenant_part(node))])
    }

    fn owner_key(id: &str) -> Key {
        key(["cluster", "sandboxes", &tenant_part(id), "owner.json"])
    }

    /// Writes (renews) `lease`.
    pub async fn put_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.write(&Self::lease_key(&lease.node), serde_json::to_vec(lease).map_err(io)?).await
    }

    /// The lease of `node`, if it has one.
    pub async fn lease(&self, node: &str) -> Result<Option<Lease>, StoreError> {
        let Some(bytes) = self.read(&Self::lease_key(node)).await? else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| io(format!("lease of {node}: {e}")))
    }

    /// Removes `node`'s lease (it stopped: the others need not wait for it to run out).
    pub async fn drop_lease(&self, node: &str) -> Result<(), StoreError> {
        self.remove(&Self::lease_key(node)).await
    }

    /// Every lease in the store.
    pub async fn leases(&self) -> Vec<Lease> {
        let Some(listed) = self.listing(&key(["cluster", "nodes"])).await else { return Vec::new() };
        self.read_all(listed.objects.into_iter().map(|o| o.location).collect()).await
    }

    /// Records `node` as the owner of a new sandbox (unless one is recorded: then it is
    /// answered).
    pub async fn own_sandbox(&self, id: &str, tenant: &str, node: &str) -> Result<Owner, StoreError> {
        let owner = Owner { node: node.into(), tenant: tenant.into(), since: chrono::Utc::now().to_rfc3339() };
        let body = serde_json::to_vec(&owner).map_err(io)?;
        match self.objects.put_opts(&Self::owner_key(id), body.into(), create()).await {
            Ok(_) => Ok(owner),
            Err(e) if taken(&e) => self.sandbox_owner(id).await?.ok_or_else(|| io("the owner vanished")),
            Err(e) => Err(io(e)),
        }
    }

    /// The owner of sandbox `id`, if one is recorded.
    pub async fn sandbox_owner(&self, id: &str) -> Result<Option<Owner>, StoreError> {
        let Some(bytes) = self.read(&Self::owner_key(id)).await? else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| io(format!("owner of {id}: {e}")))
    }

    /// Takes sandbox `id` from `from` (a dead node's ownership) for `node`: true when this
    /// node won it. The fence is created only if absent, so of nodes racing for one sandbox
    /// exactly one wins; the others then read the new owner.
    pub async fn take_sandbox(&self, id: &str, from: &Owner, node: &str) -> Result<bool, StoreError> {
        let fence = format!("taken-{}-{}", tenant_part(&from.node), tenant_part(&from.since));
        let at = key(["cluster", "sandboxes", &tenant_part(id), &fence]);
        match self.objects.put_opts(&at, node.as_bytes().to_vec().into(), create()).await {
            Ok(_) => {}
            Err(e) if taken(&e) => return Ok(false),
            Err(e) => return Err(io(e)),
        }
        let owner = Owner { node: node.into(), tenant: from.tenant.clone(), since: chrono::Utc::now().to_rfc3339() };
        self.write(&Self::owner_key(id), serde_json::to_vec(&owner).map_err(io)?).await?;
        Ok(true)
    }

    /// Removes sandbox `id`'s owner and fences (it ended).
    pub async fn drop_sandbox_owner(&self, id: &str) -> Result<(), StoreError> {
        self.remove(&Self::owner_key(id)).await?;
        let prefix = key(["cluster", "sandboxes", &tenant_part(id)]);
        let listed: Vec<_> = self.objects.list(Some(&prefix)).try_collect().await.map_err(io)?;
        for meta in listed {
            self.remove(&meta.location).await?;
        }
        Ok(())
    }

    /// Releases sandbox `id` (its node, `node`, drains): its owner becomes none, so that the
    /// next node asked for it takes it at once (through a fence, as from a dead node).
    pub async fn release_sandbox(&self, id: &str, node: &str) -> Result<(), StoreError> {
        match self.sandbox_owner(id).await? {
            Some(owner) if owner.node == node => {
                let released = Owner { node: String::new(), since: chrono::Utc::now().to_rfc3339(), ..owner };
                self.write(&Self::owner_key(id), serde_json::to_vec(&released).map_err(io)?).await
            }
            _ => Ok(()),
        }
    }
}
