//! Where sessions keep files: the host folders behind `grants.scratch`, and their quota.

use super::*;

impl Sandbox {
    /// The host directory of a session's (or a stateless call's) scratch grant, created
    /// empty; `None` when the resource grants none or it cannot be made.
    pub(super) fn scratch_dir(&self, backend: &Backend, session_id: Option<&str>) -> Option<std::path::PathBuf> {
        backend.resource.grants.scratch.as_ref()?;
        let name = session_id.map(str::to_string).unwrap_or_else(|| format!("call-{}", uuid::Uuid::new_v4().simple()));
        let dir = self.inner.shared.cache.dir().join("scratch").join(name);
        match std::fs::create_dir_all(&dir) {
            Ok(()) => Some(dir),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot create a scratch directory");
                None
            }
        }
    }

    /// The host directory behind the scratch grant of the caller's session of `rt`, if the
    /// session exists and its resource grants one (the run API writes uploads there).
    pub fn session_dir(&self, caller: &Caller, rt: &str) -> Option<std::path::PathBuf> {
        self.session_scratch(&*self.inner.sessions.get(caller, rt)?)
    }

    /// The scratch directory of a session, if its resource grants one.
    pub(super) fn session_scratch(&self, session: &Session) -> Option<std::path::PathBuf> {
        let backend = self.inner.backends.get(&session.resource_type)?;
        backend.resource.grants.scratch.as_ref()?;
        Some(self.inner.shared.cache.dir().join("scratch").join(&session.id))
    }

    /// `Some(refusal message)` when a session's scratch directory holds more than its quota.
    /// The folder is measured on a blocking thread, off the async workers.
    pub(super) async fn scratch_over_quota(&self, session: &Session) -> Option<String> {
        let backend = self.inner.backends.get(&session.resource_type)?;
        let quota = backend.resource.grants.scratch.as_ref()?.quota_mb;
        let dir = self.session_scratch(session)?;
        let used = match small_dir_size(&dir) {
            Some(used) => used,
            None => tokio::task::spawn_blocking(move || dir_size(&dir)).await.unwrap_or(0),
        };
        (used > quota * 1024 * 1024).then(|| {
            format!(
                "the scratch directory holds {:.1} MiB, over its quota of {quota} MiB; the session is ended",
                used as f64 / 1048576.0
            )
        })
    }
}

/// Entries a directory may hold to be measured on the calling thread: a session's few files
/// take less time to `stat` than a hop to the blocking pool and back (which was a few percent
/// of a `print(1)` call's time).
const INLINE_ENTRIES: usize = 64;

/// [`dir_size`] of a directory of at most [`INLINE_ENTRIES`] entries; `None` for a larger one.
fn small_dir_size(dir: &std::path::Path) -> Option<u64> {
    size_within(dir, INLINE_ENTRIES)
}

/// Bytes in the files under a directory (links are not followed).
pub(crate) fn dir_size(dir: &std::path::Path) -> u64 {
    size_within(dir, usize::MAX).unwrap_or(0)
}

/// Bytes in the files under `dir`, or `None` once the walk passes `most` entries.
fn size_within(dir: &std::path::Path, most: usize) -> Option<u64> {
    let mut total = 0;
    for (seen, entry) in walkdir::WalkDir::new(dir).into_iter().enumerate() {
        if seen > most {
            return None;
        }
        if let Ok(entry) = entry
            && entry.file_type().is_file()
        {
            total += entry.metadata().map_or(0, |m| m.len());
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small directory is measured in place, with its nested files; a large one is left to
    /// the full walk, which finds the same total.
    #[test]
    fn a_small_directory_is_measured_in_place_and_a_large_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a"), [0; 10]).unwrap();
        std::fs::write(dir.path().join("sub/b"), [0; 5]).unwrap();
        assert_eq!(small_dir_size(dir.path()), Some(15));
        for i in 0..INLINE_ENTRIES {
            std::fs::write(dir.path().join(format!("f{i}")), [0; 2]).unwrap();
        }
        assert_eq!(small_dir_size(dir.path()), None);
        assert_eq!(dir_size(dir.path()), 15 + 2 * INLINE_ENTRIES as u64);
    }
}
