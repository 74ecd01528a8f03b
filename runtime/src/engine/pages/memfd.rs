//! A memfd written with `pwrite`, then sealed against any change and mapped read-only.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// A memfd being written.
pub struct Open {
    file: std::fs::File,
    len: usize,
}

impl Open {
    /// A memfd of `len` bytes (zeros, no memory used until written), or `None` when
    /// the kernel refuses one.
    pub fn new(name: &std::ffi::CStr, len: usize) -> Option<Open> {
        // SAFETY: a plain syscall on a NUL-terminated name; the fd is checked.
        let raw = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a fresh fd owned by nobody else.
        let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(raw) });
        file.set_len(len as u64).ok()?;
        Some(Open { file, len })
    }

    /// Writes `bytes` at `offset`.
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) -> std::io::Result<()> {
        if offset.checked_add(bytes.len()).is_none_or(|end| end > self.len) {
            return Err(std::io::Error::other("a write past the end of the pages"));
        }
        std::os::unix::fs::FileExt::write_all_at(&self.file, bytes, offset as u64)
    }

    /// Cuts the file to its first `len` bytes (no more than it has).
    pub fn shrink(&mut self, len: usize) -> std::io::Result<()> {
        if len > self.len {
            return Err(std::io::Error::other("cannot grow the pages"));
        }
        self.file.set_len(len as u64)?;
        self.len = len;
        Ok(())
    }

    /// Seals the file (no write, no resize, ever again) and maps it for reading.
    pub fn seal(self) -> std::io::Result<Mapped> {
        let seals = libc::F_SEAL_WRITE | libc::F_SEAL_GROW | libc::F_SEAL_SHRINK | libc::F_SEAL_SEAL;
        // SAFETY: a plain syscall on an fd this owns.
        if unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Mapped::new(self.file.into(), self.len, false)
    }
}

/// A file that does not change (a sealed memfd, a stored blob) and its read-only mapping.
pub struct Mapped {
    fd: OwnedFd,
    map: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is read-only and its file never changes (sealed against writes, or
// a blob written once): no one can change the bytes, so sharing references across threads
// is sound.
unsafe impl Send for Mapped {}
// SAFETY: as above.
unsafe impl Sync for Mapped {}

impl Mapped {
    /// Maps the first `len` bytes of `fd` read-only, shared; `populate` reads its pages in
    /// at once (one call, where reading them would fault per page).
    pub fn new(fd: OwnedFd, len: usize, populate: bool) -> std::io::Result<Mapped> {
        if len == 0 {
            return Ok(Mapped { fd, map: std::ptr::NonNull::dangling(), len: 0 });
        }
        // SAFETY: a new read-only shared mapping of the file, placed by the kernel.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                if populate { libc::MAP_SHARED | libc::MAP_POPULATE } else { libc::MAP_SHARED },
                fd.as_raw_fd(),
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let map = std::ptr::NonNull::new(map.cast::<u8>()).ok_or_else(|| std::io::Error::other("mmap gave null"))?;
        Ok(Mapped { fd, map, len })
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `map` is a live read-only mapping of `len` bytes (or dangling with
        // `len` 0) that lives as long as `self`, of a file that never changes.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), self.len) }
    }

    /// The file.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: the mapping was made by `seal` and is unmapped once, here; no
            // borrow of `bytes` outlives `self`.
            unsafe { libc::munmap(self.map.as_ptr().cast(), self.len) };
        }
    }
}
