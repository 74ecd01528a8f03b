//! E2B's door: the control plane (`/v2/sandboxes`, `/sandboxes/{id}`…), envd (`/health`,
//! `/files`, the `filesystem.Filesystem` and `process.Process` Connect services) and the code
//! interpreter (`/execute`, `/contexts`), on the server's one port, so that E2B's SDKs work
//! unchanged with `E2B_API_URL` and `E2B_SANDBOX_URL` pointing at Cella (SDK_PROTOCOLS.md §2).
//!
//! Requests for inside a sandbox carry `E2b-Sandbox-Id` (and `E2b-Sandbox-Port`: 49983 for
//! envd, 49999 for the interpreter); [`dispatch`] sends them to the in-sandbox routes, which
//! authenticate with the sandbox's access token rather than an API key. Everything else goes
//! on to the server's own routes, where the control plane's routes sit behind the API key.
//! Errors have E2B's shape, `{"code": <status>, "message"}`, except the Connect services',
//! which have Connect's.

mod control;
pub(crate) mod envd;
mod interpreter;
pub(crate) mod process;

use super::App;
use crate::sandboxes::{Sbx, SbxError};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

/// The header that routes a request into a sandbox.
const SANDBOX_ID: &str = "e2b-sandbox-id";
/// The envd version Cella's answers follow (octet-stream uploads, no user needed).
pub const ENVD_VERSION: &str = "0.6.2";

/// An error in E2B's shape.
#[derive(Debug)]
pub struct E2bError {
    status: StatusCode,
    message: String,
}

impl E2bError {
    /// An error with a status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> E2bError {
        E2bError { status, message: message.into() }
    }
}

impl From<SbxError> for E2bError {
    fn from(e: SbxError) -> E2bError {
        let status = super::sandbox_status(&e);
        E2bError::new(status, e.to_string())
    }
}

impl From<axum::extract::rejection::JsonRejection> for E2bError {
    fn from(r: axum::extract::rejection::JsonRejection) -> E2bError {
        E2bError::new(r.status(), r.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for E2bError {
    fn from(r: axum::extract::rejection::QueryRejection) -> E2bError {
        E2bError::new(StatusCode::BAD_REQUEST, r.body_text())
    }
}

impl IntoResponse for E2bError {
    fn into_response(self) -> Response {
        let body = json!({"code": self.status.as_u16(), "message": self.message});
        (self.status, axum::Json(body)).into_response()
    }
}

/// The control plane's routes (behind the server's API-key middleware).
pub fn control_routes() -> Router<App> {
    control::routes()
}

/// Whether a request is for the in-sandbox routes: it names a sandbox.
pub fn is_inside(headers: &HeaderMap) -> bool {
    headers.contains_key(SANDBOX_ID)
}

/// The in-sandbox routes: envd's and the code interpreter's.
pub fn inside_routes(app: App, max_body_bytes: usize) -> Router {
    envd::routes()
        .merge(interpreter::routes())
        .fallback(|uri: axum::http::Uri| async move {
            E2bError::new(StatusCode::NOT_FOUND, format!("no route {} inside a sandbox", uri.path()))
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(app)
}

/// The sandbox a request names, entered with the token it presents: `X-Access-Token`, or
/// (the interpreter's requests) `E2B-Traffic-Access-Token`.
pub(crate) fn enter(app: &App, headers: &HeaderMap) -> Result<Arc<Sbx>, SbxError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let id = text(SANDBOX_ID).unwrap_or_default();
    let token = text("x-access-token").or_else(|| text("e2b-traffic-access-token"));
    app.sandboxes.enter(id, token)
}

/// The sandbox id a request names.
pub(crate) fn sandbox_id(headers: &HeaderMap) -> &str {
    headers.get(SANDBOX_ID).and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or_default()
}
