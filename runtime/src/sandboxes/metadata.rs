//! User metadata on a sandbox's files, where E2B's envd keeps it: extended attributes named
//! `user.e2b.<key>` on the file itself. The attributes travel with the file over a rename
//! (the shell's `mv`, envd's Move, or the guest's own rename), vanish with it, and stay
//! invisible to guest code (WASI has no extended attributes).
//!
//! Files are opened through the sandbox's [`cap_std::fs::Dir`], as every other operation,
//! and the attributes are read and set on the open descriptor: no path is resolved twice.

use super::files::Files;
use super::{Kind, SbxError};
use rustix::fs::XattrFlags;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

/// The namespace E2B's envd gives file metadata.
const PREFIX: &str = "user.e2b.";

/// Checks one key and value as E2B's SDK does before sending them as `X-Metadata-*`
/// headers: a key of HTTP token characters, a value of printable US-ASCII.
pub fn validate(key: &str, value: &str) -> Result<(), SbxError> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if key.is_empty() || !key.chars().all(token) {
        return Err(SbxError::Invalid(format!(
            "metadata key '{key}' is not valid: keys are non-empty HTTP token characters (letters, digits and !#$%&'*+-.^_`|~)"
        )));
    }
    if !value.chars().all(|c| (' '..='~').contains(&c)) {
        return Err(SbxError::Invalid(format!("the value of metadata key '{key}' is not printable US-ASCII")));
    }
    Ok(())
}

impl Files {
    /// Opens a file or directory inside the sandbox's files for its attributes; `None` for
    /// a symbolic link or anything else not a file or directory (links carry no metadata,
    /// and are never followed).
    fn open_for_attributes(&self, rel: &Path, guest: &str) -> Result<Option<OwnedFd>, SbxError> {
        let at = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
        let meta = self.dir().symlink_metadata(at).map_err(|e| Files::io(guest, e))?;
        if !meta.is_dir() && !meta.is_file() {
            return Ok(None);
        }
        // A plain read-only open, directories too (a directory handle of cap-std's is an
        // `O_PATH` one, which the attribute calls refuse).
        let mut read = cap_std::fs::OpenOptions::new();
        read.read(true);
        let fd: OwnedFd = self.dir().open_with(at, &read).map_err(|e| Files::io(guest, e))?.into_std().into();
        Ok(Some(fd))
    }

    /// The metadata of a path (empty when none is set or the path is a link).
    pub(crate) fn metadata_at(&self, rel: &Path, kind: Kind) -> Result<BTreeMap<String, String>, SbxError> {
        if kind == Kind::Symlink {
            return Ok(BTreeMap::new());
        }
        let guest = self.guest(rel);
        let Some(fd) = self.open_for_attributes(rel, &guest)? else { return Ok(BTreeMap::new()) };
        read_all(fd.as_fd()).map_err(|e| SbxError::Io(format!("the metadata of '{guest}' cannot be read: {e}")))
    }

    /// Replaces the metadata of a path with `metadata` (an empty map clears it), as an
    /// upload does; keys are lowercased, as E2B's envd stores them.
    pub fn set_metadata(&self, guest: &str, metadata: &BTreeMap<String, String>) -> Result<(), SbxError> {
        for (k, v) in metadata {
            validate(k, v)?;
        }
        let rel = self.relative(guest)?;
        let Some(fd) = self.open_for_attributes(&rel, guest)? else {
            return Err(SbxError::Invalid(format!("'{guest}' is a symbolic link; links carry no metadata")));
        };
        let fd = fd.as_fd();
        let failed = |e: rustix::io::Errno| match e {
            rustix::io::Errno::NOTSUP => SbxError::Invalid(format!(
                "'{guest}': this server's file system does not keep extended attributes, so file metadata cannot be stored"
            )),
            rustix::io::Errno::NOSPC | rustix::io::Errno::TOOBIG | rustix::io::Errno::RANGE => {
                SbxError::Invalid(format!("the metadata of '{guest}' is too large for the file system ({e})"))
            }
            e => SbxError::Io(format!("the metadata of '{guest}' cannot be set: {e}")),
        };
        for name in names(fd).map_err(failed)? {
            rustix::fs::fremovexattr(fd, name.as_str()).map_err(failed)?;
        }
        for (k, v) in metadata {
            let name = format!("{PREFIX}{}", k.to_ascii_lowercase());
            rustix::fs::fsetxattr(fd, name.as_str(), v.as_bytes(), XattrFlags::empty()).map_err(failed)?;
        }
        Ok(())
    }
}

/// The names of the `user.e2b.*` attributes of an open file.
fn names(fd: std::os::fd::BorrowedFd<'_>) -> Result<Vec<String>, rustix::io::Errno> {
    let size = match rustix::fs::flistxattr_query(fd) {
        Ok(size) => size,
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    if size == 0 {
        return Ok(Vec::new());
    }
    let mut list = vec![0u8; size];
    let len = rustix::fs::flistxattr(fd, &mut list[..])?;
    Ok(list[..len.min(size)]
        .split(|b| *b == 0)
        .filter_map(|n| std::str::from_utf8(n).ok())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_string)
        .collect())
}

/// Every `user.e2b.*` attribute of an open file, without the prefix.
fn read_all(fd: std::os::fd::BorrowedFd<'_>) -> Result<BTreeMap<String, String>, rustix::io::Errno> {
    let mut out = BTreeMap::new();
    for name in names(fd)? {
        let size = match rustix::fs::fgetxattr_query(fd, name.as_str()) {
            Ok(size) => size,
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => return Err(e),
        };
        let mut value = vec![0u8; size];
        let len = rustix::fs::fgetxattr(fd, name.as_str(), &mut value[..])?;
        value.truncate(len);
        out.insert(name[PREFIX.len()..].to_string(), String::from_utf8_lossy(&value).into_owned());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_set_read_kept_over_rename_and_cleared() {
        let root = tempfile::tempdir().expect("a temporary folder");
        let f = Files::create(root.path().join("box"), "/home/user", 1).expect("files");
        f.write("a.txt", b"x").expect("write");
        let meta = BTreeMap::from([("Owner".to_string(), "ada".to_string()), ("v".into(), "1".into())]);
        f.set_metadata("a.txt", &meta).expect("set");
        let want = BTreeMap::from([("owner".to_string(), "ada".to_string()), ("v".into(), "1".into())]);
        assert_eq!(f.stat("a.txt").expect("stat").metadata, want, "keys are lowercased");
        f.rename("a.txt", "d/b.txt").expect("move");
        assert_eq!(f.stat("d/b.txt").expect("stat").metadata, want, "a rename keeps it");
        f.set_metadata("d/b.txt", &BTreeMap::new()).expect("clear");
        assert!(f.stat("d/b.txt").expect("stat").metadata.is_empty());
        f.make_dir("e").expect("mkdir");
        f.set_metadata("e", &want).expect("a directory has metadata too");
        assert_eq!(f.list("/home/user", 1).expect("list")[1].metadata, want);
        assert!(matches!(f.set_metadata("a.txt", &want), Err(SbxError::NotFound(_))));
        let bad = BTreeMap::from([("a b".to_string(), "x".to_string())]);
        assert!(matches!(f.set_metadata("d/b.txt", &bad), Err(SbxError::Invalid(_))));
    }
}
