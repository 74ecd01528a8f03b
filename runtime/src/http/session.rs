//! Session, lifecycle, worker and init routes (AgentFlow §6.5–6.14).

use super::App;
use super::auth::Who;
use super::error::{Answer, ApiError, ok};
use super::fields::non_empty;
use super::json::Body;
use super::requests::{
    DisconnectRequest, HeartbeatRequest, InitBatchRequest, InitFromConfigRequest, InitResourceRequest,
    SessionCreateRequest, SessionListRequest, SessionRefreshRequest, SessionRequest, StatusRequest, worker,
    worker_and_type,
};
use crate::codes;
use crate::envelope::{Envelope, timestamp};
use crate::sandbox::session::Caller;
use crate::sandbox::{CreateStatus, Refusal};
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

type Schema = Envelope;

/// Creates a session; an existing one is returned as `exists` (200), a failed initialize
/// answers 500 with code 4007 and leaves an `error` session.
#[utoipa::path(post, path = "/api/v1/session/create", tag = "session",
    request_body = SessionCreateRequest,
    responses((status = 200, description = "Created (`session_status: active`) or already there (`status: exists`)", body = Schema),
              (status = 400, description = "Missing field or unknown resource type", body = Schema),
              (status = 500, description = "initialize failed (code 4007)", body = Schema)))]
pub async fn create(State(app): State<App>, who: Who, Body(request): Body<SessionCreateRequest>) -> Answer {
    const TOOL: &str = "session:create";
    let (worker, rt) = worker_and_type(TOOL, &request.worker_id, &request.resource_type)?;
    let caller = who.caller(TOOL, worker)?;
    let custom = request.custom_name.map(|t| t.0);
    let config = Value::Object(request.session_config.0);
    let pause_on_timeout = match non_empty(&request.on_timeout).as_deref() {
        None | Some("end") => false,
        Some("pause") => true,
        Some(other) => {
            return Err(ApiError::new(
                TOOL,
                codes::INVALID_PARAMETER_TYPE,
                format!("on_timeout must be \"end\" or \"pause\", not {other:?}"),
                json!({"on_timeout": other}),
            ));
        }
    };
    let extras = crate::sandbox::Extras { pause_on_timeout, ..Default::default() };
    let created =
        app.sandbox.create_session_with(&caller, &rt, config, custom.as_deref(), extras).await.map_err(|r| {
            ApiError::refused(TOOL, r).when(codes::RESOURCE_NOT_INITIALIZED, StatusCode::INTERNAL_SERVER_ERROR)
        })?;
    let s = created.session;
    match created.status {
        CreateStatus::Exists => ok(
            TOOL,
            json!({"status": "exists", "session_id": s.session_id, "session_name": s.session_name, "resource_type": rt}),
            Some(s.session_id.clone()),
        ),
        CreateStatus::Created => ok(
            TOOL,
            json!({"session_id": s.session_id, "session_name": s.session_name, "resource_type": rt,
                   "session_status": "active", "error": null, "data": s.data}),
            Some(s.session_id.clone()),
        ),
        CreateStatus::Failed => Err(ApiError::new(
            TOOL,
            codes::RESOURCE_NOT_INITIALIZED,
            "Session creation failed",
            json!({"session_id": s.session_id, "session_name": s.session_name, "resource_type": rt,
                   "session_status": "error", "error": s.error}),
        )
        .status(StatusCode::INTERNAL_SERVER_ERROR)
        .session(s.session_id)),
    }
}

/// Destroys a session (cleanup runs); 404 with code 4007 when there is none.
#[utoipa::path(post, path = "/api/v1/session/destroy", tag = "session",
    request_body = SessionRequest,
    responses((status = 200, description = "Destroyed", body = Schema), (status = 400, description = "Missing field", body = Schema),
              (status = 404, description = "No such session (code 4007)", body = Schema)))]
