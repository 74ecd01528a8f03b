//! The request bodies of AgentFlow's routes, as serde types: the handlers read them and the
//! OpenAPI document describes them. AgentFlow's quirks live in the field types
//! ([`super::fields`]); unknown fields are ignored, as AgentFlow does.

use super::error::ApiError;
use super::fields::{Flag, Name, Names, Object, Params, Seconds, Text, non_empty};
use super::json::Route;
use crate::codes;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

/// `POST /api/v1/execute`.
#[derive(Deserialize, ToSchema)]
pub struct ExecuteRequest {
    /// The worker (agent client).
    #[schema(value_type = String)]
    pub worker_id: Name,
    /// `type:action`, `type.action`, `type_action`, `type-action` or a unique simple name.
    #[schema(value_type = String)]
    pub action: Name,
    /// The tool's parameters.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub params: Params,
    /// Seconds; at most the server's `call_timeout_s`. 0 or null: the server's.
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub timeout: Seconds,
}

impl Route for ExecuteRequest {
    const TOOL: &'static str = "execute";
}

/// One action of a batch.
#[derive(Deserialize, ToSchema)]
pub struct BatchAction {
    /// As in `execute`.
    #[schema(value_type = String)]
    pub action: Name,
    /// The tool's parameters.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub params: Params,
    /// Seconds, as in `execute`.
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub timeout: Seconds,
}

/// `POST /api/v1/execute/batch`.
#[derive(Deserialize, ToSchema)]
pub struct BatchRequest {
    /// The worker.
    #[schema(value_type = String)]
    pub worker_id: Name,
    /// The actions, in order.
    pub actions: Vec<BatchAction>,
    /// Run concurrently (default false).
    #[schema(value_type = Option<bool>)]
    pub parallel: Option<Flag>,
    /// In order: stop at the first failure (default true).
    #[schema(value_type = Option<bool>)]
    pub stop_on_error: Option<Flag>,
}

impl Route for BatchRequest {
    const TOOL: &'static str = "batch:execute";
}

/// `POST /api/v1/session/create`.
#[derive(Deserialize, ToSchema)]
pub struct SessionCreateRequest {
    /// The worker.
    #[schema(value_type = String)]
    pub worker_id: Option<Text>,
    /// The backend.
    #[schema(value_type = String)]
    pub resource_type: Option<Text>,
    /// Merged over the backend's default config.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub session_config: Object,
    /// A suffix of the session name.
    #[schema(value_type = Option<String>)]
    pub custom_name: Option<Text>,
    /// What happens when the TTL runs out: `end` (the default) or `pause` (snapshotted and
    /// kept for `server.snapshots.retention_s`; the next call resumes it). Cella's addition.
    #[schema(value_type = Option<String>)]
    pub on_timeout: Option<Text>,
}

impl Route for SessionCreateRequest {
    const TOOL: &'static str = "session:create";
    const INVALID: StatusCode = StatusCode::BAD_REQUEST;
}

/// `POST /api/v1/session/destroy`: a worker and a resource type.
#[derive(Deserialize, ToSchema)]
pub struct SessionRequest {
    /// The worker.
    #[schema(value_type = String)]
    pub worker_id: Option<Text>,
    /// The backend.
    #[schema(value_type = String)]
    pub resource_type: Option<Text>,
}

impl Route for SessionRequest {
    const TOOL: &'static str = "session:destroy";
    const INVALID: StatusCode = StatusCode::BAD_REQUEST;
}

/// Worker and resource type, both required, with AgentFlow's message when either is missing.
pub fn worker_and_type(tool: &str, worker: &Option<Text>, rt: &Option<Text>) -> Result<(String, String), ApiError> {
    match (non_empty(worker), non_empty(rt)) {
        (Some(w), Some(r)) => Ok((w, r)),
        (w, r) => Err(ApiError::new(
            tool,
            codes::INVALID_REQUEST_FORMAT,
            "worker_id and resource_type required",
            json!({"worker_id": w, "resource_type": r}),
        )),
    }
}

