//! Several servers as one cluster (`server.cluster`).

use serde::Deserialize;

/// Several nodes sharing one snapshot store (`server.cluster`): each holds a lease in the
/// store; a request for a sandbox another live node runs is forwarded to it, and the
/// sandboxes of a node whose lease ran out are taken over on their first use.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// Run as a node of a cluster (default false). The node's id is
    /// `server.snapshots.node` (set it, e.g. to the pod's name).
    pub enabled: bool,
    /// The URL the other nodes reach this one at, e.g. `http://cella-0.cella:18890`
    /// (default: `http://` and the address the server listens on).
    pub advertise: Option<String>,
    /// How long a node's lease lasts unless renewed, in seconds (default 15); it is renewed
    /// every third of that. A node that dies loses its sandboxes to the others after this.
    pub lease_s: f64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig { enabled: false, advertise: None, lease_s: 15.0 }
    }
}
