//! OpenAPI schemas of the request bodies and the envelope (documentation only: handlers read
//! bodies with [`super::body::Body`] so that every error names its field).

#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The result envelope.
#[derive(ToSchema)]
pub struct EnvelopeSchema {
    /// 0 for success; see the codes table in docs/codes.md.
    code: i32,
    /// `success` or the error.
    message: String,
    /// The payload or error details.
    data: Option<Value>,
    /// Where the answer came from.
    meta: MetaSchema,
}

/// The envelope's meta.
#[derive(ToSchema)]
pub struct MetaSchema {
    tool: Option<String>,
    execution_time_ms: Option<f64>,
    resource_type: Option<String>,
    session_id: Option<String>,
    trace_id: Option<String>,
    /// Present (true) when a temporary session was used.
    temporary_session: Option<bool>,
}

/// `POST /api/v1/execute`.
#[derive(ToSchema)]
pub struct ExecuteRequest {
    /// The worker (agent client).
    worker_id: String,
    /// `type:action`, `type.action`, `type_action`, `type-action` or a unique simple name.
    action: String,
    /// The tool's parameters.
    params: Option<BTreeMap<String, Value>>,
    /// Seconds; at most the server's `call_timeout_s`. 0 or null: the server's.
    timeout: Option<f64>,
}

/// One action of a batch.
#[derive(ToSchema)]
pub struct BatchAction {
    action: String,
    params: Option<BTreeMap<String, Value>>,
    timeout: Option<f64>,
}

/// `POST /api/v1/execute/batch`.
#[derive(ToSchema)]
pub struct BatchRequest {
    worker_id: String,
    actions: Vec<BatchAction>,
    /// Run concurrently (default false).
    parallel: Option<bool>,
    /// In order: stop at the first failure (default true).
    stop_on_error: Option<bool>,
}

/// `POST /api/v1/session/create`.
#[derive(ToSchema)]
pub struct SessionCreateRequest {
    worker_id: String,
    resource_type: String,
    /// Merged over the backend's default config.
    session_config: Option<BTreeMap<String, Value>>,
    /// A suffix of the session name.
    custom_name: Option<String>,
}

/// A worker and a resource type.
#[derive(ToSchema)]
pub struct SessionRequest {
    worker_id: String,
    resource_type: String,
}

/// `POST /api/v1/session/refresh`.
#[derive(ToSchema)]
pub struct SessionRefreshRequest {
    worker_id: String,
    /// One type; all of the worker's sessions when absent.
    resource_type: Option<String>,
}

/// A worker.
#[derive(ToSchema)]
pub struct WorkerRequest {
    worker_id: String,
}

/// `POST /api/v1/init/resource`.
#[derive(ToSchema)]
pub struct InitResourceRequest {
    worker_id: String,
    resource_type: String,
    init_config: Option<BTreeMap<String, Value>>,
}

/// `POST /api/v1/init/batch`.
#[derive(ToSchema)]
pub struct InitBatchRequest {
    worker_id: String,
    /// Type → config (or `{content: config}`).
    resource_configs: Option<BTreeMap<String, Value>>,
}

/// `POST /api/v1/init/from-config`.
#[derive(ToSchema)]
pub struct InitFromConfigRequest {
    worker_id: String,
    /// Relative to `server.init_config_dir`.
    config_path: String,
    override_params: Option<BTreeMap<String, Value>>,
}

/// `POST /api/v1/warmup`.
#[derive(ToSchema)]
pub struct WarmupRequest {
    /// Backends to warm; all when absent, null or empty.
    backends: Option<Vec<String>>,
}

/// `POST /api/v1/server/shutdown`.
#[derive(ToSchema)]
pub struct ShutdownRequest {
    /// Logged only.
    force: Option<bool>,
    /// End every session first (default true).
    cleanup_sessions: Option<bool>,
}
