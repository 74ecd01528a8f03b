//! Pages in a private anonymous mapping of their own, which a restore can *move* into a
//! linear memory (`mremap`) instead of copying or sharing them: a fork of one copy hands its
//! captured pages to the copy, with no second copy of them and no memfd to fill. Large
//! buffers come ready from [`spares`] where one is kept, and go back to it when dropped.

use super::spares::{self, Mapping};
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, Ordering};

/// A private anonymous mapping of whole pages, written once, then read or moved out.
pub struct Buffer {
    /// The mapping; taken only by `drop`.
    map: ManuallyDrop<Mapping>,
    /// The bytes the buffer holds (of the mapping's).
    len: usize,
    /// The end of the bytes ever written (all zeros past it).
    written: usize,
    /// Some of the pages were moved out (they read as zeros since).
    moved: AtomicBool,
}

// SAFETY: the mapping is owned by the buffer alone; writes need `&mut self`, and moving pages
// out (`move_out`, unsafe) is the caller's promise that no one reads them.
unsafe impl Send for Buffer {}
// SAFETY: as above.
unsafe impl Sync for Buffer {}

impl Buffer {
    /// A buffer of `len` bytes, all zeros: a ready spare when one of about that size is kept,
    /// else a fresh mapping (no memory used until written); `None` when the kernel refuses
    /// the mapping.
    pub fn new(len: usize) -> Option<Buffer> {
        if len == 0 {
            return None;
        }
        let map = spares::take(len).or_else(|| Mapping::new(len))?;
        Some(Buffer { map: ManuallyDrop::new(map), len, written: 0, moved: AtomicBool::new(false) })
    }

    /// Writes `bytes` at `offset`; the range must lie inside the buffer.
    pub fn write_at(&mut self, offset: usize, bytes: &[u8]) -> std::io::Result<()> {
        if offset.checked_add(bytes.len()).is_none_or(|end| end > self.len) {
            return Err(std::io::Error::other("a write past the end of the pages"));
        }
        // SAFETY: the range is inside the live mapping (checked), `&mut self` excludes every
        // other borrow of it, and `bytes` cannot overlap it (no `&[u8]` of it exists).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.map.map.as_ptr().add(offset), bytes.len()) };
        self.written = self.written.max(offset + bytes.len());
        Ok(())
    }

    /// Cuts the buffer to its first `len` bytes (no more than it has); the rest stays
    /// mapped, unused, until the buffer goes.
    pub fn shrink(&mut self, len: usize) -> std::io::Result<()> {
        if len > self.len {
            return Err(std::io::Error::other("cannot grow the pages"));
        }
        self.len = len;
        Ok(())
    }

    /// The bytes (zeros where pages were moved out).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `map` is a live mapping of `len` bytes that lives as long as `self`; its
        // bytes change only through `&mut self` or `move_out`, whose callers promise that no
        // borrow of the moved range is alive.
        unsafe { std::slice::from_raw_parts(self.map.map.as_ptr(), self.len) }
    }

    /// Whether pages were moved out of the buffer.
    pub fn moved(&self) -> bool {
        self.moved.load(Ordering::Acquire)
    }

    /// Moves `len` bytes from `at` to host address `to`, replacing whatever was mapped there
    /// with these pages (private, read-write); the buffer reads zeros there afterwards. Gives
    /// an error, moving nothing, when the kernel cannot (before Linux 5.7).
    ///
    /// # Safety
    ///
    /// `to .. to + len` must be a writable private mapping the caller may replace, used by
    /// nothing else during the call; `at`, `len` and `to` multiples of 4 KiB; and no borrow
    /// of the buffer's moved range may be alive or read afterwards expecting its old bytes.
    pub unsafe fn move_out(&self, at: usize, len: usize, to: usize) -> std::io::Result<()> {
        if at.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(std::io::Error::other("a move past the end of the pages"));
        }
        // SAFETY: the source lies inside this buffer's mapping (checked); the target is the
        // caller's to replace. MREMAP_DONTUNMAP leaves the source range mapped (empty), so the
        // buffer stays readable.
        let moved = unsafe {
            libc::mremap(
                self.map.map.as_ptr().add(at).cast(),
                len,
                len,
                libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP,
                to as *mut libc::c_void,
            )
        };
        if moved == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        self.moved.store(true, Ordering::Release);
        Ok(())
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: taken once, here; `self.map` is never used again.
        let map = unsafe { ManuallyDrop::take(&mut self.map) };
        // Made ready for the next capture, or unmapped; no borrow of `bytes` outlives `self`.
        spares::give(map, (!self.moved()).then_some(self.written));
    }
}
