//! `cella snapshots`: the snapshot store of a configuration, offline: list what it holds,
//! verify every blob (checksum and decoding), sweep what a crash left, delete a snapshot,
//! show which node owns which kept session and release a node's.

use super::*;
use cella_runtime::sandbox::snapstore::{Record, SnapshotStore};

/// What to do with the store.
#[derive(clap::Subcommand)]
pub(crate) enum SnapshotsCommand {
    /// Lists the snapshots of every tenant (or one), oldest first.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
        /// One JSON record per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Reads back every snapshot: its blob must match its checksum and decode. Exits 1 when
    /// one does not.
    Verify {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Removes what a crash left: blobs no snapshot names, sandbox snapshots without their
    /// manifest. A running server does this hourly; only objects older than the grace go.
    Sweep {
        /// Seconds an orphan must have been there (a blob is written just before its record,
        /// so a younger one may belong to a snapshot being taken).
        #[arg(long, default_value_t = 3600)]
        grace_s: u64,
    },
    /// Lists which node owns each session kept in the store (paused, checkpointed or kept
    /// over a stop): only that node brings it back when it starts.
    Claims {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Hands the kept sessions of a node that will not come back to whichever server of the
    /// store starts next (removes that node's claims).
    Release {
        /// The node's id (`cella snapshots claims` lists them).
        #[arg(long)]
        node: String,
    },
    /// Deletes a snapshot (its blob too, when no other snapshot of the tenant shares it).
    Delete {
        /// The snapshot id (`snap_…`).
        id: String,
        /// Its tenant (`default` when tenancy is off).
        #[arg(long, default_value = "default")]
        tenant: String,
        /// Also when it holds a paused or kept session's state (that session is then lost).
        #[arg(long)]
        force: bool,
    },
}

async fn records(store: &SnapshotStore, tenant: Option<&str>) -> Vec<Record> {
    let mut tenants = store.tenants().await;
    tenants.sort();
    let mut out = Vec::new();
    for t in tenants.into_iter().filter(|t| tenant.is_none_or(|only| only == t)) {
        out.extend(store.list(&t).await);
    }
    out
}

pub(crate) async fn snapshots(config: Option<PathBuf>, command: SnapshotsCommand) -> anyhow::Result<i32> {
    let config = load_config(config.as_ref())?;
    let store = SnapshotStore::of(&config)?;
    match command {
        SnapshotsCommand::List { tenant, json } => {
            let all = records(&store, tenant.as_deref()).await;
            if json {
                for r in &all {
                    println!("{}", serde_json::to_string(r)?);
                }
                return Ok(0);
            }
            println!("store: {} ({} snapshots)", store.place(), all.len());
            if !all.is_empty() {
                println!(
                    "{:<10} {:<22} {:<10} {:<11} {:>9}  {:<20} session",
                    "tenant", "id", "reason", "type", "stored", "created"
                );
            }
            for r in &all {
                let i = &r.info;
                println!(
                    "{:<10} {:<22} {:<10} {:<11} {:>7.2}Mi  {:<20} {} (worker {})",
                    r.tenant,
                    i.snapshot_id,
                    i.reason,
                    i.resource_type,
                    i.stored_bytes as f64 / 1048576.0,
                    i.created_at.get(..19).unwrap_or(&i.created_at),
                    i.session_id,
                    i.worker_id
                );
            }
            Ok(0)
        }
        SnapshotsCommand::Verify { tenant } => {
            let all = records(&store, tenant.as_deref()).await;
            let mut bad = 0;
            for r in &all {
                if let Err(e) = store.body(r).await {
                    bad += 1;
                    println!("{} {}: {e}", r.tenant, r.info.snapshot_id);
                }
            }
            println!("{} snapshots read back, {bad} refused", all.len());
            Ok(if bad == 0 { 0 } else { 1 })
        }
        SnapshotsCommand::Sweep { grace_s } => {
            let swept = store.sweep(std::time::Duration::from_secs(grace_s)).await;
            println!(
                "removed {} orphan blobs and {} unfinished sandbox snapshots ({:.2} MiB)",
                swept.blobs,
                swept.sandboxes,
                swept.bytes as f64 / 1048576.0
            );
            for tenant in &swept.skipped {
                println!("tenant {tenant} not swept: one of its records cannot be read (see the log)");
            }
            Ok(if swept.skipped.is_empty() { 0 } else { 1 })
        }
        SnapshotsCommand::Claims { json } => {
            let claims = store.claims().await?;
            if json {
                for c in &claims {
                    println!("{}", serde_json::json!({"tenant": c.tenant, "session_id": c.session_id, "node": c.node}));
                }
                return Ok(0);
            }
            println!(
                "store: {} ({} claimed sessions); this machine's node: {}",
                store.place(),
                claims.len(),
                own_node(&config)
            );
            for c in &claims {
                println!("{:<10} {:<24} {}", c.tenant, c.node, c.session_id);
            }
            Ok(0)
        }
        SnapshotsCommand::Release { node } => {
            let released = store.release(&node).await?;
            println!("released {released} sessions of node {node}: the next server to start brings them back");
            Ok(0)
        }
        SnapshotsCommand::Delete { id, tenant, force } => {
            let record = store.record(&tenant, &id).await?;
            let reason = record.info.reason.as_str();
            if reason != "snapshot" && !force {
                bail!(
                    "snapshot {id} holds the state of session {} ({reason}): deleting it loses that session; add --force to delete it anyway",
                    record.info.session_id
                );
            }
            let gone = store.delete(&tenant, &id).await?;
            println!("deleted {} ({:.2} MiB)", gone.info.snapshot_id, gone.info.stored_bytes as f64 / 1048576.0);
            // The session's last record that could bring it back is gone: so is its owner.
            let session = &gone.info.session_id;
            if reason != "snapshot"
                && !store
                    .list(&tenant)
                    .await
                    .iter()
                    .any(|r| &r.info.session_id == session && r.info.reason != "snapshot")
            {
                store.drop_claim(&tenant, session).await?;
                println!("session {session} has no record left to come back from; its claim is removed");
            }
            Ok(0)
        }
    }
}

/// The node id a server on this configuration runs as, if it has one yet.
fn own_node(config: &cella_runtime::Config) -> String {
    if let Some(node) = &config.server.snapshots.node {
        return node.clone();
    }
    std::fs::read_to_string(config.state_dir().join("node-id"))
        .map_or_else(|_| "(none yet)".into(), |n| n.trim().to_string())
}
