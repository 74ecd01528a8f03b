//! Replies: the envelope with the HTTP status each route gives it, raw JSON objects, and the
//! errors every route shares (bad JSON, wrong types, body too large, unknown route).
//!
//! Every response body is a JSON object, errors included.

use crate::codes;
pub use crate::envelope::json_kind as kind;
use crate::envelope::{Envelope, Meta, trace_id};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A reply: a JSON object with a status.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body.
    pub body: Value,
}

impl Reply {
    /// An envelope with an explicit status.
    pub fn envelope(status: StatusCode, envelope: Envelope) -> Reply {
        Reply { status, body: serde_json::to_value(envelope).unwrap_or_else(|_| json!({})) }
    }

    /// A raw JSON object with status 200.
    pub fn raw(body: Value) -> Reply {
        Reply { status: StatusCode::OK, body }
    }

    /// A raw JSON object with a status.
    pub fn raw_status(status: StatusCode, body: Value) -> Reply {
        Reply { status, body }
    }

    /// A success envelope of a framework operation (`session:create`, ...).
    pub fn ok(tool: &str, data: Value, session_id: Option<String>) -> Reply {
        Reply::envelope(StatusCode::OK, Envelope::success(data, framework_meta(tool, session_id)))
    }

    /// An error envelope of a framework operation.
    pub fn fail(status: StatusCode, tool: &str, code: i32, message: impl Into<String>, data: Value) -> Reply {
        Reply::envelope(status, Envelope::error(code, message, data, framework_meta(tool, None)))
    }

    /// A request the route cannot parse: 400 (or 422 on AgentFlow's model routes), code 4002.
    pub fn bad_request(status: StatusCode, tool: &str, message: impl Into<String>) -> Reply {
        let message = message.into();
        let mut reply = Reply::fail(status, tool, codes::INVALID_REQUEST_FORMAT, message.clone(), Value::Null);
        // FastAPI clients look for `detail`; keep it beside the envelope.
        reply.body["detail"] = json!(message);
        reply
    }
}

/// The meta of a framework operation: resource type `session` for session, lifecycle and
/// init routes, null for batch.
pub fn framework_meta(tool: &str, session_id: Option<String>) -> Meta {
    let resource_type =
        if tool.starts_with("session:") || tool.starts_with("init:") { Some("session".to_string()) } else { None };
    Meta {
        tool: Some(tool.to_string()),
        execution_time_ms: Some(0.0),
        resource_type,
        session_id,
        trace_id: Some(trace_id()),
        temporary_session: None,
    }
}

/// The HTTP status of an `execute` envelope: 200 for success, 400 for 4xxx, 500 otherwise.
pub fn execute_status(code: i32) -> StatusCode {
    match code {
        0 => StatusCode::OK,
        crate::codes::UNAUTHENTICATED => StatusCode::UNAUTHORIZED,
        crate::codes::FORBIDDEN => StatusCode::FORBIDDEN,
        crate::codes::QUOTA_EXCEEDED => StatusCode::TOO_MANY_REQUESTS,
        // A full instance pool or a server shutting down: busy, try again later.
        crate::codes::CAPACITY_EXHAUSTED | crate::codes::SHUTTING_DOWN => StatusCode::SERVICE_UNAVAILABLE,
        4000..=4999 => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}
