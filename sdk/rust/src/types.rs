//! Results as the server sends them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The envelope's meta.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The tool or framework operation.
    #[serde(default)]
    pub tool: Option<String>,
    /// Milliseconds the server spent.
    #[serde(default)]
    pub execution_time_ms: Option<f64>,
    /// The resource type.
    #[serde(default)]
    pub resource_type: Option<String>,
    /// The session used.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The trace id.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// True when a temporary session was used.
    #[serde(default)]
    pub temporary_session: Option<bool>,
}

/// A result envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// 0 for success.
    pub code: i32,
    /// `success` or the error.
    pub message: String,
    /// The payload.
    #[serde(default)]
    pub data: Value,
    /// Where it came from.
    #[serde(default)]
    pub meta: Meta,
}

/// A session as listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The resource type.
    pub resource_type: String,
    /// The id.
    pub session_id: String,
    /// The name.
    #[serde(default)]
    pub session_name: String,
    /// `active` or `error`.
    pub status: String,
    /// Created implicitly by execute.
    #[serde(default)]
    pub auto_created: bool,
    /// Naive UTC ISO timestamps.
    #[serde(default)]
    pub created_at: String,
    /// Last call or refresh.
    #[serde(default)]
    pub last_activity: String,
    /// Expiry unless used.
    #[serde(default)]
    pub expires_at: String,
    /// Why it is in error.
    #[serde(default)]
    pub error: Option<String>,
}

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
