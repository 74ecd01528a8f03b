//! Forwarding in a cluster (`server.cluster`): a request naming a sandbox that another live
//! node runs goes to that node as it came (method, path, headers, a streamed body) and its
//! answer comes back streamed, so that any node answers any request; a sandbox whose node
//! is dead or drained is taken over instead ([`crate::sandboxes::Sandboxes::locate`]).

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// Marks a request one node forwarded to another: it is never forwarded again.
pub const FORWARDED: &str = "x-cella-forwarded";

/// The client forwarded requests go through (one per server: its connections are pooled).
pub type Forwarder = Client<HttpConnector, Body>;

/// A new client.
pub fn client() -> Forwarder {
    Client::builder(TokioExecutor::new()).build_http()
}

/// The sandbox a request names: E2B's `E2b-Sandbox-Id` header (in-sandbox routes), or the
/// id in a control route's path (`/sandboxes/{id}…`, `/v2/sandboxes/{id}…`, Scalebox's
/// `/v1/sandboxes/{id}…`). The router in front hashes on the same.
pub fn named_sandbox(req: &Request) -> Option<String> {
    if let Some(id) = req.headers().get("e2b-sandbox-id").and_then(|v| v.to_str().ok()) {
        return Some(id.trim().to_string()).filter(|id| !id.is_empty());
    }
    let mut parts = req.uri().path().trim_start_matches('/').split('/');
    let first = parts.next()?;
    let second = if first == "sandboxes" { Some(first) } else { parts.next() };
    match (first, second) {
        ("sandboxes", _) | ("v1" | "v2", Some("sandboxes")) => {
            parts.next().filter(|id| !id.is_empty()).map(str::to_string)
        }
        _ => None,
    }
}

/// Whether a request was forwarded here by another node.
pub fn was_forwarded(req: &Request) -> bool {
    req.headers().contains_key(FORWARDED)
}

/// Sends `req` to the node at `address` (`http://host:port`) and answers what it answers;
/// 502 when it cannot be reached.
pub async fn forward(client: &Forwarder, address: &str, node: &str, req: Request) -> Response {
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let uri = match format!("{}{path}", address.trim_end_matches('/')).parse::<axum::http::Uri>() {
        Ok(uri) => uri,
        Err(e) => return unreachable(address, &e.to_string()),
    };
    // The owner checks `Host` against its own names: it gets its own, and the client's in
    // `X-Forwarded-Host`.
    if let Some(authority) = uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        && let Some(host) = parts.headers.insert(header::HOST, authority)
    {
        parts.headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    parts.uri = uri;
    for hop in HOP_BY_HOP {
        parts.headers.remove(hop);
    }
    parts.headers.insert(FORWARDED, HeaderValue::from_str(node).unwrap_or(HeaderValue::from_static("node")));
    match client.request(Request::from_parts(parts, body)).await {
        Ok(answer) => {
            let (mut parts, body) = answer.into_parts();
            for hop in HOP_BY_HOP {
                parts.headers.remove(hop);
            }
            Response::from_parts(parts, Body::new(body))
        }
        Err(e) => unreachable(address, &e.to_string()),
    }
}

fn unreachable(address: &str, why: &str) -> Response {
    let body = serde_json::json!({
        "code": 502,
        "message": format!("the node that runs this sandbox ({address}) cannot be reached: {why}; try again once its lease runs out"),
    });
    (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
}

/// Headers that belong to one connection, not to the request.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::UPGRADE,
];
