//! A session's or sandbox's files on the local disk, read into and written from snapshots.

use std::path::Path;

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

/// Whether `rel` stays inside the folder it is relative to (no root, no `..`).
pub fn stays_inside(rel: &str) -> bool {
    let rel = Path::new(rel);
    !rel.is_absolute() && rel.components().all(|c| matches!(c, std::path::Component::Normal(_)))
}

/// Writes `files` under `dir`, refusing paths that would leave it.
pub fn write_files(dir: &Path, files: &[(String, Vec<u8>)]) -> std::io::Result<()> {
    for (rel, bytes) in files {
        if !stays_inside(rel) {
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
