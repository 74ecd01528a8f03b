//! Inside a Scalebox sandbox: the `sandboxagent` Connect services (ContextService,
//! ExecutionService's streamed Execute, Filesystem), `/upload` and `/download/…`.
//! Requests present the sandbox's `X-Access-Token` (and `X-Sandbox-ID` on the execution and
//! context services); `Process/Start` runs the sandbox's few commands (there is no shell in
//! a component).

use super::ScaleboxError;
use crate::http::App;
use crate::http::connect::{self, ConnectError};
use crate::http::e2b::envd::{filesystem_rpc, written};
use crate::http::e2b::process::process_rpc;
use crate::sandboxes::{CellResult, Language, Sbx, SbxError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/sandboxagent.ContextService/{method}", post(context_service))
        .route("/sandboxagent.ExecutionService/Execute", post(execute))
        .route("/sandboxagent.Filesystem/{method}", post(filesystem))
        .route("/sandboxagent.Process/{method}", post(process))
        .route("/upload", post(upload))
        .route("/download/{*path}", get(download))
}

/// The sandbox a request is for: by `X-Sandbox-ID` and token when it names one, else by
/// its token alone.
fn enter(app: &App, headers: &HeaderMap) -> Result<Arc<Sbx>, SbxError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    let token = text("x-access-token");
    match text("x-sandbox-id") {
        Some(id) => app.sandboxes.enter(id, token),
        None => app.sandboxes.enter_by_token(token),
    }
}

fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// ContextService's messages.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ContextRequest {
    #[serde(alias = "context_id")]
    context_id: String,
    language: Option<String>,
    cwd: Option<String>,
}

async fn context_service(
    State(app): State<App>,
    headers: HeaderMap,
    Path(method): Path<String>,
    body: Bytes,
) -> Result<Response, ConnectError> {
    let sbx = enter(&app, &headers)?;
    let r: ContextRequest = connect::decode(&body)?;
    match method.as_str() {
        "CreateContext" => {
            let language = Language::parse(r.language.as_deref())?;
            let ctx = app.sandboxes.create_context(&sbx, language, r.cwd.as_deref()).await?;
            Ok(connect::unary(&json!({
                "id": ctx.id, "language": ctx.language.name(), "cwd": ctx.cwd,
                "createdAt": timestamp(), "envVars": {},
            })))
        }
        "DestroyContext" => {
            app.sandboxes.remove_context(&sbx, &r.context_id).await?;
            Ok(connect::unary(&json!({"success": true})))
        }
        other => Err(ConnectError::new(
            "unimplemented",
            format!("sandboxagent.ContextService/{other} is not offered; CreateContext and DestroyContext are"),
        )),
    }
}

/// ExecutionService/Execute's request.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ExecuteRequest {
    #[serde(alias = "context_id")]
    context_id: String,
    code: String,
    language: Option<String>,
    #[serde(alias = "env_vars")]
    env_vars: BTreeMap<String, String>,
}

/// The frames that close a cell: its error, then always a final main result (the SDK counts a
/// run as successful only when one comes).
fn closing(cell: &CellResult, started: &str) -> Vec<Bytes> {
    let mut frames = Vec::new();
    if let Some(e) = &cell.error {
        frames.push(connect::envelope(&json!({"error": {"name": e.name, "value": e.value, "traceback": e.traceback}})));
    }
    let mut result = json!({
        "exitCode": if cell.error.is_some() { 1 } else { 0 },
        "startedAt": started, "finishedAt": timestamp(),
        "executionCount": cell.execution_count, "isMainResult": true,
    });
    if let Some(text) = &cell.result {
        result["text"] = json!(text);
    }
    // Rich results: the figures a cell showed come first as results of their own; the main
    // result's formats (`html`, `png`, …) join the final frame. Scalebox's formats are strings.
    for rich in &cell.results {
        let main = rich["is_main_result"].as_bool() == Some(true);
        let mut formats = serde_json::Map::new();
        for (key, value) in rich.as_object().into_iter().flatten() {
            if key == "is_main_result" {
                continue;
            }
            let value = match (key.as_str(), value) {
                ("chart", v) => v.clone(),
                (_, Value::String(s)) => json!(s),
                (_, other) => json!(other.to_string()),
            };
            formats.insert(key.clone(), value);
        }
        if main {
            for (key, value) in formats {
                if key != "text" {
                    result[key.as_str()] = value;
                }
            }
        } else {
            formats.insert("isMainResult".into(), json!(false));
            formats.insert("executionCount".into(), json!(cell.execution_count));
            frames.push(connect::envelope(&json!({"result": formats})));
        }
    }
    frames.push(connect::envelope(&json!({"result": result})));
    frames
}

