//! The Connect protocol over JSON, as E2B's and Scalebox's SDKs speak it (SDK_PROTOCOLS.md
//! §3): unary calls are a JSON body in and out; server streams are length-prefixed
//! envelopes ending with an end-of-stream envelope (flag 0x02) that carries the error, if
//! any. Only JSON: neither SDK sends protobuf, and so no code is generated.

use crate::sandboxes::SbxError;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

/// The content type of a unary answer.
pub const UNARY: &str = "application/json";
/// The content type of a streamed answer.
pub const STREAM: &str = "application/connect+json";

/// A Connect error: its code name (`not_found`, `invalid_argument`, …) and a message.
#[derive(Debug, Clone)]
pub struct ConnectError {
    /// The Connect code.
    pub code: &'static str,
    /// What went wrong.
    pub message: String,
}

impl ConnectError {
    /// An error with a Connect code.
    pub fn new(code: &'static str, message: impl Into<String>) -> ConnectError {
        ConnectError { code, message: message.into() }
    }

    /// The HTTP status of a unary error (Connect's table).
    pub fn status(&self) -> StatusCode {
        match self.code {
            "invalid_argument" | "out_of_range" | "failed_precondition" => StatusCode::BAD_REQUEST,
            "unauthenticated" => StatusCode::UNAUTHORIZED,
            "permission_denied" => StatusCode::FORBIDDEN,
            "not_found" => StatusCode::NOT_FOUND,
            "already_exists" | "aborted" => StatusCode::CONFLICT,
            "resource_exhausted" => StatusCode::TOO_MANY_REQUESTS,
            "unimplemented" => StatusCode::NOT_IMPLEMENTED,
            "unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            "deadline_exceeded" => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(&self) -> serde_json::Value {
        json!({"code": self.code, "message": self.message})
    }
}

impl From<SbxError> for ConnectError {
    fn from(e: SbxError) -> ConnectError {
        let code = match &e {
            SbxError::NotFound(_) => "not_found",
            SbxError::Invalid(_) => "invalid_argument",
            SbxError::Exists(_) => "already_exists",
            SbxError::Denied(_) => "unauthenticated",
            SbxError::Quota(_) => "resource_exhausted",
            SbxError::Refused { code, .. } => match super::status_of(*code) {
                StatusCode::TOO_MANY_REQUESTS => "resource_exhausted",
                StatusCode::SERVICE_UNAVAILABLE => "unavailable",
                StatusCode::FORBIDDEN => "permission_denied",
                StatusCode::BAD_REQUEST => "failed_precondition",
                _ => "internal",
            },
            SbxError::Io(_) => "internal",
        };
        ConnectError::new(code, e.to_string())
    }
}

impl IntoResponse for ConnectError {
    fn into_response(self) -> Response {
        (self.status(), [(header::CONTENT_TYPE, UNARY)], self.body().to_string()).into_response()
    }
}

/// Reads a unary request's JSON message (an empty body is the empty message).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ConnectError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) { b"{}".as_slice() } else { body };
    serde_json::from_slice(body)
        .map_err(|e| ConnectError::new("invalid_argument", format!("the message is not valid: {e}")))
}

/// Reads a streaming request's single enveloped JSON message.
pub fn decode_enveloped<T: DeserializeOwned>(body: &[u8]) -> Result<T, ConnectError> {
    let invalid = |m: &str| ConnectError::new("invalid_argument", m.to_string());
    if body.len() < 5 {
        return Err(invalid("the request is not a Connect envelope (5-byte prefix, then the message)"));
    }
    if body[0] & 0x01 != 0 {
        return Err(ConnectError::new("unimplemented", "compressed messages are not accepted"));
    }
    let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
    let message = body.get(5..5 + len).ok_or_else(|| invalid("the envelope is shorter than its length says"))?;
    decode(message)
}

/// A unary answer.
pub fn unary<T: Serialize>(message: &T) -> Response {
    match serde_json::to_vec(message) {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, UNARY)], body).into_response(),
        Err(e) => ConnectError::new("internal", format!("the answer could not be encoded: {e}")).into_response(),
    }
}

/// One envelope of a streamed answer.
pub fn envelope<T: Serialize>(message: &T) -> Bytes {
    frame(0, serde_json::to_vec(message).unwrap_or_else(|_| b"{}".to_vec()))
}

/// The end-of-stream envelope, carrying `error` if the stream failed.
pub fn end_of_stream(error: Option<&ConnectError>) -> Bytes {
    let body = match error {
        Some(e) => json!({"error": e.body()}),
        None => json!({}),
    };
    frame(0x02, body.to_string().into_bytes())
}

fn frame(flags: u8, json: Vec<u8>) -> Bytes {
    let mut out = Vec::with_capacity(5 + json.len());
    out.push(flags);
    out.extend_from_slice(&(json.len() as u32).to_be_bytes());
    out.extend_from_slice(&json);
    Bytes::from(out)
}

/// A streamed answer that is only its failure (a stream call refused before it began).
pub fn stream_error(error: ConnectError) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, STREAM)], end_of_stream(Some(&error))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_end_with_the_end_flag() {
        let e = envelope(&json!({"contextId": "c"}));
        let back: serde_json::Value = decode_enveloped(&e).expect("decodes");
        assert_eq!(back["contextId"], "c");
        let end = end_of_stream(Some(&ConnectError::new("not_found", "gone")));
        assert_eq!(end[0], 0x02);
        assert!(decode_enveloped::<serde_json::Value>(&[0, 0, 0, 0, 9, b'{']).is_err());
    }
}
