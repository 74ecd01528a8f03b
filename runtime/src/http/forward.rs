//! Forwarding in a cluster (`server.cluster`): a request naming a sandbox, a worker or an MCP
//! session that another live node holds goes to that node as it came (method, path,
//! headers, the body) and its answer comes back streamed, so that any node answers any
//! request; a sandbox or worker whose node is dead or drained is taken over instead
//! ([`crate::sandboxes::Sandboxes::locate`], [`crate::sandbox::Sandbox::locate_worker`]).

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

/// The sandbox a request names: E2B's `E2b-Sandbox-Id` or Scalebox's `X-Sandbox-ID` header
/// (in-sandbox routes), or the
/// id in a control route's path (`/sandboxes/{id}…`, `/v2/sandboxes/{id}…`, Scalebox's
/// `/v1/sandboxes/{id}…`). The router in front hashes on the same.
pub fn named_sandbox(req: &Request) -> Option<String> {
    for name in ["e2b-sandbox-id", "x-sandbox-id"] {
        if let Some(id) = req.headers().get(name).and_then(|v| v.to_str().ok()) {
            return Some(id.trim().to_string()).filter(|id| !id.is_empty());
        }
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
    was_forwarded_headers(req.headers())
}

/// Whether a request with these headers was forwarded here by another node.
pub fn was_forwarded_headers(headers: &axum::http::HeaderMap) -> bool {
    headers.contains_key(FORWARDED)
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
        "message": format!("the node that holds this ({address}) cannot be reached: {why}; try again once its lease runs out"),
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

/// AgentFlow's routes that name a worker in the body (`worker_id`).
const WORKER_ROUTES: [&str; 11] = [
    "/api/v1/execute",
    "/api/v1/execute/batch",
    "/api/v1/session/create",
    "/api/v1/session/destroy",
    "/api/v1/session/list",
    "/api/v1/session/refresh",
    "/api/v1/lifecycle/heartbeat",
    "/api/v1/lifecycle/status",
    "/api/v1/worker/disconnect",
    "/api/v1/init/resource",
    "/api/v1/init/batch",
];

/// The fields of a JSON body that name a worker; the others are skipped, not built.
#[derive(Default, serde::Deserialize)]
struct NamingFields {
    #[serde(default)]
    worker_id: Option<String>,
    #[serde(default)]
    session_id: Option<String>,
}

/// Where a request names its worker.
enum Names {
    /// In the path (a run API session).
    Path(String),
    /// In the JSON body, under this field.
    Body(&'static str),
}

fn worker_named(req: &Request) -> Option<Names> {
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix("/api/v1/run/sessions/") {
        return rest.split('/').next().filter(|id| !id.is_empty()).map(|id| Names::Path(id.to_string()));
    }
    if req.method() != axum::http::Method::POST {
        return None;
    }
    if path == "/api/v1/run" {
        return Some(Names::Body("session_id"));
    }
    WORKER_ROUTES.contains(&path).then_some(Names::Body("worker_id"))
}

/// Middleware (behind authentication, in a cluster): a request for a worker (AgentFlow's
/// `worker_id`, a run API session) that another live node holds is forwarded there; one a
/// dead or drained node held is taken over here first. A body is read whole to find the
/// worker (within the server's body limit; a larger one is left to the route's 413).
pub async fn workers(
    sandbox: crate::sandbox::Sandbox,
    client: Forwarder,
    max: usize,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    if was_forwarded(&req) {
        return next.run(req).await;
    }
    let Some(named) = worker_named(&req) else { return next.run(req).await };
    let Some(tenant) = req.extensions().get::<crate::sandbox::tenancy::Identity>().and_then(|i| i.tenant()) else {
        return next.run(req).await;
    };
    let (req, worker) = match named {
        Names::Path(id) => (req, Some(id)),
        Names::Body(field) => {
            let declared =
                req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
            if declared.is_none_or(|n| n > max) {
                return next.run(req).await;
            }
            let (parts, body) = req.into_parts();
            let bytes = match axum::body::to_bytes(body, max).await {
                Ok(bytes) => bytes,
                Err(_) => return next.run(Request::from_parts(parts, Body::empty())).await,
            };
            // Only the naming fields are read (the route parses the body itself).
            let named = serde_json::from_slice::<NamingFields>(&bytes).unwrap_or_default();
            let worker = if field == "worker_id" { named.worker_id } else { named.session_id };
            (Request::from_parts(parts, Body::from(bytes)), worker)
        }
    };
    let Some(worker_id) = worker.filter(|w| !w.is_empty()) else { return next.run(req).await };
    let caller = crate::sandbox::Caller { tenant, worker_id };
    match sandbox.locate_worker(&caller).await {
        crate::sandbox::Located::There(address) => {
            let node = sandbox.node().unwrap_or_default().to_string();
            forward(&client, &address, &node, req).await
        }
        _ => next.run(req).await,
    }
}

/// A cluster's node asks every other live node the same `GET` (with the caller's headers,
/// marked forwarded so that none asks further) and gets each answer's headers and body; a
/// node that fails to answer is left out (logged). Outside a cluster: none.
pub async fn ask_peers(
    sandbox: &crate::sandbox::Sandbox,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
) -> Vec<(axum::http::HeaderMap, axum::body::Bytes)> {
    use http_body_util::BodyExt;
    let Some(me) = sandbox.node().filter(|_| sandbox.config().server.cluster.enabled) else { return Vec::new() };
    let now = chrono::Utc::now();
    let peers: Vec<_> =
        sandbox.snapshot_store().leases().await.into_iter().filter(|l| l.node != me && l.live(now)).collect();
    let client = client();
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let asks = peers.into_iter().map(|peer| {
        let mut req = Request::new(Body::empty());
        *req.uri_mut() = uri.clone();
        *req.headers_mut() = headers.clone();
        let client = client.clone();
        async move {
            let answer = forward(&client, &peer.address, me, req).await;
            if !answer.status().is_success() {
                tracing::warn!(node = %peer.node, path, status = %answer.status(), "a node did not answer a cluster-wide list");
                return None;
            }
            let (parts, body) = answer.into_parts();
            let bytes = body.collect().await.ok()?.to_bytes();
            Some((parts.headers, bytes))
        }
    });
    futures::future::join_all(asks).await.into_iter().flatten().collect()
}
