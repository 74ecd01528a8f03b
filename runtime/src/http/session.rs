//! Session, lifecycle, worker and init routes (AgentFlow §6.5–6.14).

use super::App;
use super::auth::Who;
use super::body::Body;
use super::extract::RawBody;
use super::reply::Reply;
use crate::codes;
use crate::envelope::timestamp;
use crate::sandbox::session::Caller;
use crate::sandbox::{CreateStatus, Refusal};
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

type Schema = super::schema::EnvelopeSchema;

/// Parses a body or returns the error reply from the enclosing handler.
macro_rules! body {
    ($bytes:expr, $tool:expr, $status:expr) => {
        match Body::parse(&$bytes, $tool, $status) {
            Ok(b) => b,
            Err(r) => return r,
        }
    };
}

/// Unwraps a field or returns the error reply from the enclosing handler.
macro_rules! field {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(r) => return r,
        }
    };
}

/// The status AgentFlow gives a refusal on session routes.
fn refusal(tool: &str, r: Refusal, not_found: StatusCode) -> Reply {
    let status = match r.code {
        codes::RESOURCE_NOT_INITIALIZED => not_found,
        codes::UNAUTHENTICATED => StatusCode::UNAUTHORIZED,
        codes::FORBIDDEN => StatusCode::FORBIDDEN,
        codes::QUOTA_EXCEEDED => StatusCode::TOO_MANY_REQUESTS,
        codes::CAPACITY_EXHAUSTED => StatusCode::SERVICE_UNAVAILABLE,
        codes::SHUTTING_DOWN => StatusCode::SERVICE_UNAVAILABLE,
        c if (4000..5000).contains(&c) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Reply::fail(status, tool, r.code, r.message, r.data)
}

/// Requires worker_id and resource_type, with AgentFlow's message when either is missing.
fn worker_and_type(body: &Body) -> Result<(String, String), Reply> {
    let worker = body.opt_str("worker_id")?.filter(|s| !s.is_empty());
    let rt = body.opt_str("resource_type")?.filter(|s| !s.is_empty());
    match (worker, rt) {
        (Some(w), Some(r)) => Ok((w, r)),
        (w, r) => Err(Reply::fail(
            StatusCode::BAD_REQUEST,
            body.tool,
            codes::INVALID_REQUEST_FORMAT,
            "worker_id and resource_type required",
            json!({"worker_id": w, "resource_type": r}),
        )),
    }
}

fn worker_only(body: &Body) -> Result<String, Reply> {
    body.opt_str("worker_id")?.filter(|s| !s.is_empty()).ok_or_else(|| {
        Reply::fail(
            StatusCode::BAD_REQUEST,
            body.tool,
            codes::INVALID_REQUEST_FORMAT,
            "worker_id required",
            json!({"worker_id": null}),
        )
    })
}

/// Creates a session; an existing one is returned as `exists` (200), a failed initialize
/// answers 500 with code 4007 and leaves an `error` session.
#[utoipa::path(post, path = "/api/v1/session/create", tag = "session",
    request_body = super::schema::SessionCreateRequest,
    responses((status = 200, description = "Created (`session_status: active`) or already there (`status: exists`)", body = Schema),
              (status = 400, description = "Missing field or unknown resource type", body = Schema),
              (status = 500, description = "initialize failed (code 4007)", body = Schema)))]
pub async fn create(State(app): State<App>, who: Who, RawBody(bytes): RawBody) -> Reply {
    let body = body!(bytes, "session:create", StatusCode::BAD_REQUEST);
    let (worker, rt) = field!(worker_and_type(&body));
    let config = field!(body.obj("session_config"));
    let custom = field!(body.opt_str("custom_name"));
    match app
        .sandbox
        .create_session(&field!(who.caller("session:create", worker)), &rt, config, custom.as_deref())
        .await
    {
        Err(r) => refusal("session:create", r, StatusCode::INTERNAL_SERVER_ERROR),
        Ok(created) => {
            let s = created.session;
            match created.status {
                CreateStatus::Exists => Reply::ok(
                    "session:create",
                    json!({"status": "exists", "session_id": s.session_id, "session_name": s.session_name, "resource_type": rt}),
                    Some(s.session_id.clone()),
                ),
                CreateStatus::Created => Reply::ok(
                    "session:create",
                    json!({"session_id": s.session_id, "session_name": s.session_name, "resource_type": rt,
                           "session_status": "active", "error": null, "data": s.data}),
                    Some(s.session_id.clone()),
                ),
                CreateStatus::Failed => {
                    let mut reply = Reply::fail(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "session:create",
                        codes::RESOURCE_NOT_INITIALIZED,
                        "Session creation failed",
                        json!({"session_id": s.session_id, "session_name": s.session_name, "resource_type": rt,
                               "session_status": "error", "error": s.error}),
                    );
                    reply.body["meta"]["session_id"] = json!(s.session_id);
                    reply
                }
            }
        }
    }
}

