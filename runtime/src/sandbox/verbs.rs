//! The session verbs (S-3, S-5, S-8, S-9, S-9b): create, destroy, refresh, reinitialize,
//! list, disconnect. Every verb that enters a guest runs detached from its caller.

use super::*;

impl Sandbox {
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
        self.create_session_with(caller, rt, session_config, custom_name, Extras::default()).await
    }

    /// [`create_session`](Self::create_session) with what a door may add: the session's own
    /// TTL and a shared directory its instance mounts.
    pub async fn create_session_with(
        &self,
        caller: &Caller,
        rt: &str,
        session_config: Value,
        custom_name: Option<&str>,
        extras: Extras,
    ) -> std::result::Result<Created, Refusal> {
        let this = self.clone();
        let (caller, rt, custom) = (caller.clone(), rt.to_string(), custom_name.map(str::to_string));
        let work =
            async move { this.create_session_attached(&caller, &rt, session_config, custom.as_deref(), &extras).await };
        detached(work, internal).await
    }

    pub(super) async fn create_session_attached(
        &self,
        caller: &Caller,
        rt: &str,
        session_config: Value,
        custom_name: Option<&str>,
        extras: &Extras,
    ) -> std::result::Result<Created, Refusal> {
        self.refuse_if_closing()?;
        let backend = self.backend_for(rt)?.clone();
        self.inner.tenancy.check_resource(&caller.tenant, rt).map_err(denied)?;
        let config = merge_config(&backend.resource.config, session_config)?;
        let max = self.inner.tenancy.max_sessions(&caller.tenant);
        match self.inner.sessions.get_or_create(caller, rt, config, custom_name, max, extras) {
            Lookup::QuotaExceeded(max) => Err(Refusal::new(
                codes::QUOTA_EXCEEDED,
                format!("tenant '{}' holds its quota of {max} live sessions", caller.tenant),
                json!({"max_sessions": max}),
            )),
            Lookup::Existing(session) => Ok(Created { status: CreateStatus::Exists, session: session.info() }),
            Lookup::Created(fresh) => {
                let session = fresh.session.clone();
                if self.inner.sessions.list(caller).len() == 1 {
                    self.own_worker(caller).await;
                }
                // Initialising counts as a call: the reaper must not end a session whose start
                // outlasts its TTL (a first use that compiles the backend, a slow initialize).
                let _busy = session.begin_call();
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
    pub(super) async fn initialize(&self, backend: &Backend, mut fresh: Fresh) -> std::result::Result<bool, String> {
        let session = fresh.session.clone();
        let mut tags = self.tags(backend, &session.caller, Some(&session.id));
        tags.mount = session.mount.clone();
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

    /// Ends the caller's session of `rt` (S-5): `cleanup` runs (its errors are logged,
    /// never raised, S-25) and the instance is dropped.
    pub async fn destroy_session(&self, caller: &Caller, rt: &str) -> std::result::Result<SessionInfo, Refusal> {
        let (this, caller, rt) = (self.clone(), caller.clone(), rt.to_string());
        detached(async move { this.destroy_session_attached(&caller, &rt).await }, internal).await
    }

    pub(super) async fn destroy_session_attached(
        &self,
        caller: &Caller,
        rt: &str,
    ) -> std::result::Result<SessionInfo, Refusal> {
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
    pub(super) async fn end_session(&self, session: &Session) {
        let span = tracing::info_span!("end_session", tenant = %session.caller.tenant, worker_id = %session.caller.worker_id, session_id = %session.id);
        async {
            let mut slot = session.instance.lock().await;
            if let Some(mut instance) = slot.take() {
                let timeout =
                    self.inner.backends.get(&session.resource_type).map_or(Duration::from_secs(5), |b| b.timeout());
                cleanup_instance(&mut instance, timeout).await;
            }
            session.drop_scratch();
            self.forget_checkpoint(session).await;
            if let Some(id) = session.parked() {
                // A paused session's snapshot is its own: it ends with it.
                let _ = self.store().delete(&session.caller.tenant, &id).await;
            }
            self.unclaim(session).await;
            self.disown_worker(&session.caller).await;
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

    pub(super) async fn reinitialize_attached(
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

    /// The id of the caller's session of `rt`, if it has one (what `create_session` answers
    /// with `exists`, without building the session's description).
    pub fn session_id(&self, caller: &Caller, rt: &str) -> Option<String> {
        self.inner.sessions.get(caller, rt).map(|s| s.id.clone())
    }

    /// Whether the caller holds any session.
    pub fn has_sessions(&self, caller: &Caller) -> bool {
        self.inner.sessions.has_any(caller)
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

    /// Ends the caller's sessions, as [`disconnect`](Self::disconnect) does, and forgets the
    /// worker's session numbers too: for workers a door made up and never reuses (a
    /// sandbox's contexts). AgentFlow keeps a client-named worker's numbers forever, so
    /// `disconnect` does.
    pub async fn retire(&self, caller: &Caller) -> usize {
        let ended = self.disconnect(caller).await;
        self.inner.sessions.forget_counters(caller);
        ended
    }

    /// Ends every session of every worker; returns how many.
    pub async fn destroy_all_sessions(&self) -> usize {
        let sessions = self.inner.sessions.drain();
        self.end_sessions(sessions).await
    }

    /// Ends sessions already removed from the registry, detached from the caller.
    pub(super) async fn end_sessions(&self, sessions: Vec<Arc<Session>>) -> usize {
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
}

/// The refusal for a facade verb that panicked (the panic is logged by [`detached`]).
pub(crate) fn internal<T>(message: String) -> std::result::Result<T, Refusal> {
    Err(Refusal::new(codes::UNEXPECTED_ERROR, format!("internal error: {message}"), Value::Null))
}

pub(crate) fn denied(d: Denied) -> Refusal {
    Refusal::new(d.code, d.message, Value::Null)
}

/// The backend's default config with the caller's session config merged over it.
pub(super) fn merge_config(default: &Value, session: Value) -> std::result::Result<Value, Refusal> {
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
