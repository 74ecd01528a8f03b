//! The on-disk cache of compiled components and warm images.
//!
//! A `.cwasm` is written next to a `.xxh3` checksum of its bytes (xxh3-128: a cache file is
//! the server's own, so the checksum guards against corruption, not forgery, and runs at
//! memory speed where sha256 took half of a start's time). Loading streams the file through
//! the checksum before handing it to wasmtime's `deserialize_file` (which maps the file
//! instead of copying it, and trusts its input), and wasmtime itself rejects files made by
//! another version or with other settings. A file that fails either check is recompiled and
//! overwritten, never trusted. Writes go to a temporary file renamed into place, so a crash or
//! a concurrent writer never leaves half a file (a file renamed in between the checksum and
//! the mapping is another complete file of this cache, checked by wasmtime's header).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where a component came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Loaded from the cache.
    Cached,
    /// Compiled now (and stored).
    Compiled,
}

/// A held cache lock (see [`ComponentCache::lock`]): released when dropped.
pub struct CacheLock<G> {
    _file: Option<std::fs::File>,
    _process: G,
}

/// The component cache directory.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

/// The sha256 of some bytes, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ComponentCache {
    /// A cache in `dir`, or in the user's cache directory (`$XDG_CACHE_HOME/cella`,
    /// `~/.cache/cella`) when `dir` is `None`.
    pub fn new(dir: Option<PathBuf>) -> ComponentCache {
        let dir = dir.unwrap_or_else(crate::config::home::user_cache_dir);
        ComponentCache { dir }
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_for(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    /// The cache key of some wasm under some engine settings.
    pub fn key(kind: &str, parts: &[&str]) -> String {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p.as_bytes());
            h.update([0]);
        }
        format!("{kind}-{}", &hex::encode(h.finalize())[..32])
    }

    /// Holds the lock of `key`: sandboxes that start at once compile each artifact once, the
    /// others wait and then find it cached. In one process (tests, benchmarks) a mutex; across
    /// processes (servers sharing a cache directory) an advisory lock on `<key>.lock`, where
    /// the file system has them.
    pub fn lock(&self, key: &str) -> CacheLock<std::sync::MutexGuard<'static, ()>> {
        type Locks = std::sync::Mutex<std::collections::HashMap<PathBuf, &'static std::sync::Mutex<()>>>;
        static LOCKS: std::sync::OnceLock<Locks> = std::sync::OnceLock::new();
        let path = self.path_for(key);
        let lock: &'static std::sync::Mutex<()> = {
            let mut locks = LOCKS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(path).or_insert_with(|| Box::leak(Box::new(std::sync::Mutex::new(()))))
        };
        let process = lock.lock().unwrap_or_else(|e| e.into_inner());
        CacheLock { _file: self.file_lock(key), _process: process }
    }

    /// [`ComponentCache::lock`] for async code that builds an artifact across awaits.
    pub async fn lock_async(&self, key: &str) -> CacheLock<tokio::sync::OwnedMutexGuard<()>> {
        type Locks = std::sync::Mutex<std::collections::HashMap<PathBuf, std::sync::Arc<tokio::sync::Mutex<()>>>>;
        static LOCKS: std::sync::OnceLock<Locks> = std::sync::OnceLock::new();
        let path = self.path_for(key);
        let lock = {
            let mut locks = LOCKS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(path).or_default().clone()
        };
        let process = lock.lock_owned().await;
        let cache = self.clone();
        let key = key.to_string();
        let file = tokio::task::spawn_blocking(move || cache.file_lock(&key)).await.ok().flatten();
        CacheLock { _file: file, _process: process }
    }

    /// Waits for the exclusive lock on `<key>.lock`; `None` where it cannot be taken (the
    /// in-process lock still holds).
    fn file_lock(&self, key: &str) -> Option<std::fs::File> {
        std::fs::create_dir_all(&self.dir).ok()?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(format!("{key}.lock")))
            .ok()?;
        match file.try_lock() {
            Ok(()) => Some(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::info!(key, dir = %self.dir.display(), "another process is building this artifact; waiting for it");
                file.lock().ok().map(|()| file)
            }
            Err(std::fs::TryLockError::Error(_)) => None,
        }
    }

    /// Loads the component stored under `key`, or compiles `wasm()` and stores it.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        key: &str,
        wasm: impl FnOnce() -> wasmtime::Result<Vec<u8>>,
    ) -> wasmtime::Result<(Component, Origin)> {
        let _compiling = self.lock(key);
        if let Some(component) = self.get(engine, key) {
            return Ok((component, Origin::Cached));
        }
        let bytes = wasm()?;
        Ok((self.compile_and_store(engine, key, &bytes)?, Origin::Compiled))
    }

    /// The component stored under `key`, if there is a usable one. An unusable file
    /// (corrupt, stale, made by another engine) is reported and ignored.
    pub fn get(&self, engine: &Engine, key: &str) -> Option<Component> {
        let path = self.path_for(key);
        match self.load(engine, &path) {
            Ok(found) => found,
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "discarding an unusable cache file");
                None
            }
        }
    }

    /// Compiles `wasm` and stores the result under `key` (a failed write is only logged:
    /// the next start compiles again).
    pub fn compile_and_store(&self, engine: &Engine, key: &str, wasm: &[u8]) -> wasmtime::Result<Component> {
        let component = Component::new(engine, wasm)?;
        let path = self.path_for(key);
        if let Err(e) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %e, "could not write the component cache");
        }
        Ok(component)
    }

    /// `Ok(None)` when there is no file; `Err(reason)` when the file is there but unusable.
    fn load(&self, engine: &Engine, path: &Path) -> Result<Option<Component>, String> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.to_string()),
        };
        let expected = match std::fs::read_to_string(sum_path(path)) {
            Ok(sum) => sum,
            // A file of an older cache (its checksum was a `.sha256`): compiled again, quietly.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("no checksum: {e}")),
        };
        if expected.trim() != checksum_of(file).map_err(|e| e.to_string())? {
            return Err("checksum mismatch (corrupt file)".into());
        }
        // SAFETY: the file was written by this cache (its checksum matches what we wrote
        // after `serialize`), and wasmtime checks its version and settings header. One of the
        // crate's two unsafe blocks (the other prefaults snapshot pages): wasmtime offers no
        // safe way to load compiled code.
        #[allow(unsafe_code)]
        unsafe { Component::deserialize_file(engine, path) }
            .map(Some)
            .map_err(|e| format!("stale or incompatible: {e}"))
    }

    fn store(&self, path: &Path, component: &Component) -> wasmtime::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = component.serialize()?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes)?;
        let sum_tmp = tmp.with_extension("sumtmp");
        std::fs::write(&sum_tmp, checksum_hex(&bytes))?;
        // The checksum goes in place first: a reader that sees the new .cwasm with the old
        // checksum rejects it and recompiles, which is safe.
        std::fs::rename(&sum_tmp, sum_path(path))?;
        std::fs::rename(&tmp, path)?;
        // The checksum an older cache kept beside the file, now stale.
        let _ = std::fs::remove_file(path.with_extension("sha256"));
        Ok(())
    }
}

fn sum_path(path: &Path) -> PathBuf {
    path.with_extension("xxh3")
}

/// The checksum a cache file is stored with: xxh3-128 of its bytes, hex.
pub fn checksum_hex(bytes: &[u8]) -> String {
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(bytes))
}

/// The checksum of a file, read in 1 MiB pieces (no copy of the whole file in memory).
fn checksum_of(mut file: std::fs::File) -> std::io::Result<String> {
    use std::io::Read;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match file.read(&mut buffer)? {
            0 => return Ok(format!("{:032x}", hasher.digest128())),
            n => hasher.update(&buffer[..n]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_keeps_other_processes_out() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ComponentCache::new(Some(dir.path().to_path_buf()));
        let key = ComponentCache::key("warm", &["x"]);
        let held = cache.lock(&key);
        // Another process opens the file anew: a lock on another open file description.
        let other = std::fs::File::options().write(true).open(dir.path().join(format!("{key}.lock"))).unwrap();
        assert!(matches!(other.try_lock(), Err(std::fs::TryLockError::WouldBlock)));
        drop(held);
        assert!(other.try_lock().is_ok(), "released with the guard");
    }
}
