//! envd inside a sandbox: health, file upload and download, the `filesystem.Filesystem`
//! Connect service, and `process.Process/Start`, which runs one of the sandbox's few
//! commands (there is no shell or process inside a component; `sandboxes::commands`).

use super::{E2bError, enter, sandbox_id};
use crate::http::App;
use crate::http::connect::{self, ConnectError};
use crate::sandboxes::{Entry, Kind, Sbx};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/health", get(health))
        .route("/files", get(download).post(upload))
        .route("/filesystem.Filesystem/{method}", post(filesystem))
        .route("/process.Process/{method}", post(process))
}

/// 204 while the sandbox runs, 502 once it ended (what envd's proxy answers).
async fn health(State(app): State<App>, headers: HeaderMap) -> StatusCode {
    if app.sandboxes.running(sandbox_id(&headers)) { StatusCode::NO_CONTENT } else { StatusCode::BAD_GATEWAY }
}

/// `?path=` (and the `username` envd ignores from 0.4 on).
#[derive(Debug, Deserialize)]
struct PathQuery {
    path: Option<String>,
}

async fn download(
    State(app): State<App>,
    headers: HeaderMap,
    Query(q): Query<PathQuery>,
) -> Result<Response, E2bError> {
    let sbx = enter(&app, &headers)?;
    let path = q.path.ok_or_else(|| E2bError::new(StatusCode::BAD_REQUEST, "the path query parameter is required"))?;
    let bytes = sbx.files.run(move |f| f.read(&path)).await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// What the upload answers for each file.
pub(crate) fn written(entry: &Entry) -> Value {
    let kind = if entry.kind == Kind::Dir { "dir" } else { "file" };
    json!({"name": entry.name, "type": kind, "path": entry.path})
}

/// `POST /files`: a multipart form (one part per file, the part's filename its path unless
/// `?path=` names it), or the raw bytes of one file (`application/octet-stream`, optionally
/// gzip-encoded). Answers a JSON array of what was written.
async fn upload(
    State(app): State<App>,
    Query(q): Query<PathQuery>,
    req: Request,
) -> Result<axum::Json<Vec<Value>>, E2bError> {
    let sbx = enter(&app, req.headers())?;
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let mut files: Vec<(String, Bytes)> = Vec::new();
    if content_type.starts_with("multipart/form-data") {
        let mut form = Multipart::from_request(req, &app)
            .await
            .map_err(|e| E2bError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
        while let Some(field) =
            form.next_field().await.map_err(|e| E2bError::new(StatusCode::BAD_REQUEST, e.body_text()))?
        {
            let name = q.path.clone().filter(|_| files.is_empty()).or_else(|| field.file_name().map(str::to_string));
            let bytes = field.bytes().await.map_err(|e| E2bError::new(e.status(), e.body_text()))?;
            let path = name.ok_or_else(|| E2bError::new(StatusCode::BAD_REQUEST, "a file part has no path"))?;
            files.push((path, bytes));
        }
    } else {
        let gzip = req.headers().get(header::CONTENT_ENCODING).is_some_and(|v| v.as_bytes() == b"gzip");
        let path = q.path.clone().ok_or_else(|| E2bError::new(StatusCode::BAD_REQUEST, "?path= names the file"))?;
        let body = Bytes::from_request(req, &app).await.map_err(|e| E2bError::new(e.status(), e.body_text()))?;
        let bytes = if gzip { gunzip(&body, app.sandbox.config().server.max_body_bytes)? } else { body };
        files.push((path, bytes));
    }
    if files.is_empty() {
        return Err(E2bError::new(StatusCode::BAD_REQUEST, "the upload holds no file"));
    }
    let entries =
        sbx.files.run(move |f| files.iter().map(|(p, b)| f.write(p, b)).collect::<Result<Vec<_>, _>>()).await?;
    Ok(axum::Json(entries.iter().map(written).collect()))
}

/// Inflates a gzip body, at most `limit` bytes of it.
fn gunzip(body: &[u8], limit: usize) -> Result<Bytes, E2bError> {
    use std::io::Read;
    let mut out = Vec::new();
    let read = flate2::read::GzDecoder::new(body).take(limit as u64 + 1).read_to_end(&mut out);
    read.map_err(|e| E2bError::new(StatusCode::BAD_REQUEST, format!("the gzip body is not valid: {e}")))?;
    if out.len() > limit {
        return Err(E2bError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("the file is larger than {limit} bytes")));
    }
    Ok(Bytes::from(out))
}

/// envd's `EntryInfo` in Connect's JSON.
fn entry_info(e: &Entry) -> Value {
    let (kind, letter) = match e.kind {
        Kind::File => ("FILE_TYPE_FILE", '-'),
        Kind::Dir => ("FILE_TYPE_DIRECTORY", 'd'),
        Kind::Symlink => ("FILE_TYPE_SYMLINK", 'l'),
    };
    let bits = ["---", "--x", "-w-", "-wx", "r--", "r-x", "rw-", "rwx"];
    let permissions: String = std::iter::once(letter.to_string())
        .chain([6, 3, 0].iter().map(|shift| bits[((e.mode >> shift) & 7) as usize].to_string()))
        .collect();
    let mut info = json!({
        "name": e.name, "type": kind, "path": e.path, "size": e.size.to_string(), "mode": e.mode,
        "permissions": permissions, "owner": "user", "group": "user",
        "modifiedTime": e.modified.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
    });
    if let Some(target) = &e.symlink_target {
        info["symlinkTarget"] = json!(target);
    }
    info
}

/// The Filesystem messages' fields (lowerCamelCase; snake_case accepted).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct FsRequest {
    path: String,
    depth: Option<u32>,
    source: String,
    destination: String,
}

