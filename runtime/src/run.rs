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
use crate::envelope::{Envelope, Meta, timestamp};
use crate::host::{Output, OutputSink};
use crate::sandbox::{CreateStatus, ExecOptions, Sandbox};
use crate::session::{Caller, SessionInfo};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

/// The prefix of run session ids (they are worker ids).
pub const RUN_PREFIX: &str = "run-";

/// The default deadline of one run, in seconds (the server's call limit caps it).
pub const DEFAULT_RUN_TIMEOUT_S: f64 = 30.0;

/// One run (S-30).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// The code to run.
    pub code: String,
    /// `python` (default) or `javascript` (`js`).
    #[serde(default)]
    pub language: Option<String>,
    /// A run session to reuse; a new one is created when absent.
    #[serde(default)]
    pub session_id: Option<String>,
    /// Files to place in the session's working directory before the run.
    #[serde(default)]
    pub files: Vec<FileUpload>,
    /// Packages to install before the run (from the server's wheelhouse; once per session).
    #[serde(default)]
    pub packages: Vec<String>,
    /// Keep the session after the run (default false: it ends with the run).
    #[serde(default)]
    pub keep_alive: bool,
    /// Seconds the run may take: a positive number (default 30; more than the server's call
    /// limit is cut to it).
    #[serde(default)]
    pub timeout: Option<f64>,
}

/// One file of a run. Give `content` (text) or `content_base64`; or only `sha256` when the
/// session already holds that content (see [`Runner::files`]), which is then copied to `path`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileUpload {
    /// The path, relative to the working directory (no `..`).
    pub path: String,
    /// The content as UTF-8 text.
    #[serde(default)]
    pub content: Option<String>,
    /// The content, base64-encoded.
    #[serde(default)]
    pub content_base64: Option<String>,
    /// The sha256 (hex) of the content.
    #[serde(default)]
    pub sha256: Option<String>,
}

/// A file a session holds.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct HeldFile {
    /// The path, relative to the working directory.
    pub path: String,
    /// The sha256 of the content, hex.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// A stage's time (S-31).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StageTime {
    /// `session`, `upload`, `install`, `run` or `close`.
    pub stage: String,
    /// Milliseconds.
    pub ms: f64,
    /// Its share of the total, 0 to 1.
    pub share: f64,
}

/// Where the time went (S-31).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Timing {
    /// Each stage that ran, in order.
    pub stages: Vec<StageTime>,
    /// Milliseconds in all.
    pub total_ms: f64,
}

/// What the timing suggests (S-31).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Insights {
    /// The stage that took the most time.
    pub bottleneck: String,
    /// What would make the next run faster.
    pub suggestions: Vec<String>,
}

/// The result of a run (S-31). A failing program is a result too (S-37): see `error`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunResult {
    /// The run session (reuse it with `session_id` when `kept_alive`).
    pub session_id: String,
    /// The language.
    pub language: String,
    /// What the code printed.
    pub stdout: String,
    /// What the code wrote to stderr.
    pub stderr: String,
    /// The value of a final expression (its `repr`), if any.
    pub result: Option<String>,
    /// `{name, value, traceback}` when the code raised (a syntax error included).
    pub error: Option<Value>,
    /// Whether the session was reused.
    pub reused_session: bool,
    /// Whether the session lives on after this run.
    pub kept_alive: bool,
    /// When the kept-alive session expires unless used (naive UTC ISO).
    pub expires_at: Option<String>,
    /// Files written (`uploaded`), skipped because the same content was there (`unchanged`),
    /// or copied from content the session held (`reused`).
    pub files: Value,
    /// Packages `installed` now and `cached` (installed earlier in this session).
    pub packages: Value,
    /// Time per stage.
    pub timing: Timing,
    /// The bottleneck and suggestions.
    pub insights: Insights,
}

/// What a watched run reports as it goes (S-32).
#[derive(Debug, Clone, PartialEq)]
pub enum RunEvent {
    /// A stage starts (`percent` of the run done so far).
    Progress {
        /// The stage.
        stage: &'static str,
        /// 0 … 100.
        percent: u8,
    },
    /// Output the code wrote.
    Output(Output),
}

/// The run API over a sandbox.
#[derive(Clone)]
pub struct Runner {
    sandbox: Sandbox,
}

struct Clock {
    started: Instant,
    stage_started: Instant,
    stages: Vec<(String, f64)>,
}

