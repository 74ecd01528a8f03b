//! Session snapshots (`server.snapshots`).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Where snapshots are kept and what happens to sessions at shutdown (`server.snapshots`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotsConfig {
    /// Snapshot, fork, pause and resume sessions (default true).
    pub enabled: bool,
    /// The snapshot store: a directory, e.g. a volume several servers share (default: the
    /// state directory's `snapshots/`). Relative to the configuration file.
    pub dir: Option<PathBuf>,
    /// The snapshot store elsewhere, instead of `dir`: `s3://bucket[/prefix]` (S3 or an
    /// S3-compatible service; credentials from the `AWS_*` environment variables) or
    /// `file:///a/directory`.
    pub url: Option<String>,
    /// Settings of the `url` store, by object_store's names (`aws_endpoint`, `aws_region`,
    /// `aws_allow_http`, `aws_access_key_id`, …); they override the environment's.
    pub options: BTreeMap<String, String>,
    /// How long a paused session (and its snapshot) is kept before it is ended, in seconds
    /// (default one day).
    pub retention_s: f64,
    /// Snapshot every live session on graceful shutdown and restore each on its first use
    /// after the restart, with its id (default true).
    pub keep_on_shutdown: bool,
    /// The most copies one fork may make (default 16).
    pub max_fork: u32,
    /// Every this many seconds, snapshot each live session that changed since its last
    /// checkpoint, so that a crash loses at most this window (default 0: off; a graceful stop
    /// loses nothing either way).
    pub checkpoint_interval_s: f64,
    /// How old a blob no record names (what a crash between a blob and its record leaves)
    /// must be before the server's hourly sweep removes it, in seconds (default 3600: a
    /// younger one may belong to a snapshot another server sharing the store is writing).
    pub orphan_grace_s: f64,
    /// This server's name among those sharing the store: the owner of the sessions it
    /// pauses, checkpoints or keeps, which no other node brings back (default: a random name
    /// made once and kept in the state directory's `node-id`; set it where that directory
    /// does not outlive the server, e.g. a container's).
    pub node: Option<String>,
    /// Flush each blob, record and claim of a local store to disk (`fsync`, and its
    /// directory) before the snapshot, pause or checkpoint answers, so that a power loss or a
    /// kernel crash loses none of them (default false: a crash of the server loses nothing
    /// either way, but a power loss may lose what the kernel had not yet written, by default
    /// up to about 30 s). S3 stores are durable when they answer.
    pub fsync: bool,
    /// Memory kept ready for captures, in MiB: buffers a snapshot or fork is done with are
    /// zeroed and faulted in again in the background and kept (for a minute unused) for the
    /// next capture of about their size, which then copies the session's pages without a
    /// page fault per page (default 128; 0: none kept).
    pub spare_mb: u64,
}

impl Default for SnapshotsConfig {
    fn default() -> Self {
        SnapshotsConfig {
            enabled: true,
            dir: None,
            url: None,
            options: BTreeMap::new(),
            retention_s: 86_400.0,
            keep_on_shutdown: true,
            max_fork: 16,
            checkpoint_interval_s: 0.0,
            orphan_grace_s: 3600.0,
            node: None,
            fsync: false,
            spare_mb: 128,
        }
    }
}

/// Whether `node` can name a node (`server.snapshots.node`): 1-64 of `[A-Za-z0-9_-]`.
pub fn valid_node(node: &str) -> bool {
    (1..=64).contains(&node.len()) && node.chars().all(super::is_name_char)
}
