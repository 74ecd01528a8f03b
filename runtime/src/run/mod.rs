//! The run API (seed 003, S-30 … S-38): one call creates or reuses a code session, uploads
//! files into it, installs packages and runs code, and reports the time of each stage.
//!
//! A run session is a Cella worker (`run-<uuid>`) of the caller's tenant; each language it
//! has used is an explicit session of that language's backend (`python`, `javascript`), so
//! variables, imports and files persist between runs. Files are written by the host into
//! the session's scratch directory (the backend's `grants.scratch`), where the code sees
//! them under its working directory. This layer sits on the [`Sandbox`] facade and never
//! sees HTTP.

// The errors of this layer are the answer itself (an `Envelope`), built on a cold path and
// moved once; boxing them would only add an allocation to every refusal.
#![allow(clippy::result_large_err)]

use crate::codes;
use crate::engine::host::OutputSink;
use crate::envelope::{Envelope, Meta, timestamp};
use crate::sandbox::session::{Caller, SessionInfo};
use crate::sandbox::{CreateStatus, ExecOptions, Sandbox, params};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

mod files;
mod report;
mod snapshots;
mod types;

use report::{Clock, insights};
pub use types::*;

/// The run API over a sandbox.
#[derive(Clone)]
pub struct Runner {
    sandbox: Sandbox,
}

fn fail(code: i32, message: impl Into<String>, data: Value) -> Envelope {
    Envelope::error(code, message, data, Meta { tool: Some("run".into()), ..Meta::default() })
}

/// A run session opened for one run.
struct Opened {
    /// The run session's worker.
    caller: Caller,
    /// Whether this run created it.
    new: bool,
    /// Whether the language's session already existed.
    reused: bool,
    /// The Cella session of the language's backend.
    session_id: String,
}

impl Runner {
    /// The run API over `sandbox`.
    pub fn new(sandbox: Sandbox) -> Runner {
        Runner { sandbox }
    }