async fn execute(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    let prepared = async {
        let sbx = enter(&app, &headers)?;
        let r: ExecuteRequest = connect::decode_enveloped(&body)?;
        let ctx = if r.context_id.is_empty() {
            app.sandboxes.default_context(&sbx, Language::parse(r.language.as_deref())?).await?
        } else {
            app.sandboxes.context(&sbx, &r.context_id)?
        };
        Ok::<_, ConnectError>((sbx, ctx, r))
    };
    let (sbx, ctx, request) = match prepared.await {
        Ok(p) => p,
        Err(e) => return connect::stream_error(e),
    };
    let (frames, rx) = mpsc::unbounded_channel::<Bytes>();
    // The cell runs to its end (or deadline) whatever the connection does.
    tokio::spawn(async move {
        let started = timestamp();
        let (sink, output) = mpsc::unbounded_channel();
        let to = frames.clone();
        let forward = tokio::spawn(crate::sandboxes::by_line(output, move |channel, text| {
            let kind = if channel == "stderr" { "stderr" } else { "stdout" };
            let _ = to.send(connect::envelope(&json!({kind: {"content": text}})));
        }));
        let ran = app.sandboxes.run(&sbx, &ctx, &request.code, &request.env_vars, Some(sink)).await;
        let _ = forward.await;
        match ran {
            Ok(cell) => closing(&cell, &started).into_iter().for_each(|f| {
                let _ = frames.send(f);
            }),
            Err(e) => {
                let _ = frames.send(connect::end_of_stream(Some(&ConnectError::from(e))));
                return;
            }
        }
        let _ = frames.send(connect::end_of_stream(None));
    });
    crate::http::streamed(connect::STREAM, rx)
}

async fn filesystem(
    State(app): State<App>,
    headers: HeaderMap,
    Path(method): Path<String>,
    body: Bytes,
) -> Result<Response, ConnectError> {
    let sbx = enter(&app, &headers)?;
    filesystem_rpc(&sbx, "sandboxagent.Filesystem", &method, &body).await
}

async fn process(State(app): State<App>, headers: HeaderMap, Path(method): Path<String>, body: Bytes) -> Response {
    match enter(&app, &headers) {
        Ok(sbx) => process_rpc(&app, sbx, "sandboxagent.Process", &method, &headers, &body).await,
        Err(e) => ConnectError::from(e).into_response(),
    }
}

/// `POST /upload`: a multipart form with a `file` part (its filename the full path) and a
/// `path` part; answers what was written.
async fn upload(
    State(app): State<App>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Result<axum::Json<Value>, ScaleboxError> {
    let sbx = enter(&app, &headers)?;
    let bad = |m: String| ScaleboxError::new(StatusCode::BAD_REQUEST, m);
    let (mut path, mut file): (Option<String>, Option<(Option<String>, Bytes)>) = (None, None);
    while let Some(field) = form.next_field().await.map_err(|e| bad(e.body_text()))? {
        match field.name() {
            Some("path") => path = Some(field.text().await.map_err(|e| bad(e.body_text()))?),
            Some("file") => {
                let name = field.file_name().map(str::to_string);
                file = Some((name, field.bytes().await.map_err(|e| ScaleboxError::new(e.status(), e.body_text()))?));
            }
            _ => {}
        }
    }
    let (name, bytes) = file.ok_or_else(|| bad("the form has no 'file' part".into()))?;
    let path = path.or(name).ok_or_else(|| bad("the form names no path ('path' part or the file's name)".into()))?;
    let entry = sbx.files.run(move |f| f.write(&path, &bytes)).await?;
    Ok(axum::Json(written(&entry)))
}

/// `GET /download/<path without its leading slash>`: the file's bytes.
async fn download(
    State(app): State<App>,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> Result<Response, ScaleboxError> {
    let sbx = enter(&app, &headers)?;
    let path = format!("/{path}");
    let bytes = sbx.files.run(move |f| f.read(&path)).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}
