//! envd inside a sandbox: health, file upload and download, and the `filesystem.Filesystem`
//! Connect service; the `process.Process` service is in [`super::process`].

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
use std::collections::BTreeMap;
use std::sync::Arc;

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/health", get(health))
        .route("/files", get(download).post(upload))
        .route("/filesystem.Filesystem/{method}", post(filesystem))
        .route("/process.Process/{method}", post(super::process::process))
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
    let mut out = json!({"name": entry.name, "type": kind, "path": entry.path});
    if !entry.metadata.is_empty() {
        out["metadata"] = json!(entry.metadata);
    }
    out
}

/// The file metadata an upload carries: its `X-Metadata-<key>` headers (keys lowercased).
fn upload_metadata(headers: &HeaderMap) -> Result<BTreeMap<String, String>, E2bError> {
    let mut out = BTreeMap::new();
    for (name, value) in headers {
        let Some(key) = name.as_str().strip_prefix("x-metadata-") else { continue };
        let value = value.to_str().map_err(|_| {
            E2bError::new(
                StatusCode::BAD_REQUEST,
                format!("the value of metadata key '{key}' is not printable US-ASCII"),
            )
        })?;
        out.insert(key.to_string(), value.to_string());
    }
    Ok(out)
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
    let metadata = upload_metadata(req.headers())?;
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
    // An upload replaces a file's metadata: what it carries, or none.
    let entries = sbx
        .files
        .run(move |f| {
            files
                .iter()
                .map(|(p, b)| {
                    f.write(p, b)?;
                    f.set_metadata(p, &metadata)?;
                    f.stat(p)
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
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
    if !e.metadata.is_empty() {
        info["metadata"] = json!(e.metadata);
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
