//! `execute` (S-4, S-10, S-12): a tool call in the caller's session, a temporary session or
//! a fresh stateless instance, detached from the caller, with its envelope and metrics.

use super::*;

impl Sandbox {
    /// Runs a tool (S-4) and returns the result envelope (S-10). A stateful tool runs in the
    /// caller's session, or in a temporary session when there is none (S-12); a stateless
    /// tool runs in a fresh warm instance. The first use of a backend warms it (S-11).
    ///
    /// The call runs in a task of its own ([`detached`]): once started it finishes or meets
    /// its deadline even if the caller's future is dropped (a client that disconnects).
    pub async fn execute(&self, caller: &Caller, action: &str, params: Params, mut options: ExecOptions) -> Envelope {
        let trace = options.trace_id.get_or_insert_with(trace_id).clone();
        let (this, owned_caller, owned_action) = (self.clone(), caller.clone(), action.to_string());
        let work = async move { this.execute_attached(&owned_caller, &owned_action, params, options).await };
        detached(work, |message| {
            let meta = Meta { tool: Some(action.to_string()), trace_id: Some(trace), ..Meta::default() };
            Envelope::error(codes::UNEXPECTED_ERROR, format!("internal error: {message}"), Value::Null, meta)
        })
        .await
    }

    pub(super) async fn execute_attached(
        &self,
        caller: &Caller,
        action: &str,
        params: Params,
        options: ExecOptions,
    ) -> Envelope {
        let started = Instant::now();
        let trace = options.trace_id.clone().unwrap_or_else(trace_id);
        let mut meta = Meta { tool: Some(action.to_string()), trace_id: Some(trace.clone()), ..Meta::default() };
        let span = tracing::info_span!("execute", tenant = %caller.tenant, worker_id = %caller.worker_id, tool = %action, session_id = tracing::field::Empty, trace_id = %trace);
        let Outcome { mut envelope, fault } =
            self.execute_inner(caller, action, params, options, &mut meta, &trace).instrument(span.clone()).await;
        meta.execution_time_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        self.record(caller, &meta, envelope.code, fault, started.elapsed());
        envelope.meta = meta;
        let _entered = span.enter();
        // The audit line; tenant, worker, tool, session and trace ids are the span's.
        tracing::info!(code = envelope.code, duration_ms = envelope.meta.execution_time_ms, "call");
        envelope
    }

