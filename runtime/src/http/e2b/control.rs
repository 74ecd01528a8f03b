//! E2B's control plane: create (also from a snapshot), get, list, renew, connect, pause,
//! resume, fork, snapshot and kill sandboxes; list and delete snapshots.

use super::{E2bError, ENVD_VERSION};
use crate::http::App;
use crate::http::auth::Who;
use crate::sandboxes::{SandboxSpec, Sbx, timeout_s};
use axum::Router;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The home directory of E2B's sandboxes (where code and the files API meet).
const HOME: &str = "/home/user";

pub(super) fn routes() -> Router<App> {
    Router::new()
        .route("/v2/sandboxes", post(create).get(list))
        .route("/sandboxes", post(create).get(list))
        .route("/sandboxes/{id}", get(info).delete(kill))
        .route("/sandboxes/{id}/timeout", post(timeout))
        .route("/sandboxes/{id}/refreshes", post(refresh))
        .route("/v2/sandboxes/{id}/connect", post(connect))
        .route("/sandboxes/{id}/connect", post(connect))
        .route("/sandboxes/{id}/pause", post(pause))
        .route("/sandboxes/{id}/resume", post(resume))
        .route("/sandboxes/{id}/fork", post(fork))
        .route("/sandboxes/{id}/snapshots", post(snapshot))
        .route("/snapshots", get(snapshots))
        .route("/templates/{id}", axum::routing::delete(delete_snapshot))
}

/// `POST /v2/sandboxes`'s body (camelCase, unknown fields ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewSandbox {
    #[serde(rename = "templateID")]
    template_id: Option<String>,
    timeout: Option<i64>,
    metadata: Option<BTreeMap<String, String>>,
    env_vars: Option<BTreeMap<String, String>>,
}

/// The `Sandbox` answer of create and connect.
fn created(sbx: &Sbx) -> Value {
    json!({
        "templateID": sbx.template,
        "sandboxID": sbx.id,
        "clientID": "cella",
        "envdVersion": ENVD_VERSION,
        "envdAccessToken": sbx.token,
        "trafficAccessToken": sbx.token,
    })
}

/// The `SandboxDetail` (and `ListedSandbox`) answer.
fn detail(app: &App, sbx: &Sbx) -> Value {
    let server = &app.sandbox.config().server;
    json!({
        "templateID": sbx.template,
        "alias": sbx.template,
        "sandboxID": sbx.id,
        "clientID": "cella",
        "startedAt": sbx.started_at.to_rfc3339(),
        "endAt": sbx.end_at().to_rfc3339(),
        "envdVersion": ENVD_VERSION,
        "envdAccessToken": sbx.token,
        "cpuCount": 1,
        "memoryMB": server.limits.memory_mb,
        "diskSizeMB": server.sandboxes.files_quota_mb,
        "metadata": sbx.metadata,
        "state": if sbx.paused() { "paused" } else { "running" },
    })
}

async fn create(
    State(app): State<App>,
    who: Who,
    body: Result<axum::Json<NewSandbox>, JsonRejection>,
) -> Result<Response, E2bError> {
    let tenant = who.sandbox_owner()?;
    let axum::Json(body) = body?;
    let spec = SandboxSpec {
        template: body.template_id.unwrap_or_else(|| "code-interpreter-v1".into()),
        timeout_s: body.timeout.map(timeout_s).transpose()?,
        metadata: body.metadata.unwrap_or_default(),
        env: body.env_vars.unwrap_or_default(),
        home: HOME.into(),
    };
    // A template that names one of the tenant's sandbox snapshots starts from it.
    let sbx = match app.sandboxes.find_sandbox_snapshot(&tenant, &spec.template).await {
        Some(snapshot) => app.sandboxes.create_from_snapshot(&tenant, &snapshot, spec).await?,
        None => app.sandboxes.create(&tenant, spec).await?,
    };
    Ok((StatusCode::CREATED, axum::Json(created(&sbx))).into_response())
}

async fn info(State(app): State<App>, who: Who, Path(id): Path<String>) -> Result<axum::Json<Value>, E2bError> {
    let sbx = app.sandboxes.get(&who.sandbox_owner()?, &id)?;
    Ok(axum::Json(detail(&app, &sbx)))
}

