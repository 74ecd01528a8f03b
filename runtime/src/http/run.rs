//! The run API over HTTP (`/api/v1/run…`, seed 003): one call runs code in a session, with
//! an event stream of progress and live output when the client accepts `text/event-stream`.

use super::App;
use super::auth::Who;
use super::error::{Answer, ApiError, ok};
use super::json::Body;
use crate::codes;
use crate::envelope::Envelope;
use crate::run::{RunEvent, RunRequest};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use cella_protocol::run::{OutputText, Progress};
use serde_json::json;
use std::sync::Arc;

type Schema = Envelope;

fn tenant(who: &Who, tool: &str) -> Result<Arc<str>, ApiError> {
    who.caller(tool, String::new()).map(|c| c.tenant)
}

/// A refusal of the run API: an unknown run session is 404.
fn refused(envelope: Envelope) -> ApiError {
    ApiError::from(envelope).when(codes::RESOURCE_NOT_INITIALIZED, StatusCode::NOT_FOUND)
}

/// Runs code (S-30): creates or reuses a session, uploads files, installs packages, runs the
/// code; answers the output, the error, the timing per stage and insights (S-31). With
/// `Accept: text/event-stream`, answers an event stream instead: `progress` events
/// (`{stage, percent}`), `stdout`/`stderr` events as the code writes (`{text}`), and a final
/// `result` event holding the envelope (S-32).
#[utoipa::path(post, path = "/api/v1/run", tag = "run",
    request_body = RunRequest,
    responses((status = 200, description = "The code ran (a failing program is a result too: see data.error)", body = Schema),
              (status = 400, description = "Bad request: unknown language, bad file, unknown package", body = Schema),
              (status = 404, description = "No such run session", body = Schema),
              (status = 500, description = "The run was ended: deadline (5006), memory (7002), trap (7001)", body = Schema)))]
pub async fn run(
    State(app): State<App>,
    who: Who,
    headers: HeaderMap,
    Body(request): Body<RunRequest>,
) -> Result<Response, ApiError> {
    let tenant = tenant(&who, "run")?;
    let streaming =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    if !streaming {
        let envelope = app.runner.run(&tenant, request, None).await;
        return if envelope.is_success() { Ok(Json(envelope).into_response()) } else { Err(refused(envelope)) };
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<RunEvent>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<Envelope>();
    let runner = app.runner.clone();
    tokio::spawn(async move {
        let envelope = runner.run(&tenant, request, Some(tx)).await;
        let _ = done_tx.send(envelope);
    });
    let events = futures::stream::unfold((rx, Some(done_rx)), |(mut rx, done)| async move {
        if let Some(event) = rx.recv().await {
            let sse = match event {
                RunEvent::Progress { stage, percent } => {
                    Event::default().event("progress").json_data(Progress { stage: stage.to_string(), percent })
                }
                RunEvent::Output(o) => Event::default().event(o.channel.clone()).json_data(OutputText { text: o.text }),
            };
            return Some((sse, (rx, done)));
        }
        // The run ended (its sender is gone): the final envelope.
        let envelope = done?.await.ok()?;
        let sse = Event::default().event("result").json_data(&envelope);
        Some((sse, (rx, None)))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()).into_response())
}

/// Every run session of the caller's tenant (S-35 listSessions).
#[utoipa::path(get, path = "/api/v1/run/sessions", tag = "run",
    responses((status = 200, description = "`data.sessions`", body = Schema)))]
pub async fn list(State(app): State<App>, who: Who) -> Answer {
    let sessions = app.runner.list(&tenant(&who, "run:list")?);
    ok("run:list", json!({"count": sessions.len(), "sessions": sessions}), None)
}

/// One run session (S-35 getSession).
#[utoipa::path(get, path = "/api/v1/run/sessions/{session_id}", tag = "run",
    params(("session_id" = String, Path, description = "The run session")),
    responses((status = 200, description = "The session", body = Schema),
              (status = 404, description = "No such run session", body = Schema)))]
pub async fn get(State(app): State<App>, who: Who, Path(id): Path<String>) -> Answer {
    let t = tenant(&who, "run:get")?;
    ok("run:get", app.runner.get(&t, &id).map_err(refused)?, None)
}

/// Renews a run session's TTL (S-35 keepAlive).
#[utoipa::path(post, path = "/api/v1/run/sessions/{session_id}/keep-alive", tag = "run",
    params(("session_id" = String, Path, description = "The run session")),
    responses((status = 200, description = "The session with its new expiry", body = Schema),
              (status = 404, description = "No such run session", body = Schema)))]
pub async fn keep_alive(State(app): State<App>, who: Who, Path(id): Path<String>) -> Answer {
    let t = tenant(&who, "run:keep_alive")?;
    ok("run:keep_alive", app.runner.keep_alive(&t, &id).map_err(refused)?, None)
}

