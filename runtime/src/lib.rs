//! Cella: a WebAssembly-component sandbox runtime for agent tools.
//!
//! Each backend is a WebAssembly component implementing the WIT world
//! `cella:backend/backend` (see `wit/backend.wit`). The runtime compiles it once (cached on
//! disk), pre-links it, runs its `warmup` once into a warm image, and gives every session
//! its own store and instance started from that image.
//!
//! # Layout
//! - [`config`]: the JSON configuration (seeds' format, extended) and the embedded default.
//! - [`engine`]: the wasmtime engine (pooling allocator, epoch ticker).
//! - [`cache`]: compiled components and warm images on disk, verified before use.
//! - [`bindings`]: the generated host bindings of the WIT world.
//! - [`host`]: the state of every store (WASI grants, memory cap, deadline, log tags).
//! - [`warm`]: warm images with wasmtime-wizer.
//! - [`backend`]: a loaded backend, its `InstancePre`s and warm state.
//! - [`instance`]: one live instance and guarded calls into it.
//! - [`fault`]: how a guest call can fail (trap, timeout, memory) and the code of each.
//! - [`detach`]: work that outlives its caller (guest calls survive a client's disconnect).
//! - [`scratch`]: scratch directories, removed when their owner goes away.
//! - [`session`]: sessions, their names and TTLs, and the registry.
//! - [`tools`]: the tool registry and name resolution.
//! - [`tenancy`]: tenants, hashed keys, quotas.
//! - [`metrics`]: Prometheus metrics.
//! - [`envelope`]: the result envelope.
//! - [`codes`]: result codes.
//! - [`sandbox`]: the facade with the seeds' verbs, which every front door uses.
//! - [`http`]: the HTTP front door (AgentFlow's protocol) over the facade.
//! - [`mcp`]: the MCP front door (tools over the Model Context Protocol) over the facade.
//! - [`run`]: the run API (seed 003): create-or-reuse a code session, upload, install, run.
//! - [`local`]: one component without a server (`cella inspect`, `cella call`).
//!
//! The engine layers (everything but `http` and `mcp`) never see HTTP.

pub mod backend;
pub mod bindings;
pub mod cache;
pub mod codes;
pub mod config;
pub mod detach;
pub mod engine;
pub mod envelope;
pub mod error;
pub mod fault;
pub mod host;
pub mod http;
pub mod instance;
pub mod local;
pub mod mcp;
pub mod metrics;
pub mod run;
pub mod sandbox;
pub mod scratch;
pub mod session;
pub mod tenancy;
pub mod tools;
pub mod warm;

pub use config::Config;
pub use envelope::{Envelope, Meta};
pub use error::Error;
pub use sandbox::{ExecOptions, Sandbox};
pub use session::Caller;