impl Clock {
    fn new() -> Clock {
        let now = Instant::now();
        Clock { started: now, stage_started: now, stages: Vec::new() }
    }

    fn lap(&mut self, stage: &str) {
        let now = Instant::now();
        self.stages.push((stage.to_string(), (now - self.stage_started).as_secs_f64() * 1000.0));
        self.stage_started = now;
    }

    fn timing(&self) -> Timing {
        let total_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let stages = self
            .stages
            .iter()
            .map(|(stage, ms)| StageTime {
                stage: stage.clone(),
                ms: *ms,
                share: if total_ms > 0.0 { (ms / total_ms * 1000.0).round() / 1000.0 } else { 0.0 },
            })
            .collect();
        Timing { stages, total_ms }
    }
}

fn fail(code: i32, message: impl Into<String>, data: Value) -> Envelope {
    Envelope::error(code, message, data, Meta { tool: Some("run".into()), ..Meta::default() })
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
        if !session_id.starts_with(RUN_PREFIX) || self.sandbox.list_sessions(&caller).is_empty() {
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
        crate::detach::detached(work, |message| {
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
        if let Some(t) = request.timeout
            && !(t > 0.0 && t.is_finite())
        {
            let message = format!("timeout must be a positive number of seconds, not {t}");
            return Envelope::error(codes::INVALID_REQUEST_FORMAT, message, json!({"timeout": t}), Meta::default());
        }
        let language = request.language.clone().unwrap_or_else(|| "python".into());
        let rt = match self.backend_of(&language) {
            Ok(rt) => rt,
            Err(e) => return e,
        };
        let mut clock = Clock::new();

        // 1. Session: reuse or create.
        progress("session", 0);
        let (caller, new_session) = match &request.session_id {
            Some(id) => match self.existing(tenant, id) {
                Ok(c) => (c, false),
                Err(e) => return e,
            },
            None => (Self::caller(tenant, &format!("{RUN_PREFIX}{}", uuid::Uuid::new_v4().simple())), true),
        };
        let created = match self.sandbox.create_session(&caller, rt, json!({}), None).await {
            Ok(c) => c,
            Err(r) => return fail(r.code, r.message, r.data),
        };
        let reused_session = created.status == CreateStatus::Exists;
        if created.status == CreateStatus::Failed {
            let reason = created.session.error.clone().unwrap_or_default();
            self.sandbox.disconnect(&caller).await;
            return fail(
                codes::RESOURCE_NOT_INITIALIZED,
                format!("the {rt} session failed to start: {reason}"),
                Value::Null,
            );
        }
        clock.lap("session");
        let meta_session = created.session.session_id.clone();
        let end = |envelope: Envelope| async {
            if !request.keep_alive || new_session && !envelope.is_success() {
                self.sandbox.disconnect(&caller).await;
            }
            envelope
        };

        // 2. Files.
        let mut files = json!({"uploaded": [], "unchanged": [], "reused": []});
        if !request.files.is_empty() {
            progress("upload", 20);
            match self.upload(&caller, rt, &request.files) {
                Ok(f) => files = f,
                Err(e) => return end(e).await,
            }
            clock.lap("upload");
        }

        // 3. Packages.
        let mut packages = json!({"installed": [], "cached": []});
        if !request.packages.is_empty() {
            progress("install", 40);
            let envelope = self
                .sandbox
                .execute(
                    &caller,
                    &format!("{rt}:install"),
                    json!({"packages": request.packages}),
                    ExecOptions::default(),
                )
                .await;
            if !envelope.is_success() {
                let mut e = envelope;
                if let Some(o) = e.data.as_object_mut() {
                    o.insert("stage".into(), json!("install"));
                } else {
                    e.data = json!({"stage": "install", "details": e.data});
                }
                return end(e).await;
            }
            packages = envelope.data;
            clock.lap("install");
        }

        // 4. Run, streaming output to the watcher.
        progress("run", 60);
        // Checked above; longer than the server allows is cut to its limit by the sandbox.
        let timeout = crate::config::seconds(request.timeout.unwrap_or(DEFAULT_RUN_TIMEOUT_S));
        let (sink, forward) = match &events {
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
        let envelope =
            self.sandbox.execute(&caller, &format!("{rt}:run"), json!({"code": request.code}), options).await;
        if let Some(forward) = forward {
            let _ = forward.await;
        }
        clock.lap("run");
        if !envelope.is_success() {
            // A fault (deadline, memory, trap) ends the run and its session, never the server.
            // The whole run session ends, so that its next use is told so (4007) rather than
            // silently getting a fresh interpreter.
            let ended =
                self.sandbox.list_sessions(&caller).iter().any(|s| s.resource_type == rt && s.status == "error");
            if ended {
                self.sandbox.disconnect(&caller).await;
            }
            let mut e = envelope;
            e.data = json!({"stage": "run", "session_id": caller.worker_id, "session_ended": ended, "details": e.data});
            return end(e).await;
        }

        // 5. Close unless kept alive.
        let mut expires_at = None;
        if request.keep_alive {
            expires_at = self
                .sandbox
                .refresh_sessions(&caller, Some(rt))
                .ok()
                .and_then(|r| r.sessions.into_iter().next().map(|(_, s)| s.expires_at));
        } else {
            progress("close", 95);
            self.sandbox.disconnect(&caller).await;
            clock.lap("close");
        }
        progress("done", 100);

        let timing = clock.timing();
        let insights = insights(&timing, reused_session, &request);
        let data = &envelope.data;
        let result = RunResult {
            session_id: caller.worker_id.clone(),
            language: rt.to_string(),
            stdout: data["stdout"].as_str().unwrap_or_default().to_string(),
            stderr: data["stderr"].as_str().unwrap_or_default().to_string(),
            result: data["result"].as_str().map(str::to_string),
            error: data.get("error").filter(|e| !e.is_null()).cloned(),
            reused_session,
            kept_alive: request.keep_alive,
            expires_at,
            files,
            packages,
            timing,
            insights,
        };
        let meta = Meta {
            resource_type: Some(rt.to_string()),
            session_id: Some(meta_session),
            trace_id: envelope.meta.trace_id.clone(),
            ..Meta::default()
        };
        Envelope::success(serde_json::to_value(result).unwrap_or(Value::Null), meta)
    }

    /// Writes the uploads into the session's scratch directory.
    fn upload(&self, caller: &Caller, rt: &str, uploads: &[FileUpload]) -> Result<Value, Envelope> {
        use base64::Engine as _;
        let Some(dir) = self.sandbox.session_dir(caller, rt) else {
            return Err(fail(
                codes::INVALID_REQUEST_FORMAT,
                format!("the {rt} backend has no working directory (grants.scratch) to upload files into"),
                Value::Null,
            ));
        };
        let mut held: Option<Vec<HeldFile>> = None;
        let (mut uploaded, mut unchanged, mut reused) = (Vec::new(), Vec::new(), Vec::new());
        for file in uploads {
            let relative = safe_relative(&file.path).ok_or_else(|| {
                fail(
                    codes::INVALID_REQUEST_FORMAT,
                    format!("file path '{}' must be relative, without '..'", file.path),
                    json!({"path": file.path}),
                )
            })?;
            let target = dir.join(&relative);
            let bytes = match (&file.content, &file.content_base64) {
                (Some(text), None) => Some(text.clone().into_bytes()),
                (None, Some(b64)) => Some(base64::engine::general_purpose::STANDARD.decode(b64).map_err(|e| {
                    fail(
                        codes::INVALID_PARAMETER_TYPE,
                        format!("file '{}': content_base64 is not base64: {e}", file.path),
                        json!({"path": file.path}),
                    )
                })?),
                (None, None) => None,
                (Some(_), Some(_)) => {
                    return Err(fail(
                        codes::INVALID_REQUEST_FORMAT,
                        format!("file '{}': give content or content_base64, not both", file.path),
                        json!({"path": file.path}),
                    ));
                }
            };
            let io_error = |e: std::io::Error| {
                fail(codes::EXECUTION_ERROR, format!("file '{}': {e}", file.path), json!({"path": file.path}))
            };
            match bytes {
                Some(bytes) => {
                    let hash = hex::encode(Sha256::digest(&bytes));
                    if let Some(want) = &file.sha256
                        && !want.eq_ignore_ascii_case(&hash)
                    {
                        return Err(fail(
                            codes::INVALID_PARAMETER_TYPE,
                            format!("file '{}': the content's sha256 is {hash}, not {want}", file.path),
                            json!({"path": file.path, "sha256": hash}),
                        ));
                    }
                    if std::fs::read(&target).is_ok_and(|old| Sha256::digest(&old)[..] == Sha256::digest(&bytes)[..]) {
                        unchanged.push(file.path.clone());
                        continue;
                    }
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent).map_err(io_error)?;
                    }
                    std::fs::write(&target, &bytes).map_err(io_error)?;
                    held = None;
                    uploaded.push(json!({"path": file.path, "sha256": hash, "size": bytes.len()}));
                }
                None => {
                    let Some(want) = &file.sha256 else {
                        return Err(fail(
                            codes::MISSING_REQUIRED_FIELD,
                            format!("file '{}' needs content, content_base64 or sha256", file.path),
                            json!({"path": file.path}),
                        ));
                    };
                    let index = held.get_or_insert_with(|| list_files(&dir));
                    let Some(source) = index.iter().find(|h| h.sha256.eq_ignore_ascii_case(want)) else {
                        return Err(fail(
                            codes::NO_RESULTS_FOUND,
                            format!(
                                "file '{}': the session holds no content with sha256 {want}; send the content",
                                file.path
                            ),
                            json!({"path": file.path, "sha256": want}),
                        ));
                    };
                    let from = dir.join(&source.path);
                    if from != target {
                        if let Some(parent) = target.parent() {
                            std::fs::create_dir_all(parent).map_err(io_error)?;
                        }
                        std::fs::copy(&from, &target).map_err(io_error)?;
                        held = None;
                    }
                    reused.push(file.path.clone());
                }
            }
        }
        Ok(json!({"uploaded": uploaded, "unchanged": unchanged, "reused": reused}))
    }

    /// The files a run session holds, with their hashes (S-33): send only the rest.
    pub fn files(&self, tenant: &std::sync::Arc<str>, session_id: &str) -> Result<Vec<HeldFile>, Envelope> {
        let caller = self.existing(tenant, session_id)?;
        let mut files = Vec::new();
        for info in self.sandbox.list_sessions(&caller) {
            if let Some(dir) = self.sandbox.session_dir(&caller, &info.resource_type) {
                files.extend(list_files(&dir));
            }
        }
        Ok(files)
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
        "status": if sessions.iter().all(|s| s.status == "active") { "active" } else { "error" },
        "created_at": sessions.iter().map(|s| s.created_at.clone()).min(),
        "last_activity": sessions.iter().map(|s| s.last_activity.clone()).max(),
        "expires_at": expires_at,
        "expires_in_s": expires_in_s,
        "now": timestamp(now),
    })
}