/// `GET /v2/sandboxes`'s query.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    metadata: Option<String>,
    state: Option<String>,
    /// `asc` (oldest first, the default) or `desc`, by start time, over the whole list.
    order: Option<String>,
    /// Only sandboxes started at or after this time (RFC 3339).
    started_after: Option<String>,
    /// Only sandboxes started at or before this time (RFC 3339).
    started_before: Option<String>,
    /// Only sandboxes of this template.
    template: Option<String>,
    next_token: Option<String>,
    limit: Option<usize>,
}

/// The `metadata` filter: `k=v&k2=v2`, URL-encoded, each key and value quoted once more.
fn metadata_filter(query: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    form_urlencoded::parse(query.unwrap_or_default().as_bytes()).map(|(k, v)| (decode(&k), decode(&v))).collect()
}

/// A time bound of the list's query.
fn time_bound(name: &str, value: Option<&str>) -> Result<Option<chrono::DateTime<chrono::Utc>>, E2bError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v).map(|t| t.to_utc()).map_err(|e| {
                E2bError::new(StatusCode::BAD_REQUEST, format!("{name} must be an RFC 3339 time, not '{v}': {e}"))
            })
        })
        .transpose()
}

/// Where a sandbox stands in the list's order: its start, then its id. The next page's
/// token is the last one shown, so a page goes on after it even when it has ended since.
fn list_key(sbx: &Sbx) -> String {
    format!("{:020}.{}", sbx.started_at.timestamp_nanos_opt().unwrap_or_default(), sbx.id)
}

/// A listed sandbox's place in the order, from its listing (another node's).
fn listed_key(entry: &Value) -> Option<String> {
    let started = chrono::DateTime::parse_from_rfc3339(entry["startedAt"].as_str()?).ok()?;
    Some(format!("{:020}.{}", started.timestamp_nanos_opt().unwrap_or_default(), entry["sandboxID"].as_str()?))
}

/// `GET /v2/sandboxes`: the tenant's sandboxes; in a cluster, every live node's (each node
/// lists its own with the same query, merged here in the list's order).
async fn list(
    State(app): State<App>,
    who: Who,
    uri: axum::http::Uri,
    request_headers: HeaderMap,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Response, E2bError> {
    let tenant = who.sandbox_owner()?;
    let Query(q) = query?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let descending = match q.order.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(E2bError::new(StatusCode::BAD_REQUEST, format!("order must be asc or desc, not '{other}'")));
        }
    };
    let after = time_bound("startedAfter", q.started_after.as_deref())?;
    let before = time_bound("startedBefore", q.started_before.as_deref())?;
    let wants = |state: &str| q.state.as_deref().is_none_or(|s| s.split(',').any(|s| s.trim() == state));
    let filter = metadata_filter(q.metadata.as_deref());
    let mut all: Vec<Arc<Sbx>> = app.sandboxes.list(&tenant);
    all.retain(|b| {
        wants(if b.paused() { "paused" } else { "running" })
            && filter.iter().all(|(k, v)| b.metadata.get(k) == Some(v))
            && after.is_none_or(|t| b.started_at >= t)
            && before.is_none_or(|t| b.started_at <= t)
            && q.template.as_deref().is_none_or(|t| b.template == t)
    });
    if descending {
        all.reverse();
    }
    if let Some(token) = q.next_token.as_deref().filter(|t| !t.is_empty()) {
        all.retain(|b| if descending { list_key(b).as_str() < token } else { list_key(b).as_str() > token });
    }
    let mut more = all.len() > limit;
    all.truncate(limit);
    let mut page: Vec<(String, Value)> = all.iter().map(|b| (list_key(b), detail(&app, b))).collect();
    if !crate::http::forward::was_forwarded_headers(&request_headers) {
        for (headers, body) in crate::http::forward::ask_peers(&app.sandbox, &uri, &request_headers).await {
            more |= headers.contains_key("x-next-token");
            let entries: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
            page.extend(entries.into_iter().filter_map(|e| Some((listed_key(&e)?, e))));
        }
        page.sort_by(|a, b| if descending { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) });
        page.dedup_by(|a, b| a.0 == b.0);
        more |= page.len() > limit;
        page.truncate(limit);
    }
    let mut headers = HeaderMap::new();
    if more && let Some(last) = page.last().and_then(|(key, _)| HeaderValue::from_str(key).ok()) {
        headers.insert("x-next-token", last);
    }
    let page: Vec<Value> = page.into_iter().map(|(_, e)| e).collect();
    Ok((headers, axum::Json(page)).into_response())
}