    pub(super) fn record(
        &self,
        caller: &Caller,
        meta: &Meta,
        code: i32,
        fault: Option<&'static str>,
        elapsed: Duration,
    ) {
        use crate::metrics::{BackendLabels, CallLabels, FaultLabels, SharedLabel};
        let m = &self.inner.shared.metrics;
        let tool = meta.tool.clone().unwrap_or_default();
        m.calls.get_or_create(&CallLabels { tenant: SharedLabel(caller.tenant.clone()), tool, code }).inc();
        if let Some(backend) = &meta.resource_type {
            m.call_seconds.get_or_create(&BackendLabels { backend: backend.clone() }).observe(elapsed.as_secs_f64());
            if let Some(kind) = fault {
                m.faults.get_or_create(&FaultLabels { backend: backend.clone(), kind: kind.to_string() }).inc();
            }
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn metrics_text(&self) -> String {
        self.inner.shared.metrics.encode(&self.inner.sessions.by_tenant_and_type())
    }

    pub(super) async fn execute_inner(
        &self,
        caller: &Caller,
        action: &str,
        params: Params,
        options: ExecOptions,
        meta: &mut Meta,
        trace: &str,
    ) -> Outcome {
        if let Err(r) = self.refuse_if_closing() {
            return Envelope::error(r.code, r.message, r.data, Meta::default()).into();
        }
        let tool = match self.inner.tools.resolve(action) {
            Resolved::Found(tool) => tool,
            Resolved::NotFound(name) => return not_found(name, meta).into(),
            Resolved::Ambiguous(candidates) => return ambiguous(action, candidates).into(),
        };
        meta.tool = Some(tool.full_name.clone());
        meta.resource_type = Some(tool.resource_type.clone());
        let Some(backend) = self.inner.backends.get(&tool.resource_type).cloned() else {
            return Envelope::error(codes::UNEXPECTED_ERROR, "backend vanished", Value::Null, Meta::default()).into();
        };
        let tenancy = &self.inner.tenancy;
        if let Err(d) =
            tenancy.check_resource(&caller.tenant, &tool.resource_type).and_then(|_| tenancy.check_rate(&caller.tenant))
        {
            return Envelope::error(d.code, d.message, Value::Null, Meta::default()).into();
        }
        let call_limit = backend.timeout();
        let mut timeout = options.timeout.map_or(call_limit, |t| t.min(call_limit));
        if let Some(limit) = tenancy.call_timeout_s(&caller.tenant) {
            timeout = timeout.min(crate::config::seconds(limit));
        }
        let params = Value::Object(params).to_string();
        if !tool.needs_session {
            let ctx = call_context(caller, None, trace);
            let tags = self.tags(&backend, caller, None);
            // Removed when this call ends, however it ends.
            let _scratch = tags.scratch.clone().map(ScratchDir::new);
            return match backend.instantiate(tags).await {
                Ok(mut instance) => {
                    instance.watch(options.output.clone());
                    outcome(instance.call(&tool.guest_name, &params, &ctx, timeout).await, None)
                }
                Err(e) => outcome(Err(e), None),
            };
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
    pub(super) async fn call_in_session(
        &self,
        session: &Arc<Session>,
        tool: &ToolSpec,
        params: &String,
        trace: &str,
        timeout: Duration,
        output: Option<crate::engine::host::OutputSink>,
    ) -> Outcome {
        let _busy = session.begin_call();
        {
            let mut slot = session.instance.lock().await;
            // A paused session resumes on its next call (E2B's auto-resume).
            if let Err(r) = self.resume_locked(session, &mut slot).await {
                return Envelope::error(r.code, r.message, r.data, Meta::default()).into();
            }
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
                    match self.scratch_over_quota(session).await {
                        Some(message) => {
                            tracing::warn!(%message, "scratch quota ended the session");
                            *slot = None;
                            session.fail(format!("session ended: {message}"));
                            session.drop_scratch();
                            let data = json!({"session_ended": true});
                            Envelope::error(codes::QUOTA_EXCEEDED, message, data, Meta::default()).into()
                        }
                        None => outcome(result, Some(session)),
                    }
                }
                (_, Status::Error(reason)) => not_initialized(&session.resource_type, &reason).into(),
                _ => not_initialized(&session.resource_type, "the session has no live instance").into(),
            }
        }
    }

    #[allow(clippy::too_many_arguments, clippy::ptr_arg)]
    pub(super) async fn call_in_temporary(
        &self,
        backend: &Backend,
        caller: &Caller,
        tool: &ToolSpec,
        params: &String,
        trace: &str,
        timeout: Duration,
        meta: &mut Meta,
        output: Option<crate::engine::host::OutputSink>,
    ) -> Outcome {
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
                return not_initialized(&tool.resource_type, &call_error_text(&e)).into();
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
}

/// The envelope for a tool name that names no tool.
fn not_found(name: String, meta: &mut Meta) -> Envelope {
    let message = format!("Tool not found: {name}");
    let data = json!({"action": name});
    meta.tool = Some(name);
    Envelope::error(codes::INVALID_REQUEST_FORMAT, message, data, Meta::default())
}

/// The envelope for a simple tool name that several backends declare.
fn ambiguous(action: &str, candidates: Vec<String>) -> Envelope {
    let message =
        format!("Ambiguous tool name '{action}'. Multiple matches: {candidates:?}. Please use full name with prefix.");
    Envelope::error(codes::INVALID_REQUEST_FORMAT, message, json!({"candidates": candidates}), Meta::default())
}

pub(super) fn call_context(
    caller: &Caller,
    session_id: Option<&str>,
    trace: &str,
) -> crate::engine::bindings::types::CallContext {
    crate::engine::bindings::types::CallContext {
        worker_id: caller.worker_id.clone(),
        session_id: session_id.map(str::to_string),
        trace_id: trace.to_string(),
    }
}

/// A call's envelope and, when a fault ended the call, the fault's kind: the fault stays
/// typed until the metric is labelled, instead of being read back from the envelope.
pub(super) struct Outcome {
    /// The envelope (meta is filled in by `execute`).
    pub(super) envelope: Envelope,
    /// The kind of the fault, if one ended the call.
    pub(super) fault: Option<&'static str>,
}

impl From<Envelope> for Outcome {
    fn from(envelope: Envelope) -> Outcome {
        Outcome { envelope, fault: None }
    }
}

/// The outcome of a call's result.
pub(super) fn outcome(result: std::result::Result<Value, CallError>, session: Option<&Arc<Session>>) -> Outcome {
    match result {
        Ok(data) => Envelope::success(data, Meta::default()).into(),
        Err(CallError::Guest(e)) => {
            Envelope::error(e.code, e.message, e.data.unwrap_or(Value::Null), Meta::default()).into()
        }
        Err(CallError::Fault(fault)) => {
            let kind = fault_kind(&fault);
            let mut data = json!({"fault": kind, "session_ended": session.is_some() && fault.ends_instance()});
            if let Fault::Timeout(d) = &fault {
                data["timeout"] = json!(d.as_secs_f64());
            }
            Outcome {
                envelope: Envelope::error(fault.code(), fault.to_string(), data, Meta::default()),
                fault: Some(kind),
            }
        }
    }
}

pub(super) fn fault_kind(f: &Fault) -> &'static str {
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
