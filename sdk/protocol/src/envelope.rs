//! The result envelope: `{code, message, data, meta}` (S-10).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The envelope's `meta`: all five keys are always present (null allowed), plus
/// `temporary_session` when a temporary session was used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Meta {
    /// The tool, or the framework operation (`session:create`, ...).
    #[serde(default)]
    pub tool: Option<String>,
    /// How long the operation took, in milliseconds.
    #[serde(default)]
    pub execution_time_ms: Option<f64>,
    /// The tool's resource type, or `session` for session operations.
    #[serde(default)]
    pub resource_type: Option<String>,
    /// The session used.
    #[serde(default)]
    pub session_id: Option<String>,
    /// A unique id of this operation, also in the server's logs.
    #[serde(default)]
    pub trace_id: Option<String>,
    /// True when the call ran in a temporary session (S-12).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub temporary_session: Option<bool>,
}

/// The result envelope (S-10).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct Envelope {
    /// 0 for success; see the codes table in docs/codes.md.
    pub code: i32,
    /// `success`, or a human-readable error.
    pub message: String,
    /// The payload, or error details, or null.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schema(value_type = Object))]
    pub data: Value,
    /// Where the answer came from.
    #[serde(default)]
    pub meta: Meta,
}

impl Envelope {
    /// A success envelope.
    pub fn success(data: Value, meta: Meta) -> Envelope {
        Envelope { code: crate::codes::SUCCESS, message: "success".into(), data, meta }
    }

    /// An error envelope.
    pub fn error(code: i32, message: impl Into<String>, data: Value, meta: Meta) -> Envelope {
        Envelope { code, message: message.into(), data, meta }
    }

    /// Whether the code is 0.
    pub fn is_success(&self) -> bool {
        self.code == crate::codes::SUCCESS
    }
}
