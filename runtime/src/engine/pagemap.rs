//! Which pages of a linear memory the process has written, from the kernel's page map
//! (`/proc/self/pagemap`): a capture compares only those with the warm image, and skips the
//! rest, whose bytes are still the ones their mapping was made with.
//!
//! A page of a linear memory is one of: not present (it reads as its mapping's bytes: the
//! warm image's file, or zeros), a page of the mapped file never written since it was mapped
//! (the file's bytes), or an anonymous page (written, or copied into place by a reset or a
//! restore: its bytes are unknown). Swapped and migrating pages count as anonymous. So a page
//! that is not anonymous holds its mapping's bytes; where the mapping is the warm image or
//! zeros, those are the fresh instance's bytes. Restores map *other* files over a memory
//! ([`crate::engine::overlay`]): the caller compares those spans in full.

/// A page's entry: present in memory.
const PRESENT: u64 = 1 << 63;
/// A page's entry: swapped out (or migrating).
const SWAPPED: u64 = 1 << 62;
/// A page's entry: a page of a file (or shared anonymous memory), not a private copy.
const FILE: u64 = 1 << 61;

/// The host page the map describes.
const PAGE: usize = 4096;

/// Per 4 KiB page of `bytes` (which must start on a page), whether it may have been written
/// since its mapping was made; `None` when the kernel's page map cannot be read (then every
/// page may have been).
pub fn written(bytes: &[u8]) -> Option<Vec<bool>> {
    #[cfg(target_os = "linux")]
    {
        use crate::engine::overlay::host_page;
        use std::os::unix::fs::FileExt;
        static MAP: std::sync::LazyLock<Option<std::fs::File>> = std::sync::LazyLock::new(|| {
            (host_page() == PAGE).then(|| std::fs::File::open("/proc/self/pagemap").ok())?
        });
        let map = MAP.as_ref()?;
        let start = bytes.as_ptr() as usize;
        if !start.is_multiple_of(PAGE) {
            return None;
        }
        let pages = bytes.len().div_ceil(PAGE);
        let mut raw = vec![0u8; pages * 8];
        map.read_exact_at(&mut raw, (start / PAGE * 8) as u64).ok()?;
        Some(
            raw.chunks_exact(8)
                .map(|entry| {
                    let entry = u64::from_ne_bytes(<[u8; 8]>::try_from(entry).unwrap_or_default());
                    entry & SWAPPED != 0 || (entry & PRESENT != 0 && entry & FILE == 0)
                })
                .collect(),
        )
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = bytes;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn written_pages_are_told_from_untouched_ones() {
        // SAFETY: a fresh private anonymous mapping, used only here and unmapped at the end.
        #[allow(unsafe_code)]
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(map, libc::MAP_FAILED);
        // SAFETY: the mapping is 4 pages long and nothing else uses it.
        #[allow(unsafe_code)]
        let bytes = unsafe { std::slice::from_raw_parts_mut(map.cast::<u8>(), 4 * PAGE) };
        bytes[PAGE + 7] = 1;
        bytes[3 * PAGE] = 2;
        let written = written(bytes).expect("this process's page map is readable");
        assert_eq!(written, vec![false, true, false, true]);
        // SAFETY: unmapping the mapping made above; `bytes` is not used again.
        #[allow(unsafe_code)]
        unsafe {
            libc::munmap(map, 4 * PAGE)
        };
    }
}
