//! Core modules: export every defined memory and mutable global under a name the accessor
//! module imports. Only the export section changes, so function bodies, their offsets and
//! the code wasmtime compiles from them are untouched.
//!
//! After wasmtime-wizer's `instrument` (Apache-2.0 WITH LLVM-exception), which exports the
//! same state for its one-shot snapshot.
//!
//! Tables are the one part of a core instance's state an export cannot carry: a `funcref`
//! cannot be read out of an instance, nor compared. A table changes after instantiation only
//! through `table.set`, `table.grow`, `table.fill`, `table.copy` or `table.init` in the
//! module's own code (the component model gives the host no way in), so a module whose code
//! has none of them keeps the tables its instantiation made, which a fresh instance of the
//! same image makes again. A module that has one is refused ([`instrument`] fails), and its
//! component's sessions cannot be snapshotted. The guests built here (Rust, C, componentize-py's
//! CPython, componentize-js's SpiderMonkey) have none.

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
            Payload::CodeSectionEntry(body) => {
                if let Some(op) = changes_a_table(&body)? {
                    bail!(
                        "its code can change a table at run time (`{op}`), and a snapshot cannot carry a table's \
                         function references"
                    );
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

/// The first instruction of `body` that changes a table, if any.
fn changes_a_table(body: &wasmparser::FunctionBody<'_>) -> Result<Option<&'static str>> {
    use wasmparser::Operator;
    let mut reader = body.get_operators_reader()?;
    while !reader.eof() {
        let op = match reader.read()? {
            Operator::TableSet { .. } => "table.set",
            Operator::TableGrow { .. } => "table.grow",
            Operator::TableFill { .. } => "table.fill",
            Operator::TableCopy { .. } => "table.copy",
            Operator::TableInit { .. } => "table.init",
            _ => continue,
        };
        return Ok(Some(op));
    }
    Ok(None)
}

/// The index encoded at the end of an export name this pass made.
fn index_of(name: &str) -> u32 {
    name.rsplit('_').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_encoder::{
        CodeSection, Function, FunctionSection, HeapType, MemorySection, MemoryType, Module, RefType, TableSection,
        TableType, TypeSection,
    };

    /// A module with a growable table, a memory, and one function whose body `body` writes.
    fn module(body: impl Fn(&mut Function)) -> Vec<u8> {
        let mut types = TypeSection::new();
        types.ty().function([], []);
        let mut functions = FunctionSection::new();
        functions.function(0);
        let mut tables = TableSection::new();
        tables.table(TableType {
            element_type: RefType::FUNCREF,
            table64: false,
            minimum: 1,
            maximum: None,
            shared: false,
        });
        let mut memories = MemorySection::new();
        memories.memory(MemoryType { minimum: 1, maximum: None, memory64: false, shared: false, page_size_log2: None });
        let mut f = Function::new([]);
        body(&mut f);
        f.instructions().end();
        let mut code = CodeSection::new();
        code.function(&f);
        let mut module = Module::new();
        module.section(&types).section(&functions).section(&tables).section(&memories).section(&code);
        module.finish()
    }

    /// Code that only reads its table is instrumented; its memory is exported.
    #[test]
    fn a_module_that_only_reads_its_tables_is_instrumented() {
        let wasm = module(|f| {
            f.instructions().i32_const(0).table_get(0).drop().table_size(0).drop();
        });
        let (out, state) = instrument(&wasm).expect("instrumented");
        assert_eq!(state.memories.len(), 1);
        wasmparser::Validator::new().validate_all(&out).expect("valid");
    }

    /// Each instruction that can change a table after instantiation refuses the module, and
    /// the error names it.
    #[test]
    fn a_module_whose_code_can_change_a_table_is_refused() {
        type Body = fn(&mut Function);
        let cases: [(&str, Body); 4] = [
            ("table.grow", |f| {
                f.instructions().ref_null(HeapType::FUNC).i32_const(1).table_grow(0).drop();
            }),
            ("table.set", |f| {
                f.instructions().i32_const(0).ref_null(HeapType::FUNC).table_set(0);
            }),
            ("table.fill", |f| {
                f.instructions().i32_const(0).ref_null(HeapType::FUNC).i32_const(1).table_fill(0);
            }),
            ("table.copy", |f| {
                f.instructions().i32_const(0).i32_const(0).i32_const(1).table_copy(0, 0);
            }),
        ];
        for (name, body) in cases {
            let wasm = module(body);
            wasmparser::Validator::new()
                .validate_all(&wasm)
                .unwrap_or_else(|e| panic!("{name}: test module invalid: {e}"));
            let error = instrument(&wasm).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(error.contains(name) && error.contains("change a table"), "{name}: {error}");
        }
    }
}
