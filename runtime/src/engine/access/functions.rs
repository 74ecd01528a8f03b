//! The accessor functions of a live instance, found by name in its `cella:snapshot/access`
//! export: what [`crate::engine::snapshot`] reads and writes an instance's state through.

use super::ACCESS_INSTANCE;
use crate::engine::host::HostState;
use crate::engine::snapshot::CaptureError;
use wasmtime::Store;
use wasmtime::component::{Instance as Component, TypedFunc, WasmList};

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
}

impl Access {
    /// Finds the accessor functions of `instance`.
    pub fn of(store: &mut Store<HostState>, instance: &Component) -> Result<Access, CaptureError> {
        let Some(root) = instance.get_export_index(&mut *store, None, ACCESS_INSTANCE) else {
            return Err(CaptureError::NotInstrumented(format!(
                "it exports no `{ACCESS_INSTANCE}`: its warm image could not take the accessors (the server's log says why \
                 when the image was built)"
            )));
        };
        let mut find = |name: &str| instance.get_export_index(&mut *store, Some(&root), name);
        let mut memory_names = Vec::new();
        while let Some(size) = find(&format!("m{}-size", memory_names.len())) {
            let m = memory_names.len();
            let names = ["grow", "read", "dest", "write"].map(|f| find(&format!("m{m}-{f}")));
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
        for (size, [grow, read, dest, write]) in memory_names {
            let missing = || CaptureError::NotInstrumented("an accessor function is missing".into());
            memories.push(MemoryFns {
                size: instance.get_typed_func(&mut *store, size).map_err(bad)?,
                grow: instance.get_typed_func(&mut *store, grow.ok_or_else(missing)?).map_err(bad)?,
                read: instance.get_typed_func(&mut *store, read.ok_or_else(missing)?).map_err(bad)?,
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