pub async fn destroy(State(app): State<App>, who: Who, Body(request): Body<SessionRequest>) -> Answer {
    const TOOL: &str = "session:destroy";
    let (worker, rt) = worker_and_type(TOOL, &request.worker_id, &request.resource_type)?;
    let s = app.sandbox.destroy_session(&who.caller(TOOL, worker)?, &rt).await.map_err(|r| not_found(TOOL, r))?;
    ok(
        TOOL,
        json!({"message": format!("Session destroyed for {rt}"), "session_id": s.session_id, "session_name": s.session_name, "resource_type": rt}),
        Some(s.session_id),
    )
}

/// A refusal where a missing session is 404, as AgentFlow answers on these routes.
fn not_found(tool: &str, refusal: Refusal) -> ApiError {
    ApiError::refused(tool, refusal).when(codes::RESOURCE_NOT_INITIALIZED, StatusCode::NOT_FOUND)
}

/// Lists a worker's sessions (unknown workers get an empty list).
#[utoipa::path(post, path = "/api/v1/session/list", tag = "session",
    request_body = SessionListRequest,
    responses((status = 200, description = "The sessions", body = Schema), (status = 400, description = "Missing worker_id", body = Schema)))]
pub async fn list(State(app): State<App>, who: Who, Body(request): Body<SessionListRequest>) -> Answer {
    const TOOL: &str = "session:list";
    let worker = worker(TOOL, &request.worker_id)?;
    let sessions = app.sandbox.list_sessions(&who.caller(TOOL, worker.clone())?);
    ok(TOOL, json!({"worker_id": worker, "count": sessions.len(), "sessions": sessions}), None)
}

/// Renews the TTL of one session (404 when there is none) or of all the worker's sessions.
#[utoipa::path(post, path = "/api/v1/session/refresh", tag = "session",
    request_body = SessionRefreshRequest,
    responses((status = 200, description = "Refreshed", body = Schema), (status = 400, description = "Missing worker_id", body = Schema),
              (status = 404, description = "No such session (code 4007)", body = Schema)))]
pub async fn refresh(State(app): State<App>, who: Who, Body(request): Body<SessionRefreshRequest>) -> Answer {
    const TOOL: &str = "session:refresh";
    let worker = worker(TOOL, &request.worker_id)?;
    let rt = non_empty(&request.resource_type);
    let caller = who.caller(TOOL, worker.clone())?;
    let refreshed = app.sandbox.refresh_sessions(&caller, rt.as_deref()).map_err(|r| not_found(TOOL, r))?;
    if let Some(rt) = rt {
        let s = &refreshed.sessions[&rt];
        return ok(
            TOOL,
            json!({"message": format!("Session refreshed for {rt}"), "resource_type": rt, "session_id": s.session_id, "expires_at": s.expires_at}),
            Some(s.session_id.clone()),
        );
    }
    let details: Map<String, Value> = refreshed
        .sessions
        .iter()
        .map(|(rt, s)| {
            (rt.clone(), json!({"status": "refreshed", "session_id": s.session_id, "expires_at": s.expires_at}))
        })
        .collect();
    ok(
        TOOL,
        json!({"message": format!("Refreshed {} sessions", details.len()), "worker_id": worker, "refreshed_count": details.len(), "details": details}),
        None,
    )
}

/// Reports the worker's session types; renews nothing.
#[utoipa::path(post, path = "/api/v1/lifecycle/heartbeat", tag = "lifecycle",
    request_body = HeartbeatRequest,
    responses((status = 200, description = "Alive", body = Schema), (status = 400, description = "Missing worker_id", body = Schema)))]
pub async fn heartbeat(State(app): State<App>, who: Who, Body(request): Body<HeartbeatRequest>) -> Answer {
    const TOOL: &str = "session:heartbeat";
    let worker = worker(TOOL, &request.worker_id)?;
    let sessions = app.sandbox.list_sessions(&who.caller(TOOL, worker.clone())?);
    let types: Vec<String> = sessions.into_iter().map(|s| s.resource_type).collect();
    ok(TOOL, json!({"worker_id": worker, "active_sessions": types, "timestamp": timestamp(chrono::Utc::now())}), None)
}

