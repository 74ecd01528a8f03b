//! Session snapshot routes (Cella's addition under `/api/v1`): snapshot, fork, pause and
//! resume a session; list, restore and delete stored snapshots. Every route works on the
//! caller's tenant only: another tenant's snapshot is not found (7010).

use super::App;
use super::auth::Who;
use super::error::{Answer, ApiError, ok};
use super::fields::{Text, non_empty};
use super::json::{Body, Route};
use super::requests::worker_and_type;
use crate::codes;
use crate::envelope::Envelope;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

type Schema = Envelope;

/// `POST /api/v1/session/snapshot`, `/pause` and `/resume`: a worker and a resource type.
#[derive(Deserialize, ToSchema)]
pub struct SnapshotRequest {
    /// The worker.
    #[schema(value_type = String)]
    pub worker_id: Option<Text>,
    /// The backend.
    #[schema(value_type = String)]
    pub resource_type: Option<Text>,
}

impl Route for SnapshotRequest {
    const TOOL: &'static str = "session:snapshot";
}

/// `POST /api/v1/session/fork`.
#[derive(Deserialize, ToSchema)]
pub struct ForkRequest {
    /// The worker whose session is forked.
    #[schema(value_type = String)]
    pub worker_id: Option<Text>,
    /// The backend.
    #[schema(value_type = String)]
    pub resource_type: Option<Text>,
    /// How many copies (default 1, at most `server.snapshots.max_fork`).
    #[serde(default)]
    pub count: Option<u32>,
    /// The workers the copies belong to, one per copy (default: new ids
    /// `<worker>-fork-<8 hex>`).
    #[serde(default)]
    pub worker_ids: Vec<String>,
}

impl Route for ForkRequest {
    const TOOL: &'static str = "session:fork";
}

/// `POST /api/v1/snapshots/{id}/restore`.
#[derive(Deserialize, ToSchema)]
pub struct RestoreRequest {
    /// The worker the new session belongs to (it must not hold a session of that type).
    #[schema(value_type = String)]
    pub worker_id: Option<Text>,
}

impl Route for RestoreRequest {
    const TOOL: &'static str = "snapshot:restore";
}

/// Snapshots a live session into the store; the session goes on.
#[utoipa::path(post, path = "/api/v1/session/snapshot", tag = "snapshots",
    request_body = SnapshotRequest,
    responses((status = 200, description = "The stored snapshot", body = Schema),
              (status = 409, description = "The session cannot be snapshotted now (7012)", body = Schema),
              (status = 429, description = "The tenant's snapshot quota (7009)", body = Schema)))]
pub async fn snapshot(State(app): State<App>, who: Who, Body(request): Body<SnapshotRequest>) -> Answer {
    const TOOL: &str = "session:snapshot";
    let (worker, rt) = worker_and_type(TOOL, &request.worker_id, &request.resource_type)?;
    let caller = who.caller(TOOL, worker)?;
    let info = app.sandbox.snapshot_session(&caller, &rt).await.map_err(|r| ApiError::refused(TOOL, r))?;
    let session = info.session_id.clone();
    ok(TOOL, json!(info), Some(session))
}

/// Makes copies of a live session, each its own session of a new worker; the source goes on.
#[utoipa::path(post, path = "/api/v1/session/fork", tag = "snapshots",
    request_body = ForkRequest,
    responses((status = 200, description = "`{sessions: [...]}`, one per copy", body = Schema),
              (status = 409, description = "The session cannot be snapshotted now (7012)", body = Schema)))]
pub async fn fork(State(app): State<App>, who: Who, Body(request): Body<ForkRequest>) -> Answer {
    const TOOL: &str = "session:fork";
    let (worker, rt) = worker_and_type(TOOL, &request.worker_id, &request.resource_type)?;
    let caller = who.caller(TOOL, worker)?;
    let count = request.count.unwrap_or(request.worker_ids.len().max(1) as u32) as usize;
    let sessions = app
        .sandbox
        .fork_session(&caller, &rt, count, request.worker_ids)
        .await
        .map_err(|r| ApiError::refused(TOOL, r))?;
    let copies: Vec<Value> = sessions.iter().map(|(w, s)| json!({"worker_id": w, "session": s})).collect();
    ok(TOOL, json!({"resource_type": rt, "sessions": copies}), None)
}

