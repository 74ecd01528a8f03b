//! Scalebox's control plane: `/v1/sandboxes` create, get, list, timeout, connect and an
//! idempotent delete, in the `{success, data}` envelope with snake_case fields (the SDK
//! turns them into camelCase). Pause snapshots the sandbox's interpreters and frees them; connect and resume restore them.

use super::{ScaleboxError, ok};
use crate::http::App;
use crate::http::auth::Who;
use crate::sandboxes::{SandboxSpec, Sbx, timeout_s};
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The home directory of Scalebox's sandboxes.
const HOME: &str = "/workspace";

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/v1/sandboxes", post(create).get(list))
        .route("/v1/sandboxes/{id}", get(info).delete(kill))
        .route("/v1/sandboxes/{id}/timeout", post(timeout))
        .route("/v1/sandboxes/{id}/connect", post(connect))
        .route("/v1/sandboxes/{id}/pause", post(pause))
        .route("/v1/sandboxes/{id}/resume", post(resume))
}

/// The domain to hand back: the configured one, else the `Host` the client used.
fn domain(app: &App, headers: &HeaderMap) -> String {
    if let Some(d) = &app.sandbox.config().server.sandbox_domain {
        return d.clone();
    }
    headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_string()
}

/// A sandbox as the control plane describes it.
fn described(app: &App, sbx: &Sbx, domain: &str) -> Value {
    let server = &app.sandbox.config().server;
    let timeout = (sbx.end_at() - sbx.started_at).num_seconds().max(0);
    json!({
        "sandbox_id": sbx.id,
        "template_id": sbx.template,
        "template_name": sbx.template,
        "name": sbx.id,
        "metadata": sbx.metadata,
        "status": if sbx.paused() { "paused" } else { "running" },
        "started_at": sbx.started_at.to_rfc3339(),
        "created_at": sbx.started_at.to_rfc3339(),
        "timeout_at": sbx.end_at().to_rfc3339(),
        "timeout": timeout,
        "cpu_count": 1,
        "memory_mb": server.limits.memory_mb,
        "env_vars": sbx.env,
        "sandbox_domain": domain,
        "envd_access_token": sbx.token,
    })
}

/// `POST /v1/sandboxes`'s body (unknown fields, such as `secure`, are ignored).
#[derive(Debug, Default, Deserialize)]
struct NewSandbox {
    template: Option<String>,
    timeout: Option<i64>,
    metadata: Option<Map<String, Value>>,
    env_vars: Option<BTreeMap<String, String>>,
}

async fn create(
    State(app): State<App>,
    who: Who,
    headers: HeaderMap,
    body: Result<axum::Json<NewSandbox>, JsonRejection>,
) -> Result<axum::Json<Value>, ScaleboxError> {
    let tenant = who.sandbox_owner()?;
    let axum::Json(body) = body?;
    // Scalebox's metadata values may be any JSON; they are kept as text.
    let metadata = body
        .metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
        .collect();
    let spec = SandboxSpec {
        template: body.template.unwrap_or_else(|| "code-interpreter".into()),
        timeout_s: body.timeout.map(timeout_s).transpose()?,
        metadata,
        env: body.env_vars.unwrap_or_default(),
        home: HOME.into(),
    };
    let sbx = app.sandboxes.create(&tenant, spec).await?;
    Ok(ok(described(&app, &sbx, &domain(&app, &headers))))
}

async fn info(
    State(app): State<App>,
    who: Who,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ScaleboxError> {
    let sbx = app.sandboxes.get(&who.sandbox_owner()?, &id)?;
    Ok(ok(described(&app, &sbx, &domain(&app, &headers))))
}

async fn list(State(app): State<App>, who: Who, headers: HeaderMap) -> Result<axum::Json<Value>, ScaleboxError> {
    let tenant = who.sandbox_owner()?;
    let domain = domain(&app, &headers);
    let all: Vec<Value> = app.sandboxes.list(&tenant).iter().map(|b| described(&app, b, &domain)).collect();
    Ok(ok(json!({"sandboxes": all, "total": all.len()})))
}

/// `{"timeout": seconds}`.
#[derive(Debug, Default, Deserialize)]
struct Timeout {
    timeout: Option<i64>,
}

async fn timeout(
    State(app): State<App>,
    who: Who,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<axum::Json<Timeout>, JsonRejection>,
) -> Result<axum::Json<Value>, ScaleboxError> {
    let sbx = app.sandboxes.get(&who.sandbox_owner()?, &id)?;
    let axum::Json(body) = body?;
    let t = body
        .timeout
        .map(timeout_s)
        .transpose()?
        .ok_or_else(|| ScaleboxError::new(StatusCode::BAD_REQUEST, "timeout is required"))?;
    app.sandboxes.set_timeout(&sbx, t);
    Ok(ok(described(&app, &sbx, &domain(&app, &headers))))
}

async fn connect(
    State(app): State<App>,
    who: Who,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<axum::Json<Value>, ScaleboxError> {
    let sbx = app.sandboxes.get(&who.sandbox_owner()?, &id)?;
    // The SDK sends no body when it asks for no timeout (with a JSON content type all the same).
    let body: Timeout = if body.iter().all(u8::is_ascii_whitespace) {
        Timeout::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ScaleboxError::new(StatusCode::BAD_REQUEST, format!("the body is not a JSON timeout: {e}")))?
    };
    let t = body.timeout.map(timeout_s).transpose()?;
    // Connecting to a paused sandbox resumes it.
    app.sandboxes.resume(&sbx, t).await?;
    Ok(ok(described(&app, &sbx, &domain(&app, &headers))))
}

/// Ends a sandbox. Idempotent: the SDK's `Session.close` deletes twice, so a sandbox that is
/// already gone (or was never the caller's) answers success too, and reveals nothing.
async fn kill(State(app): State<App>, who: Who, Path(id): Path<String>) -> Result<axum::Json<Value>, ScaleboxError> {
    let killed = app.sandboxes.kill(&who.sandbox_owner()?, &id).await;
    Ok(ok(json!({"sandbox_id": id, "deleted": killed})))
}

/// Pauses a sandbox: its interpreters are snapshotted and freed; `connect`, `resume` or the
/// next code resumes it.
async fn pause(
    State(app): State<App>,
    who: Who,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ScaleboxError> {
    let sbx = app.sandboxes.get(&who.sandbox_owner()?, &id)?;
    app.sandboxes.pause(&sbx).await?;
    Ok(ok(described(&app, &sbx, &domain(&app, &headers))))
}

/// Resumes a paused sandbox.
async fn resume(
    State(app): State<App>,
    who: Who,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<axum::Json<Value>, ScaleboxError> {
    let sbx = app.sandboxes.get(&who.sandbox_owner()?, &id)?;
    app.sandboxes.resume(&sbx, None).await?;
    Ok(ok(described(&app, &sbx, &domain(&app, &headers))))
}
