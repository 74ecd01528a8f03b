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
        } else {
            continue;
        }
        copy_user_attributes(entry.path(), &target)?;
    }
    Ok(())
}

/// Copies the `user.*` extended attributes of `from` onto `to` (a sandbox's file metadata,
/// E2B's `user.e2b.*`); a file system without them has none to copy.
fn copy_user_attributes(from: &Path, to: &Path) -> std::io::Result<()> {
    let size = match rustix::fs::llistxattr_query(from) {
        Ok(0) | Err(rustix::io::Errno::NOTSUP) => return Ok(()),
        Ok(size) => size,
        Err(e) => return Err(e.into()),
    };
    let mut names = vec![0u8; size];
    let len = rustix::fs::llistxattr(from, &mut names[..])?;
    for name in names[..len.min(size)].split(|b| *b == 0).filter(|n| n.starts_with(b"user.")) {
        let Ok(name) = std::str::from_utf8(name) else { continue };
        let mut value = match rustix::fs::lgetxattr_query(from, name) {
            Ok(n) => vec![0u8; n],
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        let n = rustix::fs::lgetxattr(from, name, &mut value[..])?;
        rustix::fs::lsetxattr(to, name, &value[..n], rustix::fs::XattrFlags::empty())?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_keeps_files_folders_and_their_user_attributes() {
        let root = tempfile::tempdir().expect("a temporary folder");
        let (from, to) = (root.path().join("a"), root.path().join("b"));
        std::fs::create_dir_all(from.join("d")).expect("mkdir");
        std::fs::write(from.join("d/f.txt"), b"x").expect("write");
        let flags = rustix::fs::XattrFlags::empty();
        rustix::fs::setxattr(from.join("d/f.txt"), "user.e2b.owner", b"ada", flags).expect("set");
        rustix::fs::setxattr(from.join("d"), "user.e2b.kind", b"dir", flags).expect("set");
        std::fs::create_dir_all(&to).expect("mkdir");
        copy_tree(&from, &to).expect("copy");
        assert_eq!(std::fs::read(to.join("d/f.txt")).expect("read"), b"x");
        let mut value = [0u8; 16];
        let n = rustix::fs::getxattr(to.join("d/f.txt"), "user.e2b.owner", &mut value[..]).expect("kept");
        assert_eq!(&value[..n], b"ada");
        let n = rustix::fs::getxattr(to.join("d"), "user.e2b.kind", &mut value[..]).expect("kept");
        assert_eq!(&value[..n], b"dir");
    }
}
