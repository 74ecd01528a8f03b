//! The Sandbox facade: the seeds' verbs (S-1 … S-14) over backends and sessions. Every
//! front door calls this layer and nothing below it; it knows nothing of HTTP.

use crate::backend::{Backend, Shared, WarmReport};
use crate::cache::ComponentCache;
use crate::codes;
use crate::config::Config;
use crate::detach::detached;
use crate::engine::EngineHandle;
use crate::envelope::{Envelope, Meta, json_kind, timestamp, trace_id};
use crate::error::Result;
use crate::fault::Fault;
use crate::host::Tags;
use crate::instance::{CallError, Instance};
use crate::scratch::ScratchDir;
use crate::session::{Caller, Fresh, Lookup, Session, SessionInfo, Sessions, Status};
use crate::tenancy::{Denied, Tenancy};
use crate::tools::{Resolved, ToolIndex, ToolSpec};
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

/// Options of one `execute`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    /// A deadline shorter than the server's (longer ones are cut to the server's).
    pub timeout: Option<Duration>,
    /// A trace id to use instead of a new one.
    pub trace_id: Option<String>,
    /// Where the guest's streamed output (`host.emit`) goes while the tool runs.
    pub output: Option<crate::host::OutputSink>,
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
}

impl Sandbox {
    /// Starts the sandbox (S-1): builds the engine, loads every enabled backend (compiled
    /// once, then from the cache), registers their tools, starts the session reaper, and
    /// warms the backends the configuration's `warmup` names.
    pub async fn start(config: Config) -> Result<Sandbox> {
        Sandbox::start_observed(config, &|_| {}).await
    }

