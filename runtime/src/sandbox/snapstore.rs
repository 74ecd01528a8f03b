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

/// A session's scratch files: (path relative to its directory, contents).
pub type Files = Vec<(String, Vec<u8>)>;

/// The blob format this build writes and reads; a blob of another is refused as such.
const FORMAT: u32 = 2;

/// A session's scratch file in a blob.
#[derive(Debug, Serialize, Deserialize)]
pub struct StoredFile {
    /// The path, relative to the session's directory.
    pub path: String,
    /// The contents.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

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

/// What a blob holds.
#[derive(Debug, Deserialize)]
struct Body {
    /// [`FORMAT`], checked before the rest is decoded.
    _format: u32,
    image: StateImage,
    files: Vec<StoredFile>,
}

/// A blob as written: the state borrowed, not copied.
#[derive(Serialize)]
struct BodyRef<'a> {
    format: u32,
    image: &'a StateImage,
    files: Vec<StoredFile>,
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
    /// The session asked to be paused instead of ended at its TTL (`on_timeout: "pause"`);
    /// it still does when it comes back after a restart.
    #[serde(default)]
    pub pause_on_timeout: bool,
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

    /// The store a configuration names: `server.snapshots.dir`, else the cache directory's
    /// `snapshots/`.
    pub fn of(config: &crate::Config) -> SnapshotStore {
        SnapshotStore::new(match &config.server.snapshots.dir {
            Some(dir) => config.resolve(dir),
            None => {
                crate::engine::cache::ComponentCache::new(config.server.cache_dir.as_ref().map(|d| config.resolve(d)))
                    .dir()
                    .join("snapshots")
            }
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder of `tenant`'s records and blobs.
    pub fn tenant_dir(&self, tenant: &str) -> PathBuf {
        // Tenant names are config keys ([A-Za-z0-9_-]); anything else is encoded.
        let safe: String = tenant.chars().map(|c| if crate::config::is_name_char(c) { c } else { '_' }).collect();
        self.dir.join("tenants").join(safe)
    }

    fn blob(&self, tenant: &str, content: &str) -> PathBuf {
        self.tenant_dir(tenant).join("blobs").join(content)
    }

    /// Encodes and compresses `captured` with `files`; returns the bytes and their hash.
    pub fn encode(captured: &Captured, files: Vec<(String, Vec<u8>)>) -> Result<(Vec<u8>, String), StoreError> {
        let files = files.into_iter().map(|(path, bytes)| StoredFile { path, bytes }).collect();
        let body = BodyRef { format: FORMAT, image: &captured.image, files };
        // Encoded straight into the compressor: no plain copy of the state.
        // The plain size leads the blob (8 bytes, little-endian), so a read allocates once.
        let mut out = Vec::with_capacity(captured.image.changed_bytes() + (1 << 16));
        out.extend_from_slice(&[0; 8]);
        let encoder = zstd::stream::Encoder::new(out, LEVEL).map_err(io)?;
        let mut counted = Counted { inner: encoder, count: 0 };
        postcard::to_io(&body, &mut counted).map_err(io)?;
        let Counted { inner: encoder, count } = counted;
        let mut packed = encoder.finish().map_err(io)?;
        packed[..8].copy_from_slice(&(count as u64).to_le_bytes());
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

    /// The content of a record, checked against its checksum: the instance state and the
    /// session's files.
    pub fn body(&self, record: &Record) -> Result<(StateImage, Files), StoreError> {
        let id = &record.info.snapshot_id;
        let packed = std::fs::read(self.blob(&record.tenant, &record.content))
            .map_err(|e| StoreError::Corrupted(id.clone(), format!("content missing: {e}")))?;
        if checksum(&packed) != record.content {
            return Err(StoreError::Corrupted(id.clone(), "the content does not match its checksum".into()));
        }
        let (size, frame) = packed.split_at_checked(8).unwrap_or((&[], &[]));
        let size = <[u8; 8]>::try_from(size).map(u64::from_le_bytes).unwrap_or(0);
        if size > MAX_PLAIN {
            return Err(StoreError::Corrupted(id.clone(), format!("it claims {size} bytes of content")));
        }
        let plain = zstd::bulk::decompress(frame, size as usize)
            .map_err(|e| StoreError::Corrupted(id.clone(), format!("cannot decompress: {e}")))?;
        let written_by_another =
            || StoreError::Corrupted(id.clone(), "it was written by another version of Cella (blob format)".into());
        let format = postcard::take_from_bytes::<u32>(&plain).map_err(|_| written_by_another())?.0;
        if format != FORMAT {
            return Err(written_by_another());
        }
        let body: Body = postcard::from_bytes(&plain)
            .map_err(|e| StoreError::Corrupted(id.clone(), format!("cannot decode: {e}")))?;
        Ok((body.image, body.files.into_iter().map(|f| (f.path, f.bytes)).collect()))
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

    /// Bytes `tenant`'s snapshots hold (each blob counted once, and sandbox snapshots' files).
    pub fn bytes_of(&self, tenant: &str) -> u64 {
        let mut seen = std::collections::HashSet::new();
        let sessions: u64 =
            self.list(tenant).into_iter().filter(|r| seen.insert(r.content.clone())).map(|r| r.info.stored_bytes).sum();
        sessions + self.sandboxes(tenant).iter().map(|m| m.files_bytes).sum::<u64>()
    }

    fn sandbox_dir(&self, tenant: &str, id: &str) -> PathBuf {
        self.tenant_dir(tenant).join("sandboxes").join(id)
    }

    /// Where a sandbox snapshot's files are kept.
    pub fn sandbox_files(&self, tenant: &str, id: &str) -> PathBuf {
        self.sandbox_dir(tenant, id).join("files")
    }

    /// Copies `files` (a sandbox's directory) into the store, then writes `manifest`: a
    /// snapshot whose manifest is missing was cut short and is not listed.
    pub fn put_sandbox(&self, manifest: &SandboxManifest, files: &Path) -> Result<(), StoreError> {
        let to = self.sandbox_files(&manifest.tenant, &manifest.id);
        std::fs::create_dir_all(&to).map_err(io)?;
        copy_tree(files, &to).map_err(io)?;
        let json = serde_json::to_vec_pretty(manifest).map_err(io)?;
        write_atomic(&self.sandbox_dir(&manifest.tenant, &manifest.id).join("manifest.json"), &json)
    }

    /// Every sandbox snapshot of `tenant`, oldest first.
    pub fn sandboxes(&self, tenant: &str) -> Vec<SandboxManifest> {
        let Ok(entries) = std::fs::read_dir(self.tenant_dir(tenant).join("sandboxes")) else { return Vec::new() };
        let mut out: Vec<SandboxManifest> = entries
            .filter_map(Result::ok)
            .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path().join("manifest.json")).ok()?).ok())
            .collect();
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        out
    }

    /// Removes a sandbox snapshot's manifest and files (its sessions' records are the
    /// caller's to delete).
    pub fn delete_sandbox(&self, tenant: &str, id: &str) -> Result<(), StoreError> {
        if !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(StoreError::NotFound(id.to_string()));
        }
        std::fs::remove_dir_all(self.sandbox_dir(tenant, id)).map_err(|_| StoreError::NotFound(id.to_string()))
    }
}

/// More plain content than any session can hold (memories of 4 GiB at most, and files).
const MAX_PLAIN: u64 = 64 << 30;

/// The zstd level: 1, the fastest of the standard levels.
const LEVEL: i32 = 1;

/// A writer that counts what passes through.
struct Counted<W> {
    inner: W,
    count: usize,
}

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
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

/// Copies the directory tree `from` into `to` (files and folders; links are not followed).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in walkdir::WalkDir::new(from).min_depth(1) {
        let entry = entry.map_err(std::io::Error::other)?;
        let rel = entry.path().strip_prefix(from).map_err(std::io::Error::other)?;
        let target = to.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target)?;
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::snapshot::{GlobalValue, MemoryImage};

    fn record(content: String) -> Record {
        let info = SnapshotInfo {
            snapshot_id: "snap_1".into(),
            reason: "snapshot".into(),
            worker_id: "w".into(),
            resource_type: "kv".into(),
            session_id: "s".into(),
            session_name: String::new(),
            created_at: String::new(),
            stored_bytes: 0,
            changed_bytes: 0,
            memory_bytes: 0,
            files: 0,
            ttl_remaining_s: 0.0,
            config: serde_json::Value::Null,
            data: serde_json::Value::Null,
        };
        Record { info, tenant: "t".into(), image_key: "k".into(), content, pause_on_timeout: false }
    }

    #[test]
    fn a_blob_round_trips_and_a_foreign_or_lying_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::new(dir.path().to_path_buf());
        let image = StateImage {
            preopens: 1,
            memories: vec![MemoryImage { bytes: 65536, runs: vec![(1, 2)], data: vec![7; 2 * 4096] }],
            globals: vec![GlobalValue::I32(-3), GlobalValue::F64(0.5)],
        };
        let captured = Captured { image: image.clone(), key: "k".into() };
        let (packed, content) = SnapshotStore::encode(&captured, vec![("a/b.txt".into(), b"hi".to_vec())]).unwrap();
        let rec = record(content);
        store.put(&rec, &packed).unwrap();
        let (back, files) = store.body(&rec).unwrap();
        assert_eq!(back, image);
        assert_eq!(files, vec![("a/b.txt".to_string(), b"hi".to_vec())]);

        // Another blob format: refused as written by another version.
        let mut plain = postcard::to_stdvec(&(FORMAT + 1, 0u8)).unwrap();
        plain.extend_from_slice(&[0; 16]);
        let mut foreign = (plain.len() as u64).to_le_bytes().to_vec();
        foreign.extend(zstd::bulk::compress(&plain, 1).unwrap());
        let rec = record(checksum(&foreign));
        store.put(&rec, &foreign).unwrap();
        let err = store.body(&rec).unwrap_err().to_string();
        assert!(err.contains("another version of Cella"), "{err}");

        // A size prefix beyond any session is refused before anything is allocated.
        let mut lying = packed.clone();
        lying[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let rec = record(checksum(&lying));
        store.put(&rec, &lying).unwrap();
        let err = store.body(&rec).unwrap_err().to_string();
        assert!(err.contains("claims"), "{err}");
    }
}
