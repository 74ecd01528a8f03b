//! The snapshot store: records and content-addressed blobs behind one object-store
//! interface (the `object_store` crate), so that the same code keeps them in a local
//! directory (the default: the cache directory's `snapshots/`, or `server.snapshots.dir`, e.g.
//! a volume several servers share) or in an S3-compatible bucket (`server.snapshots.url`).
//!
//! - `tenants/<tenant>/blobs/<snapshot id>-<xxh3-128>`: a snapshot's content ([`blob`]),
//!   named by its record and the hash of its bytes, which every read checks (records written
//!   before 2026-11-30 name a blob `<xxh3-128>` that identical snapshots share). A local
//!   store writes it as `<snapshot id>.partial` while its checksum is computed, then renames
//!   it ([`SnapshotStore::put_new`]).
//! - `tenants/<tenant>/<snapshot id>.json`: the record (a [`SnapshotInfo`] plus the tenant,
//!   the warm image's key and the blob's name).
//! - `tenants/<tenant>/sandboxes/<id>/`: a sandbox snapshot's `manifest.json` and `files/`.
//! - `tenants/<tenant>/kept/<id>/`: a live or paused sandbox's record and a copy of its
//!   files, so that it outlives a restart ([`kept`]).
//! - `tenants/<tenant>/claims/<session id>`: the node that owns a session whose state is
//!   in the store, so that servers sharing it never both bring it back ([`claims`]).
//!
//! What a crash leaves behind (a blob without its record, sandbox files without their
//! manifest) is removed by [`SnapshotStore::sweep`] once it is an hour old ([`sweep`]).
//!
//! A tenant's records and blobs live under its own prefix, so no lookup ever reaches another
//! tenant's. Every object is written whole (a local store writes a temporary file and renames
//! it; S3's PUT is atomic), so a crash leaves either the old state or the new, never half.

pub mod blob;
pub mod claims;
pub mod files;
mod https;
pub mod kept;
pub mod leases;
mod open;
pub mod sweep;

pub use blob::{Packed, encode};
pub use claims::{Claim, Claimed};
pub use files::{copy_tree, read_files, write_files};
pub use kept::{Attributes, KeptContext, KeptSandbox};
pub use leases::{Lease, Owned, Owner};
pub use sweep::Swept;

use crate::engine::snapshot::StateImage;
use bytes::Bytes;
use cella_protocol::SnapshotInfo;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::Arc;

/// A session's scratch files: (path relative to its directory, contents).
pub type Files = Vec<(String, Vec<u8>)>;

/// How many objects a listing reads at once.
const READ_AHEAD: usize = 16;

/// A sandbox's snapshot (E2B's template snapshots): what makes a new sandbox like it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SandboxManifest {
    /// `sbxsnap_<16 hex>`.
    pub id: String,
    /// The names it was given (E2B's `name`), else its id.
    pub names: Vec<String>,
    /// The owner.
    pub tenant: String,
    /// The sandbox it was taken from.
    pub source: String,
    /// When (RFC 3339).
    pub created_at: String,
    /// The source's template, metadata, environment, home and installed packages.
    pub template: String,
    /// The source's labels.
    pub metadata: std::collections::BTreeMap<String, String>,
    /// The source's environment variables.
    pub env: std::collections::BTreeMap<String, String>,
    /// Where code saw the files.
    pub home: String,
    /// Packages installed into its Python contexts.
    pub packages: Vec<String>,
    /// Bytes of its files.
    pub files_bytes: u64,
    /// Its code contexts, each with the snapshot of its session.
    pub contexts: Vec<ContextManifest>,
}

/// A code context in a sandbox snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContextManifest {
    /// The context's id (kept by sandboxes made from the snapshot).
    pub id: String,
    /// `python` or `javascript`.
    pub language: String,
    /// Its working directory.
    pub cwd: String,
    /// Whether it was its language's default context.
    pub default: bool,
    /// The snapshot of its session (reason `sandbox`).
    pub snapshot_id: String,
}

/// A stored record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// What the API shows.
    #[serde(flatten)]
    pub info: SnapshotInfo,
    /// The owner.
    pub tenant: String,
    /// The warm image the state restores into.
    pub image_key: String,
    /// The checksum of its blob's bytes (xxh3-128, hex).
    pub content: String,
    /// The blob's name under `blobs/`: `<snapshot id>-<content>`, the record's own, so that
    /// deleting the record deletes it without looking at any other record. Absent in
    /// records written before (their blob is named `<content>` and may be shared).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<String>,
    /// The session asked to be paused instead of ended at its TTL (`on_timeout: "pause"`);
    /// it still does when it comes back after a restart.
    #[serde(default)]
    pub pause_on_timeout: bool,
    /// The session mounted a door's directory (a sandbox's files): a restart leaves it to
    /// that door to bring back, with the directory, not to the sessions' own bring-back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mounted: bool,
}

