//! The HTTP door's one error type, [`ApiError`], and the one table from result code to HTTP
//! status, [`status_of`]. Every handler returns `Result<_, ApiError>` and uses `?`; every
//! error body is an envelope (with FastAPI's `detail` beside it for request errors, which
//! AgentFlow's clients read).

use crate::codes;
use crate::envelope::{Envelope, Meta, trace_id};
use crate::sandbox::Refusal;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

/// The HTTP status of a result code: 200 for success, 401/403/429 for the tenancy codes, 503
/// for a full pool or a server shutting down, 207 for a partly failed batch, 400 for the other 4xxx, 500 otherwise. A route
/// whose protocol answers differently (AgentFlow's 404 for a missing session) says so with
/// [`ApiError::when`].
pub fn status_of(code: i32) -> StatusCode {
    match code {
        codes::SUCCESS => StatusCode::OK,
        codes::UNAUTHENTICATED => StatusCode::UNAUTHORIZED,
        codes::FORBIDDEN => StatusCode::FORBIDDEN,
        codes::QUOTA_EXCEEDED => StatusCode::TOO_MANY_REQUESTS,
        codes::SNAPSHOT_NOT_FOUND => StatusCode::NOT_FOUND,
        codes::SNAPSHOT_INVALID | codes::SNAPSHOT_REFUSED => StatusCode::CONFLICT,
        // Busy, or going away: try again later.
        codes::CAPACITY_EXHAUSTED | codes::SHUTTING_DOWN => StatusCode::SERVICE_UNAVAILABLE,
        // Some of a batch failed.
        codes::PARTIAL_FAILURE => StatusCode::MULTI_STATUS,
        4000..=4999 => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error answer: an envelope with a status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    envelope: Box<Envelope>,
    /// Repeat the message as `detail` (request errors, as FastAPI answers them).
    detail: bool,
}

impl ApiError {
    /// An error of the framework operation `tool`, with the status of its code.
    pub fn new(tool: &str, code: i32, message: impl Into<String>, data: Value) -> ApiError {
        let envelope = Envelope::error(code, message, data, framework_meta(tool, None));
        ApiError { status: status_of(code), envelope: Box::new(envelope), detail: false }
    }

    /// A request the route cannot read (code 4002), answered with `status` (400, or 422 on
    /// AgentFlow's model routes) and the message as `detail` too.
    pub fn bad_request(status: StatusCode, tool: &str, message: impl Into<String>) -> ApiError {
        ApiError { detail: true, ..ApiError::new(tool, codes::INVALID_REQUEST_FORMAT, message, Value::Null) }
            .status(status)
    }

    /// What the facade refused, as an error of `tool`.
    pub fn refused(tool: &str, refusal: Refusal) -> ApiError {
        ApiError::new(tool, refusal.code, refusal.message, refusal.data)
    }

    /// This error with another status.
    pub fn status(mut self, status: StatusCode) -> ApiError {
        self.status = status;
        self
    }

    /// This error with `status` when its code is `code` (a route's own answer for one code).
    pub fn when(self, code: i32, status: StatusCode) -> ApiError {
        if self.envelope.code == code { self.status(status) } else { self }
    }

    /// This error with `data` as the envelope's data.
    pub fn data(mut self, data: Value) -> ApiError {
        self.envelope.data = data;
        self
    }

    /// This error naming the session it concerns in `meta.session_id`.
    pub fn session(mut self, id: impl Into<String>) -> ApiError {
        self.envelope.meta.session_id = Some(id.into());
        self
    }

    /// The envelope's code.
    pub fn code(&self) -> i32 {
        self.envelope.code
    }
}

impl From<Envelope> for ApiError {
    /// A failed envelope (a tool's, a run's), with the status of its code.
    fn from(envelope: Envelope) -> ApiError {
        ApiError { status: status_of(envelope.code), envelope: Box::new(envelope), detail: false }
    }
}

#[derive(Serialize)]
struct WithDetail<'a> {
    #[serde(flatten)]
    envelope: &'a Envelope,
    detail: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.detail {
            let body = WithDetail { envelope: &self.envelope, detail: &self.envelope.message };
            (self.status, Json(body)).into_response()
        } else {
            (self.status, Json(self.envelope)).into_response()
        }
    }
}

/// A successful answer: the envelope of a framework operation.
pub type Answer = Result<Json<Envelope>, ApiError>;

/// The success envelope of the framework operation `tool` (`session:create`, ...).
pub fn ok(tool: &str, data: Value, session_id: Option<String>) -> Answer {
    Ok(Json(Envelope::success(data, framework_meta(tool, session_id))))
}

/// An envelope with its code's status: success as `Ok`, anything else as the error.
pub fn answer(envelope: Envelope) -> Answer {
    if envelope.is_success() { Ok(Json(envelope)) } else { Err(envelope.into()) }
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
