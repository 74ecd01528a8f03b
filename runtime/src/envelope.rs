//! The result envelope every answer uses: `{code, message, data, meta}` (the type lives in
//! the `cella-protocol` crate, shared with the SDK and the tests), and the helpers that fill it.

pub use cella_protocol::{Envelope, Meta};
use serde_json::Value;

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
