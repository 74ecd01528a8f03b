//! The run API over HTTP (`/api/v1/run…`, seed 003): one call runs code in a session, with
//! an event stream of progress and live output when the client accepts `text/event-stream`.

use super::App;
use super::auth::Who;
use super::extract::RawBody;
use super::reply::{Reply, execute_status};
use crate::codes;
use crate::envelope::Envelope;
use crate::run::{RunEvent, RunRequest};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;

fn tenant(who: &Who, tool: &str) -> Result<Arc<str>, Reply> {
    who.caller(tool, String::new()).map(|c| c.tenant)
}

/// The envelope with its status; an unknown run session is 404.
fn refused(envelope: Envelope) -> Reply {
    let status = match envelope.code {
        codes::RESOURCE_NOT_INITIALIZED => StatusCode::NOT_FOUND,
        c => execute_status(c),
    };
    Reply::envelope(status, envelope)
}

/// Runs code (S-30): creates or reuses a session, uploads files, installs packages, runs the
/// code; answers the output, the error, the timing per stage and insights (S-31). With
/// `Accept: text/event-stream`, answers an event stream instead: `progress` events
/// (`{stage, percent}`), `stdout`/`stderr` events as the code writes (`{text}`), and a final
/// `result` event holding the envelope (S-32).
#[utoipa::path(post, path = "/api/v1/run", tag = "run",
    request_body = RunRequest,
    responses((status = 200, description = "The code ran (a failing program is a result too: see data.error)", body = super::schema::EnvelopeSchema),
              (status = 400, description = "Bad request: unknown language, bad file, unknown package", body = super::schema::EnvelopeSchema),
              (status = 404, description = "No such run session", body = super::schema::EnvelopeSchema),
              (status = 500, description = "The run was ended: deadline (5006), memory (7002), trap (7001)", body = super::schema::EnvelopeSchema)))]
pub async fn run(State(app): State<App>, who: Who, headers: HeaderMap, RawBody(bytes): RawBody) -> Response {
    let tenant = match tenant(&who, "run") {
        Ok(t) => t,
        Err(r) => return r.into_response(),
    };
    let request: RunRequest = match super::body::Body::parse(&bytes, "run", StatusCode::UNPROCESSABLE_ENTITY)
        .and_then(|b| b.typed::<RunRequest>())
    {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let streaming =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    if !streaming {
        let envelope = app.runner.run(&tenant, request, None).await;
        return refused(envelope).into_response();
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
                    Event::default().event("progress").json_data(json!({"stage": stage, "percent": percent}))
                }
                RunEvent::Output(o) => Event::default().event(o.channel.clone()).json_data(json!({"text": o.text})),
            };
            return Some((sse, (rx, done)));
        }
        // The run ended (its sender is gone): the final envelope.
        let envelope = done?.await.ok()?;
        let sse = Event::default().event("result").json_data(&envelope);
        Some((sse, (rx, None)))
    });
    Sse::new(events).keep_alive(KeepAlive::default()).into_response()
}

/// Every run session of the caller's tenant (S-35 listSessions).
#[utoipa::path(get, path = "/api/v1/run/sessions", tag = "run",
    responses((status = 200, description = "`data.sessions`", body = super::schema::EnvelopeSchema)))]
pub async fn list(State(app): State<App>, who: Who) -> Reply {
    match tenant(&who, "run:list") {
        Ok(t) => {
            let sessions = app.runner.list(&t);
            Reply::ok("run:list", json!({"count": sessions.len(), "sessions": sessions}), None)
        }
        Err(r) => r,
    }
}

/// One run session (S-35 getSession).
#[utoipa::path(get, path = "/api/v1/run/sessions/{session_id}", tag = "run",
    params(("session_id" = String, Path, description = "The run session")),
    responses((status = 200, description = "The session", body = super::schema::EnvelopeSchema),
              (status = 404, description = "No such run session", body = super::schema::EnvelopeSchema)))]
pub async fn get(State(app): State<App>, who: Who, Path(id): Path<String>) -> Reply {
    let t = match tenant(&who, "run:get") {
        Ok(t) => t,
        Err(r) => return r,
    };
    match app.runner.get(&t, &id) {
        Ok(v) => Reply::ok("run:get", v, None),
        Err(e) => refused(e),
    }
}

/// Renews a run session's TTL (S-35 keepAlive).
#[utoipa::path(post, path = "/api/v1/run/sessions/{session_id}/keep-alive", tag = "run",
    params(("session_id" = String, Path, description = "The run session")),
    responses((status = 200, description = "The session with its new expiry", body = super::schema::EnvelopeSchema),
              (status = 404, description = "No such run session", body = super::schema::EnvelopeSchema)))]
pub async fn keep_alive(State(app): State<App>, who: Who, Path(id): Path<String>) -> Reply {
    let t = match tenant(&who, "run:keep_alive") {
        Ok(t) => t,
        Err(r) => return r,
    };
    match app.runner.keep_alive(&t, &id) {
        Ok(v) => Reply::ok("run:keep_alive", v, None),
        Err(e) => refused(e),
    }
}

/// Ends a run session (S-35 close).
#[utoipa::path(delete, path = "/api/v1/run/sessions/{session_id}", tag = "run",
    params(("session_id" = String, Path, description = "The run session")),
    responses((status = 200, description = "`data.sessions_ended`", body = super::schema::EnvelopeSchema),
              (status = 404, description = "No such run session", body = super::schema::EnvelopeSchema)))]
pub async fn close(State(app): State<App>, who: Who, Path(id): Path<String>) -> Reply {
    let t = match tenant(&who, "run:close") {
        Ok(t) => t,
        Err(r) => return r,
    };
    match app.runner.close(&t, &id).await {
        Ok(n) => Reply::ok("run:close", json!({"session_id": id, "sessions_ended": n}), None),
        Err(e) => refused(e),
    }
}

/// The files a run session holds, with their sha256 (S-33): a client sends only the files
/// whose hash is not listed, and names the others by `sha256` alone.
#[utoipa::path(get, path = "/api/v1/run/sessions/{session_id}/files", tag = "run",
    params(("session_id" = String, Path, description = "The run session")),
    responses((status = 200, description = "`data.files`: `[{path, sha256, size}]`", body = super::schema::EnvelopeSchema),
              (status = 404, description = "No such run session", body = super::schema::EnvelopeSchema)))]
pub async fn files(State(app): State<App>, who: Who, Path(id): Path<String>) -> Reply {
    let t = match tenant(&who, "run:files") {
        Ok(t) => t,
        Err(r) => return r,
    };
    match app.runner.files(&t, &id) {
        Ok(files) => Reply::ok("run:files", json!({"session_id": id, "files": files}), None),
        Err(e) => refused(e),
    }
}