/// Destroys a session (cleanup runs); 404 with code 4007 when there is none.
#[utoipa::path(post, path = "/api/v1/session/destroy", tag = "session",
    request_body = super::schema::SessionRequest,
    responses((status = 200, description = "Destroyed", body = Schema), (status = 400, description = "Missing field", body = Schema),
              (status = 404, description = "No such session (code 4007)", body = Schema)))]
pub async fn destroy(State(app): State<App>, who: Who, RawBody(bytes): RawBody) -> Reply {
    let body = body!(bytes, "session:destroy", StatusCode::BAD_REQUEST);
    let (worker, rt) = field!(worker_and_type(&body));
    match app.sandbox.destroy_session(&field!(who.caller("session:destroy", worker)), &rt).await {
        Ok(s) => Reply::ok(
            "session:destroy",
            json!({"message": format!("Session destroyed for {rt}"), "session_id": s.session_id, "session_name": s.session_name, "resource_type": rt}),
            Some(s.session_id),
        ),
        Err(r) => refusal("session:destroy", r, StatusCode::NOT_FOUND),
    }
}

/// Lists a worker's sessions (unknown workers get an empty list).
#[utoipa::path(post, path = "/api/v1/session/list", tag = "session",
    request_body = super::schema::WorkerRequest,
    responses((status = 200, description = "The sessions", body = Schema), (status = 400, description = "Missing worker_id", body = Schema)))]
pub async fn list(State(app): State<App>, who: Who, RawBody(bytes): RawBody) -> Reply {
    let body = body!(bytes, "session:list", StatusCode::BAD_REQUEST);
    let worker = field!(worker_only(&body));
    let sessions = app.sandbox.list_sessions(&field!(who.caller("session:list", worker.clone())));
    Reply::ok("session:list", json!({"worker_id": worker, "count": sessions.len(), "sessions": sessions}), None)
}

/// Renews the TTL of one session (404 when there is none) or of all the worker's sessions.
#[utoipa::path(post, path = "/api/v1/session/refresh", tag = "session",
    request_body = super::schema::SessionRefreshRequest,
    responses((status = 200, description = "Refreshed", body = Schema), (status = 400, description = "Missing worker_id", body = Schema),
              (status = 404, description = "No such session (code 4007)", body = Schema)))]
pub async fn refresh(State(app): State<App>, who: Who, RawBody(bytes): RawBody) -> Reply {
    let body = body!(bytes, "session:refresh", StatusCode::BAD_REQUEST);
    let worker = field!(worker_only(&body));
    let rt = field!(body.opt_str("resource_type")).filter(|s| !s.is_empty());
    let caller = field!(who.caller("session:refresh", worker.clone()));
    match app.sandbox.refresh_sessions(&caller, rt.as_deref()) {
        Err(r) => refusal("session:refresh", r, StatusCode::NOT_FOUND),
        Ok(refreshed) => match rt {
            Some(rt) => {
                let s = &refreshed.sessions[&rt];
                Reply::ok(
                    "session:refresh",
                    json!({"message": format!("Session refreshed for {rt}"), "resource_type": rt, "session_id": s.session_id, "expires_at": s.expires_at}),
                    Some(s.session_id.clone()),
                )
            }
            None => {
                let details: Map<String, Value> = refreshed
                    .sessions
                    .iter()
                    .map(|(rt, s)| {
                        (
                            rt.clone(),
                            json!({"status": "refreshed", "session_id": s.session_id, "expires_at": s.expires_at}),
                        )
                    })
                    .collect();
                Reply::ok(
                    "session:refresh",
                    json!({"message": format!("Refreshed {} sessions", details.len()), "worker_id": worker, "refreshed_count": details.len(), "details": details}),
                    None,
                )
            }
        },
    }
}

