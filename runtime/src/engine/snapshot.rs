//! The state of a live instance, captured between calls and written into a fresh instance of
//! the same warm image: every linear memory (only the 4 KiB pages that differ from the
//! image) and every mutable global of every core instance inside the component, through the
//! accessor functions [`crate::engine::access`] adds. Only pages the kernel's page map says
//! were written are compared ([`crate::engine::pagemap`]). Captured pages live on the heap
//! (to be stored), in a sealed memfd (a fork of several copies) or in a buffer of their own
//! (a fork of one) ([`Keep`]); a restore maps (or moves) the large runs of them
//! ([`crate::engine::overlay`]) and copies the rest.
//!
//! Host resources (WASI streams, open files, sockets) are host state the guest holds by
//! handle; a fresh instance has none at the same indices. A session holding any between
//! calls is not captured ([`CaptureError::HoldsHandles`]). Tables are those the image's
//! instantiation makes: instrumentation refuses a module whose code can change a table
//! ([`crate::engine::access::module`]), so a fresh instance's tables are the captured one's.

use crate::engine::access::functions::{Access, Exports, GlobalFns, MemoryFns};
use crate::engine::backend::{Backend, WarmState};
use crate::engine::bindings::BackendPre;
use crate::engine::host::{HostState, Tags};
use crate::engine::instance::Instance;
use crate::engine::overlay::{self, Overlays};
use crate::engine::pagemap;
use crate::engine::pages::{BASELINE_FILE, Pages, SNAPSHOT_FILE};
use crate::engine::preopens::{held_preopens, replay_preopens};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::component::WasmList;

/// The unit in which memories are compared and stored.
pub const CHUNK: usize = 4096;

/// Bytes borrowed per accessor call (a list's length is a u32).
const READ_BYTES: u32 = 1 << 30;

/// Runs at least this long are prefaulted before they are written (one `madvise` instead of
/// a page fault per page).
const PREFAULT_BYTES: usize = 64 << 10;

/// The wasm page.
pub(crate) const PAGE: u64 = 65536;

/// How long the accessor calls of one capture or restore may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// Where a capture keeps the pages it copies out of the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// On the heap, to be stored: a snapshot, a pause, a checkpoint.
    Store,
    /// In a sealed memfd that each restore maps copy-on-write: a fork of several copies,
    /// which share the pages until they write them.
    Share,
    /// In a buffer of their own that one restore moves into its instance: a fork of one
    /// copy, which then needs neither a second copy of the pages nor a memfd to fill.
    Move,
}

/// A captured instance state: what differs from the warm image it started from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct StateImage {
    /// The guest held its preopened directories (this many, first of all its handles);
    /// a restore hands them to the new instance before its memory is written.
    pub preopens: u32,
    /// Every memory, in the accessor's order.
    pub memories: Vec<MemoryImage>,
    /// Every mutable global's value, in the accessor's order.
    pub globals: Vec<GlobalValue>,
}

/// A memory's size and the runs of pages that differ from the image.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct MemoryImage {
    /// The memory's size in bytes.
    pub bytes: u64,
    /// `(first chunk, chunks)`: runs of consecutive changed chunks, in order.
    pub runs: Vec<(u32, u32)>,
    /// The changed chunks' bytes, back to back in the order of `runs`.
    pub data: Pages,
}

/// A mutable global's value.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub enum GlobalValue {
    /// i32
    I32(i32),
    /// i64
    I64(i64),
    /// f32 bits
    F32(f32),
    /// f64 bits
    F64(f64),
}

impl StateImage {
    /// Bytes of memory the image carries.
    pub fn changed_bytes(&self) -> usize {
        self.memories.iter().map(|m| m.data.len()).sum()
    }
}