/// The worker, required, with AgentFlow's message when it is missing.
pub fn worker(tool: &str, worker: &Option<Text>) -> Result<String, ApiError> {
    non_empty(worker).ok_or_else(|| {
        ApiError::new(tool, codes::INVALID_REQUEST_FORMAT, "worker_id required", json!({"worker_id": null}))
    })
}

/// `POST /api/v1/session/refresh`.
#[derive(Deserialize, ToSchema)]
pub struct SessionRefreshRequest {
    /// The worker.
    #[schema(value_type = String)]
    pub worker_id: Option<Text>,
    /// One type; all of the worker's sessions when absent.
    #[schema(value_type = Option<String>)]
    pub resource_type: Option<Text>,
}

impl Route for SessionRefreshRequest {
    const TOOL: &'static str = "session:refresh";
    const INVALID: StatusCode = StatusCode::BAD_REQUEST;
}

/// Routes whose body is a worker: one type each, so errors name the route's operation.
macro_rules! worker_route {
    ($(#[$doc:meta] $name:ident = $tool:literal;)*) => {$(
        #[$doc]
        #[derive(Deserialize, ToSchema)]
        pub struct $name {
            /// The worker.
            #[schema(value_type = String)]
            pub worker_id: Option<Text>,
        }

        impl Route for $name {
            const TOOL: &'static str = $tool;
            const INVALID: StatusCode = StatusCode::BAD_REQUEST;
        }
    )*};
}

worker_route! {
    /// `POST /api/v1/session/list`.
    SessionListRequest = "session:list";
    /// `POST /api/v1/lifecycle/heartbeat`.
    HeartbeatRequest = "session:heartbeat";
    /// `POST /api/v1/lifecycle/status`.
    StatusRequest = "session:status";
}

/// `POST /api/v1/worker/disconnect`.
#[derive(Deserialize, ToSchema)]
pub struct DisconnectRequest {
    /// The worker.
    #[schema(value_type = String)]
    pub worker_id: Name,
}

impl Route for DisconnectRequest {
    const TOOL: &'static str = "session:disconnect";
}

/// `POST /api/v1/init/resource`.
#[derive(Deserialize, ToSchema)]
pub struct InitResourceRequest {
    /// The worker.
    #[schema(value_type = String)]
    pub worker_id: Name,
    /// The backend.
    #[schema(value_type = String)]
    pub resource_type: Name,
    /// Merged over the backend's default config.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub init_config: Object,
}

impl Route for InitResourceRequest {
    const TOOL: &'static str = "init:resource";
}

/// `POST /api/v1/init/batch`.
#[derive(Deserialize, ToSchema)]
pub struct InitBatchRequest {
    /// The worker.
    #[schema(value_type = String)]
    pub worker_id: Name,
    /// Type → config (or `{content: config}`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub resource_configs: Object,
}

impl Route for InitBatchRequest {
    const TOOL: &'static str = "init:batch";
}

/// `POST /api/v1/init/from-config`.
#[derive(Deserialize, ToSchema)]
pub struct InitFromConfigRequest {
    /// The worker.
    #[schema(value_type = String)]
    pub worker_id: Name,
    /// Relative to `server.init_config_dir`.
    #[schema(value_type = String)]
    pub config_path: Name,
    /// Values that replace (or, for objects, extend) the file's top-level keys.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub override_params: Object,
}

impl Route for InitFromConfigRequest {
    const TOOL: &'static str = "init:from_config";
}

/// `POST /api/v1/warmup`.
#[derive(Deserialize, ToSchema)]
pub struct WarmupRequest {
    /// Backends to warm; all when absent, null or empty.
    #[schema(value_type = Option<Vec<String>>)]
    pub backends: Option<Names>,
}

impl Route for WarmupRequest {
    const TOOL: &'static str = "warmup";
}

/// `POST /api/v1/server/shutdown` (AgentFlow's `force` is accepted and ignored: sessions
/// always end cleanly).
#[derive(Deserialize, ToSchema)]
pub struct ShutdownRequest {
    /// End every session first (default true).
    #[schema(value_type = Option<bool>)]
    pub cleanup_sessions: Option<Flag>,
}

impl Route for ShutdownRequest {
    const TOOL: &'static str = "server:shutdown";
}

impl Route for crate::run::RunRequest {
    const TOOL: &'static str = "run";
}
