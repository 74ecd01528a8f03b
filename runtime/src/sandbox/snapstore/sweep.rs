//! Sweeping what a crash or a cut-short write leaves in the store: a blob no record names
//! (a crash between a blob and its record, a staged `<id>.partial` never renamed, a delete
//! cut short after its record) and a sandbox snapshot's files without their manifest. Left
//! alone, they hold disk and count against the tenant's snapshot quota forever.
//!
//! Only objects older than a grace period go: a blob is written before its record, and a
//! second server sharing the store may be between the two right now. A tenant whose records
//! cannot all be read (a store error, a record that does not parse) is skipped whole: a blob
//! is removed only when every record that could name it has been read.

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
        let named = self.blob_names(tenant).await?;
        let t = tenant_part(tenant);
        let blobs: Vec<_> = self.objects.list(Some(&key(["tenants", &t, "blobs"]))).try_collect().await.map_err(io)?;
        for meta in blobs {
            let orphan = meta.location.filename().is_some_and(|name| !named.contains(name));
            if orphan && meta.last_modified < cutoff {
                self.remove(&meta.location).await?;
                swept.blobs += 1;
                swept.bytes += meta.size;
            }
        }
        let sandboxes = key(["tenants", &t, "sandboxes"]);
        let Some(listed) = self.listing(&sandboxes).await else { return Ok(()) };
        for at in listed.common_prefixes {
            let manifest = at.clone().join("manifest.json");
            if self.read(&manifest).await?.is_some() {
                continue;
            }
            let files: Vec<_> = self.objects.list(Some(&at)).try_collect().await.map_err(io)?;
            // Every file old: a snapshot still being written has a fresh one.
            if files.is_empty() || files.iter().any(|m| m.last_modified >= cutoff) {
                continue;
            }
            for meta in &files {
                self.remove(&meta.location).await?;
                swept.bytes += meta.size;
            }
            swept.sandboxes += 1;
        }
        Ok(())
    }

    /// The blob every record of `tenant` names; an error when any record cannot be read.
    async fn blob_names(&self, tenant: &str) -> Result<HashSet<String>, StoreError> {
        let listed: Vec<_> =
            self.objects.list_with_delimiter(Some(&key(["tenants", &tenant_part(tenant)]))).await.map_err(io)?.objects;
        let records = listed.into_iter().filter(|o| o.location.extension() == Some("json"));
        // A record deleted meanwhile names nothing: its blob goes with it, or is an orphan.
        let names: Vec<Result<Option<String>, StoreError>> = futures::stream::iter(records)
            .map(|meta| async move {
                let Some(text) = self.read(&meta.location).await? else { return Ok(None) };
                let record: Record = serde_json::from_slice(&text)
                    .map_err(|e| StoreError::Corrupted(meta.location.to_string(), format!("record: {e}")))?;
                Ok(Some(record.blob_name().to_string()))
            })
            .buffer_unordered(READ_AHEAD)
            .collect()
            .await;
        names.into_iter().filter_map(Result::transpose).collect()
    }
}
