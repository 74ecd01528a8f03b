//! The body extractor: the raw bytes under the body limit, with every rejection answered as
//! an envelope (413 for a body over the limit) instead of axum's plain text.

use super::reply::Reply;
use crate::codes;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
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
        match Bytes::from_request(req, state).await {
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
