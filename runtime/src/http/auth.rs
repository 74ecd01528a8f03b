//! Authentication: `Authorization: Bearer <key>` or `X-API-Key: <key>` → an [`Identity`],
//! and the caller a request acts for (worker ids are namespaced per tenant).

use super::App;
use super::error::ApiError;
use crate::codes;
use crate::sandbox::session::Caller;
use crate::sandbox::tenancy::Identity;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Routes anyone may call: health checks and the API description.
const OPEN_PATHS: &[&str] = &["/health", "/ready", "/openapi.json"];

/// The key a request presents, if any.
fn presented_key(parts: &axum::http::HeaderMap) -> Option<String> {
    if let Some(v) = parts.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Some(token) = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")) {
            return Some(token.trim().to_string());
        }
    }
    parts.get("x-api-key").and_then(|v| v.to_str().ok()).map(|v| v.trim().to_string())
}

/// Middleware: authenticates every request but the open routes and records its identity.
pub async fn authenticate(State(app): State<App>, mut req: Request, next: Next) -> Response {
    let key = presented_key(req.headers());
    match app.sandbox.tenancy().authenticate(key.as_deref()) {
        Ok(identity) => {
            if let Some(limit) = identity.tenant().and_then(|t| app.sandbox.tenancy().max_body_bytes(&t)) {
                req.extensions_mut().insert(super::json::TenantBodyLimit(limit));
            }
            req.extensions_mut().insert(identity);
            next.run(req).await
        }
        Err(_) if OPEN_PATHS.contains(&req.uri().path()) => {
            req.extensions_mut().insert(Identity::Open);
            next.run(req).await
        }
        Err(denied) => ApiError::new("auth", denied.code, denied.message, Value::Null)
            .status(axum::http::StatusCode::UNAUTHORIZED)
            .into_response(),
    }
}

/// The identity of the request (set by [`authenticate`]).
pub struct Who(pub Identity);

impl<S: Send + Sync> FromRequestParts<S> for Who {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Who(parts.extensions.get::<Identity>().cloned().unwrap_or(Identity::Open)))
    }
}

impl Who {
    /// The caller for `worker_id`: a worker of the key's tenant. An admin key runs no tools.
    pub fn caller(&self, tool: &str, worker_id: String) -> Result<Caller, ApiError> {
        match self.0.tenant() {
            Some(tenant) => Ok(Caller { tenant, worker_id }),
            None => Err(ApiError::new(
                tool,
                codes::FORBIDDEN,
                "admin keys manage the server; use a tenant key for sessions and tools",
                Value::Null,
            )),
        }
    }

    /// The tenant that owns the sandboxes this key makes and sees; an admin key owns none.
    pub fn sandbox_owner(&self) -> Result<std::sync::Arc<str>, crate::sandboxes::SbxError> {
        self.0.tenant().ok_or_else(|| crate::sandboxes::SbxError::Refused {
            code: codes::FORBIDDEN,
            message: "admin keys manage the server; use a tenant key for sandboxes".into(),
        })
    }

    /// Refuses anyone but the admin when the server has keys.
    pub fn require_admin(&self, app: &App, tool: &str) -> Result<(), ApiError> {
        if self.0 == Identity::Admin || !app.sandbox.tenancy().admin_required() {
            return Ok(());
        }
        Err(ApiError::new(tool, codes::FORBIDDEN, "this route needs an admin key", Value::Null))
    }
}
