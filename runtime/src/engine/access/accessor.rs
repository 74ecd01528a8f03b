//! The accessor: a core module that imports every memory and mutable global of the
//! component's core instances and exports the functions [`super::component`] describes, the
//! component sections that lift them into the exported instance, and the prelude that lowers
//! `wasi:filesystem/preopens.get-directories` for it.

use super::component::Spaces;
use super::module::ModuleState;
use std::collections::HashMap;
use wasm_encoder::reencode::{Reencode, RoundtripReencoder};
use wasm_encoder::{
    Alias, CanonicalOption, ComponentExportKind, ComponentValType, ExportKind, Instruction as I, MemArg,
    PrimitiveValType as P, ValType,
};
use wasmtime::{Result, bail};

/// The stdio functions a replay calls, in the order the preview 1 adapter calls them.
const STDIO: [&str; 3] = ["get-stdin", "get-stdout", "get-stderr"];

/// Builds the accessor module and the component sections that lift and export it.
pub(super) struct Builder {
    types: wasm_encoder::TypeSection,
    imports: wasm_encoder::ImportSection,
    functions: wasm_encoder::FunctionSection,
    globals: wasm_encoder::GlobalSection,
    code: wasm_encoder::CodeSection,
    exports: wasm_encoder::ExportSection,
    /// Core function types, by signature.
    signatures: HashMap<(Vec<ValType>, Vec<ValType>), u32>,
    nglobals: u32,
    nmemories: u32,
    /// The accessor's own globals follow the imported ones; allocated in `build`.
    own_globals: Vec<(ValType, i64)>,
    aliases: wasm_encoder::ComponentAliasSection,
    ctypes: wasm_encoder::ComponentTypeSection,
    canonicals: wasm_encoder::CanonicalFunctionSection,
    /// Component types for function signatures, by (params, result).
    ctype_index: HashMap<String, u32>,
    items: Vec<(String, ComponentExportKind, u32)>,
    base_types: u32,
    base_funcs: u32,
    base_core_funcs: u32,
    base_core_memories: u32,
    accessor_instance: u32,
    extra_core_funcs: u32,
    extra_core_memories: u32,
    lifted: u32,
    list_type: Option<u32>,
    /// The accessor module's index (modules defined before it).
    module_index: u32,
    /// The component instance the lifted functions form.
    instance_index: u32,
    /// Functions the accessor imports (they come first in its function index space).
    imported_funcs: u32,
}

/// One memory or global the accessor imports.
enum Piece {
    Memory { instance: u32, name: String, ty: wasmparser::MemoryType },
    Global { instance: u32, name: String, ty: wasmparser::GlobalType },
}

impl Builder {
    pub(super) fn new(spaces: &Spaces) -> Builder {
        Builder {
            types: Default::default(),
            imports: Default::default(),
            functions: Default::default(),
            globals: Default::default(),
            code: Default::default(),
            exports: Default::default(),
            signatures: HashMap::new(),
            nglobals: 0,
            nmemories: 0,
            own_globals: Vec::new(),
            aliases: Default::default(),
            ctypes: Default::default(),
            canonicals: Default::default(),
            ctype_index: HashMap::new(),
            items: Vec::new(),
            base_types: spaces.types,
            base_funcs: spaces.funcs,
            base_core_funcs: spaces.core_funcs,
            base_core_memories: spaces.core_memories,
            accessor_instance: spaces.core_instances,
            extra_core_funcs: 0,
            extra_core_memories: 0,
            lifted: 0,
            list_type: None,
            module_index: spaces.modules,
            instance_index: spaces.instances,
            imported_funcs: 0,
        }
    }

