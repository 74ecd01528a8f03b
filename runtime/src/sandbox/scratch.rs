//! Scratch directories: the host folder behind a session's (or a stateless call's)
//! `grants.scratch`, removed when its owner goes away on every path, cancellation and
//! panics included, because removal lives in `Drop`.

use std::path::PathBuf;

/// A scratch directory that is removed (with everything in it) when dropped.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Takes ownership of `path`, which exists or is about to.
    pub fn new(path: PathBuf) -> ScratchDir {
        ScratchDir { path }
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.path.display(), error = %e, "cannot remove a scratch directory");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_scratch_dir_is_gone_even_after_a_panic() {
        let root = tempfile::tempdir().expect("a temporary folder");
        let dir = root.path().join("s1");
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        std::fs::write(dir.join("sub/file"), b"x").expect("write");
        let guard = ScratchDir::new(dir.clone());
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _guard = guard;
            panic!("boom");
        }));
        assert!(caught.is_err());
        assert!(!dir.exists(), "the scratch directory survived a panic");
    }
}
