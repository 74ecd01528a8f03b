//! Kept sandboxes: the record of every live or paused sandbox (E2B's, Scalebox's) beside
//! its contexts' session records, so that a sandbox outlives a restart of its server.
//!
//! - `tenants/<tenant>/kept/<sandbox id>/manifest.json`: a [`KeptSandbox`];
//! - `tenants/<tenant>/kept/<sandbox id>/files/…`: a copy of its files directory, as of its
//!   last pause or graceful stop;
//! - `tenants/<tenant>/kept/<sandbox id>/attributes.json`: the metadata of those files (E2B's
//!   `X-Metadata-*`), by guest path.
//!
//! The files are written before the record, and files that are gone since the last copy are
//! removed after it, so a record never names a copy half written; what a crash leaves without
//! a record is swept like a sandbox snapshot cut short.

use super::*;
use std::collections::{BTreeMap, HashSet};

/// The metadata of a sandbox's files, by guest path.
pub type Attributes = BTreeMap<String, BTreeMap<String, String>>;

/// A sandbox as its server keeps it in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeptSandbox {
    /// Its id.
    pub id: String,
    /// The owner.
    pub tenant: String,
    /// The template it was made from.
    pub template: String,
    /// The token its in-sandbox routes require.
    pub token: String,
    /// The client's labels.
    pub metadata: BTreeMap<String, String>,
    /// Environment variables every cell sees.
    pub env: BTreeMap<String, String>,
    /// Where code sees its files.
    pub home: String,
    /// Packages installed into its Python contexts.
    pub packages: Vec<String>,
    /// When it was created (RFC 3339).
    pub started_at: String,
    /// When it ends unless renewed (RFC 3339).
    pub end_at: String,
    /// When a graceful stop kept it (RFC 3339): it then comes back with the time it had left
    /// at the stop. Absent while it runs (after a crash its end is `end_at`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<String>,
    /// Paused: its contexts' sessions are pause records.
    pub paused: bool,
    /// The node that runs it; `None` once released to any node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Whether `files/` holds a copy of its files.
    #[serde(default)]
    pub files_stored: bool,
    /// Its code contexts.
    pub contexts: Vec<KeptContext>,
}

/// A code context of a kept sandbox; its session's record is found by its worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeptContext {
    /// The context's id.
    pub id: String,
    /// `python` or `javascript`.
    pub language: String,
    /// Its working directory.
    pub cwd: String,
    /// Whether it is its language's default context.
    pub default: bool,
}

impl SnapshotStore {
    fn kept_key(tenant: &str, id: &str) -> Key {
        key(["tenants", &tenant_part(tenant), "kept", id])
    }

    /// Writes a kept sandbox's record; with `files`, first a copy of that directory
    /// (replacing the last one) and its files' metadata.
    pub async fn put_kept(&self, kept: &KeptSandbox, files: Option<(&Path, &Attributes)>) -> Result<(), StoreError> {
        if !plain_id(&kept.id) {
            return Err(StoreError::NotFound(kept.id.clone()));
        }
        let at = Self::kept_key(&kept.tenant, &kept.id);
        let stale = match files {
            Some((dir, attributes)) => {
                let prefix = at.clone().join("files");
                let before: Vec<_> = self.objects.list(Some(&prefix)).try_collect().await.map_err(io)?;
                let written = self.put_tree(&prefix, dir).await?;
                let json = serde_json::to_vec(attributes).map_err(io)?;
                self.write(&at.clone().join("attributes.json"), json).await?;
                before.into_iter().map(|m| m.location).filter(|k| !written.contains(k)).collect()
            }
            None => Vec::new(),
        };
        let json = serde_json::to_vec_pretty(kept).map_err(io)?;
        self.write(&at.clone().join("manifest.json"), json).await?;
        for gone in stale {
            self.remove(&gone).await?;
        }
        Ok(())
    }

    /// Every kept sandbox of `tenant` (those whose record reads).
    pub async fn kept(&self, tenant: &str) -> Vec<KeptSandbox> {
        let prefix = key(["tenants", &tenant_part(tenant), "kept"]);
        let Some(listed) = self.listing(&prefix).await else { return Vec::new() };
        let names = listed.common_prefixes.iter().map(|p| p.clone().join("manifest.json")).collect();
        self.read_all(names).await
    }

    /// The kept sandbox `id` of `tenant`, if its record is there.
    pub async fn kept_one(&self, tenant: &str, id: &str) -> Result<Option<KeptSandbox>, StoreError> {
        if !plain_id(id) {
            return Ok(None);
        }
        let Some(bytes) = self.read(&Self::kept_key(tenant, id).join("manifest.json")).await? else { return Ok(None) };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| StoreError::Corrupted(id.to_string(), e.to_string()))
    }

    /// Writes a kept sandbox's copy of its files under `to`; answers their metadata.
    pub async fn fetch_kept_files(&self, tenant: &str, id: &str, to: &Path) -> Result<Attributes, StoreError> {
        let at = Self::kept_key(tenant, id);
        self.fetch_tree(&at.clone().join("files"), to).await?;
        match self.read(&at.join("attributes.json")).await? {
            Some(json) => {
                serde_json::from_slice(&json).map_err(|e| StoreError::Corrupted(id.to_string(), e.to_string()))
            }
            None => Ok(Attributes::new()),
        }
    }

    /// Removes a kept sandbox: its record first (a sandbox cut short here is not brought
    /// back), then its files.
    pub async fn delete_kept(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        if !plain_id(id) {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let at = Self::kept_key(tenant, id);
        self.remove(&at.clone().join("manifest.json")).await?;
        let listed: Vec<_> = self.objects.list(Some(&at)).try_collect().await.map_err(io)?;
        for meta in listed {
            self.remove(&meta.location).await?;
        }
        Ok(())
    }

    /// Copies every file under `dir` to `prefix/<its path>`; returns the keys written.
    pub(super) async fn put_tree(&self, prefix: &Key, dir: &Path) -> Result<HashSet<Key>, StoreError> {
        let dir = dir.to_path_buf();
        let walked = tokio::task::spawn_blocking(move || {
            walkdir::WalkDir::new(&dir)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
                .filter_map(|e| Some((e.path().to_path_buf(), e.path().strip_prefix(&dir).ok()?.to_str()?.to_string())))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(io)?;
        let mut written = HashSet::new();
        for (path, rel) in walked {
            let bytes = tokio::fs::read(&path).await.map_err(io)?;
            let to = rel.split('/').fold(prefix.clone(), |k, part| k.join(part));
            self.write(&to, bytes).await?;
            written.insert(to);
        }
        Ok(written)
    }

    /// Writes every object under `prefix` into `to`, at its path below the prefix.
    pub(super) async fn fetch_tree(&self, prefix: &Key, to: &Path) -> Result<(), StoreError> {
        let listed: Vec<_> = self.objects.list(Some(prefix)).try_collect().await.map_err(io)?;
        for meta in listed {
            let Some(parts) = meta.location.prefix_match(prefix) else { continue };
            let rel = parts
                .map(|p| percent_encoding::percent_decode_str(p.as_ref()).decode_utf8_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            let Some(bytes) = self.read(&meta.location).await? else { continue };
            let (to, file) = (to.to_path_buf(), vec![(rel, bytes.to_vec())]);
            tokio::task::spawn_blocking(move || write_files(&to, &file)).await.map_err(io)?.map_err(io)?;
        }
        Ok(())
    }
}
