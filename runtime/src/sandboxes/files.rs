//! A sandbox's files: one host directory that every code context of the sandbox mounts at
//! the sandbox's home (`/home/user` for E2B, `/workspace` for Scalebox), reached from the
//! doors by guest path.
//!
//! Every operation goes through a [`cap_std::fs::Dir`] opened on that directory, so no path,
//! `..` or symbolic link a guest planted can lead the host outside it. The work is blocking
//! file I/O: callers run it off the async threads ([`Files::run`]).

use super::SbxError;
use cap_std::fs::Dir;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// What kind of thing an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed).
    Symlink,
}

/// One file or directory, as the doors describe it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The last component of its path.
    pub name: String,
    /// File, directory or link.
    pub kind: Kind,
    /// Its absolute guest path.
    pub path: String,
    /// Bytes (files and links), or a directory's block: 4096, as Linux reports it.
    pub size: u64,
    /// Unix permission bits as the guest sees them.
    pub mode: u32,
    /// When it last changed.
    pub modified: DateTime<Utc>,
    /// Where a link points.
    pub symlink_target: Option<String>,
    /// User metadata (E2B's `user.e2b.*` extended attributes; `sandboxes::metadata`).
    pub metadata: BTreeMap<String, String>,
}

/// The size a directory reports (one block of ext4's, what E2B's Linux answers).
const DIR_SIZE: u64 = 4096;

/// The files directory of one sandbox.
#[derive(Clone)]
pub struct Files {
    /// The host directory (exists while the sandbox lives).
    pub host: PathBuf,
    /// Where code sees it, e.g. `/home/user`.
    pub home: String,
    dir: Arc<Dir>,
    quota_bytes: u64,
}

impl Files {
    /// Creates the directory `host` (empty) and opens it.
    pub fn create(host: PathBuf, home: &str, quota_mb: u64) -> std::io::Result<Files> {
        std::fs::create_dir_all(&host)?;
        let dir = Dir::open_ambient_dir(&host, cap_std::ambient_authority())?;
        Ok(Files { host, home: home.to_string(), dir: Arc::new(dir), quota_bytes: quota_mb * 1024 * 1024 })
    }