    /// [`Sandbox::start`], telling `progress` the name of each backend before it loads.
    pub async fn start_observed(config: Config, progress: &(dyn Fn(&str) + Sync)) -> Result<Sandbox> {
        let engine = EngineHandle::new(&config.server.limits)?;
        let cache = ComponentCache::new(config.server.cache_dir.as_ref().map(|d| config.resolve(d)));
        let shared = Arc::new(Shared::new(
            engine.engine.clone(),
            engine.fingerprint.clone(),
            cache,
            config.server.limits.clone(),
        )?);
        let mut backends = BTreeMap::new();
        let mut tools = ToolIndex::default();
        for (name, resource) in config.resources.iter().filter(|(_, r)| r.enabled) {
            progress(name);
            let started = Instant::now();
            let backend = Backend::load(name, resource, &config, shared.clone()).await?;
            tracing::info!(backend = %name, tools = backend.tools.len(), component = ?backend.origin, elapsed_ms = started.elapsed().as_millis() as u64, "backend loaded");
            tools.add(&backend.tools);
            backends.insert(name.clone(), Arc::new(backend));
        }
        let sessions = Sessions::new(crate::config::seconds(config.server.session_ttl));
        let tenancy = Tenancy::new(&config);
        let inner = Arc::new(Inner {
            _engine: engine,
            shared,
            backends,
            tools,
            sessions,
            config,
            closing: AtomicBool::new(false),
            tenancy,
        });
        spawn_reaper(Arc::downgrade(&inner));
        let sandbox = Sandbox { inner };
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

    /// The live sessions of a tenant.
    pub fn tenant_sessions(&self, tenant: &str) -> usize {
        self.inner.sessions.tenant_count(tenant)
    }

    /// The configuration the sandbox runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
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

    /// Warms the named backends, or all when `None` or empty (S-2). Already warm backends
    /// are skipped; a failed one is tried again.
    pub async fn warmup(&self, names: Option<&[String]>) -> WarmupOutcome {
        let targets: Vec<String> = match names {
            Some(n) if !n.is_empty() => n.to_vec(),
            _ => self.inner.backends.keys().cloned().collect(),
        };
        let mut results = BTreeMap::new();
        let mut errors = BTreeMap::new();
        for name in &targets {
            match self.inner.backends.get(name) {
                Some(backend) => match backend.warm_up(true).await {
                    Ok(()) => {
                        results.insert(name.clone(), true);
                    }
                    Err(e) => {
                        results.insert(name.clone(), false);
                        errors.insert(name.clone(), e);
                    }
                },
                None => {
                    results.insert(name.clone(), false);
                    let available: Vec<&String> = self.inner.backends.keys().collect();
                    errors
                        .insert(name.clone(), format!("Backend not found: {name}. Available backends: {available:?}"));
                }
            }
        }
        let warmed = results.values().filter(|v| **v).count();
        WarmupOutcome {
            status: if errors.is_empty() { "success".into() } else { "partial_error".into() },
            summary: WarmupSummary { total: results.len(), warmed_up: warmed, pending: results.len() - warmed },
            results,
            errors: (!errors.is_empty()).then_some(errors),
        }
    }

    /// The warm state of every backend.
    pub fn warmup_status(&self) -> WarmupStatus {
        let backends: BTreeMap<String, WarmReport> =
            self.inner.backends.iter().map(|(n, b)| (n.clone(), b.report())).collect();
        let warmed = backends.values().filter(|r| r.warmed_up).count();
        WarmupStatus {
            summary: WarmupSummary { total: backends.len(), warmed_up: warmed, pending: backends.len() - warmed },
            backends,
        }
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

    /// Creates an explicit session of `rt` for `caller` (S-3), calling the backend's
    /// `initialize` with its default config merged with `session_config`. A caller that
    /// already has one gets it back unchanged (`Exists`).
    ///
    /// `initialize` runs detached from the caller, like every guest call ([`detached`]).
    pub async fn create_session(
        &self,
        caller: &Caller,
        rt: &str,
        session_config: Value,
        custom_name: Option<&str>,
    ) -> std::result::Result<Created, Refusal> {
        let this = self.clone();
        let (caller, rt, custom) = (caller.clone(), rt.to_string(), custom_name.map(str::to_string));
        let work = async move { this.create_session_attached(&caller, &rt, session_config, custom.as_deref()).await };
        detached(work, internal).await
    }

    async fn create_session_attached(
        &self,
        caller: &Caller,
        rt: &str,
        session_config: Value,
        custom_name: Option<&str>,
    ) -> std::result::Result<Created, Refusal> {
        self.refuse_if_closing()?;
        let backend = self.backend_for(rt)?.clone();
        self.inner.tenancy.check_resource(&caller.tenant, rt).map_err(denied)?;
        let config = merge_config(&backend.resource.config, session_config)?;
        let max = self.inner.tenancy.max_sessions(&caller.tenant);
        match self.inner.sessions.get_or_create(caller, rt, config, custom_name, max) {
            Lookup::QuotaExceeded(max) => Err(Refusal::new(
                codes::QUOTA_EXCEEDED,
                format!("tenant '{}' holds its quota of {max} live sessions", caller.tenant),
                json!({"max_sessions": max}),
            )),
            Lookup::Existing(session) => Ok(Created { status: CreateStatus::Exists, session: session.info() }),
            Lookup::Created(fresh) => {
                let session = fresh.session.clone();
                let span = tracing::info_span!("create_session", tenant = %caller.tenant, worker_id = %caller.worker_id, session_id = %session.id, resource = rt);
                match self.initialize(&backend, fresh).instrument(span).await {
                    Ok(true) => Ok(Created { status: CreateStatus::Created, session: session.info() }),
                    Ok(false) => Ok(Created { status: CreateStatus::Failed, session: session.info() }),
                    Err(message) => {
                        // No instance could be made: leave nothing behind, so the worker can
                        // try again once there is room.
                        self.inner.sessions.remove_exact(&session);
                        Err(Refusal::new(codes::CAPACITY_EXHAUSTED, message, json!({"resource_type": rt})))
                    }
                }
            }
        }
    }

    /// Creates sessions of several types at once (S-3), in order.
    pub async fn create_sessions(
        &self,
        caller: &Caller,
        types: &[(String, Value)],
    ) -> Vec<(String, std::result::Result<Created, Refusal>)> {
        let mut out = Vec::with_capacity(types.len());
        for (rt, config) in types {
            out.push((rt.clone(), self.create_session(caller, rt, config.clone(), None).await));
        }
        out
    }

    /// Instantiates and initialises a freshly registered session; on failure the session
    /// stays registered in `error` state (as AgentFlow does) until destroyed or expired.
    /// `Err` when no instance could be made at all (the pool is full).
    async fn initialize(&self, backend: &Backend, mut fresh: Fresh) -> std::result::Result<bool, String> {
        let session = fresh.session.clone();
        let tags = self.tags(backend, &session.caller, Some(&session.id));
        session.own_scratch(tags.scratch.clone().map(ScratchDir::new));
        let result = async {
            let mut instance = backend.instantiate(tags).await?;
            let data =
                instance.initialize(&session.caller.worker_id, &session.config.to_string(), backend.timeout()).await?;
            Ok::<_, CallError>((instance, data))
        }
        .await;
        match result {
            Ok((instance, data)) => {
                *fresh.slot = Some(instance);
                session.activate(data);
                tracing::info!("session created");
                Ok(true)
            }
            Err(CallError::Fault(fault @ Fault::Capacity(_))) => {
                tracing::warn!(%fault, "no instance for a new session");
                session.fail(fault.to_string());
                Err(fault.to_string())
            }
            Err(e) => {
                let reason = call_error_text(&e);
                tracing::warn!(error = %reason, "session initialisation failed");
                session.fail(reason);
                Ok(false)
            }
        }
    }

    fn tags(&self, backend: &Backend, caller: &Caller, session_id: Option<&str>) -> Tags {
        Tags {
            backend: backend.name.clone(),
            tenant: Some(caller.tenant.clone()),
            worker_id: Some(caller.worker_id.clone()),
            session_id: session_id.map(str::to_string),
            memory_mb: self.inner.tenancy.memory_mb(&caller.tenant),
            scratch: self.scratch_dir(backend, session_id),
        }
    }

    /// The host directory of a session's (or a stateless call's) scratch grant, created
    /// empty; `None` when the resource grants none or it cannot be made.
    fn scratch_dir(&self, backend: &Backend, session_id: Option<&str>) -> Option<std::path::PathBuf> {
        backend.resource.grants.scratch.as_ref()?;
        let name = session_id.map(str::to_string).unwrap_or_else(|| format!("call-{}", uuid::Uuid::new_v4().simple()));
        let dir = self.inner.shared.cache.dir().join("scratch").join(name);
        match std::fs::create_dir_all(&dir) {
            Ok(()) => Some(dir),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot create a scratch directory");
                None
            }
        }
    }

    /// The host directory behind the scratch grant of the caller's session of `rt`, if the
    /// session exists and its resource grants one (the run API writes uploads there).
    pub fn session_dir(&self, caller: &Caller, rt: &str) -> Option<std::path::PathBuf> {
        self.session_scratch(&*self.inner.sessions.get(caller, rt)?)
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

    /// The scratch directory of a session, if its resource grants one.
    fn session_scratch(&self, session: &Session) -> Option<std::path::PathBuf> {
        let backend = self.inner.backends.get(&session.resource_type)?;
        backend.resource.grants.scratch.as_ref()?;
        Some(self.inner.shared.cache.dir().join("scratch").join(&session.id))
    }

    /// `Some(refusal message)` when a session's scratch directory holds more than its quota.
    fn scratch_over_quota(&self, session: &Session) -> Option<String> {
        let backend = self.inner.backends.get(&session.resource_type)?;
        let quota = backend.resource.grants.scratch.as_ref()?.quota_mb;
        let used = dir_size(&self.session_scratch(session)?);
        (used > quota * 1024 * 1024).then(|| {
            format!(
                "the scratch directory holds {:.1} MiB, over its quota of {quota} MiB; the session is ended",
                used as f64 / 1048576.0
            )
        })
    }

    /// Runs a tool (S-4) and returns the result envelope (S-10). A stateful tool runs in the
    /// caller's session, or in a temporary session when there is none (S-12); a stateless
    /// tool runs in a fresh warm instance. The first use of a backend warms it (S-11).
    ///
    /// The call runs in a task of its own ([`detached`]): once started it finishes or meets
    /// its deadline even if the caller's future is dropped (a client that disconnects).
    pub async fn execute(&self, caller: &Caller, action: &str, params: Value, mut options: ExecOptions) -> Envelope {
        let trace = options.trace_id.get_or_insert_with(trace_id).clone();
        let (this, owned_caller, owned_action) = (self.clone(), caller.clone(), action.to_string());
        let work = async move { this.execute_attached(&owned_caller, &owned_action, params, options).await };
        detached(work, |message| {
            let meta = Meta { tool: Some(action.to_string()), trace_id: Some(trace), ..Meta::default() };
            Envelope::error(codes::UNEXPECTED_ERROR, format!("internal error: {message}"), Value::Null, meta)
        })
        .await
    }

    async fn execute_attached(&self, caller: &Caller, action: &str, params: Value, options: ExecOptions) -> Envelope {
        let started = Instant::now();
        let trace = options.trace_id.clone().unwrap_or_else(trace_id);
        let mut meta = Meta { tool: Some(action.to_string()), trace_id: Some(trace.clone()), ..Meta::default() };
        let span = tracing::info_span!("execute", tenant = %caller.tenant, worker_id = %caller.worker_id, tool = action, session_id = tracing::field::Empty, trace_id = %trace);
        let mut envelope =
            self.execute_inner(caller, action, params, options, &mut meta, &trace).instrument(span.clone()).await;
        meta.execution_time_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        self.record(caller, &meta, &envelope, started.elapsed());
        envelope.meta = meta;
        let _entered = span.enter();
        tracing::info!(
            code = envelope.code,
            duration_ms = envelope.meta.execution_time_ms,
            session_id = envelope.meta.session_id.as_deref(),
            "call"
        );
        envelope
    }

    fn record(&self, caller: &Caller, meta: &Meta, envelope: &Envelope, elapsed: Duration) {
        use crate::metrics::{BackendLabels, CallLabels, FaultLabels};
        let m = &self.inner.shared.metrics;
        let tool = meta.tool.clone().unwrap_or_default();
        m.calls
            .get_or_create(&CallLabels { tenant: caller.tenant.to_string(), tool, code: envelope.code.to_string() })
            .inc();
        if let Some(backend) = &meta.resource_type {
            m.call_seconds.get_or_create(&BackendLabels { backend: backend.clone() }).observe(elapsed.as_secs_f64());
            if let Some(kind) = envelope.data.get("fault").and_then(Value::as_str) {
                m.faults.get_or_create(&FaultLabels { backend: backend.clone(), kind: kind.to_string() }).inc();
            }
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn metrics_text(&self) -> String {
        self.inner.shared.metrics.encode(&self.inner.sessions.by_tenant_and_type())
    }

    async fn execute_inner(
        &self,
        caller: &Caller,
        action: &str,
        params: Value,
        options: ExecOptions,
        meta: &mut Meta,
        trace: &str,
    ) -> Envelope {
        if let Err(r) = self.refuse_if_closing() {
            return Envelope::error(r.code, r.message, r.data, Meta::default());
        }
        let tool = match self.inner.tools.resolve(action) {
            Resolved::Found(tool) => tool,
            Resolved::NotFound(name) => {
                meta.tool = Some(name.clone());
                return Envelope::error(
                    codes::INVALID_REQUEST_FORMAT,
                    format!("Tool not found: {name}"),
                    json!({"action": name}),
                    Meta::default(),
                );
            }
            Resolved::Ambiguous(candidates) => {
                return Envelope::error(
                    codes::INVALID_REQUEST_FORMAT,
                    format!(
                        "Ambiguous tool name '{action}'. Multiple matches: {candidates:?}. Please use full name with prefix."
                    ),
                    json!({"candidates": candidates}),
                    Meta::default(),
                );
            }
        };
        meta.tool = Some(tool.full_name.clone());
        meta.resource_type = Some(tool.resource_type.clone());
        let params = match params {
            Value::Null => Value::Object(Default::default()),
            Value::Object(_) => params,
            other => {
                return Envelope::error(
                    codes::INVALID_REQUEST_FORMAT,
                    format!("params must be a JSON object, not {}", json_kind(&other)),
                    Value::Null,
                    Meta::default(),
                );
            }
        };
        let Some(backend) = self.inner.backends.get(&tool.resource_type).cloned() else {
            return Envelope::error(codes::UNEXPECTED_ERROR, "backend vanished", Value::Null, Meta::default());
        };
        let tenancy = &self.inner.tenancy;
        if let Err(d) =
            tenancy.check_resource(&caller.tenant, &tool.resource_type).and_then(|_| tenancy.check_rate(&caller.tenant))
        {
            return Envelope::error(d.code, d.message, Value::Null, Meta::default());
        }
        let call_limit = backend.timeout();
        let mut timeout = options.timeout.map_or(call_limit, |t| t.min(call_limit));
        if let Some(limit) = tenancy.call_timeout_s(&caller.tenant) {
            timeout = timeout.min(crate::config::seconds(limit));
        }
        let params = params.to_string();
        if !tool.needs_session {
            let ctx = call_context(caller, None, trace);
            let tags = self.tags(&backend, caller, None);
            // Removed when this call ends, however it ends.
            let _scratch = tags.scratch.clone().map(ScratchDir::new);
            let envelope = match backend.instantiate(tags).await {
                Ok(mut instance) => {
                    instance.watch(options.output.clone());
                    outcome(instance.call(&tool.guest_name, &params, &ctx, timeout).await, None)
                }
                Err(e) => outcome(Err(e), None),
            };
            return envelope;
        }
        if let Some(session) = self.inner.sessions.get(caller, &tool.resource_type) {
            meta.session_id = Some(session.id.clone());
            tracing::Span::current().record("session_id", session.id.as_str());
            return self.call_in_session(&session, tool, &params, trace, timeout, options.output).await;
        }
        meta.temporary_session = Some(true);
        self.call_in_temporary(&backend, caller, tool, &params, trace, timeout, meta, options.output).await
    }

    #[allow(clippy::ptr_arg)]
    async fn call_in_session(
        &self,
        session: &Arc<Session>,
        tool: &ToolSpec,
        params: &String,
        trace: &str,
        timeout: Duration,
        output: Option<crate::host::OutputSink>,
    ) -> Envelope {
        let _busy = session.begin_call();
        {
            let mut slot = session.instance.lock().await;
            let status = session.status();
            match (slot.as_mut(), status) {
                (Some(instance), Status::Active) => {
                    let ctx = call_context(&session.caller, Some(&session.id), trace);
                    let watched = output.is_some();
                    if watched {
                        instance.watch(output);
                    }
                    let result = instance.call(&tool.guest_name, params, &ctx, timeout).await;
                    if watched {
                        instance.watch(None);
                    }
                    if let Err(CallError::Fault(fault)) = &result
                        && fault.ends_instance()
                    {
                        tracing::warn!(%fault, "fault ended the session");
                        *slot = None;
                        session.fail(format!("session ended by a fault: {fault}"));
                    }
                    match self.scratch_over_quota(session) {
                        Some(message) => {
                            tracing::warn!(%message, "scratch quota ended the session");
                            *slot = None;
                            session.fail(format!("session ended: {message}"));
                            session.drop_scratch();
                            Envelope::error(
                                codes::QUOTA_EXCEEDED,
                                message,
                                json!({"session_ended": true}),
                                Meta::default(),
                            )
                        }
                        None => outcome(result, Some(session)),
                    }
                }
                (_, Status::Error(reason)) => not_initialized(&session.resource_type, &reason),
                _ => not_initialized(&session.resource_type, "the session has no live instance"),
            }
        }
    }

    #[allow(clippy::too_many_arguments, clippy::ptr_arg)]
    async fn call_in_temporary(
        &self,
        backend: &Backend,
        caller: &Caller,
        tool: &ToolSpec,
        params: &String,
        trace: &str,
        timeout: Duration,
        meta: &mut Meta,
        output: Option<crate::host::OutputSink>,
    ) -> Envelope {
        let (_name, id) = self.inner.sessions.temporary_name(caller, &tool.resource_type);
        meta.session_id = Some(id.clone());
        tracing::Span::current().record("session_id", id.as_str());
        let tags = self.tags(backend, caller, Some(&id));
        // Removed when this call ends, however it ends.
        let _scratch = tags.scratch.clone().map(ScratchDir::new);
        async {
            let mut instance = match backend.instantiate(tags).await {
                Ok(i) => i,
                Err(e) => return outcome(Err(e), None),
            };
            let config = backend.resource.config.to_string();
            if let Err(e) = instance.initialize(&caller.worker_id, &config, timeout).await {
                return not_initialized(&tool.resource_type, &call_error_text(&e));
            }
            let ctx = call_context(caller, Some(&id), trace);
            instance.watch(output);
            let result = instance.call(&tool.guest_name, params, &ctx, timeout).await;
            instance.watch(None);
            cleanup_instance(&mut instance, backend.timeout()).await;
            outcome(result, None)
        }
        .await
    }

    /// Ends the caller's session of `rt` (S-5): `cleanup` runs (its errors are logged,
    /// never raised, S-25) and the instance is dropped.
    pub async fn destroy_session(&self, caller: &Caller, rt: &str) -> std::result::Result<SessionInfo, Refusal> {
        let (this, caller, rt) = (self.clone(), caller.clone(), rt.to_string());
        detached(async move { this.destroy_session_attached(&caller, &rt).await }, internal).await
    }

    async fn destroy_session_attached(&self, caller: &Caller, rt: &str) -> std::result::Result<SessionInfo, Refusal> {
        let session = self.inner.sessions.remove(caller, rt).ok_or_else(|| {
            Refusal::new(
                codes::RESOURCE_NOT_INITIALIZED,
                format!("No session found for {rt}"),
                json!({"resource_type": rt}),
            )
        })?;
        let info = session.info();
        self.end_session(&session).await;
        Ok(info)
    }

    /// Runs cleanup and drops the instance of a session already removed from the registry.
    async fn end_session(&self, session: &Session) {
        let span = tracing::info_span!("end_session", tenant = %session.caller.tenant, worker_id = %session.caller.worker_id, session_id = %session.id);
        async {
            let mut slot = session.instance.lock().await;
            if let Some(mut instance) = slot.take() {
                let timeout =
                    self.inner.backends.get(&session.resource_type).map_or(Duration::from_secs(5), |b| b.timeout());
                cleanup_instance(&mut instance, timeout).await;
            }
            session.drop_scratch();
            tracing::info!("session ended");
        }
        .instrument(span)
        .await
    }

    /// Renews the TTL of the caller's session of `rt`, or of all its sessions (S-8).
    pub fn refresh_sessions(&self, caller: &Caller, rt: Option<&str>) -> std::result::Result<Refreshed, Refusal> {
        let sessions = match rt {
            Some(rt) => vec![self.inner.sessions.get(caller, rt).ok_or_else(|| {
                Refusal::new(
                    codes::RESOURCE_NOT_INITIALIZED,
                    format!("No session found for {rt}"),
                    json!({"resource_type": rt}),
                )
            })?],
            None => self.inner.sessions.list(caller),
        };
        let sessions = sessions
            .iter()
            .map(|s| {
                (
                    s.resource_type.clone(),
                    RefreshedSession { session_id: s.id.clone(), expires_at: timestamp(s.touch()) },
                )
            })
            .collect();
        Ok(Refreshed { sessions })
    }

    /// Replaces the caller's session of `rt` by a new one with `config` (S-9); other
    /// sessions are untouched.
    pub async fn reinitialize(
        &self,
        caller: &Caller,
        rt: &str,
        config: Value,
    ) -> std::result::Result<Reinitialized, Refusal> {
        let (this, caller, rt) = (self.clone(), caller.clone(), rt.to_string());
        detached(async move { this.reinitialize_attached(&caller, &rt, config).await }, internal).await
    }

    async fn reinitialize_attached(
        &self,
        caller: &Caller,
        rt: &str,
        config: Value,
    ) -> std::result::Result<Reinitialized, Refusal> {
        self.backend_for(rt)?;
        let old = self.destroy_session(caller, rt).await.ok().map(|i| i.session_id);
        let created = self.create_session(caller, rt, config, None).await?;
        Ok(Reinitialized {
            status: if created.status == CreateStatus::Failed { "error".into() } else { "success".into() },
            resource_type: rt.to_string(),
            old_session_id: old,
            new_session_id: created.session.session_id.clone(),
            new_session_name: created.session.session_name.clone(),
            config_applied: created.session.config.clone(),
            error: created.session.error.clone(),
        })
    }

    /// The caller's sessions (S-9b).
    pub fn list_sessions(&self, caller: &Caller) -> Vec<SessionInfo> {
        self.inner.sessions.list(caller).iter().map(|s| s.info()).collect()
    }

    /// Whether the worker is known to the session table.
    pub fn knows_worker(&self, caller: &Caller) -> bool {
        self.inner.sessions.knows_worker(caller)
    }

    /// Ends every session of a worker and forgets it; returns how many were ended.
    pub async fn disconnect(&self, caller: &Caller) -> usize {
        let sessions = self.inner.sessions.remove_worker(caller);
        self.end_sessions(sessions).await
    }

    /// Ends every session of every worker; returns how many.
    pub async fn destroy_all_sessions(&self) -> usize {
        let sessions = self.inner.sessions.drain();
        self.end_sessions(sessions).await
    }

    /// Ends sessions already removed from the registry, detached from the caller.
    async fn end_sessions(&self, sessions: Vec<Arc<Session>>) -> usize {
        let count = sessions.len();
        let this = self.clone();
        let work = async move {
            for session in &sessions {
                this.end_session(session).await;
            }
        };
        detached(work, |_| ()).await;
        count
    }

    /// Stops the sandbox (S-7): refuses new work, ends every session (cleanup runs), then
    /// calls every backend's `shutdown`. Returns how many sessions were ended.
    pub async fn shutdown(&self) -> usize {
        if self.inner.closing.swap(true, Ordering::AcqRel) {
            return 0;
        }
        let ended = self.destroy_all_sessions().await;
        for backend in self.inner.backends.values() {
            backend.shutdown().await;
        }
        tracing::info!(sessions = ended, "sandbox shut down");
        ended
    }

    /// Whether shutdown has begun.
    pub fn is_closing(&self) -> bool {
        self.inner.closing.load(Ordering::Acquire)
    }

    /// The limits in force.
    pub fn limits(&self) -> &crate::config::Limits {
        &self.inner.shared.limits
    }

    /// The cache directory.
    pub fn cache_dir(&self) -> &std::path::Path {
        self.inner.shared.cache.dir()
    }
}

/// The reaper: ends expired sessions promptly. It checks a few times per TTL (at least
/// every second) and stops when the sandbox is gone.
fn spawn_reaper(inner: Weak<Inner>) {
    let ttl = match inner.upgrade() {
        Some(i) => i.sessions.ttl(),
        None => return,
    };
    let period = (ttl / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(inner) = inner.upgrade() else { break };
            if inner.closing.load(Ordering::Acquire) {
                break;
            }
            let expired = inner.sessions.take_expired();
            if expired.is_empty() {
                continue;
            }
            let sandbox = Sandbox { inner };
            for session in expired {
                tracing::info!(tenant = %session.caller.tenant, worker_id = %session.caller.worker_id, session_id = %session.id, "session expired");
                let sandbox = sandbox.clone();
                tokio::spawn(async move { sandbox.end_session(&session).await });
            }
        }
    });
}

/// The refusal for a facade verb that panicked (the panic is logged by [`detached`]).
fn internal<T>(message: String) -> std::result::Result<T, Refusal> {
    Err(Refusal::new(codes::UNEXPECTED_ERROR, format!("internal error: {message}"), Value::Null))
}

fn denied(d: Denied) -> Refusal {
    Refusal::new(d.code, d.message, Value::Null)
}

/// Bytes under a directory (files only; links are not followed).
fn dir_size(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) if m.is_file() => m.len(),
            _ => 0,
        })
        .sum()
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

