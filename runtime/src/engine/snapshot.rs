//! The state of a live instance, captured between calls and written into a fresh instance of
//! the same warm image: every linear memory (only the 4 KiB pages that differ from the
//! image) and every mutable global of every core instance inside the component, through the
//! accessor functions [`crate::engine::access`] adds.
//!
//! Host resources (WASI streams, open files, sockets) are host state the guest holds by
//! handle; a fresh instance has none at the same indices. A session holding any between
//! calls is not captured ([`CaptureError::HoldsHandles`]). Tables are taken as the image has
//! them: the accessor cannot read them, and none of the guest toolchains here changes a
//! table after warmup.

use crate::engine::access::ACCESS_INSTANCE;
use crate::engine::backend::{Backend, WarmState};
use crate::engine::bindings::BackendPre;
use crate::engine::host::{HostState, Tags};
use crate::engine::instance::Instance;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::Store;
use wasmtime::component::{Instance as Component, TypedFunc};

/// The unit in which memories are compared and stored.
pub const CHUNK: usize = 4096;

/// Bytes read per accessor call.
const READ_BYTES: u32 = 1 << 20;

/// The wasm page.
const PAGE: u64 = 65536;

/// How long the accessor calls of one capture or restore may take.
const DEADLINE: Duration = Duration::from_secs(30);

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
    /// `(first chunk, bytes)`: consecutive changed chunks, their bytes back to back.
    pub runs: Vec<(u32, Vec<u8>)>,
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
        self.memories.iter().flat_map(|m| &m.runs).map(|(_, b)| b.len()).sum()
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

fn access(e: impl std::fmt::Display) -> CaptureError {
    CaptureError::Access(e.to_string())
}

/// A memory's accessor functions.
struct MemoryFns {
    size: TypedFunc<(), (u32,)>,
    grow: TypedFunc<(u32,), (i32,)>,
    read: TypedFunc<(u32, u32), (Vec<u8>,)>,
    peek: TypedFunc<(), (i64,)>,
    dest: TypedFunc<(u32,), ()>,
    /// Untyped: a typed function over a borrowed slice cannot be stored.
    write: wasmtime::component::Func,
}

/// A global's accessor functions, by type.
enum GlobalFns {
    I32(TypedFunc<(), (i32,)>, TypedFunc<(i32,), ()>),
    I64(TypedFunc<(), (i64,)>, TypedFunc<(i64,), ()>),
    F32(TypedFunc<(), (f32,)>, TypedFunc<(f32,), ()>),
    F64(TypedFunc<(), (f64,)>, TypedFunc<(f64,), ()>),
}

/// The accessor functions of one instance.
pub struct Access {
    memories: Vec<MemoryFns>,
    globals: Vec<GlobalFns>,
    /// Calls `get-directories` for the guest, when it imports it.
    replay: Option<TypedFunc<(), ()>>,
}

