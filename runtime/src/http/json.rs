//! The JSON body extractor, [`Body<T>`]: the bytes under the server's and the tenant's body
//! limits, declared JSON, parsed once into the route's request type `T`. Every rejection is
//! an [`ApiError`] envelope naming what is wrong: 413 (too large), 415 (not declared JSON),
//! 400 (not UTF-8, not JSON, not an object, too deep), or the route's status for a missing
//! or mistyped field (422 on AgentFlow's model routes, 400 on its session routes).

use super::error::ApiError;
use crate::codes;
use crate::envelope::json_kind;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A tenant's body limit, set on the request by authentication.
#[derive(Clone, Copy)]
pub struct TenantBodyLimit(pub usize);

/// A route's request body type.
pub trait Route: DeserializeOwned {
    /// The framework operation named in error envelopes (`session:create`, ...).
    const TOOL: &'static str;
    /// The status of a missing or mistyped field.
    const INVALID: StatusCode = StatusCode::UNPROCESSABLE_ENTITY;
}

/// A request body of type `T`; an empty body reads as `{}`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: Route> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read(req, state).await?;
        parse::<T>(&bytes).map(Body)
    }
}

/// The body's bytes, under the limits and declared JSON.
async fn read<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let limit = req.extensions().get::<TenantBodyLimit>().map(|l| l.0);
    let declared = req.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not text)").to_string());
    let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
        let status = rejection.status();
        let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "the request body is larger than the server's limit (server.max_body_bytes)".to_string()
        } else {
            format!("cannot read the request body: {}", rejection.body_text())
        };
        ApiError::new("request", codes::INVALID_REQUEST_FORMAT, message, Value::Null).status(status)
    })?;
    // Bodies must say they are JSON, so that a web page cannot send one without the browser
    // asking this server first (see `guard`). An empty body needs no type.
    if !bytes.is_empty() && !super::guard::is_json(declared.as_deref()) {
        let message = format!(
            "request bodies must be JSON with Content-Type: application/json, not {}",
            declared.as_deref().unwrap_or("a body without a Content-Type")
        );
        let data = json!({"content_type": declared});
        return Err(ApiError::new("request", codes::INVALID_REQUEST_FORMAT, message, data)
            .status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
    }
    if let Some(limit) = limit.filter(|l| bytes.len() > *l) {
        let message = format!("the request body is larger than the tenant's limit of {limit} bytes");
        return Err(ApiError::new("request", codes::INVALID_REQUEST_FORMAT, message, Value::Null)
            .status(StatusCode::PAYLOAD_TOO_LARGE));
    }
    Ok(bytes)
}

/// Parses `bytes` as the request `T` in one pass.
pub fn parse<T: Route>(bytes: &[u8]) -> Result<T, ApiError> {
    let bad = |message: String| ApiError::bad_request(StatusCode::BAD_REQUEST, T::TOOL, message);
    let text = std::str::from_utf8(bytes).map_err(|e| bad(format!("the request body is not valid UTF-8: {e}")))?;
    let start = text.trim_start();
    let text = if start.is_empty() { "{}" } else { text };
    if !start.is_empty() && !start.starts_with('{') {
        return Err(bad(match serde_json::from_str::<Value>(text) {
            Ok(v) => format!("the request body must be a JSON object, not {}", json_kind(&v)),
            Err(e) => format!("the request body is not valid JSON: {e}"),
        }));
    }
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(request) => {
            de.end().map_err(|e| bad(format!("the request body is not valid JSON: {e}")))?;
            Ok(request)
        }
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_data() {
                Err(ApiError::bad_request(T::INVALID, T::TOOL, field_message(&path, &inner)))
            } else {
                Err(bad(format!("the request body is not valid JSON: {inner}")))
            }
        }
    }
}

/// "`path` must be …", "`path` is required" or "`path`: serde's message", without serde's
/// position.
fn field_message(path: &str, error: &serde_json::Error) -> String {
    let full = error.to_string();
    let message = match full.rsplit_once(" at line ") {
        Some((m, _)) if error.line() > 0 => m,
        _ => full.as_str(),
    };
    if let Some(name) = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
        return if path == "." { format!("{name} is required") } else { format!("{path}.{name} is required") };
    }
    if path == "." {
        message.to_string()
    } else if message.starts_with("must be") || message.starts_with("is required") {
        format!("{path} {message}")
    } else {
        format!("{path}: {message}")
    }
}