impl Record {
    /// The name of a new record's blob.
    pub fn own_blob(snapshot_id: &str, content: &str) -> String {
        format!("{snapshot_id}-{content}")
    }

    /// The name of its blob under `blobs/`.
    pub fn blob_name(&self) -> &str {
        self.blob.as_deref().unwrap_or(&self.content)
    }
}

/// Why the store refused.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such snapshot for this tenant.
    #[error("no snapshot '{0}'")]
    NotFound(String),
    /// The content does not match its checksum, or does not decode.
    #[error("snapshot '{0}' is corrupted: {1}")]
    Corrupted(String, String),
    /// The store failed (the disk, the network, the bucket).
    #[error("the snapshot store failed: {0}")]
    Io(String),
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

/// The snapshot store.
#[derive(Clone)]
pub struct SnapshotStore {
    objects: Arc<dyn ObjectStore>,
    place: String,
    /// A directory: renaming an object is one `rename(2)`, not a copy.
    local: bool,
}

impl std::fmt::Debug for SnapshotStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStore").field("place", &self.place).finish()
    }
}

/// A tenant's prefix: tenant names are config keys ([A-Za-z0-9_-]); anything else is encoded.
fn tenant_part(tenant: &str) -> String {
    tenant.chars().map(|c| if crate::config::is_name_char(c) { c } else { '_' }).collect()
}

/// An id the store accepts in a key (`snap_…`, `sbxsnap_…`).
fn plain_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `at` is a file of a sandbox snapshot (`<sandboxes>/<id>/files/…`).
fn is_sandbox_file(at: &Key, sandboxes: &Key) -> bool {
    at.prefix_match(sandboxes).and_then(|mut parts| parts.nth(1)).is_some_and(|p| p.as_ref() == "files")
}

fn key<'a>(parts: impl IntoIterator<Item = &'a str>) -> Key {
    Key::from_iter(parts)
}

impl SnapshotStore {
    /// A store in the local directory `dir` (created if missing).
    pub fn local(dir: &Path) -> Result<SnapshotStore, StoreError> {
        SnapshotStore::local_with(dir, false)
    }

    /// [`SnapshotStore::local`], each write on disk before it returns when `fsync`.
    pub fn local_with(dir: &Path, fsync: bool) -> Result<SnapshotStore, StoreError> {
        Ok(SnapshotStore { objects: open::local(dir, fsync)?, place: dir.display().to_string(), local: true })
    }

    /// The store a configuration names: `server.snapshots.url`, else `server.snapshots.dir`,
    /// else the cache directory's `snapshots/`.
    pub fn of(config: &crate::Config) -> Result<SnapshotStore, StoreError> {
        let snap = &config.server.snapshots;
        if let Some(url) = &snap.url {
            return Ok(SnapshotStore {
                objects: open::from_url(url, &snap.options, snap.fsync)?,
                place: url.clone(),
                local: url.starts_with("file://"),
            });
        }
        let dir = match &snap.dir {
            Some(dir) => config.resolve(dir),
            None => config.state_dir().join("snapshots"),
        };
        SnapshotStore::local_with(&dir, snap.fsync)
    }

    /// Where the store is: its directory, or its URL.
    pub fn place(&self) -> &str {
        &self.place
    }

    fn record_key(tenant: &str, id: &str) -> Key {
        key(["tenants", &tenant_part(tenant), &format!("{id}.json")])
    }

    fn blob_key(tenant: &str, content: &str) -> Key {
        key(["tenants", &tenant_part(tenant), "blobs", content])
    }

    fn sandbox_key(tenant: &str, id: &str) -> Key {
        key(["tenants", &tenant_part(tenant), "sandboxes", id])
    }