/// `{"timeout": seconds}`.
#[derive(Debug, Deserialize)]
struct Timeout {
    timeout: Option<i64>,
}

async fn timeout(
    State(app): State<App>,
    who: Who,
    Path(id): Path<String>,
    body: Result<axum::Json<Timeout>, JsonRejection>,
) -> Result<StatusCode, E2bError> {
    let sbx = app.sandboxes.get(&who.sandbox_owner()?, &id)?;
    let axum::Json(body) = body?;
    let Some(t) = body.timeout.map(timeout_s).transpose()? else {
        return Err(E2bError::new(StatusCode::BAD_REQUEST, "timeout is required"));
    };
    app.sandboxes.set_timeout(&sbx, t);
    Ok(StatusCode::NO_CONTENT)
}

/// The legacy keep-alive: renews by `duration` seconds, or by the default timeout.
async fn refresh(
    State(app): State<App>,
    who: Who,
    Path(id): Path<String>,
    body: Option<axum::Json<Value>>,
) -> Result<StatusCode, E2bError> {
    let sbx = app.sandboxes.get(&who.sandbox_owner()?, &id)?;
    let duration = body.and_then(|b| b.0["duration"].as_u64());
    let default = app.sandbox.config().server.sandboxes.default_timeout_s;
    app.sandboxes.set_timeout(&sbx, duration.unwrap_or(default));
    Ok(StatusCode::NO_CONTENT)
}

async fn connect(
    State(app): State<App>,
    who: Who,
    Path(id): Path<String>,
    body: Option<axum::Json<Timeout>>,
) -> Result<axum::Json<Value>, E2bError> {
    let sbx = app.sandboxes.get(&who.sandbox_owner()?, &id)?;
    let t = body.and_then(|b| b.0.timeout).map(timeout_s).transpose()?;
    // Connecting to a paused sandbox resumes it, as E2B does.
    app.sandboxes.resume(&sbx, t).await?;
    Ok(axum::Json(created(&sbx)))
}

