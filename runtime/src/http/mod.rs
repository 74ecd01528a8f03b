//! The HTTP front door: AgentFlow's sandbox protocol (`AGENTFLOW_PROTOCOL.md`) over axum,
//! so AgentFlow's unmodified clients work against Cella, plus Cella's additions (JSON Schemas
//! in the tool list, `/openapi.json`).
//!
//! Handlers only translate HTTP to the [`Sandbox`] facade and back; nothing below it is seen.

mod auth;
mod connect;
mod e2b;
mod error;
mod execute;
mod fields;
pub mod forward;
mod guard;
mod json;
mod mcp;
mod meta;
mod requests;
mod run;
mod scalebox;
mod session;
mod snapshots;
pub mod tls;

use crate::config::{ConnectionClose, ServerConfig};
use crate::sandbox::Sandbox;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, status_of};
pub use mcp::McpDoor;

/// A streamed answer of content type `content_type` whose body is what `rx` receives, until
/// its sender is dropped (NDJSON lines, Connect envelopes).
pub(crate) fn streamed(
    content_type: &'static str,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<axum::body::Bytes>,
) -> Response {
    use axum::response::IntoResponse;
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok::<_, std::convert::Infallible>)));
    ([(header::CONTENT_TYPE, content_type)], axum::body::Body::from_stream(stream)).into_response()
}