/// Why an instance's state cannot be captured or written.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CaptureError {
    /// The guest holds host resources between calls.
    #[error("the session holds open host resources between calls ({0}); close them and retry")]
    HoldsHandles(String),
    /// The instance has no accessor functions (its component was not instrumented).
    #[error("this backend's instances cannot be snapshotted: {0}")]
    NotInstrumented(String),
    /// The image does not fit this component.
    #[error("the snapshot does not match this component: {0}")]
    Mismatch(String),
    /// An accessor call failed.
    #[error("cannot read or write the instance's state: {0}")]
    Access(String),
}

pub(crate) fn access(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Access(e.to_string())
}

/// A warm image's memories as a capture compares against them: their bytes (which a
/// copy-on-write restore also puts back when its instance ends) and a hash per chunk (which
/// tells the zero chunks, never read from the file).
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    /// Per memory, the hash of each chunk.
    pub memories: Vec<Vec<u128>>,
    /// Per memory, its bytes (a sparse file on Linux: zero chunks are not written).
    pub images: Vec<Pages>,
    /// Where the image's accessor functions are among its exports.
    pub exports: Exports,
}

pub(crate) fn arm(store: &mut Store<HostState>) {
    store.data_mut().deadline = Instant::now() + DEADLINE;
    store.set_epoch_deadline(1);
    if store.get_fuel().is_ok() {
        let _ = store.set_fuel(u64::MAX);
    }
}

/// The size of memory `fns` in bytes.
async fn size_of(store: &mut Store<HostState>, fns: &MemoryFns) -> Result<u64, CaptureError> {
    let (pages,) = fns.size.call_async(&mut *store, ()).await.map_err(access)?;
    Ok(u64::from(pages) * PAGE)
}

/// `len` bytes of memory `fns` from `offset`, borrowed in place until the store is next used.
pub(crate) async fn borrow(
    store: &mut Store<HostState>,
    fns: &MemoryFns,
    offset: u64,
    len: u64,
) -> Result<WasmList<u8>, CaptureError> {
    // `read` lends the first 8 bytes of memory for its return area; its post-return, which
    // the call runs before it answers, puts them back, so the list reads true bytes.
    let (list,) = fns.read.call_async(&mut *store, (offset as u32, len as u32)).await.map_err(access)?;
    Ok(list)
}

/// Reads all of memory `fns` in place, handing `visit` each piece with its offset.
pub(crate) async fn read_all(
    store: &mut Store<HostState>,
    fns: &MemoryFns,
    mut visit: impl FnMut(u64, &[u8]),
) -> Result<u64, CaptureError> {
    let bytes = size_of(store, fns).await?;
    let mut offset = 0u64;
    while offset < bytes {
        let len = (bytes - offset).min(u64::from(READ_BYTES));
        let list = borrow(store, fns, offset, len).await?;
        visit(offset, list.as_le_slice(&*store));
        offset += len;
    }
    Ok(bytes)
}

/// The baseline of a fresh instance of a warm image (no guest code run since instantiation).
pub async fn baseline(store: &mut Store<HostState>, fns: &Access) -> Result<Baseline, CaptureError> {
    arm(store);
    let mut out = Baseline::default();
    for memory in &fns.memories {
        let mut hashes = Vec::new();
        let mut image = Pages::writer(size_of(store, memory).await? as usize, Some(BASELINE_FILE));
        let mut failed = None;
        read_all(store, memory, |offset, data| {
            for (i, chunk) in data.chunks(CHUNK).enumerate() {
                hashes.push(xxhash_rust::xxh3::xxh3_128(chunk));
                if chunk.iter().any(|b| *b != 0)
                    && let Err(e) = image.write_at(offset as usize + i * CHUNK, chunk)
                {
                    failed = Some(e);
                }
            }
        })
        .await?;
        if let Some(e) = failed {
            return Err(access(e));
        }
        out.memories.push(hashes);
        out.images.push(image.finish().map_err(access)?);
    }
    Ok(out)
}

/// A chunk of zeros, to compare against.
static ZEROS: [u8; CHUNK] = [0; CHUNK];