    async fn read(&self, at: &Key) -> Result<Option<Bytes>, StoreError> {
        match self.objects.get(at).await {
            Ok(got) => got.bytes().await.map(Some).map_err(io),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn write(&self, at: &Key, bytes: impl Into<PutPayload>) -> Result<(), StoreError> {
        self.objects.put(at, bytes.into()).await.map(|_| ()).map_err(io)
    }

    async fn remove(&self, at: &Key) -> Result<(), StoreError> {
        match self.objects.delete(at).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    /// One level of the store under `prefix`; a store that fails is logged and lists nothing.
    async fn listing(&self, prefix: &Key) -> Option<object_store::ListResult> {
        match self.objects.list_with_delimiter(Some(prefix)).await {
            Ok(listed) => Some(listed),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => {
                tracing::warn!(store = %self.place, prefix = %prefix, error = %e, "cannot list the snapshot store");
                None
            }
        }
    }

    /// The JSON objects `names` (read side by side), those that parse.
    async fn read_all<T: serde::de::DeserializeOwned>(&self, names: Vec<Key>) -> Vec<T> {
        futures::stream::iter(names)
            .map(|at| async move { self.read(&at).await.ok().flatten() })
            .buffer_unordered(READ_AHEAD)
            .filter_map(|bytes| async move { serde_json::from_slice(&bytes?).ok() })
            .collect()
            .await
    }

    /// Stores a blob and its record (the blob first: a record is never left without it).
    pub async fn put(&self, record: &Record, packed: impl Into<PutPayload>) -> Result<(), StoreError> {
        self.write(&Self::blob_key(&record.tenant, record.blob_name()), packed).await?;
        self.put_record(record).await
    }

    async fn put_record(&self, record: &Record) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(record).map_err(io)?;
        self.write(&Self::record_key(&record.tenant, &record.info.snapshot_id), json).await
    }

    /// Stores a new snapshot: its blob, named by the record's id and the blob's checksum,
    /// then `record` with both filled in; returns it.
    ///
    /// A local store writes the blob under a staged name while the checksum is computed
    /// (both take milliseconds for a Python session's tens of MiB), then renames it. A bucket,
    /// where a rename is a copy, gets the checksum first.
    pub async fn put_new(&self, mut record: Record, packed: Packed) -> Result<Record, StoreError> {
        let id = record.info.snapshot_id.clone();
        let payload: PutPayload = packed.parts.iter().cloned().collect();
        let (content, name) = if self.local {
            let staged = Self::blob_key(&record.tenant, &format!("{id}.partial"));
            let summing = tokio::task::spawn_blocking(move || packed.checksum());
            let (content, written) = tokio::join!(summing, self.write(&staged, payload));
            let named = match (content, written) {
                (Ok(content), Ok(())) => {
                    let name = Record::own_blob(&id, &content);
                    let to = Self::blob_key(&record.tenant, &name);
                    self.objects.rename(&staged, &to).await.map(|()| (content, name)).map_err(io)
                }
                (Err(e), _) => Err(io(e)),
                (_, Err(e)) => Err(e),
            };
            if named.is_err() {
                let _ = self.remove(&staged).await;
            }
            named?
        } else {
            let content = tokio::task::spawn_blocking(move || packed.checksum()).await.map_err(io)?;
            let name = Record::own_blob(&id, &content);
            self.write(&Self::blob_key(&record.tenant, &name), payload).await?;
            (content, name)
        };
        record.blob = Some(name);
        record.content = content;
        self.put_record(&record).await?;
        Ok(record)
    }

    /// The record of `id`, if `tenant` owns one.
    pub async fn record(&self, tenant: &str, id: &str) -> Result<Record, StoreError> {
        if !plain_id(id) {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let text =
            self.read(&Self::record_key(tenant, id)).await?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        serde_json::from_slice(&text).map_err(|e| StoreError::Corrupted(id.to_string(), format!("record: {e}")))
    }

    /// The content of a record, checked against its checksum: the instance state and the
    /// session's files.
    ///
    /// A local store's blob is mapped, not read: its pages that are stored as they are
    /// become the restored instance's, copy-on-write ([`blob`]).
    pub async fn body(&self, record: &Record) -> Result<(StateImage, Files), StoreError> {
        let id = record.info.snapshot_id.clone();
        let got = match self.objects.get(&Self::blob_key(&record.tenant, record.blob_name())).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(StoreError::Corrupted(id, "its content is missing from the store".into()));
            }
            Err(e) => return Err(io(e)),
        };
        let content = record.content.clone();
        match got.payload {
            // Mapping (which reads the file in), checksum and decompression of many MiB: off
            // the async threads, which serve calls.
            #[cfg(target_os = "linux")]
            object_store::GetResultPayload::File(file, _) => tokio::task::spawn_blocking(move || {
                let blob = match crate::engine::pages::FileBytes::try_map(file) {
                    Ok(mapped) => blob::Blob::File(Arc::new(mapped)),
                    // A file system that cannot map files: read it.
                    Err((mut file, _)) => {
                        let mut bytes = Vec::new();
                        std::io::Read::read_to_end(&mut file, &mut bytes).map_err(io)?;
                        blob::Blob::Bytes(bytes.into())
                    }
                };
                blob::decode(&id, &content, &blob)
            })
            .await
            .map_err(io)?,
            payload => {
                let bytes = object_store::GetResult { payload, ..got }.bytes().await.map_err(io)?;
                tokio::task::spawn_blocking(move || blob::decode(&id, &content, &blob::Blob::Bytes(bytes)))
                    .await
                    .map_err(io)?
            }
        }
    }

    /// Every record of `tenant`, oldest first.
    pub async fn list(&self, tenant: &str) -> Vec<Record> {
        let prefix = key(["tenants", &tenant_part(tenant)]);
        let Some(listed) = self.listing(&prefix).await else { return Vec::new() };
        let names = listed.objects.into_iter().map(|o| o.location).filter(|l| l.extension() == Some("json")).collect();
        let mut out: Vec<Record> = self.read_all(names).await;
        out.sort_by(|a, b| a.info.created_at.cmp(&b.info.created_at));
        out
    }

    /// Every tenant with records.
    pub async fn tenants(&self) -> Vec<String> {
        let Some(listed) = self.listing(&key(["tenants"])).await else { return Vec::new() };
        listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)).collect()
    }

    /// Deletes a record and its blob (an older record's shared blob only when no other
    /// record of the tenant uses it, which takes reading them all).
    pub async fn delete(&self, tenant: &str, id: &str) -> Result<Record, StoreError> {
        let record = self.record(tenant, id).await?;
        self.remove(&Self::record_key(tenant, id)).await?;
        let shared = record.blob.is_none()
            && self.list(tenant).await.iter().any(|r| r.blob.is_none() && r.content == record.content);
        if !shared {
            let _ = self.remove(&Self::blob_key(tenant, record.blob_name())).await;
        }
        Ok(record)
    }

    /// Bytes `tenant`'s snapshots hold: its blobs and its sandbox snapshots' files, summed
    /// from listings of their sizes (no object is read: a LIST per thousand objects on a
    /// bucket, however many records). A store that cannot be listed is logged and counts 0.
    pub async fn bytes_of(&self, tenant: &str) -> u64 {
        let t = tenant_part(tenant);
        let blobs = key(["tenants", &t, "blobs"]);
        let sandboxes = key(["tenants", &t, "sandboxes"]);
        let mut total = 0;
        for prefix in [&blobs, &sandboxes] {
            let mut listed = self.objects.list(Some(prefix));
            while let Some(item) = listed.next().await {
                match item {
                    // Under sandboxes/, only `<id>/files/…` (not the manifests).
                    Ok(meta) if prefix == &blobs || is_sandbox_file(&meta.location, prefix) => total += meta.size,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(store = %self.place, prefix = %prefix, error = %e, "cannot list the snapshot store");
                        break;
                    }
                }
            }
        }
        total
    }

    /// Copies `files` (a sandbox's directory) into the store, then writes `manifest`: a
    /// snapshot whose manifest is missing was cut short and is not listed. (Folders are
    /// kept only as the paths of the files in them: an empty folder is not.)
    pub async fn put_sandbox(&self, manifest: &SandboxManifest, files: &Path) -> Result<(), StoreError> {
        let at = Self::sandbox_key(&manifest.tenant, &manifest.id);
        self.put_tree(&at.clone().join("files"), files).await?;
        let json = serde_json::to_vec_pretty(manifest).map_err(io)?;
        self.write(&at.clone().join("manifest.json"), json).await
    }

    /// Writes a sandbox snapshot's files under `to`.
    pub async fn fetch_sandbox_files(&self, tenant: &str, id: &str, to: &Path) -> Result<(), StoreError> {
        self.fetch_tree(&Self::sandbox_key(tenant, id).join("files"), to).await
    }

    /// Every sandbox snapshot of `tenant`, oldest first.
    pub async fn sandboxes(&self, tenant: &str) -> Vec<SandboxManifest> {
        let prefix = key(["tenants", &tenant_part(tenant), "sandboxes"]);
        let Some(listed) = self.listing(&prefix).await else { return Vec::new() };
        let names = listed.common_prefixes.iter().map(|p| p.clone().join("manifest.json")).collect();
        let mut out: Vec<SandboxManifest> = self.read_all(names).await;
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        out
    }

    /// Removes a sandbox snapshot's manifest and files (its sessions' records are the
    /// caller's to delete).
    pub async fn delete_sandbox(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        if !plain_id(id) {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let at = Self::sandbox_key(tenant, id);
        let listed: Vec<_> = self.objects.list(Some(&at)).try_collect().await.map_err(io)?;
        if listed.is_empty() {
            return Err(StoreError::NotFound(id.to_string()));
        }
        // The manifest first: a snapshot cut short here is no longer listed.
        self.remove(&at.clone().join("manifest.json")).await?;
        for meta in listed {
            self.remove(&meta.location).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
