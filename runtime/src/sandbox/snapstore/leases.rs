//! A cluster's shared state in the store (`server.cluster`): each node's lease, and which
//! node runs each sandbox, each worker's sessions and each MCP session.
//!
//! - `cluster/nodes/<node>.json`: a [`Lease`], renewed by its node every third of its
//!   length; a node whose lease ran out is dead to the others;
//! - `<owned>/owner.json`: the [`Owner`] of what [`Owned`] names, created only if absent
//!   (`PutMode::Create`) when it is made: `cluster/sandboxes/<sandbox id>`,
//!   `cluster/workers/<tenant>/<worker id in hex>` (a worker's sessions: AgentFlow's workers,
//!   run API sessions), `cluster/mcp/<MCP session id>`;
//! - `cluster/tokens/<sha-256 of a sandbox's access token>.json`: which sandbox the token
//!   opens, for Scalebox's in-sandbox routes that carry the token alone;
//! - `<owned>/taken-<holder>-<its claim's time>`: the fence of a takeover: to take what a
//!   dead holder owned a node must create this object first, which only one node can, so
//!   two nodes racing for one sandbox or worker never both win it; the fences go with the
//!   owner.

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

/// What a node owns in a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owned<'a> {
    /// An E2B or Scalebox sandbox, by id.
    Sandbox(&'a str),
    /// A worker's sessions (an AgentFlow worker, a run API session).
    Worker {
        /// The worker's tenant.
        tenant: &'a str,
        /// The worker.
        worker: &'a str,
    },
    /// An MCP session (its state is the node's, never taken over), by `Mcp-Session-Id`.
    Mcp(&'a str),
}

impl Owned<'_> {
    fn dir(&self) -> Vec<String> {
        match self {
            Owned::Sandbox(id) => vec!["sandboxes".into(), tenant_part(id)],
            Owned::Worker { tenant, worker } => {
                let hex: String = worker.bytes().map(|b| format!("{b:02x}")).collect();
                vec!["workers".into(), tenant_part(tenant), hex]
            }
            Owned::Mcp(id) => vec!["mcp".into(), tenant_part(id)],
        }
    }

    fn key(&self, last: &str) -> Key {
        let dir = self.dir();
        key(std::iter::once("cluster").chain(dir.iter().map(String::as_str)).chain(std::iter::once(last)))
    }

    fn prefix(&self) -> Key {
        let dir = self.dir();
        key(std::iter::once("cluster").chain(dir.iter().map(String::as_str)))
    }
}

impl std::fmt::Display for Owned<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Owned::Sandbox(id) => write!(f, "sandbox {id}"),
            Owned::Worker { tenant, worker } => write!(f, "worker {worker} of {tenant}"),
            Owned::Mcp(id) => write!(f, "MCP session {id}"),
        }
    }
}

