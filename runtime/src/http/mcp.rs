//! `/mcp`: the MCP front door ([`crate::mcp`]) over Streamable HTTP, with tenancy.
//!
//! Authentication is the router's (the same keys as `/api/v1`). On top of it, each MCP
//! session belongs to the tenant whose key opened it: a request or a `DELETE` that names
//! another tenant's MCP session is refused with 403 (7008) before rmcp sees it.

use super::App;
use super::auth::Who;
use super::error::ApiError;
use super::json::TenantBodyLimit;
use crate::codes;
use crate::mcp::{McpTools, McpWorker, TenantSource};
use crate::sandbox::Sandbox;
use crate::sandbox::snapstore::{Owned, SnapshotStore};
use crate::sandbox::tenancy::Identity;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tower::Service;

const SESSION_HEADER: &str = "mcp-session-id";

/// The MCP endpoint: rmcp's Streamable HTTP service and who owns each MCP session.
pub struct McpDoor {
    service: StreamableHttpService<McpWorker, LocalSessionManager>,
    manager: Arc<LocalSessionManager>,
    owners: Mutex<HashMap<String, Arc<str>>>,
    cancel: CancellationToken,
    /// In a cluster: the store where each MCP session names its node, this node's id, and
    /// the client that forwards a request for another node's MCP session there.
    cluster: Option<(SnapshotStore, String, super::forward::Forwarder)>,
}

impl McpDoor {
    /// The endpoint over `sandbox`. An MCP session idle for `server.session_ttl` seconds
    /// ends, and with it its Cella sessions.
    pub fn new(sandbox: &Sandbox) -> McpDoor {
        let server = &sandbox.config().server;
        let tools = Arc::new(McpTools::of(sandbox));
        let mut manager = LocalSessionManager::default();
        manager.session_config.keep_alive = Some(crate::config::seconds(server.session_ttl));
        let manager = Arc::new(manager);
        let cancel = CancellationToken::new();
        let mut config = StreamableHttpServerConfig::default()
            .with_cancellation_token(cancel.clone())
            .with_max_request_body_bytes(server.max_body_bytes);
        config = if server.mcp.allowed_hosts.is_empty() {
            config.disable_allowed_hosts()
        } else {
            // The server-wide extra names hold here too, and the names other nodes of a
            // cluster forward to: its own address and the one it advertises.
            let own = server.cluster.enabled.then(|| server.host.trim_matches(['[', ']']).to_string());
            let advertised = super::guard::advertised_host(server);
            let names = server.mcp.allowed_hosts.iter().chain(&server.allowed_hosts).cloned();
            config.with_allowed_hosts(names.chain(own).chain(advertised))
        };
        let this = sandbox.clone();
        let service = StreamableHttpService::new(
            move || Ok(McpWorker::new(this.clone(), tools.clone(), TenantSource::Request(identity_of))),
            manager.clone(),
            config,
        );
        let cluster = server
            .cluster
            .enabled
            .then(|| {
                sandbox.node().map(|me| (sandbox.snapshot_store().clone(), me.to_string(), super::forward::client()))
            })
            .flatten();
        McpDoor { service, manager, owners: Mutex::new(HashMap::new()), cancel, cluster }
    }

