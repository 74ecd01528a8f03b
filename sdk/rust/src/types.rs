//! Results as the server sends them (the shared wire types are `cella-protocol`'s).

pub use cella_protocol::{Envelope, Meta, SessionInfo};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The result of creating a session.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// The resource type.
    pub resource_type: String,
    /// The session id.
    pub session_id: String,
    /// The session name.
    pub session_name: String,
    /// True when the worker already had this session (it was returned unchanged).
    pub existed: bool,
    /// What `initialize` returned.
    pub data: Value,
}

/// The result of `reinitialize` (S-9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reinitialized {
    /// `success` or `error`.
    pub status: String,
    /// The resource type.
    pub resource_type: String,
    /// The replaced session.
    pub old_session_id: Option<String>,
    /// The new session.
    pub new_session_id: Option<String>,
    /// The config applied.
    pub config_applied: Value,
}

/// A tool as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Simple name.
    pub name: String,
    /// `type:action`.
    pub full_name: String,
    /// The resource type.
    pub resource_type: String,
    /// Whether it runs in a session.
    #[serde(default)]
    pub needs_session: bool,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the parameters.
    #[serde(default)]
    pub input_schema: Value,
}
