//! The result envelope every answer uses: `{code, message, data, meta}`.

use crate::codes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The envelope's `meta`: all five keys are always present (null allowed), plus
/// `temporary_session` when a temporary session was used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The tool, or the framework operation (`session:create`, ...).
    pub tool: Option<String>,
    /// How long the operation took, in milliseconds.
    pub execution_time_ms: Option<f64>,
    /// The tool's resource type, or `session` for session operations.
    pub resource_type: Option<String>,
    /// The session used.
    pub session_id: Option<String>,
    /// A unique id of this operation, also in the logs.
    pub trace_id: Option<String>,
    /// True when the call ran in a temporary session (S-12).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub temporary_session: Option<bool>,
}

/// The result envelope (S-10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// 0 for success; see [`crate::codes`].
    pub code: i32,
    /// `success`, or a human-readable error.
    pub message: String,
    /// The payload, or error details, or null.
    pub data: Value,
    /// Where the answer came from.
    pub meta: Meta,
}

impl Envelope {
    /// A success envelope.
    pub fn success(data: Value, meta: Meta) -> Envelope {
        Envelope { code: codes::SUCCESS, message: "success".into(), data, meta }
    }

    /// An error envelope.
    pub fn error(code: i32, message: impl Into<String>, data: Value, meta: Meta) -> Envelope {
        Envelope { code, message: message.into(), data, meta }
    }

    /// Whether the code is 0.
    pub fn is_success(&self) -> bool {
        self.code == codes::SUCCESS
    }
}

/// A new trace id (UUID v4).
pub fn trace_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Now as AgentFlow writes timestamps: naive UTC ISO 8601 with microseconds, no `Z`.
pub fn timestamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string()
}

/// The JSON type of a value, for error messages (`an array`, `null`, ...).
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
