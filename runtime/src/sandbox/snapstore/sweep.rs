//! Sweeping what a crash or a cut-short write leaves in the store: a blob no record names
//! (a crash between a blob and its record, a staged `<id>.partial` never renamed, a delete
//! cut short after its record) and a sandbox snapshot's files without their manifest. Left
//! alone, they hold disk and count against the tenant's snapshot quota forever.
//!
//! Only objects older than a grace period go: a blob is written before its record, and a
//! second server sharing the store may be between the two right now. A sweep lists, it does
//! not read: a blob's name starts with its record's id (a LIST per thousand objects on a
//! bucket, however many records). Only a blob named the old way (by checksum alone, shared)
//! needs every record read; a tenant with such a blob and a record that cannot be read is
//! skipped whole.

use super::*;
use std::collections::HashSet;
use std::time::Duration;

/// How old an orphan must be to be swept by default (`server.snapshots.orphan_grace_s`): a
/// blob is written milliseconds before its record, even into a bucket far away.
pub const GRACE: Duration = Duration::from_secs(3600);

/// How often a server sweeps its store (first at its start).
pub const PERIOD: Duration = Duration::from_secs(3600);

/// What a sweep removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    /// Blobs no record names (staged ones included).
    pub blobs: usize,
    /// Sandbox snapshots cut short (files without a manifest).
    pub sandboxes: usize,
    /// Bytes freed.
    pub bytes: u64,
    /// Tenants left as they were because a record or a listing could not be read.
    pub skipped: Vec<String>,
}

impl SnapshotStore {
    /// Removes every orphan older than `grace` (see the module's comment), every tenant's.
    pub async fn sweep(&self, grace: Duration) -> Swept {
        let mut swept = Swept::default();
        // A grace beyond the calendar's reach: nothing is that old.
        let Some(cutoff) =
            chrono::Duration::from_std(grace).ok().and_then(|g| chrono::Utc::now().checked_sub_signed(g))
        else {
            return swept;
        };
        for tenant in self.tenants().await {
            if let Err(e) = self.sweep_tenant(&tenant, cutoff, &mut swept).await {
                tracing::warn!(store = %self.place, tenant = %tenant, error = %e, "snapshot store: tenant not swept");
                swept.skipped.push(tenant);
            }
        }
        if swept.blobs + swept.sandboxes > 0 {
            tracing::info!(store = %self.place, blobs = swept.blobs, sandboxes = swept.sandboxes, bytes = swept.bytes, "snapshot store: orphans removed");
        }
        swept
    }

    async fn sweep_tenant(
        &self,
        tenant: &str,
        cutoff: chrono::DateTime<chrono::Utc>,
        swept: &mut Swept,
    ) -> Result<(), StoreError> {
        let t = tenant_part(tenant);
        let top = self.objects.list_with_delimiter(Some(&key(["tenants", &t]))).await.map_err(io)?;
        let ids: HashSet<String> = top
            .objects
            .iter()
            .filter_map(|o| o.location.filename()?.strip_suffix(".json").map(str::to_string))
            .collect();
        let blobs: Vec<_> = self.objects.list(Some(&key(["tenants", &t, "blobs"]))).try_collect().await.map_err(io)?;
        let old: Vec<_> = blobs.into_iter().filter(|m| m.last_modified < cutoff).collect();
        // A blob `<id>-<checksum>` belongs to record `<id>` alone and a staged `<id>.partial`
        // is renamed before its record is written, so a listing tells them; a blob of a
        // record written before 2026-11-30 is named `<checksum>` and may be shared, so only
        // reading every record tells whether one still names it.
        let shared = if old.iter().any(|m| m.location.filename().is_some_and(|n| !n.contains(['-', '.']))) {
            Some(self.blob_names(&top.objects).await?)
        } else {
            None
        };
        for meta in old {
            let Some(name) = meta.location.filename() else { continue };
            let orphan = match (name.split_once('-'), &shared) {
                _ if name.ends_with(".partial") => true,
                (Some((id, _)), _) => !ids.contains(id),
                (None, Some(named)) => !named.contains(name),
                (None, None) => false,
            };
            if orphan {
                self.remove(&meta.location).await?;
                swept.blobs += 1;
                swept.bytes += meta.size;
            }
        }
        // Sandbox snapshots and kept sandboxes: one listing each, grouped by id; one without
        // its manifest and with nothing fresh (one being written has) was cut short.
        for folder in ["sandboxes", "kept"] {
            let sandboxes = key(["tenants", &t, folder]);
            let files: Vec<_> = self.objects.list(Some(&sandboxes)).try_collect().await.map_err(io)?;
            let mut by_id: std::collections::BTreeMap<String, Vec<object_store::ObjectMeta>> = Default::default();
            for meta in files {
                let Some(id) = meta.location.prefix_match(&sandboxes).and_then(|mut parts| parts.next()) else {
                    continue;
                };
                by_id.entry(id.as_ref().to_string()).or_default().push(meta);
            }
            for (id, metas) in by_id {
                let manifest = sandboxes.clone().join(id).join("manifest.json");
                let whole = metas.iter().any(|m| m.location == manifest);
                if whole || metas.iter().any(|m| m.last_modified >= cutoff) {
                    continue;
                }
                for meta in &metas {
                    self.remove(&meta.location).await?;
                    swept.bytes += meta.size;
                }
                swept.sandboxes += 1;
            }
        }
        Ok(())
    }

    /// The blob every one of `records` names; an error when one cannot be read.
    async fn blob_names(&self, records: &[object_store::ObjectMeta]) -> Result<HashSet<String>, StoreError> {
        let records: Vec<Key> =
            records.iter().map(|o| o.location.clone()).filter(|at| at.extension() == Some("json")).collect();
        // A record deleted meanwhile names nothing: its blob goes with it, or is an orphan.
        let names: Vec<Result<Option<String>, StoreError>> = futures::stream::iter(records)
            .map(|at| async move {
                let Some(text) = self.read(&at).await? else { return Ok(None) };
                let record: Record = serde_json::from_slice(&text)
                    .map_err(|e| StoreError::Corrupted(at.to_string(), format!("record: {e}")))?;
                Ok(Some(record.blob_name().to_string()))
            })
            .buffer_unordered(READ_AHEAD)
            .collect()
            .await;
        names.into_iter().filter_map(Result::transpose).collect()
    }
}
