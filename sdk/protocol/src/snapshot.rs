//! Session snapshots as the server reports them (`/api/v1/snapshots`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A stored snapshot of a session: what it was taken from and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct SnapshotInfo {
    /// `snap_<16 hex>`.
    pub snapshot_id: String,
    /// Why it was taken: `snapshot` (asked for), `pause`, or `shutdown` (the server stopped).
    pub reason: String,
    /// The worker whose session it was.
    pub worker_id: String,
    /// The resource type.
    pub resource_type: String,
    /// The session it was taken from.
    pub session_id: String,
    /// That session's name.
    #[serde(default)]
    pub session_name: String,
    /// Naive UTC ISO timestamp.
    pub created_at: String,
    /// Bytes stored (compressed pages, globals and files).
    pub stored_bytes: u64,
    /// Bytes of linear memory that differ from the backend's warm image.
    pub changed_bytes: u64,
    /// The session's linear memory in all, in bytes.
    pub memory_bytes: u64,
    /// Files of the session's scratch directory it carries.
    pub files: u64,
    /// The session's TTL left when it was taken, in seconds (a resumed session gets it).
    #[serde(default)]
    pub ttl_remaining_s: f64,
    /// The config the session was initialised with.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(value_type = Object))]
    pub config: Value,
    /// What `initialize` returned.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(value_type = Object))]
    pub data: Value,
}