/// The chunks of `data` (which starts at chunk `first`) that differ from the fresh image
/// (`hashes` and `image`), as runs `(first chunk, chunks)` appended to `runs`. Chunks
/// `written` says were not written are not read at all. Bytes are compared, not hashed: a
/// changed chunk usually differs in its first bytes, so most comparisons stop at once
/// (hashing every chunk took a fifth of a fork).
/// The hashes say which of the image's chunks are zeros, which are compared with [`ZEROS`]
/// rather than read from the image's file.
fn changed_runs(
    first: u32,
    data: &[u8],
    written: Option<&[bool]>,
    hashes: &[u128],
    image: &[u8],
    runs: &mut Vec<(u32, u32)>,
) {
    let zero = xxhash_rust::xxh3::xxh3_128(&ZEROS);
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        if written.is_some_and(|w| w.get(i) == Some(&false)) {
            continue;
        }
        let index = first + i as u32;
        let at = index as usize * CHUNK;
        let same = match hashes.get(index as usize) {
            Some(hash) if *hash != zero => image.get(at..at + chunk.len()) == Some(chunk),
            _ => chunk == &ZEROS[..chunk.len()],
        };
        if same {
            continue;
        }
        match runs.last_mut() {
            Some((start, n)) if *start + *n == index => *n += 1,
            _ => runs.push((index, 1)),
        }
    }
}

/// Captures the state of `store`'s instance as what differs from `base`, its pages kept as
/// `keep` says.
pub async fn capture(
    store: &mut Store<HostState>,
    fns: &Access,
    base: &Baseline,
    keep: Keep,
    overlays: &Overlays,
) -> Result<StateImage, CaptureError> {
    let preopens = held_preopens(store)?;
    if fns.memories.len() != base.memories.len() {
        return Err(CaptureError::Mismatch("the warm image has another number of memories".into()));
    }
    arm(store);
    let mut image = StateImage { preopens, ..StateImage::default() };
    if base.images.len() != base.memories.len() {
        return Err(CaptureError::Mismatch("the warm image's baseline has no bytes".into()));
    }
    for ((memory, hashes), fresh) in fns.memories.iter().zip(&base.memories).zip(&base.images) {
        // Which pages may have changed, from the kernel's page map (all of them without it);
        // a restore's mapped spans read as another file's bytes, so they are compared too.
        let mut maps = Vec::new();
        let mut most = 0;
        read_all(store, memory, |offset, piece| {
            let mut written = pagemap::written(piece);
            if let (Some(written), Some((from, to))) =
                (written.as_mut(), overlays.span(piece.as_ptr() as usize - offset as usize))
            {
                let (from, to) = (from.saturating_sub(offset as usize), to.saturating_sub(offset as usize));
                for page in written.iter_mut().take(to.div_ceil(CHUNK)).skip(from / CHUNK) {
                    *page = true;
                }
            }
            most += written.as_ref().map_or(piece.len(), |w| w.iter().filter(|w| **w).count() * CHUNK);
            maps.push(written);
        })
        .await?;
        // Then one pass: each run of changed pages is written out as soon as it is found,
        // while its pages are at hand, into a buffer sized for every page that may have
        // changed (cut to what was written after).
        let mut data = match keep {
            Keep::Store => Pages::writer(most, None),
            Keep::Share => Pages::writer(most, Some(SNAPSHOT_FILE)),
            Keep::Move => Pages::movable(most),
        };
        let (mut runs, mut at, mut failed) = (Vec::<(u32, u32)>::new(), 0, None);
        let mut maps = maps.into_iter();
        let bytes = read_all(store, memory, |offset, piece| {
            let written = maps.next().flatten();
            let first = (offset / CHUNK as u64) as u32;
            let mut found = Vec::new();
            changed_runs(first, piece, written.as_deref(), hashes, fresh, &mut found);
            for (start, n) in found {
                let from = (start - first) as usize * CHUNK;
                let run = &piece[from..(from + n as usize * CHUNK).min(piece.len())];
                if let Err(e) = data.write_at(at, run) {
                    failed.get_or_insert(e);
                }
                at += run.len();
                match runs.last_mut() {
                    Some((s, m)) if *s + *m == start => *m += n,
                    _ => runs.push((start, n)),
                }
            }
        })
        .await?;
        if let Some(e) = failed {
            return Err(access(e));
        }
        data.shrink(at).map_err(access)?;
        image.memories.push(MemoryImage { bytes, runs, data: data.finish().map_err(access)? });
    }
    for global in &fns.globals {
        let value = match global {
            GlobalFns::I32(get, _) => GlobalValue::I32(get.call_async(&mut *store, ()).await.map_err(access)?.0),
            GlobalFns::I64(get, _) => GlobalValue::I64(get.call_async(&mut *store, ()).await.map_err(access)?.0),
            GlobalFns::F32(get, _) => GlobalValue::F32(get.call_async(&mut *store, ()).await.map_err(access)?.0),
            GlobalFns::F64(get, _) => GlobalValue::F64(get.call_async(&mut *store, ()).await.map_err(access)?.0),
        };
        image.globals.push(value);
    }
    Ok(image)
}