/// Pauses a sandbox: its interpreters are snapshotted and freed (204); a paused one answers
/// 409, which the SDK reads as "already paused".
async fn pause(State(app): State<App>, who: Who, Path(id): Path<String>) -> Result<StatusCode, E2bError> {
    let sbx = app.sandboxes.get(&who.sandbox_owner()?, &id)?;
    if sbx.paused() {
        return Err(E2bError::new(StatusCode::CONFLICT, format!("sandbox '{id}' is already paused")));
    }
    app.sandboxes.pause(&sbx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Resumes a paused sandbox (the legacy route; `connect` does the same): 201 with the sandbox.
async fn resume(
    State(app): State<App>,
    who: Who,
    Path(id): Path<String>,
    body: Option<axum::Json<Timeout>>,
) -> Result<Response, E2bError> {
    let sbx = app.sandboxes.get(&who.sandbox_owner()?, &id)?;
    let t = body.and_then(|b| b.0.timeout).map(timeout_s).transpose()?;
    app.sandboxes.resume(&sbx, t).await?;
    Ok((StatusCode::CREATED, axum::Json(created(&sbx))).into_response())
}

/// A JSON body that may be empty (then every field is absent); 400 in E2B's shape when it is
/// not the object asked for.
fn optional_json<T: serde::de::DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, E2bError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(bytes)
        .map_err(|e| E2bError::new(StatusCode::BAD_REQUEST, format!("invalid request body: {e}")))
}

/// `POST /sandboxes/{id}/fork`'s body.
#[derive(Debug, Default, Deserialize)]
struct ForkBody {
    timeout: Option<i64>,
    count: Option<i64>,
}

/// Forks a sandbox: 201 with one `SandboxForkResult` per copy (`sandbox`, or `error` when
/// that copy could not be made); the source goes on unaffected.
async fn fork(
    State(app): State<App>,
    who: Who,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, E2bError> {
    let body: ForkBody = optional_json(&body)?;
    let sbx = app.sandboxes.get(&who.sandbox_owner()?, &id)?;
    let t = body.timeout.map(timeout_s).transpose()?;
    let count = body.count.unwrap_or(1);
    let count = usize::try_from(count)
        .map_err(|_| E2bError::new(StatusCode::BAD_REQUEST, format!("count must be positive, not {count}")))?;
    let copies = app.sandboxes.fork(&sbx, count, t).await?;
    let results: Vec<Value> = copies
        .into_iter()
        .map(|copy| match copy {
            Ok(copy) => json!({"sandbox": created(&copy)}),
            Err(e) => json!({"error": {"code": crate::http::sandbox_status(&e).as_u16(), "message": e.to_string()}}),
        })
        .collect();
    Ok((StatusCode::CREATED, axum::Json(results)).into_response())
}

async fn kill(State(app): State<App>, who: Who, Path(id): Path<String>) -> Result<StatusCode, E2bError> {
    if app.sandboxes.kill(&who.sandbox_owner()?, &id).await {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(E2bError::new(StatusCode::NOT_FOUND, format!("sandbox '{id}' not found")))
    }
}

/// `POST /sandboxes/{id}/snapshots`'s body (`memory` is accepted; a snapshot always holds
/// the interpreters' state and the files).
#[derive(Debug, Default, Deserialize)]
struct SnapshotBody {
    name: Option<String>,
}

/// Snapshots a sandbox: 201 `{snapshotID, names}`; `Sandbox.create(template=<id or name>)`
/// starts new sandboxes from it.
async fn snapshot(
    State(app): State<App>,
    who: Who,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, E2bError> {
    let body: SnapshotBody = optional_json(&body)?;
    let sbx = app.sandboxes.get(&who.sandbox_owner()?, &id)?;
    let name = body.name.filter(|n| !n.trim().is_empty());
    let made = app.sandboxes.snapshot(&sbx, name).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({"snapshotID": made.id, "names": made.names}))).into_response())
}

/// `GET /snapshots`'s query.
#[derive(Debug, Deserialize)]
struct SnapshotsQuery {
    #[serde(rename = "sandboxID")]
    sandbox_id: Option<String>,
    name: Option<String>,
}

/// The tenant's sandbox snapshots (of one sandbox, or with one name), oldest first.
async fn snapshots(
    State(app): State<App>,
    who: Who,
    query: Result<Query<SnapshotsQuery>, QueryRejection>,
) -> Result<axum::Json<Vec<Value>>, E2bError> {
    let tenant = who.sandbox_owner()?;
    let Query(q) = query?;
    let all = app.sandboxes.sandbox_snapshots(&tenant, q.sandbox_id.as_deref(), q.name.as_deref()).await;
    Ok(axum::Json(all.iter().map(|m| json!({"snapshotID": m.id, "names": m.names})).collect()))
}

/// Deletes a snapshot (E2B deletes snapshots as templates): 204, or 404.
async fn delete_snapshot(State(app): State<App>, who: Who, Path(id): Path<String>) -> Result<StatusCode, E2bError> {
    let tenant = who.sandbox_owner()?;
    let found = app.sandboxes.find_sandbox_snapshot(&tenant, &id).await.map(|m| m.id);
    match found {
        Some(id) if app.sandboxes.delete_sandbox_snapshot(&tenant, &id).await => Ok(StatusCode::NO_CONTENT),
        _ => Err(E2bError::new(StatusCode::NOT_FOUND, format!("snapshot '{id}' not found"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metadata_filter_is_decoded_twice() {
        // What the SDK sends for {"user name": "a&b"}: quoted, then URL-encoded.
        let sent = "user%2520name=a%2526b&x=1";
        assert_eq!(metadata_filter(Some(sent)), [("user name".into(), "a&b".into()), ("x".into(), "1".into())]);
    }
}
