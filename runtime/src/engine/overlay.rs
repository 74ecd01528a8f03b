//! Copy-on-write restores: runs of captured pages held in a sealed memfd ([`Pages`]) are
//! mapped private over a fresh instance's linear memory instead of being copied into it.
//! A restore then costs a few `mmap` calls whatever the session's size; its pages are read
//! from the shared file and copied only when the guest writes them, so N forks of a session
//! share its memory until they diverge.
//!
//! The pool reuses memory slots: on release wasmtime resets a slot by discarding its
//! private pages (`MADV_DONTNEED`), which for a file mapping brings back the *file's*
//! bytes. Before an instance with overlays is released, [`Overlays`] therefore maps the
//! warm image's own bytes (the baseline, a memfd of the fresh memory) over every range it
//! covered, so the reset brings back exactly the fresh image and no byte of a snapshot
//! reaches the slot's next session. Failing that mapping would leave another session's
//! bytes in the slot; the process aborts rather than hand them on.

use crate::engine::backend::Backend;
use crate::engine::host::Tags;
use crate::engine::pages::Pages;
use crate::engine::snapshot::{CHUNK, MemoryImage, arm, read_all};

/// Mapping runs shorter than this costs more than copying them.
pub const MAP_MIN: usize = 64 << 10;

/// At most this many runs of one memory are mapped (the largest); the rest are copied. Each
/// mapping is a kernel map entry, and `vm.max_map_count` bounds a process's.
pub const MAP_MAX: usize = 32;

/// The runs of `state` worth mapping rather than copying: the [`MAP_MAX`] largest of
/// at least [`MAP_MIN`] bytes, as indices into `state.runs`.
pub(crate) fn runs_to_map(state: &MemoryImage, baseline: Option<&Pages>) -> Vec<bool> {
    let mut mapped = vec![false; state.runs.len()];
    if !baseline.is_some_and(|b| mappable(&state.data, b)) {
        return mapped;
    }
    let mut large: Vec<usize> =
        (0..state.runs.len()).filter(|&i| state.runs[i].1 as usize * CHUNK >= MAP_MIN).collect();
    large.sort_by_key(|&i| std::cmp::Reverse(state.runs[i].1));
    for i in large.into_iter().take(MAP_MAX) {
        mapped[i] = true;
    }
    mapped
}

/// Kernel map entries held by restores' mappings and not yet put back, process-wide (two
/// per mapping: its own and the split of the mapping it lands in).
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The most map entries restores may hold at once: `CELLA_RESTORE_MAPS` when set, else an
/// eighth of `vm.max_map_count`, so the pool and everything else keep theirs, and a put-back
/// (which needs no new entry when the spans' edges are entries' edges) never meets the
/// limit. Past it, runs are copied: restores go on, at the speed of a copy.
fn budget() -> usize {
    static BUDGET: std::sync::LazyLock<usize> = std::sync::LazyLock::new(|| {
        if let Some(set) = std::env::var("CELLA_RESTORE_MAPS").ok().and_then(|v| v.trim().parse().ok()) {
            return set;
        }
        let max = std::fs::read_to_string("/proc/sys/vm/max_map_count").ok().and_then(|s| s.trim().parse().ok());
        max.unwrap_or(65_530usize) / 8
    });
    *BUDGET
}

/// One memory's overlaid span.
struct Span {
    /// The host address of the memory's first byte.
    base: usize,
    /// The byte range of the memory that mappings covered.
    from: usize,
    to: usize,
    /// The fresh image's bytes, put back over the span on release.
    baseline: Pages,
    /// Map entries counted in [`LIVE`] for this span.
    entries: usize,
}

/// The copy-on-write mappings made in one instance's memories; undone on drop.
#[derive(Default)]
pub struct Overlays(Vec<Span>);

/// Whether `pages` can be mapped (or moved), with `baseline` to put back: `pages` in a
/// file or movable ([`Pages::movable`]), `baseline` in a memfd, on a host of 4 KiB pages.
#[cfg(target_os = "linux")]
pub fn mappable(pages: &Pages, baseline: &Pages) -> bool {
    (pages.file().is_some() || pages.can_move()) && baseline.file().is_some() && host_page() == 4096
}