    /// The backend of a language, if the server serves it.
    fn backend_of(&self, language: &str) -> Result<&'static str, Envelope> {
        let rt = match language.to_ascii_lowercase().as_str() {
            "python" | "py" | "python3" => "python",
            "javascript" | "js" | "node" => "javascript",
            other => {
                return Err(fail(
                    codes::INVALID_REQUEST_FORMAT,
                    format!("unknown language '{other}'; use python or javascript"),
                    json!({"language": other}),
                ));
            }
        };
        if self.sandbox.backend(rt).is_none() {
            return Err(fail(
                codes::INVALID_REQUEST_FORMAT,
                format!("this server does not run {rt} (no '{rt}' resource is configured)"),
                json!({"language": language}),
            ));
        }
        Ok(rt)
    }

    fn caller(tenant: &std::sync::Arc<str>, session_id: &str) -> Caller {
        Caller { tenant: tenant.clone(), worker_id: session_id.to_string() }
    }

    /// The caller of an existing run session, or 4007.
    fn existing(&self, tenant: &std::sync::Arc<str>, session_id: &str) -> Result<Caller, Envelope> {
        let caller = Self::caller(tenant, session_id);
        if !session_id.starts_with(RUN_PREFIX) || !self.sandbox.has_sessions(&caller) {
            return Err(fail(
                codes::RESOURCE_NOT_INITIALIZED,
                format!("no run session '{session_id}' (it was closed, it expired, or it never existed)"),
                json!({"session_id": session_id}),
            ));
        }
        Ok(caller)
    }

    /// Runs `request` for `tenant` (S-30); `events` receives progress and live output (S-32).
    /// The envelope's data is a [`RunResult`] on success.
    pub async fn run(
        &self,
        tenant: &std::sync::Arc<str>,
        request: RunRequest,
        events: Option<tokio::sync::mpsc::UnboundedSender<RunEvent>>,
    ) -> Envelope {
        // The whole run (its clean-up included) outlives a client that disconnects.
        let (this, owned_tenant) = (self.clone(), tenant.clone());
        let work = async move { this.run_attached(&owned_tenant, request, events).await };
        crate::sandbox::detach::detached(work, |message| {
            fail(codes::UNEXPECTED_ERROR, format!("internal error: {message}"), Value::Null)
        })
        .await
    }

    async fn run_attached(
        &self,
        tenant: &std::sync::Arc<str>,
        request: RunRequest,
        events: Option<tokio::sync::mpsc::UnboundedSender<RunEvent>>,
    ) -> Envelope {
        let started = Instant::now();
        let mut envelope = self.run_inner(tenant, request, events).await;
        envelope.meta.tool = Some("run".into());
        envelope.meta.execution_time_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        envelope
    }

    async fn run_inner(
        &self,
        tenant: &std::sync::Arc<str>,
        request: RunRequest,
        events: Option<tokio::sync::mpsc::UnboundedSender<RunEvent>>,
    ) -> Envelope {
        let progress = |stage: &'static str, percent: u8| {
            if let Some(tx) = &events {
                let _ = tx.send(RunEvent::Progress { stage, percent });
            }
        };
        let rt = match self.check(&request) {
            Ok(rt) => rt,
            Err(e) => return e,
        };
        let mut clock = Clock::new();

        // 1. Session: reuse or create.
        progress("session", 0);
        let opened = match self.open(tenant, &request, rt).await {
            Ok(o) => o,
            Err(e) => return e,
        };
        clock.lap("session");
        let caller = &opened.caller;
        let end = |envelope: Envelope| async {
            if !request.keep_alive || opened.new && !envelope.is_success() {
                self.sandbox.disconnect(caller).await;
            }
            envelope
        };

        // 2. Files.
        let mut files = json!({"uploaded": [], "unchanged": [], "reused": []});
        if !request.files.is_empty() {
            progress("upload", 20);
            match self.upload(caller, rt, &request.files).await {
                Ok(f) => files = f,
                Err(e) => return end(e).await,
            }
            clock.lap("upload");
        }

        // 3. Packages.
        let mut packages = json!({"installed": [], "cached": []});
        if !request.packages.is_empty() {
            progress("install", 40);
            match self.install(caller, rt, &request.packages).await {
                Ok(p) => packages = p,
                Err(e) => return end(e).await,
            }
            clock.lap("install");
        }

        // 4. Run, streaming output to the watcher.
        progress("run", 60);
        let envelope = self.run_code(caller, rt, &request, events.as_ref()).await;
        clock.lap("run");
        if !envelope.is_success() {
            return end(self.failed_run(caller, rt, envelope).await).await;
        }

        // 5. Close unless kept alive.
        let mut expires_at = None;
        if request.keep_alive {
            expires_at = self
                .sandbox
                .refresh_sessions(caller, Some(rt))
                .ok()
                .and_then(|r| r.sessions.into_iter().next().map(|(_, s)| s.expires_at));
        } else {
            progress("close", 95);
            self.sandbox.disconnect(caller).await;
            clock.lap("close");
        }
        progress("done", 100);
        let result = Ran { expires_at, files, packages, timing: clock.timing() };
        report(&opened, rt, &request, envelope, result)
    }

    /// The request's resource type, once its timeout and language are checked.
    fn check(&self, request: &RunRequest) -> Result<&'static str, Envelope> {
        if let Some(t) = request.timeout
            && !(t > 0.0 && t.is_finite())
        {
            let message = format!("timeout must be a positive number of seconds, not {t}");
            return Err(Envelope::error(
                codes::INVALID_REQUEST_FORMAT,
                message,
                json!({"timeout": t}),
                Meta::default(),
            ));
        }
        let language = request.language.clone().unwrap_or_else(|| "python".into());
        self.backend_of(&language)
    }

    /// Stage 1: the run session named in the request, or a new one, with a live session of
    /// the language's backend.
    async fn open(&self, tenant: &std::sync::Arc<str>, request: &RunRequest, rt: &str) -> Result<Opened, Envelope> {
        let (caller, new) = match &request.session_id {
            Some(id) => (self.existing(tenant, id)?, false),
            None => (Self::caller(tenant, &format!("{RUN_PREFIX}{}", uuid::Uuid::new_v4().simple())), true),
        };
        if !new && let Some(session_id) = self.sandbox.session_id(&caller, rt) {
            // The usual case of a kept-alive run session: its session is there (paused or
            // live; the run resumes a paused one).
            return Ok(Opened { caller, new, reused: true, session_id });
        }
        let created = self
            .sandbox
            .create_session(&caller, rt, json!({}), None)
            .await
            .map_err(|r| fail(r.code, r.message, r.data))?;
        if created.status == CreateStatus::Failed {
            let reason = created.session.error.clone().unwrap_or_default();
            self.sandbox.disconnect(&caller).await;
            let message = format!("the {rt} session failed to start: {reason}");
            return Err(fail(codes::RESOURCE_NOT_INITIALIZED, message, Value::Null));
        }
        let reused = created.status == CreateStatus::Exists;
        Ok(Opened { caller, new, reused, session_id: created.session.session_id })
    }

    /// Stage 3: installs packages from the wheelhouse; answers what was installed.
    async fn install(&self, caller: &Caller, rt: &str, packages: &[String]) -> Result<Value, Envelope> {
        let action = format!("{rt}:install");
        let params = params(json!({"packages": packages}));
        let envelope = self.sandbox.execute(caller, &action, params, ExecOptions::default()).await;
        if envelope.is_success() {
            return Ok(envelope.data);
        }
        let mut e = envelope;
        if let Some(o) = e.data.as_object_mut() {
            o.insert("stage".into(), json!("install"));
        } else {
            e.data = json!({"stage": "install", "details": e.data});
        }
        Err(e)
    }

    /// Stage 4: runs the code, forwarding its streamed output to `events` as it comes.
    async fn run_code(
        &self,
        caller: &Caller,
        rt: &str,
        request: &RunRequest,
        events: Option<&tokio::sync::mpsc::UnboundedSender<RunEvent>>,
    ) -> Envelope {
        // Checked above; longer than the server allows is cut to its limit by the sandbox.
        let timeout = crate::config::seconds(request.timeout.unwrap_or(DEFAULT_RUN_TIMEOUT_S));
        let (sink, forward) = match events {
            Some(tx) => {
                let (sink, mut rx): (OutputSink, _) = tokio::sync::mpsc::unbounded_channel();
                let tx = tx.clone();
                let forward = tokio::spawn(async move {
                    while let Some(o) = rx.recv().await {
                        let _ = tx.send(RunEvent::Output(o));
                    }
                });
                (Some(sink), Some(forward))
            }
            None => (None, None),
        };
        let options = ExecOptions { timeout: Some(timeout), trace_id: None, output: sink };
        let params = params(json!({"code": request.code}));
        let envelope = self.sandbox.execute(caller, &format!("{rt}:run"), params, options).await;
        if let Some(forward) = forward {
            let _ = forward.await;
        }
        envelope
    }

    /// After a failed run: a fault (deadline, memory, trap) ends the run and its session,
    /// never the server. The whole run session ends, so that its next use is told so (4007)
    /// rather than silently getting a fresh interpreter.
    async fn failed_run(&self, caller: &Caller, rt: &str, envelope: Envelope) -> Envelope {
        let ended = self.sandbox.list_sessions(caller).iter().any(|s| s.resource_type == rt && s.status == "error");
        if ended {
            self.sandbox.disconnect(caller).await;
        }
        let mut e = envelope;
        e.data = json!({"stage": "run", "session_id": caller.worker_id, "session_ended": ended, "details": e.data});
        e
    }

    /// A run session: its languages' sessions and files (S-35 getSession).
    pub fn get(&self, tenant: &std::sync::Arc<str>, session_id: &str) -> Result<Value, Envelope> {
        let caller = self.existing(tenant, session_id)?;
        Ok(describe(&caller.worker_id, &self.sandbox.list_sessions(&caller)))
    }

    /// Every run session of the tenant (S-35 listSessions).
    pub fn list(&self, tenant: &std::sync::Arc<str>) -> Vec<Value> {
        self.sandbox
            .workers_of_tenant(tenant, RUN_PREFIX)
            .iter()
            .filter(|(_, sessions)| !sessions.is_empty())
            .map(|(id, sessions)| describe(id, sessions))
            .collect()
    }

    /// Renews a run session's TTL (S-35 keepAlive); returns it.
    pub fn keep_alive(&self, tenant: &std::sync::Arc<str>, session_id: &str) -> Result<Value, Envelope> {
        let caller = self.existing(tenant, session_id)?;
        let _ = self.sandbox.refresh_sessions(&caller, None);
        Ok(describe(&caller.worker_id, &self.sandbox.list_sessions(&caller)))
    }

    /// Ends a run session (S-35 close); returns how many language sessions ended.
    pub async fn close(&self, tenant: &std::sync::Arc<str>, session_id: &str) -> Result<usize, Envelope> {
        let caller = self.existing(tenant, session_id)?;
        Ok(self.sandbox.disconnect(&caller).await)
    }
}

