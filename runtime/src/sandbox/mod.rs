//! The Sandbox facade: the seeds' verbs (S-1 … S-14) over backends and sessions. Every
//! front door calls this layer and nothing below it; it knows nothing of HTTP.

mod checkpoints;
pub(crate) mod detach;
mod execute;
mod fork;
mod owners;
mod reaper;
mod restarts;
pub(crate) mod scratch;
pub(crate) mod session;
mod snapshots;
pub mod snapstore;
pub mod tenancy;
mod verbs;
mod warmup;
mod workdir;

use crate::codes;
use crate::config::Config;
use crate::engine::EngineHandle;
use crate::engine::backend::{Backend, Shared, WarmReport};
use crate::engine::cache::ComponentCache;
use crate::engine::fault::Fault;
use crate::engine::host::Tags;
use crate::engine::instance::{CallError, Instance};
use crate::engine::tools::{Resolved, ToolIndex, ToolSpec};
use crate::envelope::{Envelope, Meta, json_kind, timestamp, trace_id};
use crate::error::Result;
use crate::sandbox::detach::detached;
use crate::sandbox::scratch::ScratchDir;
use crate::sandbox::session::{Fresh, Lookup, Session, Sessions, Status};
use crate::sandbox::tenancy::{Denied, Tenancy};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// A refusal of a framework operation: a code, a message and details, ready to become an
/// error envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// The result code.
    pub code: i32,
    /// The message.
    pub message: String,
    /// Details.
    pub data: Value,
}

impl Refusal {
    fn new(code: i32, message: impl Into<String>, data: Value) -> Refusal {
        Refusal { code, message: message.into(), data }
    }
}

pub use crate::engine::host::Mount;
pub use cella_protocol::SnapshotInfo;
pub use owners::Located;
pub use restarts::BroughtBack;
pub use session::{Caller, Extras, SessionInfo};
pub use snapshots::Reason as SnapshotReason;
pub(crate) use workdir::dir_size;

/// A tool's parameters: a JSON object, so every door checks the shape once, where it reads
/// the request, and the facade needs no second check.
pub type Params = serde_json::Map<String, Value>;

/// The parameters in `value`: its map when it is an object, no parameters otherwise (for
/// callers that build them with `json!`; doors that read a client's JSON refuse the rest).
pub fn params(value: Value) -> Params {
    match value {
        Value::Object(map) => map,
        _ => Params::new(),
    }
}

/// Options of one `execute`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// A deadline shorter than the server's (longer ones are cut to the server's).
    pub timeout: Option<Duration>,
    /// A trace id to use instead of a new one.
    pub trace_id: Option<String>,
    /// Where the guest's streamed output (`host.emit`) goes while the tool runs.
    pub output: Option<crate::engine::host::OutputSink>,
}

/// How `create_session` went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateStatus {
    /// A new session, initialised.
    Created,
    /// The caller already had a session of this type; it is returned unchanged.
    Exists,
    /// A new session whose `initialize` failed; it stays listed in `error` state.
    Failed,
}

/// The result of `create_session`.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    /// How it went.
    pub status: CreateStatus,
    /// The session.
    pub session: SessionInfo,
}

/// The result of `reinitialize` (S-9).
#[derive(Debug, Clone, Serialize)]
pub struct Reinitialized {
    /// `success` or `error`.
    pub status: String,
    /// The resource type.
    pub resource_type: String,
    /// The session that was replaced, if there was one.
    pub old_session_id: Option<String>,
    /// The new session.
    pub new_session_id: String,
    /// The new session's name.
    pub new_session_name: String,
    /// The config the new session was initialised with.
    pub config_applied: Value,
    /// Why the new session failed to initialise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The result of `warmup` (S-2), in AgentFlow's shape.
#[derive(Debug, Clone, Serialize)]
pub struct WarmupOutcome {
    /// `success` or `partial_error`.
    pub status: String,
    /// Backend → warmed.
    pub results: BTreeMap<String, bool>,
    /// Counts over the targets.
    pub summary: WarmupSummary,
    /// Backend → error, only when there were errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, String>>,
}

/// Warmup counts.
#[derive(Debug, Clone, Serialize)]
pub struct WarmupSummary {
    /// Backends considered.
    pub total: usize,
    /// Backends warm.
    pub warmed_up: usize,
    /// Backends not warm.
    pub pending: usize,
}

/// The warm state of every backend.
#[derive(Debug, Clone, Serialize)]
pub struct WarmupStatus {
    /// Backend → state.
    pub backends: BTreeMap<String, WarmReport>,
    /// Counts.
    pub summary: WarmupSummary,
}

/// The result of `refresh_sessions` (S-8).
#[derive(Debug, Clone, Serialize)]
pub struct Refreshed {
    /// Resource type → new expiry.
    pub sessions: BTreeMap<String, RefreshedSession>,
}

/// One refreshed session.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshedSession {
    /// The session id.
    pub session_id: String,
    /// The new expiry.
    pub expires_at: String,
}

/// The in-process sandbox: loaded backends, their tools, and every session.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<Inner>,
}