/// Asks the kernel to make the `len` bytes at host address `at` (inside a linear memory)
/// resident and writable in one call, where writing them would fault once per page.
/// Contents are unchanged; a kernel without `MADV_POPULATE_WRITE` (before Linux 5.14) just
/// takes the faults.
fn prefault(at: usize, len: usize) {
    #[cfg(target_os = "linux")]
    {
        let page = 4096usize;
        let aligned = at & !(page - 1);
        let span = (at + len).next_multiple_of(page) - aligned;
        // SAFETY: the range lies inside a guest's linear memory, mapped and owned by its
        // store for as long as it lives; MADV_POPULATE_WRITE faults pages in without changing
        // what they hold, so no byte the guest or this code can observe changes.
        #[allow(unsafe_code)]
        let _ = unsafe { libc::madvise(aligned as *mut libc::c_void, span, libc::MADV_POPULATE_WRITE) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (at, len);
}

/// The host address of memory `fns`'s first byte.
async fn base_of(store: &mut Store<HostState>, fns: &MemoryFns) -> Result<usize, CaptureError> {
    let list = borrow(store, fns, 0, CHUNK as u64).await?;
    Ok(list.as_le_slice(&*store).as_ptr() as usize)
}

/// Writes `image` into `store`'s instance, a fresh instance of the warm image it was captured
/// from. With `cow` (the instance's overlay record and the image's baseline), large runs are
/// mapped copy-on-write instead of copied.
pub async fn restore(
    store: &mut Store<HostState>,
    fns: &Access,
    image: &StateImage,
    mut cow: Option<(&mut Overlays, &Baseline)>,
) -> Result<(), CaptureError> {
    if fns.memories.len() != image.memories.len() || fns.globals.len() != image.globals.len() {
        return Err(CaptureError::Mismatch(format!(
            "{} memories and {} globals in the snapshot, {} and {} in the component",
            image.memories.len(),
            image.globals.len(),
            fns.memories.len(),
            fns.globals.len()
        )));
    }
    if image.memories.iter().any(|m| m.data.spent()) {
        return Err(CaptureError::Mismatch("its pages were already moved into another instance".into()));
    }
    arm(store);
    // An instance of a warm image whose warmup took the directories holds them already.
    if image.preopens > 0 && held_preopens(store).ok() != Some(image.preopens) {
        replay_preopens(store, fns, image.preopens).await?;
    }
    for (index, (memory, state)) in fns.memories.iter().zip(&image.memories).enumerate() {
        let pages = size_of(store, memory).await? / PAGE;
        let wanted = state.bytes.div_ceil(PAGE);
        if wanted < pages {
            return Err(CaptureError::Mismatch(format!(
                "a memory of {wanted} pages is smaller than the image's {pages}"
            )));
        }
        if wanted > pages {
            let (old,) = memory.grow.call_async(&mut *store, ((wanted - pages) as u32,)).await.map_err(access)?;
            if old < 0 {
                return Err(CaptureError::Access(format!(
                    "the memory cannot grow to {} MiB (the session's memory limit)",
                    state.bytes >> 20
                )));
            }
        }
        let total: usize = state.runs.iter().map(|&(_, n)| n as usize * CHUNK).sum();
        if total != state.data.len()
            || state.runs.iter().any(|&(s, n)| (u64::from(s) + u64::from(n)) * CHUNK as u64 > state.bytes)
        {
            return Err(CaptureError::Mismatch("a memory's runs do not match its bytes".into()));
        }
        let baseline = cow.as_ref().and_then(|(_, base)| base.images.get(index));
        let mapped = overlay::runs_to_map(state, baseline);
        let base = if state.runs.is_empty() { 0 } else { base_of(store, memory).await? };
        let mut at = 0;
        for (&(start, n), map) in state.runs.iter().zip(mapped) {
            let (offset, len) = (start as usize * CHUNK, n as usize * CHUNK);
            if let (true, Some((overlays, _)), Some(baseline)) = (map, cow.as_mut(), baseline) {
                // SAFETY: the run lies inside the memory (checked above, and the memory has
                // grown to the image's size); the store is borrowed exclusively and its
                // pooled memory never moves; offsets and lengths are whole chunks, and
                // `mappable` held for both buffers. A moved run is never read again: a run is
                // either mapped (moved) or copied, and a spent capture is refused above.
                #[allow(unsafe_code)]
                let mapped = unsafe { overlays.map(base, offset, len, &state.data, at, baseline) }.map_err(access)?;
                if mapped {
                    at += len;
                    continue;
                }
            }
            if len >= PREFAULT_BYTES {
                prefault(base + offset, len);
            }
            // Copied straight into the memory: through the accessors (`dest`, then `write`)
            // each run cost two guest calls (0.6 of the 2.6 ms a Python session's 372 short
            // runs took; the rest is the kernel's fault per page written).
            let bytes = &state.data[at..at + len];
            // SAFETY: `base + offset .. + len` lies inside the linear memory (the runs were
            // checked against its size above, and it has grown to the image's size), which
            // the exclusively borrowed store keeps mapped, writable and unmoved, and which no
            // guest code touches during the copy; `bytes` is the capture's, another buffer.
            #[allow(unsafe_code)]
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), std::ptr::with_exposed_provenance_mut(base + offset), len)
            };
            at += len;
        }
    }
    for (global, value) in fns.globals.iter().zip(&image.globals) {
        let result = match (global, *value) {
            (GlobalFns::I32(_, set), GlobalValue::I32(v)) => set.call_async(&mut *store, (v,)).await,
            (GlobalFns::I64(_, set), GlobalValue::I64(v)) => set.call_async(&mut *store, (v,)).await,
            (GlobalFns::F32(_, set), GlobalValue::F32(v)) => set.call_async(&mut *store, (v,)).await,
            (GlobalFns::F64(_, set), GlobalValue::F64(v)) => set.call_async(&mut *store, (v,)).await,
            _ => return Err(CaptureError::Mismatch("a global has another type".into())),
        };
        result.map_err(access)?;
    }
    Ok(())
}