/// `path` as a relative path with no `..`, root or prefix, or `None`.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    if path.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return None;
    }
    Some(p.to_path_buf())
}

/// Every regular file under `dir`, with its sha256, sorted by path.
fn list_files(dir: &Path) -> Vec<HeldFile> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file()
                && let Ok(bytes) = std::fs::read(&path)
                && let Ok(relative) = path.strip_prefix(dir)
            {
                out.push(HeldFile {
                    path: relative.to_string_lossy().into_owned(),
                    sha256: hex::encode(Sha256::digest(&bytes)),
                    size: bytes.len() as u64,
                });
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

fn insights(timing: &Timing, reused: bool, request: &RunRequest) -> Insights {
    let bottleneck =
        timing.stages.iter().max_by(|a, b| a.ms.total_cmp(&b.ms)).map(|s| s.stage.clone()).unwrap_or_default();
    let mut suggestions = Vec::new();
    match bottleneck.as_str() {
        "session" if !reused => suggestions.push(
            "creating the session took the most time: pass keep_alive and reuse session_id for the next runs".to_string(),
        ),
        "upload" => suggestions.push(
            "uploading took the most time: files the session already holds can be sent as sha256 only (see the session's files)".to_string(),
        ),
        "install" => suggestions.push(
            "installing packages took the most time: packages stay installed in a kept-alive session".to_string(),
        ),
        "run" => suggestions.push("the code itself took the most time".to_string()),
        "close" => suggestions.push("closing took the most time: keep_alive skips it between runs".to_string()),
        _ => {}
    }
    if !request.keep_alive && request.session_id.is_none() {
        suggestions.push("each run without keep_alive starts from a fresh session; state does not carry over".into());
    }
    Insights { bottleneck, suggestions }
}

#[cfg(test)]
mod tests {
    use super::safe_relative;

    #[test]
    fn upload_paths_stay_inside_the_working_directory() {
        assert!(safe_relative("data.csv").is_some());
        assert!(safe_relative("a/b/./c.txt").is_some());
        for bad in ["", "/etc/passwd", "../x", "a/../../x"] {
            assert!(safe_relative(bad).is_none(), "{bad}");
        }
    }
}
