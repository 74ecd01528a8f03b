//! A backend's component file: checked (a component, not a core module) and hashed.
//!
//! The sha256 of a file names its compiled code and warm image in the cache. Hashing the
//! interpreters' components (25 and 12 MB) was a third of a start, so the hash is remembered in
//! the cache (`sums/`) under the file's identity: path, device, inode, size, and modification
//! and change times to the nanosecond. The change time is the kernel's own (no user call sets
//! it), so a file written again, however its modification time is dressed up, is hashed
//! again. A component pinned by `sha256` in the configuration is always hashed in full.

use super::cache::{ComponentCache, sha256_hex};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A checked component file and its sha256.
#[derive(Debug)]
pub(crate) struct Source {
    /// The sha256 of its bytes, lowercase hex.
    pub(crate) sha256: String,
    /// Its bytes, when they had to be read (the hash was not remembered).
    pub(crate) bytes: Option<Vec<u8>>,
}

/// Opens the component at `path`: checks its header, and hashes it unless its hash is
/// remembered (and `pinned` is false). Errors are messages naming the file.
pub(crate) fn open(path: &Path, cache: &ComponentCache, pinned: bool) -> Result<Source, String> {
    let cannot = |e: std::io::Error| format!("cannot read component {}: {e}", path.display());
    let memo = if pinned { None } else { Some(memo_path(path, cache).map_err(cannot)?) };
    if let Some(sha256) = memo.as_ref().and_then(|m| std::fs::read_to_string(m).ok()) {
        let mut header = [0u8; 8];
        let read = std::fs::File::open(path).and_then(|mut f| f.read(&mut header)).map_err(cannot)?;
        check_header(path, &header[..read])?;
        return Ok(Source { sha256: sha256.trim().to_string(), bytes: None });
    }
    let bytes = std::fs::read(path).map_err(cannot)?;
    check_header(path, &bytes)?;
    let sha256 = sha256_hex(&bytes);
    if let Some(memo) = memo {
        remember(&memo, &sha256);
    }
    Ok(Source { sha256, bytes: Some(bytes) })
}

/// Reads the component again (to compile it or build its warm image), refusing a file that no
/// longer has the hash it was loaded with.
pub(crate) fn read_again(path: &Path, sha256: &str) -> Result<Vec<u8>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read component {}: {e}", path.display()))?;
    if sha256_hex(&bytes) != sha256 {
        return Err(format!(
            "{} changed on disk since it was loaded (sha256 {sha256}); restart the server to load the new one",
            path.display()
        ));
    }
    Ok(bytes)
}

fn check_header(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < 8 || bytes[..4] != *b"\0asm" {
        return Err(format!("{} is not a WebAssembly component (no \\0asm header)", path.display()));
    }
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(format!("{} is a core WebAssembly module, not a component", path.display()));
    }
    Ok(())
}

/// Where the hash of the file's current identity is remembered.
fn memo_path(path: &Path, cache: &ComponentCache) -> std::io::Result<PathBuf> {
    let m = std::fs::metadata(path)?;
    let identity = format!(
        "{}\0{}\0{}\0{}\0{}.{}\0{}.{}",
        path.display(),
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    );
    Ok(cache.dir().join("sums").join(format!("{:032x}", xxhash_rust::xxh3::xxh3_128(identity.as_bytes()))))
}

/// Writes a memo (temporary file renamed into place); a failure only costs a hash next time.
fn remember(memo: &Path, sha256: &str) {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = memo.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = memo.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, sha256)?;
        std::fs::rename(&tmp, memo)
    };
    if let Err(e) = write() {
        tracing::debug!(memo = %memo.display(), error = %e, "could not remember a component's hash");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_remembered_until_the_file_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ComponentCache::new(Some(dir.path().join("cache")));
        let path = dir.path().join("c.wasm");
        let component = |fill: u8| [b"\0asm\x0d\0\x01\0".as_slice(), &[fill; 64]].concat();
        std::fs::write(&path, component(1)).unwrap();

        let first = open(&path, &cache, false).unwrap();
        assert_eq!(first.sha256, sha256_hex(&component(1)));
        assert!(first.bytes.is_some(), "the first open reads and hashes the file");
        let again = open(&path, &cache, false).unwrap();
        assert_eq!((again.sha256.as_str(), again.bytes.is_none()), (first.sha256.as_str(), true));
        assert!(open(&path, &cache, true).unwrap().bytes.is_some(), "a pinned component is always hashed");

        // The same size and modification time, other bytes: the change time gives it away.
        let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, component(2)).unwrap();
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(modified).unwrap();
        let changed = open(&path, &cache, false).unwrap();
        assert_eq!(changed.sha256, sha256_hex(&component(2)));
        assert!(read_again(&path, &first.sha256).unwrap_err().contains("changed on disk"));

        std::fs::write(&path, b"\0asm\x01\0\0\0").unwrap();
        assert!(open(&path, &cache, false).unwrap_err().contains("core WebAssembly module"));
    }
}