struct Inner {
    /// Keeps the epoch ticker running.
    _engine: EngineHandle,
    /// Engine, linker, cache and limits.
    shared: Arc<Shared>,
    /// Loaded backends by resource type.
    backends: BTreeMap<String, Arc<Backend>>,
    /// Every tool.
    tools: ToolIndex,
    /// Every session.
    sessions: Sessions,
    /// The configuration the sandbox started with.
    config: Config,
    /// Set once shutdown begins: new work is refused.
    closing: AtomicBool,
    /// Tenants, keys and quotas.
    tenancy: Tenancy,
    /// Where session snapshots are kept.
    snapshots: snapstore::SnapshotStore,
    /// This server's node id in the snapshot store (the owner of its sessions' claims), made
    /// on first use; `None` when it cannot be kept.
    node: std::sync::OnceLock<Option<String>>,
}

impl Sandbox {
    /// Starts the sandbox (S-1): builds the engine, loads every enabled backend (compiled
    /// once, then from the cache), registers their tools, starts the session reaper, and
    /// warms the backends the configuration's `warmup` names.
    pub async fn start(config: Config) -> Result<Sandbox> {
        Sandbox::start_observed(config, &|_| {}).await
    }

    /// [`Sandbox::start`], telling `progress` the name of each backend once it has loaded.
    pub async fn start_observed(config: Config, progress: &(dyn Fn(&str) + Sync)) -> Result<Sandbox> {
        let engine = EngineHandle::new(&config.server.limits)?;
        #[cfg(target_os = "linux")]
        crate::engine::pages::spares::set_budget(
            usize::try_from(config.server.snapshots.spare_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
        );
        let cache = ComponentCache::new(config.server.cache_dir.as_ref().map(|d| config.resolve(d)));
        let shared = Arc::new(Shared::new(
            engine.engine.clone(),
            engine.fingerprint.clone(),
            cache,
            config.server.limits.clone(),
        )?);
        // Backends load side by side (reading, checking and mapping their compiled code is
        // most of a start); tools are registered in the configuration's order all the same.
        let mut loads = Vec::new();
        for (name, resource) in config.resources.iter().filter(|(_, r)| r.enabled) {
            let (name, resource, config, shared) = (name.clone(), resource.clone(), config.clone(), shared.clone());
            loads.push((name.clone(), tokio::spawn(async move {
                let started = Instant::now();
                let backend = Backend::load(&name, &resource, &config, shared).await?;
                tracing::info!(backend = %name, tools = backend.tools.len(), component = ?backend.origin, elapsed_ms = started.elapsed().as_millis() as u64, "backend loaded");
                Ok::<_, crate::error::Error>(backend)
            })));
        }
        let mut backends = BTreeMap::new();
        let mut tools = ToolIndex::default();
        for (name, load) in loads {
            let backend =
                load.await.map_err(|e| crate::error::Error::load(&name, format!("its load stopped: {e}")))??;
            progress(&name);
            tools.add(&backend.tools);
            backends.insert(name, Arc::new(backend));
        }
        let sessions = Sessions::new(crate::config::seconds(config.server.session_ttl));
        let tenancy = Tenancy::new(&config);
        let snapshots =
            snapstore::SnapshotStore::of(&config).map_err(|e| crate::error::Error::Config(e.to_string()))?;
        let inner = Arc::new(Inner {
            _engine: engine,
            shared,
            backends,
            tools,
            sessions,
            config,
            closing: AtomicBool::new(false),
            tenancy,
            snapshots,
            node: std::sync::OnceLock::new(),
        });
        reaper::spawn_reaper(Arc::downgrade(&inner));
        checkpoints::spawn_checkpointer(Arc::downgrade(&inner));
        checkpoints::spawn_sweeper(Arc::downgrade(&inner));
        let sandbox = Sandbox { inner };
        if sandbox.inner.config.server.snapshots.enabled {
            sandbox.bring_back_sessions().await;
        }
        if sandbox.inner.config.warmup.enabled {
            let names = sandbox.inner.config.warmup.resources.clone();
            let outcome = sandbox.warmup(if names.is_empty() { None } else { Some(&names) }).await;
            if let Some(errors) = outcome.errors {
                return Err(crate::error::Error::Config(format!("start-up warmup failed: {errors:?}")));
            }
        }
        Ok(sandbox)
    }

    /// Tenants, keys and quotas.
    pub fn tenancy(&self) -> &Tenancy {
        &self.inner.tenancy
    }

    /// The configuration the sandbox runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// A folder of the server's state directory (the cache directory) for a door's own
    /// files, e.g. `sandboxes`; not created.
    pub fn state_dir(&self, name: &str) -> std::path::PathBuf {
        self.inner.shared.cache.dir().join(name)
    }

    /// The loaded backends.
    pub fn backends(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.inner.backends.values()
    }

    /// One loaded backend.
    pub fn backend(&self, name: &str) -> Option<&Arc<Backend>> {
        self.inner.backends.get(name)
    }

    /// Every tool (hidden ones when asked), in registration order.
    pub fn tools(&self, include_hidden: bool) -> Vec<&ToolSpec> {
        self.inner.tools.list(include_hidden)
    }

    /// How many tools there are, hidden ones included.
    pub fn tools_count(&self) -> usize {
        self.inner.tools.len()
    }

    /// Resolves a tool name as `execute` does.
    pub fn resolve_tool(&self, action: &str) -> Resolved<'_> {
        self.inner.tools.resolve(action)
    }