/// Pauses a session: snapshots it and frees its instance. Its next call resumes it.
#[utoipa::path(post, path = "/api/v1/session/pause", tag = "snapshots",
    request_body = SnapshotRequest,
    responses((status = 200, description = "The pause snapshot", body = Schema),
              (status = 409, description = "The session cannot be snapshotted now (7012)", body = Schema)))]
pub async fn pause(State(app): State<App>, who: Who, Body(request): Body<SnapshotRequest>) -> Answer {
    const TOOL: &str = "session:pause";
    let (worker, rt) = worker_and_type(TOOL, &request.worker_id, &request.resource_type)?;
    let caller = who.caller(TOOL, worker)?;
    let info = app.sandbox.pause_session(&caller, &rt).await.map_err(|r| ApiError::refused(TOOL, r))?;
    let session = info.session_id.clone();
    ok(TOOL, json!(info), Some(session))
}

/// Resumes a paused session now (a call would resume it too); a live one is left as it is.
#[utoipa::path(post, path = "/api/v1/session/resume", tag = "snapshots",
    request_body = SnapshotRequest,
    responses((status = 200, description = "The session", body = Schema),
              (status = 409, description = "The snapshot cannot be restored (7011)", body = Schema)))]
pub async fn resume(State(app): State<App>, who: Who, Body(request): Body<SnapshotRequest>) -> Answer {
    const TOOL: &str = "session:resume";
    let (worker, rt) = worker_and_type(TOOL, &request.worker_id, &request.resource_type)?;
    let caller = who.caller(TOOL, worker)?;
    let info = app.sandbox.resume_session(&caller, &rt).await.map_err(|r| ApiError::refused(TOOL, r))?;
    let session = info.session_id.clone();
    ok(TOOL, json!(info), Some(session))
}

/// The caller's tenant's stored snapshots, oldest first.
#[utoipa::path(get, path = "/api/v1/snapshots", tag = "snapshots",
    responses((status = 200, description = "`{snapshots: [...]}`", body = Schema)))]
pub async fn list(State(app): State<App>, who: Who) -> Answer {
    const TOOL: &str = "snapshot:list";
    let tenant = who.caller(TOOL, String::new())?.tenant;
    ok(TOOL, json!({"snapshots": app.sandbox.list_snapshots(&tenant).await}), None)
}

/// A new session for `worker_id` from a stored snapshot.
#[utoipa::path(post, path = "/api/v1/snapshots/{snapshot_id}/restore", tag = "snapshots",
    request_body = RestoreRequest,
    params(("snapshot_id" = String, Path, description = "The snapshot")),
    responses((status = 200, description = "The new session", body = Schema),
              (status = 404, description = "No such snapshot for this tenant (7010)", body = Schema),
              (status = 409, description = "Corrupted, or of another component version (7011)", body = Schema)))]
pub async fn restore(
    State(app): State<App>,
    who: Who,
    Path(id): Path<String>,
    Body(request): Body<RestoreRequest>,
) -> Answer {
    const TOOL: &str = "snapshot:restore";
    let worker = non_empty(&request.worker_id).ok_or_else(|| {
        ApiError::new(TOOL, codes::INVALID_REQUEST_FORMAT, "worker_id required", json!({"worker_id": null}))
    })?;
    let caller = who.caller(TOOL, worker)?;
    let info = app.sandbox.restore_snapshot(&caller, &id).await.map_err(|r| ApiError::refused(TOOL, r))?;
    let session = info.session_id.clone();
    ok(TOOL, json!(info), Some(session))
}

/// Deletes a stored snapshot.
#[utoipa::path(delete, path = "/api/v1/snapshots/{snapshot_id}", tag = "snapshots",
    params(("snapshot_id" = String, Path, description = "The snapshot")),
    responses((status = 200, description = "Deleted", body = Schema),
              (status = 404, description = "No such snapshot for this tenant (7010)", body = Schema)))]
pub async fn delete(State(app): State<App>, who: Who, Path(id): Path<String>) -> Answer {
    const TOOL: &str = "snapshot:delete";
    let tenant = who.caller(TOOL, String::new())?.tenant;
    let info = app.sandbox.delete_snapshot(&tenant, &id).await.map_err(|r| ApiError::refused(TOOL, r))?;
    ok(TOOL, json!({"deleted": info.snapshot_id}), None)
}
