//! Cella's wire types, written once: the result envelope every answer uses, the run API's
//! request, result and events (seed 003), and sessions as listed. The server serialises them,
//! the Rust SDK and the tests read them back.
//!
//! Serde only; with the `schema` feature the same types also describe themselves for the
//! server's OpenAPI document.

mod envelope;
pub mod run;
mod session;
mod snapshot;

/// The result codes (the `cella-codes` crate, shared with the guest SDK).
pub use cella_codes as codes;
pub use envelope::{Envelope, Meta};
pub use session::SessionInfo;
pub use snapshot::SnapshotInfo;
