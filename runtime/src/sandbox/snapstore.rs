//! The snapshot store: a local directory (the state directory's `snapshots/` unless
//! `server.snapshots.dir` names another, e.g. a shared volume).
//!
//! - `tenants/<tenant>/blobs/<xxh3-128>`: a snapshot's content (the instance state and the
//!   session's files), postcard-encoded and zstd-compressed, named by the 128-bit xxh3 hash of
//!   the stored bytes: the same state is stored once per tenant, and a file whose bytes do not
//!   hash to its name is refused. (xxh3 runs at memory speed where sha256 took 60 ms for a
//!   30 MB snapshot; blobs are never shared between tenants, so a tenant cannot make its
//!   record point at another's content by crafting a collision.)
//! - `tenants/<tenant>/<snapshot id>.json`: the record (a [`SnapshotInfo`] plus the tenant,
//!   the warm image's key and the blob's name). A tenant's records and blobs live in its own
//!   folder, so no lookup ever reaches another tenant's.
//!
//! Every file is written to a temporary name and renamed, so a crash leaves either the old
//! state or the new, never half a file.

use crate::engine::snapshot::{Captured, StateImage};
use cella_protocol::SnapshotInfo;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a blob holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Body {
    /// The instance state.
    pub image: StateImage,
    /// The session's scratch files: (path relative to the directory, bytes).
    pub files: Vec<(String, Vec<u8>)>,
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
    /// The blob's name (xxh3-128 of its bytes, hex).
    pub content: String,
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
    /// The file system failed.
    #[error("the snapshot store failed: {0}")]
    Io(String),
}

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(e.to_string())
}

/// The snapshot store.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    /// A store in `dir` (created when first written).
    pub fn new(dir: PathBuf) -> SnapshotStore {
        SnapshotStore { dir }
    }

    fn tenant_dir(&self, tenant: &str) -> PathBuf {
        // Tenant names are config keys ([A-Za-z0-9_-]); anything else is encoded.
        let safe: String = tenant.chars().map(|c| if crate::config::is_name_char(c) { c } else { '_' }).collect();
        self.dir.join("tenants").join(safe)
    }

    fn blob(&self, tenant: &str, content: &str) -> PathBuf {
        self.tenant_dir(tenant).join("blobs").join(content)
    }

    /// Encodes and compresses `captured` with `files`; returns the bytes and their hash.
    pub fn encode(captured: &Captured, files: Vec<(String, Vec<u8>)>) -> Result<(Vec<u8>, String), StoreError> {
        let body = Body { image: captured.image.clone(), files };
        let plain = postcard::to_stdvec(&body).map_err(io)?;
        let packed = zstd::bulk::compress(&plain, 1).map_err(io)?;
        let sum = checksum(&packed);
        Ok((packed, sum))
    }

    /// Stores a blob (once per content) and its record.
    pub fn put(&self, record: &Record, packed: &[u8]) -> Result<(), StoreError> {
        let blob = self.blob(&record.tenant, &record.content);
        if !blob.is_file() {
            write_atomic(&blob, packed)?;
        }
        let json = serde_json::to_vec_pretty(record).map_err(io)?;
        write_atomic(&self.tenant_dir(&record.tenant).join(format!("{}.json", record.info.snapshot_id)), &json)
    }

    /// The record of `id`, if `tenant` owns one.
    pub fn record(&self, tenant: &str, id: &str) -> Result<Record, StoreError> {
        if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(StoreError::NotFound(id.to_string()));
        }
        let path = self.tenant_dir(tenant).join(format!("{id}.json"));
        let text = std::fs::read(&path).map_err(|_| StoreError::NotFound(id.to_string()))?;
        serde_json::from_slice(&text).map_err(|e| StoreError::Corrupted(id.to_string(), format!("record: {e}")))
    }

    /// The content of a record, checked against its checksum.
    pub fn body(&self, record: &Record) -> Result<Body, StoreError> {
        let id = &record.info.snapshot_id;
        let packed = std::fs::read(self.blob(&record.tenant, &record.content))
            .map_err(|e| StoreError::Corrupted(id.clone(), format!("content missing: {e}")))?;
        if checksum(&packed) != record.content {
            return Err(StoreError::Corrupted(id.clone(), "the content does not match its checksum".into()));
        }
        let plain = zstd::stream::decode_all(&packed[..])
            .map_err(|e| StoreError::Corrupted(id.clone(), format!("cannot decompress: {e}")))?;
        postcard::from_bytes(&plain).map_err(|e| StoreError::Corrupted(id.clone(), format!("cannot decode: {e}")))
    }

    /// Every record of `tenant`, oldest first.
    pub fn list(&self, tenant: &str) -> Vec<Record> {
        let Ok(entries) = std::fs::read_dir(self.tenant_dir(tenant)) else { return Vec::new() };
        let mut out: Vec<Record> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
            .collect();
        out.sort_by(|a, b| a.info.created_at.cmp(&b.info.created_at));
        out
    }

    /// Every tenant with records.
    pub fn tenants(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("tenants")) else { return Vec::new() };
        entries.filter_map(Result::ok).filter_map(|e| e.file_name().into_string().ok()).collect()
    }

    /// Deletes a record, and its blob when no other record of the tenant uses it.
    pub fn delete(&self, tenant: &str, id: &str) -> Result<Record, StoreError> {
        let record = self.record(tenant, id)?;
        std::fs::remove_file(self.tenant_dir(tenant).join(format!("{id}.json"))).map_err(io)?;
        if !self.list(tenant).iter().any(|r| r.content == record.content) {
            let _ = std::fs::remove_file(self.blob(tenant, &record.content));
        }
        Ok(record)
    }

    /// Bytes `tenant`'s snapshots hold (each blob counted once).
    pub fn bytes_of(&self, tenant: &str) -> u64 {
        let mut seen = std::collections::HashSet::new();
        self.list(tenant).into_iter().filter(|r| seen.insert(r.content.clone())).map(|r| r.info.stored_bytes).sum()
    }
}

/// The content hash: xxh3-128, hex.
fn checksum(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = path.parent().ok_or_else(|| io("no parent directory"))?;
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// The files under `dir`, relative to it (links are not followed).
pub fn read_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e.path().strip_prefix(dir).ok()?.to_str()?.to_string();
            Some((rel, std::fs::read(e.path()).ok()?))
        })
        .collect()
}

/// Writes `files` under `dir`, refusing paths that would leave it.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    for (rel, bytes) in files {
        let rel = Path::new(rel);
        if rel.is_absolute() || rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
            continue;
        }
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, bytes)?;
    }
    Ok(())
}