    pub(super) fn build(
        mut self,
        out: &mut wasm_encoder::Component,
        spaces: &Spaces,
        states: &[(u32, ModuleState)],
    ) -> Result<()> {
        let mut pieces = Vec::new();
        let mut args: Vec<(String, u32)> = Vec::new();
        for (module_index, state) in states {
            let Some(&instance) = spaces.instantiations.get(module_index) else { continue };
            if state.memories.is_empty() && state.globals.is_empty() {
                continue;
            }
            args.push((instance.to_string(), instance));
            for (name, ty) in &state.globals {
                pieces.push(Piece::Global { instance, name: name.clone(), ty: *ty });
            }
            for (name, ty) in &state.memories {
                pieces.push(Piece::Memory { instance, name: name.clone(), ty: *ty });
            }
        }
        let first_memory = pieces.iter().find_map(|p| match p {
            Piece::Memory { instance, name, .. } => Some((*instance, name.clone())),
            Piece::Global { .. } => None,
        });
        let stdio = match spaces.stdio {
            [Some(a), Some(b), Some(c)] => Some([a, b, c]),
            _ => None,
        };
        let replay = match (spaces.preopens, &first_memory) {
            (Some(preopens), Some((instance, name))) => {
                self.preopens_prelude(out, preopens, stdio, *instance, name);
                args.push(("preopens".into(), self.accessor_instance - 1));
                true
            }
            _ => false,
        };
        // Imports first: they own the low function, global and memory indices.
        // `get-stdin`, `get-stdout`, `get-stderr` (with stdio), then `get-directories`.
        let stdio_replay = replay && stdio.is_some();
        if stdio_replay {
            let ty = self.signature(&[], &[ValType::I32]);
            for name in STDIO {
                self.imports.import("preopens", name, wasm_encoder::EntityType::Function(ty));
            }
            self.imported_funcs = 3;
        }
        let directories = self.imported_funcs;
        if replay {
            let ty = self.signature(&[ValType::I32], &[]);
            self.imports.import("preopens", "get-directories", wasm_encoder::EntityType::Function(ty));
            self.imported_funcs += 1;
        }
        for piece in &pieces {
            match piece {
                Piece::Global { instance, name, ty } => {
                    self.imports.import(&instance.to_string(), name, RoundtripReencoder.global_type(*ty)?);
                    self.nglobals += 1;
                }
                Piece::Memory { instance, name, ty } => {
                    self.imports.import(&instance.to_string(), name, RoundtripReencoder.memory_type(*ty)?);
                    self.nmemories += 1;
                }
            }
        }
        let (mut g, mut m) = (0u32, 0u32);
        for piece in &pieces {
            match piece {
                Piece::Global { ty, .. } => {
                    self.global_accessors(g, ty.content_type)?;
                    g += 1;
                }
                Piece::Memory { instance, name, .. } => {
                    self.memory_accessors(m, *instance, name);
                    m += 1;
                }
            }
        }
        if replay {
            // `get-directories`' results land at address 0 of the first memory (the host puts
            // the page back): only its side effect counts, the handles it hands the guest.
            let f = self.function(&[], &[], &[I::I32Const(0), I::Call(directories)]);
            let ty = self.ctype(&[], None);
            self.lift("replay-preopens".into(), &f, ty, vec![]);
        }
        if stdio_replay {
            // The same after the three stdio streams, in the order wasi-libc's preview 1
            // adapter takes them: a guest that touched a file descriptor holds those first.
            let body = [I::Call(0), I::Drop, I::Call(1), I::Drop, I::Call(2), I::Drop, I::I32Const(0), I::Call(3)];
            let f = self.function(&[], &[], &body);
            let ty = self.ctype(&[], None);
            self.lift("replay-stdio-preopens".into(), &f, ty, vec![]);
        }
        self.finish(out, &args);
        Ok(())
    }

    /// Before the accessor: a module whose `realloc` always answers 0, and
    /// `wasi:filesystem/preopens.get-directories` lowered into the first memory with it, in a
    /// core instance the accessor imports as `preopens`.
    fn preopens_prelude(
        &mut self,
        out: &mut wasm_encoder::Component,
        preopens: u32,
        stdio: Option<[u32; 3]>,
        instance: u32,
        memory: &str,
    ) {
        let mut module = wasm_encoder::Module::new();
        let mut types = wasm_encoder::TypeSection::new();
        types.ty().function([ValType::I32; 4], [ValType::I32]);
        let mut functions = wasm_encoder::FunctionSection::new();
        functions.function(0);
        let mut exports = wasm_encoder::ExportSection::new();
        exports.export("realloc", ExportKind::Func, 0);
        let mut code = wasm_encoder::CodeSection::new();
        let mut f = wasm_encoder::Function::new([]);
        f.instruction(&I::I32Const(0));
        f.instruction(&I::End);
        code.function(&f);
        module.section(&types).section(&functions).section(&exports).section(&code);
        out.section(&wasm_encoder::ModuleSection(&module));
        let zero_module = self.module_index;
        self.module_index += 1;

        let mut instances = wasm_encoder::InstanceSection::new();
        instances.instantiate(zero_module, std::iter::empty::<(&str, wasm_encoder::ModuleArg)>());
        out.section(&instances);
        let zero_instance = self.accessor_instance;

        let mut aliases = wasm_encoder::ComponentAliasSection::new();
        aliases.alias(Alias::CoreInstanceExport { instance: zero_instance, kind: ExportKind::Func, name: "realloc" });
        aliases.alias(Alias::CoreInstanceExport { instance, kind: ExportKind::Memory, name: memory });
        aliases.alias(Alias::InstanceExport {
            instance: preopens,
            kind: ComponentExportKind::Func,
            name: "get-directories",
        });
        for (stream, name) in stdio.iter().flatten().zip(STDIO) {
            aliases.alias(Alias::InstanceExport { instance: *stream, kind: ComponentExportKind::Func, name });
        }
        out.section(&aliases);
        let realloc = self.base_core_funcs;
        let mem = self.base_core_memories;
        let func = self.base_funcs;
        let mut canonicals = wasm_encoder::CanonicalFunctionSection::new();
        canonicals
            .lower(func, [CanonicalOption::UTF8, CanonicalOption::Memory(mem), CanonicalOption::Realloc(realloc)]);
        let streams = if stdio.is_some() { 3 } else { 0 };
        for i in 0..streams {
            canonicals.lower(func + 1 + i, []);
        }
        out.section(&canonicals);
        let lowered = self.base_core_funcs + 1;

        let mut instances = wasm_encoder::InstanceSection::new();
        let mut items = vec![("get-directories", ExportKind::Func, lowered)];
        for (i, name) in STDIO.iter().enumerate().take(streams as usize) {
            items.push((name, ExportKind::Func, lowered + 1 + i as u32));
        }
        instances.export_items(items);
        out.section(&instances);

        // What the prelude added to each index space.
        self.base_core_funcs += 2 + streams;
        self.base_core_memories += 1;
        self.base_funcs += 1 + streams;
        self.accessor_instance += 2;
    }

