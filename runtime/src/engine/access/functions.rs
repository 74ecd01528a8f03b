//! The accessor functions of a live instance, found by name in its `cella:snapshot/access`
//! export: what [`crate::engine::snapshot`] reads and writes an instance's state through.

use super::ACCESS_INSTANCE;
use crate::engine::host::HostState;
use crate::engine::snapshot::CaptureError;
use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, Instance as Component, TypedFunc, WasmList};

/// A memory's accessor functions.
pub(crate) struct MemoryFns {
    pub(crate) size: TypedFunc<(), (u32,)>,
    pub(crate) grow: TypedFunc<(u32,), (i32,)>,
    /// Answers `(offset, len)` as a list over the memory itself: read in place, no copy.
    pub(crate) read: TypedFunc<(u32, u32), (WasmList<u8>,)>,
    pub(crate) dest: TypedFunc<(u32,), ()>,
    /// Untyped: a typed function over a borrowed slice cannot be stored.
    pub(crate) write: wasmtime::component::Func,
}

/// A global's accessor functions, by type.
pub(crate) enum GlobalFns {
    I32(TypedFunc<(), (i32,)>, TypedFunc<(i32,), ()>),
    I64(TypedFunc<(), (i64,)>, TypedFunc<(i64,), ()>),
    F32(TypedFunc<(), (f32,)>, TypedFunc<(f32,), ()>),
    F64(TypedFunc<(), (f64,)>, TypedFunc<(f64,), ()>),
}

/// The accessor functions of one instance.
pub struct Access {
    pub(crate) memories: Vec<MemoryFns>,
    pub(crate) globals: Vec<GlobalFns>,
    /// Calls `get-directories` for the guest, when it imports it.
    pub(crate) replay: Option<TypedFunc<(), ()>>,
    /// Calls `get-stdin`, `get-stdout`, `get-stderr`, then `get-directories`.
    pub(crate) replay_stdio: Option<TypedFunc<(), ()>>,
}

/// Where an instrumented component's accessor functions are among its exports: found by
/// name once per warm image ([`crate::engine::snapshot::Baseline`]), then looked up by index
/// in each of its instances (finding them by name took a third of a millisecond per capture
/// or restore of a Python session, whose 14 core modules have a few hundred globals).
#[derive(Debug, Clone, Default)]
pub struct Exports {
    /// Per memory: `size`, `grow`, `read`, `dest`, `write`.
    memories: Vec<[ComponentExportIndex; 5]>,
    /// Per global: its type, `get` and `set`.
    globals: Vec<(&'static str, ComponentExportIndex, ComponentExportIndex)>,
    replay: Option<ComponentExportIndex>,
    replay_stdio: Option<ComponentExportIndex>,
}

impl Exports {
    /// Finds the accessor functions among `instance`'s exports.
    pub fn find(store: &mut Store<HostState>, instance: &Component) -> Result<Exports, CaptureError> {
        let Some(root) = instance.get_export_index(&mut *store, None, ACCESS_INSTANCE) else {
            return Err(CaptureError::NotInstrumented(format!(
                "it exports no `{ACCESS_INSTANCE}`: its warm image could not take the accessors (the server's log says why \
                 when the image was built)"
            )));
        };
        let mut find = |name: &str| instance.get_export_index(&mut *store, Some(&root), name);
        let missing = || CaptureError::NotInstrumented("an accessor function is missing".into());
        let mut memories = Vec::new();
        while let Some(size) = find(&format!("m{}-size", memories.len())) {
            let m = memories.len();
            let [grow, read, dest, write] = ["grow", "read", "dest", "write"].map(|f| find(&format!("m{m}-{f}")));
            memories.push([
                size,
                grow.ok_or_else(missing)?,
                read.ok_or_else(missing)?,
                dest.ok_or_else(missing)?,
                write.ok_or_else(missing)?,
            ]);
        }
        let mut globals = Vec::new();
        'globals: loop {
            let g = globals.len();
            for ty in ["i32", "i64", "f32", "f64"] {
                if let (Some(get), Some(set)) = (find(&format!("g{g}-{ty}-get")), find(&format!("g{g}-{ty}-set"))) {
                    globals.push((ty, get, set));
                    continue 'globals;
                }
            }
            break;
        }
        let (replay, replay_stdio) = (find("replay-preopens"), find("replay-stdio-preopens"));
        Ok(Exports { memories, globals, replay, replay_stdio })
    }