/// The HTTP status of a sandbox error, for the E2B and Scalebox doors alike.
pub(crate) fn sandbox_status(e: &crate::sandboxes::SbxError) -> StatusCode {
    use crate::sandboxes::SbxError;
    match e {
        SbxError::NotFound(_) => StatusCode::NOT_FOUND,
        SbxError::Invalid(_) => StatusCode::BAD_REQUEST,
        SbxError::Exists(_) => StatusCode::CONFLICT,
        SbxError::Denied(_) => StatusCode::UNAUTHORIZED,
        SbxError::Quota(_) => StatusCode::TOO_MANY_REQUESTS,
        SbxError::Refused { code, .. } => status_of(*code),
        SbxError::Io(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What every handler can reach: one shared [`AppState`], so that handing it to a request
/// costs one reference count, not a copy of each part.
#[derive(Clone)]
pub struct App(Arc<AppState>);

impl std::ops::Deref for App {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.0
    }
}

/// The parts of the server's state.
pub struct AppState {
    /// The sandbox facade.
    pub sandbox: Sandbox,
    /// The only directory `init/from-config` may read, if any.
    pub init_config_dir: Option<PathBuf>,
    /// Woken by the shutdown route.
    pub shutdown: Arc<Notify>,
    /// The MCP endpoint, unless `server.mcp.enabled` is false.
    pub mcp: Option<Arc<McpDoor>>,
    /// The run API.
    pub runner: crate::run::Runner,
    /// E2B's and Scalebox's sandboxes.
    pub sandboxes: crate::sandboxes::Sandboxes,
}

impl App {
    /// The state of a server over `sandbox` (call inside a Tokio runtime: the sandboxes'
    /// reaper starts here).
    pub fn new(sandbox: Sandbox) -> App {
        let server = &sandbox.config().server;
        let init_config_dir = server.init_config_dir.as_ref().map(|d| sandbox.config().resolve(d));
        let mcp = server.mcp.enabled.then(|| Arc::new(McpDoor::new(&sandbox)));
        let runner = crate::run::Runner::new(sandbox.clone());
        let sandboxes = crate::sandboxes::Sandboxes::new(sandbox.clone());
        App(Arc::new(AppState { sandbox, init_config_dir, shutdown: Arc::new(Notify::new()), mcp, runner, sandboxes }))
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Cella", description = "A WebAssembly-component sandbox runtime for agent tools. Speaks AgentFlow's sandbox protocol."),
    tags((name = "execute", description = "Run tools"), (name = "session", description = "Explicit sessions"),
         (name = "lifecycle", description = "Workers"), (name = "init", description = "Resource initialisation"),
         (name = "tools", description = "Tool discovery"), (name = "warmup", description = "Backend warmup"),
         (name = "server", description = "Health and shutdown"),
         (name = "run", description = "Run code in a session (seed 003)"),
         (name = "snapshots", description = "Snapshot, fork, pause and resume sessions"))
)]
struct ApiDoc;

static OPENAPI: OnceLock<serde_json::Value> = OnceLock::new();

/// This server's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "server", responses((status = 200, description = "The OpenAPI document", body = Object)))]
async fn openapi_json() -> axum::Json<serde_json::Value> {
    axum::Json(openapi())
}

/// The OpenAPI document of every route, generated from the handlers' annotations, with the
/// error answers every route shares added to each operation.
pub fn openapi() -> serde_json::Value {
    OPENAPI
        .get_or_init(|| {
            let mut doc = serde_json::to_value(api_router().split_for_parts().1).unwrap_or_default();
            add_shared_responses(&mut doc);
            doc
        })
        .clone()
}

/// Documents the answers that come from the shared layers rather than the handler: bad
/// bodies (400, 413, 422) on every POST, and authentication, permission and quota answers
/// (401, 403, 429) on every route that needs a key.
fn add_shared_responses(doc: &mut serde_json::Value) {
    let envelope = json!({"description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}});
    let answer = |text: &str| {
        let mut a = envelope.clone();
        a["description"] = json!(text);
        a
    };
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else { return };
    for (path, item) in paths.iter_mut() {
        let open = ["/health", "/ready", "/openapi.json"].contains(&path.as_str());
        let Some(ops) = item.as_object_mut() else { continue };
        for (method, op) in ops.iter_mut() {
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else { continue };
            let mut add = |code: &str, text: &str| {
                responses.entry(code.to_string()).or_insert_with(|| answer(text));
            };
            if method == "post" {
                add("400", "The body is not a JSON object (malformed, not UTF-8, too deep), or a field is missing");
                add("413", "The body is larger than the server's or the tenant's limit");
                add("422", "A field has the wrong type");
            }
            if !open {
                add("401", "No API key, or an unknown one (code 7007)");
                add("403", "The key may not do this (code 7008)");
                add("429", "A tenant quota is reached (code 7009)");
            }
        }
    }
}

fn api_router() -> OpenApiRouter<App> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(meta::health))
        .routes(routes!(meta::ready))
        .routes(routes!(openapi_json))
        .routes(routes!(execute::execute))
        .routes(routes!(execute::execute_batch))
        .routes(routes!(session::create))
        .routes(routes!(session::destroy))
        .routes(routes!(session::list))
        .routes(routes!(session::refresh))
        .routes(routes!(session::heartbeat))
        .routes(routes!(session::status))
        .routes(routes!(session::disconnect))
        .routes(routes!(session::init_resource))
        .routes(routes!(session::init_batch))
        .routes(routes!(session::init_from_config))
        .routes(routes!(meta::tools))
        .routes(routes!(meta::tool_schema))
        .routes(routes!(meta::warmup))
        .routes(routes!(meta::warmup_status))
        .routes(routes!(meta::shutdown))
        .routes(routes!(meta::metrics))
        .routes(routes!(snapshots::snapshot))
        .routes(routes!(snapshots::fork))
        .routes(routes!(snapshots::pause))
        .routes(routes!(snapshots::resume))
        .routes(routes!(snapshots::list))
        .routes(routes!(snapshots::restore))
        .routes(routes!(snapshots::delete))
        .routes(routes!(run::run))
        .routes(routes!(run::list))
        .routes(routes!(run::get, run::close))
        .routes(routes!(run::keep_alive))
        .routes(routes!(run::files))
        .routes(routes!(run::fork))
        .routes(routes!(run::pause))
        .routes(routes!(run::resume))
        .routes(routes!(run::snapshot))
}

/// The router of every route, with the body limit, the `Host` check, CORS for the
/// configured origins only, JSON 404/405 answers and the `Connection: close` policy.
pub fn router(app: App, server: &ServerConfig) -> Router {
    let (routes, _) = api_router().split_for_parts();
    openapi();
    let hosts = guard::HostCheck::of(server);
    let front = Arc::new(Front {
        policy: server.connection_close,
        e2b: e2b::inside_routes(app.clone(), server.max_body_bytes),
        scalebox: scalebox::inside_routes(app.clone(), server.max_body_bytes),
        cluster: app.sandboxes.clustered().then(|| (app.sandboxes.clone(), forward::client())),
    });
    // In a cluster, a worker another live node holds is served there (behind authentication:
    // a worker is its tenant's).
    let workers = app.sandboxes.clustered().then(|| {
        let (sandbox, client, max) = (app.sandbox.clone(), forward::client(), server.max_body_bytes);
        axum::middleware::from_fn(move |req: Request, next: Next| {
            forward::workers(sandbox.clone(), client.clone(), max, req, next)
        })
    });
    routes
        .route("/mcp", axum::routing::any(mcp::mcp))
        .merge(e2b::control_routes())
        .merge(scalebox::control_routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(server.max_body_bytes))
        .layer(tower::util::option_layer(workers))
        .layer(axum::middleware::from_fn_with_state(app.clone(), auth::authenticate))
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| dispatch(front.clone(), req, next)))
        .layer(tower::util::option_layer(guard::cors(server)))
        .layer(axum::middleware::from_fn(move |req: Request, next: Next| guard::check_host(hosts.clone(), req, next)))
        .with_state(app)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    let data = json!({"path": uri.path()});
    ApiError::bad_request(StatusCode::NOT_FOUND, "request", "Not Found").data(data)
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    let data = json!({"path": uri.path(), "method": method.as_str()});
    ApiError::bad_request(StatusCode::METHOD_NOT_ALLOWED, "request", "Method Not Allowed").data(data)
}