/// Whether `pages` can be mapped: never, off Linux.
#[cfg(not(target_os = "linux"))]
pub fn mappable(_pages: &Pages, _baseline: &Pages) -> bool {
    false
}

/// The host's page size.
#[cfg(target_os = "linux")]
pub(crate) fn host_page() -> usize {
    // SAFETY: a plain query.
    #[allow(unsafe_code)]
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(0)
}

impl Overlays {
    /// Maps `len` bytes of `pages` from `pages_at` private over the memory whose first byte
    /// is at host address `base`, at byte `offset` (or moves them there, when `pages` are
    /// movable); `baseline` is that memory's fresh image. Returns false, mapping nothing,
    /// when the process's budget of map entries for restores is spent, or the kernel cannot
    /// move pages: the caller copies the run instead.
    ///
    /// # Safety
    ///
    /// `base + offset .. + len` must lie inside an accessible linear memory of a store that
    /// nothing else uses during the call and that lives (unmoved) as long as `self`; the
    /// offsets and `len` must be multiples of 4 KiB, `pages_at + len` within `pages`, and
    /// [`mappable`] true of both buffers. Movable pages, once moved, must not be read again.
    #[cfg(target_os = "linux")]
    #[allow(unsafe_code)]
    pub unsafe fn map(
        &mut self,
        base: usize,
        offset: usize,
        len: usize,
        pages: &Pages,
        pages_at: usize,
        baseline: &Pages,
    ) -> std::io::Result<bool> {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::Ordering;
        let file = pages.file();
        if file.is_none() && !pages.can_move() {
            return Err(std::io::Error::other("the pages are neither in a file nor movable"));
        }
        // A run across the baseline's end is mapped in two, so that the put-back (the file's
        // bytes below that end, zeros above) finds an entry's edge there and needs no split.
        let end = offset + len;
        let cut = baseline.len().clamp(offset, end);
        let pieces: Vec<(usize, usize)> =
            [(offset, cut), (cut, end)].into_iter().filter(|(from, to)| to > from).collect();
        let entries = 2 * pieces.len();
        if LIVE.fetch_add(entries, Ordering::AcqRel) + entries > budget() {
            LIVE.fetch_sub(entries, Ordering::AcqRel);
            return Ok(false);
        }
        // Recorded first: whatever happens next, the span is put back on drop.
        match self.0.iter_mut().find(|s| s.base == base) {
            Some(span) => {
                span.from = span.from.min(offset);
                span.to = span.to.max(end);
                span.entries += entries;
            }
            None => self.0.push(Span { base, from: offset, to: end, baseline: baseline.clone(), entries }),
        }
        for (n, (from, to)) in pieces.into_iter().enumerate() {
            let Some((file, file_at)) = file else {
                // SAFETY: as below; the caller guarantees no one reads the moved pages again.
                match unsafe { pages.move_out(pages_at + from - offset, to - from, base + from) } {
                    Ok(_) => continue,
                    // Nothing moved yet (a kernel without MREMAP_DONTUNMAP): copy the run.
                    Err(_) if n == 0 => {
                        if let Some(span) = self.0.iter_mut().find(|s| s.base == base) {
                            span.entries -= entries;
                        }
                        LIVE.fetch_sub(entries, Ordering::AcqRel);
                        return Ok(false);
                    }
                    Err(e) => return Err(e),
                }
            };
            // SAFETY: the caller guarantees the target range is inside a live, unused linear
            // memory; MAP_FIXED replaces exactly that range and nothing outside it.
            let at = unsafe {
                libc::mmap(
                    (base + from) as *mut libc::c_void,
                    to - from,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_FIXED,
                    file.as_raw_fd(),
                    (file_at + pages_at + from - offset) as libc::off_t,
                )
            };
            if at == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(true)
    }

    /// Never called off Linux ([`mappable`] is false there).
    ///
    /// # Safety
    ///
    /// None needed: it maps nothing.
    #[cfg(not(target_os = "linux"))]
    #[allow(unsafe_code)]
    pub unsafe fn map(
        &mut self,
        _base: usize,
        _offset: usize,
        _len: usize,
        _pages: &Pages,
        _pages_at: usize,
        _baseline: &Pages,
    ) -> std::io::Result<bool> {
        Ok(false)
    }

    /// The byte range of the memory at host address `base` that restores mapped other
    /// files over (or moved pages into), when they did: there its pages may differ from the
    /// warm image's without the kernel counting them written ([`crate::engine::pagemap`]).
    pub fn span(&self, base: usize) -> Option<(usize, usize)> {
        self.0.iter().find(|s| s.base == base).map(|s| (s.from, s.to))
    }

    /// Whether any mapping was made.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Puts the fresh image back over every span (see the module's documentation).
    ///
    /// # Safety
    ///
    /// The memories must still be mapped where they were when the spans were made, and
    /// nothing may use them during the call.
    #[allow(unsafe_code)]
    pub unsafe fn undo(&mut self) {
        for span in self.0.drain(..) {
            // SAFETY: forwarded from the caller.
            let done = unsafe { put_back(&span) };
            LIVE.fetch_sub(span.entries, std::sync::atomic::Ordering::AcqRel);
            if let Err(error) = done {
                tracing::error!(
                    error = %error,
                    "cannot put a memory slot's fresh image back after a restored session; \
                     aborting rather than hand the session's bytes to the next one"
                );
                std::process::abort();
            }
        }
    }
}

/// Maps the baseline over the span (its file's bytes where it has them), and fresh zero
/// pages past the baseline's end.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
unsafe fn put_back(span: &Span) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let Some((file, file_at)) = span.baseline.file() else {
        return Err(std::io::Error::other("the baseline is not in a file"));
    };
    let split = span.to.min(span.baseline.len()).max(span.from);
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    if split > span.from {
        // SAFETY: the range was overlaid by `map`, inside the memory (caller's guarantee).
        let at = unsafe {
            libc::mmap(
                (span.base + span.from) as *mut libc::c_void,
                split - span.from,
                rw,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                file.as_raw_fd(),
                (file_at + span.from) as libc::off_t,
            )
        };
        if at == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
    }
    if span.to > split {
        // SAFETY: as above.
        let at = unsafe {
            libc::mmap(
                (span.base + split) as *mut libc::c_void,
                span.to - split,
                rw,
                libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if at == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(not(target_os = "linux"))]
unsafe fn put_back(_span: &Span) -> std::io::Result<()> {
    Ok(())
}

impl Backend {
    /// Makes `count` instances of the warm image at once (each in its own pool slot), grows
    /// each of their memories by `grow` wasm pages and checks every byte against the fresh
    /// image (its bytes, zeros past them): what every slot must hold, also after a session
    /// restored copy-on-write ended in it. Returns the first difference. For tests and
    /// diagnostics; needs `count` free slots.
    pub async fn verify_fresh_instances(&self, count: usize, grow: u32) -> Result<(), String> {
        let (key, pre) = self.snapshot_image().map_err(|e| e.to_string())?;
        let base = self.baseline_of(&key, &pre).await.map_err(|e| e.to_string())?;
        let mut instances = Vec::with_capacity(count);
        for _ in 0..count {
            let tags = Tags { backend: self.name.clone(), ..Tags::default() };
            instances.push(self.new_instance(&pre, tags).await.map_err(|e| e.to_string())?);
        }
        for (n, instance) in instances.iter_mut().enumerate() {
            let (store, handle, _) = instance.parts();
            let fns = base.exports.functions(store, handle).map_err(|e| e.to_string())?;
            arm(store);
            for (m, (memory, image)) in fns.memories.iter().zip(&base.images).enumerate() {
                let (old,) = memory.grow.call_async(&mut *store, (grow,)).await.map_err(|e| e.to_string())?;
                if old < 0 {
                    return Err(format!("instance {n}, memory {m}: cannot grow by {grow} pages"));
                }
                let mut differs = None;
                read_all(store, memory, |offset, data| {
                    for (i, chunk) in data.chunks(CHUNK).enumerate() {
                        let at = offset as usize + i * CHUNK;
                        let same = match image.get(at..at + chunk.len()) {
                            Some(fresh) => fresh == chunk,
                            None => chunk.iter().all(|b| *b == 0),
                        };
                        if !same && differs.is_none() {
                            differs = Some(at);
                        }
                    }
                })
                .await
                .map_err(|e| e.to_string())?;
                if let Some(at) = differs {
                    return Err(format!("instance {n}, memory {m}: the chunk at byte {at} is not the fresh image's"));
                }
            }
        }
        Ok(())
    }
}