/// Which node runs a sandbox, a worker's sessions or an MCP session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The node.
    pub node: String,
    /// The tenant of what it owns.
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

    /// Writes (renews) `lease`.
    pub async fn put_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.write(&Self::lease_key(&lease.node), serde_json::to_vec(lease).map_err(io)?).await
    }

    /// The lease of `node`, if it has one.
    pub async fn lease(&self, node: &str) -> Result<Option<Lease>, StoreError> {
        let Some(bytes) = self.read(&Self::lease_key(node)).await? else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| io(format!("lease of {node}: {e}")))
    }

    /// Where `node` is reached while its lease holds; `None` once it ran out or went.
    pub async fn live_address(&self, node: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lease(node).await?.filter(|l| l.live(chrono::Utc::now())).map(|l| l.address))
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

    /// Records `node` as the owner of `what`, of `tenant` (unless one is recorded: then
    /// that one is answered).
    pub async fn own(&self, what: Owned<'_>, tenant: &str, node: &str) -> Result<Owner, StoreError> {
        let owner = Owner { node: node.into(), tenant: tenant.into(), since: chrono::Utc::now().to_rfc3339() };
        let body = serde_json::to_vec(&owner).map_err(io)?;
        match self.objects.put_opts(&what.key("owner.json"), body.into(), create()).await {
            Ok(_) => Ok(owner),
            Err(e) if taken(&e) => self.owner_of(what).await?.ok_or_else(|| io("the owner vanished")),
            Err(e) => Err(io(e)),
        }
    }

    /// The owner of `what`, if one is recorded.
    pub async fn owner_of(&self, what: Owned<'_>) -> Result<Option<Owner>, StoreError> {
        let Some(bytes) = self.read(&what.key("owner.json")).await? else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| io(format!("owner of {what}: {e}")))
    }

    /// Takes `what` from `from` (a dead or drained node's ownership) for `node`: true when
    /// this node won it. The fence is created only if absent, so of nodes racing for one
    /// sandbox or worker exactly one wins; the others then read the new owner.
    pub async fn take(&self, what: Owned<'_>, from: &Owner, node: &str) -> Result<bool, StoreError> {
        let fence = format!("taken-{}-{}", tenant_part(&from.node), tenant_part(&from.since));
        match self.objects.put_opts(&what.key(&fence), node.as_bytes().to_vec().into(), create()).await {
            Ok(_) => {}
            Err(e) if taken(&e) => return Ok(false),
            Err(e) => return Err(io(e)),
        }
        let owner = Owner { node: node.into(), tenant: from.tenant.clone(), since: chrono::Utc::now().to_rfc3339() };
        self.write(&what.key("owner.json"), serde_json::to_vec(&owner).map_err(io)?).await?;
        Ok(true)
    }

    /// Removes `what`'s owner and fences (it ended).
    pub async fn disown(&self, what: Owned<'_>) -> Result<(), StoreError> {
        self.remove(&what.key("owner.json")).await?;
        let listed: Vec<_> = self.objects.list(Some(&what.prefix())).try_collect().await.map_err(io)?;
        for meta in listed {
            self.remove(&meta.location).await?;
        }
        Ok(())
    }

    /// Removes `what`'s owner and fences if `node` owns it (another's is left).
    pub async fn disown_if(&self, what: Owned<'_>, node: &str) -> Result<(), StoreError> {
        match self.owner_of(what).await? {
            Some(owner) if owner.node == node => self.disown(what).await,
            _ => Ok(()),
        }
    }

    /// Releases `what` (its node, `node`, drains): its owner becomes none, so that the next
    /// node asked for it takes it at once (through a fence, as from a dead node).
    pub async fn release_owned(&self, what: Owned<'_>, node: &str) -> Result<(), StoreError> {
        match self.owner_of(what).await? {
            Some(owner) if owner.node == node => {
                let released = Owner { node: String::new(), since: chrono::Utc::now().to_rfc3339(), ..owner };
                self.write(&what.key("owner.json"), serde_json::to_vec(&released).map_err(io)?).await
            }
            _ => Ok(()),
        }
    }

    fn token_key(token_hash: &str) -> Key {
        key(["cluster", "tokens", &format!("{}.json", tenant_part(token_hash))])
    }

    /// Records that the token whose SHA-256 (hex) is `token_hash` opens sandbox `id`.
    pub async fn put_token(&self, token_hash: &str, id: &str) -> Result<(), StoreError> {
        self.write(&Self::token_key(token_hash), serde_json::to_vec(&serde_json::json!({"sandbox": id})).map_err(io)?)
            .await
    }

    /// The sandbox the token whose SHA-256 is `token_hash` opens, if one is recorded.
    pub async fn token_sandbox(&self, token_hash: &str) -> Result<Option<String>, StoreError> {
        let Some(bytes) = self.read(&Self::token_key(token_hash)).await? else { return Ok(None) };
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| io(format!("token record: {e}")))?;
        Ok(v["sandbox"].as_str().map(str::to_string))
    }

    /// Removes the record of a token (its sandbox ended).
    pub async fn drop_token(&self, token_hash: &str) -> Result<(), StoreError> {
        self.remove(&Self::token_key(token_hash)).await
    }
}