/// The worker's sessions and the number of tools.
#[utoipa::path(post, path = "/api/v1/lifecycle/status", tag = "lifecycle",
    request_body = StatusRequest,
    responses((status = 200, description = "Status", body = Schema), (status = 400, description = "Missing worker_id", body = Schema)))]
pub async fn status(State(app): State<App>, who: Who, Body(request): Body<StatusRequest>) -> Answer {
    const TOOL: &str = "session:status";
    let worker = worker(TOOL, &request.worker_id)?;
    let sessions = app.sandbox.list_sessions(&who.caller(TOOL, worker.clone())?);
    let active: Vec<&String> = sessions.iter().map(|s| &s.resource_type).collect();
    let by_type: Map<String, Value> = sessions
        .iter()
        .map(|s| {
            (s.resource_type.clone(), json!({"session_id": s.session_id, "status": s.status, "created_at": s.created_at, "last_activity": s.last_activity}))
        })
        .collect();
    ok(
        TOOL,
        json!({"worker_id": worker, "active_resources": active, "sessions": by_type, "tools_available": app.sandbox.tools_count()}),
        None,
    )
}

/// Ends every session of the worker and forgets it; always 200.
#[utoipa::path(post, path = "/api/v1/worker/disconnect", tag = "lifecycle",
    request_body = DisconnectRequest,
    responses((status = 200, description = "Disconnected", body = Schema), (status = 422, description = "Missing worker_id", body = Schema)))]
pub async fn disconnect(State(app): State<App>, who: Who, Body(request): Body<DisconnectRequest>) -> Answer {
    const TOOL: &str = "session:disconnect";
    let worker = request.worker_id.0;
    let cleaned = app.sandbox.disconnect(&who.caller(TOOL, worker.clone())?).await;
    ok(TOOL, json!({"worker_id": worker, "sessions_cleaned": cleaned}), None)
}

/// get-or-create one session: (worker, type) → `session_status`.
async fn init_one(
    app: &App,
    caller: &Caller,
    rt: &str,
    config: Value,
) -> Result<(String, String, Option<String>), Refusal> {
    let created = app.sandbox.create_session(caller, rt, config, None).await?;
    if created.status == CreateStatus::Exists {
        // AgentFlow's init routes renew an existing session's TTL.
        let _ = app.sandbox.refresh_sessions(caller, Some(rt));
    }
    Ok((created.session.session_id, created.session.status, created.session.error))
}

/// Creates (or returns) one session; 500 with code 4007 when it is not active.
#[utoipa::path(post, path = "/api/v1/init/resource", tag = "init",
    request_body = InitResourceRequest,
    responses((status = 200, description = "Active", body = Schema), (status = 422, description = "Missing field", body = Schema),
              (status = 500, description = "Initialisation failed (code 4007)", body = Schema)))]
pub async fn init_resource(State(app): State<App>, who: Who, Body(request): Body<InitResourceRequest>) -> Answer {
    const TOOL: &str = "init:resource";
    let rt = request.resource_type.0;
    let caller = who.caller(TOOL, request.worker_id.0)?;
    let (id, status, error) =
        init_one(&app, &caller, &rt, Value::Object(request.init_config.0)).await.map_err(|r| {
            ApiError::refused(TOOL, r).when(codes::RESOURCE_NOT_INITIALIZED, StatusCode::INTERNAL_SERVER_ERROR)
        })?;
    let data = json!({"session_id": id, "resource_type": rt, "session_status": status, "error": error});
    if status != "active" {
        let failed = ApiError::new(TOOL, codes::RESOURCE_NOT_INITIALIZED, "Resource initialization failed", data);
        return Err(failed.status(StatusCode::INTERNAL_SERVER_ERROR));
    }
    ok(TOOL, data, Some(id))
}

/// Creates (or returns) several sessions; 200 / 207 / 500 as they succeed.
#[utoipa::path(post, path = "/api/v1/init/batch", tag = "init",
    request_body = InitBatchRequest,
    responses((status = 200, description = "All active", body = Schema), (status = 207, description = "Some failed (code 5010)", body = Schema),
              (status = 422, description = "Bad field", body = Schema), (status = 500, description = "All failed (code 5009)", body = Schema)))]
