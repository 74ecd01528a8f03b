//! Core modules: export every defined memory and mutable global under a name the accessor
//! module imports. Only the export section changes, so function bodies, their offsets and
//! the code wasmtime compiles from them are untouched.
//!
//! After wasmtime-wizer's `instrument` (Apache-2.0 WITH LLVM-exception), which exports the
//! same state for its one-shot snapshot.

use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasmparser::{Parser, Payload};
use wasmtime::{Result, bail};

/// The prefix of the exports this pass adds.
pub const PREFIX: &str = "__cella_";

/// What a core module defines that a snapshot carries, with the names it is exported under.
#[derive(Debug, Default, Clone)]
pub struct ModuleState {
    /// Defined memories: (export name, type).
    pub memories: Vec<(String, wasmparser::MemoryType)>,
    /// Defined mutable globals: (export name, type).
    pub globals: Vec<(String, wasmparser::GlobalType)>,
}

/// Rewrites the core module `wasm` to export its state; returns the new bytes and the state.
pub fn instrument(wasm: &[u8]) -> Result<(Vec<u8>, ModuleState)> {
    let mut state = ModuleState::default();
    let (mut imported_memories, mut imported_globals) = (0u32, 0u32);
    let mut defined_memories = Vec::new();
    let mut defined_globals = Vec::new();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::Version { encoding: wasmparser::Encoding::Component, .. } => {
                bail!("expected a core module, found a component")
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    match import?.ty {
                        wasmparser::TypeRef::Memory(_) => imported_memories += 1,
                        wasmparser::TypeRef::Global(_) => imported_globals += 1,
                        _ => {}
                    }
                }
            }
            Payload::MemorySection(reader) => {
                for memory in reader {
                    defined_memories.push(memory?);
                }
            }
            Payload::GlobalSection(reader) => {
                for global in reader {
                    defined_globals.push(global?.ty);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    if export?.name.starts_with(PREFIX) {
                        bail!("the module already exports names starting with `{PREFIX}`");
                    }
                }
            }
            Payload::End(_) => break,
            _ => {}
        }
    }
    for (i, ty) in defined_memories.iter().enumerate() {
        if ty.shared || ty.memory64 {
            bail!("shared and 64-bit memories are not supported");
        }
        state.memories.push((format!("{PREFIX}memory_{}", imported_memories + i as u32), *ty));
    }
    for (i, ty) in defined_globals.iter().enumerate() {
        if ty.mutable {
            state.globals.push((format!("{PREFIX}global_{}", imported_globals + i as u32), *ty));
        }
    }

    let mut added = wasm_encoder::ExportSection::new();
    for (name, _) in &state.memories {
        added.export(name, wasm_encoder::ExportKind::Memory, index_of(name));
    }
    for (name, _) in &state.globals {
        added.export(name, wasm_encoder::ExportKind::Global, index_of(name));
    }

    let mut out = wasm_encoder::Module::new();
    let mut exported = false;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload?;
        if let Payload::End(_) = payload {
            break;
        }
        let Some((id, range)) = payload.as_section() else { continue };
        // The export section comes after the global section and before start, element,
        // data count, code and data; a module without one gets it there.
        let after_exports = matches!(id, 8..=12);
        if id == 7 {
            let Payload::ExportSection(reader) = payload else { bail!("malformed export section") };
            let mut exports = wasm_encoder::ExportSection::new();
            for export in reader {
                RoundtripReencoder.parse_export(&mut exports, export?)?;
            }
            for (name, _) in &state.memories {
                exports.export(name, wasm_encoder::ExportKind::Memory, index_of(name));
            }
            for (name, _) in &state.globals {
                exports.export(name, wasm_encoder::ExportKind::Global, index_of(name));
            }
            out.section(&exports);
            exported = true;
            continue;
        }
        if after_exports && !exported {
            out.section(&added);
            exported = true;
        }
        out.section(&wasm_encoder::RawSection { id, data: &wasm[range] });
    }
    if !exported {
        out.section(&added);
    }
    Ok((out.finish(), state))
}

/// The index encoded at the end of an export name this pass made.
fn index_of(name: &str) -> u32 {
    name.rsplit('_').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}