/// Reports the worker's session types; renews nothing.
#[utoipa::path(post, path = "/api/v1/lifecycle/heartbeat", tag = "lifecycle",
    request_body = super::schema::WorkerRequest,
    responses((status = 200, description = "Alive", body = Schema), (status = 400, description = "Missing worker_id", body = Schema)))]
pub async fn heartbeat(State(app): State<App>, who: Who, RawBody(bytes): RawBody) -> Reply {
    let body = body!(bytes, "session:heartbeat", StatusCode::BAD_REQUEST);
    let worker = field!(worker_only(&body));
    let types: Vec<String> = app
        .sandbox
        .list_sessions(&field!(who.caller("session:heartbeat", worker.clone())))
        .into_iter()
        .map(|s| s.resource_type)
        .collect();
    Reply::ok(
        "session:heartbeat",
        json!({"worker_id": worker, "active_sessions": types, "timestamp": timestamp(chrono::Utc::now())}),
        None,
    )
}

/// The worker's sessions and the number of tools.
#[utoipa::path(post, path = "/api/v1/lifecycle/status", tag = "lifecycle",
    request_body = super::schema::WorkerRequest,
    responses((status = 200, description = "Status", body = Schema), (status = 400, description = "Missing worker_id", body = Schema)))]
pub async fn status(State(app): State<App>, who: Who, RawBody(bytes): RawBody) -> Reply {
    let body = body!(bytes, "session:status", StatusCode::BAD_REQUEST);
    let worker = field!(worker_only(&body));
    let sessions = app.sandbox.list_sessions(&field!(who.caller("session:status", worker.clone())));
    let active: Vec<&String> = sessions.iter().map(|s| &s.resource_type).collect();
    let by_type: Map<String, Value> = sessions
        .iter()
        .map(|s| {
            (s.resource_type.clone(), json!({"session_id": s.session_id, "status": s.status, "created_at": s.created_at, "last_activity": s.last_activity}))
        })
        .collect();
    Reply::ok(
        "session:status",
        json!({"worker_id": worker, "active_resources": active, "sessions": by_type, "tools_available": app.sandbox.tools_count()}),
        None,
    )
}

/// Ends every session of the worker and forgets it; always 200.
#[utoipa::path(post, path = "/api/v1/worker/disconnect", tag = "lifecycle",
    request_body = super::schema::WorkerRequest,
    responses((status = 200, description = "Disconnected", body = Schema), (status = 422, description = "Missing worker_id", body = Schema)))]
pub async fn disconnect(State(app): State<App>, who: Who, RawBody(bytes): RawBody) -> Reply {
    let body = body!(bytes, "session:disconnect", StatusCode::UNPROCESSABLE_ENTITY);
    let worker = field!(body.req_str("worker_id"));
    let cleaned = app.sandbox.disconnect(&field!(who.caller("session:disconnect", worker.clone()))).await;
    Reply::ok("session:disconnect", json!({"worker_id": worker, "sessions_cleaned": cleaned}), None)
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
    request_body = super::schema::InitResourceRequest,
    responses((status = 200, description = "Active", body = Schema), (status = 422, description = "Missing field", body = Schema),
              (status = 500, description = "Initialisation failed (code 4007)", body = Schema)))]
pub async fn init_resource(State(app): State<App>, who: Who, RawBody(bytes): RawBody) -> Reply {
    let body = body!(bytes, "init:resource", StatusCode::UNPROCESSABLE_ENTITY);
    let worker = field!(body.req_str("worker_id"));
    let rt = field!(body.req_str("resource_type"));
    let config = field!(body.obj("init_config"));
    match init_one(&app, &field!(who.caller("init:resource", worker)), &rt, config).await {
        Err(r) => refusal("init:resource", r, StatusCode::INTERNAL_SERVER_ERROR),
        Ok((id, status, error)) => {
            let data = json!({"session_id": id, "resource_type": rt, "session_status": status, "error": error});
            if status == "active" {
                Reply::ok("init:resource", data, Some(id))
            } else {
                Reply::fail(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "init:resource",
                    codes::RESOURCE_NOT_INITIALIZED,
                    "Resource initialization failed",
                    data,
                )
            }
        }
    }
}

/// Creates (or returns) several sessions; 200 / 207 / 500 as they succeed.
#[utoipa::path(post, path = "/api/v1/init/batch", tag = "init",
    request_body = super::schema::InitBatchRequest,
    responses((status = 200, description = "All active", body = Schema), (status = 207, description = "Some failed (code 5010)", body = Schema),
              (status = 422, description = "Bad field", body = Schema), (status = 500, description = "All failed (code 5009)", body = Schema)))]