/// Calls a `write` accessor with borrowed bytes.
pub(crate) async fn write(
    store: &mut Store<HostState>,
    func: &wasmtime::component::Func,
    bytes: &[u8],
) -> Result<(), CaptureError> {
    let typed = func.typed::<(&[u8],), ()>(&*store).map_err(access)?;
    typed.call_async(&mut *store, (bytes,)).await.map_err(access)
}

/// A captured state with the key of the warm image it applies to.
#[derive(Debug, Clone)]
pub struct Captured {
    /// The state.
    pub image: StateImage,
    /// The warm image's cache key (component, config, grants, engine settings).
    pub key: String,
}

impl Backend {
    /// The warm image's key and pre-linked component, when the backend has one.
    pub(crate) fn snapshot_image(&self) -> Result<(String, BackendPre<HostState>), CaptureError> {
        match &*self.warm_state() {
            WarmState::Snapshot { pre, key, .. } => Ok((key.clone(), pre.clone())),
            _ => Err(CaptureError::NotInstrumented(format!(
                "backend '{}' has no warm image (sessions restore from one)",
                self.name
            ))),
        }
    }

    /// The page hashes of the warm image `key`, made once.
    pub(crate) async fn baseline_of(
        &self,
        key: &str,
        pre: &BackendPre<HostState>,
    ) -> Result<Arc<Baseline>, CaptureError> {
        let mut slot = self.baseline.lock().await;
        if let Some((k, base)) = &*slot
            && k == key
        {
            return Ok(base.clone());
        }
        let mut instance = self
            .new_instance(pre, Tags { backend: self.name.clone(), ..Tags::default() })
            .await
            .map_err(|f| CaptureError::Access(f.to_string()))?;
        let (store, handle, _) = instance.parts();
        let exports = Exports::find(store, handle)?;
        let fns = exports.functions(store, handle)?;
        let base = Arc::new(Baseline { exports, ..baseline(store, &fns).await? });
        *slot = Some((key.to_string(), base.clone()));
        Ok(base)
    }