    /// Resolves a tool name exactly (full name or unique simple name).
    pub fn tool_schema(&self, name: &str) -> Option<&ToolSpec> {
        match self.inner.tools.resolve_exact(name) {
            Resolved::Found(t) => Some(t),
            _ => None,
        }
    }

    /// (known workers, live sessions).
    pub fn counts(&self) -> (usize, usize) {
        self.inner.sessions.counts()
    }

    fn refuse_if_closing(&self) -> std::result::Result<(), Refusal> {
        if self.inner.closing.load(Ordering::Acquire) {
            return Err(Refusal::new(codes::SHUTTING_DOWN, "the server is shutting down", Value::Null));
        }
        Ok(())
    }

    fn backend_for(&self, rt: &str) -> std::result::Result<&Arc<Backend>, Refusal> {
        self.inner.backends.get(rt).ok_or_else(|| {
            let available: Vec<&String> = self.inner.backends.keys().collect();
            Refusal::new(
                codes::INVALID_REQUEST_FORMAT,
                format!("Unknown resource type '{rt}'. Available: {available:?}"),
                json!({"resource_type": rt, "available": available}),
            )
        })
    }

    fn tags(&self, backend: &Backend, caller: &Caller, session_id: Option<&str>) -> Tags {
        Tags {
            backend: backend.name.clone(),
            tenant: Some(caller.tenant.clone()),
            worker_id: Some(caller.worker_id.clone()),
            session_id: session_id.map(str::to_string),
            memory_mb: self.inner.tenancy.memory_mb(&caller.tenant),
            scratch: self.scratch_dir(backend, session_id),
            mount: None,
        }
    }

    /// The workers of `tenant` whose id starts with `prefix`, with their sessions.
    pub fn workers_of_tenant(&self, tenant: &str, prefix: &str) -> Vec<(String, Vec<SessionInfo>)> {
        self.inner
            .sessions
            .workers_of(tenant, prefix)
            .into_iter()
            .map(|(c, sessions)| (c.worker_id, sessions.iter().map(|s| s.info()).collect()))
            .collect()
    }

    /// Stops the sandbox (S-7): refuses new work, ends every session (cleanup runs), then
    /// calls every backend's `shutdown`. Returns how many sessions were ended.
    pub async fn shutdown(&self) -> usize {
        if self.inner.closing.swap(true, Ordering::AcqRel) {
            return 0;
        }
        let ended = self.close_sessions().await;
        for backend in self.inner.backends.values() {
            backend.shutdown().await;
        }
        tracing::info!(sessions = ended, "sandbox shut down");
        ended
    }

    /// Ends every session, or, with `server.snapshots.keep_on_shutdown`, snapshots every
    /// live one for the next start (no `cleanup` runs then). Returns how many.
    pub async fn close_sessions(&self) -> usize {
        let snapshots = &self.inner.config.server.snapshots;
        if !(snapshots.enabled && snapshots.keep_on_shutdown) {
            return self.destroy_all_sessions().await;
        }
        let mut workers: Vec<Caller> = self.inner.sessions.all().into_iter().map(|s| s.caller.clone()).collect();
        workers.sort_by(|a, b| (&a.tenant, &a.worker_id).cmp(&(&b.tenant, &b.worker_id)));
        workers.dedup();
        let this = self.clone();
        let kept = detached(
            async move {
                let kept = this.keep_sessions().await;
                // Released only now that their sessions are stored (a cluster's node).
                this.release_workers(&workers).await;
                kept
            },
            |_| 0,
        )
        .await;
        tracing::info!(sessions = kept, "sessions kept for the next start");
        kept
    }

    /// Whether shutdown has begun.
    pub fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::Acquire)
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &std::path::Path {
        self.inner.shared.cache.dir()
    }
}

/// Calls `cleanup`, logging (never raising) its errors (S-25).
async fn cleanup_instance(instance: &mut Instance, timeout: Duration) {
    if instance.dead().is_some() {
        return;
    }
    if let Err(e) = instance.cleanup(timeout).await {
        tracing::warn!(error = %call_error_text(&e), "cleanup failed (ignored)");
    }
}

fn call_error_text(e: &CallError) -> String {
    match e {
        CallError::Guest(g) => format!("{} (code {})", g.message, g.code),
        CallError::Fault(f) => f.to_string(),
    }
}

fn not_initialized(rt: &str, reason: &str) -> Envelope {
    Envelope::error(
        codes::RESOURCE_NOT_INITIALIZED,
        format!("Resource initialization failed: {reason}"),
        json!({"resource_type": rt, "details": reason}),
        Meta::default(),
    )
}
