//! Request bodies: read as JSON objects with clear errors, and typed fields.
//!
//! Fields are read from a parsed object rather than through a derive, so every error names
//! the field and the type it should have, and unknown fields are ignored (as AgentFlow does).

use super::reply::{Reply, kind};
use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::{Map, Value};

/// A parsed request body: a JSON object (an empty body is an empty object).
pub struct Body {
    /// The object.
    pub map: Map<String, Value>,
    /// The status of a validation error on this route (422 on AgentFlow's model routes).
    pub invalid: StatusCode,
    /// The framework tool name for error envelopes.
    pub tool: &'static str,
}

impl Body {
    /// Parses `bytes` as a JSON object.
    pub fn parse(bytes: &Bytes, tool: &'static str, invalid: StatusCode) -> Result<Body, Reply> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Body { map: Map::new(), invalid, tool });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            Reply::bad_request(StatusCode::BAD_REQUEST, tool, format!("the request body is not valid UTF-8: {e}"))
        })?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            Reply::bad_request(StatusCode::BAD_REQUEST, tool, format!("the request body is not valid JSON: {e}"))
        })?;
        match value {
            Value::Object(map) => Ok(Body { map, invalid, tool }),
            other => Err(Reply::bad_request(
                StatusCode::BAD_REQUEST,
                tool,
                format!("the request body must be a JSON object, not {}", kind(&other)),
            )),
        }
    }

    /// The whole body as a typed request (for routes whose fields are a serde type); an
    /// error names the field path, a missing field answers 400 and a wrong type 422.
    pub fn typed<T: serde::de::DeserializeOwned>(self) -> Result<T, Reply> {
        let (invalid, tool) = (self.invalid, self.tool);
        serde_path_to_error::deserialize(Value::Object(self.map)).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let status = if inner.starts_with("missing field") { StatusCode::BAD_REQUEST } else { invalid };
            let message = if path == "." { inner } else { format!("{path}: {inner}") };
            Reply::bad_request(status, tool, message)
        })
    }

    fn error(&self, message: String) -> Reply {
        Reply::bad_request(self.invalid, self.tool, message)
    }

    /// An optional string field; null counts as absent.
    pub fn opt_str(&self, name: &str) -> Result<Option<String>, Reply> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.error(format!("{name} must be a string, not {}", kind(other)))),
        }
    }

    /// A required, non-empty string field.
    pub fn req_str(&self, name: &str) -> Result<String, Reply> {
        match self.opt_str(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(self.error(format!("{name} is required"))),
        }
    }

    /// An optional object field (null or absent → empty object).
    pub fn obj(&self, name: &str) -> Result<Value, Reply> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(Value::Object(Map::new())),
            Some(v @ Value::Object(_)) => Ok(v.clone()),
            Some(other) => Err(self.error(format!("{name} must be an object, not {}", kind(other)))),
        }
    }

    /// An optional boolean field.
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, Reply> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.error(format!("{name} must be a boolean, not {}", kind(other)))),
        }
    }

    /// An optional non-negative number of seconds; 0 and null mean none.
    pub fn seconds(&self, name: &str) -> Result<Option<f64>, Reply> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(s) if s > 0.0 && s.is_finite() => Ok(Some(s)),
                Some(0.0) => Ok(None),
                _ => Err(self.error(format!("{name} must be a non-negative number of seconds"))),
            },
            Some(other) => Err(self.error(format!("{name} must be a number of seconds, not {}", kind(other)))),
        }
    }

    /// An optional list of strings.
    pub fn str_list(&self, name: &str) -> Result<Option<Vec<String>>, Reply> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.error(format!("{name} must be a list of strings")))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(self.error(format!("{name} must be a list of strings, not {}", kind(other)))),
        }
    }

    /// A raw field.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
    }
}