impl Access {
    /// Finds the accessor functions of `instance`.
    pub fn of(store: &mut Store<HostState>, instance: &Component) -> Result<Access, CaptureError> {
        let Some(root) = instance.get_export_index(&mut *store, None, ACCESS_INSTANCE) else {
            return Err(CaptureError::NotInstrumented(format!("it exports no `{ACCESS_INSTANCE}`")));
        };
        let mut find = |name: &str| instance.get_export_index(&mut *store, Some(&root), name);
        let mut memory_names = Vec::new();
        while let Some(size) = find(&format!("m{}-size", memory_names.len())) {
            let m = memory_names.len();
            let names = ["grow", "read", "peek", "dest", "write"].map(|f| find(&format!("m{m}-{f}")));
            memory_names.push((size, names));
        }
        let mut global_names = Vec::new();
        'globals: loop {
            let g = global_names.len();
            for ty in ["i32", "i64", "f32", "f64"] {
                if let (Some(get), Some(set)) = (find(&format!("g{g}-{ty}-get")), find(&format!("g{g}-{ty}-set"))) {
                    global_names.push((ty, get, set));
                    continue 'globals;
                }
            }
            break;
        }
        let bad = |e: wasmtime::Error| CaptureError::NotInstrumented(format!("{e}"));
        let mut memories = Vec::new();
        for (size, [grow, read, peek, dest, write]) in memory_names {
            let missing = || CaptureError::NotInstrumented("an accessor function is missing".into());
            memories.push(MemoryFns {
                size: instance.get_typed_func(&mut *store, size).map_err(bad)?,
                grow: instance.get_typed_func(&mut *store, grow.ok_or_else(missing)?).map_err(bad)?,
                read: instance.get_typed_func(&mut *store, read.ok_or_else(missing)?).map_err(bad)?,
                peek: instance.get_typed_func(&mut *store, peek.ok_or_else(missing)?).map_err(bad)?,
                dest: instance.get_typed_func(&mut *store, dest.ok_or_else(missing)?).map_err(bad)?,
                write: instance.get_func(&mut *store, write.ok_or_else(missing)?).ok_or_else(missing)?,
            });
        }
        let mut globals = Vec::new();
        for (ty, get, set) in global_names {
            let mut typed = |g, s| -> Result<GlobalFns, wasmtime::Error> {
                Ok(match ty {
                    "i32" => GlobalFns::I32(
                        instance.get_typed_func(&mut *store, g)?,
                        instance.get_typed_func(&mut *store, s)?,
                    ),
                    "i64" => GlobalFns::I64(
                        instance.get_typed_func(&mut *store, g)?,
                        instance.get_typed_func(&mut *store, s)?,
                    ),
                    "f32" => GlobalFns::F32(
                        instance.get_typed_func(&mut *store, g)?,
                        instance.get_typed_func(&mut *store, s)?,
                    ),
                    _ => GlobalFns::F64(
                        instance.get_typed_func(&mut *store, g)?,
                        instance.get_typed_func(&mut *store, s)?,
                    ),
                })
            };
            globals.push(typed(&get, &set).map_err(bad)?);
        }
        let replay = match instance.get_export_index(&mut *store, Some(&root), "replay-preopens") {
            Some(index) => Some(instance.get_typed_func(&mut *store, index).map_err(bad)?),
            None => None,
        };
        Ok(Access { memories, globals, replay })
    }
}

/// Hashes of a warm image's memories, per chunk: what a capture compares against.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    /// Per memory, the hash of each chunk.
    pub memories: Vec<Vec<u128>>,
}

fn arm(store: &mut Store<HostState>) {
    store.data_mut().deadline = Instant::now() + DEADLINE;
    store.set_epoch_deadline(1);
    if store.get_fuel().is_ok() {
        let _ = store.set_fuel(u64::MAX);
    }
}

/// Reads all of memory `fns`, handing `visit` each piece with its offset.
async fn read_all(
    store: &mut Store<HostState>,
    fns: &MemoryFns,
    mut visit: impl FnMut(u64, &[u8]),
) -> Result<u64, CaptureError> {
    let (pages,) = fns.size.call_async(&mut *store, ()).await.map_err(access)?;
    let bytes = u64::from(pages) * PAGE;
    let mut offset = 0u64;
    while offset < bytes {
        let len = (bytes - offset).min(u64::from(READ_BYTES)) as u32;
        let (mut data,) = fns.read.call_async(&mut *store, (offset as u32, len)).await.map_err(access)?;
        if offset == 0 {
            // `read` borrowed the first 8 bytes for its return area.
            let (first,) = fns.peek.call_async(&mut *store, ()).await.map_err(access)?;
            let n = data.len().min(8);
            data[..n].copy_from_slice(&first.to_le_bytes()[..n]);
        }
        visit(offset, &data);
        offset += u64::from(len);
    }
    Ok(bytes)
}

