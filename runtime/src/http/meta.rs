//! Health, readiness, tools, warmup and shutdown: the routes that answer raw JSON objects.

use super::App;
use super::auth::Who;
use super::error::ApiError;
use super::fields::flag;
use super::json::Body;
use super::requests::{ShutdownRequest, WarmupRequest};
use crate::engine::tools::ToolSpec;
use crate::envelope::timestamp;
use crate::sandbox::{WarmupOutcome, WarmupStatus};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Always 200 while the process serves.
#[utoipa::path(get, path = "/health", tag = "server", responses((status = 200, description = "Healthy", body = Object)))]
pub async fn health() -> Json<Value> {
    Json(json!({"status": "healthy", "timestamp": timestamp(chrono::Utc::now())}))
}

/// Tools, workers and sessions counts.
#[utoipa::path(get, path = "/ready", tag = "server", responses((status = 200, description = "Ready", body = Object)))]
pub async fn ready(State(app): State<App>) -> Json<Value> {
    let (workers, sessions) = app.sandbox.counts();
    Json(
        json!({"status": "ready", "tools_count": app.sandbox.tools_count(), "active_workers": workers, "total_sessions": sessions}),
    )
}

/// A tool as listed: AgentFlow's fields plus `needs_session` and the JSON Schema.
fn tool_json(t: &ToolSpec) -> Value {
    json!({
        "name": t.name, "full_name": t.full_name, "resource_type": t.resource_type, "stateless": t.stateless,
        "needs_session": t.needs_session, "description": t.description, "input_schema": t.input_schema,
    })
}

/// Parses a query bool the FastAPI way.
fn query_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// Every tool with its JSON Schema; hidden tools with `include_hidden=true`.
#[utoipa::path(get, path = "/api/v1/tools", tag = "tools",
    params(("include_hidden" = Option<bool>, Query, description = "Also list [HIDDEN] tools")),
    responses((status = 200, description = "`{tools, count}`", body = Object), (status = 422, description = "Bad include_hidden", body = Object)))]
pub async fn tools(
    State(app): State<App>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let include_hidden = match query.get("include_hidden") {
        None => false,
        Some(v) => query_bool(v).ok_or_else(|| {
            let message = format!("include_hidden must be a boolean, not '{v}'");
            ApiError::bad_request(StatusCode::UNPROCESSABLE_ENTITY, "tools", message)
        })?,
    };
    let tools: Vec<Value> = app.sandbox.tools(include_hidden).into_iter().map(tool_json).collect();
    Ok(Json(json!({"count": tools.len(), "tools": tools})))
}

/// One tool by full or unique simple name.
#[utoipa::path(get, path = "/api/v1/tools/{tool_name}/schema", tag = "tools",
    params(("tool_name" = String, Path, description = "Full (`kv:get`) or unique simple name")),
    responses((status = 200, description = "The tool with its JSON Schema", body = Object), (status = 404, description = "`{status: error, message}`", body = Object)))]
pub async fn tool_schema(State(app): State<App>, Path(name): Path<String>) -> (StatusCode, Json<Value>) {
    match app.sandbox.tool_schema(&name) {
        Some(t) => (StatusCode::OK, Json(tool_json(t))),
        None => (StatusCode::NOT_FOUND, Json(json!({"status": "error", "message": format!("Tool not found: {name}")}))),
    }
}

/// Warms the named backends (`backends`), or all when absent, null or empty. Always 200.
#[utoipa::path(post, path = "/api/v1/warmup", tag = "warmup",
    request_body(content = WarmupRequest, description = "Optional"),
    responses((status = 200, description = "`{status, results, summary[, errors]}`", body = Object)))]
pub async fn warmup(
    State(app): State<App>,
    who: Who,
    Body(request): Body<WarmupRequest>,
) -> Result<Json<WarmupOutcome>, ApiError> {
    who.require_admin(&app, "warmup")?;
    let names = request.backends.map(|n| n.0);
    Ok(Json(app.sandbox.warmup(names.as_deref()).await))
}

/// The warm state of every backend.
#[utoipa::path(get, path = "/api/v1/warmup/status", tag = "warmup", responses((status = 200, description = "`{backends, summary}`", body = Object)))]
pub async fn warmup_status(State(app): State<App>) -> Json<WarmupStatus> {
    Json(app.sandbox.warmup_status())
}

/// Ends every session (unless `cleanup_sessions` is false), answers, then stops the server
/// gracefully: backends' shutdown hooks run and the process exits 0.
#[utoipa::path(post, path = "/api/v1/server/shutdown", tag = "server",
    request_body(content = ShutdownRequest, description = "Optional"),
    responses((status = 200, description = "`{status, message, sessions_cleaned}`", body = Object)))]
pub async fn shutdown(
    State(app): State<App>,
    who: Who,
    Body(request): Body<ShutdownRequest>,
) -> Result<Json<Value>, ApiError> {
    who.require_admin(&app, "server:shutdown")?;
    let cleanup = flag(request.cleanup_sessions, true);
    let cleaned = if cleanup { app.sandbox.close_sessions().await } else { 0 };
    tracing::info!(sessions_cleaned = cleaned, "shutdown requested over HTTP");
    app.shutdown.notify_one();
    Ok(Json(json!({"status": "success", "message": "Server shutdown initiated", "sessions_cleaned": cleaned})))
}

/// Prometheus metrics (OpenMetrics text). Needs the admin key when the server has keys.
#[utoipa::path(get, path = "/metrics", tag = "server",
    responses((status = 200, description = "OpenMetrics text", content_type = "application/openmetrics-text", body = String),
              (status = 403, description = "Not the admin key", body = Object)))]
pub async fn metrics(State(app): State<App>, who: Who) -> Result<Response, ApiError> {
    who.require_admin(&app, "metrics")?;
    let text = app.sandbox.metrics_text();
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], text).into_response())
}