async fn filesystem(
    State(app): State<App>,
    headers: HeaderMap,
    Path(method): Path<String>,
    body: Bytes,
) -> Result<Response, ConnectError> {
    let sbx: Arc<Sbx> = enter(&app, &headers)?;
    filesystem_rpc(&sbx, "filesystem.Filesystem", &method, &body).await
}

/// One call of envd's Filesystem service (Scalebox's `sandboxagent.Filesystem` is the same
/// service under another name): Stat, ListDir, MakeDir, Move and Remove.
pub(crate) async fn filesystem_rpc(
    sbx: &Sbx,
    service: &str,
    method: &str,
    body: &[u8],
) -> Result<Response, ConnectError> {
    let r: FsRequest = connect::decode(body)?;
    let files = sbx.files.clone();
    let answer = match method {
        "Stat" => files.run(move |f| Ok(json!({"entry": entry_info(&f.stat(&r.path)?)}))).await?,
        "ListDir" => {
            let depth = r.depth.unwrap_or(1);
            files
                .run(move |f| {
                    let entries: Vec<Value> = f.list(&r.path, depth)?.iter().map(entry_info).collect();
                    Ok(json!({"entries": entries}))
                })
                .await?
        }
        "MakeDir" => {
            files
                .run(move |f| {
                    if !f.make_dir(&r.path)? {
                        return Err(crate::sandboxes::SbxError::Exists(format!("'{}' already exists", r.path)));
                    }
                    Ok(json!({"entry": entry_info(&f.stat(&r.path)?)}))
                })
                .await?
        }
        "Move" => files.run(move |f| Ok(json!({"entry": entry_info(&f.rename(&r.source, &r.destination)?)}))).await?,
        // Removing what is not there is no error (envd's `os.RemoveAll`).
        "Remove" => {
            files
                .run(move |f| match f.remove(&r.path) {
                    Ok(()) | Err(crate::sandboxes::SbxError::NotFound(_)) => Ok(json!({})),
                    Err(e) => Err(e),
                })
                .await?
        }
        other => {
            return Err(ConnectError::new(
                "unimplemented",
                format!("{service}/{other} is not offered; Stat, ListDir, MakeDir, Move and Remove are"),
            ));
        }
    };
    Ok(connect::unary(&answer))
}

