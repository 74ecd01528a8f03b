//! Rust client for Cella, with the seeds' client API (S-1 … S-14).
//!
//! ```no_run
//! # async fn demo() -> Result<(), cella_sdk::Error> {
//! use cella_sdk::Sandbox;
//! use serde_json::json;
//!
//! let sandbox = Sandbox::start("http://127.0.0.1:18890").await?;
//! let kv = sandbox.create_session("kv", json!({"max_keys": 100})).await?;
//! kv.execute("kv:set", json!({"key": "greeting", "value": "hello"})).await?;
//! let got = kv.execute("kv:get", json!({"key": "greeting"})).await?;
//! assert_eq!(got.data["value"], "hello");
//! kv.destroy().await?;
//! sandbox.close().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`Sandbox`]: one worker's connection to a server (start, warmup, sessions, execute, …).
//! - [`Session`]: a handle on one explicit session; dropped without `destroy`, it destroys
//!   the session in the background, best effort (S-40, S-41).
//! - [`run`]: the high-level code-execution layer (seed 003): `run::Session::run`, keep-alive
//!   with background renewal, session listing, and access to the [`Sandbox`] layer.
//! - [`Envelope`], [`Error`]: results and typed errors carrying the envelope's code.
//! - [`codes`]: the result codes, by name (`codes::NO_RESULTS_FOUND`), shared with the server.
//!
//! Retries: only requests that are safe to repeat (health, listings, refresh) are retried on
//! connection errors; `execute`, `create` and `destroy` are sent once.

mod client;
mod error;
pub mod run;
mod session;
mod snapshots;
mod transport;
mod types;

/// The result codes of the envelope, the same list the server uses (the `cella-codes` crate).
pub use cella_codes as codes;
pub use client::{Sandbox, SandboxBuilder};
pub use error::Error;
pub use session::Session;
pub use snapshots::{Forked, SnapshotInfo};
pub use types::{Created, Envelope, Meta, Reinitialized, SessionInfo, Tool};