/// The baseline of a fresh instance of a warm image (no guest code run since instantiation).
pub async fn baseline(store: &mut Store<HostState>, fns: &Access) -> Result<Baseline, CaptureError> {
    arm(store);
    let mut out = Baseline::default();
    for memory in &fns.memories {
        let mut hashes = Vec::new();
        read_all(store, memory, |_, data| {
            hashes.extend(data.chunks(CHUNK).map(xxhash_rust::xxh3::xxh3_128));
        })
        .await?;
        out.memories.push(hashes);
    }
    Ok(out)
}

/// Captures the state of `store`'s instance as what differs from `base`.
pub async fn capture(store: &mut Store<HostState>, fns: &Access, base: &Baseline) -> Result<StateImage, CaptureError> {
    let preopens = held_preopens(store)?;
    if fns.memories.len() != base.memories.len() {
        return Err(CaptureError::Mismatch("the warm image has another number of memories".into()));
    }
    arm(store);
    let zero = xxhash_rust::xxh3::xxh3_128(&[0u8; CHUNK]);
    let mut image = StateImage { preopens, ..StateImage::default() };
    for (memory, hashes) in fns.memories.iter().zip(&base.memories) {
        let mut runs: Vec<(u32, Vec<u8>)> = Vec::new();
        let bytes = read_all(store, memory, |offset, data| {
            let first = (offset / CHUNK as u64) as u32;
            for (i, chunk) in data.chunks(CHUNK).enumerate() {
                let index = first + i as u32;
                let reference = hashes.get(index as usize).copied().unwrap_or(zero);
                if xxhash_rust::xxh3::xxh3_128(chunk) == reference {
                    continue;
                }
                match runs.last_mut() {
                    Some((start, run)) if *start as usize + run.len() / CHUNK == index as usize => {
                        run.extend_from_slice(chunk)
                    }
                    _ => runs.push((index, chunk.to_vec())),
                }
            }
        })
        .await?;
        image.memories.push(MemoryImage { bytes, runs });
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

/// Writes `image` into `store`'s instance, a fresh instance of the warm image it was captured
/// from.
pub async fn restore(store: &mut Store<HostState>, fns: &Access, image: &StateImage) -> Result<(), CaptureError> {
    if fns.memories.len() != image.memories.len() || fns.globals.len() != image.globals.len() {
        return Err(CaptureError::Mismatch(format!(
            "{} memories and {} globals in the snapshot, {} and {} in the component",
            image.memories.len(),
            image.globals.len(),
            fns.memories.len(),
            fns.globals.len()
        )));
    }
    arm(store);
    if image.preopens > 0 {
        replay_preopens(store, fns, image.preopens).await?;
    }
    for (memory, state) in fns.memories.iter().zip(&image.memories) {
        let (pages,) = memory.size.call_async(&mut *store, ()).await.map_err(access)?;
        let wanted = state.bytes.div_ceil(PAGE);
        if wanted < u64::from(pages) {
            return Err(CaptureError::Mismatch(format!(
                "a memory of {wanted} pages is smaller than the image's {pages}"
            )));
        }
        if wanted > u64::from(pages) {
            let (old,) =
                memory.grow.call_async(&mut *store, ((wanted - u64::from(pages)) as u32,)).await.map_err(access)?;
            if old < 0 {
                return Err(CaptureError::Access(format!(
                    "the memory cannot grow to {} MiB (the session's memory limit)",
                    state.bytes >> 20
                )));
            }
        }
        for (start, bytes) in &state.runs {
            memory.dest.call_async(&mut *store, (*start * CHUNK as u32,)).await.map_err(access)?;
            write(store, &memory.write, bytes).await?;
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

/// How many preopened directories the guest holds, when they are all it holds and it took
/// them first (host table indices 0..n); refuses anything else it holds.
fn held_preopens(store: &mut Store<HostState>) -> Result<u32, CaptureError> {
    if store.data().holds_no_resources() {
        return Ok(0);
    }
    let held = store.data_mut().held_resources();
    let granted = store.data().preopens;
    let only_preopens = held.len() == granted
        && held.iter().enumerate().all(|(i, (index, kind))| *index as usize == i && *kind == "directory");
    if only_preopens {
        return Ok(granted as u32);
    }
    let names: Vec<String> = held.iter().map(|(i, kind)| format!("{kind} #{i}")).collect();
    Err(CaptureError::HoldsHandles(names.join(", ")))
}

/// Hands a fresh instance its preopened directories as the snapshot's guest held them: the
/// first handles it takes. `get-directories` writes its answer at address 0 of the first
/// memory, whose first page is put back afterwards.
async fn replay_preopens(store: &mut Store<HostState>, fns: &Access, wanted: u32) -> Result<(), CaptureError> {
    let (Some(replay), Some(memory)) = (&fns.replay, fns.memories.first()) else {
        return Err(CaptureError::Mismatch(
            "the session held directories; this component cannot be handed them".into(),
        ));
    };
    if !store.data().holds_no_resources() {
        return Err(CaptureError::Mismatch("the new instance already holds resources".into()));
    }
    let (mut page,) = memory.read.call_async(&mut *store, (0, PAGE as u32)).await.map_err(access)?;
    let (first,) = memory.peek.call_async(&mut *store, ()).await.map_err(access)?;
    page[..8].copy_from_slice(&first.to_le_bytes());
    replay.call_async(&mut *store, ()).await.map_err(access)?;
    memory.dest.call_async(&mut *store, (0,)).await.map_err(access)?;
    write(store, &memory.write, &page).await?;
    let now = held_preopens(store)?;
    if now != wanted {
        return Err(CaptureError::Mismatch(format!("the session held {wanted} directories; this server grants {now}")));
    }
    Ok(())
}

/// Calls a `write` accessor with borrowed bytes.
async fn write(
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
    fn snapshot_image(&self) -> Result<(String, BackendPre<HostState>), CaptureError> {
        match &*self.warm_state() {
            WarmState::Snapshot { pre, key, .. } => Ok((key.clone(), pre.clone())),
            _ => Err(CaptureError::NotInstrumented(format!(
                "backend '{}' has no warm image (sessions restore from one)",
                self.name
            ))),
        }
    }

    /// The page hashes of the warm image `key`, made once.
    async fn baseline_of(&self, key: &str, pre: &BackendPre<HostState>) -> Result<Arc<Baseline>, CaptureError> {
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
        let (store, handle) = instance.parts();
        let fns = Access::of(store, handle)?;
        let base = Arc::new(baseline(store, &fns).await?);
        *slot = Some((key.to_string(), base.clone()));
        Ok(base)
    }

    /// Captures a live instance of this backend, between calls.
    pub async fn capture(&self, instance: &mut Instance) -> Result<Captured, CaptureError> {
        if let Some(fault) = instance.dead() {
            return Err(CaptureError::Access(format!("the instance has ended: {fault}")));
        }
        let (key, pre) = self.snapshot_image()?;
        let base = self.baseline_of(&key, &pre).await?;
        let (store, handle) = instance.parts();
        let fns = Access::of(store, handle)?;
        let image = capture(store, &fns, &base).await?;
        Ok(Captured { image, key })
    }

    /// A new instance of this backend's warm image with `captured` written into it.
    pub async fn restore(&self, captured: &Captured, tags: Tags) -> Result<Instance, CaptureError> {
        let (key, pre) = self.snapshot_image()?;
        if key != captured.key {
            return Err(CaptureError::Mismatch(
                "it was taken from another version of the component, its configuration or the engine's settings".into(),
            ));
        }
        let mut instance = self.new_instance(&pre, tags).await.map_err(|f| CaptureError::Access(f.to_string()))?;
        let (store, handle) = instance.parts();
        let fns = Access::of(store, handle)?;
        restore(store, &fns, &captured.image).await?;
        Ok(instance)
    }
}