    /// Ends every MCP session and its open streams (the server is stopping).
    pub fn close(&self) {
        self.cancel.cancel();
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<str>>> {
        self.owners.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the owners of MCP sessions that have ended (expired, deleted, closed); in a
    /// cluster, their records in the store go too.
    fn prune(&self) {
        let Ok(live) = self.manager.sessions.try_read() else { return };
        let mut gone = Vec::new();
        self.owners().retain(|id, _| {
            let keep = live.contains_key(id.as_str());
            if !keep {
                gone.push(id.clone());
            }
            keep
        });
        if let Some((store, me, _)) = self.cluster.clone()
            && !gone.is_empty()
        {
            tokio::spawn(async move {
                for id in gone {
                    let _ = store.disown_if(Owned::Mcp(&id), &me).await;
                }
            });
        }
    }

    /// In a cluster: where the live node that holds MCP session `id` is reached, when it is
    /// not this one. An MCP session's state is its node's: one whose node died is gone (the
    /// client gets 404 and, as the MCP spec says, starts a new session).
    async fn elsewhere(&self, id: &str) -> Option<String> {
        let (store, me, _) = self.cluster.as_ref()?;
        if self.manager.sessions.read().await.contains_key(id) {
            return None;
        }
        let owner = store.owner_of(Owned::Mcp(id)).await.ok()??;
        if owner.node == *me {
            return None;
        }
        store.live_address(&owner.node).await.ok()?
    }
}

/// `GET|POST|DELETE /mcp`.
pub async fn mcp(State(app): State<App>, who: Who, mut req: Request) -> Response {
    let Some(door) = app.mcp.clone() else {
        let message = "the MCP front door is disabled (server.mcp.enabled)";
        return ApiError::new("mcp", codes::INVALID_REQUEST_FORMAT, message, Value::Null)
            .status(StatusCode::NOT_FOUND)
            .into_response();
    };
    let Some(tenant) = who.0.tenant() else {
        return forbidden("admin keys manage the server; use a tenant key for MCP");
    };
    let session = req.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(id) = &session
        && !super::forward::was_forwarded(&req)
        && let Some(address) = door.elsewhere(id).await
        && let Some((_, me, client)) = &door.cluster
    {
        return super::forward::forward(client, &address, me, req).await;
    }
    if let Some(id) = &session
        && door.owners().get(id).is_some_and(|owner| *owner != tenant)
    {
        tracing::warn!(tenant = %tenant, mcp_session = %id, "refused: another tenant's MCP session");
        return forbidden("this MCP session belongs to another tenant");
    }
    if let Some(TenantBodyLimit(limit)) = req.extensions().get::<TenantBodyLimit>().copied() {
        if req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .is_some_and(|n| n > limit)
        {
            let message = format!("the request body is larger than the tenant's limit of {limit} bytes");
            return ApiError::new("mcp", codes::INVALID_REQUEST_FORMAT, message, Value::Null)
                .status(StatusCode::PAYLOAD_TOO_LARGE)
                .into_response();
        }
        req = req.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
    }
    let deleting = req.method() == Method::DELETE;
    let Ok(response) = door.service.clone().call(req).await;
    if session.is_none()
        && let Some(id) = response.headers().get(SESSION_HEADER).and_then(|v| v.to_str().ok())
    {
        door.prune();
        door.owners().insert(id.to_string(), tenant.clone());
        // Recorded before the client learns the id: its next request may reach another node.
        if let Some((store, me, _)) = &door.cluster
            && let Err(e) = store.own(Owned::Mcp(id), &tenant, me).await
        {
            tracing::warn!(mcp_session = %id, error = %e, "cannot record this node as the MCP session's");
        }
    }
    if deleting
        && response.status().is_success()
        && let Some(id) = &session
    {
        door.owners().remove(id);
        if let Some((store, me, _)) = &door.cluster {
            let _ = store.disown_if(Owned::Mcp(id), me).await;
        }
    }
    let mut response = response.map(Body::new);
    // rmcp answers a session's DELETE with 202; clients (the Python SDK among them) expect
    // 200 or 204 for a session that is gone, which it is.
    if deleting && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

/// The identity [`super::auth::authenticate`] recorded, in the request parts rmcp keeps.
fn identity_of(extensions: &rmcp::model::Extensions) -> Option<Identity> {
    extensions.get::<axum::http::request::Parts>().and_then(|p| p.extensions.get::<Identity>()).cloned()
}

fn forbidden(message: &str) -> Response {
    ApiError::new("mcp", codes::FORBIDDEN, message, Value::Null).into_response()
}