/// The backend's default config with the caller's session config merged over it.
fn merge_config(default: &Value, session: Value) -> std::result::Result<Value, Refusal> {
    let mut merged = default.as_object().cloned().unwrap_or_default();
    match session {
        Value::Null => {}
        Value::Object(map) => merged.extend(map),
        other => {
            return Err(Refusal::new(
                codes::INVALID_REQUEST_FORMAT,
                format!("session_config must be a JSON object, not {}", json_kind(&other)),
                Value::Null,
            ));
        }
    }
    Ok(Value::Object(merged))
}

fn call_context(caller: &Caller, session_id: Option<&str>, trace: &str) -> crate::bindings::types::CallContext {
    crate::bindings::types::CallContext {
        worker_id: caller.worker_id.clone(),
        session_id: session_id.map(str::to_string),
        trace_id: trace.to_string(),
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

/// The envelope of a call's result (meta is filled in by `execute`).
fn outcome(result: std::result::Result<Value, CallError>, session: Option<&Arc<Session>>) -> Envelope {
    match result {
        Ok(data) => Envelope::success(data, Meta::default()),
        Err(CallError::Guest(e)) => Envelope::error(e.code, e.message, e.data.unwrap_or(Value::Null), Meta::default()),
        Err(CallError::Fault(fault)) => {
            let mut data =
                json!({"fault": fault_kind(&fault), "session_ended": session.is_some() && fault.ends_instance()});
            if let Fault::Timeout(d) = &fault {
                data["timeout"] = json!(d.as_secs_f64());
            }
            Envelope::error(fault.code(), fault.to_string(), data, Meta::default())
        }
    }
}

fn fault_kind(f: &Fault) -> &'static str {
    match f {
        Fault::Timeout(_) => "timeout",
        Fault::MemoryLimit { .. } => "memory_limit",
        Fault::FuelExhausted => "fuel_exhausted",
        Fault::StackOverflow => "stack_overflow",
        Fault::Trap(_) => "trap",
        Fault::Contract(_) => "contract_violation",
        Fault::Capacity(_) => "capacity",
    }
}