pub async fn init_batch(State(app): State<App>, who: Who, Body(request): Body<InitBatchRequest>) -> Answer {
    const TOOL: &str = "init:batch";
    let worker = request.worker_id.0;
    let caller = who.caller(TOOL, worker.clone())?;
    let mut results = Map::new();
    let mut succeeded = 0;
    for (rt, value) in request.resource_configs.0 {
        let config = value.get("content").cloned().unwrap_or(value);
        let config = if config.is_object() { config } else { json!({}) };
        let result = match init_one(&app, &caller, &rt, config).await {
            Ok((id, status, error)) => {
                let success = status == "active";
                succeeded += usize::from(success);
                json!({"status": if success { "success" } else { "error" }, "session_id": id, "session_status": status, "error": error})
            }
            Err(r) => json!({"status": "error", "message": r.message}),
        };
        results.insert(rt, result);
    }
    let total = results.len();
    let data = json!({"worker_id": worker, "results": results, "total": total, "success_count": succeeded});
    if succeeded == total {
        ok(TOOL, data, None)
    } else if succeeded == 0 {
        Err(ApiError::new(TOOL, codes::ALL_REQUESTS_FAILED, "All resources failed to initialize", data))
    } else {
        let message = format!("{} out of {total} resources failed", total - succeeded);
        Err(ApiError::new(TOOL, codes::PARTIAL_FAILURE, message, data))
    }
}

/// Echoes a JSON config file with overrides applied. Only files inside
/// `server.init_config_dir` can be read; without it the route is disabled, so a client can
/// never make the server read an arbitrary path.
#[utoipa::path(post, path = "/api/v1/init/from-config", tag = "init",
    request_body = InitFromConfigRequest,
    responses((status = 200, description = "The merged config", body = Schema), (status = 403, description = "Disabled, or a path outside the allowed directory", body = Schema),
              (status = 404, description = "No such file (code 4002)", body = Schema), (status = 422, description = "Bad field", body = Schema)))]
pub async fn init_from_config(State(app): State<App>, who: Who, Body(request): Body<InitFromConfigRequest>) -> Answer {
    const TOOL: &str = "init:from_config";
    who.caller(TOOL, request.worker_id.0)?;
    let path = request.config_path.0;
    let refuse = |status: StatusCode, code: i32, message: String| {
        ApiError::new(TOOL, code, message, json!({"config_path": path})).status(status)
    };
    let Some(dir) = app.init_config_dir.clone() else {
        let message = "init/from-config is disabled: the server reads config files only from server.init_config_dir";
        return Err(refuse(StatusCode::FORBIDDEN, codes::INVALID_REQUEST_FORMAT, message.into()));
    };
    let requested = std::path::Path::new(&path);
    if requested.is_absolute() || requested.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        let message = "config_path must be a relative path inside server.init_config_dir";
        return Err(refuse(StatusCode::FORBIDDEN, codes::INVALID_REQUEST_FORMAT, message.into()));
    }
    let full = dir.join(requested);
    // File reads block: off the async threads.
    let text = tokio::task::spawn_blocking(move || std::fs::read_to_string(full)).await;
    let Ok(Ok(text)) = text else {
        let message = format!("Config file not found: {path}");
        return Err(refuse(StatusCode::NOT_FOUND, codes::INVALID_REQUEST_FORMAT, message));
    };
    let mut config: Value = serde_json::from_str(&text)
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, codes::UNEXPECTED_ERROR, format!("{path}: {e}")))?;
    if let Some(map) = config.as_object_mut() {
        for (k, v) in request.override_params.0 {
            if let Some(existing) = map.get_mut(&k) {
                match (existing.as_object_mut(), v) {
                    (Some(e), Value::Object(o)) => e.extend(o),
                    (_, v) => *existing = v,
                }
            }
        }
    }
    ok(TOOL, json!({"config_loaded": path, "config": config}), None)
}