/// Ends a run session (S-35 close).
#[utoipa::path(delete, path = "/api/v1/run/sessions/{session_id}", tag = "run",
    params(("session_id" = String, Path, description = "The run session")),
    responses((status = 200, description = "`data.sessions_ended`", body = Schema),
              (status = 404, description = "No such run session", body = Schema)))]
pub async fn close(State(app): State<App>, who: Who, Path(id): Path<String>) -> Answer {
    let t = tenant(&who, "run:close")?;
    let ended = app.runner.close(&t, &id).await.map_err(refused)?;
    ok("run:close", json!({"session_id": id, "sessions_ended": ended}), None)
}

/// The files a run session holds, with their sha256 (S-33): a client sends only the files
/// whose hash is not listed, and names the others by `sha256` alone.
#[utoipa::path(get, path = "/api/v1/run/sessions/{session_id}/files", tag = "run",
    params(("session_id" = String, Path, description = "The run session")),
    responses((status = 200, description = "`data.files`: `[{path, sha256, size}]`", body = Schema),
              (status = 404, description = "No such run session", body = Schema)))]
pub async fn files(State(app): State<App>, who: Who, Path(id): Path<String>) -> Answer {
    let t = tenant(&who, "run:files")?;
    let files = app.runner.files(&t, &id).await.map_err(refused)?;
    ok("run:files", json!({"session_id": id, "files": files}), None)
}

/// `POST /api/v1/run/sessions/{id}/fork`; an empty body makes one copy.
#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct RunForkRequest {
    /// How many copies (default 1, at most `server.snapshots.max_fork`).
    #[serde(default)]
    pub count: Option<u32>,
}

impl super::json::Route for RunForkRequest {
    const TOOL: &'static str = "run:fork";
}

/// Forks a run session into `count` new run sessions (default 1), each with a copy of every
/// language's variables, imports and files; the source goes on unaffected.
#[utoipa::path(post, path = "/api/v1/run/sessions/{session_id}/fork", tag = "run",
    params(("session_id" = String, Path, description = "The run session")),
    request_body = RunForkRequest,
    responses((status = 200, description = "`data.sessions`: the new run sessions", body = Schema),
              (status = 404, description = "No such run session", body = Schema),
              (status = 409, description = "The session cannot be snapshotted now (7012)", body = Schema)))]
pub async fn fork(
    State(app): State<App>,
    who: Who,
    Path(id): Path<String>,
    Body(body): Body<RunForkRequest>,
) -> Answer {
    let t = tenant(&who, "run:fork")?;
    let count = body.count.unwrap_or(1) as usize;
    let sessions = app.runner.fork(&t, &id, count).await.map_err(refused)?;
    ok("run:fork", json!({"source": id, "sessions": sessions}), None)
}

/// Pauses a run session: every language's state is snapshotted and its instance freed; the
/// next run resumes it.
#[utoipa::path(post, path = "/api/v1/run/sessions/{session_id}/pause", tag = "run",
    params(("session_id" = String, Path, description = "The run session")),
    responses((status = 200, description = "The session, paused", body = Schema),
              (status = 404, description = "No such run session", body = Schema),
              (status = 409, description = "The session cannot be snapshotted now (7012)", body = Schema)))]
pub async fn pause(State(app): State<App>, who: Who, Path(id): Path<String>) -> Answer {
    let t = tenant(&who, "run:pause")?;
    ok("run:pause", app.runner.pause(&t, &id).await.map_err(refused)?, None)
}

/// Resumes a paused run session now (a run would resume it too).
#[utoipa::path(post, path = "/api/v1/run/sessions/{session_id}/resume", tag = "run",
    params(("session_id" = String, Path, description = "The run session")),
    responses((status = 200, description = "The session, live", body = Schema),
              (status = 404, description = "No such run session", body = Schema)))]
pub async fn resume(State(app): State<App>, who: Who, Path(id): Path<String>) -> Answer {
    let t = tenant(&who, "run:resume")?;
    ok("run:resume", app.runner.resume(&t, &id).await.map_err(refused)?, None)
}

/// Snapshots a run session into the store: one snapshot per language, each restorable with
/// `POST /api/v1/snapshots/{id}/restore`.
#[utoipa::path(post, path = "/api/v1/run/sessions/{session_id}/snapshot", tag = "run",
    params(("session_id" = String, Path, description = "The run session")),
    responses((status = 200, description = "`data.snapshots`", body = Schema),
              (status = 404, description = "No such run session", body = Schema),
              (status = 409, description = "The session cannot be snapshotted now (7012)", body = Schema)))]
pub async fn snapshot(State(app): State<App>, who: Who, Path(id): Path<String>) -> Answer {
    let t = tenant(&who, "run:snapshot")?;
    let snapshots = app.runner.snapshot(&t, &id).await.map_err(refused)?;
    ok("run:snapshot", json!({"session_id": id, "snapshots": snapshots}), None)
}
