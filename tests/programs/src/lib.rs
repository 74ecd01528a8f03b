//! The test-only guests, built by this crate's build script: `faulty` (traps, loops, memory
//! bombs, slow hooks, every kind of failure on request) and the conformance suite's `kv` in
//! Python, JavaScript and C. Each constant is the path of a guest's `.wasm`;
//! [`foreach_program!`] names them all.
//!
//! The product's components (`components/`) are built by `cella-runtime`; these never are.

include!(concat!(env!("OUT_DIR"), "/programs.rs"));