    /// Captures a live instance of this backend, between calls, its pages kept as `keep`
    /// says (stored, or written into new instances as they are: a fork).
    pub async fn capture(&self, instance: &mut Instance, keep: Keep) -> Result<Captured, CaptureError> {
        if let Some(fault) = instance.dead() {
            return Err(CaptureError::Access(format!("the instance has ended: {fault}")));
        }
        let (key, pre) = self.snapshot_image()?;
        let base = self.baseline_of(&key, &pre).await?;
        let (store, handle, overlays) = instance.parts();
        let fns = base.exports.functions(store, handle)?;
        let image = capture(store, &fns, &base, keep, overlays).await?;
        Ok(Captured { image, key })
    }

    /// Refuses `captured` when it was not taken from this backend's warm image: checked
    /// before an instance is made for it.
    pub fn fits(&self, captured: &Captured) -> Result<(), CaptureError> {
        let (key, _) = self.snapshot_image()?;
        if key != captured.key {
            return Err(mismatch());
        }
        Ok(())
    }

    /// A fresh instance of this backend's warm image, for a restore to write into later
    /// ([`Backend::restore_into`]): a fork of one copy makes it while the source is captured.
    pub async fn blank(&self, tags: Tags) -> Result<Blank, CaptureError> {
        let (key, pre) = self.snapshot_image()?;
        let instance = self.new_instance(&pre, tags).await.map_err(|f| CaptureError::Access(f.to_string()))?;
        Ok(Blank { instance, key })
    }

    /// Writes `captured` into `blank`, an instance of the warm image it was taken from.
    pub async fn restore_into(&self, blank: Blank, captured: &Captured) -> Result<Instance, CaptureError> {
        let (key, pre) = self.snapshot_image()?;
        if key != captured.key || blank.key != key {
            return Err(mismatch());
        }
        let base = self.baseline_of(&key, &pre).await?;
        let mut instance = blank.instance;
        let (store, handle, overlays) = instance.parts();
        let fns = base.exports.functions(store, handle)?;
        restore(store, &fns, &captured.image, Some((overlays, &base))).await?;
        Ok(instance)
    }
}

/// A fresh instance of a warm image ([`Backend::blank`]), with the image's key.
pub struct Blank {
    instance: Instance,
    key: String,
}

fn mismatch() -> CaptureError {
    CaptureError::Mismatch(
        "it was taken from another version of the component, its configuration or the engine's settings".into(),
    )
}
