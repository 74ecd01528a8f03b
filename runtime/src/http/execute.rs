//! `POST /api/v1/execute` and `POST /api/v1/execute/batch`.

use super::App;
use super::auth::Who;
use super::body::Body;
use super::extract::RawBody;
use super::reply::{Reply, execute_status};
use crate::codes;
use crate::envelope::{Envelope, Meta, trace_id};
use crate::sandbox::ExecOptions;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

/// Runs one tool; the envelope's code decides the status (0 → 200, 4xxx → 400, else 500).
#[utoipa::path(post, path = "/api/v1/execute", tag = "execute",
    request_body = super::schema::ExecuteRequest,
    responses((status = 200, description = "The tool succeeded", body = super::schema::EnvelopeSchema),
              (status = 400, description = "Bad request or a 4xxx tool error", body = super::schema::EnvelopeSchema),
              (status = 422, description = "A field has the wrong type", body = super::schema::EnvelopeSchema),
              (status = 500, description = "A 5xxx/7xxx error: fault, timeout, tool failure", body = super::schema::EnvelopeSchema)))]
pub async fn execute(State(app): State<App>, who: Who, RawBody(bytes): RawBody) -> Reply {
    let body = match Body::parse(&bytes, "execute", StatusCode::UNPROCESSABLE_ENTITY) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let parsed = (|| {
        Ok::<_, Reply>((body.req_str("worker_id")?, body.req_str("action")?, params(&body)?, body.seconds("timeout")?))
    })();
    let (worker, action, params, timeout) = match parsed {
        Ok(p) => p,
        Err(r) => return r,
    };
    let options = ExecOptions { timeout: timeout.map(crate::config::seconds), ..ExecOptions::default() };
    let caller = match who.caller("execute", worker) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let envelope = app.sandbox.execute(&caller, &action, params, options).await;
    Reply::envelope(execute_status(envelope.code), envelope)
}

fn params(body: &Body) -> Result<Value, Reply> {
    match body.get("params") {
        None => Ok(json!({})),
        Some(Value::Object(_)) => Ok(body.get("params").cloned().unwrap_or_default()),
        Some(other) => Err(Reply::bad_request(
            body.invalid,
            body.tool,
            format!("params must be an object, not {}", super::reply::kind(other)),
        )),
    }
}

/// Runs several tools, in order or in parallel; 200 when all succeed, 207 when some fail,
/// 500 when none succeed.
#[utoipa::path(post, path = "/api/v1/execute/batch", tag = "execute",
    request_body = super::schema::BatchRequest,
    responses((status = 200, description = "Every action succeeded", body = super::schema::EnvelopeSchema),
              (status = 207, description = "Some actions failed (code 5010)", body = super::schema::EnvelopeSchema),
              (status = 422, description = "A field has the wrong type", body = super::schema::EnvelopeSchema),
              (status = 500, description = "Every action failed (code 5009)", body = super::schema::EnvelopeSchema)))]
pub async fn execute_batch(State(app): State<App>, who: Who, RawBody(bytes): RawBody) -> Reply {
    let started = std::time::Instant::now();
    let body = match Body::parse(&bytes, "batch:execute", StatusCode::UNPROCESSABLE_ENTITY) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let parsed = (|| {
        Ok::<_, Reply>((
            body.req_str("worker_id")?,
            body.bool_or("parallel", false)?,
            body.bool_or("stop_on_error", true)?,
        ))
    })();
    let (worker, parallel, stop_on_error) = match parsed {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(Value::Array(items)) = body.get("actions") else {
        return Reply::bad_request(body.invalid, body.tool, "actions is required and must be a list");
    };
    let mut actions = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Value::Object(map) = item else {
            return Reply::bad_request(body.invalid, body.tool, format!("actions[{i}] must be an object"));
        };
        let item = Body { map: map.clone(), invalid: body.invalid, tool: body.tool };
        let parsed = (|| Ok::<_, Reply>((item.req_str("action")?, params(&item)?, item.seconds("timeout")?)))();
        match parsed {
            Ok(a) => actions.push(a),
            Err(r) => return r,
        }
    }
    let caller = match who.caller("batch:execute", worker) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let total = actions.len();
    let run = |(action, params, timeout): (String, Value, Option<f64>)| {
        let (sandbox, caller) = (app.sandbox.clone(), caller.clone());
        async move {
            let options = ExecOptions { timeout: timeout.map(crate::config::seconds), ..ExecOptions::default() };
            sandbox.execute(&caller, &action, params, options).await
        }
    };
    let results: Vec<Envelope> = if parallel {
        futures::future::join_all(actions.into_iter().map(run)).await
    } else {
        let mut out = Vec::with_capacity(total);
        for action in actions {
            let envelope = run(action).await;
            let failed = envelope.code != 0;
            out.push(envelope);
            if failed && stop_on_error {
                break;
            }
        }
        out
    };
    let executed = results.len();
    let succeeded = results.iter().filter(|e| e.code == 0).count();
    let data = json!({"results": results, "total": total, "executed": executed, "success_count": succeeded});
    let meta = Meta {
        tool: Some("batch:execute".into()),
        execution_time_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
        trace_id: Some(trace_id()),
        ..Meta::default()
    };
    let (status, envelope) = if succeeded == executed && executed == total {
        (StatusCode::OK, Envelope::success(data, meta))
    } else if succeeded == 0 {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Envelope::error(codes::ALL_REQUESTS_FAILED, "All actions failed", data, meta),
        )
    } else {
        let message = format!("{} out of {} actions failed", executed - succeeded, executed);
        (StatusCode::MULTI_STATUS, Envelope::error(codes::PARTIAL_FAILURE, message, data, meta))
    };
    Reply::envelope(status, envelope)
}
