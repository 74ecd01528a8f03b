//! The body extractor: the raw bytes under the body limit, with every rejection answered as
//! an envelope (413 for a body over the limit, 415 for a body that is not declared JSON)
//! instead of axum's plain text.

use super::reply::Reply;
use crate::codes;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde_json::json;

/// A tenant's body limit, set on the request by authentication.
#[derive(Clone, Copy)]
pub struct TenantBodyLimit(pub usize);

/// The request body's bytes.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = Reply;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let limit = req.extensions().get::<TenantBodyLimit>().map(|l| l.0);
        let content_type =
            req.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not text)").to_string());
        match Bytes::from_request(req, state).await {
            // Bodies must say they are JSON, so that a web page cannot send one without the
            // browser asking this server first (see `guard`). An empty body needs no type.
            Ok(bytes) if !bytes.is_empty() && !super::guard::is_json(content_type.as_deref()) => Err(Reply::fail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "request",
                codes::INVALID_REQUEST_FORMAT,
                format!(
                    "request bodies must be JSON with Content-Type: application/json, not {}",
                    content_type.as_deref().unwrap_or("a body without a Content-Type")
                ),
                json!({"content_type": content_type}),
            )),
            Ok(bytes) if limit.is_some_and(|l| bytes.len() > l) => Err(Reply::fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request",
                codes::INVALID_REQUEST_FORMAT,
                format!("the request body is larger than the tenant's limit of {} bytes", limit.unwrap_or_default()),
                json!(null),
            )),
            Ok(bytes) => Ok(RawBody(bytes)),
            Err(rejection) => {
                let status = rejection.status();
                let message = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "the request body is larger than the server's limit (server.max_body_bytes)".to_string()
                } else {
                    format!("cannot read the request body: {}", rejection.body_text())
                };
                Err(Reply::fail(status, "request", codes::INVALID_REQUEST_FORMAT, message, json!(null)))
            }
        }
    }
}
