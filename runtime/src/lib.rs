//! Cella: a WebAssembly-component sandbox runtime for agent tools.
//!
//! Each backend is a WebAssembly component implementing the WIT world
//! `cella:backend/backend` (see `wit/backend.wit`). The runtime compiles it once (cached on
//! disk), pre-links it, runs its `warmup` once into a warm image, and gives every session
//! its own store and instance started from that image.
//!
//! # Layout
//! One folder per layer of ARCHITECTURE.md, bottom up; a layer uses only the layers below it.
//! - [`config`]: the JSON configuration (seeds' format, extended), the embedded default, and
//!   [`config::home`], where builtin components and example data are found at run time.
//! - `engine`: the wasmtime engine (pooling allocator, epoch ticker), and below the facade:
//!   - `engine::cache`: compiled components and warm images on disk, verified before use;
//!   - `engine::bindings`: the generated host bindings of the WIT world;
//!   - `engine::host`: the state of every store (WASI grants, memory cap, deadline, tags);
//!   - `engine::warm`: warm images with wasmtime-wizer;
//!   - `engine::backend`: a loaded backend, its `InstancePre`s and warm state;
//!   - `engine::instance`: one live instance and guarded calls into it;
//!   - `engine::fault`: how a guest call can fail (trap, timeout, memory) and its code;
//!   - `engine::tools`: the tools backends declare, their registry and name resolution.
//! - [`sandbox`]: the facade with the seeds' verbs, which every front door uses, and what it
//!   keeps:
//!   - `sandbox::session`: sessions, their names and TTLs, and the registry;
//!   - [`sandbox::tenancy`]: tenants, hashed keys, quotas;
//!   - `sandbox::detach`: work that outlives its caller (a client's disconnect);
//!   - `sandbox::scratch`: scratch directories, removed when their owner goes away.
//! - `run`: the run API (seed 003) over the facade: create-or-reuse a code session, upload,
//!   install, run.
//! - [`sandboxes`]: E2B's and Scalebox's sandboxes over the facade: groups of code contexts
//!   sharing a files directory, with a timeout and an access token.
//! - [`http`]: the HTTP front door (AgentFlow's protocol, the run API's routes, `/mcp`).
//! - [`mcp`]: the MCP front door (tools over the Model Context Protocol) over the facade.
//! - [`local`]: one component without a server (`cella inspect`, `cella call`).
//! - Shared by every layer: `envelope` (the result envelope), [`codes`] (result codes),
//!   `error` (the crate's error type), `metrics` (Prometheus metrics).
//!
//! Only `http` and `mcp` see HTTP or MCP; `.ci/run` checks that `engine`, `sandbox` and `run`
//! never name axum, hyper, utoipa or rmcp, and that `mcp` never names an HTTP crate. Internal
//! layers are `pub(crate)`; what the binary, the tests and the benchmarks use is re-exported.

pub mod codes;
pub mod config;
pub(crate) mod engine;
pub(crate) mod envelope;
pub(crate) mod error;
pub mod http;
pub mod local;
pub mod mcp;
pub(crate) mod metrics;
pub(crate) mod run;
pub mod sandbox;
pub mod sandboxes;

pub use config::Config;
pub use engine::{bindings, cache, host, tools};
pub use envelope::{Envelope, Meta};
pub use error::Error;
pub use sandbox::Caller;
pub use sandbox::{ExecOptions, Sandbox, tenancy};