/// `process.Process`: `Start` runs one of the sandbox's few commands; nothing else exists.
async fn process(State(app): State<App>, headers: HeaderMap, Path(method): Path<String>, body: Bytes) -> Response {
    match enter(&app, &headers) {
        Ok(sbx) => process_rpc(&app, sbx, "process.Process", &method, &headers, &body).await,
        Err(e) => ConnectError::from(e).into_response(),
    }
}

/// `Start`'s request: the process to start (E2B sends `bash -l -c <command>`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct StartRequest {
    process: ProcessConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ProcessConfig {
    cmd: String,
    args: Vec<String>,
    cwd: Option<String>,
    /// The command's environment variables (over the sandbox's).
    envs: std::collections::BTreeMap<String, String>,
}

impl ProcessConfig {
    /// The command line: what a shell would have run.
    fn line(&self) -> String {
        let shell = self.cmd.ends_with("/bash") || self.cmd.ends_with("/sh") || self.cmd == "bash" || self.cmd == "sh";
        if shell && let Some(at) = self.args.iter().position(|a| a == "-c" || a == "-lc") {
            return self.args.get(at + 1).cloned().unwrap_or_default();
        }
        std::iter::once(self.cmd.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(|w| shlex::try_quote(w).map(|q| q.into_owned()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The Process service of envd (and Scalebox's `sandboxagent.Process`, the same service):
/// `Start` streams a command's events (start, output as base64 data, end); `List` answers
/// no processes; the rest answer `unimplemented`, since nothing keeps running.
pub(crate) async fn process_rpc(
    app: &App,
    sbx: Arc<Sbx>,
    service: &str,
    method: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let streamed = headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/connect+"));
    let refuse = |error: ConnectError| if streamed { connect::stream_error(error) } else { error.into_response() };
    match method {
        "Start" => {}
        "List" => return connect::unary(&json!({"processes": []})),
        other => {
            return refuse(ConnectError::new(
                "unimplemented",
                format!(
                    "{service}/{other}: a Cella sandbox has no processes that keep running; Start runs {}",
                    crate::sandboxes::OFFERED
                ),
            ));
        }
    }
    let request: StartRequest = match connect::decode_enveloped(body) {
        Ok(r) => r,
        Err(e) => return refuse(e),
    };
    let (frames, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let sandboxes = app.sandboxes.clone();
    // Connect's own deadline: the SDK's `timeout` of the command (none: until the sandbox ends).
    let deadline = headers
        .get("connect-timeout-ms")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(std::time::Duration::from_millis);
    // The command runs to its end (or deadline) whatever the connection does.
    tokio::spawn(async move {
        use base64::Engine;
        let event = |e: Value| connect::envelope(&json!({"event": e}));
        let _ = frames.send(event(json!({"start": {"pid": 1}})));
        let (sink, output) = tokio::sync::mpsc::unbounded_channel();
        let to = frames.clone();
        let forward = tokio::spawn(crate::sandboxes::by_line(output, move |channel, text| {
            let kind = if channel == "stderr" { "stderr" } else { "stdout" };
            let data = base64::engine::general_purpose::STANDARD.encode(text);
            let _ = to.send(connect::envelope(&json!({"event": {"data": {kind: data}}})));
        }));
        let process = &request.process;
        let ran =
            sandboxes.command(&sbx, &process.line(), process.cwd.as_deref(), &process.envs, deadline, Some(sink)).await;
        match ran {
            Ok(result) => {
                let _ = forward.await;
                let code = result.exit_code;
                let end = json!({"exitCode": code, "exited": true, "status": format!("exit status {code}")});
                let _ = frames.send(event(json!({"end": end})));
                let _ = frames.send(connect::end_of_stream(None));
            }
            Err(e) => {
                let _ = forward.await;
                let _ = frames.send(connect::end_of_stream(Some(&ConnectError::from(e))));
            }
        }
    });
    crate::http::streamed(connect::STREAM, rx)
}
