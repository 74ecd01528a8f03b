//! Components: the core modules export their state (see [`super::module`]), and one more
//! core module, instantiated last with every instance that has state, is lifted into a
//! component instance exported as [`super::ACCESS_INSTANCE`]. For memory `k` and global `g`:
//!
//! | function | does |
//! |---|---|
//! | `m{k}-size() -> u32` | `memory.size`, in 64 KiB pages |
//! | `m{k}-grow(pages: u32) -> s32` | `memory.grow` |
//! | `m{k}-read(offset: u32, len: u32) -> list<u8>` | the bytes, by the canonical ABI's copy |
//! | `m{k}-peek() -> s64` | the first 8 bytes, which `read` borrows for its return area |
//! | `m{k}-dest(offset: u32)` | where the next `write` lands |
//! | `m{k}-write(data: list<u8>)` | the bytes, at `dest`: the lowering's `realloc` returns it |
//! | `g{g}-{ty}-get() -> ty`, `g{g}-{ty}-set(v: ty)` | `global.get`, `global.set` |
//!
//! `read`'s return area is the memory's first 8 bytes, saved before and put back by its
//! post-return function; `peek` reads them while they are the guest's.
//!
//! Parsing follows wasmtime-wizer's component support (Apache-2.0 WITH LLVM-exception), and has
//! its limits: no nested components with modules, no module imports or aliases, each module
//! instantiated at most once. Components built by wit-component, componentize-py and
//! componentize-js are within them.

use super::accessor::Builder;
use super::module::{self, ModuleState};
use std::collections::HashMap;
use wasmparser::{CanonicalFunction, ComponentAlias, ComponentExternalKind, ComponentOuterAliasKind, Parser, Payload};
use wasmtime::{Result, bail};

/// Counts of the index spaces the appended sections extend.
#[derive(Default)]
pub(super) struct Spaces {
    pub(super) instances: u32,
    pub(super) funcs: u32,
    pub(super) types: u32,
    pub(super) core_instances: u32,
    pub(super) core_memories: u32,
    pub(super) core_funcs: u32,
    pub(super) modules: u32,
    /// Module index -> the core instance it was instantiated as.
    pub(super) instantiations: HashMap<u32, u32>,
    /// The imported `wasi:filesystem/preopens` instance, if any.
    pub(super) preopens: Option<u32>,
    /// The imported `wasi:cli/stdin`, `stdout` and `stderr` instances, if any.
    pub(super) stdio: [Option<u32>; 3],
}

impl Spaces {
    fn count(&mut self, kind: ComponentExternalKind) -> Result<()> {
        match kind {
            ComponentExternalKind::Type => self.types += 1,
            ComponentExternalKind::Instance => self.instances += 1,
            ComponentExternalKind::Func => self.funcs += 1,
            other => bail!("components with {other:?} imports, exports or aliases are not supported"),
        }
        Ok(())
    }
}

/// Instruments a component; see the module documentation.
pub fn instrument(wasm: &[u8]) -> Result<Vec<u8>> {
    let mut out = wasm_encoder::Component::new();
    let mut spaces = Spaces::default();
    let mut states: Vec<(u32, ModuleState)> = Vec::new();
    // Depth of nested modules and components whose payloads parse_all yields inline.
    let mut nested = 0u32;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload?;
        if nested > 0 {
            match payload {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => nested += 1,
                Payload::End(_) => nested -= 1,
                _ => {}
            }
            continue;
        }
        match &payload {
            Payload::Version { encoding: wasmparser::Encoding::Module, .. } => {
                bail!("expected a component, found a core module")
            }
            Payload::ModuleSection { unchecked_range, .. } => {
                let (bytes, state) = module::instrument(&wasm[unchecked_range.clone()])?;
                out.section(&wasm_encoder::RawSection { id: 1, data: &bytes });
                states.push((spaces.modules, state));
                spaces.modules += 1;
                nested = 1;
                continue;
            }
            Payload::ComponentSection { unchecked_range, .. } => {
                if has_modules(&wasm[unchecked_range.clone()])? {
                    bail!("nested components with core modules are not supported");
                }
                out.section(&wasm_encoder::RawSection { id: 4, data: &wasm[unchecked_range.clone()] });
                nested = 1;
                continue;
            }
            Payload::End(_) => break,
            _ => {}
        }
        if let Some((id, range)) = payload.as_section() {
            out.section(&wasm_encoder::RawSection { id, data: &wasm[range] });
        }
        count(&mut spaces, payload)?;
    }
    Builder::new(&spaces).build(&mut out, &spaces, &states)?;
    Ok(out.finish())
}

fn has_modules(wasm: &[u8]) -> Result<bool> {
    for payload in Parser::new(0).parse_all(wasm) {
        if let Payload::ModuleSection { .. } = payload? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn count(spaces: &mut Spaces, payload: Payload<'_>) -> Result<()> {
    match payload {
        Payload::InstanceSection(reader) => {
            for instance in reader {
                let index = spaces.core_instances;
                spaces.core_instances += 1;
                if let wasmparser::Instance::Instantiate { module_index, .. } = instance?
                    && spaces.instantiations.insert(module_index, index).is_some()
                {
                    bail!("a module instantiated twice is not supported");
                }
            }
        }
        Payload::ComponentInstanceSection(reader) => spaces.instances += reader.count(),
        Payload::ComponentAliasSection(reader) => {
            for alias in reader {
                match alias? {
                    ComponentAlias::CoreInstanceExport { kind, .. } => match kind {
                        wasmparser::ExternalKind::Func | wasmparser::ExternalKind::FuncExact => spaces.core_funcs += 1,
                        wasmparser::ExternalKind::Memory => spaces.core_memories += 1,
                        _ => {}
                    },
                    ComponentAlias::InstanceExport { kind, .. } => spaces.count(kind)?,
                    ComponentAlias::Outer { kind, .. } => match kind {
                        ComponentOuterAliasKind::CoreType => {}
                        ComponentOuterAliasKind::Type => spaces.types += 1,
                        _ => bail!("module and component aliases are not supported"),
                    },
                }
            }
        }
        Payload::ComponentCanonicalSection(reader) => {
            for function in reader {
                match function? {
                    CanonicalFunction::Lift { .. } => spaces.funcs += 1,
                    _ => spaces.core_funcs += 1,
                }
            }
        }
        Payload::ComponentImportSection(reader) => {
            for import in reader {
                let import = import?;
                let kind = import.ty.kind();
                if kind == ComponentExternalKind::Instance && import.name.name.starts_with("wasi:filesystem/preopens@")
                {
                    spaces.preopens = Some(spaces.instances);
                }
                for (i, name) in ["wasi:cli/stdin@", "wasi:cli/stdout@", "wasi:cli/stderr@"].iter().enumerate() {
                    if kind == ComponentExternalKind::Instance && import.name.name.starts_with(name) {
                        spaces.stdio[i] = Some(spaces.instances);
                    }
                }
                spaces.count(kind)?;
            }
        }
        Payload::ComponentExportSection(reader) => {
            for export in reader {
                spaces.count(export?.kind)?;
            }
        }
        Payload::ComponentTypeSection(reader) => spaces.types += reader.count(),
        Payload::ComponentStartSection { .. } => bail!("component start functions are not supported"),
        _ => {}
    }
    Ok(())
}
