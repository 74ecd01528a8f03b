//! `POST /api/v1/execute` and `POST /api/v1/execute/batch`.

use super::App;
use super::auth::Who;
use super::error::{Answer, answer};
use super::fields::flag;
use super::json::Body;
use super::requests::{BatchRequest, ExecuteRequest};
use crate::codes;
use crate::envelope::{Envelope, Meta, trace_id};
use crate::sandbox::ExecOptions;
use axum::Json;
use axum::extract::State;
use serde_json::json;

type Schema = Envelope;

/// Runs one tool; the envelope's code decides the status (0 → 200, 4xxx → 400, else 500).
#[utoipa::path(post, path = "/api/v1/execute", tag = "execute",
    request_body = ExecuteRequest,
    responses((status = 200, description = "The tool succeeded", body = Schema),
              (status = 400, description = "Bad request or a 4xxx tool error", body = Schema),
              (status = 422, description = "A field has the wrong type", body = Schema),
              (status = 500, description = "A 5xxx/7xxx error: fault, timeout, tool failure", body = Schema)))]
pub async fn execute(State(app): State<App>, who: Who, Body(request): Body<ExecuteRequest>) -> Answer {
    let caller = who.caller("execute", request.worker_id.0)?;
    let options = ExecOptions { timeout: request.timeout.0, ..ExecOptions::default() };
    answer(app.sandbox.execute(&caller, &request.action.0, request.params.0, options).await)
}

/// Runs several tools, in order or in parallel; 200 when all succeed, 207 when some fail,
/// 500 when none succeed.
#[utoipa::path(post, path = "/api/v1/execute/batch", tag = "execute",
    request_body = BatchRequest,
    responses((status = 200, description = "Every action succeeded", body = Schema),
              (status = 207, description = "Some actions failed (code 5010)", body = Schema),
              (status = 422, description = "A field has the wrong type", body = Schema),
              (status = 500, description = "Every action failed (code 5009)", body = Schema)))]
pub async fn execute_batch(State(app): State<App>, who: Who, Body(request): Body<BatchRequest>) -> Answer {
    let started = std::time::Instant::now();
    let caller = who.caller("batch:execute", request.worker_id.0)?;
    let (parallel, stop_on_error) = (flag(request.parallel, false), flag(request.stop_on_error, true));
    let total = request.actions.len();
    let run = |action: super::requests::BatchAction| {
        let (sandbox, caller) = (app.sandbox.clone(), caller.clone());
        async move {
            let options = ExecOptions { timeout: action.timeout.0, ..ExecOptions::default() };
            sandbox.execute(&caller, &action.action.0, action.params.0, options).await
        }
    };
    let results: Vec<Envelope> = if parallel {
        futures::future::join_all(request.actions.into_iter().map(run)).await
    } else {
        let mut out = Vec::with_capacity(total);
        for action in request.actions {
            let envelope = run(action).await;
            let failed = !envelope.is_success();
            out.push(envelope);
            if failed && stop_on_error {
                break;
            }
        }
        out
    };
    let executed = results.len();
    let succeeded = results.iter().filter(|e| e.is_success()).count();
    let data = json!({"results": results, "total": total, "executed": executed, "success_count": succeeded});
    let meta = Meta {
        tool: Some("batch:execute".into()),
        execution_time_ms: Some(started.elapsed().as_secs_f64() * 1000.0),
        trace_id: Some(trace_id()),
        ..Meta::default()
    };
    if succeeded == executed && executed == total {
        Ok(Json(Envelope::success(data, meta)))
    } else if succeeded == 0 {
        Err(Envelope::error(codes::ALL_REQUESTS_FAILED, "All actions failed", data, meta).into())
    } else {
        let message = format!("{} out of {} actions failed", executed - succeeded, executed);
        Err(Envelope::error(codes::PARTIAL_FAILURE, message, data, meta).into())
    }
}