    /// Runs blocking file work on a blocking thread.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Files) -> Result<T, SbxError> + Send + 'static,
    ) -> Result<T, SbxError> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || work(&this))
            .await
            .unwrap_or_else(|e| Err(SbxError::Io(format!("the file operation stopped: {e}"))))
    }

    /// The path inside the directory of a guest path: absolute under the home, or relative
    /// to it. `None` for the home itself.
    pub fn relative(&self, guest: &str) -> Result<PathBuf, SbxError> {
        let outside = || {
            SbxError::Invalid(format!(
                "'{guest}' is outside the sandbox's files; files live under {} (relative paths start there)",
                self.home
            ))
        };
        let path = Path::new(guest);
        let rest = if path.is_absolute() { path.strip_prefix(&self.home).map_err(|_| outside())? } else { path };
        let mut out = PathBuf::new();
        for part in rest.components() {
            match part {
                Component::Normal(p) => out.push(p),
                Component::CurDir => {}
                Component::ParentDir => {
                    if !out.pop() {
                        return Err(outside());
                    }
                }
                Component::RootDir | Component::Prefix(_) => return Err(outside()),
            }
        }
        Ok(out)
    }

    /// The directory every operation goes through.
    pub(super) fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The guest path of a path inside the directory.
    pub(super) fn guest(&self, relative: &Path) -> String {
        if relative.as_os_str().is_empty() {
            return self.home.clone();
        }
        format!("{}/{}", self.home.trim_end_matches('/'), relative.to_string_lossy())
    }

    fn at(relative: &Path) -> &Path {
        if relative.as_os_str().is_empty() { Path::new(".") } else { relative }
    }

    pub(super) fn io(guest: &str, e: std::io::Error) -> SbxError {
        match e.kind() {
            std::io::ErrorKind::NotFound => SbxError::NotFound(format!("'{guest}' does not exist")),
            std::io::ErrorKind::AlreadyExists => SbxError::Exists(format!("'{guest}' already exists")),
            std::io::ErrorKind::PermissionDenied => {
                SbxError::Invalid(format!("'{guest}' cannot be reached: it leads outside the sandbox's files"))
            }
            _ => SbxError::Io(format!("'{guest}': {e}")),
        }
    }

    /// Writes a file (its folders are made); answers its entry.
    pub fn write(&self, guest: &str, bytes: &[u8]) -> Result<Entry, SbxError> {
        let rel = self.relative(guest)?;
        if rel.as_os_str().is_empty() {
            return Err(SbxError::Invalid(format!("'{guest}' is the home directory, not a file")));
        }
        let used = crate::sandbox::dir_size(&self.host);
        let old = self.dir.metadata(&rel).map(|m| m.len()).unwrap_or(0);
        if used.saturating_sub(old) + bytes.len() as u64 > self.quota_bytes {
            return Err(SbxError::Quota(format!(
                "writing '{guest}' ({} bytes) would take the sandbox's files over their quota of {} MiB",
                bytes.len(),
                self.quota_bytes / 1024 / 1024
            )));
        }
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.dir.create_dir_all(parent).map_err(|e| Self::io(guest, e))?;
        }
        self.dir.write(&rel, bytes).map_err(|e| Self::io(guest, e))?;
        self.entry(&rel)
    }

    /// Appends to a file, making it (and its folders) when missing.
    pub fn append(&self, guest: &str, bytes: &[u8]) -> Result<(), SbxError> {
        use std::io::Write;
        let rel = self.relative(guest)?;
        if rel.as_os_str().is_empty() {
            return Err(SbxError::Invalid(format!("'{guest}' is the home directory, not a file")));
        }
        if crate::sandbox::dir_size(&self.host) + bytes.len() as u64 > self.quota_bytes {
            return Err(SbxError::Quota(format!(
                "appending {} bytes to '{guest}' would take the sandbox's files over their quota of {} MiB",
                bytes.len(),
                self.quota_bytes / 1024 / 1024
            )));
        }
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.dir.create_dir_all(parent).map_err(|e| Self::io(guest, e))?;
        }
        let mut options = cap_std::fs::OpenOptions::new();
        options.append(true).create(true);
        let mut file = self.dir.open_with(&rel, &options).map_err(|e| Self::io(guest, e))?;
        file.write_all(bytes).map_err(|e| Self::io(guest, e))
    }

    /// Reads a file.
    pub fn read(&self, guest: &str) -> Result<Vec<u8>, SbxError> {
        let rel = self.relative(guest)?;
        if self.dir.metadata(Self::at(&rel)).map_err(|e| Self::io(guest, e))?.is_dir() {
            return Err(SbxError::Invalid(format!("'{guest}' is a directory, not a file")));
        }
        self.dir.read(&rel).map_err(|e| Self::io(guest, e))
    }

    /// The entry of a path (links are described, not followed).
    pub fn stat(&self, guest: &str) -> Result<Entry, SbxError> {
        let rel = self.relative(guest)?;
        self.entry(&rel)
    }

    fn entry(&self, rel: &Path) -> Result<Entry, SbxError> {
        let guest = self.guest(rel);
        let meta = self.dir.symlink_metadata(Self::at(rel)).map_err(|e| Self::io(&guest, e))?;
        let kind = if meta.is_symlink() {
            Kind::Symlink
        } else if meta.is_dir() {
            Kind::Dir
        } else {
            Kind::File
        };
        let modified = meta.modified().map(|t| DateTime::<Utc>::from(t.into_std())).unwrap_or_else(|_| Utc::now());
        let symlink_target = match kind {
            Kind::Symlink => self.dir.read_link_contents(rel).ok().map(|t| t.to_string_lossy().into_owned()),
            _ => None,
        };
        let name = rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| {
            Path::new(&self.home).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        });
        let metadata = self.metadata_at(rel, kind).unwrap_or_else(|e| {
            tracing::warn!(path = %guest, error = %e, "a file's metadata could not be read; it is listed without it");
            BTreeMap::new()
        });
        Ok(Entry {
            metadata,
            name,
            kind,
            path: guest,
            size: if kind == Kind::Dir { DIR_SIZE } else { meta.len() },
            mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
            modified,
            symlink_target,
        })
    }

    /// The entries under a directory, `depth` levels down (1: its children).
    pub fn list(&self, guest: &str, depth: u32) -> Result<Vec<Entry>, SbxError> {
        let rel = self.relative(guest)?;
        if !self.dir.metadata(Self::at(&rel)).map_err(|e| Self::io(guest, e))?.is_dir() {
            return Err(SbxError::Invalid(format!("'{guest}' is not a directory")));
        }
        let mut out = Vec::new();
        self.list_into(&rel, depth.max(1), &mut out)?;
        Ok(out)
    }

    fn list_into(&self, rel: &Path, depth: u32, out: &mut Vec<Entry>) -> Result<(), SbxError> {
        let guest = self.guest(rel);
        let mut names: Vec<_> = self
            .dir
            .read_dir(Self::at(rel))
            .map_err(|e| Self::io(&guest, e))?
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        names.sort();
        for name in names {
            let child = rel.join(&name);
            let entry = self.entry(&child)?;
            let is_dir = entry.kind == Kind::Dir;
            out.push(entry);
            if is_dir && depth > 1 {
                self.list_into(&child, depth - 1, out)?;
            }
        }
        Ok(())
    }

    /// Makes a directory and its parents; false when it existed.
    pub fn make_dir(&self, guest: &str) -> Result<bool, SbxError> {
        let rel = self.relative(guest)?;
        if self.dir.metadata(Self::at(&rel)).is_ok() {
            return Ok(false);
        }
        self.dir.create_dir_all(&rel).map_err(|e| Self::io(guest, e))?;
        Ok(true)
    }

    /// Moves (renames) a path; answers the new entry.
    pub fn rename(&self, from: &str, to: &str) -> Result<Entry, SbxError> {
        let (a, b) = (self.relative(from)?, self.relative(to)?);
        if a.as_os_str().is_empty() || b.as_os_str().is_empty() {
            return Err(SbxError::Invalid("the home directory itself cannot be moved".into()));
        }
        if let Some(parent) = b.parent().filter(|p| !p.as_os_str().is_empty()) {
            self.dir.create_dir_all(parent).map_err(|e| Self::io(to, e))?;
        }
        self.dir.rename(&a, &self.dir, &b).map_err(|e| Self::io(from, e))?;
        self.entry(&b)
    }

    /// Removes a file, a link or a directory with everything in it.
    pub fn remove(&self, guest: &str) -> Result<(), SbxError> {
        let rel = self.relative(guest)?;
        if rel.as_os_str().is_empty() {
            return Err(SbxError::Invalid("the home directory itself cannot be removed".into()));
        }
        let meta = self.dir.symlink_metadata(&rel).map_err(|e| Self::io(guest, e))?;
        let done = if meta.is_dir() { self.dir.remove_dir_all(&rel) } else { self.dir.remove_file(&rel) };
        done.map_err(|e| Self::io(guest, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> (tempfile::TempDir, Files) {
        let root = tempfile::tempdir().expect("a temporary folder");
        let files = Files::create(root.path().join("box"), "/home/user", 1).expect("files");
        (root, files)
    }

    #[test]
    fn guest_paths_map_inside_the_home_only() {
        let (_root, f) = files();
        assert_eq!(f.relative("/home/user/a/b.txt").expect("inside"), PathBuf::from("a/b.txt"));
        assert_eq!(f.relative("a/./b.txt").expect("relative"), PathBuf::from("a/b.txt"));
        assert_eq!(f.relative("/home/user").expect("home"), PathBuf::new());
        for outside in ["/etc/passwd", "/home/user/../x", "../x", "/home/userx/a"] {
            assert!(matches!(f.relative(outside), Err(SbxError::Invalid(_))), "{outside} was let through");
        }
    }

    #[test]
    fn a_planted_link_does_not_lead_outside() {
        let (root, f) = files();
        std::fs::write(root.path().join("secret"), b"host").expect("write");
        std::os::unix::fs::symlink(root.path().join("secret"), f.host.join("link")).expect("symlink");
        std::os::unix::fs::symlink("../secret", f.host.join("rel")).expect("symlink");
        assert!(f.read("/home/user/link").is_err(), "an absolute link was followed");
        assert!(f.read("/home/user/rel").is_err(), "a relative link was followed");
        assert_eq!(f.stat("/home/user/rel").expect("a link is described").kind, Kind::Symlink);
    }

    #[test]
    fn write_read_list_move_remove_and_quota() {
        let (_root, f) = files();
        let e = f.write("/home/user/d/a.txt", b"hello").expect("write");
        assert_eq!((e.name.as_str(), e.kind, e.size, e.path.as_str()), ("a.txt", Kind::File, 5, "/home/user/d/a.txt"));
        assert_eq!(f.read("d/a.txt").expect("read"), b"hello");
        let names: Vec<String> = f.list("/home/user", 2).expect("list").into_iter().map(|e| e.path).collect();
        assert_eq!(names, ["/home/user/d", "/home/user/d/a.txt"]);
        f.rename("/home/user/d/a.txt", "/home/user/b.txt").expect("move");
        assert!(matches!(f.read("/home/user/d/a.txt"), Err(SbxError::NotFound(_))));
        assert!(f.make_dir("/home/user/e/f").expect("mkdir"));
        assert!(!f.make_dir("/home/user/e/f").expect("mkdir again"));
        f.remove("/home/user/e").expect("remove");
        assert!(matches!(f.write("big", &vec![0u8; 2 * 1024 * 1024]), Err(SbxError::Quota(_))));
    }
}