    /// The core type index of a signature, defined once.
    fn signature(&mut self, params: &[ValType], results: &[ValType]) -> u32 {
        let key = (params.to_vec(), results.to_vec());
        let next = self.signatures.len() as u32;
        *self.signatures.entry(key).or_insert_with(|| {
            self.types.ty().function(params.iter().copied(), results.iter().copied());
            next
        })
    }

    /// A core function with `body`, exported under its index; returns the export name.
    fn function(&mut self, params: &[ValType], results: &[ValType], body: &[I<'_>]) -> String {
        let ty = self.signature(params, results);
        let index = self.imported_funcs + self.functions.len();
        self.functions.function(ty);
        let mut f = wasm_encoder::Function::new([]);
        for instruction in body {
            f.instruction(instruction);
        }
        f.instruction(&I::End);
        self.code.function(&f);
        let name = index.to_string();
        self.exports.export(&name, ExportKind::Func, index);
        name
    }

    /// Aliases an accessor export as a core function; returns its core function index.
    fn alias_func(&mut self, name: &str) -> u32 {
        self.aliases.alias(Alias::CoreInstanceExport {
            instance: self.accessor_instance,
            kind: ExportKind::Func,
            name,
        });
        self.extra_core_funcs += 1;
        self.base_core_funcs + self.extra_core_funcs - 1
    }

    /// The component function type `(params) -> result`, defined once.
    fn ctype(&mut self, params: &[(&str, ComponentValType)], result: Option<ComponentValType>) -> u32 {
        let key = format!("{params:?}{result:?}");
        if let Some(&index) = self.ctype_index.get(&key) {
            return index;
        }
        let index = self.base_types + self.ctypes.len();
        self.ctypes.function().params(params.iter().copied()).result(result);
        self.ctype_index.insert(key, index);
        index
    }

    fn list_u8(&mut self) -> ComponentValType {
        let index = *self.list_type.get_or_insert_with(|| {
            let index = self.base_types + self.ctypes.len();
            self.ctypes.defined_type().list(ComponentValType::Primitive(P::U8));
            index
        });
        ComponentValType::Type(index)
    }

    /// Lifts the core export `core` as component function `name` of type `ty`.
    fn lift(&mut self, name: String, core: &str, ty: u32, options: Vec<CanonicalOption>) {
        let core_func = self.alias_func(core);
        self.canonicals.lift(core_func, ty, options);
        self.items.push((name, ComponentExportKind::Func, self.base_funcs + self.lifted));
        self.lifted += 1;
    }

    fn global_accessors(&mut self, g: u32, ty: wasmparser::ValType) -> Result<()> {
        let (core, prim, label) = match ty {
            wasmparser::ValType::I32 => (ValType::I32, P::S32, "i32"),
            wasmparser::ValType::I64 => (ValType::I64, P::S64, "i64"),
            wasmparser::ValType::F32 => (ValType::F32, P::F32, "f32"),
            wasmparser::ValType::F64 => (ValType::F64, P::F64, "f64"),
            other => bail!("a mutable global of type {other} is not supported"),
        };
        let get = self.function(&[], &[core], &[I::GlobalGet(g)]);
        let get_ty = self.ctype(&[], Some(ComponentValType::Primitive(prim)));
        self.lift(format!("g{g}-{label}-get"), &get, get_ty, vec![]);
        let set = self.function(&[core], &[], &[I::LocalGet(0), I::GlobalSet(g)]);
        let set_ty = self.ctype(&[("value", ComponentValType::Primitive(prim))], None);
        self.lift(format!("g{g}-{label}-set"), &set, set_ty, vec![]);
        Ok(())
    }

    fn memory_accessors(&mut self, m: u32, instance: u32, export: &str) {
        // The accessor's own globals for this memory: the saved first 8 bytes, and `dest`.
        let saved = self.nglobals + 2 * m;
        let dest = saved + 1;
        self.own_globals.push((ValType::I64, 0));
        self.own_globals.push((ValType::I32, 0));
        let at = |offset, align| MemArg { offset, align, memory_index: m };
        let u32t = ComponentValType::Primitive(P::U32);

        let size = self.function(&[], &[ValType::I32], &[I::MemorySize(m)]);
        let ty = self.ctype(&[], Some(u32t));
        self.lift(format!("m{m}-size"), &size, ty, vec![]);

        let grow = self.function(&[ValType::I32], &[ValType::I32], &[I::LocalGet(0), I::MemoryGrow(m)]);
        let ty = self.ctype(&[("pages", u32t)], Some(ComponentValType::Primitive(P::S32)));
        self.lift(format!("m{m}-grow"), &grow, ty, vec![]);

        let peek = self.function(&[], &[ValType::I64], &[I::I32Const(0), I::I64Load(at(0, 3))]);
        let ty = self.ctype(&[], Some(ComponentValType::Primitive(P::S64)));
        self.lift(format!("m{m}-peek"), &peek, ty, vec![]);

        // The memory as the canonical options see it.
        self.aliases.alias(Alias::CoreInstanceExport { instance, kind: ExportKind::Memory, name: export });
        let memory = self.base_core_memories + self.extra_core_memories;
        self.extra_core_memories += 1;

        let read = self.function(
            &[ValType::I32, ValType::I32],
            &[ValType::I32],
            &[
                I::I32Const(0),
                I::I64Load(at(0, 3)),
                I::GlobalSet(saved),
                I::I32Const(0),
                I::LocalGet(0),
                I::I32Store(at(0, 2)),
                I::I32Const(0),
                I::LocalGet(1),
                I::I32Store(at(4, 2)),
                I::I32Const(0),
            ],
        );
        let post = self.function(&[ValType::I32], &[], &[I::I32Const(0), I::GlobalGet(saved), I::I64Store(at(0, 3))]);
        let post_func = self.alias_func(&post);
        let list = self.list_u8();
        let ty = self.ctype(&[("offset", u32t), ("len", u32t)], Some(list));
        self.lift(
            format!("m{m}-read"),
            &read,
            ty,
            vec![CanonicalOption::Memory(memory), CanonicalOption::PostReturn(post_func)],
        );

        let set_dest = self.function(&[ValType::I32], &[], &[I::LocalGet(0), I::GlobalSet(dest)]);
        let ty = self.ctype(&[("offset", u32t)], None);
        self.lift(format!("m{m}-dest"), &set_dest, ty, vec![]);

        let realloc = self.function(&[ValType::I32; 4], &[ValType::I32], &[I::GlobalGet(dest)]);
        let realloc_func = self.alias_func(&realloc);
        let write = self.function(&[ValType::I32, ValType::I32], &[], &[]);
        let ty = self.ctype(&[("data", list)], None);
        self.lift(
            format!("m{m}-write"),
            &write,
            ty,
            vec![CanonicalOption::Memory(memory), CanonicalOption::Realloc(realloc_func)],
        );
    }

    fn finish(mut self, out: &mut wasm_encoder::Component, args: &[(String, u32)]) {
        for (ty, init) in &self.own_globals {
            let init = match ty {
                ValType::I64 => wasm_encoder::ConstExpr::i64_const(*init),
                _ => wasm_encoder::ConstExpr::i32_const(*init as i32),
            };
            self.globals.global(wasm_encoder::GlobalType { val_type: *ty, mutable: true, shared: false }, &init);
        }
        let mut accessor = wasm_encoder::Module::new();
        accessor.section(&self.types);
        accessor.section(&self.imports);
        accessor.section(&self.functions);
        accessor.section(&self.globals);
        accessor.section(&self.exports);
        accessor.section(&self.code);
        out.section(&wasm_encoder::ModuleSection(&accessor));

        let mut instances = wasm_encoder::InstanceSection::new();
        instances.instantiate(
            self.module_index,
            args.iter().map(|(name, i)| (name.as_str(), wasm_encoder::ModuleArg::Instance(*i))),
        );
        out.section(&instances);
        out.section(&self.aliases);
        out.section(&self.ctypes);
        out.section(&self.canonicals);
        let mut component_instances = wasm_encoder::ComponentInstanceSection::new();
        component_instances.export_items(self.items.iter().map(|(a, b, c)| (a.as_str(), *b, *c)));
        out.section(&component_instances);
        let mut exports = wasm_encoder::ComponentExportSection::new();
        exports.export(super::ACCESS_INSTANCE, ComponentExportKind::Instance, self.instance_index, None);
        out.section(&exports);
    }
}