    /// Only the first memory's functions and `replay-preopens`: what handing a new instance
    /// its directories needs.
    pub fn first_memory(store: &mut Store<HostState>, instance: &Component) -> Result<Exports, CaptureError> {
        let Some(root) = instance.get_export_index(&mut *store, None, ACCESS_INSTANCE) else {
            return Err(CaptureError::NotInstrumented(format!("it exports no `{ACCESS_INSTANCE}`")));
        };
        let mut find = |name: &str| instance.get_export_index(&mut *store, Some(&root), name);
        let missing = || CaptureError::NotInstrumented("an accessor function is missing".into());
        let [size, grow, read, dest, write] =
            ["size", "grow", "read", "dest", "write"].map(|f| find(&format!("m0-{f}")));
        let memory = [
            size.ok_or_else(missing)?,
            grow.ok_or_else(missing)?,
            read.ok_or_else(missing)?,
            dest.ok_or_else(missing)?,
            write.ok_or_else(missing)?,
        ];
        let (replay, replay_stdio) = (find("replay-preopens"), find("replay-stdio-preopens"));
        Ok(Exports { memories: vec![memory], globals: Vec::new(), replay, replay_stdio })
    }

    /// The accessor functions of `instance`, an instance of the component they were found in.
    pub fn functions(&self, store: &mut Store<HostState>, instance: &Component) -> Result<Access, CaptureError> {
        let bad = |e: wasmtime::Error| CaptureError::NotInstrumented(format!("{e}"));
        let missing = || CaptureError::NotInstrumented("an accessor function is missing".into());
        let mut memories = Vec::with_capacity(self.memories.len());
        for [size, grow, read, dest, write] in &self.memories {
            memories.push(MemoryFns {
                size: instance.get_typed_func(&mut *store, size).map_err(bad)?,
                grow: instance.get_typed_func(&mut *store, grow).map_err(bad)?,
                read: instance.get_typed_func(&mut *store, read).map_err(bad)?,
                dest: instance.get_typed_func(&mut *store, dest).map_err(bad)?,
                write: instance.get_func(&mut *store, write).ok_or_else(missing)?,
            });
        }
        let mut globals = Vec::with_capacity(self.globals.len());
        for (ty, g, s) in &self.globals {
            let typed = match *ty {
                "i32" => GlobalFns::I32(
                    instance.get_typed_func(&mut *store, g).map_err(bad)?,
                    instance.get_typed_func(&mut *store, s).map_err(bad)?,
                ),
                "i64" => GlobalFns::I64(
                    instance.get_typed_func(&mut *store, g).map_err(bad)?,
                    instance.get_typed_func(&mut *store, s).map_err(bad)?,
                ),
                "f32" => GlobalFns::F32(
                    instance.get_typed_func(&mut *store, g).map_err(bad)?,
                    instance.get_typed_func(&mut *store, s).map_err(bad)?,
                ),
                _ => GlobalFns::F64(
                    instance.get_typed_func(&mut *store, g).map_err(bad)?,
                    instance.get_typed_func(&mut *store, s).map_err(bad)?,
                ),
            };
            globals.push(typed);
        }
        let mut typed = |index: &Option<ComponentExportIndex>| match index {
            Some(index) => instance.get_typed_func(&mut *store, index).map(Some).map_err(bad),
            None => Ok(None),
        };
        let (replay, replay_stdio) = (typed(&self.replay)?, typed(&self.replay_stdio)?);
        Ok(Access { memories, globals, replay, replay_stdio })
    }
}