/// What a successful run gathered besides the tool's answer.
struct Ran {
    expires_at: Option<String>,
    files: Value,
    packages: Value,
    timing: Timing,
}

/// The MIME type of each format of an interpreter's rich result.
const MIME_TYPES: &[(&str, &str)] = &[
    ("text", "text/plain"),
    ("html", "text/html"),
    ("markdown", "text/markdown"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpeg", "image/jpeg"),
    ("latex", "text/latex"),
    ("json", "application/json"),
    ("javascript", "application/javascript"),
];

/// An interpreter's rich results (`python:run`'s `results`) as MIME bundles.
fn mime_bundles(results: &serde_json::Value) -> Vec<serde_json::Value> {
    let Some(results) = results.as_array() else { return Vec::new() };
    results
        .iter()
        .map(|r| {
            let data: serde_json::Map<String, serde_json::Value> = MIME_TYPES
                .iter()
                .filter_map(|(key, mime)| r.get(*key).map(|v| ((*mime).to_string(), v.clone())))
                .collect();
            let mut bundle =
                serde_json::json!({"is_main_result": r["is_main_result"].as_bool() == Some(true), "data": data});
            if let Some(chart) = r.get("chart") {
                bundle["chart"] = chart.clone();
            }
            bundle
        })
        .collect()
}

/// The envelope of a successful run: the code's output with the run's timing and insights.
fn report(opened: &Opened, rt: &str, request: &RunRequest, envelope: Envelope, ran: Ran) -> Envelope {
    let insights = insights(&ran.timing, opened.reused, request);
    let data = &envelope.data;
    let result = RunResult {
        session_id: opened.caller.worker_id.clone(),
        language: rt.to_string(),
        stdout: data["stdout"].as_str().unwrap_or_default().to_string(),
        stderr: data["stderr"].as_str().unwrap_or_default().to_string(),
        result: data["result"].as_str().map(str::to_string),
        error: data.get("error").filter(|e| !e.is_null()).cloned(),
        results: mime_bundles(&data["results"]),
        reused_session: opened.reused,
        kept_alive: request.keep_alive,
        expires_at: ran.expires_at,
        files: ran.files,
        packages: ran.packages,
        timing: ran.timing,
        insights,
    };
    let meta = Meta {
        resource_type: Some(rt.to_string()),
        session_id: Some(opened.session_id.clone()),
        trace_id: envelope.meta.trace_id.clone(),
        ..Meta::default()
    };
    Envelope::success(serde_json::to_value(result).unwrap_or(Value::Null), meta)
}

/// A run session's status: `error` when a language's session failed, `paused` when any is
/// paused (the next run resumes it), else `active`.
fn run_status(sessions: &[SessionInfo]) -> &'static str {
    if sessions.iter().any(|s| s.status == "error") {
        "error"
    } else if sessions.iter().any(|s| s.status == "paused") {
        "paused"
    } else if sessions.iter().all(|s| s.status == "active") {
        "active"
    } else {
        "initializing"
    }
}

fn describe(id: &str, sessions: &[SessionInfo]) -> Value {
    let expires_at = sessions.iter().map(|s| s.expires_at.clone()).max();
    let now = chrono::Utc::now();
    let expires_in_s = expires_at
        .as_deref()
        .and_then(|e| chrono::NaiveDateTime::parse_from_str(e, "%Y-%m-%dT%H:%M:%S%.f").ok())
        .map(|e| ((e.and_utc() - now).num_milliseconds() as f64 / 1000.0).max(0.0));
    json!({
        "session_id": id,
        "languages": sessions.iter().map(|s| s.resource_type.clone()).collect::<Vec<_>>(),
        "status": run_status(sessions),
        "created_at": sessions.iter().map(|s| s.created_at.clone()).min(),
        "last_activity": sessions.iter().map(|s| s.last_activity.clone()).max(),
        "expires_at": expires_at,
        "expires_in_s": expires_in_s,
        "now": timestamp(now),
    })
}