/// What [`dispatch`] needs: the connection policy and the routers inside the sandboxes.
struct Front {
    policy: ConnectionClose,
    e2b: Router,
    scalebox: Router,
    /// In a cluster: the sandboxes (to locate one) and the client that forwards.
    cluster: Option<(crate::sandboxes::Sandboxes, forward::Forwarder)>,
}

/// Middleware (one layer, not one per door, since every layer costs each request a clone and
/// a drop): requests inside a Scalebox or E2B sandbox go to that door's in-sandbox routes,
/// reached with the sandbox's token; every other request goes on under the connection
/// policy, to the routes behind the API-key middleware.
async fn dispatch(front: Arc<Front>, req: Request, next: Next) -> Response {
    use tower::ServiceExt;
    // In a cluster, a sandbox another live node runs is served there (see `forward`).
    if let Some((sandboxes, client)) = &front.cluster
        && !forward::was_forwarded(&req)
        && let Some(id) = match forward::named_sandbox(&req) {
            Some(id) => Some(id),
            // Scalebox's file and process routes carry the sandbox's token alone.
            None if scalebox::is_inside(req.uri().path()) => match scalebox::token_of(req.headers()) {
                Some(token) => sandboxes.sandbox_of_token(&token).await,
                None => None,
            },
            None => None,
        }
        && let crate::sandboxes::Located::There(address) = sandboxes.locate(&id).await
    {
        let node = sandboxes.facade().node().unwrap_or_default().to_string();
        return forward::forward(client, &address, &node, req).await;
    }
    let inside = if scalebox::is_inside(req.uri().path()) {
        &front.scalebox
    } else if e2b::is_inside(req.headers()) {
        &front.e2b
    } else {
        return connection_policy(front.policy, req, next).await;
    };
    match inside.clone().oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// AgentFlow's Python client reuses pooled connections across event loops in its `*_sync`
/// methods, which breaks against keep-alive servers (protocol §8.4). Closing the connection
/// after each response fixes it; `auto` does so only for that client (python-httpx), so
/// other clients keep their connections.
async fn connection_policy(policy: ConnectionClose, req: Request, next: Next) -> Response {
    let close = match policy {
        ConnectionClose::Always => true,
        ConnectionClose::Never => false,
        ConnectionClose::Auto => req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ua| ua.starts_with("python-httpx")),
    };
    let mut response = next.run(req).await;
    if close {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Serves `sandbox` on `listener` until Ctrl-C (or SIGTERM), the shutdown route, or
/// `stop` resolves; then ends every session and calls every backend's shutdown hook.
pub async fn serve(
    listener: TcpListener,
    sandbox: Sandbox,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let server = sandbox.config().server.clone();
    let app = App::new(sandbox.clone());
    let notify = app.shutdown.clone();
    let door = app.mcp.clone();
    let sandboxes = app.sandboxes.clone();
    sandboxes.bring_back().await;
    sandboxes.join(format!("http://{}", listener.local_addr()?)).await;
    let router = router(app, &server);
    let shutdown = async move {
        tokio::select! {
            _ = stop => {}
            _ = notify.notified() => {}
        }
        // Open MCP streams would hold the graceful shutdown forever.
        if let Some(door) = door {
            door.close();
        }
    };
    let tls = match (&server.tls_cert, &server.tls_key) {
        (Some(cert), Some(key)) => {
            let config = sandbox.config();
            let acceptor = tls::acceptor(&config.resolve(cert), &config.resolve(key)).map_err(std::io::Error::other)?;
            Some(acceptor)
        }
        _ => None,
    };
    match tls {
        Some(acceptor) => {
            tracing::info!(address = %listener.local_addr()?, "serving HTTP and HTTPS");
            let listener = tls::DualListener::new(listener, acceptor)?;
            axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
        }
        None => {
            tracing::info!(address = %listener.local_addr()?, "serving");
            // Streamed answers (NDJSON, Connect streams, SSE) are written in small pieces:
            // without TCP_NODELAY, Nagle's algorithm and the client's delayed ACK hold each
            // one back about 40 ms.
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, router).with_graceful_shutdown(shutdown).await?;
        }
    }
    // Kept for the next start with the sessions (`keep_on_shutdown`), else ended.
    let (kept, boxes) =
        if sandboxes.durable() { sandboxes.keep_all().await } else { (Vec::new(), sandboxes.end_all().await) };
    if boxes > 0 {
        tracing::info!(sandboxes_ended = boxes, sandboxes_kept = kept.len(), "sandboxes ended");
    }
    let ended = sandbox.shutdown().await;
    // Released only now that their contexts' sessions are kept (a cluster's node).
    sandboxes.leave(&kept).await;
    tracing::info!(sessions_ended = ended, "server stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
