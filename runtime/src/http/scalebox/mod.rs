//! Scalebox's door: the control plane under `/v1/sandboxes` with its `{success, data}`
//! envelope, and inside a sandbox the `sandboxagent` Connect services (contexts, execution,
//! filesystem) and the `/upload` and `/download/…` file routes, so that `@scalebox/sdk`
//! works unchanged with `SCALEBOX_API_URL` pointing at Cella (SDK_PROTOCOLS.md §1).
//!
//! The SDK reaches every sandbox at the domain the control plane hands back (one
//! `host:port` for all of them); in-sandbox requests carry the sandbox's access token, which
//! is what tells them apart. Its file routes and health probe always use HTTPS: serve TLS
//! (`cella serve --tls-cert … --tls-key …`) on the same port.

mod agent;
mod control;

use super::App;
use crate::sandboxes::SbxError;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A Scalebox error: `{"success": false, "error": {"code", "message"}}` with a status.
#[derive(Debug)]
pub struct ScaleboxError {
    status: StatusCode,
    message: String,
}

impl ScaleboxError {
    /// An error with a status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ScaleboxError {
        ScaleboxError { status, message: message.into() }
    }
}

impl From<SbxError> for ScaleboxError {
    fn from(e: SbxError) -> ScaleboxError {
        let status = super::sandbox_status(&e);
        ScaleboxError::new(status, e.to_string())
    }
}

impl From<axum::extract::rejection::JsonRejection> for ScaleboxError {
    fn from(r: axum::extract::rejection::JsonRejection) -> ScaleboxError {
        ScaleboxError::new(r.status(), r.body_text())
    }
}

impl IntoResponse for ScaleboxError {
    fn into_response(self) -> Response {
        let body = json!({"success": false, "error": {"code": self.status.as_u16(), "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

/// A success in Scalebox's envelope.
fn ok(data: Value) -> axum::Json<Value> {
    axum::Json(json!({"success": true, "data": data}))
}

/// The control plane's routes (behind the server's API-key middleware).
pub fn control_routes() -> Router<App> {
    control::routes()
}

/// Whether a path is one of the in-sandbox routes (reached with the sandbox's token, not an
/// API key).
pub fn is_inside(path: &str) -> bool {
    path.starts_with("/sandboxagent.") || path == "/upload" || path.starts_with("/download/")
}

/// The access token an in-sandbox request carries (`X-Access-Token`).
pub fn token_of(headers: &axum::http::HeaderMap) -> Option<String> {
    let token = headers.get("x-access-token")?.to_str().ok()?.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// The in-sandbox routes.
pub fn inside_routes(app: App, max_body_bytes: usize) -> Router {
    agent::routes().layer(DefaultBodyLimit::max(max_body_bytes)).with_state(app)
}