pub async fn init_batch(State(app): State<App>, who: Who, RawBody(bytes): RawBody) -> Reply {
    let body = body!(bytes, "init:batch", StatusCode::UNPROCESSABLE_ENTITY);
    let worker = field!(body.req_str("worker_id"));
    let configs = field!(body.obj("resource_configs"));
    let caller = field!(who.caller("init:batch", worker.clone()));
    let mut results = Map::new();
    let mut ok = 0;
    for (rt, value) in configs.as_object().cloned().unwrap_or_default() {
        let config = value.get("content").cloned().unwrap_or(value);
        let config = if config.is_object() { config } else { json!({}) };
        let result = match init_one(&app, &caller, &rt, config).await {
            Ok((id, status, error)) => {
                let success = status == "active";
                ok += usize::from(success);
                json!({"status": if success { "success" } else { "error" }, "session_id": id, "session_status": status, "error": error})
            }
            Err(r) => json!({"status": "error", "message": r.message}),
        };
        results.insert(rt, result);
    }
    let total = results.len();
    let data = json!({"worker_id": worker, "results": results, "total": total, "success_count": ok});
    if ok == total {
        Reply::ok("init:batch", data, None)
    } else if ok == 0 {
        Reply::fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "init:batch",
            codes::ALL_REQUESTS_FAILED,
            "All resources failed to initialize",
            data,
        )
    } else {
        Reply::fail(
            StatusCode::MULTI_STATUS,
            "init:batch",
            codes::PARTIAL_FAILURE,
            format!("{} out of {total} resources failed", total - ok),
            data,
        )
    }
}

/// Echoes a JSON config file with overrides applied. Only files inside
/// `server.init_config_dir` can be read; without it the route is disabled, so a client can
/// never make the server read an arbitrary path.
#[utoipa::path(post, path = "/api/v1/init/from-config", tag = "init",
    request_body = super::schema::InitFromConfigRequest,
    responses((status = 200, description = "The merged config", body = Schema), (status = 403, description = "Disabled, or a path outside the allowed directory", body = Schema),
              (status = 404, description = "No such file (code 4002)", body = Schema), (status = 422, description = "Bad field", body = Schema)))]
pub async fn init_from_config(State(app): State<App>, who: Who, RawBody(bytes): RawBody) -> Reply {
    let body = body!(bytes, "init:from_config", StatusCode::UNPROCESSABLE_ENTITY);
    let _caller = field!(who.caller("init:from_config", field!(body.req_str("worker_id"))));
    let path = field!(body.req_str("config_path"));
    let overrides = field!(body.obj("override_params"));
    let forbidden = |m: String| {
        Reply::fail(
            StatusCode::FORBIDDEN,
            "init:from_config",
            codes::INVALID_REQUEST_FORMAT,
            m,
            json!({"config_path": path}),
        )
    };
    let Some(dir) = app.init_config_dir.as_ref() else {
        return forbidden(
            "init/from-config is disabled: the server reads config files only from server.init_config_dir".into(),
        );
    };
    let requested = std::path::Path::new(&path);
    if requested.is_absolute() || requested.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return forbidden("config_path must be a relative path inside server.init_config_dir".into());
    }
    let full = dir.join(requested);
    let text = match std::fs::read_to_string(&full) {
        Ok(t) => t,
        Err(_) => {
            return Reply::fail(
                StatusCode::NOT_FOUND,
                "init:from_config",
                codes::INVALID_REQUEST_FORMAT,
                format!("Config file not found: {path}"),
                json!({"config_path": path}),
            );
        }
    };
    let mut config: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return Reply::fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                "init:from_config",
                codes::UNEXPECTED_ERROR,
                format!("{path}: {e}"),
                Value::Null,
            );
        }
    };
    if let (Some(map), Some(over)) = (config.as_object_mut(), overrides.as_object()) {
        for (k, v) in over {
            if let Some(existing) = map.get_mut(k) {
                match (existing.as_object_mut(), v.as_object()) {
                    (Some(e), Some(o)) => e.extend(o.clone()),
                    _ => *existing = v.clone(),
                }
            }
        }
    }
    Reply::ok("init:from_config", json!({"config_loaded": path, "config": config}), None)
}
