//! The code interpreter inside a sandbox: `POST /execute` streams a cell's output as NDJSON
//! lines (stdout and stderr as the code writes them, then the result, the error, the
//! execution count and the end), and `/contexts` creates, lists, restarts and removes code
//! contexts. Lines follow e2b-dev/code-interpreter's server (`template/server`).

use super::{E2bError, enter};
use crate::engine::host::{Output, OutputSink};
use crate::http::App;
use crate::sandboxes::{CellResult, Context, Language, Sbx};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::mpsc;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/execute", post(execute))
        .route("/contexts", get(list).post(create))
        .route("/contexts/{id}", delete(remove))
        .route("/contexts/{id}/restart", post(restart))
}

/// How often a running cell's stream looks whether its sandbox was killed.
const KILL_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// `POST /execute`'s body.
#[derive(Debug, Deserialize)]
struct ExecuteRequest {
    code: String,
    context_id: Option<String>,
    language: Option<String>,
    env_vars: Option<BTreeMap<String, String>>,
}

/// A context as the interpreter describes it.
fn described(ctx: &Context) -> Value {
    json!({"id": ctx.id, "language": ctx.language.name(), "cwd": ctx.cwd})
}

fn line(value: Value) -> Bytes {
    let mut text = value.to_string();
    text.push('\n');
    Bytes::from(text)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// The result's text as E2B's server gives it: a string's quotes are dropped.
fn result_text(language: Language, repr: &str) -> String {
    if language == Language::Python && repr.len() >= 2 && repr.starts_with('\'') && repr.ends_with('\'') {
        return repr[1..repr.len() - 1].to_string();
    }
    repr.to_string()
}

/// The lines that close a cell.
fn closing_lines(language: Language, cell: &CellResult) -> Vec<Bytes> {
    let mut out = Vec::new();
    if !cell.results.is_empty() {
        for result in &cell.results {
            let mut result = result.clone();
            if let Some(map) = result.as_object_mut() {
                if map.get("is_main_result").and_then(Value::as_bool) == Some(true)
                    && let Some(Value::String(text)) = map.get("text")
                {
                    let text = result_text(language, text);
                    map.insert("text".into(), Value::String(text));
                }
                map.insert("type".into(), Value::String("result".into()));
            }
            out.push(line(result));
        }
    } else if let Some(repr) = &cell.result {
        out.push(line(json!({"type": "result", "text": result_text(language, repr), "is_main_result": true})));
    }
    if let Some(e) = &cell.error {
        out.push(line(json!({"type": "error", "name": e.name, "value": e.value, "traceback": e.traceback})));
    }
    out.push(line(json!({"type": "number_of_executions", "execution_count": cell.execution_count})));
    out.push(line(json!({"type": "end_of_execution"})));
    out
}

/// The context a request names: its own, or the sandbox's default for its language.
async fn pick(app: &App, sbx: &Sbx, request: &ExecuteRequest) -> Result<Arc<Context>, E2bError> {
    if request.context_id.is_some() && request.language.is_some() {
        return Err(E2bError::new(StatusCode::BAD_REQUEST, "give context_id or language, not both"));
    }
    match &request.context_id {
        Some(id) => Ok(app.sandboxes.context(sbx, id)?),
        None => Ok(app.sandboxes.default_context(sbx, Language::parse(request.language.as_deref())?).await?),
    }
}

async fn execute(
    State(app): State<App>,
    headers: HeaderMap,
    body: Result<axum::Json<ExecuteRequest>, JsonRejection>,
) -> Result<Response, E2bError> {
    let sbx = enter(&app, &headers)?;
    let axum::Json(request) = body?;
    let ctx = pick(&app, &sbx, &request).await?;
    let (lines, rx) = mpsc::unbounded_channel::<Bytes>();
    // The cell runs to its end (or deadline) whatever the connection does; the stream ends
    // at once when the sandbox is killed meanwhile (as E2B's does), the cell's output past
    // that point going nowhere.
    tokio::spawn(async move {
        let (sink, output): (OutputSink, _) = mpsc::unbounded_channel::<Output>();
        let to = lines.downgrade();
        let forward = tokio::spawn(crate::sandboxes::by_line(output, move |channel, text| {
            let kind = if channel == "stderr" { "stderr" } else { "stdout" };
            if let Some(to) = to.upgrade() {
                let _ = to.send(line(json!({"type": kind, "text": text, "timestamp": now()})));
            }
        }));
        let env = request.env_vars.unwrap_or_default();
        let (cell_sbx, cell_ctx) = (sbx.clone(), ctx.clone());
        let mut cell =
            tokio::spawn(async move { app.sandboxes.run(&cell_sbx, &cell_ctx, &request.code, &env, Some(sink)).await });
        let ran = loop {
            tokio::select! {
                ran = &mut cell => break Some(ran),
                () = tokio::time::sleep(KILL_POLL) => if sbx.ended() { break None },
            }
        };
        let closing = match ran {
            Some(Ok(Ok(cell))) => {
                let _ = forward.await;
                closing_lines(ctx.language, &cell)
            }
            Some(Ok(Err(e))) => {
                let _ = forward.await;
                let value = e.to_string();
                vec![line(json!({"type": "error", "name": "SandboxError", "value": value, "traceback": value}))]
            }
            Some(Err(e)) => {
                let value = format!("the cell stopped: {e}");
                vec![line(json!({"type": "error", "name": "SandboxError", "value": value, "traceback": value}))]
            }
            None => {
                let value = format!("sandbox '{}' was killed while the cell ran", sbx.id);
                vec![line(json!({"type": "error", "name": "SandboxKilled", "value": value, "traceback": value}))]
            }
        };
        for l in closing {
            let _ = lines.send(l);
        }
    });
    Ok(crate::http::streamed("application/x-ndjson", rx))
}

/// `POST /contexts`'s body.
#[derive(Debug, Default, Deserialize)]
struct NewContext {
    language: Option<String>,
    cwd: Option<String>,
}

async fn create(
    State(app): State<App>,
    headers: HeaderMap,
    body: Option<axum::Json<NewContext>>,
) -> Result<axum::Json<Value>, E2bError> {
    let sbx = enter(&app, &headers)?;
    let request = body.map(|b| b.0).unwrap_or_default();
    let language = Language::parse(request.language.as_deref())?;
    let ctx = app.sandboxes.create_context(&sbx, language, request.cwd.as_deref()).await?;
    Ok(axum::Json(described(&ctx)))
}

/// The sandbox's contexts, its default `python` and `javascript` ones always among them
/// (as E2B's server lists them; they are started here when no cell has used them yet).
async fn list(State(app): State<App>, headers: HeaderMap) -> Result<axum::Json<Vec<Value>>, E2bError> {
    let sbx = enter(&app, &headers)?;
    for language in [Language::Python, Language::JavaScript] {
        app.sandboxes.default_context(&sbx, language).await?;
    }
    Ok(axum::Json(app.sandboxes.contexts(&sbx).iter().map(|c| described(c)).collect()))
}

async fn restart(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Result<StatusCode, E2bError> {
    let sbx = enter(&app, &headers)?;
    app.sandboxes.restart_context(&sbx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn remove(State(app): State<App>, headers: HeaderMap, Path(id): Path<String>) -> Result<StatusCode, E2bError> {
    let sbx = enter(&app, &headers)?;
    app.sandboxes.remove_context(&sbx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
