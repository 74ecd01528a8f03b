//! The host bindings of the WIT world `cella:backend/backend`, generated once for the
//! whole runtime. Exports are called asynchronously so that epoch deadlines can yield.
//! The generated items are documented in `wit/backend.wit`, not here.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "backend",
    exports: { default: async },
});

pub use cella::backend::types;
pub use exports::cella::backend::guest;
