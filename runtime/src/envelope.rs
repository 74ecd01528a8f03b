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
    use chrono::{Datelike, Timelike};
    // Written field by field: chrono's `format` parses its pattern on every call, a cost
    // each new session (three timestamps) and every `/health` paid.
    let micros = at.nanosecond() % 1_000_000_000 / 1_000;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{micros:06}",
        at.year(),
        at.month(),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
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

#[cfg(test)]
mod tests {
    use super::timestamp;
    use chrono::TimeZone;

    #[test]
    fn timestamps_read_as_agentflow_writes_them() {
        for (secs, nanos) in
            [(0, 0), (1_764_547_200, 123_456_789), (253_402_300_799, 999_999_999), (951_782_400, 1_000)]
        {
            let at = chrono::Utc.timestamp_opt(secs, nanos).unwrap();
            assert_eq!(timestamp(at), at.naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string());
        }
    }
}
